//! Faults and hostile servers: the SSH server killed or stalled mid-transfer, a connection reset
//! during the handshake, a log that grows forever, a clock stepping back, symlink loops. In each
//! case nothing is half-committed, the archive verifies, and the next round completes.

mod common;

use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::*;

/// The log's stored content equals the remote bytes, exactly once, and verify passes.
fn assert_complete(env: &Env, log: &str) {
    let remote = std::fs::read(log).expect("read remote");
    let got = env.cat("web1", log);
    assert!(
        got == remote,
        "stored {} bytes, remote has {}",
        got.len(),
        remote.len()
    );
    assert_ok(&env.run(&["verify", "--deep"]), "verify");
}

fn setup(bytes_lines: usize, ssh_extra: &str) -> (Env, Sshd, String) {
    let env = Env::new();
    let log = env.rpath("var/log/app.log");
    std::fs::write(&log, log_lines(7, bytes_lines)).expect("write");
    let sshd = env.init_and_start_sshd("");
    env.write_config(&[host("web1", &sshd.address(), &[&log])], ssh_extra);
    env.trust("web1", &sshd);
    (env, sshd, log)
}

/// Waits until a pull has started moving data (its stored file exists), up to a few seconds.
fn wait_transfer_started(env: &Env) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while env.stored_files().is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn the_ssh_server_killed_mid_transfer_commits_nothing_half() {
    // 300k lines ≈ 40 MiB: long enough to be cut in the middle.
    let (env, sshd, log) = setup(300_000, "");
    let child = env.spawn(&["pull"], &[("LOGHOST_MAX_FRAME_RAW", "4000000")]);
    wait_transfer_started(&env);
    std::thread::sleep(Duration::from_millis(50));
    // The server side of the session dies (the listening sshd stays, like a crashed child).
    for pid in descendants(sshd.pid()) {
        signal(pid, "KILL");
    }
    let out = child.wait_with_output().expect("wait");
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("web1"),
        "the failed host is named: {}",
        text(&out)
    );
    // What was committed verifies; nothing beyond it was left in the store.
    assert_ok(&env.run(&["verify", "--deep"]), "verify after the cut");
    let committed: u64 = env
        .frames_for(&log)
        .iter()
        .map(|f| f["end"].as_u64().expect("end") - f["start"].as_u64().expect("start"))
        .sum();
    let total = std::fs::metadata(&log).expect("meta").len();
    assert!(committed < total, "the cut happened mid-transfer");
    // The next round picks up where the last committed frame ended.
    assert_ok(&env.run(&["pull"]), "the next round");
    assert_complete(&env, &log);
}

#[test]
fn a_stalled_server_times_out_and_the_next_round_completes() {
    let (env, sshd, log) = setup(300_000, "[ssh]\nio_timeout = \"2s\"");
    let child = env.spawn(&["pull"], &[("LOGHOST_MAX_FRAME_RAW", "4000000")]);
    wait_transfer_started(&env);
    let (out, took) = with_server_stalled(&sshd, child);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        took < Duration::from_secs(20),
        "io_timeout bounds a stalled read"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("web1") && err.contains("2s"), "{}", text(&out));
    assert_ok(&env.run(&["verify", "--deep"]), "verify after the stall");
    assert_ok(&env.run(&["pull"]), "the next round");
    assert_complete(&env, &log);
}

/// A TCP front for `target` that resets the connections whose index (from 0) is in `reset`
/// (after reading the client's first bytes: mid-handshake) and relays the others.
fn resetting_proxy(target: String, reset: &'static [usize]) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    std::thread::spawn(move || {
        for (i, conn) in listener.incoming().enumerate() {
            let Ok(mut conn) = conn else { continue };
            if reset.contains(&i) {
                let mut buf = [0u8; 64];
                let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
                let _ = conn.read(&mut buf);
                // SO_LINGER 0: close() sends a RST instead of a FIN.
                let _ = socket_linger_zero(&conn);
                drop(conn);
                continue;
            }
            let Ok(up) = TcpStream::connect(&target) else {
                continue;
            };
            let (mut a, mut b) = (
                conn.try_clone().expect("clone"),
                up.try_clone().expect("clone"),
            );
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut a, &mut b);
                let _ = b.shutdown(std::net::Shutdown::Write);
            });
            std::thread::spawn(move || {
                let (mut up, mut conn) = (up, conn);
                let _ = std::io::copy(&mut up, &mut conn);
                let _ = conn.shutdown(std::net::Shutdown::Write);
            });
        }
    });
    addr
}

fn socket_linger_zero(s: &TcpStream) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    #[allow(unsafe_code)]
    // SAFETY: setsockopt reads `linger` (a valid, live struct of the size passed) on an open fd.
    let r = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[test]
fn a_connection_reset_during_the_handshake_is_retried_next_round() {
    let env = Env::new();
    let log = env.rpath("var/log/app.log");
    std::fs::write(&log, log_lines(3, 2000)).expect("write");
    let sshd = env.init_and_start_sshd("");
    // Connection 0 (trust) goes through, 1 (the first pull) is reset, 2 (the next) goes through.
    let front = resetting_proxy(sshd.address(), &[1]);
    env.write_config(
        &[
            host("web1", &front, &[&log]),
            host("web2", &sshd.address(), &[&log]),
        ],
        "",
    );
    env.trust("web1", &sshd);
    env.trust("web2", &sshd);

    let out = env.run(&["pull"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("web1"),
        "{}",
        text(&out)
    );
    assert!(
        env.ledger()
            .iter()
            .all(|e| e["kind"] != "frame" || e["host"] != "web1"),
        "nothing committed for the reset host"
    );
    assert_eq!(
        env.cat("web2", &log),
        std::fs::read(&log).expect("read"),
        "the other host was collected"
    );
    // The next round gets through.
    assert_ok(&env.run(&["pull"]), "the next round");
    assert_eq!(env.cat("web1", &log), std::fs::read(&log).expect("read"));
    assert_ok(&env.run(&["verify"]), "verify");
}

#[test]
fn a_log_that_grows_forever_is_read_within_the_round_budget() {
    let (env, _sshd, log) = setup(3000, "[ssh]\nmax_file_bytes_per_round = 100000");
    let total = std::fs::metadata(&log).expect("meta").len();
    assert!(total > 300_000);
    // A budgeted first round reads 100000 bytes and says so.
    let out = env.run(&["pull", "-v"]);
    assert_ok(&out, "first pull");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("max_file_bytes_per_round"),
        "{}",
        text(&out)
    );
    let first: u64 = env
        .frames_for(&log)
        .iter()
        .map(|f| f["end"].as_u64().expect("end") - f["start"].as_u64().expect("start"))
        .sum();
    assert_eq!(first, 100_000);

    // While a writer appends without pause, every round still ends, within its budget.
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (stop, log) = (stop.clone(), log.clone());
        std::thread::spawn(move || {
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                // ~27 kB every 20 ms: faster than one budget per round.
                append(Path::new(&log), &log_lines(100 + i, 200));
                i += 1;
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };
    for _ in 0..3 {
        let before = env.frames_for(&log).len();
        let started = Instant::now();
        assert_ok(&env.run(&["pull"]), "pull while the log grows");
        assert!(started.elapsed() < Duration::from_secs(30));
        let round: u64 = env.frames_for(&log)[before..]
            .iter()
            .map(|f| f["end"].as_u64().expect("end") - f["start"].as_u64().expect("start"))
            .sum();
        assert!(round <= 100_000, "a round read {round} bytes");
    }
    stop.store(true, Ordering::Relaxed);
    writer.join().expect("writer");
    // Once it stops growing, the rounds catch up: every byte once.
    for _ in 0..200 {
        let out = env.run(&["pull", "-v"]);
        assert_ok(&out, "catching up");
        if !String::from_utf8_lossy(&out.stderr).contains("max_file_bytes_per_round") {
            break;
        }
    }
    assert_complete(&env, &log);
}

#[test]
fn the_round_budget_holds_across_a_compressed_rotation() {
    let (env, _sshd, log) = setup(3000, "[ssh]\nmax_file_bytes_per_round = 100000");
    let old = std::fs::read(&log).expect("read");
    assert_ok(&env.run(&["pull"]), "first pull");
    // logrotate with compress: app.log → app.log.1.gz, a new app.log.
    std::fs::rename(&log, format!("{log}.1")).expect("rotate");
    let st = std::process::Command::new("gzip")
        .arg(format!("{log}.1"))
        .status()
        .expect("gzip");
    assert!(st.success());
    let new = log_lines(8, 1500);
    std::fs::write(&log, &new).expect("new generation");
    let mut rounds = 0;
    loop {
        rounds += 1;
        assert!(rounds < 20, "the rotation never completed");
        let out = env.run(&["pull", "-v"]);
        assert_ok(&out, "pull across the rotation");
        if !String::from_utf8_lossy(&out.stderr).contains("max_file_bytes_per_round") {
            break;
        }
    }
    assert!(rounds >= 3, "the old generation's rest took several rounds");
    let mut want = old;
    want.extend_from_slice(&new);
    assert_eq!(env.cat("web1", &log), want, "every line once, in order");
    assert_ok(&env.run(&["verify", "--deep"]), "verify");
}

#[test]
fn a_clock_stepping_back_keeps_days_ledger_and_checkpoints_in_order() {
    let (env, _sshd, log) = setup(1000, "");
    env.set_clock("2036-11-05T10:00:00Z");
    assert_ok(
        &env.run_env(&["pull"], &[("LOGHOST_FAKE_NOW", "2036-11-05T01:00:00Z")]),
        "pull",
    );
    append(Path::new(&log), &log_lines(9, 500));
    // The clock jumps two hours back, over midnight.
    let out = env.run_env(&["pull"], &[("LOGHOST_FAKE_NOW", "2036-11-04T23:00:00Z")]);
    assert_ok(&out, "pull after the clock stepped back");
    let frames = env.frames_for(&log);
    assert_eq!(frames.len(), 2);
    // More than a day back: the ledger's last entry would be dated after the clock by more than
    // the tolerance (a forged future date looks the same). Nothing is appended, the error says
    // why; once the clock is right, collection resumes with nothing lost.
    append(Path::new(&log), &log_lines(10, 50));
    let out = env.run_env(&["pull"], &[("LOGHOST_FAKE_NOW", "2036-11-02T10:00:00Z")]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("more than a day after this machine's clock"));
    assert_eq!(env.frames_for(&log).len(), 2);
    assert_ok(
        &env.run_env(&["pull"], &[("LOGHOST_FAKE_NOW", "2036-11-05T10:00:00Z")]),
        "pull with the clock fixed",
    );
    let ledger = env.ledger();
    let times_owned: Vec<String> = ledger
        .iter()
        .map(|e| e["time"].as_str().expect("time").to_string())
        .collect();
    assert!(
        times_owned.windows(2).all(|w| w[0] <= w[1]),
        "ledger times never go back: {times_owned:?}"
    );
    for f in &frames {
        let file = f["file"].as_str().expect("file");
        assert!(
            file.contains("/2036-11-05/"),
            "no day directory from the past: {file}"
        );
    }
    assert_complete(&env, &log);
}

#[test]
fn symlink_loops_under_globs_end() {
    let env = Env::new();
    let dir = env.remote.join("var/log/app");
    std::fs::create_dir_all(&dir).expect("mkdir");
    std::fs::write(dir.join("a.log"), log_lines(1, 100)).expect("write");
    // A directory that contains itself, and a file link that points at itself.
    std::os::unix::fs::symlink(".", dir.join("loop")).expect("symlink");
    std::os::unix::fs::symlink("self.log", dir.join("self.log")).expect("symlink");
    let sshd = env.init_and_start_sshd("");
    env.write_config(
        &[host(
            "web1",
            &sshd.address(),
            &[
                env.rpath("var/log/app/*.log"),
                env.rpath("var/log/app/*/*.log"),
                env.rpath("var/log/app/*/*/*/*.log"),
            ],
        )],
        "",
    );
    env.trust("web1", &sshd);
    let started = Instant::now();
    let out = env.run(&["pull"]);
    assert!(started.elapsed() < Duration::from_secs(30));
    // The looping link is named as a problem; the real log is collected.
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("self.log"), "{}", text(&out));
    let a = env.rpath("var/log/app/a.log");
    assert_eq!(env.cat("web1", &a), log_lines(1, 100));
    assert_ok(&env.run(&["verify"]), "verify");
}

#[test]
fn a_sparse_snapshot_claiming_64_gib_is_refused_quickly_and_the_rest_collected() {
    // Issue 17 §5: a `lastlog` is sparse and can claim hundreds of GB; a snapshot is one frame.
    let env = Env::new();
    let log = env.rpath("var/log/app.log");
    std::fs::write(&log, log_lines(7, 100)).expect("write");
    let lastlog = env.rpath("var/log/lastlog");
    std::fs::File::create(&lastlog)
        .expect("create")
        .set_len(64 << 30)
        .expect("sparse");
    let sshd = env.init_and_start_sshd("");
    let mut h = host("web1", &sshd.address(), &[&log]);
    h.snapshot = vec![lastlog.clone()];
    env.write_config(&[h], "");
    env.trust("web1", &sshd);
    let t = Instant::now();
    let out = env.run(&["pull"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("allows for a snapshot"),
        "{}",
        text(&out)
    );
    assert!(t.elapsed() < Duration::from_secs(60), "refused, not read");
    assert_eq!(env.cat("web1", &log), std::fs::read(&log).expect("read"));
}

#[test]
fn a_compressed_generation_larger_than_the_round_budget_is_not_read() {
    // Issue 17 §5: a `.gz` is read whole (its collected part is checked on the way); its
    // compressed size is bounded by max_file_bytes_per_round, so endless empty deflate blocks
    // cannot hold a round. No alarm: the log is not rewritten, it is too large.
    let (env, _sshd, log) = setup(100, "[ssh]\nmax_file_bytes_per_round = \"1MiB\"\n");
    assert_ok(&env.run(&["pull"]), "first pull");
    // 3 MiB of noisy lines (they compress poorly) join the generation, then it is rotated
    // and compressed.
    append(Path::new(&log), &noisy_lines(3, 25_000));
    let gz = format!("{log}.1.gz");
    let status = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("gzip -c {log} > {gz} && : > {log}"))
        .status()
        .expect("gzip");
    assert!(status.success());
    assert!(std::fs::metadata(&gz).expect("gz").len() > 1 << 20);
    let out = env.run(&["pull"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("a compressed generation of"),
        "{}",
        text(&out)
    );
    assert!(
        !env.ledger().iter().any(|e| e["event"] == "rewritten"),
        "no alarm"
    );
}

#[test]
fn a_directory_listing_is_bounded_in_bytes_not_only_entries() {
    // Issue 17 §5: fewer entries than the entry limit, but 68,000 names of 250 bytes (17 MB):
    // the listing is refused with a clear error, and the host's other logs are collected.
    let env = Env::new();
    let log = env.rpath("var/log/app.log");
    std::fs::write(&log, log_lines(7, 100)).expect("write");
    let many = env.remote.join("var/log/many");
    std::fs::create_dir_all(&many).expect("mkdir");
    for i in 0..68_000 {
        let name = format!("{i:08}{}.log", "x".repeat(238));
        std::fs::File::create(many.join(name)).expect("create");
    }
    let sshd = env.init_and_start_sshd("");
    let glob = format!("{}/*.log", many.display());
    env.write_config(&[host("web1", &sshd.address(), &[&log, &glob])], "");
    env.trust("web1", &sshd);
    let out = env.run(&["pull"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("MiB of names"), "{}", text(&out));
    assert_eq!(env.cat("web1", &log), std::fs::read(&log).expect("read"));
}
