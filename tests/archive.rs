//! Retention and the archive tier: `file://` end to end, and S3 with Object Lock against a real
//! S3-compatible server (moto), checked from the outside with boto3.
//!
//! Old days come from pulls made with `LOGHOST_FAKE_NOW` (debug builds only): the ledger and the
//! day directories then carry those dates.

mod common;

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

const DAY1: &str = "2036-11-01T10:00:00Z";
const DAY2: &str = "2036-11-02T10:00:00Z";
const DAY5: &str = "2036-11-05T10:00:00Z";

/// A host with one log pulled on three days (11-01, 11-02, 11-05).
struct Setup {
    env: Env,
    _sshd: Sshd,
    auth: PathBuf,
    /// What each day's pull collected.
    days: Vec<Vec<u8>>,
}

fn setup(retention: &str, pull_env: &[(&str, &str)]) -> Setup {
    let env = Env::new();
    let auth = env.remote.join("var/log/auth.log");
    let sshd = env.init_and_start_sshd("");
    env.write_config(
        &[host("web1", &sshd.address(), &[auth.display().to_string()])],
        &format!("audit_samples = 50\n{retention}"),
    );
    env.trust("web1", &sshd);
    let mut days = Vec::new();
    for (i, now) in [DAY1, DAY2, DAY5].into_iter().enumerate() {
        let lines = log_lines(i as u64 + 1, 2000);
        append(&auth, &lines);
        let mut vars = vec![("LOGHOST_FAKE_NOW", now)];
        vars.extend_from_slice(pull_env);
        assert_ok(&env.run_env(&["pull"], &vars), "pull");
        days.push(lines);
    }
    // Later commands (verify) run at the test's dates: entries dated after verify's clock are
    // problems.
    env.set_clock("2036-11-09T00:00:00Z");
    Setup {
        env,
        _sshd: sshd,
        auth,
        days,
    }
}

/// The day's stored auth.log (paths outside /var/log are stored under `%root/…`).
fn day_file(env: &Env, date: &str) -> PathBuf {
    let name = env.remote.join("var/log/auth.log").display().to_string();
    env.store.join(format!("logs/web1/{date}/%root{name}.zst"))
}

fn archived_events(env: &Env) -> Vec<serde_json::Value> {
    env.ledger()
        .into_iter()
        .filter(|e| e["event"] == "archived")
        .collect()
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(e.path());
            } else {
                out.push(e.path());
            }
        }
    }
    out.sort();
    out
}

fn sha256_hex(data: &[u8]) -> String {
    loghost::hash::Hash::of(data).to_string()
}

/// The `[retention]` section of a file:// archive tier at `dir`, keeping three days online.
fn file_tier(dir: &std::path::Path) -> String {
    format!(
        "[retention]\nonline_days = 3\narchive = \"file://{}\"\n",
        dir.display()
    )
}

#[test]
fn file_tier_end_to_end() {
    let archive = tempfile::tempdir().expect("tempdir");
    let s = setup(&file_tier(archive.path()), &[]);
    let env = &s.env;
    let day1_stored = std::fs::read(day_file(env, "2036-11-01")).expect("day 1");

    // Today is 11-05 for this run: online_days = 3 keeps 11-03 onwards, so 11-01 and 11-02 go.
    let out = env.run_env(&["archive"], &[("LOGHOST_FAKE_NOW", DAY5)]);
    assert_ok(&out, "archive");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("archived web1 2036-11-01") && stdout.contains("archived web1 2036-11-02"),
        "{}",
        text(&out)
    );
    assert!(
        !day_file(env, "2036-11-01").exists(),
        "archived days leave the store"
    );
    assert!(
        !env.store.join("logs/web1/2036-11-01").exists(),
        "and their directories"
    );
    assert!(day_file(env, "2036-11-05").exists(), "a recent day stays");

    // The copies: the stored bytes exactly, read-only, readable with zstdcat, and a manifest.
    let copies = files_under(archive.path());
    let copy1 = copies
        .iter()
        .find(|p| p.to_string_lossy().contains("web1/2036-11-01/%root"))
        .unwrap_or_else(|| panic!("no copy of day 1 in {copies:?}"));
    assert_eq!(std::fs::read(copy1).expect("copy"), day1_stored);
    assert_eq!(stock_decompress(copy1), s.days[0]);
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(copy1).expect("meta").permissions().mode() & 0o777;
    assert_eq!(mode, 0o400, "archived copies are read-only");
    let manifest1 = copies
        .iter()
        .find(|p| p.ends_with("web1/2036-11-01/manifest.json"))
        .unwrap_or_else(|| panic!("no manifest of day 1 in {copies:?}"))
        .clone();
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&manifest1).expect("manifest")).expect("json");
    assert_eq!(manifest["host"], "web1");
    assert_eq!(manifest["date"], "2036-11-01");
    assert_eq!(manifest["files"][0]["sha256"], sha256_hex(&day1_stored));
    assert!(
        manifest["checkpoint"]
            .as_str()
            .is_some_and(|c| c.contains("\n— ")),
        "the manifest carries the signed checkpoint: {manifest}"
    );

    // The ledger records each day with its manifest's digest, and a checkpoint covers that.
    let events = archived_events(env);
    assert_eq!(events.len(), 2, "{events:?}");
    assert_eq!(events[0]["host"], "web1");
    assert_eq!(events[0]["source"], "2036-11-01");
    assert_eq!(
        events[0]["sha256"],
        sha256_hex(&std::fs::read(&manifest1).expect("manifest"))
    );

    // verify knows archived days; --archived re-reads them.
    let out = env.run(&["verify", "--deep"]);
    assert_ok(&out, "verify after archiving");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("2 host-days"),
        "{}",
        text(&out)
    );
    assert_ok(&env.run(&["verify", "--archived"]), "verify --archived");

    // Collection goes on (the cursor and audit samples cope with archived frames); cat prints
    // what is still here and says what is not.
    append(&s.auth, &log_lines(9, 500));
    assert_ok(
        &env.run_env(&["pull"], &[("LOGHOST_FAKE_NOW", "2036-11-06T10:00:00Z")]),
        "pull after archiving",
    );
    let out = env.run(&["cat", "web1"]);
    assert_ok(&out, "cat");
    let mut want = s.days[2].clone();
    want.extend_from_slice(&log_lines(9, 500));
    assert_eq!(out.stdout, want);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("2036-11-01 is in the archive tier"),
        "{}",
        text(&out)
    );

    // grep: archived days only with --archived, read from the target, in day order.
    let all: Vec<&[u8]> = vec![&s.days[0], &s.days[1], &want];
    let out = env.run(&["grep", "-F", "user4"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        grepped(&s, &[&want], "user4")
    );
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("2036-11-01 is in the archive tier; not searched (--archived"),
        "{}",
        text(&out)
    );
    let out = env.run(&["grep", "--archived", "-F", "user4"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        grepped(&s, &all, "user4")
    );
    assert!(out.stderr.is_empty(), "{}", text(&out));

    // Nothing more is due.
    let out = env.run_env(&["archive"], &[("LOGHOST_FAKE_NOW", DAY5)]);
    assert_ok(&out, "second archive");
    assert!(String::from_utf8_lossy(&out.stdout).contains("nothing to archive"));

    // Tampering with an archived copy is found by --archived only (plain verify does not read it).
    std::fs::set_permissions(copy1, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let mut bytes = std::fs::read(copy1).expect("copy");
    let mid = bytes.len() / 2;
    bytes[mid] ^= 1;
    std::fs::write(copy1, &bytes).expect("tamper");
    assert_ok(&env.run(&["verify"]), "plain verify");
    let out = env.run(&["verify", "--archived"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("auth.log.zst"),
        "{}",
        text(&out)
    );
    // grep --archived names the frame that does not match its ledger entry (exit 2) and
    // searches the rest.
    let out = env.run(&["grep", "--archived", "-c", "-F", "user4"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("auth.log.zst") && err.contains("do not match ledger entry"),
        "{err}"
    );

    // So is a replaced manifest.
    bytes[mid] ^= 1;
    std::fs::write(copy1, &bytes).expect("restore");
    assert_ok(&env.run(&["verify", "--archived"]), "restored");
    std::fs::set_permissions(&manifest1, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let mut m = std::fs::read(&manifest1).expect("manifest");
    m.extend_from_slice(b" ");
    std::fs::write(&manifest1, &m).expect("tamper manifest");
    let out = env.run(&["verify", "--archived"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("not the one the ledger recorded"),
        "{}",
        text(&out)
    );
    // A day whose manifest is not the ledger's is reported, not searched; the others are.
    let out = env.run(&["grep", "--archived", "-F", "user4"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("web1 2036-11-01: the archived copy of logs/web1/2036-11-01/")
            && String::from_utf8_lossy(&out.stderr).contains("not the one the ledger recorded"),
        "{}",
        text(&out)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        grepped(&s, &[&s.days[1], &want], "user4")
    );
}

/// What grep prints for the lines of `days` (one log) that contain `fixed`.
fn grepped(s: &Setup, days: &[&[u8]], fixed: &str) -> String {
    let name = loghost::store::layout::stored_name(&s.auth.display().to_string());
    days.iter()
        .flat_map(|d| {
            String::from_utf8_lossy(d)
                .into_owned()
                .lines()
                .map(String::from)
                .collect::<Vec<_>>()
        })
        .filter(|l| l.contains(fixed))
        .map(|l| format!("web1 {name}: {l}\n"))
        .collect()
}

#[test]
fn a_day_that_does_not_match_the_ledger_is_not_archived() {
    let archive = tempfile::tempdir().expect("tempdir");
    let s = setup(&file_tier(archive.path()), &[]);
    let env = &s.env;
    let f = day_file(env, "2036-11-01");
    let mut bytes = std::fs::read(&f).expect("day 1");
    bytes[10] ^= 0x20;
    std::fs::write(&f, &bytes).expect("tamper");

    let out = env.run_env(&["archive"], &[("LOGHOST_FAKE_NOW", DAY5)]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("do not match the ledger"),
        "{}",
        text(&out)
    );
    assert!(
        f.exists(),
        "the damaged evidence stays where verify reports it"
    );
    let events = archived_events(env);
    assert_eq!(
        events.len(),
        1,
        "only the good day was archived: {events:?}"
    );
    assert_eq!(events[0]["source"], "2036-11-02");
    assert!(
        !files_under(archive.path())
            .iter()
            .any(|p| p.to_string_lossy().contains("2036-11-01")),
        "nothing of the bad day was copied"
    );
}

/// `archive --through 2036-11-01` killed at the crash point `point`.
fn archive_crashing_at(env: &Env, point: &str) {
    let out = env.run_env(
        &["archive", "--through", "2036-11-01"],
        &[("LOGHOST_FAKE_NOW", DAY5), ("LOGHOST_CRASH_AT", point)],
    );
    assert!(!out.status.success(), "{point}: {}", text(&out));
}

#[test]
fn an_interrupted_archive_is_completed_by_the_next_run() {
    let archive = tempfile::tempdir().expect("tempdir");
    let s = setup(&file_tier(archive.path()), &[]);
    let env = &s.env;

    // Killed after the copies, before the manifest: nothing recorded, files stay.
    archive_crashing_at(env, "archive-before-manifest");
    assert!(archived_events(env).is_empty());
    assert!(day_file(env, "2036-11-01").exists());
    assert_ok(
        &env.run(&["verify"]),
        "verify after a crash before the manifest",
    );

    // Killed after the event, before removing the local files.
    archive_crashing_at(env, "archive-before-remove");
    assert_eq!(archived_events(env).len(), 1);
    assert!(day_file(env, "2036-11-01").exists());
    assert_ok(&env.run(&["verify"]), "verify with the leftover files");

    // The next run finishes the removal and archives nothing twice.
    let out = env.run_env(
        &["archive", "--through", "2036-11-01"],
        &[("LOGHOST_FAKE_NOW", DAY5)],
    );
    assert_ok(&out, "archive again");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("removed the local files of web1 2036-11-01"),
        "{}",
        text(&out)
    );
    assert!(!day_file(env, "2036-11-01").exists());
    assert_eq!(archived_events(env).len(), 1);
    assert_ok(
        &env.run(&["verify", "--archived", "--deep"]),
        "verify --archived",
    );
}

#[test]
fn archive_without_a_target_or_with_a_bad_date_explains() {
    let env = Env::new();
    env.write_config(&[], "");
    assert_ok(&env.run(&["init"]), "init");
    let out = env.run(&["archive"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("[retention]"));
    let out = env.run(&["archive", "--through", "yesterday"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("YYYY-MM-DD"));
}

/// A moto S3 server on a port of its own, stopped by PID.
struct Moto {
    child: Child,
    endpoint: String,
}

impl Moto {
    fn start() -> Moto {
        let port = free_port();
        let child = Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start moto_server (pip install 'moto[server]'; scripts/test.sh does)");
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "moto_server did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        Moto {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
        }
    }

    /// Runs a boto3 snippet with `s3` bound to a client of this server; returns stdout.
    fn py(&self, code: &str) -> String {
        let script = format!(
            "import boto3, json, sys\n\
             s3 = boto3.client('s3', endpoint_url='{}', region_name='us-east-1', \
             aws_access_key_id='test', aws_secret_access_key='test')\n{code}\n",
            self.endpoint
        );
        let out = Command::new("python3")
            .arg("-c")
            .arg(&script)
            .output()
            .expect("python3");
        assert!(out.status.success(), "boto3 script failed: {}", text(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn s3_config(moto: &Moto, bucket: &str, secret: &Path, extra: &str) -> String {
    format!(
        "[retention]\nonline_days = 3\narchive = \"s3://{bucket}/loghost\"\nobject_lock_days = 30\n\n\
         [s3]\nendpoint = \"{}\"\nregion = \"us-east-1\"\npath_style = true\n\
         allow_insecure_endpoint = true\n\
         access_key_id = \"test\"\nsecret_access_key_file = \"{}\"\n{extra}",
        moto.endpoint,
        secret.display()
    )
}

#[test]
fn s3_tier_with_object_lock() {
    let moto = Moto::start();
    moto.py(
        "s3.create_bucket(Bucket='locked', ObjectLockEnabledForBucket=True)\n\
         s3.create_bucket(Bucket='plain')\n\
         s3.create_bucket(Bucket='anchors', ObjectLockEnabledForBucket=True)",
    );
    let secrets = tempfile::tempdir().expect("tempdir");
    let secret = secrets.path().join("s3-secret");
    std::fs::write(&secret, "test\n").expect("secret");
    std::fs::set_permissions(&secret, std::os::unix::fs::PermissionsExt::from_mode(0o600))
        .expect("chmod");

    // Small frames and small objects: day files are split into several objects.
    let s = setup(
        &format!(
            "[ledger]\nanchors = [\"s3://anchors/ckpt\"]\n\n{}",
            s3_config(&moto, "locked", &secret, "")
        ),
        &[("LOGHOST_MAX_FRAME_RAW", "16384")],
    );
    let env = &s.env;
    // The preflight reaches both buckets and sees their Object Lock.
    let report = text(&env.run(&["check"]));
    for target in ["anchor s3://anchors/ckpt", "archive s3://locked"] {
        // The section's heading, at the start of a line (the config line names the archive too).
        let at = report
            .find(&format!("\n{target}"))
            .unwrap_or_else(|| panic!("{target}: {report}"));
        // This section only: up to the blank line that ends it.
        let section = &report[at..];
        let section = &section[..section.find("\n\n").unwrap_or(section.len())];
        assert!(
            section.contains("ok       bucket reachable; Object Lock enabled"),
            "{report}"
        );
    }
    let day1_stored = std::fs::read(day_file(env, "2036-11-01")).expect("day 1");
    let out = env.run_env(
        &["archive"],
        &[
            ("LOGHOST_FAKE_NOW", DAY5),
            ("LOGHOST_ARCHIVE_MAX_OBJECT", "10000"),
        ],
    );
    assert_ok(&out, "archive to S3");
    assert!(!day_file(env, "2036-11-01").exists());
    assert_eq!(archived_events(env).len(), 2);

    // From the outside: every object carries its SHA-256 and COMPLIANCE retention until the
    // day's end plus object_lock_days; the parts put together are the stored file.
    let listing = moto.py("out = []\n\
         for v in s3.list_object_versions(Bucket='locked')['Versions']:\n\
         \x20   h = s3.head_object(Bucket='locked', Key=v['Key'], ChecksumMode='ENABLED')\n\
         \x20   out.append([v['Key'], v['VersionId'], h.get('ObjectLockMode'), \
         h['ObjectLockRetainUntilDate'].isoformat(), h.get('ChecksumSHA256')])\n\
         print(json.dumps(out))");
    let objects: Vec<(String, String, String, String, String)> =
        serde_json::from_str(listing.trim()).expect("listing");
    let day1: Vec<_> = objects
        .iter()
        .filter(|o| o.0.contains("/web1/2036-11-01/"))
        .collect();
    assert!(
        day1.iter().all(|o| o.0.starts_with("loghost/")),
        "objects live under the target's prefix: {day1:?}"
    );
    let parts: Vec<_> = day1.iter().filter(|o| o.0.contains(".part")).collect();
    assert!(parts.len() >= 2, "day 1 was split: {day1:?}");
    assert!(day1.iter().any(|o| o.0.ends_with("/manifest.json")));
    for o in &day1 {
        assert_eq!(o.2, "COMPLIANCE", "{o:?}");
        assert!(
            o.3.starts_with("2036-12-02"),
            "retain until 11-01 + 1 + 30 days: {o:?}"
        );
    }
    let mut joined = Vec::new();
    for o in &parts {
        let data = moto.py(&format!(
            "sys.stdout.buffer.write(s3.get_object(Bucket='locked', Key='{}')['Body'].read().hex().encode())",
            o.0
        ));
        let bytes: Vec<u8> = (0..data.len() / 2)
            .map(|i| u8::from_str_radix(&data[2 * i..2 * i + 2], 16).expect("hex"))
            .collect();
        use base64::Engine;
        let sha = base64::engine::general_purpose::STANDARD.encode({
            use sha2::Digest;
            sha2::Sha256::digest(&bytes)
        });
        assert_eq!(o.4, sha, "the stored checksum is the part's SHA-256: {o:?}");
        joined.extend_from_slice(&bytes);
    }
    assert_eq!(
        joined, day1_stored,
        "the parts in order are the stored file"
    );
    // grep --archived reads the parts back by byte ranges and finds what the days hold.
    let all: Vec<&[u8]> = s.days.iter().map(|d| &d[..]).collect();
    let out = env.run(&["grep", "--archived", "-F", "user4"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        grepped(&s, &all, "user4")
    );
    let out = env.run(&["grep", "--archived", "-c", "."]);
    let lines: usize = s
        .days
        .iter()
        .map(|d| d.split(|&b| b == b'\n').count() - 1)
        .sum();
    assert!(
        String::from_utf8_lossy(&out.stdout).ends_with(&format!(": {lines}\n")),
        "{}",
        text(&out)
    );

    // Checkpoints went to the S3 anchor, locked too, and verify holds the ledger against it.
    let anchored = moto.py(
        "for o in s3.list_objects_v2(Bucket='anchors')['Contents']:\n\
         \x20   h = s3.head_object(Bucket='anchors', Key=o['Key'])\n\
         \x20   print(o['Key'], h.get('ObjectLockMode'))",
    );
    assert!(
        anchored
            .lines()
            .any(|l| l.starts_with("ckpt/") && l.contains(".ckpt COMPLIANCE")),
        "{anchored}"
    );
    let out = env.run(&["verify"]);
    assert_ok(&out, "verify with an S3 anchor");
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("no anchored checkpoint"),
        "{}",
        text(&out)
    );

    // Locked: deleting a version is refused, even by the credentials that wrote it.
    let (key, version) = (&parts[0].0, &parts[0].1);
    let refused = moto.py(&format!(
        "try:\n\
         \x20   s3.delete_object(Bucket='locked', Key='{key}', VersionId='{version}')\n\
         \x20   print('deleted')\n\
         except Exception as e:\n\
         \x20   print('refused', e)"
    ));
    assert!(refused.starts_with("refused"), "{refused}");

    assert_ok(
        &env.run(&["verify", "--archived", "--deep"]),
        "verify --archived against S3",
    );

    // The intruder with the loghost's own S3 credentials: Object Lock keeps every version, but
    // a new version hides an anchored checkpoint and a delete marker hides an archived object
    // from a plain listing. Verify lists versions.
    let hidden = moto.py(
        "keys = sorted(o['Key'] for o in s3.list_objects_v2(Bucket='anchors')['Contents'])\n\
         s3.put_object(Bucket='anchors', Key=keys[-1], Body=b'junk')\n\
         s3.delete_object(Bucket='anchors', Key=keys[0])\n\
         day = sorted(o['Key'] for o in s3.list_objects_v2(Bucket='locked')['Contents'] \
         if '.part' in o['Key'])\n\
         s3.delete_object(Bucket='locked', Key=day[0])\n\
         print('done')",
    );
    assert_eq!(hidden.trim(), "done");
    let out = env.run(&["verify"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    for want in [
        "different versions (an anchored checkpoint was overwritten)",
        "delete marker(s) on it",
        "someone deleted an archived object",
    ] {
        assert!(stdout.contains(want), "{want:?} in:\n{stdout}");
    }

    // Plain http is refused unless allowed (for a server on this machine).
    let insecure =
        s3_config(&moto, "locked", &secret, "").replace("allow_insecure_endpoint = true\n", "");
    env.write_config(
        &[host("web1", "127.0.0.1:1", &[s.auth.display().to_string()])],
        &insecure,
    );
    let out = env.run(&["verify"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("allow_insecure_endpoint"),
        "{}",
        text(&out)
    );

    // A bucket without Object Lock is refused unless allowed.
    env.write_config(
        &[host("web1", "127.0.0.1:1", &[s.auth.display().to_string()])],
        &s3_config(&moto, "plain", &secret, ""),
    );
    let out = env.run_env(
        &["archive", "--through", "2036-11-05"],
        &[("LOGHOST_FAKE_NOW", "2036-11-09T00:00:00Z")],
    );
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("has no Object Lock"),
        "{}",
        text(&out)
    );
    assert!(day_file(env, "2036-11-05").exists());
    // `loghost check` says the same of the target (web1 at port 1 is a problem of its own).
    let out = env.run(&["check"]);
    let report = text(&out);
    assert_eq!(out.status.code(), Some(1), "{report}");
    assert!(
        report.contains("archive s3://")
            && report.contains("PROBLEM  bucket plain has no Object Lock"),
        "{report}"
    );
    env.write_config(
        &[host("web1", "127.0.0.1:1", &[s.auth.display().to_string()])],
        &s3_config(&moto, "plain", &secret, "allow_unlocked = true\n"),
    );
    let out = env.run_env(
        &["archive", "--through", "2036-11-05"],
        &[("LOGHOST_FAKE_NOW", "2036-11-09T00:00:00Z")],
    );
    assert_ok(&out, "archive to an unlocked bucket when allowed");
    assert!(!day_file(env, "2036-11-05").exists());
    let report = text(&env.run(&["check"]));
    assert!(
        report.contains("note     bucket reachable, without Object Lock"),
        "{report}"
    );
}

/// Appends an `archived` event to the ledger as an intruder would: canonical, next in sequence,
/// dated like the last line.
fn forge_archived_event(env: &Env, date: &str, sha256: Option<loghost::hash::Hash>) {
    let path = env.store.join("ledger/ledger.jsonl");
    let text = std::fs::read_to_string(&path).expect("ledger");
    let lines: Vec<&str> = text.lines().collect();
    let last: serde_json::Value = serde_json::from_str(lines[lines.len() - 1]).expect("json");
    let event = loghost::ledger::Entry::Event(loghost::ledger::Event {
        seq: lines.len() as u64,
        time: last["time"].as_str().expect("time").to_string(),
        event: loghost::ledger::EventKind::Archived,
        host: Some("web1".into()),
        source: Some(date.into()),
        start: None,
        end: None,
        sha256,
        detail: "3 files copied to the archive, read back and checked".into(),
    });
    let mut line = event.to_line();
    line.push(b'\n');
    append(&path, &line);
    let _ = std::fs::remove_file(env.store.join("state/index.json"));
}

#[test]
fn a_forged_archived_event_excuses_nothing() {
    let archive = tempfile::tempdir().expect("tempdir");
    let s = setup(&file_tier(archive.path()), &[]);
    let env = &s.env;

    // A forged event, and the day's files deleted: plain verify looks for the manifest.
    forge_archived_event(env, "2036-11-02", Some(loghost::hash::Hash::of(b"made up")));
    std::fs::remove_file(day_file(env, "2036-11-02")).expect("remove");
    verify_finds(env, "its manifest cannot be read");
    verify_finds(env, "not covered by the loghost's signed head");

    // A forged event for a day due for retention whose files are still here: `archive` does
    // not "finish" a removal nobody started. The ledger is not what loghost wrote: ALARM, and
    // nothing is touched.
    forge_archived_event(env, "2036-11-01", None);
    let before = std::fs::read(day_file(env, "2036-11-01")).expect("day 1");
    let out = env.run_env(
        &["archive", "--through", "2036-11-01"],
        &[("LOGHOST_FAKE_NOW", DAY5)],
    );
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("ALARM") && text(&out).contains("not written by this loghost"),
        "{}",
        text(&out)
    );
    assert_eq!(
        std::fs::read(day_file(env, "2036-11-01")).expect("still there"),
        before,
        "the local files stay"
    );
    let out = env.run(&["verify"]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("names no manifest SHA-256"),
        "{}",
        text(&out)
    );
}

#[test]
fn an_unfinished_removal_is_finished_only_over_a_copy_that_checks() {
    // A genuine `archived` event whose removal was interrupted (a crash), then the intruder who
    // can write the file:// target damages the copy: `archive` must not delete the local files
    // on the strength of the event alone.
    let archive = tempfile::tempdir().expect("tempdir");
    let s = setup(&file_tier(archive.path()), &[]);
    let env = &s.env;
    archive_crashing_at(env, "archive-before-remove");
    assert_eq!(archived_events(env).len(), 1);
    let object = files_under(archive.path())
        .into_iter()
        .find(|p| !p.ends_with("manifest.json"))
        .expect("an object");
    let dir = object.parent().expect("dir");
    std::fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(0o700))
        .expect("chmod dir");
    let mut bytes = std::fs::read(&object).expect("read");
    bytes[10] ^= 0xff;
    std::fs::remove_file(&object).expect("remove");
    std::fs::write(&object, &bytes).expect("damage");
    let before = std::fs::read(day_file(env, "2036-11-01")).expect("day 1");
    let out = env.run_env(
        &["archive", "--through", "2036-11-01"],
        &[("LOGHOST_FAKE_NOW", DAY5)],
    );
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("recorded as archived, but the copy does not check"),
        "{}",
        text(&out)
    );
    assert_eq!(
        std::fs::read(day_file(env, "2036-11-01")).expect("still there"),
        before,
        "the local files stay"
    );
}

#[test]
fn a_second_archived_event_for_a_day_is_a_problem() {
    let (_archive, s) = with_day1_archived();
    let env = &s.env;
    assert_ok(&env.run(&["verify"]), "verify after archiving");
    let genuine = archived_events(env)[0]["sha256"]
        .as_str()
        .expect("sha")
        .parse::<loghost::hash::Hash>()
        .expect("hash");
    forge_archived_event(env, "2036-11-01", Some(genuine));
    verify_finds(env, "a second `archived` event");
}

#[test]
fn a_forged_event_with_a_made_up_manifest_or_for_a_day_not_over_is_found() {
    // The intruder who can write a file:// archive target: he puts junk where the day's
    // manifest goes, appends an `archived` event naming its hash, and deletes the day's files.
    // 11-01 archived genuinely, to learn where manifests go.
    let (archive, s) = with_day1_archived();
    let env = &s.env;
    let genuine = files_under(archive.path())
        .into_iter()
        .find(|p| p.ends_with("manifest.json"))
        .expect("a manifest");
    let day_dir = genuine
        .parent()
        .expect("day")
        .parent()
        .expect("host")
        .to_path_buf();
    let junk = b"{\"not\": \"a manifest\"}\n".to_vec();
    let fake = day_dir.join("2036-11-02").join("manifest.json");
    std::fs::create_dir_all(fake.parent().expect("dir")).expect("mkdir");
    std::fs::write(&fake, &junk).expect("junk");
    forge_archived_event(env, "2036-11-02", Some(loghost::hash::Hash::of(&junk)));
    std::fs::remove_file(day_file(env, "2036-11-02")).expect("remove");
    verify_finds(env, "the manifest is not valid");
    // The genuine manifest of 11-01 copied to 11-02's place, its hash in the event: another day.
    std::fs::write(&fake, std::fs::read(&genuine).expect("read")).expect("copy");
    let out = env.run(&["verify"]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("the manifest is for web1 2036-11-01"),
        "{}",
        text(&out)
    );
    // A day "archived" on the day itself (retention never does that).
    forge_archived_event(env, "2036-11-09", None);
    let out = env.run(&["verify"]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("before that day was over"),
        "{}",
        text(&out)
    );
}

#[test]
fn an_archived_object_missing_from_a_file_target_is_found_by_plain_verify() {
    let (archive, s) = with_day1_archived();
    let env = &s.env;
    assert_ok(&env.run(&["verify"]), "verify");
    let object = files_under(archive.path())
        .into_iter()
        .find(|p| !p.ends_with("manifest.json"))
        .expect("an object");
    let mut perms = std::fs::metadata(object.parent().expect("dir"))
        .expect("meta")
        .permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o700);
    std::fs::set_permissions(object.parent().expect("dir"), perms).expect("chmod");
    std::fs::remove_file(&object).expect("remove");
    verify_finds(env, "is missing");
}

#[test]
fn a_link_planted_in_a_file_target_is_not_taken_for_a_copy() {
    // The third review: a symlink at an object's place in the file:// target, pointing at the
    // stored file, made the "copy" the local file itself; it checked against itself and the
    // local file was deleted.
    let archive = tempfile::tempdir().expect("tempdir");
    let s = setup(&file_tier(archive.path()), &[]);
    let env = &s.env;
    let stored = day_file(env, "2036-11-01");
    let config = loghost::config::Config::load(&env.config).expect("config");
    let origin = loghost::ledger::checkpoint::origin_dir(&config.ledger.origin);
    let rel = stored
        .strip_prefix(env.store.join("logs/web1/2036-11-01"))
        .expect("in the day")
        .to_path_buf();
    let link = archive
        .path()
        .join(origin)
        .join("web1/2036-11-01")
        .join(&rel);
    std::fs::create_dir_all(link.parent().expect("dir")).expect("mkdir");
    std::os::unix::fs::symlink(&stored, &link).expect("symlink");
    let before = std::fs::read(&stored).expect("day 1");
    let out = env.run_env(
        &["archive", "--through", "2036-11-01"],
        &[("LOGHOST_FAKE_NOW", DAY5)],
    );
    assert!(!out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("symbolic link"), "{}", text(&out));
    assert_eq!(std::fs::read(&stored).expect("still there"), before);
}

/// A file:// tier with web1's 2036-11-01 archived (the later days stay local).
fn with_day1_archived() -> (tempfile::TempDir, Setup) {
    let archive = tempfile::tempdir().expect("tempdir");
    let s = setup(&file_tier(archive.path()), &[]);
    assert_ok(
        &s.env.run_env(
            &["archive", "--through", "2036-11-01"],
            &[("LOGHOST_FAKE_NOW", DAY5)],
        ),
        "archive",
    );
    (archive, s)
}

/// Runs `verify`, which must fail (exit 1) naming `want`.
fn verify_finds(env: &Env, want: &str) {
    let out = env.run(&["verify"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(want),
        "{want:?} in:\n{}",
        text(&out)
    );
}
