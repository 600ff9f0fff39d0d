//! The writer thread of a transfer: raw bytes in, committed frames out.
//!
//! It compresses the streamed bytes into frames of at most `max_frame` raw bytes, appended to one
//! stored file, and commits each frame: sync the stored file, then append its ledger entry and
//! sync the ledger (the commit point of the whole design). A frame's commit runs on its own thread
//! while the next frame is being compressed, so the syncs do not stall the stream; commits stay in
//! order because the next one waits for the previous.
//!
//! The transfer ends with [`Chunk::End`]; if the channel closes without it (the read failed), the
//! open frame is dropped and cut away. Frames committed before stay: they are complete and correct.
//!
//! A reader that must confirm what it read before it counts (a live file can be truncated in
//! place while it is read: copytruncate) sets [`Job::verified`]: a full frame is then written
//! but committed only when [`Chunk::Verified`] (or [`Chunk::End`]) follows it.

use std::sync::{Arc, Mutex, MutexGuard};

use anyhow::{Context, Result};
use tokio::sync::mpsc;

use crate::config::Config;
use crate::failpoint;
use crate::hash::Hash;
use crate::keys::SigningKey;
use crate::ledger::cursor::{Cursor, HEAD_LEN, Probe, TAIL_LEN};
use crate::ledger::{Entry, Frame, Ledger, Via};
use crate::store::{AppendFile, FrameWriter, Store, StoreLock};

/// The open store, ready to record: the config, the store and its write lock, the ledger, the
/// signing key. Shared by pull rounds and the receiver; one per process.
pub struct Recorder {
    pub config: Config,
    pub store: Store,
    pub lock: StoreLock,
    pub ledger: Mutex<Ledger>,
    pub signing_key: SigningKey,
}

impl Recorder {
    /// Opens the store for writing: takes the lock (as command `role`), opens the ledger, loads
    /// the signing key.
    pub fn open(config: &Config, role: &str) -> anyhow::Result<Recorder> {
        let store = Store::open(&config.store)?;
        let lock = store.lock(role)?;
        let signing_key = crate::keys::load_signing_key(&config.ledger.signing_key)
            .map_err(|e| crate::config::SetupError(format!("{e:#}")))?;
        let ledger = Ledger::open(&store, &lock, &signing_key, false)?;
        Ok(Recorder {
            config: config.clone(),
            store,
            lock,
            ledger: Mutex::new(ledger),
            signing_key,
        })
    }

    pub fn ledger(&self) -> anyhow::Result<MutexGuard<'_, Ledger>> {
        self.ledger
            .lock()
            .map_err(|_| anyhow::anyhow!("ledger lock poisoned"))
    }

    /// The cursor of a source, per the ledger.
    pub fn cursor(&self, host: &str, source: &str) -> anyhow::Result<Option<Cursor>> {
        Ok(self.ledger()?.index().cursor(host, source).cloned())
    }

    /// How far a stored file is committed, per the ledger.
    pub fn committed_end(&self, rel: &str) -> anyhow::Result<u64> {
        Ok(self.ledger()?.index().committed_end(rel))
    }

    /// Appends one entry to the ledger.
    pub fn append(&self, entry: Entry) -> anyhow::Result<()> {
        self.ledger()?.append(vec![entry])?;
        Ok(())
    }

    /// Opens a stored file for appending at its committed end.
    pub fn open_file(&self, rel: &str) -> anyhow::Result<AppendFile> {
        let committed = self.committed_end(rel)?;
        Ok(AppendFile::open(&self.store, &self.lock, rel, committed)?)
    }

    /// Writes `data` as one frame at the end of the stored file `rel`, syncs it, and appends the
    /// ledger entry that `entry` makes of it (for inputs that hold a whole frame in memory: the
    /// receiver, the journal). On an error (a full disk, say) nothing of the frame stays behind,
    /// nor a file it created; the caller may keep the data and retry.
    pub fn commit_frame(
        &self,
        rel: &str,
        data: &[u8],
        entry: impl FnOnce(&crate::store::StoredFrame) -> Frame,
    ) -> Result<crate::store::StoredFrame> {
        let out = self.open_file(rel)?;
        let path = out.path().to_path_buf();
        let undo = |out: Result<AppendFile, crate::store::StoreError>| match out {
            Ok(out) => {
                let _ = out.close();
            }
            Err(_) => crate::store::remove_if_empty(&path),
        };
        let mut fw = out.frame(self.config.compression, self.config.compression_level)?;
        if let Err(e) = fw.write_raw(data) {
            undo(fw.abort());
            return Err(e).with_context(|| format!("cannot write {rel}"));
        }
        let (mut out, frame) = match fw.finish() {
            Ok(done) => done,
            Err(e) => {
                crate::store::remove_if_empty(&path);
                return Err(e.into());
            }
        };
        if let Err(e) = out.sync() {
            undo(out.truncated(frame.offset));
            return Err(e.into());
        }
        failpoint::hit("after-frame-sync");
        if let Err(e) = self.append(Entry::Frame(entry(&frame))) {
            undo(out.truncated(frame.offset));
            return Err(e);
        }
        let _ = out.close();
        failpoint::hit("after-ledger-append");
        Ok(frame)
    }

    /// Signs a checkpoint if the tree grew, copies it to the anchors, saves the index cache.
    pub fn checkpoint(&self) -> anyhow::Result<crate::ledger::checkpoint::RoundCheckpoint> {
        let mut round = {
            let mut ledger = self.ledger()?;
            let result = crate::ledger::checkpoint::write_round(
                self.store.root(),
                &mut ledger,
                &self.signing_key,
                &self.config,
            );
            if let Err(e) = ledger.save_index() {
                tracing::warn!("cannot save the ledger index cache (it is rebuilt next time): {e}");
            }
            result?
        };
        // Outside the ledger lock: a slow anchor must not hold up the receiver or the pulls.
        crate::ledger::checkpoint::anchor_round(&self.config, &mut round);
        Ok(round)
    }
}

/// What flows from a reader to the writer thread.
#[derive(Debug)]
pub enum Chunk {
    /// The source bytes just before the first data byte (up to [`TAIL_LEN`]), when the reader
    /// learns them only while reading (a compressed rotated file).
    Seed(Vec<u8>),
    /// Raw source bytes, in order.
    Data(Vec<u8>),
    /// Everything sent so far was confirmed by the reader: the frame it filled may be committed.
    Verified,
    /// The read is complete: commit the last frame.
    End,
}

impl From<Vec<u8>> for Chunk {
    fn from(v: Vec<u8>) -> Chunk {
        Chunk::Data(v)
    }
}

/// What the writer thread needs to know to cut and commit frames.
pub struct Job {
    pub host: String,
    pub source: String,
    /// The remote path read, when it is not `source` itself (a rotated sibling).
    pub from: Option<String>,
    pub via: Via,
    /// Source offset of the first byte that will arrive.
    pub start: u64,
    /// The first bytes of the file read (up to [`HEAD_LEN`]), for the identity probe.
    pub head: Vec<u8>,
    /// The source bytes just before `start` (up to [`TAIL_LEN`]).
    pub tail: Vec<u8>,
    pub max_frame: u64,
    /// For snapshots: the content last stored; the same content is not stored again.
    pub unchanged_if: Option<Hash>,
    /// A full frame waits for [`Chunk::Verified`] before it is committed.
    pub verified: bool,
}

/// What a transfer committed.
#[derive(Debug, Default, Clone, Copy)]
pub struct Written {
    pub frames: u64,
    pub raw: u64,
    pub stored: u64,
}

/// Runs the writer until [`Chunk::End`] (see the module doc). Blocking: run it on its own thread.
pub fn write_frames(
    ctx: &Arc<Recorder>,
    out: AppendFile,
    mut job: Job,
    mut rx: mpsc::Receiver<Chunk>,
) -> Result<Written> {
    let mut state = WriterState {
        ctx: ctx.clone(),
        path: out.path().to_path_buf(),
        out: Some(out),
        frame: None,
        pending: None,
        sealed: std::collections::VecDeque::new(),
        written: Written::default(),
    };
    let result = (|| -> Result<()> {
        loop {
            let chunk = match rx.blocking_recv() {
                None => anyhow::bail!("the transfer ended early"),
                Some(Chunk::End) => break,
                Some(Chunk::Seed(seed)) => {
                    job.tail = seed;
                    continue;
                }
                Some(Chunk::Verified) => {
                    // Confirms the oldest frame waiting (one `Verified` per filled frame).
                    if let Some(s) = state.sealed.pop_front() {
                        state.start_commit(s)?;
                    }
                    continue;
                }
                Some(Chunk::Data(d)) => d,
            };
            let mut data = &chunk[..];
            while !data.is_empty() {
                let fw = state.open_frame()?;
                let n = (job.max_frame - fw.raw_len()).min(data.len() as u64) as usize;
                fw.write_raw(&data[..n])?;
                push_tail(&mut job.tail, &data[..n]);
                data = &data[n..];
                failpoint::hit_after_bytes(fw.raw_len());
                if fw.raw_len() == job.max_frame {
                    if job.verified {
                        if state.sealed.len() >= 2 {
                            anyhow::bail!("a third frame filled before the first was verified");
                        }
                        let sealed = state.seal(&mut job)?;
                        state.sealed.extend(sealed);
                    } else {
                        state.commit(&mut job)?;
                    }
                }
            }
        }
        if job.via == Via::Snapshot {
            state.open_frame()?; // an emptied snapshot is a change too
        }
        // The end confirms everything before it.
        while let Some(s) = state.sealed.pop_front() {
            state.start_commit(s)?;
        }
        if state.frame.is_some() {
            state.commit(&mut job)?;
        }
        state.wait_pending()
    })();
    if result.is_err() {
        state.abandon();
    }
    match state.out.take() {
        Some(out) => {
            if let Err(e) = out.close() {
                tracing::warn!("{e}");
            }
        }
        // The handle went with an error; a file left empty is removed all the same.
        None => crate::store::remove_if_empty(&state.path),
    }
    result.map(|()| state.written)
}

/// A commit running on its own thread.
struct PendingCommit {
    /// Where the frame starts: the file is cut back here if the commit fails.
    offset: u64,
    raw: u64,
    stored: u64,
    done: std::thread::JoinHandle<Result<()>>,
}

struct WriterState {
    ctx: Arc<Recorder>,
    /// The stored file's path: it is cut or removed through it when an error took the handle.
    path: std::path::PathBuf,
    /// The file, while no frame is open.
    out: Option<AppendFile>,
    frame: Option<FrameWriter>,
    pending: Option<PendingCommit>,
    /// Frames written, waiting for [`Chunk::Verified`] before their commit, oldest first.
    sealed: std::collections::VecDeque<Sealed>,
    written: Written,
}

/// A frame written to the stored file whose commit has not started.
struct Sealed {
    entry: Frame,
    file: crate::store::SyncHandle,
    offset: u64,
    raw: u64,
    stored: u64,
}

impl WriterState {
    fn open_frame(&mut self) -> Result<&mut FrameWriter> {
        if self.frame.is_none() {
            let out = self
                .out
                .take()
                .ok_or_else(|| anyhow::anyhow!("stored file lost after an earlier error"))?;
            let rel = out.rel().to_string();
            let fw = out
                .frame(
                    self.ctx.config.compression,
                    self.ctx.config.compression_level,
                )
                .with_context(|| format!("cannot start a frame in {rel}"))?;
            self.frame = Some(fw);
        }
        self.frame
            .as_mut()
            .ok_or_else(|| anyhow::anyhow!("no open frame"))
    }

    /// Waits for the commit in flight. If it failed, the file is cut back to where its frame
    /// started (dropping any later frame with it: nothing after it was committed either).
    fn wait_pending(&mut self) -> Result<()> {
        let Some(p) = self.pending.take() else {
            return Ok(());
        };
        let Ok(result) = p.done.join() else {
            // Whether its ledger line was written is unknown: nothing is cut here. The next
            // open of this file cuts whatever the ledger does not cover.
            anyhow::bail!("the commit thread panicked");
        };
        match result {
            Ok(()) => {
                self.written.frames += 1;
                self.written.raw += p.raw;
                self.written.stored += p.stored;
                Ok(())
            }
            Err(e) => {
                if let Some(fw) = self.frame.take() {
                    self.out = fw.abort().ok();
                }
                match self.out.take() {
                    Some(out) => self.out = out.truncated(p.offset).ok(),
                    None => {
                        if let Err(cut) = crate::store::cut_back(&self.path, p.offset) {
                            tracing::error!("{cut}");
                        }
                    }
                }
                Err(e)
            }
        }
    }

    /// After an error: cuts away the open frame and waits for (and, if it failed, undoes) the
    /// commit in flight.
    fn abandon(&mut self) {
        if let Some(fw) = self.frame.take() {
            match fw.abort() {
                Ok(out) => self.out = Some(out),
                Err(e) => tracing::warn!("{e}"),
            }
        }
        let committed = self.wait_pending().is_ok();
        // Sealed frames were never confirmed: cut them (a failed commit before them cut them
        // already).
        if let Some(s) = self.sealed.pop_front()
            && committed
        {
            match self.out.take() {
                Some(out) => self.out = out.truncated(s.offset).ok(),
                None => {
                    if let Err(cut) = crate::store::cut_back(&self.path, s.offset) {
                        tracing::error!("{cut}");
                    }
                }
            }
        }
    }

    /// Finishes the open frame and starts its commit: sync the stored file, then append its
    /// ledger entry. The commit point of the whole design.
    fn commit(&mut self, job: &mut Job) -> Result<()> {
        match self.seal(job)? {
            Some(s) => self.start_commit(s),
            None => Ok(()),
        }
    }

    /// Finishes the open frame and writes it out (not yet synced): what its commit needs.
    fn seal(&mut self, job: &mut Job) -> Result<Option<Sealed>> {
        let Some(fw) = self.frame.take() else {
            return Ok(None);
        };
        let (mut out, frame) = fw.finish()?;
        failpoint::hit("after-frame-write");
        if job.via == Via::Snapshot && job.unchanged_if == Some(frame.raw_sha256) {
            self.out = Some(out.truncated(frame.offset)?); // same content as the last snapshot
            return Ok(None);
        }
        let rel = out.rel().to_string();
        let file = match out.flush().and_then(|()| out.sync_handle()) {
            Ok(file) => {
                self.out = Some(out);
                file
            }
            Err(e) => {
                // Nothing of this frame may stay behind (a full disk, say).
                self.out = out.truncated(frame.offset).ok();
                return Err(e.into());
            }
        };
        let end = job.start + frame.raw_len;
        let head_len = (job.head.len() as u64).min(end).min(HEAD_LEN) as usize;
        let entry = Frame {
            seq: 0,
            time: String::new(),
            host: job.host.clone(),
            source: job.source.clone(),
            from: job.from.clone(),
            via: job.via,
            start: job.start,
            end,
            head: Probe {
                len: head_len as u64,
                sha256: Hash::of(&job.head[..head_len]),
            },
            tail: Probe {
                len: job.tail.len() as u64,
                sha256: Hash::of(&job.tail),
            },
            file: rel,
            offset: frame.offset,
            length: frame.length,
            sha256: frame.sha256,
            raw_sha256: frame.raw_sha256,
            journal: None,
        };
        job.start = end;
        Ok(Some(Sealed {
            entry,
            file,
            offset: frame.offset,
            raw: frame.raw_len,
            stored: frame.length,
        }))
    }

    /// Syncs a sealed frame and appends its ledger entry, on a thread of its own.
    fn start_commit(&mut self, s: Sealed) -> Result<()> {
        // One commit in flight at a time, in order.
        self.wait_pending()?;
        let Sealed {
            entry,
            file,
            offset,
            raw,
            stored,
        } = s;
        let ctx = self.ctx.clone();
        let done = std::thread::Builder::new()
            .name("loghost-commit".into())
            .spawn(move || -> Result<()> {
                file.sync()?;
                failpoint::hit("after-frame-sync");
                ctx.ledger
                    .lock()
                    .map_err(|_| anyhow::anyhow!("ledger lock poisoned"))?
                    .append(vec![Entry::Frame(entry)])?;
                failpoint::hit("after-ledger-append");
                Ok(())
            });
        let done = match done {
            Ok(done) => done,
            Err(e) => {
                // The frame is written but will never be committed: cut it away.
                self.out = self.out.take().and_then(|o| o.truncated(offset).ok());
                return Err(anyhow::Error::new(e).context("cannot start a commit thread"));
            }
        };
        self.pending = Some(PendingCommit {
            offset,
            raw,
            stored,
            done,
        });
        Ok(())
    }
}

/// Keeps the last [`TAIL_LEN`] bytes seen.
pub fn push_tail(window: &mut Vec<u8>, chunk: &[u8]) {
    let cap = TAIL_LEN as usize;
    if chunk.len() >= cap {
        window.clear();
        window.extend_from_slice(&chunk[chunk.len() - cap..]);
    } else {
        window.extend_from_slice(chunk);
        if window.len() > cap {
            window.drain(..window.len() - cap);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_window_keeps_the_last_bytes() {
        let mut w = Vec::new();
        push_tail(&mut w, b"abc");
        push_tail(&mut w, b"def");
        assert_eq!(w, b"abcdef");
        let big = vec![7u8; TAIL_LEN as usize + 10];
        push_tail(&mut w, &big);
        assert_eq!(w.len(), TAIL_LEN as usize);
        push_tail(&mut w, b"xyz");
        assert_eq!(w.len(), TAIL_LEN as usize);
        assert_eq!(&w[w.len() - 3..], b"xyz");
    }
}
