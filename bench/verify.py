#!/usr/bin/env python3
"""Verify benchmark: `loghost verify` against `sha256sum` over the same stored files, in one run.

Builds a store of about --gib GiB by pulling incompressible files from a real sshd on 127.0.0.1
(started here, stopped by PID), then times, interleaved round by round:
  - `loghost verify` (every frame hashed, ledger and checkpoints recomputed),
  - `sha256sum` over the same stored files,
both with the files in the page cache. Reports GiB/s of stored data, the median per-round ratio,
and verify's peak memory.

    python3 bench/verify.py [--gib 2] [--runs 3]
"""

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target", "release", "loghost")


def sh(cmd, **kw):
    return subprocess.run(cmd, shell=True, check=True, **kw)


def timed(argv, shell=False):
    """Seconds and peak resident KiB (read from /proc while it runs) of one command."""
    t = time.perf_counter()
    p = subprocess.Popen(argv, shell=shell, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    peak = 0
    while p.poll() is None:
        try:
            with open(f"/proc/{p.pid}/status") as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        peak = max(peak, int(line.split()[1]))
        except OSError:
            pass
        time.sleep(0.005)
    dt = time.perf_counter() - t
    if p.returncode != 0:
        sys.exit(f"failed ({p.returncode}): {argv}\n{p.stderr.read().decode()}")
    return dt, peak


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--gib", type=float, default=2.0)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    sh("cargo build --release --quiet", cwd=ROOT)
    work = tempfile.mkdtemp(prefix="loghost-vbench-")
    sshd = None
    try:
        user = subprocess.run(["id", "-un"], capture_output=True, text=True).stdout.strip()
        if os.geteuid() == 0:
            os.makedirs("/run/sshd", exist_ok=True)
        remote = os.path.join(work, "remote")
        os.makedirs(remote)
        nfiles = 4
        per_file = int(args.gib * 1024 / nfiles)
        print(f"writing {nfiles} x {per_file} MiB of incompressible data ...", flush=True)
        for i in range(nfiles):
            sh(f"head -c {per_file}M /dev/urandom > {remote}/data{i}.log")
        etc = os.path.join(work, "etc")
        os.makedirs(etc)
        store = os.path.join(work, "store")
        sh(f"ssh-keygen -q -t ed25519 -N '' -f {work}/hostkey")
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        config = os.path.join(etc, "loghost.toml")
        with open(config, "w") as f:
            f.write(f'store = "{store}"\n\n[[host]]\nname = "web1"\naddress = "127.0.0.1:{port}"\n'
                    f'user = "{user}"\npaths = ["{remote}/*.log"]\n')
        sh(f"{BIN} --config {config} init >/dev/null")
        shutil.copy(f"{etc}/id_ed25519.pub", f"{work}/authorized_keys")
        with open(f"{work}/sshd_config", "w") as f:
            f.write(f"ListenAddress 127.0.0.1:{port}\nHostKey {work}/hostkey\n"
                    f"PidFile {work}/sshd.pid\nAuthorizedKeysFile {work}/authorized_keys\n"
                    "UsePAM no\nStrictModes no\nPermitRootLogin prohibit-password\n"
                    "Subsystem sftp internal-sftp\nForceCommand internal-sftp -R\n")
        sshd = subprocess.Popen(["/usr/sbin/sshd", "-D", "-f", f"{work}/sshd_config",
                                 "-E", f"{work}/sshd.log"])
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), 0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        fp = subprocess.run(["ssh-keygen", "-lf", f"{work}/hostkey.pub"],
                            capture_output=True, text=True).stdout.split()[1]
        sh(f"{BIN} --config {config} trust web1 --fingerprint {fp} >/dev/null")
        print("pulling them into the store ...", flush=True)
        sh(f"{BIN} --config {config} pull")
        stored = []
        for dirpath, _, names in os.walk(os.path.join(store, "logs")):
            stored += [os.path.join(dirpath, n) for n in names]
        total = sum(os.path.getsize(p) for p in stored)
        gib = total / 2**30
        print(f"store: {len(stored)} files, {gib:.2f} GiB stored", flush=True)
        files = " ".join(stored)
        # Warm the page cache for both.
        sh(f"cat {files} > /dev/null")
        samples = {"loghost verify": [], "sha256sum": []}
        peak = 0
        for _ in range(args.runs):
            dt, mem = timed([BIN, "--config", config, "verify"])
            samples["loghost verify"].append(dt)
            peak = max(peak, mem)
            dt, _ = timed(f"sha256sum {files}", shell=True)
            samples["sha256sum"].append(dt)
        for name, times in samples.items():
            med = statistics.median(times)
            print(f"  {name:<16} {med:6.2f} s  {gib / med:5.2f} GiB/s   "
                  f"(runs: {', '.join('%.2f' % t for t in times)})")
        ratio = statistics.median(
            s / v for v, s in zip(samples["loghost verify"], samples["sha256sum"]))
        print(f"sha256sum time / loghost verify time (median per round): {ratio:.2f}  (goal > 1)")
        print(f"loghost verify: {gib / statistics.median(samples['loghost verify']):.2f} GiB/s "
              f"(goal >= 1), peak RSS {peak / 1024:.1f} MiB")
    finally:
        if sshd:
            sshd.kill()
            sshd.wait()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
