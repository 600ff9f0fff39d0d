//! One search job: a stored file's selected frames, read, checked against the ledger,
//! decompressed, filtered by time, searched and formatted. See the part's module doc.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::SyncSender;

use grep_matcher::{LineTerminator, Matcher};
use grep_regex::RegexMatcher;
use grep_searcher::{
    BinaryDetection, MmapChoice, Searcher, SearcherBuilder, Sink, SinkContext, SinkContextKind,
    SinkMatch,
};

use crate::config::Compression;
use crate::hash::Hash;
use crate::sanitize::{Shown, escape_for_terminal};
use crate::search::time::{Micros, line_time};
use crate::search::{Archive, FrameRef, Job, Msg, Options, RangeRead, SKEW};
use crate::store::{self, Store};

/// Output is handed to the printer in chunks of about this size.
const CHUNK: usize = 256 << 10;
/// How much of a frame is decompressed at a time when its lines are filtered by time.
const PEEK: u64 = 64 << 10;
/// The longest line searched (a line spans frames; a server can write one without end).
pub(super) const MAX_LINE: usize = 64 << 20;

const COLOR_NAME: &[u8] = b"\x1b[35m";
const COLOR_SEP: &[u8] = b"\x1b[36m";
const COLOR_MATCH: &[u8] = b"\x1b[1;31m";
const COLOR_END: &[u8] = b"\x1b[0m";

/// What every job shares.
pub struct Ctx<'a> {
    pub store: &'a Store,
    /// The archive tier, when archived days are searched too.
    pub archive: Option<&'a dyn Archive>,
    pub opts: &'a Options,
    pub matcher: &'a RegexMatcher,
    /// Per group: a line was found (`-l` stops searching the group's other jobs).
    pub found: Vec<AtomicBool>,
    /// Per group: a job found the log's lines past `--until`; its later days are not read.
    pub past_until: Vec<AtomicBool>,
    /// The printer is gone (closed pipe): stop.
    pub cancel: AtomicBool,
}

impl Ctx<'_> {
    fn window(&self) -> Option<(Micros, Micros)> {
        let o = self.opts;
        if o.since.is_none() && o.until.is_none() {
            return None;
        }
        Some((
            o.since.map_or(Micros::MIN, |t| t.as_microsecond()),
            o.until.map_or(Micros::MAX, |t| t.as_microsecond()),
        ))
    }

    fn max_matches(&self) -> Option<u64> {
        if self.opts.files_with_matches {
            Some(1)
        } else {
            self.opts.max_count
        }
    }
}

/// Runs one job, sending its output, problems and end to `tx`.
pub fn run(ctx: &Ctx<'_>, job: &Job, tx: &SyncSender<Msg>, scratch: &mut Scratch) {
    let selected = if (ctx.opts.files_with_matches && ctx.found[job.group].load(Ordering::Relaxed))
        || (job.in_time_order && ctx.past_until[job.group].load(Ordering::Relaxed))
    {
        0
    } else {
        match open(ctx, job, tx) {
            None => 0,
            Some(file) if job.journal => journal(ctx, job, file, tx, scratch),
            Some(file) => text(ctx, job, file, tx, scratch),
        }
    };
    if selected > 0 {
        ctx.found[job.group].store(true, Ordering::Relaxed);
    }
    let _ = tx.send(Msg::Done(selected));
}

fn open(ctx: &Ctx<'_>, job: &Job, tx: &SyncSender<Msg>) -> Option<Source> {
    let path = ctx.store.path(&job.file);
    match crate::store::open_regular(&path) {
        Ok(f) => Some(Source::Local(f)),
        Err(e) if e.kind() == io::ErrorKind::NotFound && job.archived => match ctx.archive {
            None => {
                let _ = tx.send(Msg::Note(format!(
                    "{} {} is in the archive tier; not searched (--archived searches it)",
                    Shown(&job.host),
                    job.date
                )));
                None
            }
            Some(a) => match a.open_file(&job.host, &job.date, job.manifest, &job.file) {
                Ok(r) => Some(Source::Archived(r)),
                Err(why) => {
                    let _ = tx.send(Msg::Problem(format!(
                        "{} {}: the archived copy of {} is not searched: {why}",
                        Shown(&job.host),
                        job.date,
                        Shown(&job.file)
                    )));
                    None
                }
            },
        },
        Err(e) => {
            let _ = tx.send(Msg::Problem(format!(
                "cannot open {} ({e}): {} frame(s) of {} {} not searched; run `loghost verify`",
                path.display(),
                job.frames.len(),
                Shown(&job.host),
                Shown(&job.log)
            )));
            None
        }
    }
}

/// Where a job's stored bytes come from.
pub(super) enum Source {
    /// The store's file.
    Local(File),
    /// The archive tier's copy of the file (`--archived`).
    Archived(Box<dyn RangeRead>),
}

/// Reads a frame's stored bytes and checks them against the ledger. `Err` is the problem to
/// report; the frame is then skipped.
pub(super) struct FrameReader {
    pub(super) file: Source,
    pub(super) compression: Compression,
    pub(super) stored: Vec<u8>,
}

impl FrameReader {
    pub(super) fn read_stored(
        &mut self,
        job: &Job,
        f: &FrameRef,
    ) -> Result<Option<String>, String> {
        self.stored.clear();
        if f.raw_len > MAX_RAW {
            return Err(format!(
                "entry {} of {} records {} bytes of raw content, more than loghost puts in a \
                 frame: altered; not searched (run `loghost verify`)",
                f.seq,
                Shown(&job.file),
                f.raw_len
            ));
        }
        let read = match &mut self.file {
            Source::Local(file) => file.seek(SeekFrom::Start(f.offset)).and_then(|_| {
                file.take(f.length)
                    .read_to_end(&mut self.stored)
                    .map(|_| ())
            }),
            Source::Archived(r) => r.read_range(f.offset, f.length, &mut self.stored),
        };
        if let Err(e) = read {
            return Err(format!(
                "cannot read entry {} of {} ({e}); not searched",
                f.seq,
                Shown(&job.file)
            ));
        }
        if self.stored.len() as u64 != f.length {
            return Err(format!(
                "{} ends before entry {}'s bytes {}..{}: damaged or cut; not searched (run \
                 `loghost verify`)",
                Shown(&job.file),
                f.seq,
                f.offset,
                f.offset.saturating_add(f.length)
            ));
        }
        if Hash::of(&self.stored) != f.sha256 {
            return Ok(Some(format!(
                "{} bytes {}..{} do not match ledger entry {}: the archive was altered or \
                 damaged (run `loghost verify`); its lines were searched as they are",
                Shown(&job.file),
                f.offset,
                f.offset.saturating_add(f.length),
                f.seq
            )));
        }
        Ok(None)
    }

    /// Decompresses the stored bytes read last into `out`, at most the raw length the ledger
    /// records: in one call with `bulk` (zstd's fastest path) when that length may be allocated.
    pub(super) fn decompress(
        &self,
        job: &Job,
        f: &FrameRef,
        bulk: Option<&mut zstd::bulk::Decompressor<'static>>,
        out: &mut Vec<u8>,
    ) -> Result<(), String> {
        out.clear();
        if self.compression == Compression::Zstd
            && f.raw_len <= MAX_BULK
            && let Some(bulk) = bulk
        {
            out.reserve_exact(f.raw_len as usize);
            return match bulk.decompress_to_buffer(&self.stored[..], out) {
                Ok(_) => Ok(()),
                Err(e) if e.to_string().contains("too small") => Err(too_long(job, f)),
                Err(e) => Err(decompress_error(job, f, e)),
            };
        }
        decoder(self.compression, &self.stored[..])
            .and_then(|d| d.take(f.raw_len.saturating_add(1)).read_to_end(out))
            .map_err(|e| decompress_error(job, f, e))?;
        if out.len() as u64 > f.raw_len {
            return Err(too_long(job, f));
        }
        Ok(())
    }
}

/// A decompressor of stored bytes (`stored` holds one frame).
fn decoder<'r, R: io::BufRead + 'r>(
    compression: Compression,
    stored: R,
) -> io::Result<Box<dyn Read + 'r>> {
    Ok(match compression {
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::with_buffer(stored)?),
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(stored)),
    })
}

/// A journal frame whose bytes are not the export format: the problem to report, with what
/// was not done with it (`searched`, `shown`).
pub(super) fn not_export(
    job: &Job,
    f: &FrameRef,
    e: &crate::journal::export::ParseError,
    not_done: &str,
) -> String {
    format!(
        "entry {} of {} is not in the journal export format ({} at byte {}); not {not_done} \
         (run `loghost verify`)",
        f.seq,
        Shown(&job.file),
        e.why,
        e.at
    )
}

fn decompress_error(job: &Job, f: &FrameRef, e: impl std::fmt::Display) -> String {
    format!(
        "cannot decompress entry {} of {} ({e}): damaged; not searched (run `loghost verify`)",
        f.seq,
        Shown(&job.file)
    )
}

fn too_long(job: &Job, f: &FrameRef) -> String {
    format!(
        "entry {} of {} decompresses to more than the {} bytes the ledger records: altered; \
         not searched (run `loghost verify`)",
        f.seq,
        Shown(&job.file),
        f.raw_len
    )
}

/// A text job's frames as one stream of bytes for the searcher. Without a time window a frame
/// is decompressed into `buf` in one call (one larger than [`MAX_BULK`] is streamed); with one
/// it is decompressed piecewise, its lines filtered, until they pass `--until`.
struct Stream<'a> {
    ctx: &'a Ctx<'a>,
    job: &'a Job,
    tx: &'a SyncSender<Msg>,
    reader: FrameReader,
    window: Option<(Micros, Micros)>,
    next: usize,
    current: Current,
    buf: Vec<u8>,
    pos: usize,
    produced: u64,
    /// `(stream offset, frame index)` of each frame's first byte in the stream.
    marks: Rc<RefCell<Vec<(u64, usize)>>>,
    last_included: Option<usize>,
    ends_in_newline: bool,
    /// A newline owed before the next frame (frames that are not neighbours never join).
    owe_newline: bool,
    /// The time of the last dated line (undated lines take it).
    last_time: Option<Micros>,
    /// One zstd decompression context for the job's frames.
    bulk: Option<zstd::bulk::Decompressor<'static>>,
}

/// The largest raw length of a frame that is read at all: loghost writes frames of at most 16
/// MiB (pulls), 8 MiB (received syslog) and a few MiB (journal batches); a ledger that records
/// more was altered, and the length bounds the memory a (forged) frame can make a search take.
pub(super) const MAX_RAW: u64 = 256 << 20;

/// Frames up to this raw length are decompressed in one call (the pull's frames are at most
/// 16 MiB; a larger length in a ledger is not trusted with an allocation).
const MAX_BULK: u64 = 64 << 20;

/// The frame being handed over.
enum Current {
    None,
    /// `buf[pos..]`.
    Buffered,
    /// Decompressing frame `index`; `n` raw bytes so far.
    Streaming {
        decoder: Box<dyn Read>,
        index: usize,
        n: u64,
    },
}

impl Stream<'_> {
    fn problem(&self, p: String) {
        let _ = self.tx.send(Msg::Problem(p));
    }

    /// Starts frame `i`: checks its stored bytes, then streams it or loads it into `buf`.
    fn start(&mut self, i: usize) {
        let f = &self.job.frames[i];
        match self.reader.read_stored(self.job, f) {
            Ok(None) => {}
            Ok(Some(p)) => self.problem(p),
            Err(p) => return self.problem(p),
        }
        if self.last_included.is_some_and(|l| l + 1 != i) {
            self.owe_newline = true;
        }
        if self.window.is_none() && f.raw_len <= MAX_BULK {
            self.pos = 0;
            match self
                .reader
                .decompress(self.job, f, self.bulk.as_mut(), &mut self.buf)
            {
                Ok(()) => {
                    self.include(i);
                    self.current = Current::Buffered;
                }
                Err(p) => {
                    self.buf.clear();
                    self.problem(p);
                }
            }
            return;
        }
        let stored = io::Cursor::new(std::mem::take(&mut self.reader.stored));
        let decoder = match decoder(self.reader.compression, stored) {
            Ok(d) => d,
            Err(e) => return self.problem(decompress_error(self.job, f, e)),
        };
        if self.window.is_none() {
            self.include(i);
            self.current = Current::Streaming {
                decoder,
                index: i,
                n: 0,
            };
        } else if self.load(i, decoder) {
            self.current = Current::Buffered;
        } else {
            self.owe_newline = false;
        }
    }

    /// Decompresses frame `i`, keeping the lines in the window; false when none is. Lines are
    /// appended in time order: decompression stops at the first dated line after `--until`
    /// (and [`SKEW`]), and the job's later frames are then not read.
    fn load(&mut self, i: usize, mut decoder: Box<dyn Read>) -> bool {
        let f = &self.job.frames[i];
        let mut raw = std::mem::take(&mut self.buf);
        raw.clear();
        let (since, until) = self.window.unwrap_or((Micros::MIN, Micros::MAX));
        let cutoff = until.saturating_add(SKEW);
        // (Only logs in time order are cut short: see `Job::in_time_order`.)
        let mut kept = 0;
        let mut at = 0;
        let mut past_until = false;
        let mut eof = false;
        let result = loop {
            if let Err(e) = (&mut decoder)
                .take(PEEK)
                .read_to_end(&mut raw)
                .map(|n| eof = n == 0)
            {
                break Err(decompress_error(self.job, f, e));
            }
            if raw.len() as u64 > f.raw_len {
                break Err(too_long(self.job, f));
            }
            // The complete lines decompressed so far (all of them at the end).
            while at < raw.len() {
                let end = match memchr::memchr(b'\n', &raw[at..]) {
                    Some(k) => at + k + 1,
                    None if eof => raw.len(),
                    None => break,
                };
                let own = line_time(&raw[at..end], f.time);
                if self.job.in_time_order && own.is_some_and(|t| t > cutoff) {
                    past_until = true;
                    break;
                }
                let t = match own {
                    Some(t) => {
                        self.last_time = Some(t);
                        t
                    }
                    None => self.last_time.unwrap_or(f.time),
                };
                if since <= t && t < until {
                    raw.copy_within(at..end, kept);
                    kept += end - at;
                }
                at = end;
            }
            if eof || past_until {
                break Ok(());
            }
        };
        raw.truncate(kept);
        self.buf = raw;
        self.pos = 0;
        if let Err(p) = result {
            self.problem(p);
            self.buf.clear();
            return false;
        }
        if past_until {
            self.next = self.job.frames.len();
            self.ctx.past_until[self.job.group].store(true, Ordering::Relaxed);
        }
        if self.buf.is_empty() {
            return false;
        }
        self.include(i);
        true
    }

    /// Frame `i`'s bytes are next in the stream (after a newline owed).
    fn include(&mut self, i: usize) {
        self.last_included = Some(i);
        self.marks
            .borrow_mut()
            .push((self.produced + u64::from(self.newline_owed()), i));
    }

    /// A newline is owed and the stream does not end with one.
    fn newline_owed(&self) -> bool {
        self.owe_newline && !self.ends_in_newline
    }

    fn handed(&mut self, bytes: &[u8]) {
        if let Some(&b) = bytes.last() {
            self.ends_in_newline = b == b'\n';
        }
        self.produced += bytes.len() as u64;
    }
}

impl Read for Stream<'_> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if out.is_empty() {
            return Ok(0);
        }
        loop {
            if self.owe_newline && !matches!(self.current, Current::None) {
                let owed = self.newline_owed();
                self.owe_newline = false;
                if owed {
                    out[0] = b'\n';
                    self.handed(b"\n");
                    return Ok(1);
                }
            }
            match &mut self.current {
                Current::None => {
                    if self.next == self.job.frames.len() || self.ctx.cancel.load(Ordering::Relaxed)
                    {
                        return Ok(0);
                    }
                    let i = self.next;
                    self.next += 1;
                    self.start(i);
                }
                Current::Buffered => {
                    let n = out.len().min(self.buf.len() - self.pos);
                    if n == 0 {
                        self.current = Current::None;
                        continue;
                    }
                    out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
                    self.pos += n;
                    self.handed(&out[..n]);
                    return Ok(n);
                }
                Current::Streaming { decoder, index, n } => {
                    let f = &self.job.frames[*index];
                    // One byte beyond the ledger's length tells a frame that is too long.
                    let room = (f.raw_len.saturating_add(1) - *n).min(out.len() as u64) as usize;
                    match decoder.read(&mut out[..room]) {
                        Ok(0) => self.current = Current::None,
                        Ok(k) => {
                            let k = if *n + k as u64 > f.raw_len {
                                let keep = (f.raw_len - *n) as usize;
                                self.problem(too_long(self.job, f));
                                self.current = Current::None;
                                self.owe_newline = true;
                                keep
                            } else {
                                *n += k as u64;
                                k
                            };
                            if k > 0 {
                                self.handed(&out[..k]);
                                return Ok(k);
                            }
                        }
                        Err(e) => {
                            let p = decompress_error(self.job, f, e);
                            self.problem(p);
                            self.current = Current::None;
                            self.owe_newline = true;
                        }
                    }
                }
            }
        }
    }
}

/// Where a printed line comes from.
pub(super) struct At<'a> {
    pub host: &'a str,
    pub log: &'a str,
    pub file: &'a str,
    pub frame: &'a FrameRef,
}

/// What a printed line is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    /// A selected line (`host log: line`).
    Match,
    /// A context line (`host log- line`).
    Context,
    /// A line `tail` shows.
    Line,
}

/// Formats one line (given without its newline) into `out`: `host log: line` (`-` for context;
/// the bare line without `prefix`) or a JSON object (type, host, log, file, seq, time, line,
/// line_base64 when the line is not UTF-8). `spans`: the parts to colour as matches.
#[allow(clippy::too_many_arguments)]
pub(super) fn format_line(
    out: &mut Vec<u8>,
    scratch: &mut Vec<u8>,
    o: &Options,
    at: &At<'_>,
    line: &[u8],
    kind: Kind,
    prefix: bool,
    spans: &[(usize, usize)],
) {
    if o.json {
        let text = String::from_utf8_lossy(line);
        let mut v = serde_json::json!({
            "type": match kind {
                Kind::Match => "match",
                Kind::Context => "context",
                Kind::Line => "line",
            },
            "host": at.host,
            "log": at.log,
            "file": at.file,
            "seq": at.frame.seq,
            "time": jiff::Timestamp::from_microsecond(at.frame.time)
                .map(crate::ledger::format_time)
                .unwrap_or_default(),
            "line": text,
        });
        if std::str::from_utf8(line).is_err() {
            use base64::Engine;
            v["line_base64"] = base64::engine::general_purpose::STANDARD
                .encode(line)
                .into();
        }
        // Serializing a Value cannot fail.
        let json = serde_json::to_string(&v).unwrap_or_default();
        if o.terminal {
            json_for_terminal(&json, out);
        } else {
            out.extend_from_slice(json.as_bytes());
        }
        out.push(b'\n');
        return;
    }
    let mut content = |out: &mut Vec<u8>, bytes: &[u8]| {
        if o.terminal {
            scratch.clear();
            escape_for_terminal(bytes, scratch);
            out.extend_from_slice(scratch);
        } else {
            out.extend_from_slice(bytes);
        }
    };
    if prefix {
        if o.color {
            out.extend_from_slice(COLOR_NAME);
        }
        out.extend_from_slice(Shown(at.host).to_string().as_bytes());
        out.push(b' ');
        out.extend_from_slice(Shown(at.log).to_string().as_bytes());
        if o.color {
            out.extend_from_slice(COLOR_END);
            out.extend_from_slice(COLOR_SEP);
        }
        out.push(if kind == Kind::Context { b'-' } else { b':' });
        if o.color {
            out.extend_from_slice(COLOR_END);
        }
        out.push(b' ');
    }
    let mut at_byte = 0;
    for &(s, e) in spans {
        content(out, &line[at_byte..s]);
        out.extend_from_slice(COLOR_MATCH);
        content(out, &line[s..e]);
        out.extend_from_slice(COLOR_END);
        at_byte = e;
    }
    content(out, &line[at_byte..]);
    out.push(b'\n');
}

/// Writes JSON text with the characters a terminal acts on that JSON leaves raw (DEL, C1
/// controls, bidirectional marks and overrides; they occur only inside strings) as `\uXXXX`
/// escapes: the same JSON value, harmless to show.
pub(super) fn json_for_terminal(json: &str, out: &mut Vec<u8>) {
    for c in json.chars() {
        let u = c as u32;
        if u == 0x7f
            || (0x80..=0x9f).contains(&u)
            || (0x200e..=0x200f).contains(&u)
            || (0x202a..=0x202e).contains(&u)
            || (0x2066..=0x2069).contains(&u)
        {
            out.extend_from_slice(format!("\\u{u:04x}").as_bytes());
        } else {
            let mut b = [0u8; 4];
            out.extend_from_slice(c.encode_utf8(&mut b).as_bytes());
        }
    }
}

/// Formats selected and context lines.
struct Printer<'a> {
    ctx: &'a Ctx<'a>,
    job: &'a Job,
    tx: &'a SyncSender<Msg>,
    out: Vec<u8>,
    scratch: Vec<u8>,
    selected: u64,
    /// Only counting (`-c`, `-l`).
    silent: bool,
    gone: bool,
}

impl<'a> Printer<'a> {
    fn new(ctx: &'a Ctx<'a>, job: &'a Job, tx: &'a SyncSender<Msg>) -> Printer<'a> {
        Printer {
            ctx,
            job,
            tx,
            out: Vec::new(),
            scratch: Vec::new(),
            selected: 0,
            silent: ctx.opts.count || ctx.opts.files_with_matches,
            gone: false,
        }
    }

    /// Writes one line; `highlight`: colour its matches. False when the printer is gone.
    fn line(&mut self, line: &[u8], selected: bool, frame: &FrameRef, highlight: bool) -> bool {
        if selected {
            self.selected += 1;
        }
        if self.silent {
            return true;
        }
        let line = line.strip_suffix(b"\n").unwrap_or(line);
        let o = self.ctx.opts;
        let mut spans = Vec::new();
        if highlight && o.color && !o.json {
            let _ = self.ctx.matcher.find_iter(line, |m| {
                if m.start() < m.end() {
                    spans.push((m.start(), m.end()));
                }
                true
            });
        }
        let at = At {
            host: &self.job.host,
            log: &self.job.log,
            file: &self.job.file,
            frame,
        };
        let kind = if selected { Kind::Match } else { Kind::Context };
        format_line(
            &mut self.out,
            &mut self.scratch,
            o,
            &at,
            line,
            kind,
            true,
            &spans,
        );
        self.flush_if_full()
    }

    fn separator(&mut self) -> bool {
        if !self.silent && !self.ctx.opts.json {
            self.out.extend_from_slice(b"--\n");
        }
        self.flush_if_full()
    }

    fn flush_if_full(&mut self) -> bool {
        if self.out.len() >= CHUNK {
            self.flush();
        }
        !self.gone
    }

    fn flush(&mut self) {
        if !self.out.is_empty() && !self.gone {
            let chunk = std::mem::take(&mut self.out);
            if self.tx.send(Msg::Out(chunk)).is_err() {
                self.gone = true;
            }
        }
    }
}

struct TextSink<'a> {
    printer: Printer<'a>,
    marks: Rc<RefCell<Vec<(u64, usize)>>>,
}

impl TextSink<'_> {
    fn frame_at(&self, offset: u64) -> FrameRef {
        let marks = self.marks.borrow();
        let k = marks
            .partition_point(|(o, _)| *o <= offset)
            .saturating_sub(1);
        let i = marks.get(k).map_or(0, |m| m.1);
        self.printer.job.frames[i].clone()
    }
}

impl Sink for TextSink<'_> {
    type Error = io::Error;

    fn matched(&mut self, _: &Searcher, m: &SinkMatch<'_>) -> Result<bool, io::Error> {
        let mut offset = m.absolute_byte_offset();
        let highlight = !self.printer.ctx.opts.invert;
        for line in m.lines() {
            let frame = self.frame_at(offset);
            if !self.printer.line(line, true, &frame, highlight) {
                return Ok(false);
            }
            offset += line.len() as u64;
        }
        Ok(true)
    }

    fn context(&mut self, _: &Searcher, c: &SinkContext<'_>) -> Result<bool, io::Error> {
        if matches!(c.kind(), SinkContextKind::Other) {
            return Ok(true);
        }
        let frame = self.frame_at(c.absolute_byte_offset());
        Ok(self.printer.line(c.bytes(), false, &frame, false))
    }

    fn context_break(&mut self, _: &Searcher) -> Result<bool, io::Error> {
        Ok(self.printer.separator())
    }
}

/// What a worker keeps from one job to the next: buffers (fresh pages cost more than the
/// search of a small frame), the searcher and a zstd context.
pub struct Scratch {
    searcher: Searcher,
    stored: Vec<u8>,
    buf: Vec<u8>,
    bulk: Option<zstd::bulk::Decompressor<'static>>,
}

impl Scratch {
    pub fn new(ctx: &Ctx<'_>) -> Scratch {
        let o = ctx.opts;
        let silent = o.count || o.files_with_matches;
        Scratch {
            searcher: SearcherBuilder::new()
                .line_terminator(LineTerminator::byte(b'\n'))
                .invert_match(o.invert)
                .before_context(if silent { 0 } else { o.before })
                .after_context(if silent { 0 } else { o.after })
                .max_matches(ctx.max_matches())
                .binary_detection(BinaryDetection::none())
                .bom_sniffing(false)
                .memory_map(MmapChoice::never())
                .heap_limit(Some(MAX_LINE))
                .build(),
            stored: Vec::new(),
            buf: Vec::new(),
            bulk: zstd::bulk::Decompressor::new().ok(),
        }
    }
}

fn text(
    ctx: &Ctx<'_>,
    job: &Job,
    file: Source,
    tx: &SyncSender<Msg>,
    scratch: &mut Scratch,
) -> u64 {
    let marks = Rc::new(RefCell::new(Vec::new()));
    let mut stream = Stream {
        ctx,
        job,
        tx,
        reader: FrameReader {
            file,
            compression: store::compression_of(&job.file).unwrap_or_default(),
            stored: std::mem::take(&mut scratch.stored),
        },
        window: ctx.window(),
        next: 0,
        current: Current::None,
        buf: std::mem::take(&mut scratch.buf),
        pos: 0,
        produced: 0,
        marks: marks.clone(),
        last_included: None,
        ends_in_newline: true,
        owe_newline: false,
        last_time: None,
        bulk: scratch.bulk.take(),
    };
    let mut sink = TextSink {
        printer: Printer::new(ctx, job, tx),
        marks,
    };
    let result = scratch
        .searcher
        .search_reader(ctx.matcher, &mut stream, &mut sink);
    scratch.stored = std::mem::take(&mut stream.reader.stored);
    scratch.buf = std::mem::take(&mut stream.buf);
    scratch.bulk = stream.bulk.take();
    if let Err(e) = result {
        let _ = tx.send(Msg::Problem(format!(
            "the search of {} stopped: {e}{}",
            Shown(&job.file),
            if e.to_string().contains("limit") {
                " (a line longer than 64 MiB)"
            } else {
                ""
            }
        )));
    }
    sink.printer.flush();
    sink.printer.selected
}

/// A journal job: entries are selected by their MESSAGE (and `--field`), printed `short`.
fn journal(
    ctx: &Ctx<'_>,
    job: &Job,
    file: Source,
    tx: &SyncSender<Msg>,
    scratch: &mut Scratch,
) -> u64 {
    let o = ctx.opts;
    let mut reader = FrameReader {
        file,
        compression: store::compression_of(&job.file).unwrap_or_default(),
        stored: std::mem::take(&mut scratch.stored),
    };
    let mut printer = Printer::new(ctx, job, tx);
    let window = ctx.window();
    let max = ctx.max_matches();
    let (before, after) = if printer.silent {
        (0, 0)
    } else {
        (o.before, o.after)
    };
    let context = before > 0 || after > 0;
    let done = |p: &Printer<'_>| max.is_some_and(|m| p.selected >= m);
    let mut queue: VecDeque<(Vec<u8>, FrameRef)> = VecDeque::new();
    let mut after_left = 0usize;
    let mut last_printed: Option<u64> = None;
    let mut index = 0u64;
    let mut raw = std::mem::take(&mut scratch.buf);
    'frames: for f in &job.frames {
        if ctx.cancel.load(Ordering::Relaxed) {
            break;
        }
        match reader.read_stored(job, f) {
            Ok(None) => {}
            Ok(Some(p)) => {
                let _ = tx.send(Msg::Problem(p));
            }
            Err(p) => {
                let _ = tx.send(Msg::Problem(p));
                continue;
            }
        }
        if let Err(p) = reader.decompress(job, f, scratch.bulk.as_mut(), &mut raw) {
            let _ = tx.send(Msg::Problem(p));
            continue;
        }
        let entries = match crate::journal::export::parse(&raw) {
            Ok(e) => e,
            Err(e) => {
                let _ = tx.send(Msg::Problem(not_export(job, f, &e, "searched")));
                continue;
            }
        };
        for e in &entries {
            let t = e.realtime().map_or(f.time, |us| us as Micros);
            if window.is_some_and(|(s, u)| t < s || t >= u) {
                continue;
            }
            if !o
                .fields
                .iter()
                .all(|(name, value)| e.fields.iter().any(|(n, v)| n == name && v == value))
            {
                continue;
            }
            let message = e.get("MESSAGE").unwrap_or(b"");
            let selected = ctx.matcher.is_match(message).unwrap_or(false) != o.invert;
            let line = crate::journal::export::short(e);
            index += 1;
            if selected {
                if context
                    && last_printed.is_some_and(|l| l + 1 < index - queue.len() as u64)
                    && !printer.separator()
                {
                    break 'frames;
                }
                for (l, fr) in std::mem::take(&mut queue) {
                    if !printer.line(&l, false, &fr, false) {
                        break 'frames;
                    }
                }
                if !printer.line(&line, true, f, !o.invert) {
                    break 'frames;
                }
                last_printed = Some(index);
                after_left = after;
                if done(&printer) && after_left == 0 {
                    break 'frames;
                }
            } else if after_left > 0 {
                after_left -= 1;
                if !printer.line(&line, false, f, false) {
                    break 'frames;
                }
                last_printed = Some(index);
                if done(&printer) && after_left == 0 {
                    break 'frames;
                }
            } else if before > 0 && !done(&printer) {
                queue.push_back((line, f.clone()));
                if queue.len() > before {
                    queue.pop_front();
                }
            } else if done(&printer) {
                break 'frames;
            }
        }
    }
    scratch.stored = reader.stored;
    scratch.buf = raw;
    printer.flush();
    printer.selected
}

/// Prints a group's line for `-c` (`host log: N`) or `-l` (`host log`, when N > 0).
pub fn print_group(
    out: &mut dyn Write,
    opts: &Options,
    host: &str,
    log: &str,
    n: u64,
) -> io::Result<()> {
    if opts.files_with_matches && n == 0 {
        return Ok(());
    }
    if opts.json {
        let v = if opts.count {
            serde_json::json!({"host": host, "log": log, "count": n})
        } else {
            serde_json::json!({"host": host, "log": log})
        };
        let mut line = Vec::new();
        json_for_terminal(&v.to_string(), &mut line);
        line.push(b'\n');
        return out.write_all(&line);
    }
    let name = format!("{} {}", Shown(host), Shown(log));
    let (start, end) = if opts.color {
        (COLOR_NAME, COLOR_END)
    } else {
        (&b""[..], &b""[..])
    };
    out.write_all(start)?;
    out.write_all(name.as_bytes())?;
    out.write_all(end)?;
    if opts.count {
        writeln!(out, ": {n}")
    } else {
        out.write_all(b"\n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame() -> FrameRef {
        FrameRef {
            seq: 7,
            time: 0,
            offset: 0,
            length: 0,
            start: 0,
            raw_len: 0,
            sha256: Hash::of(b""),
        }
    }

    /// Host and log names come from the ledger, which an intruder can append to: on a terminal
    /// they are shown escaped like log content, in text and in JSON.
    #[test]
    fn names_and_content_reach_a_terminal_escaped() {
        let f = frame();
        let at = At {
            host: "web1\x1b]0;pwned\x07",
            log: "auth\x1b[2K.log",
            file: "logs/web1/2026-12-01/auth.log.zst",
            frame: &f,
        };
        let mut o = Options {
            terminal: true,
            ..Options::default()
        };
        let mut out = Vec::new();
        format_line(
            &mut out,
            &mut Vec::new(),
            &o,
            &at,
            b"a\x1b[31mb",
            Kind::Match,
            true,
            &[],
        );
        assert!(!out.contains(&0x1b) && !out.contains(&0x07), "{out:?}");
        o.json = true;
        out.clear();
        let line = "x\u{9b}31m \u{202e}y\u{7f}".as_bytes();
        format_line(
            &mut out,
            &mut Vec::new(),
            &o,
            &at,
            line,
            Kind::Match,
            true,
            &[],
        );
        let text = String::from_utf8(out.clone()).expect("utf-8");
        assert!(
            !text.contains('\u{9b}') && !text.contains('\u{202e}') && !text.contains('\u{7f}'),
            "{text:?}"
        );
        let v: serde_json::Value = serde_json::from_str(&text).expect("still JSON");
        assert_eq!(v["line"], "x\u{9b}31m \u{202e}y\u{7f}", "the same value");
        assert_eq!(v["host"], at.host);
    }
}
