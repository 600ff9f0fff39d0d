//! Collecting one remote file in a round (DESIGN §4): what to read, reading it, and what to tell
//! the auditor.
//!
//! For a log: observe the file at its path, ask [`cursor::decide`]. When it simply grew, read the
//! new bytes (after audit samples: a few random collected blocks re-read and compared with the
//! archive). When something changed, probe its rotated siblings (`auth.log.1`,
//! `auth.log.2.gz`, `auth.log-20261128`) youngest first for the generation the cursor belongs
//! to, and follow [`cursor::plan`]: the old generation's unread tail, every generation rotated
//! away in between, then the new file from 0. Compressed generations are decompressed on the way,
//! and their collected part is checked as it streams past. A rewrite (collected bytes changed) is
//! an alarm; a truncation or replacement is noted. Both are ledger events, after which the file's
//! next bytes start a new generation; what was collected before is never touched.
//!
//! A snapshot file is read whole and stored when its content hash differs from the last copy.

use std::collections::HashMap;
use std::io::Read as _;
use std::sync::Arc;

use anyhow::Context;
use rand::Rng;
use tokio::sync::mpsc;

use crate::config::HostConfig;
use crate::cursor::{
    self, Candidate, Change, Cursor, Decision, Finding, HEAD_LEN, Observed, Probe, Step,
};
use crate::failpoint;
use crate::hash::Hash;
use crate::layout;
use crate::ledger::{Entry, Event, EventKind, Via};
use crate::pull::{Ctx, FileReport, MAX_FRAME_RAW, Outcome};
use crate::remote::{RemoteError, RemoteFile, Session};
use crate::sanitize::Shown;
use crate::writer::{Chunk, Job, Written, write_frames};

/// Chunks buffered between a reader and the writer (each up to 255 KiB).
const CHANNEL_DEPTH: usize = 32;
/// Bytes compared per audit sample.
pub const AUDIT_BLOCK: u64 = 4096;
/// Rotated siblings probed at most when looking for a generation.
const MAX_SIBLINGS: usize = 200;
/// Compressed bytes read at most to learn a `.gz` generation's first bytes.
const GZ_PREFIX: u64 = 1 << 20;

/// Why a file could not be collected.
pub(crate) enum FileError {
    /// Listed, then gone before it was read (and never collected before).
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

/// What one file's collection needs besides the shared context.
struct Target<'a> {
    ctx: &'a Arc<Ctx>,
    host: &'a HostConfig,
    session: &'a Session,
    /// The log's configured (expanded) path: the source of every frame.
    path: &'a str,
}

/// Collects one remote file: a log (appended to, rotated) or a snapshot (stored whole when
/// changed).
pub(crate) async fn pull_file(
    ctx: &Arc<Ctx>,
    host: &HostConfig,
    session: &Session,
    path: &str,
    via: Via,
) -> Result<FileReport, FileError> {
    let t = Target {
        ctx,
        host,
        session,
        path,
    };
    let mut report = FileReport::new(path, Outcome::UpToDate);
    let cursor = ctx.cursor(&host.name, path)?;
    match via {
        Via::Pull => pull_log(&t, cursor, &mut report).await?,
        Via::Snapshot => pull_snapshot(&t, cursor, &mut report).await?,
        Via::Tls => {
            return Err(FileError::Local(anyhow::anyhow!(
                "received messages are not pulled"
            )));
        }
    }
    Ok(report)
}

async fn pull_log(
    t: &Target<'_>,
    cursor: Option<Cursor>,
    report: &mut FileReport,
) -> Result<(), FileError> {
    let file = match t.session.open(t.path).await {
        Ok(f) => Some(f),
        Err(e) if e.is_not_found() && cursor.is_some() => None,
        Err(e) => return Err(e.into()),
    };
    let result = follow(t, cursor.as_ref(), file.as_ref(), report).await;
    if let Some(f) = file {
        f.close().await;
    }
    result?;
    if report.frames > 0 && report.outcome == Outcome::UpToDate {
        report.outcome = Outcome::Collected;
    }
    Ok(())
}

/// The observation of the file at its path, and the bytes probed.
struct Seen {
    obs: Observed,
    head: Vec<u8>,
    tail: Option<Vec<u8>>,
}

async fn observe(file: &RemoteFile<'_>, cursor: Option<&Cursor>) -> Result<Seen, RemoteError> {
    let size = file.size().await?;
    let plan = cursor::probe_plan(cursor, size);
    let head = file.read_at(0, plan.head_len).await?;
    let tail = match plan.tail {
        Some((a, b)) => Some(file.read_at(a, b - a).await?),
        None => None,
    };
    let obs = Observed {
        size,
        head: cursor.and_then(|c| {
            let n = usize::try_from(c.head.len).ok()?;
            head.get(..n).map(Hash::of)
        }),
        tail: match (&tail, plan.tail) {
            (Some(t), Some((a, b))) if t.len() as u64 == b - a => Some(Hash::of(t)),
            _ => None,
        },
    };
    Ok(Seen { obs, head, tail })
}

async fn follow(
    t: &Target<'_>,
    cursor: Option<&Cursor>,
    file: Option<&RemoteFile<'_>>,
    report: &mut FileReport,
) -> Result<(), FileError> {
    let seen = match file {
        Some(f) => Some(observe(f, cursor).await?),
        None => None,
    };
    let decision = cursor::decide(cursor, seen.as_ref().map(|s| s.obs));
    match (decision, file, seen) {
        (Decision::UpToDate | Decision::Append { .. }, Some(f), Some(seen)) => {
            if let Some(c) = cursor
                && let Some(finding) = audit(t, c, f).await?
            {
                record(t, finding, report)?;
                // The file changed under its identity: its content is a new generation.
                return collect(
                    t,
                    f,
                    Reading::Plain(0, seen.obs.size),
                    None,
                    seen.head,
                    Vec::new(),
                    report,
                )
                .await;
            }
            if let Decision::Append { from } = decision {
                let tail = seen.tail.unwrap_or_default();
                collect(
                    t,
                    f,
                    Reading::Plain(from, seen.obs.size),
                    None,
                    seen.head,
                    tail,
                    report,
                )
                .await?;
            }
            Ok(())
        }
        (Decision::UpToDate, _, _) => Ok(()),
        (Decision::New, Some(f), Some(seen)) => {
            collect(
                t,
                f,
                Reading::Plain(0, seen.obs.size),
                None,
                seen.head,
                Vec::new(),
                report,
            )
            .await
        }
        (Decision::Search(change), _, seen) => {
            let Some(c) = cursor else { return Ok(()) };
            follow_change(t, c, change, file, seen, report).await
        }
        _ => Ok(()),
    }
}

/// How a step's bytes are read.
enum Reading {
    /// `[start, end)` of the file as it is.
    Plain(u64, u64),
    /// A gzip-compressed file, decompressed: everything from `skip` (at most `limit` bytes),
    /// after checking the bytes before `skip` against `tail` when given.
    Gz {
        skip: u64,
        tail: Option<Probe>,
        limit: u64,
    },
}

async fn follow_change(
    t: &Target<'_>,
    c: &Cursor,
    change: Change,
    file: Option<&RemoteFile<'_>>,
    seen: Option<Seen>,
    report: &mut FileReport,
) -> Result<(), FileError> {
    // A cursor that starts over (after a truncation) has no identity to look for.
    let (candidates, heads) = if c.head.len == 0 {
        Default::default()
    } else {
        probe_siblings(t, c).await?
    };
    let plan = cursor::plan(c, change, t.path, file.is_some(), &candidates);
    if let Some(finding) = plan.finding.clone() {
        record(t, finding, report)?;
    }
    let mut steps: std::collections::VecDeque<Step> = plan.steps.into();
    while let Some(step) = steps.pop_front() {
        if report.budget_reached {
            // The rest of the plan waits for the next round: the cursor stays in the generation
            // being read, which the next round finds among the siblings again.
            break;
        }
        match step {
            Step::Current => {
                if let (Some(f), Some(s)) = (file, seen.as_ref()) {
                    collect(
                        t,
                        f,
                        Reading::Plain(0, s.obs.size),
                        None,
                        s.head.clone(),
                        Vec::new(),
                        report,
                    )
                    .await?;
                }
            }
            Step::Tail { path, gz, from } => {
                let head = heads.get(&path).cloned().unwrap_or_default();
                let f = t.session.open(&path).await?;
                let result = if gz {
                    let read = Reading::Gz {
                        skip: from,
                        tail: Some(c.tail),
                        limit: u64::MAX,
                    };
                    collect(t, &f, read, Some(&path), head, Vec::new(), report).await
                } else {
                    let size = f.size().await?;
                    let tail = f.read_at(from - c.tail.len, c.tail.len).await?;
                    collect(
                        t,
                        &f,
                        Reading::Plain(from, size),
                        Some(&path),
                        head,
                        tail,
                        report,
                    )
                    .await
                };
                f.close().await;
                match result {
                    Err(FileError::Local(e)) if e.downcast_ref::<TailMismatch>().is_some() => {
                        // The compressed copy's collected part differs: a rewrite, found late.
                        record(
                            t,
                            Finding::Rewritten {
                                path: path.clone(),
                                start: c.end - c.tail.len,
                                end: c.end,
                                how: "the rotated copy's collected bytes differ",
                            },
                            report,
                        )?;
                        steps.push_front(Step::Whole { path, gz });
                    }
                    other => other?,
                }
            }
            Step::Whole { path, gz } => {
                let head = heads.get(&path).cloned().unwrap_or_default();
                let f = t.session.open(&path).await?;
                let result = if gz {
                    let read = Reading::Gz {
                        skip: 0,
                        tail: None,
                        limit: u64::MAX,
                    };
                    collect(t, &f, read, Some(&path), head, Vec::new(), report).await
                } else {
                    let size = f.size().await?;
                    collect(
                        t,
                        &f,
                        Reading::Plain(0, size),
                        Some(&path),
                        head,
                        Vec::new(),
                        report,
                    )
                    .await
                };
                f.close().await;
                result?;
            }
        }
    }
    Ok(())
}

/// The rotated siblings of the log, probed youngest first until one holds the cursor's
/// generation; with the first bytes read from each (for the frames' identity probe).
async fn probe_siblings(
    t: &Target<'_>,
    c: &Cursor,
) -> Result<(Vec<Candidate>, HashMap<String, Vec<u8>>), FileError> {
    let (dir, base) = match t.path.rsplit_once('/') {
        Some(("", b)) => ("/", b),
        Some((d, b)) => (d, b),
        None => return Ok(Default::default()),
    };
    let entries = match t.session.list_dir(dir).await {
        Ok(e) => e,
        Err(e) if e.is_not_found() => Vec::new(),
        Err(e) => return Err(e.into()),
    };
    let mut found: Vec<(String, cursor::Age, bool)> = entries
        .into_iter()
        .filter(|(_, regular)| *regular)
        .filter_map(|(name, _)| {
            let (age, gz) = cursor::sibling(base, &name)?;
            let path = if dir == "/" {
                format!("/{name}")
            } else {
                format!("{dir}/{name}")
            };
            Some((path, age, gz))
        })
        .collect();
    // Youngest first; names that carry no order last.
    found.sort_by(|a, b| youngest_first(&a.1, &b.1).then_with(|| a.0.cmp(&b.0)));
    found.truncate(MAX_SIBLINGS);
    let mut candidates = Vec::new();
    let mut heads = HashMap::new();
    for (path, age, gz) in found {
        let f = match t.session.open(&path).await {
            Ok(f) => f,
            Err(e) if e.is_not_found() => continue,
            Err(e) => return Err(e.into()),
        };
        let head = if gz {
            gz_prefix(&f, HEAD_LEN).await
        } else {
            f.read_at(0, HEAD_LEN).await
        };
        let head = match head {
            Ok(h) => h,
            Err(e) => {
                f.close().await;
                return Err(e.into());
            }
        };
        let n = c.head.len as usize;
        let head_matches = n > 0 && head.len() >= n && Hash::of(&head[..n]) == c.head.sha256;
        let tail_matches = if head_matches && !gz {
            let size = f.size().await?;
            if size < c.end {
                Some(false)
            } else {
                let tail = f.read_at(c.end - c.tail.len, c.tail.len).await?;
                Some(Hash::of(&tail) == c.tail.sha256)
            }
        } else {
            None
        };
        f.close().await;
        heads.insert(path.clone(), head);
        candidates.push(Candidate {
            path,
            age,
            gz,
            head_matches,
            tail_matches,
        });
        if head_matches {
            break;
        }
    }
    Ok((candidates, heads))
}

/// A total order: numbered siblings by number, dated ones newest first, the rest after.
fn youngest_first(a: &cursor::Age, b: &cursor::Age) -> std::cmp::Ordering {
    use cursor::Age::*;
    use std::cmp::Ordering::*;
    match (a, b) {
        (Numeric(x), Numeric(y)) => x.cmp(y),
        (Dated(x), Dated(y)) => y.cmp(x),
        (Numeric(_), _) => Less,
        (_, Numeric(_)) => Greater,
        (Dated(_), Other) => Less,
        (Other, Dated(_)) => Greater,
        (Other, Other) => Equal,
    }
}

/// Reads the beginning of a gzip file and returns up to `want` decompressed bytes.
async fn gz_prefix(f: &RemoteFile<'_>, want: u64) -> Result<Vec<u8>, RemoteError> {
    let compressed = f.read_at(0, GZ_PREFIX).await?;
    let mut out = Vec::new();
    // A prefix of a gzip stream decompresses up to where it was cut: keep what came out.
    let mut d = flate2::read::MultiGzDecoder::new(&compressed[..]);
    let mut buf = [0u8; 4096];
    while (out.len() as u64) < want {
        match d.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
    out.truncate(want as usize);
    Ok(out)
}

/// The collected part of a compressed generation did not match the cursor's tail.
#[derive(Debug, thiserror::Error)]
#[error("the rotated copy's collected bytes differ from what was collected")]
struct TailMismatch;

/// Streams bytes of `file` into frames of the log's stored file for today and commits them.
#[allow(clippy::too_many_arguments)]
async fn collect(
    t: &Target<'_>,
    file: &RemoteFile<'_>,
    read: Reading,
    from: Option<&str>,
    head: Vec<u8>,
    tail: Vec<u8>,
    report: &mut FileReport,
) -> Result<(), FileError> {
    if matches!(read, Reading::Plain(start, end) if start >= end) {
        return Ok(());
    }
    // The per-round budget of this log: what is left of it caps the read.
    let budget = t.ctx.config.ssh.max_file_bytes_per_round;
    let left = budget.saturating_sub(report.raw_bytes);
    let (read, capped) = match read {
        Reading::Plain(start, end) if end - start > left => {
            (Reading::Plain(start, start + left), true)
        }
        Reading::Gz { skip, tail, .. } => (
            Reading::Gz {
                skip,
                tail,
                limit: left,
            },
            false,
        ),
        other => (other, false),
    };
    if left == 0 {
        note_budget(t, report, budget);
        return Ok(());
    }
    let start = match read {
        Reading::Plain(start, _) => start,
        Reading::Gz { skip, .. } => skip,
    };
    let job = Job {
        host: t.host.name.clone(),
        source: t.path.to_string(),
        from: from.map(str::to_string),
        via: Via::Pull,
        start,
        head,
        tail,
        max_frame: failpoint::size_override("LOGHOST_MAX_FRAME_RAW", MAX_FRAME_RAW),
        unchanged_if: None,
    };
    let gz = matches!(read, Reading::Gz { .. });
    let written = transfer(t, file, read, job).await?;
    report.raw_bytes += written.raw;
    report.stored_bytes += written.stored;
    report.frames += written.frames;
    if capped || (gz && written.raw >= left) {
        note_budget(t, report, budget);
    }
    Ok(())
}

/// The round read as much of this log as one round may: say so once; the rest comes next round.
fn note_budget(t: &Target<'_>, report: &mut FileReport, budget: u64) {
    if report.budget_reached {
        return;
    }
    report.budget_reached = true;
    let note = format!(
        "{}: {} read this round, the limit for one log (max_file_bytes_per_round = {budget}); \
         the rest follows in the next rounds",
        Shown(t.path),
        crate::cli::human(report.raw_bytes)
    );
    tracing::warn!("{}: {note}", t.host.name);
    report.notes.push(note);
}

/// Runs one transfer: a reader feeding the writer thread.
async fn transfer(
    t: &Target<'_>,
    file: &RemoteFile<'_>,
    read: Reading,
    job: Job,
) -> Result<Written, FileError> {
    let ctx = t.ctx;
    let rel = layout::stored_file(
        &t.host.name,
        ctx.round_time,
        t.host.hourly,
        t.path,
        ctx.config.compression,
    );
    let out = ctx
        .open_file(&rel)
        .with_context(|| format!("host {}: cannot store {}", t.host.name, Shown(t.path)))?;
    let (tx, rx) = mpsc::channel::<Chunk>(CHANNEL_DEPTH);
    let writer = {
        let rec = ctx.rec.clone();
        tokio::task::spawn_blocking(move || write_frames(&rec, out, job, rx))
    };
    let result: Result<(), FileError> = match read {
        Reading::Plain(start, end) => file
            .stream(start, end, &tx)
            .await
            .map(|_| ())
            .map_err(Into::into),
        Reading::Gz { skip, tail, limit } => gz_stream(file, skip, tail, limit, &tx).await,
    };
    if result.is_ok() {
        let _ = tx.send(Chunk::End).await;
    }
    drop(tx);
    let written = match writer.await {
        Ok(w) => w,
        Err(e) => Err(anyhow::anyhow!("writer task failed: {e}")),
    };
    // A read error is the cause; the writer only saw the transfer end early.
    result?;
    Ok(written?)
}

/// Streams a gzip file through a decompressing thread into the writer's channel: the bytes before
/// `skip` are checked against `tail` (when given) and passed as the writer's seed, the rest as data.
async fn gz_stream(
    file: &RemoteFile<'_>,
    skip: u64,
    tail: Option<Probe>,
    limit: u64,
    out: &mpsc::Sender<Chunk>,
) -> Result<(), FileError> {
    let size = file.size().await?;
    let (ctx_tx, ctx_rx) = mpsc::channel::<Vec<u8>>(CHANNEL_DEPTH);
    let sink = out.clone();
    let decoder = tokio::task::spawn_blocking(move || decode(ctx_rx, skip, tail, limit, sink));
    let read = file.stream(0, size, &ctx_tx).await;
    drop(ctx_tx);
    let decoded = match decoder.await {
        Ok(d) => d,
        Err(e) => Err(anyhow::anyhow!("decompressing thread failed: {e}")),
    };
    read?;
    decoded.map_err(FileError::Local)
}

/// `Read` over a channel of byte chunks (blocking).
struct ChannelReader {
    rx: mpsc::Receiver<Vec<u8>>,
    buf: Vec<u8>,
    pos: usize,
}

impl std::io::Read for ChannelReader {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        while self.pos == self.buf.len() {
            match self.rx.blocking_recv() {
                Some(b) => {
                    self.buf = b;
                    self.pos = 0;
                }
                None => return Ok(0),
            }
        }
        let n = out.len().min(self.buf.len() - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

fn decode(
    rx: mpsc::Receiver<Vec<u8>>,
    skip: u64,
    tail: Option<Probe>,
    limit: u64,
    out: mpsc::Sender<Chunk>,
) -> anyhow::Result<()> {
    let mut d = flate2::read::MultiGzDecoder::new(ChannelReader {
        rx,
        buf: Vec::new(),
        pos: 0,
    });
    let mut pos = 0u64;
    let mut window = Vec::new();
    let mut seeded = skip == 0;
    // Once the bytes before `skip` have passed: check them, and hand them to the writer.
    let seed = |window: &mut Vec<u8>| -> anyhow::Result<bool> {
        if let Some(t) = tail {
            let have = window.len() as u64;
            let probe = &window[(have - t.len.min(have)) as usize..];
            if probe.len() as u64 != t.len || Hash::of(probe) != t.sha256 {
                return Err(TailMismatch.into());
            }
        }
        Ok(out
            .blocking_send(Chunk::Seed(std::mem::take(window)))
            .is_ok())
    };
    loop {
        let mut buf = vec![0u8; 256 * 1024];
        let n = d
            .read(&mut buf)
            .context("cannot decompress the rotated file")?;
        if n == 0 {
            break;
        }
        buf.truncate(n);
        let mut data = &buf[..];
        if pos < skip {
            let k = ((skip - pos) as usize).min(data.len());
            crate::writer::push_tail(&mut window, &data[..k]);
            pos += k as u64;
            data = &data[k..];
        }
        if !seeded && pos == skip {
            if !seed(&mut window)? {
                return Ok(());
            }
            seeded = true;
        }
        if !data.is_empty() {
            // At most `limit` bytes after `skip`; the rest is the next round's.
            let room = skip.saturating_add(limit).saturating_sub(pos);
            let data = &data[..data.len().min(usize::try_from(room).unwrap_or(usize::MAX))];
            pos += data.len() as u64;
            if !data.is_empty() && out.blocking_send(Chunk::Data(data.to_vec())).is_err() {
                return Ok(());
            }
            if pos >= skip.saturating_add(limit) {
                return Ok(());
            }
        }
    }
    if pos < skip {
        // Shorter than what was collected from it: its collected part was cut.
        return Err(TailMismatch.into());
    }
    if !seeded {
        // Exactly as long as what was collected: nothing new, but still check it.
        seed(&mut window)?;
    }
    Ok(())
}

/// Audit samples: re-reads random collected blocks of the file and compares them with the
/// archive. `None` when they all match (or there is nothing to sample).
async fn audit(
    t: &Target<'_>,
    c: &Cursor,
    file: &RemoteFile<'_>,
) -> Result<Option<Finding>, FileError> {
    let samples = t.ctx.config.audit_samples;
    let Some(first) = c.spans.first() else {
        return Ok(None);
    };
    // The tail before the cursor is checked every round anyway.
    let limit = c.end - c.tail.len;
    if samples == 0 || limit <= first.start {
        return Ok(None);
    }
    for _ in 0..samples {
        let p = rand::thread_rng().gen_range(first.start..limit);
        let Some(span) = c.spans.iter().find(|s| s.start <= p && p < s.end) else {
            continue;
        };
        let len = AUDIT_BLOCK.min(span.end - p).min(limit - p);
        let remote = file.read_at(p, len).await?;
        let store = t.ctx.store.clone();
        let span = span.clone();
        let archived = tokio::task::spawn_blocking(move || archived_bytes(&store, &span, p, len))
            .await
            .map_err(|e| anyhow::anyhow!("audit task failed: {e}"))??;
        // Its day went to the archive tier: nothing local to compare with.
        let Some(archived) = archived else { continue };
        if remote != archived {
            return Ok(Some(Finding::Rewritten {
                path: t.path.to_string(),
                start: p,
                end: p + len,
                how: "an audit sample of collected bytes differs",
            }));
        }
    }
    Ok(None)
}

/// The raw bytes `[p, p + len)` of the source, from the stored frame that holds them; `None`
/// when that file is no longer in the store (its day was archived).
fn archived_bytes(
    store: &crate::store::Store,
    span: &cursor::Span,
    p: u64,
    len: u64,
) -> anyhow::Result<Option<Vec<u8>>> {
    let path = store.path(&span.file);
    let mut f = match std::fs::File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("cannot open {}", path.display())),
    };
    std::io::Seek::seek(&mut f, std::io::SeekFrom::Start(span.offset))?;
    let stored = std::io::Read::take(f, span.length);
    let compression = crate::store::compression_of(&span.file).unwrap_or_default();
    let mut raw: Box<dyn std::io::Read> = match compression {
        crate::config::Compression::Zstd => Box::new(zstd::stream::read::Decoder::new(stored)?),
        crate::config::Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(stored)),
    };
    std::io::copy(
        &mut std::io::Read::by_ref(&mut raw).take(p - span.start),
        &mut std::io::sink(),
    )?;
    let mut out = Vec::with_capacity(len as usize);
    raw.take(len).read_to_end(&mut out)?;
    Ok(Some(out))
}

/// Records a finding: a ledger event (which starts the file's next generation), a log line,
/// and the report.
fn record(t: &Target<'_>, finding: Finding, report: &mut FileReport) -> Result<(), FileError> {
    let (event, start, end, detail) = match &finding {
        Finding::Rewritten {
            path,
            start,
            end,
            how,
        } => (
            EventKind::Rewritten,
            Some(*start),
            Some(*end),
            format!(
                "{how}: bytes {start}..{end} of the collected generation, in {path}; the \
                 archive keeps the original and the new content follows as a new generation",
                path = Shown(path)
            ),
        ),
        Finding::Truncated { size, collected } => (
            EventKind::Truncated,
            Some(*size),
            Some(*collected),
            format!(
                "shrank from {collected} to {size} bytes with no rotated copy of the old \
                 content; what was collected is kept, anything written after the last round \
                 and before the truncation is lost"
            ),
        ),
        Finding::Replaced { collected } => (
            EventKind::Replaced,
            None,
            Some(*collected),
            format!(
                "a different file now has this name and the previous one (collected up to byte \
                 {collected}) is not among its rotated siblings; anything written to it after \
                 the last round is lost"
            ),
        ),
    };
    let line = format!("{}: {}: {}", t.host.name, Shown(t.path), detail);
    match event {
        EventKind::Rewritten => {
            tracing::error!("ALARM: log rewritten: {line}");
            report.alarms.push(detail.clone());
        }
        _ => {
            tracing::warn!("{line}");
            report.notes.push(detail.clone());
        }
    }
    t.ctx.append(Entry::Event(Event {
        seq: 0,
        time: String::new(),
        event,
        host: Some(t.host.name.clone()),
        source: Some(t.path.to_string()),
        start,
        end,
        sha256: None,
        detail,
    }))?;
    Ok(())
}

/// A snapshot file: read whole, stored when its content changed.
async fn pull_snapshot(
    t: &Target<'_>,
    cursor: Option<Cursor>,
    report: &mut FileReport,
) -> Result<(), FileError> {
    let file = t.session.open(t.path).await?;
    let result = async {
        let size = file.size().await?;
        if size == 0 && cursor.is_none() {
            return Ok(Written::default());
        }
        let head = file.read_at(0, size.min(HEAD_LEN)).await?;
        let job = Job {
            host: t.host.name.clone(),
            source: t.path.to_string(),
            from: None,
            via: Via::Snapshot,
            start: 0,
            head,
            tail: Vec::new(),
            max_frame: u64::MAX,
            unchanged_if: cursor.as_ref().and_then(|c| c.content),
        };
        transfer(t, &file, Reading::Plain(0, size), job).await
    }
    .await;
    file.close().await;
    let written = result?;
    report.raw_bytes = written.raw;
    report.stored_bytes = written.stored;
    report.frames = written.frames;
    if written.frames > 0 {
        report.outcome = Outcome::SnapshotStored;
    }
    Ok(())
}
