//! **Part `daemon/`: `loghost run`** (the service and its `schedule`). It drives the inputs
//! (`pull`, `receive`) and `archive`; it must not import `cli`.
//!
//! `loghost run`: the long-running service.
//!
//! It opens the store once (holding its lock) and runs, until told to stop:
//! - the pull scheduler ([`crate::daemon::schedule`]): each host with an address on its `every`/`cron`
//!   schedule, at most `ssh.concurrency` at once, never one host twice at once;
//! - the syslog-over-TLS receiver when `[receiver]` is configured;
//! - a checkpoint every `checkpoint_every` when the ledger grew;
//! - retention once a day when `[retention] archive` is set;
//! - the metrics endpoint when `metrics_listen` is set.
//!
//! SIGTERM/SIGINT: nothing new starts, pulls in flight finish, receiver connections are drained,
//! buffers flushed, a final checkpoint signed; exit 0. SIGHUP: the configuration file is read
//! again; if it is invalid (or moves the store), the running configuration stays and the reason
//! is logged; otherwise every part is stopped as above and started again with the new one
//! (senders reconnect; the process and its pid stay).
//!
//! The store's lock: when a short command (`verify`, `pull`, `archive`, …) holds it as `run`
//! starts or reloads, `run` waits for it (logging who holds it) rather than dying and leaving
//! the service down; a second `run` holding it is a mistake and is refused at once.

pub mod schedule;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Result;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::{Config, SetupError};
use crate::ledger::writer::Recorder;
use crate::metrics::Metrics;
use crate::store::StoreError;

/// The parts running for one configuration.
struct Parts {
    rec: Arc<Recorder>,
    /// Stops the pulls, checkpointer, retention and metrics.
    stop: watch::Sender<bool>,
    /// Stops the receiver, last: it keeps receiving while a pull finishes.
    stop_receiver: watch::Sender<bool>,
    receiver: Option<JoinHandle<Result<()>>>,
    others: Vec<JoinHandle<()>>,
}

/// Runs until SIGTERM/SIGINT; returns the exit status.
pub async fn run(config_path: PathBuf, config: Config) -> Result<i32> {
    check_runnable(&config)?;
    raise_fd_limit();
    let metrics = Arc::new(Metrics::default());
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut hup = signal(SignalKind::hangup())?;
    let mut config = config;
    let Some(rec) = open_waiting(&config, &mut term, &mut int).await? else {
        return Ok(0);
    };
    let mut parts = start(rec, &config, &metrics);
    tracing::info!("loghost running (store {})", config.store.display());
    loop {
        let receiver_ended = async {
            match parts.receiver.as_mut() {
                Some(h) => h.await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = hup.recv() => {
                match reload(&config_path, &config) {
                    Err(why) => tracing::error!("reload refused, the running configuration stays: {why:#}"),
                    Ok(new) => {
                        tracing::info!("reloading {}", config_path.display());
                        stop(parts, false).await;
                        config = new;
                        let Some(rec) = open_waiting(&config, &mut term, &mut int).await? else {
                            return Ok(0);
                        };
                        parts = start(rec, &config, &metrics);
                        tracing::info!("reloaded");
                    }
                }
            }
            r = receiver_ended => {
                parts.receiver = None;
                let e = match r {
                    Ok(Ok(())) => anyhow::anyhow!("the receiver stopped"),
                    Ok(Err(e)) => e,
                    Err(e) => anyhow::anyhow!("receiver task: {e}"),
                };
                stop(parts, true).await;
                return Err(e.context("the receiver failed"));
            }
        }
    }
    tracing::info!("stopping: pulls finishing, connections draining, flushing, checkpointing");
    stop(parts, true).await;
    tracing::info!("stopped");
    Ok(0)
}

fn check_runnable(config: &Config) -> Result<()> {
    if config.receiver.is_none() && !config.hosts.iter().any(|h| h.is_pulled()) {
        return Err(SetupError(
            "nothing to run: configure [receiver] and/or hosts with an address".into(),
        )
        .into());
    }
    Ok(())
}

/// Reads the new configuration; an error keeps the running one.
fn reload(path: &Path, running: &Config) -> Result<Config> {
    let new = Config::load(path)?;
    check_runnable(&new)?;
    if new.store != running.store {
        anyhow::bail!(
            "the store cannot change while running ({} → {}); restart loghost for that",
            running.store.display(),
            new.store.display()
        );
    }
    Ok(new)
}

/// Opens the store for writing; while another short loghost command holds its lock, waits for
/// it (a `verify` of a large store may take minutes). Another `run` holding it is an error.
/// `None`: told to stop while waiting.
async fn open_waiting(
    config: &Config,
    term: &mut tokio::signal::unix::Signal,
    int: &mut tokio::signal::unix::Signal,
) -> Result<Option<Recorder>> {
    let mut waiting_since: Option<std::time::Instant> = None;
    let mut last_said = std::time::Instant::now();
    // How many times in a row the holder looked like a daemon. The lock file is written by its
    // holder just after it takes the lock: read in between, it is empty or still names the
    // previous holder (a daemon that has stopped, say). Only a holder that keeps saying `run`
    // is another daemon.
    let mut like_a_daemon = 0;
    loop {
        let e = match Recorder::open(config, "run") {
            Ok(rec) => {
                if let Some(since) = waiting_since {
                    tracing::info!(
                        "the store's lock is free after {}s; starting",
                        since.elapsed().as_secs()
                    );
                }
                return Ok(Some(rec));
            }
            Err(e) => e,
        };
        let Some(StoreError::Busy { holder, role, .. }) = e.downcast_ref::<StoreError>() else {
            return Err(e);
        };
        if role.as_deref() == Some("run") || role.is_none() {
            like_a_daemon += 1;
            if like_a_daemon < 5 {
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
            // A second daemon on the same store (or a holder too old to say what it is).
            return Err(SetupError(format!(
                "the store {} is held by another loghost daemon{holder}: one `loghost run` per \
                 store; stop the other one, or point this configuration at another store",
                config.store.display()
            ))
            .into());
        }
        like_a_daemon = 0;
        let now = std::time::Instant::now();
        if waiting_since.is_none() || now.duration_since(last_said).as_secs() >= 60 {
            tracing::warn!(
                "the store {} is locked by another loghost command{holder}; waiting for it to finish",
                config.store.display()
            );
            last_said = now;
        }
        waiting_since.get_or_insert(now);
        tokio::select! {
            _ = term.recv() => return Ok(None),
            _ = int.recv() => return Ok(None),
            _ = tokio::time::sleep(std::time::Duration::from_millis(500)) => {}
        }
    }
}

fn start(rec: Recorder, config: &Config, metrics: &Arc<Metrics>) -> Parts {
    let now = jiff::Timestamp::now();
    // A restart does not make a dead host look fresh: its last successful round counts.
    let rounds = crate::store::rounds::load_rounds(&rec.store);
    let last_success = |h: &crate::config::HostConfig| {
        let round = rounds.hosts.get(&h.name)?;
        let t: jiff::Timestamp = round.last_success.as_deref()?.parse().ok()?;
        u64::try_from(t.as_second()).ok()
    };
    metrics.watch(
        config.store.clone(),
        config
            .hosts
            .iter()
            .map(|h| {
                let seen = if h.is_pulled() { last_success(h) } else { None };
                (
                    h.name.clone(),
                    schedule::stale_after(h, now).as_secs(),
                    seen,
                )
            })
            .collect(),
    );
    let rec = Arc::new(rec);
    let (stop, stopping) = watch::channel(false);
    let (stop_receiver, receiver_stopping) = watch::channel(false);
    let receiver = config.receiver.is_some().then(|| {
        tokio::spawn(crate::receive::serve(
            rec.clone(),
            receiver_stopping,
            metrics.clone(),
        ))
    });
    let mut others = vec![
        tokio::spawn(checkpointer(rec.clone(), stopping.clone(), metrics.clone())),
        tokio::spawn(scheduler(rec.clone(), stopping.clone(), metrics.clone())),
    ];
    if config.retention.archive.is_some() {
        others.push(tokio::spawn(retention(
            rec.clone(),
            stopping.clone(),
            metrics.clone(),
        )));
    }
    if let Some(addr) = config.metrics_listen {
        let (m, s) = (metrics.clone(), stopping.clone());
        others.push(tokio::spawn(async move {
            if let Err(e) = crate::metrics::serve(addr, m, s).await {
                tracing::error!("metrics: {e:#}");
            }
        }));
    }
    Parts {
        rec,
        stop,
        stop_receiver,
        receiver,
        others,
    }
}

/// Stops every part and waits for it; `checkpoint`: sign a last checkpoint. Pulls (and the
/// other parts) stop first while the receiver still receives: a slow pull finishing must not
/// leave the syslog senders without a receiver. The receiver drains last.
async fn stop(parts: Parts, checkpoint: bool) {
    let _ = parts.stop.send(true);
    for t in parts.others {
        let _ = t.await;
    }
    let _ = parts.stop_receiver.send(true);
    if let Some(r) = parts.receiver {
        match r.await {
            Ok(Err(e)) => tracing::error!("the receiver stopped with an error: {e:#}"),
            Err(e) => tracing::error!("receiver task: {e}"),
            Ok(Ok(())) => {}
        }
    }
    if checkpoint {
        checkpoint_now(&parts.rec, None).await;
    }
}

/// Signs a checkpoint (if the ledger grew), and records the outcome for status and metrics.
async fn checkpoint_now(rec: &Arc<Recorder>, metrics: Option<&Metrics>) {
    let r = tokio::task::spawn_blocking({
        let rec = rec.clone();
        move || rec.checkpoint()
    })
    .await;
    let outcome = match r {
        Ok(r) => r.map_err(|e| format!("{e:#}")),
        Err(e) => Err(format!("checkpoint task: {e}")),
    };
    match &outcome {
        Ok(c) => {
            for e in &c.anchor_errors {
                tracing::error!("anchor {e}");
            }
            if let Some(m) = metrics {
                m.checkpointed(c);
            }
        }
        Err(e) => {
            tracing::error!("checkpoint: {e}");
            if let Some(m) = metrics {
                m.checkpoint_failed(e.contains("ALARM"));
            }
        }
    }
    if let Err(e) = crate::store::rounds::save_checkpoint(
        &rec.store,
        outcome
            .as_ref()
            .map(|c| &c.anchor_errors[..])
            .map_err(String::as_str),
    ) {
        tracing::warn!("cannot save the checkpoint outcome for status: {e}");
    }
}

/// Signs a checkpoint every `checkpoint_every` when the ledger grew.
async fn checkpointer(
    rec: Arc<Recorder>,
    mut stopping: watch::Receiver<bool>,
    metrics: Arc<Metrics>,
) {
    let mut tick = tokio::time::interval(rec.config.ledger.checkpoint_every);
    tick.tick().await;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stopping.changed() => return,
        }
        checkpoint_now(&rec, Some(&metrics)).await;
    }
}

/// Applies retention a minute after start, then once a day: every host-day older than
/// `online_days` goes to the archive target. A day that cannot be archived stays local and is
/// tried again the next day.
async fn retention(rec: Arc<Recorder>, mut stopping: watch::Receiver<bool>, metrics: Arc<Metrics>) {
    let first = std::time::Duration::from_millis(crate::failpoint::size_override(
        "LOGHOST_RETENTION_DELAY_MS",
        60_000,
    ));
    let mut next = tokio::time::Instant::now() + first;
    loop {
        tokio::select! {
            _ = tokio::time::sleep_until(next) => {}
            _ = stopping.changed() => return,
        }
        next += std::time::Duration::from_secs(24 * 3600);
        let now = match rec.ledger() {
            Ok(l) => l.now(),
            Err(e) => {
                tracing::error!("retention: {e:#}");
                continue;
            }
        };
        let through = match crate::archive::default_through(&rec.config, now) {
            Ok(d) => d,
            Err(e) => {
                tracing::error!("retention: {e:#}");
                continue;
            }
        };
        match crate::archive::run(&rec, through, false).await {
            Ok(r) => {
                use std::sync::atomic::Ordering::Relaxed;
                metrics
                    .archived_days
                    .fetch_add(r.archived.len() as u64, Relaxed);
                metrics
                    .archive_failures
                    .fetch_add(r.failed.len() as u64, Relaxed);
                tracing::info!(
                    "retention through {}: {} host-days archived to {}, {} failed",
                    r.through,
                    r.archived.len(),
                    r.target,
                    r.failed.len()
                );
            }
            Err(e) => {
                metrics
                    .archive_failures
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                tracing::error!("retention: nothing archived: {e:#}");
            }
        }
    }
}

/// Pulls every host with an address on its schedule.
async fn scheduler(rec: Arc<Recorder>, stopping: watch::Receiver<bool>, metrics: Arc<Metrics>) {
    let hosts: Vec<_> = rec
        .config
        .hosts
        .iter()
        .filter(|h| h.is_pulled())
        .map(|h| (h.name.clone(), h.schedule.clone()))
        .collect();
    let concurrency = rec.config.ssh.concurrency;
    crate::daemon::schedule::run(hosts, concurrency, stopping, move |name: String| {
        let (rec, metrics) = (rec.clone(), metrics.clone());
        async move {
            let Some(host) = rec.config.host(&name).cloned() else {
                return;
            };
            match crate::pull::run_round_with(&rec, &[host], false).await {
                Ok(report) => {
                    for h in &report.hosts {
                        let failed = h
                            .files
                            .iter()
                            .filter(|f| matches!(f.outcome, crate::pull::Outcome::Failed(_)))
                            .count();
                        metrics.pulled(h.ok(), h.raw_bytes(), failed as u64, h.alarms() as u64);
                        // As `loghost status`: the host answered and its round ran, even if a
                        // file of it failed (that is counted and logged on its own).
                        if h.error.is_none() {
                            metrics.seen(&h.host);
                        }
                    }
                    for h in &report.hosts {
                        if let Some(e) = &h.error {
                            tracing::error!("{}: {e}", h.host);
                        }
                        for w in &h.warnings {
                            tracing::warn!("{}: {w}", h.host);
                        }
                        for f in &h.files {
                            if let crate::pull::Outcome::Failed(e) = &f.outcome {
                                tracing::error!(
                                    "{}: {}: {e}",
                                    h.host,
                                    crate::sanitize::Shown(&f.source)
                                );
                            }
                        }
                        tracing::info!(
                            "{}: pulled {} files, {} bytes new",
                            h.host,
                            h.files.len(),
                            h.raw_bytes()
                        );
                    }
                }
                Err(e) => tracing::error!("{name}: pull round failed: {e:#}"),
            }
        }
    })
    .await;
}

/// A receiver holds a socket per client: raise the soft open-file limit to the hard one (at most
/// 65536), as servers do.
fn raise_fd_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    #[allow(unsafe_code)]
    // SAFETY: getrlimit and setrlimit only read and write the struct passed to them.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max.min(65536).max(lim.rlim_cur);
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}
