//! Test harness: real OpenSSH `sshd` servers started as the current user on 127.0.0.1 with a
//! temporary host key and a `ForceCommand internal-sftp -R` (read-only) account, and the real
//! `loghost` binary run against them with a config in a temporary directory.
//!
//! Every server is stopped by PID when its [`Sshd`] is dropped.

#![allow(dead_code)]

use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};

pub const SSHD: &str = "/usr/sbin/sshd";

/// The binary under test; `LOGHOST_TEST_BIN` points elsewhere (scripts/soak.sh runs a copy, so
/// that a build meanwhile does not change it under the loop).
pub fn loghost_bin() -> &'static str {
    static BIN: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    BIN.get_or_init(|| {
        std::env::var("LOGHOST_TEST_BIN")
            .unwrap_or_else(|_| env!("CARGO_BIN_EXE_loghost").to_string())
    })
}

pub fn current_user() -> String {
    let out = Command::new("id").arg("-un").output().expect("run id -un");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A free TCP port on 127.0.0.1 (the listener is closed again; the small race is acceptable).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// A running OpenSSH server serving the filesystem read-only over SFTP.
pub struct Sshd {
    pub dir: tempfile::TempDir,
    pub port: u16,
    pub host_key: PathBuf,
    child: Child,
}

impl Sshd {
    /// Starts sshd accepting the keys in `authorized_keys`, with extra config lines.
    pub fn start(authorized_keys: &Path, extra: &str) -> Sshd {
        Self::start_with(authorized_keys, extra, None)
    }

    /// Like [`Sshd::start`], on a given port when `port` is set.
    pub fn start_with(authorized_keys: &Path, extra: &str, port: Option<u16>) -> Sshd {
        Self::start_opts(authorized_keys, extra, port, false)
    }

    /// Like [`Sshd::start`], with file permissions enforced even when the tests run as root
    /// (`unprivileged`: sshd and its sessions lose CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH,
    /// so a file its owner may not read cannot be read). `extra` may hold its own
    /// `ForceCommand` (e.g. a writable `internal-sftp`), which then replaces the read-only one.
    pub fn start_opts(
        authorized_keys: &Path,
        extra: &str,
        port: Option<u16>,
        unprivileged: bool,
    ) -> Sshd {
        assert!(
            Path::new(SSHD).exists(),
            "{SSHD} is missing: run the README's test command (scripts/test.sh), which installs \
             openssh-server"
        );
        if current_user() == "root" {
            // sshd's privilege separation directory, needed when it starts as root.
            let _ = std::fs::create_dir_all("/run/sshd");
        }
        let dir = tempfile::Builder::new()
            .prefix("loghost-sshd-")
            .tempdir()
            .expect("tempdir");
        let key = dir.path().join("host_ed25519");
        let st = Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-f"])
            .arg(&key)
            .status()
            .expect("ssh-keygen");
        assert!(st.success());
        let mut last_log = String::new();
        for _attempt in 0..5 {
            let port = port.unwrap_or_else(free_port);
            let config = dir.path().join("sshd_config");
            let text = format!(
                "ListenAddress 127.0.0.1:{port}\n\
                 HostKey {key}\n\
                 PidFile {dir}/sshd.pid\n\
                 AuthorizedKeysFile {ak}\n\
                 UsePAM no\n\
                 StrictModes no\n\
                 PasswordAuthentication no\n\
                 KbdInteractiveAuthentication no\n\
                 AuthenticationMethods publickey\n\
                 PermitRootLogin prohibit-password\n\
                 Subsystem sftp internal-sftp\n\
                 {force}\
                 DisableForwarding yes\n\
                 PermitTTY no\n\
                 LogLevel VERBOSE\n\
                 {extra}\n",
                key = key.display(),
                dir = dir.path().display(),
                ak = authorized_keys.display(),
                force = if extra.contains("ForceCommand") {
                    ""
                } else {
                    "ForceCommand internal-sftp -R\n"
                },
            );
            std::fs::write(&config, text).expect("write sshd_config");
            let log = dir.path().join("sshd.log");
            let mut command = if unprivileged && current_user() == "root" {
                let mut c = Command::new("setpriv");
                c.args(["--bounding-set", "-dac_override,-dac_read_search", SSHD]);
                c
            } else {
                Command::new(SSHD)
            };
            let mut child = command
                .arg("-D")
                .arg("-f")
                .arg(&config)
                .arg("-E")
                .arg(&log)
                .stdin(Stdio::null())
                .spawn()
                .expect("start sshd");
            if wait_ready(&mut child, port, &log) {
                return Sshd {
                    dir,
                    port,
                    host_key: key,
                    child,
                };
            }
            last_log = std::fs::read_to_string(&log).unwrap_or_default();
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("sshd did not start: {last_log}");
    }

    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `SHA256:…` of the host key, as `ssh-keygen -lf` prints it.
    pub fn fingerprint(&self) -> String {
        fingerprint_of(&self.host_key.with_extension("pub"))
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("sshd.log")).unwrap_or_default()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// True once this sshd listens: its own log says it bound the port (another test's sshd that
/// got the same free port would answer a connect too, while ours failed to bind), it still
/// runs, and a connection is accepted.
fn wait_ready(child: &mut Child, port: u16, log: &Path) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
    let bound = format!("Server listening on 127.0.0.1 port {port}");
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return false;
        }
        let ours = std::fs::read_to_string(log).is_ok_and(|l| l.contains(&bound));
        if ours && let Ok(s) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) {
            drop(s);
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

pub fn fingerprint_of(pub_key: &Path) -> String {
    let out = Command::new("ssh-keygen")
        .arg("-lf")
        .arg(pub_key)
        .output()
        .expect("ssh-keygen -lf");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .nth(1)
        .expect("fingerprint field")
        .to_string()
}

/// A loghost installation in a temporary directory: config, keys, store, and a "remote" tree of
/// log files that the test's sshd serves.
pub struct Env {
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    pub store: PathBuf,
    pub remote: PathBuf,
    /// `LOGHOST_FAKE_NOW` for every run that does not set its own (tests whose ledger is dated
    /// in the future: verify holds entries dated after its clock as problems).
    pub clock: std::sync::Mutex<Option<String>>,
}

/// One `[[host]]` of a test config.
pub struct HostSpec {
    pub name: String,
    pub address: String,
    pub paths: Vec<String>,
    pub snapshot: Vec<String>,
}

impl Env {
    pub fn new() -> Env {
        let dir = tempfile::Builder::new()
            .prefix("loghost-test-")
            .tempdir()
            .expect("tempdir");
        let remote = dir.path().join("remote");
        std::fs::create_dir_all(remote.join("var/log")).expect("mkdir remote");
        Env {
            config: dir.path().join("etc/loghost.toml"),
            store: dir.path().join("store"),
            remote,
            dir,
            clock: std::sync::Mutex::new(None),
        }
    }

    /// Runs every later command with this clock unless it sets its own.
    pub fn set_clock(&self, now: &str) {
        *self.clock.lock().expect("clock") = Some(now.to_string());
    }

    fn apply_clock(&self, cmd: &mut Command) {
        if let Some(now) = self.clock.lock().expect("clock").as_deref() {
            cmd.env("LOGHOST_FAKE_NOW", now);
        }
    }

    /// A remote path for a file under the test's remote tree.
    pub fn rpath(&self, rel: &str) -> String {
        self.remote.join(rel).display().to_string()
    }

    /// Writes the config with these hosts and extra top-level text.
    pub fn write_config(&self, hosts: &[HostSpec], extra: &str) {
        std::fs::create_dir_all(self.config.parent().expect("parent")).expect("mkdir etc");
        let mut text = format!("store = \"{}\"\n{extra}\n", self.store.display());
        for h in hosts {
            let list = |v: &[String]| {
                v.iter()
                    .map(|p| format!("{p:?}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            text.push_str(&format!(
                "\n[[host]]\nname = \"{}\"\naddress = \"{}\"\nuser = \"{}\"\npaths = [{}]\nsnapshot = [{}]\n",
                h.name,
                h.address,
                current_user(),
                list(&h.paths),
                list(&h.snapshot)
            ));
        }
        std::fs::write(&self.config, text).expect("write config");
    }

    pub fn identity_pub(&self) -> PathBuf {
        self.config.parent().expect("parent").join("id_ed25519.pub")
    }

    pub fn known_hosts(&self) -> PathBuf {
        self.config.parent().expect("parent").join("known_hosts")
    }

    /// Runs loghost with the env's config.
    pub fn run(&self, args: &[&str]) -> Output {
        self.run_env(args, &[])
    }

    pub fn run_env(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut cmd = Command::new(loghost_bin());
        cmd.arg("--config").arg(&self.config).args(args);
        self.apply_clock(&mut cmd);
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.output().expect("run loghost")
    }

    pub fn spawn(&self, args: &[&str], env: &[(&str, &str)]) -> Child {
        let mut cmd = Command::new(loghost_bin());
        cmd.arg("--config")
            .arg(&self.config)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        self.apply_clock(&mut cmd);
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.spawn().expect("spawn loghost")
    }

    /// `init`, then an sshd that accepts the loghost's key.
    pub fn init_and_start_sshd(&self, extra_sshd: &str) -> Sshd {
        if !self.config.exists() {
            self.write_config(&[], "");
        }
        let out = self.run(&["init"]);
        assert_ok(&out, "init");
        let ak = self.dir.path().join("authorized_keys");
        std::fs::copy(self.identity_pub(), &ak).expect("authorized_keys");
        Sshd::start(&ak, extra_sshd)
    }

    pub fn authorized_keys(&self) -> PathBuf {
        self.dir.path().join("authorized_keys")
    }

    pub fn trust(&self, host: &str, sshd: &Sshd) {
        let out = self.run(&["trust", host, "--fingerprint", &sshd.fingerprint()]);
        assert_ok(&out, "trust");
    }

    /// Decompressed content of every frame stored for `source`, via `loghost cat`.
    pub fn cat(&self, host: &str, source: &str) -> Vec<u8> {
        let out = self.run(&["cat", host, source]);
        assert_ok(&out, "cat");
        out.stdout
    }

    pub fn ledger(&self) -> Vec<serde_json::Value> {
        let text =
            std::fs::read_to_string(self.store.join("ledger/ledger.jsonl")).unwrap_or_default();
        text.lines()
            .map(|l| serde_json::from_str(l).expect("ledger line is JSON"))
            .collect()
    }

    pub fn frames_for(&self, source: &str) -> Vec<serde_json::Value> {
        self.ledger()
            .into_iter()
            .filter(|e| e["kind"] == "frame" && e["source"] == source)
            .collect()
    }

    /// Every regular file under the store's logs directory, store-relative.
    pub fn stored_files(&self) -> Vec<PathBuf> {
        let mut out = Vec::new();
        walk(&self.store.join("logs"), &mut out);
        out.iter()
            .map(|p| {
                p.strip_prefix(&self.store)
                    .expect("under store")
                    .to_path_buf()
            })
            .collect()
    }
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
            walk(&p, out);
        } else {
            out.push(p);
        }
    }
}

pub fn host<S: AsRef<str>>(name: &str, address: &str, paths: &[S]) -> HostSpec {
    HostSpec {
        name: name.to_string(),
        address: address.to_string(),
        paths: paths.iter().map(|p| p.as_ref().to_string()).collect(),
        snapshot: Vec::new(),
    }
}

pub fn text(out: &Output) -> String {
    format!(
        "status {:?}\n--- stdout\n{}\n--- stderr\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

pub fn assert_ok(out: &Output, what: &str) {
    assert!(out.status.success(), "{what} failed:\n{}", text(out));
}

/// Appends bytes to a file.
pub fn append(path: &Path, data: &[u8]) {
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(path)
        .expect("open for append");
    f.write_all(data).expect("append");
}

/// Realistic log lines, deterministic for a seed.
pub fn log_lines(seed: u64, n: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut out = Vec::with_capacity(n * 110);
    for i in 0..n {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let line = format!(
            "Nov 28 {:02}:{:02}:{:02} web1 sshd[{}]: Accepted publickey for user{} from 10.{}.{}.{} port {} ssh2: ED25519 SHA256:{:016x}\n",
            (i / 3600) % 24,
            (i / 60) % 60,
            i % 60,
            1000 + x % 50_000,
            x % 97,
            x % 256,
            (x >> 8) % 256,
            (x >> 16) % 256,
            30_000 + x % 30_000,
            x
        );
        out.extend_from_slice(line.as_bytes());
    }
    out
}

/// Decompresses a stored file with the stock tool (`zstdcat` or `zcat`).
pub fn stock_decompress(path: &Path) -> Vec<u8> {
    let tool = if path.extension().is_some_and(|e| e == "gz") {
        "zcat"
    } else {
        "zstdcat"
    };
    let out = Command::new(tool)
        .arg(path)
        .output()
        .expect("run the stock tool");
    assert!(out.status.success(), "{tool} failed: {}", text(&out));
    out.stdout
}

/// Every process below `pid` (children, grandchildren, …), from /proc.
pub fn descendants(pid: u32) -> Vec<u32> {
    let mut parent_of = Vec::new();
    if let Ok(rd) = std::fs::read_dir("/proc") {
        for e in rd.flatten() {
            let Some(p) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
                continue;
            };
            if let Ok(stat) = std::fs::read_to_string(format!("/proc/{p}/stat")) {
                // The field after the ")" that ends the command name: state, then ppid.
                let ppid = stat
                    .rsplit_once(')')
                    .and_then(|(_, rest)| rest.split_whitespace().nth(1))
                    .and_then(|v| v.parse::<u32>().ok());
                if let Some(ppid) = ppid {
                    parent_of.push((p, ppid));
                }
            }
        }
    }
    let mut out = Vec::new();
    let mut frontier = vec![pid];
    while let Some(p) = frontier.pop() {
        for &(child, parent) in &parent_of {
            if parent == p && !out.contains(&child) {
                out.push(child);
                frontier.push(child);
            }
        }
    }
    out
}

/// Freezes (SIGSTOP) the server side of `sshd`'s open connections until `child` exits, then
/// thaws them. Returns the child's output and how long it took to give up.
#[allow(dead_code)]
pub fn with_server_stalled(
    sshd: &Sshd,
    child: std::process::Child,
) -> (std::process::Output, std::time::Duration) {
    let frozen = descendants(sshd.pid());
    assert!(!frozen.is_empty(), "the connection's sshd processes");
    for p in &frozen {
        signal(*p, "STOP");
    }
    let started = std::time::Instant::now();
    let out = child.wait_with_output().expect("wait");
    let took = started.elapsed();
    for p in &frozen {
        signal(*p, "CONT");
    }
    (out, took)
}

pub fn signal(pid: u32, sig: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status();
}

/// A tmpfs mounted at a directory, unmounted on drop (also when the test fails).
#[allow(dead_code)]
pub struct Tmpfs(PathBuf);

#[allow(dead_code)]
impl Tmpfs {
    pub fn mount(at: &Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(at).expect("mkdir");
        let out = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(at)
            .output()
            .expect("run mount");
        assert!(
            out.status.success(),
            "cannot mount a tmpfs at {} (this test needs root, as in CI: run scripts/test.sh as \
             root): {}",
            at.display(),
            text(&out)
        );
        Tmpfs(at.to_path_buf())
    }

    pub fn resize(&self, size: &str) {
        let st = Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&self.0)
            .status()
            .expect("remount");
        assert!(st.success(), "remount failed");
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Lines that compress poorly, so a few MiB of log fill a small disk.
#[allow(dead_code)]
pub fn noisy_lines(seed: u64, n: usize) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::new();
    for i in 0..n {
        let mut line = format!("{i} ");
        for _ in 0..6 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            line.push_str(&format!("{x:016x}"));
        }
        line.push('\n');
        out.extend_from_slice(line.as_bytes());
    }
    out
}

/// A running `loghost tail -f`: its stdout lines and stderr lines as they come.
pub struct Follower {
    child: Child,
    out: std::sync::mpsc::Receiver<String>,
    err: std::sync::mpsc::Receiver<String>,
    /// Stderr lines read so far.
    pub errors: Vec<String>,
}

impl Follower {
    pub fn spawn(env: &Env, args: &[&str]) -> Follower {
        Follower::of(env.spawn(args, &[]))
    }

    /// With the config at `config` (a store not made by an `Env`, say the demo's).
    pub fn spawn_with(config: &Path, args: &[&str]) -> Follower {
        let child = Command::new(loghost_bin())
            .arg("--config")
            .arg(config)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn loghost");
        Follower::of(child)
    }

    fn of(mut child: Child) -> Follower {
        let lines = |r: Box<dyn std::io::Read + Send>| {
            let (tx, rx) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                use std::io::BufRead;
                for l in std::io::BufReader::new(r).lines() {
                    let Ok(l) = l else { break };
                    if tx.send(l).is_err() {
                        break;
                    }
                }
            });
            rx
        };
        let out = lines(Box::new(child.stdout.take().expect("stdout")));
        let err = lines(Box::new(child.stderr.take().expect("stderr")));
        Follower {
            child,
            out,
            err,
            errors: Vec::new(),
        }
    }

    /// The next `n` lines on stdout (fewer when 30 s pass first).
    pub fn lines(&mut self, n: usize) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut got = Vec::new();
        while got.len() < n {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.out.recv_timeout(left) {
                Ok(l) => got.push(l),
                Err(_) => break,
            }
        }
        got
    }

    /// Stdout lines that arrive within `wait` (none expected, say).
    pub fn more(&mut self, wait: Duration) -> Vec<String> {
        std::thread::sleep(wait);
        self.out.try_iter().collect()
    }

    /// Waits (30 s at most) for a stderr line containing `what`; true when one came.
    pub fn wait_error(&mut self, what: &str) -> bool {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if self.errors.iter().any(|e| e.contains(what)) {
                return true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match self.err.recv_timeout(left) {
                Ok(l) => self.errors.push(l),
                Err(_) => return false,
            }
        }
    }

    /// Stderr lines so far (those that arrive within 300 ms included).
    pub fn errors_now(&mut self) -> &[String] {
        std::thread::sleep(Duration::from_millis(300));
        self.errors.extend(self.err.try_iter());
        &self.errors
    }

    /// Its exit status, waiting at most 30 s (None: still running, or killed by a signal).
    pub fn wait_exit(&mut self) -> Option<i32> {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    /// Whether it is still running (a follower never ends by itself).
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Follower {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A test CA and the certificates it signs, as PEM files in a temporary directory.
pub struct Pki {
    pub dir: tempfile::TempDir,
    pub ca: CertifiedIssuer<'static, KeyPair>,
}

impl Pki {
    pub fn new(name: &str) -> Pki {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, format!("{name} test CA"));
        let ca =
            CertifiedIssuer::self_signed(params, KeyPair::generate().expect("key")).expect("CA");
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("ca.pem"), ca.pem()).expect("write CA");
        Pki { dir, ca }
    }

    pub fn ca_path(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// A certificate for `names` (SAN dNSNames), optionally already expired.
    pub fn issue(&self, file: &str, names: &[&str], expired: bool) -> (PathBuf, PathBuf) {
        let mut params =
            CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .expect("params");
        params
            .distinguished_name
            .push(DnType::CommonName, names.first().copied().unwrap_or("none"));
        if expired {
            params.not_before = rcgen::date_time_ymd(2020, 1, 1);
            params.not_after = rcgen::date_time_ymd(2021, 1, 1);
        }
        let key = KeyPair::generate().expect("key");
        let cert = params.signed_by(&key, &self.ca).expect("sign");
        let cert_path = self.dir.path().join(format!("{file}.pem"));
        let key_path = self.dir.path().join(format!("{file}.key"));
        std::fs::write(&cert_path, cert.pem()).expect("write cert");
        std::fs::write(&key_path, key.serialize_pem()).expect("write key");
        std::fs::set_permissions(
            &key_path,
            std::os::unix::fs::PermissionsExt::from_mode(0o600),
        )
        .expect("chmod key");
        (cert_path, key_path)
    }
}
