//! Large files: streamed in bounded memory, byte-exact through frequent SSH re-keying.

mod common;

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use common::*;

/// Writes `blocks` blocks of about 1.2 MiB of log lines, each after a counter line.
fn write_big(path: &Path, blocks: usize) {
    let block = log_lines(99, 9_000);
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).expect("create"));
    for i in 0..blocks {
        writeln!(f, "---- block {i} ----").expect("write");
        f.write_all(&block).expect("write");
    }
    f.flush().expect("flush");
}

/// Runs a pull and returns its peak resident memory (VmHWM) in KiB.
fn pull_peak_kib(env: &Env) -> u64 {
    let mut child = env.spawn(&["pull"], &[]);
    let status_path = format!("/proc/{}/status", child.id());
    let mut peak = 0;
    loop {
        if let Ok(s) = std::fs::read_to_string(&status_path)
            && let Some(line) = s.lines().find(|l| l.starts_with("VmHWM:"))
        {
            let kib: u64 = line
                .split_whitespace()
                .nth(1)
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            peak = peak.max(kib);
        }
        if child.try_wait().expect("try_wait").is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let out = child.wait_with_output().expect("output");
    assert_ok(&out, "pull");
    peak
}

#[test]
fn big_files_stream_in_flat_memory_and_survive_rekeying() {
    let env = Env::new();
    let small = env.rpath("var/log/small.log");
    let big = env.rpath("var/log/big.log");
    write_big(Path::new(&small), 24);
    // OpenSSH re-keys every MiB: the transfer must stay byte-exact across hundreds of re-keys.
    let sshd = env.init_and_start_sshd("RekeyLimit 1M 5s");
    env.write_config(&[host("web1", &sshd.address(), &[&small])], "");
    env.trust("web1", &sshd);
    let small_peak = pull_peak_kib(&env);

    write_big(Path::new(&big), 240);
    env.write_config(&[host("web1", &sshd.address(), &[&big])], "");
    let big_peak = pull_peak_kib(&env);
    eprintln!("peak RSS: small file {small_peak} KiB, big file (10x) {big_peak} KiB");

    assert!(
        big_peak < small_peak + 32 * 1024,
        "memory must not grow with the file: {small_peak} KiB, then {big_peak} KiB for 10x the size"
    );
    assert!(big_peak < 160 * 1024, "peak {big_peak} KiB");
    let remote = std::fs::read(&big).expect("read");
    assert!(env.cat("web1", &big) == remote, "byte-exact");
    let frames = env.frames_for(&big);
    let frame_max = loghost::pull::MAX_FRAME_RAW;
    assert_eq!(
        frames.len() as u64,
        (remote.len() as u64).div_ceil(frame_max),
        "a big transfer is cut into frames of at most MAX_FRAME_RAW"
    );
}
