//! `loghost tail`: the last lines of the selected logs, then (`--follow`) each new line as its
//! frame commits, pulled or received, until interrupted.
//!
//! The last lines are read from the end of each log's frames backwards, only as many frames as
//! hold them. Following reads the ledger on from the last whole line the first part read (no
//! line is shown twice or missed between them), every [`TailOptions::poll`]; a frame's stored
//! bytes are checked against its ledger entry before its lines are shown, as `grep` does. A line
//! a pull cut in two (the server was writing it) is shown whole once its rest is committed. A
//! rotation of a followed log (its bytes start again from a new file) and the ledger's alarms
//! and notices for it (rewritten, truncated, replaced, gone, unsettled, copytruncate's lost
//! lines) are told as notes where they happen among the lines.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufReader, Seek, SeekFrom, Write};
use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::config::Config;
use crate::ledger::Via;
use crate::sanitize::Shown;
use crate::search::job::{
    At, FrameReader, Kind, MAX_LINE, Source, format_line, json_for_terminal, not_export,
};
use crate::search::{
    FrameRef, Job, LineView, Options, Outcome, Select, log_name, plan, read_ledger_line,
};
use crate::store::{self, Store, layout};

/// What to show.
#[derive(Debug, Clone)]
pub struct TailOptions {
    /// Hosts and logs (`hosts`, `logs`) and how to print (`json`, `color`, `terminal`).
    pub select: Options,
    /// Lines (journal entries) shown per log before following.
    pub lines: usize,
    pub follow: bool,
    /// `host log: ` before each line (several logs may be shown).
    pub prefix: bool,
    /// How often the ledger is looked at when following.
    pub poll: Duration,
}

/// A log being shown: where its last frame ended and the start of a line its last frame cut.
#[derive(Default)]
struct LogState {
    /// The source byte where its last frame ended.
    end: Option<u64>,
    /// The start of a line not yet ended (a pull committed what the server had written).
    partial: Vec<u8>,
    /// The frame the partial line came from.
    partial_frame: Option<FrameRef>,
    file: String,
}

/// Shows the last lines, then follows (with `follow`) until the output is closed.
pub fn tail(
    config: &Config,
    t: &TailOptions,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<Outcome> {
    let store = Store::open(&config.store)?;
    let plan = plan(config, &store, &t.select)?;
    let mut shower = Shower {
        t,
        store: &store,
        out,
        err,
        outcome: Outcome::default(),
        logs: HashMap::new(),
        readers: HashMap::new(),
        buf: Vec::new(),
        scratch: Vec::new(),
        raw: Vec::new(),
    };
    for (g, (host, log)) in plan.groups.iter().enumerate() {
        let jobs: Vec<&Job> = plan.jobs.iter().filter(|j| j.group == g).collect();
        shower.last_lines(host, log, &jobs)?;
    }
    shower.out.flush()?;
    if t.follow {
        shower.follow(plan.ledger_end)?;
    }
    Ok(shower.outcome)
}

struct Shower<'a> {
    t: &'a TailOptions,
    store: &'a Store,
    out: &'a mut dyn Write,
    err: &'a mut dyn Write,
    outcome: Outcome,
    /// Per (host, log name).
    logs: HashMap<(String, String), LogState>,
    /// Open stored files (today's and yesterday's of each followed log at most).
    readers: HashMap<String, FrameReader>,
    buf: Vec<u8>,
    scratch: Vec<u8>,
    raw: Vec<u8>,
}

impl Shower<'_> {
    fn problem(&mut self, p: &str) -> io::Result<()> {
        self.out.flush()?;
        writeln!(self.err, "loghost: error: {p}")?;
        self.outcome.problems += 1;
        Ok(())
    }

    fn note(&mut self, host: &str, log: &str, what: &str, seq: u64, time: &str) -> io::Result<()> {
        if self.t.select.json {
            let v = serde_json::json!({
                "type": "note", "host": host, "log": log, "seq": seq, "time": time, "note": what,
            });
            let mut line = Vec::new();
            json_for_terminal(&v.to_string(), &mut line);
            line.push(b'\n');
            return self.out.write_all(&line);
        }
        self.out.flush()?;
        writeln!(
            self.err,
            "loghost: note: {} {}: {}",
            Shown(host),
            Shown(log),
            Shown(what)
        )
    }

    /// Reads and checks a frame; its raw bytes are then in `self.raw`. False: not readable (told).
    fn load(&mut self, job: &Job, f: &FrameRef) -> Result<bool> {
        if !self.readers.contains_key(&job.file) {
            if self.readers.len() >= 64 {
                self.readers.clear();
            }
            let path = self.store.path(&job.file);
            match store::open_regular(&path) {
                Ok(file) => {
                    let compression = store::compression_of(&job.file).unwrap_or_default();
                    self.readers.insert(
                        job.file.clone(),
                        FrameReader {
                            file: Source::Local(file),
                            compression,
                            stored: Vec::new(),
                        },
                    );
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound && job.archived => {
                    return Ok(false);
                }
                Err(e) => {
                    self.problem(&format!(
                        "cannot open {} ({e}): entry {} of {} {} not shown; run `loghost verify`",
                        path.display(),
                        f.seq,
                        Shown(&job.host),
                        Shown(&job.log)
                    ))?;
                    return Ok(false);
                }
            }
        }
        let Some(reader) = self.readers.get_mut(&job.file) else {
            return Ok(false);
        };
        let checked = reader.read_stored(job, f);
        let decompressed = match &checked {
            Ok(_) => reader.decompress(job, f, None, &mut self.raw),
            Err(_) => Ok(()),
        };
        match checked {
            Ok(None) => {}
            Ok(Some(p)) => self.problem(&p)?,
            Err(p) => {
                self.problem(&p)?;
                return Ok(false);
            }
        }
        if let Err(p) = decompressed {
            self.problem(&p)?;
            return Ok(false);
        }
        Ok(true)
    }

    fn show(&mut self, job: &Job, f: &FrameRef, line: &[u8]) -> io::Result<()> {
        let at = At {
            host: &job.host,
            log: &job.log,
            file: &job.file,
            frame: f,
        };
        self.buf.clear();
        format_line(
            &mut self.buf,
            &mut self.scratch,
            &self.t.select,
            &at,
            line,
            Kind::Line,
            self.t.prefix,
            &[],
        );
        self.outcome.selected += 1;
        self.out.write_all(&self.buf)
    }

    /// The journal entries of the frame in `self.raw`, as `short` lines.
    fn entries(&mut self, job: &Job, f: &FrameRef) -> Result<Option<Vec<Vec<u8>>>> {
        match crate::journal::export::parse(&self.raw) {
            Ok(entries) => Ok(Some(
                entries
                    .iter()
                    .map(|e| {
                        let mut l = crate::journal::export::short(e);
                        if l.last() == Some(&b'\n') {
                            l.pop();
                        }
                        l
                    })
                    .collect(),
            )),
            Err(e) => {
                self.problem(&not_export(job, f, &e, "shown"))?;
                Ok(None)
            }
        }
    }

    /// The last `t.lines` lines of one log.
    fn last_lines(&mut self, host: &str, log: &str, jobs: &[&Job]) -> Result<()> {
        let want = self.t.lines;
        let frames: Vec<(&Job, &FrameRef)> = jobs
            .iter()
            .flat_map(|j| j.frames.iter().map(move |f| (*j, f)))
            .collect();
        let mut state = LogState::default();
        if let Some((j, f)) = frames.last() {
            state.end = Some(f.start.saturating_add(f.raw_len));
            state.file = j.file.clone();
        }
        // Backwards, frame by frame, until they hold enough lines.
        let mut taken: Vec<(&Job, &FrameRef, Vec<u8>)> = Vec::new();
        let mut have = 0usize;
        let mut gathered = 0usize;
        for &(job, f) in frames.iter().rev() {
            if want == 0 && !self.t.follow {
                break;
            }
            // Text: one line more than wanted, so the first shown is whole.
            if have > want || (job.journal && have == want) || gathered >= MAX_LINE {
                break; // enough lines, or as much as a line may be long
            }
            if !self.load(job, f)? {
                if job.archived {
                    self.out.flush()?;
                    writeln!(
                        self.err,
                        "loghost: note: {} {} is in the archive tier; its lines are not shown",
                        Shown(&job.host),
                        job.date
                    )?;
                }
                // A gap: lines before it would not join the ones after.
                break;
            }
            let raw = std::mem::take(&mut self.raw);
            gathered += raw.len();
            have += if job.journal {
                crate::journal::export::parse(&raw).map_or(0, |e| e.len())
            } else {
                memchr::memchr_iter(b'\n', &raw).count()
            };
            taken.push((job, f, raw));
            // Only the last frame matters when just following (its cut line).
            if want == 0 {
                break;
            }
        }
        // Forwards: whole lines, each with the frame it ends in.
        let mut lines: Vec<(&Job, &FrameRef, Vec<u8>)> = Vec::new();
        let mut partial: Vec<u8> = Vec::new();
        let mut prev_end: Option<u64> = None;
        for (job, f, raw) in taken.into_iter().rev() {
            if job.journal {
                self.raw = raw;
                if let Some(entries) = self.entries(job, f)? {
                    lines.extend(entries.into_iter().map(|l| (job, f, l)));
                }
                continue;
            }
            if !partial.is_empty() && prev_end != Some(f.start) {
                lines.push((job, f, std::mem::take(&mut partial)));
            }
            prev_end = Some(f.start.saturating_add(f.raw_len));
            let mut rest = &raw[..];
            while let Some(i) = memchr::memchr(b'\n', rest) {
                partial.extend_from_slice(&rest[..i]);
                lines.push((job, f, std::mem::take(&mut partial)));
                rest = &rest[i + 1..];
            }
            partial.extend_from_slice(rest);
            if !partial.is_empty() {
                state.partial_frame = Some(f.clone());
            }
        }
        if !partial.is_empty()
            && !self.t.follow
            && let Some(&(job, f)) = frames.last()
        {
            lines.push((job, f, std::mem::take(&mut partial)));
        }
        state.partial = partial;
        let skip = lines.len().saturating_sub(want);
        for (job, f, line) in &lines[skip..] {
            self.show(job, f, line)?;
        }
        self.logs.insert((host.to_string(), log.to_string()), state);
        Ok(())
    }

    /// Follows the ledger from `offset` until the output is closed.
    fn follow(&mut self, mut offset: u64) -> Result<()> {
        let path = self.store.path(layout::LEDGER_FILE);
        let mut select = Select::new(&self.t.select)?;
        let mut pending: Vec<u8> = Vec::new();
        let mut reader: Option<BufReader<File>> = None;
        loop {
            if reader.is_none() {
                match store::open_regular(&path) {
                    Ok(mut f) => {
                        f.seek(SeekFrom::Start(offset))
                            .with_context(|| format!("cannot read {}", path.display()))?;
                        reader = Some(BufReader::with_capacity(1 << 16, f));
                    }
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => {
                        return Err(e).with_context(|| format!("cannot open {}", path.display()));
                    }
                }
            }
            let mut any = false;
            if let Some(r) = reader.as_mut() {
                use std::os::unix::fs::MetadataExt;
                // One fstat of the followed file serves both checks.
                let own = r
                    .get_ref()
                    .metadata()
                    .with_context(|| format!("cannot read {}", path.display()))?;
                if own.len() < offset + pending.len() as u64 {
                    bail!(
                        "{} is shorter than when tail read it: it was replaced or cut; run \
                         `loghost verify`",
                        path.display()
                    );
                }
                let same = std::fs::metadata(&path)
                    .ok()
                    .is_some_and(|m| (own.dev(), own.ino()) == (m.dev(), m.ino()));
                if !same {
                    bail!(
                        "{} is no longer the file tail was following: it was replaced; run \
                         `loghost verify`",
                        path.display()
                    );
                }
                loop {
                    let n = read_ledger_line(r, &mut pending)
                        .with_context(|| format!("cannot read {}", path.display()))?;
                    if n == 0 || pending.last() != Some(&b'\n') {
                        break; // the rest of a line being written comes with the next look
                    }
                    let line = std::mem::take(&mut pending);
                    offset += line.len() as u64;
                    self.entry(&mut select, &line[..line.len() - 1], &path)?;
                    any = true;
                }
            }
            if any {
                self.out.flush()?;
            }
            std::thread::sleep(self.t.poll);
        }
    }

    /// One ledger line read while following.
    fn entry(
        &mut self,
        select: &mut Select<'_>,
        line: &[u8],
        path: &std::path::Path,
    ) -> Result<()> {
        let v = LineView::parse(line, path)?;
        let (Some(host), Some(source)) = (v.host.as_deref(), v.source.as_deref()) else {
            return Ok(());
        };
        if v.kind != "frame" {
            let Some(event) = v.event.as_deref() else {
                return Ok(());
            };
            let what = match event {
                "rewritten" => {
                    "ALARM: lines already collected were changed on the server; the \
                                archive keeps what was collected"
                }
                "truncated" => "the log was emptied and written again (no rotated copy)",
                "replaced" => "another file took the log's name (not a rotated copy)",
                "gone" => "the log is gone from the server (deleted, or rotated with rotate 0)",
                "unsettled" => "the log kept changing while it was read; the rest comes next round",
                "copy_short" => "copytruncate lost lines on the server; the archive has them",
                _ => return Ok(()),
            };
            // The log's name as its frames give it (events carry the configured path).
            let via = if source == crate::ledger::JOURNAL_SOURCE {
                Via::Journal
            } else {
                Via::Pull
            };
            if !select.choose(host, via, source) {
                return Ok(());
            }
            let log = log_name(via, source);
            if event != "unsettled"
                && let Some(state) = self.logs.get_mut(&(host.to_string(), log.clone()))
            {
                // The log's next bytes start a new generation: not a rotation to tell.
                state.end = None;
            }
            let detail = v.detail.as_deref().unwrap_or("");
            let text = if detail.is_empty() {
                what.to_string()
            } else {
                format!("{what} ({detail})")
            };
            return Ok(self.note(host, &log, &text, v.seq, &v.time)?);
        }
        let (Some(via), Some(file)) = (v.via, v.file.as_deref()) else {
            bail!(
                "ledger entry {} is a frame without its file; run `loghost verify`",
                v.seq
            );
        };
        if !select.choose(host, via, source) {
            return Ok(());
        }
        let f = v.frame_ref()?;
        let mut job = Job::of(&v, host, via, source, file)?;
        job.in_time_order = via == Via::Pull;
        let key = (job.host.clone(), job.log.clone());
        let mut state = self.logs.remove(&key).unwrap_or_default();
        if via == Via::Pull && f.start == 0 && state.end.is_some_and(|e| e > 0) {
            self.note(
                host,
                &job.log,
                "rotated: lines from the new file follow",
                v.seq,
                &v.time,
            )?;
        }
        let joins = state.end == Some(f.start) && via == Via::Pull;
        if !state.partial.is_empty() && !joins {
            let line = std::mem::take(&mut state.partial);
            let pf = state.partial_frame.take().unwrap_or_else(|| f.clone());
            let pjob = Job {
                file: state.file.clone(),
                ..job.clone()
            };
            self.show(&pjob, &pf, &line)?;
        }
        state.end = Some(f.start.saturating_add(f.raw_len));
        state.file = job.file.clone();
        if self.load(&job, &f)? {
            if job.journal {
                if let Some(entries) = self.entries(&job, &f)? {
                    for l in entries {
                        self.show(&job, &f, &l)?;
                    }
                }
            } else {
                let raw = std::mem::take(&mut self.raw);
                let mut rest = &raw[..];
                while let Some(i) = memchr::memchr(b'\n', rest) {
                    if state.partial.is_empty() {
                        self.show(&job, &f, &rest[..i])?;
                    } else {
                        state.partial.extend_from_slice(&rest[..i]);
                        let line = std::mem::take(&mut state.partial);
                        self.show(&job, &f, &line)?;
                    }
                    rest = &rest[i + 1..];
                }
                if !rest.is_empty() {
                    state.partial.extend_from_slice(rest);
                    state.partial_frame = Some(f.clone());
                    if state.partial.len() >= MAX_LINE {
                        // A line without end: shown in pieces as long as grep's longest line.
                        let line = std::mem::take(&mut state.partial);
                        self.show(&job, &f, &line)?;
                    }
                }
                self.raw = raw;
            }
        } else {
            state.partial.clear();
        }
        self.logs.insert(key, state);
        Ok(())
    }
}
