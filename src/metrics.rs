//! Prometheus metrics of `loghost run`, served as text on `metrics_listen` (off by default).
//!
//! Counters are atomics updated where the work happens; [`Metrics::render`] writes the Prometheus
//! text format (0.0.4). The HTTP side answers `GET /metrics` and nothing else, one short request
//! per connection: a scrape endpoint, not a web server.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::watch;

#[derive(Default)]
pub struct Metrics {
    pub pulls_ok: AtomicU64,
    pub pulls_failed: AtomicU64,
    pub pull_bytes: AtomicU64,
    pub pull_file_errors: AtomicU64,
    pub alarms: AtomicU64,
    pub receiver_messages: AtomicU64,
    pub receiver_connections: AtomicU64,
    pub receiver_open: AtomicI64,
    pub ledger_entries: AtomicU64,
    /// Unix seconds of the last checkpoint signed (0: none yet).
    pub last_checkpoint: AtomicU64,
    /// Unix seconds of the last checkpoint copied to every anchor (0: none yet).
    pub last_anchor: AtomicU64,
    pub archived_days: AtomicU64,
    /// Host-days that were due but could not be archived.
    pub archive_failures: AtomicU64,
    /// Checkpoints that could not be signed (an ALARM when the ledger does not extend what an
    /// anchor holds; else an unreadable anchor, key or store).
    pub checkpoint_failures: AtomicU64,
    /// ALARMs about anchored evidence: objects in an anchor that are not this log's checkpoints,
    /// overwritten or deleted ones, checkpoints the store lost.
    pub evidence_alarms: AtomicU64,
    /// Receiver connections refused: certificate not usable or naming no host.
    pub receiver_refused_identity: AtomicU64,
    /// Receiver connections refused over a connection limit.
    pub receiver_refused_limit: AtomicU64,
    /// TLS handshakes that failed or timed out (another CA, no certificate, a port scan).
    pub receiver_handshake_failures: AtomicU64,
    /// Per host: (Unix seconds of its last successful pull or received message, or of the
    /// service's start; its stale_after in seconds).
    hosts: Mutex<BTreeMap<String, (u64, u64)>>,
    /// The store, whose file system's free space is exported.
    store: Mutex<Option<PathBuf>>,
}

fn now_secs() -> u64 {
    jiff::Timestamp::now().as_second().max(0) as u64
}

impl Metrics {
    /// Follows the store and the configured hosts (at start and on reload): each with its
    /// stale_after in seconds and, when known, when it was last seen (Unix seconds; a pulled
    /// host's last successful round, from the store). A reload keeps what the service saw; a
    /// host with no such time counts as seen now, so one that never answers goes stale
    /// stale_after after the start.
    pub fn watch(&self, store: PathBuf, hosts: Vec<(String, u64, Option<u64>)>) {
        if let Ok(mut s) = self.store.lock() {
            *s = Some(store);
        }
        let Ok(mut seen) = self.hosts.lock() else {
            return;
        };
        let old = std::mem::take(&mut *seen);
        for (name, limit, known) in hosts {
            let at = old
                .get(&name)
                .map(|(at, _)| *at)
                .or(known)
                .unwrap_or_else(now_secs);
            seen.insert(name, (at, limit));
        }
    }

    /// Notes that data came from `host` (a pull succeeded, messages were received).
    pub fn seen(&self, host: &str) {
        if let Ok(mut hosts) = self.hosts.lock()
            && let Some(h) = hosts.get_mut(host)
        {
            h.0 = now_secs();
        }
    }

    /// Notes one host's pull: whether it succeeded, raw bytes read, files that failed, rewrite
    /// alarms raised.
    pub fn pulled(&self, ok: bool, raw_bytes: u64, failed_files: u64, alarms: u64) {
        if ok {
            self.pulls_ok.fetch_add(1, Ordering::Relaxed);
        } else {
            self.pulls_failed.fetch_add(1, Ordering::Relaxed);
        }
        self.pull_bytes.fetch_add(raw_bytes, Ordering::Relaxed);
        self.pull_file_errors
            .fetch_add(failed_files, Ordering::Relaxed);
        self.alarms.fetch_add(alarms, Ordering::Relaxed);
    }

    /// Notes a checkpoint.
    pub fn checkpointed(&self, c: &crate::ledger::checkpoint::RoundCheckpoint) {
        self.ledger_entries.store(c.size, Ordering::Relaxed);
        self.last_checkpoint.store(now_secs(), Ordering::Relaxed);
        if c.anchor_errors.is_empty() {
            self.last_anchor.store(now_secs(), Ordering::Relaxed);
        }
        let alarms = c
            .anchor_errors
            .iter()
            .filter(|e| e.contains("ALARM"))
            .count();
        self.evidence_alarms
            .fetch_add(alarms as u64, Ordering::Relaxed);
    }

    /// Notes a checkpoint that could not be signed; `alarm`: because of tampered evidence.
    pub fn checkpoint_failed(&self, alarm: bool) {
        self.checkpoint_failures.fetch_add(1, Ordering::Relaxed);
        if alarm {
            self.evidence_alarms.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let mut metric = |name: &str, kind: &str, help: &str, samples: &[(&str, f64)]| {
            out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} {kind}\n"));
            for (labels, v) in samples {
                out.push_str(&format!("{name}{labels} {v}\n"));
            }
        };
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed) as f64;
        metric(
            "loghost_pulls_total",
            "counter",
            "Host pulls, by result.",
            &[
                ("{result=\"ok\"}", g(&self.pulls_ok)),
                ("{result=\"failed\"}", g(&self.pulls_failed)),
            ],
        );
        metric(
            "loghost_pull_bytes_total",
            "counter",
            "Raw bytes collected by pulls.",
            &[("", g(&self.pull_bytes))],
        );
        metric(
            "loghost_pull_file_errors_total",
            "counter",
            "Remote files that could not be collected in a round.",
            &[("", g(&self.pull_file_errors))],
        );
        metric(
            "loghost_rewrite_alarms_total",
            "counter",
            "Logs found rewritten on their host after collection.",
            &[("", g(&self.alarms))],
        );
        metric(
            "loghost_receiver_messages_total",
            "counter",
            "Syslog messages received over TLS.",
            &[("", g(&self.receiver_messages))],
        );
        metric(
            "loghost_receiver_connections_total",
            "counter",
            "Receiver connections accepted (identity verified).",
            &[("", g(&self.receiver_connections))],
        );
        metric(
            "loghost_receiver_connections_open",
            "gauge",
            "Receiver connections open now.",
            &[("", self.receiver_open.load(Ordering::Relaxed) as f64)],
        );
        metric(
            "loghost_ledger_entries",
            "gauge",
            "Entries in the ledger at the last checkpoint.",
            &[("", g(&self.ledger_entries))],
        );
        let age = |a: &AtomicU64| match a.load(Ordering::Relaxed) {
            0 => -1.0,
            t => now_secs().saturating_sub(t) as f64,
        };
        metric(
            "loghost_last_checkpoint_age_seconds",
            "gauge",
            "Seconds since the last checkpoint was signed (-1: none yet).",
            &[("", age(&self.last_checkpoint))],
        );
        metric(
            "loghost_last_anchor_age_seconds",
            "gauge",
            "Seconds since a checkpoint was last copied to every anchor (-1: never).",
            &[("", age(&self.last_anchor))],
        );
        metric(
            "loghost_archived_days_total",
            "counter",
            "Host-days moved to the archive tier.",
            &[("", g(&self.archived_days))],
        );
        metric(
            "loghost_archive_failures_total",
            "counter",
            "Host-days that were due but could not be archived (they stay local).",
            &[("", g(&self.archive_failures))],
        );
        metric(
            "loghost_checkpoint_failures_total",
            "counter",
            "Checkpoints that could not be signed (unreadable anchor, key or store, or an ALARM).",
            &[("", g(&self.checkpoint_failures))],
        );
        metric(
            "loghost_evidence_alarms_total",
            "counter",
            "ALARMs about the evidence itself: a ledger that does not extend an anchored \
             checkpoint, store checkpoints gone, junk, overwritten or deleted objects in an anchor.",
            &[("", g(&self.evidence_alarms))],
        );
        metric(
            "loghost_receiver_refused_total",
            "counter",
            "Receiver connections refused, by reason: identity (certificate unusable or naming \
             no configured host), limit (a connection limit), handshake (TLS failed or timed out).",
            &[
                ("{reason=\"identity\"}", g(&self.receiver_refused_identity)),
                ("{reason=\"limit\"}", g(&self.receiver_refused_limit)),
                (
                    "{reason=\"handshake\"}",
                    g(&self.receiver_handshake_failures),
                ),
            ],
        );
        let hosts: Vec<(String, u64, u64)> = self
            .hosts
            .lock()
            .map(|h| h.iter().map(|(n, (s, l))| (label(n), *s, *l)).collect())
            .unwrap_or_default();
        let seen: Vec<(String, f64)> = hosts
            .iter()
            .map(|(n, s, _)| (format!("{{host=\"{n}\"}}"), *s as f64))
            .collect();
        let seen: Vec<(&str, f64)> = seen.iter().map(|(l, v)| (l.as_str(), *v)).collect();
        metric(
            "loghost_host_last_seen_timestamp_seconds",
            "gauge",
            "When data last came from the host (a successful pull, a received message), or when \
             the service started.",
            &seen,
        );
        let now = now_secs();
        let stale: Vec<(String, f64)> = hosts
            .iter()
            .map(|(n, s, l)| {
                let v = if now.saturating_sub(*s) > *l {
                    1.0
                } else {
                    0.0
                };
                (format!("{{host=\"{n}\"}}"), v)
            })
            .collect();
        let stale: Vec<(&str, f64)> = stale.iter().map(|(l, v)| (l.as_str(), *v)).collect();
        metric(
            "loghost_host_stale",
            "gauge",
            "1 when nothing came from the host for longer than its stale_after.",
            &stale,
        );
        let store = self.store.lock().ok().and_then(|s| s.clone());
        if let Some(fs) = store.and_then(|p| rustix::fs::statvfs(&p).ok()) {
            let (free, total) = (
                fs.f_bavail.saturating_mul(fs.f_frsize),
                fs.f_blocks.saturating_mul(fs.f_frsize),
            );
            metric(
                "loghost_store_free_bytes",
                "gauge",
                "Bytes free for loghost on the store's file system.",
                &[("", free as f64)],
            );
            metric(
                "loghost_store_size_bytes",
                "gauge",
                "Size of the store's file system in bytes.",
                &[("", total as f64)],
            );
        }
        out
    }
}

/// A label value: `\` and `"` escaped, as the text format wants (host names are checked by the
/// config, this is a second guard).
fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Scrapes served at once; more wait (a scrape is one short request).
const MAX_SCRAPES: usize = 16;

/// Serves `GET /metrics` on `addr` until `shutdown`.
pub async fn serve(
    addr: SocketAddr,
    metrics: Arc<Metrics>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<()> {
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr} (metrics_listen)"))?;
    tracing::info!("metrics on http://{addr}/metrics");
    if !addr.ip().is_loopback() {
        tracing::warn!(
            "metrics_listen {addr} is reachable beyond this machine: the metrics name every \
             host and show when collection fails; restrict it with a firewall, or listen on \
             127.0.0.1 behind a proxy"
        );
    }
    let permits = Arc::new(tokio::sync::Semaphore::new(MAX_SCRAPES));
    loop {
        let Ok(permit) = permits.clone().acquire_owned().await else {
            return Ok(());
        };
        let (mut sock, _) = tokio::select! {
            a = listener.accept() => match a { Ok(a) => a, Err(_) => continue },
            _ = shutdown.changed() => return Ok(()),
        };
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let mut req = Vec::with_capacity(1024);
            let mut buf = [0u8; 1024];
            let read = tokio::time::timeout(Duration::from_secs(5), async {
                while !req.windows(4).any(|w| w == b"\r\n\r\n") && req.len() < 8192 {
                    match sock.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => req.extend_from_slice(&buf[..n]),
                    }
                }
            })
            .await;
            if read.is_err() {
                return;
            }
            let response = if req.starts_with(b"GET /metrics ") || req.starts_with(b"GET /metrics?")
            {
                let body = metrics.render();
                format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\n\
                     Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                )
            } else {
                "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".into()
            };
            let _ = sock.write_all(response.as_bytes()).await;
            let _ = sock.shutdown().await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_host_is_stale_once_nothing_came_for_its_stale_after() {
        let hosts = || vec![("web1".to_string(), 3600, None)];
        let m = Metrics::default();
        m.watch(PathBuf::from("/"), hosts());
        let text = m.render();
        assert!(
            text.contains("loghost_host_stale{host=\"web1\"} 0\n"),
            "{text}"
        );
        assert!(text.contains("loghost_store_free_bytes "), "{text}");
        if let Ok(mut h) = m.hosts.lock()
            && let Some(web1) = h.get_mut("web1")
        {
            web1.0 -= 3601;
        }
        assert!(m.render().contains("loghost_host_stale{host=\"web1\"} 1\n"));
        m.seen("web1");
        assert!(m.render().contains("loghost_host_stale{host=\"web1\"} 0\n"));
        // A reload keeps when a host was last seen.
        m.watch(PathBuf::from("/"), hosts());
        assert!(m.render().contains("loghost_host_stale{host=\"web1\"} 0\n"));
        // A restart: the last success the store recorded counts, not the start.
        let m = Metrics::default();
        let long_ago = now_secs() - 7200;
        m.watch(
            PathBuf::from("/"),
            vec![("web1".to_string(), 3600, Some(long_ago))],
        );
        assert!(m.render().contains("loghost_host_stale{host=\"web1\"} 1\n"));
    }
}
