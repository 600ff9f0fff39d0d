#!/usr/bin/env python3
"""Journal benchmark: loghost reading a systemd journal over SFTP against journalctl reading
the same files locally, in one run, as ratios.

A journal of about --mib MiB is written by systemd-journal-remote (which plays journald: zstd,
keyed hash, compact; it starts a new file every ~48 MiB, as journald does at its size limit),
served by an OpenSSH sshd on 127.0.0.1 (started here, as the current user, stopped by PID).

1. First pull of the whole journal into a fresh store vs `journalctl --directory D -o export`.
2. A round after 10,000 new entries vs `journalctl --file ACTIVE --after-cursor C -o export`
   (the cursor of the last entry before them).
3. Peak resident memory of the pull (goal: does not grow with the journal's size).

    python3 bench/journal.py [--mib 1024] [--runs 3]

Needs: the release binary (built here), /usr/sbin/sshd, systemd-journal-remote, journalctl.
"""

import argparse
import os
import shutil
import statistics
import subprocess
import tempfile

from common import BIN, Sshd, build, current_user, sh, timed

REMOTE = "/lib/systemd/systemd-journal-remote"


def entries(first, n, out):
    """Export-format input: realistic sshd/sudo/kernel-like entries."""
    users = ["root", "deploy", "alice", "bob", "backup", "git", "www-data", "postgres"]
    with open(out, "wb") as f:
        buf = []
        for i in range(first, first + n):
            u = users[i % len(users)]
            t = 1764643200000000 + i * 250000
            buf.append(
                f"__REALTIME_TIMESTAMP={t}\n__MONOTONIC_TIMESTAMP={1000000 + i * 250000}\n"
                f"_BOOT_ID=0123456789abcdef0123456789abcdef\n_HOSTNAME=web1\n"
                f"_MACHINE_ID=fedcba9876543210fedcba9876543210\n_TRANSPORT=syslog\n"
                f"SYSLOG_FACILITY=4\nSYSLOG_IDENTIFIER=sshd\n_PID={300 + i % 60000}\n"
                f"_UID=0\n_GID=0\n_COMM=sshd\n_EXE=/usr/sbin/sshd\n"
                f"_SYSTEMD_UNIT=ssh.service\nPRIORITY=6\n"
                f"MESSAGE=Accepted publickey for {u} from 10.{i % 256}.{i // 256 % 256}.{i % 251} "
                f"port {1024 + i % 60000} ssh2: ED25519 SHA256:{i:016x}{i * 7919:016x}\n\n")
            if len(buf) >= 10000:
                f.write("".join(buf).encode())
                buf = []
        f.write("".join(buf).encode())


def write_journal(path, first, n, work):
    inp = os.path.join(work, "input.export")
    entries(first, n, inp)
    sh(f"{REMOTE} -o {path} - < {inp} 2>/dev/null")
    os.remove(inp)


def dir_mib(d):
    return sum(os.path.getsize(os.path.join(d, f)) for f in os.listdir(d)) / 2**20


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mib", type=int, default=1024)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()

    build()
    work = tempfile.mkdtemp(prefix="loghost-bench-journal-")
    sshd = None
    try:
        jdir = os.path.join(work, "journal")
        os.makedirs(jdir)
        live = os.path.join(jdir, "system.journal")
        print(f"writing a journal of about {args.mib} MiB with systemd-journal-remote ...",
              flush=True)
        n = 0
        per_batch = 400_000
        while dir_mib(jdir) < args.mib:
            write_journal(live, n, per_batch, work)
            n += per_batch
        files = len(os.listdir(jdir))
        size = dir_mib(jdir)
        print(f"  {n} entries in {files} files, {size:.0f} MiB", flush=True)

        etc = os.path.join(work, "etc")
        os.makedirs(etc)
        sshd = Sshd(work, "ForceCommand internal-sftp -R\n")
        config = os.path.join(etc, "loghost.toml")
        counter = [0]

        def fresh_store():
            counter[0] += 1
            with open(config, "w") as f:
                f.write(f'store = "{work}/store{counter[0]}"\n\n[[host]]\nname = "web1"\n'
                        f'address = "127.0.0.1:{sshd.port}"\nuser = "{current_user()}"\n'
                        f'journal_dirs = ["{jdir}"]\n')
            sh(f"{BIN} --config {config} init >/dev/null")
            shutil.copy(f"{etc}/id_ed25519.pub", f"{work}/authorized_keys")
            sh(f"{BIN} --config {config} trust web1 --fingerprint {sshd.fingerprint} >/dev/null")

        pull = [BIN, "--config", config, "pull"]
        first = {"loghost": [], "journalctl": []}
        peak = 0
        for _ in range(args.runs):
            fresh_store()
            dt, mem = timed(pull)
            first["loghost"].append(dt)
            peak = max(peak, mem)
            dt, _ = timed(f"journalctl --directory {jdir} -o export > /dev/null")
            first["journalctl"].append(dt)
        ratio1 = statistics.median(j / l for j, l in zip(first["journalctl"], first["loghost"]))
        print(f"first pull of {size:.0f} MiB ({n} entries), median of {args.runs}:")
        for k, v in first.items():
            print(f"  {k:<40} {statistics.median(v):7.2f} s  (runs: "
                  f"{', '.join('%.2f' % x for x in v)})")
        print(f"  journalctl time / loghost time: {ratio1:.2f} (goal >= 1.0)")
        print(f"  loghost pull peak RSS: {peak / 1024:.0f} MiB")

        # An idle round (nothing new): the fixed cost of a round (process, ledger, SSH session,
        # listing, re-checking each file's newest entry and its audit samples).
        idle = [timed(pull)[0] for _ in range(args.runs)]
        print(f"an idle round: {statistics.median(idle):.3f} s (runs: "
              f"{', '.join('%.3f' % x for x in idle)})")

        # Incremental rounds: 10,000 new entries each time.
        inc = {"loghost": [], "journalctl": []}
        for r in range(args.runs):
            cursor = subprocess.run(
                ["journalctl", "--file", live, "-n", "1", "-o", "export"],
                capture_output=True, text=True).stdout.split("\n")[0].split("=", 1)[1]
            write_journal(live, n, 10_000, work)
            n += 10_000
            dt, mem = timed(pull)
            inc["loghost"].append(dt)
            peak = max(peak, mem)
            dt, _ = timed(f"journalctl --file {live} --after-cursor '{cursor}' -o export "
                          f"> /dev/null")
            inc["journalctl"].append(dt)
        ratio2 = statistics.median(l / j for j, l in zip(inc["journalctl"], inc["loghost"]))
        print(f"a round after 10,000 new entries (journal of {dir_mib(jdir):.0f} MiB), "
              f"median of {args.runs}:")
        for k, v in inc.items():
            print(f"  {k:<40} {statistics.median(v):7.2f} s  (runs: "
                  f"{', '.join('%.3f' % x for x in v)})")
        print(f"  loghost time / journalctl time: {ratio2:.2f} (goal <= 2.0)")
        reading = statistics.median(inc["loghost"]) - statistics.median(idle)
        print(f"  loghost beyond an idle round: {reading:.3f} s, "
              f"{reading / statistics.median(inc['journalctl']):.2f} x journalctl")
        print(f"  peak RSS of all pulls: {peak / 1024:.0f} MiB")
    finally:
        if sshd:
            sshd.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
