//! **Part `receive/`: the pushed input.** Syslog and RELP over TLS: connections, `tls`
//! identity, `syslog` framing, `relp` framing. It records through `ledger::writer`; it
//! must not import `pull`, `daemon`, `archive` or `cli`.
//!
//! The real-time receiver (DESIGN §6): syslog over TLS (RFC 5425) from hosts that stream their
//! logs, stored in the same tamper-evident archive as pulled logs.
//!
//! Each accepted connection gets a task: TLS handshake (within `handshake_timeout`), the client
//! certificate's identity decides the host ([`crate::receive::tls`]), then reads of up to 256 KiB are cut
//! into frames ([`crate::receive::syslog::Deframer`]); each message is classified, counted and appended in
//! stored form (one escaped line) to its host's pending buffer. A flusher commits each host's
//! buffer as one compression frame of `<host>/<date>/%syslog-tls.zst` every second, or sooner
//! when it holds 1 MiB: write, sync, ledger entry (source `syslog-tls`, the byte range of the
//! host's received stream). A host whose buffer reaches 8 MiB makes its connections wait (TCP
//! back-pressure), so a flood cannot exhaust memory; other hosts are not slowed.
//!
//! Loss window: messages are acknowledged by nothing in syslog; what was received but not yet
//! flushed (at most one second, or 1 MiB, per host) is lost if the process is killed. SIGTERM
//! drains: no new connections, open ones are read until they pause, every buffer is flushed.
//!
//! RELP (`relp_listen`, [`crate::receive::relp`] for the protocol) closes that window: a RELP
//! session's messages go to the same host buffer, and each is answered `200 OK` only once the
//! sink's `durable` position (the end of the host's stream committed: frame synced, ledger
//! entry synced) has passed the message's end. A session waiting for answers asks the flusher
//! to commit at once; what arrives while a commit is being synced shares the next one (group
//! commit): a lone message waits for no window, a flood is committed in groups as large as the
//! syncs are slow.

pub mod relp;
pub mod syslog;
pub mod tls;

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, Semaphore, watch};
use tokio_rustls::TlsAcceptor;

use self::syslog::{Deframer, Format};
use crate::config::{HostConfig, ReceiverConfig};
use crate::hash::Hash;
use crate::ledger::cursor::Probe;
use crate::ledger::writer::Recorder;
use crate::ledger::{Frame, Via};
use crate::receive::tls::Identity;

/// The ledger source of received messages.
pub const SOURCE: &str = crate::ledger::TLS_SOURCE;
/// How often pending messages are committed.
pub const FLUSH_EVERY: Duration = Duration::from_secs(1);
/// A host's pending bytes that trigger a commit before the second is up.
pub const FLUSH_BYTES: usize = 1 << 20;
/// A host's pending bytes at which its connections wait for the flusher.
const MAX_PENDING: usize = 8 << 20;
/// How long a connection may be silent while draining for shutdown.
const DRAIN_IDLE: Duration = Duration::from_millis(500);
/// RELP messages a session may have unacknowledged before it stops reading (a sender's window
/// is at most this in practice; more waits in its socket).
const MAX_UNACKED: usize = 16_384;

/// Per-host counts, as `loghost status` shows them.
#[derive(Debug, Default, Serialize, Deserialize, Clone)]
pub struct HostCounts {
    pub messages: u64,
    pub bytes: u64,
    pub rfc5424: u64,
    pub rfc3164: u64,
    pub unknown: u64,
    /// Messages whose HOSTNAME names another host (stored under the certificate's host).
    pub hostname_mismatch: u64,
    /// Frames over `max_message_size`, skipped.
    pub oversized: u64,
    pub connections: u64,
}

/// Receiver-wide counts.
#[derive(Debug, Default, Serialize, Deserialize, Clone)]
pub struct Counts {
    pub accepted: u64,
    pub refused_identity: u64,
    pub handshake_failed: u64,
    pub over_limit: u64,
    pub framing_errors: u64,
    pub hosts: std::collections::BTreeMap<String, HostCounts>,
}

#[derive(Default)]
struct Atomics {
    messages: AtomicU64,
    bytes: AtomicU64,
    rfc5424: AtomicU64,
    rfc3164: AtomicU64,
    unknown: AtomicU64,
    hostname_mismatch: AtomicU64,
    oversized: AtomicU64,
    connections: AtomicU64,
}

/// One host's messages on their way to the store.
struct Sink {
    host: HostConfig,
    tls_name: String,
    pending: Mutex<Vec<u8>>,
    /// Where the next committed byte starts in the host's received stream.
    next: AtomicU64,
    /// Where the next appended byte starts in that stream (`next` plus what is pending);
    /// changed only under the `pending` lock.
    appended: AtomicU64,
    /// `next`, for RELP sessions waiting until their messages are committed.
    durable: watch::Sender<u64>,
    /// Woken after every flush, for connections waiting on a full buffer.
    flushed: Notify,
    counts: Atomics,
    /// Connections open for this host now.
    open: std::sync::atomic::AtomicUsize,
}

struct Shared {
    rec: Arc<Recorder>,
    metrics: Arc<crate::metrics::Metrics>,
    cfg: ReceiverConfig,
    sinks: HashMap<String, Arc<Sink>>,
    /// Wakes the flusher when a buffer passed [`FLUSH_BYTES`].
    wake: Notify,
    /// Makes the flusher commit every buffer now (a client closed, RELP messages wait). Asked
    /// again while a commit runs, it commits once more right after it: a group commit.
    flush_now: Notify,
    accepted: AtomicU64,
    refused_identity: AtomicU64,
    handshake_failed: AtomicU64,
    over_limit: AtomicU64,
    framing_errors: AtomicU64,
    /// Connections open per peer address (from accept, before the handshake).
    per_address: std::sync::Mutex<HashMap<std::net::IpAddr, usize>>,
}

/// One connection's place in the per-address count, given back when dropped.
struct AddressSlot {
    shared: Arc<Shared>,
    ip: std::net::IpAddr,
}

impl AddressSlot {
    fn take(shared: &Arc<Shared>, ip: std::net::IpAddr) -> Option<AddressSlot> {
        let mut map = shared.per_address.lock().ok()?;
        let n = map.entry(ip).or_insert(0);
        if *n >= shared.cfg.max_connections_per_address {
            return None;
        }
        *n += 1;
        Some(AddressSlot {
            shared: shared.clone(),
            ip,
        })
    }
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        if let Ok(mut map) = self.shared.per_address.lock()
            && let Some(n) = map.get_mut(&self.ip)
        {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.ip);
            }
        }
    }
}

/// One connection's place in its host's count.
struct HostSlot(Arc<Sink>);

impl HostSlot {
    fn take(sink: &Arc<Sink>, max: usize) -> Option<HostSlot> {
        let prev = sink.open.fetch_add(1, Ordering::AcqRel);
        if prev >= max {
            sink.open.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        Some(HostSlot(sink.clone()))
    }
}

impl Drop for HostSlot {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Shared {
    fn counts(&self) -> Counts {
        let mut c = Counts {
            accepted: self.accepted.load(Ordering::Relaxed),
            refused_identity: self.refused_identity.load(Ordering::Relaxed),
            handshake_failed: self.handshake_failed.load(Ordering::Relaxed),
            over_limit: self.over_limit.load(Ordering::Relaxed),
            framing_errors: self.framing_errors.load(Ordering::Relaxed),
            hosts: Default::default(),
        };
        for (name, s) in &self.sinks {
            let a = &s.counts;
            let l = |x: &AtomicU64| x.load(Ordering::Relaxed);
            c.hosts.insert(
                name.clone(),
                HostCounts {
                    messages: l(&a.messages),
                    bytes: l(&a.bytes),
                    rfc5424: l(&a.rfc5424),
                    rfc3164: l(&a.rfc3164),
                    unknown: l(&a.unknown),
                    hostname_mismatch: l(&a.hostname_mismatch),
                    oversized: l(&a.oversized),
                    connections: l(&a.connections),
                },
            );
        }
        c
    }

    fn save_counts(&self) {
        let path = self
            .rec
            .store
            .path(crate::store::layout::STATE_DIR)
            .join("receiver.json");
        if let Ok(data) = serde_json::to_vec_pretty(&self.counts())
            && let Err(e) = crate::store::write_atomic(&path, &data)
        {
            tracing::warn!("cannot save receiver counts to {}: {e}", path.display());
        }
    }
}

/// The receiver counts saved by the last running daemon, for `loghost status`.
pub fn load_counts(store: &crate::store::Store) -> Option<Counts> {
    let path = store
        .path(crate::store::layout::STATE_DIR)
        .join("receiver.json");
    serde_json::from_slice(&std::fs::read(path).ok()?).ok()
}

/// Serves the receiver until `shutdown` turns true, then drains and flushes.
pub async fn serve(
    rec: Arc<Recorder>,
    mut shutdown: watch::Receiver<bool>,
    metrics: Arc<crate::metrics::Metrics>,
) -> Result<()> {
    let Some(cfg) = rec.config.receiver.clone() else {
        return Ok(());
    };
    let tls = TlsAcceptor::from(crate::receive::tls::server_config(&cfg)?);
    let mut sinks = HashMap::new();
    for h in &rec.config.hosts {
        if let Some(t) = &h.tls_name {
            let next = rec.cursor(&h.name, SOURCE)?.map_or(0, |c| c.end);
            sinks.insert(
                h.name.clone(),
                Arc::new(Sink {
                    host: h.clone(),
                    tls_name: t.clone(),
                    pending: Mutex::new(Vec::new()),
                    next: AtomicU64::new(next),
                    appended: AtomicU64::new(next),
                    durable: watch::channel(next).0,
                    flushed: Notify::new(),
                    counts: Atomics::default(),
                    open: std::sync::atomic::AtomicUsize::new(0),
                }),
            );
        }
    }
    let listener = listen(cfg.listen, "listen", "syslog").await?;
    let relp_listener = listen(cfg.relp_listen, "relp_listen", "RELP").await?;
    let shared = Arc::new(Shared {
        rec,
        metrics,
        cfg,
        sinks,
        wake: Notify::new(),
        flush_now: Notify::new(),
        accepted: AtomicU64::new(0),
        refused_identity: AtomicU64::new(0),
        handshake_failed: AtomicU64::new(0),
        over_limit: AtomicU64::new(0),
        framing_errors: AtomicU64::new(0),
        per_address: std::sync::Mutex::new(HashMap::new()),
    });
    // The flusher outlives the connections: draining ones may wait on it.
    let (stop_flusher, flusher_stop) = watch::channel(false);
    let flusher = tokio::spawn(flusher(shared.clone(), flusher_stop));
    let permits = Arc::new(Semaphore::new(shared.cfg.max_connections));
    let mut connections = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            accepted = accept(listener.as_ref(), relp_listener.as_ref()) => {
                let Ok((stream, peer, relp)) = accepted else { continue };
                let Ok(permit) = permits.clone().try_acquire_owned() else {
                    shared.over_limit.fetch_add(1, Ordering::Relaxed);
            shared.metrics.receiver_refused_limit.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!("refused {peer}: already {} connections (max_connections)", shared.cfg.max_connections);
                    drop(stream);
                    continue;
                };
                let Some(slot) = AddressSlot::take(&shared, peer.ip()) else {
                    shared.over_limit.fetch_add(1, Ordering::Relaxed);
            shared.metrics.receiver_refused_limit.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(
                        "refused {peer}: already {} connections from {} \
                         (max_connections_per_address)",
                        shared.cfg.max_connections_per_address,
                        peer.ip()
                    );
                    drop(stream);
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let shared = shared.clone();
                let tls = tls.clone();
                let shutdown = shutdown.clone();
                connections.spawn(async move {
                    connection(stream, peer, tls, &shared, shutdown, relp).await;
                    drop(slot);
                    drop(permit);
                });
                // Reap finished connections as we go.
                while connections.try_join_next().is_some() {}
            }
            _ = shutdown.changed() => break,
        }
    }
    drop(listener);
    drop(relp_listener);
    // Connections drain (each stops by itself at drain_timeout); a handshake or a buffer wait
    // that outlives that by a margin is cut.
    let deadline =
        shared.cfg.drain_timeout + shared.cfg.handshake_timeout.min(Duration::from_secs(5));
    if tokio::time::timeout(deadline, async {
        while connections.join_next().await.is_some() {}
    })
    .await
    .is_err()
    {
        tracing::warn!(
            "{} connections still open {deadline:?} after SIGTERM: cut",
            connections.len()
        );
        connections.abort_all();
        while connections.join_next().await.is_some() {}
    }
    let _ = stop_flusher.send(true);
    let _ = flusher.await;
    flush_all(&shared, 0).await;
    shared.save_counts();
    Ok(())
}

async fn flusher(shared: Arc<Shared>, mut shutdown: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(FLUSH_EVERY);
    let mut last_save = std::time::Instant::now();
    loop {
        tokio::select! {
            _ = tick.tick() => flush_all(&shared, 0).await,
            _ = shared.wake.notified() => flush_all(&shared, FLUSH_BYTES).await,
            _ = shared.flush_now.notified() => flush_all(&shared, 0).await,
            _ = shutdown.changed() => return,
        }
        if last_save.elapsed() > Duration::from_secs(5) {
            shared.save_counts();
            last_save = std::time::Instant::now();
        }
    }
}

/// Commits every host buffer holding more than `min` bytes (and something).
async fn flush_all(shared: &Arc<Shared>, min: usize) {
    for sink in shared.sinks.values() {
        let data = {
            let Ok(mut p) = sink.pending.lock() else {
                continue;
            };
            if p.is_empty() || p.len() < min {
                continue;
            }
            // Leave a buffer of the same size behind: no regrowing under load.
            let cap = p.capacity().min(MAX_PENDING + FLUSH_BYTES);
            std::mem::replace(&mut *p, Vec::with_capacity(cap))
        };
        let rec = shared.rec.clone();
        let s = sink.clone();
        let result = tokio::task::spawn_blocking(move || {
            let start = s.next.load(Ordering::Relaxed);
            let r = commit(&rec, &s.host, start, &data);
            (r, data)
        })
        .await;
        match result {
            Ok((Ok(len), _)) => {
                let next = sink.next.fetch_add(len, Ordering::Relaxed) + len;
                sink.durable.send_replace(next);
            }
            Ok((Err(e), data)) => {
                tracing::error!(
                    "cannot store received messages of {} ({e:#}); kept in memory, retried",
                    sink.host.name
                );
                // Put them back in front: nothing received is dropped on a store error.
                if let Ok(mut p) = sink.pending.lock() {
                    let newer = std::mem::take(&mut *p);
                    *p = data;
                    p.extend_from_slice(&newer);
                }
            }
            Err(e) => tracing::error!("flush task failed: {e}"),
        }
        sink.flushed.notify_waiters();
    }
}

/// Writes `data` as one frame of the host's received file and commits it. Returns its length.
fn commit(rec: &Recorder, host: &HostConfig, start: u64, data: &[u8]) -> Result<u64> {
    let time = rec.ledger()?.now();
    let rel =
        crate::store::layout::received_file(&host.name, time, host.hourly, rec.config.compression);
    let empty = Probe {
        len: 0,
        sha256: Hash::of(b""),
    };
    let frame = rec.commit_frame(&rel.clone(), data, |frame| Frame {
        seq: 0,
        time: String::new(),
        host: host.name.clone(),
        source: SOURCE.to_string(),
        from: None,
        via: Via::Tls,
        start,
        end: start + frame.raw_len,
        head: empty,
        tail: empty,
        file: rel,
        offset: frame.offset,
        length: frame.length,
        sha256: frame.sha256,
        raw_sha256: frame.raw_sha256,
        journal: None,
    })?;
    Ok(frame.raw_len)
}

async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    tls: TlsAcceptor,
    shared: &Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
    relp: bool,
) {
    let cfg = &shared.cfg;
    let mut stream = match tokio::time::timeout(cfg.handshake_timeout, tls.accept(stream)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            shared.handshake_failed.fetch_add(1, Ordering::Relaxed);
            shared
                .metrics
                .receiver_handshake_failures
                .fetch_add(1, Ordering::Relaxed);
            tracing::warn!("TLS handshake with {peer} failed: {e}");
            return;
        }
        Err(_) => {
            shared.handshake_failed.fetch_add(1, Ordering::Relaxed);
            shared
                .metrics
                .receiver_handshake_failures
                .fetch_add(1, Ordering::Relaxed);
            tracing::warn!("TLS handshake with {peer} timed out");
            return;
        }
    };
    let identity = stream
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .map(|der| Identity::of(der.as_ref()));
    let identity = match identity {
        Some(Ok(id)) => id,
        Some(Err(e)) => {
            shared.refused_identity.fetch_add(1, Ordering::Relaxed);
            shared
                .metrics
                .receiver_refused_identity
                .fetch_add(1, Ordering::Relaxed);
            tracing::warn!("refused {peer}: unusable client certificate: {e:#}");
            return;
        }
        None => {
            shared.refused_identity.fetch_add(1, Ordering::Relaxed);
            shared
                .metrics
                .receiver_refused_identity
                .fetch_add(1, Ordering::Relaxed);
            tracing::warn!("refused {peer}: no client certificate");
            return;
        }
    };
    let host = match identity.host(&shared.rec.config) {
        Ok(h) => h,
        Err(why) => {
            shared.refused_identity.fetch_add(1, Ordering::Relaxed);
            shared
                .metrics
                .receiver_refused_identity
                .fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                "refused {peer}: its certificate ({}, sha256 {}) {why}",
                identity.shown(),
                identity.fingerprint
            );
            return;
        }
    };
    let Some(sink) = shared.sinks.get(&host.name).cloned() else {
        return;
    };
    let Some(_slot) = HostSlot::take(&sink, cfg.max_connections_per_host) else {
        shared.over_limit.fetch_add(1, Ordering::Relaxed);
        shared
            .metrics
            .receiver_refused_limit
            .fetch_add(1, Ordering::Relaxed);
        tracing::warn!(
            "refused {peer} ({}): already {} connections for this host \
             (max_connections_per_host)",
            host.name,
            cfg.max_connections_per_host
        );
        return;
    };
    shared.accepted.fetch_add(1, Ordering::Relaxed);
    sink.counts.connections.fetch_add(1, Ordering::Relaxed);
    shared
        .metrics
        .receiver_connections
        .fetch_add(1, Ordering::Relaxed);
    shared.metrics.receiver_open.fetch_add(1, Ordering::Relaxed);
    tracing::debug!("{peer} is {} ({})", host.name, identity.shown());
    if relp {
        serve_relp(stream, peer, shared, &sink, &mut shutdown).await;
    } else {
        serve_connection(&mut stream, peer, shared, &sink, &mut shutdown).await;
    }
    shared.metrics.receiver_open.fetch_sub(1, Ordering::Relaxed);
    // The client is gone: commit what it sent now rather than at the next tick.
    shared.flush_now.notify_one();
}

/// Reads an identified client's messages into its host's buffer until it closes, idles out or
/// breaks the framing.
async fn serve_connection(
    stream: &mut tokio_rustls::server::TlsStream<TcpStream>,
    peer: SocketAddr,
    shared: &Arc<Shared>,
    sink: &Arc<Sink>,
    shutdown: &mut watch::Receiver<bool>,
) {
    let cfg = &shared.cfg;
    let host = &sink.host;

    let max = cfg.max_message_size;
    let mut buf = vec![0u8; (256 * 1024).max(2 * max + 64)];
    let mut filled = 0;
    let mut deframer = Deframer::new(max);
    let mut idle = cfg.idle_timeout;
    let mut draining = *shutdown.borrow();
    // Draining ends at drain_timeout even for a client that never pauses.
    let mut drain_end = None;
    if draining {
        idle = DRAIN_IDLE;
        drain_end = Some(tokio::time::Instant::now() + cfg.drain_timeout);
    }
    loop {
        if let Some(end) = drain_end {
            let left = end.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                tracing::info!(
                    "{peer} ({}): still sending {:?} after SIGTERM (drain_timeout): closing",
                    host.name,
                    cfg.drain_timeout
                );
                break;
            }
            idle = idle.min(left);
        }
        let n = tokio::select! {
            r = tokio::time::timeout(idle, stream.read(&mut buf[filled..])) => match r {
                Ok(Ok(0)) => break,
                Ok(Ok(n)) => n,
                Ok(Err(e)) => {
                    tracing::debug!("{peer} ({}): {e}", host.name);
                    break;
                }
                Err(_) => {
                    if !draining {
                        tracing::info!("{peer} ({}): idle for {idle:?}, closing", host.name);
                    }
                    break;
                }
            },
            _ = shutdown.changed(), if !draining => {
                draining = true;
                idle = DRAIN_IDLE;
                drain_end = Some(tokio::time::Instant::now() + cfg.drain_timeout);
                continue;
            }
        };
        filled += n;
        let mut tally = Tally::default();
        // Parse straight into the host's buffer (one copy), waiting while it is full.
        let Some(mut pending) = lock_with_room(shared, sink).await else {
            break;
        };
        let before = pending.len();
        let fed = deframer.feed(&buf[..filled], &mut |frame| match frame {
            syslog::Frame::Message(msg) => {
                tally.message(sink, msg);
                syslog::escape_line(msg, &mut pending);
            }
            syslog::Frame::Oversized { .. } => tally.oversized += 1,
        });
        sink.appended
            .fetch_add((pending.len() - before) as u64, Ordering::Relaxed);
        let passed = before < FLUSH_BYTES && pending.len() >= FLUSH_BYTES;
        drop(pending);
        if passed {
            shared.wake.notify_one();
        }
        tally.add_to(&sink.counts);
        shared
            .metrics
            .receiver_messages
            .fetch_add(tally.messages, Ordering::Relaxed);
        // A pulled host is stale by its pulls (as `loghost status` says), whatever it sends.
        if tally.messages > 0 && !host.is_pulled() {
            shared.metrics.seen(&host.name);
        }
        let consumed = match fed {
            Ok(c) => c,
            Err(e) => {
                shared.framing_errors.fetch_add(1, Ordering::Relaxed);
                tracing::warn!("{peer} ({}): {e}; closing the connection", host.name);
                break;
            }
        };
        buf.copy_within(consumed..filled, 0);
        filled -= consumed;
    }
}

/// Why a RELP session ends once its answers are out.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Closing {
    /// The client sent `close`.
    Close,
    /// SIGTERM: `serverclose` after the last answer.
    Shutdown,
}

/// A RELP session of an identified client (RELP over TLS from the first byte, as librelp
/// does). Its `syslog` messages go to the host's buffer like syslog over TLS; each is answered
/// `200 OK`, in transaction order, only once the frame holding it and that frame's ledger entry
/// are synced (the sink's `durable` position passed the message's end). A session that breaks
/// the protocol (garbage, an oversized frame, a transaction number out of order, a command
/// before `open`) is closed with a log line: what it sent and was not answered, the sender
/// sends again. SIGTERM: no more reading, the answers for what was read once it is committed,
/// `serverclose`.
async fn serve_relp(
    stream: tokio_rustls::server::TlsStream<TcpStream>,
    peer: SocketAddr,
    shared: &Arc<Shared>,
    sink: &Arc<Sink>,
    shutdown: &mut watch::Receiver<bool>,
) {
    let cfg = &shared.cfg;
    let name = &sink.host.name;
    let (mut rd, mut wr) = tokio::io::split(stream);
    // A message of max_message_size, and the LF some senders end it with.
    let mut deframer = relp::Deframer::new(cfg.max_message_size + 1);
    let mut buf = vec![0u8; 256 * 1024];
    let mut durable = sink.durable.subscribe();
    // Answers owed, in transaction order: (txnr, stream position that must be durable, answer).
    let mut owed: VecDeque<Owed> = VecDeque::new();
    let mut last: Option<u64> = None;
    let mut closing: Option<Closing> = None;
    let mut drain_end: Option<tokio::time::Instant> = None;
    let mut out = Vec::new();
    loop {
        // Answer what is durable, in order.
        let done = *durable.borrow_and_update();
        while owed.front().is_some_and(|o| o.after <= done) {
            if let Some(o) = owed.pop_front() {
                relp::rsp(o.txnr, &o.answer, &mut out);
            }
        }
        if closing == Some(Closing::Shutdown) && owed.is_empty() {
            out.extend_from_slice(relp::SERVERCLOSE);
        }
        if !out.is_empty() {
            match tokio::time::timeout(cfg.idle_timeout, wr.write_all(&out)).await {
                Ok(Ok(())) => out.clear(),
                Ok(Err(e)) => {
                    tracing::debug!("{peer} ({name}): RELP: {e}");
                    return;
                }
                Err(_) => {
                    tracing::info!("{peer} ({name}): RELP: not reading our answers; closing");
                    return;
                }
            }
        }
        if closing.is_some() && owed.is_empty() {
            let _ = wr.shutdown().await;
            return;
        }
        if let Some(end) = drain_end
            && tokio::time::Instant::now() >= end
        {
            tracing::warn!(
                "{peer} ({name}): RELP: {} messages not committed {:?} after SIGTERM \
                 (drain_timeout); closing without their answers (the sender sends them again)",
                owed.len(),
                cfg.drain_timeout
            );
            return;
        }
        let reading = closing.is_none() && owed.len() < MAX_UNACKED;
        let room = deframer.room().clamp(1, buf.len());
        tokio::select! {
            r = tokio::time::timeout(cfg.idle_timeout, rd.read(&mut buf[..room])), if reading => {
                let n = match r {
                    Ok(Ok(0)) => {
                        tracing::debug!("{peer} ({name}): RELP: closed by the client");
                        return;
                    }
                    Ok(Ok(n)) => n,
                    Ok(Err(e)) => {
                        tracing::debug!("{peer} ({name}): RELP: {e}");
                        return;
                    }
                    Err(_) => {
                        tracing::info!(
                            "{peer} ({name}): RELP: idle for {:?}, closing",
                            cfg.idle_timeout
                        );
                        return;
                    }
                };
                deframer.push(&buf[..n]);
                match relp_frames(&mut deframer, shared, sink, &mut owed, &mut last).await {
                    Ok(()) => {}
                    Err(Stop::Close) => closing = Some(Closing::Close),
                    Err(Stop::Broken(why)) => {
                        shared.framing_errors.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!("{peer} ({name}): RELP: {why}; closing the session");
                        // Nothing more is answered: the sender sends again what it did not see
                        // answered (whole messages read before are stored, none half).
                        return;
                    }
                }
                if owed.back().is_some_and(|o| o.after > done) {
                    shared.flush_now.notify_one();
                }
            }
            changed = durable.changed() => {
                if changed.is_err() {
                    return;
                }
            }
            _ = tokio::time::sleep_until(drain_end.unwrap_or_else(tokio::time::Instant::now)),
                if drain_end.is_some() => {}
            _ = shutdown.changed(), if drain_end.is_none() => {
                closing = Some(Closing::Shutdown);
                drain_end = Some(tokio::time::Instant::now() + cfg.drain_timeout);
                shared.flush_now.notify_one();
            }
        }
        if *shutdown.borrow() && drain_end.is_none() {
            closing = Some(Closing::Shutdown);
            drain_end = Some(tokio::time::Instant::now() + cfg.drain_timeout);
            shared.flush_now.notify_one();
        }
    }
}

/// An answer a RELP session owes, once the stream position `after` is durable.
struct Owed {
    txnr: u64,
    after: u64,
    answer: std::borrow::Cow<'static, [u8]>,
}

impl Owed {
    fn now(txnr: u64, answer: impl Into<std::borrow::Cow<'static, [u8]>>) -> Owed {
        Owed {
            txnr,
            after: 0,
            answer: answer.into(),
        }
    }
}

/// Why a RELP session stops reading.
enum Stop {
    /// The client sent `close`: answer it after the rest.
    Close,
    /// The client broke the protocol.
    Broken(String),
}

/// Handles the whole frames in `deframer`: `open`, `syslog` (stored; its answer owed once it
/// is durable), `close`; each answer is queued in transaction order.
async fn relp_frames(
    deframer: &mut relp::Deframer,
    shared: &Arc<Shared>,
    sink: &Arc<Sink>,
    owed: &mut VecDeque<Owed>,
    last: &mut Option<u64>,
) -> Result<(), Stop> {
    let mut tally = Tally::default();
    let result = loop {
        let frame = match deframer.next_frame() {
            Ok(Some(f)) => f,
            Ok(None) => break Ok(()),
            Err(e) => break Err(Stop::Broken(e.to_string())),
        };
        let expected = last.map_or(1, relp::next_txnr);
        if frame.txnr != expected {
            break Err(Stop::Broken(format!(
                "transaction number {} where {expected} was due",
                frame.txnr
            )));
        }
        *last = Some(frame.txnr);
        match frame.command.as_str() {
            "open" if frame.txnr == 1 => {
                let offers = relp::offers(&frame.data);
                let syslog = offers
                    .iter()
                    .any(|(n, v)| n == "commands" && v.split(',').any(|c| c == "syslog"));
                if !syslog {
                    break Err(Stop::Broken(
                        "its open does not offer the syslog command".into(),
                    ));
                }
                owed.push_back(Owed::now(frame.txnr, relp::open_answer()));
            }
            "open" => break Err(Stop::Broken("a second open".into())),
            _ if frame.txnr == 1 => {
                break Err(Stop::Broken(format!(
                    "{:?} before open",
                    crate::sanitize::Shown(&frame.command).to_string()
                )));
            }
            "syslog" => {
                let msg = frame.data.strip_suffix(b"\n").unwrap_or(&frame.data);
                let Some(mut pending) = lock_with_room(shared, sink).await else {
                    break Err(Stop::Broken("the host's buffer is unusable".into()));
                };
                let before = pending.len();
                tally.message(sink, msg);
                syslog::escape_line(msg, &mut pending);
                let added = (pending.len() - before) as u64;
                let ticket = sink.appended.fetch_add(added, Ordering::Relaxed) + added;
                let passed = before < FLUSH_BYTES && pending.len() >= FLUSH_BYTES;
                drop(pending);
                if passed {
                    shared.wake.notify_one();
                }
                owed.push_back(Owed {
                    txnr: frame.txnr,
                    after: ticket,
                    answer: (&b"200 OK"[..]).into(),
                });
            }
            "close" => {
                owed.push_back(Owed::now(frame.txnr, &b""[..]));
                break Err(Stop::Close);
            }
            _ => owed.push_back(Owed::now(frame.txnr, &b"500 command not supported"[..])),
        }
    };
    tally.add_to(&sink.counts);
    shared
        .metrics
        .receiver_messages
        .fetch_add(tally.messages, Ordering::Relaxed);
    if tally.messages > 0 && !sink.host.is_pulled() {
        shared.metrics.seen(&sink.host.name);
    }
    result
}

/// Counts for one read, added to the host's atomics at once.
#[derive(Default)]
struct Tally {
    messages: u64,
    bytes: u64,
    rfc5424: u64,
    rfc3164: u64,
    unknown: u64,
    mismatch: u64,
    oversized: u64,
}

impl Tally {
    /// Counts one received message: its format, and a HOSTNAME naming another host.
    fn message(&mut self, sink: &Sink, msg: &[u8]) {
        self.messages += 1;
        self.bytes += msg.len() as u64;
        let (format, hostname) = syslog::classify(msg);
        match format {
            Format::Rfc5424 => self.rfc5424 += 1,
            Format::Rfc3164 => self.rfc3164 += 1,
            Format::Unknown => self.unknown += 1,
        }
        if hostname.is_some_and(|h| syslog::hostname_mismatch(h, &sink.host.name, &sink.tls_name)) {
            self.mismatch += 1;
        }
    }

    fn add_to(&self, a: &Atomics) {
        let add = |x: &AtomicU64, v: u64| {
            if v > 0 {
                x.fetch_add(v, Ordering::Relaxed);
            }
        };
        add(&a.messages, self.messages);
        add(&a.bytes, self.bytes);
        add(&a.rfc5424, self.rfc5424);
        add(&a.rfc3164, self.rfc3164);
        add(&a.unknown, self.unknown);
        add(&a.hostname_mismatch, self.mismatch);
        add(&a.oversized, self.oversized);
    }
}

/// Locks a host's buffer once it has room, waiting for the flusher while it is full (TCP
/// back-pressure on the client). `None` if the lock is poisoned.
async fn lock_with_room<'a>(
    shared: &Shared,
    sink: &'a Sink,
) -> Option<std::sync::MutexGuard<'a, Vec<u8>>> {
    loop {
        let flushed = sink.flushed.notified();
        {
            let p = sink.pending.lock().ok()?;
            if p.len() < MAX_PENDING {
                return Some(p);
            }
        }
        shared.wake.notify_one();
        flushed.await;
    }
}

/// Listens on `at` when it is configured (`key` of `[receiver]`, for `what` over TLS).
async fn listen(at: Option<SocketAddr>, key: &str, what: &str) -> Result<Option<TcpListener>> {
    let Some(at) = at else {
        return Ok(None);
    };
    let l = TcpListener::bind(at)
        .await
        .with_context(|| format!("cannot listen on {at} ([receiver] {key})"))?;
    tracing::info!("receiving {what} over TLS on {at}");
    Ok(Some(l))
}

/// The next connection on either listener (`true`: it came to `relp_listen`); a listener that
/// is not configured never yields one.
async fn accept(
    tls: Option<&TcpListener>,
    relp: Option<&TcpListener>,
) -> std::io::Result<(TcpStream, SocketAddr, bool)> {
    tokio::select! {
        r = accept_on(tls) => r.map(|(s, p)| (s, p, false)),
        r = accept_on(relp) => r.map(|(s, p)| (s, p, true)),
    }
}

async fn accept_on(l: Option<&TcpListener>) -> std::io::Result<(TcpStream, SocketAddr)> {
    match l {
        Some(l) => l.accept().await,
        None => std::future::pending().await,
    }
}
