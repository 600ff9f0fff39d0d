//! A syslog-over-TLS load generator for `bench/receiver.py` (not part of loghost).
//!
//!     syslog_load pki DIR
//!         writes a test CA, a server certificate (localhost, 127.0.0.1) and a client
//!         certificate (web1.example.org) as PEM files into DIR
//!     syslog_load send PORT DIR CONNECTIONS MESSAGES [--per-record]
//!         sends MESSAGES octet-counted RFC 5424 messages of ~200 bytes over each of
//!         CONNECTIONS mutual-TLS connections, in large TLS records (or one record per message),
//!         and prints the number of bytes a receiver stores for them (one line each, with LF)

use std::io::Write;
use std::net::TcpStream;
use std::path::Path;
use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

fn pki(dir: &Path) {
    std::fs::create_dir_all(dir).expect("mkdir");
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(DnType::CommonName, "bench CA");
    let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().expect("key")).expect("ca");
    std::fs::write(dir.join("ca.pem"), ca.pem()).expect("write");
    for (file, names) in [
        (
            "server",
            vec!["localhost".to_string(), "127.0.0.1".to_string()],
        ),
        ("client", vec!["web1.example.org".to_string()]),
    ] {
        let mut p = CertificateParams::new(names.clone()).expect("params");
        p.distinguished_name
            .push(DnType::CommonName, names[0].clone());
        let key = KeyPair::generate().expect("key");
        let cert = p.signed_by(&key, &ca).expect("sign");
        std::fs::write(dir.join(format!("{file}.pem")), cert.pem()).expect("write");
        let key_path = dir.join(format!("{file}.key"));
        std::fs::write(&key_path, key.serialize_pem()).expect("write");
        std::fs::set_permissions(
            &key_path,
            std::os::unix::fs::PermissionsExt::from_mode(0o600),
        )
        .expect("chmod");
    }
}

fn message(conn: usize, i: usize) -> String {
    format!(
        "<134>1 2026-11-28T10:00:00.123456Z web1 nginx 4242 access - 203.0.113.{} - - \
         \"GET /api/v1/items?page={i}&conn={conn} HTTP/1.1\" 200 {} \"-\" \"Mozilla/5.0 (X11; Linux x86_64)\"",
        i % 250,
        1000 + i % 9000
    )
}

fn send(port: u16, dir: &Path, connections: usize, messages: usize, per_record: bool) {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(dir.join("ca.pem")).expect("ca") {
        roots.add(c.expect("pem")).expect("add");
    }
    let certs: Vec<_> = CertificateDer::pem_file_iter(dir.join("client.pem"))
        .expect("cert")
        .collect::<Result<_, _>>()
        .expect("pem");
    let key = PrivateKeyDer::from_pem_file(dir.join("client.key")).expect("key");
    let config = Arc::new(
        rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(roots)
            .with_client_auth_cert(certs, key)
            .expect("auth"),
    );
    let stored: usize = (0..connections)
        .map(|c| {
            (0..messages)
                .map(|i| message(c, i).len() + 1)
                .sum::<usize>()
        })
        .sum();
    let threads: Vec<_> = (0..connections)
        .map(|c| {
            let config = config.clone();
            std::thread::spawn(move || {
                let conn =
                    rustls::ClientConnection::new(config, "localhost".try_into().expect("name"))
                        .expect("client");
                let sock = TcpStream::connect(("127.0.0.1", port)).expect("connect");
                sock.set_nodelay(true).ok();
                let mut tls = rustls::StreamOwned::new(conn, sock);
                let mut buf = Vec::with_capacity(1 << 20);
                for i in 0..messages {
                    let m = message(c, i);
                    if per_record {
                        let framed = format!("{} {m}", m.len());
                        tls.write_all(framed.as_bytes()).expect("write");
                    } else {
                        buf.extend_from_slice(format!("{} {m}", m.len()).as_bytes());
                        if buf.len() >= 256 * 1024 {
                            tls.write_all(&buf).expect("write");
                            buf.clear();
                        }
                    }
                }
                tls.write_all(&buf).expect("write");
                tls.flush().expect("flush");
                tls.conn.send_close_notify();
                let _ = tls.conn.complete_io(&mut tls.sock);
            })
        })
        .collect();
    for t in threads {
        t.join().expect("sender");
    }
    println!("{stored}");
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("pki") => pki(Path::new(&args[2])),
        Some("send") => send(
            args[2].parse().expect("port"),
            Path::new(&args[3]),
            args[4].parse().expect("connections"),
            args[5].parse().expect("messages"),
            args.get(6).is_some_and(|a| a == "--per-record"),
        ),
        _ => {
            eprintln!(
                "usage: syslog_load pki DIR | send PORT DIR CONNECTIONS MESSAGES [--per-record]"
            );
            std::process::exit(2);
        }
    }
}
