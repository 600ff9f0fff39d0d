//! A full disk: the store on a small tmpfs (mounting needs root; CI runs the tests as root).
//! The pull fails with an error naming the store, nothing in the store is corrupt, and the next
//! round after space returns collects everything exactly once.

mod common;

use common::*;

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
