//! The signed head: the ledger's size and root as this loghost last wrote them, so that lines
//! appended by anyone else (an intruder who can write the store but lacks the signing key) are
//! never taken for its own, signed into the next checkpoint, and anchored.
//!
//! `<store>/state/head` holds two fixed-size slots, each a signed note of the tree size and root
//! (origin: the key's name) with the extension line `loghost-head` (so that neither a head nor a
//! checkpoint can stand for the other), padded with zero bytes. Before every append, the head of the
//! tree *after* the append is signed and written to the slot that does not describe the ledger
//! now, and synced; then the ledger lines are written. So one slot always matches the ledger:
//! the new one once the append is complete, the old one when it was interrupted (a crash or a
//! failed write between the two leaves the ledger as it was). A torn slot write fails its
//! signature and the other slot still holds.
//!
//! When the ledger is opened, its size and root must equal one valid slot; anything else is an
//! ALARM (entries written or edited outside this loghost, or a head deleted: only an empty ledger
//! goes without one) and the ledger is not opened for writing until an operator accepts it
//! (`loghost accept-ledger`). `verify` holds the ledger
//! against the head like a checkpoint, and reports entries beyond it.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::hash::Hash;
use crate::keys::SigningKey;
use crate::ledger::checkpoint::{self, Checkpoint};

/// Bytes per slot (a signed note is about 200 bytes).
const SLOT: usize = 1024;

/// The extension line that makes a signed head what it is: a checkpoint note carries none, so a
/// head cannot pass for a checkpoint (or a checkpoint for a head).
const HEAD_EXTENSION: &str = "loghost-head";

/// The head file's place in the store.
pub fn path(store_root: &Path) -> PathBuf {
    store_root
        .join(crate::store::layout::STATE_DIR)
        .join("head")
}

/// The valid slots of a head file, checked with `vkey` (`None` for a slot that is empty, torn or
/// not signed by that key). A missing file reads as two empty slots.
pub fn read(path: &Path, vkey: &str) -> io::Result<[Option<Checkpoint>; 2]> {
    Ok(slots(&read_bytes(path)?, vkey))
}

/// The head file's bytes (empty when it does not exist). Only a regular file is read: a link is
/// not followed and a FIFO, which could answer each reader differently, is refused.
pub fn read_bytes(path: &Path) -> io::Result<Vec<u8>> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut data = Vec::new();
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path);
    match file {
        Ok(f) => {
            if !f.metadata()?.is_file() {
                return Err(io::Error::other(format!(
                    "{} is not a regular file",
                    path.display()
                )));
            }
            f.take(2 * SLOT as u64).read_to_end(&mut data)?;
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    Ok(data)
}

/// The valid slots in a head file's bytes.
pub fn slots(data: &[u8], vkey: &str) -> [Option<Checkpoint>; 2] {
    let slot = |i: usize| -> Option<Checkpoint> {
        let bytes = data.get(i * SLOT..((i + 1) * SLOT).min(data.len()))?;
        let end = bytes.iter().rposition(|&b| b != 0)? + 1;
        match checkpoint::open_with_extensions(&bytes[..end], vkey) {
            Ok((c, ext)) if ext == [HEAD_EXTENSION] => Some(c),
            _ => None,
        }
    };
    [slot(0), slot(1)]
}

/// The head file opened for writing, and which slot describes the ledger now.
pub struct Head {
    file: File,
    current: usize,
}

impl Head {
    /// Opens (creating it if needed) the head file; `current` is the slot that matches the ledger.
    pub fn open(path: &Path, current: usize) -> io::Result<Head> {
        let file = crate::store::open_options_0600()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        Ok(Head { file, current })
    }

    /// Writes the head of a tree of `size` entries with `root` to the slot not in use, synced.
    /// It becomes current only with [`Head::commit`], once the ledger holds that tree.
    pub fn prepare(&mut self, key: &SigningKey, size: u64, root: Hash) -> io::Result<()> {
        let note = Checkpoint {
            origin: key.name.clone(),
            size,
            root,
        }
        .sign_with(key, &[HEAD_EXTENSION])
        .map_err(io::Error::other)?;
        if note.len() > SLOT {
            return Err(io::Error::other("the signed head does not fit its slot"));
        }
        let mut slot = vec![0u8; SLOT];
        slot[..note.len()].copy_from_slice(&note);
        let other = 1 - self.current;
        self.file.seek(SeekFrom::Start((other * SLOT) as u64))?;
        self.file.write_all(&slot)?;
        self.file.sync_data()
    }

    /// The prepared slot now describes the ledger.
    pub fn commit(&mut self) {
        self.current = 1 - self.current;
    }

    /// Writes the head of the ledger as it is now into the current slot (a new head file, or one
    /// accepted by an operator), synced.
    pub fn reset(&mut self, key: &SigningKey, size: u64, root: Hash) -> io::Result<()> {
        // Both slots' room is written from the start (zeros, not a hole): later writes never
        // need a new block, even on a full disk.
        if self.file.metadata()?.len() < 2 * SLOT as u64 {
            self.file.seek(SeekFrom::Start(0))?;
            self.file.write_all(&[0u8; 2 * SLOT])?;
            self.file.sync_data()?;
        }
        self.current = 1 - self.current;
        self.prepare(key, size, root)?;
        self.commit();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> SigningKey {
        SigningKey {
            name: "test.example/log".into(),
            key: ed25519_dalek::SigningKey::from_bytes(&[3u8; 32]),
        }
    }

    #[test]
    fn one_slot_always_matches_and_a_torn_one_is_ignored() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("head");
        let k = key();
        let vkey = k.verifier_key();
        let mut h = Head::open(&p, 0).expect("open");
        h.reset(&k, 0, Hash::of(b"empty")).expect("reset");
        let sizes = |p: &Path| read(p, &vkey).expect("read").map(|s| s.map(|c| c.size));
        assert_eq!(sizes(&p), [Some(0), None]);
        h.prepare(&k, 3, Hash::of(b"three")).expect("prepare");
        // Written but not committed (the ledger append failed): both slots are there.
        assert_eq!(sizes(&p), [Some(0), Some(3)]);
        h.commit();
        h.prepare(&k, 5, Hash::of(b"five")).expect("prepare");
        h.commit();
        assert_eq!(sizes(&p), [Some(5), Some(3)]);
        // A torn write of slot 1 leaves slot 0.
        let mut data = std::fs::read(&p).expect("read");
        data[SLOT + 40] ^= 1;
        std::fs::write(&p, &data).expect("write");
        assert_eq!(sizes(&p), [Some(5), None]);
        // Another key's head is not this log's.
        let other = SigningKey {
            name: "other".into(),
            key: ed25519_dalek::SigningKey::from_bytes(&[4u8; 32]),
        };
        assert_eq!(read(&p, &other.verifier_key()).expect("read"), [None, None]);
    }
}
