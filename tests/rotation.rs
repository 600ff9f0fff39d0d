//! Rotation, truncation and rewrites, with the real `logrotate` acting on the real sshd's files.
//! After every scenario, every line ever written is in the archive exactly once, in order
//! (`loghost cat` of the log equals everything written), and nothing logrotate does is an alarm.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use common::*;

/// A log on the "server", the lines written to it so far, and logrotate set up for it.
struct Rig {
    env: Env,
    _sshd: Sshd,
    log: String,
    written: Vec<u8>,
    next: usize,
    conf: PathBuf,
    state: PathBuf,
}

fn line(i: usize) -> String {
    format!(
        "2026-11-28T10:{:02}:{:02} web1 app[{}]: event {i} for user{} from 10.0.{}.{}\n",
        (i / 60) % 60,
        i % 60,
        1000 + i % 77,
        i % 13,
        i % 251,
        (i * 7) % 251
    )
}

impl Rig {
    fn new(logrotate_options: &str, extra_config: &str) -> Rig {
        assert!(
            Path::new("/usr/sbin/logrotate").exists(),
            "logrotate is missing: run scripts/test.sh, which installs it"
        );
        let env = Env::new();
        let log = env.rpath("var/log/app.log");
        std::fs::write(&log, b"").expect("create log");
        let sshd = env.init_and_start_sshd("");
        env.write_config(&[host("web1", &sshd.address(), &[&log])], extra_config);
        env.trust("web1", &sshd);
        let conf = env.dir.path().join("logrotate.conf");
        std::fs::write(
            &conf,
            format!("{log} {{\n    rotate 30\n    missingok\n{logrotate_options}\n}}\n"),
        )
        .expect("write logrotate.conf");
        let state = env.dir.path().join("logrotate.state");
        Rig {
            env,
            _sshd: sshd,
            log,
            written: Vec::new(),
            next: 0,
            conf,
            state,
        }
    }

    /// Appends `n` lines to the log as it is now (creating it if needed).
    fn write(&mut self, n: usize) {
        let mut data = Vec::new();
        for _ in 0..n {
            data.extend_from_slice(line(self.next).as_bytes());
            self.next += 1;
        }
        append(Path::new(&self.log), &data);
        self.written.extend_from_slice(&data);
    }

    fn rotate(&self) {
        let out = Command::new("/usr/sbin/logrotate")
            .arg("-f")
            .arg("-s")
            .arg(&self.state)
            .arg(&self.conf)
            .output()
            .expect("run logrotate");
        assert_ok(&out, "logrotate");
    }

    fn pull(&self) -> Output {
        self.env.run(&["pull"])
    }

    /// A pull that must succeed without any alarm or notice.
    fn quiet_pull(&self) {
        let out = self.pull();
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !err.contains("rewritten") && !err.contains("ALARM"),
            "{err}"
        );
        assert!(
            self.events().is_empty(),
            "no event for what logrotate does: {:?}",
            self.events()
        );
    }

    /// Every line written is collected exactly once, in order.
    fn assert_complete(&self) {
        let got = self.env.cat("web1", &self.log);
        if got != self.written {
            let got_s = String::from_utf8_lossy(&got);
            let want_s = String::from_utf8_lossy(&self.written);
            panic!(
                "collected {} bytes, written {}\n--- collected (last 400)\n{}\n--- written (last 400)\n{}",
                got.len(),
                self.written.len(),
                &got_s[got_s.len().saturating_sub(400)..],
                &want_s[want_s.len().saturating_sub(400)..]
            );
        }
    }

    fn events(&self) -> Vec<serde_json::Value> {
        self.env
            .ledger()
            .into_iter()
            .filter(|e| e["kind"] == "event" && e["event"] != "host_key_pinned")
            .collect()
    }

    fn rotated(&self, name: &str) -> PathBuf {
        Path::new(&self.log).with_file_name(name)
    }
}

#[test]
fn create_rotation_loses_and_duplicates_nothing() {
    let mut r = Rig::new("    create", "");
    r.write(500);
    r.quiet_pull();
    r.write(300); // not collected before the rotation: the tail of the old generation
    r.rotate();
    assert!(r.rotated("app.log.1").exists());
    r.write(200); // the new generation
    r.quiet_pull();
    r.assert_complete();
    // The old generation's tail was read from its new name.
    let from: Vec<_> = r
        .env
        .frames_for(&r.log)
        .into_iter()
        .filter_map(|f| f["from"].as_str().map(str::to_string))
        .collect();
    assert_eq!(from, vec![r.rotated("app.log.1").display().to_string()]);
    r.write(10);
    r.quiet_pull();
    r.assert_complete();
}

#[test]
fn copytruncate_loses_and_duplicates_nothing() {
    let mut r = Rig::new("    copytruncate", "");
    r.write(400);
    r.quiet_pull();
    r.write(250);
    r.rotate();
    assert_eq!(
        std::fs::metadata(&r.log).expect("meta").len(),
        0,
        "truncated in place"
    );
    r.write(120);
    r.quiet_pull();
    r.assert_complete();
}

#[test]
fn compress_reads_the_tail_inside_the_gz() {
    let mut r = Rig::new("    create\n    compress", "");
    r.write(600);
    r.quiet_pull();
    r.write(400);
    r.rotate();
    assert!(r.rotated("app.log.1.gz").exists());
    r.write(100);
    r.quiet_pull();
    r.assert_complete();
}

#[test]
fn delaycompress_and_several_rotations_between_two_pulls() {
    let mut r = Rig::new("    create\n    compress\n    delaycompress", "");
    r.write(300);
    r.quiet_pull();
    r.write(200); // tail of the collected generation: ends up in app.log.3.gz
    r.rotate();
    r.write(150); // a generation never seen: app.log.2.gz
    r.rotate();
    r.write(120); // another: app.log.1 (delaycompress)
    r.rotate();
    r.write(90); // the live file
    assert!(r.rotated("app.log.3.gz").exists() && r.rotated("app.log.1").exists());
    r.quiet_pull();
    r.assert_complete();
    // The old tail inside .3.gz, then the unseen generations oldest first, then the live file.
    let from: Vec<String> = r
        .env
        .frames_for(&r.log)
        .iter()
        .map(|f| f["from"].as_str().unwrap_or("live").to_string())
        .collect();
    let name = |n: &str| r.rotated(n).display().to_string();
    assert_eq!(
        from,
        vec![
            "live".to_string(),
            name("app.log.3.gz"),
            name("app.log.2.gz"),
            name("app.log.1"),
            "live".to_string()
        ]
    );
    r.write(5);
    r.quiet_pull();
    r.assert_complete();
}

#[test]
fn dateext_rotations_are_ordered_by_date() {
    let mut r = Rig::new(
        "    create\n    compress\n    dateext\n    dateformat -%Y%m%d-%s",
        "",
    );
    r.write(300);
    r.quiet_pull();
    r.write(100);
    r.rotate();
    std::thread::sleep(std::time::Duration::from_millis(1100));
    r.write(80);
    r.rotate();
    r.write(60);
    r.quiet_pull();
    r.assert_complete();
}

#[test]
fn rotated_and_not_recreated_yet() {
    // nocreate: the file is renamed and only the application creates the next one.
    let mut r = Rig::new("    nocreate", "");
    r.write(300);
    r.quiet_pull();
    r.write(100);
    r.rotate();
    assert!(!Path::new(&r.log).exists());
    r.quiet_pull(); // the tail is read from app.log.1 although app.log is gone
    r.assert_complete();
    r.write(50); // the application starts a new file
    r.quiet_pull();
    r.assert_complete();
}

#[test]
fn truncated_and_regrown_past_the_old_offset() {
    let mut r = Rig::new("    create", "");
    r.write(100);
    r.quiet_pull();
    // `> app.log`, then more lines than there were: no rotated copy exists.
    std::fs::write(&r.log, b"").expect("truncate");
    let mut data = Vec::new();
    for _ in 0..300 {
        data.extend_from_slice(line(r.next).as_bytes());
        r.next += 1;
    }
    std::fs::write(&r.log, &data).expect("regrow");
    r.written.extend_from_slice(&data);
    let out = r.pull();
    assert_eq!(out.status.code(), Some(0), "not an alarm: {}", text(&out));
    r.assert_complete();
    let events = r.events();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["event"], "replaced");
    // Truncated to zero and not regrown yet: noted once, then quiet.
    std::fs::write(&r.log, b"").expect("truncate");
    assert_eq!(r.pull().status.code(), Some(0));
    assert_eq!(r.events().len(), 2);
    assert_eq!(r.events()[1]["event"], "truncated");
    assert_eq!(r.pull().status.code(), Some(0));
    assert_eq!(r.events().len(), 2, "a truncation is told once");
    r.write(20);
    r.quiet_pull_allowing_events();
    r.assert_complete();
}

impl Rig {
    fn quiet_pull_allowing_events(&self) {
        let out = self.pull();
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    }
}

#[test]
fn deleted_and_recreated() {
    let mut r = Rig::new("    create", "");
    r.write(100);
    r.quiet_pull();
    std::fs::remove_file(&r.log).expect("delete");
    // Deleted: nothing to collect, nothing to fail.
    let out = r.pull();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    r.assert_complete();
    // Recreated with new content.
    r.write(40);
    r.quiet_pull_allowing_events();
    r.assert_complete();
}

#[test]
fn a_rewritten_log_raises_an_alarm_and_keeps_the_original() {
    let mut r = Rig::new("    create", "");
    let other = r.env.rpath("var/log/other.log");
    std::fs::write(&other, b"other 1\n").expect("write");
    r.env
        .write_config(&[host("web1", &r._sshd.address(), &[&r.log, &other])], "");
    r.write(200);
    r.quiet_pull();
    let original = r.env.cat("web1", &r.log);
    let first_frame = r.env.frames_for(&r.log)[0].clone();
    // The intruder deletes a line in the collected part; the log grows on; the other log too.
    let text_now = String::from_utf8(std::fs::read(&r.log).expect("read")).expect("utf8");
    let edited = text_now.replacen(&line(150), "", 1);
    std::fs::write(&r.log, &edited).expect("rewrite");
    append(Path::new(&other), b"other 2\n");
    let out = r.pull();
    assert_eq!(
        out.status.code(),
        Some(4),
        "exit 4 for a rewritten log: {}",
        text(&out)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("rewritten") && err.contains("app.log"),
        "{err}"
    );
    // The other log was still collected in that round.
    assert_eq!(r.env.cat("web1", &other), b"other 1\nother 2\n");
    // One event naming host, file and byte range.
    let events = r.events();
    assert_eq!(events.len(), 1, "{events:?}");
    let e = &events[0];
    assert_eq!(e["event"], "rewritten");
    assert_eq!(e["host"], "web1");
    assert_eq!(e["source"], r.log.as_str());
    assert!(
        e["start"].as_u64().is_some() && e["end"].as_u64().is_some(),
        "{e}"
    );
    // The original stays as it was; the rewritten content follows as a new generation.
    assert_eq!(r.env.frames_for(&r.log)[0], first_frame);
    let all = r.env.cat("web1", &r.log);
    assert!(all.starts_with(&original));
    assert_eq!(&all[original.len()..], edited.as_bytes());
    // `loghost status` lists the alarm.
    let out = r.env.run(&["status"]);
    assert_ok(&out, "status");
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(
        s.contains("ALARM") && s.contains("app.log") && s.contains("rewritten"),
        "{s}"
    );
    let out = r.env.run(&["status", "--json"]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(
        json["hosts"][0]["alarms"].as_array().map(Vec::len),
        Some(1),
        "{json}"
    );
    // The next round is quiet again (the new generation is followed normally).
    r.write(10);
    let out = r.pull();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}

#[test]
fn an_edited_rotated_copy_raises_an_alarm() {
    let mut r = Rig::new("    create", "");
    r.write(200);
    r.quiet_pull();
    r.write(50);
    r.rotate();
    // Before the next round, the rotated copy is edited in its collected part.
    let rotated = r.rotated("app.log.1");
    let t = String::from_utf8(std::fs::read(&rotated).expect("read")).expect("utf8");
    std::fs::write(
        &rotated,
        t.replacen(&line(199), &line(199).replace("event", "EVENT"), 1),
    )
    .expect("edit");
    let out = r.pull();
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    assert_eq!(r.events()[0]["event"], "rewritten");
}

/// A same-length edit in the middle of a long file, which the tail check cannot see.
fn middle_edit(samples: u32) -> (Rig, Output) {
    let mut r = Rig::new("    create", &format!("audit_samples = {samples}"));
    r.write(4000); // ~300 KiB
    r.quiet_pull();
    let t = String::from_utf8(std::fs::read(&r.log).expect("read")).expect("utf8");
    let edited = t.replacen(
        &line(1500),
        &line(1500).replace("from 10.0.", "from 10.9."),
        1,
    );
    assert_eq!(edited.len(), t.len());
    std::fs::write(&r.log, edited).expect("edit");
    r.write(5);
    let out = r.pull();
    (r, out)
}

#[test]
fn audit_samples_find_an_edit_in_the_middle() {
    // With 1000 samples of 4 KiB over ~300 KiB, missing the edited block has a probability
    // below 1e-5 (see README: audit samples).
    let (r, out) = middle_edit(1000);
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    let e = &r.events()[0];
    assert_eq!(e["event"], "rewritten");
    assert!(
        e["detail"]
            .as_str()
            .expect("detail")
            .contains("audit sample"),
        "{e}"
    );
    // Without samples the same edit goes unseen: the samples are what found it.
    let (r, out) = middle_edit(0);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(r.events().is_empty());
}

#[test]
fn a_glob_that_also_matches_rotated_names_collects_each_line_once() {
    let mut r = Rig::new("    create\n    compress\n    delaycompress", "");
    let glob = format!("{}*", r.log);
    r.env
        .write_config(&[host("web1", &r._sshd.address(), &[&glob])], "");
    r.write(300);
    r.quiet_pull();
    r.write(100);
    r.rotate();
    r.write(100);
    r.rotate();
    r.write(50);
    let out = r.pull();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("is a rotated generation of"), "{err}");
    r.assert_complete();
    for rotated in ["app.log.1", "app.log.2.gz"] {
        let p = r.rotated(rotated).display().to_string();
        assert!(
            r.env.frames_for(&p).is_empty(),
            "{rotated} must not be a source of its own"
        );
    }
}

#[test]
fn a_crash_while_following_rotations_loses_and_duplicates_nothing() {
    use std::os::unix::process::ExitStatusExt;
    for point in [
        "after-bytes:20000",
        "after-frame-write",
        "after-frame-sync",
        "after-ledger-append",
    ] {
        let mut r = Rig::new("    create\n    compress\n    delaycompress", "");
        r.write(2000);
        r.quiet_pull();
        r.write(1000); // the old generation's tail, in app.log.2.gz by the next round
        r.rotate();
        r.write(800); // a whole unseen generation, app.log.1
        r.rotate();
        r.write(500);
        let frames = ("LOGHOST_MAX_FRAME_RAW", "30000");
        let out = r
            .env
            .run_env(&["pull"], &[frames, ("LOGHOST_CRASH_AT", point)]);
        assert!(
            out.status.signal().is_some(),
            "{point}: should have died: {}",
            text(&out)
        );
        let out = r.env.run_env(&["pull"], &[frames]);
        assert_eq!(out.status.code(), Some(0), "{point}: {}", text(&out));
        r.assert_complete();
        assert!(r.events().is_empty(), "{point}: {:?}", r.events());
    }
}

/// The first `n` lines written, as bytes.
fn first_lines(written: &[u8], n: usize) -> Vec<u8> {
    written
        .split_inclusive(|&b| b == b'\n')
        .take(n)
        .flatten()
        .copied()
        .collect()
}

fn gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write as _;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).expect("gzip");
    e.finish().expect("gzip")
}

/// A pull that raises the rewrite alarm for `path`: exit 4, one `rewritten` event naming it.
fn alarm_pull(r: &Rig, path: &str) {
    let out = r.pull();
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("ALARM") && err.contains("rewritten"), "{err}");
    let events = r.events();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["event"], "rewritten");
    assert!(
        events[0]["detail"]
            .as_str()
            .is_some_and(|d| d.contains(path)),
        "{events:?}"
    );
}

#[test]
fn copytruncate_race_stores_each_line_once_and_is_no_alarm() {
    // logrotate's race, without timing: collected 1,000 lines; the copy holds 900 of them (the
    // pull ran between the copy and the truncation); then truncated, and 50 new lines.
    for gz in [false, true] {
        let mut r = Rig::new("    copytruncate", "");
        r.write(1000);
        r.quiet_pull();
        let copy = first_lines(&r.written, 900);
        if gz {
            std::fs::write(r.rotated("app.log.1.gz"), gzip(&copy)).expect("write copy");
        } else {
            std::fs::write(r.rotated("app.log.1"), &copy).expect("write copy");
        }
        std::fs::write(&r.log, b"").expect("truncate");
        r.write(50);
        let out = r.pull();
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
        assert!(!text(&out).contains("ALARM"), "{}", text(&out));
        r.assert_complete(); // 1,050 lines, each once, in order
        let events = r.events();
        assert_eq!(events.len(), 1, "{events:?}");
        assert_eq!(events[0]["event"], "copy_short");
        assert_eq!(events[0]["start"].as_u64(), Some(copy.len() as u64));
        assert_eq!(
            events[0]["end"].as_u64(),
            Some(first_lines(&r.written, 1000).len() as u64)
        );
        // A notice in status, not an alarm.
        let out = r.env.run(&["status", "--json"]);
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
        assert_eq!(json["hosts"][0]["alarms"].as_array().map(Vec::len), Some(0));
        r.write(10);
        r.quiet_pull_allowing_events();
        r.assert_complete();
    }
}

#[test]
fn a_short_copy_that_is_not_a_prefix_is_an_alarm() {
    let mut r = Rig::new("    copytruncate", "");
    r.write(1000);
    r.quiet_pull();
    // The copy lacks the last 100 collected lines and one line in the middle was changed.
    let copy = String::from_utf8(first_lines(&r.written, 900)).expect("utf8");
    let copy = copy.replacen(&line(500), &line(500).replace("event", "EVENT"), 1);
    std::fs::write(r.rotated("app.log.1"), copy.as_bytes()).expect("write copy");
    std::fs::write(&r.log, b"").expect("truncate");
    r.write(50);
    // Audit samples find a changed 4 KiB block only by chance: sample the whole copy.
    r.env.write_config(
        &[host("web1", &r._sshd.address(), &[&r.log])],
        "audit_samples = 1000",
    );
    alarm_pull(&r, "app.log.1");
}

/// Deletes line `n` from a text and edits its first line.
fn edit_at_start(text: &[u8], delete: &str, edit_first: bool) -> Vec<u8> {
    let mut s = String::from_utf8(text.to_vec()).expect("utf8");
    s = s.replacen(delete, "", 1);
    if edit_first {
        s = s.replacen("web1", "WEB1", 1);
    }
    s.into_bytes()
}

#[test]
fn an_edit_that_also_changes_the_first_4_kib_raises_the_alarm() {
    // (first line edited + a collected line deleted further on, a line deleted within the
    // first 4 KiB alone)
    for (delete, edit_first) in [(500, true), (3, false), (999, true)] {
        let mut r = Rig::new("    create", "");
        r.write(1000);
        r.quiet_pull();
        let original = r.env.cat("web1", &r.log);
        let edited = edit_at_start(&r.written, &line(delete), edit_first);
        std::fs::write(&r.log, &edited).expect("rewrite");
        alarm_pull(&r, "app.log");
        // The original is kept; the edited file follows as a new generation.
        let all = r.env.cat("web1", &r.log);
        assert!(all.starts_with(&original));
        assert_eq!(&all[original.len()..], &edited[..]);
        let out = r.env.run(&["status"]);
        let s = String::from_utf8_lossy(&out.stdout);
        assert!(s.contains("ALARM") && s.contains("rewritten"), "{s}");
    }
}

#[test]
fn an_edit_of_the_first_4_kib_of_a_rotated_copy_raises_the_alarm() {
    // The collected generation was rotated to app.log.1, then edited there.
    let mut r = Rig::new("    create", "");
    r.write(1000);
    r.quiet_pull();
    r.rotate();
    let rotated = r.rotated("app.log.1");
    let edited = edit_at_start(&std::fs::read(&rotated).expect("read"), &line(3), true);
    std::fs::write(&rotated, &edited).expect("edit");
    r.write(20);
    alarm_pull(&r, "app.log.1");
    // The edited copy is stored whole as a new generation, then the new file.
    let all = r.env.cat("web1", &r.log);
    let mut want = first_lines(&r.written, 1000);
    want.extend_from_slice(&edited);
    want.extend_from_slice(&r.written[first_lines(&r.written, 1000).len()..]);
    assert_eq!(all, want);
}

#[test]
fn an_edit_of_the_first_4_kib_of_a_compressed_copy_raises_the_alarm() {
    // Rotated twice (app.log.2.gz holds the collected generation), then edited and recompressed.
    let mut r = Rig::new("    create\n    compress", "");
    r.write(1000);
    r.quiet_pull();
    r.rotate();
    r.write(30);
    r.rotate();
    let gz = r.rotated("app.log.2.gz");
    let plain = stock_decompress(&gz);
    let edited = edit_at_start(&plain, &line(2), false);
    std::fs::write(&gz, gzip(&edited)).expect("edit");
    r.write(20);
    alarm_pull(&r, "app.log.2.gz");
}

#[test]
fn history_at_first_sight_numbered_and_compressed() {
    // Generations rotated before loghost first saw the log: app.log.3.gz, app.log.2.gz,
    // app.log.1 (delaycompress), then the live file. All collected, oldest first, each once.
    let mut r = Rig::new("    create\n    compress\n    delaycompress", "");
    for n in [300, 200, 150] {
        r.write(n);
        r.rotate();
    }
    r.write(40);
    assert!(r.rotated("app.log.3.gz").exists() && r.rotated("app.log.1").exists());
    r.quiet_pull();
    r.assert_complete();
    r.write(10);
    r.rotate();
    r.write(5);
    r.quiet_pull();
    r.assert_complete();
}

#[test]
fn history_at_first_sight_dated_with_a_small_budget() {
    // dateext names; a budget smaller than the history: it spreads over rounds, each line once.
    let mut r = Rig::new("    create", "[ssh]\nmax_file_bytes_per_round = 20000");
    let mut parts = Vec::new();
    for (name, n) in [
        ("app.log-20261119.gz", 300),
        ("app.log-20261120.gz", 250),
        ("app.log-20261121", 200),
    ] {
        let start = r.written.len();
        r.write(n);
        parts.push((name, r.written[start..].to_vec()));
    }
    for (name, data) in &parts {
        let content = if name.ends_with(".gz") {
            gzip(data)
        } else {
            data.clone()
        };
        std::fs::write(r.rotated(name), content).expect("write generation");
    }
    std::fs::write(&r.log, b"").expect("empty live log");
    r.write(30);
    let mut rounds = 0;
    loop {
        let out = r.pull();
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
        rounds += 1;
        if r.env.cat("web1", &r.log).len() >= r.written.len() || rounds == 20 {
            break;
        }
    }
    assert!(rounds > 1, "the history took one round only");
    r.assert_complete();
    assert!(r.events().is_empty(), "{:?}", r.events());
}

#[test]
fn history_false_collects_from_now_on() {
    let mut r = Rig::new("    create", "");
    r.write(100);
    r.rotate();
    r.write(20);
    let config = std::fs::read_to_string(&r.env.config).expect("config");
    std::fs::write(&r.env.config, format!("{config}history = false\n")).expect("config");
    r.quiet_pull();
    let got = r.env.cat("web1", &r.log);
    assert_eq!(got, r.written[first_lines(&r.written, 100).len()..]);
}

/// Runs a pull that pauses at a crash-test pause point (`LOGHOST_PAUSE_AT`) and does `meanwhile`
/// to the server's files during the pause; the pull must end with exit 0.
fn pull_pausing(r: &mut Rig, env: &[(&str, &str)], meanwhile: impl FnOnce(&mut Rig)) {
    let child = r.env.spawn(&["pull"], env);
    std::thread::sleep(std::time::Duration::from_millis(1200));
    meanwhile(r);
    let out = child.wait_with_output().expect("wait");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}

/// copytruncate by hand: the log copied to app.log.1, truncated, `n` new lines.
fn copytruncate_then_write(r: &mut Rig, n: usize) {
    std::fs::copy(&r.log, r.rotated("app.log.1")).expect("copy");
    std::fs::write(&r.log, b"").expect("truncate");
    r.write(n);
}

#[test]
fn truncated_in_place_while_read_stores_no_new_byte_as_old() {
    // copytruncate between two frames of one read: the first frame's bytes are the old
    // generation's, the next read would return the new generation's at the same offsets.
    // Nothing is committed unless the file still starts as it did after the frame was read.
    let mut r = Rig::new("    copytruncate", "");
    r.write(200);
    r.quiet_pull();
    r.write(4000);
    let env = [
        ("LOGHOST_PAUSE_AT", "after-frame-read:2500"),
        ("LOGHOST_MAX_FRAME_RAW", "100000"),
    ];
    pull_pausing(&mut r, &env, |r| copytruncate_then_write(r, 5000));
    r.quiet_pull();
    r.assert_complete();
    assert!(r.events().is_empty(), "{:?}", r.events());
}

#[test]
fn truncated_in_place_before_the_audit_samples_is_no_alarm() {
    // copytruncate between the look at the file and its audit samples: the samples read the new
    // generation's bytes where old ones were. Not an edit: the file no longer starts as it did.
    let mut r = Rig::new("    copytruncate", "audit_samples = 1000");
    r.write(1000);
    r.quiet_pull();
    r.write(10);
    let env = [("LOGHOST_PAUSE_AT", "before-audit:2500")];
    pull_pausing(&mut r, &env, |r| copytruncate_then_write(r, 1500));
    r.quiet_pull();
    r.assert_complete();
    assert!(r.events().is_empty(), "{:?}", r.events());
}

#[test]
fn truncated_in_place_between_the_identity_and_the_tail_check_is_no_alarm() {
    // `> file` and regrown past the cursor between the identity read and the tail read: the tail
    // window then holds new bytes. A notice (the old content has no copy), not a rewrite.
    let mut r = Rig::new("    copytruncate", "");
    r.write(1000);
    r.quiet_pull();
    let env = [("LOGHOST_PAUSE_AT", "between-head-and-tail:2500")];
    pull_pausing(&mut r, &env, |r| {
        std::fs::write(&r.log, b"").expect("truncate");
        r.write(1500);
    });
    r.assert_complete();
    let events = r.events();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_ne!(events[0]["event"], "rewritten", "{events:?}");
}

#[test]
fn a_copy_set_aside_under_a_sibling_name_excuses_no_edit() {
    // The intruder keeps a pristine copy as app.log.0 and edits the log (in the middle; then
    // also its first line): not a rotation, the alarm. Removing the copy later changes nothing.
    for edit_first in [false, true] {
        let mut r = Rig::new("    create", "");
        r.write(1000);
        r.quiet_pull();
        std::fs::copy(&r.log, r.rotated("app.log.0")).expect("copy");
        let edited = edit_at_start(&r.written, &line(600), edit_first);
        std::fs::write(&r.log, &edited).expect("edit");
        alarm_pull(&r, "app.log");
        std::fs::remove_file(r.rotated("app.log.0")).expect("rm");
        r.quiet_pull_allowing_events();
        assert_eq!(r.events().len(), 1, "{:?}", r.events());
    }
}

#[test]
fn a_deleted_log_is_a_notice_once_and_a_new_one_is_collected_whole() {
    let mut r = Rig::new("    create", "");
    r.write(100);
    r.quiet_pull();
    std::fs::remove_file(&r.log).expect("rm");
    let out = r.pull();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let events = r.events();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["event"], "gone");
    r.quiet_pull_allowing_events();
    assert_eq!(r.events().len(), 1, "told once");
    r.write(30);
    r.quiet_pull_allowing_events();
    r.assert_complete();
    assert_eq!(r.events().len(), 1, "{:?}", r.events());
}

#[test]
fn generations_rotated_past_rotate_n_leave_the_rest_collected() {
    // rotate 2 and three rotations between two pulls: the collected generation is deleted by
    // logrotate; the two generations still on the server are collected, oldest first, once.
    let mut r = Rig::new("    create\n    rotate 2", "");
    r.write(300);
    r.quiet_pull();
    r.write(50); // the lost tail: deleted before anyone could read it
    r.rotate();
    let b = r.written.len();
    r.write(200);
    r.rotate();
    r.write(150);
    r.rotate();
    r.write(40);
    let out = r.pull();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let mut want = first_lines(&r.written, 300);
    want.extend_from_slice(&r.written[b..]);
    assert_eq!(numbers(&r.env.cat("web1", &r.log)), numbers(&want));
    assert!(r.events().iter().all(|e| e["event"] != "rewritten"));
}

#[test]
fn after_a_truncation_a_generation_rotated_before_any_pull_is_collected() {
    let mut r = Rig::new("    create", "");
    r.write(100);
    r.quiet_pull();
    std::fs::write(&r.log, b"").expect("truncate");
    r.quiet_pull_allowing_events(); // `truncated`; nothing of the new generation yet
    r.write(80); // a generation never pulled...
    r.rotate(); // ...rotated away
    r.write(20);
    r.quiet_pull_allowing_events();
    r.assert_complete();
    let events = r.events();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["event"], "truncated");
}

#[test]
fn a_copytruncate_copy_in_progress_is_not_a_generation_of_its_own() {
    // Cursor in A. copytruncate #1: A -> app.log.1, B regrows in app.log. copytruncate #2 is
    // half-way: app.log.1 -> app.log.2, B half copied into app.log.1, app.log not truncated yet.
    let mut r = Rig::new("    copytruncate", "");
    r.write(300);
    r.quiet_pull();
    r.write(100);
    let a_end = r.written.len();
    std::fs::write(r.rotated("app.log.1"), &r.written).expect("copy 1");
    std::fs::write(&r.log, b"").expect("truncate 1");
    r.write(500);
    let b = r.written[a_end..].to_vec();
    std::fs::rename(r.rotated("app.log.1"), r.rotated("app.log.2")).expect("rename");
    std::fs::write(r.rotated("app.log.1"), &b[..b.len() / 2]).expect("copy 2 half");
    let out = r.pull();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    // The copy completes, the truncation comes, new lines follow.
    std::fs::write(r.rotated("app.log.1"), &b).expect("copy 2 whole");
    std::fs::write(&r.log, b"").expect("truncate 2");
    r.write(60);
    r.quiet_pull();
    r.assert_complete();
}

#[test]
fn a_same_length_edit_of_a_rotated_copy_is_found_by_audit_samples() {
    let mut r = Rig::new("    create", "audit_samples = 1000");
    r.write(1000);
    r.quiet_pull();
    r.write(10);
    r.rotate();
    let rotated = r.rotated("app.log.1");
    let text_now = String::from_utf8(std::fs::read(&rotated).expect("read")).expect("utf8");
    let edited = text_now.replacen(&line(500), &line(500).replace("event", "EVENT"), 1);
    std::fs::write(&rotated, edited).expect("edit");
    alarm_pull(&r, "app.log.1");
}

#[test]
fn a_log_rewritten_in_a_loop_is_never_silent() {
    // The intruder rewrites a byte of the first 4 KiB over and over, so that no look at the log
    // holds still: the round ends with the alarm or with the notice `unsettled`, never silently.
    use std::os::unix::fs::FileExt as _;
    let mut r = Rig::new("    create", "");
    r.write(1000);
    r.quiet_pull();
    r.write(10);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (stop, log) = (stop.clone(), r.log.clone());
        std::thread::spawn(move || {
            let f = std::fs::OpenOptions::new()
                .write(true)
                .open(&log)
                .expect("open");
            let mut i = 0u64;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                f.write_at(format!("{:02}", i % 100).as_bytes(), 14)
                    .expect("pwrite");
                i += 1;
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
        })
    };
    let out = r.pull();
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    writer.join().expect("writer");
    let events: Vec<_> = r.events().iter().map(|e| e["event"].clone()).collect();
    assert!(
        out.status.code() == Some(4) || events.iter().any(|e| e == "unsettled"),
        "{events:?} {}",
        text(&out)
    );
}

/// The numbers of the `line(i)` lines in stored content, in order.
fn numbers(data: &[u8]) -> Vec<usize> {
    String::from_utf8_lossy(data)
        .lines()
        .filter_map(|l| l.split(" event ").nth(1)?.split(' ').next()?.parse().ok())
        .collect()
}

/// Every written line stored once (other lines, such as planted junk, ignored).
fn assert_each_line_once(r: &Rig) {
    let mut got = numbers(&r.env.cat("web1", &r.log));
    got.sort_unstable();
    assert_eq!(got, (0..r.next).collect::<Vec<_>>());
}

#[test]
fn a_planted_sibling_name_does_not_derail_later_rotations() {
    // app.log.0 sorts before every real generation; planted once, it is collected once (as a
    // generation never seen), then known, and later rotations go on as before.
    let mut r = Rig::new("    create", "");
    r.write(100);
    r.quiet_pull();
    std::fs::write(
        r.rotated("app.log.0"),
        b"planted junk line one, not a log line at all\n",
    )
    .expect("plant");
    for _ in 0..3 {
        r.write(50);
        r.rotate();
        r.write(20);
        let out = r.pull();
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    }
    assert_each_line_once(&r);
    assert!(r.events().is_empty(), "{:?}", r.events());
    let junk = String::from_utf8_lossy(&r.env.cat("web1", &r.log))
        .matches("planted junk")
        .count();
    assert_eq!(junk, 1);
}

#[test]
fn switching_to_dateext_leaves_no_generation_behind() {
    // Numbered rotations, then dateext: the old app.log.1 stays and sorts before every dated
    // name. Two rotations between pulls, each line once, no notice.
    let mut r = Rig::new("    create", "");
    r.write(100);
    r.quiet_pull();
    r.write(30);
    r.rotate();
    r.quiet_pull();
    let conf = std::fs::read_to_string(&r.conf).expect("conf");
    std::fs::write(
        &r.conf,
        conf.replace("create", "create\n    dateext\n    dateformat -%Y%m%d-%s"),
    )
    .expect("conf");
    for _ in 0..2 {
        r.write(40);
        r.rotate();
        std::thread::sleep(std::time::Duration::from_millis(1100));
        r.write(40);
        r.rotate();
        std::thread::sleep(std::time::Duration::from_millis(1100));
        r.write(10);
        r.quiet_pull();
    }
    assert_each_line_once(&r);
}

#[test]
fn junk_names_do_not_hide_an_edited_copy_from_the_search() {
    let mut r = Rig::new("    create", "");
    r.write(1000);
    r.quiet_pull();
    r.rotate();
    for n in [
        "0", "00", "000", "0000", "00000", "000000", "0000000", "00000000",
    ] {
        std::fs::write(r.rotated(&format!("app.log.{n}")), format!("junk {n}\n")).expect("junk");
    }
    let rotated = r.rotated("app.log.1");
    let edited = edit_at_start(&std::fs::read(&rotated).expect("read"), &line(3), true);
    std::fs::write(&rotated, &edited).expect("edit");
    r.write(20);
    let out = r.pull();
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
}

#[test]
fn a_banner_that_every_generation_starts_with_is_no_identity() {
    // Only the banner was collected when the log rotated: the new file starts with it too. The
    // rotated generation's lines are collected from the rotated file, the new one from 0.
    let mut r = Rig::new("    create", "");
    let banner = b"=== myapp 2.4 starting ===\n";
    std::fs::write(&r.log, banner).expect("banner");
    r.written.extend_from_slice(banner);
    r.quiet_pull();
    r.write(50);
    r.rotate();
    append(Path::new(&r.log), banner);
    r.written.extend_from_slice(banner);
    r.write(10);
    r.quiet_pull();
    r.assert_complete();
}

#[test]
fn a_line_deleted_from_a_small_log_raises_the_alarm() {
    // 25 lines (under 2 KiB): too small for sampled blocks; its lines are the evidence.
    let mut r = Rig::new("    create", "");
    r.write(25);
    r.quiet_pull();
    let edited = edit_at_start(&r.written, &line(12), false);
    std::fs::write(&r.log, &edited).expect("sed -i");
    // sed -i writes a new file; the first line changed too in this variant.
    let out = r.pull();
    // Deleting line 12 keeps the first 4 KiB's start but shortens the file: the tail check
    // sees it. Deleting the first line changes the identity: the line rule sees it.
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    let mut r = Rig::new("    create", "");
    r.write(25);
    r.quiet_pull();
    let edited = edit_at_start(&r.written, &line(0), false);
    std::fs::write(&r.log, &edited).expect("sed -i");
    r.write(3);
    alarm_pull(&r, "app.log");
}

#[test]
fn a_cut_compressed_copy_does_not_stop_collection() {
    let mut r = Rig::new("    create\n    compress", "");
    r.write(300);
    r.quiet_pull();
    r.write(300);
    r.rotate();
    let gz = r.rotated("app.log.1.gz");
    let data = std::fs::read(&gz).expect("read gz");
    std::fs::write(&gz, &data[..data.len() - 2000]).expect("cut gz");
    r.write(40);
    let out = r.pull();
    assert_ne!(out.status.code(), Some(1), "{}", text(&out));
    r.write(10);
    let out = r.pull();
    assert_ne!(out.status.code(), Some(1), "{}", text(&out));
    // The live file's lines are collected.
    let got = numbers(&r.env.cat("web1", &r.log));
    assert!(got.contains(&645) && got.contains(&649), "{got:?}");
}

#[test]
fn generations_are_remembered_once_each_however_many_frames() {
    // A quiet log growing one line a round: many frames, one generation. Then `> app.log`:
    // the rotated generation must not be collected again.
    let mut r = Rig::new("    create", "");
    r.write(20);
    r.quiet_pull();
    r.rotate();
    for _ in 0..70 {
        r.write(1);
        r.quiet_pull();
    }
    std::fs::write(&r.log, b"").expect("truncate");
    r.write(2);
    r.quiet_pull_allowing_events();
    r.assert_complete();
}

/// A Java-style stack trace: a timestamped header, then frames every trace repeats.
fn trace(i: usize) -> String {
    let mut t = format!(
        "2026-12-02T05:{:02}:{:02} ERROR request {i} failed\n",
        i / 60 % 60,
        i % 60
    );
    for f in 0..15 {
        t.push_str(&format!(
            "\tat com.example.app.Handler.step{f}(Handler.java:{})\n",
            100 + f
        ));
    }
    t
}

#[test]
fn rotating_a_log_of_repeated_stack_traces_is_no_alarm() {
    let mut r = Rig::new("    create", "");
    let mut n = 0;
    let mut add = |r: &mut Rig, k: usize| {
        let mut text = String::new();
        for _ in 0..k {
            text.push_str(&trace(n));
            n += 1;
        }
        append(Path::new(&r.log), text.as_bytes());
        r.written.extend_from_slice(text.as_bytes());
    };
    add(&mut r, 60);
    r.quiet_pull();
    for _ in 0..4 {
        add(&mut r, 5);
        r.rotate();
        add(&mut r, 2);
        r.quiet_pull();
    }
    r.assert_complete();
}

#[test]
fn a_small_log_of_one_repeated_message_rotates_quietly() {
    let mut r = Rig::new("    create", "");
    let msg = b"WARNING: disk usage above 90% on /dev/sda1\n";
    for _ in 0..6 {
        append(Path::new(&r.log), msg);
        r.written.extend_from_slice(msg);
    }
    r.quiet_pull();
    r.rotate();
    for _ in 0..2 {
        append(Path::new(&r.log), msg);
        r.written.extend_from_slice(msg);
    }
    r.quiet_pull();
    r.assert_complete();
}

#[test]
fn history_false_never_takes_an_old_generation_for_the_live_one() {
    // Only the banner is collected; app.log.1 (never collected, history off) starts with it.
    let r = Rig::new("    create", "");
    let banner = b"=== app log opened ===\n";
    let mut old = banner.to_vec();
    for i in 0..20 {
        old.extend_from_slice(line(1000 + i).as_bytes());
    }
    std::fs::write(r.rotated("app.log.1"), &old).expect("old generation");
    std::fs::write(&r.log, banner).expect("banner");
    let config = std::fs::read_to_string(&r.env.config).expect("config");
    std::fs::write(&r.env.config, format!("{config}history = false\n")).expect("config");
    r.quiet_pull();
    r.quiet_pull();
    assert_eq!(r.env.cat("web1", &r.log), banner);
}

#[test]
fn a_compressed_copy_cut_far_before_the_cursor_is_an_alarm() {
    // Collected in two rounds; then rotated, and the rotated copy cut to its first 300 lines
    // and compressed: far more than copytruncate's race can lose.
    let mut r = Rig::new("    create", "");
    r.write(1000);
    r.quiet_pull();
    r.write(1000);
    r.quiet_pull();
    std::fs::rename(&r.log, r.rotated("app.log.1")).expect("rotate");
    let first = first_lines(&r.written, 300);
    std::fs::write(r.rotated("app.log.1.gz"), gzip(&first)).expect("cut copy");
    std::fs::remove_file(r.rotated("app.log.1")).expect("rm");
    r.write(5);
    alarm_pull(&r, "app.log.1.gz");
}

/// `loghost tail`: the last lines; then, following, each pulled line once as its frame
/// commits (a line a pull cut in two shown whole), a note for a rotation, and the alarm.
#[test]
fn tail_follows_pulled_lines_through_rotations_and_alarms() {
    let mut r = Rig::new("    create", "");
    r.write(30);
    r.quiet_pull();
    let out = r.env.run(&["tail", "-n", "5", "web1", "app.log"]);
    assert_ok(&out, "tail");
    let want: String = (25..30).map(line).collect();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        want,
        "the last 5 lines, bare (one host, one log)"
    );
    let out = r.env.run(&["tail", "-n", "100", "web1", "app.log"]);
    assert_eq!(out.stdout, r.written, "fewer lines than asked: all of them");

    let name = loghost::store::layout::stored_name(&r.log);
    let prefixed = |i: usize| format!("web1 {name}: {}", line(i).trim_end());
    let mut t = Follower::spawn(&r.env, &["tail", "-f", "-n", "2", "--host", "web*"]);
    assert_eq!(t.lines(2), vec![prefixed(28), prefixed(29)]);
    assert!(
        t.more(Duration::from_millis(500)).is_empty(),
        "nothing new yet"
    );
    r.write(10);
    r.quiet_pull();
    assert_eq!(t.lines(10), (30..40).map(prefixed).collect::<Vec<_>>());

    // The server is writing a line when the pull reads: it is shown whole, once, when its
    // rest is collected.
    append(Path::new(&r.log), b"2026-11-28T11:00:00 web1 app[1]: half");
    r.quiet_pull();
    assert!(
        t.more(Duration::from_millis(600)).is_empty(),
        "half a line waits"
    );
    append(Path::new(&r.log), b" and the rest\n");
    r.quiet_pull();
    assert_eq!(
        t.lines(1),
        vec![format!(
            "web1 {name}: 2026-11-28T11:00:00 web1 app[1]: half and the rest"
        )]
    );

    // Rotation: the rest of the old file, a note, the new file's lines.
    r.write(3);
    r.rotate();
    r.write(4);
    r.quiet_pull();
    assert_eq!(t.lines(7), (40..47).map(prefixed).collect::<Vec<_>>());
    assert!(
        t.wait_error(&format!("web1 {name}: rotated")),
        "{:?}",
        t.errors
    );

    // An intruder edits collected lines: the alarm is told; the rewritten file follows as a
    // new generation (no rotation note for it).
    r.write(20);
    r.quiet_pull();
    assert_eq!(t.lines(20), (47..67).map(prefixed).collect::<Vec<_>>());
    let now = std::fs::read_to_string(&r.log).expect("read");
    let forged = line(60).replace("user8", "user1");
    std::fs::write(&r.log, now.replacen(&line(60), &forged, 1)).expect("edit");
    let out = r.pull();
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    assert!(t.wait_error("ALARM"), "{:?}", t.errors);
    let mut want: Vec<String> = (43..67).map(prefixed).collect();
    want[60 - 43] = format!("web1 {name}: {}", forged.trim_end());
    assert_eq!(t.lines(24), want);
    let errors = t.errors_now().to_vec();
    let rotations = errors.iter().filter(|e| e.contains("rotated")).count();
    assert_eq!(rotations, 1, "{errors:?}");
    assert!(t.running());
}
