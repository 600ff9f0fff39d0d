//! The tamper matrix: every way an intruder could edit the archive after collection makes
//! `loghost verify` fail (exit 1, naming what), and the honest archive passes (exit 0).
//! Archives are built by real pulls from the real sshd.

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;

use common::*;
use loghost::hash::Hash;
use loghost::ledger::{self, Entry};

/// An archive built in three pull rounds (two logs, several frames, three checkpoints), with an
/// anchor directory outside the store.
struct Archive {
    env: Env,
    _sshd: Sshd,
    auth: String,
    app: String,
    anchor: PathBuf,
}

impl Archive {
    fn pull(&self) {
        let out = self.env.run(&["pull"]);
        assert_ok(&out, "pull");
    }

    fn verify(&self, extra: &[&str]) -> Output {
        let mut args = vec!["verify"];
        args.extend_from_slice(extra);
        self.env.run(&args)
    }

    fn ledger_path(&self) -> PathBuf {
        self.env.store.join("ledger/ledger.jsonl")
    }

    fn ledger_lines(&self) -> Vec<String> {
        std::fs::read_to_string(self.ledger_path())
            .expect("ledger")
            .lines()
            .map(str::to_string)
            .collect()
    }

    fn write_ledger(&self, lines: &[String]) {
        let mut text = lines.join("\n");
        text.push('\n');
        std::fs::write(self.ledger_path(), text).expect("write ledger");
        // An intruder would also drop the cache; verify never uses it anyway.
        let _ = std::fs::remove_file(self.env.store.join("state/index.json"));
    }

    /// The stored file of the first frame of `source`.
    fn stored(&self, source: &str) -> PathBuf {
        let f = &self.env.frames_for(source)[0];
        self.env.store.join(f["file"].as_str().expect("file"))
    }

    fn checkpoints(&self) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = std::fs::read_dir(self.env.store.join("ledger/checkpoints"))
            .expect("checkpoints")
            .map(|e| e.expect("entry").path())
            .collect();
        v.sort();
        v
    }
}

fn archive(with_anchor: bool) -> Archive {
    let env = Env::new();
    let auth = env.rpath("var/log/auth.log");
    let app = env.rpath("var/log/app.log");
    std::fs::write(&auth, log_lines(1, 2000)).expect("write");
    std::fs::write(&app, log_lines(2, 500)).expect("write");
    let sshd = env.init_and_start_sshd("");
    let anchor = env.dir.path().join("auditor");
    let extra = if with_anchor {
        format!("[ledger]\nanchors = [\"file://{}\"]", anchor.display())
    } else {
        String::new()
    };
    env.write_config(&[host("web1", &sshd.address(), &[&auth, &app])], &extra);
    env.trust("web1", &sshd);
    let a = Archive {
        env,
        _sshd: sshd,
        auth,
        app,
        anchor,
    };
    a.pull();
    append(Path::new(&a.auth), &log_lines(3, 300));
    append(Path::new(&a.app), &log_lines(4, 100));
    a.pull();
    append(Path::new(&a.auth), &log_lines(5, 300));
    a.pull();
    a
}

fn assert_tampered(out: &Output, expect: &[&str]) {
    assert_eq!(
        out.status.code(),
        Some(1),
        "verify must fail:\n{}",
        text(out)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    for e in expect {
        assert!(stdout.contains(e), "expected {e:?} in:\n{stdout}");
    }
}

#[test]
fn the_honest_archive_passes_also_deep() {
    let a = archive(true);
    assert_eq!(a.checkpoints().len(), 3, "one per round");
    for args in [&[][..], &["--deep"][..]] {
        let out = a.verify(args);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(stdout.contains("verify: OK"), "{stdout}");
        assert!(
            !stdout.contains("newer than the last anchored"),
            "all anchored: {stdout}"
        );
    }
    // The anchor holds every checkpoint, under the log's origin.
    let anchored: Vec<_> = walk_files(&a.anchor);
    assert_eq!(anchored.len(), 3, "{anchored:?}");
}

fn walk_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if e.path().is_dir() {
            out.extend(walk_files(&e.path()));
        } else {
            out.push(e.path());
        }
    }
    out
}

#[test]
fn a_flipped_byte_in_a_log_file_is_found() {
    let a = archive(false);
    let f = a.stored(&a.auth);
    let mut bytes = std::fs::read(&f).expect("read");
    bytes[200] ^= 0x01;
    std::fs::write(&f, bytes).expect("write");
    let rel = f
        .strip_prefix(&a.env.store)
        .expect("rel")
        .display()
        .to_string();
    assert_tampered(&a.verify(&[]), &[&rel, "do not match entry"]);
}

#[test]
fn a_truncated_log_file_is_found() {
    let a = archive(false);
    let f = a.stored(&a.auth);
    let len = std::fs::metadata(&f).expect("meta").len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&f)
        .expect("open")
        .set_len(len - 100)
        .expect("truncate");
    assert_tampered(&a.verify(&[]), &["truncated"]);
}

#[test]
fn a_deleted_log_file_is_found() {
    let a = archive(false);
    std::fs::remove_file(a.stored(&a.app)).expect("remove");
    assert_tampered(&a.verify(&[]), &["missing", "deleted"]);
}

#[test]
fn an_extra_file_is_found() {
    let a = archive(false);
    let dir = a.stored(&a.app).parent().expect("day dir").to_path_buf();
    std::fs::write(dir.join("planted.log.zst"), b"not from any pull").expect("write");
    assert_tampered(
        &a.verify(&[]),
        &["planted.log.zst", "no ledger entry covers"],
    );
}

#[test]
fn a_dropped_ledger_line_is_found() {
    let a = archive(false);
    let mut lines = a.ledger_lines();
    lines.remove(3);
    a.write_ledger(&lines);
    assert_tampered(&a.verify(&[]), &["sequence number"]);
}

#[test]
fn swapped_ledger_lines_are_found() {
    let a = archive(false);
    let mut lines = a.ledger_lines();
    lines.swap(2, 3);
    a.write_ledger(&lines);
    assert_tampered(&a.verify(&[]), &["sequence number"]);
}

#[test]
fn an_edited_ledger_line_is_found_even_when_it_matches_edited_data() {
    // The intruder rewrites a frame with his own content and updates its ledger entry to match,
    // in canonical form: every hash in the entry agrees with the file. The checkpoints do not.
    let a = archive(false);
    let lines = a.ledger_lines();
    let idx = lines
        .iter()
        .position(|l| l.contains("\"kind\":\"frame\"") && l.contains("app.log"))
        .expect("a frame of app.log");
    let Ok(Entry::Frame(mut entry)) = ledger::parse_line(lines[idx].as_bytes(), idx as u64) else {
        panic!("not a frame line");
    };
    let file = a.env.store.join(&entry.file);
    let forged_frame = zstd::encode_all(&b"nothing happened here\n"[..], 1).expect("zstd");
    let (offset, length) = (entry.offset as usize, entry.length as usize);
    let mut bytes = std::fs::read(&file).expect("read");
    bytes.splice(offset..offset + length, forged_frame.iter().copied());
    std::fs::write(&file, &bytes).expect("write");
    entry.length = forged_frame.len() as u64;
    entry.sha256 = Hash::of(&forged_frame);
    entry.raw_sha256 = Hash::of(b"nothing happened here\n");
    let file_rel = entry.file.clone();
    let mut lines = lines.clone();
    lines[idx] = canonical(&Entry::Frame(entry));
    // Later frames of the same file move: keep their entries consistent too.
    let delta = forged_frame.len() as i64 - length as i64;
    for (i, l) in lines.iter_mut().enumerate().skip(idx + 1) {
        if let Ok(Entry::Frame(mut e)) = ledger::parse_line(l.as_bytes(), i as u64)
            && e.file == file_rel
        {
            e.offset = (e.offset as i64 + delta) as u64;
            *l = canonical(&Entry::Frame(e));
        }
    }
    a.write_ledger(&lines);
    assert_tampered(
        &a.verify(&[]),
        &["do not match this checkpoint", "rewritten"],
    );
}

fn canonical(e: &Entry) -> String {
    String::from_utf8(e.to_line()).expect("utf8")
}

#[test]
fn a_forged_checkpoint_is_found() {
    let a = archive(false);
    // A checkpoint signed by another key, dropped into the store and given as an auditor's copy.
    let other = tempfile::tempdir().expect("tempdir");
    let key_path = other.path().join("other.key");
    loghost::keys::ensure_signing_key(&key_path, "forger.example/log").expect("key");
    let key = loghost::keys::load_signing_key(&key_path).expect("load");
    let lines = a.ledger_lines();
    let leaves: Vec<_> = lines
        .iter()
        .map(|l| loghost::ledger::merkle::leaf_hash(l.as_bytes()))
        .collect();
    let forged = loghost::ledger::checkpoint::Checkpoint {
        origin: "forger.example/log".into(),
        size: lines.len() as u64,
        root: loghost::ledger::merkle::root(&leaves),
    }
    .sign(&key)
    .expect("sign");
    let path = a
        .env
        .store
        .join("ledger/checkpoints")
        .join(format!("{:020}.ckpt", 999));
    std::fs::write(&path, &forged).expect("write");
    assert_tampered(&a.verify(&[]), &["not a valid checkpoint of this log"]);
    std::fs::remove_file(&path).expect("remove");
    let external = other.path().join("auditor.ckpt");
    std::fs::write(&external, &forged).expect("write");
    assert_tampered(
        &a.verify(&["--checkpoint", external.to_str().expect("utf8")]),
        &["forged or foreign"],
    );
}

#[test]
fn a_truncated_ledger_tail_is_found_given_a_newer_external_checkpoint() {
    let a = archive(false);
    let newest = a.checkpoints().pop().expect("a checkpoint");
    let auditor = a.env.dir.path().join("auditor-copy.ckpt");
    std::fs::copy(&newest, &auditor).expect("auditor's copy");
    // The intruder drops the last round: ledger lines, the frames they cover, its checkpoint.
    let mut lines = a.ledger_lines();
    let cut = lines.split_off(lines.len() - 1);
    for l in &cut {
        let e: serde_json::Value = serde_json::from_str(l).expect("json");
        if e["kind"] == "frame" {
            let f = a.env.store.join(e["file"].as_str().expect("file"));
            std::fs::OpenOptions::new()
                .write(true)
                .open(&f)
                .expect("open")
                .set_len(e["offset"].as_u64().expect("offset"))
                .expect("truncate");
        }
    }
    a.write_ledger(&lines);
    std::fs::remove_file(&newest).expect("remove the newest checkpoint");
    // Self-consistent now: without the auditor's copy nothing shows.
    let out = a.verify(&[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_tampered(
        &a.verify(&["--checkpoint", auditor.to_str().expect("utf8")]),
        &["auditor-copy.ckpt", "cut short or rolled back"],
    );
}

#[test]
fn a_rollback_to_an_older_consistent_store_is_found() {
    let a = archive(true);
    // An old, complete copy of the store, taken before more was collected.
    let old = a.env.dir.path().join("old-store");
    copy_dir(&a.env.store, &old);
    append(Path::new(&a.auth), &log_lines(6, 200));
    a.pull();
    let auditor = a.env.dir.path().join("auditor-copy.ckpt");
    std::fs::copy(a.checkpoints().pop().expect("newest"), &auditor).expect("copy");
    // The intruder puts the old store back: every file, ledger line and checkpoint agrees.
    std::fs::remove_dir_all(&a.env.store).expect("remove");
    copy_dir(&old, &a.env.store);
    // The anchor outside the store holds the newer checkpoint: verify finds the rollback alone.
    assert_tampered(&a.verify(&[]), &["anchor", "cut short or rolled back"]);
    // With the anchor's copies gone too, the empty anchor is itself a problem; and the
    // auditor's copy finds the rollback.
    std::fs::remove_dir_all(&a.anchor).expect("remove anchor");
    assert_tampered(&a.verify(&[]), &["holds no checkpoint of this log"]);
    assert_tampered(
        &a.verify(&["--checkpoint", auditor.to_str().expect("utf8")]),
        &["cut short or rolled back"],
    );
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("read_dir").flatten() {
        let dest = to.join(e.file_name());
        if e.path().is_dir() {
            copy_dir(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), &dest).expect("copy");
        }
    }
}

#[test]
fn the_unanchored_tail_is_reported() {
    let a = archive(true);
    // The anchor misses the newest checkpoint (it was unreachable, say).
    let mut anchored = walk_files(&a.anchor);
    anchored.sort();
    std::fs::remove_file(anchored.pop().expect("newest")).expect("remove");
    let out = a.verify(&[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("1 entries are newer than the last anchored checkpoint"),
        "{stdout}"
    );
}

#[test]
fn a_failing_anchor_is_loud_but_collection_goes_on() {
    let env = Env::new();
    let log = env.rpath("var/log/syslog");
    std::fs::write(&log, log_lines(7, 100)).expect("write");
    let sshd = env.init_and_start_sshd("");
    // The anchor's place is taken by a file: nothing can be written there.
    let blocked = env.dir.path().join("blocked");
    std::fs::write(&blocked, b"").expect("write");
    env.write_config(
        &[host("web1", &sshd.address(), &[&log])],
        &format!("[ledger]\nanchors = [\"file://{}\"]", blocked.display()),
    );
    env.trust("web1", &sshd);
    let out = env.run(&["pull"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("anchor file://"),
        "{}",
        text(&out)
    );
    assert_eq!(
        env.cat("web1", &log),
        std::fs::read(&log).expect("read"),
        "collected anyway"
    );
    let out = env.run(&["verify"]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("could not be read"),
        "{}",
        text(&out)
    );
}

#[test]
fn no_checkpoint_is_signed_over_a_rewritten_ledger() {
    let a = archive(false);
    let before = a.checkpoints();
    // An early entry edited (still canonical), the cache gone: the next round must not sign.
    let mut lines = a.ledger_lines();
    lines[0] = lines[0].replace("SHA256:", "SHA256:X");
    assert_ne!(lines[0], a.ledger_lines()[0]);
    a.write_ledger(&lines);
    append(Path::new(&a.auth), &log_lines(8, 10));
    let out = a.env.run(&["pull"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("ALARM"),
        "{}",
        text(&out)
    );
    assert_eq!(a.checkpoints(), before, "no new checkpoint");
}

#[test]
fn proofs_let_an_auditor_check_one_day_offline() {
    let a = archive(false);
    let day_file = a.stored(&a.auth);
    let rel = day_file
        .strip_prefix(&a.env.store)
        .expect("rel")
        .display()
        .to_string();
    let proofs = a.env.dir.path().join("proofs");
    assert_ok(
        &a.env.run(&[
            "prove",
            "inclusion",
            "--file",
            &rel,
            "--out",
            proofs.to_str().expect("utf8"),
        ]),
        "prove",
    );
    let key = String::from_utf8(a.env.run(&["key"]).stdout).expect("utf8");
    let mut files: Vec<String> = walk_files(&proofs)
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    files.sort();
    assert_eq!(files.len(), a.env.frames_for(&a.auth).len());
    // Offline: no config, only the key, the proofs and the day's file.
    let check = |data: &Path| {
        let mut cmd = std::process::Command::new(loghost_bin());
        cmd.args(["verify-proof", "--key", key.trim(), "--data"])
            .arg(data)
            .args(&files);
        cmd.output().expect("run")
    };
    let out = check(&day_file);
    assert_ok(&out, "verify-proof");
    assert!(String::from_utf8_lossy(&out.stdout).contains("are the proven frames"));
    // One flipped byte in the day's file, and the proofs no longer hold for it.
    let copy = a.env.dir.path().join("day-copy.zst");
    let mut bytes = std::fs::read(&day_file).expect("read");
    bytes[10] ^= 0x80;
    std::fs::write(&copy, &bytes).expect("write");
    assert_eq!(check(&copy).status.code(), Some(1));

    // A consistency proof between the first and the newest checkpoint.
    let cps = a.checkpoints();
    let out_file = a.env.dir.path().join("c.proof");
    assert_ok(
        &a.env.run(&[
            "prove",
            "consistency",
            cps[0].to_str().expect("utf8"),
            cps[cps.len() - 1].to_str().expect("utf8"),
            "-o",
            out_file.to_str().expect("utf8"),
        ]),
        "prove consistency",
    );
    let out = std::process::Command::new(loghost_bin())
        .args(["verify-proof", "--key", key.trim()])
        .arg(&out_file)
        .output()
        .expect("run");
    assert_ok(&out, "verify-proof consistency");
}

#[test]
fn deep_finds_content_that_does_not_match_its_raw_hash() {
    // A frame whose stored bytes match the entry but whose content does not (as a loghost bug or
    // a forger who also dropped every checkpoint would leave it): only --deep can see it.
    let a = archive(false);
    let mut lines = a.ledger_lines();
    let idx = lines
        .iter()
        .position(|l| l.contains("\"kind\":\"frame\""))
        .expect("a frame");
    let Ok(Entry::Frame(mut e)) = ledger::parse_line(lines[idx].as_bytes(), idx as u64) else {
        panic!("not a frame line");
    };
    e.raw_sha256 = Hash::of(b"something else");
    lines[idx] = canonical(&Entry::Frame(e));
    a.write_ledger(&lines);
    for c in a.checkpoints() {
        std::fs::remove_file(c).expect("remove checkpoint");
    }
    // (The signed head says the ledger changed; only --deep sees the content itself.)
    let out = a.verify(&[]);
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("decompress to"),
        "shallow verify does not decompress: {}",
        text(&out)
    );
    assert_tampered(&a.verify(&["--deep"]), &["decompress to", "hash differs"]);
}

#[test]
fn verify_exits_2_when_it_cannot_run() {
    let env = Env::new();
    env.write_config(&[], "");
    let out = env.run(&["verify"]);
    assert_eq!(out.status.code(), Some(2), "no store: {}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("could not run"));
    assert_ok(&env.run(&["init"]), "init");
    let out = env.run(&["verify", "--key", "not-a-key"]);
    assert_eq!(out.status.code(), Some(2), "bad key: {}", text(&out));
    let out = env.run(&["verify", "--checkpoint", "/nonexistent.ckpt"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "unreadable checkpoint: {}",
        text(&out)
    );
    // A store fresh from init verifies.
    let out = env.run(&["verify"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}

/// The anchor's directory for this log (one origin).
fn anchor_origin_dir(a: &Archive) -> PathBuf {
    let dirs: Vec<PathBuf> = std::fs::read_dir(&a.anchor)
        .expect("anchor")
        .map(|e| e.expect("entry").path())
        .collect();
    assert_eq!(dirs.len(), 1, "{dirs:?}");
    dirs[0].clone()
}

fn ckpt_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|r| r.map(|e| e.expect("entry").path()).collect())
        .unwrap_or_default();
    v.sort();
    v
}

#[test]
fn anchored_history_rewritten_is_never_signed_and_verify_finds_it() {
    // The intruder of issue 17 §1: every frame of one log taken out of the ledger (renumbered,
    // canonical, padded with events so it is longer than the anchored size), its files deleted,
    // the store's checkpoints and index deleted; then loghost runs as usual.
    let a = archive(true);
    let anchored_before = ckpt_files(&anchor_origin_dir(&a));
    let lines = a.ledger_lines();
    let mut kept: Vec<String> = Vec::new();
    for (i, l) in lines.iter().enumerate() {
        let entry = ledger::parse_line(l.as_bytes(), i as u64).expect("entry");
        let entry = match entry {
            Entry::Frame(f) if f.source == a.app => continue,
            Entry::Frame(mut f) => {
                f.seq = kept.len() as u64;
                Entry::Frame(f)
            }
            Entry::Event(mut e) => {
                e.seq = kept.len() as u64;
                Entry::Event(e)
            }
        };
        kept.push(canonical(&entry));
    }
    let time = serde_json::from_str::<serde_json::Value>(lines.last().expect("a line"))
        .expect("json")["time"]
        .as_str()
        .expect("time")
        .to_string();
    while kept.len() <= lines.len() {
        kept.push(canonical(&Entry::Event(ledger::Event {
            seq: kept.len() as u64,
            time: time.clone(),
            event: ledger::EventKind::Unsettled,
            host: Some("web1".into()),
            source: Some(a.auth.clone()),
            start: None,
            end: None,
            sha256: None,
            detail: "padding".into(),
        })));
    }
    for f in a.env.frames_for(&a.app) {
        let _ = std::fs::remove_file(a.env.store.join(f["file"].as_str().expect("file")));
    }
    a.write_ledger(&kept);
    for c in a.checkpoints() {
        std::fs::remove_file(c).expect("remove checkpoint");
    }
    append(Path::new(&a.auth), &log_lines(9, 10));

    let out = a.env.run(&["pull"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("ALARM") && stderr.contains("not what this loghost last wrote"),
        "{}",
        text(&out)
    );
    assert!(
        a.checkpoints().is_empty(),
        "nothing signed: {:?}",
        a.checkpoints()
    );
    assert_eq!(
        ckpt_files(&anchor_origin_dir(&a)),
        anchored_before,
        "nothing anchored"
    );
    let status = a.env.run(&["status"]);
    assert!(
        String::from_utf8_lossy(&status.stdout).contains("ALARM"),
        "{}",
        text(&status)
    );
    assert_tampered(
        &a.verify(&[]),
        &["do not match this checkpoint", "missing from the store"],
    );
}

#[test]
fn store_checkpoints_deleted_over_an_intact_ledger_are_an_alarm() {
    let a = archive(true);
    for c in a.checkpoints() {
        std::fs::remove_file(c).expect("remove checkpoint");
    }
    append(Path::new(&a.auth), &log_lines(10, 10));
    let out = a.env.run(&["pull"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("ALARM") && stderr.contains("still matches"),
        "{}",
        text(&out)
    );
    assert!(a.checkpoints().is_empty(), "nothing signed");
    assert_tampered(&a.verify(&[]), &["missing from the store"]);
    // The fix the message gives: the anchor's copies back into the store; then all is well.
    for c in ckpt_files(&anchor_origin_dir(&a)) {
        std::fs::copy(
            &c,
            a.env
                .store
                .join("ledger/checkpoints")
                .join(c.file_name().expect("name")),
        )
        .expect("copy back");
    }
    assert_ok(&a.env.run(&["pull"]), "pull after the repair");
    let out = a.verify(&[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}

#[test]
fn junk_in_an_anchor_hides_no_genuine_checkpoint() {
    // The intruder rolls the ledger back one round and fills the anchor with junk named after
    // larger trees, so the genuine newest checkpoint is no longer among "the newest" names.
    let a = archive(true);
    let dir = anchor_origin_dir(&a);
    let newest_store = a.checkpoints().pop().expect("newest");
    let mut lines = a.ledger_lines();
    lines.truncate(lines.len() - 1);
    a.write_ledger(&lines);
    std::fs::remove_file(&newest_store).expect("remove");
    for i in 0..20u64 {
        std::fs::write(
            dir.join(format!("{:020}.ckpt", 1_000_000 + i)),
            b"junk, not a signed note\n",
        )
        .expect("junk");
    }
    let out = a.verify(&[]);
    assert_tampered(
        &out,
        &[
            "not a valid checkpoint of this log",
            "cut short or rolled back",
        ],
    );
    // Junk alone (no rollback) is an ALARM at the next round but does not stop signing.
    let b = archive(true);
    let dir = anchor_origin_dir(&b);
    std::fs::write(dir.join(format!("{:020}.ckpt", 99_999_999)), b"junk\n").expect("junk");
    let before = b.checkpoints().len();
    append(Path::new(&b.auth), &log_lines(11, 10));
    let out = b.env.run(&["pull"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("ALARM"),
        "{}",
        text(&out)
    );
    assert_eq!(b.checkpoints().len(), before + 1, "signed anyway");
    assert_tampered(&b.verify(&[]), &["not a valid checkpoint of this log"]);
}

#[test]
fn an_entry_dated_far_in_the_future_is_a_problem_and_stops_appending() {
    // Issue 17 §6: a canonical line dated centuries ahead would become the ledger's clock
    // (every real day then "due" for retention). Verify names it; the next pull appends nothing.
    let a = archive(false);
    let mut lines = a.ledger_lines();
    lines.push(canonical(&Entry::Event(ledger::Event {
        seq: lines.len() as u64,
        time: "9999-06-01T00:00:00.000000Z".into(),
        event: ledger::EventKind::Unsettled,
        host: Some("web1".into()),
        source: Some(a.auth.clone()),
        start: None,
        end: None,
        sha256: None,
        detail: "x".into(),
    })));
    a.write_ledger(&lines);
    assert_tampered(
        &a.verify(&[]),
        &["more than a day after this machine's clock"],
    );
    append(Path::new(&a.auth), &log_lines(12, 10));
    // The line was not written by loghost: ALARM. And even an operator who accepts the ledger
    // as it is cannot make loghost append after it.
    exits_1_saying(&a.env.run(&["pull"]), "not written by this loghost");
    exits_1_saying(
        &a.env.run(&["accept-ledger"]),
        "more than a day after this machine's clock",
    );
    assert_eq!(a.ledger_lines(), lines, "nothing appended");
}

#[test]
fn a_forged_index_cache_is_not_trusted() {
    // The index cache (state/index.json) holds cursors, committed lengths and the root the next
    // checkpoint must extend. An intruder who edits it (and recomputes its plain digest) to make
    // loghost skip lines, or sign a rewritten ledger, is ignored: the cache must carry a
    // signature by the ledger key, and is rebuilt from the ledger when it does not.
    let a = archive(true);
    let cache = a.env.store.join("state/index.json");
    let data = std::fs::read_to_string(&cache).expect("cache");
    let json = data.split('\n').next().expect("json");
    let mut index: serde_json::Value = serde_json::from_str(json).expect("index");
    // Skip the next 1,000 bytes of auth.log: move its cursor on and drop its tail check.
    let cursor = &mut index["cursors"]["web1"][a.auth.as_str()];
    let end = cursor["end"].as_u64().expect("end");
    cursor["end"] = serde_json::json!(end + 1000);
    cursor["tail"]["len"] = serde_json::json!(0);
    let forged = serde_json::to_string(&index).expect("json");
    let digest = Hash::of(forged.as_bytes()).to_string();
    std::fs::write(&cache, format!("{forged}\n{digest}")).expect("forge");
    append(Path::new(&a.auth), &log_lines(13, 100));
    assert_ok(&a.env.run(&["pull"]), "pull");
    assert_eq!(
        a.env.cat("web1", &a.auth),
        std::fs::read(&a.auth).expect("read"),
        "every line collected, none skipped"
    );
    let out = a.verify(&[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}

#[test]
fn a_gap_between_a_logs_frames_is_a_problem() {
    // Bytes of a log that were never collected leave a gap in its frames' source ranges.
    let a = archive(false);
    let mut lines = a.ledger_lines();
    let idx = lines
        .iter()
        .rposition(|l| l.contains("\"kind\":\"frame\"") && l.contains("auth.log"))
        .expect("a frame");
    let Ok(Entry::Frame(mut e)) = ledger::parse_line(lines[idx].as_bytes(), idx as u64) else {
        panic!("not a frame line");
    };
    e.start += 10;
    lines[idx] = canonical(&Entry::Frame(e));
    a.write_ledger(&lines);
    for c in a.checkpoints() {
        std::fs::remove_file(c).expect("remove checkpoint");
    }
    assert_tampered(&a.verify(&[]), &["were skipped"]);
}

#[test]
fn lines_appended_by_someone_else_are_never_signed() {
    // The second review's hole: a frame line appended to the ledger after the newest checkpoint
    // (canonical, next in sequence, its hashes consistent) was signed by the next round. Now
    // loghost signs a head before each append and refuses a ledger that is not what it wrote.
    let a = archive(true);
    let before = a.checkpoints();
    let forged_lines = forge_frame(&a);

    assert_tampered(
        &a.verify(&[]),
        &["not covered by the loghost's signed head"],
    );
    append(Path::new(&a.auth), &log_lines(14, 10));
    let out = a.env.run(&["pull"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("ALARM") && text(&out).contains("not written by this loghost"),
        "{}",
        text(&out)
    );
    assert_eq!(a.checkpoints(), before, "nothing signed");
    assert_eq!(a.ledger_lines(), forged_lines, "nothing appended");
    let status = a.env.run(&["status"]);
    assert!(
        String::from_utf8_lossy(&status.stdout).contains("ALARM"),
        "{}",
        text(&status)
    );
    // Without its head file the ledger is no more trusted: it must be wholly checkpointed.
    std::fs::remove_file(a.env.store.join("state/head")).expect("remove head");
    exits_1_saying(&a.env.run(&["pull"]), "no valid signed head");
    // The operator, having looked, accepts; the acceptance is on the record.
    assert_ok(&a.env.run(&["accept-ledger"]), "accept-ledger");
    assert!(
        a.env
            .ledger()
            .iter()
            .any(|e| e["event"] == "ledger_accepted"),
        "the acceptance is in the ledger"
    );
    // The accepted frame claims bytes the server never held: the next round's tail check sees
    // it (the `rewritten` alarm, exit 4), and what the server holds is collected anew.
    let out = a.env.run(&["pull"]);
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
}

#[test]
fn a_crash_between_the_head_and_the_ledger_write_is_no_alarm() {
    let a = archive(true);
    append(Path::new(&a.auth), &log_lines(15, 100));
    let out = a
        .env
        .run_env(&["pull"], &[("LOGHOST_CRASH_AT", "after-head-write")]);
    assert!(!out.status.success(), "{}", text(&out));
    assert_ok(&a.env.run(&["pull"]), "the next pull");
    assert_eq!(
        a.env.cat("web1", &a.auth),
        std::fs::read(&a.auth).expect("read")
    );
    assert_ok(&a.verify(&["--deep"]), "verify");
}

#[test]
fn a_missing_or_odd_head_is_an_alarm_until_accepted() {
    // The fourth review: with the head deleted, a ledger cut back to its newest checkpoint
    // passed for a store from before heads (the entries after that checkpoint gone without a
    // trace). Now only an empty ledger goes without a head; an upgrade is accepted once.
    let a = archive(true);
    let head = a.env.store.join("state/head");
    std::fs::remove_file(&head).expect("remove head");
    assert_tampered(
        &a.verify(&[]),
        &["is missing or holds no valid signed head"],
    );
    append(Path::new(&a.auth), &log_lines(16, 10));
    exits_1_saying(&a.env.run(&["pull"]), "no valid signed head");
    assert_ok(&a.env.run(&["accept-ledger"]), "accept-ledger");
    assert_ok(&a.env.run(&["pull"]), "pull");
    assert_ok(&a.verify(&[]), "verify");
    // A FIFO in the head's place (it could answer each reader differently) is not read.
    let saved = std::fs::read(&head).expect("head");
    std::fs::remove_file(&head).expect("remove head");
    let status = std::process::Command::new("mkfifo")
        .arg(&head)
        .status()
        .expect("mkfifo");
    assert!(status.success());
    assert_tampered(&a.verify(&[]), &["not a regular file"]);
    std::fs::remove_file(&head).expect("remove fifo");
    std::fs::write(&head, saved).expect("restore");
    assert_ok(&a.verify(&[]), "verify with the head back");
}

/// Appends a frame to the ledger as the intruder would: canonical, next in sequence, its
/// stored bytes appended to the file, "collecting" the next bytes of auth.log with made-up
/// content; the index cache kept. Returns the ledger's lines after it.
fn forge_frame(a: &Archive) -> Vec<String> {
    let lines = a.ledger_lines();
    let last_frame = lines
        .iter()
        .rposition(|l| l.contains("\"kind\":\"frame\""))
        .expect("a frame");
    let Ok(Entry::Frame(mut f)) =
        ledger::parse_line(lines[last_frame].as_bytes(), last_frame as u64)
    else {
        panic!("not a frame");
    };
    let content = b"Dec  7 11:00:01 web1 sshd[1]: deploy from 10.0.0.9\n";
    let forged = zstd::encode_all(&content[..], 3).expect("zstd");
    let file = a.env.store.join(&f.file);
    let offset = std::fs::metadata(&file).expect("meta").len();
    append(&file, &forged);
    f.seq = lines.len() as u64;
    f.start = f.end;
    f.end += content.len() as u64;
    f.offset = offset;
    f.length = forged.len() as u64;
    f.sha256 = Hash::of(&forged);
    f.raw_sha256 = Hash::of(content);
    let mut forged_lines = lines.clone();
    forged_lines.push(canonical(&Entry::Frame(f)));
    let cache = std::fs::read(a.env.store.join("state/index.json")).expect("cache");
    a.write_ledger(&forged_lines);
    std::fs::write(a.env.store.join("state/index.json"), cache).expect("keep the cache");
    forged_lines
}

#[test]
fn a_head_is_not_a_checkpoint_and_a_checkpoint_file_is_read_not_named() {
    // The third review: with the head deleted, an empty file named after the forged ledger's
    // size passed for "wholly checkpointed"; and a head slot copied into the checkpoints was a
    // valid checkpoint. Neither holds now.
    let a = archive(true);
    let head = std::fs::read(a.env.store.join("state/head")).expect("head");
    let end = head[..1024].iter().rposition(|&b| b != 0).expect("a slot") + 1;
    let slot = &head[..end];
    let size = String::from_utf8_lossy(slot)
        .lines()
        .nth(1)
        .expect("size")
        .parse::<u64>()
        .expect("number");
    let planted = a
        .env
        .store
        .join("ledger/checkpoints")
        .join(format!("{:020}.ckpt", size + 100));
    std::fs::write(&planted, slot).expect("plant");
    assert_tampered(
        &a.verify(&[]),
        &["not a checkpoint of this log (a signed head?)"],
    );
    std::fs::remove_file(&planted).expect("remove");

    let forged = forge_frame(&a);
    std::fs::remove_file(a.env.store.join("state/head")).expect("remove head");
    std::fs::write(
        a.env
            .store
            .join("ledger/checkpoints")
            .join(format!("{:020}.ckpt", forged.len())),
        b"",
    )
    .expect("an empty checkpoint file");
    exits_1_saying(&a.env.run(&["pull"]), "no valid signed head");
}

#[test]
fn entries_beyond_the_head_are_a_problem_even_while_the_store_is_busy() {
    // Holding the store lock made verify "busy", and entries beyond the head became a note.
    let a = archive(true);
    forge_frame(&a);
    let lock = a.env.store.join("lock");
    let mut holder = std::process::Command::new("flock")
        .arg(&lock)
        .args(["sleep", "30"])
        .spawn()
        .expect("flock");
    std::thread::sleep(std::time::Duration::from_millis(300));
    let out = a.verify(&[]);
    let _ = holder.kill();
    let _ = holder.wait();
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("in use by another loghost process"),
        "{}",
        text(&out)
    );
    assert_tampered(&out, &["not covered by the loghost's signed head"]);
}

/// The command failed with exit 1, saying `want`.
fn exits_1_saying(out: &Output, want: &str) {
    assert_eq!(out.status.code(), Some(1), "{}", text(out));
    assert!(text(out).contains(want), "{want:?} in:\n{}", text(out));
}
