#!/usr/bin/env python3
"""RELP benchmark: rsyslog omrelp -> loghost against rsyslog omrelp -> rsyslog imrelp, in one run.

The same N lines (fixed length) are fed to a sending rsyslog (imfile -> omrelp, TLS with
certificate names checked), once to `loghost run` (relp_listen: each message answered only once
its frame and ledger entry are synced) and once to a receiving rsyslog (imrelp -> omfile, which
answers once a message is queued in memory), alternating round by round, for omrelp's default
window (128) and a large one (4096). A rate is N divided by the time from the sender's start
until the receiver has stored every message (loghost: its ledger covers them; rsyslog: its
output file holds them). Then the acknowledgement latency: a client here sends one message at a
time and waits for its `200 OK`, 2,000 times per server (median, p99).

    python3 bench/relp.py [--lines 200000] [--runs 3]

Needs: rsyslog and rsyslog-relp (scripts/test.sh installs them).
"""

import argparse
import os
import shutil
import socket
import ssl
import statistics
import subprocess
import tempfile
import time

from common import BIN, ROOT, free_port, loghost_stored, sh, start_receiver

LOAD = os.path.join(ROOT, "target", "release", "examples", "syslog_load")
PREFIX = "<134>1 - web1 app - - - "


def file_size(path):
    return os.path.getsize(path) if os.path.exists(path) else 0


def send(work, pki, port, lines_file, window, stored_fn, expected):
    """Runs a sending rsyslog until the receiver holds `expected` bytes; returns seconds."""
    d = tempfile.mkdtemp(dir=work, prefix="sender-")
    with open(os.path.join(d, "rsyslog.conf"), "w") as f:
        f.write(f'''global(workDirectory="{d}")
module(load="imfile")
module(load="omrelp")
template(name="t" type="string" string="{PREFIX}%msg%")
input(type="imfile" file="{lines_file}" tag="app" ruleset="out")
ruleset(name="out") {{
  action(type="omrelp" target="127.0.0.1" port="{port}" tls="on" windowSize="{window}"
         tls.caCert="{pki}/ca.pem" tls.myCert="{pki}/client.pem" tls.myPrivKey="{pki}/client.key"
         tls.authMode="name" tls.permittedPeer=["localhost"] template="t")
}}
''')
    t0 = time.perf_counter()
    p = subprocess.Popen(["/usr/sbin/rsyslogd", "-n", "-i", os.path.join(d, "pid"),
                          "-f", os.path.join(d, "rsyslog.conf")])
    try:
        deadline = t0 + 600
        while stored_fn() < expected:
            if time.perf_counter() > deadline:
                raise SystemExit(f"timed out: {stored_fn()} of {expected} bytes stored")
            time.sleep(0.005)
        return time.perf_counter() - t0
    finally:
        p.kill()
        p.wait()


def relp_latency(port, pki, n):
    """Sends n messages one at a time, each after the previous one's answer; latencies (s)."""
    ctx = ssl.create_default_context(cafile=f"{pki}/ca.pem")
    ctx.load_cert_chain(f"{pki}/client.pem", f"{pki}/client.key")
    s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port)), server_hostname="localhost")
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    offers = b"relp_version=0\nrelp_software=bench\ncommands=syslog"
    buf = b""

    def answer():
        nonlocal buf
        while b"\n" not in buf or not buf.split(b" ", 3)[2:]:
            buf += s.recv(65536)
        # TXNR rsp LEN DATA LF: read LEN bytes of data.
        head = buf.split(b" ", 3)
        length = int(head[2].split(b"\n")[0])
        need = len(head[0]) + len(head[1]) + len(head[2].split(b"\n")[0]) + 3 + length
        while len(buf) < need + (1 if length else 0):
            buf += s.recv(65536)
        frame, buf = buf[:need + (1 if length else 0)], buf[need + (1 if length else 0):]
        return frame

    s.sendall(b"1 open %d %s\n" % (len(offers), offers))
    assert b"200 OK" in answer()
    out = []
    for i in range(n):
        msg = b"%slatency probe %06d" % (PREFIX.encode(), i)
        t = time.perf_counter()
        s.sendall(b"%d syslog %d %s\n" % (i + 2, len(msg), msg))
        a = answer()
        out.append(time.perf_counter() - t)
        assert b"200 OK" in a, a
    s.close()
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--lines", type=int, default=200_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--latency", type=int, default=2000)
    args = ap.parse_args()
    sh("cargo build --release --quiet --example syslog_load", cwd=ROOT)
    sh("cargo build --release --quiet", cwd=ROOT)
    work = tempfile.mkdtemp(prefix="loghost-relpbench-")
    procs = []
    try:
        pki = os.path.join(work, "pki")
        sh(f"{LOAD} pki {pki}")
        lines_file = os.path.join(work, "input.log")
        with open(lines_file, "w") as f:
            for i in range(args.lines):
                f.write(f"line {i:09d} from the application: user{i % 17:02d} did a thing\n")
        per = len(PREFIX) + len("line 000000000 from the application: user00 did a thing") + 1
        # loghost
        lport, store, config, loghost = start_receiver(work, pki, "relp_listen")
        procs.append(loghost)
        # rsyslog imrelp -> omfile
        rport = free_port()
        rdir = os.path.join(work, "rsyslog")
        os.makedirs(rdir)
        out_file = os.path.join(rdir, "out.log")
        with open(os.path.join(rdir, "rsyslog.conf"), "w") as f:
            f.write(f'''global(workDirectory="{rdir}")
module(load="imrelp")
input(type="imrelp" port="{rport}" tls="on" tls.caCert="{pki}/ca.pem"
      tls.myCert="{pki}/server.pem" tls.myPrivKey="{pki}/server.key"
      tls.authMode="name" tls.permittedPeer=["web1.example.org"])
template(name="raw" type="string" string="%rawmsg%\\n")
action(type="omfile" file="{out_file}" template="raw")
''')
        rsyslog = subprocess.Popen(["/usr/sbin/rsyslogd", "-n", "-i", os.path.join(rdir, "pid"),
                                    "-f", os.path.join(rdir, "rsyslog.conf")])
        procs.append(rsyslog)
        time.sleep(2)
        done = {"rsyslog": 0, "loghost": 0}
        stored = {"rsyslog": lambda: file_size(out_file), "loghost": lambda: loghost_stored(store)}
        ports = {"rsyslog": rport, "loghost": lport}
        for window in (128, 4096):
            rates = {"rsyslog": [], "loghost": []}
            for _ in range(args.runs):
                for name in ("rsyslog", "loghost"):
                    done[name] += args.lines * per
                    dt = send(work, pki, ports[name], lines_file, window, stored[name], done[name])
                    rates[name].append(args.lines / dt)
            ratio = statistics.median(l / r for l, r in zip(rates["loghost"], rates["rsyslog"]))
            print(f"omrelp windowSize={window}: {args.lines} messages, median of {args.runs}")
            for name in ("rsyslog", "loghost"):
                print(f"  {name:<8} {statistics.median(rates[name]) / 1000:8.1f} k msg/s   "
                      f"(runs: {', '.join('%.1f' % (r / 1000) for r in rates[name])})")
            print(f"  loghost / rsyslog (median of per-round ratios): {ratio:.2f}   goal >= 1.0")
        for name in ("rsyslog", "loghost"):
            lat = sorted(relp_latency(ports[name], pki, args.latency))
            print(f"ack latency, {name:<8}: median {statistics.median(lat) * 1000:.2f} ms, "
                  f"p99 {lat[int(len(lat) * 0.99)] * 1000:.2f} ms  ({args.latency} messages, "
                  f"one at a time)")
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
