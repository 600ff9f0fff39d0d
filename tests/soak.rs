//! Rotation under load: a writer appends numbered lines at more than 10,000 lines a second, the
//! real logrotate rotates the log every second, and `loghost pull` runs in a loop, starting only
//! after the first rotation (so the first generation is history). The oracle is exact: every
//! line the server still holds is in the archive exactly once, no line twice, no alarm, and
//! `verify` passes. One test per logrotate mode; `LOGHOST_SOAK_SECS` (default 6) sets how long
//! the writer runs, `scripts/soak.sh` repeats them.

mod common;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::*;

/// How the writer writes.
#[derive(Clone, Copy, PartialEq)]
enum Writer {
    /// Reopens the log (creating it) for every batch, as a daemon does after its HUP.
    Reopening,
    /// Keeps one descriptor open for the whole run (what copytruncate is for).
    Holding,
}

const BATCH: u64 = 250;
/// A batch every 20 ms: 12,500 lines a second.
const BATCH_EVERY: Duration = Duration::from_millis(20);

fn line(i: u64) -> String {
    format!(
        "{i:09} 2026-12-02T04:{:02}:{:02} web1 app[{}]: soak line for user{} from 10.0.{}.{}\n",
        (i / 60) % 60,
        i % 60,
        1000 + i % 97,
        i % 13,
        i % 251,
        (i * 7) % 251
    )
}

/// What `loghost tail -f` showed over the run.
struct TailOutcome {
    lines: usize,
    stored: HashMap<u64, u32>,
    torn: usize,
    /// Lines after it had shown as many as the archive holds.
    more: usize,
    running: bool,
    errors: Vec<String>,
}

/// The numbered lines among `lines` (how often each) and how many others (torn or foreign).
fn numbered<'a>(lines: impl Iterator<Item = &'a [u8]>) -> (HashMap<u64, u32>, usize) {
    let mut stored = HashMap::new();
    let mut torn = 0;
    for l in lines {
        match std::str::from_utf8(&l[..9.min(l.len())])
            .ok()
            .and_then(|n| n.parse::<u64>().ok())
        {
            Some(n) if line(n).as_bytes()[..line(n).len() - 1] == *l => {
                *stored.entry(n).or_insert(0) += 1
            }
            _ => torn += 1,
        }
    }
    (stored, torn)
}

struct Outcome {
    written: u64,
    stored: HashMap<u64, u32>,
    torn: usize,
    tail: TailOutcome,
    /// `loghost grep -c` runs during the pulls, and those that failed or counted fewer lines
    /// than the one before.
    greps: u64,
    grep_errors: Vec<String>,
    on_server: Vec<u64>,
    events: Vec<serde_json::Value>,
    pulls: usize,
    failed_pulls: Vec<String>,
    rotations: u64,
    verify: std::process::Output,
    /// The run's directory, kept when `LOGHOST_SOAK_KEEP` is set (scripts/soak.sh sets it and
    /// removes the directories of exact runs).
    kept: Option<PathBuf>,
}

fn soak(options: &str, writer: Writer) -> Outcome {
    let secs: u64 = std::env::var("LOGHOST_SOAK_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(6);
    let env = Env::new();
    let log = env.rpath("var/log/app.log");
    std::fs::write(&log, b"").expect("create log");
    let sshd = env.init_and_start_sshd("");
    env.write_config(&[host("web1", &sshd.address(), &[&log])], "");
    env.trust("web1", &sshd);
    let conf = env.dir.path().join("logrotate.conf");
    std::fs::write(
        &conf,
        format!("{log} {{\n    rotate 1000\n    missingok\n{options}\n}}\n"),
    )
    .expect("write logrotate.conf");
    let state = env.dir.path().join("logrotate.state");

    let stop_writer = Arc::new(AtomicBool::new(false));
    let stop_rotating = Arc::new(AtomicBool::new(false));
    let next = Arc::new(AtomicU64::new(0));
    let rotations = Arc::new(AtomicU64::new(0));

    let writer_thread = {
        let (stop, next, log) = (stop_writer.clone(), next.clone(), PathBuf::from(&log));
        std::thread::spawn(move || {
            let open = || {
                std::fs::OpenOptions::new()
                    .append(true)
                    .create(true)
                    .open(&log)
                    .expect("open the log for writing")
            };
            let mut held = (writer == Writer::Holding).then(open);
            let started = Instant::now();
            let mut batches = 0u32;
            while !stop.load(Ordering::SeqCst) {
                let first = next.load(Ordering::SeqCst);
                let mut data = String::new();
                for i in first..first + BATCH {
                    data.push_str(&line(i));
                }
                match &mut held {
                    Some(f) => f.write_all(data.as_bytes()),
                    None => open().write_all(data.as_bytes()),
                }
                .expect("write the log");
                next.store(first + BATCH, Ordering::SeqCst);
                batches += 1;
                if let Some(wait) = (BATCH_EVERY * batches).checked_sub(started.elapsed()) {
                    std::thread::sleep(wait);
                }
            }
        })
    };
    let rotate_thread = {
        let (stop, rotations) = (stop_rotating.clone(), rotations.clone());
        let (conf, state) = (conf.clone(), state.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(1000));
                // dateext refuses a second rotation within the same second: that is fine.
                let out = Command::new("/usr/sbin/logrotate")
                    .arg("-f")
                    .arg("-s")
                    .arg(&state)
                    .arg(&conf)
                    .output()
                    .expect("run logrotate");
                if out.status.success() {
                    rotations.fetch_add(1, Ordering::SeqCst);
                }
            }
        })
    };

    // No pull before the first rotation.
    while rotations.load(Ordering::SeqCst) == 0 {
        std::thread::sleep(Duration::from_millis(20));
    }
    // A follower from the first pull on, and searches while the pulls commit.
    let mut follower = Follower::spawn(&env, &["tail", "-f", "-n", "0", "web1", &log]);
    let stop_grep = Arc::new(AtomicBool::new(false));
    let grep_thread = {
        let (stop, config) = (stop_grep.clone(), env.config.clone());
        std::thread::spawn(move || {
            let (mut runs, mut last, mut bad) = (0u64, 0u64, Vec::new());
            while !stop.load(Ordering::SeqCst) {
                let out = Command::new(loghost_bin())
                    .arg("--config")
                    .arg(&config)
                    .args(["grep", "-c", "-F", "soak line"])
                    .output()
                    .expect("run loghost grep");
                runs += 1;
                let count = String::from_utf8_lossy(&out.stdout)
                    .trim_end()
                    .rsplit(": ")
                    .next()
                    .and_then(|n| n.parse::<u64>().ok());
                match (out.status.code(), count) {
                    (Some(0), Some(n)) if n >= last => last = n,
                    (Some(1), _) if last == 0 => {}
                    _ => bad.push(format!("after {last} lines: {}", text(&out))),
                }
            }
            (runs, bad)
        })
    };
    let started = Instant::now();
    let mut pulls = 0;
    let mut failed_pulls = Vec::new();
    let pull = |failed: &mut Vec<String>| {
        let out = env.run(&["pull"]);
        if out.status.code() != Some(0) {
            failed.push(text(&out));
        }
    };
    while started.elapsed() < Duration::from_secs(secs) {
        pull(&mut failed_pulls);
        pulls += 1;
    }
    stop_writer.store(true, Ordering::SeqCst);
    writer_thread.join().expect("writer");
    // Rotations go on a little while the pulls catch up, then stop.
    pull(&mut failed_pulls);
    stop_rotating.store(true, Ordering::SeqCst);
    rotate_thread.join().expect("logrotate loop");
    pull(&mut failed_pulls);
    pull(&mut failed_pulls);
    pulls += 3;
    stop_grep.store(true, Ordering::SeqCst);
    let (greps, grep_errors) = grep_thread.join().expect("grep loop");

    let archived = env.cat("web1", &log);
    let archived_lines: Vec<&[u8]> = archived
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .collect();
    let (stored, torn) = numbered(archived_lines.iter().copied());
    let tail = follower.lines(archived_lines.len());
    let tail_more = follower.more(Duration::from_millis(500));
    let tail_running = follower.running();
    let tail_errors = follower.errors_now().to_vec();
    drop(follower);
    let events = env
        .ledger()
        .into_iter()
        .filter(|e| e["kind"] == "event" && e["event"] != "host_key_pinned")
        .collect();
    let verify = env.run(&["verify"]);
    let (on_server, written) = (server_lines(Path::new(&log)), next.load(Ordering::SeqCst));
    drop(sshd);
    let kept = std::env::var_os("LOGHOST_SOAK_KEEP").map(|_| env.dir.keep());
    let (tail_stored, tail_torn) = numbered(tail.iter().map(|l| l.as_bytes()));
    Outcome {
        written,
        stored,
        torn,
        tail: TailOutcome {
            lines: tail.len(),
            stored: tail_stored,
            torn: tail_torn,
            more: tail_more.len(),
            running: tail_running,
            errors: tail_errors,
        },
        greps,
        grep_errors,
        on_server,
        events,
        pulls,
        failed_pulls,
        rotations: rotations.load(Ordering::SeqCst),
        verify,
        kept,
    }
}

/// The numbers of the lines the server still holds: the log and every rotated copy.
fn server_lines(log: &Path) -> Vec<u64> {
    let dir = log.parent().expect("log dir");
    let base = log
        .file_name()
        .expect("log name")
        .to_string_lossy()
        .to_string();
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).expect("read log dir") {
        let e = e.expect("dir entry");
        let name = e.file_name().to_string_lossy().to_string();
        if !name.starts_with(&base) {
            continue;
        }
        let mut data = Vec::new();
        let f = std::fs::File::open(e.path()).expect("open a log file");
        if name.ends_with(".gz") {
            flate2::read::MultiGzDecoder::new(f)
                .read_to_end(&mut data)
                .expect("gunzip");
        } else {
            std::io::BufReader::new(f)
                .read_to_end(&mut data)
                .expect("read");
        }
        for l in data.split(|&b| b == b'\n').filter(|l| l.len() >= 9) {
            if let Some(n) = std::str::from_utf8(&l[..9])
                .ok()
                .and_then(|n| n.parse().ok())
            {
                out.push(n);
            }
        }
    }
    out
}

/// Every line on the server once in the archive, none twice, nothing torn, no alarm, verify OK;
/// with `all`, also every line written (no mode but copytruncate loses any). Without `all`, a
/// line cut by copytruncate's race (half collected, the rest in no copy) may end a `copy_short`
/// generation.
fn check(o: &Outcome, all: bool) {
    let summary = format!(
        "{} lines written, {} rotations, {} pulls, {} distinct lines stored",
        o.written,
        o.rotations,
        o.pulls,
        o.stored.len()
    );
    eprintln!("soak: {summary}");
    if let Some(dir) = &o.kept {
        eprintln!("soak: kept {}", dir.display());
    }
    assert!(o.rotations >= 3, "too few rotations: {summary}");
    assert!(o.failed_pulls.is_empty(), "{summary}: {:?}", o.failed_pulls);
    let races = o
        .events
        .iter()
        .filter(|e| e["event"] == "copy_short")
        .count();
    let torn_allowed = if all { 0 } else { races };
    assert!(
        o.torn <= torn_allowed,
        "{summary}: {} torn or foreign lines in the archive ({races} copytruncate races)",
        o.torn
    );
    let twice: Vec<_> = o.stored.iter().filter(|(_, c)| **c > 1).collect();
    assert!(
        twice.is_empty(),
        "{summary}: {} lines stored more than once, e.g. {:?}",
        twice.len(),
        twice.iter().take(5).collect::<Vec<_>>()
    );
    let missing: Vec<_> = o
        .on_server
        .iter()
        .filter(|n| !o.stored.contains_key(n))
        .collect();
    assert!(
        missing.is_empty(),
        "{summary}: {} lines on the server are not in the archive, from {:?} to {:?}",
        missing.len(),
        missing.first(),
        missing.last()
    );
    assert!(
        o.stored.keys().all(|n| *n < o.written),
        "{summary}: a line never written"
    );
    if all {
        assert_eq!(
            o.stored.len() as u64,
            o.written,
            "{summary}: lines lost without logrotate's copytruncate race to explain it"
        );
    }
    assert!(
        !o.events.iter().any(|e| e["event"] == "rewritten"),
        "{summary}: false alarm: {:?}",
        o.events
    );
    assert_eq!(o.verify.status.code(), Some(0), "{}", text(&o.verify));
    // tail -f showed what the archive holds, each line once, as it was committed.
    let t = &o.tail;
    eprintln!(
        "soak: tail -f showed {} lines; {} grep -c runs during the pulls",
        t.lines, o.greps
    );
    assert!(t.running, "{summary}: tail -f ended: {:?}", t.errors);
    assert!(
        t.stored == o.stored && t.torn == o.torn && t.more == 0,
        "{summary}: tail -f showed {} lines ({} distinct numbered, {} torn, {} more) where the \
         archive holds {} distinct and {} torn; stderr {:?}",
        t.lines,
        t.stored.len(),
        t.torn,
        t.more,
        o.stored.len(),
        o.torn,
        t.errors
    );
    assert!(
        o.grep_errors.is_empty(),
        "{summary}: grep during pulls: {:?}",
        o.grep_errors
    );
}

#[test]
fn soak_create() {
    let o = soak("    create", Writer::Reopening);
    check(&o, true);
    assert!(o.events.is_empty(), "{:?}", o.events);
}

#[test]
fn soak_nocreate_with_a_reopening_writer() {
    let o = soak("    nocreate", Writer::Reopening);
    check(&o, true);
    assert!(o.events.is_empty(), "{:?}", o.events);
}

#[test]
fn soak_compress_delaycompress() {
    let o = soak(
        "    nocreate\n    compress\n    delaycompress",
        Writer::Reopening,
    );
    check(&o, true);
    assert!(o.events.is_empty(), "{:?}", o.events);
}

#[test]
fn soak_dateext() {
    let o = soak(
        "    create\n    dateext\n    dateformat -%Y%m%d-%H%M%S",
        Writer::Reopening,
    );
    check(&o, true);
    assert!(o.events.is_empty(), "{:?}", o.events);
}

#[test]
fn soak_copytruncate() {
    let o = soak("    copytruncate", Writer::Holding);
    check(&o, false);
    // logrotate's own race may leave collected lines in no copy: a notice, nothing else.
    assert!(
        o.events.iter().all(|e| e["event"] == "copy_short"),
        "{:?}",
        o.events
    );
}
