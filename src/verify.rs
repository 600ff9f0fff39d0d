//! `loghost verify`: recomputes everything the ledger and the checkpoints claim, and says what
//! does not hold, naming the file, the byte range and the entry.
//!
//! What is checked:
//! - every ledger line: canonical JSON, sequence numbers in order, times never going back;
//! - the Merkle tree over all lines, against every checkpoint: the store's own, the newest one in
//!   each anchor, and any `--checkpoint` an auditor kept: each must be signed by the log's key and
//!   be a prefix of the local tree. A checkpoint larger than the ledger means the ledger was cut
//!   short or rolled back;
//! - every stored file: its frames must tile it exactly (no gap, no overlap, nothing after the
//!   last frame, nothing missing), and each frame's bytes must hash to its entry;
//!   `--deep` also decompresses each frame and checks the raw content's hash and length;
//! - no file under `logs/` that the ledger does not know.
//!
//! It also reports the unanchored tail: entries newer than the newest checkpoint held outside the
//! loghost, which an intruder with root could still rewrite without verify noticing.
//!
//! Files are hashed by two threads, so verify runs at about twice the speed of one SHA-256 core;
//! memory grows with the number of frames, never with file sizes.

use std::collections::BTreeMap;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};

use crate::config::{Compression, Config};
use crate::hash::Hash;
use crate::ledger::checkpoint::{self, Checkpoint};
use crate::ledger::merkle::{self, Frontier};
use crate::ledger::{self, Entry};
use crate::store::layout;
use crate::store::{self, Store};

/// What to check beyond the default.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Decompress every frame and check the raw content.
    pub deep: bool,
    /// Checkpoints kept outside the loghost (an auditor's copies).
    pub external: Vec<PathBuf>,
    /// The log's verifier key; default: derived from `[ledger] signing_key`.
    pub verifier_key: Option<String>,
    /// Show progress on stderr.
    pub progress: bool,
}

/// The outcome. `problems` empty means everything checked holds.
#[derive(Debug, Default)]
pub struct Report {
    pub problems: Vec<String>,
    pub notes: Vec<String>,
    pub entries: u64,
    pub frames: u64,
    pub files: u64,
    pub stored_bytes: u64,
    pub checkpoints: u64,
    /// Host-days whose files are in the archive tier.
    pub archived_days: u64,
    /// Those host-days, with their `archived` event's manifest SHA-256 and sequence number
    /// (checked against the archive target by the archive part's `check_manifests`).
    pub archived: BTreeMap<(String, String), (Option<Hash>, u64)>,
}

/// A frame as verify needs it.
#[derive(Debug, Clone)]
pub struct FrameRef {
    seq: u64,
    offset: u64,
    length: u64,
    sha256: Hash,
    raw_len: u64,
    raw_sha256: Hash,
}

/// A checkpoint to hold the tree against, and where it came from.
struct Claim {
    source: String,
    checkpoint: Checkpoint,
    /// A slot of the signed head (`state/head`), not a checkpoint file.
    head: bool,
}

/// The key checkpoints must be signed with: `--key`, else derived from the signing key.
pub fn verifier_key(config: &Config, opts: &Options) -> Result<String> {
    let vkey = match &opts.verifier_key {
        Some(k) => k.clone(),
        None => crate::keys::load_signing_key(&config.ledger.signing_key)
            .map_err(|e| {
                crate::config::SetupError(format!(
                    "{e:#}\n(an auditor without the signing key gives the log's verifier key \
                     with --key)"
                ))
            })?
            .verifier_key(),
    };
    signed_note::StandardVerifier::new(&vkey)
        .map_err(|e| crate::config::SetupError(format!("invalid verifier key {vkey:?}: {e}")))?;
    Ok(vkey)
}

/// Runs every check. Errors mean verify could not run (exit 2); findings are in the report.
pub fn run(config: &Config, opts: &Options) -> Result<Report> {
    let store = Store::open(&config.store)?;
    let vkey = verifier_key(config, opts)?;
    // A pull running meanwhile may append past the ledger's end; hold the lock when we can.
    let (lock, busy) = match store.lock("verify") {
        Ok(l) => (Some(l), false),
        Err(store::StoreError::Busy { .. }) => (None, true),
        Err(e) => return Err(e.into()),
    };
    let mut report = Report::default();
    if busy {
        report.notes.push(
            "the store is in use by another loghost process: bytes after the last frame of \
             each log's newest file (which it may be appending to right now) are notes, not \
             problems; anywhere else they are problems"
                .into(),
        );
    }

    // The anchors first: a checkpoint signed and anchored while verify runs is then in the
    // store's directory by the time it is listed, never "missing from the store".
    let anchor_reads: Vec<(String, Result<checkpoint::AnchorContents>)> = config
        .ledger
        .anchors
        .iter()
        .map(|a| (a.clone(), checkpoint::read_anchor(config, a, &vkey, None)))
        .collect();
    // The signed head, as it is before the ledger is read.
    let head_path = ledger::head::path(store.root());
    let head_before = match ledger::head::read_bytes(&head_path) {
        Ok(b) => b,
        Err(e) => {
            report.problems.push(format!(
                "{}: cannot be read: {e}",
                rel(store.root(), &head_path)
            ));
            Vec::new()
        }
    };
    let head = ledger::head::slots(&head_before, &vkey);

    // Every checkpoint the tree must be consistent with.
    let mut claims: Vec<Claim> = Vec::new();
    let ckpt_dir = checkpoint::dir(store.root());
    for size in checkpoint::sizes_in(&ckpt_dir)
        .with_context(|| format!("cannot list {}", ckpt_dir.display()))?
    {
        let path = ckpt_dir.join(checkpoint::file_name(size));
        let shown = rel(store.root(), &path);
        match std::fs::read(&path)
            .map_err(|e| e.to_string())
            .and_then(|b| checkpoint::open(&b, &vkey))
        {
            Ok(c) if c.size == size => claims.push(Claim {
                source: shown,
                checkpoint: c,
                head: false,
            }),
            Ok(c) => report.problems.push(format!(
                "{shown}: the file name says tree size {size} but the checkpoint says {}",
                c.size
            )),
            Err(e) => report
                .problems
                .push(format!("{shown}: not a valid checkpoint of this log: {e}")),
        }
    }
    report.checkpoints = claims.len() as u64;
    let mut anchored: Option<(u64, String)> = None;
    let store_sizes: Vec<u64> = claims.iter().map(|c| c.checkpoint.size).collect();
    for (anchor, result) in anchor_reads {
        let anchor = &anchor;
        // Every object in the anchor, not only the newest: junk must hide nothing, and every
        // checkpoint ever anchored must be a prefix of this ledger.
        match result {
            Ok(found) => {
                report.problems.extend(found.problems);
                if found.checkpoints.is_empty() && !store_sizes.is_empty() {
                    report.problems.push(format!(
                        "anchor {anchor} holds no checkpoint of this log while the store has {}: \
                        its copies were removed (an anchor added just now gets the newest \
                        checkpoint at the next round)",
                        store_sizes.len()
                    ));
                }
                for c in found.checkpoints {
                    if anchored.as_ref().is_none_or(|(s, _)| c.size > *s) {
                        anchored = Some((c.size, anchor.clone()));
                    }
                    if !store_sizes.contains(&c.size) {
                        report.problems.push(format!(
                            "anchor {anchor} holds checkpoint {} ({} entries) which is missing \
                            from the store's {}: store checkpoints were deleted",
                            checkpoint::file_name(c.size),
                            c.size,
                            layout::CHECKPOINTS_DIR
                        ));
                    }
                    claims.push(Claim {
                        source: format!(
                            "anchor {anchor} checkpoint {}",
                            checkpoint::file_name(c.size)
                        ),
                        checkpoint: c,
                        head: false,
                    });
                }
            }
            Err(e) => report
                .problems
                .push(format!("anchor {anchor} could not be read: {e:#}")),
        }
    }
    for path in &opts.external {
        let shown = path.display().to_string();
        let bytes = std::fs::read(path).with_context(|| format!("cannot read {shown}"))?;
        match checkpoint::open(&bytes, &vkey) {
            Ok(c) => {
                if anchored.as_ref().is_none_or(|(s, _)| c.size > *s) {
                    anchored = Some((c.size, shown.clone()));
                }
                claims.push(Claim {
                    source: shown,
                    checkpoint: c,
                    head: false,
                });
            }
            Err(e) => report.problems.push(format!(
                "{shown}: not a valid checkpoint of this log: {e} (a forged or foreign \
                 checkpoint)"
            )),
        }
    }
    // The signed head: what the loghost last wrote (two slots; the newer one may be ahead of
    // the ledger by the append it was written for, when that append was interrupted).
    for c in head.iter().flatten() {
        claims.push(Claim {
            source: format!(
                "{} (what the loghost last wrote)",
                rel(store.root(), &head_path)
            ),
            checkpoint: c.clone(),
            head: true,
        });
    }
    claims.sort_by_key(|c| c.checkpoint.size);

    // The ledger, line by line.
    let ledger_path = store.path(layout::LEDGER_FILE);
    let mut tree = Frontier::new();
    let mut next_claim = 0;
    let mut files: BTreeMap<String, Vec<FrameRef>> = BTreeMap::new();
    // Archived host-days, with the `archived` event's sequence number.
    let mut archived: BTreeMap<(String, String), (Option<Hash>, u64)> = BTreeMap::new();
    let mut last_time = String::new();
    let clock = crate::failpoint::fake_now().unwrap_or_else(jiff::Timestamp::now);
    // Where each log's last frame ended (host, source).
    let mut source_ends: BTreeMap<(String, String), u64> = BTreeMap::new();
    let mut expected_seq = 0u64;
    let mut line_no = 0u64;
    let check_claims = |tree: &Frontier, next_claim: &mut usize, report: &mut Report| {
        while let Some(c) = claims.get(*next_claim) {
            if c.checkpoint.size != tree.size() {
                break;
            }
            if c.checkpoint.root != tree.root() {
                report.problems.push(format!(
                    "{}: the ledger's first {} entries do not match this checkpoint: the ledger \
                     was rewritten or reordered since it was signed",
                    c.source, c.checkpoint.size
                ));
            }
            *next_claim += 1;
        }
    };
    check_claims(&tree, &mut next_claim, &mut report);
    // No ledger file yet (a store fresh from `init`) reads as an empty ledger.
    let source: Box<dyn Read> = match crate::store::open_regular(&ledger_path) {
        Ok(f) => Box::new(f),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Box::new(io::empty()),
        Err(e) => {
            return Err(e).with_context(|| format!("cannot open {}", ledger_path.display()));
        }
    };
    let mut reader = io::BufReader::with_capacity(1 << 20, source);
    let mut offset = 0u64;
    let mut line = Vec::with_capacity(1024);
    loop {
        line.clear();
        let n = io::BufRead::read_until(&mut reader, b'\n', &mut line)
            .with_context(|| format!("cannot read {}", ledger_path.display()))?;
        if n == 0 {
            break;
        }
        line_no += 1;
        let at = format!("{} line {line_no} (byte {offset})", layout::LEDGER_FILE);
        offset += n as u64;
        if line.last() != Some(&b'\n') {
            let msg = format!(
                "{at}: the ledger ends in an incomplete entry (an interrupted write; the next \
                 pull cuts it away)"
            );
            if busy {
                // Being written right now, most likely: the catch-up below reads the rest.
                report.notes.push(msg);
            } else {
                report.problems.push(msg);
            }
            break;
        }
        line.pop();
        tree.push(merkle::leaf_hash(&line));
        match ledger::parse_line(&line, expected_seq) {
            Ok(entry) => {
                if entry.time() < last_time.as_str() {
                    report.problems.push(format!(
                        "{at}: entry {} is dated {} but follows one dated {last_time}",
                        entry.seq(),
                        entry.time()
                    ));
                }
                if entry
                    .time()
                    .parse::<jiff::Timestamp>()
                    .is_ok_and(|t| t.duration_since(clock) > ledger::MAX_AHEAD)
                {
                    report.problems.push(format!(
                        "{at}: entry {} is dated {}, more than a day after this machine's clock \
                         ({clock}): a forged date (or a clock far behind)",
                        entry.seq(),
                        entry.time()
                    ));
                }
                last_time = entry.time().to_string();
                match entry {
                    Entry::Frame(f) => {
                        // A log's frames follow each other: a frame starts where the previous
                        // one of its source ended, or at 0 (a new generation). A gap means
                        // bytes that were never collected (a forged cursor, say).
                        let key = (f.host.clone(), f.source.clone());
                        if let Some(&prev) = source_ends.get(&key)
                            && f.start > prev
                        {
                            report.problems.push(format!(
                                "{at}: entry {} collects {} {} from byte {} but the previous \
                                 frame of it ended at {prev}: bytes {prev}..{} were skipped",
                                f.seq,
                                f.host,
                                crate::sanitize::Shown(&f.source),
                                f.start,
                                f.start
                            ));
                        }
                        source_ends.insert(key, f.end);
                        files
                            .entry(f.file.clone())
                            .or_default()
                            .push(FrameRef::from(&f));
                    }
                    Entry::Event(e) if e.event.restarts_generation() => {
                        if let (Some(h), Some(s)) = (e.host, e.source) {
                            source_ends.remove(&(h, s));
                        }
                    }
                    Entry::Event(e) if e.event == ledger::EventKind::Archived => {
                        if let (Some(h), Some(d)) = (e.host, e.source) {
                            // Retention archives a day once it is over, never sooner.
                            if e.time.get(..10).is_none_or(|t| t <= d.as_str()) {
                                report.problems.push(format!(
                                    "{at}: {h} {d} is recorded as archived at {}, before that day \
                                     was over",
                                    e.time
                                ));
                            }
                            if let Some((_, first)) = archived.get(&(h.clone(), d.clone())) {
                                report.problems.push(format!(
                                    "{at}: a second `archived` event for {h} {d} (the first is \
                                     entry {first}): a day is archived once"
                                ));
                            } else {
                                archived.insert((h, d), (e.sha256, e.seq));
                            }
                        }
                    }
                    Entry::Event(_) => {}
                }
            }
            Err(problem) => {
                report.problems.push(format!("{at}: {problem}"));
            }
        }
        // Resynchronise on the line's own number, so one dropped line is one problem.
        expected_seq = serde_json::from_slice::<serde_json::Value>(&line)
            .ok()
            .and_then(|v| v.get("seq").and_then(serde_json::Value::as_u64))
            .map_or(expected_seq + 1, |s| s.max(expected_seq) + 1);
        check_claims(&tree, &mut next_claim, &mut report);
    }
    report.entries = tree.size();
    let head_sizes: Vec<u64> = head.iter().flatten().map(|c| c.size).collect();
    let head_matches = head_sizes.contains(&tree.size());
    for c in &claims[next_claim..] {
        if c.head && head_matches {
            continue; // written for an append that was interrupted
        }
        report.problems.push(format!(
            "{}: it covers {} entries but the ledger has only {}: the ledger was cut short or \
             rolled back to an older state",
            c.source,
            c.checkpoint.size,
            tree.size()
        ));
    }
    // Entries beyond the head were not written by the loghost. The head is read again now:
    // loghost writes it before the lines it covers, so every line read above that loghost wrote
    // is covered by the head as it is now, even while it is appending (busy).
    let head_after = ledger::head::read_bytes(&head_path).unwrap_or_default();
    if !busy && head_after != head_before {
        report.problems.push(format!(
            "{} changed while verify read the ledger, and no loghost held the store: it answers \
             each reader differently",
            rel(store.root(), &head_path)
        ));
    }
    let head_now = ledger::head::slots(&head_after, &vkey);
    // While a loghost appends, the head may be ahead of what was read: read on (leaf hashes
    // only) to its sizes. A head slot within reach must match; the older slot always is within
    // reach (the head of an append is written only once the previous append is complete).
    let mut reached = tree.clone();
    let mut reached_roots: BTreeMap<u64, Hash> = BTreeMap::new();
    reached_roots.insert(tree.size(), tree.root());
    let want = head_now.iter().flatten().map(|c| c.size).max().unwrap_or(0);
    if busy && want > tree.size() {
        let mut pending = if line.last() == Some(&b'\n') {
            Vec::new()
        } else {
            line.clone()
        };
        while reached.size() < want {
            let n = io::BufRead::read_until(&mut reader, b'\n', &mut pending).unwrap_or(0);
            if n == 0 || pending.last() != Some(&b'\n') {
                break;
            }
            pending.pop();
            reached.push(merkle::leaf_hash(&pending));
            reached_roots.insert(reached.size(), reached.root());
            pending.clear();
        }
    }
    let newest_now = head_now.iter().flatten().map(|c| c.size).max();
    let within: Vec<&Checkpoint> = head_now
        .iter()
        .flatten()
        .filter(|c| c.size <= reached.size())
        .collect();
    let beyond = match newest_now {
        Some(n) if n < tree.size() => Some(format!(
            "entries {n}..{} are not covered by the loghost's signed head: they were not \
             written by it",
            tree.size()
        )),
        Some(n) if within.is_empty() => Some(format!(
            "the loghost's signed head covers {n} entries but the ledger holds {}: it was cut \
             short",
            reached.size()
        )),
        Some(_) => within
            .iter()
            .find(|c| reached_roots.get(&c.size).is_some_and(|r| *r != c.root))
            .map(|c| {
                format!(
                    "the ledger's first {} entries differ from what the loghost signed in its \
                     head",
                    c.size
                )
            }),
        None if tree.size() > 0 => Some(format!(
            "{} is missing or holds no valid signed head",
            rel(store.root(), &head_path)
        )),
        None => None,
    };
    if let Some(msg) = beyond {
        report.problems.push(msg);
    }
    match &anchored {
        Some((size, at)) if *size <= tree.size() => {
            let tail = tree.size() - size;
            if tail > 0 {
                report.notes.push(format!(
                    "{tail} entries are newer than the last anchored checkpoint ({size} entries, \
                     {at}): they are protected only by this machine"
                ));
            }
        }
        Some(_) => {}
        None => report.notes.push(format!(
            "no anchored checkpoint: all {} entries are protected only by this machine (set \
             [ledger] anchors, or give an auditor's copy with --checkpoint)",
            tree.size()
        )),
    }

    // The stored files.
    set_aside_archived(&store, &mut files, &archived, &mut report);
    report.frames = files.values().map(|v| v.len() as u64).sum();
    report.files = files.len() as u64;
    check_unknown_files(&store, &files, busy, &mut report)?;
    check_files(&store, files, opts, busy, &mut report)?;
    if busy {
        excuse_archived_meanwhile(&ledger_path, offset, expected_seq, &mut report);
    }
    report.archived = archived;
    drop(lock);
    Ok(report)
}

/// Files of archived host-days are in the archive tier, not here: their frames stay proven by the
/// ledger (`verify --archived` re-reads the copies). A day's frames must all precede its
/// `archived` event. A file still present (a removal interrupted by a crash) is checked as usual.
fn set_aside_archived(
    store: &Store,
    files: &mut BTreeMap<String, Vec<FrameRef>>,
    archived: &BTreeMap<(String, String), (Option<Hash>, u64)>,
    report: &mut Report,
) {
    if archived.is_empty() {
        return;
    }
    let mut set_aside = 0u64;
    files.retain(|file, frames| {
        let Some(p) = layout::parse_log_path(file) else {
            return true;
        };
        let Some(&(_, event)) = archived.get(&(p.host.to_string(), p.date.to_string())) else {
            return true;
        };
        for f in frames.iter().filter(|f| f.seq > event) {
            report.problems.push(format!(
                "{file}: entry {} adds to {} {} after that day was archived (entry {event})",
                f.seq, p.host, p.date
            ));
        }
        if store.path(file).exists() {
            return true;
        }
        set_aside += 1;
        false
    });
    report.archived_days = archived.len() as u64;
    report.notes.push(format!(
        "{} host-days ({set_aside} files) are in the archive tier: the ledger proves their \
         frames; `loghost verify --archived` re-reads the copies",
        archived.len()
    ));
}

fn rel(root: &Path, p: &Path) -> String {
    p.strip_prefix(root).unwrap_or(p).display().to_string()
}

/// Hashes every stored file against its frames, on two threads.
fn check_files(
    store: &Store,
    files: BTreeMap<String, Vec<FrameRef>>,
    opts: &Options,
    busy: bool,
    report: &mut Report,
) -> Result<()> {
    // While another process holds the store, only the newest file of each log (its current
    // day, or hour) can be being written: bytes after the last frame are excused there only.
    let open_now: std::collections::BTreeSet<String> = if busy {
        let yesterday = earliest_open_day();
        newest_of_each_log(files.keys())
            .into_iter()
            .filter(|f| layout::parse_log_path(f).is_some_and(|p| p.date >= yesterday.as_str()))
            .collect()
    } else {
        Default::default()
    };
    let total: u64 = files
        .values()
        .flat_map(|v| v.iter().map(|f| f.length))
        .sum();
    let done = AtomicU64::new(0);
    let queue = Mutex::new(files.into_iter());
    let found = Mutex::new((Vec::<String>::new(), Vec::<String>::new()));
    let finished = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| {
                loop {
                    let next = queue.lock().ok().and_then(|mut q| q.next());
                    let Some((file, frames)) = next else { break };
                    let mut problems = Vec::new();
                    let mut notes = Vec::new();
                    let may_grow = open_now.contains(&file);
                    check_file(
                        &store.path(&file),
                        &file,
                        frames,
                        opts.deep,
                        may_grow,
                        &done,
                        &mut problems,
                        &mut notes,
                    );
                    if let Ok(mut f) = found.lock() {
                        f.0.extend(problems);
                        f.1.extend(notes);
                    }
                }
            });
        }
        if opts.progress {
            s.spawn(|| {
                while !finished.load(Ordering::Relaxed) {
                    std::thread::sleep(std::time::Duration::from_millis(250));
                    let d = done.load(Ordering::Relaxed);
                    eprint!(
                        "\rverify: {:.1} / {:.1} GiB  ",
                        d as f64 / (1u64 << 30) as f64,
                        total as f64 / (1u64 << 30) as f64
                    );
                    if d >= total {
                        break;
                    }
                }
                eprint!("\r\x1b[K");
            });
        }
        // Workers end when the queue is empty; then stop the progress line.
        while queue.lock().map(|q| q.len() > 0).unwrap_or(false) {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        finished.store(true, Ordering::Relaxed);
    });
    report.stored_bytes = total;
    let (mut problems, notes) = found.into_inner().unwrap_or_default();
    problems.sort();
    report.problems.extend(problems);
    report.notes.extend(notes);
    Ok(())
}

/// The earliest day (`YYYY-MM-DD`, UTC) whose files a running loghost can still be writing:
/// yesterday, for a round that started before midnight.
fn earliest_open_day() -> String {
    let clock = crate::failpoint::fake_now().unwrap_or_else(jiff::Timestamp::now);
    let today = clock.to_zoned(jiff::tz::TimeZone::UTC).date();
    today.yesterday().unwrap_or(today).to_string()
}

/// The newest stored file of each log (by host and name, the latest day and hour): the only
/// ones a running loghost can be appending to (if their day is today or yesterday).
fn newest_of_each_log<'a>(
    files: impl Iterator<Item = &'a String>,
) -> std::collections::BTreeSet<String> {
    let mut newest: BTreeMap<(&str, &str), (&str, &str, &String)> = BTreeMap::new();
    for file in files {
        let Some(p) = layout::parse_log_path(file) else {
            continue;
        };
        let (hour, name) = match p.name.split_once('/') {
            Some((h, n)) => (h, n),
            None => ("", p.name),
        };
        let slot = newest.entry((p.host, name)).or_insert((p.date, hour, file));
        if (p.date, hour) > (slot.0, slot.1) {
            *slot = (p.date, hour, file);
        }
    }
    newest.into_values().map(|(_, _, f)| f.clone()).collect()
}

/// Checks one stored file: its frames tile it, and each hashes to its entry. `may_grow`: the
/// file may be being appended to right now (bytes after its last frame are then a note).
#[allow(clippy::too_many_arguments)]
fn check_file(
    path: &Path,
    file: &str,
    mut frames: Vec<FrameRef>,
    deep: bool,
    may_grow: bool,
    done: &AtomicU64,
    problems: &mut Vec<String>,
    notes: &mut Vec<String>,
) {
    frames.sort_by_key(|f| (f.offset, f.seq));
    let mut f = match crate::store::open_regular(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            problems.push(format!(
                "{file}: missing, but the ledger has {} frame(s) in it (entries {}): the file \
                 was deleted",
                frames.len(),
                frames
                    .iter()
                    .map(|f| f.seq.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
            return;
        }
        Err(e) => {
            problems.push(format!("{file}: cannot be read: {e}"));
            return;
        }
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let compression = store::compression_of(file).unwrap_or(Compression::Zstd);
    let mut pos = 0u64;
    let mut buf = vec![0u8; 1 << 20];
    for fr in &frames {
        if fr.offset != pos {
            if fr.offset > pos {
                problems.push(format!(
                    "{file}: bytes {pos}..{} are not covered by any ledger entry (before entry {})",
                    fr.offset, fr.seq
                ));
            } else {
                problems.push(format!(
                    "{file}: entry {} claims bytes {}..{} which overlap the previous frame",
                    fr.seq,
                    fr.offset,
                    fr.offset + fr.length
                ));
            }
            if std::io::Seek::seek(&mut f, io::SeekFrom::Start(fr.offset)).is_err() {
                return;
            }
        }
        if fr.offset + fr.length > len {
            problems.push(format!(
                "{file}: entry {} covers bytes {}..{} but the file has only {len} bytes: the \
                 file was truncated",
                fr.seq,
                fr.offset,
                fr.offset + fr.length
            ));
            return;
        }
        // Hash the stored bytes; with --deep, decompress them on the way.
        let mut hasher = Sha256::new();
        let mut stored = Vec::new();
        let mut left = fr.length;
        let mut ok = true;
        while left > 0 {
            let want = left.min(buf.len() as u64) as usize;
            if let Err(e) = f.read_exact(&mut buf[..want]) {
                problems.push(format!("{file}: cannot read bytes at {}: {e}", fr.offset));
                ok = false;
                break;
            }
            hasher.update(&buf[..want]);
            if deep {
                stored.extend_from_slice(&buf[..want]);
            }
            left -= want as u64;
            done.fetch_add(want as u64, Ordering::Relaxed);
        }
        if !ok {
            return;
        }
        let end = fr.offset + fr.length;
        if Hash::from_hasher(hasher) != fr.sha256 {
            problems.push(format!(
                "{file}: bytes {}..{end} do not match entry {} (the stored frame was altered)",
                fr.offset, fr.seq
            ));
        } else if deep {
            match raw_digest(compression, &stored) {
                Ok((n, h)) if n == fr.raw_len && h == fr.raw_sha256 => {}
                Ok((n, _)) => problems.push(format!(
                    "{file}: bytes {}..{end} decompress to {n} bytes whose hash differs from \
                     entry {} ({} bytes expected)",
                    fr.offset, fr.seq, fr.raw_len
                )),
                Err(e) => problems.push(format!(
                    "{file}: bytes {}..{end} (entry {}) do not decompress: {e}",
                    fr.offset, fr.seq
                )),
            }
        }
        pos = end;
    }
    if len > pos {
        let msg = format!(
            "{file}: bytes {pos}..{len} after the last frame are not covered by any ledger entry"
        );
        if may_grow {
            notes.push(format!(
                "{msg} (the running loghost may be writing them now: this is the log's newest file)"
            ));
        } else {
            problems.push(format!("{msg}: appended without being recorded"));
        }
    }
}

impl FrameRef {
    pub fn offset(&self) -> u64 {
        self.offset
    }

    pub fn length(&self) -> u64 {
        self.length
    }

    #[cfg(test)]
    pub fn for_tests(offset: u64, length: u64) -> FrameRef {
        FrameRef {
            seq: 0,
            offset,
            length,
            sha256: Hash::default(),
            raw_len: 0,
            raw_sha256: Hash::default(),
        }
    }
}

impl From<&crate::ledger::Frame> for FrameRef {
    fn from(f: &crate::ledger::Frame) -> FrameRef {
        FrameRef {
            seq: f.seq,
            offset: f.offset,
            length: f.length,
            sha256: f.sha256,
            raw_len: f.end - f.start,
            raw_sha256: f.raw_sha256,
        }
    }
}

/// Checks a copy of a stored file (at `path`, named `name` as in the ledger) against its frames:
/// they must tile it and each must hash to its entry (`deep`: decompress too). The problems found.
pub fn check_copy(path: &Path, name: &str, frames: Vec<FrameRef>, deep: bool) -> Vec<String> {
    let (mut problems, mut notes) = (Vec::new(), Vec::new());
    check_file(
        path,
        name,
        frames,
        deep,
        false,
        &AtomicU64::new(0),
        &mut problems,
        &mut notes,
    );
    problems
}

/// Decompresses a frame and returns the raw length and SHA-256, in bounded memory.
fn raw_digest(compression: Compression, stored: &[u8]) -> io::Result<(u64, Hash)> {
    struct HashWriter(Sha256, u64);
    impl io::Write for HashWriter {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.update(buf);
            self.1 += buf.len() as u64;
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    let mut w = HashWriter(Sha256::new(), 0);
    store::decompress(compression, stored, &mut w)?;
    Ok((w.1, Hash::from_hasher(w.0)))
}

/// Files under `logs/` the ledger does not know, and anything that is not a plain file or
/// directory there.
/// While a loghost holds the store, retention may archive a day (and remove its files) after
/// verify read the ledger: a file found missing whose day the ledger's newer entries record as
/// archived is a note, not a problem.
fn excuse_archived_meanwhile(ledger_path: &Path, offset: u64, seq: u64, report: &mut Report) {
    let mut later = std::collections::BTreeSet::new();
    let _ = ledger::scan(ledger_path, offset, seq, |_, _, entry| {
        if let Entry::Event(e) = entry
            && e.event == ledger::EventKind::Archived
            && let (Some(h), Some(d)) = (e.host, e.source)
        {
            later.insert((h, d));
        }
    });
    if later.is_empty() {
        return;
    }
    let problems = std::mem::take(&mut report.problems);
    for p in problems {
        let excused = p
            .split_once(": missing, but the ledger has")
            .and_then(|(file, _)| layout::parse_log_path(file))
            .is_some_and(|l| later.contains(&(l.host.to_string(), l.date.to_string())));
        if excused {
            report
                .notes
                .push(format!("{p} (archived while verify ran)"));
        } else {
            report.problems.push(p);
        }
    }
}

fn check_unknown_files(
    store: &Store,
    known: &BTreeMap<String, Vec<FrameRef>>,
    busy: bool,
    report: &mut Report,
) -> Result<()> {
    // While a loghost holds the store, a file of today (or yesterday, a round that started
    // before midnight) may hold its first frame before its ledger line is written.
    let yesterday = earliest_open_day();
    let mut stack = vec![store.path(layout::LOGS_DIR)];
    while let Some(dir) = stack.pop() {
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) => {
                report.problems.push(format!(
                    "{}: cannot be listed: {e}",
                    rel(store.root(), &dir)
                ));
                continue;
            }
        };
        for e in entries {
            let e = e.with_context(|| format!("cannot list {}", dir.display()))?;
            let path = e.path();
            let shown = rel(store.root(), &path);
            let t = e.file_type()?;
            if t.is_dir() {
                stack.push(path);
            } else if !t.is_file() {
                report.problems.push(format!(
                    "{shown}: not a regular file (a link or device in the store)"
                ));
            } else if !known.contains_key(&shown) {
                let len = e.metadata().map(|m| m.len()).unwrap_or(0);
                let msg = format!(
                    "{shown}: {len} bytes that no ledger entry covers (a file added to the store)"
                );
                let current =
                    layout::parse_log_path(&shown).is_some_and(|p| p.date >= yesterday.as_str());
                if busy && current {
                    report.notes.push(format!(
                        "{msg}; the running loghost may be writing its first frame now"
                    ));
                } else {
                    report.problems.push(msg);
                }
            }
        }
    }
    Ok(())
}

impl Report {
    /// Prints the findings; returns the exit status (0 holds, 1 tampering found).
    pub fn print(&self, out: &mut dyn io::Write) -> io::Result<i32> {
        writeln!(
            out,
            "ledger: {} entries, {} frames in {} files ({:.1} MiB stored), {} checkpoints",
            self.entries,
            self.frames,
            self.files,
            self.stored_bytes as f64 / (1u64 << 20) as f64,
            self.checkpoints
        )?;
        for p in &self.problems {
            writeln!(out, "PROBLEM: {p}")?;
        }
        for n in &self.notes {
            writeln!(out, "note: {n}")?;
        }
        if self.problems.is_empty() {
            writeln!(out, "verify: OK")?;
            Ok(0)
        } else {
            writeln!(out, "verify: FAILED, {} problem(s)", self.problems.len())?;
            Ok(1)
        }
    }
}
