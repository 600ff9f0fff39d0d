//! `loghost run`: the long-running service. It opens the store once (holding its lock), serves the
//! syslog-over-TLS receiver when `[receiver]` is configured, signs a checkpoint every
//! `checkpoint_every` when the ledger grew, and stops cleanly on SIGTERM or SIGINT: no new
//! connections, open ones drained, every buffer flushed, a final checkpoint, exit 0.

use std::sync::Arc;

use anyhow::Result;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;

use crate::config::{Config, SetupError};
use crate::writer::Recorder;

/// Runs until SIGTERM/SIGINT; returns the exit status.
pub async fn run(config: Config) -> Result<i32> {
    if config.receiver.is_none() && !config.hosts.iter().any(|h| h.is_pulled()) {
        return Err(SetupError(
            "nothing to run: configure [receiver] and/or hosts with an address".into(),
        )
        .into());
    }
    raise_fd_limit();
    let rec = Arc::new(Recorder::open(&config)?);
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let (stop, stopping) = watch::channel(false);

    let receiver = config
        .receiver
        .is_some()
        .then(|| tokio::spawn(crate::receiver::serve(rec.clone(), stopping.clone())));
    let checkpoints = tokio::spawn(checkpointer(rec.clone(), stopping.clone()));
    tracing::info!("loghost running (store {})", config.store.display());

    // Until a signal, or until the receiver ends on its own (it cannot listen, say).
    let mut receiver = receiver;
    let ended = match receiver.as_mut() {
        Some(handle) => tokio::select! {
            _ = term.recv() => None,
            _ = int.recv() => None,
            r = handle => Some(r.map_err(|e| anyhow::anyhow!("receiver task: {e}")).and_then(|r| r)),
        },
        None => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
            None
        }
    };
    tracing::info!("stopping: draining connections, flushing, checkpointing");
    let _ = stop.send(true);
    let receiver_result = match (ended, receiver) {
        (Some(r), _) => r,
        (None, Some(handle)) => wait(handle).await,
        (None, None) => Ok(()),
    };
    let _ = checkpoints.await;
    let final_checkpoint = tokio::task::spawn_blocking({
        let rec = rec.clone();
        move || rec.checkpoint()
    })
    .await;
    match final_checkpoint {
        Ok(Ok(c)) => {
            for e in &c.anchor_errors {
                tracing::error!("anchor {e}");
            }
        }
        Ok(Err(e)) => tracing::error!("final checkpoint: {e:#}"),
        Err(e) => tracing::error!("final checkpoint task: {e}"),
    }
    receiver_result.map_err(|e| e.context("the receiver failed"))?;
    Ok(0)
}

async fn wait(handle: tokio::task::JoinHandle<Result<()>>) -> Result<()> {
    handle
        .await
        .map_err(|e| anyhow::anyhow!("receiver task: {e}"))?
}

/// Signs a checkpoint every `checkpoint_every` when the ledger grew.
async fn checkpointer(rec: Arc<Recorder>, mut stopping: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(rec.config.ledger.checkpoint_every);
    tick.tick().await;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stopping.changed() => return,
        }
        let r = tokio::task::spawn_blocking({
            let rec = rec.clone();
            move || rec.checkpoint()
        })
        .await;
        match r {
            Ok(Ok(c)) => {
                for e in &c.anchor_errors {
                    tracing::error!("anchor {e}");
                }
            }
            Ok(Err(e)) => tracing::error!("checkpoint: {e:#}"),
            Err(e) => tracing::error!("checkpoint task: {e}"),
        }
    }
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
