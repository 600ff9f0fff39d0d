#!/usr/bin/env python3
"""Search benchmark: `loghost grep` against ripgrep and zstdcat|grep over the same store, in one
run, as ratios.

The store is built by loghost itself: --hosts hosts × --days days of one log each, pulled over
SFTP from an OpenSSH sshd on 127.0.0.1 (started here as the current user, stopped by PID) once
an hour of each day (the debug binary, whose LOGHOST_FAKE_NOW dates the rounds), --mib MiB of
raw log in all, lines dated RFC 3339 as rsyslog writes them. The searches run the release
binary, output to /dev/null, best of --runs:

1. A rare literal (a few hundred lines) and a common regex over the whole store:
   `loghost grep P` vs `rg -z P <stored files>` vs `zstdcat <stored files> | grep P`.
2. A one-hour window of one day vs the whole day: `loghost grep --since H --until H+1h P`
   vs `loghost grep --since D --until D+1 P`.

    python3 bench/search.py [--mib 2048] [--hosts 10] [--days 12] [--runs 3] [--keep DIR]

Needs: /usr/sbin/sshd, zstd, grep, ripgrep (installed with apt-get when missing and root).
"""

import argparse
import datetime
import glob
import os
import random
import shutil
import subprocess
import tempfile

from common import BIN, ROOT, Sshd, build, current_user, sh, timed

DEBUG_BIN = os.path.join(ROOT, "target", "debug", "loghost")
START = datetime.datetime(2026, 11, 1, tzinfo=datetime.timezone.utc)


def hour_lines(rng, host, t0, n):
    """n lines of one hour from t0, rsyslog's RFC 3339 format, sshd/nginx/kernel-like."""
    users = ["root", "deploy", "alice", "bob", "backup", "git", "www-data", "postgres"]
    step = 3600.0 / n
    out = []
    for i in range(n):
        t = t0 + datetime.timedelta(seconds=i * step)
        ts = t.strftime("%Y-%m-%dT%H:%M:%S.%f") + "+00:00"
        k = rng.random()
        if k < 0.0004:
            msg = (f"sshd[{rng.randrange(1000, 60000)}]: Failed password for invalid user "
                   f"oracle from 198.51.100.{rng.randrange(256)} port {rng.randrange(1024, 65535)}")
        elif k < 0.5:
            msg = (f"nginx: 10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(256)} - - "
                   f"\"GET /api/v1/items/{rng.randrange(100000)} HTTP/1.1\" "
                   f"{rng.choice([200, 200, 200, 304, 404, 500])} {rng.randrange(100, 90000)} "
                   f"\"-\" \"Mozilla/5.0 (X11; Linux x86_64)\"")
        elif k < 0.8:
            msg = (f"sshd[{rng.randrange(1000, 60000)}]: Accepted publickey for "
                   f"{rng.choice(users)} from 10.{rng.randrange(256)}.{rng.randrange(256)}."
                   f"{rng.randrange(256)} port {rng.randrange(1024, 65535)} ssh2: ED25519 "
                   f"SHA256:{rng.getrandbits(64):016x}")
        else:
            msg = (f"kernel: [{rng.randrange(10**6)}.{rng.randrange(10**6):06d}] "
                   f"IN=eth0 OUT= MAC=52:54:00:{rng.randrange(256):02x}:00:01 "
                   f"SRC=203.0.113.{rng.randrange(256)} DST=10.0.0.1 LEN=60 PROTO=TCP "
                   f"DPT={rng.randrange(1, 65535)}")
        out.append(f"{ts} {host} {msg}\n")
    return "".join(out).encode()


def build_store(work, args):
    remote = os.path.join(work, "remote")
    store = os.path.join(work, "store")
    config = os.path.join(work, "loghost.toml")
    sshd = Sshd(work)
    hosts = [f"web{h:02d}" for h in range(args.hosts)]
    with open(config, "w") as f:
        f.write(f'store = "{store}"\n')
        for h in hosts:
            os.makedirs(os.path.join(remote, h), exist_ok=True)
            f.write(f'\n[[host]]\nname = "{h}"\naddress = "127.0.0.1:{sshd.port}"\n'
                    f'user = "{current_user()}"\npaths = ["{remote}/{h}/app.log"]\n')
    env = dict(os.environ, LOGHOST_FAKE_NOW=START.strftime("%Y-%m-%dT00:00:00Z"))
    sh(f"{DEBUG_BIN} --config {config} -q init", env=env, stdout=subprocess.DEVNULL)
    shutil.copy(os.path.join(work, "id_ed25519.pub"), os.path.join(work, "authorized_keys"))
    for h in hosts:
        sh(f"{DEBUG_BIN} --config {config} -q trust {h} --fingerprint {sshd.fingerprint}",
           env=env, stdout=subprocess.DEVNULL)
    per_hour = int(args.mib * 2**20 / 148 / (args.hosts * args.days * 24))
    rng = random.Random(7)
    for d in range(args.days):
        for hour in range(24):
            t0 = START + datetime.timedelta(days=d, hours=hour)
            for h in hosts:
                with open(os.path.join(remote, h, "app.log"), "ab") as f:
                    f.write(hour_lines(rng, h, t0, per_hour))
            now = (t0 + datetime.timedelta(minutes=59, seconds=30)).strftime("%Y-%m-%dT%H:%M:%SZ")
            env["LOGHOST_FAKE_NOW"] = now
            sh(f"{DEBUG_BIN} --config {config} -q pull", env=env)
        print(f"  day {d + 1}/{args.days} pulled", flush=True)
    sshd.stop()
    shutil.rmtree(remote)
    return config, store


def best(cmd, runs):
    return min(timed(cmd)[0] for _ in range(runs))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mib", type=int, default=2048)
    ap.add_argument("--hosts", type=int, default=10)
    ap.add_argument("--days", type=int, default=12)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--keep", help="build the store here (or reuse the one already there)")
    args = ap.parse_args()
    if shutil.which("rg") is None:
        if os.geteuid() != 0:
            raise SystemExit("ripgrep is needed: apt-get install ripgrep")
        sh("apt-get install -y -qq ripgrep >/dev/null")
    build()
    sh("cargo build --quiet", cwd=ROOT)
    work = args.keep or tempfile.mkdtemp(prefix="loghost-bench-search-")
    os.makedirs(work, exist_ok=True)
    try:
        config = os.path.join(work, "loghost.toml")
        store = os.path.join(work, "store")
        if not os.path.exists(os.path.join(store, "ledger")):
            print(f"building a store of {args.mib} MiB raw in {args.hosts * args.days} host-days "
                  f"...", flush=True)
            config, store = build_store(work, args)
        files = sorted(glob.glob(f"{store}/logs/**/*.zst", recursive=True))
        packed = sum(os.path.getsize(f) for f in files)
        raw = int(subprocess.run(f"zstdcat {' '.join(files)} | wc -c", shell=True,
                                 capture_output=True, text=True).stdout)
        print(f"store: {len(files)} stored files (host-days), {raw / 2**20:.0f} MiB raw, "
              f"{packed / 2**20:.0f} MiB stored, {os.cpu_count()} cores")
        listed = " ".join(files)
        lh = f"{BIN} --config {config}"
        rows = []
        for name, pat, flags in [("rare literal", "invalid user oracle", "-F"),
                                 ("common regex", r'HTTP/1\.1" 50[0-9]', "")]:
            q = f"'{pat}'"
            t_lh = best(f"{lh} grep {flags} {q} > /dev/null", args.runs)
            t_rg = best(f"rg -z --no-filename {flags} {q} {listed} > /dev/null", args.runs)
            t_zg = best(f"zstdcat {listed} | grep {flags or '-E'} {q} > /dev/null", args.runs)
            n = subprocess.run(f"{lh} grep -c {flags} {q}", shell=True, capture_output=True,
                               text=True).stdout
            count = sum(int(l.rsplit(":", 1)[1]) for l in n.splitlines() if ":" in l)
            rows.append((name, count, t_lh, t_rg, t_zg))
        mid = START + datetime.timedelta(days=args.days // 2)
        day = (f"--since {mid.strftime('%Y-%m-%d')} --until "
               f"{(mid + datetime.timedelta(days=1)).strftime('%Y-%m-%d')}")
        hour = (f"--since {(mid + datetime.timedelta(hours=14)).strftime('%Y-%m-%dT%H:%M:%SZ')} "
                f"--until {(mid + datetime.timedelta(hours=15)).strftime('%Y-%m-%dT%H:%M:%SZ')}")
        t_day = best(f"{lh} grep {day} 'invalid user oracle' > /dev/null", args.runs)
        t_hour = best(f"{lh} grep {hour} 'invalid user oracle' > /dev/null", args.runs)

        print(f"\n| search | lines | loghost grep | rg -z | zstdcat \\| grep | vs rg -z | "
              f"vs zstdcat\\|grep |")
        print("|---|---|---|---|---|---|---|")
        for name, count, a, b, c in rows:
            print(f"| {name} | {count} | {a:.2f} s | {b:.2f} s | {c:.2f} s | "
                  f"**{b / a:.2f}×** | **{c / a:.2f}×** |")
        print(f"\n| window | loghost grep |\n|---|---|\n| one day | {t_day:.3f} s |\n"
              f"| one hour of it | {t_hour:.3f} s |\n| ratio | **{t_day / t_hour:.1f}×** |")
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
