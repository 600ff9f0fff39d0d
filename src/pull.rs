//! One pull round (DESIGN §4): every selected host, at most `ssh.concurrency` at once, each
//! independent of the others.
//!
//! Per host: connect ([`crate::remote`]), expand the configured paths on the remote side, then per
//! file observe its size, ask [`crate::cursor::decide`] what to read, and stream those bytes into
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

use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::{Context, Result};
use jiff::Timestamp;
use russh::keys::PrivateKey;
use tokio::sync::{Semaphore, mpsc};

use crate::config::{Config, HostConfig};
use crate::cursor::{self, Decision, HEAD_LEN, Observed, Probe, Restart, TAIL_LEN};
use crate::failpoint;
use crate::hash::Hash;
use crate::known_hosts::KnownHosts;
use crate::layout;
use crate::ledger::{Entry, Frame, Ledger, Via};
use crate::remote::{RemoteError, RemoteFile, Session};
use crate::sanitize::Shown;
use crate::store::{AppendFile, FrameWriter, Store, StoreLock};

/// Largest raw content in one frame.
pub const MAX_FRAME_RAW: u64 = 64 * 1024 * 1024;
/// Chunks buffered between the network and the compressor (each up to 255 KiB).
const CHANNEL_DEPTH: usize = 32;

/// What happened to one remote file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Nothing new since the last round.
    UpToDate,
    /// New bytes collected.
    Collected {
        /// Why collection started from 0, if it did.
        restart: Option<Restart>,
    },
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
}

impl FileReport {
    fn new(source: &str, outcome: Outcome) -> FileReport {
        FileReport {
            source: source.to_string(),
            outcome,
            raw_bytes: 0,
            stored_bytes: 0,
            frames: 0,
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
}

#[derive(Debug, Clone)]
pub struct RoundReport {
    pub hosts: Vec<HostReport>,
    /// The checkpoint after the round, or why none could be signed.
    pub checkpoint: Result<crate::checkpoint::RoundCheckpoint, String>,
}

impl RoundReport {
    /// Exit status of DESIGN §2: 0 all collected, checkpointed and anchored; 1 otherwise.
    pub fn exit_code(&self) -> i32 {
        let anchored = self
            .checkpoint
            .as_ref()
            .is_ok_and(|c| c.anchor_errors.is_empty());
        if self.hosts.iter().all(HostReport::ok) && anchored {
            0
        } else {
            1
        }
    }
}

/// Everything the host tasks share.
struct Ctx {
    config: Config,
    store: Store,
    lock: StoreLock,
    ledger: Mutex<Ledger>,
    known_hosts: KnownHosts,
    identity: Arc<PrivateKey>,
    signing_key: crate::keys::SigningKey,
    /// The round's moment: decides the day (and hour) directories written to.
    round_time: Timestamp,
}

/// Runs one pull round over `names` (all pulled hosts when empty). Errors are about the round as
/// a whole (config, store, keys); per-host problems are in the report.
pub async fn run_round(config: &Config, names: &[String]) -> Result<RoundReport> {
    let hosts: Vec<HostConfig> = config
        .select_pulled(names)
        .map_err(crate::config::SetupError)?
        .into_iter()
        .cloned()
        .collect();
    let store = Store::open(&config.store)?;
    let lock = store.lock()?;
    let ledger = Ledger::open(&store, &lock)?;
    let known_hosts =
        KnownHosts::load(&config.ssh.known_hosts).map_err(crate::config::SetupError)?;
    let identity = Arc::new(
        crate::keys::load_identity(&config.ssh.identity)
            .map_err(|e| crate::config::SetupError(format!("{e:#}")))?,
    );
    let signing_key = crate::keys::load_signing_key(&config.ledger.signing_key)
        .map_err(|e| crate::config::SetupError(format!("{e:#}")))?;
    let round_time = ledger.now();
    let ctx = Arc::new(Ctx {
        config: config.clone(),
        store,
        lock,
        ledger: Mutex::new(ledger),
        known_hosts,
        identity,
        signing_key,
        round_time,
    });

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
    let mut ledger = ctx
        .ledger
        .lock()
        .map_err(|_| anyhow::anyhow!("ledger lock poisoned"))?;
    let checkpoint = crate::checkpoint::write_round(
        ctx.store.root(),
        &mut ledger,
        &ctx.signing_key,
        &config.ledger.origin,
        &config.ledger.anchors,
    )
    .map_err(|e| format!("{e:#}"));
    if let Err(e) = ledger.save_index() {
        tracing::warn!("cannot save the ledger index cache (it is rebuilt next time): {e}");
    }
    Ok(RoundReport {
        hosts: reports,
        checkpoint,
    })
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
                    report.error = Some(format!("connection lost: {e}"));
                    session.close().await;
                    report.seconds = started.elapsed().as_secs_f64();
                    return report;
                }
            }
        }
    }

    if let Some(d) = failpoint::pause("after-listing") {
        tokio::time::sleep(d).await;
    }
    for (path, via) in files {
        match pull_file(ctx, host, &session, &path, via).await {
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
                    report.error = Some(format!("connection lost: {e}"));
                    break;
                }
            }
            Err(FileError::Local(e)) => report
                .files
                .push(FileReport::new(&path, Outcome::Failed(format!("{e:#}")))),
        }
    }
    session.close().await;
    report.seconds = started.elapsed().as_secs_f64();
    report
}

enum FileError {
    Vanished,
    Remote(RemoteError),
    Local(anyhow::Error),
}

impl From<RemoteError> for FileError {
    fn from(e: RemoteError) -> Self {
        if e.is_not_found() {
            FileError::Vanished
        } else {
            FileError::Remote(e)
        }
    }
}

impl From<anyhow::Error> for FileError {
    fn from(e: anyhow::Error) -> Self {
        FileError::Local(e)
    }
}

async fn pull_file(
    ctx: &Arc<Ctx>,
    host: &HostConfig,
    session: &Session,
    path: &str,
    via: Via,
) -> Result<FileReport, FileError> {
    let file = session.open(path).await?;
    let result = pull_open_file(ctx, host, &file, path, via).await;
    file.close().await;
    result
}

async fn pull_open_file(
    ctx: &Arc<Ctx>,
    host: &HostConfig,
    file: &RemoteFile<'_>,
    path: &str,
    via: Via,
) -> Result<FileReport, FileError> {
    let mut report = FileReport::new(path, Outcome::UpToDate);
    let size = file.size().await?;
    let cursor = ctx
        .ledger
        .lock()
        .map_err(|_| anyhow::anyhow!("ledger lock poisoned"))?
        .index()
        .cursor(&host.name, path)
        .cloned();
    let plan = cursor::probe_plan(cursor.as_ref(), size);
    let head = file.read_at(0, plan.head_len).await?;
    let tail = match plan.tail {
        Some((a, b)) => Some(file.read_at(a, b - a).await?),
        None => None,
    };

    let (from, tail_init, restart) = if via == Via::Snapshot {
        if size == 0 && cursor.is_none() {
            return Ok(report);
        }
        (0, Vec::new(), None)
    } else {
        let observed = Observed {
            size,
            head: cursor.as_ref().and_then(|c| {
                let n = usize::try_from(c.head.len).ok()?;
                head.get(..n).map(Hash::of)
            }),
            tail: match (&tail, plan.tail) {
                (Some(t), Some((a, b))) if t.len() as u64 == b - a => Some(Hash::of(t)),
                _ => None,
            },
        };
        match cursor::decide(cursor.as_ref(), observed) {
            Decision::UpToDate => return Ok(report),
            Decision::Append { from } => (from, tail.unwrap_or_default(), None),
            Decision::Restart(r) => {
                match r {
                    Restart::New => {}
                    Restart::TailChanged => tracing::warn!(
                        host = %host.name,
                        "{}: {}; collecting it again from the start",
                        Shown(path),
                        restart_reason(r)
                    ),
                    _ => tracing::info!(
                        host = %host.name,
                        "{}: {}; collecting it from the start",
                        Shown(path),
                        restart_reason(r)
                    ),
                }
                (0, Vec::new(), Some(r))
            }
        }
    };

    let rel = layout::stored_file(
        &host.name,
        ctx.round_time,
        host.hourly,
        path,
        ctx.config.compression,
    );
    let committed = ctx
        .ledger
        .lock()
        .map_err(|_| anyhow::anyhow!("ledger lock poisoned"))?
        .index()
        .committed_end(&rel);
    let out = AppendFile::open(&ctx.store, &ctx.lock, &rel, committed)
        .with_context(|| format!("host {}: cannot store {}", host.name, Shown(path)))?;

    let job = Job {
        host: host.name.clone(),
        source: path.to_string(),
        via,
        start: from,
        head,
        tail: tail_init,
        max_frame: match via {
            Via::Snapshot => u64::MAX,
            Via::Pull => failpoint::size_override("LOGHOST_MAX_FRAME_RAW", MAX_FRAME_RAW),
        },
        unchanged_if: cursor.as_ref().and_then(|c| c.content),
    };
    let (tx, rx) = mpsc::channel::<Vec<u8>>(CHANNEL_DEPTH);
    let writer = {
        let ctx = ctx.clone();
        tokio::task::spawn_blocking(move || write_frames(&ctx, out, job, rx))
    };
    let read = file.stream(from, size, &tx).await;
    if read.is_ok() {
        // An empty chunk is the end marker: the writer commits the last frame only on it.
        let _ = tx.send(Vec::new()).await;
    }
    drop(tx);
    let written = match writer.await {
        Ok(w) => w,
        Err(e) => Err(anyhow::anyhow!("writer task failed: {e}")),
    };
    // A read error is the cause; the writer only saw the transfer end early.
    read?;
    let written = written?;
    report.raw_bytes = written.raw;
    report.stored_bytes = written.stored;
    report.frames = written.frames;
    report.outcome = match (via, written.frames) {
        (_, 0) => Outcome::UpToDate,
        (Via::Snapshot, _) => Outcome::SnapshotStored,
        (Via::Pull, _) => Outcome::Collected { restart },
    };
    Ok(report)
}

fn restart_reason(r: Restart) -> String {
    match r {
        Restart::New => "new file".into(),
        Restart::Shrunk { size, collected } => {
            format!(
                "it shrank to {size} bytes after {collected} were collected (truncated or replaced)"
            )
        }
        Restart::NewIdentity => "its first bytes changed (rotated or replaced)".into(),
        Restart::TailChanged => {
            "bytes already collected have changed on the server (rewritten); the archive keeps \
             the original"
                .into()
        }
    }
}

/// What the writer thread needs to know to cut and commit frames.
struct Job {
    host: String,
    source: String,
    via: Via,
    /// Source offset of the first byte that will arrive.
    start: u64,
    /// The source's first bytes (up to [`HEAD_LEN`]), for the identity probe.
    head: Vec<u8>,
    /// The source bytes just before `start` (up to [`TAIL_LEN`]).
    tail: Vec<u8>,
    max_frame: u64,
    /// For snapshots: the content last stored; the same content is not stored again.
    unchanged_if: Option<Hash>,
}

#[derive(Default)]
struct Written {
    frames: u64,
    raw: u64,
    stored: u64,
}

/// The writer thread: compresses the streamed bytes into frames of at most `job.max_frame` raw
/// bytes and commits each (sync, then ledger). Runs until the empty end marker; if the channel
/// closes without it (the read failed), the open frame is dropped and cut away. Frames committed
/// before stay: they are complete and correct.
///
/// A frame's commit runs on its own thread while the next frame is being compressed, so the
/// syncs do not stall the stream; commits stay in order because the next one waits for it.
fn write_frames(
    ctx: &Arc<Ctx>,
    out: AppendFile,
    mut job: Job,
    mut rx: mpsc::Receiver<Vec<u8>>,
) -> Result<Written> {
    let mut state = WriterState {
        ctx: ctx.clone(),
        out: Some(out),
        frame: None,
        pending: None,
        written: Written::default(),
    };
    let result = (|| -> Result<()> {
        loop {
            let Some(chunk) = rx.blocking_recv() else {
                anyhow::bail!("the transfer ended early");
            };
            if chunk.is_empty() {
                break;
            }
            let mut data = &chunk[..];
            while !data.is_empty() {
                let fw = state.open_frame()?;
                let n = (job.max_frame - fw.raw_len()).min(data.len() as u64) as usize;
                fw.write_raw(&data[..n])?;
                push_tail(&mut job.tail, &data[..n]);
                data = &data[n..];
                failpoint::hit_after_bytes(fw.raw_len());
                if fw.raw_len() == job.max_frame {
                    state.commit(&mut job)?;
                }
            }
        }
        if job.via == Via::Snapshot {
            state.open_frame()?; // an emptied snapshot is a change too
        }
        if state.frame.is_some() {
            state.commit(&mut job)?;
        }
        state.wait_pending()
    })();
    if result.is_err() {
        state.abandon();
    }
    if let Some(out) = state.out.take()
        && let Err(e) = out.close()
    {
        tracing::warn!("{e}");
    }
    result.map(|()| state.written)
}

/// A commit running on its own thread.
struct PendingCommit {
    /// Where the frame starts: the file is cut back here if the commit fails.
    offset: u64,
    raw: u64,
    stored: u64,
    done: std::thread::JoinHandle<Result<()>>,
}

struct WriterState {
    ctx: Arc<Ctx>,
    /// The file, while no frame is open.
    out: Option<AppendFile>,
    frame: Option<FrameWriter>,
    pending: Option<PendingCommit>,
    written: Written,
}

impl WriterState {
    fn open_frame(&mut self) -> Result<&mut FrameWriter> {
        if self.frame.is_none() {
            let out = self
                .out
                .take()
                .ok_or_else(|| anyhow::anyhow!("stored file lost after an earlier error"))?;
            let rel = out.rel().to_string();
            let fw = out
                .frame(
                    self.ctx.config.compression,
                    self.ctx.config.compression_level,
                )
                .with_context(|| format!("cannot start a frame in {rel}"))?;
            self.frame = Some(fw);
        }
        self.frame
            .as_mut()
            .ok_or_else(|| anyhow::anyhow!("no open frame"))
    }

    /// Waits for the commit in flight. If it failed, the file is cut back to where its frame
    /// started (dropping any later frame with it: nothing after it was committed either).
    fn wait_pending(&mut self) -> Result<()> {
        let Some(p) = self.pending.take() else {
            return Ok(());
        };
        let result = p
            .done
            .join()
            .unwrap_or_else(|_| Err(anyhow::anyhow!("the commit thread panicked")));
        match result {
            Ok(()) => {
                self.written.frames += 1;
                self.written.raw += p.raw;
                self.written.stored += p.stored;
                Ok(())
            }
            Err(e) => {
                if let Some(fw) = self.frame.take() {
                    self.out = fw.abort().ok();
                }
                if let Some(out) = self.out.as_mut() {
                    let _ = out.truncate(p.offset);
                }
                Err(e)
            }
        }
    }

    /// After an error: cuts away the open frame and waits for (and, if it failed, undoes) the
    /// commit in flight.
    fn abandon(&mut self) {
        if let Some(fw) = self.frame.take() {
            match fw.abort() {
                Ok(out) => self.out = Some(out),
                Err(e) => tracing::warn!("{e}"),
            }
        }
        let _ = self.wait_pending();
    }

    /// Finishes the open frame and starts its commit: sync the stored file, then append its
    /// ledger entry. The commit point of the whole design.
    fn commit(&mut self, job: &mut Job) -> Result<()> {
        let Some(fw) = self.frame.take() else {
            return Ok(());
        };
        let (mut out, frame) = fw.finish().context("cannot write the stored file")?;
        failpoint::hit("after-frame-write");
        if job.via == Via::Snapshot && job.unchanged_if == Some(frame.raw_sha256) {
            out.truncate(frame.offset)?; // same content as the last snapshot
            self.out = Some(out);
            return Ok(());
        }
        let rel = out.rel().to_string();
        let flushed = out.flush().and_then(|()| out.sync_handle());
        self.out = Some(out);
        let file = flushed?;
        // One commit in flight at a time, in order.
        self.wait_pending()?;
        let end = job.start + frame.raw_len;
        let head_len = (job.head.len() as u64).min(end).min(HEAD_LEN) as usize;
        let entry = Frame {
            seq: 0,
            time: String::new(),
            host: job.host.clone(),
            source: job.source.clone(),
            via: job.via,
            start: job.start,
            end,
            head: Probe {
                len: head_len as u64,
                sha256: Hash::of(&job.head[..head_len]),
            },
            tail: Probe {
                len: job.tail.len() as u64,
                sha256: Hash::of(&job.tail),
            },
            file: rel,
            offset: frame.offset,
            length: frame.length,
            sha256: frame.sha256,
            raw_sha256: frame.raw_sha256,
        };
        let ctx = self.ctx.clone();
        let done = std::thread::Builder::new()
            .name("loghost-commit".into())
            .spawn(move || -> Result<()> {
                file.sync()?;
                failpoint::hit("after-frame-sync");
                ctx.ledger
                    .lock()
                    .map_err(|_| anyhow::anyhow!("ledger lock poisoned"))?
                    .append(vec![Entry::Frame(entry)])?;
                failpoint::hit("after-ledger-append");
                Ok(())
            })
            .context("cannot start a commit thread")?;
        self.pending = Some(PendingCommit {
            offset: frame.offset,
            raw: frame.raw_len,
            stored: frame.length,
            done,
        });
        job.start = end;
        Ok(())
    }
}

/// Keeps the last [`TAIL_LEN`] bytes seen.
fn push_tail(window: &mut Vec<u8>, chunk: &[u8]) {
    let cap = TAIL_LEN as usize;
    if chunk.len() >= cap {
        window.clear();
        window.extend_from_slice(&chunk[chunk.len() - cap..]);
    } else {
        window.extend_from_slice(chunk);
        if window.len() > cap {
            window.drain(..window.len() - cap);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_window_keeps_the_last_bytes() {
        let mut w = Vec::new();
        push_tail(&mut w, b"abc");
        push_tail(&mut w, b"def");
        assert_eq!(w, b"abcdef");
        let big = vec![7u8; TAIL_LEN as usize + 10];
        push_tail(&mut w, &big);
        assert_eq!(w.len(), TAIL_LEN as usize);
        push_tail(&mut w, b"xyz");
        assert_eq!(w.len(), TAIL_LEN as usize);
        assert_eq!(&w[w.len() - 3..], b"xyz");
    }
}
