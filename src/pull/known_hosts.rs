//! loghost's own pinned host keys, kept in OpenSSH `known_hosts` format (`ssh.known_hosts`).
//!
//! Only `loghost trust HOST --fingerprint …` adds to it; a pull never does. Keys are compared as
//! key data, never by name alone. Supported: plain host names and `[host]:port`, comma-separated
//! patterns, comments, and `@revoked` lines (a revoked key is refused even when also pinned).
//! Hashed names (`|1|…`), wildcards and `@cert-authority` are not used for pinning: such lines are
//! kept in the file untouched but pin nothing, and say so in a warning.

use std::path::{Path, PathBuf};

use russh::keys::{HashAlg, PublicKey};

/// A parsed known_hosts file, with its lines kept for rewriting.
#[derive(Debug, Default)]
pub struct KnownHosts {
    path: PathBuf,
    lines: Vec<String>,
    entries: Vec<Pin>,
}

#[derive(Debug, Clone)]
struct Pin {
    line: usize,
    hosts: Vec<String>,
    key: PublicKey,
    revoked: bool,
}

/// `SHA256:…` fingerprint of a key, as `ssh-keygen -l` prints it.
pub fn fingerprint(key: &PublicKey) -> String {
    key.fingerprint(HashAlg::Sha256).to_string()
}

/// The key type as OpenSSH names it (`ssh-ed25519`, `ecdsa-sha2-nistp256`, …).
pub fn key_type(key: &PublicKey) -> String {
    key.algorithm().as_str().to_string()
}

impl KnownHosts {
    /// Loads the file; a missing file is an empty table.
    pub fn load(path: &Path) -> Result<KnownHosts, String> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
        };
        let mut kh = KnownHosts {
            path: path.to_path_buf(),
            lines: text.lines().map(str::to_string).collect(),
            entries: Vec::new(),
        };
        for (i, line) in kh.lines.iter().enumerate() {
            let t = line.trim();
            if t.is_empty() || t.starts_with('#') {
                continue;
            }
            let mut fields = t.split_whitespace();
            let mut first = fields.next().unwrap_or_default();
            let mut revoked = false;
            if first.starts_with('@') {
                if first == "@revoked" {
                    revoked = true;
                } else {
                    tracing::warn!(
                        "{}:{}: {first} lines are not supported and pin nothing",
                        path.display(),
                        i + 1
                    );
                    continue;
                }
                first = fields.next().unwrap_or_default();
            }
            let (Some(kind), Some(b64)) = (fields.next(), fields.next()) else {
                return Err(format!(
                    "{}:{}: expected \"HOST KEYTYPE BASE64\"",
                    path.display(),
                    i + 1
                ));
            };
            let key = PublicKey::from_openssh(&format!("{kind} {b64}"))
                .map_err(|e| format!("{}:{}: unreadable key: {e}", path.display(), i + 1))?;
            let mut hosts = Vec::new();
            for pattern in first.split(',') {
                if pattern.starts_with('|') || pattern.contains(['*', '?', '!']) {
                    tracing::warn!(
                        "{}:{}: hashed or wildcard host pattern {pattern:?} pins nothing",
                        path.display(),
                        i + 1
                    );
                } else {
                    hosts.push(pattern.to_ascii_lowercase());
                }
            }
            kh.entries.push(Pin {
                line: i,
                hosts,
                key,
                revoked,
            });
        }
        Ok(kh)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The keys pinned for `name` (as [`crate::config::Address::known_hosts_name`] gives it),
    /// minus revoked ones.
    pub fn pinned(&self, name: &str) -> Vec<PublicKey> {
        self.entries
            .iter()
            .filter(|p| !p.revoked && p.hosts.iter().any(|h| h == name))
            .filter(|p| !self.is_revoked(&p.key))
            .map(|p| p.key.clone())
            .collect()
    }

    /// True when the key appears on an `@revoked` line.
    pub fn is_revoked(&self, key: &PublicKey) -> bool {
        self.entries
            .iter()
            .any(|p| p.revoked && p.key.key_data() == key.key_data())
    }

    /// Pins `key` for `name`, replacing every other key pinned for that name, and rewrites the
    /// file atomically. Returns the keys that were replaced.
    pub fn pin(&mut self, name: &str, key: &PublicKey) -> Result<Vec<PublicKey>, String> {
        let mut replaced = Vec::new();
        let mut drop_lines = Vec::new();
        for p in &self.entries {
            if !p.revoked && p.hosts.iter().any(|h| h == name) {
                if p.key.key_data() != key.key_data() {
                    replaced.push(p.key.clone());
                }
                drop_lines.push(p.line);
            }
        }
        let mut text = String::new();
        for (i, line) in self.lines.iter().enumerate() {
            if drop_lines.contains(&i) {
                // Keep other names sharing this line pinned to the old key.
                if let Some(p) = self.entries.iter().find(|p| p.line == i) {
                    let others: Vec<&str> = p
                        .hosts
                        .iter()
                        .filter(|h| *h != name)
                        .map(String::as_str)
                        .collect();
                    if !others.is_empty() {
                        let k = p.key.to_openssh().map_err(|e| e.to_string())?;
                        text.push_str(&format!("{} {}\n", others.join(","), strip_comment(&k)));
                    }
                }
                continue;
            }
            text.push_str(line);
            text.push('\n');
        }
        let k = key.to_openssh().map_err(|e| e.to_string())?;
        text.push_str(&format!("{name} {}\n", strip_comment(&k)));
        if let Some(dir) = self.path.parent() {
            crate::store::create_dir_all_0700(dir)
                .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        }
        crate::store::write_atomic(&self.path, text.as_bytes())
            .map_err(|e| format!("cannot write {}: {e}", self.path.display()))?;
        *self = KnownHosts::load(&self.path)?;
        Ok(replaced)
    }
}

/// `type base64 [comment]` → `type base64`.
fn strip_comment(openssh: &str) -> String {
    openssh
        .split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    const K1: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDa3hUX4nDGEmTtjcUSYKtW9kCp2fkzz74EgAZFotxyV";
    const K2: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIEtPcRMhyjGz7+/P/tvm76m09nWbVgjY0V6S/E5d/48q";

    #[test]
    fn pins_revocations_and_replacement() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("known_hosts");
        std::fs::write(
            &path,
            format!("# comment\nweb1,[web2]:2222 {K1}\n|1|abc|def {K2}\n@cert-authority * {K2}\n"),
        )
        .expect("write");
        let mut kh = KnownHosts::load(&path).expect("load");
        let k1 = PublicKey::from_openssh(K1).expect("k1");
        let k2 = PublicKey::from_openssh(K2).expect("k2");
        assert_eq!(kh.pinned("web1"), vec![k1.clone()]);
        assert_eq!(kh.pinned("[web2]:2222"), vec![k1.clone()]);
        assert!(kh.pinned("web2").is_empty(), "the port is part of the name");
        assert!(kh.pinned("other").is_empty());

        let replaced = kh.pin("web1", &k2).expect("pin");
        assert_eq!(replaced, vec![k1.clone()]);
        assert_eq!(kh.pinned("web1"), vec![k2.clone()]);
        assert_eq!(
            kh.pinned("[web2]:2222"),
            vec![k1.clone()],
            "the other name keeps its key"
        );
        let text = std::fs::read_to_string(&path).expect("read");
        assert!(
            text.contains("# comment") && text.contains("|1|abc|def"),
            "{text}"
        );

        std::fs::write(&path, format!("web1 {K1}\n@revoked * {K1}\n")).expect("write");
        let kh = KnownHosts::load(&path).expect("load");
        assert!(kh.pinned("web1").is_empty(), "a revoked key pins nothing");
    }

    #[test]
    fn fingerprints_match_ssh_keygen() {
        let k = PublicKey::from_openssh(K1).expect("key");
        // What `ssh-keygen -lf` printed for this key.
        assert_eq!(
            fingerprint(&k),
            "SHA256:gS7vgvaU0HqA/Qi0ClU0E4FxR1r+e0mUIbmtrsWLbBw"
        );
        assert_eq!(key_type(&k), "ssh-ed25519");
    }
}
