//! Deterministic crash points for the crash-safety tests.
//!
//! In debug builds, setting `LOGHOST_CRASH_AT=<point>` makes the process abort (no destructors,
//! no buffer flushes: as close to `kill -9` as a process can do to itself) when it reaches that
//! point; `LOGHOST_CRASH_AT=after-bytes:<N>` aborts once a frame has taken N raw bytes. Release
//! builds compile this to nothing.

#[cfg(debug_assertions)]
fn target() -> Option<&'static str> {
    use std::sync::OnceLock;
    static TARGET: OnceLock<Option<String>> = OnceLock::new();
    TARGET
        .get_or_init(|| std::env::var("LOGHOST_CRASH_AT").ok())
        .as_deref()
}

/// Aborts if the crash point `name` is armed.
#[inline]
pub fn hit(name: &str) {
    #[cfg(debug_assertions)]
    if target() == Some(name) {
        eprintln!("loghost: crash point {name} reached, aborting");
        std::process::abort();
    }
    #[cfg(not(debug_assertions))]
    let _ = name;
}

/// Aborts once `written` reaches the armed `after-bytes:<N>`.
#[inline]
pub fn hit_after_bytes(written: u64) {
    #[cfg(debug_assertions)]
    if let Some(n) = target()
        .and_then(|t| t.strip_prefix("after-bytes:"))
        .and_then(|n| n.parse::<u64>().ok())
        && written >= n
    {
        eprintln!("loghost: crash point after-bytes:{n} reached, aborting");
        std::process::abort();
    }
    #[cfg(not(debug_assertions))]
    let _ = written;
}

/// True when the crash point `name` is armed (for points that must do something before dying).
#[inline]
pub fn armed(name: &str) -> bool {
    #[cfg(debug_assertions)]
    {
        target() == Some(name)
    }
    #[cfg(not(debug_assertions))]
    {
        let _ = name;
        false
    }
}

/// How long to pause at `name` when `LOGHOST_PAUSE_AT=<name>:<milliseconds>` is set (debug
/// builds only): lets a test change the remote side at an exact moment.
pub fn pause(name: &str) -> Option<std::time::Duration> {
    #[cfg(debug_assertions)]
    {
        let v = std::env::var("LOGHOST_PAUSE_AT").ok()?;
        let (point, ms) = v.split_once(':')?;
        (point == name)
            .then(|| ms.parse().ok().map(std::time::Duration::from_millis))
            .flatten()
    }
    #[cfg(not(debug_assertions))]
    {
        let _ = name;
        None
    }
}

/// A size knob a test may lower (debug builds only), e.g. `LOGHOST_MAX_FRAME_RAW=1048576` to get
/// many frames out of a small file.
pub fn size_override(var: &str, default: u64) -> u64 {
    #[cfg(debug_assertions)]
    if let Some(v) = std::env::var(var).ok().and_then(|v| v.parse().ok()) {
        return v;
    }
    let _ = var;
    default
}

/// A fixed "now" for tests that need data from past days (`LOGHOST_FAKE_NOW=<RFC 3339>`, debug
/// builds only).
pub fn fake_now() -> Option<jiff::Timestamp> {
    #[cfg(debug_assertions)]
    {
        std::env::var("LOGHOST_FAKE_NOW").ok()?.parse().ok()
    }
    #[cfg(not(debug_assertions))]
    {
        None
    }
}

/// [`pause`], only the first time the process reaches `name`.
pub fn pause_once(name: &str) -> Option<std::time::Duration> {
    use std::sync::Mutex;
    static DONE: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let d = pause(name)?;
    let mut done = DONE.lock().ok()?;
    if done.iter().any(|n| n == name) {
        return None;
    }
    done.push(name.to_string());
    Some(d)
}
