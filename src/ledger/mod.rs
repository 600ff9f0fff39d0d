//! **Part `ledger/`: the evidence.** The ledger, the cursor's recorded form (`cursor`), the
//! Merkle tree (`merkle`), checkpoints and anchors (`checkpoint`), proof files (`proof`), and the
//! commit protocol that ties stored frames to ledger lines (`writer`). It knows nothing of how
//! bytes arrived: it must not import `pull`, `receive`, `daemon`, `archive` or `cli`.
//!
//! The ledger (DESIGN §5): the append-only list of everything the store holds, one JSON entry a
//! line in `<store>/ledger/ledger.jsonl`.
//!
//! Every stored compression frame is one [`Frame`] entry: which host and remote file it came from,
//! which source bytes, where it sits in the store, and the SHA-256 of both the stored bytes and the
//! raw content. Events (a pinned host key, later rewrite alarms and archived days) are entries too.
//! An entry's `seq` is its line number from 0, which is also its leaf index in the Merkle tree
//! that checkpoints sign.
//!
//! Lines are canonical: exactly what `serde_json` writes for the entry, fields in declaration
//! order, no spaces. A reader re-serializes each entry and rejects a line that differs, so an entry
//! has one byte representation and one leaf hash.
//!
//! The ledger is the source of truth for cursors and for how far each stored file is committed
//! ([`Index`]). The index is cached in `state/index.json` with the ledger position it reflects; the
//! cache is checked against the ledger when loaded and rebuilt from scratch when it does not match.
//!
//! Commit order, which makes a crash at any moment harmless: frame bytes are written and synced
//! first, then the ledger lines are appended and synced in one write. Bytes in a stored file past
//! its last ledger entry are therefore uncommitted leftovers of an interrupted pull; the writer cuts
//! them away before appending (see `store`). A torn last ledger line is likewise cut away.

pub mod checkpoint;
pub mod cursor;
pub mod head;
pub mod merkle;
pub mod proof;
pub mod writer;

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use self::merkle::Frontier;
use crate::hash::Hash;
use crate::ledger::cursor::{Cursor, MAX_KNOWN, MAX_SPANS, Probe, Span};
use crate::store::layout;
use crate::store::{Store, StoreLock};

/// One ledger line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Entry {
    Frame(Frame),
    Event(Event),
}

/// How a frame's bytes were obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Via {
    /// Appended bytes of a log read over SFTP.
    Pull,
    /// A whole file read over SFTP because its content changed (`snapshot` paths).
    Snapshot,
    /// Messages received over syslog-over-TLS; `start..end` is the range of the host's received
    /// stream (its stored lines, counted from its first).
    Tls,
    /// Entries of a systemd journal file read over SFTP, stored in the journal export format;
    /// `start..end` is the range of the host's journal stream (every entry collected from any of
    /// its journal files, in collection order); `journal` says which file and entries.
    Journal,
}

/// Which journal entries a [`Via::Journal`] frame holds: one file's entries, consecutive in its
/// entry array. The frame's `tail` probe is the hash of the last entry's export bytes: what
/// the next round re-checks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JournalMark {
    /// The file's id (32 hex digits): it stays when journald renames the file on rotation.
    pub file_id: String,
    pub machine_id: String,
    /// The sequence-number space the file's entries belong to (shared by a machine's files).
    pub seqnum_id: String,
    pub first_seqnum: u64,
    pub last_seqnum: u64,
    /// How many entries the frame holds.
    pub entries: u64,
    /// Offset of the last entry's object in the file: the next read starts after it.
    pub last_offset: u64,
    /// The last entry's time (microseconds since the epoch).
    pub last_realtime: u64,
    /// The file is sealed with Forward Secure Sealing (its seals are stored with the entries
    /// they follow only as journald wrote them; loghost does not check them).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub sealed: bool,
}

/// An id as systemd prints it: 32 lowercase hex digits.
pub fn is_journal_id(s: &str) -> bool {
    s.len() == 32
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The source name of a host's journal stream.
pub const JOURNAL_SOURCE: &str = "journal";

/// The source name of the messages a host sent over syslog (TLS).
pub const TLS_SOURCE: &str = "syslog-tls";

/// One compression frame in the store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Frame {
    pub seq: u64,
    /// Commit time, UTC, microseconds; never earlier than the previous entry's.
    pub time: String,
    pub host: String,
    /// The log the bytes belong to: the configured remote path.
    pub source: String,
    /// The remote path actually read, when it is a rotated sibling of `source` (`auth.log.1`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    pub via: Via,
    /// Source byte range `[start, end)` of this frame's raw content.
    pub start: u64,
    pub end: u64,
    /// Identity of the source file: hash of its first bytes.
    pub head: Probe,
    /// Hash of the source bytes just before `end`: what the next round re-checks.
    pub tail: Probe,
    /// Store-relative path of the file holding the frame.
    pub file: String,
    /// Byte range `[offset, offset + length)` of the frame in `file`.
    pub offset: u64,
    pub length: u64,
    /// SHA-256 of the stored (compressed) bytes.
    pub sha256: Hash,
    /// SHA-256 of the raw content, `end - start` bytes.
    pub raw_sha256: Hash,
    /// For [`Via::Journal`] frames: the journal file and entries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub journal: Option<Box<JournalMark>>,
}

/// Something that happened, recorded for the auditor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Event {
    pub seq: u64,
    pub time: String,
    pub event: EventKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// The byte range concerned, of the source's collected generation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end: Option<u64>,
    /// A digest the event vouches for (`archived`: the day's manifest).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<Hash>,
    pub detail: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// `loghost trust` pinned a host key (detail: key type and fingerprint, and the replaced one).
    HostKeyPinned,
    /// ALARM: bytes already collected changed on the server. The archive keeps the original; the
    /// new content follows as a new generation.
    Rewritten,
    /// The log shrank with new content and no rotated copy of the old one (`> file`).
    Truncated,
    /// A different file appeared under the log's name and the previous one is not among its
    /// rotated siblings.
    Replaced,
    /// The log is gone from its path and no rotated sibling carries it: deleted, or rotated
    /// with `rotate 0`. `end`: what was collected.
    Gone,
    /// The log kept changing while it was looked at and read (every try saw it move): what
    /// could be read was kept, the rest waits for the next round. Logrotate settles in
    /// milliseconds; a log that never settles is being rewritten.
    Unsettled,
    /// A rotated copy holds less than was collected from its generation, and what it holds is a
    /// prefix of what was collected: copytruncate's own race (lines written between its copy and
    /// its truncation are in no copy). `start`..`end`: the collected bytes that are in the
    /// archive only. Not an alarm.
    CopyShort,
    /// A host-day (`host`, `source` = the date) was copied to the archive tier, read back and
    /// checked; its local files are then removed (`sha256`: the day's manifest).
    Archived,
    /// The operator accepted a ledger that was not what this loghost last wrote (`loghost
    /// accept-ledger`, after `loghost verify`): `detail` says what its signed head said.
    LedgerAccepted,
}

impl EventKind {
    /// Events after which the source's next bytes start a new generation from 0.
    pub fn restarts_generation(self) -> bool {
        matches!(
            self,
            EventKind::Rewritten
                | EventKind::Truncated
                | EventKind::Replaced
                | EventKind::CopyShort
                | EventKind::Gone
        )
    }
}

impl Entry {
    pub fn seq(&self) -> u64 {
        match self {
            Entry::Frame(f) => f.seq,
            Entry::Event(e) => e.seq,
        }
    }

    pub fn time(&self) -> &str {
        match self {
            Entry::Frame(f) => &f.time,
            Entry::Event(e) => &e.time,
        }
    }

    fn stamp(&mut self, seq: u64, time: &str) {
        let (s, t) = match self {
            Entry::Frame(f) => (&mut f.seq, &mut f.time),
            Entry::Event(e) => (&mut e.seq, &mut e.time),
        };
        *s = seq;
        *t = time.to_string();
    }

    /// The canonical line, without its newline.
    pub fn to_line(&self) -> Vec<u8> {
        // Serializing plain structs of strings and integers cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// Formats a ledger time: RFC 3339, UTC, always six fractional digits.
pub fn format_time(t: Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

/// Parses one ledger line (without newline) and checks that it is canonical and has the
/// expected sequence number.
pub fn parse_line(line: &[u8], expected_seq: u64) -> Result<Entry, String> {
    let entry: Entry =
        serde_json::from_slice(line).map_err(|e| format!("not a valid entry: {e}"))?;
    if entry.seq() != expected_seq {
        return Err(format!(
            "sequence number {} where {expected_seq} was expected (entries dropped, added or \
             reordered)",
            entry.seq()
        ));
    }
    if entry.to_line() != line {
        return Err("not in canonical form (the line was edited)".into());
    }
    if entry.time().parse::<Timestamp>().is_err() {
        return Err(format!("invalid time {:?}", entry.time()));
    }
    if let Entry::Frame(f) = &entry {
        if layout::parse_log_path(&f.file).is_none() {
            return Err(format!("invalid stored file path {:?}", f.file));
        }
        if f.end < f.start {
            return Err("source range ends before it starts".into());
        }
        match (&f.journal, f.via) {
            (None, Via::Journal) => return Err("a journal frame without its journal mark".into()),
            (Some(_), v) if v != Via::Journal => {
                return Err("a journal mark on a frame that is not a journal's".into());
            }
            (Some(j), _) => {
                if ![&j.file_id, &j.machine_id, &j.seqnum_id]
                    .iter()
                    .all(|id| is_journal_id(id))
                {
                    return Err("a journal mark with a malformed id".into());
                }
                if j.entries == 0 || j.last_seqnum < j.first_seqnum || f.source != JOURNAL_SOURCE {
                    return Err("an inconsistent journal mark".into());
                }
            }
            (None, _) => {}
        }
    }
    Ok(entry)
}

#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("cannot access the ledger {path}: {err}")]
    Io { path: PathBuf, err: io::Error },
    #[error(
        "the ledger {path} is damaged at line {line} (byte {offset}): {problem}; \
         run `loghost verify` and restore the store from a good copy"
    )]
    Corrupt {
        path: PathBuf,
        line: u64,
        offset: u64,
        problem: String,
    },
    #[error("{0}")]
    Refused(String),
}

/// How far the ledger's last entry may be dated after this machine's clock before nothing more
/// is appended (a forged entry dated 9999 must not become the ledger's clock).
pub const MAX_AHEAD: jiff::SignedDuration = jiff::SignedDuration::from_hours(24);

/// What the ledger says, folded: enough to pull the next round without rereading it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Index {
    /// Number of entries, which is the next sequence number.
    pub entries: u64,
    /// Length of the ledger file covered.
    pub bytes: u64,
    /// Offset and hash of the last line, to check a cached index against the file.
    pub last_line: Option<(u64, Hash)>,
    pub last_time: Option<String>,
    /// host → remote path → cursor.
    pub cursors: BTreeMap<String, BTreeMap<String, Cursor>>,
    /// Store-relative file → end of its last committed frame.
    pub file_ends: BTreeMap<String, u64>,
    /// The Merkle tree of every line so far (its right edge).
    pub tree: Frontier,
    /// The root of this ledger's first `n` lines, where `n` is the size of the newest checkpoint
    /// in the store: what the next checkpoint must extend.
    pub root_at_checkpoint: Option<(u64, Hash)>,
    /// Host-days with an `archived` event: no frame may be added to them. (No serde default: a
    /// cache written before this field existed is rebuilt.)
    pub archived: std::collections::BTreeSet<(String, String)>,
    /// host → journal file id → how far it was collected. (No serde default, as above.)
    pub journals: BTreeMap<String, BTreeMap<String, cursor::JournalCursor>>,
}

impl Index {
    fn apply(&mut self, entry: &Entry, offset: u64, line: &[u8]) {
        self.tree.push(merkle::leaf_hash(line));
        self.entries = entry.seq() + 1;
        self.bytes = offset + line.len() as u64 + 1;
        self.last_line = Some((offset, Hash::of(line)));
        self.last_time = Some(entry.time().to_string());
        match entry {
            Entry::Frame(f) => {
                self.file_ends.insert(f.file.clone(), f.offset + f.length);
                if let Some(j) = &f.journal {
                    let span = Span {
                        start: f.start,
                        end: f.end,
                        file: f.file.clone(),
                        offset: f.offset,
                        length: f.length,
                    };
                    let files = self.journals.entry(f.host.clone()).or_default();
                    match files.get_mut(&j.file_id) {
                        Some(c) => {
                            c.mark = (**j).clone();
                            c.path = f.from.clone().unwrap_or_default();
                            c.tail = f.tail;
                            c.entries += j.entries;
                            c.samples.push(span);
                        }
                        None => {
                            files.insert(
                                j.file_id.clone(),
                                cursor::JournalCursor {
                                    mark: (**j).clone(),
                                    first_seqnum: j.first_seqnum,
                                    path: f.from.clone().unwrap_or_default(),
                                    tail: f.tail,
                                    entries: j.entries,
                                    samples: {
                                        let mut s = cursor::JournalSamples::default();
                                        s.push(span);
                                        s
                                    },
                                },
                            );
                        }
                    }
                }
                let slot = self
                    .cursors
                    .entry(f.host.clone())
                    .or_default()
                    .entry(f.source.clone())
                    .or_insert_with(Cursor::empty);
                // Frames of one generation follow each other; one starting at 0 begins another.
                let mut spans = if f.start == 0 {
                    Vec::new()
                } else {
                    std::mem::take(&mut slot.spans)
                };
                if f.via == Via::Pull {
                    spans.push(Span {
                        start: f.start,
                        end: f.end,
                        file: f.file.clone(),
                        offset: f.offset,
                        length: f.length,
                    });
                    if spans.len() > MAX_SPANS {
                        spans.drain(..spans.len() - MAX_SPANS);
                    }
                }
                // One identity per generation: a frame that continues the current generation
                // replaces its identity (the same or longer), one that starts at 0 adds one.
                let mut known = std::mem::take(&mut slot.known);
                if f.head.len > 0 {
                    let continues = f.start > 0 && slot.head.len > 0;
                    match known.iter().rposition(|p| *p == slot.head) {
                        Some(i) if continues => known[i] = f.head,
                        _ if known.contains(&f.head) => {}
                        _ => known.push(f.head),
                    }
                    if known.len() > MAX_KNOWN {
                        known.drain(..known.len() - MAX_KNOWN);
                    }
                }
                *slot = Cursor {
                    end: f.end,
                    head: f.head,
                    tail: f.tail,
                    content: (f.via == Via::Snapshot).then_some(f.raw_sha256),
                    spans,
                    known,
                };
            }
            // A journal's findings are about entries, never the host's journal stream.
            Entry::Event(e)
                if e.event.restarts_generation() && e.source.as_deref() != Some(JOURNAL_SOURCE) =>
            {
                if let (Some(host), Some(source)) = (&e.host, &e.source) {
                    let slot = self
                        .cursors
                        .entry(host.clone())
                        .or_default()
                        .entry(source.clone())
                        .or_insert_with(Cursor::empty);
                    // The generations collected before stay known.
                    let known = std::mem::take(&mut slot.known);
                    *slot = Cursor {
                        known,
                        ..Cursor::empty()
                    };
                }
            }
            Entry::Event(e) if e.event == EventKind::Archived => {
                if let (Some(host), Some(date)) = (&e.host, &e.source) {
                    self.archived.insert((host.clone(), date.clone()));
                }
            }
            Entry::Event(_) => {}
        }
    }

    pub fn cursor(&self, host: &str, source: &str) -> Option<&Cursor> {
        self.cursors.get(host)?.get(source)
    }

    /// How far a stored file is committed (0 for a file the ledger does not know).
    pub fn committed_end(&self, file: &str) -> u64 {
        self.file_ends.get(file).copied().unwrap_or(0)
    }
}

/// Calls `f(offset, line, entry)` for every entry of the ledger at `path`, in order, from the
/// given position. Stops at a torn last line (returned as `Some(offset)`): only a writer may cut
/// it away.
pub fn scan(
    path: &Path,
    from_offset: u64,
    from_seq: u64,
    mut f: impl FnMut(u64, &[u8], Entry),
) -> Result<Option<u64>, LedgerError> {
    let io_err = |err| LedgerError::Io {
        path: path.to_path_buf(),
        err,
    };
    let mut file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound && from_offset == 0 => return Ok(None),
        Err(e) => return Err(io_err(e)),
    };
    file.seek(SeekFrom::Start(from_offset)).map_err(io_err)?;
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let mut offset = from_offset;
    let mut seq = from_seq;
    let mut line = Vec::with_capacity(512);
    loop {
        line.clear();
        let n = reader.read_until(b'\n', &mut line).map_err(io_err)?;
        if n == 0 {
            return Ok(None);
        }
        if line.last() != Some(&b'\n') {
            return Ok(Some(offset));
        }
        line.pop();
        let entry = parse_line(&line, seq).map_err(|problem| LedgerError::Corrupt {
            path: path.to_path_buf(),
            line: seq + 1,
            offset,
            problem,
        })?;
        f(offset, &line, entry);
        offset += n as u64;
        seq += 1;
    }
}

/// The Merkle roots of the ledger's first `n` lines, for each `n` in `sizes`, in one pass over
/// the file (lines are hashed, not parsed). Sizes beyond the ledger's end are absent.
pub fn roots_at(
    path: &Path,
    sizes: &std::collections::BTreeSet<u64>,
) -> Result<BTreeMap<u64, Hash>, LedgerError> {
    let io_err = |err| LedgerError::Io {
        path: path.to_path_buf(),
        err,
    };
    let mut out = BTreeMap::new();
    let mut tree = Frontier::new();
    let Some(&last) = sizes.last() else {
        return Ok(out);
    };
    if sizes.contains(&0) {
        out.insert(0, tree.root());
    }
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(io_err(e)),
    };
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let mut line = Vec::with_capacity(512);
    while tree.size() < last {
        line.clear();
        let n = reader.read_until(b'\n', &mut line).map_err(io_err)?;
        if n == 0 || line.last() != Some(&b'\n') {
            break;
        }
        line.pop();
        tree.push(merkle::leaf_hash(&line));
        if sizes.contains(&tree.size()) {
            out.insert(tree.size(), tree.root());
        }
    }
    Ok(out)
}

/// The ledger opened for appending. Only one exists at a time: it needs the store lock.
pub struct Ledger {
    path: PathBuf,
    cache_path: PathBuf,
    file: File,
    index: Index,
    /// Signs the index cache and the head.
    key: crate::keys::SigningKey,
    /// The signed head: what this loghost last wrote.
    head: head::Head,
    head_path: PathBuf,
}

/// What the index cache's signature covers besides its digest: no newline at the end, so it can
/// never be the text of a signed note (a checkpoint).
const CACHE_SIG_CONTEXT: &str = "loghost/index-cache/v1 ";

impl Ledger {
    /// Opens the ledger for writing: cuts a torn last line, loads the index from the cache when
    /// it matches the file, and folds in whatever the cache does not cover.
    ///
    /// The index cache is trusted only when it carries a signature by `key` (the ledger signing
    /// key): whoever can write the store but lacks the key cannot forge cursors, committed
    /// lengths or the root the next checkpoint must extend.
    ///
    /// The ledger must be what this loghost last wrote (its signed [`head`]); entries written or
    /// edited by anyone else are an ALARM and the ledger is not opened, unless `accept` (the
    /// operator's `loghost accept-ledger`, after `loghost verify`).
    pub fn open(
        store: &Store,
        _lock: &StoreLock,
        key: &crate::keys::SigningKey,
        accept: bool,
    ) -> Result<Ledger, LedgerError> {
        let path = store.path(layout::LEDGER_FILE);
        let cache_path = store.path(layout::STATE_DIR).join("index.json");
        let io_err = |err| LedgerError::Io {
            path: path.clone(),
            err,
        };
        let mut file = crate::store::open_options_0600()
            .read(true)
            .append(true)
            .create(true)
            .open(&path)
            .map_err(io_err)?;
        repair_torn_tail(&mut file, &path).map_err(io_err)?;

        let mut index =
            load_cache(&cache_path, &mut file, &key.key.verifying_key()).unwrap_or_default();
        // The root at the newest checkpoint's size must be known once the ledger is past it;
        // a cache that went past without recording it is rebuilt.
        let newest =
            crate::ledger::checkpoint::sizes_in(&crate::ledger::checkpoint::dir(store.root()))
                .map_err(|err| LedgerError::Io {
                    path: crate::ledger::checkpoint::dir(store.root()),
                    err,
                })?
                .last()
                .copied();
        if let Some(n) = newest {
            let known = index.root_at_checkpoint.is_some_and(|(s, _)| s == n);
            if !known && index.entries > n {
                index = Index::default();
            }
        }
        let note_checkpoint = |index: &mut Index| {
            if Some(index.entries) == newest {
                index.root_at_checkpoint = Some((index.entries, index.tree.root()));
            }
        };
        note_checkpoint(&mut index);
        let (from, seq) = (index.bytes, index.entries);
        let torn = scan(&path, from, seq, |offset, line, entry| {
            index.apply(&entry, offset, line);
            note_checkpoint(&mut index);
        })?;
        if torn.is_some() {
            return Err(LedgerError::Corrupt {
                path,
                line: index.entries + 1,
                offset: index.bytes,
                problem: "the last line is incomplete and could not be cut away".into(),
            });
        }
        let head = open_head(store, key, &index, accept)?;
        Ok(Ledger {
            path,
            cache_path,
            file,
            index,
            key: key.clone(),
            head,
            head_path: head::path(store.root()),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn index(&self) -> &Index {
        &self.index
    }

    /// The tree now: size and root.
    pub fn tree(&self) -> (u64, Hash) {
        (self.index.entries, self.index.tree.root())
    }

    /// Records that a checkpoint of the current tree was written.
    pub fn checkpointed(&mut self) {
        self.index.root_at_checkpoint = Some(self.tree());
    }

    /// The time to stamp new entries with: now, or the last entry's time if the clock stepped
    /// back, so ledger times (and the day directories derived from them) never go backwards.
    ///
    /// A last entry dated more than [`MAX_AHEAD`] after the clock is not followed (appending is
    /// then refused, see [`Ledger::append`]): this is the clock.
    pub fn now(&self) -> Timestamp {
        let now = crate::failpoint::fake_now().unwrap_or_else(Timestamp::now);
        match self.last_time() {
            Some(last) if last > now && last.duration_since(now) <= MAX_AHEAD => last,
            _ => now,
        }
    }

    fn last_time(&self) -> Option<Timestamp> {
        self.index.last_time.as_deref()?.parse().ok()
    }

    /// Why these entries may not be appended, if they may not.
    fn refuse(&self, entries: &[Entry]) -> Option<String> {
        let now = crate::failpoint::fake_now().unwrap_or_else(Timestamp::now);
        if let Some(last) = self.last_time()
            && last.duration_since(now) > MAX_AHEAD
        {
            return Some(format!(
                "the ledger's last entry is dated {last}, more than a day after this machine's \
                 clock ({now}): nothing more is appended. Either the clock is wrong (fix it and \
                 run again) or that entry was forged (run `loghost verify`)"
            ));
        }
        for e in entries {
            if let Entry::Frame(f) = e
                && let Some(p) = layout::parse_log_path(&f.file)
                && self
                    .index
                    .archived
                    .contains(&(p.host.to_string(), p.date.to_string()))
            {
                return Some(format!(
                    "{} {} was archived (moved out of the store) while {} was being written: \
                     the frame is not recorded; its bytes are collected again next round",
                    p.host, p.date, f.file
                ));
            }
        }
        None
    }

    /// Appends entries in one write and syncs it; assigns their sequence numbers and time.
    /// On failure nothing is appended (a partial write is cut away again).
    pub fn append(&mut self, mut entries: Vec<Entry>) -> Result<Vec<Entry>, LedgerError> {
        if entries.is_empty() {
            return Ok(entries);
        }
        if let Some(why) = self.refuse(&entries) {
            return Err(LedgerError::Refused(why));
        }
        let time = format_time(self.now());
        let mut buf = Vec::with_capacity(entries.len() * 512);
        let mut lines = Vec::with_capacity(entries.len());
        for (i, e) in entries.iter_mut().enumerate() {
            e.stamp(self.index.entries + i as u64, &time);
            let start = buf.len();
            buf.extend_from_slice(&e.to_line());
            lines.push((start, buf.len()));
            buf.push(b'\n');
        }
        // Write-ahead: the signed head of the tree after this append, before the lines.
        let mut after = self.index.tree.clone();
        for (s, t) in &lines {
            after.push(merkle::leaf_hash(&buf[*s..*t]));
        }
        if let Err(err) = self.head.prepare(&self.key, after.size(), after.root()) {
            return Err(LedgerError::Io {
                path: self.head_path.clone(),
                err,
            });
        }
        crate::failpoint::hit("after-head-write");
        let before = self.index.bytes;
        if crate::failpoint::armed("mid-ledger-write") {
            let _ = self.file.write_all(&buf[..buf.len() / 2]);
            let _ = self.file.sync_data();
            crate::failpoint::hit("mid-ledger-write");
        }
        if let Err(err) = self
            .file
            .write_all(&buf)
            .and_then(|()| self.file.sync_data())
        {
            let _ = self.file.set_len(before);
            return Err(LedgerError::Io {
                path: self.path.clone(),
                err,
            });
        }
        self.head.commit();
        for (e, (s, t)) in entries.iter().zip(lines) {
            self.index.apply(e, before + s as u64, &buf[s..t]);
        }
        Ok(entries)
    }

    /// Saves the index cache (atomically; a failure only costs a rescan next time). The file is
    /// the index as JSON, a newline, the SHA-256 of that JSON, a newline, and an Ed25519
    /// signature (base64) of [`CACHE_SIG_CONTEXT`] followed by that digest in hex: a damaged
    /// cache is noticed, a forged one too.
    pub fn save_index(&self) -> io::Result<()> {
        let mut data = serde_json::to_vec(&self.index).map_err(io::Error::other)?;
        let digest = Hash::of(&data).to_string();
        let sig = ed25519_dalek::Signer::sign(
            &self.key.key,
            format!("{CACHE_SIG_CONTEXT}{digest}").as_bytes(),
        );
        data.push(b'\n');
        data.extend_from_slice(digest.as_bytes());
        data.push(b'\n');
        data.extend_from_slice(
            base64::Engine::encode(&base64::engine::general_purpose::STANDARD, sig.to_bytes())
                .as_bytes(),
        );
        crate::store::write_atomic(&self.cache_path, &data)
    }
}

/// Opens the signed head and checks the ledger (as `index` folds it) is what this loghost last
/// wrote: its size and root equal one valid slot. Without a head, only an empty ledger (a new
/// store) is taken; anything else waits for `loghost accept-ledger`.
fn open_head(
    store: &Store,
    key: &crate::keys::SigningKey,
    index: &Index,
    accept: bool,
) -> Result<head::Head, LedgerError> {
    let path = head::path(store.root());
    let io_err = |err| LedgerError::Io {
        path: path.clone(),
        err,
    };
    let slots = head::read(&path, &key.verifier_key()).map_err(io_err)?;
    let (entries, root) = (index.entries, index.tree.root());
    if let Some(i) = slots.iter().position(|s| {
        s.as_ref()
            .is_some_and(|c| c.size == entries && c.root == root)
    }) {
        return head::Head::open(&path, i).map_err(io_err);
    }
    let newest = slots.iter().flatten().map(|c| c.size).max();
    // Without a head, only an empty ledger is taken as it is: a head deleted together with the
    // entries after the newest checkpoint would otherwise pass for a store from before heads.
    if !accept && (newest.is_some() || entries > 0) {
        let what = match newest {
            Some(n) if n < entries => format!(
                "entries {n}..{entries} were not written by this loghost (appended by someone \
                 else)"
            ),
            Some(n) if n > entries => format!(
                "this loghost last wrote {n} entries, the ledger holds {entries}: it was cut \
                 short"
            ),
            Some(_) => "its entries differ from what this loghost wrote (edited)".to_string(),
            None => format!(
                "{} is missing or holds no valid signed head (deleted, or a store from a version \
                 before signed heads: then accept it once)",
                path.display()
            ),
        };
        return Err(LedgerError::Refused(format!(
            "ALARM: the ledger is not what this loghost last wrote: {what}. Nothing is collected \
             into it or signed. Run `loghost verify`; if the ledger is genuine (a store restored \
             from a backup, say), `loghost accept-ledger` records that and carries on"
        )));
    }
    let mut h = head::Head::open(&path, 0).map_err(io_err)?;
    h.reset(key, entries, root).map_err(io_err)?;
    Ok(h)
}

/// Cuts an incomplete last line left by a crash in the middle of an append.
fn repair_torn_tail(file: &mut File, path: &Path) -> io::Result<()> {
    let len = file.metadata()?.len();
    if len == 0 {
        return Ok(());
    }
    let mut pos = len;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let start = pos.saturating_sub(buf.len() as u64);
        let chunk = &mut buf[..(pos - start) as usize];
        file.seek(SeekFrom::Start(start))?;
        file.read_exact(chunk)?;
        if let Some(i) = chunk.iter().rposition(|&b| b == b'\n') {
            let keep = start + i as u64 + 1;
            if keep < len {
                tracing::warn!(
                    ledger = %path.display(),
                    "the ledger ended in an incomplete entry ({} bytes, from an interrupted \
                     write); cutting it away",
                    len - keep
                );
                file.set_len(keep)?;
                file.sync_data()?;
            }
            return Ok(());
        }
        if start == 0 {
            tracing::warn!(ledger = %path.display(), "the ledger held only an incomplete entry; cutting it away");
            file.set_len(0)?;
            file.sync_data()?;
            return Ok(());
        }
        pos = start;
    }
}

/// Loads the cached index if its signature holds and it still describes a prefix of the ledger
/// file.
fn load_cache(cache: &Path, ledger: &mut File, key: &ed25519_dalek::VerifyingKey) -> Option<Index> {
    let data = std::fs::read(cache).ok()?;
    let split = data.iter().rposition(|&b| b == b'\n')?;
    let (rest, sig) = (&data[..split], &data[split + 1..]);
    let split = rest.iter().rposition(|&b| b == b'\n')?;
    let (json, digest) = (&rest[..split], &rest[split + 1..]);
    let digest = std::str::from_utf8(digest).ok()?;
    let signed = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, sig)
        .ok()
        .and_then(|b| <[u8; 64]>::try_from(b).ok())
        .map(|b| ed25519_dalek::Signature::from_bytes(&b))
        .is_some_and(|sig| {
            key.verify_strict(format!("{CACHE_SIG_CONTEXT}{digest}").as_bytes(), &sig)
                .is_ok()
        });
    if !signed || digest.parse::<Hash>().ok()? != Hash::of(json) {
        tracing::warn!(
            cache = %cache.display(),
            "the index cache is damaged, forged or from an older version; rebuilding it from the \
             ledger"
        );
        return None;
    }
    let index: Index = serde_json::from_slice(json).ok()?;
    let len = ledger.metadata().ok()?.len();
    if index.bytes > len {
        return None;
    }
    match index.last_line {
        None => (index.bytes == 0 && index.entries == 0).then_some(index),
        Some((offset, hash)) => {
            let n = index.bytes.checked_sub(offset)?;
            let mut line = vec![0u8; usize::try_from(n).ok()?];
            ledger.seek(SeekFrom::Start(offset)).ok()?;
            ledger.read_exact(&mut line).ok()?;
            (line.pop() == Some(b'\n') && Hash::of(&line) == hash).then_some(index)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame() -> Entry {
        Entry::Frame(Frame {
            seq: 0,
            time: String::new(),
            host: "web1".into(),
            source: "/var/log/auth.log".into(),
            from: None,
            via: Via::Pull,
            start: 0,
            end: 10,
            head: Probe {
                len: 10,
                sha256: Hash::of(b"0123456789"),
            },
            tail: Probe {
                len: 10,
                sha256: Hash::of(b"0123456789"),
            },
            file: "logs/web1/2026-11-28/auth.log.zst".into(),
            offset: 0,
            length: 25,
            sha256: Hash::of(b"x"),
            raw_sha256: Hash::of(b"0123456789"),
            journal: None,
        })
    }

    #[test]
    fn lines_are_canonical_and_strict() {
        let mut e = frame();
        e.stamp(0, "2026-11-28T08:00:00.000000Z");
        let line = e.to_line();
        let text = String::from_utf8(line.clone()).expect("utf8");
        assert!(text.starts_with("{\"kind\":\"frame\",\"seq\":0,"), "{text}");
        assert_eq!(parse_line(&line, 0), Ok(e.clone()));
        assert!(
            parse_line(&line, 1)
                .expect_err("must be refused")
                .contains("sequence")
        );
        let spaced = text.replace(",\"host\"", ", \"host\"");
        assert!(
            parse_line(spaced.as_bytes(), 0)
                .expect_err("must be refused")
                .contains("canonical")
        );
        let extra = text.replace("{\"kind\":\"frame\",", "{\"kind\":\"frame\",\"x\":1,");
        assert!(parse_line(extra.as_bytes(), 0).is_err());
        let escape = text.replace(
            "logs/web1/2026-11-28/auth.log.zst",
            "logs/web1/2026-11-28/../../x",
        );
        assert!(
            parse_line(escape.as_bytes(), 0)
                .expect_err("must be refused")
                .contains("path")
        );
    }

    fn test_key() -> crate::keys::SigningKey {
        crate::keys::SigningKey {
            name: "test".into(),
            key: ed25519_dalek::SigningKey::from_bytes(&[7u8; 32]),
        }
    }

    fn event(kind: EventKind, host: &str, source: &str) -> Entry {
        Entry::Event(Event {
            seq: 0,
            time: String::new(),
            event: kind,
            host: Some(host.into()),
            source: Some(source.into()),
            start: None,
            end: None,
            sha256: None,
            detail: String::new(),
        })
    }

    #[test]
    fn no_frame_is_added_to_an_archived_day() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::create(dir.path()).expect("store");
        let lock = store.lock("test").expect("lock");
        let mut ledger = Ledger::open(&store, &lock, &test_key(), false).expect("ledger");
        ledger.append(vec![frame()]).expect("a frame of 2026-11-28");
        ledger
            .append(vec![event(EventKind::Archived, "web1", "2026-11-28")])
            .expect("archived");
        // A pull still writing that day's file when the day was archived (midnight, online_days
        // = 1): its frame is refused, and stays refused after the index is rebuilt.
        let err = ledger.append(vec![frame()]).expect_err("refused");
        assert!(err.to_string().contains("was archived"), "{err}");
        drop(ledger);
        std::fs::write(store.path(layout::STATE_DIR).join("index.json"), b"damaged")
            .expect("spoil the cache");
        let mut ledger = Ledger::open(&store, &lock, &test_key(), false).expect("ledger");
        assert!(ledger.append(vec![frame()]).is_err());
        // Another day is fine.
        let Entry::Frame(mut f) = frame() else {
            unreachable!()
        };
        f.file = "logs/web1/2026-11-29/auth.log.zst".into();
        ledger.append(vec![Entry::Frame(f)]).expect("next day");
    }

    #[test]
    fn a_last_entry_dated_far_ahead_is_not_the_clock() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::create(dir.path()).expect("store");
        let lock = store.lock("test").expect("lock");
        let mut ledger = Ledger::open(&store, &lock, &test_key(), false).expect("ledger");
        ledger.append(vec![frame()]).expect("frame");
        drop(ledger);
        // The intruder appends a canonical line dated 9999-06-01.
        let mut e = event(EventKind::Unsettled, "web1", "/var/log/auth.log");
        e.stamp(1, "9999-06-01T00:00:00.000000Z");
        let mut line = e.to_line();
        line.push(b'\n');
        let path = store.path(layout::LEDGER_FILE);
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .expect("ledger file");
        f.write_all(&line).expect("append");
        // Not written by this loghost: refused, unless accepted.
        let err = Ledger::open(&store, &lock, &test_key(), false)
            .err()
            .expect("refused");
        assert!(
            err.to_string().contains("not written by this loghost"),
            "{err}"
        );
        let mut ledger = Ledger::open(&store, &lock, &test_key(), true).expect("ledger");
        assert!(ledger.now() < "2999-01-01T00:00:00Z".parse::<Timestamp>().expect("t"));
        let err = ledger.append(vec![frame()]).expect_err("refused");
        assert!(err.to_string().contains("more than a day after"), "{err}");
    }

    #[test]
    fn times_are_fixed_width() {
        let t: Timestamp = "2026-11-28T08:00:00Z".parse().expect("time");
        assert_eq!(format_time(t), "2026-11-28T08:00:00.000000Z");
    }

    #[test]
    fn one_known_identity_per_generation_however_many_frames() {
        let mut index = Index::default();
        let probe = |s: &[u8]| Probe {
            len: s.len() as u64,
            sha256: Hash::of(s),
        };
        let mut apply = |start: u64, end: u64, head: &[u8]| {
            let Entry::Frame(mut f) = frame() else {
                unreachable!()
            };
            (f.start, f.end, f.head) = (start, end, probe(head));
            let line = format!("{start}-{end}");
            index.apply(&Entry::Frame(f), 0, line.as_bytes());
        };
        // Generation A, grown a line a round: its identity gets longer each frame.
        let text = "a line of the first generation\n".repeat(200);
        let mut end = 0;
        for n in (31..4096).step_by(31) {
            apply(end, n as u64, &text.as_bytes()[..n]);
            end = n as u64;
        }
        // Generation B starts.
        apply(0, 50, b"b first line");
        let c = index.cursor("web1", "/var/log/auth.log").expect("cursor");
        assert_eq!(c.known.len(), 2, "{:?}", c.known);
        assert!(c.knows(&text.as_bytes()[..4092]), "its longest identity");
        assert!(
            !c.knows(&text.as_bytes()[..100]),
            "a shorter file is not that generation"
        );
    }
}
