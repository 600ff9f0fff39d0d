//! loghost: a secure central log server.
//!
//! loghost pulls log files from remote hosts over SFTP into a per-host, per-day archive of
//! compressed frames, and records every stored byte in an append-only ledger, so that later
//! edits of the archive can be detected.
//!
//! # Layout
//! - [`cli`]: arguments, process setup, exit statuses; calls the modules below.
//! - [`config`]: the TOML file, validated once into a typed [`config::Config`].
//! - [`pull`]: one pull round over many hosts; the commit protocol.
//! - [`remote`]: the SSH/SFTP client (pinned host keys, globs, pipelined reads).
//! - [`cursor`]: what to read next from a remote file (pure).
//! - [`store`] and [`layout`]: the archive on disk and where each thing lives in it.
//! - [`ledger`]: the append-only record of every frame and event; source of truth for cursors.
//! - [`merkle`], [`checkpoint`]: the RFC 9162 tree over the ledger, and its signed checkpoints
//!   and anchors.
//! - [`verify`]: checking the whole archive; [`proof`] and [`audit`]: proofs for auditors.
//! - [`known_hosts`] and [`keys`]: pinned host keys, the loghost's own keys.
//! - [`cat`]: printing stored logs; [`sanitize`]: making remote text safe to print.
//! - [`receiver`], [`tls`], [`syslog`]: the syslog-over-TLS server, its mutual TLS, framing and
//!   parsing; [`writer`]: what pulls and the receiver share to record frames.
//! - [`daemon`], [`schedule`], [`metrics`], [`status`]: `loghost run` and what reports on it.
//! - [`archive`] (and `s3`, behind the default feature `s3`): retention and the archive tier.
//! - [`demo`]: the zero-setup tour with an embedded SFTP server.
//!
//! What loghost does not do: it never runs a command on a server, never writes to a server,
//! never trusts a host key on first use, and never uses a name from the network as a path
//! without [`layout`] encoding it.

pub mod archive;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod failpoint;
pub mod hash;
pub mod keys;
pub mod ledger;
pub mod metrics;
pub mod pull;
pub mod receive;
#[cfg(feature = "s3")]
pub mod s3;
pub mod sanitize;
pub mod store;
pub mod units;
pub mod verify;
