//! Proof files for auditors, checked offline with nothing but the log's verifier key.
//!
//! An inclusion proof is a C2SP `tlog-proof` (`c2sp.org/tlog-proof@v1`): the `extra` line carries
//! the ledger line itself (base64), then the entry's index, the Merkle audit path and the signed
//! checkpoint. The ledger line names the stored file, the frame's byte range and its SHA-256, so
//! with the day's file in hand an auditor can check that those exact bytes were logged, without
//! the rest of the archive.
//!
//! A consistency proof (no C2SP format exists for one) is this module's own text format:
//!
//! ```text
//! loghost/consistency-proof@v1
//! old <size>
//! new <size>
//! <base64 hash, one a line, RFC 9162 order>
//!
//! <the old signed checkpoint>
//!
//! <the new signed checkpoint>
//! ```

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;

use crate::hash::Hash;
use crate::ledger::checkpoint::{self, Checkpoint};
use crate::ledger::merkle;
use crate::ledger::{self, Entry};

pub const INCLUSION_HEADER: &str = "c2sp.org/tlog-proof@v1";
pub const CONSISTENCY_HEADER: &str = "loghost/consistency-proof@v1";

/// Writes an inclusion proof file.
pub fn inclusion_file(line: &[u8], index: u64, path: &[Hash], checkpoint_note: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "{INCLUSION_HEADER}\nextra {}\nindex {index}\n",
        B64.encode(line)
    );
    for h in path {
        out.push_str(&B64.encode(h.0));
        out.push('\n');
    }
    out.push('\n');
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(checkpoint_note);
    bytes
}

/// Writes a consistency proof file.
pub fn consistency_file(
    old_size: u64,
    new_size: u64,
    path: &[Hash],
    old_note: &[u8],
    new_note: &[u8],
) -> Vec<u8> {
    let mut out = format!("{CONSISTENCY_HEADER}\nold {old_size}\nnew {new_size}\n");
    for h in path {
        out.push_str(&B64.encode(h.0));
        out.push('\n');
    }
    out.push('\n');
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(old_note);
    bytes.push(b'\n');
    bytes.extend_from_slice(new_note);
    bytes
}

/// What a valid proof file establishes.
#[derive(Debug, Clone)]
pub enum Proven {
    /// Ledger entry `index` (the `line`) is in the tree the checkpoint signs.
    Inclusion {
        checkpoint: Checkpoint,
        index: u64,
        line: Vec<u8>,
        entry: Box<Entry>,
    },
    /// The old checkpoint's tree is a prefix of the new one's.
    Consistency { old: Checkpoint, new: Checkpoint },
}

fn decode_hash(s: &str) -> Result<Hash, String> {
    let raw = B64
        .decode(s)
        .map_err(|_| format!("invalid proof hash line {s:?}"))?;
    let h: [u8; 32] = raw
        .try_into()
        .map_err(|_| format!("proof hash {s:?} is not 32 bytes"))?;
    Ok(Hash(h))
}

fn number(line: Option<&str>, key: &str) -> Result<u64, String> {
    let v = line
        .and_then(|l| l.strip_prefix(key))
        .and_then(|l| l.strip_prefix(' '))
        .ok_or_else(|| format!("expected a `{key} N` line"))?;
    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) || (v.len() > 1 && v.starts_with('0'))
    {
        return Err(format!("invalid number in `{key} {v}`"));
    }
    v.parse()
        .map_err(|_| format!("invalid number in `{key} {v}`"))
}

/// Reads hash lines up to a blank line; returns them and the text after the blank line.
fn hashes_then_rest(text: &str) -> Result<(Vec<Hash>, &str), String> {
    let mut rest = text;
    let mut out = Vec::new();
    loop {
        let (line, after) = rest
            .split_once('\n')
            .ok_or("missing the blank line before the checkpoint")?;
        if line.is_empty() {
            return Ok((out, after));
        }
        out.push(decode_hash(line)?);
        rest = after;
    }
}

/// Checks a proof file with the log's verifier key. An error says why it does not hold.
pub fn check(file: &[u8], vkey: &str) -> Result<Proven, String> {
    let text = std::str::from_utf8(file).map_err(|_| "not a text file".to_string())?;
    let (header, rest) = text.split_once('\n').ok_or("empty proof file")?;
    match header {
        INCLUSION_HEADER => check_inclusion(rest, vkey),
        CONSISTENCY_HEADER => check_consistency(rest, vkey),
        _ => Err(format!(
            "unknown proof format {header:?} (expected {INCLUSION_HEADER} or {CONSISTENCY_HEADER})"
        )),
    }
}

fn check_inclusion(text: &str, vkey: &str) -> Result<Proven, String> {
    let (extra_line, rest) = text.split_once('\n').ok_or("truncated proof")?;
    let extra = extra_line
        .strip_prefix("extra ")
        .ok_or("this proof has no `extra` line with the ledger entry")?;
    let line = B64
        .decode(extra)
        .map_err(|_| "the extra data is not base64".to_string())?;
    let (index_line, rest) = rest.split_once('\n').ok_or("truncated proof")?;
    let index = number(Some(index_line), "index")?;
    // The hash lines, then a blank line, then the checkpoint.
    let (path, note) = hashes_then_rest(rest)?;
    let c = checkpoint::open(note.as_bytes(), vkey)?;
    let leaf = merkle::leaf_hash(&line);
    if !merkle::verify_inclusion(index, c.size, leaf, &path, c.root) {
        return Err(format!(
            "the audit path does not lead from entry {index} to the checkpoint's root (tree \
             of {} entries): the entry or the proof was altered",
            c.size
        ));
    }
    let entry = ledger::parse_line(&line, index)
        .map_err(|e| format!("the proven entry is not a valid ledger line: {e}"))?;
    Ok(Proven::Inclusion {
        checkpoint: c,
        index,
        line,
        entry: Box::new(entry),
    })
}

fn check_consistency(text: &str, vkey: &str) -> Result<Proven, String> {
    let mut lines = text.splitn(3, '\n');
    let old_size = number(lines.next(), "old")?;
    let new_size = number(lines.next(), "new")?;
    let rest = lines.next().ok_or("truncated proof")?;
    let (path, notes) = hashes_then_rest(rest)?;
    // Two signed notes, each "body \n\n signatures \n", separated by a blank line.
    let body_end = notes.find("\n\n").ok_or("missing the old checkpoint")?;
    let sigs_end = notes[body_end + 2..]
        .find("\n\n")
        .map(|i| body_end + 2 + i)
        .ok_or("missing the new checkpoint")?;
    let (old_note, new_note) = (&notes[..sigs_end + 1], &notes[sigs_end + 2..]);
    let old =
        checkpoint::open(old_note.as_bytes(), vkey).map_err(|e| format!("old checkpoint: {e}"))?;
    let new =
        checkpoint::open(new_note.as_bytes(), vkey).map_err(|e| format!("new checkpoint: {e}"))?;
    if old.size != old_size || new.size != new_size {
        return Err("the sizes in the header do not match the checkpoints".into());
    }
    if old.origin != new.origin {
        return Err(format!(
            "the checkpoints are of different logs ({} and {})",
            old.origin, new.origin
        ));
    }
    if !merkle::verify_consistency(old.size, new.size, old.root, new.root, &path) {
        return Err(format!(
            "the tree of {} entries is not a prefix of the tree of {}: the log was rewritten \
             between the two checkpoints (or the proof was altered)",
            old.size, new.size
        ));
    }
    Ok(Proven::Consistency { old, new })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> (tempfile::TempDir, crate::keys::SigningKey) {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("k");
        crate::keys::ensure_signing_key(&path, "test.example/log").expect("key");
        (dir, crate::keys::load_signing_key(&path).expect("load"))
    }

    fn lines(n: u64) -> Vec<Vec<u8>> {
        (0..n)
            .map(|i| {
                format!(
                    "{{\"kind\":\"event\",\"seq\":{i},\"time\":\"2026-11-28T08:00:00.000000Z\",\
                     \"event\":\"host_key_pinned\",\"detail\":\"d{i}\"}}"
                )
                .into_bytes()
            })
            .collect()
    }

    #[test]
    fn inclusion_round_trip_and_tampering() {
        let (_d, k) = key();
        let l = lines(11);
        let leaves: Vec<Hash> = l.iter().map(|x| merkle::leaf_hash(x)).collect();
        let c = Checkpoint {
            origin: "test.example/log".into(),
            size: 11,
            root: merkle::root(&leaves),
        };
        let note = c.sign(&k).expect("sign");
        let path = merkle::inclusion_proof(&leaves, 7).expect("proof");
        let file = inclusion_file(&l[7], 7, &path, &note);
        let text = String::from_utf8(file.clone()).expect("utf8");
        assert!(text.starts_with("c2sp.org/tlog-proof@v1\nextra "), "{text}");
        match check(&file, &k.verifier_key()) {
            Ok(Proven::Inclusion { index, line, .. }) => {
                assert_eq!(index, 7);
                assert_eq!(line, l[7]);
            }
            other => panic!("{other:?}"),
        }
        // Another entry's line under this index, a wrong index, a changed hash: all refused.
        let swapped = inclusion_file(&l[6], 7, &path, &note);
        assert!(check(&swapped, &k.verifier_key()).is_err());
        let moved = inclusion_file(&l[7], 6, &path, &note);
        assert!(check(&moved, &k.verifier_key()).is_err());
        let mut bad = path.clone();
        bad[1] = Hash::of(b"x");
        assert!(check(&inclusion_file(&l[7], 7, &bad, &note), &k.verifier_key()).is_err());
        let (_d2, other) = key();
        assert!(check(&file, &other.verifier_key()).is_err());
    }

    #[test]
    fn consistency_round_trip_and_divergence() {
        let (_d, k) = key();
        let l = lines(20);
        let leaves: Vec<Hash> = l.iter().map(|x| merkle::leaf_hash(x)).collect();
        let sign = |n: usize, leaves: &[Hash]| {
            Checkpoint {
                origin: "test.example/log".into(),
                size: n as u64,
                root: merkle::root(&leaves[..n]),
            }
            .sign(&k)
            .expect("sign")
        };
        let path = merkle::consistency_proof(&leaves, 13).expect("proof");
        let file = consistency_file(13, 20, &path, &sign(13, &leaves), &sign(20, &leaves));
        assert!(matches!(
            check(&file, &k.verifier_key()),
            Ok(Proven::Consistency { .. })
        ));
        // A new tree whose old part was rewritten does not prove consistent.
        let mut rewritten = leaves.clone();
        rewritten[3] = merkle::leaf_hash(b"rewritten");
        let path2 = merkle::consistency_proof(&rewritten, 13).expect("proof");
        let forged = consistency_file(13, 20, &path2, &sign(13, &leaves), &sign(20, &rewritten));
        assert!(check(&forged, &k.verifier_key()).is_err());
    }
}
