//! **Part `search/`: reading the store for people.** `loghost grep` (every stored log of the
//! selected hosts, logs and times) and `loghost tail`. It reads the ledger, the store and the
//! journal export format, and writes only to its output: it may import `config`, `ledger`,
//! `store`, `journal`, `hash`, `sanitize`, `units` and `failpoint`; it must not import the
//! inputs (`pull`, `receive`), the service (`daemon`), `archive` or `cli`.
//!
//! # How a search runs
//! 1. **Plan** ([`plan`]): one pass over the ledger (from the first line committed after
//!    `--since`, found by bisection: ledger times never go back) collects the frames of the
//!    selected hosts and logs. Text frames committed before `--since` are left out: their lines
//!    were written before the loghost collected them, by the loghost's clock (the one clock it
//!    trusts), whatever a server's clock wrote in them. A journal frame whose entries all
//!    precede `--since`, or that follows in its file a frame whose last entry is after
//!    `--until` (each less or plus [`SKEW`]), is left out too. The frames are grouped into jobs, one
//!    per stored file (a log of one host-day), ordered by host, log, then day: a log's lines come
//!    out in collection order.
//! 2. **Search** ([`job`]): jobs run on every core; each reads its frames in ledger order,
//!    checks their stored bytes against the ledger (a mismatch is named, exit 2, the lines still
//!    searched), decompresses them in-process (bounded by the raw length the ledger records) and
//!    hands them, as one stream, to ripgrep's searcher (`grep-searcher`, `grep-regex`: literal
//!    prefilters, SIMD). With a time window, lines are kept by their own timestamp where one
//!    parses at their start ([`time::line_time`]), else by the timestamp of the line before,
//!    else by their frame's commit time; a pulled log is appended in time order, so decompression
//!    stops at the first line dated after `--until` (plus [`SKEW`]), and neither the rest of
//!    that log's day nor its later days are read.
//! 3. **Print**: one thread prints the jobs' output in job order as it arrives; a job's output
//!    is handed over in chunks through a bounded channel, so memory stays bounded whatever
//!    matches (cores × (a frame + a few chunks)).
//!
//! Journal entries are searched by their MESSAGE (as `journalctl --grep`) and printed in the
//! `short` form; `--field NAME=VALUE` selects entries by field and leaves text logs out.

pub mod job;
pub mod tail;
pub mod time;

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::{self, BufRead, BufReader, Seek, SeekFrom, Write};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;

use anyhow::{Context, Result, bail};
use grep_regex::{RegexMatcher, RegexMatcherBuilder};
use jiff::Timestamp;

use crate::config::Config;
use crate::hash::Hash;
use crate::ledger::{self, Via};
use crate::sanitize::Shown;
use crate::store::{Store, layout};

use self::time::Micros;

/// How far out of order a log's dated lines (or a journal's entries) may be: a frame is read on
/// until its lines state a time this far past `--until`.
pub const SKEW: Micros = 2 * 60 * 1_000_000;

/// Archived days for `grep --archived`, read from the archive tier. The command line supplies
/// it (this part does not import `archive`).
pub trait Archive: Sync {
    /// Opens a stored file of an archived host-day, once the day's copy was checked against the
    /// ledger (`manifest`: the SHA-256 its `archived` event records). `Err`: why the file is
    /// not searched.
    fn open_file(
        &self,
        host: &str,
        date: &str,
        manifest: Option<Hash>,
        file: &str,
    ) -> Result<Box<dyn RangeRead>, String>;
}

/// Byte ranges of a stored file kept elsewhere; read mostly in increasing order.
pub trait RangeRead: Send {
    /// Replaces `out` with the file's bytes `[offset, offset + len)`.
    fn read_range(&mut self, offset: u64, len: u64, out: &mut Vec<u8>) -> io::Result<()>;
}

/// What to search and how to print it.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Regular expressions (or fixed strings with `fixed_strings`); a line matching any is selected.
    pub patterns: Vec<String>,
    pub fixed_strings: bool,
    pub ignore_case: bool,
    pub invert: bool,
    pub word: bool,
    /// Print per host and log the number of selected lines.
    pub count: bool,
    /// Print the host and log of each log with a selected line.
    pub files_with_matches: bool,
    /// Stop a log (of one day) after this many selected lines.
    pub max_count: Option<u64>,
    pub before: usize,
    pub after: usize,
    /// Host globs; all hosts when empty.
    pub hosts: Vec<String>,
    /// Logs as `cat` takes them (remote path, stored name, file name, `journal`); all when empty.
    pub logs: Vec<String>,
    pub since: Option<Timestamp>,
    pub until: Option<Timestamp>,
    /// Journal field filters, `NAME=VALUE`: an entry must have each.
    pub fields: Vec<(String, Vec<u8>)>,
    pub json: bool,
    pub color: bool,
    /// Output is a terminal: control characters from log content are neutralised.
    pub terminal: bool,
    /// Worker threads; 0: one per core.
    pub threads: usize,
}

/// How a search ended.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    /// Lines (journal entries) selected.
    pub selected: u64,
    /// Frames that could not be read or did not match the ledger, and missing files.
    pub problems: u64,
}

impl Outcome {
    /// grep's exit status: 0 something selected, 1 nothing, 2 a problem (even with matches).
    pub fn exit_code(&self) -> i32 {
        if self.problems > 0 {
            2
        } else if self.selected > 0 {
            0
        } else {
            1
        }
    }
}

/// One stored frame a job reads.
#[derive(Debug, Clone)]
pub struct FrameRef {
    pub seq: u64,
    /// Commit time.
    pub time: Micros,
    pub offset: u64,
    pub length: u64,
    /// Where the frame's raw bytes start in their source (the next frame of a pulled log
    /// starts where this one ends unless the log was rotated: its lines may then join).
    pub start: u64,
    /// The raw length the ledger records: decompression stops beyond it.
    pub raw_len: u64,
    pub sha256: Hash,
}

/// One stored file to search: a log of one host-day (or hour).
#[derive(Debug, Clone)]
pub struct Job {
    pub host: String,
    /// The name printed: the stored name (`auth.log`, `nginx/access.log`), `journal`, or the
    /// received stream's name.
    pub log: String,
    /// Store-relative path.
    pub file: String,
    pub date: String,
    pub journal: bool,
    pub frames: Vec<FrameRef>,
    /// Index of the (host, log) the job belongs to; jobs of a group are consecutive.
    pub group: usize,
    /// The day was moved to the archive tier (its file is expected to be missing).
    pub archived: bool,
    /// The SHA-256 of the archived day's manifest, as its `archived` event records it.
    pub manifest: Option<Hash>,
    /// Pulled bytes appended to a file, so in the order their lines were written: a line dated
    /// after `--until` means the ones after it are too (not so for snapshots, which hold the
    /// whole file again, nor for received messages, which a sender may deliver from a backlog).
    pub in_time_order: bool,
}

impl Job {
    /// A job for the stored `file` a ledger line `v` names, with no frame yet.
    fn of(v: &LineView<'_>, host: &str, via: Via, source: &str, file: &str) -> Result<Job> {
        let Some(path) = layout::parse_log_path(file) else {
            bail!(
                "ledger entry {} names {:?}, not a stored log path; run `loghost verify`",
                v.seq,
                Shown(file).to_string()
            );
        };
        Ok(Job {
            host: host.to_string(),
            log: log_name(via, source),
            file: file.to_string(),
            date: path.date.to_string(),
            journal: via == Via::Journal,
            frames: Vec::new(),
            group: 0,
            archived: false,
            manifest: None,
            in_time_order: true,
        })
    }
}

/// The jobs of a search, in output order.
#[derive(Debug, Default)]
pub struct Plan {
    pub jobs: Vec<Job>,
    /// `(host, log)` of each group.
    pub groups: Vec<(String, String)>,
    /// The ledger's length up to its last whole line read: where a follower goes on.
    pub ledger_end: u64,
}

/// The name a frame's log is printed under.
fn log_name(via: Via, source: &str) -> String {
    match via {
        Via::Journal => ledger::JOURNAL_SOURCE.to_string(),
        Via::Tls => source.to_string(),
        Via::Pull | Via::Snapshot => layout::stored_name(source),
    }
}

/// Whether a `--log` argument names this log.
fn log_matches(wanted: &str, via: Via, source: &str, name: &str) -> bool {
    wanted == source
        || wanted == name
        || (via != Via::Journal && source.rsplit('/').next() == Some(wanted))
}

fn ledger_micros(time: &str) -> Option<Micros> {
    time.parse::<Timestamp>().ok().map(|t| t.as_microsecond())
}

/// The offset of the first ledger line committed at or after `time` ([`ledger::format_time`]
/// form, which sorts as the times do), by bisection over the file; lines never go back in time.
fn offset_of_time(path: &Path, time: &str) -> io::Result<u64> {
    let mut file = match crate::store::open_regular(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    let len = file.metadata()?.len();
    // The start of the first line at or after `pos`, and whether that line is before `time`.
    let mut probe = |pos: u64| -> io::Result<(u64, bool)> {
        let start = if pos == 0 {
            0
        } else {
            file.seek(SeekFrom::Start(pos - 1))?;
            let mut r = BufReader::with_capacity(4096, &mut file);
            let mut skip = Vec::new();
            let n = read_ledger_line(&mut r, &mut skip)?;
            if skip.last() != Some(&b'\n') {
                return Ok((len, false));
            }
            pos - 1 + n as u64
        };
        file.seek(SeekFrom::Start(start))?;
        let mut r = BufReader::with_capacity(4096, &mut file);
        let mut line = Vec::new();
        read_ledger_line(&mut r, &mut line)?;
        if line.last() != Some(&b'\n') {
            return Ok((start, false));
        }
        let before = memchr::memmem::find(&line, b"\"time\":\"")
            .map(|i| &line[i + 8..])
            .and_then(|rest| rest.get(..time.len()))
            .is_some_and(|t| t < time.as_bytes());
        Ok((start, before))
    };
    let (mut lo, mut hi) = (0u64, len);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        let (_, before) = probe(mid)?;
        if before {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    Ok(probe(lo)?.0)
}

/// The longest ledger line read: loghost writes lines of a few hundred bytes (a journal frame's,
/// an event's with a long remote path: a few KiB).
const MAX_LEDGER_LINE: usize = 1 << 20;

/// Appends the rest of a ledger line (through its newline) to `buf`, refusing a line longer
/// than [`MAX_LEDGER_LINE`] (a damaged or altered ledger must not take the memory); returns the
/// bytes read, 0 at the end.
pub(crate) fn read_ledger_line(r: &mut impl BufRead, buf: &mut Vec<u8>) -> io::Result<usize> {
    let room = (MAX_LEDGER_LINE + 1).saturating_sub(buf.len());
    let n = io::Read::take(&mut *r, room as u64).read_until(b'\n', buf)?;
    if buf.len() > MAX_LEDGER_LINE && buf.last() != Some(&b'\n') {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "a ledger line longer than {MAX_LEDGER_LINE} bytes: not written by loghost; run \
                 `loghost verify`"
            ),
        ));
    }
    Ok(n)
}

/// What a search reads of a ledger line: the fields it needs, borrowed (a month's ledger is
/// millions of lines; `ledger::Entry` checks and owns everything, for writers and `verify`).
#[derive(serde::Deserialize)]
struct LineView<'a> {
    #[serde(borrow)]
    kind: Cow<'a, str>,
    seq: u64,
    #[serde(borrow)]
    time: Cow<'a, str>,
    #[serde(default, borrow)]
    event: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    host: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    source: Option<Cow<'a, str>>,
    #[serde(default)]
    via: Option<Via>,
    #[serde(default)]
    start: Option<u64>,
    #[serde(default)]
    end: Option<u64>,
    #[serde(default, borrow)]
    file: Option<Cow<'a, str>>,
    #[serde(default)]
    offset: Option<u64>,
    #[serde(default)]
    length: Option<u64>,
    #[serde(default, borrow)]
    sha256: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    journal: Option<JournalView<'a>>,
    #[serde(default, borrow)]
    detail: Option<Cow<'a, str>>,
}

impl<'a> LineView<'a> {
    fn parse(line: &'a [u8], ledger: &Path) -> Result<LineView<'a>> {
        serde_json::from_slice(line).with_context(|| {
            format!(
                "{} holds a line that is not a ledger entry; run `loghost verify`",
                ledger.display()
            )
        })
    }

    /// A frame line's stored bytes.
    fn frame_ref(&self) -> Result<FrameRef> {
        let Some(time) = ledger_micros(&self.time) else {
            bail!(
                "ledger entry {} has an unreadable time {:?}; run `loghost verify`",
                self.seq,
                self.time
            );
        };
        let Some(sha256) = self.sha256.as_deref().and_then(|h| h.parse::<Hash>().ok()) else {
            bail!(
                "ledger entry {} has no readable sha256; run `loghost verify`",
                self.seq
            );
        };
        let start = self.start.unwrap_or(0);
        Ok(FrameRef {
            seq: self.seq,
            time,
            offset: self.offset.unwrap_or(0),
            length: self.length.unwrap_or(0),
            start,
            raw_len: self.end.unwrap_or(0).saturating_sub(start),
            sha256,
        })
    }
}

#[derive(serde::Deserialize)]
struct JournalView<'a> {
    #[serde(borrow)]
    file_id: Cow<'a, str>,
    last_realtime: u64,
}

/// Which hosts and logs a search or tail takes, and what it saw (to name a mistake).
pub(crate) struct Select<'o> {
    opts: &'o Options,
    hosts: Option<globset::GlobSet>,
    seen_hosts: BTreeSet<String>,
    seen_logs: BTreeSet<String>,
    wanted_log_seen: Vec<bool>,
    /// Per host, per source: chosen.
    chosen: HashMap<String, HashMap<String, bool>>,
}

impl<'o> Select<'o> {
    pub(crate) fn new(opts: &'o Options) -> Result<Select<'o>> {
        let hosts = if opts.hosts.is_empty() {
            None
        } else {
            let mut b = globset::GlobSetBuilder::new();
            for h in &opts.hosts {
                b.add(globset::Glob::new(h).with_context(|| {
                    format!("invalid --host pattern {:?}", Shown(h).to_string())
                })?);
            }
            Some(b.build().context("invalid --host patterns")?)
        };
        Ok(Select {
            opts,
            hosts,
            seen_hosts: BTreeSet::new(),
            seen_logs: BTreeSet::new(),
            wanted_log_seen: vec![false; opts.logs.len()],
            chosen: HashMap::new(),
        })
    }

    /// Whether the frames of `source` on `host` are taken.
    pub(crate) fn choose(&mut self, host: &str, via: Via, source: &str) -> bool {
        if !self.seen_hosts.contains(host) {
            self.seen_hosts.insert(host.to_string());
        }
        if self.hosts.as_ref().is_some_and(|g| !g.is_match(host)) {
            return false;
        }
        if let Some(c) = self.chosen.get(host).and_then(|m| m.get(source)) {
            return *c;
        }
        let name = log_name(via, source);
        let mut c = self.opts.logs.is_empty();
        for (i, w) in self.opts.logs.iter().enumerate() {
            if log_matches(w, via, source, &name) {
                self.wanted_log_seen[i] = true;
                c = true;
            }
        }
        if !self.opts.fields.is_empty() && via != Via::Journal {
            c = false; // text lines have no fields
        }
        self.seen_logs.insert(name);
        self.chosen
            .entry(host.to_string())
            .or_default()
            .insert(source.to_string(), c);
        c
    }

    /// Whether a selected host's configuration collects the log `wanted` names (it may have
    /// nothing stored yet).
    fn configured(&self, config: &Config, wanted: &str) -> bool {
        config
            .hosts
            .iter()
            .filter(|h| self.hosts.as_ref().is_none_or(|g| g.is_match(&h.name)))
            .any(|h| {
                let file = |p: &String| log_matches(wanted, Via::Pull, p, &log_name(Via::Pull, p));
                h.paths.iter().chain(&h.snapshot).any(file)
                    || (wanted == ledger::JOURNAL_SOURCE && !h.journal_dirs.is_empty())
                    || (wanted == ledger::TLS_SOURCE && h.tls_name.is_some())
            })
    }

    /// Names the user gave that match nothing are mistakes, not empty results. `whole`: the
    /// whole ledger was read (else only a log or glob never seen cannot be told from one that
    /// was quiet since the start of the reading).
    fn check_names(&self, config: &Config, whole: bool) -> Result<()> {
        let opts = self.opts;
        for h in &opts.hosts {
            let is_glob = h.contains(['*', '?', '[', '{']);
            if !is_glob && !self.seen_hosts.contains(h) && config.host(h).is_none() {
                bail!(
                    "no host named {:?} in {} or in the store",
                    Shown(h).to_string(),
                    config.source.display()
                );
            }
        }
        if !whole {
            return Ok(());
        }
        if let Some(g) = &self.hosts
            && !self.seen_hosts.iter().any(|h| g.is_match(h))
            && !config.hosts.iter().any(|h| g.is_match(&h.name))
        {
            bail!(
                "--host {} matches no host",
                opts.hosts
                    .iter()
                    .map(|h| Shown(h).to_string())
                    .collect::<Vec<_>>()
                    .join(" --host ")
            );
        }
        for (i, w) in opts.logs.iter().enumerate() {
            if !self.wanted_log_seen[i] && !self.configured(config, w) {
                bail!(
                    "no stored log is named {:?}{}; stored logs: {}",
                    Shown(w).to_string(),
                    if opts.hosts.is_empty() {
                        String::new()
                    } else {
                        " on the selected hosts".into()
                    },
                    self.seen_logs
                        .iter()
                        .map(|l| Shown(l).to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                );
            }
        }
        Ok(())
    }
}

/// Reads the ledger and chooses the frames to search.
pub fn plan(config: &Config, store: &Store, opts: &Options) -> Result<Plan> {
    let mut select = Select::new(opts)?;
    let since = opts.since.map(|t| t.as_microsecond());
    let until = opts.until.map(|t| t.as_microsecond());
    let ledger_path = store.path(layout::LEDGER_FILE);
    let from = match since {
        Some(s) => {
            let t = Timestamp::from_microsecond(s - SKEW).unwrap_or(Timestamp::MIN);
            offset_of_time(&ledger_path, &ledger::format_time(t))
                .with_context(|| format!("cannot read {}", ledger_path.display()))?
        }
        None => 0,
    };

    let mut archived: HashMap<(String, String), Option<Hash>> = HashMap::new();
    let mut files: HashMap<String, Job> = HashMap::new();
    // Per journal file id: the last entry time of its previous frame.
    let mut journal_last: HashMap<String, u64> = HashMap::new();

    let mut file = match crate::store::open_regular(&ledger_path) {
        Ok(f) => Some(f),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => return Err(e).with_context(|| format!("cannot open {}", ledger_path.display())),
    };
    if let Some(f) = file.as_mut() {
        f.seek(SeekFrom::Start(from))?;
    }
    let mut reader = file.map(|f| BufReader::with_capacity(1 << 20, f));
    let mut line = Vec::with_capacity(1024);
    let mut ledger_end = from;
    while let Some(r) = reader.as_mut() {
        line.clear();
        let n = read_ledger_line(r, &mut line)
            .with_context(|| format!("cannot read {}", ledger_path.display()))?;
        if n == 0 || line.last() != Some(&b'\n') {
            break; // the end, or a torn last line being written
        }
        ledger_end += n as u64;
        let v = LineView::parse(&line[..n - 1], &ledger_path)?;
        let (Some(host), Some(source)) = (v.host.as_deref(), v.source.as_deref()) else {
            continue;
        };
        if v.kind != "frame" {
            if v.event.as_deref() == Some("archived") {
                let sha = v.sha256.as_deref().and_then(|h| h.parse::<Hash>().ok());
                archived.insert((host.to_string(), source.to_string()), sha);
            }
            continue;
        }
        let (Some(via), Some(file)) = (v.via, v.file.as_deref()) else {
            bail!(
                "ledger entry {} is a frame without its file; run `loghost verify`",
                v.seq
            );
        };
        if !select.choose(host, via, source) {
            continue;
        }
        let frame = v.frame_ref()?;
        if let Some(mark) = &v.journal {
            let prev_last = journal_last.insert(mark.file_id.to_string(), mark.last_realtime);
            let last = mark.last_realtime as Micros;
            if since.is_some_and(|s| last < s - SKEW)
                || until.is_some_and(|u| prev_last.is_some_and(|p| p as Micros > u + SKEW))
            {
                continue;
            }
        } else if since.is_some_and(|s| frame.time < s) {
            continue;
        }
        if !files.contains_key(file) {
            files.insert(file.to_string(), Job::of(&v, host, via, source, file)?);
        }
        let Some(job) = files.get_mut(file) else {
            continue;
        };
        // A snapshot is the whole file again; a syslog sender may deliver a backlog late.
        job.in_time_order &= via == Via::Pull;
        job.frames.push(frame);
    }
    select.check_names(config, from == 0)?;

    let mut jobs: Vec<Job> = files.into_values().collect();
    jobs.sort_by(|a, b| {
        (&a.host, &a.log, &a.date, &a.file).cmp(&(&b.host, &b.log, &b.date, &b.file))
    });
    let mut groups: Vec<(String, String)> = Vec::new();
    for j in &mut jobs {
        if groups.last() != Some(&(j.host.clone(), j.log.clone())) {
            groups.push((j.host.clone(), j.log.clone()));
        }
        j.group = groups.len() - 1;
        if let Some(sha) = archived.get(&(j.host.clone(), j.date.clone())) {
            j.archived = true;
            j.manifest = *sha;
        }
    }
    Ok(Plan {
        jobs,
        groups,
        ledger_end,
    })
}

/// Builds the matcher: ripgrep's, with its literal optimisations.
pub fn matcher(opts: &Options) -> Result<RegexMatcher> {
    if opts.patterns.is_empty() {
        bail!("no pattern: give PATTERN or -e PATTERN");
    }
    let mut b = RegexMatcherBuilder::new();
    b.case_insensitive(opts.ignore_case)
        .word(opts.word)
        .line_terminator(Some(b'\n'))
        // Bounded compilation on whatever pattern is typed.
        .size_limit(64 << 20)
        .dfa_size_limit(64 << 20);
    let m = if opts.fixed_strings {
        b.build_literals(&opts.patterns)
    } else {
        b.build_many(&opts.patterns)
    };
    m.map_err(|e| anyhow::anyhow!("invalid pattern: {e}"))
}

/// What a job hands to the printer.
pub enum Msg {
    /// Formatted output, in order.
    Out(Vec<u8>),
    /// A frame or file that could not be searched, or that does not match the ledger (exit 2).
    Problem(String),
    /// Something to say that is not a problem (a day in the archive tier).
    Note(String),
    /// The job ended; how many lines it selected.
    Done(u64),
}

/// Runs a search; writes results to `out`, problems and notes to `err`. With `archive`, the
/// files of archived days are read from the archive tier (else they are named in a note).
pub fn grep(
    config: &Config,
    opts: &Options,
    archive: Option<&dyn Archive>,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<Outcome> {
    let matcher = matcher(opts)?;
    if let (Some(s), Some(u)) = (opts.since, opts.until)
        && s >= u
    {
        bail!("--since {s} is not before --until {u}: nothing can match");
    }
    let store = Store::open(&config.store)?;
    let plan = plan(config, &store, opts)?;
    let threads = if opts.threads == 0 {
        std::thread::available_parallelism().map_or(2, |n| n.get())
    } else {
        opts.threads
    };
    let ctx = job::Ctx {
        store: &store,
        archive,
        opts,
        matcher: &matcher,
        found: plan.groups.iter().map(|_| AtomicBool::new(false)).collect(),
        past_until: plan.groups.iter().map(|_| AtomicBool::new(false)).collect(),
        cancel: AtomicBool::new(false),
    };
    let mut senders = Vec::with_capacity(plan.jobs.len());
    let mut receivers = Vec::with_capacity(plan.jobs.len());
    for _ in &plan.jobs {
        let (tx, rx) = mpsc::sync_channel::<Msg>(8);
        senders.push(std::sync::Mutex::new(Some(tx)));
        receivers.push(rx);
    }
    let next = AtomicUsize::new(0);
    let mut outcome = Outcome::default();
    let printed = std::thread::scope(|scope| -> io::Result<()> {
        for _ in 0..threads.min(plan.jobs.len().max(1)) {
            scope.spawn(|| {
                let mut scratch = job::Scratch::new(&ctx);
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= plan.jobs.len() || ctx.cancel.load(Ordering::Relaxed) {
                        break;
                    }
                    let tx = senders[i].lock().ok().and_then(|mut s| s.take());
                    if let Some(tx) = tx {
                        job::run(&ctx, &plan.jobs[i], &tx, &mut scratch);
                    }
                }
            });
        }
        let result = print(&plan, opts, receivers, out, err, &mut outcome);
        if result.is_err() {
            ctx.cancel.store(true, Ordering::Relaxed);
        }
        result
    });
    printed?;
    Ok(outcome)
}

/// Prints the jobs' output in job order; per group, the count (`-c`) or name (`-l`).
fn print(
    plan: &Plan,
    opts: &Options,
    receivers: Vec<mpsc::Receiver<Msg>>,
    out: &mut dyn Write,
    err: &mut dyn Write,
    outcome: &mut Outcome,
) -> io::Result<()> {
    let context = !opts.json && (opts.before > 0 || opts.after > 0);
    let mut printed_any = false;
    let mut group_count: BTreeMap<usize, u64> = BTreeMap::new();
    let mut told_archived: BTreeSet<(String, String)> = BTreeSet::new();
    let total = receivers.len();
    for (i, rx) in receivers.into_iter().enumerate() {
        let job = &plan.jobs[i];
        let mut started = false;
        loop {
            match rx.recv() {
                Ok(Msg::Out(bytes)) => {
                    if !started && context && printed_any {
                        out.write_all(b"--\n")?;
                    }
                    started = true;
                    printed_any = true;
                    out.write_all(&bytes)?;
                }
                Ok(Msg::Problem(p)) => {
                    out.flush()?;
                    writeln!(err, "loghost: error: {p}")?;
                    outcome.problems += 1;
                }
                Ok(Msg::Note(n)) => {
                    if told_archived.insert((job.host.clone(), job.date.clone())) {
                        out.flush()?;
                        writeln!(err, "loghost: note: {n}")?;
                    }
                }
                Ok(Msg::Done(n)) => {
                    outcome.selected += n;
                    *group_count.entry(job.group).or_default() += n;
                    break;
                }
                Err(_) => {
                    out.flush()?;
                    writeln!(
                        err,
                        "loghost: error: the search of {} stopped early",
                        Shown(&job.file)
                    )?;
                    outcome.problems += 1;
                    break;
                }
            }
        }
        let group_ends = i + 1 == total || plan.jobs[i + 1].group != job.group;
        if group_ends && (opts.count || opts.files_with_matches) {
            let n = group_count.get(&job.group).copied().unwrap_or(0);
            let (host, log) = &plan.groups[job.group];
            job::print_group(out, opts, host, log, n)?;
        }
    }
    out.flush()
}
