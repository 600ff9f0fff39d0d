//! **Part `pull/`: the SFTP input.** The round, one file's collection (`collect`), a host's
//! systemd journal files (`journal`, with `journal_copies` for entries repeating collected
//! ones), the SSH/SFTP client (`remote`), the pure rotation decisions (`rotation`), pinned host
//! keys (`known_hosts`). It records through `ledger::writer`; it must not import `receive`,
//! `daemon`, `archive` or `cli`.
//!
//! One pull round (DESIGN §4): every selected host, at most `ssh.concurrency` at once, each
//! independent of the others.
//!
//! Per host: connect ([`crate::pull::remote`]), expand the configured paths on the remote side, then per
//! file observe its size, ask [`crate::pull::rotation::decide`] what to read, and stream those bytes into
//! a compression frame appended to today's stored file. A transfer larger than [`MAX_FRAME_RAW`]
//! is cut into several frames, each committed on its own, so a crash costs at most one frame's
//! work and proofs stay small.
//!
//! Commit protocol, per frame: write the frame → sync the stored file → append the ledger entry
//! and sync the ledger. The cursor *is* the ledger entry, so it advances only after its bytes are
//! durable; a crash anywhere leaves either a committed frame or uncommitted bytes that the next
//! open of that file cuts away. A read that fails half-way truncates its frame at once.
//!
//! Memory stays bounded whatever the file size: reads are pipelined into a bounded channel that a
//! blocking writer thread drains into the compressor.

pub mod collect;
pub mod journal;
pub mod journal_copies;
pub mod known_hosts;
pub mod remote;
pub mod rotation;

use std::sync::Arc;
use std::time::Instant;

use anyhow::Result;
use jiff::Timestamp;
use russh::keys::PrivateKey;
use tokio::sync::Semaphore;

use self::collect::FileError;
use crate::config::{Config, HostConfig};
use crate::failpoint;
use crate::ledger::Via;
use crate::ledger::writer::Recorder;
use crate::pull::known_hosts::KnownHosts;
use crate::pull::remote::{RemoteError, Session};
use crate::sanitize::Shown;

/// Largest raw content in one frame.
pub const MAX_FRAME_RAW: u64 = 16 * 1024 * 1024;

/// What happened to one remote file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Nothing new since the last round.
    UpToDate,
    /// New bytes collected.
    Collected,
    /// A snapshot file whose content changed and was stored whole.
    SnapshotStored,
    /// Could not be collected this round; retried next round.
    Failed(String),
}

#[derive(Debug, Clone)]
pub struct FileReport {
    pub source: String,
    pub outcome: Outcome,
    pub raw_bytes: u64,
    pub stored_bytes: u64,
    pub frames: u64,
    /// Journal entries collected (journal files only).
    pub entries: u64,
    /// Rewrites found (ALARM): bytes already collected changed on the server.
    pub alarms: Vec<String>,
    /// Truncations and replacements noticed (not alarms).
    pub notes: Vec<String>,
    /// The round stopped reading this log at `max_file_bytes_per_round`; the rest comes next.
    pub budget_reached: bool,
}

impl FileReport {
    pub(crate) fn new(source: &str, outcome: Outcome) -> FileReport {
        FileReport {
            source: source.to_string(),
            outcome,
            raw_bytes: 0,
            stored_bytes: 0,
            frames: 0,
            entries: 0,
            alarms: Vec::new(),
            notes: Vec::new(),
            budget_reached: false,
        }
    }
}

#[derive(Debug, Clone)]
pub struct HostReport {
    pub host: String,
    /// Set when the host could not be pulled at all (connection, authentication, host key).
    pub error: Option<String>,
    pub files: Vec<FileReport>,
    pub warnings: Vec<String>,
    pub seconds: f64,
}

impl HostReport {
    /// True when everything configured for the host was collected.
    pub fn ok(&self) -> bool {
        self.error.is_none()
            && !self
                .files
                .iter()
                .any(|f| matches!(f.outcome, Outcome::Failed(_)))
    }

    pub fn raw_bytes(&self) -> u64 {
        self.files.iter().map(|f| f.raw_bytes).sum()
    }

    pub fn stored_bytes(&self) -> u64 {
        self.files.iter().map(|f| f.stored_bytes).sum()
    }

    pub fn alarms(&self) -> usize {
        self.files.iter().map(|f| f.alarms.len()).sum()
    }
}

#[derive(Debug, Clone)]
pub struct RoundReport {
    pub hosts: Vec<HostReport>,
    /// The checkpoint after the round, or why none could be signed (`None`: the round did not
    /// checkpoint; the daemon checkpoints on its own timer).
    pub checkpoint: Option<Result<crate::ledger::checkpoint::RoundCheckpoint, String>>,
}

impl RoundReport {
    /// Exit status of DESIGN §2: 4 a rewritten log was found (whatever else happened); 1 a host
    /// or file failed, or the checkpoint could not be signed or anchored; 0 otherwise.
    pub fn exit_code(&self) -> i32 {
        let anchored = match &self.checkpoint {
            None => true,
            Some(c) => c.as_ref().is_ok_and(|c| c.anchor_errors.is_empty()),
        };
        if self.hosts.iter().any(|h| h.alarms() > 0) {
            4
        } else if self.hosts.iter().all(HostReport::ok) && anchored {
            0
        } else {
            1
        }
    }
}

/// Everything the host tasks share: the open store (through [`Recorder`]) and SSH material.
pub(crate) struct Ctx {
    pub(crate) rec: Arc<Recorder>,
    known_hosts: KnownHosts,
    identity: Arc<PrivateKey>,
    /// The round's moment: decides the day (and hour) directories written to.
    pub(crate) round_time: Timestamp,
}

impl std::ops::Deref for Ctx {
    type Target = Recorder;
    fn deref(&self) -> &Recorder {
        &self.rec
    }
}

/// Runs one pull round over `names` (all pulled hosts when empty). Errors are about the round as
/// a whole (config, store, keys); per-host problems are in the report.
pub async fn run_round(config: &Config, names: &[String]) -> Result<RoundReport> {
    let hosts = config.pulled_hosts(names)?;
    let rec = Arc::new(Recorder::open(config, "pull")?);
    run_round_with(&rec, &hosts, true).await
}

/// One pull round of `hosts` into an open store (the daemon keeps one open across rounds);
/// `checkpoint`: sign a checkpoint after it.
pub async fn run_round_with(
    rec: &Arc<Recorder>,
    hosts: &[HostConfig],
    checkpoint: bool,
) -> Result<RoundReport> {
    let config = &rec.config;
    let known_hosts =
        KnownHosts::load(&config.ssh.known_hosts).map_err(crate::config::SetupError)?;
    let identity = Arc::new(
        crate::keys::load_identity(&config.ssh.identity)
            .map_err(|e| crate::config::SetupError(format!("{e:#}")))?,
    );
    let round_time = rec.ledger()?.now();
    let ctx = Arc::new(Ctx {
        rec: rec.clone(),
        known_hosts,
        identity,
        round_time,
    });
    let hosts = hosts.to_vec();

    let permits = Arc::new(Semaphore::new(config.ssh.concurrency));
    let mut tasks = Vec::new();
    for host in hosts {
        let ctx = ctx.clone();
        let permits = permits.clone();
        let name = host.name.clone();
        tasks.push((
            name,
            tokio::spawn(async move {
                let _permit = permits.acquire_owned().await;
                pull_host(&ctx, &host).await
            }),
        ));
    }
    let mut reports = Vec::new();
    for (name, t) in tasks {
        match t.await {
            Ok(r) => reports.push(r),
            Err(e) => reports.push(HostReport {
                host: name,
                error: Some(format!("internal error: {e}")),
                files: Vec::new(),
                warnings: Vec::new(),
                seconds: 0.0,
            }),
        }
    }
    let checkpoint = checkpoint.then(|| rec.checkpoint().map_err(|e| format!("{e:#}")));
    let report = RoundReport {
        hosts: reports,
        checkpoint,
    };
    let time = crate::ledger::format_time(rec.ledger()?.now());
    let hosts: Vec<crate::store::rounds::HostOutcome> = report
        .hosts
        .iter()
        .map(|h| crate::store::rounds::HostOutcome {
            host: h.host.clone(),
            error: (!h.ok()).then(|| {
                let failed = h.files.iter().find_map(|f| match &f.outcome {
                    Outcome::Failed(e) => Some(format!("{}: {e}", f.source)),
                    _ => None,
                });
                h.error.clone().or(failed).unwrap_or_default()
            }),
        })
        .collect();
    let checkpoint = report.checkpoint.as_ref().map(|c| match c {
        Ok(c) => Ok(&c.anchor_errors[..]),
        Err(e) => Err(e.as_str()),
    });
    if let Err(e) = crate::store::rounds::save_round(&rec.store, &time, &hosts, checkpoint) {
        tracing::warn!("cannot save the round summary for `loghost status`: {e}");
    }
    Ok(report)
}

/// Every journal file of the host ([`journal`]). `Err`: the connection was lost.
async fn pull_journals(
    ctx: &Arc<Ctx>,
    host: &HostConfig,
    session: &Session,
    report: &mut HostReport,
) -> Result<(), RemoteError> {
    let files = journal::list(host, session, report).await?;
    if files.is_empty() {
        report.warnings.push(format!(
            "journal: no journal files in {} (is journald's storage persistent, and may the \
             account read them?)",
            host.journal_dirs.join(", ")
        ));
    }
    // The host's journal cursors as the round begins: what entries repeating collected ones
    // are compared with (see `journal_copies`).
    let before = ctx
        .rec
        .ledger()
        .ok()
        .and_then(|l| l.index().journals.get(&host.name).cloned())
        .unwrap_or_default();
    let mut tally = journal::HostTally {
        before: Arc::new(before),
        ..journal::HostTally::default()
    };
    for path in files {
        let r = journal::pull_file(ctx, host, session, &path, None, &mut tally).await?;
        for n in &r.notes {
            tracing::warn!("{}: {}: {n}", host.name, Shown(&path));
        }
        report.files.push(r);
    }
    // The audit pass: the round's samples among the files entries were collected from.
    let candidates = std::mem::take(&mut tally.candidates);
    let weights: Vec<u64> = candidates.iter().map(|(_, _, n)| *n).collect();
    let shares = journal::share_samples(ctx.config.audit_samples, &weights);
    for ((path, id, _), n) in candidates.into_iter().zip(shares) {
        if n == 0 {
            continue;
        }
        let a = journal::pull_file(ctx, host, session, &path, Some((id, n)), &mut tally).await?;
        for n in &a.notes {
            tracing::warn!("{}: {}: {n}", host.name, Shown(&path));
        }
        if let Some(f) = report.files.iter_mut().find(|f| f.source == path) {
            f.alarms.extend(a.alarms);
            f.notes.extend(a.notes);
            if let (Outcome::Failed(e), false) =
                (&a.outcome, matches!(f.outcome, Outcome::Failed(_)))
            {
                f.outcome = Outcome::Failed(format!("audit: {e}"));
            }
        }
    }
    Ok(())
}

/// The host's error when its session died mid-round: what happened, and that nothing half-read
/// was committed (the host is collected from its last committed byte next round).
fn lost_message(e: &RemoteError, ssh: &crate::config::SshConfig) -> String {
    let why = if e.is_timeout() {
        format!(
            "the server stopped answering ({e}, io_timeout = {}s)",
            ssh.io_timeout.as_secs_f64()
        )
    } else {
        format!("connection lost ({e})")
    };
    format!("{why}; nothing partial was committed, the next round resumes from the last commit")
}

async fn pull_host(ctx: &Arc<Ctx>, host: &HostConfig) -> HostReport {
    let started = Instant::now();
    let mut report = HostReport {
        host: host.name.clone(),
        error: None,
        files: Vec::new(),
        warnings: Vec::new(),
        seconds: 0.0,
    };
    let pins = host
        .address
        .as_ref()
        .map(|a| ctx.known_hosts.pinned(&a.known_hosts_name()))
        .unwrap_or_default();
    let session = match Session::connect(host, &ctx.config.ssh, pins, ctx.identity.clone()).await {
        Ok(s) => s,
        Err(e) => {
            report.error = Some(e.to_string());
            report.seconds = started.elapsed().as_secs_f64();
            return report;
        }
    };

    // Expand every pattern first; a file listed under both `paths` and `snapshot` is a log.
    let mut files: Vec<(String, Via)> = Vec::new();
    let patterns = host
        .paths
        .iter()
        .map(|p| (p, Via::Pull))
        .chain(host.snapshot.iter().map(|p| (p, Via::Snapshot)));
    for (pattern, via) in patterns {
        match session.expand(pattern, &mut report.warnings).await {
            Ok(found) => {
                for f in found {
                    if !files.iter().any(|(p, _)| *p == f.path) {
                        files.push((f.path, via));
                    }
                }
            }
            Err(e) => {
                let lost = e.is_connection_lost();
                report
                    .files
                    .push(FileReport::new(pattern, Outcome::Failed(e.to_string())));
                if lost {
                    report.error = Some(lost_message(&e, &ctx.config.ssh));
                    session.close().await;
                    report.seconds = started.elapsed().as_secs_f64();
                    return report;
                }
            }
        }
    }

    // A listed file that is a rotated generation of another listed log (`app.log.1` beside
    // `app.log`, from a glob such as `app.log*`) is followed through that log's rotations;
    // collecting it on its own too would store its content twice.
    let logs: Vec<String> = files
        .iter()
        .filter(|(_, v)| *v == Via::Pull)
        .map(|(p, _)| p.clone())
        .collect();
    files.retain(|(path, via)| {
        let rotated_of = logs.iter().find(|live| {
            *via == Via::Pull
                && *live != path
                && match (live.rsplit_once('/'), path.rsplit_once('/')) {
                    (Some((d1, base)), Some((d2, name))) => {
                        d1 == d2 && crate::pull::rotation::sibling(base, name).is_some()
                    }
                    _ => false,
                }
        });
        if let Some(live) = rotated_of {
            report.warnings.push(format!(
                "{} is a rotated generation of {}: it is collected through that log's                  rotations, not on its own (configure only the live name)",
                Shown(path),
                Shown(live)
            ));
        }
        rotated_of.is_none()
    });

    // Logs collected before that are no longer listed (rotated away and not recreated, say):
    // their rotated siblings may still hold an unread tail.
    if let Ok(cursors) = ctx
        .ledger()
        .map(|l| l.index().cursors.get(&host.name).cloned())
    {
        let globs: Vec<globset::GlobMatcher> = host
            .paths
            .iter()
            .filter_map(|p| {
                globset::GlobBuilder::new(p)
                    .literal_separator(true)
                    .build()
                    .ok()
                    .map(|g| g.compile_matcher())
            })
            .collect();
        for (path, c) in cursors.into_iter().flatten() {
            let listed = files.iter().any(|(p, _)| *p == path);
            if !listed && c.content.is_none() && globs.iter().any(|g| g.is_match(&path)) {
                files.push((path, Via::Pull));
            }
        }
    }

    if let Some(d) = failpoint::pause("after-listing") {
        tokio::time::sleep(d).await;
    }
    for (path, via) in files {
        match collect::pull_file(ctx, host, &session, &path, via).await {
            Ok(r) => report.files.push(r),
            Err(FileError::Vanished) => report.warnings.push(format!(
                "{} vanished between listing and reading; it is looked for again next round",
                Shown(&path)
            )),
            Err(FileError::Remote(e)) => {
                let lost = e.is_connection_lost();
                report
                    .files
                    .push(FileReport::new(&path, Outcome::Failed(e.to_string())));
                if lost {
                    report.error = Some(lost_message(&e, &ctx.config.ssh));
                    break;
                }
            }
            Err(FileError::Local(e)) => report
                .files
                .push(FileReport::new(&path, Outcome::Failed(format!("{e:#}")))),
        }
    }
    if report.error.is_none()
        && !host.journal_dirs.is_empty()
        && let Err(e) = pull_journals(ctx, host, &session, &mut report).await
    {
        report.error = Some(lost_message(&e, &ctx.config.ssh));
    }
    session.close().await;
    report.seconds = started.elapsed().as_secs_f64();
    report
}
