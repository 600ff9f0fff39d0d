//! The loghost's own keys: the SSH client identity it logs in to servers with, and the Ed25519
//! key that signs ledger checkpoints.
//!
//! Both are created by `loghost init` only where missing, with `create_new` so an existing key is
//! never overwritten, and mode 0600. The identity is an OpenSSH private key with `identity.pub`
//! beside it; the signing key uses the C2SP signed-note private key form
//! (`PRIVATE+KEY+<name>+<id>+<base64>`), whose public half (the verifier key, `<name>+<id>+<base64>`)
//! is what auditors are given.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use rand::RngCore;
use russh::keys::ssh_key::LineEnding;
use russh::keys::ssh_key::private::{Ed25519Keypair, KeypairData};
use russh::keys::{PrivateKey, PublicKey};

use crate::store::{create_dir_all_0700, write_new};

/// The `.pub` file beside a private key.
pub fn public_key_path(identity: &Path) -> PathBuf {
    let mut s = identity.as_os_str().to_owned();
    s.push(".pub");
    PathBuf::from(s)
}

fn random_seed() -> [u8; 32] {
    let mut seed = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut seed);
    seed
}

fn this_host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "localhost".into())
}

/// Creates the SSH identity if missing. Returns its public key and whether it was created.
pub fn ensure_identity(path: &Path) -> Result<(PublicKey, bool)> {
    if path.exists() {
        let key = load_identity(path)?;
        let public = key.public_key().clone();
        let pub_path = public_key_path(path);
        if !pub_path.exists() {
            let line = public
                .to_openssh()
                .context("cannot encode the public key")?;
            write_new(&pub_path, format!("{line}\n").as_bytes())
                .with_context(|| format!("cannot write {}", pub_path.display()))?;
        }
        return Ok((public, false));
    }
    if let Some(dir) = path.parent() {
        create_dir_all_0700(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let keypair = Ed25519Keypair::from_seed(&random_seed());
    let key = PrivateKey::new(
        KeypairData::Ed25519(keypair),
        format!("loghost@{}", this_host()),
    )
    .context("cannot build the SSH key")?;
    let private = key
        .to_openssh(LineEnding::LF)
        .context("cannot encode the SSH key")?;
    write_new(path, private.as_bytes())
        .with_context(|| format!("cannot write the SSH identity {}", path.display()))?;
    let public = key.public_key().clone();
    let line = public
        .to_openssh()
        .context("cannot encode the public key")?;
    let pub_path = public_key_path(path);
    // A stale .pub from an older key must not be left beside the new one.
    let _ = std::fs::remove_file(&pub_path);
    write_new(&pub_path, format!("{line}\n").as_bytes())
        .with_context(|| format!("cannot write {}", pub_path.display()))?;
    Ok((public, true))
}

/// Refuses a secret file that group or others may read or write (as OpenSSH refuses such a
/// private key): whoever can read it can sign, log in or decrypt as the loghost.
pub fn check_private(path: &Path, what: &str) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path)
        .with_context(|| format!("cannot read {what} {}", path.display()))?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        anyhow::bail!(
            "{what} {} has mode {mode:04o}: group or others may read it, and a secret must be \
             readable by its owner only. Fix: chmod 600 {}",
            path.display(),
            path.display()
        );
    }
    Ok(())
}

/// Loads the SSH identity (unencrypted OpenSSH private key).
pub fn load_identity(path: &Path) -> Result<PrivateKey> {
    check_private(path, "the SSH identity")?;
    russh::keys::load_secret_key(path, None).with_context(|| {
        format!(
            "cannot load the SSH identity {} (an unencrypted OpenSSH private key; \
             `loghost init` creates one)",
            path.display()
        )
    })
}

/// The ledger signing key.
#[derive(Clone)]
pub struct SigningKey {
    /// The signed-note key name.
    pub name: String,
    pub key: ed25519_dalek::SigningKey,
}

impl SigningKey {
    /// The verifier key in signed-note form, for auditors.
    pub fn verifier_key(&self) -> String {
        signed_note::new_ed25519_verifier_key(&self.name, &self.key.verifying_key())
    }
}

/// signed-note's algorithm byte for Ed25519.
const ALG_ED25519: u8 = 1;

impl signed_note::Signer for SigningKey {
    fn name(&self) -> &str {
        &self.name
    }

    fn key_id(&self) -> u32 {
        let mut public = vec![ALG_ED25519];
        public.extend_from_slice(self.key.verifying_key().as_bytes());
        signed_note::key_id(&self.name, &public)
    }

    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, ed25519_dalek::SignatureError> {
        use ed25519_dalek::Signer;
        Ok(self.key.sign(msg).to_bytes().to_vec())
    }
}

/// Creates the ledger signing key if missing. Returns its verifier key and whether it was created.
pub fn ensure_signing_key(path: &Path, name: &str) -> Result<(String, bool)> {
    if path.exists() {
        let key = load_signing_key(path)?;
        return Ok((key.verifier_key(), false));
    }
    if let Some(dir) = path.parent() {
        create_dir_all_0700(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let (skey, vkey) = signed_note::generate_key(&mut rand::rngs::OsRng, name);
    write_new(path, format!("{skey}\n").as_bytes())
        .with_context(|| format!("cannot write the ledger signing key {}", path.display()))?;
    Ok((vkey, true))
}

/// Loads and checks the ledger signing key.
pub fn load_signing_key(path: &Path) -> Result<SigningKey> {
    if path.exists() {
        check_private(path, "the ledger signing key")?;
    }
    let text = std::fs::read_to_string(path).with_context(|| {
        format!(
            "cannot read the ledger signing key {} (`loghost init` creates it)",
            path.display()
        )
    })?;
    let skey = text.trim();
    let bad = || {
        format!(
            "{} is not a ledger signing key (expected PRIVATE+KEY+<name>+<id>+<base64>)",
            path.display()
        )
    };
    // Checks the format and that the key id matches the key.
    signed_note::StandardSigner::new(skey).map_err(|e| anyhow::anyhow!("{}: {e}", bad()))?;
    let mut parts = skey.splitn(5, '+');
    let (Some(_), Some(_), Some(name), Some(_), Some(b64)) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        bail!(bad());
    };
    let raw = B64.decode(b64).map_err(|_| anyhow::anyhow!(bad()))?;
    let seed: [u8; 32] = raw
        .get(1..)
        .and_then(|s| s.try_into().ok())
        .ok_or_else(|| anyhow::anyhow!(bad()))?;
    Ok(SigningKey {
        name: name.to_string(),
        key: ed25519_dalek::SigningKey::from_bytes(&seed),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn keys_are_created_once_and_private() {
        let dir = tempfile::tempdir().expect("tempdir");
        let id = dir.path().join("etc/id_ed25519");
        let (pk, created) = ensure_identity(&id).expect("identity");
        assert!(created);
        let (pk2, created) = ensure_identity(&id).expect("identity again");
        assert!(!created);
        assert_eq!(pk, pk2, "an existing key is never replaced");
        let pub_text = std::fs::read_to_string(public_key_path(&id)).expect("pub");
        assert!(pub_text.starts_with("ssh-ed25519 AAAA"), "{pub_text}");
        let mode = std::fs::metadata(&id).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);

        let lk = dir.path().join("etc/ledger.key");
        let (vkey, created) = ensure_signing_key(&lk, "test.example/loghost").expect("key");
        assert!(
            created && vkey.starts_with("test.example/loghost+"),
            "{vkey}"
        );
        let (vkey2, created) = ensure_signing_key(&lk, "other").expect("again");
        assert!(!created);
        assert_eq!(vkey, vkey2);
        let mode = std::fs::metadata(&lk).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        signed_note::StandardVerifier::new(&vkey).expect("a valid verifier key");
    }
}
