//! loghost: a secure central log server.
//!
//! loghost pulls log files from remote hosts over SFTP into a per-host, per-day archive of
//! compressed frames, and records every stored byte in an append-only ledger, so that later
//! edits of the archive can be detected.
//!
//! # Layout
//! The parts, lowest first; each folder's module doc says what it owns and what it must not
//! import, and `tests/architecture.rs` checks those rules and that no two parts import each
//! other in a cycle.
//! - Shared utilities: [`config`] (the TOML file, validated once), [`hash`], [`sanitize`] (remote
//!   text made safe to print), [`units`] (sizes for people), [`failpoint`] (crash points for
//!   tests), `s3` (the S3 operations, behind the default feature `s3`).
//! - [`journal`]: systemd's journal file format and the export format (pure readers).
//! - [`store`]: the archive on disk, its lock, appending frames, where everything lives;
//!   [`keys`]: the loghost's own keys.
//! - [`ledger`]: the evidence: the ledger, cursors as recorded, the Merkle tree, checkpoints and
//!   anchors, proofs, and the writer that commits frames.
//! - [`metrics`]: the counters that the receiver and the daemon feed.
//! - [`pull`]: the SFTP input (round, collection, rotation decisions, SSH client, host keys).
//! - [`receive`]: the syslog-over-TLS input.
//! - [`verify`]: the whole-archive check; [`archive`]: retention and the archive tier (the only
//!   part that removes stored data).
//! - [`search`]: `grep` and `tail` (reads the ledger and the store for people).
//! - [`daemon`]: `loghost run` (scheduler, receiver, checkpoints, retention, metrics).
//! - [`cli`]: the command line and the commands (`status`, `cat`, `audit`, `demo`).
//!
//! What loghost does not do: it never runs a command on a server, never writes to a server,
//! never trusts a host key on first use, and never uses a name from the network as a path
//! without [`store::layout`] encoding it.

pub mod archive;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod failpoint;
pub mod hash;
pub mod journal;
pub mod keys;
pub mod ledger;
pub mod metrics;
pub mod pull;
pub mod receive;
#[cfg(feature = "s3")]
pub mod s3;
pub mod sanitize;
pub mod search;
pub mod store;
pub mod units;
pub mod verify;
