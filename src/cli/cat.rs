//! `loghost cat`: prints stored logs, decompressed, in order.
//!
//! Frames are found through the ledger, not by listing directories: only committed bytes are
//! printed, in the order they were collected, and a frame whose stored bytes no longer match the
//! ledger is printed with a warning on stderr (run `loghost verify` for the full check). On a
//! terminal, control characters from the remote content are neutralised
//! ([`crate::sanitize::escape_for_terminal`]); into a pipe the bytes pass unchanged.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom, Write};

use anyhow::{Context, Result, bail};

use crate::config::Config;
use crate::hash::Hash;
use crate::ledger::{self, Entry, Frame};
use crate::sanitize::{Shown, escape_for_terminal};
use crate::store::layout;
use crate::store::{self, Store};

/// How journal entries are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum JournalOutput {
    /// journalctl's default: `Dec 02 03:15:03 web1 sshd[1048]: message` (time in UTC)
    #[default]
    Short,
    /// The journal export format as stored (binary-safe; `systemd-journal-remote` reads it)
    Export,
    /// One JSON object per entry, as `journalctl -o json`
    Json,
}

/// What to print.
pub struct Selection<'a> {
    pub host: &'a str,
    /// A remote path (`/var/log/auth.log`) or stored name (`auth.log`); all logs when `None`.
    pub log: Option<&'a str>,
    /// `YYYY-MM-DD`; all days when `None`.
    pub date: Option<&'a str>,
    /// How journal entries are printed (text logs are printed as they are).
    pub output: JournalOutput,
}

/// Which sources a LOG argument names: the remote path itself, else a stored name
/// (`nginx/access.log`), else a file name (`auth.log`) when only one source has it.
fn resolve_log(sources: &[String], log: &str) -> Result<Vec<String>> {
    if sources.iter().any(|s| s == log) {
        return Ok(vec![log.to_string()]);
    }
    let by_name: Vec<String> = sources
        .iter()
        .filter(|s| layout::stored_name(s) == log)
        .cloned()
        .collect();
    if !by_name.is_empty() {
        return Ok(by_name);
    }
    let by_base: Vec<String> = sources
        .iter()
        .filter(|s| s.rsplit('/').next() == Some(log))
        .cloned()
        .collect();
    if by_base.len() > 1 {
        bail!(
            "{} is ambiguous; give the full remote path, one of: {}",
            Shown(log),
            by_base
                .iter()
                .map(|s| Shown(s).to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    Ok(by_base)
}

/// Prints the selected logs to `out`. `terminal` turns on escaping of control characters.
pub fn run(
    config: &Config,
    sel: &Selection<'_>,
    out: &mut dyn Write,
    terminal: bool,
) -> Result<()> {
    if let Some(d) = sel.date
        && jiff::civil::Date::strptime("%Y-%m-%d", d).is_err()
    {
        bail!("invalid --date {d:?}: expected YYYY-MM-DD, e.g. 2026-11-28");
    }
    let store = Store::open(&config.store)?;
    let mut frames: Vec<Frame> = Vec::new();
    let mut known_logs: Vec<String> = Vec::new();
    let mut host_seen = false;
    let mut archived_days = std::collections::BTreeSet::new();
    ledger::scan(&store.path(layout::LEDGER_FILE), 0, 0, |_, _, entry| {
        let f = match entry {
            Entry::Frame(f) => f,
            Entry::Event(e) => {
                if e.event == ledger::EventKind::Archived && e.host.as_deref() == Some(sel.host) {
                    archived_days.extend(e.source);
                }
                return;
            }
        };
        if f.host != sel.host {
            return;
        }
        host_seen = true;
        if !known_logs.contains(&f.source) {
            known_logs.push(f.source.clone());
        }
        let date_ok = sel
            .date
            .is_none_or(|d| layout::parse_log_path(&f.file).is_some_and(|p| p.date == d));
        if date_ok {
            frames.push(f);
        }
    })?;
    if let Some(log) = sel.log {
        let wanted = resolve_log(&known_logs, log)?;
        frames.retain(|f| wanted.contains(&f.source));
    }
    if !host_seen {
        if config.host(sel.host).is_none() {
            bail!(
                "no host named {:?} in {}",
                Shown(sel.host).to_string(),
                config.source.display()
            );
        }
        bail!("nothing is stored for host {} yet", sel.host);
    }
    if frames.is_empty() {
        known_logs.sort();
        bail!(
            "no stored log matches{}{} for host {}; its logs: {}",
            sel.log
                .map(|l| format!(" {}", Shown(l)))
                .unwrap_or_default(),
            sel.date.map(|d| format!(" on {d}")).unwrap_or_default(),
            sel.host,
            known_logs
                .iter()
                .map(|l| Shown(l).to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    if sel.log.is_none() {
        // Day by day, and within a day log by log; each log's frames stay in ledger order.
        frames.sort_by(|a, b| {
            let key = |f: &Frame| {
                layout::parse_log_path(&f.file)
                    .map(|p| (p.date.to_string(), p.name.to_string()))
                    .unwrap_or_default()
            };
            key(a).cmp(&key(b))
        });
    }

    // Days moved to the archive tier are not here any more: say so instead of failing.
    let mut told = std::collections::BTreeSet::new();
    frames.retain(|f| {
        let Some(date) = layout::parse_log_path(&f.file).map(|p| p.date.to_string()) else {
            return true;
        };
        if !archived_days.contains(&date) || store.path(&f.file).exists() {
            return true;
        }
        if told.insert(date.clone()) {
            eprintln!(
                "loghost: note: {} {date} is in the archive tier ({}); not printed",
                sel.host,
                config.retention.archive.as_deref().unwrap_or("archive")
            );
        }
        false
    });
    let mut files: HashMap<String, File> = HashMap::new();
    let mut stored = Vec::new();
    for f in &frames {
        let file = match files.get_mut(&f.file) {
            Some(file) => file,
            None => {
                let path = store.path(&f.file);
                let file = crate::store::open_regular(&path)
                    .with_context(|| format!("cannot open {}", path.display()))?;
                files.entry(f.file.clone()).or_insert(file)
            }
        };
        stored.clear();
        file.seek(SeekFrom::Start(f.offset))?;
        Read::by_ref(file).take(f.length).read_to_end(&mut stored)?;
        if stored.len() as u64 != f.length || Hash::of(&stored) != f.sha256 {
            eprintln!(
                "loghost: warning: {} bytes {}..{} do not match ledger entry {} (the archive \
                 was altered or damaged; run `loghost verify`)",
                f.file,
                f.offset,
                f.offset + f.length,
                f.seq
            );
        }
        let compression = store::compression_of(&f.file).unwrap_or(config.compression);
        if f.via == ledger::Via::Journal && sel.output != JournalOutput::Export {
            print_journal(compression, &stored, sel.output, out, terminal)
                .with_context(|| format!("cannot read entry {} in {}", f.seq, f.file))?;
            continue;
        }
        print_frame(compression, &stored, out, terminal)
            .with_context(|| format!("cannot decompress entry {} in {}", f.seq, f.file))?;
    }
    out.flush()?;
    Ok(())
}

/// Prints a journal frame's entries in the `short` or `json` form.
fn print_journal(
    compression: crate::config::Compression,
    stored: &[u8],
    output: JournalOutput,
    out: &mut dyn Write,
    terminal: bool,
) -> Result<()> {
    let mut raw = Vec::new();
    store::decompress(compression, stored, &mut raw)?;
    let entries = crate::journal::export::parse(&raw)?;
    let mut escaped = Vec::new();
    for e in &entries {
        let text = match output {
            JournalOutput::Json => crate::journal::export::json(e),
            _ => crate::journal::export::short(e),
        };
        if terminal {
            escaped.clear();
            escape_for_terminal(&text, &mut escaped);
            out.write_all(&escaped)?;
        } else {
            out.write_all(&text)?;
        }
    }
    Ok(())
}

fn print_frame(
    compression: crate::config::Compression,
    stored: &[u8],
    out: &mut dyn Write,
    terminal: bool,
) -> io::Result<()> {
    if !terminal {
        let mut w = WriteAdapter(out);
        store::decompress(compression, stored, &mut w)?;
        return Ok(());
    }
    let reader: Box<dyn Read + '_> = match compression {
        crate::config::Compression::Zstd => Box::new(zstd::stream::read::Decoder::new(stored)?),
        crate::config::Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(stored)),
    };
    let mut reader = BufReader::with_capacity(64 * 1024, reader);
    let mut line = Vec::new();
    let mut escaped = Vec::new();
    loop {
        line.clear();
        // Cap what one "line" may take, for binary content without newlines.
        let n = reader
            .by_ref()
            .take(64 * 1024)
            .read_until(b'\n', &mut line)?;
        if n == 0 {
            return Ok(());
        }
        escaped.clear();
        escape_for_terminal(&line, &mut escaped);
        out.write_all(&escaped)?;
    }
}

struct WriteAdapter<'a>(&'a mut dyn Write);

impl Write for WriteAdapter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}
