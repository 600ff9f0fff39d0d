//! `loghost demo`: the README's first command.

mod common;

use common::*;

#[test]
fn demo_runs_end_to_end_and_leaves_nothing_behind() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let out = std::process::Command::new(loghost_bin())
        .arg("demo")
        .env("TMPDIR", tmp.path())
        .output()
        .expect("run demo");
    assert_ok(&out, "demo");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("Demo complete."), "{stdout}");
    // Three text logs and the journal.
    assert_eq!(stdout.matches("identical").count(), 4, "{stdout}");
    assert!(stdout.contains("(65 entries)"), "{stdout}");
    assert!(
        stdout.contains("logs/demo-web/"),
        "the store tree is printed: {stdout}"
    );
    let left: Vec<_> = std::fs::read_dir(tmp.path()).expect("read").collect();
    assert!(left.is_empty(), "the demo must clean up: {left:?}");
}

#[test]
fn demo_keep_leaves_a_working_setup() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("kept");
    let out = std::process::Command::new(loghost_bin())
        .arg("demo")
        .arg("--keep")
        .arg(&dir)
        .output()
        .expect("run demo");
    assert_ok(&out, "demo --keep");
    let out = std::process::Command::new(loghost_bin())
        .arg("--config")
        .arg(dir.join("etc/loghost.toml"))
        .args(["cat", "demo-web", "auth.log"])
        .output()
        .expect("cat");
    assert_ok(&out, "cat from the kept demo");
    assert_eq!(
        out.stdout,
        std::fs::read(dir.join("server/var/log/auth.log")).expect("read")
    );
    // A second demo refuses to clobber a non-empty directory.
    let out = std::process::Command::new(loghost_bin())
        .arg("demo")
        .arg("--keep")
        .arg(&dir)
        .output()
        .expect("run demo");
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
}
