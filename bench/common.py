"""Helpers shared by the benchmark scripts: running and timing commands, and a real OpenSSH
sshd on 127.0.0.1 started as the current user and stopped by PID."""

import json
import os
import socket
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target", "release", "loghost")


def sh(cmd, **kw):
    return subprocess.run(cmd, shell=True, check=True, **kw)


def build():
    sh("cargo build --release --quiet", cwd=ROOT)


def timed(cmd):
    """Runs a command (a shell string, or an argv list run directly); returns (seconds, peak
    resident memory in KiB of the process itself, read from /proc while it runs; 0 for shell
    strings)."""
    t = time.perf_counter()
    p = subprocess.Popen(cmd, shell=isinstance(cmd, str), stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE)
    peak = 0
    while p.poll() is None:
        if not isinstance(cmd, str):
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
        sys.exit(f"failed ({p.returncode}): {cmd}\n{p.stderr.read().decode()}")
    return dt, peak


def loghost_stored(store):
    """Bytes of received messages the ledger covers."""
    total = 0
    path = os.path.join(store, "ledger", "ledger.jsonl")
    if not os.path.exists(path):
        return 0
    with open(path) as f:
        for line in f:
            if '"via":"tls"' in line:
                e = json.loads(line)
                total += e["end"] - e["start"]
    return total


def current_user():
    return subprocess.run(["id", "-un"], capture_output=True, text=True).stdout.strip()


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Sshd:
    """An sshd in `work` accepting the keys in `work/authorized_keys`; `extra` adds config
    lines. Stop it with stop()."""

    def __init__(self, work, extra=""):
        if os.geteuid() == 0:
            os.makedirs("/run/sshd", exist_ok=True)
        self.port = free_port()
        sh(f"ssh-keygen -q -t ed25519 -N '' -f {work}/hostkey")
        with open(f"{work}/sshd_config", "w") as f:
            f.write(f"ListenAddress 127.0.0.1:{self.port}\nHostKey {work}/hostkey\n"
                    f"PidFile {work}/sshd.pid\nAuthorizedKeysFile {work}/authorized_keys\n"
                    "UsePAM no\nStrictModes no\nPasswordAuthentication no\n"
                    "PermitRootLogin prohibit-password\nSubsystem sftp internal-sftp\n" + extra)
        self.proc = subprocess.Popen(["/usr/sbin/sshd", "-D", "-f", f"{work}/sshd_config",
                                      "-E", f"{work}/sshd.log"])
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        self.fingerprint = subprocess.run(["ssh-keygen", "-lf", f"{work}/hostkey.pub"],
                                          capture_output=True, text=True).stdout.split()[1]

    def stop(self):
        self.proc.kill()
        self.proc.wait()


def write_config(path, store, port, paths):
    """A one-host loghost config pulling `paths` from 127.0.0.1:port as the current user."""
    listed = ", ".join(f'"{p}"' for p in paths)
    with open(path, "w") as f:
        f.write(f'store = "{store}"\n\n[[host]]\nname = "web1"\naddress = "127.0.0.1:{port}"\n'
                f'user = "{current_user()}"\npaths = [{listed}]\n')


def start_receiver(work, pki, listen_key):
    """`loghost run` with a receiver on a free 127.0.0.1 port (`listen_key`: `listen` for syslog
    over TLS, `relp_listen` for RELP), the test PKI of `syslog_load pki`, one host web1 known by
    its certificate. Returns (port, store, config, process)."""
    port = free_port()
    store = os.path.join(work, "store")
    config = os.path.join(work, "loghost.toml")
    with open(config, "w") as f:
        f.write(f'store = "{store}"\n[receiver]\n{listen_key} = "127.0.0.1:{port}"\n'
                f'cert = "{pki}/server.pem"\nkey = "{pki}/server.key"\n'
                f'client_ca = "{pki}/ca.pem"\n'
                f'[[host]]\nname = "web1"\ntls_name = "web1.example.org"\n')
    sh(f"{BIN} --config {config} init >/dev/null")
    return port, store, config, subprocess.Popen([BIN, "--config", config, "-q", "run"])
