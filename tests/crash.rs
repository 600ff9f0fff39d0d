//! Crash safety: a pull killed at any moment, followed by another pull, leaves every stored log
//! equal to the remote bytes exactly once. Against the real sshd.

mod common;

use std::path::Path;
use std::process::Output;
use std::time::Duration;

use common::*;

/// Checks that the ledger's frames for `source` tile `[0, len)` exactly once, that `cat` returns
/// the remote bytes, and that the stock tool reads every stored file whole (no garbage left).
fn assert_exactly_once(env: &Env, source: &str) {
    let remote = std::fs::read(source).expect("read remote");
    let frames = env.frames_for(source);
    let mut expected_start = 0;
    for f in &frames {
        assert_eq!(
            f["start"].as_u64(),
            Some(expected_start),
            "frames must follow each other without gap or overlap: {frames:#?}"
        );
        expected_start = f["end"].as_u64().expect("end");
    }
    assert_eq!(expected_start, remote.len() as u64, "everything collected");
    assert!(
        env.cat("web1", source) == remote,
        "stored content differs from the remote file"
    );
    let mut stored = Vec::new();
    let mut files: Vec<&str> = frames.iter().filter_map(|f| f["file"].as_str()).collect();
    files.dedup();
    for f in files {
        stored.extend(stock_decompress(&env.store.join(f)));
    }
    assert!(
        stored == remote,
        "the stored files hold exactly the remote bytes"
    );
}

fn setup(lines: usize) -> (Env, Sshd, String) {
    let env = Env::new();
    let log = env.rpath("var/log/app.log");
    std::fs::write(&log, log_lines(10, lines)).expect("write");
    let sshd = env.init_and_start_sshd("");
    env.write_config(&[host("web1", &sshd.address(), &[&log])], "");
    env.trust("web1", &sshd);
    (env, sshd, log)
}

fn killed(out: &Output) -> bool {
    use std::os::unix::process::ExitStatusExt;
    out.status.signal().is_some()
}

const FRAME: (&str, &str) = ("LOGHOST_MAX_FRAME_RAW", "1000000");

#[test]
fn crash_at_each_commit_step_loses_and_duplicates_nothing() {
    for point in [
        "after-bytes:500000",
        "after-frame-write",
        "after-frame-sync",
        "mid-ledger-write",
        "after-ledger-append",
    ] {
        let (env, _sshd, log) = setup(20_000);
        // A first committed round, then more data and a round that dies at `point`.
        assert_ok(&env.run_env(&["pull"], &[FRAME]), "first pull");
        append(Path::new(&log), &log_lines(11, 40_000));
        let out = env.run_env(&["pull"], &[FRAME, ("LOGHOST_CRASH_AT", point)]);
        assert!(
            killed(&out),
            "{point}: the pull should have died:\n{}",
            text(&out)
        );
        // The next round repairs and completes.
        let out = env.run_env(&["pull"], &[FRAME]);
        assert_ok(&out, point);
        assert_exactly_once(&env, &log);
        // And one more round finds nothing to do.
        let before = env.frames_for(&log).len();
        assert_ok(&env.run(&["pull"]), "idle pull");
        assert_eq!(env.frames_for(&log).len(), before, "{point}");
    }
}

#[test]
fn kill_9_at_random_moments_loses_and_duplicates_nothing() {
    let (env, _sshd, log) = setup(100_000);
    // Delays spread over a pull's life: before connecting, mid-transfer, around commits.
    let delays = [30u64, 90, 150, 220, 300, 420, 560, 700];
    let mut deaths = 0;
    for (i, ms) in delays.iter().enumerate() {
        append(Path::new(&log), &log_lines(20 + i as u64, 20_000));
        let mut child = env.spawn(&["pull"], &[FRAME]);
        std::thread::sleep(Duration::from_millis(*ms));
        if child.try_wait().expect("try_wait").is_none() {
            deaths += 1;
        }
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
    }
    assert!(
        deaths >= 3,
        "most rounds should have been killed mid-way ({deaths})"
    );
    let out = env.run(&["pull"]);
    assert_ok(&out, "final pull");
    assert_exactly_once(&env, &log);
}

#[test]
fn torn_ledger_line_is_cut_and_the_round_redone() {
    let (env, _sshd, log) = setup(5_000);
    assert_ok(&env.run(&["pull"]), "first pull");
    append(Path::new(&log), &log_lines(12, 5_000));
    let out = env.run_env(&["pull"], &[("LOGHOST_CRASH_AT", "mid-ledger-write")]);
    assert!(killed(&out));
    let ledger = std::fs::read(env.store.join("ledger/ledger.jsonl")).expect("ledger");
    assert_ne!(ledger.last(), Some(&b'\n'), "the crash left half a line");
    let out = env.run(&["pull"]);
    assert_ok(&out, "repairing pull");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("incomplete entry"),
        "the repair is reported: {}",
        text(&out)
    );
    assert_exactly_once(&env, &log);
}

/// A small deterministic generator, so a failing campaign can be replayed.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, below: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % below
    }
}

#[test]
fn fifty_kill_9s_at_random_moments_during_pulls() {
    let (env, _sshd, log) = setup(20_000);
    let mut rng = Lcg(0x5eed_1064);
    let mut deaths = 0;
    let mut round = 0u64;
    while deaths < 50 {
        round += 1;
        assert!(
            round < 200,
            "only {deaths} of {round} rounds were killed mid-way"
        );
        // New data most rounds, of varying size; small frames for many commit points.
        if rng.next(4) != 0 {
            let lines = 1 + rng.next(30_000) as usize;
            append(Path::new(&log), &log_lines(1000 + round, lines));
        }
        let mut child = env.spawn(&["pull"], &[("LOGHOST_MAX_FRAME_RAW", "300000")]);
        std::thread::sleep(Duration::from_millis(rng.next(400)));
        if child.try_wait().expect("try_wait").is_none() {
            deaths += 1;
        }
        let _ = child.kill(); // SIGKILL, wherever it is
        let _ = child.wait();
        if round % 15 == 14 {
            // A clean round repairs whatever the kills left, and the archive verifies.
            assert_ok(&env.run(&["pull"]), "repairing pull");
            assert_exactly_once(&env, &log);
            assert_ok(&env.run(&["verify", "--deep"]), "verify mid-campaign");
        }
    }
    assert_ok(&env.run(&["pull"]), "final pull");
    assert_exactly_once(&env, &log);
    assert_ok(&env.run(&["verify", "--deep"]), "final verify");
}
