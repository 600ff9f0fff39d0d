//! Where things live in the store (DESIGN §5), and how a remote path becomes a stored name.
//!
//! ```text
//! <store>/logs/<host>/<YYYY-MM-DD>/[<HH>/]<log>.zst   one file a log a day; a frame per pull
//! <store>/ledger/ledger.jsonl                         append-only, one entry a line
//! <store>/ledger/checkpoints/                         signed checkpoints
//! <store>/state/                                      caches, rebuilt from the ledger at will
//! <store>/lock                                        held by the one process that writes
//! ```
//!
//! The mapping from a remote path to `<log>` is injective and cannot escape the host's directory,
//! whatever bytes the remote side puts in its names:
//! - under `/var/log/` the path is taken relative to it (`/var/log/nginx/access.log` →
//!   `nginx/access.log`); any other absolute path goes under `%root/` (`/opt/app/app.log` →
//!   `%root/opt/app/app.log`);
//! - each component keeps `[A-Za-z0-9._+@=,~-]` and percent-encodes every other byte, `%` included,
//!   so `/`, control characters, spaces and non-ASCII never reach the file system raw, and
//!   `%root` cannot be produced by any real component;
//! - `.` and `..` become `%2E` and `%2E%2E`; a directory component that would end in a stored
//!   suffix (`.zst`, `.gz`) has that dot encoded, so a directory never collides with a stored file;
//! - a component longer than 200 bytes once encoded is cut and suffixed with a hash of the whole.

use jiff::Timestamp;
use jiff::tz::TimeZone;
use sha2::{Digest, Sha256};

use crate::config::Compression;

pub const LOGS_DIR: &str = "logs";
pub const LEDGER_DIR: &str = "ledger";
pub const LEDGER_FILE: &str = "ledger/ledger.jsonl";
pub const CHECKPOINTS_DIR: &str = "ledger/checkpoints";
pub const STATE_DIR: &str = "state";
pub const LOCK_FILE: &str = "lock";

const MAX_COMPONENT: usize = 200;

/// The stored name of a remote path, without the compression suffix.
pub fn stored_name(remote_path: &str) -> String {
    let (prefix, rel) = match remote_path.strip_prefix("/var/log/") {
        Some(rel) if !rel.is_empty() => ("", rel),
        _ => ("%root/", remote_path.trim_start_matches('/')),
    };
    let comps: Vec<&str> = rel.split('/').filter(|c| !c.is_empty()).collect();
    let mut out = String::from(prefix);
    for (i, comp) in comps.iter().enumerate() {
        if i > 0 {
            out.push('/');
        }
        let last = i + 1 == comps.len();
        out.push_str(&encode_component(comp, last));
    }
    if comps.is_empty() {
        out.push_str("%2F");
    }
    out
}

fn encode_component(comp: &str, last: bool) -> String {
    let mut enc = String::with_capacity(comp.len());
    if comp.bytes().all(|b| b == b'.') {
        for _ in 0..comp.len() {
            enc.push_str("%2E");
        }
    } else {
        for b in comp.bytes() {
            if b.is_ascii_alphanumeric() || b"._+@=,~-".contains(&b) {
                enc.push(b as char);
            } else {
                enc.push_str(&format!("%{b:02X}"));
            }
        }
    }
    if !last {
        for suffix in [".zst", ".gz"] {
            if enc.ends_with(suffix) {
                let dot = enc.len() - suffix.len();
                enc.replace_range(dot..dot + 1, "%2E");
            }
        }
    }
    if enc.len() > MAX_COMPONENT {
        let digest = Sha256::digest(comp.as_bytes());
        enc.truncate(150);
        // Never cut through a %XX escape.
        if let Some(p) = enc[enc.len() - 2..].find('%') {
            enc.truncate(enc.len() - 2 + p);
        }
        enc.push('~');
        enc.push_str(&hex::encode(&digest[..8]));
    }
    enc
}

/// `YYYY-MM-DD` and `HH` of a moment, in UTC.
pub fn date_and_hour(t: Timestamp) -> (String, String) {
    let z = t.to_zoned(TimeZone::UTC);
    (
        z.strftime("%Y-%m-%d").to_string(),
        z.strftime("%H").to_string(),
    )
}

/// `logs/<host>/<date>/[<HH>/]` at moment `t`.
fn day_dir(host: &str, t: Timestamp, hourly: bool) -> String {
    let (date, hour) = date_and_hour(t);
    let mut p = format!("{LOGS_DIR}/{host}/{date}/");
    if hourly {
        p.push_str(&hour);
        p.push('/');
    }
    p
}

/// The store-relative path of the file a pulled log's frames go to at moment `t`.
pub fn stored_file(
    host: &str,
    t: Timestamp,
    hourly: bool,
    remote_path: &str,
    compression: Compression,
) -> String {
    let mut p = day_dir(host, t, hourly);
    p.push_str(&stored_name(remote_path));
    p.push_str(compression.suffix());
    p
}

/// The name of the file received messages go to. `%` starts no name a remote path can produce.
pub const RECEIVED_NAME: &str = "%syslog-tls";

/// The store-relative path of the file a host's received messages go to at moment `t`.
pub fn received_file(host: &str, t: Timestamp, hourly: bool, compression: Compression) -> String {
    let mut p = day_dir(host, t, hourly);
    p.push_str(RECEIVED_NAME);
    p.push_str(compression.suffix());
    p
}

/// The directory a host's journal entries go to, per day (then one file per machine id).
pub const JOURNAL_DIR: &str = "%journal";

/// The store-relative path of the file a host's journal entries of machine `machine_id` (32 hex
/// digits, checked by the caller) go to at moment `t`:
/// `logs/<host>/<date>/[HH/]%journal/<machine-id>.export.zst`.
pub fn journal_file(
    host: &str,
    t: Timestamp,
    hourly: bool,
    machine_id: &str,
    compression: Compression,
) -> String {
    let mut p = day_dir(host, t, hourly);
    p.push_str(JOURNAL_DIR);
    p.push('/');
    p.push_str(&encode_component(machine_id, true));
    p.push_str(".export");
    p.push_str(compression.suffix());
    p
}

/// What a store-relative log path says about itself: `logs/<host>/<date>/…`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogPath<'a> {
    pub host: &'a str,
    pub date: &'a str,
    /// The rest: `[HH/]name.zst`.
    pub name: &'a str,
}

/// Splits and checks a store-relative path read back from the ledger. `None` when it is not a
/// well-formed log path (absolute, `..`, empty components, not under `logs/`).
pub fn parse_log_path(rel: &str) -> Option<LogPath<'_>> {
    if rel.starts_with('/')
        || rel
            .split('/')
            .any(|c| c.is_empty() || c == "." || c == "..")
    {
        return None;
    }
    let rest = rel.strip_prefix("logs/")?;
    let (host, rest) = rest.split_once('/')?;
    let (date, name) = rest.split_once('/')?;
    crate::config::check_host_name(host).ok()?;
    let valid_date = date.len() == 10 && jiff::civil::Date::strptime("%Y-%m-%d", date).is_ok();
    if !valid_date || name.is_empty() {
        return None;
    }
    Some(LogPath { host, date, name })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_under_var_log_are_relative() {
        assert_eq!(stored_name("/var/log/auth.log"), "auth.log");
        assert_eq!(stored_name("/var/log/nginx/access.log"), "nginx/access.log");
        assert_eq!(stored_name("/opt/app/app.log"), "%root/opt/app/app.log");
        assert_eq!(stored_name("/var/logfoo"), "%root/var/logfoo");
    }

    #[test]
    fn hostile_names_stay_inside_and_are_unambiguous() {
        assert_eq!(stored_name("/var/log/.."), "%2E%2E");
        assert_eq!(stored_name("/var/log/a b\x1b[0m"), "a%20b%1B%5B0m");
        assert_eq!(stored_name("/var/log/%root/x"), "%25root/x");
        assert_eq!(stored_name("/var/log/caf\u{e9}"), "caf%C3%A9");
        assert_eq!(stored_name("/var/log/x\u{fffd}"), "x%EF%BF%BD");
        assert_eq!(stored_name("/var/log/d.zst/x"), "d%2Ezst/x");
        assert_eq!(stored_name("/var/log/d.zst"), "d.zst");
        let long = "/var/log/".to_string() + &"\u{1}".repeat(100);
        let name = stored_name(&long);
        assert!(name.len() <= MAX_COMPONENT && name.contains('~'), "{name}");
        for n in ["..", ".", "a/../../b", "\u{0}"] {
            let s = stored_name(&format!("/var/log/{n}"));
            assert!(
                s.split('/').all(|c| c != ".." && c != "." && !c.is_empty()),
                "{n:?} -> {s}"
            );
        }
    }

    #[test]
    fn encoding_is_injective_on_tricky_pairs() {
        let pairs = [
            ("/var/log/a%20b", "/var/log/a b"),
            ("/var/log/x", "/x"),
            ("/var/log/%2E", "/var/log/."),
            ("/var/log/a.zst/b", "/var/log/a%2Ezst/b"),
        ];
        for (a, b) in pairs {
            assert_ne!(stored_name(a), stored_name(b), "{a} vs {b}");
        }
    }

    #[test]
    fn stored_file_layout() {
        let t: Timestamp = "2026-11-28T08:46:06Z".parse().expect("timestamp");
        assert_eq!(
            stored_file("web1", t, false, "/var/log/syslog", Compression::Zstd),
            "logs/web1/2026-11-28/syslog.zst"
        );
        assert_eq!(
            stored_file("web1", t, true, "/var/log/syslog", Compression::Gzip),
            "logs/web1/2026-11-28/08/syslog.gz"
        );
    }

    #[test]
    fn log_paths_parse_strictly() {
        let p = parse_log_path("logs/web1/2026-11-28/nginx/access.log.zst").expect("valid");
        assert_eq!(
            (p.host, p.date, p.name),
            ("web1", "2026-11-28", "nginx/access.log.zst")
        );
        for bad in [
            "/logs/web1/2026-11-28/x",
            "logs/web1/2026-11-28/../../x",
            "logs/web1/26-11-28/x",
            "logs/../2026-11-28/x",
            "logs/web1/2026-11-28/",
            "ledger/ledger.jsonl",
        ] {
            assert!(parse_log_path(bad).is_none(), "{bad}");
        }
    }
}
