//! The systemd journal: real journal files written by `systemd-journal-remote` (compact, keyed
//! hash, zstd), read by loghost's reader locally and over SFTP, compared entry for entry with
//! what `journalctl --file … -o export` prints.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::*;

pub const JOURNAL_REMOTE: &str = "/lib/systemd/systemd-journal-remote";

/// Export-format input for `systemd-journal-remote`: entries `first..first + n` of a boot.
fn export_input(boot: &str, first: u64, n: u64) -> Vec<u8> {
    let mut out = Vec::new();
    for i in first..first + n {
        let t = 1_764_643_200_000_000u64 + i * 1_000_000;
        out.extend_from_slice(
            format!(
                "__REALTIME_TIMESTAMP={t}\n__MONOTONIC_TIMESTAMP={}\n_BOOT_ID={boot}\n\
                 _HOSTNAME=web1\n_MACHINE_ID=fedcba9876543210fedcba9876543210\n\
                 SYSLOG_IDENTIFIER=sshd\n_PID={}\nPRIORITY=6\n\
                 MESSAGE=Accepted publickey for user{i} from 10.0.0.{} port {}\n",
                1_000_000 + i,
                1000 + i % 7,
                i % 250,
                40000 + i
            )
            .as_bytes(),
        );
        if i % 5 == 0 {
            // A binary value, and one large enough (≥ 512 bytes) to be stored compressed.
            let v = format!("bin\0ary {i}\x01\x1b[31m");
            out.extend_from_slice(b"BINARY\n");
            out.extend_from_slice(&(v.len() as u64).to_le_bytes());
            out.extend_from_slice(v.as_bytes());
            out.push(b'\n');
            out.extend_from_slice(format!("BIG={}\n", format!("{i} ").repeat(300)).as_bytes());
        }
        out.push(b'\n');
    }
    out
}

/// Appends entries to `file` as journald would (creating it if needed).
fn journal_write(file: &Path, input: &[u8]) {
    assert!(
        Path::new(JOURNAL_REMOTE).exists(),
        "{JOURNAL_REMOTE} is missing: run the README's test command (scripts/test.sh), which \
         installs systemd-journal-remote"
    );
    let mut child = Command::new(JOURNAL_REMOTE)
        .arg("-o")
        .arg(file)
        .arg("-")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start systemd-journal-remote");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input)
        .expect("feed systemd-journal-remote");
    let out = child.wait_with_output().expect("systemd-journal-remote");
    assert!(
        out.status.success(),
        "systemd-journal-remote: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `journalctl --file F -o export`, without the `__SEQNUM`/`__SEQNUM_ID` lines older
/// journalctl versions do not print (loghost always writes them).
fn journalctl_export(file: &Path) -> Vec<u8> {
    let out = Command::new("journalctl")
        .arg("--file")
        .arg(file)
        .args(["-o", "export", "--no-pager"])
        .output()
        .expect("journalctl");
    assert!(out.status.success(), "journalctl: {}", text(&out));
    out.stdout
}

/// Drops `__SEQNUM=` and `__SEQNUM_ID=` lines (the test data has no binary value holding
/// such a line).
fn without_seqnum(export: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(export.len());
    let mut rest = export;
    while !rest.is_empty() {
        let end = rest
            .iter()
            .position(|&b| b == b'\n')
            .map_or(rest.len(), |i| i + 1);
        let line = &rest[..end];
        if !line.starts_with(b"__SEQNUM=") && !line.starts_with(b"__SEQNUM_ID=") {
            out.extend_from_slice(line);
        }
        rest = &rest[end..];
    }
    out
}

fn read_local(file: &Path) -> Vec<u8> {
    let f = std::fs::File::open(file).expect("open journal");
    let mut out = Vec::new();
    loghost::journal::file::read_all(f, |h, e| {
        loghost::journal::export::write_entry(&mut out, &h.seqnum_id, &e);
    })
    .expect("read journal");
    out
}

fn tmp() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("loghost-journal-")
        .tempdir()
        .expect("tempdir")
}

#[test]
fn the_reader_exports_what_journalctl_exports() {
    let dir = tmp();
    let file: PathBuf = dir.path().join("system.journal");
    journal_write(
        &file,
        &export_input("0123456789abcdef0123456789abcdef", 0, 300),
    );
    // A second writer session appends (journald after a restart), with a new boot.
    journal_write(
        &file,
        &export_input("89abcdef0123456789abcdef01234567", 300, 200),
    );
    let ours = read_local(&file);
    let theirs = journalctl_export(&file);
    assert_eq!(
        without_seqnum(&ours),
        without_seqnum(&theirs),
        "loghost's export differs from journalctl's"
    );
    let entries = loghost::journal::export::parse(&ours).expect("parse");
    assert_eq!(entries.len(), 500);
    assert_eq!(entries[0].seqnum(), Some(1));
    assert_eq!(entries[499].seqnum(), Some(500));
}
