//! The configuration file (DESIGN §3): parsed once, validated once, into a typed [`Config`].
//!
//! Everything a sysadmin can get wrong is caught here, before any host is contacted: unknown keys,
//! bad values, duplicate host names, hosts with nothing to do. Every error names the file, the line
//! and the key, and says what is expected. The rest of the program only ever sees a [`Config`], so
//! it never has to re-check a value.
//!
//! Relative paths in the file are resolved against the directory holding the file.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use serde::de::{self, Deserializer};
use toml::Spanned;

/// Where the configuration is looked for when neither `--config` nor `LOGHOST_CONFIG` is given.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/loghost/loghost.toml";

/// A validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file this was read from (for messages).
    pub source: PathBuf,
    /// The archive root; everything loghost writes, except keys, lives under it.
    pub store: PathBuf,
    pub compression: Compression,
    /// zstd 1-19 (default 1: keeps up with a fast network on one core, and on logs compresses
    /// about as well as 3), gzip 1-9 (default 6).
    pub compression_level: i32,
    /// Collected blocks re-read and compared with the archive per file and round (0: none).
    pub audit_samples: u32,
    pub ssh: SshConfig,
    pub hosts: Vec<HostConfig>,
    pub receiver: Option<ReceiverConfig>,
    pub ledger: LedgerConfig,
    pub retention: RetentionConfig,
    /// Where `loghost run` serves Prometheus metrics (`None`: not served).
    pub metrics_listen: Option<std::net::SocketAddr>,
    /// How to reach S3-compatible object storage, for `s3://` archive targets and anchors.
    pub s3: Option<S3Config>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Config {
    /// e.g. `https://s3.example.org` or `http://127.0.0.1:9000`; `None`: AWS's own endpoints.
    pub endpoint: Option<String>,
    pub region: String,
    /// Path-style requests (`endpoint/bucket/key`), as most local S3 servers want.
    pub path_style: bool,
    /// Credentials; without them the usual AWS sources (environment, profile) are used.
    pub access_key_id: Option<String>,
    /// A file holding the secret access key (kept out of the config), mode 0600.
    pub secret_access_key_file: Option<PathBuf>,
    /// Archive into a bucket without Object Lock (the copies could then be deleted).
    pub allow_unlocked: bool,
    /// Accept an `http://` endpoint. Off: without TLS, anyone on the path could answer the
    /// uploads and read-backs and make loghost delete local files that were never stored.
    pub allow_insecure_endpoint: bool,
}

/// How stored frames are compressed. Both are readable with stock tools (`zstdcat`, `zcat`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    #[default]
    Zstd,
    Gzip,
}

impl Compression {
    /// The suffix of stored files.
    pub fn suffix(self) -> &'static str {
        match self {
            Compression::Zstd => ".zst",
            Compression::Gzip => ".gz",
        }
    }
}

#[derive(Debug, Clone)]
pub struct SshConfig {
    /// The client's private key (OpenSSH format); `identity.pub` sits beside it.
    pub identity: PathBuf,
    /// Pinned host keys, OpenSSH known_hosts format, written by `loghost trust`.
    pub known_hosts: PathBuf,
    /// Limit for TCP connect, SSH handshake, authentication and SFTP start together.
    pub connect_timeout: Duration,
    /// Limit for any single SFTP request (a read, a directory listing) to be answered.
    pub io_timeout: Duration,
    /// How many hosts are pulled at once.
    pub concurrency: usize,
    /// The most raw bytes read from one log in one round; the rest follows in the next rounds
    /// (a file that grows forever, or a server claiming a huge size, cannot hold a round).
    pub max_file_bytes_per_round: u64,
}

/// One `[[host]]` table.
#[derive(Debug, Clone)]
pub struct HostConfig {
    /// Directory name under the store; `[A-Za-z0-9._-]`, not starting with a dot.
    pub name: String,
    /// Where to pull from; `None` for a receive-only host.
    pub address: Option<Address>,
    pub user: String,
    pub schedule: Schedule,
    pub hourly: bool,
    /// At first sight of a log, also collect the rotated generations the server still holds
    /// (`auth.log.1`, `auth.log.2.gz`, …), oldest first; `false`: from now on only.
    pub history: bool,
    /// Remote log files read incrementally (appended to); globs allowed in any component.
    pub paths: Vec<String>,
    /// Remote files rewritten in place (lastlog, utmp): stored whole when they change.
    pub snapshot: Vec<String>,
    /// Directories holding systemd journal files (`*.journal`, `*.journal~`), globs allowed;
    /// empty when the journal is not collected. `journal = true` alone means
    /// [`DEFAULT_JOURNAL_DIRS`].
    pub journal_dirs: Vec<String>,
    pub tls_name: Option<String>,
    pub tls_fingerprint: Option<String>,
    pub stale_after: Option<Duration>,
    /// Line in the config file where this host's table starts (for messages).
    pub line: usize,
}

/// Where journald keeps its files: persistent, then volatile (`/run`, when `Storage=volatile`
/// or before the first flush); one directory per machine id.
pub const DEFAULT_JOURNAL_DIRS: [&str; 2] = ["/var/log/journal/*", "/run/log/journal/*"];

impl HostConfig {
    /// True when this host is pulled over SSH.
    pub fn is_pulled(&self) -> bool {
        self.address.is_some()
    }
}

/// A host's SSH address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Address {
    pub host: String,
    pub port: u16,
}

impl Address {
    /// The host name as written in known_hosts: `host` for port 22, `[host]:port` otherwise.
    pub fn known_hosts_name(&self) -> String {
        let host = self.host.to_ascii_lowercase();
        if self.port == 22 {
            host
        } else {
            format!("[{host}]:{}", self.port)
        }
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// When the daemon pulls a host.
#[derive(Debug, Clone)]
pub enum Schedule {
    Every(Duration),
    Cron(String),
}

#[derive(Debug, Clone)]
pub struct ReceiverConfig {
    /// Syslog over TLS (RFC 5425); `None` when only RELP is received.
    pub listen: Option<std::net::SocketAddr>,
    /// RELP over TLS: acknowledged once stored durably.
    pub relp_listen: Option<std::net::SocketAddr>,
    pub cert: PathBuf,
    pub key: PathBuf,
    pub client_ca: PathBuf,
    pub max_connections: usize,
    pub max_message_size: usize,
    pub handshake_timeout: Duration,
    pub idle_timeout: Duration,
    /// Connections one address may hold, counted from accept (before any certificate is
    /// seen): one client cannot take every slot.
    pub max_connections_per_address: usize,
    /// Connections one identified host may hold.
    pub max_connections_per_host: usize,
    /// How long connections may keep sending after SIGTERM before they are cut.
    pub drain_timeout: Duration,
}

#[derive(Debug, Clone)]
pub struct LedgerConfig {
    /// The Ed25519 key that signs checkpoints (signed-note private key format).
    pub signing_key: PathBuf,
    /// The checkpoints' origin line, and the signer's key name.
    pub origin: String,
    pub checkpoint_every: Duration,
    /// Where every new checkpoint is copied (`file:///…` or `s3://…`).
    pub anchors: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct RetentionConfig {
    pub online_days: u32,
    pub archive: Option<String>,
    pub object_lock_days: u32,
}

/// Why a configuration could not be used. The message is meant for the sysadmin as is.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(
        "cannot read config {path}: {err}\n(give another with --config FILE or LOGHOST_CONFIG)"
    )]
    Read { path: PathBuf, err: std::io::Error },
    #[error("invalid config {path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

/// A problem with how loghost is set up or called (arguments, keys, known_hosts), as opposed to
/// a failure at its job: the command exits 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SetupError(pub String);

// ---------------------------------------------------------------------------------------------
// The file as written. Newtypes validate while deserializing, so the TOML parser attaches the
// line and column of the offending value to the message.

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    store: PathBuf,
    #[serde(default)]
    compression: Compression,
    compression_level: Option<Spanned<i64>>,
    audit_samples: Option<AuditSamples>,
    #[serde(default)]
    ssh: RawSsh,
    #[serde(default, rename = "host")]
    hosts: Vec<Spanned<RawHost>>,
    receiver: Option<RawReceiver>,
    #[serde(default)]
    ledger: RawLedger,
    #[serde(default)]
    retention: RawRetention,
    metrics_listen: Option<std::net::SocketAddr>,
    s3: Option<RawS3>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawS3 {
    endpoint: Option<Endpoint>,
    region: Option<String>,
    #[serde(default)]
    path_style: bool,
    access_key_id: Option<String>,
    secret_access_key_file: Option<PathBuf>,
    #[serde(default)]
    allow_unlocked: bool,
    #[serde(default)]
    allow_insecure_endpoint: bool,
}

/// An S3 endpoint URL: `http(s)://host[:port]`.
struct Endpoint(String);

impl<'de> Deserialize<'de> for Endpoint {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let ok = (s.starts_with("https://") || s.starts_with("http://"))
            && !s.contains(char::is_whitespace);
        if !ok {
            return Err(de::Error::custom(format!(
                "invalid endpoint {s:?}: expected an URL such as \"https://s3.example.org\""
            )));
        }
        Ok(Endpoint(s.trim_end_matches('/').to_string()))
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawSsh {
    identity: Option<PathBuf>,
    known_hosts: Option<PathBuf>,
    connect_timeout: Option<Dur>,
    io_timeout: Option<Dur>,
    concurrency: Option<Concurrency>,
    max_file_bytes_per_round: Option<ByteSize>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHost {
    name: Spanned<HostName>,
    address: Option<Address>,
    user: Option<UserName>,
    every: Option<Dur>,
    cron: Option<CronExpr>,
    #[serde(default)]
    hourly: bool,
    history: Option<bool>,
    #[serde(default)]
    paths: Vec<RemotePattern>,
    #[serde(default)]
    snapshot: Vec<RemotePattern>,
    journal: Option<bool>,
    journal_dirs: Option<Vec<RemotePattern>>,
    tls_name: Option<TlsName>,
    tls_fingerprint: Option<Fingerprint>,
    stale_after: Option<Dur>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawReceiver {
    listen: Option<std::net::SocketAddr>,
    relp_listen: Option<std::net::SocketAddr>,
    cert: PathBuf,
    key: PathBuf,
    client_ca: PathBuf,
    max_connections: Option<Positive>,
    max_message_size: Option<Positive>,
    handshake_timeout: Option<Dur>,
    idle_timeout: Option<Dur>,
    max_connections_per_address: Option<Positive>,
    max_connections_per_host: Option<Positive>,
    drain_timeout: Option<Dur>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawLedger {
    signing_key: Option<PathBuf>,
    origin: Option<Origin>,
    checkpoint_every: Option<Dur>,
    #[serde(default)]
    anchors: Vec<TargetUrl>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawRetention {
    online_days: Option<Positive>,
    archive: Option<TargetUrl>,
    object_lock_days: Option<Positive>,
}

/// A duration such as `10s`, `15m`, `1h 30m`.
struct Dur(Duration);

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        match humantime::parse_duration(&s) {
            Ok(v) if !v.is_zero() => Ok(Dur(v)),
            Ok(_) => Err(de::Error::custom("a duration must be longer than zero")),
            Err(e) => Err(de::Error::custom(format!(
                "invalid duration {s:?} ({e}); expected e.g. \"30s\", \"15m\", \"1h\""
            ))),
        }
    }
}

struct Positive(u64);

impl<'de> Deserialize<'de> for Positive {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = i64::deserialize(d)?;
        if v <= 0 {
            return Err(de::Error::custom(format!(
                "expected a whole number above zero, found {v}"
            )));
        }
        Ok(Positive(v as u64))
    }
}

struct AuditSamples(u32);

impl<'de> Deserialize<'de> for AuditSamples {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = i64::deserialize(d)?;
        if !(0..=1000).contains(&v) {
            return Err(de::Error::custom(format!(
                "expected a number of audit samples per file and round from 0 to 1000, found {v}"
            )));
        }
        Ok(AuditSamples(v as u32))
    }
}

/// A byte count: an integer, or a string with a unit (`"512MiB"`, `"4GiB"`, `"100kB"`).
struct ByteSize(u64);

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Int(i64),
            Text(String),
        }
        let v = match Raw::deserialize(d)? {
            Raw::Int(v) => u64::try_from(v).ok(),
            Raw::Text(t) => parse_byte_size(&t),
        };
        match v {
            Some(v) if v >= 4096 => Ok(ByteSize(v)),
            _ => Err(de::Error::custom(
                "expected a size of at least 4096 bytes: a number of bytes or a string such as \
                 \"512MiB\" or \"4GiB\"",
            )),
        }
    }
}

/// `"4GiB"` → 4·2^30; units B, kB/KiB, MB/MiB, GB/GiB, TB/TiB (decimal and binary).
fn parse_byte_size(t: &str) -> Option<u64> {
    let t = t.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num.parse().ok()?;
    let mult: u64 = match unit.trim() {
        "" | "B" => 1,
        "kB" | "KB" => 1_000,
        "KiB" => 1 << 10,
        "MB" => 1_000_000,
        "MiB" => 1 << 20,
        "GB" => 1_000_000_000,
        "GiB" => 1 << 30,
        "TB" => 1_000_000_000_000,
        "TiB" => 1 << 40,
        _ => return None,
    };
    n.checked_mul(mult)
}

struct Concurrency(usize);

impl<'de> Deserialize<'de> for Concurrency {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = i64::deserialize(d)?;
        if !(1..=1024).contains(&v) {
            return Err(de::Error::custom(format!(
                "expected a number of hosts pulled at once between 1 and 1024, found {v}"
            )));
        }
        Ok(Concurrency(v as usize))
    }
}

/// Checks a host name: it becomes a directory name under the store.
pub fn check_host_name(s: &str) -> Result<(), String> {
    let ok_chars = s
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if s.is_empty() || s.len() > 64 || !ok_chars || s.starts_with('.') {
        return Err(format!(
            "invalid host name {s:?}: it becomes a directory name, so use 1 to 64 of \
             [A-Za-z0-9._-], not starting with '.'"
        ));
    }
    Ok(())
}

struct HostName(String);

impl<'de> Deserialize<'de> for HostName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        check_host_name(&s).map_err(de::Error::custom)?;
        Ok(HostName(s))
    }
}

impl<'de> Deserialize<'de> for Address {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        parse_address(&s).map_err(de::Error::custom)
    }
}

/// Parses `host`, `host:port`, `[v6]` or `[v6]:port` (port 22 when absent).
pub fn parse_address(s: &str) -> Result<Address, String> {
    let bad = || {
        format!(
            "invalid address {s:?}: expected \"host\", \"host:port\" or \"[ipv6]:port\", \
             e.g. \"web1.example.org:22\""
        )
    };
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (h, after) = rest.split_once(']').ok_or_else(bad)?;
        match after {
            "" => (h, None),
            p => (h, Some(p.strip_prefix(':').ok_or_else(bad)?)),
        }
    } else if s.matches(':').count() > 1 {
        (s, None) // a bare IPv6 address
    } else {
        match s.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (s, None),
        }
    };
    let port = match port {
        None => 22,
        Some(p) => match p.parse::<u16>() {
            Ok(p) if p > 0 => p,
            _ => return Err(bad()),
        },
    };
    let host_ok = !host.is_empty()
        && host.len() <= 253
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b':' | b'%'));
    if !host_ok {
        return Err(bad());
    }
    Ok(Address {
        host: host.to_string(),
        port,
    })
}

struct UserName(String);

impl<'de> Deserialize<'de> for UserName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let ok = !s.is_empty()
            && s.len() <= 64
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        if !ok {
            return Err(de::Error::custom(format!(
                "invalid user {s:?}: expected a login name such as \"logpull\""
            )));
        }
        Ok(UserName(s))
    }
}

struct CronExpr(String);

impl<'de> Deserialize<'de> for CronExpr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        croner::parser::CronParser::builder()
            .build()
            .parse(&s)
            .map_err(|e| {
                de::Error::custom(format!(
                    "invalid cron expression {s:?} ({e}); expected five fields, \
                     e.g. \"0 */4 * * *\""
                ))
            })?;
        Ok(CronExpr(s))
    }
}

/// A remote path pattern: absolute, no `.` or `..` component, globs (`*`, `?`, `[…]`) allowed in
/// any component.
struct RemotePattern(String);

impl<'de> Deserialize<'de> for RemotePattern {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        check_remote_pattern(&s).map_err(de::Error::custom)?;
        Ok(RemotePattern(s))
    }
}

/// Checks a remote path pattern from the config.
pub fn check_remote_pattern(s: &str) -> Result<(), String> {
    if !s.starts_with('/') {
        return Err(format!(
            "invalid remote path {s:?}: expected an absolute path such as \"/var/log/syslog\""
        ));
    }
    if s.chars().any(char::is_control) {
        return Err(format!(
            "invalid remote path {s:?}: control characters are not allowed"
        ));
    }
    for comp in s[1..].split('/') {
        if comp.is_empty() || comp == "." || comp == ".." {
            return Err(format!(
                "invalid remote path {s:?}: empty, '.' and '..' components are not allowed"
            ));
        }
        if is_glob(comp) {
            globset::Glob::new(comp)
                .map_err(|e| format!("invalid glob {comp:?} in remote path {s:?}: {e}"))?;
        }
    }
    if is_glob(s.rsplit('/').next().unwrap_or_default()) && s.ends_with('/') {
        return Err(format!("invalid remote path {s:?}: must name files"));
    }
    Ok(())
}

struct TlsName(String);

impl<'de> Deserialize<'de> for TlsName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let ok = !s.is_empty()
            && s.len() <= 253
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b'*'));
        if !ok {
            return Err(de::Error::custom(format!(
                "invalid tls_name {s:?}: expected the DNS name in the host's certificate, \
                 e.g. \"web1.example.org\""
            )));
        }
        Ok(TlsName(s.to_ascii_lowercase()))
    }
}

/// A certificate fingerprint: SHA-256, 64 hex digits (colons allowed), optionally `sha256:`-prefixed.
struct Fingerprint(String);

impl<'de> Deserialize<'de> for Fingerprint {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let body = s
            .strip_prefix("sha256:")
            .or_else(|| s.strip_prefix("SHA256:"))
            .unwrap_or(&s);
        let hexdigits: String = body.chars().filter(|c| *c != ':').collect();
        if hexdigits.len() != 64 || !hexdigits.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(de::Error::custom(format!(
                "invalid tls_fingerprint {s:?}: expected the certificate's SHA-256 as 64 hex \
                 digits (as printed by `openssl x509 -noout -fingerprint -sha256`)"
            )));
        }
        Ok(Fingerprint(hexdigits.to_ascii_lowercase()))
    }
}

struct Origin(String);

impl<'de> Deserialize<'de> for Origin {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        if !signed_note::is_key_name_valid(&s) {
            return Err(de::Error::custom(format!(
                "invalid origin {s:?}: expected a schema-less URL without spaces or '+', \
                 e.g. \"loghost.example.org/archive\""
            )));
        }
        Ok(Origin(s))
    }
}

/// An anchor or archive target: `file:///absolute/dir` or `s3://bucket/prefix`.
struct TargetUrl(String);

impl<'de> Deserialize<'de> for TargetUrl {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let ok = if let Some(p) = s.strip_prefix("file://") {
            p.starts_with('/') && !p.split('/').any(|c| c == "..")
        } else if let Some(rest) = s.strip_prefix("s3://") {
            let bucket = rest.split('/').next().unwrap_or_default();
            (3..=63).contains(&bucket.len())
                && bucket
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        } else {
            false
        };
        if !ok {
            return Err(de::Error::custom(format!(
                "invalid target {s:?}: expected \"file:///absolute/dir\" or \"s3://bucket/prefix\""
            )));
        }
        Ok(TargetUrl(s))
    }
}

// ---------------------------------------------------------------------------------------------

impl Config {
    /// Finds the config path: `--config`, else `LOGHOST_CONFIG`, else the default.
    pub fn locate(flag: Option<&Path>) -> PathBuf {
        if let Some(p) = flag {
            return p.to_path_buf();
        }
        match std::env::var_os("LOGHOST_CONFIG") {
            Some(p) if !p.is_empty() => PathBuf::from(p),
            _ => PathBuf::from(DEFAULT_CONFIG_PATH),
        }
    }

    /// Reads and validates a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|err| ConfigError::Read {
            path: path.to_path_buf(),
            err,
        })?;
        Config::parse(&text, path)
    }

    /// Validates config text; `path` names it in messages and anchors relative paths.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let invalid = |message: String| ConfigError::Invalid {
            path: path.to_path_buf(),
            message,
        };
        let raw: RawConfig = toml::from_str(text).map_err(|e| invalid(format!("\n{e}")))?;
        let base = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        let base = std::path::absolute(&base).unwrap_or(base);
        let resolve = |p: &Path| -> PathBuf {
            if p.is_absolute() {
                p.to_path_buf()
            } else {
                base.join(p)
            }
        };
        let line_of = |offset: usize| {
            text.as_bytes()[..offset.min(text.len())]
                .iter()
                .filter(|&&b| b == b'\n')
                .count()
                + 1
        };

        if raw.store.as_os_str().is_empty() {
            return Err(invalid(
                "key `store` is empty: expected the archive directory, e.g. \"/var/lib/loghost\""
                    .into(),
            ));
        }

        let ssh = SshConfig {
            identity: resolve(
                raw.ssh
                    .identity
                    .as_deref()
                    .unwrap_or(Path::new("id_ed25519")),
            ),
            known_hosts: resolve(
                raw.ssh
                    .known_hosts
                    .as_deref()
                    .unwrap_or(Path::new("known_hosts")),
            ),
            connect_timeout: raw
                .ssh
                .connect_timeout
                .map_or(Duration::from_secs(10), |d| d.0),
            io_timeout: raw.ssh.io_timeout.map_or(Duration::from_secs(30), |d| d.0),
            concurrency: raw.ssh.concurrency.map_or(16, |c| c.0),
            max_file_bytes_per_round: raw.ssh.max_file_bytes_per_round.map_or(4 << 30, |b| b.0),
        };

        let mut hosts = Vec::new();
        let mut seen: HashMap<String, usize> = HashMap::new();
        let mut tls_seen: HashMap<String, usize> = HashMap::new();
        for spanned in raw.hosts {
            let line = line_of(spanned.span().start);
            let h = spanned.into_inner();
            let name_line = line_of(h.name.span().start);
            let name = h.name.into_inner().0;
            let at = |msg: &str| invalid(format!("line {line}: [[host]] {name:?}: {msg}"));
            if let Some(first) = seen.insert(name.clone(), name_line) {
                return Err(invalid(format!(
                    "line {name_line}: key `name`: host name {name:?} is already used on line \
                     {first}; every host needs its own name"
                )));
            }
            if h.every.is_some() && h.cron.is_some() {
                return Err(at(
                    "set either `every` or `cron`, not both (they are two ways to schedule pulls)",
                ));
            }
            let journal_dirs: Vec<String> = match (h.journal, h.journal_dirs) {
                (Some(false), Some(_)) => {
                    return Err(at(
                        "`journal_dirs` is set but `journal = false`; remove one of them",
                    ));
                }
                (_, Some(dirs)) if dirs.is_empty() => {
                    return Err(at(
                        "`journal_dirs` is empty; remove it to read journald's own directories",
                    ));
                }
                (_, Some(dirs)) => dirs.into_iter().map(|d| d.0).collect(),
                (Some(true), None) => DEFAULT_JOURNAL_DIRS.iter().map(|d| d.to_string()).collect(),
                (_, None) => Vec::new(),
            };
            let pulls = !h.paths.is_empty() || !h.snapshot.is_empty() || !journal_dirs.is_empty();
            match (&h.address, pulls, &h.tls_name) {
                (Some(_), false, _) => {
                    return Err(at("has an `address` but nothing to pull; add e.g. \
                         paths = [\"/var/log/syslog\"] or journal = true"));
                }
                (None, true, _) => {
                    return Err(at(
                        "has `paths` or `journal` but no `address` to pull them from; add e.g. \
                         address = \"web1.example.org:22\"",
                    ));
                }
                (None, false, None) => {
                    return Err(at(
                        "has nothing to do: give `address` and `paths` to pull, and/or \
                         `tls_name` to receive",
                    ));
                }
                _ => {}
            }
            if let Some(t) = &h.tls_name
                && let Some(first) = tls_seen.insert(t.0.clone(), line)
            {
                return Err(at(&format!(
                    "key `tls_name`: {:?} is already the tls_name of the host on line {first}; \
                     a certificate must name exactly one host",
                    t.0
                )));
            }
            if h.tls_fingerprint.is_some() && h.tls_name.is_none() {
                return Err(at("`tls_fingerprint` needs `tls_name` as well"));
            }
            let schedule = match (h.every, h.cron) {
                (_, Some(c)) => Schedule::Cron(c.0),
                (Some(e), None) => Schedule::Every(e.0),
                (None, None) => Schedule::Every(Duration::from_secs(3600)),
            };
            hosts.push(HostConfig {
                name,
                address: h.address,
                user: h.user.map_or_else(|| "logpull".to_string(), |u| u.0),
                schedule,
                hourly: h.hourly,
                history: h.history.unwrap_or(true),
                paths: h.paths.into_iter().map(|p| p.0).collect(),
                snapshot: h.snapshot.into_iter().map(|p| p.0).collect(),
                journal_dirs,
                tls_name: h.tls_name.map(|t| t.0),
                tls_fingerprint: h.tls_fingerprint.map(|f| f.0),
                stale_after: h.stale_after.map(|d| d.0),
                line,
            });
        }

        if raw
            .receiver
            .as_ref()
            .is_some_and(|r| r.listen.is_none() && r.relp_listen.is_none())
        {
            return Err(invalid(
                "[receiver] has neither `listen` (syslog over TLS, e.g. \"0.0.0.0:6514\") nor \
                 `relp_listen` (RELP over TLS, e.g. \"0.0.0.0:2514\"); set one or both"
                    .into(),
            ));
        }
        if let Some(r) = &raw.receiver
            && r.listen.is_some()
            && r.listen == r.relp_listen
        {
            return Err(invalid(
                "[receiver] `listen` and `relp_listen` are the same address; give each its own port"
                    .into(),
            ));
        }
        let receiver = raw.receiver.map(|r| ReceiverConfig {
            listen: r.listen,
            relp_listen: r.relp_listen,
            cert: resolve(&r.cert),
            key: resolve(&r.key),
            client_ca: resolve(&r.client_ca),
            max_connections: r.max_connections.map_or(2048, |v| v.0 as usize),
            max_message_size: r.max_message_size.map_or(65536, |v| v.0 as usize),
            handshake_timeout: r.handshake_timeout.map_or(Duration::from_secs(10), |d| d.0),
            idle_timeout: r.idle_timeout.map_or(Duration::from_secs(300), |d| d.0),
            max_connections_per_address: r
                .max_connections_per_address
                .map_or(128, |v| v.0 as usize),
            max_connections_per_host: r.max_connections_per_host.map_or(64, |v| v.0 as usize),
            drain_timeout: r.drain_timeout.map_or(Duration::from_secs(10), |d| d.0),
        });

        let ledger = LedgerConfig {
            signing_key: resolve(
                raw.ledger
                    .signing_key
                    .as_deref()
                    .unwrap_or(Path::new("ledger.key")),
            ),
            origin: raw.ledger.origin.map_or_else(default_origin, |o| o.0),
            checkpoint_every: raw
                .ledger
                .checkpoint_every
                .map_or(Duration::from_secs(60), |d| d.0),
            anchors: raw.ledger.anchors.into_iter().map(|a| a.0).collect(),
        };

        let retention = RetentionConfig {
            online_days: raw.retention.online_days.map_or(30, |v| v.0 as u32),
            archive: raw.retention.archive.map(|a| a.0),
            object_lock_days: raw.retention.object_lock_days.map_or(365, |v| v.0 as u32),
        };

        let compression_level = match (raw.compression, raw.compression_level) {
            (Compression::Zstd, None) => 1,
            (Compression::Gzip, None) => 6,
            (c, Some(l)) => {
                let range = match c {
                    Compression::Zstd => 1..=19,
                    Compression::Gzip => 1..=9,
                };
                let v = *l.get_ref();
                if !range.contains(&v) {
                    return Err(invalid(format!(
                        "line {}: key `compression_level`: {v} is out of range; {} takes {} to {}",
                        line_of(l.span().start),
                        if c == Compression::Zstd {
                            "zstd"
                        } else {
                            "gzip"
                        },
                        range.start(),
                        range.end()
                    )));
                }
                v as i32
            }
        };

        if let Some(r) = &raw.s3
            && let Some(e) = &r.endpoint
            && e.0.starts_with("http://")
            && !r.allow_insecure_endpoint
        {
            return Err(invalid(format!(
                "[s3] endpoint {:?} is plain http: anyone on the path could fake the uploads \
                 and read-backs that decide when local files are deleted. Use https://, or set \
                 `allow_insecure_endpoint = true` in [s3] for a server on this machine",
                e.0
            )));
        }
        let s3 = raw.s3.map(|r| S3Config {
            endpoint: r.endpoint.map(|e| e.0),
            region: r.region.unwrap_or_else(|| "us-east-1".to_string()),
            path_style: r.path_style,
            access_key_id: r.access_key_id,
            secret_access_key_file: r.secret_access_key_file.as_deref().map(resolve),
            allow_unlocked: r.allow_unlocked,
            allow_insecure_endpoint: r.allow_insecure_endpoint,
        });
        let uses_s3 = retention
            .archive
            .iter()
            .chain(&ledger.anchors)
            .any(|t| t.starts_with("s3://"));
        if uses_s3 && s3.is_none() {
            return Err(invalid(
                "an s3:// target is configured but there is no [s3] table: add one with at \
                 least `region` (and `endpoint` for a non-AWS server)"
                    .into(),
            ));
        }

        Ok(Config {
            source: path.to_path_buf(),
            store: resolve(&raw.store),
            compression: raw.compression,
            compression_level,
            audit_samples: raw.audit_samples.map_or(4, |a| a.0),
            ssh,
            hosts,
            receiver,
            ledger,
            retention,
            metrics_listen: raw.metrics_listen,
            s3,
        })
    }

    /// The host with this name.
    pub fn host(&self, name: &str) -> Option<&HostConfig> {
        self.hosts.iter().find(|h| h.name == name)
    }

    /// [`Config::select_pulled`], the hosts cloned, an unknown name a [`SetupError`] (exit 2).
    pub fn pulled_hosts(&self, names: &[String]) -> Result<Vec<HostConfig>, SetupError> {
        Ok(self
            .select_pulled(names)
            .map_err(SetupError)?
            .into_iter()
            .cloned()
            .collect())
    }

    /// The named hosts, or all pulled hosts when `names` is empty. An unknown or receive-only
    /// name is an error that lists what is configured.
    pub fn select_pulled(&self, names: &[String]) -> Result<Vec<&HostConfig>, String> {
        if names.is_empty() {
            return Ok(self.hosts.iter().filter(|h| h.is_pulled()).collect());
        }
        let mut out = Vec::new();
        for n in names {
            match self.host(n) {
                Some(h) if h.is_pulled() => {
                    if !out.iter().any(|o: &&HostConfig| o.name == h.name) {
                        out.push(h);
                    }
                }
                Some(_) => {
                    return Err(format!(
                        "host {n:?} is receive-only (no `address`); nothing to pull"
                    ));
                }
                None => {
                    let known: Vec<&str> = self
                        .hosts
                        .iter()
                        .filter(|h| h.is_pulled())
                        .map(|h| h.name.as_str())
                        .collect();
                    return Err(format!(
                        "no host named {n:?} in {}; configured: {}",
                        self.source.display(),
                        if known.is_empty() {
                            "none".to_string()
                        } else {
                            known.join(", ")
                        }
                    ));
                }
            }
        }
        Ok(out)
    }
}

/// `<this machine's host name>/loghost`: unique enough per loghost, stable across restarts.
fn default_origin() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty() && signed_note::is_key_name_valid(s))
        .unwrap_or_else(|| "localhost".to_string());
    format!("{host}/loghost")
}

/// Whether a path component is a glob pattern (`*`, `?`, `[`).
pub fn is_glob(component: &str) -> bool {
    component.contains(['*', '?', '['])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, String> {
        Config::parse(text, Path::new("/etc/loghost/loghost.toml")).map_err(|e| e.to_string())
    }

    const DESIGN_EXAMPLE: &str = r#"
store = "/var/lib/loghost"
compression = "zstd"

[ssh]
identity = "/etc/loghost/id_ed25519"
known_hosts = "/etc/loghost/known_hosts"
connect_timeout = "10s"
concurrency = 16

[[host]]
name = "web1"
address = "web1.example.org:22"
user = "logpull"
every = "1h"
hourly = false
paths = ["/var/log/auth.log", "/var/log/syslog", "/var/log/nginx/*.log"]
snapshot = ["/var/log/lastlog"]
tls_name = "web1.example.org"

[receiver]
listen = "0.0.0.0:6514"
relp_listen = "0.0.0.0:2514"
cert = "/etc/loghost/tls/server.pem"
key = "/etc/loghost/tls/server.key"
client_ca = "/etc/loghost/tls/clients-ca.pem"

[ledger]
signing_key = "/etc/loghost/ledger.key"
origin = "loghost.example.org/archive"
checkpoint_every = "1m"
anchors = ["file:///mnt/auditor/checkpoints", "s3://audit-bucket/loghost"]

[retention]
online_days = 30
archive = "s3://logs-archive/loghost"
object_lock_days = 365

[s3]
region = "eu-west-1"
"#;

    #[test]
    fn byte_sizes() {
        assert_eq!(parse_byte_size("4GiB"), Some(4 << 30));
        assert_eq!(parse_byte_size("100kB"), Some(100_000));
        assert_eq!(parse_byte_size("12345"), Some(12345));
        assert_eq!(parse_byte_size("1 MiB"), Some(1 << 20));
        assert_eq!(parse_byte_size("4 parsecs"), None);
        assert_eq!(parse_byte_size("99999999999TiB"), None);
        let c = parse("store = \"/s\"\n[ssh]\nmax_file_bytes_per_round = \"64MiB\"\n").expect("ok");
        assert_eq!(c.ssh.max_file_bytes_per_round, 64 << 20);
        let e =
            parse("store = \"/s\"\n[ssh]\nmax_file_bytes_per_round = 10\n").expect_err("too small");
        assert!(
            e.contains("max_file_bytes_per_round") && e.contains("4096"),
            "{e}"
        );
    }

    #[test]
    fn the_shipped_example_config_loads() {
        let text = include_str!("../dist/loghost.toml");
        let c = parse(text).expect("dist/loghost.toml must load");
        assert_eq!(c.hosts.len(), 2);
        assert_eq!(c.retention.online_days, 30);
        assert_eq!(c.ssh.identity, PathBuf::from("/etc/loghost/id_ed25519"));
        assert!(c.hosts[0].history, "history is on by default");
        let off = text.replacen("# history = false", "history = false", 1);
        assert!(!parse(&off).expect("history = false loads").hosts[0].history);
    }

    #[test]
    fn design_example_loads() {
        let c = parse(DESIGN_EXAMPLE).expect("the DESIGN example must load");
        assert_eq!(c.store, PathBuf::from("/var/lib/loghost"));
        assert_eq!(c.hosts.len(), 1);
        let h = &c.hosts[0];
        assert_eq!(h.name, "web1");
        assert_eq!(
            h.address,
            Some(Address {
                host: "web1.example.org".into(),
                port: 22
            })
        );
        assert_eq!(h.paths.len(), 3);
        assert_eq!(c.ledger.origin, "loghost.example.org/archive");
        assert_eq!(c.ledger.anchors.len(), 2);
        assert!(c.receiver.is_some());
        assert_eq!(h.line, 11);
    }

    #[test]
    fn defaults_and_relative_paths() {
        let c =
            parse("store = \"store\"\n[[host]]\nname = \"a\"\naddress = \"h\"\npaths = [\"/x\"]\n")
                .expect("minimal config");
        assert_eq!(c.store, PathBuf::from("/etc/loghost/store"));
        assert_eq!(c.ssh.identity, PathBuf::from("/etc/loghost/id_ed25519"));
        assert_eq!(c.ssh.connect_timeout, Duration::from_secs(10));
        assert_eq!(c.hosts[0].user, "logpull");
        assert_eq!(c.hosts[0].address.as_ref().map(|a| a.port), Some(22));
        assert_eq!(c.compression, Compression::Zstd);
    }

    #[test]
    fn unknown_key_names_key_and_line() {
        let e =
            parse("store = \"/s\"\n[ssh]\nconect_timeout = \"1s\"\n").expect_err("must be refused");
        assert!(e.contains("line 3"), "{e}");
        assert!(e.contains("conect_timeout"), "{e}");
        assert!(
            e.contains("connect_timeout"),
            "expected keys are listed: {e}"
        );
    }

    #[test]
    fn bad_values_are_explained() {
        let e = parse("store = \"/s\"\n[ssh]\nconnect_timeout = \"soon\"\n")
            .expect_err("must be refused");
        assert!(
            e.contains("line 3") && e.contains("invalid duration"),
            "{e}"
        );
        let e = parse("store = \"/s\"\ncompression = \"xz\"\n").expect_err("must be refused");
        assert!(e.contains("line 2") && e.contains("zstd"), "{e}");
        let e = parse("store = \"/s\"\ncompression = \"gzip\"\ncompression_level = 12\n")
            .expect_err("must be refused");
        assert!(e.contains("line 3") && e.contains("1 to 9"), "{e}");
        let e = parse(
            "store = \"/s\"\n[[host]]\nname = \"../etc\"\naddress = \"h\"\npaths = [\"/x\"]\n",
        )
        .expect_err("must be refused");
        assert!(
            e.contains("line 3") && e.contains("invalid host name"),
            "{e}"
        );
        let e = parse(
            "store = \"/s\"\n[[host]]\nname = \"a\"\naddress = \"h\"\npaths = [\"var/log\"]\n",
        )
        .expect_err("must be refused");
        assert!(e.contains("line 5") && e.contains("absolute"), "{e}");
        let e = parse(
            "store = \"/s\"\n[[host]]\nname = \"a\"\naddress = \"h:99999\"\npaths = [\"/x\"]\n",
        )
        .expect_err("must be refused");
        assert!(e.contains("line 4") && e.contains("invalid address"), "{e}");
        let e = parse(
            "store = \"/s\"\n[[host]]\nname = \"a\"\naddress = \"h\"\npaths = [\"/var/../etc/shadow\"]\n",
        )
        .expect_err("must be refused");
        assert!(e.contains("'..'"), "{e}");
        let e = parse("store = \"/s\"\n[ssh]\nconcurrency = 0\n").expect_err("must be refused");
        assert!(e.contains("between 1 and 1024"), "{e}");
        let e = parse(
            "store = \"/s\"\n[[host]]\nname = \"a\"\naddress = \"h\"\ncron = \"every day\"\npaths = [\"/x\"]\n",
        )
        .expect_err("must be refused");
        assert!(e.contains("line 5") && e.contains("cron"), "{e}");
    }

    #[test]
    fn cross_field_errors_name_the_line() {
        let e = parse(
            "store = \"/s\"\n[[host]]\nname = \"a\"\naddress = \"h\"\npaths = [\"/x\"]\n\
             [[host]]\nname = \"a\"\naddress = \"h2\"\npaths = [\"/x\"]\n",
        )
        .expect_err("must be refused");
        assert!(e.contains("line 7") && e.contains("line 3"), "{e}");
        let e = parse("store = \"/s\"\n[[host]]\nname = \"a\"\naddress = \"h\"\n")
            .expect_err("must be refused");
        assert!(e.contains("line 2") && e.contains("nothing to pull"), "{e}");
        let e = parse(
            "store = \"/s\"\n[[host]]\nname = \"a\"\naddress = \"h\"\njournal = false\n\
             journal_dirs = [\"/j\"]\n",
        )
        .expect_err("must be refused");
        assert!(e.contains("`journal = false`"), "{e}");
        let c = parse("store = \"/s\"\n[[host]]\nname = \"a\"\naddress = \"h\"\njournal = true\n")
            .expect("journal alone is something to pull");
        assert_eq!(c.hosts[0].journal_dirs, DEFAULT_JOURNAL_DIRS);
        let e = parse("store = \"/s\"\n[[host]]\nname = \"a\"\n").expect_err("must be refused");
        assert!(e.contains("nothing to do"), "{e}");
    }

    #[test]
    fn addresses() {
        assert_eq!(
            parse_address("[::1]:2222"),
            Ok(Address {
                host: "::1".into(),
                port: 2222
            })
        );
        assert_eq!(parse_address("::1").map(|a| a.port), Ok(22));
        assert!(parse_address("h:").is_err());
        assert!(parse_address("h:0").is_err());
        assert!(parse_address("a b").is_err());
        let a = parse_address("Web1:2222").expect("valid");
        assert_eq!(a.known_hosts_name(), "[web1]:2222");
        assert_eq!(
            parse_address("web1").expect("valid").known_hosts_name(),
            "web1"
        );
    }
}
