//! Checkpoints: the ledger's signed tree heads (C2SP `tlog-checkpoint` bodies in C2SP
//! `signed-note`s, Ed25519), where they are kept, and where they are copied (anchors).
//!
//! A checkpoint body is `<origin>\n<size>\n<base64 root>\n`. One is written after every pull round
//! that added entries, to `<store>/ledger/checkpoints/<size>.ckpt` (size zero-padded to 20
//! digits), created once and never rewritten. Before signing, the writer checks that the ledger
//! extends the newest checkpoint already there: the log never signs two inconsistent trees.
//!
//! Anchors are places the loghost can add to but not rewrite (an auditor's mount, later a WORM
//! bucket): every new checkpoint is copied to `<anchor>/<origin, '/' → '_'>/<size>.ckpt`. A
//! failing anchor is reported loudly and does not stop collection.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;

use crate::hash::Hash;
use crate::keys::SigningKey;
use crate::layout;

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
        let mut note = signed_note::Note::new(self.body().as_bytes(), &[])
            .map_err(|e| anyhow::anyhow!("cannot build the checkpoint note: {e}"))?;
        note.add_sigs(&[key])
            .map_err(|e| anyhow::anyhow!("cannot sign the checkpoint: {e}"))?;
        Ok(note.to_bytes())
    }
}

/// Checks a signed checkpoint against a verifier key (`<name>+<id>+<base64>`) and returns its
/// content. Fails unless that key signed it.
pub fn open(note: &[u8], vkey: &str) -> Result<Checkpoint, String> {
    let verifier =
        signed_note::StandardVerifier::new(vkey).map_err(|e| format!("bad verifier key: {e}"))?;
    let note =
        signed_note::Note::from_bytes(note).map_err(|e| format!("not a signed note: {e}"))?;
    let list = signed_note::VerifierList::new(vec![Box::new(verifier)]);
    note.verify(&list)
        .map_err(|e| format!("signature check failed: {e}"))?;
    let text = std::str::from_utf8(note.text()).map_err(|_| "not UTF-8".to_string())?;
    Checkpoint::parse_body(text)
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

/// Where an anchor keeps this log's checkpoints: a subdirectory per origin, so several loghosts
/// can share one anchor.
pub fn anchor_dir(anchor: &str, origin: &str) -> Result<PathBuf, String> {
    let Some(base) = anchor.strip_prefix("file://") else {
        return Err(format!(
            "anchor {anchor}: only file:// anchors are supported so far (s3:// comes with the \
             archive tier)"
        ));
    };
    let sub: String = origin
        .chars()
        .map(|c| if c == '/' || c == '\\' { '_' } else { c })
        .collect();
    Ok(Path::new(base).join(sub))
}

/// Copies a signed checkpoint to an anchor. Never overwrites a different file there.
pub fn copy_to_anchor(anchor: &str, origin: &str, size: u64, note: &[u8]) -> Result<PathBuf> {
    let dir = anchor_dir(anchor, origin).map_err(anyhow::Error::msg)?;
    write_new(&dir, size, note)
}

/// The newest checkpoint an anchor holds for this log, verified with `vkey`.
pub fn newest_in_anchor(anchor: &str, origin: &str, vkey: &str) -> Result<Option<Checkpoint>> {
    let dir = anchor_dir(anchor, origin).map_err(anyhow::Error::msg)?;
    let sizes = sizes_in(&dir).with_context(|| format!("cannot list {}", dir.display()))?;
    for size in sizes.iter().rev() {
        let path = dir.join(file_name(*size));
        let bytes =
            std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
        match open(&bytes, vkey) {
            Ok(c) if c.size == *size => return Ok(Some(c)),
            _ => tracing::warn!(
                "{}: not a valid checkpoint of this log; ignored",
                path.display()
            ),
        }
    }
    Ok(None)
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
}

/// After a round: signs a checkpoint of the current tree if it grew, after checking that the
/// tree extends the newest checkpoint in the store, then makes sure every anchor holds the newest
/// checkpoint. An error means no checkpoint was signed (the ledger does not extend the last one,
/// or the key or store failed); anchor failures are reported in the result instead.
pub fn write_round(
    store_root: &Path,
    ledger: &mut crate::ledger::Ledger,
    key: &SigningKey,
    origin: &str,
    anchors: &[String],
) -> Result<RoundCheckpoint> {
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
        _ => {
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
    for anchor in anchors {
        if let Err(e) = copy_to_anchor(anchor, origin, size, &note) {
            out.anchor_errors.push(format!("{anchor}: {e:#}"));
        }
    }
    Ok(out)
}
