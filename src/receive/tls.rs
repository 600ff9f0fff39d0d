//! The receiver's TLS (RFC 5425) and who a client is.
//!
//! TLS 1.2 and 1.3 only (rustls, no fallback), a client certificate required and verified against
//! `client_ca`, no TLS 1.3 session tickets (a client that closes without reading them would make
//! the server's kernel drop unread data: NOTES, "loss on abrupt close"), no 0-RTT (RFC 9662), no
//! session resumption.
//!
//! Identity: the verified certificate's SAN dNSNames (or, without any, its subject CN) name the
//! host. It must equal a configured host's `tls_name`, and when `tls_fingerprint` is set, the
//! certificate's SHA-256 must equal it too. What a message claims in its HOSTNAME never decides
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
        if let Ok(Some(san)) = cert.subject_alternative_name() {
            for n in &san.value.general_names {
                if let x509_parser::extensions::GeneralName::DNSName(d) = n {
                    names.push(d.to_ascii_lowercase());
                }
            }
        }
        if names.is_empty()
            && let Some(cn) = cert
                .subject()
                .iter_common_name()
                .next()
                .and_then(|cn| cn.as_str().ok())
        {
            names.push(cn.to_ascii_lowercase());
        }
        Ok(Identity {
            names,
            fingerprint: Hash::of(der).to_string(),
        })
    }

    /// The configured host this identity is, if any.
    pub fn host<'a>(&self, config: &'a Config) -> Option<&'a HostConfig> {
        config.hosts.iter().find(|h| {
            h.tls_name
                .as_ref()
                .is_some_and(|t| self.names.iter().any(|n| n == t))
                && h.tls_fingerprint
                    .as_ref()
                    .is_none_or(|f| *f == self.fingerprint)
        })
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
