//! When the daemon pulls each host, and the loop that does it.
//!
//! [`next_due`] is pure: `every = "15m"` runs on a grid of 15 minutes shifted by a per-host offset
//! (a hash of the host name, at most a tenth of the period and 5 minutes), so hosts with the same
//! schedule spread out and a restart keeps the phase; `cron = "…"` runs at the expression's
//! occurrences (UTC) plus a per-host offset of up to 30 seconds.
//!
//! [`run`] sleeps until the next due host, starts its pull under the concurrency bound, and never
//! starts a host whose previous pull is still running (that occurrence is skipped and logged).
//! On shutdown it starts nothing new and waits for the pulls in flight. Time comes from tokio's
//! clock, so the loop is tested with paused time.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use sha2::{Digest, Sha256};
use tokio::sync::{Semaphore, watch};
use tokio::time::Instant;

use crate::config::{HostConfig, Schedule};

/// A per-host offset in `[0, max)`, the same on every start.
pub fn jitter(host: &str, max: Duration) -> Duration {
    let max_ms = max.as_millis() as u64;
    if max_ms == 0 {
        return Duration::ZERO;
    }
    let d = Sha256::digest(host.as_bytes());
    let v = u64::from_be_bytes([d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]]);
    Duration::from_millis(v % max_ms)
}

/// The first moment strictly after `now` at which `host` is due.
pub fn next_due(schedule: &Schedule, host: &str, now: Timestamp) -> Timestamp {
    match schedule {
        Schedule::Every(period) => {
            let period_ms = (period.as_millis() as i64).max(1);
            let offset =
                jitter(host, (*period / 10).min(Duration::from_secs(300))).as_millis() as i64;
            let t = now.as_millisecond() - offset;
            let k = t.div_euclid(period_ms) + 1;
            Timestamp::from_millisecond(k * period_ms + offset).unwrap_or(now)
        }
        Schedule::Cron(expr) => {
            let next = croner::parser::CronParser::new()
                .parse(expr)
                .ok()
                .and_then(|c| {
                    c.find_next_occurrence(&now.to_zoned(jiff::tz::TimeZone::UTC), false)
                        .ok()
                })
                .map(|z| z.timestamp());
            // A valid expression always has a next occurrence; the config checked it.
            let next = next.unwrap_or_else(|| now + SignedDuration::from_hours(1));
            let offset = jitter(host, Duration::from_secs(30));
            next + SignedDuration::try_from(offset).unwrap_or(SignedDuration::ZERO)
        }
    }
}

/// How long `host` may go without a successful pull (or, received only, without a message)
/// before it is stale, for `loghost status` and the metrics alike: its `stale_after`, else
/// [`default_stale_after`].
pub fn stale_after(host: &HostConfig, now: Timestamp) -> Duration {
    host.stale_after
        .unwrap_or_else(|| default_stale_after(&host.schedule, now))
}

/// How long a host may go without a successful pull before `status` calls it stale: three
/// periods (for cron, three intervals between its next occurrences).
pub fn default_stale_after(schedule: &Schedule, now: Timestamp) -> Duration {
    match schedule {
        Schedule::Every(p) => *p * 3,
        Schedule::Cron(_) => {
            let a = next_due(schedule, "", now);
            let b = next_due(schedule, "", a);
            let gap = b.duration_since(a).unsigned_abs();
            gap.max(Duration::from_secs(60)) * 3
        }
    }
}

/// Runs `pull(host)` for every host on its schedule until `shutdown` turns true, then waits for
/// the pulls in flight. At most `concurrency` pulls run at once; a host is never pulled twice at
/// the same time.
pub async fn run<F, Fut>(
    hosts: Vec<(String, Schedule)>,
    concurrency: usize,
    mut shutdown: watch::Receiver<bool>,
    pull: F,
) where
    F: Fn(String) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    if hosts.is_empty() {
        return;
    }
    let pull = Arc::new(pull);
    // Wall time derived from tokio's clock, so paused time drives the schedule in tests.
    let (wall0, inst0) = (Timestamp::now(), Instant::now());
    let wall = move |i: Instant| {
        wall0 + SignedDuration::try_from(i.duration_since(inst0)).unwrap_or(SignedDuration::ZERO)
    };
    let when = move |t: Timestamp| {
        let d = t.duration_since(wall0);
        inst0 + d.unsigned_abs().min(Duration::from_secs(10 * 365 * 86_400))
    };
    let permits = Arc::new(Semaphore::new(concurrency.max(1)));
    let running: Arc<Mutex<HashSet<String>>> = Arc::default();
    let mut due: HashMap<String, Timestamp> = hosts
        .iter()
        .map(|(h, s)| (h.clone(), next_due(s, h, wall(Instant::now()))))
        .collect();
    let schedules: HashMap<String, Schedule> = hosts.into_iter().collect();
    let mut tasks = tokio::task::JoinSet::new();
    while let Some((host, at)) = due
        .iter()
        .min_by_key(|(h, t)| (**t, (*h).clone()))
        .map(|(h, t)| (h.clone(), *t))
    {
        tokio::select! {
            _ = tokio::time::sleep_until(when(at)) => {}
            _ = shutdown.changed() => break,
        }
        while tasks.try_join_next().is_some() {}
        let busy = running.lock().map(|r| r.contains(&host)).unwrap_or(true);
        if busy {
            tracing::warn!("{host}: its previous pull is still running; this one is skipped");
        } else {
            if let Ok(mut r) = running.lock() {
                r.insert(host.clone());
            }
            let (pull, permits, running, h) =
                (pull.clone(), permits.clone(), running.clone(), host.clone());
            tasks.spawn(async move {
                if let Ok(_permit) = permits.acquire_owned().await {
                    pull(h.clone()).await;
                }
                if let Ok(mut r) = running.lock() {
                    r.remove(&h);
                }
            });
        }
        if let Some(s) = schedules.get(&host) {
            due.insert(host.clone(), next_due(s, &host, at));
        }
    }
    while tasks.join_next().await.is_some() {}
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().expect("timestamp")
    }

    #[test]
    fn every_runs_on_a_shifted_grid() {
        let s = Schedule::Every(Duration::from_secs(3600));
        let now = ts("2026-11-28T10:17:00Z");
        let a = next_due(&s, "web1", now);
        assert!(a > now && a <= now + SignedDuration::from_hours(1));
        // The offset is the same hour after hour and below six minutes.
        let b = next_due(&s, "web1", a);
        assert_eq!(b.duration_since(a), SignedDuration::from_hours(1));
        let minute_offset = a.as_second().rem_euclid(3600);
        assert!(minute_offset < 360, "{minute_offset}");
        // Another host lands elsewhere on the grid.
        assert_ne!(next_due(&s, "web2", now), a);
        // Exactly on the due moment: the next one.
        assert_eq!(next_due(&s, "web1", a), b);
    }

    #[test]
    fn cron_runs_at_its_occurrences() {
        let s = Schedule::Cron("0 */4 * * *".into());
        let now = ts("2026-11-28T10:17:00Z");
        let a = next_due(&s, "web1", now);
        let base = ts("2026-11-28T12:00:00Z");
        assert!(a >= base && a < base + SignedDuration::from_secs(30), "{a}");
        assert_eq!(
            default_stale_after(&s, now),
            Duration::from_secs(3 * 4 * 3600)
        );
        assert_eq!(
            default_stale_after(&Schedule::Every(Duration::from_secs(900)), now),
            Duration::from_secs(2700)
        );
    }

    type Log = Arc<Mutex<Vec<(String, Instant, Instant)>>>;

    /// Runs the loop for `hours` of paused time; each pull takes 60 s (`slow`: 20 minutes).
    async fn simulate(hosts: Vec<(&str, u64)>, concurrency: usize, hours: u64) -> Log {
        let log: Log = Arc::default();
        let (stop, stopping) = watch::channel(false);
        let hosts = hosts
            .into_iter()
            .map(|(h, every)| (h.to_string(), Schedule::Every(Duration::from_secs(every))))
            .collect();
        let l = log.clone();
        let task = tokio::spawn(run(hosts, concurrency, stopping, move |h: String| {
            let l = l.clone();
            async move {
                let start = Instant::now();
                let took = if h == "slow" { 1200 } else { 60 };
                tokio::time::sleep(Duration::from_secs(took)).await;
                if let Ok(mut v) = l.lock() {
                    v.push((h, start, Instant::now()));
                }
            }
        }));
        tokio::time::sleep(Duration::from_secs(hours * 3600)).await;
        let _ = stop.send(true);
        task.await.expect("scheduler");
        log
    }

    fn spans(log: &Log, host: Option<&str>) -> Vec<(Instant, Instant)> {
        let mut v: Vec<(Instant, Instant)> = log
            .lock()
            .expect("log")
            .iter()
            .filter(|(h, _, _)| host.is_none_or(|x| x == h))
            .map(|(_, s, e)| (*s, *e))
            .collect();
        v.sort();
        v
    }

    #[tokio::test(start_paused = true)]
    async fn hosts_run_on_their_schedules_and_never_twice_at_once() {
        let log = simulate(vec![("a", 3600), ("b", 900), ("slow", 900)], 3, 4).await;
        let count = |h: &str| spans(&log, Some(h)).len();
        assert!((3..=4).contains(&count("a")), "{}", count("a"));
        assert!((15..=16).contains(&count("b")), "{}", count("b"));
        // slow takes 20 minutes and is due every 15: the runs it would overlap are skipped.
        assert!((7..=12).contains(&count("slow")), "{}", count("slow"));
        for h in ["a", "b", "slow"] {
            for w in spans(&log, Some(h)).windows(2) {
                assert!(w[1].0 >= w[0].1, "{h} pulled twice at once");
            }
        }
        // b every 15 minutes: consecutive starts 15 minutes apart.
        let b = spans(&log, Some("b"));
        assert_eq!(b[1].0 - b[0].0, Duration::from_secs(900));
    }

    #[tokio::test(start_paused = true)]
    async fn the_concurrency_bound_holds() {
        let log = simulate(vec![("a", 300), ("b", 300), ("c", 300)], 1, 1).await;
        let all = spans(&log, None);
        assert!(all.len() >= 30, "{}", all.len());
        for w in all.windows(2) {
            assert!(w[1].0 >= w[0].1, "two pulls at once with concurrency 1");
        }
    }
}
