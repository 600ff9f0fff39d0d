//! Cursors: how far each remote file has been collected, and the pure decision of what to read
//! next (DESIGN §4).
//!
//! A cursor is derived from the newest ledger frame of a (host, remote file): the collected
//! offset, a hash of the file's first bytes (its identity: SFTP v3 has no inode numbers) and a hash
//! of the bytes just before the offset. Each round the puller observes the remote file's size and,
//! when the cursor asks for it, the hashes of the same byte ranges now; [`decide`] turns that into
//! a [`Decision`]. Nothing here does I/O, so every case is unit-tested.

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
}

/// The byte ranges whose hashes [`decide`] needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProbePlan {
    /// `[0, len)`; always asked for a non-empty file, so a new identity can be recorded.
    pub head_len: u64,
    /// `[start, end)` of the cursor's tail, when it can be checked.
    pub tail: Option<(u64, u64)>,
}

/// What to read from a file whose current size is known.
pub fn probe_plan(cursor: Option<&Cursor>, size: u64) -> ProbePlan {
    let head_len = size.min(HEAD_LEN);
    let tail = cursor
        .filter(|c| c.tail.len > 0 && size >= c.end)
        .map(|c| (c.end - c.tail.len, c.end));
    ProbePlan { head_len, tail }
}

/// The remote file as observed this round.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Observed {
    pub size: u64,
    /// Hash of the remote's first `cursor.head.len` bytes, when the file is that long.
    pub head: Option<Hash>,
    /// Hash of the remote's bytes at the cursor's tail range, when planned.
    pub tail: Option<Hash>,
}

/// Why a file is collected again from its start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Restart {
    /// Never seen before.
    New,
    /// Smaller than what was collected: truncated, or replaced by a new file.
    Shrunk { size: u64, collected: u64 },
    /// Its first bytes differ: a new file under the old name (rotation), or an edit at the start.
    NewIdentity,
    /// Same identity, but the bytes just before the cursor changed: the collected part was
    /// rewritten on the remote host.
    TailChanged,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Nothing new.
    UpToDate,
    /// The same file has grown: read `[from, size)`.
    Append { from: u64 },
    /// Read the file from 0 as a new generation.
    Restart(Restart),
}

/// The cursor decision for an append-only log.
pub fn decide(cursor: Option<&Cursor>, obs: Observed) -> Decision {
    let Some(c) = cursor else {
        return if obs.size == 0 {
            Decision::UpToDate
        } else {
            Decision::Restart(Restart::New)
        };
    };
    if obs.size < c.end {
        return Decision::Restart(Restart::Shrunk {
            size: obs.size,
            collected: c.end,
        });
    }
    if c.head.len > 0 && obs.head != Some(c.head.sha256) {
        return Decision::Restart(Restart::NewIdentity);
    }
    if c.tail.len > 0 && obs.tail != Some(c.tail.sha256) {
        return Decision::Restart(Restart::TailChanged);
    }
    if obs.size == c.end {
        Decision::UpToDate
    } else {
        Decision::Append { from: c.end }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(b: u8) -> Hash {
        Hash([b; 32])
    }

    fn cursor(end: u64) -> Cursor {
        Cursor {
            end,
            head: Probe {
                len: end.min(HEAD_LEN),
                sha256: h(1),
            },
            tail: Probe {
                len: end.min(TAIL_LEN),
                sha256: h(2),
            },
            content: None,
        }
    }

    fn obs(size: u64, head: Option<u8>, tail: Option<u8>) -> Observed {
        Observed {
            size,
            head: head.map(h),
            tail: tail.map(h),
        }
    }

    #[test]
    fn new_files() {
        assert_eq!(decide(None, obs(0, None, None)), Decision::UpToDate);
        assert_eq!(
            decide(None, obs(10, Some(9), None)),
            Decision::Restart(Restart::New)
        );
    }

    #[test]
    fn same_file_grows_or_not() {
        let c = cursor(10_000);
        assert_eq!(
            decide(Some(&c), obs(10_000, Some(1), Some(2))),
            Decision::UpToDate
        );
        assert_eq!(
            decide(Some(&c), obs(12_000, Some(1), Some(2))),
            Decision::Append { from: 10_000 }
        );
    }

    #[test]
    fn shrunk_new_identity_and_rewritten() {
        let c = cursor(10_000);
        assert_eq!(
            decide(Some(&c), obs(50, Some(1), None)),
            Decision::Restart(Restart::Shrunk {
                size: 50,
                collected: 10_000
            })
        );
        assert_eq!(
            decide(Some(&c), obs(20_000, Some(7), Some(2))),
            Decision::Restart(Restart::NewIdentity)
        );
        assert_eq!(
            decide(Some(&c), obs(20_000, Some(1), Some(7))),
            Decision::Restart(Restart::TailChanged)
        );
        assert_eq!(
            decide(Some(&c), obs(10_000, Some(1), None)),
            Decision::Restart(Restart::TailChanged),
            "a tail that could not be read counts as changed"
        );
    }

    #[test]
    fn plans() {
        assert_eq!(
            probe_plan(None, 100),
            ProbePlan {
                head_len: 100,
                tail: None
            }
        );
        let c = cursor(10_000);
        assert_eq!(
            probe_plan(Some(&c), 20_000),
            ProbePlan {
                head_len: HEAD_LEN,
                tail: Some((10_000 - TAIL_LEN, 10_000))
            }
        );
        assert_eq!(
            probe_plan(Some(&c), 5).tail,
            None,
            "shrunk: nothing to check"
        );
        let small = cursor(10);
        assert_eq!(probe_plan(Some(&small), 30).tail, Some((0, 10)));
    }
}
