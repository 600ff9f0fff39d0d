//! `state/rounds.json`: what the last pull rounds left for `loghost status` (the last attempt,
//! success and error per host, the last checkpoint's failing anchors). A cache: losing it loses
//! only this summary; the ledger holds everything that matters. Written by the pull round and the
//! daemon's checkpoint timer, read by `status`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::store::Store;
use crate::store::layout;

/// What the last rounds left for `status` (a cache: losing it loses only this summary).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Rounds {
    pub last_round: Option<String>,
    pub hosts: BTreeMap<String, HostRound>,
    /// Why the last round could not sign a checkpoint, if it could not.
    pub checkpoint_error: Option<String>,
    /// Anchors that failed in the last round.
    pub anchor_errors: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct HostRound {
    pub last_attempt: Option<String>,
    pub last_success: Option<String>,
    pub last_error: Option<String>,
}

fn rounds_path(store: &Store) -> std::path::PathBuf {
    store.path(layout::STATE_DIR).join("rounds.json")
}

/// Loads the rounds summary (empty when missing or unreadable).
pub fn load_rounds(store: &Store) -> Rounds {
    std::fs::read(rounds_path(store))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

/// Serialises read-modify-write of the summary: the daemon's rounds for different hosts end
/// concurrently.
static SAVING: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// One host's outcome in a round: `error` is `None` when everything was collected.
pub struct HostOutcome {
    pub host: String,
    pub error: Option<String>,
}

/// Folds a round's outcome into the summary and saves it. `checkpoint`: the failing anchors of
/// the checkpoint signed after the round, or why none could be signed.
pub fn save_round(
    store: &Store,
    time: &str,
    hosts: &[HostOutcome],
    checkpoint: Option<Result<&[String], &str>>,
) -> std::io::Result<()> {
    let _saving = SAVING
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let mut rounds = load_rounds(store);
    rounds.last_round = Some(time.to_string());
    for h in hosts {
        let entry = rounds.hosts.entry(h.host.clone()).or_default();
        entry.last_attempt = Some(time.to_string());
        match &h.error {
            None => {
                entry.last_success = Some(time.to_string());
                entry.last_error = None;
            }
            Some(e) => entry.last_error = Some(e.clone()),
        }
    }
    if let Some(c) = checkpoint {
        note_checkpoint(&mut rounds, c);
    }
    save_rounds(store, &rounds)
}

/// Records the outcome of a checkpoint (after a round, or the daemon's timer).
pub fn save_checkpoint(store: &Store, result: Result<&[String], &str>) -> std::io::Result<()> {
    let _saving = SAVING
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let mut rounds = load_rounds(store);
    note_checkpoint(&mut rounds, result);
    save_rounds(store, &rounds)
}

fn note_checkpoint(rounds: &mut Rounds, result: Result<&[String], &str>) {
    match result {
        Ok(anchor_errors) => {
            rounds.checkpoint_error = None;
            rounds.anchor_errors = anchor_errors.to_vec();
        }
        Err(e) => rounds.checkpoint_error = Some(e.to_string()),
    }
}

fn save_rounds(store: &Store, rounds: &Rounds) -> std::io::Result<()> {
    let data = serde_json::to_vec_pretty(rounds).map_err(std::io::Error::other)?;
    crate::store::write_atomic(&rounds_path(store), &data)
}
