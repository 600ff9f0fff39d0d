//! A full disk: the store on a small tmpfs (mounting needs root; CI runs the tests as root).
//! The pull fails with an error naming the store, nothing in the store is corrupt, and the next
//! round after space returns collects everything exactly once.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

/// A tmpfs mounted at a directory, unmounted on drop (also when the test fails).
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(at).expect("mkdir");
        let out = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(at)
            .output()
            .expect("run mount");
        assert!(
            out.status.success(),
            "cannot mount a tmpfs at {} (this test needs root, as in CI: run scripts/test.sh as \
             root): {}",
            at.display(),
            text(&out)
        );
        Tmpfs(at.to_path_buf())
    }

    fn resize(&self, size: &str) {
        let st = Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&self.0)
            .status()
            .expect("remount");
        assert!(st.success(), "remount failed");
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Lines that compress poorly, so a few MiB of log fill a small disk.
fn noisy_lines(seed: u64, n: usize) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::new();
    for i in 0..n {
        let mut line = format!("{i} ");
        for _ in 0..6 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            line.push_str(&format!("{x:016x}"));
        }
        line.push('\n');
        out.extend_from_slice(line.as_bytes());
    }
    out
}

#[test]
fn a_full_disk_is_named_corrupts_nothing_and_collection_resumes() {
    let env = Env::new();
    let store = Tmpfs::mount(&env.store, "1m");
    let log = env.rpath("var/log/app.log");
    std::fs::write(&log, noisy_lines(1, 40_000)).expect("write"); // ≈ 4 MiB
    let sshd = env.init_and_start_sshd("");
    env.write_config(&[host("web1", &sshd.address(), &[&log])], "");
    env.trust("web1", &sshd);

    // Small frames: some commit before the disk fills.
    let frames = [("LOGHOST_MAX_FRAME_RAW", "200000")];
    let out = env.run_env(&["pull"], &frames);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("No space left on device") && err.contains(&env.store.display().to_string()),
        "the error names the cause and the store: {}",
        text(&out)
    );
    assert!(
        !env.frames_for(&log).is_empty(),
        "what fitted before the disk filled was committed"
    );
    // Nothing half-written: what is there verifies.
    assert_ok(&env.run(&["verify", "--deep"]), "verify on the full disk");

    // A second try on the still-full disk fails the same way and damages nothing either.
    let out = env.run_env(&["pull"], &frames);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert_ok(&env.run(&["verify", "--deep"]), "verify after a second try");

    // Space returns: the next round collects the rest, every byte once.
    store.resize("64m");
    assert_ok(&env.run_env(&["pull"], &frames), "pull with space again");
    assert_eq!(env.cat("web1", &log), std::fs::read(&log).expect("read"));
    assert_ok(&env.run(&["verify", "--deep"]), "verify after resuming");
    drop(store);
}
