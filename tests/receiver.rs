//! The syslog-over-TLS receiver (`loghost run`), against the real rsyslog as a TLS forwarder and
//! against hostile clients written here with rustls. Test certificates are generated per test
//! (rcgen); nothing is checked in.

#![allow(unsafe_code)] // setrlimit, to hold a thousand sockets open in this test process

mod common;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;

/// A running `loghost run` with a receiver on its own port.
struct Daemon {
    env: Env,
    pki: Pki,
    port: u16,
    /// RELP over TLS (`relp_listen`).
    relp_port: u16,
    child: Option<Child>,
    extra: String,
}

impl Daemon {
    fn start(extra: &str) -> Daemon {
        Daemon::start_with(extra, |_| {})
    }

    /// Starts after `prepare` has seen the test's paths (to mount something at the store, say).
    fn start_with(extra: &str, prepare: impl FnOnce(&Env)) -> Daemon {
        let env = Env::new();
        prepare(&env);
        let pki = Pki::new("loghost");
        let (cert, key) = pki.issue("server", &["localhost", "127.0.0.1"], false);
        std::fs::create_dir_all(env.config.parent().expect("etc")).expect("mkdir");
        let port = free_port();
        let relp_port = loop {
            let p = free_port();
            if p != port {
                break p;
            }
        };
        let config = format!(
            "store = \"{}\"\n{extra}\n\
             [receiver]\nlisten = \"127.0.0.1:{port}\"\nrelp_listen = \"127.0.0.1:{relp_port}\"\ncert = \"{}\"\nkey = \"{}\"\nclient_ca = \"{}\"\n\
             idle_timeout = \"3s\"\nhandshake_timeout = \"3s\"\nmax_message_size = 8192\n\
             [[host]]\nname = \"web1\"\ntls_name = \"web1.example.org\"\n\
             [[host]]\nname = \"db1\"\ntls_name = \"db1.example.org\"\n",
            env.store.display(),
            cert.display(),
            key.display(),
            pki.ca_path().display()
        );
        std::fs::write(&env.config, config).expect("write config");
        assert_ok(&env.run(&["init"]), "init");
        let mut d = Daemon {
            env,
            pki,
            port,
            relp_port,
            child: None,
            extra: extra.to_string(),
        };
        d.spawn();
        d
    }

    fn spawn(&mut self) {
        let child = Command::new(loghost_bin())
            .arg("--config")
            .arg(&self.env.config)
            .arg("run")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start loghost run");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(15);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "the receiver did not start listening"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM, then the exit status and what it logged.
    fn stop(&mut self) -> std::process::Output {
        let child = self.child.take().expect("running");
        signal(child.id(), "TERM");
        child.wait_with_output().expect("wait")
    }

    fn kill9(&mut self) {
        let mut child = self.child.take().expect("running");
        let _ = child.kill();
        let _ = child.wait();
    }

    fn client(&self, name: &str) -> Client {
        let (cert, key) = self.pki.issue(name, &[name], false);
        Client::connect(self.port, &self.pki.ca_path(), Some((&cert, &key))).expect("connect")
    }

    /// The messages stored for `host`, unescaped, in order.
    fn stored(&self, host: &str) -> Vec<String> {
        let out = self.env.run(&["cat", host, "syslog-tls"]);
        if !out.status.success() {
            return Vec::new();
        }
        out.stdout
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| {
                String::from_utf8_lossy(&loghost::receive::syslog::unescape_line(l)).into_owned()
            })
            .collect()
    }

    /// Waits until `host` has at least `n` stored messages.
    fn wait_stored(&self, host: &str, n: usize) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let got = self.stored(host);
            if got.len() >= n || Instant::now() > deadline {
                return got;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Daemon {
    /// Rewrites the config (same receiver) with extra lines for host web1, and restarts.
    fn restart_with(&mut self, receiver_extra: &str, web1_extra: &str) {
        let _ = self.stop();
        let text = std::fs::read_to_string(&self.env.config).expect("config");
        let text = text
            .replace(
                "max_message_size = 8192\n",
                &format!("max_message_size = 8192\n{receiver_extra}\n"),
            )
            .replace(
                "tls_name = \"web1.example.org\"\n",
                &format!("tls_name = \"web1.example.org\"\n{web1_extra}\n"),
            );
        std::fs::write(&self.env.config, text).expect("write config");
        self.spawn();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A TLS client (rustls), blocking.
struct Client {
    tls: rustls::StreamOwned<rustls::ClientConnection, TcpStream>,
}

impl Client {
    fn connect(port: u16, ca: &Path, auth: Option<(&Path, &Path)>) -> Result<Client, String> {
        Self::connect_with(port, ca, auth, false)
    }

    fn connect_with(
        port: u16,
        ca: &Path,
        auth: Option<(&Path, &Path)>,
        tls12_only: bool,
    ) -> Result<Client, String> {
        use rustls_pki_types::pem::PemObject;
        use rustls_pki_types::{CertificateDer, PrivateKeyDer};
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        for c in CertificateDer::pem_file_iter(ca).expect("ca") {
            roots.add(c.expect("ca pem")).expect("add ca");
        }
        let versions: &[&rustls::SupportedProtocolVersion] = if tls12_only {
            &[&rustls::version::TLS12]
        } else {
            &[&rustls::version::TLS13, &rustls::version::TLS12]
        };
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(versions)
            .expect("versions")
            .with_root_certificates(roots);
        let config = match auth {
            Some((cert, key)) => builder
                .with_client_auth_cert(
                    CertificateDer::pem_file_iter(cert)
                        .expect("cert")
                        .collect::<Result<Vec<_>, _>>()
                        .expect("pem"),
                    PrivateKeyDer::from_pem_file(key).expect("key"),
                )
                .expect("client auth"),
            None => builder.with_no_client_auth(),
        };
        let conn = rustls::ClientConnection::new(
            Arc::new(config),
            "localhost".try_into().expect("server name"),
        )
        .map_err(|e| e.to_string())?;
        let sock = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
        sock.set_read_timeout(Some(Duration::from_secs(10))).ok();
        let mut tls = rustls::StreamOwned::new(conn, sock);
        // Complete the handshake now; with TLS 1.3 a refused client certificate shows on the
        // first read after it.
        while tls.conn.is_handshaking() {
            tls.conn
                .complete_io(&mut tls.sock)
                .map_err(|e| e.to_string())?;
        }
        Ok(Client { tls })
    }

    fn send(&mut self, data: &[u8]) -> std::io::Result<()> {
        self.tls.write_all(data)?;
        self.tls.flush()
    }

    /// Octet-counted frames of the messages, in one write.
    fn send_messages(&mut self, msgs: &[String]) -> std::io::Result<()> {
        let mut out = Vec::new();
        for m in msgs {
            out.extend_from_slice(format!("{} {m}", m.len()).as_bytes());
        }
        self.send(&out)
    }

    /// True when the server ended the connection (EOF or a TLS alert) within the timeout.
    fn closed_by_server(&mut self, within: Duration) -> bool {
        self.tls.sock.set_read_timeout(Some(within)).ok();
        let mut b = [0u8; 64];
        match self.tls.read(&mut b) {
            Ok(0) => true,
            Ok(_) => false,
            Err(e) => !matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ),
        }
    }
}

/// rsyslogd in the foreground with `conf`, its pid file in `work`, stderr kept for failures.
fn start_rsyslogd(rsyslogd: &Path, work: &Path, conf: &Path) -> Child {
    Command::new(rsyslogd)
        .args(["-n", "-i"])
        .arg(work.join("rsyslog.pid"))
        .arg("-f")
        .arg(conf)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start rsyslogd")
}

/// The sequence number in a test message.
fn seq_of(m: &str) -> usize {
    m.split("seq=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(usize::MAX)
}

/// Compares message lists and reports the first difference briefly (not both lists).
fn same(got: &[String], want: &[String], what: &str) {
    if got == want {
        return;
    }
    let i = got
        .iter()
        .zip(want)
        .position(|(a, b)| a != b)
        .unwrap_or(got.len().min(want.len()));
    panic!(
        "{what}: {} messages stored, {} expected; first difference at {i}:\n got  {:?}\n want {:?}",
        got.len(),
        want.len(),
        got.get(i),
        want.get(i)
    );
}

fn messages(host: &str, from: usize, n: usize) -> Vec<String> {
    (from..from + n)
        .map(|i| {
            format!(
                "<134>1 2026-11-28T10:00:00.123456Z {host} app 4242 ID{} [meta@1 seq=\"{i}\"] \
                 message number {i}: user alice logged in from 203.0.113.{}",
                i % 100,
                i % 250
            )
        })
        .collect()
}

#[test]
fn messages_are_stored_under_the_certificate_host_and_hostname_mismatches_counted() {
    let mut d = Daemon::start("");
    let mut web = d.client("web1.example.org");
    let mut msgs = messages("web1", 0, 100);
    // A client with web1's certificate claims to be db1: stored as web1, counted.
    msgs.extend(messages("db1", 100, 5));
    // LF framing and RFC 3164 work too, and control characters are escaped on disk.
    web.send_messages(&msgs).expect("send");
    web.send(b"<13>Nov 28 10:00:00 web1 app: bsd style\n<13>bell\x07 and tab\t\n")
        .expect("send lf");
    let stored = d.wait_stored("web1", 107);
    let mut want = msgs.clone();
    want.push("<13>Nov 28 10:00:00 web1 app: bsd style".into());
    want.push("<13>bell\x07 and tab\t".into());
    same(&stored, &want, "stored under the certificate's host");
    assert!(
        d.stored("db1").is_empty(),
        "HOSTNAME never decides where bytes go"
    );
    let raw = d.env.run(&["cat", "web1", "syslog-tls"]).stdout;
    assert!(
        String::from_utf8_lossy(&raw).contains("<13>bell#007 and tab#011"),
        "rsyslog-style escaping on disk"
    );
    drop(web);
    let out = d.stop();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let status = d.env.run(&["status", "--json"]);
    let json: serde_json::Value = serde_json::from_slice(&status.stdout).expect("json");
    let web1 = &json["receiver"]["hosts"]["web1"];
    assert_eq!(web1["messages"], 107, "{json}");
    assert_eq!(web1["hostname_mismatch"], 5, "{json}");
    assert_eq!(web1["rfc5424"], 105, "{json}");
    assert_ok(&d.env.run(&["verify", "--deep"]), "verify");
}

#[test]
fn clients_without_a_good_certificate_are_refused() {
    let mut d = Daemon::start("");
    // No certificate, one from another CA, an expired one, and a valid one naming no host.
    assert!(
        Client::connect(d.port, &d.pki.ca_path(), None)
            .map(|mut c| c.send(b"5 <1>no").is_err() || c.closed_by_server(Duration::from_secs(5)))
            .unwrap_or(true)
    );
    let other = Pki::new("intruder");
    let (cert, key) = other.issue("web1", &["web1.example.org"], false);
    assert!(
        Client::connect(d.port, &d.pki.ca_path(), Some((&cert, &key)))
            .map(|mut c| c.send(b"5 <1>no").is_err() || c.closed_by_server(Duration::from_secs(5)))
            .unwrap_or(true)
    );
    let (cert, key) = d.pki.issue("expired", &["web1.example.org"], true);
    assert!(
        Client::connect(d.port, &d.pki.ca_path(), Some((&cert, &key)))
            .map(|mut c| c.send(b"5 <1>no").is_err() || c.closed_by_server(Duration::from_secs(5)))
            .unwrap_or(true)
    );
    let mut stranger = d.client("stranger.example.org");
    let _ = stranger.send(b"5 <1>no");
    assert!(stranger.closed_by_server(Duration::from_secs(5)));
    // The receiver still serves good clients.
    let mut web = d.client("web1.example.org");
    web.send_messages(&messages("web1", 0, 3)).expect("send");
    assert_eq!(d.wait_stored("web1", 3).len(), 3);
    let out = d.stop();
    assert_eq!(out.status.code(), Some(0));
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(
        log.contains("refused 127.0.0.1:") && log.contains("stranger.example.org"),
        "{log}"
    );
    assert!(log.contains("handshake"), "{log}");
    for h in ["web1", "db1"] {
        assert!(
            d.stored(h).iter().all(|m| !m.contains("<1>no")),
            "nothing from refused clients is stored"
        );
    }
}

#[test]
fn oversized_frames_and_garbage_keep_the_stream_in_sync() {
    let d = Daemon::start("");
    let mut web = d.client("web1.example.org");
    let mut data = Vec::new();
    data.extend_from_slice(b"9000 ");
    data.extend_from_slice(&[b'x'; 9000]); // over max_message_size = 8192
    data.extend_from_slice(b"11 <13>1 after");
    data.extend_from_slice(&[b'y'; 9000]); // an LF frame over the limit
    data.extend_from_slice(b"\n\x00\x01garbage bytes\n<13>last\n");
    web.send(&data).expect("send");
    let stored = d.wait_stored("web1", 3);
    assert_eq!(
        stored,
        vec!["<13>1 after", "\u{0}\u{1}garbage bytes", "<13>last"]
    );
    // A count that cannot be followed ends that connection, not the receiver.
    let mut bad = d.client("web1.example.org");
    let _ = bad.send(b"12x <13>broken");
    assert!(bad.closed_by_server(Duration::from_secs(5)));
    web.send_messages(&messages("web1", 0, 1))
        .expect("still served");
    assert_eq!(d.wait_stored("web1", 4).len(), 4);
}

#[test]
fn idle_and_slow_clients_are_dropped_without_starving_others() {
    let d = Daemon::start("");
    // A TCP connection that never starts TLS, and a TLS client that stops mid-frame.
    let mut silent = TcpStream::connect(("127.0.0.1", d.port)).expect("tcp");
    silent.set_read_timeout(Some(Duration::from_secs(10))).ok();
    let mut slow = d.client("web1.example.org");
    slow.send(b"40 <13>1 half a fr").expect("send");
    // Meanwhile another client is served at once.
    let started = Instant::now();
    let mut web = d.client("db1.example.org");
    web.send_messages(&messages("db1", 0, 10)).expect("send");
    assert_eq!(d.wait_stored("db1", 10).len(), 10);
    assert!(started.elapsed() < Duration::from_secs(3));
    // Both idle ones are closed by the timeouts (3 s here).
    let mut b = [0u8; 8];
    let silent_closed = matches!(silent.read(&mut b), Ok(0) | Err(_));
    assert!(silent_closed, "handshake timeout");
    assert!(
        slow.closed_by_server(Duration::from_secs(8)),
        "idle timeout"
    );
    assert!(started.elapsed() < Duration::from_secs(9));
}

fn raise_fd_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct given.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 {
            lim.rlim_cur = lim.rlim_max.min(65536);
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

#[test]
fn a_thousand_concurrent_connections() {
    raise_fd_limit();
    let mut d = Daemon::start("");
    d.restart_with(
        "max_connections_per_address = 2048\nmax_connections_per_host = 2048",
        "",
    );
    let (cert, key) = d.pki.issue("web1c", &["web1.example.org"], false);
    let mut clients = Vec::new();
    for _ in 0..1000 {
        clients
            .push(Client::connect(d.port, &d.pki.ca_path(), Some((&cert, &key))).expect("connect"));
    }
    for (i, c) in clients.iter_mut().enumerate() {
        c.send_messages(&messages("web1", i, 1)).expect("send");
    }
    let stored = d.wait_stored("web1", 1000);
    assert_eq!(stored.len(), 1000);
    let mut want = messages("web1", 0, 1000);
    let mut got = stored.clone();
    want.sort();
    got.sort();
    assert_eq!(got, want, "every connection's message, once");
}

#[test]
fn an_abrupt_close_after_a_burst_loses_nothing() {
    let d = Daemon::start("");
    for round in 0..3 {
        let mut web = d.client("web1.example.org");
        web.send_messages(&messages("web1", round * 20_000, 20_000))
            .expect("burst");
        // Gone without close_notify, without reading anything: a reset.
        let sock = web.tls.sock.try_clone().expect("sock");
        drop(web);
        let _ = sock.shutdown(std::net::Shutdown::Both);
    }
    let stored = d.wait_stored("web1", 60_000);
    assert_eq!(stored.len(), 60_000);
    // Each connection's messages in order; connections may interleave.
    for round in 0..3 {
        let mine: Vec<String> = stored
            .iter()
            .filter(|m| {
                let seq = seq_of(m);
                (round * 20_000..(round + 1) * 20_000).contains(&seq)
            })
            .cloned()
            .collect();
        same(&mine, &messages("web1", round * 20_000, 20_000), "a burst");
    }
}

#[test]
fn sigterm_drains_flushes_and_checkpoints() {
    let mut d = Daemon::start("");
    let mut web = d.client("web1.example.org");
    web.send_messages(&messages("web1", 0, 50_000))
        .expect("send");
    // Stop at once: what was sent is drained, flushed, committed and checkpointed.
    let out = d.stop();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    same(&d.stored("web1"), &messages("web1", 0, 50_000), "drained");
    let verify = d.env.run(&["verify"]);
    assert_ok(&verify, "verify");
    let ledger = d.env.ledger();
    let ckpts = std::fs::read_dir(d.env.store.join("ledger/checkpoints"))
        .expect("checkpoints")
        .count();
    assert!(ckpts >= 1, "a final checkpoint");
    let newest = std::fs::read_dir(d.env.store.join("ledger/checkpoints"))
        .expect("dir")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .max()
        .expect("a checkpoint");
    assert_eq!(
        newest,
        format!("{:020}.ckpt", ledger.len()),
        "covers every entry"
    );
}

#[test]
fn kill_9_loses_at_most_the_last_second_and_restarts_clean() {
    let mut d = Daemon::start("");
    let mut web = d.client("web1.example.org");
    web.send_messages(&messages("web1", 0, 3000)).expect("send");
    assert_eq!(d.wait_stored("web1", 3000).len(), 3000);
    std::thread::sleep(Duration::from_millis(1500));
    web.send_messages(&messages("web1", 3000, 3000))
        .expect("send");
    d.kill9();
    // What was committed before the kill survives as a prefix of what was sent.
    let stored = d.stored("web1");
    assert!(stored.len() >= 3000, "{}", stored.len());
    assert_eq!(stored[..], messages("web1", 0, stored.len())[..]);
    // A restart finds no corrupt file or ledger, and receives again.
    d.spawn();
    let mut web = d.client("web1.example.org");
    web.send_messages(&messages("web1", 9000, 10))
        .expect("send");
    let after = d.wait_stored("web1", stored.len() + 10);
    assert_eq!(&after[stored.len()..], &messages("web1", 9000, 10)[..]);
    let out = d.stop();
    assert_eq!(out.status.code(), Some(0));
    assert_ok(
        &d.env.run(&["verify", "--deep"]),
        "verify after kill -9 and restart",
    );
    let _ = &d.extra;
}

#[test]
fn rsyslog_forwarder_delivers_exactly_what_it_was_fed() {
    let rsyslogd = Path::new("/usr/sbin/rsyslogd");
    assert!(
        rsyslogd.exists(),
        "rsyslogd is missing: run scripts/test.sh, which installs rsyslog and rsyslog-gnutls"
    );
    let mut d = Daemon::start("");
    let (cert, key) = d.pki.issue("rsyslog-web1", &["web1.example.org"], false);
    let work = tempfile::tempdir().expect("tempdir");
    let input = work.path().join("input.log");
    std::fs::write(&input, b"").expect("input");
    let conf = work.path().join("rsyslog.conf");
    std::fs::write(
        &conf,
        format!(
            r#"global(workDirectory="{w}"
       defaultNetstreamDriverCAFile="{ca}"
       defaultNetstreamDriverCertFile="{cert}"
       defaultNetstreamDriverKeyFile="{key}")
module(load="imfile")
input(type="imfile" file="{input}" tag="app" severity="info" facility="local0")
action(type="omfwd" target="127.0.0.1" port="{port}" protocol="tcp"
       streamDriver="gtls" streamDriverMode="1" streamDriverAuthMode="x509/name"
       streamDriverPermittedPeers="localhost"
       tcp_framing="octet-counted" template="RSYSLOG_SyslogProtocol23Format")
"#,
            w = work.path().display(),
            ca = d.pki.ca_path().display(),
            cert = cert.display(),
            key = key.display(),
            input = input.display(),
            port = d.port
        ),
    )
    .expect("rsyslog.conf");
    let mut rsyslog = start_rsyslogd(rsyslogd, work.path(), &conf);
    std::thread::sleep(Duration::from_millis(500));
    let lines: Vec<String> = (0..5000)
        .map(|i| {
            format!(
                "line {i} from the application: user{} did thing {}",
                i % 17,
                i * 3
            )
        })
        .collect();
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&input)
        .expect("open input");
    for chunk in lines.chunks(500) {
        for l in chunk {
            writeln!(f, "{l}").expect("write input");
        }
        f.flush().expect("flush");
        std::thread::sleep(Duration::from_millis(50));
    }
    let stored = d.wait_stored("web1", lines.len());
    let _ = rsyslog.kill();
    let out = rsyslog.wait_with_output().expect("rsyslog");
    // RFC 5424 from rsyslog: <PRI>1 TIMESTAMP HOST app - - - MSG; the MSG is the line.
    let msgs: Vec<String> = stored
        .iter()
        .map(|m| m.splitn(8, ' ').nth(7).unwrap_or("").to_string())
        .collect();
    if msgs.len() != lines.len() {
        eprintln!("rsyslog stderr: {}", String::from_utf8_lossy(&out.stderr));
    }
    same(
        &msgs,
        &lines,
        "exactly what rsyslog was fed, once, in order",
    );
    assert!(
        stored.iter().all(|m| m.starts_with("<134>1 ")),
        "{:?}",
        &stored[..1]
    );
    let out = d.stop();
    assert_eq!(out.status.code(), Some(0));
}

#[test]
fn tls_1_2_works_and_a_pinned_certificate_fingerprint_is_enforced() {
    let mut d = Daemon::start("");
    let (cert, key) = d.pki.issue("web1-12", &["web1.example.org"], false);
    let mut c =
        Client::connect_with(d.port, &d.pki.ca_path(), Some((&cert, &key)), true).expect("TLS 1.2");
    assert_eq!(
        c.tls.conn.protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_2)
    );
    c.send_messages(&messages("web1", 0, 2)).expect("send");
    assert_eq!(d.wait_stored("web1", 2).len(), 2);
    drop(c);
    // Pin web1 to one certificate: another certificate with the same name is refused.
    let (pinned_cert, pinned_key) = d.pki.issue("web1-pinned", &["web1.example.org"], false);
    let der = {
        use rustls_pki_types::pem::PemObject;
        rustls_pki_types::CertificateDer::from_pem_file(&pinned_cert).expect("pem")
    };
    let fp = loghost::hash::Hash::of(der.as_ref()).to_string();
    d.restart_with("", &format!("tls_fingerprint = \"sha256:{fp}\""));
    let mut other = Client::connect(d.port, &d.pki.ca_path(), Some((&cert, &key))).expect("tls");
    let _ = other.send(b"5 <1>no");
    assert!(
        other.closed_by_server(Duration::from_secs(5)),
        "same name, other certificate"
    );
    let mut pinned =
        Client::connect(d.port, &d.pki.ca_path(), Some((&pinned_cert, &pinned_key))).expect("tls");
    pinned.send_messages(&messages("web1", 2, 1)).expect("send");
    assert_eq!(d.wait_stored("web1", 3).len(), 3);
}

#[test]
fn connections_over_max_connections_are_refused() {
    let mut d = Daemon::start("");
    d.restart_with("max_connections = 2", "");
    let mut a = d.client("web1.example.org");
    let mut b = d.client("web1.example.org");
    // The third is closed at once, before any TLS.
    let mut third = TcpStream::connect(("127.0.0.1", d.port)).expect("tcp");
    third.set_read_timeout(Some(Duration::from_secs(5))).ok();
    let mut byte = [0u8; 1];
    assert!(matches!(third.read(&mut byte), Ok(0) | Err(_)));
    a.send_messages(&messages("web1", 0, 1)).expect("send");
    b.send_messages(&messages("web1", 1, 1)).expect("send");
    assert_eq!(d.wait_stored("web1", 2).len(), 2);
    drop(a);
    std::thread::sleep(Duration::from_millis(300));
    let mut c = d.client("web1.example.org");
    c.send_messages(&messages("web1", 2, 1))
        .expect("a slot is free again");
    assert_eq!(d.wait_stored("web1", 3).len(), 3);
}

#[test]
fn a_crash_between_a_frame_and_its_ledger_entry_is_repaired_on_restart() {
    let mut d = Daemon::start("");
    // The first commit dies after syncing its frame, before the ledger entry.
    let _ = d.stop();
    let child = Command::new(loghost_bin())
        .arg("--config")
        .arg(&d.env.config)
        .arg("run")
        .env("LOGHOST_CRASH_AT", "after-frame-sync")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("run");
    let deadline = Instant::now() + Duration::from_secs(15);
    while TcpStream::connect(("127.0.0.1", d.port)).is_err() {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut web = d.client("web1.example.org");
    web.send_messages(&messages("web1", 0, 100)).expect("send");
    drop(web);
    let out = child.wait_with_output().expect("wait");
    use std::os::unix::process::ExitStatusExt;
    assert!(out.status.signal().is_some(), "it crashed");
    // Restart: the uncommitted frame is cut away, the store verifies, receiving goes on.
    d.spawn();
    let mut web = d.client("web1.example.org");
    web.send_messages(&messages("web1", 100, 5)).expect("send");
    same(
        &d.wait_stored("web1", 5),
        &messages("web1", 100, 5),
        "after the crash",
    );
    let _ = d.stop();
    assert_ok(&d.env.run(&["verify", "--deep"]), "verify");
}

#[test]
fn fifty_kill_9s_while_receiving_lose_at_most_the_flush_interval() {
    let mut d = Daemon::start("");
    let (cert, key) = d.pki.issue("web1-client", &["web1.example.org"], false);
    let connect = |d: &Daemon| {
        Client::connect(d.port, &d.pki.ca_path(), Some((&cert, &key))).expect("connect")
    };
    let mut rng = 0x9e37_79b9_u64;
    let mut next_rand = |below: u64| {
        rng = rng
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (rng >> 33) % below
    };
    let mut expected: Vec<String> = Vec::new();
    let mut next = 0usize;
    for round in 0..50 {
        // A batch whose client hangs up: committed at the disconnect.
        let a = messages("web1", next, 20 + next_rand(200) as usize);
        next += a.len();
        {
            let mut c = connect(&d);
            c.send_messages(&a).expect("send");
        }
        expected.extend(a);
        let stored = d.wait_stored("web1", expected.len());
        assert_eq!(
            stored, expected,
            "round {round}: a finished batch is stored"
        );
        // A batch still streaming when the process is killed.
        let b = messages("web1", next, 50 + next_rand(500) as usize);
        next += b.len();
        let mut c = connect(&d);
        c.send_messages(&b).expect("send");
        let waited = if round % 10 == 9 {
            2500
        } else {
            next_rand(300)
        };
        std::thread::sleep(Duration::from_millis(waited));
        d.kill9();
        drop(c);
        let stored = d.stored("web1");
        assert!(
            stored.len() >= expected.len() && stored[..expected.len()] == expected[..],
            "round {round}: what was committed before the kill survives"
        );
        let rest = &stored[expected.len()..];
        assert!(
            rest.len() <= b.len() && rest == &b[..rest.len()],
            "round {round}: the killed batch is kept as a prefix, with no damage or duplicate"
        );
        if waited >= 2500 {
            assert_eq!(
                rest.len(),
                b.len(),
                "round {round}: messages older than the flush interval are not lost"
            );
        }
        expected = stored;
        d.spawn();
    }
    let out = d.stop();
    assert_eq!(out.status.code(), Some(0));
    assert_ok(
        &d.env.run(&["verify", "--deep"]),
        "verify after fifty kill -9s",
    );
}

#[test]
fn a_full_disk_keeps_received_messages_in_memory_until_space_returns() {
    // The store on a 1 MiB tmpfs (needs root, as in CI); messages that compress poorly.
    let mut tmpfs = None;
    let mut d = Daemon::start_with("", |env| {
        tmpfs = Some(Tmpfs::mount(&env.store, "1m"));
    });
    let tmpfs = tmpfs.expect("mounted");
    let lines = noisy_lines(7, 24_000); // ≈ 2.6 MiB
    let msgs: Vec<String> = String::from_utf8(lines)
        .expect("ascii")
        .lines()
        .map(|l| format!("<13>1 2026-11-28T10:00:00Z web1.example.org app - - - {l}"))
        .collect();
    // One connection, as a forwarder keeps: its order is the stored order.
    {
        let mut c = d.client("web1.example.org");
        for batch in msgs.chunks(2000) {
            c.send_messages(batch).expect("send");
        }
    }
    // The disk fills: some messages are stored, not all.
    std::thread::sleep(Duration::from_secs(3));
    let before = d.stored("web1");
    assert!(before.len() < msgs.len(), "the disk filled up");
    assert_prefix(&before, &msgs, "what is stored on the full disk");
    assert_ok(
        &d.env.run(&["verify", "--deep"]),
        "nothing partial on the full disk",
    );
    // Space returns: the flusher's next tries store the rest, once each, in order.
    tmpfs.resize("64m");
    let after = d.wait_stored("web1", msgs.len());
    assert_prefix(&after, &msgs, "after space returned");
    assert_eq!(after.len(), msgs.len(), "every message once");
    let out = d.stop();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(
        log.contains("No space left on device") && log.contains(&d.env.store.display().to_string()),
        "the daemon named the cause and the store: {log}"
    );
    assert_ok(&d.env.run(&["verify", "--deep"]), "verify");
    drop(d);
    drop(tmpfs);
}

/// `got` is `want`'s first messages, in order; a mismatch is reported briefly.
fn assert_prefix(got: &[String], want: &[String], what: &str) {
    if let Some(i) = (0..got.len()).find(|&i| want.get(i) != Some(&got[i])) {
        let short = |s: Option<&String>| s.map(|s| s.chars().take(70).collect::<String>());
        let later = got.iter().position(|g| Some(g) == want.get(i));
        let mut seen = std::collections::HashSet::new();
        let dups = got.iter().filter(|g| !seen.insert(*g)).count();
        panic!(
            "{what}: {} messages stored of {}; #{i} is {:?}, expected {:?} (found at {later:?}; \
             {dups} duplicates)",
            got.len(),
            want.len(),
            short(got.get(i)),
            short(want.get(i))
        );
    }
}

/// A TCP connection to the receiver from another loopback address, that never starts TLS.
fn raw_from(source: &str, port: u16) -> TcpStream {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let s = tokio::net::TcpSocket::new_v4().expect("socket");
        s.bind(format!("{source}:0").parse().expect("addr"))
            .expect("bind");
        s.connect(format!("127.0.0.1:{port}").parse().expect("addr"))
            .await
            .expect("connect")
            .into_std()
            .expect("std")
    })
}

#[test]
fn one_address_or_one_host_cannot_take_every_slot() {
    // Issue 17 §5: connections are counted per address from accept (before any certificate is
    // seen) and per identified host; whoever reaches a cap is cut off, others are unaffected.
    let mut d = Daemon::start("");
    d.restart_with(
        "max_connections_per_address = 3\nmax_connections_per_host = 2",
        "",
    );
    let held: Vec<TcpStream> = (0..3).map(|_| raw_from("127.0.0.2", d.port)).collect();
    let mut fourth = raw_from("127.0.0.2", d.port);
    fourth.set_nonblocking(false).expect("blocking");
    fourth
        .set_read_timeout(Some(Duration::from_secs(2)))
        .expect("timeout");
    let t = Instant::now();
    let mut byte = [0u8; 1];
    assert!(matches!(fourth.read(&mut byte), Ok(0) | Err(_)));
    assert!(t.elapsed() < Duration::from_secs(2), "closed at once");
    // 127.0.0.1 still gets in; web1 may hold two connections, not three.
    let mut a = d.client("web1.example.org");
    let mut b = d.client("web1.example.org");
    let mut c = d.client("web1.example.org");
    assert!(
        c.closed_by_server(Duration::from_secs(5)),
        "a third for web1"
    );
    a.send_messages(&messages("web1", 0, 1)).expect("send");
    b.send_messages(&messages("web1", 1, 1)).expect("send");
    let mut db = d.client("db1.example.org");
    db.send_messages(&messages("db1", 0, 1)).expect("send");
    assert_eq!(d.wait_stored("web1", 2).len(), 2);
    assert_eq!(d.wait_stored("db1", 1).len(), 1);
    drop(held);
    let out = d.stop();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(log.contains("max_connections_per_address"), "{log}");
    assert!(log.contains("max_connections_per_host"), "{log}");
}

#[test]
fn sigterm_drain_ends_even_for_a_client_that_never_pauses() {
    let mut d = Daemon::start("");
    d.restart_with("drain_timeout = \"1s\"", "");
    let mut c = d.client("web1.example.org");
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sender = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut i = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                if c.send_messages(&messages("web1", i, 100)).is_err() {
                    break;
                }
                i += 100;
            }
        })
    };
    d.wait_stored("web1", 100);
    let t = Instant::now();
    let out = d.stop();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let _ = sender.join();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        t.elapsed() < Duration::from_secs(8),
        "stopped {:?} after SIGTERM",
        t.elapsed()
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("drain_timeout"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = d.env.run(&["verify"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}

#[test]
fn the_receiver_keeps_receiving_while_a_stalled_pull_holds_up_a_reload() {
    // Issue 17 §5: SIGHUP (and SIGTERM) wait for running pulls; the receiver must not be down
    // meanwhile. web1 is pulled from a server that freezes mid-transfer; db1 keeps sending.
    let mut d = Daemon::start("");
    let _ = d.stop();
    let sshd = d.env.init_and_start_sshd("");
    let log = d.env.rpath("var/log/app.log");
    std::fs::write(&log, log_lines(7, 300_000)).expect("write");
    let text = std::fs::read_to_string(&d.env.config)
        .expect("config")
        .replacen("[receiver]", "[ssh]\nio_timeout = \"10s\"\n\n[receiver]", 1)
        .replace(
            "tls_name = \"web1.example.org\"\n",
            &format!(
                "tls_name = \"web1.example.org\"\naddress = \"{}\"\nuser = \"{}\"\npaths = \
                 [\"{log}\"]\nevery = \"1s\"\n",
                sshd.address(),
                current_user()
            ),
        );
    std::fs::write(&d.env.config, text).expect("config");
    d.env.trust("web1", &sshd);
    d.spawn();
    // The first pull is under way: freeze the server side, then ask for a reload.
    let deadline = Instant::now() + Duration::from_secs(15);
    while !d
        .env
        .stored_files()
        .iter()
        .any(|p| p.to_string_lossy().contains("app.log"))
    {
        assert!(Instant::now() < deadline, "the pull did not start");
        std::thread::sleep(Duration::from_millis(5));
    }
    let frozen = descendants(sshd.pid());
    for p in &frozen {
        signal(*p, "STOP");
    }
    signal(d.child.as_ref().expect("running").id(), "HUP");
    std::thread::sleep(Duration::from_millis(300));
    let t = Instant::now();
    let mut c = d.client("db1.example.org");
    c.send_messages(&messages("db1", 0, 5)).expect("send");
    drop(c);
    let got = d.wait_stored("db1", 5);
    let took = t.elapsed();
    for p in &frozen {
        signal(*p, "CONT");
    }
    assert_eq!(got.len(), 5, "received while the pull was stuck");
    assert!(took < Duration::from_secs(8), "stored after {took:?}");
    let out = d.stop();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `loghost tail -f` shows each received message once, as its frame commits, after the last
/// lines stored before it started; two hosts' streams through one follower are told apart.
#[test]
fn tail_follows_received_messages_as_they_commit() {
    let d = Daemon::start("");
    let mut web = d.client("web1.example.org");
    web.send_messages(&messages("web1", 0, 20)).expect("send");
    assert_eq!(d.wait_stored("web1", 20).len(), 20);
    let mut t = Follower::spawn(&d.env, &["tail", "-f", "-n", "3", "web1", "syslog-tls"]);
    let want = messages("web1", 17, 3);
    same(&t.lines(3), &want, "the last 3 before following");
    web.send_messages(&messages("web1", 20, 500)).expect("send");
    same(
        &t.lines(500),
        &messages("web1", 20, 500),
        "each new one once",
    );
    assert!(t.more(Duration::from_millis(1500)).is_empty(), "no repeat");

    let mut all = Follower::spawn(&d.env, &["tail", "-f", "-n", "0", "--json"]);
    let mut db = d.client("db1.example.org");
    db.send_messages(&messages("db1", 0, 2)).expect("send");
    let got = all.lines(2);
    assert_eq!(got.len(), 2, "{got:?}");
    for (g, m) in got.iter().zip(messages("db1", 0, 2)) {
        let v: serde_json::Value = serde_json::from_str(g).expect("json");
        assert_eq!(v["type"], "line");
        assert_eq!(v["host"], "db1");
        assert_eq!(v["log"], "syslog-tls");
        assert_eq!(v["line"], m.as_str());
        assert!(
            v["seq"].as_u64().is_some() && v["time"].as_str().is_some(),
            "{v}"
        );
    }
    assert!(t.more(Duration::from_millis(500)).is_empty(), "web1 only");
}

/// A RELP client writing frames as librelp does, over the same TLS as syslog.
struct Relp {
    c: Client,
    frames: loghost::receive::relp::Deframer,
    txnr: u64,
}

impl Relp {
    /// Connects with a certificate for `name` and opens a session.
    fn open(d: &Daemon, name: &str) -> Relp {
        let (cert, key) = d.pki.issue(name, &[name], false);
        let c =
            Client::connect(d.relp_port, &d.pki.ca_path(), Some((&cert, &key))).expect("connect");
        let mut r = Relp {
            c,
            frames: loghost::receive::relp::Deframer::new(1 << 20),
            txnr: 0,
        };
        r.frame(
            "open",
            b"relp_version=0\nrelp_software=librelp,1.11.0,http://librelp.adiscon.com\ncommands=syslog",
        );
        let a = r.answers(1);
        assert_eq!(a.len(), 1, "an answer to open");
        let text = String::from_utf8_lossy(&a[0].data).into_owned();
        assert!(
            a[0].command == "rsp" && text.starts_with("200 OK") && text.contains("commands=syslog"),
            "{text}"
        );
        r
    }

    fn frame(&mut self, command: &str, data: &[u8]) -> u64 {
        self.txnr += 1;
        let mut out = format!("{} {command} {}", self.txnr, data.len()).into_bytes();
        if !data.is_empty() {
            out.push(b' ');
            out.extend_from_slice(data);
        }
        out.push(b'\n');
        self.c.send(&out).expect("send");
        self.txnr
    }

    /// Sends the messages in one write; their transaction numbers.
    fn send(&mut self, msgs: &[String]) -> Vec<u64> {
        let mut out = Vec::new();
        let mut txnrs = Vec::new();
        for m in msgs {
            self.txnr += 1;
            txnrs.push(self.txnr);
            out.extend_from_slice(format!("{} syslog {} {m}\n", self.txnr, m.len()).as_bytes());
        }
        self.c.send(&out).expect("send");
        txnrs
    }

    /// The next `n` frames from the server (fewer if it closes or 30 s pass).
    fn answers(&mut self, n: usize) -> Vec<loghost::receive::relp::Frame> {
        let mut got = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut buf = [0u8; 65536];
        while got.len() < n && Instant::now() < deadline {
            while let Ok(Some(f)) = self.frames.next_frame() {
                got.push(f);
            }
            if got.len() >= n {
                break;
            }
            match self.c.tls.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(k) => self.frames.push(&buf[..k]),
            }
        }
        got
    }
}

/// Each answer is `TXNR rsp 6 200 OK` for the messages sent, in order.
fn all_ok(answers: &[loghost::receive::relp::Frame], txnrs: &[u64]) {
    let got: Vec<(u64, String)> = answers
        .iter()
        .map(|f| {
            (
                f.txnr,
                format!("{} {}", f.command, String::from_utf8_lossy(&f.data)),
            )
        })
        .collect();
    let want: Vec<(u64, String)> = txnrs
        .iter()
        .map(|t| (*t, "rsp 200 OK".to_string()))
        .collect();
    assert_eq!(got, want);
}

/// An acknowledgement means durable: right after the `200 OK`s, `kill -9`; after a restart
/// every acknowledged message is in the store, ten times over.
#[test]
fn relp_acknowledges_only_what_is_stored_and_a_kill_9_after_the_ack_loses_nothing() {
    let mut d = Daemon::start("");
    let mut acked = Vec::new();
    for round in 0..10 {
        let mut r = Relp::open(&d, "web1.example.org");
        let msgs = messages("web1", round * 50, 50);
        let txnrs = r.send(&msgs);
        all_ok(&r.answers(50), &txnrs);
        acked.extend(msgs);
        d.kill9();
        d.spawn();
    }
    let stored = d.wait_stored("web1", acked.len());
    same(
        &stored,
        &acked,
        "every acknowledged message, once, in order",
    );
    assert_ok(&d.env.run(&["verify", "--deep"]), "verify");
}

/// SIGTERM: what was read is committed and answered, then `serverclose`; exit 0.
#[test]
fn relp_sigterm_answers_what_it_read_then_serverclose() {
    let mut d = Daemon::start("");
    let mut r = Relp::open(&d, "web1.example.org");
    let msgs = messages("web1", 0, 300);
    let txnrs = r.send(&msgs);
    std::thread::sleep(Duration::from_millis(200));
    let child = d.child.take().expect("running");
    signal(child.id(), "TERM");
    let answers = r.answers(301);
    assert_eq!(answers.len(), 301, "300 answers and serverclose");
    all_ok(&answers[..300], &txnrs);
    assert_eq!(
        (answers[300].txnr, answers[300].command.as_str()),
        (0, "serverclose")
    );
    let out = child.wait_with_output().expect("wait");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    d.spawn();
    same(&d.wait_stored("web1", 300), &msgs, "stored");
}

/// Sessions that break RELP are cut with a log line; another session goes on being answered.
#[test]
fn relp_sessions_that_break_the_protocol_are_cut_and_others_go_on() {
    let mut d = Daemon::start("");
    let mut good = Relp::open(&d, "web1.example.org");
    let mut next = 0;
    let mut check_good = |good: &mut Relp| {
        let msgs = messages("web1", next, 5);
        next += 5;
        let t = good.send(&msgs);
        all_ok(&good.answers(5), &t);
    };
    check_good(&mut good);
    let connect = || {
        let (cert, key) = d.pki.issue("db1", &["db1.example.org"], false);
        Client::connect(d.relp_port, &d.pki.ca_path(), Some((&cert, &key))).expect("connect")
    };
    let offers = "relp_version=0\nrelp_software=x\ncommands=syslog";
    let open = format!("1 open {} {offers}\n", offers.len()).into_bytes();
    for (what, bytes) in [
        ("garbage", b"hello, is this syslog?\n".to_vec()),
        ("a command before open", b"1 syslog 3 abc\n".to_vec()),
        (
            "an oversized frame",
            [&open[..], b"2 syslog 9000 "].concat(),
        ),
        (
            "a transaction number out of order",
            [&open[..], b"2 syslog 3 abc\n2 syslog 3 abc\n"].concat(),
        ),
        (
            "a transaction number of 10 digits",
            b"1234567890 open 0\n".to_vec(),
        ),
        (
            "an open without syslog",
            b"1 open 14 relp_version=0\n".to_vec(),
        ),
    ] {
        let mut c = connect();
        c.send(&bytes).expect("send");
        assert!(
            c.closed_by_server(Duration::from_secs(5)),
            "{what}: not closed"
        );
        check_good(&mut good);
    }
    // Never finishing its open: cut at idle_timeout (3 s here), while the good one goes on.
    let mut slow = connect();
    slow.send(b"1 open 46 relp_v").expect("send");
    for _ in 0..5 {
        std::thread::sleep(Duration::from_secs(1));
        check_good(&mut good);
    }
    assert!(
        slow.closed_by_server(Duration::from_secs(1)),
        "a stalled open"
    );
    // A certificate from another CA: no session at all.
    let other = Pki::new("other");
    let (cert, key) = other.issue("web1", &["web1.example.org"], false);
    let refused = match Client::connect(d.relp_port, &d.pki.ca_path(), Some((&cert, &key))) {
        Err(_) => true,
        Ok(mut c) => c.closed_by_server(Duration::from_secs(5)),
    };
    assert!(refused, "a certificate of another CA");
    check_good(&mut good);
    let out = d.stop();
    let log = String::from_utf8_lossy(&out.stderr);
    for why in [
        "not RELP",
        "before open",
        "more than the",
        "where 3 was due",
        "does not offer the syslog command",
    ] {
        assert!(log.contains(why), "no log line with {why:?}:\n{log}");
    }
    // Only the one whole message that came before a broken frame; nothing half stored.
    assert_eq!(d.stored("db1"), vec!["abc".to_string()]);
}

/// The real sender: rsyslog's omrelp (TLS, certificate names checked) feeding from a file.
/// Every line is stored once under the certificate's host; `kill -9` of loghost in the middle
/// of 200,000 messages loses none (omrelp resends what was not acknowledged); duplicates come
/// only from the window that was in flight.
#[test]
fn rsyslog_omrelp_loses_nothing_across_a_kill_9() {
    let rsyslogd = Path::new("/usr/sbin/rsyslogd");
    let omrelp = ["/usr/lib/x86_64-linux-gnu/rsyslog/omrelp.so"];
    assert!(
        rsyslogd.exists() && omrelp.iter().any(|p| Path::new(p).exists()),
        "rsyslogd or omrelp is missing: run scripts/test.sh, which installs rsyslog-relp"
    );
    let mut d = Daemon::start("");
    let (cert, key) = d.pki.issue("rsyslog-web1", &["web1.example.org"], false);
    let work = tempfile::tempdir().expect("tempdir");
    let input = work.path().join("input.log");
    let total = 200_000;
    let lines: Vec<String> = (0..total)
        .map(|i| {
            format!(
                "line {i} from the application: user{} did thing {}",
                i % 17,
                i * 3
            )
        })
        .collect();
    let mut text = lines.join("\n");
    text.push('\n');
    std::fs::write(&input, text).expect("input");
    let conf = work.path().join("rsyslog.conf");
    std::fs::write(
        &conf,
        format!(
            r#"global(workDirectory="{w}")
module(load="imfile")
module(load="omrelp")
input(type="imfile" file="{input}" tag="app" severity="info" facility="local0")
action(type="omrelp" target="127.0.0.1" port="{port}" tls="on"
       tls.caCert="{ca}" tls.myCert="{cert}" tls.myPrivKey="{key}"
       tls.authMode="name" tls.permittedPeer=["localhost"]
       template="RSYSLOG_SyslogProtocol23Format"
       action.resumeRetryCount="-1" action.resumeInterval="1"
       queue.type="LinkedList" queue.size="500000")
"#,
            w = work.path().display(),
            ca = d.pki.ca_path().display(),
            cert = cert.display(),
            key = key.display(),
            input = input.display(),
            port = d.relp_port
        ),
    )
    .expect("rsyslog.conf");
    let mut rsyslog = start_rsyslogd(rsyslogd, work.path(), &conf);
    // kill -9 once ~a tenth is stored (2 MB of the ~23 MB), read cheaply off the ledger.
    let deadline = Instant::now() + Duration::from_secs(120);
    while received_bytes(&d.env) < 2 << 20 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    d.kill9();
    let at_kill = received_bytes(&d.env);
    std::thread::sleep(Duration::from_millis(500));
    d.spawn();
    let deadline = Instant::now() + Duration::from_secs(300);
    let mut stored = Vec::new();
    while Instant::now() < deadline {
        stored = d.stored("web1");
        let distinct: std::collections::HashSet<&String> = stored.iter().collect();
        if distinct.len() >= total {
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    let _ = rsyslog.kill();
    let out = rsyslog.wait_with_output().expect("rsyslog");
    assert!(
        at_kill < received_bytes(&d.env) / 2,
        "the kill came in the middle: {at_kill} bytes stored then, {} at the end",
        received_bytes(&d.env)
    );
    let msgs: Vec<String> = stored
        .iter()
        .map(|m| m.splitn(8, ' ').nth(7).unwrap_or("").to_string())
        .collect();
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for m in &msgs {
        *seen.entry(m.as_str()).or_default() += 1;
    }
    let missing = lines
        .iter()
        .filter(|l| !seen.contains_key(l.as_str()))
        .count();
    let duplicates = msgs.len() - seen.len();
    eprintln!(
        "omrelp: {total} lines, {} stored, {missing} missing, {duplicates} duplicates",
        msgs.len()
    );
    assert_eq!(
        missing,
        0,
        "lost across kill -9; rsyslog said: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(seen.len() == total, "only the lines fed");
    // omrelp's window (windowSize, 128 by default) bounds what was in flight unacknowledged.
    assert!(
        duplicates <= 128,
        "{duplicates} duplicates: more than one window"
    );
    assert!(
        stored.iter().all(|m| m.starts_with("<134>1 ")),
        "{:?}",
        &stored[..1]
    );
    let out = d.stop();
    assert_eq!(out.status.code(), Some(0));
    assert_ok(&d.env.run(&["verify", "--deep"]), "verify");
}

/// The received bytes the ledger covers (committed frames of `syslog-tls`).
fn received_bytes(env: &Env) -> u64 {
    let path = env.store.join("ledger/ledger.jsonl");
    let Ok(text) = std::fs::read_to_string(path) else {
        return 0;
    };
    text.lines()
        .filter(|l| l.contains("\"via\":\"tls\"") && l.ends_with('}'))
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .map(|e| e["end"].as_u64().unwrap_or(0) - e["start"].as_u64().unwrap_or(0))
        .sum()
}
