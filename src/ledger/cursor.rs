//! The recorded form of a cursor: how far each remote file has been collected, derived from the
//! ledger's frames and events (DESIGN §4). The decisions made with it belong to the puller
//! (`pull::rotation`); the ledger only keeps it.

use serde::{Deserialize, Serialize};

use crate::hash::Hash;

/// How many leading bytes identify a file.
pub const HEAD_LEN: u64 = 4096;
/// How many bytes before the cursor are re-checked each round.
pub const TAIL_LEN: u64 = 4096;

/// The hash of a byte range: `[0, len)` for a head, `[end - len, end)` for a tail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Probe {
    pub len: u64,
    pub sha256: Hash,
}

/// What is known of a remote file after the last committed frame.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    /// Bytes of the current generation collected: the next read starts here.
    pub end: u64,
    /// Identity of the current generation.
    pub head: Probe,
    /// The bytes just before `end`.
    pub tail: Probe,
    /// For snapshot files: the hash of the whole content last stored.
    pub content: Option<Hash>,
    /// Where the current generation's most recent frames are stored (at most [`MAX_SPANS`]),
    /// for audit samples: re-reading random collected blocks and comparing with the archive.
    #[serde(default)]
    pub spans: Vec<Span>,
    /// The identities of the source's recent generations, one each (its longest: the first
    /// bytes of its last frame), at most [`MAX_KNOWN`], oldest first, the current one included;
    /// kept across events that restart the generation. A rotated sibling that carries one of
    /// them has been collected. No serde default, so an index cache
    /// written before this field existed is rebuilt from the ledger.
    pub known: Vec<Probe>,
}

/// How far one journal file has been collected (DESIGN: the journal), derived from its frames.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JournalCursor {
    /// The mark of the newest frame of this file: where the next read starts.
    pub mark: crate::ledger::JournalMark,
    /// The seqnum of the first entry collected from this file.
    pub first_seqnum: u64,
    /// The remote path it was last read from (rotation renames it; the file id stays).
    pub path: String,
    /// The last collected entry's export bytes, hashed: re-checked each round.
    pub tail: Probe,
    /// Entries collected from this file in all.
    pub entries: u64,
    /// Frames of the file across its history, for audit samples.
    pub samples: JournalSamples,
}

/// How many frames of a journal file its cursor remembers for audit samples.
pub const MAX_JOURNAL_SPANS: usize = 64;

/// A journal file's frames kept for audit samples: every `step`-th frame of the file (the
/// first included), at most [`MAX_JOURNAL_SPANS`]; when full, `step` doubles and every other
/// one goes. So samples cover the file's whole history evenly (a file collected over months
/// still has samples from its first days), and the index rebuilt from the ledger is the same.
/// Also its last [`MAX_JOURNAL_SPANS`] frames, all of them: an intruder's traces are recent.
/// (Frames between the kept ones in older history are not sampled: a known limit.)
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct JournalSamples {
    /// Frames of the file so far.
    pub frames: u64,
    pub step: u64,
    /// (frame number, where it is stored).
    pub spans: Vec<(u64, Span)>,
    /// The newest frames (no serde default: an index cache without them is rebuilt).
    pub recent: Vec<(u64, Span)>,
}

impl JournalSamples {
    /// A frame to sample, at random among those kept (recent and across the history).
    pub fn pick(&self, rng: &mut impl rand::Rng) -> Option<&Span> {
        let k = rng.gen_range(0..(self.spans.len() + self.recent.len()).max(1));
        match self.spans.get(k) {
            Some((_, s)) => Some(s),
            None => self.recent.get(k - self.spans.len()).map(|(_, s)| s),
        }
    }

    pub fn push(&mut self, span: Span) {
        let n = self.frames;
        self.frames += 1;
        self.recent.push((n, span.clone()));
        if self.recent.len() > MAX_JOURNAL_SPANS {
            self.recent.remove(0);
        }
        let step = self.step.max(1);
        if !n.is_multiple_of(step) {
            return;
        }
        self.spans.push((n, span));
        if self.spans.len() > MAX_JOURNAL_SPANS {
            self.step = step * 2;
            let step = self.step;
            self.spans.retain(|(k, _)| k.is_multiple_of(step));
        }
    }
}

/// How many generation identities a cursor remembers.
pub const MAX_KNOWN: usize = 256;

/// How many frames of a generation the cursor remembers for audit samples.
pub const MAX_SPANS: usize = 1000;

/// One stored frame of a generation: source bytes `[start, end)` are `length` stored bytes at
/// `offset` of `file`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Span {
    pub start: u64,
    pub end: u64,
    pub file: String,
    pub offset: u64,
    pub length: u64,
}

impl Cursor {
    /// The cursor of a generation that starts over (after a truncation, say): nothing collected.
    pub fn empty() -> Cursor {
        Cursor {
            end: 0,
            head: Probe {
                len: 0,
                sha256: Hash::of(b""),
            },
            tail: Probe {
                len: 0,
                sha256: Hash::of(b""),
            },
            content: None,
            spans: Vec::new(),
            known: Vec::new(),
        }
    }

    /// Whether `head` (a file's first bytes, up to [`HEAD_LEN`]) is a known generation's. An
    /// identity shorter than [`HEAD_LEN`] (a generation collected while it was small) proves
    /// only a file of exactly that length: a new file that starts with the same banner is not
    /// taken for it.
    pub fn knows(&self, head: &[u8]) -> bool {
        self.known.iter().any(|p| {
            let n = p.len as usize;
            n > 0
                && (p.len == HEAD_LEN || head.len() == n)
                && head.len() >= n
                && Hash::of(&head[..n]) == p.sha256
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn journal_samples_cover_the_whole_history() {
        let mut samples = JournalSamples::default();
        for i in 0..10_000u64 {
            samples.push(Span {
                start: i,
                end: i + 1,
                file: String::new(),
                offset: 0,
                length: 0,
            });
            assert!(samples.spans.len() <= MAX_JOURNAL_SPANS);
        }
        let starts: Vec<u64> = samples.spans.iter().map(|(_, s)| s.start).collect();
        assert_eq!(starts[0], 0, "the first frame stays");
        assert!(starts.len() >= MAX_JOURNAL_SPANS / 2, "{starts:?}");
        // Evenly spread: no gap wider than two steps.
        for w in starts.windows(2) {
            assert!(w[1] - w[0] <= 2 * samples.step, "{starts:?}");
        }
        assert!(10_000 - starts.last().copied().unwrap_or(0) <= samples.step);
        // And the newest frames, every one of them.
        let recent: Vec<u64> = samples.recent.iter().map(|(_, s)| s.start).collect();
        assert_eq!(
            recent,
            (10_000 - MAX_JOURNAL_SPANS as u64..10_000).collect::<Vec<_>>()
        );
    }
}
