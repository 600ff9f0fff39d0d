//! `loghost status`: per host, what was collected and when, the last round's outcome, and the
//! alarms and notices the ledger holds.
//!
//! The ledger gives what is certain (frames, rewrite alarms, truncations); `state/rounds.json`,
//! written after every pull round, gives what only the last rounds know (the last attempt, the last
//! success, the last error, failing anchors). Both are read, nothing is written.

use std::collections::BTreeMap;
use std::io::Write;

use anyhow::Result;
use serde::Serialize;

use crate::config::Config;
use crate::ledger::{self, Entry, EventKind};
use crate::store::Store;
use crate::store::layout;
use crate::store::rounds::{HostRound, load_rounds};

/// A rewrite alarm or a notice, from the ledger.
#[derive(Debug, Clone, Serialize)]
pub struct Notice {
    pub seq: u64,
    pub time: String,
    pub kind: String,
    pub source: Option<String>,
    pub start: Option<u64>,
    pub end: Option<u64>,
    pub detail: String,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct HostStatus {
    pub host: String,
    /// Remote files with at least one stored frame (journal files not counted).
    pub files_tracked: usize,
    /// systemd journal files with at least one collected entry, and their entries.
    pub journal_files: usize,
    pub journal_entries: u64,
    /// Journal entries collected today (UTC).
    pub journal_entries_today: u64,
    /// Some journal file is sealed (Forward Secure Sealing; seals are not checked by loghost).
    pub journal_sealed: bool,
    pub last_collected: Option<String>,
    /// Raw bytes collected today (UTC).
    pub bytes_today: u64,
    #[serde(flatten)]
    pub round: HostRound,
    /// ALARMS: logs rewritten on the server after collection.
    pub alarms: Vec<Notice>,
    /// Truncations and replacements noticed.
    pub notices: Vec<Notice>,
    /// Days moved to the archive tier.
    pub archived_days: usize,
    /// How long the host may go without a successful pull (without a received message, for a
    /// host that is only received from): `stale_after`, default three schedule periods.
    pub stale_after: String,
    /// Nothing came from the host for longer than `stale_after` (or ever).
    pub stale: bool,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Status {
    pub hosts: Vec<HostStatus>,
    pub last_round: Option<String>,
    pub ledger_entries: u64,
    pub checkpoint_error: Option<String>,
    pub anchor_errors: Vec<String>,
    /// The receiver's counts, as the daemon last saved them.
    pub receiver: Option<crate::receive::Counts>,
}

impl Status {
    /// `loghost status`'s exit status: 3 when a host is stale.
    pub fn exit_code(&self) -> i32 {
        if self.hosts.iter().any(|h| h.stale) {
            3
        } else {
            0
        }
    }
}

/// Gathers the status of every configured host.
pub fn gather(config: &Config) -> Result<Status> {
    let store = Store::open(&config.store)?;
    let rounds = load_rounds(&store);
    let now = crate::failpoint::fake_now().unwrap_or_else(jiff::Timestamp::now);
    let today = layout::date_and_hour(now).0;
    let mut hosts: BTreeMap<String, HostStatus> = config
        .hosts
        .iter()
        .map(|h| {
            (
                h.name.clone(),
                HostStatus {
                    host: h.name.clone(),
                    round: rounds.hosts.get(&h.name).cloned().unwrap_or_default(),
                    ..Default::default()
                },
            )
        })
        .collect();
    let mut sources: BTreeMap<String, std::collections::BTreeSet<String>> = BTreeMap::new();
    let mut journal_files: BTreeMap<String, std::collections::BTreeSet<String>> = BTreeMap::new();
    let mut entries = 0;
    ledger::scan(&store.path(layout::LEDGER_FILE), 0, 0, |_, _, entry| {
        entries += 1;
        match entry {
            Entry::Frame(f) => {
                let Some(h) = hosts.get_mut(&f.host) else {
                    return;
                };
                let today_file = layout::parse_log_path(&f.file).is_some_and(|p| p.date == today);
                if let Some(j) = &f.journal {
                    journal_files
                        .entry(f.host.clone())
                        .or_default()
                        .insert(j.file_id.clone());
                    h.journal_entries += j.entries;
                    h.journal_sealed |= j.sealed;
                    if today_file {
                        h.journal_entries_today += j.entries;
                    }
                } else {
                    sources
                        .entry(f.host.clone())
                        .or_default()
                        .insert(f.source.clone());
                }
                if today_file {
                    h.bytes_today += f.end - f.start;
                }
                h.last_collected = Some(f.time);
            }
            Entry::Event(e) => {
                let Some(h) = e.host.as_ref().and_then(|n| hosts.get_mut(n)) else {
                    return;
                };
                let notice = Notice {
                    seq: e.seq,
                    time: e.time.clone(),
                    kind: format!("{:?}", e.event).to_lowercase(),
                    source: e.source.clone(),
                    start: e.start,
                    end: e.end,
                    detail: e.detail.clone(),
                };
                match e.event {
                    EventKind::Rewritten => h.alarms.push(notice),
                    EventKind::Truncated
                    | EventKind::Replaced
                    | EventKind::CopyShort
                    | EventKind::Gone
                    | EventKind::Unsettled => h.notices.push(notice),
                    EventKind::Archived => h.archived_days += 1,
                    EventKind::HostKeyPinned | EventKind::LedgerAccepted => {}
                }
            }
        }
    })?;
    for (name, s) in sources {
        if let Some(h) = hosts.get_mut(&name) {
            h.files_tracked = s.len();
        }
    }
    for (name, s) in journal_files {
        if let Some(h) = hosts.get_mut(&name) {
            h.journal_files = s.len();
        }
    }
    for hc in &config.hosts {
        let Some(h) = hosts.get_mut(&hc.name) else {
            continue;
        };
        let limit = crate::daemon::schedule::stale_after(hc, now);
        let last = if hc.is_pulled() {
            h.round.last_success.as_deref()
        } else {
            h.last_collected.as_deref()
        };
        let last = last.and_then(|t| t.parse::<jiff::Timestamp>().ok());
        h.stale_after = humantime::format_duration(limit).to_string();
        h.stale = last.is_none_or(|t| now.duration_since(t).unsigned_abs() > limit && now > t);
    }
    Ok(Status {
        hosts: hosts.into_values().collect(),
        last_round: rounds.last_round,
        ledger_entries: entries,
        checkpoint_error: rounds.checkpoint_error,
        anchor_errors: rounds.anchor_errors,
        receiver: crate::receive::load_counts(&store),
    })
}

impl Status {
    /// Prints the status for people.
    pub fn print(&self, out: &mut dyn Write) -> std::io::Result<()> {
        writeln!(
            out,
            "last round: {}   ledger: {} entries",
            self.last_round.as_deref().unwrap_or("never"),
            self.ledger_entries
        )?;
        if let Some(e) = &self.checkpoint_error {
            writeln!(out, "CHECKPOINT FAILED in the last round: {e}")?;
        }
        for a in &self.anchor_errors {
            writeln!(out, "ANCHOR FAILED in the last round: {a}")?;
        }
        if let Some(r) = &self.receiver {
            writeln!(
                out,
                "receiver: {} connections accepted, {} refused (identity), {} failed handshakes, \
                 {} over max_connections, {} framing errors",
                r.accepted, r.refused_identity, r.handshake_failed, r.over_limit, r.framing_errors
            )?;
        }
        for h in &self.hosts {
            if let Some(c) = self.receiver.as_ref().and_then(|r| r.hosts.get(&h.host)) {
                writeln!(
                    out,
                    "\n{}: received {} messages ({} RFC 5424, {} RFC 3164, {} other) over {} \
                     connections; {} with another HOSTNAME; {} oversized skipped",
                    h.host,
                    c.messages,
                    c.rfc5424,
                    c.rfc3164,
                    c.unknown,
                    c.connections,
                    c.hostname_mismatch,
                    c.oversized
                )?;
            }
            writeln!(
                out,
                "\n{}: {} files tracked, {} collected today, last data {}",
                h.host,
                h.files_tracked,
                crate::units::human(h.bytes_today),
                h.last_collected.as_deref().unwrap_or("never")
            )?;
            if h.journal_files > 0 {
                writeln!(
                    out,
                    "  journal: {} entries from {} files, {} today{}",
                    h.journal_entries,
                    h.journal_files,
                    h.journal_entries_today,
                    if h.journal_sealed {
                        " (sealed with Forward Secure Sealing: seals not checked)"
                    } else {
                        ""
                    }
                )?;
            }
            writeln!(
                out,
                "  last attempt {}, last success {}",
                h.round.last_attempt.as_deref().unwrap_or("never"),
                h.round.last_success.as_deref().unwrap_or("never")
            )?;
            if h.stale {
                writeln!(
                    out,
                    "  STALE: no successful pull (or, for a receive-only host, no message) within \
                     {}",
                    h.stale_after
                )?;
            }
            if h.archived_days > 0 {
                writeln!(out, "  {} days in the archive tier", h.archived_days)?;
            }
            if let Some(e) = &h.round.last_error {
                writeln!(out, "  last error: {}", crate::sanitize::Shown(e))?;
            }
            for a in &h.alarms {
                writeln!(
                    out,
                    "  ALARM {} (entry {}): {} rewritten: {}",
                    a.time,
                    a.seq,
                    crate::sanitize::Shown(a.source.as_deref().unwrap_or("?")),
                    crate::sanitize::Shown(&a.detail)
                )?;
            }
            for n in &h.notices {
                writeln!(
                    out,
                    "  notice {} (entry {}): {} {}: {}",
                    n.time,
                    n.seq,
                    crate::sanitize::Shown(n.source.as_deref().unwrap_or("?")),
                    n.kind,
                    crate::sanitize::Shown(&n.detail)
                )?;
            }
        }
        Ok(())
    }
}
