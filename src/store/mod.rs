//! **Part `store/`: the archive on disk.** Files and directories, the lock, appending frames
//! (`mod`), where everything lives (`layout`), the rounds summary (`rounds`). The lowest part:
//! it must not import `ledger` or anything above it, and it removes only files it created
//! empty (only `archive` removes stored data).
//!
//! The store on disk: directories and files (0700 and 0600), the writer's lock, and appending
//! compression frames to stored log files durably.
//!
//! A stored log file is a sequence of complete frames (zstd frames or gzip members), so stock
//! `zstdcat`/`zcat` print it whole. [`AppendFile`] is the only way to write one: it is opened at
//! the end the ledger has committed, cutting away leftovers of an interrupted pull, and refusing
//! to write when the file is *shorter* than the ledger says (that is damage to evidence, not a
//! crash artifact). Paths given to the store are store-relative and come from
//! [`crate::store::layout`], never from the network directly.

pub mod layout;
pub mod rounds;

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::config::Compression;
use crate::hash::Hash;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "the store {0} does not exist or is not a loghost store; create it with `loghost init`"
    )]
    Missing(PathBuf),
    #[error(
        "the store {path} is in use by another loghost process{holder}; try again when it has finished"
    )]
    Busy {
        path: PathBuf,
        /// " (pid N, loghost ROLE)" when the lock file says so, else empty.
        holder: String,
        /// The command holding the lock (`run`, `pull`, `verify`, …), when known.
        role: Option<String>,
    },
    #[error("{what} {path}: {err}")]
    Io {
        what: &'static str,
        path: PathBuf,
        err: io::Error,
    },
    #[error(
        "the stored file {path} is {actual} bytes long but the ledger has committed {committed}: \
         the archive was damaged; run `loghost verify`. Not writing to it."
    )]
    Damaged {
        path: PathBuf,
        actual: u64,
        committed: u64,
    },
}

fn io_err<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> StoreError + 'a {
    move |err| StoreError::Io {
        what,
        path: path.to_path_buf(),
        err,
    }
}

/// Options for creating a file readable by its owner only.
pub fn open_options_0600() -> OpenOptions {
    let mut o = OpenOptions::new();
    o.mode(0o600);
    o
}

/// Creates `dir` and its missing parents with mode 0700, syncing each parent that gained an entry.
pub fn create_dir_all_0700(dir: &Path) -> io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent()
        && !parent.as_os_str().is_empty()
    {
        create_dir_all_0700(parent)?;
    }
    match fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists && dir.is_dir() => return Ok(()),
        Err(e) => return Err(e),
    }
    if let Some(parent) = dir.parent() {
        sync_dir(parent)?;
    }
    Ok(())
}

/// Opens a file to read that must be a regular file: a FIFO or a device planted where a stored
/// file (or an archived copy) should be would otherwise block the reader forever, or feed it
/// without end. The open does not wait (`O_NONBLOCK`, which regular files ignore).
pub fn open_regular(path: &Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)?;
    if !f.metadata()?.file_type().is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "not a regular file (something was put in its place)",
        ));
    }
    Ok(f)
}

/// Makes a directory's entries durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    File::open(dir)?.sync_all()
}

/// Replaces `path` with `data` atomically (write, sync, rename, sync directory), mode 0600.
/// On failure (a full disk, say) the temporary file is removed and `path` is untouched.
pub fn write_atomic(path: &Path, data: &[u8]) -> io::Result<()> {
    let (dir, tmp) = temp_beside(path, data)?;
    tmp.persist(path).map_err(|e| e.error)?;
    sync_dir(dir)
}

/// Creates a new file (never overwriting: `AlreadyExists`) with `data`, mode 0600, synced. The
/// file appears complete or not at all: it is written under a temporary name and renamed into
/// place without replacing (`renameat2(RENAME_NOREPLACE)`, else link + unlink).
pub fn write_new(path: &Path, data: &[u8]) -> io::Result<()> {
    let (dir, tmp) = temp_beside(path, data)?;
    tmp.persist_noclobber(path).map_err(|e| e.error)?;
    sync_dir(dir)
}

/// A synced temporary file holding `data` in `path`'s directory: created exclusively under a
/// random hidden name (never following a planted link), mode 0600, removed again when dropped
/// unpersisted.
fn temp_beside<'a>(path: &'a Path, data: &[u8]) -> io::Result<(&'a Path, tempfile::NamedTempFile)> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut tmp = tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(".tmp")
        .permissions(fs::Permissions::from_mode(0o600))
        .tempfile_in(dir)?;
    tmp.write_all(data)?;
    tmp.as_file().sync_all()?;
    Ok((dir, tmp))
}

/// Removes the stored file at `path` if it is empty (it then holds no committed frame), so a
/// failed first write leaves no file for `verify` to call an addition. Best effort.
pub fn remove_if_empty(path: &Path) {
    if fs::metadata(path).is_ok_and(|m| m.is_file() && m.len() == 0)
        && fs::remove_file(path).is_ok()
        && let Some(dir) = path.parent()
    {
        let _ = sync_dir(dir);
    }
}

/// Cuts the stored file at `path` back to `len` through a fresh handle (used after an error
/// took the writing handle with it).
pub fn cut_back(path: &Path, len: u64) -> Result<(), StoreError> {
    let file = open_options_0600()
        .write(true)
        .open(path)
        .map_err(io_err("cannot open the stored file", path))?;
    file.set_len(len)
        .and_then(|()| file.sync_data())
        .map_err(io_err("cannot cut the stored file", path))
}

/// The archive root.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
}

/// Proof that this process holds the store's write lock; released on drop.
pub struct StoreLock {
    _file: File,
}

impl Store {
    /// Creates the store's directories (0700) where missing. Existing content is left alone.
    pub fn create(root: &Path) -> Result<Store, StoreError> {
        for sub in [
            "",
            layout::LOGS_DIR,
            layout::LEDGER_DIR,
            layout::CHECKPOINTS_DIR,
            layout::STATE_DIR,
        ] {
            let dir = root.join(sub);
            create_dir_all_0700(&dir).map_err(io_err("cannot create the store directory", &dir))?;
        }
        Ok(Store {
            root: root.to_path_buf(),
        })
    }

    /// Opens an existing store.
    pub fn open(root: &Path) -> Result<Store, StoreError> {
        if !root.join(layout::LEDGER_DIR).is_dir() || !root.join(layout::LOGS_DIR).is_dir() {
            return Err(StoreError::Missing(root.to_path_buf()));
        }
        Ok(Store {
            root: root.to_path_buf(),
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The absolute path of a store-relative path.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    /// Takes the exclusive write lock, without waiting. `role` is the command taking it (`run`,
    /// `pull`, `verify`, …); it is written into the lock file beside the pid so that a process
    /// finding the store busy can say who holds it (and `run` can tell a short command, worth
    /// waiting for, from a second daemon, which is a mistake).
    pub fn lock(&self, role: &str) -> Result<StoreLock, StoreError> {
        let path = self.path(layout::LOCK_FILE);
        let mut file = open_options_0600()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io_err("cannot open the lock file", &path))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => {
                let text = fs::read_to_string(&path).unwrap_or_default();
                let mut words = text.split_whitespace();
                let pid = words.next().and_then(|w| w.parse::<u32>().ok());
                // The role is ours to parse: a short lowercase word, nothing else is shown.
                let role = words
                    .next()
                    .filter(|w| {
                        w.len() <= 32 && w.bytes().all(|b| b.is_ascii_lowercase() || b == b'-')
                    })
                    .map(str::to_owned);
                let holder = match (pid, &role) {
                    (Some(pid), Some(role)) => format!(" (pid {pid}, loghost {role})"),
                    (Some(pid), None) => format!(" (pid {pid})"),
                    _ => String::new(),
                };
                return Err(StoreError::Busy {
                    path: self.root.clone(),
                    holder,
                    role,
                });
            }
            Err(fs::TryLockError::Error(e)) => {
                return Err(io_err("cannot lock", &path)(e));
            }
        }
        // Best effort: the pid only makes the "busy" message friendlier.
        let _ = file.set_len(0);
        let _ = writeln!(file, "{} {role}", std::process::id());
        Ok(StoreLock { _file: file })
    }
}

/// A stored log file opened for appending frames at its committed end.
pub struct AppendFile {
    path: PathBuf,
    rel: String,
    out: BufWriter<File>,
    /// End of the last complete frame written (committed or not).
    len: u64,
}

impl AppendFile {
    /// Opens (creating it and its directories if needed) the stored file `rel`, whose committed
    /// end per the ledger is `committed`. Uncommitted bytes beyond it are cut away.
    pub fn open(
        store: &Store,
        _lock: &StoreLock,
        rel: &str,
        committed: u64,
    ) -> Result<AppendFile, StoreError> {
        let path = store.path(rel);
        let dir = path.parent().unwrap_or(store.root());
        create_dir_all_0700(dir).map_err(io_err("cannot create the directory", dir))?;
        let existed = path.exists();
        let file = open_options_0600()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io_err("cannot open the stored file", &path))?;
        if !existed {
            sync_dir(dir).map_err(io_err("cannot sync the directory", dir))?;
        }
        let actual = file
            .metadata()
            .map_err(io_err("cannot stat the stored file", &path))?
            .len();
        if actual < committed {
            return Err(StoreError::Damaged {
                path,
                actual,
                committed,
            });
        }
        if actual > committed {
            tracing::warn!(
                file = %path.display(),
                "cutting away {} uncommitted bytes left by an interrupted pull",
                actual - committed
            );
            file.set_len(committed)
                .and_then(|()| file.sync_data())
                .map_err(io_err("cannot cut the stored file", &path))?;
        }
        let mut out = BufWriter::with_capacity(256 * 1024, file);
        use std::io::Seek;
        out.seek(io::SeekFrom::Start(committed))
            .map_err(io_err("cannot seek in the stored file", &path))?;
        Ok(AppendFile {
            path,
            rel: rel.to_string(),
            out,
            len: committed,
        })
    }

    pub fn rel(&self) -> &str {
        &self.rel
    }

    /// End of the last complete frame.
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Starts a frame at the current end; the frame owns the file until it is finished.
    /// `level` is the codec's level (validated by the config). A zstd frame is compressed by two
    /// worker threads beside the caller, so hashing and compressing overlap and compression can
    /// use whichever core the network leaves free (measured: BENCHMARKS.md).
    pub fn frame(self, compression: Compression, level: i32) -> io::Result<FrameWriter> {
        let AppendFile {
            path,
            rel,
            out,
            len,
        } = self;
        let sink = HashingSink {
            out,
            hasher: Sha256::new(),
            count: 0,
        };
        let encoder = match compression {
            Compression::Zstd => {
                let mut e = zstd::stream::write::Encoder::new(sink, level)?;
                e.include_checksum(true)?;
                e.multithread(2)?;
                Encoder::Zstd(e)
            }
            Compression::Gzip => Encoder::Gzip(flate2::write::GzEncoder::new(
                sink,
                flate2::Compression::new(level.clamp(0, 9) as u32),
            )),
        };
        Ok(FrameWriter {
            path,
            rel,
            offset: len,
            encoder,
            raw: Sha256::new(),
            raw_len: 0,
        })
    }

    /// Closes the file, removing it if it holds nothing (no frame was ever committed to it), so
    /// an idle or failed round leaves no empty file for `verify` to wonder about.
    pub fn close(mut self) -> Result<(), StoreError> {
        if self.len > 0 {
            return Ok(());
        }
        let _ = self.out.flush();
        let actual = self.out.get_ref().metadata().map(|m| m.len()).unwrap_or(1);
        if actual == 0 {
            fs::remove_file(&self.path)
                .map_err(io_err("cannot remove the empty file", &self.path))?;
            if let Some(dir) = self.path.parent() {
                let _ = sync_dir(dir);
            }
        }
        Ok(())
    }

    /// Hands buffered bytes to the kernel (not durable yet).
    pub fn flush(&mut self) -> Result<(), StoreError> {
        self.out
            .flush()
            .map_err(io_err("cannot write the stored file", &self.path))
    }

    /// A second handle on the same file, to sync it from another thread.
    pub fn sync_handle(&self) -> Result<SyncHandle, StoreError> {
        let file = self
            .out
            .get_ref()
            .try_clone()
            .map_err(io_err("cannot duplicate the handle of", &self.path))?;
        Ok(SyncHandle {
            file,
            path: self.path.clone(),
        })
    }

    /// Flushes and syncs everything written so far.
    pub fn sync(&mut self) -> Result<(), StoreError> {
        self.out
            .flush()
            .and_then(|()| self.out.get_ref().sync_data())
            .map_err(io_err("cannot write the stored file", &self.path))
    }

    /// Cuts the file back to `len` (a frame start: used when a frame is not to be kept).
    /// Buffered bytes before `len` are written; those beyond it are dropped, never written
    /// (so a later flush cannot put them back behind the cut).
    pub fn truncated(self, len: u64) -> Result<AppendFile, StoreError> {
        use std::io::Seek;
        let AppendFile { path, rel, out, .. } = self;
        let (mut file, buffered) = out.into_parts();
        let buffered = buffered.unwrap_or_else(|panicked| panicked.into_inner());
        (|| {
            let pos = file.stream_position()?;
            if len > pos {
                let keep = ((len - pos) as usize).min(buffered.len());
                file.write_all(&buffered[..keep])?;
            }
            file.set_len(len)?;
            file.sync_data()?;
            file.seek(io::SeekFrom::Start(len)).map(|_| ())
        })()
        .map_err(io_err("cannot cut the stored file", &path))?;
        Ok(AppendFile {
            path,
            rel,
            out: BufWriter::with_capacity(256 * 1024, file),
            len,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Syncs a stored file from another thread than the one appending to it.
pub struct SyncHandle {
    file: File,
    path: PathBuf,
}

impl SyncHandle {
    /// Makes everything flushed to the file so far durable.
    pub fn sync(&self) -> Result<(), StoreError> {
        self.file
            .sync_data()
            .map_err(io_err("cannot sync the stored file", &self.path))
    }
}

struct HashingSink {
    out: BufWriter<File>,
    hasher: Sha256,
    count: u64,
}

impl Write for HashingSink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.out.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

enum Encoder {
    Zstd(zstd::stream::write::Encoder<'static, HashingSink>),
    Gzip(flate2::write::GzEncoder<HashingSink>),
}

/// Writes one frame: raw bytes in, compressed bytes out, both hashed. Owns the file meanwhile.
pub struct FrameWriter {
    path: PathBuf,
    rel: String,
    offset: u64,
    encoder: Encoder,
    raw: Sha256,
    raw_len: u64,
}

/// A complete frame, as the ledger records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoredFrame {
    pub offset: u64,
    pub length: u64,
    pub sha256: Hash,
    pub raw_len: u64,
    pub raw_sha256: Hash,
}

impl FrameWriter {
    pub fn write_raw(&mut self, data: &[u8]) -> io::Result<()> {
        self.raw.update(data);
        self.raw_len += data.len() as u64;
        match &mut self.encoder {
            Encoder::Zstd(e) => e.write_all(data),
            Encoder::Gzip(e) => e.write_all(data),
        }
    }

    pub fn raw_len(&self) -> u64 {
        self.raw_len
    }

    /// Ends the frame and gives the file back. The bytes are written but not yet synced: see
    /// [`AppendFile::sync`]. If the frame cannot be written out (a full disk), what reached the
    /// file of it is cut away again before the error is returned.
    pub fn finish(self) -> Result<(AppendFile, StoredFrame), StoreError> {
        let FrameWriter {
            path,
            rel,
            offset,
            encoder,
            raw,
            raw_len,
        } = self;
        let sink = match encoder {
            Encoder::Zstd(e) => e.finish(),
            Encoder::Gzip(e) => e.finish(),
        };
        // On error the encoder and its buffer are gone (dropped, flushed or not) by now.
        let sink = match sink {
            Ok(sink) => sink,
            Err(e) => {
                if let Err(cut) = cut_back(&path, offset) {
                    tracing::error!("{cut}");
                }
                return Err(io_err("cannot write the stored file", &path)(e));
            }
        };
        let frame = StoredFrame {
            offset,
            length: sink.count,
            sha256: Hash::from_hasher(sink.hasher),
            raw_len,
            raw_sha256: Hash::from_hasher(raw),
        };
        let file = AppendFile {
            path,
            rel,
            out: sink.out,
            len: offset + sink.count,
        };
        Ok((file, frame))
    }

    /// Drops the frame: the file is cut back to where the frame started.
    pub fn abort(self) -> Result<AppendFile, StoreError> {
        let offset = self.offset;
        let (file, _) = self.finish()?;
        file.truncated(offset)
    }
}

/// Decompresses one stored frame (or a run of frames) into `out`, bounded by what is read.
pub fn decompress(
    compression: Compression,
    stored: &[u8],
    out: &mut impl Write,
) -> io::Result<u64> {
    match compression {
        Compression::Zstd => {
            let mut d = zstd::stream::read::Decoder::new(stored)?;
            io::copy(&mut d, out)
        }
        Compression::Gzip => {
            let mut d = flate2::read::MultiGzDecoder::new(stored);
            io::copy(&mut d, out)
        }
    }
}

/// A reader of the raw content of the stored frame at `[offset, offset + length)` of `rel`,
/// decompressing as it goes; `None` when the file is no longer in the store (its day archived).
pub fn frame_reader(
    store: &Store,
    rel: &str,
    offset: u64,
    length: u64,
) -> Result<Option<Box<dyn io::Read>>, StoreError> {
    use std::io::Seek;
    let path = store.path(rel);
    let err = |what| io_err(what, &path);
    let mut f = match open_regular(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(err("cannot open")(e)),
    };
    f.seek(io::SeekFrom::Start(offset))
        .map_err(err("cannot read"))?;
    let stored = io::Read::take(f, length);
    Ok(Some(match compression_of(rel).unwrap_or_default() {
        Compression::Zstd => {
            Box::new(zstd::stream::read::Decoder::new(stored).map_err(err("cannot read"))?)
        }
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(stored)),
    }))
}

/// The raw content of the stored frame at `[offset, offset + length)` of `rel` (at most
/// `max_raw` bytes of it); `None` when the file is no longer in the store (its day archived).
pub fn read_frame(
    store: &Store,
    rel: &str,
    offset: u64,
    length: u64,
    max_raw: u64,
) -> Result<Option<Vec<u8>>, StoreError> {
    use std::io::Read;
    let Some(raw) = frame_reader(store, rel, offset, length)? else {
        return Ok(None);
    };
    let mut out = Vec::new();
    raw.take(max_raw)
        .read_to_end(&mut out)
        .map_err(io_err("cannot decompress a frame of", &store.path(rel)))?;
    Ok(Some(out))
}

/// The compression a stored file uses, from its name.
pub fn compression_of(rel: &str) -> Option<Compression> {
    if rel.ends_with(".zst") {
        Some(Compression::Zstd)
    } else if rel.ends_with(".gz") {
        Some(Compression::Gzip)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_append_and_decompress_as_one_stream() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::create(&dir.path().join("s")).expect("store");
        let lock = store.lock("test").expect("lock");
        for compression in [Compression::Zstd, Compression::Gzip] {
            let rel = format!("logs/h/2026-11-28/x{}", compression.suffix());
            let f = AppendFile::open(&store, &lock, &rel, 0).expect("open");
            let mut fw = f.frame(compression, 3).expect("frame");
            fw.write_raw(b"line one\n").expect("write");
            let (f, a) = fw.finish().expect("finish");
            let mut fw = f.frame(compression, 3).expect("frame");
            fw.write_raw(b"line two\n").expect("write");
            let (f, b) = fw.finish().expect("finish");
            let mut fw = f.frame(compression, 3).expect("frame");
            fw.write_raw(b"dropped\n").expect("write");
            let mut f = fw.abort().expect("abort");
            assert_eq!(f.len(), a.length + b.length);
            f.sync().expect("sync");
            assert_eq!(a.offset, 0);
            assert_eq!(b.offset, a.length);
            let bytes = fs::read(store.path(&rel)).expect("read");
            assert_eq!(bytes.len() as u64, a.length + b.length);
            assert_eq!(Hash::of(&bytes[..a.length as usize]), a.sha256);
            let mut out = Vec::new();
            decompress(compression, &bytes, &mut out).expect("decompress");
            assert_eq!(out, b"line one\nline two\n");
            // Reopening at the first frame's end cuts the second away.
            let f = AppendFile::open(&store, &lock, &rel, a.length).expect("reopen");
            assert_eq!(f.len(), a.length);
            assert_eq!(
                fs::metadata(store.path(&rel)).expect("meta").len(),
                a.length
            );
            drop(f);
            // A file shorter than committed is damage.
            assert!(matches!(
                AppendFile::open(&store, &lock, &rel, a.length + 1),
                Err(StoreError::Damaged { .. })
            ));
        }
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| fs::metadata(p).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode(store.root()), 0o700);
        assert_eq!(mode(&store.path("logs/h/2026-11-28")), 0o700);
        assert_eq!(mode(&store.path("logs/h/2026-11-28/x.zst")), 0o600);
    }

    #[test]
    fn files_written_whole_never_overwrite_and_leave_no_temporaries() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("00000000000000000007.ckpt");
        write_new(&path, b"first\n").expect("new");
        let err = write_new(&path, b"second\n").expect_err("never overwritten");
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(fs::read(&path).expect("read"), b"first\n");
        write_atomic(&dir.path().join("index.json"), b"{}").expect("atomic");
        write_atomic(&dir.path().join("index.json"), b"{}\n").expect("replaced");
        let mut names: Vec<String> = fs::read_dir(dir.path())
            .expect("list")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, ["00000000000000000007.ckpt", "index.json"]);
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(&path).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }

    #[test]
    fn lock_is_exclusive() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::create(dir.path()).expect("store");
        let _held = store.lock("test").expect("lock");
        let err = store.lock("verify").err().expect("second lock must fail");
        assert!(
            matches!(&err, StoreError::Busy { role: Some(r), .. } if r == "test"),
            "{err}"
        );
        let err = err.to_string();
        assert!(
            err.contains("in use") && err.contains("loghost test"),
            "{err}"
        );
    }
}
