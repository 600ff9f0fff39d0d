//! The SSH/SFTP client side of pulling: connecting with pinned host keys and key-only
//! authentication, expanding globs on the remote side, and pipelined range reads.
//!
//! Only SFTP requests that a `ForceCommand internal-sftp -R` account answers are used (open for
//! reading, read, stat, opendir/readdir, close): loghost never runs a command on a server. The
//! one exception is `loghost check`'s read-only probe ([`Session::accepts_writes`],
//! [`Session::opens_for_writing`]), whose requests change nothing on a server that takes them.
//!
//! Host keys: the handler accepts the server only when its key's data equals a pinned key; the
//! negotiated host-key algorithms are restricted to the pinned keys' types so a server cannot
//! steer the handshake to an unpinned key. An unknown key is never trusted: it ends the
//! connection with an error that shows the offered fingerprint and the `loghost trust` command.
//!
//! Timeouts: connect, handshake, authentication and SFTP start share `connect_timeout`; every SFTP
//! request must be answered within `io_timeout`, and the SSH connection is dropped after
//! `io_timeout` of silence.

use std::borrow::Cow;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use futures::stream::FuturesOrdered;
use russh::client;
use russh::keys::PublicKeyOrCertificate;
use russh::keys::{Algorithm, EcdsaCurve, PrivateKey, PrivateKeyWithHashAlg, PublicKey};
use russh_sftp::client::RawSftpSession;
use russh_sftp::client::error::Error as SftpError;
use russh_sftp::protocol::{FileAttributes, OpenFlags, StatusCode};

use crate::config::{Address, HostConfig, SshConfig};
use crate::pull::known_hosts::{fingerprint, key_type};
use crate::sanitize::Shown;

/// Bytes asked for in one SFTP read: OpenSSH's sftp-server maximum (256 KiB − 1 KiB).
pub const READ_CHUNK: u32 = 261_120;
/// Reads kept in flight on one file.
const READS_IN_FLIGHT: usize = 16;
/// Most directory entries looked at in one directory while expanding a glob.
const MAX_DIR_ENTRIES: usize = 100_000;
/// Bytes of names one directory listing may hold (a hostile server can send 100,000 names of
/// 256 KiB each: count bytes, not only entries).
const MAX_DIR_BYTES: usize = 16 << 20;

#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    #[error("cannot connect to {address}: {reason}")]
    Connect { address: String, reason: String },
    #[error("{what} did not finish within {after:?}")]
    Timeout { what: String, after: Duration },
    #[error(
        "host key of {name} is not pinned: the server offered {ktype} {fp}. Check this \
         fingerprint out of band (on the server: `ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub`) \
         and pin it with `loghost trust {host} --fingerprint {fp}`"
    )]
    UnknownHostKey {
        host: String,
        name: String,
        ktype: String,
        fp: String,
    },
    #[error(
        "HOST KEY CHANGED for {name}: the server offered {ktype} {fp}, but {pinned} is pinned. \
         This may be an attack (someone in the middle), or the server was reinstalled. Refusing \
         to connect. If the change is legitimate, verify the new fingerprint out of band and run \
         `loghost trust {host} --fingerprint {fp}`"
    )]
    ChangedHostKey {
        host: String,
        name: String,
        ktype: String,
        fp: String,
        pinned: String,
    },
    #[error(
        "the server {name} refused the public key login as {user:?}: install the key from \
         {public_key} in that account's authorized_keys (see the README's server recipe)"
    )]
    AuthRefused {
        name: String,
        user: String,
        public_key: String,
    },
    #[error("SSH error with {name}: {reason}")]
    Ssh { name: String, reason: String },
    #[error("SFTP {what} {path}: {reason}")]
    Sftp {
        what: &'static str,
        path: String,
        reason: String,
        not_found: bool,
        /// The server said permission denied.
        denied: bool,
        /// The session is unusable (timeout, connection lost): later requests would fail too.
        lost: bool,
    },
}

/// The reason of an SFTP request the server did not answer in time.
const NO_ANSWER: &str = "no answer within io_timeout";

impl RemoteError {
    /// True when the server stopped answering (as opposed to refusing or disconnecting).
    pub fn is_timeout(&self) -> bool {
        match self {
            RemoteError::Timeout { .. } => true,
            RemoteError::Sftp { reason, .. } => reason == NO_ANSWER,
            _ => false,
        }
    }

    /// True when the file was not there (vanished between listing and reading, say).
    /// True when the connection is gone, not just one request refused.
    pub fn is_connection_lost(&self) -> bool {
        matches!(
            self,
            RemoteError::Sftp { lost: true, .. }
                | RemoteError::Timeout { .. }
                | RemoteError::Ssh { .. }
        )
    }

    /// True when the server refused the request: permission denied.
    pub fn is_denied(&self) -> bool {
        matches!(self, RemoteError::Sftp { denied: true, .. })
    }

    pub fn is_not_found(&self) -> bool {
        matches!(
            self,
            RemoteError::Sftp {
                not_found: true,
                ..
            }
        )
    }
}

fn sftp_err<'a>(what: &'static str, path: &'a str) -> impl FnOnce(SftpError) -> RemoteError + 'a {
    move |e| {
        let not_found =
            matches!(&e, SftpError::Status(s) if s.status_code == StatusCode::NoSuchFile);
        let denied =
            matches!(&e, SftpError::Status(s) if s.status_code == StatusCode::PermissionDenied);
        if matches!(e, SftpError::Timeout) {
            return RemoteError::Sftp {
                what,
                path: Shown(path).to_string(),
                reason: NO_ANSWER.to_string(),
                not_found: false,
                denied: false,
                lost: true,
            };
        }
        let lost = match &e {
            SftpError::Status(s) => matches!(
                s.status_code,
                StatusCode::ConnectionLost | StatusCode::NoConnection
            ),
            SftpError::Limited(_) => false,
            _ => true,
        };
        RemoteError::Sftp {
            what,
            path: Shown(path).to_string(),
            reason: Shown(&e.to_string()).to_string(), // may quote the server
            not_found,
            denied,
            lost,
        }
    }
}

/// The SSH client handler: checks the offered host key against the pins.
struct Client {
    pins: Vec<PublicKey>,
    offered: Arc<Mutex<Option<PublicKey>>>,
}

impl client::Handler for Client {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        offered: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        let PublicKeyOrCertificate::PublicKey { key, .. } = offered else {
            // Host certificates are not part of the trust model: keys are pinned one by one.
            return Ok(false);
        };
        if let Ok(mut slot) = self.offered.lock() {
            *slot = Some(key.clone());
        }
        Ok(self.pins.iter().any(|p| p.key_data() == key.key_data()))
    }
}

/// Host-key algorithms loghost accepts. No RSA: the SHA-1 `ssh-rsa` signature is weak, and the
/// RSA implementation available to russh has an unfixed timing advisory (RUSTSEC-2023-0071).
fn supported_key_algorithms() -> Vec<Algorithm> {
    vec![
        Algorithm::Ed25519,
        Algorithm::Ecdsa {
            curve: EcdsaCurve::NistP256,
        },
        Algorithm::Ecdsa {
            curve: EcdsaCurve::NistP384,
        },
        Algorithm::Ecdsa {
            curve: EcdsaCurve::NistP521,
        },
    ]
}

fn ssh_config(pins: &[PublicKey], io_timeout: Duration) -> client::Config {
    let mut config = client::Config::default();
    let mut algs: Vec<Algorithm> = Vec::new();
    if pins.is_empty() {
        algs = supported_key_algorithms();
    } else {
        for p in pins {
            if !algs.contains(&p.algorithm()) {
                algs.push(p.algorithm());
            }
        }
    }
    config.preferred.key = Cow::Owned(algs);
    // AES-GCM first: with AES-NI it is the cheapest AEAD for both ends (the server's encryption
    // is what limits a transfer), and 128-bit keys are a sound margin.
    config.preferred.cipher = Cow::Owned(vec![
        russh::cipher::AES_128_GCM,
        russh::cipher::AES_256_GCM,
        russh::cipher::CHACHA20_POLY1305,
        russh::cipher::AES_256_CTR,
        russh::cipher::AES_128_CTR,
    ]);
    config.window_size = 16 * 1024 * 1024;
    config.inactivity_timeout = Some(io_timeout);
    config
}

/// The TCP connection, with Nagle's algorithm off: SFTP requests are small and answered one
/// by one, and with it on a request waits for the previous one's delayed ACK (40 ms on Linux).
/// (russh's `Config::nodelay` applies only when russh opens the socket itself.)
async fn tcp_connect(address: &Address) -> Result<tokio::net::TcpStream, RemoteError> {
    let stream = tokio::net::TcpStream::connect((address.host.as_str(), address.port))
        .await
        .map_err(|e| RemoteError::Connect {
            address: address.to_string(),
            reason: e.to_string(),
        })?;
    if let Err(e) = stream.set_nodelay(true) {
        tracing::debug!("{address}: cannot turn Nagle's algorithm off: {e}");
    }
    Ok(stream)
}

/// Connects only to learn the host key the server offers (for `loghost trust`). Nothing is
/// authenticated, nothing trusted.
pub async fn offered_host_key(
    address: &Address,
    timeout: Duration,
) -> Result<PublicKey, RemoteError> {
    let offered = Arc::new(Mutex::new(None));
    let client = Client {
        pins: Vec::new(),
        offered: offered.clone(),
    };
    let config = Arc::new(ssh_config(&[], timeout));
    let attempt = async {
        let stream = tcp_connect(address).await?;
        let result = client::connect_stream(config, stream, client).await;
        Ok::<_, RemoteError>(result.err())
    };
    let err = match tokio::time::timeout(timeout, attempt).await {
        Ok(r) => r?,
        Err(_) => {
            return Err(RemoteError::Timeout {
                what: format!("the SSH handshake with {address}"),
                after: timeout,
            });
        }
    };
    let key = offered.lock().ok().and_then(|mut s| s.take());
    key.ok_or_else(|| RemoteError::Ssh {
        name: address.to_string(),
        reason: err.map_or_else(
            || "the server offered no host key".to_string(),
            |e| {
                format!(
                    "no usable host key was offered ({}); loghost needs an Ed25519 or ECDSA host key",
                    Shown(&e.to_string())
                )
            },
        ),
    })
}

/// An authenticated SFTP session with one host.
pub struct Session {
    handle: client::Handle<Client>,
    sftp: RawSftpSession,
    name: String,
}

/// A regular file found on the remote side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub path: String,
    pub size: u64,
    pub mtime: Option<u32>,
}

const S_IFMT: u32 = 0o170_000;
const S_IFREG: u32 = 0o100_000;
const S_IFDIR: u32 = 0o040_000;
const S_IFLNK: u32 = 0o120_000;

fn file_type(a: &FileAttributes) -> Option<u32> {
    a.permissions.map(|p| p & S_IFMT)
}

/// True when a path component contains glob syntax.
impl Session {
    /// Connects, checks the host key against `pins`, logs in with `identity` and starts SFTP.
    pub async fn connect(
        host: &HostConfig,
        ssh: &SshConfig,
        pins: Vec<PublicKey>,
        identity: Arc<PrivateKey>,
    ) -> Result<Session, RemoteError> {
        let Some(address) = host.address.as_ref() else {
            return Err(RemoteError::Connect {
                address: host.name.clone(),
                reason: "the host has no address".into(),
            });
        };
        let name = address.known_hosts_name();
        let offered = Arc::new(Mutex::new(None));
        let client = Client {
            pins: pins.clone(),
            offered: offered.clone(),
        };
        let config = Arc::new(ssh_config(&pins, ssh.io_timeout));
        let ssh_err = |e: russh::Error| RemoteError::Ssh {
            name: name.clone(),
            reason: Shown(&e.to_string()).to_string(), // may quote the server
        };
        let attempt = async {
            let stream = tcp_connect(address).await?;
            let mut handle = match client::connect_stream(config, stream, client).await {
                Ok(h) => h,
                Err(e) => {
                    let key = offered.lock().ok().and_then(|s| s.clone());
                    return Err(host_key_error(&host.name, &name, key, &pins).unwrap_or(ssh_err(e)));
                }
            };
            let auth = handle
                .authenticate_publickey(
                    host.user.clone(),
                    PrivateKeyWithHashAlg::new(identity.clone(), None),
                )
                .await
                .map_err(ssh_err)?;
            if !auth.success() {
                return Err(RemoteError::AuthRefused {
                    name: name.clone(),
                    user: host.user.clone(),
                    public_key: crate::keys::public_key_path(&ssh.identity)
                        .display()
                        .to_string(),
                });
            }
            let channel = handle.channel_open_session().await.map_err(ssh_err)?;
            channel
                .request_subsystem(true, "sftp")
                .await
                .map_err(ssh_err)?;
            let sftp = RawSftpSession::new_with_config(
                channel.into_stream(),
                russh_sftp::client::Config {
                    request_timeout_secs: ssh.io_timeout.as_secs().max(1),
                    ..Default::default()
                },
            );
            sftp.init().await.map_err(sftp_err("start on", &name))?;
            Ok(Session {
                handle,
                sftp,
                name: name.clone(),
            })
        };
        match tokio::time::timeout(ssh.connect_timeout, attempt).await {
            Ok(r) => r,
            Err(_) => Err(RemoteError::Timeout {
                what: format!("connecting to {address} and starting SFTP"),
                after: ssh.connect_timeout,
            }),
        }
    }

    /// Ends the session politely.
    pub async fn close(self) {
        let _ = self.sftp.close_session();
        let _ = self
            .handle
            .disconnect(russh::Disconnect::ByApplication, "", "en")
            .await;
    }

    async fn stat(&self, path: &str) -> Result<FileAttributes, RemoteError> {
        Ok(self
            .sftp
            .stat(path.to_string())
            .await
            .map_err(sftp_err("stat", path))?
            .attrs)
    }

    async fn read_dir(&self, dir: &str) -> Result<Vec<(String, FileAttributes)>, RemoteError> {
        Ok(self
            .read_dir_long(dir)
            .await?
            .into_iter()
            .map(|(name, attrs, _)| (name, attrs))
            .collect())
    }

    /// A directory's entries with their `ls -l` style long names (which name the owner and
    /// group where SFTP v3's attributes only give numbers).
    async fn read_dir_long(
        &self,
        dir: &str,
    ) -> Result<Vec<(String, FileAttributes, String)>, RemoteError> {
        let handle = self
            .sftp
            .opendir(dir.to_string())
            .await
            .map_err(sftp_err("opendir", dir))?
            .handle;
        let mut out = Vec::new();
        let mut bytes = 0usize;
        let result = loop {
            match self.sftp.readdir(handle.clone()).await {
                Ok(name) => {
                    for f in name.files {
                        bytes = bytes
                            .saturating_add(f.filename.len())
                            .saturating_add(f.longname.len());
                        out.push((f.filename, f.attrs, f.longname));
                    }
                    if out.len() > MAX_DIR_ENTRIES || bytes > MAX_DIR_BYTES {
                        break Err(RemoteError::Sftp {
                            what: "list",
                            path: Shown(dir).to_string(),
                            reason: format!(
                                "more than {MAX_DIR_ENTRIES} entries or {} MiB of names",
                                MAX_DIR_BYTES >> 20
                            ),
                            not_found: false,
                            denied: false,
                            lost: false,
                        });
                    }
                }
                Err(SftpError::Status(s)) if s.status_code == StatusCode::Eof => break Ok(out),
                Err(e) => break Err(sftp_err("readdir", dir)(e)),
            }
        };
        let _ = self.sftp.close(handle).await;
        result
    }

    /// Expands one configured pattern into the regular files it names, sorted. Globs match
    /// within one component (`*` never crosses `/`) and, as in a shell, a leading dot only
    /// explicitly. Warnings (a missing file, an unreadable name) are pushed to `warnings`.
    pub async fn expand(
        &self,
        pattern: &str,
        warnings: &mut Vec<String>,
    ) -> Result<Vec<Found>, RemoteError> {
        let comps: Vec<&str> = pattern.trim_start_matches('/').split('/').collect();
        let mut out = Vec::new();
        // (directory, index of the next component)
        let mut stack: Vec<(String, usize)> = vec![(String::new(), 0)];
        while let Some((dir, i)) = stack.pop() {
            let comp = comps[i];
            let last = i + 1 == comps.len();
            if !crate::config::is_glob(comp) {
                let path = format!("{dir}/{comp}");
                if last {
                    match self.stat(&path).await {
                        Ok(a) if file_type(&a) == Some(S_IFREG) => out.push(Found {
                            size: a.size.unwrap_or(0),
                            mtime: a.mtime,
                            path,
                        }),
                        Ok(_) => warnings
                            .push(format!("{} is not a regular file; skipped", Shown(&path))),
                        Err(e) if e.is_not_found() && crate::config::is_glob(pattern) => {}
                        Err(e) if e.is_not_found() => {
                            warnings.push(format!("{} does not exist (yet)", Shown(&path)));
                        }
                        Err(e) => return Err(e),
                    }
                } else {
                    stack.push((path, i + 1));
                }
                continue;
            }
            let matcher = globset::GlobBuilder::new(comp)
                .literal_separator(true)
                .build()
                .map(|g| g.compile_matcher())
                .map_err(|e| RemoteError::Sftp {
                    what: "expand",
                    path: Shown(pattern).to_string(),
                    reason: e.to_string(),
                    not_found: false,
                    denied: false,
                    lost: false,
                })?;
            let dir_shown = if dir.is_empty() {
                "/".to_string()
            } else {
                dir.clone()
            };
            let entries = match self.read_dir(&dir_shown).await {
                Ok(e) => e,
                Err(e) if e.is_not_found() => continue,
                Err(e) => return Err(e),
            };
            let mut matched: Vec<(String, FileAttributes)> = Vec::new();
            for (name, attrs) in entries {
                if name == "." || name == ".." {
                    continue;
                }
                if name.is_empty() || name.contains(['/', '\0']) {
                    warnings.push(format!(
                        "the server listed an impossible file name {} in {}; ignored",
                        Shown(&name),
                        Shown(&dir_shown)
                    ));
                    continue;
                }
                if name.starts_with('.') && !comp.starts_with('.') {
                    continue;
                }
                if !matcher.is_match(&name) {
                    continue;
                }
                if name.contains('\u{fffd}') {
                    warnings.push(format!(
                        "{}/{} has a name that is not valid UTF-8 and cannot be requested over \
                         SFTP by loghost; skipped (rename it on the server)",
                        Shown(&dir),
                        Shown(&name)
                    ));
                    continue;
                }
                matched.push((name, attrs));
            }
            matched.sort_by(|a, b| b.0.cmp(&a.0));
            for (name, mut attrs) in matched {
                let path = format!("{dir}/{name}");
                if file_type(&attrs) == Some(S_IFLNK) {
                    // Follow the link; loops cannot recurse: depth is bounded by the pattern.
                    attrs = match self.stat(&path).await {
                        Ok(a) => a,
                        Err(e) if e.is_connection_lost() => return Err(e),
                        Err(e) => {
                            // A dangling link or a loop (ELOOP): named, never followed.
                            warnings.push(format!(
                                "{} is a symbolic link that cannot be followed ({e}); skipped",
                                Shown(&path)
                            ));
                            continue;
                        }
                    };
                }
                match (last, file_type(&attrs)) {
                    (true, Some(S_IFREG)) => out.push(Found {
                        size: attrs.size.unwrap_or(0),
                        mtime: attrs.mtime,
                        path,
                    }),
                    (false, Some(S_IFDIR)) => stack.push((path, i + 1)),
                    _ => {}
                }
            }
        }
        out.sort_by(|a, b| a.path.cmp(&b.path));
        out.dedup_by(|a, b| a.path == b.path);
        Ok(out)
    }

    /// The entries of a directory: name, and whether it is a regular file (not following links).
    pub async fn list_dir(&self, dir: &str) -> Result<Vec<(String, bool)>, RemoteError> {
        Ok(self
            .read_dir(dir)
            .await?
            .into_iter()
            .filter(|(name, _)| name != "." && name != ".." && !name.contains('/'))
            .map(|(name, a)| {
                let regular = file_type(&a) == Some(S_IFREG);
                (name, regular)
            })
            .collect())
    }

    /// Opens a remote file for reading.
    pub async fn open(&self, path: &str) -> Result<RemoteFile<'_>, RemoteError> {
        let handle = self
            .sftp
            .open(path.to_string(), OpenFlags::READ, FileAttributes::empty())
            .await
            .map_err(sftp_err("open", path))?
            .handle;
        Ok(RemoteFile {
            session: self,
            handle,
            path: path.to_string(),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The mode, owner and group of `path` as its directory's listing shows them (`ls -l`'s
    /// third and fourth columns; OpenSSH's sftp-server writes names there), for advice about
    /// permissions. `None` when the directory cannot be listed or the server writes no names.
    pub async fn owner_of(&self, path: &str) -> Option<Owner> {
        let (dir, name) = path.rsplit_once('/')?;
        let dir = if dir.is_empty() { "/" } else { dir };
        let entries = self.read_dir_long(dir).await.ok()?;
        let (_, attrs, long) = entries.into_iter().find(|(n, _, _)| n == name)?;
        let mut cols = long.split_whitespace().skip(2);
        let (user, group) = (cols.next()?.to_string(), cols.next()?.to_string());
        // The names go into commands a sysadmin may paste: only a user or group name's
        // characters (POSIX portable, as useradd takes them), else no advice from them.
        let portable = |n: &str| {
            !n.is_empty()
                && n.len() <= 64
                && n.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        };
        if !portable(&user) || !portable(&group) {
            return None;
        }
        Some(Owner {
            mode: attrs.permissions.unwrap_or(0) & 0o7777,
            user,
            group,
        })
    }

    /// Whether the server takes write requests from this account (`loghost check`): asks it to
    /// create (exclusively) and to remove a file in a directory that does not exist. A
    /// read-only session (`internal-sftp -R`) refuses every write request before it looks at
    /// the path (permission denied); a writable one looks, finds no directory and says so (no
    /// such file): nothing can be created or removed either way. Both requests must be
    /// refused: `internal-sftp -P remove` refuses only one. `Ok(None)`: answers that tell
    /// neither.
    pub async fn accepts_writes(&self) -> Result<Option<bool>, RemoteError> {
        let path = format!(
            "/nonexistent-loghost-check-{:016x}/probe",
            rand::random::<u64>()
        );
        let verdict = |r: Result<(), SftpError>| -> Result<Option<bool>, RemoteError> {
            match r {
                Ok(()) => Ok(Some(true)),
                Err(SftpError::Status(s)) => Ok(match s.status_code {
                    StatusCode::NoSuchFile => Some(true),
                    StatusCode::PermissionDenied => Some(false),
                    _ => None,
                }),
                Err(e) => Err(sftp_err("probe", &path)(e)),
            }
        };
        let created = self
            .sftp
            .open(
                path.clone(),
                OpenFlags::WRITE | OpenFlags::CREATE | OpenFlags::EXCLUDE,
                FileAttributes::empty(),
            )
            .await;
        let create = match created {
            Ok(h) => {
                // Cannot happen (no such directory); never leave a handle open if it did.
                let _ = self.sftp.close(h.handle).await;
                verdict(Ok(()))?
            }
            Err(e) => verdict(Err(e))?,
        };
        let remove = verdict(self.sftp.remove(path.clone()).await.map(|_| ()))?;
        Ok(match (create, remove) {
            (Some(true), _) | (_, Some(true)) => Some(true),
            (Some(false), Some(false)) => Some(false),
            _ => None,
        })
    }

    /// Whether `path` can be opened for writing by this account (`loghost check`, when the
    /// session takes writes): opened write-only without create, truncate or append, and closed
    /// at once, so its content and times stay as they were.
    pub async fn opens_for_writing(&self, path: &str) -> Result<bool, RemoteError> {
        match self
            .sftp
            .open(path.to_string(), OpenFlags::WRITE, FileAttributes::empty())
            .await
        {
            Ok(h) => {
                let _ = self.sftp.close(h.handle).await;
                Ok(true)
            }
            Err(SftpError::Status(_)) => Ok(false),
            Err(e) => Err(sftp_err("probe", path)(e)),
        }
    }
}

/// Who owns a remote file, from its directory's long listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    /// Permission bits (`0o640`).
    pub mode: u32,
    pub user: String,
    pub group: String,
}

/// Maps a failed connection to the host-key error it really is, if it is one.
fn host_key_error(
    host: &str,
    name: &str,
    offered: Option<PublicKey>,
    pins: &[PublicKey],
) -> Option<RemoteError> {
    let key = offered?;
    if pins.iter().any(|p| p.key_data() == key.key_data()) {
        return None;
    }
    let (ktype, fp) = (key_type(&key), fingerprint(&key));
    Some(if pins.is_empty() {
        RemoteError::UnknownHostKey {
            host: host.to_string(),
            name: name.to_string(),
            ktype,
            fp,
        }
    } else {
        RemoteError::ChangedHostKey {
            host: host.to_string(),
            name: name.to_string(),
            ktype,
            fp,
            pinned: pins
                .iter()
                .map(|p| format!("{} {}", key_type(p), fingerprint(p)))
                .collect::<Vec<_>>()
                .join(", "),
        }
    })
}

/// An open remote file.
pub struct RemoteFile<'a> {
    session: &'a Session,
    handle: String,
    path: String,
}

impl RemoteFile<'_> {
    /// Current size of the open file.
    pub async fn size(&self) -> Result<u64, RemoteError> {
        let a = self
            .session
            .sftp
            .fstat(self.handle.clone())
            .await
            .map_err(sftp_err("fstat", &self.path))?;
        Ok(a.attrs.size.unwrap_or(0))
    }

    /// Reads `[offset, offset + len)`, or less at end of file.
    pub async fn read_at(&self, offset: u64, len: u64) -> Result<Vec<u8>, RemoteError> {
        let mut out = Vec::with_capacity(len.min(1 << 20) as usize);
        while (out.len() as u64) < len {
            let pos = offset + out.len() as u64;
            let want = (len - out.len() as u64).min(u64::from(READ_CHUNK)) as u32;
            match self.session.sftp.read(self.handle.clone(), pos, want).await {
                Ok(d) if d.data.is_empty() => break,
                Ok(d) => out.extend_from_slice(&d.data),
                Err(SftpError::Status(s)) if s.status_code == StatusCode::Eof => break,
                Err(e) => return Err(sftp_err("read", &self.path)(e)),
            }
        }
        Ok(out)
    }

    /// Reads `[offset, offset + len)` with the requests pipelined (as [`Self::stream`] does),
    /// or less at end of file.
    pub async fn read_pipelined(&self, offset: u64, len: u64) -> Result<Vec<u8>, RemoteError> {
        if len <= u64::from(READ_CHUNK) {
            return self.read_at(offset, len).await;
        }
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<u8>>(READS_IN_FLIGHT);
        let reading = async move { self.stream(offset, offset + len, &tx).await };
        let collecting = async {
            let mut out = Vec::with_capacity(len as usize);
            while let Some(chunk) = rx.recv().await {
                out.extend_from_slice(&chunk);
            }
            out
        };
        let (read, out) = tokio::join!(reading, collecting);
        read?;
        Ok(out)
    }

    /// Streams `[start, end)` to `sink` in order with reads pipelined, stopping early at end of
    /// file. Returns the number of bytes delivered. The sink applies back-pressure. Chunks are
    /// never empty.
    pub async fn stream<T: From<Vec<u8>>>(
        &self,
        start: u64,
        end: u64,
        sink: &tokio::sync::mpsc::Sender<T>,
    ) -> Result<u64, RemoteError> {
        let sftp = &self.session.sftp;
        let read = |off: u64, len: u32| {
            let handle = self.handle.clone();
            async move { (off, len, sftp.read(handle, off, len).await) }
        };
        let mut inflight = FuturesOrdered::new();
        let mut next = start;
        let mut pos = start;
        let refill = |inflight: &mut FuturesOrdered<_>, next: &mut u64| {
            while *next < end && inflight.len() < READS_IN_FLIGHT {
                let len = (end - *next).min(u64::from(READ_CHUNK)) as u32;
                inflight.push_back(read(*next, len));
                *next += u64::from(len);
            }
        };
        refill(&mut inflight, &mut next);
        while let Some((off, len, result)) = inflight.next().await {
            let data = match result {
                Ok(d) => d.data,
                Err(SftpError::Status(s)) if s.status_code == StatusCode::Eof => Vec::new(),
                Err(e) => return Err(sftp_err("read", &self.path)(e)),
            };
            if off != pos {
                // Replies come in request order and short reads are filled at once, so this
                // cannot happen; refuse rather than store bytes out of place.
                return Err(RemoteError::Sftp {
                    what: "read",
                    path: Shown(&self.path).to_string(),
                    reason: format!("reply for offset {off} arrived where {pos} was expected"),
                    not_found: false,
                    denied: false,
                    lost: false,
                });
            }
            if data.is_empty() {
                break; // end of file: the file is shorter than it was when listed
            }
            let n = data.len() as u64;
            pos = off + n;
            if sink.send(data.into()).await.is_err() {
                return Ok(pos - start);
            }
            if n < u64::from(len) {
                // A short read in the middle: fetch the gap before the next queued piece.
                let gap = self.read_at(pos, off + u64::from(len) - pos).await?;
                let short = (gap.len() as u64) < off + u64::from(len) - pos;
                pos += gap.len() as u64;
                if !gap.is_empty() && sink.send(gap.into()).await.is_err() {
                    return Ok(pos - start);
                }
                if short {
                    break;
                }
            }
            refill(&mut inflight, &mut next);
        }
        Ok(pos - start)
    }

    pub async fn close(self) {
        let _ = self.session.sftp.close(self.handle).await;
    }
}
