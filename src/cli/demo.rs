//! `loghost demo`: the whole job end to end, with nothing to set up.
//!
//! It writes sample logs into a temporary directory, serves them with an embedded SSH/SFTP server
//! on 127.0.0.1 (russh's server side: read-only, accepting only the demo's own key), and then
//! runs the real commands against it: `init`, `trust --fingerprint`, a `pull`, lines appended on
//! the "server", a second `pull` that moves only the new bytes. It prints the resulting store,
//! checks that the stored copy equals the server's files byte for byte, runs `verify` and prints
//! the newest signed checkpoint. Everything is deleted at the end unless `--keep DIR` is given.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::os::unix::fs::FileExt;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use russh::keys::ssh_key::private::Ed25519Keypair;
use russh::keys::{PrivateKey, PublicKey};
use russh::server::{Auth, Msg, Session as ServerSession};
use russh::{Channel, ChannelId};
use russh_sftp::protocol::{
    Attrs, Data, File, FileAttributes, Handle, Name, OpenFlags, Status, StatusCode, Version,
};

use crate::cli::cat::JournalOutput;
use crate::config::Config;
use crate::pull::known_hosts;

const HOST: &str = "demo-web";

/// Runs the demo; returns the exit status.
pub async fn run(keep: Option<&Path>) -> Result<i32> {
    let _temp;
    let dir: PathBuf = match keep {
        Some(d) => {
            if d.exists() && std::fs::read_dir(d)?.next().is_some() {
                bail!(
                    "{} exists and is not empty; give --keep a new or empty directory",
                    d.display()
                );
            }
            crate::store::create_dir_all_0700(d)
                .with_context(|| format!("cannot create {}", d.display()))?;
            std::path::absolute(d)?
        }
        None => {
            let t = tempfile::Builder::new().prefix("loghost-demo-").tempdir()?;
            let p = t.path().to_path_buf();
            _temp = t;
            p
        }
    };
    let server_root = dir.join("server");
    let etc = dir.join("etc");
    for d in [server_root.join("var/log/nginx"), etc.clone()] {
        crate::store::create_dir_all_0700(&d)?;
    }
    let mut rng = Lcg(0x5eed_1065);
    let logs = ["auth.log", "syslog", "nginx/access.log"];
    for (i, log) in logs.iter().enumerate() {
        let text = sample_lines(&mut rng, i, 400);
        std::fs::write(server_root.join("var/log").join(log), text)?;
    }
    std::fs::write(server_root.join("var/log/lastlog"), lastlog_record(1))?;
    // A server without text logs keeps everything in the journal: the demo has one too.
    let journal_dir = server_root.join("var/log/journal").join(DEMO_MACHINE);
    crate::store::create_dir_all_0700(&journal_dir)?;
    let mut journal = journal_entries(&mut rng, 60);
    let journal_start =
        (jiff::Timestamp::now().as_microsecond() as u64).saturating_sub(120_000_000);
    std::fs::write(
        journal_dir.join("system.journal"),
        demo_journal(&journal, journal_start),
    )?;

    section("1. The server");
    let host_key = PrivateKey::from(Ed25519Keypair::from_seed(&rand_seed()));
    let fp = known_hosts::fingerprint(host_key.public_key());
    // The server only accepts the loghost's key, which `init` creates; start it after.
    println!(
        "An SFTP server on 127.0.0.1 serves sample logs from {}:",
        server_root.display()
    );
    for log in logs {
        let p = server_root.join("var/log").join(log);
        println!(
            "  /var/log/{log:<18} {:>7} bytes",
            std::fs::metadata(&p)?.len()
        );
    }
    println!("  /var/log/lastlog           (a snapshot file: stored whole when it changes)");
    println!(
        "  /var/log/journal/{DEMO_MACHINE}/system.journal   (systemd's journal: {} entries)",
        journal.len()
    );

    let config_path = etc.join("loghost.toml");
    // Port 0 is replaced once the server is listening.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    std::fs::write(
        &config_path,
        format!(
            r#"# Written by `loghost demo`.
store = "{store}"

[ssh]
identity = "id_ed25519"
known_hosts = "known_hosts"
connect_timeout = "5s"

[[host]]
name = "{HOST}"
address = "127.0.0.1:{port}"
user = "logpull"
paths = ["/var/log/auth.log", "/var/log/syslog", "/var/log/nginx/*.log"]
snapshot = ["/var/log/lastlog"]
journal = true                   # /var/log/journal/*/ (and /run/log/journal/*/)

[ledger]
signing_key = "ledger.key"
origin = "demo.loghost.invalid/archive"
# Checkpoints are copied here too: in real life a place this machine cannot rewrite.
anchors = ["file://{anchor}"]
"#,
            store = dir.join("store").display(),
            anchor = dir.join("auditor").display()
        ),
    )?;
    let config = Config::load(&config_path)?;

    section("2. loghost init");
    crate::cli::init(&config)?;
    let client_key = crate::keys::load_identity(&config.ssh.identity)?;
    let server = DemoServer {
        root: server_root.clone(),
        authorized: client_key.public_key().clone(),
    };
    let ssh_config = Arc::new(russh::server::Config {
        keys: vec![host_key],
        auth_rejection_time: std::time::Duration::from_millis(100),
        auth_rejection_time_initial: Some(std::time::Duration::ZERO),
        ..Default::default()
    });
    let server_task = tokio::spawn(serve(listener, ssh_config, server));

    section(&format!("3. loghost trust {HOST} --fingerprint {fp}"));
    println!("(On a real server you would read the fingerprint with `ssh-keygen -lf`.)");
    let code = crate::cli::trust(&config, HOST, Some(&fp), &mut std::io::stdout()).await?;
    if code != 0 {
        bail!("the demo could not pin its own server's key");
    }

    section("4. loghost pull (first round: everything is new)");
    let report = crate::pull::run_round(&config, &[]).await?;
    crate::cli::print_report(&report, true);
    let first_ok = report.exit_code() == 0;

    section("5. The server writes more; loghost pull moves only the new bytes");
    for (i, log) in logs.iter().enumerate().take(2) {
        let more = sample_lines(&mut rng, i, 25);
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(server_root.join("var/log").join(log))?;
        f.write_all(more.as_bytes())?;
        println!("  appended {:>5} bytes to /var/log/{log}", more.len());
    }
    let more = journal_entries(&mut rng, 5);
    journal.extend(more);
    std::fs::write(
        journal_dir.join("system.journal"),
        demo_journal(&journal, journal_start),
    )?;
    println!("  5 new entries in the journal");
    let report2 = crate::pull::run_round(&config, &[]).await?;
    crate::cli::print_report(&report2, true);

    section("6. The store");
    print_tree(&config.store, &config.store)?;
    let ledger_path = config.store.join(crate::store::layout::LEDGER_FILE);
    let ledger = std::fs::read_to_string(&ledger_path)?;
    println!(
        "\n{} holds {} entries; the newest:",
        ledger_path.display(),
        ledger.lines().count()
    );
    if let Some(last) = ledger.lines().last() {
        println!("  {last}");
    }

    section("7. Stored copies compared with the server's files");
    let cat = |log: &str, output| -> Result<Vec<u8>> {
        let mut out = Vec::new();
        crate::cli::cat::run(
            &config,
            &crate::cli::cat::Selection {
                host: HOST,
                log: Some(log),
                date: None,
                output,
            },
            &mut out,
            false,
        )?;
        Ok(out)
    };
    let mut all_equal = true;
    for log in logs {
        let out = cat(&format!("/var/log/{log}"), JournalOutput::Export)?;
        let original = std::fs::read(server_root.join("var/log").join(log))?;
        let same = out == original;
        all_equal &= same;
        println!(
            "  /var/log/{log:<18} {} ({} bytes)",
            if same { "identical" } else { "DIFFERENT" },
            out.len()
        );
    }
    // The journal: every entry once, as the server's file holds it.
    let out = cat("journal", JournalOutput::Export)?;
    let stored = crate::journal::export::parse(&out)?;
    let mut original = Vec::new();
    let file = demo_journal(&journal, journal_start);
    crate::journal::file::read_all(&file[..], |h, e| {
        crate::journal::export::write_entry(&mut original, &h.seqnum_id, &e);
    })?;
    let same = out == original;
    all_equal &= same;
    println!(
        "  journal ({} entries)          {}",
        stored.len(),
        if same { "identical" } else { "DIFFERENT" }
    );
    let short = cat("journal", JournalOutput::Short)?;
    println!("\n`loghost cat {HOST} journal` prints it as journalctl does; the last lines:");
    let text = String::from_utf8_lossy(&short);
    let lines: Vec<&str> = text.lines().collect();
    for l in &lines[lines.len().saturating_sub(3)..] {
        println!("  {}", crate::sanitize::Shown(l));
    }

    let sample = config.store.join(crate::store::layout::stored_file(
        HOST,
        jiff::Timestamp::now(),
        false,
        "/var/log/auth.log",
        config.compression,
    ));
    println!(
        "\nThe stored files are plain zstd; stock tools read them{}:",
        if keep.is_some() {
            ""
        } else {
            " (keep the demo with --keep DIR to try)"
        }
    );
    println!("  zstdcat {}", sample.display());

    section("8. loghost verify: every frame, entry and checkpoint recomputed");
    let verified = crate::verify::run(&config, &crate::verify::Options::default())?;
    let verify_code = verified.print(&mut std::io::stdout())?;
    let ckpt_dir = crate::ledger::checkpoint::dir(&config.store);
    if let Some(size) = crate::ledger::checkpoint::sizes_in(&ckpt_dir)?.last() {
        let path = ckpt_dir.join(crate::ledger::checkpoint::file_name(*size));
        println!("\nThe newest signed checkpoint, {}:", path.display());
        print!("{}", String::from_utf8_lossy(&std::fs::read(&path)?));
        println!(
            "\nAuditors check it with the verifier key (`loghost key`):\n  {}",
            crate::cli::audit::verifier_key(&config)?
        );
    }

    server_task.abort();
    if keep.is_some() {
        println!(
            "\nKept in {}. Try:\n  loghost --config {} cat {HOST} auth.log",
            dir.display(),
            config_path.display()
        );
    }
    let ok = first_ok && report2.exit_code() == 0 && all_equal && verify_code == 0;
    println!(
        "\nDemo {}.",
        if ok { "complete" } else { "FAILED (see above)" }
    );
    Ok(if ok { 0 } else { 1 })
}

fn section(title: &str) {
    println!("\n== {title}");
}

fn print_tree(root: &Path, dir: &Path) -> Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let p = e.path();
        let rel = p.strip_prefix(root).unwrap_or(&p);
        if rel == Path::new(crate::store::layout::LOCK_FILE)
            || rel.starts_with(crate::store::layout::STATE_DIR)
        {
            continue;
        }
        if e.file_type()?.is_dir() {
            print_tree(root, &p)?;
        } else {
            println!("  {:<60} {:>7} bytes", rel.display(), e.metadata()?.len());
        }
    }
    Ok(())
}

fn rand_seed() -> [u8; 32] {
    use rand::RngCore;
    let mut s = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut s);
    s
}

/// A tiny deterministic generator: the sample logs look alike from run to run.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[(self.next() as usize) % items.len()]
    }
}

fn sample_lines(rng: &mut Lcg, kind: usize, n: usize) -> String {
    let now = jiff::Timestamp::now();
    let users = ["deploy", "alice", "backup", "root", "admin", "git"];
    let mut out = String::new();
    for i in 0..n {
        let t = now - jiff::SignedDuration::from_secs(((n - i) * 7) as i64);
        let stamp = t.strftime("%b %e %H:%M:%S");
        let ip = format!("203.0.113.{}", rng.next() % 254 + 1);
        let pid = 1000 + rng.next() % 30000;
        let _ = match kind {
            0 => match rng.next() % 4 {
                0 => writeln!(
                    out,
                    "{stamp} web1 sshd[{pid}]: Failed password for invalid user {} from {ip} port {} ssh2",
                    rng.pick(&users),
                    40000 + rng.next() % 20000
                ),
                1 => writeln!(out, "{stamp} web1 sudo: {} : TTY=pts/0 ; PWD=/home ; USER=root ; COMMAND=/usr/bin/systemctl restart nginx", rng.pick(&users)),
                _ => writeln!(
                    out,
                    "{stamp} web1 sshd[{pid}]: Accepted publickey for {} from {ip} port {} ssh2: ED25519 SHA256:{:016x}",
                    rng.pick(&users),
                    40000 + rng.next() % 20000,
                    rng.next()
                ),
            },
            1 => writeln!(
                out,
                "{stamp} web1 {}",
                rng.pick(&[
                    "systemd[1]: Started Daily apt download activities.",
                    "CRON[4242]: (root) CMD (command -v debian-sa1 > /dev/null && debian-sa1 1 1)",
                    "kernel: [UFW BLOCK] IN=eth0 OUT= SRC=198.51.100.23 DST=192.0.2.10 PROTO=TCP DPT=23",
                    "systemd[1]: logrotate.service: Deactivated successfully.",
                    "nginx[812]: worker process 813 exited on signal 9",
                ])
            ),
            _ => writeln!(
                out,
                "{ip} - - [{}] \"GET {} HTTP/1.1\" {} {} \"-\" \"{}\"",
                t.strftime("%d/%b/%Y:%H:%M:%S +0000"),
                rng.pick(&["/", "/login", "/api/v1/items?page=2", "/static/app.js", "/wp-admin/setup-config.php"]),
                rng.pick(&["200", "200", "200", "304", "404", "500"]),
                rng.next() % 50_000,
                rng.pick(&["Mozilla/5.0 (X11; Linux x86_64)", "curl/8.5.0", "Go-http-client/1.1"])
            ),
        };
    }
    out
}

/// The demo server's machine id (its journal directory's name).
const DEMO_MACHINE: &str = "d3a0c0ffee0d3a0c0ffee0d3a0c0ffee";

/// A small journal file as journald lays it out (regular format, uncompressed, one entry
/// array, no hash tables: readers do not need them), holding `entries` (each a list of
/// `FIELD=value`), one a second from `start` (microseconds). Entries are appended in order, so
/// the file for more entries extends the file for fewer, as a live journal grows.
fn demo_journal(entries: &[Vec<String>], start: u64) -> Vec<u8> {
    const HEADER: usize = 272;
    const SLOTS: usize = 256;
    fn object(out: &mut Vec<u8>, kind: u8, body: &[u8]) -> u64 {
        let at = out.len() as u64;
        out.push(kind);
        out.extend_from_slice(&[0u8; 7]);
        out.extend_from_slice(&(16 + body.len() as u64).to_le_bytes());
        out.extend_from_slice(body);
        while !out.len().is_multiple_of(8) {
            out.push(0);
        }
        at
    }
    let id = |s: &str| hex::decode(s).unwrap_or_else(|_| vec![0; 16]);
    let machine = id(DEMO_MACHINE);
    let boot = id("b007b007b007b007b007b007b007b007");
    let mut out = vec![0u8; HEADER];
    // The entry array first, with room for every entry the demo writes.
    let array = object(&mut out, 6, &vec![0u8; 8 + 8 * SLOTS]);
    let mut offsets = Vec::new();
    for (i, fields) in entries.iter().take(SLOTS).enumerate() {
        let mut items = Vec::new();
        for f in fields {
            let mut body = vec![0u8; 48];
            body.extend_from_slice(f.as_bytes());
            items.push(object(&mut out, 1, &body));
        }
        let realtime = start + i as u64 * 1_000_000;
        let mut body = Vec::new();
        body.extend_from_slice(&(i as u64 + 1).to_le_bytes());
        body.extend_from_slice(&realtime.to_le_bytes());
        body.extend_from_slice(&(1_000_000 + i as u64).to_le_bytes());
        body.extend_from_slice(&boot);
        body.extend_from_slice(&0u64.to_le_bytes());
        for item in items {
            body.extend_from_slice(&item.to_le_bytes());
            body.extend_from_slice(&0u64.to_le_bytes());
        }
        offsets.push(object(&mut out, 3, &body));
    }
    for (k, off) in offsets.iter().enumerate() {
        let slot = array as usize + 24 + 8 * k;
        out[slot..slot + 8].copy_from_slice(&off.to_le_bytes());
    }
    let len = out.len() as u64;
    let put =
        |out: &mut Vec<u8>, at: usize, v: u64| out[at..at + 8].copy_from_slice(&v.to_le_bytes());
    out[..8].copy_from_slice(crate::journal::file::SIGNATURE);
    out[24..40].copy_from_slice(&id("f11ef11ef11ef11ef11ef11ef11ef11e"));
    out[40..56].copy_from_slice(&machine);
    out[72..88].copy_from_slice(&id("5e0005e0005e0005e0005e0005e0005e"));
    put(&mut out, 88, HEADER as u64);
    put(&mut out, 96, len - HEADER as u64);
    put(&mut out, 152, offsets.len() as u64);
    put(&mut out, 160, offsets.len() as u64);
    put(&mut out, 168, 1);
    put(&mut out, 176, array);
    out
}

/// The demo journal's entries: sshd, sudo and systemd messages.
fn journal_entries(rng: &mut Lcg, n: usize) -> Vec<Vec<String>> {
    let users = ["deploy", "alice", "backup", "root"];
    (0..n)
        .map(|_| {
            let pid = 1000 + rng.next() % 30000;
            let (ident, unit, msg) = match rng.next() % 3 {
                0 => (
                    "sshd",
                    "ssh.service",
                    format!(
                        "Accepted publickey for {} from 203.0.113.{} port {} ssh2",
                        rng.pick(&users),
                        rng.next() % 254 + 1,
                        40000 + rng.next() % 20000
                    ),
                ),
                1 => (
                    "sudo",
                    "session-4.scope",
                    format!(
                        "{} : TTY=pts/0 ; PWD=/home ; USER=root ; COMMAND=/usr/bin/apt upgrade",
                        rng.pick(&users)
                    ),
                ),
                _ => (
                    "systemd",
                    "init.scope",
                    "Started Daily apt download activities.".to_string(),
                ),
            };
            vec![
                "_HOSTNAME=demo-web".to_string(),
                format!("_MACHINE_ID={DEMO_MACHINE}"),
                format!("SYSLOG_IDENTIFIER={ident}"),
                format!("_PID={pid}"),
                format!("_SYSTEMD_UNIT={unit}"),
                "PRIORITY=6".to_string(),
                format!("MESSAGE={msg}"),
            ]
        })
        .collect()
}

/// A `lastlog`-like binary record: nothing assumes text.
fn lastlog_record(n: u8) -> Vec<u8> {
    let mut v = vec![0u8; 292 * 3];
    v[0] = n;
    v[4..9].copy_from_slice(b"pts/0");
    v
}

async fn serve(
    listener: tokio::net::TcpListener,
    config: Arc<russh::server::Config>,
    server: DemoServer,
) {
    loop {
        let Ok((socket, _)) = listener.accept().await else {
            continue;
        };
        let handler = DemoSsh {
            root: server.root.clone(),
            authorized: server.authorized.clone(),
            channels: HashMap::new(),
        };
        let config = config.clone();
        tokio::spawn(async move {
            if let Ok(session) = russh::server::run_stream(config, socket, handler).await {
                let _ = session.await;
            }
        });
    }
}

struct DemoServer {
    root: PathBuf,
    authorized: PublicKey,
}

/// One SSH connection to the demo server.
struct DemoSsh {
    root: PathBuf,
    authorized: PublicKey,
    channels: HashMap<ChannelId, Channel<Msg>>,
}

impl russh::server::Handler for DemoSsh {
    type Error = russh::Error;

    async fn auth_publickey(
        &mut self,
        _user: &str,
        key: russh::server::VerifiedPublicKey<'_>,
    ) -> Result<Auth, Self::Error> {
        Ok(if key.public_key.key_data() == self.authorized.key_data() {
            Auth::Accept
        } else {
            Auth::reject()
        })
    }

    async fn channel_open_session(
        &mut self,
        channel: Channel<Msg>,
        reply: russh::server::ChannelOpenHandle,
        _session: &mut ServerSession,
    ) -> Result<(), Self::Error> {
        self.channels.insert(channel.id(), channel);
        reply.accept().await;
        Ok(())
    }

    async fn channel_eof(
        &mut self,
        channel: ChannelId,
        session: &mut ServerSession,
    ) -> Result<(), Self::Error> {
        session.close(channel)?;
        Ok(())
    }

    async fn subsystem_request(
        &mut self,
        channel_id: ChannelId,
        name: &str,
        session: &mut ServerSession,
    ) -> Result<(), Self::Error> {
        match (name, self.channels.remove(&channel_id)) {
            ("sftp", Some(channel)) => {
                session.channel_success(channel_id)?;
                let sftp = ReadOnlySftp {
                    root: self.root.clone(),
                    handles: HashMap::new(),
                    next: 0,
                };
                russh_sftp::server::run(channel.into_stream(), sftp).await;
            }
            _ => session.channel_failure(channel_id)?,
        }
        Ok(())
    }
}

enum Open {
    File(std::fs::File),
    Dir(Option<Vec<File>>),
}

/// A read-only SFTP server over a directory, which it presents as `/`.
struct ReadOnlySftp {
    root: PathBuf,
    handles: HashMap<String, Open>,
    next: u64,
}

impl ReadOnlySftp {
    /// Maps a client path into the root: lexically normalized, never above it, no symlinks.
    fn resolve(&self, path: &str) -> Result<PathBuf, StatusCode> {
        let mut out = self.root.clone();
        let mut depth = 0usize;
        for c in Path::new(path).components() {
            match c {
                Component::Normal(n) => {
                    out.push(n);
                    depth += 1;
                }
                Component::ParentDir if depth > 0 => {
                    out.pop();
                    depth -= 1;
                }
                _ => {}
            }
            if out
                .symlink_metadata()
                .is_ok_and(|m| m.file_type().is_symlink())
            {
                return Err(StatusCode::PermissionDenied);
            }
        }
        Ok(out)
    }

    fn virtual_path(&self, path: &str) -> String {
        let mut parts: Vec<String> = Vec::new();
        for c in Path::new(path).components() {
            match c {
                Component::Normal(n) => parts.push(n.to_string_lossy().into_owned()),
                Component::ParentDir => {
                    parts.pop();
                }
                _ => {}
            }
        }
        format!("/{}", parts.join("/"))
    }

    fn handle(&mut self, open: Open) -> String {
        self.next += 1;
        let h = format!("h{}", self.next);
        self.handles.insert(h.clone(), open);
        h
    }
}

fn status_of(e: &std::io::Error) -> StatusCode {
    match e.kind() {
        std::io::ErrorKind::NotFound => StatusCode::NoSuchFile,
        std::io::ErrorKind::PermissionDenied => StatusCode::PermissionDenied,
        _ => StatusCode::Failure,
    }
}

impl russh_sftp::server::Handler for ReadOnlySftp {
    type Error = StatusCode;

    fn unimplemented(&self) -> Self::Error {
        StatusCode::OpUnsupported
    }

    async fn init(
        &mut self,
        _version: u32,
        _extensions: HashMap<String, String>,
    ) -> Result<Version, Self::Error> {
        Ok(Version::new())
    }

    async fn realpath(&mut self, id: u32, path: String) -> Result<Name, Self::Error> {
        Ok(Name {
            id,
            files: vec![File::dummy(self.virtual_path(&path))],
        })
    }

    async fn stat(&mut self, id: u32, path: String) -> Result<Attrs, Self::Error> {
        let p = self.resolve(&path)?;
        let m = std::fs::metadata(p).map_err(|e| status_of(&e))?;
        Ok(Attrs {
            id,
            attrs: FileAttributes::from(&m),
        })
    }

    async fn lstat(&mut self, id: u32, path: String) -> Result<Attrs, Self::Error> {
        self.stat(id, path).await
    }

    async fn open(
        &mut self,
        id: u32,
        filename: String,
        pflags: OpenFlags,
        _attrs: FileAttributes,
    ) -> Result<Handle, Self::Error> {
        if pflags.intersects(
            OpenFlags::WRITE | OpenFlags::APPEND | OpenFlags::CREATE | OpenFlags::TRUNCATE,
        ) {
            return Err(StatusCode::PermissionDenied);
        }
        let p = self.resolve(&filename)?;
        let f = std::fs::File::open(p).map_err(|e| status_of(&e))?;
        Ok(Handle {
            id,
            handle: self.handle(Open::File(f)),
        })
    }

    async fn fstat(&mut self, id: u32, handle: String) -> Result<Attrs, Self::Error> {
        match self.handles.get(&handle) {
            Some(Open::File(f)) => {
                let m = f.metadata().map_err(|e| status_of(&e))?;
                Ok(Attrs {
                    id,
                    attrs: FileAttributes::from(&m),
                })
            }
            _ => Err(StatusCode::Failure),
        }
    }

    async fn read(
        &mut self,
        id: u32,
        handle: String,
        offset: u64,
        len: u32,
    ) -> Result<Data, Self::Error> {
        let Some(Open::File(f)) = self.handles.get(&handle) else {
            return Err(StatusCode::Failure);
        };
        let mut buf = vec![0u8; len.min(256 * 1024) as usize];
        let n = f.read_at(&mut buf, offset).map_err(|e| status_of(&e))?;
        if n == 0 {
            return Err(StatusCode::Eof);
        }
        buf.truncate(n);
        Ok(Data { id, data: buf })
    }

    async fn opendir(&mut self, id: u32, path: String) -> Result<Handle, Self::Error> {
        let p = self.resolve(&path)?;
        let mut files = Vec::new();
        for e in std::fs::read_dir(p).map_err(|e| status_of(&e))? {
            let e = e.map_err(|e| status_of(&e))?;
            let m = e.metadata().map_err(|e| status_of(&e))?;
            files.push(File::new(
                e.file_name().to_string_lossy().into_owned(),
                FileAttributes::from(&m),
            ));
        }
        Ok(Handle {
            id,
            handle: self.handle(Open::Dir(Some(files))),
        })
    }

    async fn readdir(&mut self, id: u32, handle: String) -> Result<Name, Self::Error> {
        match self.handles.get_mut(&handle) {
            Some(Open::Dir(files)) => match files.take() {
                Some(files) => Ok(Name { id, files }),
                None => Err(StatusCode::Eof),
            },
            _ => Err(StatusCode::Failure),
        }
    }

    async fn close(&mut self, id: u32, handle: String) -> Result<Status, Self::Error> {
        self.handles.remove(&handle);
        Ok(Status {
            id,
            status_code: StatusCode::Ok,
            error_message: "Ok".into(),
            language_tag: "en-US".into(),
        })
    }
}
