//! The auditor's commands: `key` (the verifier key to hand out), `prove` (inclusion and
//! consistency proof files from the local ledger) and `verify-proof` (checking such files
//! offline, with only the verifier key and, optionally, the stored file a proof is about).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use crate::config::{Config, SetupError};
use crate::hash::Hash;
use crate::ledger::checkpoint::{self, Checkpoint};
use crate::ledger::merkle;
use crate::ledger::proof::{self, Proven};
use crate::ledger::{self, Entry};
use crate::store::Store;
use crate::store::layout;

/// The log's verifier key, from the signing key.
pub fn verifier_key(config: &Config) -> Result<String> {
    Ok(crate::keys::load_signing_key(&config.ledger.signing_key)
        .map_err(|e| SetupError(format!("{e:#}")))?
        .verifier_key())
}

/// A signed checkpoint and what it says.
struct Signed {
    note: Vec<u8>,
    checkpoint: Checkpoint,
}

/// Loads a checkpoint: a file path, or a tree size of one in the store; default the newest in
/// the store.
fn load_checkpoint(store: &Store, vkey: &str, which: Option<&str>) -> Result<Signed> {
    let dir = checkpoint::dir(store.root());
    let path = match which {
        Some(w) if w.bytes().all(|b| b.is_ascii_digit()) && !w.is_empty() => {
            dir.join(checkpoint::file_name(w.parse().context("tree size")?))
        }
        Some(w) => PathBuf::from(w),
        None => {
            let sizes = checkpoint::sizes_in(&dir)?;
            let Some(n) = sizes.last() else {
                bail!("the store has no checkpoint yet; run `loghost pull` first");
            };
            dir.join(checkpoint::file_name(*n))
        }
    };
    let note = std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
    let checkpoint = checkpoint::open(&note, vkey)
        .map_err(|e| anyhow::anyhow!("{}: not a checkpoint of this log: {e}", path.display()))?;
    Ok(Signed { note, checkpoint })
}

/// Ledger lines by sequence number.
type Lines = BTreeMap<u64, Vec<u8>>;

/// Leaf hashes of the first `size` ledger entries, and the lines of the wanted ones.
fn leaves(
    store: &Store,
    size: u64,
    mut want: impl FnMut(&Entry) -> bool,
) -> Result<(Vec<Hash>, Lines)> {
    let mut hashes = Vec::with_capacity(size.min(1 << 24) as usize);
    let mut lines = BTreeMap::new();
    ledger::scan(&store.path(layout::LEDGER_FILE), 0, 0, |_, line, entry| {
        if (hashes.len() as u64) < size {
            hashes.push(merkle::leaf_hash(line));
            if want(&entry) {
                lines.insert(entry.seq(), line.to_vec());
            }
        }
    })?;
    if (hashes.len() as u64) < size {
        bail!(
            "the ledger has {} entries, fewer than the checkpoint's {size}: it was cut short; \
             run `loghost verify`",
            hashes.len()
        );
    }
    Ok((hashes, lines))
}

/// What `prove inclusion` proves.
pub enum Target {
    /// One ledger entry.
    Entry(u64),
    /// Every frame of a stored file (store-relative, as in the ledger).
    File(String),
}

/// Writes inclusion proofs. One entry: to `out` (a file; default `<seq>.tlog-proof`). A stored
/// file: one proof per frame into the directory `out` (default: the current directory).
pub fn prove_inclusion(
    config: &Config,
    target: &Target,
    which: Option<&str>,
    out: Option<&Path>,
    stdout: &mut dyn Write,
) -> Result<()> {
    let store = Store::open(&config.store)?;
    let vkey = verifier_key(config)?;
    let signed = load_checkpoint(&store, &vkey, which)?;
    let size = signed.checkpoint.size;
    let (hashes, lines) = leaves(&store, size, |e| match (target, e) {
        (Target::Entry(n), e) => e.seq() == *n,
        (Target::File(f), Entry::Frame(fr)) => fr.file == *f,
        _ => false,
    })?;
    if merkle::root(&hashes) != signed.checkpoint.root {
        bail!(
            "the ledger's first {size} entries do not match the checkpoint: the ledger was \
             rewritten; run `loghost verify`"
        );
    }
    if lines.is_empty() {
        match target {
            Target::Entry(n) => bail!(
                "entry {n} is not covered by the checkpoint of {size} entries (the newest \
                 entries are covered after the next pull round)"
            ),
            Target::File(f) => bail!(
                "no frame of {f} is covered by the checkpoint of {size} entries (a store-relative \
                 path such as logs/web1/2026-11-28/auth.log.zst)"
            ),
        }
    }
    let dir = match (target, out) {
        (Target::File(_), Some(d)) => {
            crate::store::create_dir_all_0700(d)
                .with_context(|| format!("cannot create {}", d.display()))?;
            Some(d.to_path_buf())
        }
        (Target::File(_), None) => Some(PathBuf::from(".")),
        _ => None,
    };
    for (seq, line) in &lines {
        let path = merkle::inclusion_proof(&hashes, *seq)
            .ok_or_else(|| anyhow::anyhow!("entry {seq} is outside the tree"))?;
        let file = proof::inclusion_file(line, *seq, &path, &signed.note);
        let dest = match (&dir, out) {
            (Some(d), _) => d.join(format!("{seq}.tlog-proof")),
            (None, Some(o)) => o.to_path_buf(),
            (None, None) => PathBuf::from(format!("{seq}.tlog-proof")),
        };
        std::fs::write(&dest, &file).with_context(|| format!("cannot write {}", dest.display()))?;
        writeln!(
            stdout,
            "{}: entry {seq} in the checkpoint of {size} entries",
            dest.display()
        )?;
    }
    Ok(())
}

/// Writes a consistency proof between two checkpoints (files, or sizes of stored ones).
pub fn prove_consistency(
    config: &Config,
    old: &str,
    new: &str,
    out: Option<&Path>,
    stdout: &mut dyn Write,
) -> Result<()> {
    let store = Store::open(&config.store)?;
    let vkey = verifier_key(config)?;
    let old = load_checkpoint(&store, &vkey, Some(old))?;
    let new = load_checkpoint(&store, &vkey, Some(new))?;
    let (o, n) = (old.checkpoint.size, new.checkpoint.size);
    if o > n {
        bail!("the old checkpoint ({o} entries) is larger than the new one ({n})");
    }
    let (hashes, _) = leaves(&store, n, |_| false)?;
    if merkle::root(&hashes) != new.checkpoint.root
        || merkle::root(&hashes[..o as usize]) != old.checkpoint.root
    {
        bail!("the local ledger does not match these checkpoints; run `loghost verify`");
    }
    let path = merkle::consistency_proof(&hashes, o)
        .ok_or_else(|| anyhow::anyhow!("sizes out of range"))?;
    let file = proof::consistency_file(o, n, &path, &old.note, &new.note);
    let dest = out.map_or_else(
        || PathBuf::from(format!("{o}-{n}.consistency-proof")),
        Path::to_path_buf,
    );
    std::fs::write(&dest, file).with_context(|| format!("cannot write {}", dest.display()))?;
    writeln!(
        stdout,
        "{}: checkpoint {o} is a prefix of checkpoint {n}",
        dest.display()
    )?;
    Ok(())
}

/// Reads a verifier key argument: the key itself, or a file holding it.
pub fn read_vkey(arg: &str) -> Result<String> {
    let key = if Path::new(arg).is_file() {
        std::fs::read_to_string(arg).with_context(|| format!("cannot read {arg}"))?
    } else {
        arg.to_string()
    };
    let key = key.trim().to_string();
    signed_note::StandardVerifier::new(&key).map_err(|e| {
        SetupError(format!(
            "{arg:?} is not a verifier key (`loghost key` prints it: <name>+<id>+<base64>): {e}"
        ))
    })?;
    Ok(key)
}

/// `verify-proof`: checks proof files, and optionally that a stored file is exactly the frames
/// the proofs name. Returns the exit status (0 all hold, 1 something does not).
pub fn verify_proofs(
    vkey: &str,
    files: &[PathBuf],
    data: Option<&Path>,
    out: &mut dyn Write,
) -> Result<i32> {
    let mut failed = 0;
    let mut frames = Vec::new();
    for f in files {
        let bytes = std::fs::read(f).with_context(|| format!("cannot read {}", f.display()))?;
        match proof::check(&bytes, vkey) {
            Ok(Proven::Inclusion {
                checkpoint,
                index,
                entry,
                ..
            }) => match entry.as_ref() {
                Entry::Frame(fr) => {
                    writeln!(
                        out,
                        "{}: OK: entry {index} is in {} at {} entries: host {}, {} bytes \
                             {}..{}, stored as {} bytes {}..{} of {} (sha256 {})",
                        f.display(),
                        checkpoint.origin,
                        checkpoint.size,
                        fr.host,
                        crate::sanitize::Shown(&fr.source),
                        fr.start,
                        fr.end,
                        fr.length,
                        fr.offset,
                        fr.offset + fr.length,
                        fr.file,
                        fr.sha256
                    )?;
                    frames.push((f.clone(), fr.clone()));
                }
                Entry::Event(ev) => writeln!(
                    out,
                    "{}: OK: entry {index} ({:?} event) is in {} at {} entries",
                    f.display(),
                    ev.event,
                    checkpoint.origin,
                    checkpoint.size
                )?,
            },
            Ok(Proven::Consistency { old, new }) => writeln!(
                out,
                "{}: OK: {} at {} entries is a prefix of the log at {} entries",
                f.display(),
                old.origin,
                old.size,
                new.size
            )?,
            Err(e) => {
                failed += 1;
                writeln!(out, "{}: FAILED: {e}", f.display())?;
            }
        }
    }
    if let Some(data) = data {
        failed += check_data(data, &mut frames, out)?;
    }
    Ok(if failed == 0 { 0 } else { 1 })
}

/// Checks that `data` is exactly the proven frames, in order, each hashing to its entry.
fn check_data(
    data: &Path,
    frames: &mut [(PathBuf, crate::ledger::Frame)],
    out: &mut dyn Write,
) -> Result<usize> {
    let bytes = std::fs::read(data).with_context(|| format!("cannot read {}", data.display()))?;
    frames.sort_by_key(|(_, f)| f.offset);
    let mut failed = 0;
    let mut pos = 0u64;
    for (proof_file, f) in frames.iter() {
        if f.offset != pos {
            failed += 1;
            writeln!(
                out,
                "{}: FAILED: bytes {pos}..{} are not covered by the given proofs",
                data.display(),
                f.offset
            )?;
        }
        let end = f.offset + f.length;
        let slice = usize::try_from(f.offset)
            .ok()
            .zip(usize::try_from(end).ok())
            .and_then(|(a, b)| bytes.get(a..b));
        match slice {
            Some(s) if Hash::of(s) == f.sha256 => {}
            Some(_) => {
                failed += 1;
                writeln!(
                    out,
                    "{}: FAILED: bytes {}..{end} do not match entry {} ({})",
                    data.display(),
                    f.offset,
                    f.seq,
                    proof_file.display()
                )?;
            }
            None => {
                failed += 1;
                writeln!(
                    out,
                    "{}: FAILED: the file ends before byte {end} that entry {} covers",
                    data.display(),
                    f.seq
                )?;
            }
        }
        pos = end;
    }
    if (bytes.len() as u64) > pos {
        failed += 1;
        writeln!(
            out,
            "{}: FAILED: bytes {pos}..{} are not covered by the given proofs",
            data.display(),
            bytes.len()
        )?;
    }
    if failed == 0 {
        writeln!(
            out,
            "{}: OK: all {} bytes are the proven frames",
            data.display(),
            bytes.len()
        )?;
    }
    Ok(failed)
}
