//! Entries of a journal file that repeat entries already collected from another file.
//!
//! journald numbers the entries of a seqnum id once across all its files (`system.journal`,
//! `user-*.journal`, their archived copies, the runtime journal flushed to `/var`: a flush gives
//! the copies new numbers). So an entry whose (seqnum id, seqnum) was already collected from a
//! *different* file (another file id) is not something journald writes: it is a copy of a
//! journal file put in the directory, or a collected file replaced by a rewritten one under a
//! new file id (the file id is part of the header an intruder writes; the per-file checks of
//! [`super::journal`] cannot see a file they have never seen). Such an entry is compared with
//! the copy in the store:
//! - the same entry (its fields compared as a set: a copy may order them differently): a copy,
//!   said once per file, no alarm;
//! - different: a collected entry rewritten: the `rewritten` ALARM (whatever boot id the entry
//!   claims: the file's author chose it; the innocent explanation, journald reusing numbers
//!   after losing its state, is rare enough to be looked at);
//! - collected entries of the other file missing between two entries the file repeats: entries
//!   removed from a copy: the ALARM.
//!
//! Only entries collected before this round are compared (the host's journal cursors when the
//! round began): files collected side by side in one round interleave their numbers
//! legitimately (a user's journal and the system journal share the numbering). A copy cut short
//! at its start or end is not an alarm (it looks like a copy made earlier); the entries it lacks
//! are in the store.
//!
//! Known limits: a forged copy renumbered beyond the collected numbers, or under a new seqnum id,
//! is collected as new entries (nothing ties it to the collected ones but its content); the
//! collected entries stay in the store. A day no longer in the local store (archived) cannot be
//! compared: a note.
//!
//! Cost: the host's stored frames of those files are found with one pass over the ledger, at
//! most once per host and round ([`Frames`], shared by the host's files), and each is
//! decompressed at most once per file and round (the entries of a file come in increasing
//! seqnum order, so each walk only moves forward); at most [`MAX_HELD`] bytes of decompressed
//! frames are held at once.

use std::collections::BTreeMap;

use crate::journal::export;
use crate::ledger::cursor::{JournalCursor, Span};
use crate::ledger::writer::Recorder;
use crate::ledger::{Entry, JOURNAL_SOURCE};

/// Decompressed frames held at once across a file's walks; beyond, the others are let go (and
/// read again if needed).
pub const MAX_HELD: usize = 64 << 20;

/// One stored frame of a journal file: (first seqnum, last seqnum, entries, where).
type FrameRef = (u64, u64, u64, Span);

/// The host's stored journal frames by file id.
type HostFrames = BTreeMap<String, Vec<FrameRef>>;

/// [`HostFrames`], loaded once a round on first need and shared by the host's files.
pub type Frames = std::sync::Arc<std::sync::Mutex<Option<std::sync::Arc<HostFrames>>>>;

/// Largest stored frame decompressed for a comparison.
const MAX_FRAME: u64 =
    (super::journal::FRAME_TARGET as u64) * 2 + (crate::journal::file::MAX_ENTRY as u64);

/// What an entry of the file being read is, compared with what the store holds.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Not collected from another file.
    New,
    /// The same as the entry collected from the file at `path`.
    Same { path: String },
    /// Different from the entry with its number collected from `path`.
    Differs { path: String },
    /// Collected entries of `path` with numbers between the previous repeated entry and this
    /// one: they are missing from the copy (how many, the first few).
    Removed {
        path: String,
        count: u64,
        seqnums: Vec<u64>,
    },
}

/// One other file's collected entries, walked forward in seqnum order.
struct Walk {
    id: String,
    path: String,
    first: u64,
    last: u64,
    /// The file's frames in the store: (first seqnum, last seqnum, entries, where).
    frames: Vec<FrameRef>,
    next_frame: usize,
    /// The current frame's entries: (seqnum, bytes).
    entries: Vec<(u64, Vec<u8>)>,
    at: usize,
    /// An entry repeated this file's: from now on, its entries the copy skips were removed.
    started: bool,
    /// Entries passed over since the last repeat once started: how many, the first few.
    skipped: (u64, Vec<u64>),
    /// An entry beyond its collected numbers came after a repeat: the walk is over.
    passed_end: bool,
    /// A frame of it was no longer in the local store (said once).
    unavailable: bool,
    /// A stored frame of it could not be read (said once): not compared any more.
    gave_up: bool,
    /// The last entry passed in a frame let go: when it is read again, entries up to it are
    /// passed already.
    passed: Option<u64>,
}

/// The host's files collected before this round that share the file's seqnum id.
pub struct Copies {
    walks: Vec<Walk>,
    loaded: bool,
    host: String,
    frames: Frames,
}

impl Copies {
    /// `before`: the host's journal cursors when the round began; `file_id`, `seqnum_id`: the
    /// file being read (hex).
    pub fn new(
        host: &str,
        before: &BTreeMap<String, JournalCursor>,
        file_id: &str,
        seqnum_id: &str,
        frames: Frames,
    ) -> Copies {
        let walks = before
            .iter()
            .filter(|(id, c)| id.as_str() != file_id && c.mark.seqnum_id == seqnum_id)
            .map(|(id, c)| Walk {
                id: id.clone(),
                path: c.path.clone(),
                first: c.first_seqnum,
                last: c.mark.last_seqnum,
                frames: Vec::new(),
                next_frame: 0,
                entries: Vec::new(),
                at: 0,
                started: false,
                skipped: (0, Vec::new()),
                gave_up: false,
                passed_end: false,
                unavailable: false,
                passed: None,
            })
            .collect();
        Copies {
            walks,
            loaded: false,
            host: host.to_string(),
            frames,
        }
    }

    /// Whether `seqnum` could have been collected from another file.
    pub fn covers(&self, seqnum: u64) -> bool {
        self.walks.iter().any(|w| w.wants(seqnum))
    }

    /// Compares the entry numbered `seqnum` (its export bytes `entry`) with the store. Notes
    /// (a comparison that could not be made) go to `notes`.
    pub fn check(
        &mut self,
        rec: &Recorder,
        seqnum: u64,
        entry: &[u8],
        notes: &mut Vec<String>,
    ) -> anyhow::Result<Verdict> {
        if !self.covers(seqnum) {
            return Ok(Verdict::New);
        }
        if !self.loaded {
            self.load(rec)?;
        }
        for k in 0..self.walks.len() {
            if !self.walks[k].wants(seqnum) {
                continue;
            }
            // Bounded memory: before this walk reads on, the frames the others hold go when
            // they are more than MAX_HELD (this walk's own frame stays: letting it go would
            // read it again for every entry compared).
            let others: usize = (self.walks.iter().enumerate())
                .filter(|(i, _)| *i != k)
                .map(|(_, w)| w.held())
                .sum();
            if others > MAX_HELD {
                for (i, w) in self.walks.iter_mut().enumerate() {
                    if i != k {
                        w.let_go();
                    }
                }
            }
            let w = &mut self.walks[k];
            if seqnum > w.last {
                // A copy that repeated this file's entries goes on beyond them: it must have
                // held the rest of them first (those collected before the round).
                w.passed_end = true;
                let _ = w.seek(rec, w.last.saturating_add(1), notes);
                if let Some(removed) = w.take_removed() {
                    return Ok(removed);
                }
                continue;
            }
            let stored = match w.seek(rec, seqnum, notes) {
                Ok(s) => s,
                Err(e) => {
                    notes.push(format!(
                        "entries repeating those collected from {} cannot be compared with the \
                         store: {e:#}",
                        crate::sanitize::Shown(&w.path)
                    ));
                    w.gave_up = true;
                    continue;
                }
            };
            let Some(stored) = stored else {
                continue;
            };
            let was_started = std::mem::replace(&mut w.started, true);
            let removed = w.take_removed();
            if let (true, Some(removed)) = (was_started, removed) {
                return Ok(removed);
            }
            if !same_entry(&stored, entry) {
                return Ok(Verdict::Differs {
                    path: w.path.clone(),
                });
            }
            return Ok(Verdict::Same {
                path: w.path.clone(),
            });
        }
        Ok(Verdict::New)
    }

    /// Finds the stored frames of the other files: one pass over the ledger for the host's
    /// journal frames, shared by the host's files this round.
    fn load(&mut self, rec: &Recorder) -> anyhow::Result<()> {
        self.loaded = true;
        let mut shared = self
            .frames
            .lock()
            .map_err(|_| anyhow::anyhow!("the frame list's lock is poisoned"))?;
        let all = match shared.as_ref() {
            Some(all) => all.clone(),
            None => {
                let all = std::sync::Arc::new(host_frames(rec, &self.host)?);
                *shared = Some(all.clone());
                all
            }
        };
        drop(shared);
        for w in &mut self.walks {
            // Only the frames collected before the round (those after are this round's).
            w.frames = all.get(&w.id).cloned().unwrap_or_default();
            let last = w.last;
            w.frames.retain(|f| f.0 <= last);
        }
        Ok(())
    }
}

/// The host's journal frames in the ledger, by file id, in order.
fn host_frames(rec: &Recorder, host: &str) -> anyhow::Result<HostFrames> {
    let path = rec.ledger()?.path().to_path_buf();
    let mut frames = HostFrames::new();
    {
        crate::ledger::scan(&path, 0, 0, |_, _, entry| {
            let Entry::Frame(f) = entry else { return };
            let Some(j) = &f.journal else { return };
            if f.host != host || f.source != JOURNAL_SOURCE {
                return;
            }
            frames.entry(j.file_id.clone()).or_default().push((
                j.first_seqnum,
                j.last_seqnum,
                j.entries,
                Span {
                    start: f.start,
                    end: f.end,
                    file: f.file.clone(),
                    offset: f.offset,
                    length: f.length,
                },
            ));
        })?;
    }
    Ok(frames)
}

impl Walk {
    /// The entries passed over since the last repeat, as the verdict that they are missing
    /// (none: `None`); the count starts again.
    fn take_removed(&mut self) -> Option<Verdict> {
        let (count, seqnums) = std::mem::take(&mut self.skipped);
        (count > 0).then(|| Verdict::Removed {
            path: self.path.clone(),
            count,
            seqnums,
        })
    }

    /// Whether an entry numbered `seqnum` of the file read is to be compared with this file's:
    /// within its collected numbers, or the first beyond them once the copy had started.
    fn wants(&self, seqnum: u64) -> bool {
        !self.gave_up
            && ((self.first..=self.last).contains(&seqnum)
                || (self.started && !self.passed_end && seqnum > self.last))
    }

    /// Notes entries passed over as missing from the copy.
    fn skip(&mut self, seqnums: std::ops::RangeInclusive<u64>) {
        if seqnums.is_empty() {
            return;
        }
        self.skipped.0 += seqnums.end() - seqnums.start() + 1;
        for s in seqnums.take(10usize.saturating_sub(self.skipped.1.len())) {
            self.skipped.1.push(s);
        }
    }

    /// Bytes of decompressed frame held.
    fn held(&self) -> usize {
        self.entries.iter().map(|(_, b)| b.len()).sum()
    }

    /// Lets the frame held go; the next seek reads it again.
    fn let_go(&mut self) {
        if !self.entries.is_empty() {
            self.passed = self.at.checked_sub(1).map(|k| self.entries[k].0);
            self.entries = Vec::new();
            self.next_frame -= 1;
            self.at = 0;
        }
    }

    /// Moves forward to the stored entry numbered `seqnum`: its bytes, or `None` when the file
    /// has no such entry (another file's number). Entries passed over once a repeat was seen
    /// are noted as skipped.
    fn seek(
        &mut self,
        rec: &Recorder,
        seqnum: u64,
        notes: &mut Vec<String>,
    ) -> anyhow::Result<Option<Vec<u8>>> {
        loop {
            while self.at < self.entries.len() && self.entries[self.at].0 < seqnum {
                if self.started {
                    let s = self.entries[self.at].0;
                    self.skip(s..=s);
                }
                self.at += 1;
            }
            if let Some((s, bytes)) = self.entries.get(self.at) {
                if *s != seqnum {
                    return Ok(None);
                }
                let bytes = bytes.clone();
                self.at += 1;
                return Ok(Some(bytes));
            }
            let Some((first, last, n, span)) = self.frames.get(self.next_frame).cloned() else {
                return Ok(None);
            };
            self.next_frame += 1;
            self.entries.clear();
            self.at = 0;
            let passed = self.passed.take();
            let after = |s: u64| passed.is_none_or(|p| s > p);
            if last < seqnum && !self.started {
                continue; // wholly before: nothing to compare, nothing skipped
            }
            if last < seqnum && n == last.saturating_sub(first) + 1 {
                // Wholly skipped and numbered without gaps: no need to read it.
                let from = passed.map_or(first, |p| first.max(p.saturating_add(1)));
                self.skip(from..=last);
                continue;
            }
            let Some(raw) = crate::store::read_frame(
                &rec.store,
                &span.file,
                span.offset,
                span.length,
                MAX_FRAME,
            )?
            else {
                // Archived out of the local store: its entries cannot be compared (said once);
                // what is missing around it cannot be told either.
                if !self.unavailable {
                    self.unavailable = true;
                    notes.push(format!(
                        "entries repeating those collected from {} in {} cannot be compared: \
                         the day is no longer in the local store",
                        crate::sanitize::Shown(&self.path),
                        span.file
                    ));
                }
                self.started = false;
                self.skipped = (0, Vec::new());
                continue;
            };
            let spans = export::entry_spans(&raw).map_err(|e| {
                anyhow::anyhow!(
                    "a stored frame of {} is not the export format ({e}); run `loghost verify`",
                    span.file
                )
            })?;
            for (a, b) in spans {
                let bytes = &raw[a..b];
                let s = export::parse(bytes)
                    .ok()
                    .and_then(|v| v.first().and_then(export::Exported::seqnum))
                    .ok_or_else(|| {
                        anyhow::anyhow!("a stored entry of {} has no __SEQNUM", span.file)
                    })?;
                if after(s) {
                    self.entries.push((s, bytes.to_vec()));
                }
            }
        }
    }
}

/// Whether two exported entries hold the same fields (in any order). `__CURSOR` is left out:
/// it is made of the others, and of a hash of the payloads keyed by the file's id.
pub fn same_entry(a: &[u8], b: &[u8]) -> bool {
    if a == b {
        return true;
    }
    let fields = |x: &[u8]| {
        export::parse(x).ok().and_then(|mut v| {
            let mut f = v.pop()?.fields;
            f.retain(|(n, _)| n != "__CURSOR");
            f.sort();
            Some(f)
        })
    };
    match (fields(a), fields(b)) {
        (Some(x), Some(y)) => x == y,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_the_same_whatever_the_order_of_their_fields() {
        let a = b"__CURSOR=s=1\n__SEQNUM=5\nMESSAGE=hi\n_PID=1\n\n";
        let b = b"__CURSOR=s=1\n__SEQNUM=5\n_PID=1\nMESSAGE=hi\n\n";
        let c = b"__CURSOR=s=1\n__SEQNUM=5\n_PID=1\nMESSAGE=ho\n\n";
        assert!(same_entry(a, b));
        assert!(!same_entry(a, c));
        assert!(!same_entry(a, b"junk"));
    }
}
