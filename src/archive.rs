//! Retention and the archive tier (DESIGN §7): moving old host-days out of the store, and
//! re-reading them for `verify --archived`.
//!
//! `loghost archive [--through DATE]` (and the daemon, once a day) moves every host-day up to
//! `DATE` (default: today minus `online_days`; never today) to `[retention] archive`:
//!
//! 1. a checkpoint covering the whole ledger is signed if there is none yet, and the ledger is
//!    checked against it;
//! 2. the day's stored files are checked against their ledger entries: a day whose files do not
//!    verify is not moved (it is reported; damaged evidence is never archived silently);
//! 3. the files go to the target (split at frame boundaries into objects of at most
//!    [`crate::s3::MAX_OBJECT`] on S3; every part is a valid compressed stream, `zstdcat` reads
//!    each and their concatenation), then the manifest, last: the day's ledger lines with their
//!    inclusion proofs and the covering checkpoint, so the day can be checked offline;
//! 4. every object is read back (directory: re-hashed; S3: HEAD with size, SHA-256, Object Lock
//!    mode and retain-until); only then is a [`CheckedCopy`] made, the one thing that lets
//! 5. an `archived` event enter the ledger (host, date, the manifest's SHA-256), and then
//! 6. the local files be removed.
//!
//! A crash anywhere leaves either the local files (the next run uploads again: identical objects
//! are accepted, the manifest is replaced) or the event with some files left over (the next run
//! finishes removing them). The ledger is never edited: archived frames stay in it and in the
//! Merkle tree, so `verify` still proves them; it checks that their day was archived instead of
//! looking for the local files.
//!
//! Object names: `[prefix/]<origin, '/' → '_'>/<host>/<date>/<file>` and `…/manifest.json`, so
//! several loghosts can share one bucket (DESIGN §8).
//!
//! `grep --archived` reads archived days through [`ArchiveReader`] (it implements the search
//! part's `Archive`): a day's manifest only when it is the one the ledger recorded, then frames
//! by byte ranges, which the search checks against their ledger entries.
//!
//! Memory: one 32-byte leaf hash per ledger entry while archiving (inclusion proofs need the
//! tree), plus the archived days' frames; files are streamed.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use jiff::Timestamp;
use jiff::civil::Date;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::config::Config;
use crate::hash::Hash;
use crate::ledger::checkpoint::{self, Checkpoint};
use crate::ledger::merkle;
use crate::ledger::writer::Recorder;
use crate::ledger::{self, Entry, Event, EventKind, Frame};
use crate::store;
use crate::store::layout;
use crate::verify::{FrameRef, check_copy};

/// The manifest format, its first field.
pub const MANIFEST_FORMAT: &str = "loghost-archive-manifest@1";
/// The manifest's object name in a day's prefix.
pub const MANIFEST_NAME: &str = "manifest.json";
/// The largest manifest read (a day of a host that sends a frame a second holds ~86,400
/// entries, each a ledger line and an inclusion proof: ~150 MB).
pub const MAX_MANIFEST: u64 = 512 << 20;

/// Where archived days go.
#[derive(Debug)]
pub enum Target {
    /// `file:///dir`: a mount (another machine's disk, a tape library's file system).
    Dir(PathBuf),
    /// `s3://bucket/prefix` with Object Lock.
    #[cfg(feature = "s3")]
    S3(crate::s3::S3Target),
}

impl Target {
    /// Opens a target URL (`file:///dir` or `s3://bucket/prefix`).
    pub async fn open(url: &str, config: &Config) -> Result<Target> {
        if let Some(dir) = url.strip_prefix("file://") {
            return Ok(Target::Dir(PathBuf::from(dir)));
        }
        if let Some(rest) = url.strip_prefix("s3://") {
            #[cfg(feature = "s3")]
            {
                let s3 = config
                    .s3
                    .as_ref()
                    .ok_or_else(|| anyhow::anyhow!("{url}: no [s3] table in the config"))?;
                return Ok(Target::S3(crate::s3::S3Target::open(rest, s3).await?));
            }
            #[cfg(not(feature = "s3"))]
            {
                let _ = (rest, config);
                bail!(
                    "{url}: this loghost was built without S3 support (feature `s3`); rebuild \
                     it with default features"
                );
            }
        }
        bail!("{url}: not an archive target (file:///dir or s3://bucket/prefix)")
    }

    /// The largest object this target takes in one piece.
    fn max_object(&self) -> u64 {
        match self {
            Target::Dir(_) => u64::MAX,
            #[cfg(feature = "s3")]
            Target::S3(_) => {
                crate::failpoint::size_override("LOGHOST_ARCHIVE_MAX_OBJECT", crate::s3::MAX_OBJECT)
            }
        }
    }

    /// Stores `[offset, offset + len)` of a local file as `key`, once: an existing object with
    /// the same content is fine, one with other content an error (it is never overwritten).
    async fn put_file(
        &self,
        key: &str,
        path: &Path,
        offset: u64,
        len: u64,
        sha256: Hash,
        retain_until: Timestamp,
    ) -> Result<()> {
        match self {
            Target::Dir(dir) => {
                // A directory has no retention lock: files are made read-only.
                let _ = retain_until;
                let (root, dest, src) = (dir.clone(), dir.join(key), path.to_path_buf());
                blocking(move || dir_put_file(&root, &dest, &src, offset, len, sha256)).await
            }
            #[cfg(feature = "s3")]
            Target::S3(s) => {
                s.put_file(key, path, offset, len, sha256, retain_until)
                    .await
            }
        }
    }

    /// Stores a manifest. Unlike files it may replace an earlier one: a manifest only counts
    /// once the ledger's `archived` event names its SHA-256.
    async fn put_manifest(
        &self,
        key: &str,
        data: Vec<u8>,
        sha256: Hash,
        retain_until: Timestamp,
    ) -> Result<()> {
        match self {
            Target::Dir(dir) => {
                let path = dir.join(key);
                let _ = (sha256, retain_until);
                no_links(dir, &path)?;
                blocking(move || {
                    if let Some(parent) = path.parent() {
                        create_dirs(parent)?;
                    }
                    store::write_atomic(&path, &data)
                        .with_context(|| format!("cannot write {}", path.display()))?;
                    read_only(&path);
                    Ok(())
                })
                .await
            }
            #[cfg(feature = "s3")]
            Target::S3(s) => s.put_bytes(key, &data, sha256, retain_until).await,
        }
    }

    /// Checks an object is there, complete, and locked as asked.
    async fn check(
        &self,
        key: &str,
        size: u64,
        sha256: Hash,
        retain_until: Timestamp,
    ) -> Result<()> {
        match self {
            Target::Dir(dir) => {
                let path = dir.join(key);
                let _ = retain_until;
                no_links(dir, &path)?;
                blocking(move || {
                    let (got_size, got) = hash_file(&path)?;
                    if got_size != size || got != sha256 {
                        bail!(
                            "{}: the archived copy ({got_size} bytes, SHA-256 {got}) differs from \
                             what was sent ({size} bytes, {sha256})",
                            path.display()
                        );
                    }
                    Ok(())
                })
                .await
            }
            #[cfg(feature = "s3")]
            Target::S3(s) => s.check(key, size, sha256, retain_until).await,
        }
    }

    /// Checks an archived object is there without reading it: its size (directory), or its
    /// size, stored SHA-256 and (in a locked bucket, with `locked_until`) COMPLIANCE retention
    /// until that moment at least (S3, one HEAD).
    async fn check_present(
        &self,
        key: &str,
        size: u64,
        sha256: Hash,
        locked_until: Option<Timestamp>,
    ) -> Result<()> {
        match self {
            Target::Dir(dir) => {
                let path = dir.join(key);
                let _ = (sha256, locked_until);
                no_links(dir, &path)?;
                let meta = std::fs::metadata(&path)
                    .with_context(|| format!("{} is missing", path.display()))?;
                if meta.len() != size {
                    bail!(
                        "{}: {} bytes, the manifest says {size}",
                        path.display(),
                        meta.len()
                    );
                }
                Ok(())
            }
            #[cfg(feature = "s3")]
            Target::S3(s) => s.check_head(key, size, sha256, locked_until).await,
        }
    }

    /// Reads a small object (a manifest) whole: at most [`MAX_MANIFEST`] bytes.
    pub async fn get(&self, key: &str) -> Result<Vec<u8>> {
        match self {
            Target::Dir(dir) => {
                let path = dir.join(key);
                no_links(dir, &path)?;
                blocking(move || {
                    let f = store::open_regular(&path)
                        .with_context(|| format!("cannot read {}", path.display()))?;
                    let mut data = Vec::new();
                    f.take(MAX_MANIFEST + 1)
                        .read_to_end(&mut data)
                        .with_context(|| format!("cannot read {}", path.display()))?;
                    if data.len() as u64 > MAX_MANIFEST {
                        bail!(
                            "{} is larger than a manifest may be ({} bytes)",
                            path.display(),
                            MAX_MANIFEST
                        );
                    }
                    Ok(data)
                })
                .await
            }
            #[cfg(feature = "s3")]
            Target::S3(s) => s.get(key, MAX_MANIFEST).await,
        }
    }

    /// Appends an object to `out`, streamed; returns its size and SHA-256.
    async fn get_to(&self, key: &str, out: &mut std::fs::File) -> Result<(u64, Hash)> {
        match self {
            Target::Dir(dir) => {
                let path = dir.join(key);
                no_links(dir, &path)?;
                let mut out = out.try_clone()?;
                blocking(move || {
                    let mut f = store::open_regular(&path)
                        .with_context(|| format!("cannot read {}", path.display()))?;
                    copy_hashing(&mut f, &mut out, u64::MAX)
                        .with_context(|| format!("cannot read {}", path.display()))
                })
                .await
            }
            #[cfg(feature = "s3")]
            Target::S3(s) => {
                use tokio::io::AsyncSeekExt;
                let file = out.try_clone()?;
                let mut file = tokio::fs::File::from_std(file);
                let before = file.stream_position().await?;
                let sha = s.get_to(key, &mut file).await?;
                let after = file.stream_position().await?;
                Ok((after - before, sha))
            }
        }
    }

    fn describe(&self) -> String {
        match self {
            Target::Dir(d) => format!("file://{}", d.display()),
            #[cfg(feature = "s3")]
            Target::S3(s) => s.describe(),
        }
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| anyhow::anyhow!("archive task failed: {e}"))?
}

fn create_dirs(dir: &Path) -> Result<()> {
    store::create_dir_all_0700(dir).with_context(|| format!("cannot create {}", dir.display()))
}

/// Refuses a path under a `file://` target that passes through a symbolic link below the
/// target's own directory: a link planted where an object goes would make the "copy" the local
/// file itself, checked against itself, and the local file would then be deleted.
fn no_links(root: &Path, path: &Path) -> Result<()> {
    let Ok(rel) = path.strip_prefix(root) else {
        bail!(
            "{} is outside the archive target {}",
            path.display(),
            root.display()
        );
    };
    let mut at = root.to_path_buf();
    for c in rel.components() {
        at.push(c);
        match std::fs::symlink_metadata(&at) {
            Ok(m) if m.file_type().is_symlink() => bail!(
                "{} is a symbolic link: refused in the archive target (nothing there is made by \
                 loghost as a link; someone planted it)",
                at.display()
            ),
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => break,
            Err(e) => return Err(e).with_context(|| format!("cannot inspect {}", at.display())),
        }
    }
    Ok(())
}

/// Archived copies are never edited: read-only for everyone.
fn read_only(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Err(e) = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o400)) {
        tracing::warn!("cannot make {} read-only: {e}", path.display());
    }
}

fn dir_put_file(
    root: &Path,
    dest: &Path,
    src: &Path,
    offset: u64,
    len: u64,
    sha256: Hash,
) -> Result<()> {
    no_links(root, dest)?;
    if let Some(parent) = dest.parent() {
        create_dirs(parent)?;
    }
    if let (Ok(d), Ok(s)) = (std::fs::metadata(dest), std::fs::metadata(src)) {
        use std::os::unix::fs::MetadataExt;
        if (d.dev(), d.ino()) == (s.dev(), s.ino()) {
            bail!(
                "{} is the stored file itself (a hard link): not a copy",
                dest.display()
            );
        }
    }
    if dest.exists() {
        let (size, got) = hash_file(dest)?;
        if size == len && got == sha256 {
            read_only(dest);
            return Ok(());
        }
        bail!(
            "{} exists with other content: not overwriting an archived copy (move it away if it \
             is a leftover of something else)",
            dest.display()
        );
    }
    let name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dest.with_file_name(format!(".{name}.tmp{}", std::process::id()));
    let mut input =
        store::open_regular(src).with_context(|| format!("cannot read {}", src.display()))?;
    input.seek(SeekFrom::Start(offset))?;
    // Created exclusively: a link planted at the temporary name is removed, never followed.
    let _ = std::fs::remove_file(&tmp);
    let mut out = store::open_options_0600()
        .write(true)
        .create_new(true)
        .open(&tmp)
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    let (n, got) = copy_hashing(&mut input, &mut out, len)
        .with_context(|| format!("cannot copy {} to {}", src.display(), tmp.display()))?;
    if n != len || got != sha256 {
        let _ = std::fs::remove_file(&tmp);
        bail!("{} changed while it was being archived", src.display());
    }
    out.sync_all()
        .with_context(|| format!("cannot sync {}", tmp.display()))?;
    drop(out);
    std::fs::rename(&tmp, dest).with_context(|| format!("cannot create {}", dest.display()))?;
    if let Some(parent) = dest.parent() {
        store::sync_dir(parent).with_context(|| format!("cannot sync {}", parent.display()))?;
    }
    read_only(dest);
    Ok(())
}

/// Copies up to `limit` bytes, hashing them.
fn copy_hashing(input: &mut impl Read, out: &mut impl Write, limit: u64) -> Result<(u64, Hash)> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut input = input.take(limit);
    let mut n = 0u64;
    loop {
        let k = input.read(&mut buf)?;
        if k == 0 {
            break;
        }
        hasher.update(&buf[..k]);
        out.write_all(&buf[..k])?;
        n += k as u64;
    }
    Ok((n, Hash::from_hasher(hasher)))
}

fn hash_file(path: &Path) -> Result<(u64, Hash)> {
    let mut f =
        store::open_regular(path).with_context(|| format!("cannot read {}", path.display()))?;
    copy_hashing(&mut f, &mut std::io::sink(), u64::MAX)
        .with_context(|| format!("cannot read {}", path.display()))
}

/// The manifest of an archived host-day: enough to check the day with only the verifier key.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub format: String,
    pub origin: String,
    pub host: String,
    pub date: String,
    /// The covering checkpoint, the signed note exactly as in `ledger/checkpoints/`.
    pub checkpoint: String,
    pub files: Vec<ManifestFile>,
    /// The day's frame entries, in ledger order.
    pub entries: Vec<ManifestEntry>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestFile {
    /// The store-relative name, as the ledger's entries give it.
    pub file: String,
    pub size: u64,
    pub sha256: Hash,
    /// The objects holding it, in order (one unless it was larger than one object may be).
    pub parts: Vec<ManifestPart>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestPart {
    /// The object's name in the day's prefix.
    pub object: String,
    pub offset: u64,
    pub size: u64,
    pub sha256: Hash,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestEntry {
    pub index: u64,
    /// The ledger line, exactly (its leaf hash is SHA-256(0x00 ‖ line)).
    pub line: String,
    /// The RFC 9162 inclusion proof of the line in the checkpoint's tree (base64 hashes).
    pub proof: Vec<String>,
}

/// Parses a manifest read back from a target.
pub fn parse_manifest(bytes: &[u8]) -> Result<Manifest, String> {
    let m: Manifest = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    if m.format != MANIFEST_FORMAT {
        return Err(format!("unknown manifest format {:?}", m.format));
    }
    Ok(m)
}

/// The object-name prefix of a host-day in a target.
pub fn day_key(url: &str, origin: &str, host: &str, date: &str) -> String {
    format!("{}/{host}/{date}", origin_key(url, origin))
}

/// The object-name prefix of every day of this log in a target: `[prefix/]<origin>`.
fn origin_key(url: &str, origin: &str) -> String {
    let prefix = url
        .strip_prefix("s3://")
        .and_then(|r| r.split_once('/').map(|(_, p)| p.trim_matches('/')))
        .unwrap_or("");
    let origin: String = origin
        .chars()
        .map(|c| if c == '/' { '_' } else { c })
        .collect();
    if prefix.is_empty() {
        origin
    } else {
        format!("{prefix}/{origin}")
    }
}

/// Frames grouped by the stored file that holds them.
fn frames_by_file<'a>(frames: impl Iterator<Item = &'a Frame>) -> BTreeMap<String, Vec<FrameRef>> {
    let mut by_file: BTreeMap<String, Vec<FrameRef>> = BTreeMap::new();
    for f in frames {
        by_file
            .entry(f.file.clone())
            .or_default()
            .push(FrameRef::from(f));
    }
    by_file
}

/// A host-day copy that was read back and found complete. Only [`archive_day`] makes one, and
/// only a `CheckedCopy` lets [`record_and_remove`] delete local files.
#[derive(Debug)]
pub struct CheckedCopy {
    host: String,
    date: String,
    files: Vec<String>,
    /// Each file's size as archived.
    sizes: Vec<(String, u64)>,
    manifest_sha256: Hash,
    key: String,
}

/// What `archive` did.
#[derive(Debug, Default)]
pub struct Report {
    /// `host date` of each day archived.
    pub archived: Vec<String>,
    /// Days that could not be archived, with why.
    pub failed: Vec<String>,
    /// Days archived earlier whose local files were only now removed (an interrupted run).
    pub finished: Vec<String>,
    pub target: String,
    pub through: String,
}

/// The days an `archived` event names, with the event's manifest SHA-256 and sequence number.
pub fn archived_days(events: &[Event]) -> BTreeMap<(String, String), (Option<Hash>, u64)> {
    events
        .iter()
        .filter(|e| e.event == EventKind::Archived)
        .filter_map(|e| Some(((e.host.clone()?, e.source.clone()?), (e.sha256, e.seq))))
        .collect()
}

/// The default `--through`: today minus `online_days` (UTC, like the day directories).
pub fn default_through(config: &Config, now: Timestamp) -> Result<Date> {
    let today = now.to_zoned(jiff::tz::TimeZone::UTC).date();
    Ok(today.checked_sub(jiff::Span::new().days(i64::from(config.retention.online_days)))?)
}

/// Archives every host-day up to `through` (never today) to `[retention] archive`.
/// `progress`: a line on stderr per host-day (for a terminal).
pub async fn run(rec: &Recorder, through: Date, progress: bool) -> Result<Report> {
    let config = &rec.config;
    let Some(url) = config.retention.archive.clone() else {
        return Err(crate::config::SetupError(
            "no [retention] archive target is configured: nothing is archived (set `archive = \
             \"file:///dir\"` or `\"s3://bucket/prefix\"` in [retention])"
                .into(),
        )
        .into());
    };
    let target = Target::open(&url, config).await?;
    let today = rec.ledger()?.now().to_zoned(jiff::tz::TimeZone::UTC).date();
    let through = through.min(today.yesterday()?);
    let mut report = Report {
        target: url.clone(),
        through: through.to_string(),
        ..Default::default()
    };

    // 1. A checkpoint of the whole ledger as it is now, and the ledger checked against it.
    let r = rec
        .checkpoint()
        .context("cannot sign a checkpoint before archiving")?;
    for e in &r.anchor_errors {
        tracing::error!("anchor {e}");
    }
    let (ckpt, note) = newest_checkpoint(rec)?
        .ok_or_else(|| anyhow::anyhow!("the ledger is empty: nothing to archive"))?;
    let ledger_path = rec.store.path(layout::LEDGER_FILE);
    let mut leaves = Vec::new();
    let mut days: BTreeMap<(String, String), Vec<(Frame, String)>> = BTreeMap::new();
    let mut events = Vec::new();
    ledger::scan(&ledger_path, 0, 0, |_, line, entry| {
        leaves.push(merkle::leaf_hash(line));
        match entry {
            Entry::Frame(f) => {
                if let Some(p) = layout::parse_log_path(&f.file) {
                    let key = (p.host.to_string(), p.date.to_string());
                    let line = String::from_utf8_lossy(line).into_owned();
                    days.entry(key).or_default().push((f, line));
                }
            }
            Entry::Event(e) => events.push(e),
        }
    })?;
    if (ckpt.size as usize) > leaves.len() {
        bail!("the ledger is shorter than its newest checkpoint; run `loghost verify`");
    }
    leaves.truncate(ckpt.size as usize);
    if merkle::root(&leaves) != ckpt.root {
        bail!("the ledger does not match its newest checkpoint; run `loghost verify`");
    }

    let done = archived_days(&events);
    let due = days
        .keys()
        .filter(|(h, d)| {
            Date::strptime("%Y-%m-%d", d).is_ok_and(|day| day <= through)
                && !done.contains_key(&(h.clone(), d.clone()))
        })
        .count();
    let mut n = 0;
    for ((host, date), frames) in days {
        let Ok(day) = Date::strptime("%Y-%m-%d", &date) else {
            continue;
        };
        if day > through {
            continue;
        }
        if let Some((sha, _)) = done.get(&(host.clone(), date.clone())) {
            // Archived earlier; finish an interrupted removal, but only once the copy in the
            // target is read back and found to be what the event names: an `archived` line
            // is not reason enough to delete anything.
            let files: BTreeSet<String> = frames.iter().map(|(f, _)| f.file.clone()).collect();
            if files.iter().any(|f| rec.store.path(f).exists()) {
                let cx = DayCtx {
                    rec,
                    target: &target,
                    url: &url,
                    origin: &ckpt.origin,
                    note: &note,
                    tree: &leaves,
                };
                match recheck_day(&cx, &host, &date, &frames, *sha).await {
                    Ok(()) => {
                        remove_local(rec, &host, files.iter())?;
                        report.finished.push(format!("{host} {date}"));
                    }
                    Err(e) => {
                        tracing::error!(
                            "{host} {date}: the ledger says it was archived, but its local files \
                             stay: {e:#}"
                        );
                        report.failed.push(format!(
                            "{host} {date}: recorded as archived, but the copy does not check \
                             ({e:#}); local files kept, run `loghost verify`"
                        ));
                    }
                }
            }
            continue;
        }
        if frames.iter().any(|(f, _)| f.seq >= ckpt.size) {
            report.failed.push(format!(
                "{host} {date}: entries newer than the checkpoint (try again)"
            ));
            continue;
        }
        let day_ctx = DayCtx {
            rec,
            target: &target,
            url: &url,
            origin: &ckpt.origin,
            note: &note,
            tree: &leaves,
        };
        n += 1;
        if progress {
            eprint!("\rarchive: {n} / {due} host-days ({host} {date})\x1b[K");
        }
        match archive_day(&day_ctx, &host, &date, frames).await {
            Ok(copy) => match record_and_remove(rec, copy, &url) {
                Ok(()) => {
                    tracing::info!("{host} {date}: archived to {url}");
                    report.archived.push(format!("{host} {date}"));
                }
                Err(e) => {
                    tracing::error!("{host} {date}: not archived: {e:#}");
                    report.failed.push(format!("{host} {date}: {e:#}"));
                }
            },
            Err(e) => {
                tracing::error!("{host} {date}: not archived: {e:#}");
                report.failed.push(format!("{host} {date}: {e:#}"));
            }
        }
    }
    if progress && due > 0 {
        eprint!("\r\x1b[K");
    }
    if !report.archived.is_empty() {
        // The `archived` events, signed and anchored like everything else.
        let r = rec
            .checkpoint()
            .context("the days were archived but the checkpoint after them failed")?;
        for e in &r.anchor_errors {
            tracing::error!("anchor {e}");
        }
    }
    Ok(report)
}

fn newest_checkpoint(rec: &Recorder) -> Result<Option<(Checkpoint, Vec<u8>)>> {
    let dir = checkpoint::dir(rec.store.root());
    let Some(size) = checkpoint::sizes_in(&dir)?.last().copied() else {
        return Ok(None);
    };
    let path = dir.join(checkpoint::file_name(size));
    let note = std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
    let c = checkpoint::open(&note, &rec.signing_key.verifier_key())
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    Ok(Some((c, note)))
}

/// What every day of one archive run shares.
struct DayCtx<'a> {
    rec: &'a Recorder,
    target: &'a Target,
    url: &'a str,
    origin: &'a str,
    note: &'a [u8],
    /// The leaves of the checkpoint's tree.
    tree: &'a [Hash],
}

/// One object to upload: a byte range of a local file.
struct Upload {
    object: String,
    path: PathBuf,
    offset: u64,
    size: u64,
    sha256: Hash,
}

async fn archive_day(
    cx: &DayCtx<'_>,
    host: &str,
    date: &str,
    frames: Vec<(Frame, String)>,
) -> Result<CheckedCopy> {
    let base = day_key(cx.url, cx.origin, host, date);
    let retain_until = retain_until(date, cx.rec.config.retention.object_lock_days)?;
    let by_file = frames_by_file(frames.iter().map(|(f, _)| f));
    let day_dir = format!("{}/{host}/{date}/", layout::LOGS_DIR);
    let max_object = cx.target.max_object();
    let mut files = Vec::new();
    let mut uploads = Vec::new();
    for (rel, refs) in &by_file {
        let path = cx.rec.store.path(rel);
        // 2. The local file must match the ledger before it may go.
        let (p, r, name) = (path.clone(), rel.clone(), refs.clone());
        let problems = blocking(move || Ok(check_copy(&p, &r, name, false))).await?;
        if !problems.is_empty() {
            bail!(
                "its files do not match the ledger (run `loghost verify`): {}",
                problems.join("; ")
            );
        }
        let name = rel.strip_prefix(&day_dir).unwrap_or(rel).to_string();
        let bounds = split_points(refs, max_object);
        let (p, b) = (path.clone(), bounds.clone());
        let (size, sha256, part_shas) = blocking(move || hash_parts(&p, &b)).await?;
        let mut parts = Vec::new();
        for (i, ((offset, len), sha)) in bounds.iter().zip(part_shas).enumerate() {
            let object = if bounds.len() == 1 {
                name.clone()
            } else {
                format!("{name}.part{:04}", i + 1)
            };
            uploads.push(Upload {
                object: object.clone(),
                path: path.clone(),
                offset: *offset,
                size: *len,
                sha256: sha,
            });
            parts.push(ManifestPart {
                object,
                offset: *offset,
                size: *len,
                sha256: sha,
            });
        }
        files.push(ManifestFile {
            file: rel.clone(),
            size,
            sha256,
            parts,
        });
    }
    let mut entries = Vec::new();
    for (f, line) in &frames {
        let proof = merkle::inclusion_proof(cx.tree, f.seq)
            .ok_or_else(|| anyhow::anyhow!("entry {} is not covered by the checkpoint", f.seq))?;
        entries.push(ManifestEntry {
            index: f.seq,
            line: line.clone(),
            proof: proof.iter().map(|h| B64.encode(h.0)).collect(),
        });
    }
    let manifest_files_sizes: Vec<(String, u64)> =
        files.iter().map(|f| (f.file.clone(), f.size)).collect();
    let manifest = Manifest {
        format: MANIFEST_FORMAT.into(),
        origin: cx.origin.into(),
        host: host.into(),
        date: date.into(),
        checkpoint: String::from_utf8_lossy(cx.note).into_owned(),
        files,
        entries,
    };
    let mut manifest_bytes = serde_json::to_vec_pretty(&manifest)?;
    manifest_bytes.push(b'\n');
    let manifest_sha = Hash::of(&manifest_bytes);
    let manifest_len = manifest_bytes.len() as u64;

    // 3. Files first, the manifest last.
    for u in &uploads {
        cx.target
            .put_file(
                &format!("{base}/{}", u.object),
                &u.path,
                u.offset,
                u.size,
                u.sha256,
                retain_until,
            )
            .await?;
    }
    crate::failpoint::hit("archive-before-manifest");
    let manifest_key = format!("{base}/{MANIFEST_NAME}");
    cx.target
        .put_manifest(&manifest_key, manifest_bytes, manifest_sha, retain_until)
        .await?;
    // 4. Everything read back before anything local goes.
    for u in &uploads {
        cx.target
            .check(
                &format!("{base}/{}", u.object),
                u.size,
                u.sha256,
                retain_until,
            )
            .await?;
    }
    cx.target
        .check(&manifest_key, manifest_len, manifest_sha, retain_until)
        .await?;
    Ok(CheckedCopy {
        host: host.into(),
        date: date.into(),
        sizes: manifest_files_sizes,
        files: by_file.into_keys().collect(),
        manifest_sha256: manifest_sha,
        key: base,
    })
}

/// Before the local files of a day recorded as archived are removed (a removal interrupted by a
/// crash): the manifest in the target must be the one the event names, every local file must
/// match the ledger and the manifest, and every object holding it is read back as after a fresh
/// upload.
async fn recheck_day(
    cx: &DayCtx<'_>,
    host: &str,
    date: &str,
    frames: &[(Frame, String)],
    manifest_sha256: Option<Hash>,
) -> Result<()> {
    let Some(want) = manifest_sha256 else {
        bail!("the `archived` event names no manifest");
    };
    let base = day_key(cx.url, cx.origin, host, date);
    let bytes = cx.target.get(&format!("{base}/{MANIFEST_NAME}")).await?;
    if Hash::of(&bytes) != want {
        bail!(
            "the manifest in {} is not the one the ledger recorded",
            cx.target.describe()
        );
    }
    let manifest = parse_manifest(&bytes).map_err(anyhow::Error::msg)?;
    if manifest.host != host || manifest.date != date {
        bail!("the manifest is for {} {}", manifest.host, manifest.date);
    }
    let retain_until = retain_until(date, cx.rec.config.retention.object_lock_days)?;
    let by_file = frames_by_file(frames.iter().map(|(f, _)| f));
    for (rel, refs) in by_file {
        let path = cx.rec.store.path(&rel);
        if !path.exists() {
            continue;
        }
        let Some(mf) = manifest.files.iter().find(|m| m.file == rel) else {
            bail!("{rel} is not in the manifest");
        };
        let (p, r) = (path.clone(), rel.clone());
        let problems = blocking(move || Ok(check_copy(&p, &r, refs, false))).await?;
        if !problems.is_empty() {
            bail!("{}", problems.join("; "));
        }
        let ranges: Vec<(u64, u64)> = mf.parts.iter().map(|p| (p.offset, p.size)).collect();
        let p = path.clone();
        let (size, sha, shas) = blocking(move || hash_parts(&p, &ranges)).await?;
        let local_len = std::fs::metadata(&path)
            .map(|m| m.len())
            .unwrap_or(u64::MAX);
        if size != mf.size
            || local_len != mf.size
            || sha != mf.sha256
            || shas.iter().ne(mf.parts.iter().map(|p| &p.sha256))
        {
            bail!("{rel}: the local file is not the one the manifest describes");
        }
        for part in &mf.parts {
            if !is_plain_object_name(&part.object) {
                bail!("the manifest names a bad object {:?}", part.object);
            }
            cx.target
                .check(
                    &format!("{base}/{}", part.object),
                    part.size,
                    part.sha256,
                    retain_until,
                )
                .await?;
        }
    }
    Ok(())
}

/// An object name relative to a day's prefix, with no way out of it.
fn is_plain_object_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('/')
        && !name
            .split('/')
            .any(|c| c.is_empty() || c == "." || c == "..")
}

/// Plain `verify`'s look at the archive tier's history: on S3, every version under the log's
/// prefix is listed; a delete marker, or an object with versions of different content, is a
/// problem (Object Lock keeps versions, not names). An `archived` event without a manifest
/// SHA-256 is one too. The problems found (each day's manifest and objects are checked by
/// [`verify_archived`]).
pub async fn check_versions(
    config: &Config,
    days: &BTreeMap<(String, String), (Option<Hash>, u64)>,
) -> Result<Vec<String>> {
    let mut problems = Vec::new();
    for ((host, date), (sha, seq)) in days {
        if sha.is_none() {
            problems.push(format!(
                "{host} {date}: the `archived` event (entry {seq}) names no manifest SHA-256 (a \
                 forged event?)"
            ));
        }
    }
    let Some(url) = config.retention.archive.clone() else {
        return Ok(problems);
    };
    if days.is_empty() || !url.starts_with("s3://") {
        return Ok(problems);
    }
    #[cfg(feature = "s3")]
    if let Target::S3(s3) = Target::open(&url, config).await? {
        let prefix = format!("{}/", origin_key(&url, &config.ledger.origin));
        let mut by_key: BTreeMap<String, (BTreeSet<String>, usize)> = BTreeMap::new();
        for v in s3.versions(&prefix, None).await? {
            let e = by_key.entry(v.key).or_default();
            if v.delete_marker {
                e.1 += 1;
            } else {
                e.0.insert(v.etag.unwrap_or_default());
            }
        }
        for (key, (etags, markers)) in by_key {
            let at = format!("{}/{key}", s3.describe());
            if markers > 0 {
                problems.push(format!(
                    "{at}: {markers} delete marker(s): someone deleted an archived object (its \
                     locked versions remain; `verify --archived` reads what is current)"
                ));
            }
            if etags.len() > 1 && !key.ends_with(&format!("/{MANIFEST_NAME}")) {
                problems.push(format!(
                    "{at}: {} versions with different content: an archived object was \
                     overwritten",
                    etags.len()
                ));
            }
        }
    }
    Ok(problems)
}

/// Splits a file into object ranges at frame boundaries, each at most `max` bytes (a single
/// frame larger than that is an object of its own).
fn split_points(frames: &[FrameRef], max: u64) -> Vec<(u64, u64)> {
    let mut frames: Vec<(u64, u64)> = frames.iter().map(|f| (f.offset(), f.length())).collect();
    frames.sort_unstable();
    let mut out: Vec<(u64, u64)> = Vec::new();
    for (offset, len) in frames {
        match out.last_mut() {
            Some((start, size)) if *start + *size == offset && *size + len <= max => *size += len,
            _ => out.push((offset, len)),
        }
    }
    if out.is_empty() {
        out.push((0, 0));
    }
    out
}

/// Hashes a file whole and per range: (size, SHA-256, each range's SHA-256).
fn hash_parts(path: &Path, ranges: &[(u64, u64)]) -> Result<(u64, Hash, Vec<Hash>)> {
    let mut f =
        store::open_regular(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut whole = Sha256::new();
    let mut shas = Vec::new();
    let mut size = 0u64;
    let mut buf = vec![0u8; 1 << 20];
    for &(offset, len) in ranges {
        if offset != size {
            bail!("{}: its frames do not tile it", path.display());
        }
        let mut part = Sha256::new();
        let mut left = len;
        while left > 0 {
            let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
            let k = f
                .read(&mut buf[..want])
                .with_context(|| format!("cannot read {}", path.display()))?;
            if k == 0 {
                bail!("{} ended early", path.display());
            }
            part.update(&buf[..k]);
            whole.update(&buf[..k]);
            left -= k as u64;
        }
        size += len;
        shas.push(Hash::from_hasher(part));
    }
    Ok((size, Hash::from_hasher(whole), shas))
}

/// Retain-until for a day's objects: the end of the day plus `object_lock_days`.
fn retain_until(date: &str, days: u32) -> Result<Timestamp> {
    let d = Date::strptime("%Y-%m-%d", date)?;
    let end = d.checked_add(jiff::Span::new().days(i64::from(days) + 1))?;
    Ok(end.to_zoned(jiff::tz::TimeZone::UTC)?.timestamp())
}

/// Steps 5 and 6: records the `archived` event, then removes the day's local files. Under the
/// ledger lock throughout: nothing may have been added to the day since its copy was made (a pull
/// still writing yesterday's file at midnight), and once the event is in, no frame can be.
fn record_and_remove(rec: &Recorder, copy: CheckedCopy, target: &str) -> Result<()> {
    crate::failpoint::hit("archive-before-event");
    let mut ledger = rec.ledger()?;
    for (file, size) in &copy.sizes {
        let committed = ledger.index().committed_end(file);
        let on_disk = std::fs::metadata(rec.store.path(file))
            .map(|m| m.len())
            .unwrap_or(u64::MAX);
        if committed != *size || on_disk != *size {
            bail!(
                "{file} grew while it was being archived ({size} bytes copied, {committed} \
                 committed, {on_disk} on disk): not archived this time (the next run copies it \
                 whole)"
            );
        }
    }
    ledger.append(vec![Entry::Event(Event {
        seq: 0,
        time: String::new(),
        event: EventKind::Archived,
        host: Some(copy.host.clone()),
        source: Some(copy.date.clone()),
        start: None,
        end: None,
        sha256: Some(copy.manifest_sha256),
        detail: format!(
            "{} files copied to {target} under {}/, read back and checked; the manifest's \
             SHA-256 is this event's",
            copy.files.len(),
            copy.key,
        ),
    })])?;
    crate::failpoint::hit("archive-before-remove");
    let removed = remove_local(rec, &copy.host, copy.files.iter());
    drop(ledger);
    removed
}

/// Removes a day's local files, and the directories they leave empty (up to the host's).
fn remove_local<'a>(
    rec: &Recorder,
    host: &str,
    files: impl Iterator<Item = &'a String>,
) -> Result<()> {
    let stop = rec.store.path(&format!("{}/{host}", layout::LOGS_DIR));
    for rel in files {
        let path = rec.store.path(rel);
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(e).with_context(|| format!("cannot remove {}", path.display()));
            }
        }
        let mut dir = path.parent().map(Path::to_path_buf);
        while let Some(d) = dir {
            if d == stop || std::fs::remove_dir(&d).is_err() {
                break;
            }
            dir = d.parent().map(Path::to_path_buf);
        }
        if let Some(parent) = path.parent() {
            let _ = store::sync_dir(parent);
        }
    }
    Ok(())
}

/// One archived day as the local ledger knows it.
#[derive(Debug, Default)]
pub struct ArchivedDay {
    /// The manifest's SHA-256 named by the `archived` event.
    pub manifest_sha256: Option<Hash>,
    /// The day's frames, with the leaf hash of each one's ledger line.
    pub frames: Vec<(Frame, Hash)>,
}

/// Checks every archived day in the target. Plain `verify` (`reread` false): each day's manifest
/// is read and must be the one the `archived` event names, for that host and day, signed by a
/// checkpoint the store holds, listing every frame of the day with its ledger line and a valid
/// inclusion proof; and every object it names must be there with its size (S3: its stored
/// SHA-256 and lock too, one HEAD each). `verify --archived` (`reread`): every object is also
/// read back and checked frame by frame. Returns the problems found and how many days were
/// checked.
pub async fn verify_archived(
    config: &Config,
    vkey: &str,
    progress: bool,
    reread: bool,
) -> Result<(Vec<String>, u64)> {
    let store = store::Store::open(&config.store)?;
    let ledger_path = store.path(layout::LEDGER_FILE);
    let mut frames: BTreeMap<(String, String), Vec<(Frame, Hash)>> = BTreeMap::new();
    let mut events = Vec::new();
    ledger::scan(&ledger_path, 0, 0, |_, line, entry| match entry {
        Entry::Frame(f) => {
            if let Some(p) = layout::parse_log_path(&f.file) {
                frames
                    .entry((p.host.to_string(), p.date.to_string()))
                    .or_default()
                    .push((f, merkle::leaf_hash(line)));
            }
        }
        Entry::Event(e) => events.push(e),
    })?;
    let days = archived_days(&events);
    if days.is_empty() {
        return Ok((Vec::new(), 0));
    }
    let Some(url) = config.retention.archive.clone() else {
        return Ok((
            vec![format!(
                "{} days are archived but no [retention] archive target is configured to \
                 re-read them from",
                days.len()
            )],
            0,
        ));
    };
    let target = Target::open(&url, config).await?;
    let ckpt_dir = checkpoint::dir(store.root());
    let mut problems = Vec::new();
    let mut checked = 0;
    let total = days.len();
    for (i, ((host, date), (sha, _))) in days.into_iter().enumerate() {
        if progress {
            eprint!("\rverify --archived: {i} / {total} days  ");
        }
        let day = ArchivedDay {
            manifest_sha256: sha,
            frames: frames
                .remove(&(host.clone(), date.clone()))
                .unwrap_or_default(),
        };
        let found = check_archived_day(
            &target,
            &url,
            &ckpt_dir,
            vkey,
            &config.ledger.origin,
            &host,
            &date,
            &day,
            reread,
        )
        .await;
        match found {
            Ok(p) => problems.extend(p),
            Err(e) => problems.push(format!(
                "{host} {date}: the archived copy could not be checked: {e:#}"
            )),
        }
        checked += 1;
    }
    if progress {
        eprint!("\r\x1b[K");
    }
    Ok((problems, checked))
}

/// Checks one archived day: the manifest is the one the ledger's event names, signed by the
/// log, its checkpoint is the store's own, every frame of the day is in it with its ledger line
/// and a valid inclusion proof, and every file re-read from the target tiles and hashes to its
/// frames (decompressed too).
#[allow(clippy::too_many_arguments)]
pub async fn check_archived_day(
    target: &Target,
    url: &str,
    ckpt_dir: &Path,
    vkey: &str,
    origin: &str,
    host: &str,
    date: &str,
    day: &ArchivedDay,
    reread: bool,
) -> Result<Vec<String>> {
    let base = day_key(url, origin, host, date);
    let at = format!("{host} {date} ({}/{base})", target.describe());
    let mut problems = Vec::new();
    let bytes = match target.get(&format!("{base}/{MANIFEST_NAME}")).await {
        Ok(b) => b,
        Err(e) => {
            problems.push(format!(
                "{at}: recorded as archived, but its manifest cannot be read ({e:#}): the day's \
                 files are neither here nor there"
            ));
            return Ok(problems);
        }
    };
    if let Some(want) = day.manifest_sha256
        && Hash::of(&bytes) != want
    {
        problems.push(format!(
            "{at}: the manifest is not the one the ledger recorded (SHA-256 {}, the ledger says \
             {want})",
            Hash::of(&bytes)
        ));
    }
    let manifest = match parse_manifest(&bytes) {
        Ok(m) => m,
        Err(e) => {
            problems.push(format!("{at}: the manifest is not valid: {e}"));
            return Ok(problems);
        }
    };
    if manifest.host != host || manifest.date != date {
        problems.push(format!(
            "{at}: the manifest is for {} {}, not this day",
            manifest.host, manifest.date
        ));
    }
    let ckpt = match checkpoint::open(manifest.checkpoint.as_bytes(), vkey) {
        Ok(c) => c,
        Err(e) => {
            problems.push(format!("{at}: the manifest's checkpoint is not valid: {e}"));
            return Ok(problems);
        }
    };
    // The store's own copy of that checkpoint was checked against the tree by verify.
    let local = ckpt_dir.join(checkpoint::file_name(ckpt.size));
    match std::fs::read(&local) {
        Ok(b) if b == manifest.checkpoint.as_bytes() => {}
        Ok(_) => problems.push(format!(
            "{at}: the manifest's checkpoint differs from {}",
            local.display()
        )),
        Err(e) => problems.push(format!(
            "{at}: the manifest's checkpoint (tree size {}) is not in the store: {e}",
            ckpt.size
        )),
    }
    let listed: BTreeMap<u64, &ManifestEntry> =
        manifest.entries.iter().map(|e| (e.index, e)).collect();
    for (f, leaf) in &day.frames {
        let Some(e) = listed.get(&f.seq) else {
            problems.push(format!(
                "{at}: ledger entry {} is not in the manifest",
                f.seq
            ));
            continue;
        };
        if merkle::leaf_hash(e.line.as_bytes()) != *leaf {
            problems.push(format!(
                "{at}: entry {} differs between the ledger and the manifest",
                f.seq
            ));
        }
        let proof: Option<Vec<Hash>> = e
            .proof
            .iter()
            .map(|p| {
                B64.decode(p)
                    .ok()
                    .and_then(|b| <[u8; 32]>::try_from(b).ok())
                    .map(Hash)
            })
            .collect();
        if !proof.is_some_and(|p| merkle::verify_inclusion(f.seq, ckpt.size, *leaf, &p, ckpt.root))
        {
            problems.push(format!(
                "{at}: the inclusion proof of entry {} does not check against the manifest's \
                 checkpoint",
                f.seq
            ));
        }
    }
    let by_file = frames_by_file(day.frames.iter().map(|(f, _)| f));
    let lock_mode = retain_until(date, 0).ok();
    for (rel, refs) in by_file {
        let Some(mf) = manifest.files.iter().find(|m| m.file == rel) else {
            problems.push(format!("{at}: {rel} is not in the manifest"));
            continue;
        };
        // The manifest's parts must cover exactly the file the ledger's frames make.
        let ledger_len = refs
            .iter()
            .map(|f| f.offset() + f.length())
            .max()
            .unwrap_or(0);
        let mut covered = 0u64;
        for part in &mf.parts {
            if part.offset != covered {
                problems.push(format!(
                    "{at}: {rel}: the manifest's parts leave a gap or overlap at byte {covered}"
                ));
            }
            covered = part.offset + part.size;
        }
        if covered != ledger_len || mf.size != ledger_len {
            problems.push(format!(
                "{at}: {rel}: the manifest covers {covered} bytes ({} claimed), the ledger's \
                 frames {ledger_len}",
                mf.size
            ));
        }
        if !reread {
            // One HEAD (S3) or stat (directory) per object: there, complete, locked.
            for part in &mf.parts {
                if !is_plain_object_name(&part.object) {
                    problems.push(format!(
                        "{at}: the manifest names a bad object {:?}",
                        part.object
                    ));
                    continue;
                }
                if let Err(e) = target
                    .check_present(
                        &format!("{base}/{}", part.object),
                        part.size,
                        part.sha256,
                        lock_mode,
                    )
                    .await
                {
                    problems.push(format!("{at}: object {}: {e:#}", part.object));
                }
            }
            continue;
        }
        // Reassemble the file from its parts in a temporary file, then check it like a stored one.
        let tmp = tempfile::NamedTempFile::new().context("cannot create a temporary file")?;
        let mut out = tmp.reopen()?;
        let mut ok = true;
        for part in &mf.parts {
            if !is_plain_object_name(&part.object) {
                problems.push(format!(
                    "{at}: the manifest names a bad object {:?}",
                    part.object
                ));
                ok = false;
                break;
            }
            match target
                .get_to(&format!("{base}/{}", part.object), &mut out)
                .await
            {
                Ok((n, sha)) if n == part.size && sha == part.sha256 => {}
                Ok((n, sha)) => {
                    problems.push(format!(
                        "{at}: object {} is {n} bytes with SHA-256 {sha}; the manifest says {} \
                         bytes, {}",
                        part.object, part.size, part.sha256
                    ));
                    ok = false;
                }
                Err(e) => {
                    problems.push(format!("{at}: object {}: {e:#}", part.object));
                    ok = false;
                }
            }
        }
        if !ok {
            continue;
        }
        out.flush()?;
        let (path, rel_owned) = (tmp.path().to_path_buf(), rel.to_string());
        let found = blocking(move || Ok(check_copy(&path, &rel_owned, refs, true))).await?;
        problems.extend(found.into_iter().map(|p| format!("archived copy: {p}")));
        drop(tmp);
    }
    Ok(problems)
}

/// Reads archived days for `grep --archived` ([`crate::search::Archive`]): a day's manifest is
/// used only when its SHA-256 is the one the ledger's `archived` event records and it names
/// that host and day; then each frame's bytes are read from the object that holds them (a
/// file's parts split at frame boundaries), and the search checks them against their ledger
/// entry before it shows a line. S3: one ranged GET per run of frames read in order (a gap of
/// more than [`SKIP_AHEAD`] starts a new GET); a directory: plain reads.
pub struct ArchiveReader {
    inner: std::sync::Arc<ReaderInner>,
}

struct ReaderInner {
    target: Target,
    url: String,
    origin: String,
    /// The runtime the target's requests run on; used from threads outside it.
    runtime: tokio::runtime::Handle,
    /// Per (host, date): the checked manifest, or why the day is not searched.
    days: std::sync::Mutex<BTreeMap<(String, String), CheckedManifest>>,
}

/// A day's manifest checked against the ledger, or why the day is not searched.
type CheckedManifest = Result<std::sync::Arc<Manifest>, String>;

/// How far ahead a ranged S3 read is read on (and discarded) rather than started again.
pub const SKIP_AHEAD: u64 = 8 << 20;

impl ArchiveReader {
    /// Opens the configured archive target; an error when none is configured. Its reads run
    /// on `runtime`, blocking the calling thread: call it, and read, from threads outside the
    /// runtime.
    pub fn open(config: &Config, runtime: tokio::runtime::Handle) -> Result<ArchiveReader> {
        let Some(url) = config.retention.archive.clone() else {
            bail!(
                "--archived: no archive target is configured ([retention] archive in {})",
                config.source.display()
            );
        };
        let target = runtime.block_on(Target::open(&url, config))?;
        Ok(ArchiveReader {
            inner: std::sync::Arc::new(ReaderInner {
                target,
                url,
                origin: config.ledger.origin.clone(),
                runtime,
                days: std::sync::Mutex::new(BTreeMap::new()),
            }),
        })
    }
}

impl ReaderInner {
    fn day_key(&self, host: &str, date: &str) -> String {
        day_key(&self.url, &self.origin, host, date)
    }

    /// The day's manifest, read and checked against the ledger once.
    fn manifest(&self, host: &str, date: &str, want: Option<Hash>) -> CheckedManifest {
        let key = (host.to_string(), date.to_string());
        // Held while the manifest is read: the day's other files wait for it rather than read
        // it again.
        let Ok(mut days) = self.days.lock() else {
            return Err("a search thread failed while reading the day's manifest".into());
        };
        if let Some(r) = days.get(&key) {
            return r.clone();
        }
        let r = self.read_manifest(host, date, want);
        days.insert(key, r.clone());
        r
    }

    fn read_manifest(&self, host: &str, date: &str, want: Option<Hash>) -> CheckedManifest {
        let Some(want) = want else {
            return Err(
                "its `archived` ledger event records no manifest (run `loghost verify`)".into(),
            );
        };
        let key = format!("{}/{MANIFEST_NAME}", self.day_key(host, date));
        let at = format!("{}/{key}", self.target.describe());
        let bytes = self
            .runtime
            .block_on(self.target.get(&key))
            .map_err(|e| format!("its manifest {at} cannot be read: {e:#}"))?;
        if Hash::of(&bytes) != want {
            return Err(format!(
                "its manifest {at} is not the one the ledger recorded (SHA-256 {}, the ledger \
                 says {want}); run `loghost verify --archived`",
                Hash::of(&bytes)
            ));
        }
        let m =
            parse_manifest(&bytes).map_err(|e| format!("its manifest {at} is not valid: {e}"))?;
        if m.host != host || m.date != date {
            return Err(format!("its manifest {at} is for {} {}", m.host, m.date));
        }
        Ok(std::sync::Arc::new(m))
    }
}

impl crate::search::Archive for ArchiveReader {
    fn open_file(
        &self,
        host: &str,
        date: &str,
        manifest: Option<Hash>,
        file: &str,
    ) -> Result<Box<dyn crate::search::RangeRead>, String> {
        let m = self.inner.manifest(host, date, manifest)?;
        let Some(mf) = m.files.iter().find(|f| f.file == file) else {
            return Err(format!("the day's manifest does not list {file}"));
        };
        if let Some(p) = mf.parts.iter().find(|p| !is_plain_object_name(&p.object)) {
            return Err(format!(
                "the day's manifest names a bad object {:?}",
                p.object
            ));
        }
        Ok(Box::new(ArchivedFile {
            inner: self.inner.clone(),
            base: self.inner.day_key(host, date),
            parts: mf
                .parts
                .iter()
                .map(|p| (p.object.clone(), p.offset, p.size))
                .collect(),
            open: None,
        }))
    }
}

/// One archived file, read by byte ranges.
struct ArchivedFile {
    inner: std::sync::Arc<ReaderInner>,
    base: String,
    /// (object, offset in the file, size).
    parts: Vec<(String, u64, u64)>,
    /// The object being read: its index and how it is read.
    open: Option<(usize, OpenObject)>,
}

enum OpenObject {
    Dir(std::fs::File),
    #[cfg(feature = "s3")]
    S3 {
        body: aws_sdk_s3::primitives::ByteStream,
        /// The object offset of `pending[at..]`'s first byte.
        pos: u64,
        pending: Vec<u8>,
        at: usize,
    },
}

impl crate::search::RangeRead for ArchivedFile {
    fn read_range(&mut self, offset: u64, len: u64, out: &mut Vec<u8>) -> std::io::Result<()> {
        out.clear();
        let bad = |why: String| std::io::Error::other(why);
        let end = offset
            .checked_add(len)
            .ok_or_else(|| bad(format!("bytes {offset}+{len} are past any file")))?;
        let Some(index) = self
            .parts
            .iter()
            .position(|(_, o, size)| *o <= offset && end <= o.saturating_add(*size))
        else {
            return Err(bad(format!(
                "bytes {offset}..{end} are not within one archived object"
            )));
        };
        let (object, part_offset, _) = self.parts[index].clone();
        let key = format!("{}/{object}", self.base);
        let rel = offset - part_offset;
        if self.open.as_ref().is_some_and(|(i, _)| *i != index) {
            self.open = None;
        }
        let inner = self.inner.clone();
        match &inner.target {
            Target::Dir(dir) => {
                if self.open.is_none() {
                    let path = dir.join(&key);
                    no_links(dir, &path).map_err(|e| bad(format!("{e:#}")))?;
                    let f = store::open_regular(&path)?;
                    self.open = Some((index, OpenObject::Dir(f)));
                }
                let Some((_, OpenObject::Dir(f))) = self.open.as_mut() else {
                    return Err(bad("the archived object is not open".into()));
                };
                f.seek(SeekFrom::Start(rel))?;
                f.take(len).read_to_end(out)?;
                if (out.len() as u64) < len {
                    return Err(bad(format!("{key} ends before byte {}", rel + len)));
                }
                Ok(())
            }
            #[cfg(feature = "s3")]
            Target::S3(s3) => {
                let reuse = matches!(
                    &self.open,
                    Some((_, OpenObject::S3 { pos, pending, at, .. }))
                        if *pos <= rel && rel <= *pos + (pending.len() - at) as u64 + SKIP_AHEAD
                );
                if !reuse {
                    let (_, body) = inner
                        .runtime
                        .block_on(s3.get_from(&key, rel))
                        .map_err(|e| bad(format!("{e:#}")))?;
                    self.open = Some((
                        index,
                        OpenObject::S3 {
                            body,
                            pos: rel,
                            pending: Vec::new(),
                            at: 0,
                        },
                    ));
                }
                let Some((
                    _,
                    OpenObject::S3 {
                        body,
                        pos,
                        pending,
                        at,
                    },
                )) = self.open.as_mut()
                else {
                    return Err(bad("the archived object is not open".into()));
                };
                while (out.len() as u64) < len {
                    if *at == pending.len() {
                        let chunk = inner
                            .runtime
                            .block_on(body.try_next())
                            .map_err(|e| bad(format!("cannot read {key}: {e}")))?;
                        let Some(chunk) = chunk else {
                            return Err(bad(format!("{key} ends before byte {}", rel + len)));
                        };
                        pending.clear();
                        pending.extend_from_slice(&chunk);
                        *at = 0;
                        continue;
                    }
                    let avail = &pending[*at..];
                    if *pos < rel {
                        let skip = ((rel - *pos) as usize).min(avail.len());
                        *at += skip;
                        *pos += skip as u64;
                        continue;
                    }
                    let take = ((len - out.len() as u64) as usize).min(avail.len());
                    out.extend_from_slice(&avail[..take]);
                    *at += take;
                    *pos += take as u64;
                }
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(offset: u64, length: u64) -> FrameRef {
        FrameRef::for_tests(offset, length)
    }

    #[test]
    fn objects_split_at_frame_boundaries() {
        let frames = [
            frame(0, 40),
            frame(40, 40),
            frame(80, 30),
            frame(110, 200),
            frame(310, 5),
        ];
        assert_eq!(
            split_points(&frames, 100),
            vec![(0, 80), (80, 30), (110, 200), (310, 5)]
        );
        assert_eq!(split_points(&frames, u64::MAX), vec![(0, 315)]);
        assert_eq!(split_points(&[], 100), vec![(0, 0)]);
    }

    #[test]
    fn keys_hold_prefix_origin_host_and_date() {
        assert_eq!(
            day_key(
                "s3://bucket/a/b/",
                "loghost.example.org/archive",
                "web1",
                "2026-11-01"
            ),
            "a/b/loghost.example.org_archive/web1/2026-11-01"
        );
        assert_eq!(
            day_key("s3://bucket", "o", "web1", "2026-11-01"),
            "o/web1/2026-11-01"
        );
        assert_eq!(
            day_key("file:///mnt/archive", "o", "web1", "2026-11-01"),
            "o/web1/2026-11-01"
        );
    }

    #[test]
    fn retention_runs_to_the_end_of_the_day_plus_lock_days() {
        assert_eq!(
            retain_until("2026-11-01", 365).expect("date").to_string(),
            "2027-11-02T00:00:00Z"
        );
    }
}
