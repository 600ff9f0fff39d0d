//! Checkpoints: the ledger's signed tree heads (C2SP `tlog-checkpoint` bodies in C2SP
//! `signed-note`s, Ed25519), where they are kept, and where they are copied (anchors).
//!
//! A checkpoint body is `<origin>\n<size>\n<base64 root>\n`. One is written after every pull round
//! that added entries, to `<store>/ledger/checkpoints/<size>.ckpt` (size zero-padded to 20
//! digits), created once and never rewritten. Before signing, the writer checks that the ledger
//! extends the newest checkpoint already there: the log never signs two inconsistent trees.
//!
//! Anchors are places the loghost can add to but not rewrite (an auditor's mount, an S3 bucket
//! with Object Lock): every new checkpoint is copied to `<anchor>/<origin, '/' → '_'>/<size>.ckpt`
//! (on S3: that object name under the URL's prefix, locked like archived objects). A failing
//! anchor is reported loudly and does not stop collection. Anchoring happens after the ledger
//! lock is released ([`anchor_round`]), so a slow anchor holds nothing up.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;

use crate::config::Config;
use crate::hash::Hash;
use crate::keys::SigningKey;
use crate::store::layout;

/// A checkpoint's content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    pub origin: String,
    pub size: u64,
    pub root: Hash,
}

impl Checkpoint {
    /// The `tlog-checkpoint` body.
    pub fn body(&self) -> String {
        format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size,
            B64.encode(self.root.0)
        )
    }

    /// Parses a body (extension lines after the root are allowed and ignored).
    pub fn parse_body(text: &str) -> Result<Checkpoint, String> {
        let mut lines = text.split('\n');
        let (Some(origin), Some(size), Some(root)) = (lines.next(), lines.next(), lines.next())
        else {
            return Err("a checkpoint needs an origin, a size and a root line".into());
        };
        if origin.is_empty() {
            return Err("empty origin line".into());
        }
        let size_ok = !size.is_empty()
            && size.bytes().all(|b| b.is_ascii_digit())
            && (size == "0" || !size.starts_with('0'));
        let size: u64 = match size.parse() {
            Ok(v) if size_ok => v,
            _ => return Err(format!("invalid tree size {size:?}")),
        };
        let raw = B64
            .decode(root)
            .map_err(|_| format!("invalid root hash {root:?}"))?;
        let root: [u8; 32] = raw
            .try_into()
            .map_err(|_| "the root hash is not 32 bytes".to_string())?;
        Ok(Checkpoint {
            origin: origin.to_string(),
            size,
            root: Hash(root),
        })
    }

    /// Signs the checkpoint: the bytes of the signed note.
    pub fn sign(&self, key: &SigningKey) -> Result<Vec<u8>> {
        self.sign_with(key, &[])
    }

    /// Signs the checkpoint with extension lines after the root (each without its newline).
    pub fn sign_with(&self, key: &SigningKey, extensions: &[&str]) -> Result<Vec<u8>> {
        let mut body = self.body();
        for e in extensions {
            body.push_str(e);
            body.push('\n');
        }
        let mut note = signed_note::Note::new(body.as_bytes(), &[])
            .map_err(|e| anyhow::anyhow!("cannot build the checkpoint note: {e}"))?;
        note.add_sigs(&[key])
            .map_err(|e| anyhow::anyhow!("cannot sign the checkpoint: {e}"))?;
        Ok(note.to_bytes())
    }
}

/// Checks a signed checkpoint against a verifier key (`<name>+<id>+<base64>`) and returns its
/// content. Fails unless that key signed it, and for a note with extension lines (this log's
/// checkpoints have none; its signed heads have one, and a head is not a checkpoint).
pub fn open(note: &[u8], vkey: &str) -> Result<Checkpoint, String> {
    let (c, ext) = open_with_extensions(note, vkey)?;
    if !ext.is_empty() {
        return Err(format!(
            "extension lines {ext:?}: not a checkpoint of this log (a signed head?)"
        ));
    }
    Ok(c)
}

/// [`open`], returning the body's extension lines too.
pub fn open_with_extensions(note: &[u8], vkey: &str) -> Result<(Checkpoint, Vec<String>), String> {
    let verifier =
        signed_note::StandardVerifier::new(vkey).map_err(|e| format!("bad verifier key: {e}"))?;
    let note =
        signed_note::Note::from_bytes(note).map_err(|e| format!("not a signed note: {e}"))?;
    let list = signed_note::VerifierList::new(vec![Box::new(verifier)]);
    note.verify(&list)
        .map_err(|e| format!("signature check failed: {e}"))?;
    let text = std::str::from_utf8(note.text()).map_err(|_| "not UTF-8".to_string())?;
    let c = Checkpoint::parse_body(text)?;
    let ext = text
        .split('\n')
        .skip(3)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect();
    Ok((c, ext))
}

/// The file name of the checkpoint of a tree size.
pub fn file_name(size: u64) -> String {
    format!("{size:020}.ckpt")
}

/// The tree sizes of the checkpoints in a directory, ascending (other files are ignored).
pub fn sizes_in(dir: &Path) -> std::io::Result<Vec<u64>> {
    let mut sizes = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(sizes),
        Err(e) => return Err(e),
    };
    for e in entries {
        let name = e?.file_name();
        let Some(stem) = name.to_str().and_then(|n| n.strip_suffix(".ckpt")) else {
            continue;
        };
        if stem.len() == 20
            && let Ok(size) = stem.parse::<u64>()
        {
            sizes.push(size);
        }
    }
    sizes.sort_unstable();
    Ok(sizes)
}

/// The store's checkpoint directory.
pub fn dir(store_root: &Path) -> PathBuf {
    store_root.join(layout::CHECKPOINTS_DIR)
}

/// Writes a signed checkpoint as a new file in `dir`. An identical existing file is fine (the
/// same tree signed again gives the same bytes); a different one is refused: it would be a fork.
pub fn write_new(dir: &Path, size: u64, note: &[u8]) -> Result<PathBuf> {
    crate::store::create_dir_all_0700(dir)
        .with_context(|| format!("cannot create {}", dir.display()))?;
    let path = dir.join(file_name(size));
    match crate::store::write_new(&path, note) {
        Ok(()) => Ok(path),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let existing =
                std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
            if existing == note {
                Ok(path)
            } else {
                bail!(
                    "{} already holds a different checkpoint of the same size: refusing to \
                     sign a second, inconsistent tree",
                    path.display()
                )
            }
        }
        Err(e) => Err(e).with_context(|| format!("cannot write {}", path.display())),
    }
}

/// An anchor's subdirectory for one origin (`/` → `_`), so several loghosts can share it.
pub fn origin_dir(origin: &str) -> String {
    origin
        .chars()
        .map(|c| if c == '/' || c == '\\' { '_' } else { c })
        .collect()
}

/// Where a `file://` anchor keeps this log's checkpoints.
pub fn anchor_dir(anchor: &str, origin: &str) -> Result<PathBuf, String> {
    let Some(base) = anchor.strip_prefix("file://") else {
        return Err(format!("anchor {anchor}: not a file:// anchor"));
    };
    Ok(Path::new(base).join(origin_dir(origin)))
}

/// Copies a signed checkpoint to an anchor (`file://` or `s3://`). Never overwrites a different
/// copy there; in an S3 bucket with Object Lock the copy is locked for `object_lock_days`.
pub fn copy_to_anchor(config: &Config, anchor: &str, size: u64, note: &[u8]) -> Result<String> {
    let origin = &config.ledger.origin;
    if anchor.starts_with("s3://") {
        #[cfg(feature = "s3")]
        {
            let s3 = config
                .s3
                .as_ref()
                .ok_or_else(|| anyhow::anyhow!("no [s3] table for anchor {anchor}"))?;
            let key = crate::s3::anchor_put(
                anchor,
                s3,
                &origin_dir(origin),
                &file_name(size),
                note,
                config.retention.object_lock_days,
            )?;
            return Ok(key);
        }
        #[cfg(not(feature = "s3"))]
        bail!("anchor {anchor}: this loghost was built without S3 support (feature `s3`)");
    }
    let dir = anchor_dir(anchor, origin).map_err(anyhow::Error::msg)?;
    Ok(write_new(&dir, size, note)?.display().to_string())
}

/// What an anchor holds for this log.
#[derive(Debug, Default)]
pub struct AnchorContents {
    /// The valid checkpoints of this log, by tree size.
    pub checkpoints: Vec<Checkpoint>,
    /// Everything else found there, each a sign of tampering with the anchor: objects that are
    /// not checkpoints of this log (or not under their own size's name), several different
    /// versions of one name, delete markers.
    pub problems: Vec<String>,
}

/// Reads what an anchor holds for this log, checking every object with `vkey`: everything when
/// `after` is `None`, else only checkpoint names above that tree size (what the store does not
/// have yet). Every object is read, so junk can hide nothing. An error: the anchor could not be
/// read at all.
pub fn read_anchor(
    config: &Config,
    anchor: &str,
    vkey: &str,
    after: Option<u64>,
) -> Result<AnchorContents> {
    let origin = &config.ledger.origin;
    // (name, each version's bytes or read error, delete markers)
    type Object = (String, Vec<Result<Vec<u8>, String>>, usize);
    let objects: Vec<Object> = if anchor.starts_with("s3://") {
        #[cfg(feature = "s3")]
        {
            let s3 = config
                .s3
                .as_ref()
                .ok_or_else(|| anyhow::anyhow!("no [s3] table for anchor {anchor}"))?;
            let after = after.map(file_name);
            crate::s3::anchor_objects(anchor, s3, &origin_dir(origin), after.as_deref())?
                .into_iter()
                .map(|o| (o.name, o.versions, o.delete_markers))
                .collect()
        }
        #[cfg(not(feature = "s3"))]
        bail!("anchor {anchor}: this loghost was built without S3 support (feature `s3`)");
    } else {
        let dir = anchor_dir(anchor, origin).map_err(anyhow::Error::msg)?;
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => Some(e),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(e).with_context(|| format!("cannot list {}", dir.display())),
        };
        let mut out = Vec::new();
        for e in entries.into_iter().flatten() {
            let e = e.with_context(|| format!("cannot list {}", dir.display()))?;
            let name = e.file_name().to_string_lossy().into_owned();
            if let Some(a) = after
                && size_of_name(&name).is_none_or(|s| s <= a)
            {
                continue;
            }
            let path = e.path();
            let meta = std::fs::symlink_metadata(&path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            let bytes = if !meta.is_file() {
                Err("not a regular file".to_string())
            } else if meta.len() > MAX_CHECKPOINT_BYTES {
                Err(format!(
                    "{} bytes: too large to be a checkpoint",
                    meta.len()
                ))
            } else {
                std::fs::read(&path).map_err(|e| e.to_string())
            };
            out.push((name, vec![bytes], 0));
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    };
    let mut found = AnchorContents::default();
    for (name, versions, delete_markers) in objects {
        let at = format!("anchor {anchor}: {}/{name}", origin_dir(origin));
        if delete_markers > 0 {
            found.problems.push(format!(
                "{at}: {delete_markers} delete marker(s) on it (someone tried to delete an \
                anchored checkpoint)"
            ));
        }
        let distinct: std::collections::BTreeSet<&[u8]> = versions
            .iter()
            .filter_map(|v| v.as_ref().ok().map(Vec::as_slice))
            .collect();
        if distinct.len() > 1 {
            found.problems.push(format!(
                "{at}: {} different versions (an anchored checkpoint was overwritten)",
                distinct.len()
            ));
        }
        for bytes in distinct {
            match open(bytes, vkey) {
                Ok(c) if size_of_name(&name) == Some(c.size) => {
                    if !found.checkpoints.contains(&c) {
                        found.checkpoints.push(c);
                    }
                }
                Ok(c) => found.problems.push(format!(
                    "{at}: a checkpoint of tree size {} under another name",
                    c.size
                )),
                Err(e) => found
                    .problems
                    .push(format!("{at}: not a valid checkpoint of this log ({e})")),
            }
        }
        for v in &versions {
            if let Err(e) = v {
                found.problems.push(format!("{at}: cannot be read: {e}"));
            }
        }
    }
    found.checkpoints.sort_by_key(|c| c.size);
    Ok(found)
}

/// Files larger than this in an anchor are not read as checkpoints.
const MAX_CHECKPOINT_BYTES: u64 = 64 << 10;

/// The tree size a checkpoint file name stands for (`<20 digits>.ckpt`).
pub fn size_of_name(name: &str) -> Option<u64> {
    let stem = name.strip_suffix(".ckpt")?;
    if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    stem.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> SigningKey {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("k");
        crate::keys::ensure_signing_key(&path, "test.example/log").expect("key");
        crate::keys::load_signing_key(&path).expect("load")
    }

    #[test]
    fn sign_open_round_trip_and_forgeries() {
        let k = key();
        let c = Checkpoint {
            origin: "test.example/log".into(),
            size: 42,
            root: Hash::of(b"root"),
        };
        let note = c.sign(&k).expect("sign");
        let text = String::from_utf8(note.clone()).expect("utf8");
        assert!(text.starts_with("test.example/log\n42\n"), "{text}");
        assert!(text.contains("\n\n\u{2014} test.example/log "), "{text}");
        assert_eq!(open(&note, &k.verifier_key()), Ok(c.clone()));

        // A changed size or root no longer verifies.
        let forged = text.replace("\n42\n", "\n43\n");
        assert!(open(forged.as_bytes(), &k.verifier_key()).is_err());
        // Another key's signature is not accepted.
        let other = key();
        assert!(open(&c.sign(&other).expect("sign"), &k.verifier_key()).is_err());
    }

    #[test]
    fn bodies_parse_strictly() {
        assert!(Checkpoint::parse_body("o\n01\nAAAA\n").is_err());
        assert!(Checkpoint::parse_body("o\n1\nnot base64\n").is_err());
        assert!(Checkpoint::parse_body("o\n1\n").is_err());
        let root = B64.encode([7u8; 32]);
        let c = Checkpoint::parse_body(&format!("o\n0\n{root}\next\n")).expect("valid");
        assert_eq!(c.size, 0);
    }

    #[test]
    fn files_are_never_rewritten() {
        let dir = tempfile::tempdir().expect("tempdir");
        write_new(dir.path(), 5, b"one\n").expect("first");
        write_new(dir.path(), 5, b"one\n").expect("the same again is fine");
        assert!(write_new(dir.path(), 5, b"two\n").is_err());
        write_new(dir.path(), 12, b"x\n").expect("another size");
        assert_eq!(sizes_in(dir.path()).expect("list"), vec![5, 12]);
    }
}

/// What [`write_round`] did.
#[derive(Debug, Clone, Default)]
pub struct RoundCheckpoint {
    /// The tree size now covered by the newest checkpoint.
    pub size: u64,
    /// The new checkpoint's file, when one was written.
    pub written: Option<PathBuf>,
    /// Anchors that could not take the newest checkpoint, with why.
    pub anchor_errors: Vec<String>,
    /// The newest checkpoint, signed (none while the ledger is empty).
    pub note: Option<Vec<u8>>,
}

/// After a round: signs a checkpoint of the current tree if it grew, after checking that the
/// tree extends the newest checkpoint in the store ([`anchor_round`] then copies it to the
/// anchors). An error means no checkpoint was signed (the ledger does not extend the last one,
/// or the key or store failed).
pub fn write_round(
    store_root: &Path,
    ledger: &mut crate::ledger::Ledger,
    key: &SigningKey,
    config: &Config,
) -> Result<RoundCheckpoint> {
    let origin = config.ledger.origin.as_str();
    let (size, root) = ledger.tree();
    let dir = dir(store_root);
    let sizes = sizes_in(&dir).with_context(|| format!("cannot list {}", dir.display()))?;
    let vkey = key.verifier_key();
    let mut newest = None;
    if let Some(&n) = sizes.last() {
        let path = dir.join(file_name(n));
        let note =
            std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
        let prev = open(&note, &vkey).map_err(|e| {
            anyhow::anyhow!(
                "{} is not a valid checkpoint of this log ({e}); not signing a new one until \
                 `loghost verify` has been run and the store repaired",
                path.display()
            )
        })?;
        if prev.size != n {
            bail!("{} claims tree size {}, not {n}", path.display(), prev.size);
        }
        if n > size {
            bail!(
                "the ledger has {size} entries but checkpoint {} covers {n}: the ledger was cut \
                 short; not signing (run `loghost verify`)",
                path.display()
            );
        }
        match ledger.index().root_at_checkpoint {
            Some((s, r)) if s == n && r == prev.root => {}
            _ => bail!(
                "the ledger's first {n} entries do not match checkpoint {}: the ledger was \
                 rewritten; not signing an inconsistent checkpoint (run `loghost verify`)",
                path.display()
            ),
        }
        newest = Some((n, note));
    }
    let mut out = RoundCheckpoint {
        size,
        ..Default::default()
    };
    let note = match newest {
        Some((n, note)) if n == size => note,
        _ if size == 0 => return Ok(out),
        newest => {
            let known = newest.as_ref().map(|(n, _)| *n);
            out.anchor_errors = check_anchors(config, &vkey, known, ledger)?;
            let c = Checkpoint {
                origin: origin.to_string(),
                size,
                root,
            };
            let note = c.sign(key)?;
            out.written = Some(write_new(&dir, size, &note)?);
            ledger.checkpointed();
            note
        }
    };
    out.note = Some(note);
    Ok(out)
}

/// Before signing: every anchor must hold nothing the store lacks. A valid checkpoint of this
/// log in an anchor above the store's newest (`known`) means the store's checkpoints were
/// deleted or rolled back: an ALARM, and nothing is signed (whether the ledger still matches it
/// or was rewritten, the message says which). An anchor that cannot be read: nothing is signed
/// until it can be checked. Junk in an anchor does not stop signing; it is returned, to be
/// reported as an ALARM with the anchor errors.
fn check_anchors(
    config: &Config,
    vkey: &str,
    known: Option<u64>,
    ledger: &crate::ledger::Ledger,
) -> Result<Vec<String>> {
    let mut ahead: Vec<(String, Checkpoint)> = Vec::new();
    let mut junk = Vec::new();
    for anchor in &config.ledger.anchors {
        let found = read_anchor(config, anchor, vkey, known).with_context(|| {
            format!(
                "anchor {anchor} cannot be read, so the ledger cannot be checked against it: no \
                checkpoint is signed until it can (collection goes on)"
            )
        })?;
        junk.extend(found.problems.into_iter().map(|p| format!("ALARM: {p}")));
        ahead.extend(found.checkpoints.into_iter().map(|c| (anchor.clone(), c)));
    }
    if ahead.is_empty() {
        return Ok(junk);
    }
    let sizes = ahead.iter().map(|(_, c)| c.size).collect();
    let roots = crate::ledger::roots_at(ledger.path(), &sizes)?;
    let store = match known {
        Some(n) => format!("the store's newest checkpoint covers {n} entries"),
        None => "the store holds no checkpoint".to_string(),
    };
    let mut lines = Vec::new();
    for (anchor, c) in &ahead {
        let state = match roots.get(&c.size) {
            Some(r) if *r == c.root => {
                "the ledger still matches it: only checkpoint files were deleted from the \
                 store"
            }
            Some(_) => "the ledger does NOT match it: the ledger was rewritten",
            None => "the ledger is shorter: it was cut short or rolled back",
        };
        lines.push(format!("{anchor} holds checkpoint {} ({state})", c.size));
    }
    bail!(
        "ALARM: {store}, but {}. Not signing a checkpoint over this ledger. Run `loghost \
        verify`; if the ledger matches, copy the anchor's checkpoints back into {} (a store \
        deliberately started over needs a new [ledger] origin)",
        lines.join("; "),
        layout::CHECKPOINTS_DIR
    )
}

/// Makes sure every anchor holds the newest checkpoint (`round.note`); failures go to
/// `round.anchor_errors`. Called without the ledger lock: an anchor may be slow.
pub fn anchor_round(config: &Config, round: &mut RoundCheckpoint) {
    let Some(note) = &round.note else {
        return;
    };
    for anchor in &config.ledger.anchors {
        if let Err(e) = copy_to_anchor(config, anchor, round.size, note) {
            round.anchor_errors.push(format!("{anchor}: {e:#}"));
        }
    }
}
