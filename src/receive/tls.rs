//! The receiver's TLS (RFC 5425) and who a client is.
//!
//! TLS 1.2 and 1.3 only (rustls, no fallback), a client certificate required and verified against
//! `client_ca`, no TLS 1.3 session tickets (a client that closes without reading them would make
//! the server's kernel drop unread data: NOTES, "loss on abrupt close"), no 0-RTT (RFC 9662), no
//! session resumption.
//!
//! Identity: the verified certificate's SAN dNSNames (or, for a certificate with no SAN
//! extension, its subject CN) name the host. Exactly one configured host's `tls_name` must be
//! among them, and when `tls_fingerprint` is set, the certificate's SHA-256 must equal it too; a
//! SAN that does not parse, or names matching several hosts, are refused. What a message claims in its HOSTNAME never decides
//! where its bytes are written.

use std::sync::Arc;

use anyhow::{Context, Result, bail};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::{Config, HostConfig, ReceiverConfig};
use crate::hash::Hash;

/// The receiver's TLS configuration.
pub fn server_config(rc: &ReceiverConfig) -> Result<Arc<ServerConfig>> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&rc.cert)
        .with_context(|| format!("cannot read the receiver certificate {}", rc.cert.display()))?
        .collect::<Result<_, _>>()
        .with_context(|| format!("invalid PEM in {}", rc.cert.display()))?;
    if chain.is_empty() {
        bail!("{} holds no certificate", rc.cert.display());
    }
    crate::keys::check_private(&rc.key, "the receiver key")?;
    let key = PrivateKeyDer::from_pem_file(&rc.key)
        .with_context(|| format!("cannot read the receiver key {}", rc.key.display()))?;
    let mut roots = RootCertStore::empty();
    let cas: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&rc.client_ca)
        .with_context(|| format!("cannot read client_ca {}", rc.client_ca.display()))?
        .collect::<Result<_, _>>()
        .with_context(|| format!("invalid PEM in {}", rc.client_ca.display()))?;
    for ca in cas {
        roots
            .add(ca)
            .with_context(|| format!("unusable CA certificate in {}", rc.client_ca.display()))?;
    }
    if roots.is_empty() {
        bail!("{} holds no CA certificate", rc.client_ca.display());
    }
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .context("cannot build the client certificate verifier")?;
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .context("TLS versions")?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .with_context(|| {
            format!(
                "the receiver certificate {} and key {} do not go together",
                rc.cert.display(),
                rc.key.display()
            )
        })?;
    config.send_tls13_tickets = 0;
    config.max_early_data_size = 0;
    config.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
    Ok(Arc::new(config))
}

/// Who a verified client certificate says it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// SAN dNSNames, lowercase; the subject CN when there is no dNSName.
    pub names: Vec<String>,
    /// SHA-256 of the certificate, hex.
    pub fingerprint: String,
}

impl Identity {
    /// Reads the identity of a DER certificate.
    pub fn of(der: &[u8]) -> Result<Identity> {
        let (_, cert) = x509_parser::parse_x509_certificate(der)
            .map_err(|e| anyhow::anyhow!("unreadable client certificate: {e}"))?;
        let mut names: Vec<String> = Vec::new();
        // A SAN extension that does not parse is a refusal, never a fall-back to the CN; the CN
        // counts only for a certificate with no SAN extension at all (RFC 6125 §6.4.4).
        let san = cert
            .subject_alternative_name()
            .map_err(|e| anyhow::anyhow!("its subjectAltName extension does not parse: {e}"))?;
        match san {
            Some(san) => {
                for n in &san.value.general_names {
                    if let x509_parser::extensions::GeneralName::DNSName(d) = n {
                        names.push(d.to_ascii_lowercase());
                    }
                }
            }
            None => {
                if let Some(cn) = cert
                    .subject()
                    .iter_common_name()
                    .next()
                    .and_then(|cn| cn.as_str().ok())
                {
                    names.push(cn.to_ascii_lowercase());
                }
            }
        }
        Ok(Identity {
            names,
            fingerprint: Hash::of(der).to_string(),
        })
    }

    /// The configured host this identity is: exactly one host's `tls_name` (and
    /// `tls_fingerprint`) must match. Several matches are refused: a certificate naming two hosts
    /// could write into either.
    pub fn host<'a>(&self, config: &'a Config) -> Result<&'a HostConfig, String> {
        let matches: Vec<&HostConfig> = config
            .hosts
            .iter()
            .filter(|h| {
                h.tls_name
                    .as_ref()
                    .is_some_and(|t| self.names.iter().any(|n| n == t))
                    && h.tls_fingerprint
                        .as_ref()
                        .is_none_or(|f| *f == self.fingerprint)
            })
            .collect();
        match matches[..] {
            [one] => Ok(one),
            [] => Err("is not the tls_name (and tls_fingerprint) of any configured host".into()),
            _ => Err(format!(
                "names several configured hosts ({}): a certificate must name one",
                matches
                    .iter()
                    .map(|h| h.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        }
    }

    /// For messages: the names, shown safely.
    pub fn shown(&self) -> String {
        if self.names.is_empty() {
            "(no name)".into()
        } else {
            crate::sanitize::Shown(&self.names.join(", ")).to_string()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> Config {
        let text = "store = \"/var/lib/loghost\"\n\n\
                    [[host]]\nname = \"web1\"\ntls_name = \"web1.example.org\"\n\n\
                    [[host]]\nname = \"web2\"\ntls_name = \"web2.example.org\"\n";
        Config::parse(text, std::path::Path::new("/etc/loghost/loghost.toml")).expect("config")
    }

    fn cert(sans: &[&str], cn: &str) -> Vec<u8> {
        let mut params =
            rcgen::CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .expect("params");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
        let key = rcgen::KeyPair::generate().expect("key");
        params.self_signed(&key).expect("cert").der().to_vec()
    }

    #[test]
    fn one_certificate_names_one_host() {
        let c = config();
        let id = Identity::of(&cert(&["web1.example.org"], "x")).expect("identity");
        assert_eq!(id.host(&c).map(|h| h.name.as_str()), Ok("web1"));
        // Names of two configured hosts: refused, not the first match.
        let id = Identity::of(&cert(&["web1.example.org", "web2.example.org"], "x")).expect("id");
        let err = id.host(&c).expect_err("refused");
        assert!(err.contains("several configured hosts"), "{err}");
        // A SAN without the host's name: the CN does not stand in for it.
        let id = Identity::of(&cert(&["other.example.org"], "web1.example.org")).expect("id");
        assert!(id.host(&c).is_err());
    }

    #[test]
    fn a_san_that_does_not_parse_is_refused_not_replaced_by_the_cn() {
        let mut der = cert(&["web9.example.org"], "web1.example.org");
        // The SAN extension (OID 2.5.29.17) holds an OCTET STRING wrapping a SEQUENCE: make
        // that SEQUENCE a SET, so the extension no longer parses.
        let oid = [0x06, 0x03, 0x55, 0x1d, 0x11];
        let at = der
            .windows(oid.len())
            .position(|w| w == oid)
            .expect("a SAN extension");
        let seq = der[at + oid.len()..]
            .iter()
            .position(|&b| b == 0x30)
            .expect("its SEQUENCE")
            + at
            + oid.len();
        der[seq] = 0x31;
        match Identity::of(&der) {
            Err(e) => assert!(e.to_string().contains("does not parse"), "{e}"),
            Ok(id) => panic!("a broken SAN must be refused, got {id:?}"),
        }
    }
}
