//! Collecting one remote file in a round (DESIGN §4): what to read, reading it, and what to tell
//! the auditor.
//!
//! For a log: observe the file at its path, ask [`rotation::decide`]. When it simply grew, read the
//! new bytes (after audit samples: a few random collected blocks re-read and compared with the
//! archive). When something changed, probe its rotated siblings (`auth.log.1`,
//! `auth.log.2.gz`, `auth.log-20261128`) youngest first for the generation the cursor belongs
//! to, and follow [`rotation::plan`]: the old generation's unread tail, every generation rotated
//! away in between, then the new file from 0. Compressed generations are decompressed on the way,
//! and their collected part is checked as it streams past. A rewrite (collected bytes changed) is
//! an alarm; a truncation or replacement is noted. Both are ledger events, after which the file's
//! next bytes start a new generation; what was collected before is never touched.
//!
//! A snapshot file is read whole and stored when its content hash differs from the last copy.

use std::io::Read as _;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use rand::Rng;
use tokio::sync::mpsc;

use crate::config::HostConfig;
use crate::failpoint;
use crate::hash::Hash;
use crate::ledger::cursor::{Cursor, HEAD_LEN, Probe, Span, TAIL_LEN};
use crate::ledger::writer::{Chunk, Job, Written, write_frames};
use crate::ledger::{Entry, Event, EventKind, Via};
use crate::pull::remote::{RemoteError, RemoteFile, Session};
use crate::pull::rotation::{self, Candidate, Change, Decision, Finding, Observed, Step};
use crate::pull::{Ctx, FileReport, MAX_FRAME_RAW, Outcome};
use crate::sanitize::Shown;
use crate::store::layout;

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
    match via {
        Via::Pull => pull_log(&t, &mut report).await?,
        Via::Snapshot => {
            let cursor = ctx.cursor(&host.name, path)?;
            pull_snapshot(&t, cursor, &mut report).await?
        }
        Via::Tls | Via::Journal => {
            return Err(FileError::Local(anyhow::anyhow!(
                "received messages and journals are not collected as files"
            )));
        }
    }
    Ok(report)
}

/// How often a log is looked at again when it changed while it was being looked at or read.
const ATTEMPTS: u32 = 8;

/// The file moved or changed while it was looked at or read (a rotation in progress): what was
/// seen cannot be trusted, look again.
#[derive(Debug, thiserror::Error)]
#[error("the file changed while it was read")]
struct Moving;

async fn pull_log(t: &Target<'_>, report: &mut FileReport) -> Result<(), FileError> {
    for attempt in 1..=ATTEMPTS {
        // Read again each time: an earlier attempt may have committed frames or events.
        let cursor = t.ctx.cursor(&t.host.name, t.path)?;
        let result = match look(t, cursor.as_ref()).await? {
            Some(view) => {
                let r = act(t, cursor.as_ref(), &view, report).await;
                view.close().await;
                r
            }
            None => Err(FileError::Local(Moving.into())),
        };
        match result {
            Err(FileError::Local(e)) if e.is::<Moving>() => {
                tracing::debug!(
                    "{}: {} changed while it was read (attempt {attempt})",
                    t.host.name,
                    Shown(t.path)
                );
                tokio::time::sleep(Duration::from_millis(40 * u64::from(attempt))).await;
            }
            other => {
                other?;
                if report.frames > 0 && report.outcome == Outcome::UpToDate {
                    report.outcome = Outcome::Collected;
                }
                return Ok(());
            }
        }
    }
    let detail = format!(
        "kept changing while it was read ({ATTEMPTS} looks): what could be read is kept, the \
         rest waits for the next round; a log that never settles is being rewritten"
    );
    tracing::warn!("{}: {}: {detail}", t.host.name, Shown(t.path));
    report.notes.push(detail.clone());
    t.ctx.append(Entry::Event(Event {
        seq: 0,
        time: String::new(),
        event: EventKind::Unsettled,
        host: Some(t.host.name.clone()),
        source: Some(t.path.to_string()),
        start: None,
        end: None,
        sha256: None,
        detail,
    }))?;
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
    let plan = rotation::probe_plan(cursor, size);
    let head = file.read_at(0, plan.head_len).await?;
    if let Some(d) = failpoint::pause_once("between-head-and-tail") {
        tokio::time::sleep(d).await;
    }
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

/// A file of this round, opened once: the bytes whose identity was checked through this handle
/// are the bytes read through it, whatever logrotate renames meanwhile.
struct Gen<'s> {
    /// Its name when it was opened.
    path: String,
    file: RemoteFile<'s>,
    gz: bool,
    /// Its first bytes (decompressed for `.gz`), up to [`HEAD_LEN`].
    head: Vec<u8>,
    /// The bytes before the cursor's offset, when they were read and match (plain files).
    tail: Vec<u8>,
}

/// A log as seen this round: the file at its path and, when needed, its rotated siblings, all
/// open, in a view that did not change while it was taken.
struct View<'s> {
    live: Option<Gen<'s>>,
    seen: Option<Seen>,
    decision: Decision,
    /// First sight of the log, with its history to collect.
    first_sight: bool,
    /// Distinct generations among the rotated siblings, probed youngest first.
    siblings: Vec<Gen<'s>>,
    /// What `rotation::plan` needs of each of `siblings`, in the same order.
    candidates: Vec<Candidate>,
}

impl<'s> View<'s> {
    async fn close(self) {
        if let Some(g) = self.live {
            g.file.close().await;
        }
        for g in self.siblings {
            g.file.close().await;
        }
    }

    fn sibling(&self, path: &str) -> Option<&Gen<'s>> {
        self.siblings.iter().find(|g| g.path == path)
    }
}

/// Looks at the log: opens the file at its path, observes it, and when the cursor asks for it
/// (a change, or first sight with `history`), opens its rotated siblings youngest first. Then
/// checks that nothing moved meanwhile: the same sibling names, and every name opened still
/// showing the same first bytes. `None`: something moved (logrotate at work); look again.
async fn look<'s>(t: &Target<'s>, cursor: Option<&Cursor>) -> Result<Option<View<'s>>, FileError> {
    let live = match t.session.open(t.path).await {
        Ok(f) => Some(f),
        Err(e) if e.is_not_found() && cursor.is_some() => None,
        Err(e) => return Err(e.into()),
    };
    let seen = match &live {
        Some(f) => Some(observe(f, cursor).await?),
        None => None,
    };
    // Shorter reads than the size asked for: the file shrank while it was observed (truncated
    // in place, copytruncate). Its first bytes would be no identity: look again.
    if let Some(s) = &seen {
        let short_head = (s.head.len() as u64) < s.obs.size.min(HEAD_LEN);
        let short_tail = s
            .tail
            .as_ref()
            .zip(cursor)
            .is_some_and(|(t, c)| (t.len() as u64) < c.tail.len);
        if short_head || short_tail {
            if let Some(f) = live {
                f.close().await;
            }
            return Ok(None);
        }
    }
    let decision = rotation::decide(cursor, seen.as_ref().map(|s| s.obs));
    // First sight, or a cursor that starts over with nothing of the new generation collected:
    // generations rotated away meanwhile (never collected) are looked for too.
    let first_sight = t.host.history && cursor.is_none_or(|c| c.head.len == 0);
    // The identity was lost from the path: look for it among the siblings. (A path that still
    // carries it, with collected bytes changed or cut, is an edit whatever the siblings hold.)
    let search = cursor.filter(|c| {
        c.head.len > 0
            && matches!(
                decision,
                Decision::Search(
                    Change::NewIdentity
                        | Change::Missing
                        | Change::Shrunk {
                            head_same: false,
                            ..
                        }
                )
            )
    });
    // An identity shorter than 4 KiB (little was collected) could be a banner that the next
    // generation starts with too: the path still showing it proves nothing if a sibling that
    // was never collected shows it as well (the log was rotated).
    let weak = cursor.filter(|c| {
        t.host.history
            && c.head.len > 0
            && c.head.len < HEAD_LEN
            && matches!(decision, Decision::Append { .. } | Decision::UpToDate)
    });
    let known = cursor.filter(|c| !c.known.is_empty());
    let live = live.zip(seen.as_ref()).map(|(file, s)| Gen {
        path: t.path.to_string(),
        file,
        gz: false,
        head: s.head.clone(),
        tail: Vec::new(),
    });
    let mut view = View {
        live,
        seen,
        decision,
        first_sight,
        siblings: Vec::new(),
        candidates: Vec::new(),
    };
    // An alarm at the path rests on reads made one after the other: they are evidence only if
    // the file was not truncated in place (copytruncate) and regrown in between.
    if matches!(
        decision,
        Decision::Search(
            Change::TailChanged
                | Change::Shrunk {
                    head_same: true,
                    ..
                }
        )
    ) && let Some(g) = &view.live
        && !unchanged(g).await?
    {
        view.close().await;
        return Ok(None);
    }
    if !first_sight && search.is_none() && weak.is_none() {
        return Ok(Some(view));
    }
    let search = search.or(weak);
    let names = sibling_names(t).await?;
    // Every name opened and the first bytes it showed, for the check that nothing moved.
    let mut shown: Vec<(String, bool, Vec<u8>)> = Vec::new();
    for (path, age, gz) in names.iter().take(MAX_SIBLINGS) {
        let f = match t.session.open(path).await {
            Ok(f) => f,
            Err(e) if e.is_not_found() => {
                view.close().await;
                return Ok(None);
            }
            Err(e) => return Err(e.into()),
        };
        let head = first_bytes(&f, *gz).await?;
        shown.push((path.clone(), *gz, head.clone()));
        // An empty file holds nothing to collect; a `.gz` beside the plain file of the same
        // generation (compression in progress, `delaycompress`) is the same generation; so is
        // a copy in progress of the live file (copytruncate), whose first bytes it starts with.
        let twin = view.siblings.iter().zip(&view.candidates).any(|(g, c)| {
            c.age == *age && g.gz != *gz && (g.head.starts_with(&head) || head.starts_with(&g.head))
        });
        let live_copy = view
            .live
            .as_ref()
            .is_some_and(|l| l.head.starts_with(&head));
        if head.is_empty() || twin || live_copy {
            f.close().await;
            continue;
        }
        let mut candidate = Candidate {
            path: path.clone(),
            age: age.clone(),
            gz: *gz,
            head_matches: false,
            tail_matches: None,
            copied: None,
            known: false,
        };
        let mut tail = Vec::new();
        if let Some(c) = search {
            let n = c.head.len as usize;
            candidate.head_matches = head.len() >= n && Hash::of(&head[..n]) == c.head.sha256;
            if candidate.head_matches && !gz {
                let size = f.size().await?;
                if size < c.end {
                    // Shorter than what was collected from it: copytruncate's race when what
                    // it holds is what was collected, a rewrite otherwise.
                    let prefix = copy_is_prefix(t, c, &f, size).await?;
                    candidate.tail_matches = Some(prefix);
                    candidate.copied = prefix.then_some(size);
                } else {
                    tail = f.read_at(c.end - c.tail.len, c.tail.len).await?;
                    // The same audit samples as the live file gets: an edit that keeps the
                    // length is found in a rotated copy too.
                    let intact =
                        Hash::of(&tail) == c.tail.sha256 && audit(t, c, &f).await?.is_none();
                    candidate.tail_matches = Some(intact);
                }
            }
        }
        let knows_it = known.is_some_and(|c| c.knows(&head));
        candidate.known = !candidate.head_matches && knows_it;
        // Weak identity: the first sibling that shows it decides (a rotation when it was never
        // collected).
        let rotated = weak.is_some()
            && candidate.head_matches
            && !knows_it
            && candidate.tail_matches != Some(false)
            && candidate.copied.is_none();
        let stop = weak.is_some() && candidate.head_matches;
        view.siblings.push(Gen {
            path: path.clone(),
            file: f,
            gz: *gz,
            head,
            tail,
        });
        view.candidates.push(candidate);
        if rotated {
            view.decision = Decision::Search(Change::NewIdentity);
        }
        if stop {
            break;
        }
    }
    // Nothing moved while the view was taken?
    let still = sibling_names(t).await? == names
        && same_head(t, t.path, false, view.live.as_ref().map(|g| &g.head[..])).await?
        && {
            let mut all = true;
            for (path, gz, head) in &shown {
                if !same_head(t, path, *gz, Some(head)).await? {
                    all = false;
                    break;
                }
            }
            all
        };
    if !still {
        view.close().await;
        return Ok(None);
    }
    Ok(Some(view))
}

/// Whether the file still starts with the bytes first seen through this handle.
async fn unchanged(g: &Gen<'_>) -> Result<bool, FileError> {
    starts_with(&g.file, &g.head).await
}

/// Whether the open file starts with `head` now.
async fn starts_with(file: &RemoteFile<'_>, head: &[u8]) -> Result<bool, FileError> {
    Ok(file.read_at(0, head.len() as u64).await? == head)
}

/// A file's first bytes (up to [`HEAD_LEN`]), decompressed for a `.gz`.
async fn first_bytes(f: &RemoteFile<'_>, gz: bool) -> Result<Vec<u8>, RemoteError> {
    if gz {
        gz_prefix(f, HEAD_LEN).await
    } else {
        f.read_at(0, HEAD_LEN).await
    }
}

/// The rotated siblings of the log by name, youngest first; a plain file before its `.gz`.
async fn sibling_names(t: &Target<'_>) -> Result<Vec<(String, rotation::Age, bool)>, FileError> {
    let (dir, base) = match t.path.rsplit_once('/') {
        Some(("", b)) => ("/", b),
        Some((d, b)) => (d, b),
        None => return Ok(Vec::new()),
    };
    let entries = match t.session.list_dir(dir).await {
        Ok(e) => e,
        Err(e) if e.is_not_found() => Vec::new(),
        Err(e) => return Err(e.into()),
    };
    let mut found: Vec<(String, rotation::Age, bool)> = entries
        .into_iter()
        .filter(|(_, regular)| *regular)
        .filter_map(|(name, _)| {
            let (age, gz) = rotation::sibling(base, &name)?;
            let path = if dir == "/" {
                format!("/{name}")
            } else {
                format!("{dir}/{name}")
            };
            Some((path, age, gz))
        })
        .collect();
    found.sort_by(|a, b| {
        youngest_first(&a.1, &b.1)
            .then_with(|| a.2.cmp(&b.2))
            .then_with(|| a.0.cmp(&b.0))
    });
    Ok(found)
}

/// Whether the name still shows the first bytes seen through the handle opened earlier (or
/// more of them: a file may grow): `None` for a name that was not there.
async fn same_head(
    t: &Target<'_>,
    path: &str,
    gz: bool,
    head: Option<&[u8]>,
) -> Result<bool, FileError> {
    let f = match t.session.open(path).await {
        Ok(f) => f,
        Err(e) if e.is_not_found() => return Ok(head.is_none()),
        Err(e) => return Err(e.into()),
    };
    let now = first_bytes(&f, gz).await;
    f.close().await;
    let now = now?;
    Ok(head.is_some_and(|h| now.starts_with(h)))
}

/// A rotated copy shorter than what was collected from its generation: is it a prefix of what
/// was collected? Its last bytes (up to [`TAIL_LEN`]) and `audit_samples` random blocks before
/// them are compared with the archive. `false` when the archive cannot tell (those frames went
/// to the archive tier): then it counts as cut, and raises the alarm.
async fn copy_is_prefix(
    t: &Target<'_>,
    c: &Cursor,
    f: &RemoteFile<'_>,
    size: u64,
) -> Result<bool, FileError> {
    // The race loses only what the round between logrotate's copy and its truncation read: the
    // copy holds at least everything before that round's frame.
    if c.spans.last().is_some_and(|s| size < s.start) {
        return Ok(false);
    }
    let len = size.min(TAIL_LEN);
    let mut ranges = vec![(size - len, size)];
    let first = c.spans.first().map_or(0, |s| s.start);
    for _ in 0..t.ctx.config.audit_samples {
        if size - len > first {
            let p = rand::thread_rng().gen_range(first..size - len);
            ranges.push((p, (p + AUDIT_BLOCK).min(size - len)));
        }
    }
    for (a, b) in ranges {
        let remote = f.read_at(a, b - a).await?;
        match collected_bytes(t, c, a, b).await? {
            Some(stored) if stored == remote => {}
            _ => return Ok(false),
        }
    }
    Ok(true)
}

/// Source bytes `[a, b)` of the cursor's generation as the archive holds them (from the frames
/// the cursor remembers); `None` when not all of them are in the local store.
async fn collected_bytes(
    t: &Target<'_>,
    c: &Cursor,
    a: u64,
    b: u64,
) -> Result<Option<Vec<u8>>, FileError> {
    let store = t.ctx.store.clone();
    let spans = c.spans.clone();
    let read = move || -> anyhow::Result<Option<Vec<u8>>> {
        let mut out = Vec::with_capacity((b - a) as usize);
        let mut p = a;
        while p < b {
            let Some(span) = spans.iter().find(|s| s.start <= p && p < s.end) else {
                return Ok(None);
            };
            let len = b.min(span.end) - p;
            match archived_bytes(&store, span, p, len)? {
                Some(v) if v.len() as u64 == len => out.extend_from_slice(&v),
                _ => return Ok(None),
            }
            p += len;
        }
        Ok(Some(out))
    };
    Ok(tokio::task::spawn_blocking(read)
        .await
        .map_err(|e| anyhow::anyhow!("archive read task failed: {e}"))??)
}

/// Carries out what the view calls for.
async fn act(
    t: &Target<'_>,
    cursor: Option<&Cursor>,
    view: &View<'_>,
    report: &mut FileReport,
) -> Result<(), FileError> {
    if view.first_sight {
        let size = view.seen.as_ref().map_or(0, |s| s.obs.size);
        let steps = rotation::history(&view.candidates, view.live.is_some() && size > 0);
        return run_steps(t, None, view, steps.into(), report).await;
    }
    let (Some(live), Some(seen)) = (&view.live, &view.seen) else {
        return match (view.decision, cursor) {
            (Decision::Search(change), Some(c)) => follow_change(t, c, change, view, report).await,
            _ => Ok(()),
        };
    };
    match view.decision {
        Decision::UpToDate | Decision::Append { .. } => {
            if let Some(d) = failpoint::pause_once("before-audit") {
                tokio::time::sleep(d).await;
            }
            if let Some(c) = cursor
                && let Some(finding) = audit(t, c, &live.file).await?
            {
                // Not an edit if the file was truncated in place (copytruncate) meanwhile.
                if !unchanged(live).await? {
                    return Err(FileError::Local(Moving.into()));
                }
                record(t, finding, report)?;
                // The file changed under its identity: its content is a new generation.
                return collect(
                    t,
                    live,
                    Reading::Plain(0, seen.obs.size),
                    None,
                    Vec::new(),
                    report,
                )
                .await;
            }
            if let Decision::Append { from } = view.decision {
                let tail = seen.tail.clone().unwrap_or_default();
                collect(
                    t,
                    live,
                    Reading::Plain(from, seen.obs.size),
                    None,
                    tail,
                    report,
                )
                .await?;
            }
            Ok(())
        }
        Decision::New => {
            collect(
                t,
                live,
                Reading::Plain(0, seen.obs.size),
                None,
                Vec::new(),
                report,
            )
            .await
        }
        Decision::Search(change) => match cursor {
            Some(c) => follow_change(t, c, change, view, report).await,
            None => Ok(()),
        },
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

/// Collected content looked for in a file whose first bytes changed: where it was collected,
/// the bytes, and what it is.
struct Block {
    at: u64,
    bytes: Vec<u8>,
    kind: Kind,
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    /// The window just before the cursor.
    Tail,
    /// A block sampled at random.
    Sample,
    /// A whole line of a small generation, and its number (from 0).
    Line(usize),
}

/// How far from where it was collected a block is looked for.
const EDIT_SHIFT: u64 = 1 << 20;
/// Bytes of a sampled block of collected content.
const EDIT_BLOCK: u64 = 256;
/// Sampled blocks, besides the 4 KiB before the cursor.
const EDIT_SAMPLES: usize = 4;
/// Sampled blocks that must be found when the window before the cursor is not (one could be a
/// banner that every generation of the log starts with).
const EDIT_SAMPLES_FOUND: usize = 2;
/// A generation collected up to this size is searched line by line (too small for samples).
const EDIT_SMALL: u64 = 16 * 1024;
/// Lines of a small generation at its start that prove nothing alone (a banner).
const EDIT_BANNER_LINES: usize = 4;
/// Files searched at most (the live one, then siblings youngest first, each at least as large
/// as what was collected less [`EDIT_SHIFT`]).
const EDIT_FILES: usize = 32;
/// Decompressed bytes of a `.gz` searched at most.
const EDIT_GZ_MAX: u64 = 256 << 20;

/// The first of `files` in which collected content is found: the collected generation, edited
/// at its start. See docs/threat-model.md for the rule and its limits.
async fn find_edited<'a, 's: 'a>(
    t: &Target<'_>,
    c: &Cursor,
    files: impl Iterator<Item = &'a Gen<'s>>,
) -> Result<Option<String>, FileError> {
    let blocks = edit_blocks(t, c).await?;
    if blocks.is_empty() {
        return Ok(None);
    }
    let mut searched = 0;
    for g in files {
        if searched == EDIT_FILES {
            break;
        }
        // Too small to hold what was collected, give or take what an edit moves.
        if content_size(g).await? < c.end.saturating_sub(EDIT_SHIFT) {
            continue;
        }
        searched += 1;
        if holds_collected(g, c, &blocks).await? {
            return Ok(Some(g.path.clone()));
        }
    }
    Ok(None)
}

/// The size of a file's content: its size, or for a `.gz` the size its trailer gives (modulo
/// 2^32, as gzip records it; `u64::MAX` when it cannot tell).
async fn content_size(g: &Gen<'_>) -> Result<u64, FileError> {
    let size = g.file.size().await?;
    if !g.gz {
        return Ok(size);
    }
    if size < 18 {
        return Ok(0);
    }
    let trailer = g.file.read_at(size - 4, 4).await?;
    Ok(match <[u8; 4]>::try_from(&trailer[..]) {
        Ok(b) if size < (1 << 31) => u64::from(u32::from_le_bytes(b)),
        _ => u64::MAX,
    })
}

/// The collected content to look for: the 4 KiB before the cursor and a few random blocks of
/// the generation's remembered frames, read from the archive; for a small generation, its
/// lines. Blocks of few distinct bytes (padding, repeated characters) could be found anywhere
/// and are left out.
async fn edit_blocks(t: &Target<'_>, c: &Cursor) -> Result<Vec<Block>, FileError> {
    let varied = |b: &[u8], n: usize| {
        let mut seen = [false; 256];
        b.iter().for_each(|&x| seen[x as usize] = true);
        seen.iter().filter(|&&s| s).count() >= n
    };
    let mut blocks = Vec::new();
    if c.end <= EDIT_SMALL {
        // The window before the cursor would be (nearly) all of it: a banner that the next
        // generation repeats would match. Its lines, with the banner rule, are the evidence.
        let Some(all) = collected_bytes(t, c, 0, c.end).await? else {
            return Ok(blocks);
        };
        // A line that occurs twice proves nothing (repeated messages, stack traces).
        let mut count: std::collections::HashMap<&[u8], usize> = Default::default();
        for line in all.split_inclusive(|&b| b == b'\n') {
            *count.entry(line).or_default() += 1;
        }
        let mut at = 0u64;
        for (i, line) in all.split_inclusive(|&b| b == b'\n').enumerate() {
            if line.len() >= 24 && varied(line, 8) && count.get(line) == Some(&1) {
                blocks.push(Block {
                    at,
                    bytes: line.to_vec(),
                    kind: Kind::Line(i),
                });
            }
            at += line.len() as u64;
        }
        return Ok(blocks);
    }
    let mut ranges = vec![(c.end - c.tail.len, c.end, Kind::Tail)];
    if let Some(first) = c.spans.first() {
        let limit = c.end - c.tail.len;
        for _ in 0..EDIT_SAMPLES {
            if limit >= first.start + EDIT_BLOCK {
                let p = rand::thread_rng().gen_range(first.start..=limit - EDIT_BLOCK);
                ranges.push((p, p + EDIT_BLOCK, Kind::Sample));
            }
        }
    }
    let first = c.spans.first().map_or(0, |s| s.start);
    for (a, b, kind) in ranges {
        let Some(bytes) = collected_bytes(t, c, a, b).await? else {
            continue;
        };
        if !varied(&bytes, 16) {
            continue;
        }
        // Only a block that occurs once where it was collected (give or take the distance it is
        // looked for at) is evidence: repeated content (stack traces, messages without a
        // timestamp) would be found in any generation of the log.
        let around = (
            a.saturating_sub(EDIT_SHIFT).max(first),
            c.end.min(b + EDIT_SHIFT),
        );
        let Some(context) = collected_bytes(t, c, around.0, around.1).await? else {
            continue;
        };
        if memchr::memmem::find_iter(&context, &bytes).take(2).count() == 1 {
            blocks.push(Block { at: a, bytes, kind });
        }
    }
    Ok(blocks)
}

/// Whether the file holds collected content within [`EDIT_SHIFT`] of where it was collected:
/// the window before the cursor, or [`EDIT_SAMPLES_FOUND`] sampled blocks, or (a small
/// generation) more than half of its lines, one of them past its first
/// [`EDIT_BANNER_LINES`].
async fn holds_collected(g: &Gen<'_>, c: &Cursor, blocks: &[Block]) -> Result<bool, FileError> {
    let mut windows: Vec<(u64, u64)> = blocks
        .iter()
        .filter(|b| !matches!(b.kind, Kind::Line(_)))
        .map(|b| {
            (
                b.at.saturating_sub(EDIT_SHIFT),
                b.at + b.bytes.len() as u64 + EDIT_SHIFT,
            )
        })
        .collect();
    // One window holds the whole of a small generation's lines.
    windows.push((0, c.end + EDIT_SHIFT));
    let texts = if g.gz {
        gz_windows(&g.file, &windows).await?
    } else {
        let mut texts = Vec::new();
        for (a, b) in &windows {
            texts.push(g.file.read_at(*a, b - a).await?);
        }
        texts
    };
    let (whole, texts) = texts
        .split_last()
        .map_or((&[][..], &[][..]), |(w, t)| (&w[..], t));
    let found = |b: &Block, text: &[u8]| memchr::memmem::find(text, &b.bytes).is_some();
    let others = blocks.iter().filter(|b| !matches!(b.kind, Kind::Line(_)));
    let mut tail = false;
    let mut samples = 0;
    for (b, text) in others.zip(texts) {
        match b.kind {
            Kind::Tail => tail |= found(b, text),
            _ => samples += usize::from(found(b, text)),
        }
    }
    let lines: Vec<usize> = blocks
        .iter()
        .filter_map(|b| match b.kind {
            Kind::Line(i) => Some(i),
            _ => None,
        })
        .collect();
    let lines_found: Vec<usize> = blocks
        .iter()
        .filter_map(|b| match b.kind {
            Kind::Line(i) if found(b, whole) => Some(i),
            _ => None,
        })
        .collect();
    let small_edit = lines.len() >= 2
        && lines_found.len() * 2 > lines.len()
        && lines_found.iter().any(|&i| i >= EDIT_BANNER_LINES);
    Ok(tail || samples >= EDIT_SAMPLES_FOUND || small_edit)
}

/// The decompressed bytes of a `.gz` at each window (cut at its end, or at [`EDIT_GZ_MAX`]).
async fn gz_windows(f: &RemoteFile<'_>, windows: &[(u64, u64)]) -> Result<Vec<Vec<u8>>, FileError> {
    let size = f.size().await?;
    let (tx, rx) = mpsc::channel::<Vec<u8>>(CHANNEL_DEPTH);
    let wanted = windows.to_vec();
    let decoder = tokio::task::spawn_blocking(move || -> Vec<Vec<u8>> {
        let stop = wanted
            .iter()
            .map(|w| w.1)
            .max()
            .unwrap_or(0)
            .min(EDIT_GZ_MAX);
        let mut out: Vec<Vec<u8>> = vec![Vec::new(); wanted.len()];
        let mut d = flate2::read::MultiGzDecoder::new(ChannelReader {
            rx,
            buf: Vec::new(),
            pos: 0,
        });
        let mut pos = 0u64;
        let mut buf = vec![0u8; 256 * 1024];
        while pos < stop {
            let n = match d.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            let (a, b) = (pos, pos + n as u64);
            for (w, o) in wanted.iter().zip(out.iter_mut()) {
                let (s, e) = (w.0.max(a), w.1.min(b));
                if s < e {
                    o.extend_from_slice(&buf[(s - a) as usize..(e - a) as usize]);
                }
            }
            pos = b;
        }
        out
    });
    // The decoder hangs up when it has what it needs, which ends the stream early; and no more
    // compressed bytes are read than decompressed ones are wanted (logs compress, they do not
    // grow: a stream of empty deflate blocks is cut off there).
    let read = f.stream(0, size.min(EDIT_GZ_MAX), &tx).await;
    drop(tx);
    let texts = decoder
        .await
        .map_err(|e| anyhow::anyhow!("decompressing thread failed: {e}"))?;
    read?;
    Ok(texts)
}

async fn follow_change(
    t: &Target<'_>,
    c: &Cursor,
    change: Change,
    view: &View<'_>,
    report: &mut FileReport,
) -> Result<(), FileError> {
    let found = view.candidates.iter().any(|c| c.head_matches);
    let intact = view
        .candidates
        .iter()
        .any(|c| c.head_matches && c.tail_matches != Some(false));
    let live = view
        .live
        .as_ref()
        .filter(|_| view.seen.as_ref().is_some_and(|s| s.obs.size > 0));
    let edited = match change {
        _ if c.head.len == 0 => None,
        // A rotation: the new live file must hold nothing collected.
        _ if intact => find_edited(t, c, live.into_iter()).await?,
        Change::NewIdentity
        | Change::Missing
        | Change::Shrunk {
            head_same: false, ..
        } if !found => find_edited(t, c, live.into_iter().chain(view.siblings.iter())).await?,
        _ => None,
    };
    let plan = rotation::plan(
        c,
        change,
        t.path,
        view.live.is_some(),
        &view.candidates,
        edited.as_deref(),
        t.host.history,
    );
    if let Some(finding) = plan.finding.clone() {
        record(t, finding, report)?;
    }
    run_steps(t, Some(c), view, plan.steps.into(), report).await
}

/// Reads the steps of a plan in order, each through the handle its generation was seen through.
async fn run_steps(
    t: &Target<'_>,
    c: Option<&Cursor>,
    view: &View<'_>,
    mut steps: std::collections::VecDeque<Step>,
    report: &mut FileReport,
) -> Result<(), FileError> {
    while let Some(step) = steps.pop_front() {
        if report.budget_reached {
            // The rest of the plan waits for the next round: the cursor stays in the generation
            // being read, which the next round finds among the siblings again.
            break;
        }
        match step {
            Step::Current => {
                if let (Some(g), Some(s)) = (&view.live, &view.seen) {
                    collect(
                        t,
                        g,
                        Reading::Plain(0, s.obs.size),
                        None,
                        Vec::new(),
                        report,
                    )
                    .await?;
                }
            }
            Step::Tail { path, gz, from } => {
                let (Some(g), Some(c)) = (view.sibling(&path), c) else {
                    continue;
                };
                let result = if gz {
                    let read = Reading::Gz {
                        skip: from,
                        tail: Some(c.tail),
                        limit: u64::MAX,
                    };
                    collect(t, g, read, Some(&path), Vec::new(), report).await
                } else {
                    let size = g.file.size().await?;
                    let read = Reading::Plain(from, size);
                    collect(t, g, read, Some(&path), g.tail.clone(), report).await
                };
                match result {
                    Err(FileError::Local(e)) => match e.downcast::<GzTail>() {
                        Ok(GzTail::Short { len, window }) => {
                            // The compressed copy ends before the cursor: copytruncate's race
                            // when what it holds is what was collected.
                            let wlen = window.len() as u64;
                            let stored = collected_bytes(t, c, len - wlen, len).await?;
                            // As for a plain copy: the race loses one round's bytes at most.
                            let within = c.spans.last().is_none_or(|s| len >= s.start);
                            if len > 0 && within && stored.as_deref() == Some(&window[..]) {
                                record(
                                    t,
                                    Finding::CopyShort {
                                        path: path.clone(),
                                        copied: len,
                                        collected: c.end,
                                    },
                                    report,
                                )?;
                            } else {
                                rewritten_copy(t, c, &path, report)?;
                                steps.push_front(Step::Whole { path, gz });
                            }
                        }
                        Ok(GzTail::Mismatch) => {
                            rewritten_copy(t, c, &path, report)?;
                            steps.push_front(Step::Whole { path, gz });
                        }
                        Err(e) => return Err(FileError::Local(e)),
                    },
                    other => other?,
                }
            }
            Step::Whole { path, gz } => {
                let Some(g) = view.sibling(&path) else {
                    continue;
                };
                let read = if gz {
                    Reading::Gz {
                        skip: 0,
                        tail: None,
                        limit: u64::MAX,
                    }
                } else {
                    Reading::Plain(0, g.file.size().await?)
                };
                collect(t, g, read, Some(&path), Vec::new(), report).await?;
            }
        }
    }
    Ok(())
}

/// The compressed copy's collected part differs: a rewrite, found while reading it.
fn rewritten_copy(
    t: &Target<'_>,
    c: &Cursor,
    path: &str,
    report: &mut FileReport,
) -> Result<(), FileError> {
    record(
        t,
        Finding::Rewritten {
            path: path.to_string(),
            start: c.end - c.tail.len,
            end: c.end,
            how: "the rotated copy's collected bytes differ",
        },
        report,
    )
}

/// A total order: numbered siblings by number, dated ones newest first, the rest after.
fn youngest_first(a: &rotation::Age, b: &rotation::Age) -> std::cmp::Ordering {
    use rotation::Age::*;
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
    // 4 KiB of log text compress to far less than 16 KiB; a file that does not is read further.
    let mut take = 16 * 1024;
    loop {
        let compressed = f.read_at(0, take).await?;
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
        if out.len() as u64 >= want || (compressed.len() as u64) < take || take >= GZ_PREFIX {
            return Ok(out);
        }
        take = GZ_PREFIX;
    }
}

/// The collected part of a compressed generation is not what was collected.
#[derive(Debug, thiserror::Error)]
enum GzTail {
    /// The bytes before the cursor differ.
    #[error("the rotated copy's collected bytes differ from what was collected")]
    Mismatch,
    /// It ends before the cursor, at `len`; `window`: its last bytes (up to [`TAIL_LEN`]).
    #[error("the rotated copy is shorter than what was collected from it")]
    Short { len: u64, window: Vec<u8> },
}

/// Streams bytes of `file` into frames of the log's stored file for today and commits them.
async fn collect(
    t: &Target<'_>,
    g: &Gen<'_>,
    read: Reading,
    from: Option<&str>,
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
        head: g.head.clone(),
        tail,
        max_frame: failpoint::size_override("LOGHOST_MAX_FRAME_RAW", MAX_FRAME_RAW),
        unchanged_if: None,
        verified: !g.gz,
    };
    let gz = matches!(read, Reading::Gz { .. });
    let verify = (!g.gz).then_some(&g.head[..]);
    let (written, damaged) = transfer(t, &g.file, read, job, verify).await?;
    if let Some(at) = damaged {
        let note = format!(
            "{} is damaged or cut after byte {at} of its content: what came before is stored, \
             the rest cannot be read",
            Shown(&g.path)
        );
        tracing::warn!("{}: {note}", t.host.name);
        report.notes.push(note);
    }
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
        crate::units::human(report.raw_bytes)
    );
    tracing::warn!("{}: {note}", t.host.name);
    report.notes.push(note);
}

/// Runs one transfer: a reader feeding the writer thread. `verify`: the file's first bytes, read
/// again through the same handle after each frame's bytes, before the frame may be committed
/// (a file truncated in place and regrown meanwhile would otherwise pass new bytes off as the
/// old generation's).
async fn transfer(
    t: &Target<'_>,
    file: &RemoteFile<'_>,
    read: Reading,
    job: Job,
    verify: Option<&[u8]>,
) -> Result<(Written, Option<u64>), FileError> {
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
    let max_frame = job.max_frame;
    let (tx, rx) = mpsc::channel::<Chunk>(CHANNEL_DEPTH);
    let writer = {
        let rec = ctx.rec.clone();
        tokio::task::spawn_blocking(move || write_frames(&rec, out, job, rx))
    };
    let result: Result<Option<u64>, FileError> = match (read, verify) {
        (Reading::Plain(start, end), Some(head)) => {
            read_verified(file, head, start, end, max_frame, &tx)
                .await
                .map(|()| None)
        }
        (Reading::Plain(start, end), None) => file
            .stream(start, end, &tx)
            .await
            .map(|_| None)
            .map_err(Into::into),
        (Reading::Gz { skip, tail, limit }, _) => {
            let cap = t.ctx.config.ssh.max_file_bytes_per_round;
            gz_stream(file, skip, tail, limit, cap, &tx).await
        }
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
    let damaged = result?;
    Ok((written?, damaged))
}

/// Streams `[start, end)` to the writer. Each time a frame's worth of bytes has been read, the
/// file's first bytes are read again (reads of the next frame go on meanwhile) and must still be
/// `head` before the frame is confirmed to the writer; the last frame is checked before the
/// transfer ends.
async fn read_verified(
    file: &RemoteFile<'_>,
    head: &[u8],
    start: u64,
    end: u64,
    max_frame: u64,
    tx: &mpsc::Sender<Chunk>,
) -> Result<(), FileError> {
    let same = || async {
        if starts_with(file, head).await? {
            Ok(())
        } else {
            Err(FileError::Local(Moving.into()))
        }
    };
    let (raw_tx, mut raw_rx) = mpsc::channel::<Vec<u8>>(CHANNEL_DEPTH);
    let read = async move {
        // Tests pause between the first frame's reads and the next ones (debug builds only).
        let first = start.saturating_add(max_frame).min(end);
        let r = match failpoint::pause_once("after-frame-read") {
            Some(d) if first < end => {
                let n = file.stream(start, first, &raw_tx).await?;
                tokio::time::sleep(d).await;
                if n < first - start {
                    Ok(n)
                } else {
                    file.stream(first, end, &raw_tx).await.map(|m| n + m)
                }
            }
            _ => file.stream(start, end, &raw_tx).await,
        };
        drop(raw_tx);
        r
    };
    let forward = async {
        let mut pos = start;
        let mut boundary = start.saturating_add(max_frame);
        while let Some(chunk) = raw_rx.recv().await {
            let mut rest = chunk;
            while !rest.is_empty() {
                let room = usize::try_from(boundary - pos).unwrap_or(usize::MAX);
                let tail = if rest.len() > room {
                    rest.split_off(room)
                } else {
                    Vec::new()
                };
                pos += rest.len() as u64;
                if tx.send(Chunk::Data(rest)).await.is_err() {
                    return Ok(()); // the writer stopped; its own error is reported
                }
                if pos == boundary {
                    same().await?;
                    let _ = tx.send(Chunk::Verified).await;
                    boundary = boundary.saturating_add(max_frame);
                }
                rest = tail;
            }
        }
        // The last (partial) frame is confirmed by the end of the transfer: check it first.
        same().await
    };
    let (read, forwarded) = futures::join!(read, forward);
    read?;
    forwarded
}

/// Streams a gzip file through a decompressing thread into the writer's channel: the bytes before
/// `skip` are checked against `tail` (when given) and passed as the writer's seed, the rest as data.
/// A compressed generation is read whole (its collected part is checked on the way): its
/// compressed size is bounded by the round's per-log budget too, so a hostile `.gz` of endless
/// empty deflate blocks cannot hold the round (the decoder's time grows with what it reads).
fn check_gz_size(size: u64, cap: u64) -> Result<(), FileError> {
    if size > cap {
        return Err(FileError::Local(anyhow::anyhow!(
            "a compressed generation of {size} bytes, more than max_file_bytes_per_round \
             ({cap}): not read (raise the limit in [ssh] if it is genuine)"
        )));
    }
    Ok(())
}

async fn gz_stream(
    file: &RemoteFile<'_>,
    skip: u64,
    tail: Option<Probe>,
    limit: u64,
    cap: u64,
    out: &mpsc::Sender<Chunk>,
) -> Result<Option<u64>, FileError> {
    let size = file.size().await?;
    check_gz_size(size, cap)?;
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
) -> anyhow::Result<Option<u64>> {
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
                return Err(GzTail::Mismatch.into());
            }
        }
        Ok(out
            .blocking_send(Chunk::Seed(std::mem::take(window)))
            .is_ok())
    };
    loop {
        let mut buf = vec![0u8; 256 * 1024];
        let n = match d.read(&mut buf) {
            Ok(n) => n,
            // Damaged, cut, or not finished yet: what came before is good (gzip streams decode
            // in order). Before the cursor, it is a short copy; after, the rest waits.
            Err(_) if pos < skip => return Err(GzTail::Short { len: pos, window }.into()),
            Err(_) => return Ok(Some(pos)),
        };
        if n == 0 {
            break;
        }
        buf.truncate(n);
        let mut data = &buf[..];
        if pos < skip {
            let k = ((skip - pos) as usize).min(data.len());
            crate::ledger::writer::push_tail(&mut window, &data[..k]);
            pos += k as u64;
            data = &data[k..];
        }
        if !seeded && pos == skip {
            if !seed(&mut window)? {
                return Ok(None);
            }
            seeded = true;
        }
        if !data.is_empty() {
            // At most `limit` bytes after `skip`; the rest is the next round's.
            let room = skip.saturating_add(limit).saturating_sub(pos);
            let data = &data[..data.len().min(usize::try_from(room).unwrap_or(usize::MAX))];
            pos += data.len() as u64;
            if !data.is_empty() && out.blocking_send(Chunk::Data(data.to_vec())).is_err() {
                return Ok(None);
            }
            if pos >= skip.saturating_add(limit) {
                return Ok(None);
            }
        }
    }
    if pos < skip {
        // Shorter than what was collected from it: cut, or copytruncate's race.
        return Err(GzTail::Short { len: pos, window }.into());
    }
    if !seeded {
        // Exactly as long as what was collected: nothing new, but still check it.
        seed(&mut window)?;
    }
    Ok(None)
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
    span: &Span,
    p: u64,
    len: u64,
) -> anyhow::Result<Option<Vec<u8>>> {
    let Some(mut raw) = crate::store::frame_reader(store, &span.file, span.offset, span.length)?
    else {
        return Ok(None);
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
        Finding::CopyShort {
            path,
            copied,
            collected,
        } => (
            EventKind::CopyShort,
            Some(*copied),
            Some(*collected),
            format!(
                "the rotated copy {path} holds {copied} of the {collected} bytes collected from \
                 its generation, and they are the ones collected: copytruncate's race (lines \
                 written between its copy and its truncation); bytes {copied}..{collected} are \
                 in the archive only",
                path = Shown(path)
            ),
        ),
        Finding::Gone { collected } => (
            EventKind::Gone,
            None,
            Some(*collected),
            format!(
                "gone from its path, and no rotated sibling carries it (collected up to byte \
                 {collected}); anything written to it after the last round is lost"
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
        // A snapshot is one frame, hashed whole to see whether it changed: its size is bounded
        // like a log's round (a sparse `lastlog` can claim hundreds of GB).
        let limit = t.ctx.config.ssh.max_file_bytes_per_round;
        if size > limit {
            return Err(FileError::Local(anyhow::anyhow!(
                "{} bytes, more than max_file_bytes_per_round ({limit}) allows for a snapshot \
                 (a file stored whole each time it changes): not read. Raise the limit in [ssh] \
                 if this file really is that large, or stop listing it under `snapshot`",
                size
            )));
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
            verified: false,
        };
        transfer(t, &file, Reading::Plain(0, size), job, None)
            .await
            .map(|(w, _)| w)
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
