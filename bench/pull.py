#!/usr/bin/env python3
"""Pull benchmark: loghost against the classic pipeline, scp and rsync, in one run, as ratios.

All tools fetch the same realistic log file from the same OpenSSH sshd on 127.0.0.1 (started
here, as the current user, stopped by PID). Each measurement is the median of several runs.

    python3 bench/pull.py [--mib 256] [--runs 3]

Needs: the release binary (built here with cargo), /usr/sbin/sshd, scp, rsync, gzip, md5sum.
"""

import argparse
import os
import random
import shutil
import statistics
import tempfile

from common import BIN, Sshd, build, current_user, sh, timed, write_config

def write_log(path, mib):
    rnd = random.Random(42)
    users = ["root", "deploy", "alice", "bob", "backup", "git", "www-data", "postgres"]
    msgs = [
        "sshd[{pid}]: Accepted publickey for {u} from 10.{a}.{b}.{c} port {p} ssh2: ED25519 SHA256:{h}",
        "sshd[{pid}]: Failed password for invalid user {u} from 203.0.113.{c} port {p} ssh2",
        "sshd[{pid}]: pam_unix(sshd:session): session opened for user {u}(uid={a}) by (uid=0)",
        "CRON[{pid}]: pam_unix(cron:session): session closed for user {u}",
        "sudo: {u} : TTY=pts/{a} ; PWD=/home/{u} ; USER=root ; COMMAND=/usr/bin/apt-get upgrade -y",
        "systemd-logind[{pid}]: New session {p} of user {u}.",
        "kernel: [{p}.{pid}] [UFW BLOCK] IN=eth0 OUT= SRC=198.51.100.{c} DST=192.0.2.{b} LEN=60 PROTO=TCP SPT={p} DPT=22",
    ]
    target = mib * 1024 * 1024
    with open(path, "w") as f:
        n = 0
        sec = 0
        while n < target:
            lines = []
            for _ in range(2000):
                sec += rnd.randint(0, 2)
                m = rnd.choice(msgs).format(
                    pid=rnd.randint(300, 65000), u=rnd.choice(users), a=rnd.randint(0, 255),
                    b=rnd.randint(0, 255), c=rnd.randint(1, 254), p=rnd.randint(1024, 65535),
                    h="%016x%016x" % (rnd.getrandbits(64), rnd.getrandbits(64)))
                lines.append("Nov %2d %02d:%02d:%02d web1 %s\n" % (
                    1 + sec // 86400 % 28, sec // 3600 % 24, sec // 60 % 60, sec % 60, m))
            chunk = "".join(lines)
            f.write(chunk)
            n += len(chunk)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mib", type=int, default=256)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()

    build()
    work = tempfile.mkdtemp(prefix="loghost-bench-")
    sshd = None
    try:
        user = current_user()
        remote = os.path.join(work, "remote")
        os.makedirs(remote)
        big = os.path.join(remote, "big.log")
        print(f"writing a {args.mib} MiB log ...", flush=True)
        write_log(big, args.mib)
        size = os.path.getsize(big)

        etc = os.path.join(work, "etc")
        os.makedirs(etc)
        # No ForceCommand: rsync needs to run on the server. loghost and scp use SFTP.
        sshd = Sshd(work)
        port = sshd.port
        sh(f"ssh-keygen -q -t ed25519 -N '' -f {work}/clientkey")
        config = os.path.join(etc, "loghost.toml")

        def use_store(store):
            write_config(config, store, port, [big])

        use_store(os.path.join(work, "store0"))
        sh(f"{BIN} --config {config} init >/dev/null")
        with open(f"{work}/authorized_keys", "w") as f:
            f.write(open(f"{etc}/id_ed25519.pub").read())
            f.write(open(f"{work}/clientkey.pub").read())
        sh(f"{BIN} --config {config} trust web1 --fingerprint {sshd.fingerprint} >/dev/null")

        ssh_opts = (f"-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null "
                    f"-o LogLevel=ERROR -i {work}/clientkey")
        src = f"{user}@127.0.0.1:{big}"
        dest = os.path.join(work, "dest")

        def fresh_dest():
            shutil.rmtree(dest, ignore_errors=True)
            os.makedirs(dest)

        results = {}
        per_round = {}
        counter = [0]

        def fresh_store():
            counter[0] += 1
            store = os.path.join(work, f"store{counter[0]}")
            use_store(store)
            sh(f"{BIN} --config {config} init >/dev/null")

        def measure_interleaved(cases):
            """Runs every case once per round, rounds repeated: drift hits all alike."""
            samples = {name: ([], []) for name, _, _ in cases}
            for _ in range(args.runs):
                for name, prepare, cmd in cases:
                    prepare()
                    dt, mem = timed(cmd())
                    samples[name][0].append(dt)
                    samples[name][1].append(mem)
            for name, _, _ in cases:
                times, mems = samples[name]
                results[name] = (statistics.median(times), max(mems))
                per_round[name] = times
                print(f"  {name:<34} {results[name][0]:7.2f} s   "
                      f"(runs: {', '.join('%.2f' % x for x in times)})", flush=True)

        print(f"first full transfer of {size / 2**20:.0f} MiB, median of {args.runs}:")
        measure_interleaved([
            ("scp", fresh_dest, lambda: f"scp -q -P {port} {ssh_opts} {src} {dest}/"),
            ("scp (aes128-gcm)", fresh_dest,
             lambda: f"scp -q -c aes128-gcm@openssh.com -P {port} {ssh_opts} {src} {dest}/"),
            ("scp + gzip + md5sum", fresh_dest,
             lambda: f"scp -q -P {port} {ssh_opts} {src} {dest}/ && gzip -6 {dest}/big.log"
                     f" && md5sum {dest}/big.log.gz"),
            ("scp + zstd + sha256sum", fresh_dest,
             lambda: f"scp -q -P {port} {ssh_opts} {src} {dest}/ && zstd -q --rm {dest}/big.log"
                     f" && sha256sum {dest}/big.log.zst"),
            ("rsync (full)", fresh_dest,
             lambda: f"rsync -a -e 'ssh -p {port} {ssh_opts}' {src} {dest}/"),
            ("loghost pull (first)", fresh_store, lambda: [BIN, "--config", config, "pull"]),
        ])
        first_mem = results["loghost pull (first)"][1]

        # Incremental: both sides hold the whole file; 1 MiB is appended before each timed run.
        fresh_dest()
        sh(f"rsync -a -e 'ssh -p {port} {ssh_opts}' {src} {dest}/")
        def append_mib():
            extra = os.path.join(work, "extra.log")
            write_log(extra, 1)
            with open(big, "ab") as out, open(extra, "rb") as inp:
                out.write(inp.read())

        print("after a 1 MiB append, median of %d:" % args.runs)
        sh(f"{BIN} --config {config} pull >/dev/null")  # loghost holds the whole file too
        # Each round appends 1 MiB, then both tools fetch that same 1 MiB.
        measure_interleaved([
            ("rsync --append", append_mib,
             lambda: f"rsync -a --append -e 'ssh -p {port} {ssh_opts}' {src} {dest}/"),
            ("loghost pull (incremental)", lambda: None,
             lambda: [BIN, "--config", config, "pull"]),
        ])

        # Memory: a file four times smaller, to see whether peak RSS follows the file size.
        small_dir = os.path.join(work, "remote-small")
        os.makedirs(small_dir)
        small = os.path.join(small_dir, "small.log")
        with open(big, "rb") as inp, open(small, "wb") as out:
            out.write(inp.read(size // 4))
        store = os.path.join(work, "store-small")
        write_config(config, store, port, [small])
        sh(f"{BIN} --config {config} init >/dev/null")
        _, small_mem = timed([BIN, "--config", config, "pull"])

        def ratio(a, b):
            """Median of the per-round ratios a/b (each round ran both back to back)."""
            return statistics.median(x / y for x, y in zip(per_round[a], per_round[b]))

        print("\nratios, median of per-round ratios (lower is better for loghost):")
        rows = [
            ("classic (scp+gzip+md5sum) / loghost first pull",
             ratio("scp + gzip + md5sum", "loghost pull (first)"), ">= 3"),
            ("loghost first pull / scp", ratio("loghost pull (first)", "scp"), "<= 1.25"),
            ("loghost first pull / scp (aes128-gcm)",
             ratio("loghost pull (first)", "scp (aes128-gcm)"), "-"),
            ("loghost first pull / rsync (full)",
             ratio("loghost pull (first)", "rsync (full)"), "-"),
            ("loghost incremental / rsync --append",
             ratio("loghost pull (incremental)", "rsync --append"), "<= 2"),
        ]
        for name, r, goal in rows:
            print(f"  {name:<50} {r:6.2f}   goal {goal}")
        print(f"\nloghost peak RSS: {first_mem / 1024:.1f} MiB for {size / 2**20:.0f} MiB, "
              f"{small_mem / 1024:.1f} MiB for {size / 4 / 2**20:.0f} MiB")
    finally:
        if sshd:
            sshd.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
