//! Cursors: how far each remote file has been collected, and the pure decision of what to read
//! next (DESIGN §4).
//!
//! A cursor is derived from the newest ledger frame of a (host, remote file): the collected
//! offset, a hash of the file's first bytes (its identity: SFTP v3 has no inode numbers) and a hash
//! of the bytes just before the offset. Each round the puller observes the remote file's size and,
//! when the cursor asks for it, the hashes of the same byte ranges now; [`decide`] turns that into
//! a [`Decision`]. Nothing here does I/O, so every case is unit-tested.

use crate::hash::Hash;
use crate::ledger::cursor::{Cursor, HEAD_LEN};

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

/// What changed about a file whose cursor no longer simply extends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// The file is gone from its path (rotated away and not recreated yet, or deleted).
    Missing,
    /// Smaller than what was collected. `head_same`: its first bytes are still the ones collected.
    Shrunk {
        size: u64,
        collected: u64,
        head_same: bool,
    },
    /// Its first bytes differ: a new file under the old name (rotation), or an edit at the start.
    NewIdentity,
    /// Same identity, but the bytes just before the cursor changed.
    TailChanged,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Nothing new.
    UpToDate,
    /// The same file has grown: read `[from, size)`.
    Append { from: u64 },
    /// Never seen before: read it from 0.
    New,
    /// Something changed: look among the file's rotated siblings for the generation the cursor
    /// belongs to, then [`plan`].
    Search(Change),
}

/// The cursor decision for an append-only log at its configured path (`None`: not there).
pub fn decide(cursor: Option<&Cursor>, obs: Option<Observed>) -> Decision {
    let Some(c) = cursor else {
        return match obs {
            Some(o) if o.size > 0 => Decision::New,
            _ => Decision::UpToDate,
        };
    };
    let Some(obs) = obs else {
        return Decision::Search(Change::Missing);
    };
    let head_same = c.head.len == 0 || obs.head == Some(c.head.sha256);
    if obs.size < c.end {
        return Decision::Search(Change::Shrunk {
            size: obs.size,
            collected: c.end,
            head_same: c.head.len > 0 && head_same,
        });
    }
    if !head_same {
        return Decision::Search(Change::NewIdentity);
    }
    if c.tail.len > 0 && obs.tail != Some(c.tail.sha256) {
        return Decision::Search(Change::TailChanged);
    }
    if obs.size == c.end {
        Decision::UpToDate
    } else {
        Decision::Append { from: c.end }
    }
}

/// Where a rotated sibling stands in age, from its name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Age {
    /// `log.1`, `log.2.gz`: a larger number is older.
    Numeric(u64),
    /// `log-20261128`, `log.2026-11-28.gz` (logrotate's `dateext`): a smaller date is older.
    Dated(String),
    /// Anything else after the name (`log.old`): searched, but never ordered.
    Other,
}

impl Age {
    /// True when `self` was rotated after `other`; `None` when they cannot be compared.
    pub fn younger_than(&self, other: &Age) -> Option<bool> {
        match (self, other) {
            (Age::Numeric(a), Age::Numeric(b)) => Some(a < b),
            (Age::Dated(a), Age::Dated(b)) => Some(a > b),
            _ => None,
        }
    }
}

/// Recognizes a rotated sibling of the log file `base` (a file name, not a path): `base` followed
/// by `.`, `-` or `_` and a suffix, optionally compressed (`.gz`). Returns its age and whether it
/// is gzip-compressed.
pub fn sibling(base: &str, name: &str) -> Option<(Age, bool)> {
    let rest = name.strip_prefix(base)?;
    if rest == ".gz" {
        return Some((Age::Other, true));
    }
    let mut chars = rest.chars();
    if !matches!(chars.next(), Some('.' | '-' | '_')) {
        return None;
    }
    let suffix = chars.as_str();
    let (suffix, gz) = match suffix.strip_suffix(".gz") {
        Some(s) => (s, true),
        None => (suffix, false),
    };
    if suffix.is_empty() {
        return None;
    }
    let digits = suffix.bytes().filter(u8::is_ascii_digit).count();
    let age = if suffix.bytes().all(|b| b.is_ascii_digit()) && suffix.len() < 8 {
        Age::Numeric(suffix.parse().ok()?)
    } else if digits >= 8
        && suffix
            .bytes()
            .all(|b| b.is_ascii_digit() || b"-_.".contains(&b))
    {
        Age::Dated(suffix.to_string())
    } else {
        Age::Other
    };
    Some((age, gz))
}

/// A rotated sibling, as probed against the cursor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub path: String,
    pub age: Age,
    pub gz: bool,
    /// Its first bytes are the cursor's identity.
    pub head_matches: bool,
    /// Its bytes before the cursor's offset are the ones collected (`None`: not checked yet, as
    /// for compressed siblings, whose check happens while reading them).
    pub tail_matches: Option<bool>,
    /// It is shorter than what was collected from its generation, and what it holds is a prefix
    /// of what was collected (checked against the archive): copytruncate's race. Its length.
    pub copied: Option<u64>,
    /// Not the cursor's generation, but one collected before (its identity is known).
    pub known: bool,
}

/// One read of a plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// The rest of the cursor's generation, now in a rotated sibling: `[from, end of file)`.
    Tail { path: String, gz: bool, from: u64 },
    /// A whole generation never seen (rotated more than once since the last round), or a
    /// rewritten one, stored as a new generation.
    Whole { path: String, gz: bool },
    /// The file at its configured path, from 0, as a new generation.
    Current,
}

/// Something to tell the auditor, recorded as a ledger event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finding {
    /// Bytes already collected have changed on the server: an alarm. `[start, end)` of the
    /// collected generation is what was found changed (or cut away); `path` is where.
    Rewritten {
        path: String,
        start: u64,
        end: u64,
        how: &'static str,
    },
    /// Shrunk with new content and no rotated copy of the old: truncated (`> file`) and maybe
    /// regrown. What was collected is safe; anything written after the last round is lost.
    Truncated { size: u64, collected: u64 },
    /// A different file under the old name, and the old generation is not among the siblings:
    /// bytes written to it after the last round, if any, are lost.
    Replaced { collected: u64 },
    /// The log is gone from its path, and no rotated sibling carries it (deleted, or rotated
    /// with `rotate 0`): bytes written after the last round, if any, are lost.
    Gone { collected: u64 },
    /// The rotated copy at `path` holds only `copied` of the `collected` bytes, and those are the
    /// ones collected: copytruncate's own race lost the rest from the server, not from the
    /// archive. Not an alarm.
    CopyShort {
        path: String,
        copied: u64,
        collected: u64,
    },
}

/// What to do about a [`Decision::Search`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Plan {
    pub finding: Option<Finding>,
    pub steps: Vec<Step>,
}

/// Decides how to follow a changed log. `path` is the configured path; `current_exists` whether a
/// file is there now; `candidates` its rotated siblings in the order they were probed, youngest
/// first, probing stopped at the first whose head matched. `edited`: when no candidate carries
/// the cursor's identity, the file (`path` or a candidate's) in which collected content was
/// found anyway, moved: the collected generation edited at its start. `history`: when the
/// cursor's generation is gone, collect the generations rotated since (never collected).
///
/// - The cursor's generation found intact in a sibling: rotation. Read its unread tail, then every
///   younger generation whole (rotated more than once between rounds), then the new file from 0.
///   Nothing to report: this is what logrotate does.
/// - Found, but edited before the cursor: the rotated copy was rewritten; alarm, and its content
///   is stored whole as a new generation.
/// - Found, shorter than collected, and a prefix of it: copytruncate's race; noted, nothing of it
///   is read again.
/// - Not found by identity, but found by content (`edited`): the generation was edited at its
///   start; alarm, and the edited file is stored whole as a new generation.
/// - Not found: the same identity at the path with changed or cut collected bytes is a rewrite
///   (alarm); a shrunk file with new content is a truncation, a grown one a replacement (noted,
///   not an alarm: nothing collected is at stake).
pub fn plan(
    cursor: &Cursor,
    change: Change,
    path: &str,
    current_exists: bool,
    candidates: &[Candidate],
    edited: Option<&str>,
    history: bool,
) -> Plan {
    let current = current_exists.then_some(Step::Current);
    let younger = |g: &Candidate| uncollected(candidates, Some(g), history);
    let intact = candidates
        .iter()
        .find(|c| c.head_matches && c.tail_matches != Some(false));
    // The live file holds collected content although the identity is in a sibling: not a
    // rotation (logrotate never leaves collected lines at the path), but a copy kept under a
    // sibling name and the original edited.
    let live_edited = (edited == Some(path) && current_exists).then(|| Finding::Rewritten {
        path: path.to_string(),
        start: 0,
        end: cursor.end,
        how: "collected content was found in the file at the path, with a copy of the \
              collected generation beside it: the log was edited after a copy was set aside",
    });
    if let Some(g) = intact {
        if let Some(copied) = g.copied {
            let mut steps = younger(g);
            steps.extend(current);
            return Plan {
                finding: live_edited.or(Some(Finding::CopyShort {
                    path: g.path.clone(),
                    copied,
                    collected: cursor.end,
                })),
                steps,
            };
        }
        let mut steps = vec![Step::Tail {
            path: g.path.clone(),
            gz: g.gz,
            from: cursor.end,
        }];
        steps.extend(younger(g));
        steps.extend(current);
        return Plan {
            finding: live_edited,
            steps,
        };
    }
    // A rotated copy with collected bytes changed: the alarm, and the copy stored whole.
    let rewritten_copy = |g: &Candidate, start: u64, how: &'static str| {
        let mut steps = vec![Step::Whole {
            path: g.path.clone(),
            gz: g.gz,
        }];
        steps.extend(younger(g));
        steps.extend(current.clone());
        Plan {
            finding: Some(Finding::Rewritten {
                path: g.path.clone(),
                start,
                end: cursor.end,
                how,
            }),
            steps,
        }
    };
    if let Some(e) = candidates.iter().find(|c| c.head_matches) {
        return rewritten_copy(
            e,
            cursor.end - cursor.tail.len,
            "the rotated copy's collected bytes differ",
        );
    }
    let moved = "its first bytes changed, and collected content was found in it at another \
                 place: collected lines were edited, deleted or inserted";
    if let Some(e) = edited {
        if e == path && current_exists {
            return Plan {
                finding: Some(Finding::Rewritten {
                    path: path.to_string(),
                    start: 0,
                    end: cursor.end,
                    how: moved,
                }),
                steps: current.into_iter().collect(),
            };
        }
        if let Some(g) = candidates.iter().find(|c| c.path == e) {
            return rewritten_copy(g, 0, moved);
        }
    }
    let finding = match change {
        Change::Missing if cursor.head.len > 0 => Some(Finding::Gone {
            collected: cursor.end,
        }),
        Change::Missing => None,
        Change::TailChanged => Some(Finding::Rewritten {
            path: path.to_string(),
            start: cursor.end - cursor.tail.len,
            end: cursor.end,
            how: "collected bytes before the cursor changed",
        }),
        Change::Shrunk {
            size,
            collected,
            head_same: true,
        } => Some(Finding::Rewritten {
            path: path.to_string(),
            start: size,
            end: collected,
            how: "collected bytes were cut from the end",
        }),
        Change::Shrunk {
            size, collected, ..
        } => Some(Finding::Truncated { size, collected }),
        Change::NewIdentity => Some(Finding::Replaced {
            collected: cursor.end,
        }),
    };
    // The cursor's generation is gone; generations rotated since were never collected.
    let mut steps = match change {
        Change::TailChanged
        | Change::Shrunk {
            head_same: true, ..
        } => Vec::new(),
        _ => uncollected(candidates, None, history),
    };
    steps.extend(current);
    Plan { finding, steps }
}

/// Rotated generations never collected, oldest first, as whole reads. With `history`: every
/// sibling with an order (`.N`, a date) that carries neither the cursor's identity nor a known
/// one, wherever its name sorts (a leftover or planted name may sort anywhere; identities do not
/// lie). Without: only those younger by name than `g`, the cursor's generation.
fn uncollected(candidates: &[Candidate], g: Option<&Candidate>, history: bool) -> Vec<Step> {
    let fresh = |c: &&Candidate| !c.head_matches && !c.known && c.age != Age::Other;
    let mut steps: Vec<Step> = match (history, g) {
        (true, _) => candidates
            .iter()
            .filter(fresh)
            .filter(|c| g.is_none_or(|g| c.path != g.path))
            .map(|c| Step::Whole {
                path: c.path.clone(),
                gz: c.gz,
            })
            .collect(),
        (false, Some(g)) => candidates
            .iter()
            .take_while(|c| c.path != g.path)
            .filter(fresh)
            .filter(|c| c.age.younger_than(&g.age) == Some(true))
            .map(|c| Step::Whole {
                path: c.path.clone(),
                gz: c.gz,
            })
            .collect(),
        (false, None) => Vec::new(),
    };
    steps.reverse();
    steps
}

/// The generations to collect at first sight of a log (`history`), or when its cursor starts
/// over with nothing collected of the new generation: its rotated siblings that carry an order
/// (`.N`, dates) and were never collected, oldest first, each whole, then the file at its path.
pub fn history(siblings: &[Candidate], current_exists: bool) -> Vec<Step> {
    let mut steps = uncollected(siblings, None, true);
    steps.extend(current_exists.then_some(Step::Current));
    steps
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::cursor::{Probe, TAIL_LEN};

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
            spans: Vec::new(),
            known: Vec::new(),
        }
    }

    fn obs(size: u64, head: Option<u8>, tail: Option<u8>) -> Option<Observed> {
        Some(Observed {
            size,
            head: head.map(h),
            tail: tail.map(h),
        })
    }

    #[test]
    fn new_files() {
        assert_eq!(decide(None, obs(0, None, None)), Decision::UpToDate);
        assert_eq!(decide(None, None), Decision::UpToDate);
        assert_eq!(decide(None, obs(10, Some(9), None)), Decision::New);
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
        // A cursor reset by a truncation event: whatever is there now is new.
        let e = Cursor::empty();
        assert_eq!(decide(Some(&e), obs(0, None, None)), Decision::UpToDate);
        assert_eq!(
            decide(Some(&e), obs(7, Some(5), None)),
            Decision::Append { from: 0 }
        );
    }

    #[test]
    fn every_change() {
        let c = cursor(10_000);
        assert_eq!(decide(Some(&c), None), Decision::Search(Change::Missing));
        assert_eq!(
            decide(Some(&c), obs(50, Some(1), None)),
            Decision::Search(Change::Shrunk {
                size: 50,
                collected: 10_000,
                head_same: true
            })
        );
        assert_eq!(
            decide(Some(&c), obs(50, Some(3), None)),
            Decision::Search(Change::Shrunk {
                size: 50,
                collected: 10_000,
                head_same: false
            })
        );
        assert_eq!(
            decide(Some(&c), obs(20_000, Some(7), Some(2))),
            Decision::Search(Change::NewIdentity)
        );
        assert_eq!(
            decide(Some(&c), obs(20_000, Some(1), Some(7))),
            Decision::Search(Change::TailChanged)
        );
        assert_eq!(
            decide(Some(&c), obs(10_000, Some(1), None)),
            Decision::Search(Change::TailChanged),
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

    #[test]
    fn siblings_by_name() {
        let s = |n| sibling("auth.log", n);
        assert_eq!(s("auth.log.1"), Some((Age::Numeric(1), false)));
        assert_eq!(s("auth.log.12.gz"), Some((Age::Numeric(12), true)));
        assert_eq!(
            s("auth.log-20261128"),
            Some((Age::Dated("20261128".into()), false))
        );
        assert_eq!(
            s("auth.log-20261128.gz"),
            Some((Age::Dated("20261128".into()), true))
        );
        assert_eq!(
            s("auth.log.2026-11-28"),
            Some((Age::Dated("2026-11-28".into()), false))
        );
        assert_eq!(s("auth.log.old"), Some((Age::Other, false)));
        assert_eq!(s("auth.log"), None);
        assert_eq!(s("auth.log.gz"), Some((Age::Other, true)));
        assert_eq!(s("auth.logger"), None);
        assert_eq!(s("xauth.log.1"), None);
        assert_eq!(Age::Numeric(1).younger_than(&Age::Numeric(2)), Some(true));
        assert_eq!(
            Age::Dated("20261128".into()).younger_than(&Age::Dated("20261127".into())),
            Some(true)
        );
        assert_eq!(Age::Numeric(1).younger_than(&Age::Dated("2".into())), None);
        assert_eq!(Age::Other.younger_than(&Age::Other), None);
    }

    fn cand(path: &str, age: Age, head: bool, tail: Option<bool>) -> Candidate {
        Candidate {
            path: path.into(),
            age,
            gz: path.ends_with(".gz"),
            head_matches: head,
            tail_matches: tail,
            copied: None,
            known: false,
        }
    }

    const P: &str = "/var/log/auth.log";

    #[test]
    fn rotation_reads_the_old_tail_then_the_new_file() {
        let c = cursor(10_000);
        // create: auth.log -> auth.log.1, a new auth.log.
        let plan = plan(
            &c,
            Change::NewIdentity,
            P,
            true,
            &[cand(
                "/var/log/auth.log.1",
                Age::Numeric(1),
                true,
                Some(true),
            )],
            None,
            true,
        );
        assert_eq!(plan.finding, None, "rotation is not an alarm");
        assert_eq!(
            plan.steps,
            vec![
                Step::Tail {
                    path: "/var/log/auth.log.1".into(),
                    gz: false,
                    from: 10_000
                },
                Step::Current
            ]
        );
        // copytruncate: the file shrank, the copy is in auth.log.1.
        let p2 = super::plan(
            &c,
            Change::Shrunk {
                size: 10,
                collected: 10_000,
                head_same: false,
            },
            P,
            true,
            &[cand(
                "/var/log/auth.log.1",
                Age::Numeric(1),
                true,
                Some(true),
            )],
            None,
            true,
        );
        assert_eq!(p2.finding, None);
        assert_eq!(p2.steps.len(), 2);
        // Rotated and not recreated yet: the tail is read, nothing else.
        let p3 = super::plan(
            &c,
            Change::Missing,
            P,
            false,
            &[cand(
                "/var/log/auth.log.1",
                Age::Numeric(1),
                true,
                Some(true),
            )],
            None,
            true,
        );
        assert_eq!(p3.steps.len(), 1);
    }

    #[test]
    fn several_rotations_collect_the_generations_in_between() {
        let c = cursor(10_000);
        // Probed youngest first: .1 and .2.gz are new generations, .3.gz is ours.
        let cands = [
            cand("/var/log/auth.log.1", Age::Numeric(1), false, None),
            cand("/var/log/auth.log.2.gz", Age::Numeric(2), false, None),
            cand("/var/log/auth.log.3.gz", Age::Numeric(3), true, None),
        ];
        let plan = plan(&c, Change::NewIdentity, P, true, &cands, None, true);
        assert_eq!(plan.finding, None);
        assert_eq!(
            plan.steps,
            vec![
                Step::Tail {
                    path: "/var/log/auth.log.3.gz".into(),
                    gz: true,
                    from: 10_000
                },
                Step::Whole {
                    path: "/var/log/auth.log.2.gz".into(),
                    gz: true
                },
                Step::Whole {
                    path: "/var/log/auth.log.1".into(),
                    gz: false
                },
                Step::Current
            ]
        );
        // dateext: dates order the same way; an unrelated name is never taken as a generation.
        let cands = [
            cand(
                "/var/log/auth.log-20261128",
                Age::Dated("20261128".into()),
                false,
                None,
            ),
            cand("/var/log/auth.log.old", Age::Other, false, None),
            cand(
                "/var/log/auth.log-20261127.gz",
                Age::Dated("20261127".into()),
                true,
                None,
            ),
        ];
        let plan = super::plan(&c, Change::NewIdentity, P, true, &cands, None, true);
        assert_eq!(
            plan.steps[1],
            Step::Whole {
                path: "/var/log/auth.log-20261128".into(),
                gz: false
            }
        );
        assert_eq!(plan.steps.len(), 3);
    }

    #[test]
    fn rewrites_are_alarms_and_truncations_are_not() {
        let c = cursor(10_000);
        let none: [Candidate; 0] = [];
        let p = plan(&c, Change::TailChanged, P, true, &none, None, true);
        assert!(matches!(
            p.finding,
            Some(Finding::Rewritten {
                start: 5904,
                end: 10_000,
                ..
            })
        ));
        assert_eq!(p.steps, vec![Step::Current]);
        let p = plan(
            &c,
            Change::Shrunk {
                size: 9_000,
                collected: 10_000,
                head_same: true,
            },
            P,
            true,
            &none,
            None,
            true,
        );
        assert!(
            matches!(
                p.finding,
                Some(Finding::Rewritten {
                    start: 9_000,
                    end: 10_000,
                    ..
                })
            ),
            "lines cut from the end of a collected file"
        );
        let p = plan(
            &c,
            Change::Shrunk {
                size: 0,
                collected: 10_000,
                head_same: false,
            },
            P,
            true,
            &none,
            None,
            true,
        );
        assert_eq!(
            p.finding,
            Some(Finding::Truncated {
                size: 0,
                collected: 10_000
            })
        );
        let p = plan(&c, Change::NewIdentity, P, true, &none, None, true);
        assert_eq!(p.finding, Some(Finding::Replaced { collected: 10_000 }));
        let p = plan(&c, Change::Missing, P, false, &none, None, true);
        assert_eq!(
            p.finding,
            Some(Finding::Gone { collected: 10_000 }),
            "gone without a trace: nothing to read, a notice"
        );
        assert!(p.steps.is_empty());
        let p = plan(
            &Cursor::empty(),
            Change::Missing,
            P,
            false,
            &none,
            None,
            true,
        );
        assert_eq!(p, Plan::default(), "told once: the cursor starts over");
        // The rotated copy was edited before the cursor: alarm, stored whole.
        let p = plan(
            &c,
            Change::NewIdentity,
            P,
            true,
            &[cand(
                "/var/log/auth.log.1",
                Age::Numeric(1),
                true,
                Some(false),
            )],
            None,
            true,
        );
        assert!(matches!(p.finding, Some(Finding::Rewritten { .. })));
        assert_eq!(
            p.steps[0],
            Step::Whole {
                path: "/var/log/auth.log.1".into(),
                gz: false
            }
        );
    }

    #[test]
    fn copytruncate_races_edits_found_by_content_and_lost_generations() {
        let c = cursor(10_000);
        let none: [Candidate; 0] = [];
        // A short copy that is a prefix: a notice, nothing read from it, then the new file.
        let mut copy = cand("/var/log/auth.log.1", Age::Numeric(1), true, Some(true));
        copy.copied = Some(9_000);
        let change = Change::Shrunk {
            size: 10,
            collected: 10_000,
            head_same: false,
        };
        let p = plan(&c, change, P, true, std::slice::from_ref(&copy), None, true);
        assert!(matches!(
            p.finding,
            Some(Finding::CopyShort {
                copied: 9_000,
                collected: 10_000,
                ..
            })
        ));
        assert_eq!(p.steps, vec![Step::Current]);
        // The live file edited at its start (found by content): alarm, stored whole.
        let p = plan(&c, Change::NewIdentity, P, true, &none, Some(P), true);
        assert!(matches!(
            p.finding,
            Some(Finding::Rewritten {
                start: 0,
                end: 10_000,
                ..
            })
        ));
        assert_eq!(p.steps, vec![Step::Current]);
        // A rotated copy edited at its start: alarm, the copy whole, then the new file.
        let one = cand("/var/log/auth.log.1", Age::Numeric(1), false, None);
        let p = plan(
            &c,
            Change::NewIdentity,
            P,
            true,
            std::slice::from_ref(&one),
            Some("/var/log/auth.log.1"),
            true,
        );
        assert!(matches!(p.finding, Some(Finding::Rewritten { .. })));
        assert_eq!(
            p.steps,
            vec![
                Step::Whole {
                    path: "/var/log/auth.log.1".into(),
                    gz: false
                },
                Step::Current
            ]
        );
        // A rotation whose new live file holds collected content: the alarm, the plan as usual.
        let ours = cand("/var/log/auth.log.0", Age::Numeric(0), true, Some(true));
        let p = plan(&c, Change::NewIdentity, P, true, &[ours], Some(P), true);
        assert!(matches!(p.finding, Some(Finding::Rewritten { .. })));
        assert_eq!(p.steps.len(), 2);
        // The cursor's generation rotated past `rotate N`: the younger ones are collected, up to
        // the youngest known one; with history off, only the new file.
        let mut known = cand("/var/log/auth.log.3", Age::Numeric(3), false, None);
        known.known = true;
        let cands = [
            cand("/var/log/auth.log.1", Age::Numeric(1), false, None),
            cand("/var/log/auth.log.2.gz", Age::Numeric(2), false, None),
            known,
        ];
        let p = plan(&c, Change::NewIdentity, P, true, &cands, None, true);
        assert_eq!(p.finding, Some(Finding::Replaced { collected: 10_000 }));
        assert_eq!(
            p.steps,
            vec![
                Step::Whole {
                    path: "/var/log/auth.log.2.gz".into(),
                    gz: true
                },
                Step::Whole {
                    path: "/var/log/auth.log.1".into(),
                    gz: false
                },
                Step::Current
            ]
        );
        let p = plan(&c, Change::NewIdentity, P, true, &cands, None, false);
        assert_eq!(p.steps, vec![Step::Current]);
        assert_eq!(history(&cands, true).len(), 3);
        assert_eq!(history(&cands, false).len(), 2);
    }
}
