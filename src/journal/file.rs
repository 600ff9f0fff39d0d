//! Reading one journal file (systemd's JOURNAL_FILE_FORMAT) through random-access reads.
//!
//! Only what is needed to export entries in order: the header, the main entry-array chain, ENTRY
//! objects and the DATA objects they reference (compressed with zstd, lz4 or xz). Hash tables,
//! FIELD objects and the per-DATA entry arrays are never followed. Every offset read from the
//! file is checked against the used part of the file (`header_size + arena_size`) and the object
//! it lands on is checked for its type and a sane size before anything is allocated, so a
//! hostile file costs bounded memory and time and ends in a [`JournalError`] naming what was
//! wrong.
//!
//! An active journal is modified in place by journald (header, hash tables, link fields, entry
//! array slots); ENTRY objects and DATA payloads never change once linked. A reader therefore
//! takes the header's `n_entries` once ([`JournalFile::open`]) and reads only entries linked
//! before it: an entry array slot that is still zero (or points nowhere) within that count means
//! the view is torn (see [`JournalError::is_torn`]): the caller reopens and tries again.

use std::collections::HashMap;
use std::io;

/// Random-access reads of a file.
pub trait ReadAt {
    /// Reads up to `len` bytes at `offset`; fewer only at the end of the file.
    fn read_at(&mut self, offset: u64, len: usize) -> io::Result<Vec<u8>>;

    /// Forget anything read ahead: the file is about to be read again from scratch.
    fn forget(&mut self) {}
}

impl ReadAt for std::fs::File {
    fn read_at(&mut self, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        use std::os::unix::fs::FileExt;
        let mut buf = vec![0u8; len];
        let mut got = 0;
        while got < len {
            match FileExt::read_at(self, &mut buf[got..], offset + got as u64) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        buf.truncate(got);
        Ok(buf)
    }
}

impl ReadAt for &[u8] {
    fn read_at(&mut self, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        let start = usize::try_from(offset)
            .unwrap_or(usize::MAX)
            .min(self.len());
        let end = start.saturating_add(len).min(self.len());
        Ok(self[start..end].to_vec())
    }
}

pub const SIGNATURE: &[u8; 8] = b"LPKSHHRH";

/// Incompatible flags.
pub const FLAG_COMPRESSED_XZ: u32 = 1;
pub const FLAG_COMPRESSED_LZ4: u32 = 2;
pub const FLAG_KEYED_HASH: u32 = 4;
pub const FLAG_COMPRESSED_ZSTD: u32 = 8;
pub const FLAG_COMPACT: u32 = 16;
const KNOWN_INCOMPATIBLE: u32 = 31;
/// Compatible flags: Forward Secure Sealing.
pub const FLAG_SEALED: u32 = 1;

const OBJECT_DATA: u8 = 1;
const OBJECT_ENTRY: u8 = 3;
const OBJECT_ENTRY_ARRAY: u8 = 6;

const OBJ_XZ: u8 = 1;
const OBJ_LZ4: u8 = 2;
const OBJ_ZSTD: u8 = 4;

const OBJECT_HEADER: u64 = 16;
/// The smallest header a reader can use (everything up to `tail_entry_monotonic`).
const MIN_HEADER: u64 = 208;
/// A header that has `tail_entry_array_offset` and `tail_entry_array_n_entries` (systemd 252).
const TAIL_HEADER: u64 = 264;
/// The header's state of a file journald has open for writing.
pub const STATE_ONLINE: u8 = 1;

/// The largest field (after decompression) loghost reads; a larger one is an error for that
/// entry (journald's own limit for a field is far larger, but nothing but coredumps gets near).
pub const MAX_FIELD: usize = 64 << 20;
/// The largest entry, all fields together.
pub const MAX_ENTRY: usize = 128 << 20;
/// The most fields in one entry (journald accepts at most 1024 from a client, plus its own).
pub const MAX_ITEMS: u64 = 4096;
/// The largest entry-array object (2^20 slots of 8 bytes).
const MAX_ARRAY_BYTES: u64 = (8 << 20) + 24;

/// Why a journal file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("read failed at offset {offset}: {err}")]
    Io { offset: u64, err: io::Error },
    #[error("not a journal file (bad signature)")]
    NotJournal,
    #[error(
        "unsupported journal feature: incompatible flag(s) {0:#x} (a newer systemd?); this \
         file is skipped, the host's other logs are still collected"
    )]
    UnknownFlags(u32),
    #[error("damaged journal: {0}")]
    Damaged(String),
    #[error("the journal changed while it was read ({0}); read again")]
    Torn(String),
    #[error("an entry's field is too large ({size} bytes; at most {max} are read)")]
    TooLarge { size: u64, max: usize },
}

impl JournalError {
    /// The view was inconsistent in a way journald's own writing explains: read again.
    pub fn is_torn(&self) -> bool {
        matches!(self, JournalError::Torn(_))
    }
}

fn damaged(what: impl Into<String>) -> JournalError {
    JournalError::Damaged(what.into())
}

/// A journal file's header, as read once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub compatible_flags: u32,
    pub incompatible_flags: u32,
    /// 0 offline, 1 online (being written), 2 archived.
    pub state: u8,
    pub file_id: [u8; 16],
    pub machine_id: [u8; 16],
    pub seqnum_id: [u8; 16],
    pub header_size: u64,
    pub arena_size: u64,
    pub n_entries: u64,
    pub head_entry_seqnum: u64,
    pub tail_entry_seqnum: u64,
    pub entry_array_offset: u64,
    pub head_entry_realtime: u64,
    pub tail_entry_realtime: u64,
    /// The last entry array of the main chain and how many entries it holds (systemd ≥ 252).
    pub tail_entry_array: Option<(u64, u64)>,
}

impl Header {
    pub fn compact(&self) -> bool {
        self.incompatible_flags & FLAG_COMPACT != 0
    }
    pub fn sealed(&self) -> bool {
        self.compatible_flags & FLAG_SEALED != 0
    }
    /// End of the used part of the file.
    pub fn used_end(&self) -> u64 {
        self.header_size.saturating_add(self.arena_size)
    }
}

/// One entry: its place and identity, and its fields (`NAME=value`, binary-safe) in stored order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Offset of the ENTRY object in the file.
    pub offset: u64,
    pub seqnum: u64,
    pub realtime: u64,
    pub monotonic: u64,
    pub boot_id: [u8; 16],
    pub xor_hash: u64,
    pub fields: Vec<Vec<u8>>,
}

/// Reads through a cache of aligned windows (the reads of an entry and its data are small and
/// clustered; over SFTP each miss is a round trip). Misses that follow each other through the
/// file read ahead, up to [`MAX_READ_AHEAD`] windows at once: reading new entries walks forward.
/// The least recently used window goes when the cache is full.
pub struct Cached<R: ReadAt> {
    inner: R,
    window: u64,
    max_windows: usize,
    /// base → (bytes, last use).
    windows: HashMap<u64, (Vec<u8>, u64)>,
    tick: u64,
    /// The reads in flight through the file, as streams (reading entries walks forward through
    /// the entry array and, elsewhere, through the entries and their data): for each, the
    /// window after its last read and how many of its reads in a row were sequential; the
    /// least recently used stream goes when a new one starts.
    streams: [(u64, u32, u64); STREAMS],
    /// Reads issued to `inner`, and bytes read (for tests and benchmarks).
    pub misses: u64,
    pub bytes: u64,
}

/// How many sequential streams are followed at once.
const STREAMS: usize = 4;

/// The most windows one sequential miss reads.
pub const MAX_READ_AHEAD: u64 = 16;

impl<R: ReadAt> Cached<R> {
    /// `window`: bytes a miss reads (a power of two); at most `max_windows` are kept.
    pub fn new(inner: R, window: u64, max_windows: usize) -> Cached<R> {
        Cached {
            inner,
            window: window.max(4096).next_power_of_two(),
            max_windows: max_windows.max(2),
            windows: HashMap::new(),
            tick: 0,
            streams: [(u64::MAX, 0, 0); STREAMS],
            misses: 0,
            bytes: 0,
        }
    }

    /// Forgets everything cached (before reading a file again after a torn view).
    pub fn clear(&mut self) {
        self.windows.clear();
        self.streams = [(u64::MAX, 0, 0); STREAMS];
        self.inner.forget();
    }

    pub fn inner(&self) -> &R {
        &self.inner
    }

    fn fetch(&mut self, base: u64) -> Result<(), JournalError> {
        self.tick += 1;
        let k = match self.streams.iter().position(|s| s.0 == base) {
            Some(k) => {
                self.streams[k].1 = (self.streams[k].1 + 1).min(8);
                k
            }
            None => {
                let k = (0..STREAMS).min_by_key(|&k| self.streams[k].2).unwrap_or(0);
                self.streams[k] = (base, 0, 0);
                k
            }
        };
        self.streams[k].2 = self.tick;
        let run = self.streams[k].1;
        let n = (1u64 << run)
            .min(MAX_READ_AHEAD)
            .min(self.max_windows as u64 / 2)
            .max(1);
        let data = self
            .inner
            .read_at(base, (n * self.window) as usize)
            .map_err(|err| JournalError::Io { offset: base, err })?;
        self.misses += 1;
        self.bytes += data.len() as u64;
        let got = (data.len() as u64).div_ceil(self.window).max(1);
        self.streams[k].0 = base + got * self.window;
        while self.windows.len() + got as usize > self.max_windows {
            let Some(oldest) = self
                .windows
                .iter()
                .min_by_key(|(_, (_, t))| *t)
                .map(|(b, _)| *b)
            else {
                break;
            };
            self.windows.remove(&oldest);
        }
        for k in 0..got {
            let from = (k * self.window) as usize;
            let to = (from + self.window as usize).min(data.len());
            self.tick += 1;
            self.windows.insert(
                base + k * self.window,
                (data[from.min(to)..to].to_vec(), self.tick),
            );
        }
        Ok(())
    }

    /// Exactly `len` bytes at `offset` (an error if the file ends first).
    pub fn read(&mut self, offset: u64, len: usize) -> Result<Vec<u8>, JournalError> {
        let mut out = Vec::with_capacity(len);
        let mut pos = offset;
        while out.len() < len {
            let base = pos & !(self.window - 1);
            if !self.windows.contains_key(&base) {
                self.fetch(base)?;
            }
            self.tick += 1;
            let tick = self.tick;
            let window = self.window;
            let Some((w, used)) = self.windows.get_mut(&base) else {
                return Err(damaged("cache window lost"));
            };
            *used = tick;
            let from = (pos - base) as usize;
            if from >= w.len() {
                return Err(damaged(format!(
                    "the file ends before offset {pos} (it was cut?)"
                )));
            }
            let take = (len - out.len()).min(w.len() - from);
            out.extend_from_slice(&w[from..from + take]);
            pos += take as u64;
            if (w.len() as u64) < window && out.len() < len && from + take == w.len() {
                return Err(damaged(format!(
                    "the file ends before offset {} (it was cut?)",
                    offset + len as u64
                )));
            }
        }
        Ok(out)
    }
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut x = [0u8; 8];
    x.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(x)
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut x = [0u8; 4];
    x.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(x)
}

fn id_at(b: &[u8], at: usize) -> [u8; 16] {
    let mut x = [0u8; 16];
    x.copy_from_slice(&b[at..at + 16]);
    x
}

/// One open journal file.
pub struct JournalFile<R: ReadAt> {
    pub header: Header,
    src: Cached<R>,
    /// The main entry-array chain as walked so far: (offset, first entry index, capacity).
    arrays: Vec<(u64, u64, u64)>,
    chain_done: bool,
    /// The chain's last array as the header gives it, once checked: (offset, first entry
    /// index, capacity); `Some(None)` when it cannot be used.
    tail: Option<Option<(u64, u64, u64)>>,
    /// Whether that shortcut may be taken ([`JournalFile::walk_only`]).
    tail_allowed: bool,
    zstd: Option<zstd::bulk::Decompressor<'static>>,
    /// Small DATA payloads by offset: most fields of an entry (host, unit, boot, pid…) are
    /// shared with the entries around it.
    data_cache: HashMap<u64, Vec<u8>>,
    data_cache_bytes: usize,
}

/// DATA payloads up to this size are cached, up to [`DATA_CACHE_BYTES`] in all.
const DATA_CACHE_ITEM: usize = 1024;
const DATA_CACHE_BYTES: usize = 8 << 20;

impl<R: ReadAt> JournalFile<R> {
    /// Reads and checks the header.
    pub fn open(mut src: Cached<R>) -> Result<JournalFile<R>, JournalError> {
        let mut h = src.read(0, MIN_HEADER as usize).map_err(|e| match e {
            JournalError::Damaged(_) => JournalError::NotJournal,
            e => e,
        })?;
        // systemd ≥ 252 also records where the main entry-array chain ends.
        if u64_at(&h, 88) >= TAIL_HEADER
            && let Ok(more) = src.read(MIN_HEADER, (TAIL_HEADER - MIN_HEADER) as usize)
        {
            h.extend_from_slice(&more);
        }
        if &h[0..8] != SIGNATURE {
            return Err(JournalError::NotJournal);
        }
        let header = Header {
            compatible_flags: u32_at(&h, 8),
            incompatible_flags: u32_at(&h, 12),
            state: h[16],
            file_id: id_at(&h, 24),
            machine_id: id_at(&h, 40),
            seqnum_id: id_at(&h, 72),
            header_size: u64_at(&h, 88),
            arena_size: u64_at(&h, 96),
            n_entries: u64_at(&h, 152),
            tail_entry_seqnum: u64_at(&h, 160),
            head_entry_seqnum: u64_at(&h, 168),
            entry_array_offset: u64_at(&h, 176),
            head_entry_realtime: u64_at(&h, 184),
            tail_entry_realtime: u64_at(&h, 192),
            tail_entry_array: (h.len() as u64 >= TAIL_HEADER)
                .then(|| (u64::from(u32_at(&h, 256)), u64::from(u32_at(&h, 260)))),
        };
        let unknown = header.incompatible_flags & !KNOWN_INCOMPATIBLE;
        if unknown != 0 {
            return Err(JournalError::UnknownFlags(unknown));
        }
        if header.header_size < MIN_HEADER || !header.header_size.is_multiple_of(8) {
            return Err(damaged(format!("header size {}", header.header_size)));
        }
        if header.used_end() < header.header_size || header.used_end() > 1 << 48 {
            return Err(damaged(format!("arena size {}", header.arena_size)));
        }
        if header.compact() && header.used_end() > u64::from(u32::MAX) {
            return Err(damaged("a compact file larger than 4 GiB"));
        }
        // Every entry takes an ENTRY object of at least 64 bytes.
        if header.n_entries > header.arena_size / 64 {
            return Err(damaged(format!(
                "{} entries cannot fit in {} bytes",
                header.n_entries, header.arena_size
            )));
        }
        Ok(JournalFile {
            header,
            src,
            arrays: Vec::new(),
            chain_done: false,
            tail: None,
            tail_allowed: true,
            zstd: None,
            data_cache: HashMap::new(),
            data_cache_bytes: 0,
        })
    }

    /// Misses of the read cache so far.
    pub fn reads(&self) -> u64 {
        self.src.misses
    }

    /// Bytes read from the file so far (through the cache).
    pub fn bytes_read(&self) -> u64 {
        self.src.bytes
    }

    pub fn source(&self) -> &Cached<R> {
        &self.src
    }

    pub fn into_source(self) -> Cached<R> {
        self.src
    }

    fn check_offset(&self, offset: u64, what: &str) -> Result<(), JournalError> {
        if offset < self.header.header_size
            || !offset.is_multiple_of(8)
            || offset.saturating_add(OBJECT_HEADER) > self.header.used_end()
        {
            return Err(damaged(format!(
                "{what} at offset {offset} is outside the file"
            )));
        }
        Ok(())
    }

    /// Reads the object at `offset` of type `kind`, at most `max` bytes of it: its size and
    /// the bytes read (header included).
    fn object(
        &mut self,
        offset: u64,
        kind: u8,
        min: u64,
        max: u64,
        what: &str,
    ) -> Result<(u64, Vec<u8>), JournalError> {
        self.check_offset(offset, what)?;
        let h = self.src.read(offset, OBJECT_HEADER as usize)?;
        let size = u64_at(&h, 8);
        if h[0] != kind {
            // Type 0 (unused) where a linked object should be: journald has not written it
            // out as far as this view goes.
            return Err(if h[0] == 0 {
                JournalError::Torn(format!("no {what} yet at offset {offset}"))
            } else {
                damaged(format!(
                    "{what} at offset {offset} has object type {}",
                    h[0]
                ))
            });
        }
        if size < min || offset.saturating_add(size) > self.header.used_end() {
            return Err(damaged(format!(
                "{what} at offset {offset} has an impossible size {size}"
            )));
        }
        if size > max {
            return Err(JournalError::TooLarge {
                size,
                max: max as usize,
            });
        }
        let body = self.src.read(offset, size as usize)?;
        Ok((size, body))
    }

    fn item_size(&self) -> u64 {
        if self.header.compact() { 4 } else { 8 }
    }

    /// Walks the main entry-array chain until it covers entry index `want` (or ends).
    fn walk_chain(&mut self, want: u64) -> Result<(), JournalError> {
        while !self.chain_done {
            let covered = self.arrays.last().map_or(0, |&(_, first, cap)| first + cap);
            if covered > want {
                return Ok(());
            }
            let next = match self.arrays.last() {
                None => self.header.entry_array_offset,
                Some(&(off, _, _)) => {
                    let b = self.src.read(off + OBJECT_HEADER, 8)?;
                    let next = u64_at(&b, 0);
                    if next != 0 && next <= off {
                        return Err(damaged(format!(
                            "entry array at offset {off} links back to offset {next}"
                        )));
                    }
                    next
                }
            };
            if next == 0 {
                self.chain_done = true;
                break;
            }
            let cap = self.entry_array_capacity(next)?;
            self.arrays.push((next, covered, cap));
            if self.arrays.len() > 4096 {
                return Err(damaged("more than 4096 entry arrays in the chain"));
            }
        }
        Ok(())
    }

    /// How many slots the entry array at `off` has, once its place, type and size are checked.
    fn entry_array_capacity(&mut self, off: u64) -> Result<u64, JournalError> {
        self.check_offset(off, "entry array")?;
        let h = self.src.read(off, 24)?;
        if h[0] != OBJECT_ENTRY_ARRAY {
            return Err(if h[0] == 0 {
                JournalError::Torn(format!("no entry array yet at offset {off}"))
            } else {
                damaged(format!("entry array at offset {off} has type {}", h[0]))
            });
        }
        let size = u64_at(&h, 8);
        if size < 24 + self.item_size()
            || size > MAX_ARRAY_BYTES
            || off.saturating_add(size) > self.header.used_end()
        {
            return Err(damaged(format!(
                "entry array at offset {off} has an impossible size {size}"
            )));
        }
        Ok((size - 24) / self.item_size())
    }

    /// The offset of entry number `i` (0-based) of the file, `i < n_entries`.
    pub fn entry_offset(&mut self, i: u64) -> Result<u64, JournalError> {
        if i >= self.header.n_entries {
            return Err(damaged(format!(
                "entry {i} beyond the file's {}",
                self.header.n_entries
            )));
        }
        let via_tail = self
            .tail_array()?
            .filter(|&(_, first, cap)| first <= i && i < first + cap);
        let found = match via_tail {
            Some((off, first, _)) => Some((off, first)),
            None => {
                self.walk_chain(i)?;
                self.arrays
                    .iter()
                    .rev()
                    .find(|&&(_, first, cap)| first <= i && i < first + cap)
                    .map(|&(off, first, _)| (off, first))
            }
        };
        let Some((off, first)) = found else {
            return Err(JournalError::Torn(format!(
                "the entry arrays end before entry {i} of {}",
                self.header.n_entries
            )));
        };
        let at = off + 24 + (i - first) * self.item_size();
        let b = self.src.read(at, self.item_size() as usize)?;
        let p = if self.header.compact() {
            u64::from(u32_at(&b, 0))
        } else {
            u64_at(&b, 0)
        };
        if p == 0 {
            return Err(JournalError::Torn(format!("entry {i} is not linked yet")));
        }
        Ok(p)
    }

    /// The last array of the main chain, from the header, for a file nobody is writing (an
    /// ONLINE file's header may be caught between updating the array's count and the file's:
    /// such a file walks the chain): the newest entries are then one read away instead of one
    /// read per array.
    fn tail_array(&mut self) -> Result<Option<(u64, u64, u64)>, JournalError> {
        if !self.tail_allowed {
            return Ok(None);
        }
        if let Some(t) = self.tail {
            return Ok(t);
        }
        let mut t = None;
        if let Some((off, n)) = self.header.tail_entry_array
            && self.header.state != STATE_ONLINE
            && off != 0
            && n > 0
            && n <= self.header.n_entries
        {
            // A header pointing nowhere usable (a cut file, say) only means walking the chain;
            // only a failed read is an error.
            match self.entry_array_capacity(off) {
                Ok(cap) if n <= cap => t = Some((off, self.header.n_entries - n, cap)),
                Err(e @ JournalError::Io { .. }) => return Err(e),
                _ => {}
            }
        }
        self.tail = Some(t);
        Ok(t)
    }

    /// `true`: find entries only by walking the entry-array chain, as `journalctl` does, never
    /// through the header's shortcut to its last array. For checks of what was collected: a
    /// header pointing at a stale copy of the array must not show loghost entries that the
    /// chain (what the server's own tools read) no longer links.
    pub fn walk_only(&mut self, yes: bool) {
        self.tail_allowed = !yes;
    }

    /// The index of the first entry whose offset is greater than `after` (entries are linked in
    /// increasing offset order): `n_entries` when there is none. Reads O(log n) slots.
    pub fn first_after(&mut self, after: u64) -> Result<u64, JournalError> {
        let (mut lo, mut hi) = (0u64, self.header.n_entries);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if self.entry_offset(mid)? <= after {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        Ok(lo)
    }

    /// The offset of the entry with sequence number `seqnum` among the file's first `within`
    /// entries, if it is there (entries are in increasing seqnum order: a binary search
    /// reading O(log n) entry headers).
    pub fn find_seqnum(&mut self, seqnum: u64, within: u64) -> Result<Option<u64>, JournalError> {
        let (mut lo, mut hi) = (0u64, within.min(self.header.n_entries));
        // A file's seqnums are usually consecutive (gaps only where another file of the same
        // seqnum id took numbers): look first where that puts it.
        let mut guess = seqnum
            .checked_sub(self.header.head_entry_seqnum)
            .filter(|&g| g < hi);
        while lo < hi {
            let mid = guess.take().unwrap_or(lo + (hi - lo) / 2);
            let off = self.entry_offset(mid)?;
            self.check_offset(off, "entry")?;
            let h = self.src.read(off, 24)?;
            if h[0] != OBJECT_ENTRY {
                return Err(damaged(format!(
                    "entry {mid} at offset {off} is not an entry"
                )));
            }
            let s = u64_at(&h, 16);
            match s.cmp(&seqnum) {
                std::cmp::Ordering::Equal => return Ok(Some(off)),
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
            }
        }
        Ok(None)
    }

    /// Reads the entry at `offset` with all its fields.
    pub fn entry_at(&mut self, offset: u64) -> Result<Entry, JournalError> {
        let item = if self.header.compact() { 4 } else { 16 };
        let max = 64 + MAX_ITEMS * item;
        let (size, b) = self.object(offset, OBJECT_ENTRY, 64, max, "entry")?;
        let n = (size - 64) / item;
        let mut e = Entry {
            offset,
            seqnum: u64_at(&b, 16),
            realtime: u64_at(&b, 24),
            monotonic: u64_at(&b, 32),
            boot_id: id_at(&b, 40),
            xor_hash: u64_at(&b, 56),
            fields: Vec::with_capacity(n as usize),
        };
        let mut total = 0usize;
        for k in 0..n as usize {
            let at = 64 + k * item as usize;
            let data = if self.header.compact() {
                u64::from(u32_at(&b, at))
            } else {
                u64_at(&b, at)
            };
            let field = self.data(data)?;
            total = total.saturating_add(field.len());
            if total > MAX_ENTRY {
                return Err(JournalError::TooLarge {
                    size: total as u64,
                    max: MAX_ENTRY,
                });
            }
            e.fields.push(field);
        }
        Ok(e)
    }

    /// The payload of the DATA object at `offset`, decompressed.
    fn data(&mut self, offset: u64) -> Result<Vec<u8>, JournalError> {
        if let Some(d) = self.data_cache.get(&offset) {
            return Ok(d.clone());
        }
        let d = self.read_data(offset)?;
        if d.len() <= DATA_CACHE_ITEM {
            if self.data_cache_bytes + d.len() > DATA_CACHE_BYTES {
                self.data_cache.clear();
                self.data_cache_bytes = 0;
            }
            self.data_cache_bytes += d.len() + 64;
            self.data_cache.insert(offset, d.clone());
        }
        Ok(d)
    }

    fn read_data(&mut self, offset: u64) -> Result<Vec<u8>, JournalError> {
        let start = if self.header.compact() { 72 } else { 64 };
        // A compressed payload never exceeds what it expands to by more than a few bytes.
        let max = start + MAX_FIELD as u64 + 64;
        let (_, b) = self.object(offset, OBJECT_DATA, start, max, "data object")?;
        let flags = b[1];
        let payload = &b[start as usize..];
        let allowed = |flag: u32| self.header.incompatible_flags & flag != 0;
        let out = match flags & (OBJ_XZ | OBJ_LZ4 | OBJ_ZSTD) {
            0 => payload.to_vec(),
            OBJ_ZSTD if allowed(FLAG_COMPRESSED_ZSTD) => self.unzstd(payload, offset)?,
            OBJ_LZ4 if allowed(FLAG_COMPRESSED_LZ4) => unlz4(payload, offset)?,
            OBJ_XZ if allowed(FLAG_COMPRESSED_XZ) => unxz(payload, offset)?,
            f => {
                return Err(damaged(format!(
                    "data object at offset {offset} has compression flags {f:#x} the file's \
                     header does not announce"
                )));
            }
        };
        let name = out.iter().position(|&b| b == b'=').map(|eq| &out[..eq]);
        if !name.is_some_and(valid_field_name) {
            return Err(damaged(format!(
                "data object at offset {offset} is not a FIELD=value pair with a valid field \
                 name (A-Z, 0-9 and _, not starting with __)"
            )));
        }
        Ok(out)
    }

    fn unzstd(&mut self, payload: &[u8], offset: u64) -> Result<Vec<u8>, JournalError> {
        let bad = |why: String| damaged(format!("data object at offset {offset}: zstd: {why}"));
        let size = match zstd::zstd_safe::get_frame_content_size(payload) {
            Ok(Some(n)) => n,
            // journald always records the size; without it, refuse rather than guess.
            Ok(None) => return Err(bad("no content size".into())),
            Err(_) => return Err(bad("not a zstd frame".into())),
        };
        if size > MAX_FIELD as u64 {
            return Err(JournalError::TooLarge {
                size,
                max: MAX_FIELD,
            });
        }
        if self.zstd.is_none() {
            self.zstd = Some(zstd::bulk::Decompressor::new().map_err(|e| bad(e.to_string()))?);
        }
        let d = self
            .zstd
            .as_mut()
            .ok_or_else(|| bad("no decompressor".into()))?;
        let out = d
            .decompress(payload, size as usize)
            .map_err(|e| bad(e.to_string()))?;
        if out.len() as u64 != size {
            return Err(bad(format!(
                "{} bytes where {size} were announced",
                out.len()
            )));
        }
        Ok(out)
    }
}

fn unlz4(payload: &[u8], offset: u64) -> Result<Vec<u8>, JournalError> {
    if payload.len() < 8 {
        return Err(damaged(format!(
            "data object at offset {offset}: lz4: too short"
        )));
    }
    let size = u64_at(payload, 0);
    if size > MAX_FIELD as u64 {
        return Err(JournalError::TooLarge {
            size,
            max: MAX_FIELD,
        });
    }
    let mut out = vec![0u8; size as usize];
    let n = lz4_flex::block::decompress_into(&payload[8..], &mut out)
        .map_err(|e| damaged(format!("data object at offset {offset}: lz4: {e}")))?;
    if n != out.len() {
        return Err(damaged(format!(
            "data object at offset {offset}: lz4: {n} bytes where {size} were announced"
        )));
    }
    Ok(out)
}

/// A writer that refuses to grow past [`MAX_FIELD`].
struct Limited(Vec<u8>);

impl io::Write for Limited {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.0.len() + buf.len() > MAX_FIELD {
            return Err(io::Error::other("too large"));
        }
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn unxz(payload: &[u8], offset: u64) -> Result<Vec<u8>, JournalError> {
    let mut out = Limited(Vec::new());
    let mut input = io::BufReader::new(payload);
    lzma_rs::xz_decompress(&mut input, &mut out).map_err(|e| match e {
        lzma_rs::error::Error::IoError(io) if io.to_string() == "too large" => {
            JournalError::TooLarge {
                size: MAX_FIELD as u64 + 1,
                max: MAX_FIELD,
            }
        }
        e => damaged(format!("data object at offset {offset}: xz: {e}")),
    })?;
    Ok(out.0)
}

/// A field name journald can have written: `A-Z`, `0-9` and `_`, at most 64 bytes, not starting
/// with a digit or with `__` (journald's own address fields, never stored). Anything else in a
/// file was not written by journald, and could forge lines of the export format.
pub fn valid_field_name(name: &[u8]) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && !name[0].is_ascii_digit()
        && !name.starts_with(b"__")
        && name
            .iter()
            .all(|&c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == b'_')
}

/// 32 lowercase hex digits, as systemd prints ids.
pub fn id_hex(id: &[u8; 16]) -> String {
    hex::encode(id)
}

/// Reads a whole file's entries in order (tests, the fuzz target, small files).
pub fn read_all<R: ReadAt>(
    src: R,
    mut each: impl FnMut(&Header, Entry),
) -> Result<Header, JournalError> {
    let mut f = JournalFile::open(Cached::new(src, 64 << 10, 64))?;
    let mut last = 0u64;
    for i in 0..f.header.n_entries {
        let off = f.entry_offset(i)?;
        if off <= last {
            return Err(damaged(format!(
                "entry {i} at offset {off} is linked out of order"
            )));
        }
        last = off;
        let e = f.entry_at(off)?;
        each(&f.header, e);
    }
    Ok(f.header.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_is_not_a_journal() {
        let junk: &[u8] = b"hello world, certainly not a journal file at all";
        assert!(matches!(
            read_all(junk, |_, _| {}),
            Err(JournalError::NotJournal)
        ));
    }

    #[test]
    fn unknown_incompatible_flags_are_refused() {
        let mut h = vec![0u8; 264];
        h[..8].copy_from_slice(SIGNATURE);
        h[12..16].copy_from_slice(&32u32.to_le_bytes());
        h[88..96].copy_from_slice(&264u64.to_le_bytes());
        let e = read_all(&h[..], |_, _| {}).expect_err("refused");
        assert!(matches!(e, JournalError::UnknownFlags(32)), "{e}");
        assert!(e.to_string().contains("0x20"), "{e}");
    }

    /// A minimal journal (regular, uncompressed, two entries, one entry array), as
    /// `journalctl` reads it; the fuzz target's seed.
    const TINY: &[u8] = include_bytes!("../../fuzz/seeds/journal_file/tiny.journal");

    fn put(b: &mut [u8], at: usize, v: u64) {
        b[at..at + 8].copy_from_slice(&v.to_le_bytes());
    }

    fn read(b: &[u8]) -> Result<Vec<Entry>, JournalError> {
        let mut out = Vec::new();
        read_all(b, |_, e| out.push(e))?;
        Ok(out)
    }

    #[test]
    fn the_tiny_journal_reads() {
        let e = read(TINY).expect("read");
        assert_eq!(e.len(), 2);
        assert_eq!(e[1].seqnum, 2);
        assert_eq!(
            e[1].fields.last().map(|f| &f[..]),
            Some(&b"BIN=\x00\x01"[..])
        );
    }

    #[test]
    fn hostile_files_end_in_an_error_quickly() {
        let array = u64_at(TINY, 176) as usize;
        let first_entry = u64_at(TINY, array + 24) as usize;
        let first_data = u64_at(TINY, first_entry + 64) as usize;
        let started = std::time::Instant::now();
        type Mutation = Box<dyn Fn(&mut Vec<u8>)>;
        let cases: Vec<(&str, Mutation)> = vec![
            (
                "array size near 2^64",
                Box::new(move |b| put(b, array + 8, u64::MAX - 7)),
            ),
            (
                "entry outside",
                Box::new(move |b| put(b, array + 24, 1 << 40)),
            ),
            (
                "entry unaligned",
                Box::new(move |b| put(b, array + 24, first_entry as u64 + 3)),
            ),
            (
                "data outside",
                Box::new(move |b| put(b, first_entry + 64, u64::MAX - 15)),
            ),
            (
                "data size huge",
                Box::new(move |b| put(b, first_data + 8, u64::MAX)),
            ),
            (
                "entries beyond the arena",
                Box::new(|b| put(b, 152, u64::MAX / 2)),
            ),
            (
                "an entry past the end of a cut file",
                Box::new(move |b| {
                    put(b, 96, 1 << 40);
                    put(b, array + 24, 1 << 20);
                }),
            ),
            (
                "entry is data",
                Box::new(move |b| put(b, array + 24, first_data as u64)),
            ),
            (
                "zstd bomb",
                Box::new(move |b| {
                    b[12] = FLAG_COMPRESSED_ZSTD as u8;
                    b[first_data + 1] = OBJ_ZSTD;
                    // A zstd frame header announcing 2^40 bytes of content.
                    let frame = [0x28, 0xb5, 0x2f, 0xfd, 0xc0, 0, 0, 0, 0, 0, 1, 0, 0];
                    b[first_data + 64..first_data + 64 + frame.len()].copy_from_slice(&frame);
                }),
            ),
            (
                "lz4 bomb",
                Box::new(move |b| {
                    b[12] = FLAG_COMPRESSED_LZ4 as u8;
                    b[first_data + 1] = OBJ_LZ4;
                    put(b, first_data + 64, 1 << 40);
                }),
            ),
            (
                "undeclared compression",
                Box::new(move |b| b[first_data + 1] = OBJ_XZ),
            ),
        ];
        for (what, mutate) in cases {
            let mut b = TINY.to_vec();
            mutate(&mut b);
            let e = read(&b).expect_err(what);
            assert!(
                !e.is_torn() || what == "entry is data",
                "{what}: a damaged file is not a torn view: {e}"
            );
        }
        // An entry-array chain that links back on itself ends in an error.
        let mut b = TINY.to_vec();
        put(&mut b, 152, 5); // more entries than the first array holds
        put(&mut b, array + 16, array as u64);
        let mut f = JournalFile::open(Cached::new(&b[..], 4096, 4)).expect("open");
        let e = f.entry_offset(4).expect_err("loop");
        assert!(e.to_string().contains("links back"), "{e}");
        // A chain that ends early while the header counts more entries: torn (journald is
        // mid-write), not damage.
        let mut b = TINY.to_vec();
        put(&mut b, array + 32, 0);
        assert!(read(&b).expect_err("unlinked").is_torn());
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
    }

    #[test]
    fn the_header_s_tail_array_is_a_shortcut_never_a_trap() {
        let array = u64_at(TINY, 176);
        let put32 =
            |b: &mut Vec<u8>, at: usize, v: u32| b[at..at + 4].copy_from_slice(&v.to_le_bytes());
        let expected = read(TINY).expect("read");
        // Right: the same entries. Pointing anywhere else, or counting more than the file
        // has: ignored, the chain is walked.
        for (off, n) in [
            (array as u32, 2),
            (8, 2),
            (array as u32 + 8, 2),
            (1 << 30, 2),
            (array as u32, 9),
        ] {
            let mut b = TINY.to_vec();
            put32(&mut b, 256, off);
            put32(&mut b, 260, n);
            assert_eq!(read(&b).expect("read"), expected, "tail ({off}, {n})");
        }
    }

    #[test]
    fn checks_walk_the_chain_not_a_stale_copy_the_header_points_at() {
        // The newest entry unlinked in the chain (its slot now repeats the one before), a
        // copy of the old array appended and named by the header as the chain's last.
        let array = u64_at(TINY, 176) as usize;
        let size = u64_at(TINY, array + 8) as usize;
        let mut b = TINY.to_vec();
        let copy = b.len();
        b.extend_from_slice(&TINY[array..array + size]);
        while !b.len().is_multiple_of(8) {
            b.push(0);
        }
        let used = b.len() as u64 - 264;
        put(&mut b, 96, used);
        let first = u64_at(&b, array + 24);
        put(&mut b, array + 32, first);
        b[256..260].copy_from_slice(&(copy as u32).to_le_bytes());
        b[260..264].copy_from_slice(&2u32.to_le_bytes());
        let newest = u64_at(TINY, array + 32);
        let mut f = JournalFile::open(Cached::new(&b[..], 4096, 8)).expect("open");
        assert_eq!(f.entry_offset(1).expect("via the header"), newest);
        let mut f = JournalFile::open(Cached::new(&b[..], 4096, 8)).expect("open");
        f.walk_only(true);
        assert_eq!(
            f.entry_offset(1).expect("via the chain"),
            first,
            "what journalctl sees"
        );
    }

    #[test]
    fn the_cache_reads_across_windows_and_reports_a_cut_file() {
        let data: Vec<u8> = (0..20_000u32).map(|i| i as u8).collect();
        let mut c = Cached::new(&data[..], 4096, 2);
        assert_eq!(c.read(4000, 200).expect("read"), data[4000..4200].to_vec());
        assert_eq!(c.read(10, 5).expect("read"), data[10..15].to_vec());
        assert!(c.read(19_990, 20).is_err());
        assert_eq!(c.read(19_990, 10).expect("read"), data[19_990..].to_vec());
    }
}
