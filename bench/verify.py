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
import statistics
import tempfile

from common import BIN, Sshd, build, sh, timed, write_config

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--gib", type=float, default=2.0)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    build()
    work = tempfile.mkdtemp(prefix="loghost-vbench-")
    sshd = None
    try:
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
        sshd = Sshd(work, "ForceCommand internal-sftp -R\n")
        config = os.path.join(etc, "loghost.toml")
        write_config(config, store, sshd.port, [f"{remote}/*.log"])
        sh(f"{BIN} --config {config} init >/dev/null")
        shutil.copy(f"{etc}/id_ed25519.pub", f"{work}/authorized_keys")
        sh(f"{BIN} --config {config} trust web1 --fingerprint {sshd.fingerprint} >/dev/null")
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
            dt, _ = timed(f"sha256sum {files}")
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
            sshd.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
