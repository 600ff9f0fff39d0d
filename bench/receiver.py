#!/usr/bin/env python3
"""Receiver benchmark: loghost against rsyslog as a syslog-over-TLS server, in one run.

The same mutual-TLS stream of ~200-byte octet-counted RFC 5424 messages, on 2 connections, goes to
  - rsyslog (imtcp with the gtls driver, x509/name, writing the messages to per-host files), and
  - `loghost run` (every message stored in a compressed frame, hashed, in the ledger, synced),
alternating round by round. A rate is messages divided by the time from the first byte sent until
the server has stored every message (rsyslog: its output file holds them all; loghost: its
ledger covers them all). Both servers run on 127.0.0.1, started here and stopped by PID.

    python3 bench/receiver.py [--messages 1000000] [--runs 3]

Needs: rsyslog and rsyslog-gnutls (scripts/test.sh installs them).
"""

import argparse
import os
import shutil
import statistics
import subprocess
import tempfile
import time

from common import BIN, ROOT, free_port, loghost_stored, sh, start_receiver

LOAD = os.path.join(ROOT, "target", "release", "examples", "syslog_load")


def rsyslog_stored(outdir):
    total = 0
    for name in os.listdir(outdir):
        total += os.path.getsize(os.path.join(outdir, name))
    return total


def run_load(port, pki, messages, per_record, stored_fn, expected_before):
    t0 = time.perf_counter()
    out = subprocess.run([LOAD, "send", str(port), pki, "2", str(messages)]
                         + (["--per-record"] if per_record else []),
                         capture_output=True, text=True, check=True)
    expected = expected_before + int(out.stdout.strip())
    deadline = time.perf_counter() + 300
    while stored_fn() < expected:
        if time.perf_counter() > deadline:
            raise SystemExit(f"timed out: {stored_fn()} of {expected} bytes stored")
        time.sleep(0.01)
    return time.perf_counter() - t0, expected


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=1_000_000, help="per connection")
    ap.add_argument("--per-record-messages", type=int, default=100_000, help="per connection")
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    sh("cargo build --release --quiet --example syslog_load", cwd=ROOT)
    sh("cargo build --release --quiet", cwd=ROOT)
    work = tempfile.mkdtemp(prefix="loghost-rbench-")
    procs = []
    try:
        pki = os.path.join(work, "pki")
        sh(f"{LOAD} pki {pki}")
        # loghost
        lport, store, config, loghost = start_receiver(work, pki, "listen")
        procs.append(loghost)
        # rsyslog
        rport = free_port()
        rdir = os.path.join(work, "rsyslog")
        outdir = os.path.join(rdir, "out")
        os.makedirs(outdir)
        with open(os.path.join(rdir, "rsyslog.conf"), "w") as f:
            f.write(f'''global(workDirectory="{rdir}"
       defaultNetstreamDriver="gtls"
       defaultNetstreamDriverCAFile="{pki}/ca.pem"
       defaultNetstreamDriverCertFile="{pki}/server.pem"
       defaultNetstreamDriverKeyFile="{pki}/server.key")
module(load="imtcp" streamDriver.name="gtls" streamDriver.mode="1"
       streamDriver.authMode="x509/name" permittedPeer=["web1.example.org"])
input(type="imtcp" port="{rport}")
template(name="perhost" type="string" string="{outdir}/%hostname%.log")
template(name="raw" type="string" string="%rawmsg%\\n")
action(type="omfile" dynaFile="perhost" template="raw")
''')
        rsyslog = subprocess.Popen(["/usr/sbin/rsyslogd", "-n", "-i", os.path.join(rdir, "pid"),
                                    "-f", os.path.join(rdir, "rsyslog.conf")])
        procs.append(rsyslog)
        time.sleep(2)
        results = {}
        for per_record, n in [(False, args.messages), (True, args.per_record_messages)]:
            mode = "one TLS record per message" if per_record else "large TLS records"
            rates = {"rsyslog": [], "loghost": []}
            done = {"rsyslog": 0, "loghost": 0}
            for _ in range(args.runs):
                for name, port, fn in [("rsyslog", rport, lambda: rsyslog_stored(outdir)),
                                       ("loghost", lport, lambda: loghost_stored(store))]:
                    dt, done[name] = run_load(port, pki, n, per_record, fn, done[name])
                    rates[name].append(2 * n / dt)
            results[mode] = rates
            ratio = statistics.median(l / r for l, r in zip(rates["loghost"], rates["rsyslog"]))
            print(f"{mode}: 2 connections x {n} messages, median of {args.runs}")
            for name in ("rsyslog", "loghost"):
                print(f"  {name:<8} {statistics.median(rates[name]) / 1000:8.0f} k msg/s   "
                      f"(runs: {', '.join('%.0f' % (r / 1000) for r in rates[name])})")
            print(f"  loghost / rsyslog (median of per-round ratios): {ratio:.2f}"
                  + ("   goal >= 1.3" if not per_record else ""))
        loghost.terminate()
        loghost.wait()
        verify = subprocess.run([BIN, "--config", config, "verify"], capture_output=True, text=True)
        print("loghost verify after the run:", verify.stdout.strip().splitlines()[-1])
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
