//! A host's systemd journal in a pull round: every journal file in its `journal_dirs`, read
//! over SFTP with [`crate::journal::file`], new entries stored in the export format as frames of
//! the host's journal stream (`%journal/<machine-id>.export.zst`), each frame's ledger entry
//! saying which file and entries it holds ([`crate::ledger::JournalMark`]).
//!
//! Per file (by its file id, which stays when journald renames it on rotation), the cursor is
//! the last collected entry: its offset, sequence number and the hash of its export bytes. Each
//! round first re-reads that entry (it must be the same, at the same place in the file's entry
//! array, with as many entries before it as were collected); any difference is the `rewritten`
//! ALARM. Then it reads the entries linked after it, up to the entry count the header had when
//! the file was opened; a view that journald's writing made inconsistent is read again (at
//! most [`ATTEMPTS`] times), entries already committed stay committed. A file that vanished was
//! vacuumed: nothing to do. A file seen for the first time is read from its first entry. A
//! second pass over the host's files then compares the round's `audit_samples` random
//! collected entries with the archive (shared out in proportion to the entries collected from
//! each file); a difference is the ALARM too.
//!
//! The parser runs on a blocking thread; its reads go to the async side through a channel and
//! are served by pipelined SFTP reads on the file handle opened once (the bytes identified are
//! the bytes read: the handle follows the file across journald's renames).

use std::io;
use std::sync::Arc;

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use rand::Rng;
use tokio::sync::{mpsc, oneshot};

use super::journal_copies::{Copies, Frames, Verdict};
use super::remote::{RemoteError, RemoteFile, Session};
use super::{Ctx, FileReport, Outcome};
use crate::config::HostConfig;
use crate::hash::Hash;
use crate::journal::export;
use crate::journal::file::{Cached, JournalError, JournalFile, ReadAt, STATE_ONLINE, id_hex};
use crate::ledger::cursor::{JournalCursor, Probe};
use crate::ledger::writer::Recorder;
use crate::ledger::{Entry, Event, EventKind, Frame, JOURNAL_SOURCE, JournalMark, Via};
use crate::sanitize::Shown;

/// How often a file is opened again when journald's writing tore the view.
pub const ATTEMPTS: u32 = 5;
/// Raw export bytes per frame (a frame is also cut at the end of each file's new entries);
/// an audit sample decompresses one frame.
pub const FRAME_TARGET: usize = 4 << 20;
/// How much larger than the bytes read from a file its exported entries may be in one round
/// (beyond [`EXPANSION_ALLOWANCE`]).
pub const MAX_EXPANSION: u64 = 64;
pub const EXPANSION_ALLOWANCE: u64 = 64 << 20;
/// The read cache: 64 KiB windows, 32 MiB at most.
const WINDOW: u64 = 64 << 10;
const MAX_WINDOWS: usize = 512;

type ReadRequest = (u64, usize, oneshot::Sender<io::Result<Vec<u8>>>);

/// The parser's view of the remote file: each read is a request to the async side.
struct Remote {
    tx: mpsc::Sender<ReadRequest>,
    /// Time spent waiting for reads (for the debug line of each file).
    waited: std::time::Duration,
}

impl ReadAt for Remote {
    fn read_at(&mut self, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        let started = std::time::Instant::now();
        let r = self.request(offset, len);
        self.waited += started.elapsed();
        r
    }

    /// Asks the SFTP side to drop what it read ahead (a request of length 0 at `u64::MAX`).
    fn forget(&mut self) {
        let _ = self.request(u64::MAX, 0);
    }
}

impl Remote {
    fn request(&mut self, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .blocking_send((offset, len, reply))
            .map_err(|_| io::Error::other("the SFTP side stopped"))?;
        answer
            .blocking_recv()
            .map_err(|_| io::Error::other("the SFTP side stopped"))?
    }
}

/// Lists the host's journal files: `*.journal` and `*.journal~` in each of its `journal_dirs`.
/// Archived files first (their entries are older), then the active ones.
pub(crate) async fn list(
    host: &HostConfig,
    session: &Session,
    report: &mut super::HostReport,
) -> Result<Vec<String>, RemoteError> {
    let mut files = Vec::new();
    for dir in &host.journal_dirs {
        for suffix in ["*.journal", "*.journal~"] {
            let pattern = format!("{}/{suffix}", dir.trim_end_matches('/'));
            match session.expand(&pattern, &mut report.warnings).await {
                Ok(found) => files.extend(found.into_iter().map(|f| f.path)),
                Err(e) if e.is_not_found() => {}
                Err(e) if e.is_connection_lost() => return Err(e),
                Err(e) => report
                    .files
                    .push(FileReport::new(&pattern, Outcome::Failed(e.to_string()))),
            }
        }
    }
    files.sort_by_key(|p| {
        let name = p.rsplit('/').next().unwrap_or(p);
        (!name.contains('@'), p.clone())
    });
    files.dedup();
    Ok(files)
}

/// Shares a round's `audit_samples` out at random among the host's journal files that hold
/// collected entries, in proportion to those entries (`weights`): a journal is many files,
/// most of them archived and unchanging, and re-reading samples of each of them every round
/// would cost more than the new entries; files nothing was collected from (junk put there to
/// thin the audit out) get none.
pub(crate) fn share_samples(total: u32, weights: &[u64]) -> Vec<u32> {
    let mut per_file = vec![0u32; weights.len()];
    let sum: u64 = weights.iter().sum();
    if sum == 0 {
        return per_file;
    }
    for _ in 0..total {
        let mut pick = rand::thread_rng().gen_range(0..sum);
        for (k, w) in weights.iter().enumerate() {
            if pick < *w {
                per_file[k] += 1;
                break;
            }
            pick -= w;
        }
    }
    per_file
}

/// What a host's journal files took so far in a round: export bytes produced, file bytes read.
#[derive(Debug, Default, Clone)]
pub(crate) struct HostTally {
    pub produced: u64,
    pub read: u64,
    /// The host's journal cursors when the round began.
    pub before: Arc<std::collections::BTreeMap<String, JournalCursor>>,
    /// The host's journal frames in the ledger, once a file needed them this round.
    pub frames: Frames,
    /// Files with entries collected before this round: (path, file id, entries).
    pub candidates: Vec<(String, String, u64)>,
}

/// Collects a file (`audit: None`), or, in the round's audit pass, compares `n` random
/// collected entries of the file whose id is `id` with the archive (`audit: Some((id, n))`).
/// `tally`: what the host's journal files took so far this round (updated; the files with
/// collected entries are noted in it for the audit pass).
pub(crate) async fn pull_file(
    ctx: &Arc<Ctx>,
    host: &HostConfig,
    session: &Session,
    path: &str,
    audit: Option<(String, u32)>,
    tally: &mut HostTally,
) -> Result<FileReport, RemoteError> {
    let mut report = FileReport::new(path, Outcome::UpToDate);
    let file = match session.open(path).await {
        Ok(f) => f,
        Err(e) if e.is_connection_lost() => return Err(e),
        Err(e) if e.is_not_found() => {
            // Vacuumed (or renamed by a rotation) since the listing: nothing lost, the
            // renamed file is listed next round under its new name.
            report
                .notes
                .push("vanished between listing and reading (vacuum or rotation)".into());
            return Ok(report);
        }
        Err(e) => {
            let hint = if e.to_string().to_lowercase().contains("permission") {
                " (the account needs to be in group `systemd-journal` or `adm` on the server)"
            } else {
                ""
            };
            report.outcome = Outcome::Failed(format!("{e}{hint}"));
            return Ok(report);
        }
    };
    let (tx, rx) = mpsc::channel::<ReadRequest>(1);
    let job = Job {
        rec: ctx.rec.clone(),
        host: host.name.clone(),
        hourly: host.hourly,
        path: path.to_string(),
        round_time: ctx.round_time,
        budget: ctx.config.ssh.max_file_bytes_per_round,
        samples: audit.as_ref().map_or(0, |a| a.1),
        audit_only: audit.is_some(),
        expect_file_id: audit.map(|a| a.0),
        host_produced: tally.produced,
        host_read: tally.read,
        frame_target: crate::failpoint::size_override("LOGHOST_JOURNAL_FRAME", FRAME_TARGET as u64),
        damaged_ok: path.ends_with('~'),
        before: tally.before.clone(),
        frames: tally.frames.clone(),
    };
    let worker = tokio::task::spawn_blocking(move || {
        job.run(Remote {
            tx,
            waited: std::time::Duration::ZERO,
        })
    });
    let lost = serve_reads(&file, rx).await;
    file.close().await;
    let outcome = match worker.await {
        Ok(o) => o,
        Err(e) => Collected {
            error: Some(format!("internal error: {e}")),
            ..Collected::default()
        },
    };
    if let Some(e) = lost {
        return Err(e);
    }
    tally.produced += outcome.produced;
    tally.read += outcome.bytes_read;
    if let Some(id) = &outcome.file_id
        && outcome.collected_entries > 0
        && !tally.candidates.iter().any(|(_, i, _)| i == id)
    {
        tally
            .candidates
            .push((path.to_string(), id.clone(), outcome.collected_entries));
    }
    outcome.into_report(&mut report);
    Ok(report)
}

/// Serves the parser's reads on the open file until it is done; the connection's error when it
/// was lost. A read that continues an earlier one (reading entries walks forward through the
/// entry array and, elsewhere, through the entries and their data) is followed at once by a
/// read of the same size after it, in the background while the parser works, so the round trip
/// hides behind the parsing. At most `MAX_PREFETCH` are in flight or waiting to be asked for.
async fn serve_reads(
    file: &RemoteFile<'_>,
    mut rx: mpsc::Receiver<ReadRequest>,
) -> Option<RemoteError> {
    let mut lost: Option<RemoteError> = None;
    type Prefetch<'a> = std::pin::Pin<
        Box<
            dyn std::future::Future<Output = (u64, usize, Result<Vec<u8>, RemoteError>)>
                + Send
                + 'a,
        >,
    >;
    const MAX_PREFETCH: usize = 2;
    let mut inflight: FuturesUnordered<Prefetch<'_>> = FuturesUnordered::new();
    let mut wanted: Vec<(u64, usize)> = Vec::new();
    let mut ready: Vec<(u64, usize, Result<Vec<u8>, RemoteError>)> = Vec::new();
    // Where each of the last few reads ended: a read starting there continues it.
    let mut ends = [u64::MAX; 4];
    let mut next_slot = 0;
    loop {
        let request = if inflight.is_empty() {
            rx.recv().await
        } else {
            tokio::select! {
                r = rx.recv() => r,
                Some((o, l, data)) = inflight.next() => {
                    wanted.retain(|w| *w != (o, l));
                    ready.push((o, l, data));
                    continue;
                }
            }
        };
        let Some((offset, len, reply)) = request else {
            break;
        };
        if (offset, len) == (u64::MAX, 0) {
            // The reader starts over (a torn view): nothing read before may be served again.
            inflight.clear();
            wanted.clear();
            ready.clear();
            let _ = reply.send(Ok(Vec::new()));
            continue;
        }
        let r = if let Some(k) = ready.iter().position(|(o, l, _)| (*o, *l) == (offset, len)) {
            ready.swap_remove(k).2
        } else if wanted.contains(&(offset, len)) {
            // Wait for that one (keeping whatever else completes meanwhile).
            loop {
                match inflight.next().await {
                    Some((o, l, data)) if (o, l) == (offset, len) => {
                        wanted.retain(|w| *w != (o, l));
                        break data;
                    }
                    Some((o, l, data)) => {
                        wanted.retain(|w| *w != (o, l));
                        ready.push((o, l, data));
                    }
                    None => break file.read_pipelined(offset, len as u64).await,
                }
            }
        } else {
            file.read_pipelined(offset, len as u64).await
        };
        let sequential = match ends.iter().position(|&e| e == offset) {
            Some(k) => {
                ends[k] = offset + len as u64;
                true
            }
            None => {
                ends[next_slot] = offset + len as u64;
                next_slot = (next_slot + 1) % ends.len();
                false
            }
        };
        let next = (offset + len as u64, len);
        if sequential
            && matches!(&r, Ok(d) if d.len() == len)
            && wanted.len() + ready.len() < MAX_PREFETCH
            && !wanted.contains(&next)
        {
            wanted.push(next);
            inflight.push(Box::pin(async move {
                (
                    next.0,
                    next.1,
                    file.read_pipelined(next.0, next.1 as u64).await,
                )
            }));
        }
        // Prefetched data nobody asked for again is dropped after a while.
        if ready.len() > MAX_PREFETCH {
            let _ = ready.remove(0);
        }
        let r = match r {
            Ok(data) => Ok(data),
            Err(e) => {
                let msg = e.to_string();
                if e.is_connection_lost() {
                    lost = Some(e);
                }
                Err(io::Error::other(msg))
            }
        };
        let _ = reply.send(r);
    }
    lost
}

/// What the blocking side needs (cloned for the thread that writes the frames).
#[derive(Clone)]
struct Job {
    rec: Arc<Recorder>,
    host: String,
    hourly: bool,
    path: String,
    round_time: jiff::Timestamp,
    budget: u64,
    samples: u32,
    /// Raw bytes per frame ([`FRAME_TARGET`]; tests lower it with `LOGHOST_JOURNAL_FRAME`).
    frame_target: u64,
    /// Export bytes produced and file bytes read by the host's journal files before this one
    /// in this round (the expansion bound is the host's).
    host_produced: u64,
    host_read: u64,
    /// The round's second pass over a file: only `samples` audit samples (of the file whose
    /// id the first pass saw), nothing collected.
    audit_only: bool,
    expect_file_id: Option<String>,
    /// A `*.journal~` file (journald found it damaged or unclean): read up to its last valid
    /// entry; an error past it is a note, not a failure.
    damaged_ok: bool,
    /// The host's journal cursors when the round began (entries repeating collected ones).
    before: Arc<std::collections::BTreeMap<String, JournalCursor>>,
    frames: Frames,
}

#[derive(Default)]
struct Collected {
    /// Where finished batches go: the thread writing and committing frames while the file is
    /// read on (`None`: written here).
    tx: Option<std::sync::mpsc::SyncSender<Pending>>,
    /// Export bytes read this round (committed or on their way), and bytes of the file read.
    produced: u64,
    bytes_read: u64,
    /// Time spent waiting for the frame writer to take a batch.
    send_wait: std::time::Duration,
    /// The file's id, and how many of its entries had been collected before this round.
    file_id: Option<String>,
    collected_entries: u64,
    entries: u64,
    raw: u64,
    stored: u64,
    frames: u64,
    alarms: Vec<String>,
    notes: Vec<String>,
    budget_reached: bool,
    error: Option<String>,
    /// Entries the same as entries collected from another file (a copy), with its path.
    copies: Option<(u64, String)>,
}

impl Collected {
    fn into_report(self, r: &mut FileReport) {
        r.raw_bytes = self.raw;
        r.stored_bytes = self.stored;
        r.frames = self.frames;
        r.entries = self.entries;
        r.alarms = self.alarms;
        r.notes.extend(self.notes);
        r.budget_reached = self.budget_reached;
        r.outcome = match self.error {
            Some(e) => Outcome::Failed(e),
            None if self.frames > 0 => Outcome::Collected,
            None => Outcome::UpToDate,
        };
    }
}

/// Where reading stands in one file: the last entry collected (committed or in the batch).
#[derive(Clone)]
struct Position {
    offset: u64,
    seqnum: u64,
    /// Entries of the file collected up to and including it.
    count: u64,
}

/// Entries read but not yet committed, and the mark they will carry.
struct Batch {
    bytes: Vec<u8>,
    first_seqnum: u64,
    entries: u64,
    /// The last entry's seqnum, offset in the file, time, and where its bytes start in `bytes`.
    last: Option<(u64, u64, u64, usize)>,
}

impl Batch {
    fn new() -> Batch {
        Batch {
            bytes: Vec::new(),
            first_seqnum: 0,
            entries: 0,
            last: None,
        }
    }
}

/// Where reading a file stands, across the attempts of a round.
struct Progress {
    /// The collected entries were checked (once a round).
    checked: bool,
    pos: Option<Position>,
    batch: Batch,
    copies: Copies,
}

/// A batch on its way to becoming a frame.
struct Pending {
    data: Vec<u8>,
    mark: JournalMark,
    tail: Probe,
}

impl Job {
    fn run(self, src: Remote) -> Collected {
        let mut out = Collected::default();
        // Reading (and decompressing) the file and compressing, hashing and syncing frames
        // run side by side.
        let (tx, rx) = std::sync::mpsc::sync_channel::<Pending>(2);
        let writer = self.clone();
        let handle = std::thread::Builder::new()
            .name("loghost-journal-commit".into())
            .spawn(move || {
                let mut done = Collected::default();
                for p in rx {
                    if let Err(e) = writer.write_frame(p, &mut done) {
                        done.error = Some(format!("{e:#}"));
                        break;
                    }
                }
                done
            });
        if handle.is_ok() {
            out.tx = Some(tx);
        }
        let r = self.collect(src, &mut out);
        out.tx = None;
        if let Ok(h) = handle {
            match h.join() {
                Ok(done) => {
                    out.entries += done.entries;
                    out.frames += done.frames;
                    out.raw += done.raw;
                    out.stored += done.stored;
                    if done.error.is_some() {
                        out.error = done.error;
                    }
                }
                Err(_) => out.error = Some("the frame writer panicked".into()),
            }
        }
        if let (Err(e), None) = (r, &out.error) {
            out.error = Some(format!("{e:#}"));
        }
        out
    }

    fn collect(&self, src: Remote, out: &mut Collected) -> anyhow::Result<()> {
        let mut jf = JournalFile::open(Cached::new(src, WINDOW, MAX_WINDOWS))
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let file_id = id_hex(&jf.header.file_id);
        let cursor: Option<JournalCursor> = self
            .rec
            .ledger()?
            .index()
            .journals
            .get(&self.host)
            .and_then(|m| m.get(&file_id))
            .cloned();
        if jf.header.sealed() {
            tracing::debug!(
                "{}: {}: sealed with Forward Secure Sealing (seals are not checked)",
                self.host,
                Shown(&self.path)
            );
        }
        out.file_id = Some(file_id.clone());
        out.collected_entries = cursor.as_ref().map_or(0, |c| c.entries);
        if self.audit_only {
            // The audit pass of the round: only the samples, through the chain.
            let Some(c) = cursor.as_ref() else {
                return Ok(());
            };
            if self.expect_file_id.as_deref() != Some(file_id.as_str()) {
                return Ok(()); // replaced since the first pass: audited next round
            }
            jf.walk_only(true);
            return self
                .audit(&mut jf, c, self.samples, out)
                .map_err(|e| anyhow::anyhow!("{e}"));
        }
        let pos = cursor.as_ref().map(|c| Position {
            offset: c.mark.last_offset,
            seqnum: c.mark.last_seqnum,
            count: c.entries,
        });
        let copies = Copies::new(
            &self.host,
            &self.before,
            &file_id,
            &id_hex(&jf.header.seqnum_id),
            self.frames.clone(),
        );
        let mut st = Progress {
            checked: false,
            pos,
            batch: Batch::new(),
            copies,
        };
        let mut attempt = 0;
        loop {
            let r = self.attempt(&mut jf, cursor.as_ref(), &mut st, out);
            out.bytes_read = jf.bytes_read();
            // What was read before an error is good: commit it.
            self.commit(&jf, &mut st.batch, out)?;
            if !r.as_ref().is_err_and(JournalError::is_torn) {
                self.say_copies(out);
            }
            match r {
                Ok(()) => {
                    tracing::debug!(
                        "{}: {}: {} reads, {} bytes read, {:.3}s waiting for reads, {:.3}s for \
                         the frame writer",
                        self.host,
                        Shown(&self.path),
                        jf.reads(),
                        jf.bytes_read(),
                        jf.source().inner().waited.as_secs_f64(),
                        out.send_wait.as_secs_f64()
                    );
                    return Ok(());
                }
                // Only a file journald has open (ONLINE) can be half-written; a torn view of
                // any other (one set aside after a crash, an archived one) is damage.
                // (A `~` file was renamed away by journald: nobody writes it, whatever its
                // header says, which is ONLINE after a crash.)
                Err(e) if e.is_torn() && (jf.header.state != STATE_ONLINE || self.damaged_ok) => {
                    let e = JournalError::Damaged(format!(
                        "{e} in a file that is not being written (state {})",
                        jf.header.state
                    ));
                    if self.damaged_ok {
                        out.notes.push(format!(
                            "read up to its last valid entry (journald set it aside as damaged: \
                             {e})"
                        ));
                        return Ok(());
                    }
                    return Err(anyhow::anyhow!("{e}"));
                }
                Err(e) if e.is_torn() && attempt + 1 < ATTEMPTS => {
                    attempt += 1;
                    let mut src = jf.into_source();
                    src.clear();
                    jf = JournalFile::open(src).map_err(|e| anyhow::anyhow!("{e}"))?;
                    if id_hex(&jf.header.file_id) != file_id {
                        anyhow::bail!("the file was replaced while it was read; read next round");
                    }
                }
                Err(e) if e.is_torn() => {
                    // journald links an entry within microseconds; a view that stays torn
                    // is being rewritten (or is a trap): say so, in the ledger too.
                    let detail = format!(
                        "{}: kept changing while it was read ({ATTEMPTS} tries, last: {e}); \
                         what was read is kept, the rest is tried next round",
                        Shown(&self.path)
                    );
                    self.event(EventKind::Unsettled, &detail, out);
                    anyhow::bail!(
                        "kept changing while it was read ({ATTEMPTS} tries, last: {e}); what \
                         was read is kept, the rest is tried next round"
                    );
                }
                Err(e) if self.damaged_ok => {
                    out.notes.push(format!(
                        "read up to its last valid entry (journald set it aside as damaged: {e})"
                    ));
                    return Ok(());
                }
                Err(e) => return Err(anyhow::anyhow!("{e}")),
            }
        }
    }

    /// One pass over the file as its header was read.
    fn attempt(
        &self,
        jf: &mut JournalFile<Remote>,
        cursor: Option<&JournalCursor>,
        st: &mut Progress,
        out: &mut Collected,
    ) -> Result<(), JournalError> {
        let Progress {
            checked,
            pos,
            batch,
            copies,
        } = st;
        let n = jf.header.n_entries;
        let mut linked = true;
        if let (Some(c), false) = (cursor, *checked) {
            jf.walk_only(true);
            let r = self.check_collected(jf, c, out);
            jf.walk_only(false);
            linked = r?;
            *checked = true;
        }
        // The next entry is the one after the newest collected, whose slot in the entry array
        // was just checked; when it was not where it belongs (the alarm is raised), go on from
        // where that entry now is.
        let mut i = match pos.as_mut() {
            None => 0,
            Some(p) if linked => p.count,
            Some(p) => {
                let i = jf.first_after(p.offset)?;
                p.count = i;
                i
            }
        };
        let sid = jf.header.seqnum_id;
        while i < n {
            let produced = out.produced + batch.bytes.len() as u64;
            if produced >= self.budget {
                out.budget_reached = true;
                break;
            }
            // Data objects are shared between entries and may be compressed, so the export is
            // larger than what is read, but not without bound: a file made to expand far more
            // (one huge compressed field referenced by every entry) is read in slices.
            // Counted over the host's journal files in this round, so many small files do not
            // multiply the allowance.
            let read = self.host_read + jf.bytes_read();
            if self.host_produced + produced
                > read.saturating_mul(MAX_EXPANSION) + EXPANSION_ALLOWANCE
            {
                out.notes.push(format!(
                    "its entries expand to more than {MAX_EXPANSION} times the bytes read (a \
                     decompression bomb?); the rest is read next round"
                ));
                out.budget_reached = true;
                break;
            }
            let off = jf.entry_offset(i)?;
            if let Some(p) = pos.as_ref()
                && off <= p.offset
            {
                return Err(JournalError::Damaged(format!(
                    "entry {i} at offset {off} is linked out of order"
                )));
            }
            let e = jf.entry_at(off)?;
            if let Some(p) = pos.as_ref()
                && e.seqnum <= p.seqnum
            {
                let msg = format!(
                    "sequence number going backwards: entry at offset {off} has seqnum {} after \
                     seqnum {} (journald numbers a file's entries in increasing order)",
                    e.seqnum, p.seqnum
                );
                self.alarm(out, &msg);
            }
            if batch.entries == 0 {
                batch.first_seqnum = e.seqnum;
            }
            let start = batch.bytes.len();
            export::write_entry(&mut batch.bytes, &sid, &e);
            if copies.covers(e.seqnum) {
                self.compare_copy(copies, e.seqnum, &batch.bytes[start..], out);
            }
            batch.entries += 1;
            batch.last = Some((e.seqnum, off, e.realtime, start));
            let count = pos.as_ref().map_or(0, |p| p.count) + 1;
            *pos = Some(Position {
                offset: off,
                seqnum: e.seqnum,
                count,
            });
            i += 1;
            if batch.bytes.len() as u64 >= self.frame_target {
                self.commit(jf, batch, out).map_err(|e| JournalError::Io {
                    offset: off,
                    err: io::Error::other(format!("{e:#}")),
                })?;
            }
        }
        Ok(())
    }

    /// The newest collected entry and `audit_samples` random collected entries, read again
    /// and compared with what was stored. Collected entries were linked when they were read,
    /// so nothing about them can be torn: any failure to find them as they were is the alarm.
    /// Returns whether the newest collected entry is still linked where it was (as entry
    /// number `entries` of the file).
    fn check_collected(
        &self,
        jf: &mut JournalFile<Remote>,
        c: &JournalCursor,
        out: &mut Collected,
    ) -> Result<bool, JournalError> {
        if let Some(d) = crate::failpoint::pause_once("journal-check") {
            std::thread::sleep(d);
        }
        let sid = jf.header.seqnum_id;
        if id_hex(&sid) != c.mark.seqnum_id {
            let msg = format!(
                "the file's seqnum id changed from {} to {}",
                c.mark.seqnum_id,
                id_hex(&sid)
            );
            self.alarm(out, &msg);
            return Ok(false);
        }
        // A failed read (a lost connection, a stalled server) says nothing about the file: it
        // fails the round, it is never evidence.
        let io = |e: &JournalError| matches!(e, JournalError::Io { .. });
        let slot = match c.entries.checked_sub(1) {
            Some(k) if k < jf.header.n_entries => match jf.entry_offset(k) {
                Err(e) if io(&e) => return Err(e),
                r => r.map_err(|e| e.to_string()),
            },
            _ => Err(format!(
                "the file has {} entries, where {} were collected",
                jf.header.n_entries, c.entries
            )),
        };
        let linked = match slot {
            Ok(off) if off == c.mark.last_offset => true,
            Ok(off) => {
                let msg = format!(
                    "entry number {} of the file is at offset {off}, no longer the newest \
                     collected entry (seqnum {} at offset {}), where {} were collected: \
                     collected entries were removed or entries were inserted",
                    c.entries, c.mark.last_seqnum, c.mark.last_offset, c.entries
                );
                self.alarm(out, &msg);
                false
            }
            Err(why) => {
                let msg = format!(
                    "the newest collected entry (seqnum {}) is no longer linked as entry number \
                     {} ({why}), where {} were collected: collected entries were removed",
                    c.mark.last_seqnum, c.entries, c.entries
                );
                self.alarm_missing(out, &msg);
                false
            }
        };
        let newest = match jf.entry_at(c.mark.last_offset) {
            Ok(e) => e,
            Err(e) if io(&e) => return Err(e),
            Err(e) => {
                let msg = format!(
                    "the newest collected entry (seqnum {}) cannot be read at offset {}: {e}",
                    c.mark.last_seqnum, c.mark.last_offset
                );
                self.alarm_missing(out, &msg);
                return Ok(false);
            }
        };
        let mut bytes = Vec::new();
        export::write_entry(&mut bytes, &sid, &newest);
        if newest.seqnum != c.mark.last_seqnum || Hash::of(&bytes) != c.tail.sha256 {
            let msg = format!(
                "the newest collected entry (seqnum {}, offset {}) changed on the server",
                c.mark.last_seqnum, c.mark.last_offset
            );
            self.alarm(out, &msg);
            return Ok(false);
        }
        if !linked {
            return Ok(false);
        }
        self.audit(jf, c, self.samples, out)?;
        Ok(true)
    }

    /// An entry whose number was collected from another file before this round, compared
    /// with the store (see [`crate::pull::journal_copies`]).
    fn compare_copy(&self, copies: &mut Copies, seqnum: u64, entry: &[u8], out: &mut Collected) {
        let verdict = match copies.check(&self.rec, seqnum, entry, &mut out.notes) {
            Ok(v) => v,
            Err(e) => {
                out.notes.push(format!(
                    "entries repeating collected ones cannot be compared with the store: {e:#}"
                ));
                return;
            }
        };
        match verdict {
            Verdict::New => {}
            Verdict::Same { path } => out.copies.get_or_insert((0, path)).0 += 1,
            Verdict::Differs { path } => {
                let msg = format!(
                    "entry seqnum {seqnum} of this file (a file not collected before) repeats the \
                     number of an entry collected from {} with other content: a collected entry \
                     was rewritten in a copy of its file (or journald numbered entries again \
                     after losing its state; the collected entries are in the store)",
                    Shown(&path)
                );
                self.copy_alarm(out, &msg);
            }
            Verdict::Removed {
                path,
                count,
                seqnums,
            } => {
                let shown: Vec<String> = seqnums.iter().take(10).map(u64::to_string).collect();
                let msg = format!(
                    "this file (a file not collected before) repeats entries collected from {} \
                     but lacks {} of them (seqnum {}{}): collected entries were removed from a \
                     copy of their file",
                    Shown(&path),
                    count,
                    shown.join(", "),
                    if count > seqnums.len() as u64 {
                        ", …"
                    } else {
                        ""
                    }
                );
                self.copy_alarm(out, &msg);
            }
        }
    }

    /// The alarm about a copy, once per file and round.
    fn copy_alarm(&self, out: &mut Collected, msg: &str) {
        let said = |a: &String| a.contains("a file not collected before");
        if !out.alarms.iter().any(said) {
            self.alarm(out, msg);
        }
    }

    /// Says (once a round) what the file's entries repeating collected ones were.
    fn say_copies(&self, out: &mut Collected) {
        if let Some((n, path)) = out.copies.take() {
            out.notes.push(format!(
                "{n} entries are the same as entries already collected from {} (a copy of that \
                 file; stored again)",
                Shown(&path)
            ));
        }
    }

    /// `samples` random collected entries of the file (from frames across its history),
    /// compared with the archive.
    fn audit(
        &self,
        jf: &mut JournalFile<Remote>,
        c: &JournalCursor,
        samples: u32,
        out: &mut Collected,
    ) -> Result<(), JournalError> {
        let sid = jf.header.seqnum_id;
        let io = |e: &JournalError| matches!(e, JournalError::Io { .. });
        for _ in 0..samples {
            let Some(span) = c.samples.pick(&mut rand::thread_rng()) else {
                break;
            };
            let stored = match self.stored_frame(span) {
                Ok(s) => s,
                Err(e) => {
                    out.notes.push(format!("audit sample skipped: {e:#}"));
                    continue;
                }
            };
            // One entry of the frame, its stored bytes compared with the server's entry now.
            let spans = match export::entry_spans(&stored) {
                Ok(s) => s,
                Err(e) => {
                    out.notes.push(format!(
                        "audit sample skipped: a stored frame of {} is not the export format \
                         ({e}); run `loghost verify`",
                        span.file
                    ));
                    continue;
                }
            };
            let Some(&(a, b)) = spans.get(rand::thread_rng().gen_range(0..spans.len().max(1)))
            else {
                continue;
            };
            let Some(seqnum) = export::parse(&stored[a..b])
                .ok()
                .and_then(|v| v.first().and_then(export::Exported::seqnum))
            else {
                continue;
            };
            // Only among the collected entries: those after them may be mid-write.
            let found = match jf.find_seqnum(seqnum, c.entries) {
                Ok(Some(off)) => jf.entry_at(off).map(Some),
                Ok(None) => Ok(None),
                Err(e) => Err(e),
            };
            let same = match found {
                Err(e) if io(&e) => return Err(e),
                Ok(Some(e)) => {
                    let mut now = Vec::new();
                    export::write_entry(&mut now, &sid, &e);
                    now == stored[a..b]
                }
                Ok(None) | Err(_) => false,
            };
            if !same {
                let msg = format!(
                    "a collected entry (seqnum {seqnum}) is no longer on the server as it was \
                     collected"
                );
                self.alarm_missing(out, &msg);
                break;
            }
        }
        Ok(())
    }

    /// A stored frame's raw content.
    fn stored_frame(&self, span: &crate::ledger::cursor::Span) -> anyhow::Result<Vec<u8>> {
        let raw = crate::store::read_frame(
            &self.rec.store,
            &span.file,
            span.offset,
            span.length,
            (FRAME_TARGET as u64) * 2 + (crate::journal::file::MAX_ENTRY as u64),
        )?
        .ok_or_else(|| anyhow::anyhow!("its day is no longer in the local store"))?;
        Ok(raw)
    }

    /// A collected entry missing or unreadable: the ALARM. In a file journald set aside after an
    /// unclean shutdown (`*.journal~`) the alarm says that a power loss can explain it (entries
    /// loghost read from the server's page cache that never reached its disk): nothing in such a
    /// file tells lost writes from removed entries (whoever forged it controls all of it), so
    /// it is not excused.
    fn alarm_missing(&self, out: &mut Collected, msg: &str) {
        if self.damaged_ok {
            let msg = format!(
                "{msg} (journald set this file aside after an unclean shutdown: if the server \
                 lost power, entries not yet on its disk explain it; what was collected is in \
                 the store)"
            );
            self.alarm(out, &msg);
        } else {
            self.alarm(out, msg);
        }
    }

    fn alarm(&self, out: &mut Collected, msg: &str) {
        let detail = format!("{}: {msg}", Shown(&self.path));
        tracing::error!("ALARM: journal rewritten: {}: {detail}", self.host);
        out.alarms.push(msg.to_string());
        self.event(EventKind::Rewritten, &detail, out);
    }

    /// Records an event about this file in the ledger.
    fn event(&self, kind: EventKind, detail: &str, out: &mut Collected) {
        let detail = detail.to_string();
        let event = Event {
            seq: 0,
            time: String::new(),
            event: kind,
            host: Some(self.host.clone()),
            source: Some(JOURNAL_SOURCE.to_string()),
            start: None,
            end: None,
            sha256: None,
            detail,
        };
        if let Err(e) = self.rec.append(Entry::Event(event)) {
            out.notes
                .push(format!("cannot record the alarm in the ledger: {e:#}"));
        }
    }

    /// Hands the batch on to become one frame of the host's journal stream.
    fn commit(
        &self,
        jf: &JournalFile<Remote>,
        batch: &mut Batch,
        out: &mut Collected,
    ) -> anyhow::Result<()> {
        let Some((last_seqnum, last_offset, last_realtime, last_start)) = batch.last.take() else {
            return Ok(());
        };
        let data = std::mem::take(&mut batch.bytes);
        let last_entry = &data[last_start..];
        let tail = Probe {
            len: last_entry.len() as u64,
            sha256: Hash::of(last_entry),
        };
        let mark = JournalMark {
            file_id: id_hex(&jf.header.file_id),
            machine_id: id_hex(&jf.header.machine_id),
            seqnum_id: id_hex(&jf.header.seqnum_id),
            first_seqnum: batch.first_seqnum,
            last_seqnum,
            entries: batch.entries,
            last_offset,
            last_realtime,
            sealed: jf.header.sealed(),
        };
        batch.entries = 0;
        out.produced += data.len() as u64;
        let p = Pending { data, mark, tail };
        let started = std::time::Instant::now();
        let r = match &out.tx {
            Some(tx) => tx
                .send(p)
                .map_err(|_| anyhow::anyhow!("the frame writer stopped")),
            None => self.write_frame(p, out),
        };
        out.send_wait += started.elapsed();
        r
    }

    /// Writes one frame of the host's journal stream and commits it (sync, ledger).
    fn write_frame(&self, p: Pending, out: &mut Collected) -> anyhow::Result<()> {
        let Pending { data, mark, tail } = p;
        let rec = &self.rec;
        let rel = crate::store::layout::journal_file(
            &self.host,
            self.round_time,
            self.hourly,
            &mark.machine_id,
            rec.config.compression,
        );
        let start = rec.cursor(&self.host, JOURNAL_SOURCE)?.map_or(0, |c| c.end);
        let frame = rec.commit_frame(&rel.clone(), &data, |frame| Frame {
            seq: 0,
            time: String::new(),
            host: self.host.clone(),
            source: JOURNAL_SOURCE.to_string(),
            from: Some(self.path.clone()),
            via: Via::Journal,
            start,
            end: start + frame.raw_len,
            head: Probe {
                len: 0,
                sha256: Hash::of(b""),
            },
            tail,
            file: rel,
            offset: frame.offset,
            length: frame.length,
            sha256: frame.sha256,
            raw_sha256: frame.raw_sha256,
            journal: Some(Box::new(mark.clone())),
        })?;
        out.entries += mark.entries;
        out.frames += 1;
        out.raw += frame.raw_len;
        out.stored += frame.length;
        Ok(())
    }
}
