//! Pull collector against the real OpenSSH sshd (read-only `internal-sftp -R` account).

mod common;

use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use common::*;

#[test]
fn first_and_incremental_pulls_are_byte_exact_and_readable_by_zstdcat() {
    let env = Env::new();
    let auth = env.rpath("var/log/auth.log");
    let app_dir = env.remote.join("var/log/app");
    std::fs::create_dir_all(&app_dir).expect("mkdir");
    std::fs::write(&auth, log_lines(1, 3000)).expect("write");
    std::fs::write(app_dir.join("a.log"), log_lines(2, 500)).expect("write");
    // Binary content: nothing assumes text.
    let binary: Vec<u8> = (0..70_000u32).map(|i| (i * 7 % 256) as u8).collect();
    std::fs::write(app_dir.join("b.log"), &binary).expect("write");
    std::fs::write(app_dir.join("ignored.txt"), b"not matched\n").expect("write");
    let sshd = env.init_and_start_sshd("");
    env.write_config(
        &[host(
            "web1",
            &sshd.address(),
            &[auth.clone(), env.rpath("var/log/app/*.log")],
        )],
        "",
    );
    env.trust("web1", &sshd);

    let out = env.run(&["pull"]);
    assert_ok(&out, "first pull");
    append(Path::new(&auth), &log_lines(3, 100));
    append(&app_dir.join("b.log"), b"\x00\x01tail");
    let out = env.run(&["pull"]);
    assert_ok(&out, "second pull");

    for src in [
        auth.clone(),
        env.rpath("var/log/app/a.log"),
        env.rpath("var/log/app/b.log"),
    ] {
        let remote = std::fs::read(&src).expect("read remote");
        assert_eq!(env.cat("web1", &src), remote, "cat of {src}");
    }
    assert!(
        env.frames_for(&env.rpath("var/log/app/ignored.txt"))
            .is_empty(),
        "the glob must not match *.txt"
    );

    // Only the new bytes moved in the second round.
    let frames = env.frames_for(&auth);
    assert_eq!(frames.len(), 2, "{frames:?}");
    let first_end = frames[0]["end"].as_u64().expect("end");
    assert_eq!(frames[1]["start"].as_u64(), Some(first_end));
    assert_eq!(
        frames[1]["end"].as_u64().expect("end") - first_end,
        log_lines(3, 100).len() as u64
    );
    let a_frames = env.frames_for(&env.rpath("var/log/app/a.log"));
    assert_eq!(a_frames.len(), 1, "an unchanged file gets no new frame");

    // The stored file is a plain multi-frame zstd file: stock zstdcat prints the day in order.
    let stored = env.store.join(frames[0]["file"].as_str().expect("file"));
    assert_eq!(
        stock_decompress(&stored),
        std::fs::read(&auth).expect("read")
    );

    // Store modes: directories 0700, files 0600.
    let mode = |p: &Path| std::fs::metadata(p).expect("meta").permissions().mode() & 0o777;
    assert_eq!(mode(&env.store), 0o700);
    assert_eq!(mode(stored.parent().expect("dir")), 0o700);
    assert_eq!(mode(&stored), 0o600);
    assert_eq!(mode(&env.store.join("ledger/ledger.jsonl")), 0o600);
}

#[test]
fn gzip_option_is_readable_by_zcat() {
    let env = Env::new();
    let log = env.rpath("var/log/syslog");
    std::fs::write(&log, log_lines(4, 2000)).expect("write");
    let sshd = env.init_and_start_sshd("");
    env.write_config(
        &[host("web1", &sshd.address(), &[&log])],
        "compression = \"gzip\"",
    );
    env.trust("web1", &sshd);
    assert_ok(&env.run(&["pull"]), "pull");
    append(Path::new(&log), &log_lines(5, 10));
    assert_ok(&env.run(&["pull"]), "pull");
    let frames = env.frames_for(&log);
    assert_eq!(frames.len(), 2);
    let file = frames[0]["file"].as_str().expect("file");
    assert!(file.ends_with("syslog.gz"), "{file}");
    assert_eq!(
        stock_decompress(&env.store.join(file)),
        std::fs::read(&log).expect("read")
    );
}

#[test]
fn unknown_host_key_is_refused_and_trust_without_fingerprint_pins_nothing() {
    let env = Env::new();
    let log = env.rpath("var/log/syslog");
    std::fs::write(&log, b"hello\n").expect("write");
    let sshd = env.init_and_start_sshd("");
    env.write_config(&[host("web1", &sshd.address(), &[&log])], "");

    let out = env.run(&["pull"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("not pinned") && err.contains(&sshd.fingerprint()),
        "{err}"
    );
    assert!(env.frames_for(&log).is_empty(), "nothing may be stored");

    // `trust` alone shows the key and pins nothing.
    let out = env.run(&["trust", "web1"]);
    assert_ok(&out, "trust");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&sshd.fingerprint()) && stdout.contains("ssh-ed25519"),
        "{stdout}"
    );
    assert!(
        !env.known_hosts().exists()
            || std::fs::read_to_string(env.known_hosts())
                .expect("read")
                .trim()
                .is_empty()
    );
    assert_eq!(env.run(&["pull"]).status.code(), Some(1));
}

#[test]
fn wrong_fingerprint_is_not_pinned() {
    let env = Env::new();
    let log = env.rpath("var/log/syslog");
    std::fs::write(&log, b"hello\n").expect("write");
    let sshd = env.init_and_start_sshd("");
    env.write_config(&[host("web1", &sshd.address(), &[log])], "");
    let out = env.run(&[
        "trust",
        "web1",
        "--fingerprint",
        "SHA256:gS7vgvaU0HqA/Qi0ClU0E4FxR1r+e0mUIbmtrsWLbBw",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("MISMATCH"));
    assert!(!env.known_hosts().exists());
    assert_eq!(env.run(&["pull"]).status.code(), Some(1));
}

#[test]
fn pinned_key_works_and_a_changed_key_is_refused() {
    let env = Env::new();
    let log = env.rpath("var/log/syslog");
    std::fs::write(&log, b"first\n").expect("write");
    let sshd = env.init_and_start_sshd("");
    env.write_config(&[host("web1", &sshd.address(), &[&log])], "");
    env.trust("web1", &sshd);
    assert_ok(&env.run(&["pull"]), "pull with the pinned key");
    let pinned_event = env
        .ledger()
        .into_iter()
        .find(|e| e["event"] == "host_key_pinned")
        .expect("pinning is recorded in the ledger");
    assert!(
        pinned_event["detail"]
            .as_str()
            .expect("detail")
            .contains(&sshd.fingerprint())
    );

    // The server is replaced by one with another host key on the same address.
    let port = sshd.port;
    drop(sshd);
    let other = Sshd::start_with(&env.authorized_keys(), "", Some(port));
    append(Path::new(&log), b"second\n");
    let out = env.run(&["pull"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("HOST KEY CHANGED") && err.contains(&other.fingerprint()),
        "{err}"
    );
    assert_eq!(env.frames_for(&log).len(), 1, "nothing new may be stored");
}

#[test]
fn one_host_down_is_named_and_the_others_are_collected() {
    let env = Env::new();
    let log = env.rpath("var/log/syslog");
    std::fs::write(&log, log_lines(6, 100)).expect("write");
    let sshd = env.init_and_start_sshd("");
    let dead = format!("127.0.0.1:{}", free_port());
    env.write_config(
        &[
            host("down1", &dead, &[&log]),
            host("web1", &sshd.address(), &[&log]),
        ],
        "[ssh]\nconnect_timeout = \"3s\"",
    );
    env.trust("web1", &sshd);
    let out = env.run(&["pull"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("down1") && err.contains("cannot connect"),
        "{err}"
    );
    assert!(
        !err.contains("web1:"),
        "web1 must not be reported failing: {err}"
    );
    assert_eq!(env.cat("web1", &log), std::fs::read(&log).expect("read"));
}

#[test]
fn a_server_that_never_answers_times_out() {
    let env = Env::new();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    // Accepts connections and never says anything.
    let _hold = std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in listener.incoming().flatten() {
            held.push(s);
        }
    });
    env.write_config(
        &[host("mute", &addr, &["/var/log/syslog"])],
        "[ssh]\nconnect_timeout = \"1s\"",
    );
    let out = env.run(&["init"]);
    assert_ok(&out, "init");
    let started = std::time::Instant::now();
    let out = env.run(&["pull"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("did not finish within"),
        "{}",
        text(&out)
    );
    assert!(started.elapsed() < Duration::from_secs(20));
}

#[test]
fn hostile_file_names_stay_inside_the_host_directory() {
    let env = Env::new();
    let dir = env.remote.join("var/log/evil");
    std::fs::create_dir_all(&dir).expect("mkdir");
    let names: Vec<Vec<u8>> = vec![
        b"a b.log".to_vec(),
        b"\x1b[31mred\x1b[0m.log".to_vec(),
        b"new\nline.log".to_vec(),
        b"%root".to_vec(),
        b"..log".to_vec(),
        "unicod\u{e9}\u{202e}.log".as_bytes().to_vec(),
        b"bad\xff\xfeutf8.log".to_vec(),
    ];
    for (i, n) in names.iter().enumerate() {
        let p = dir.join(std::ffi::OsStr::from_bytes(n));
        std::fs::write(&p, format!("content {i}\n")).expect("write hostile file");
    }
    // A directory loop under the glob.
    std::os::unix::fs::symlink(&dir, dir.join("loop")).expect("symlink");
    let sshd = env.init_and_start_sshd("");
    env.write_config(
        &[host(
            "web1",
            &sshd.address(),
            &[
                format!("{}/*", dir.display()),
                format!("{}/*/*", dir.display()),
            ],
        )],
        "",
    );
    env.trust("web1", &sshd);
    let out = env.run(&["pull"]);
    assert_ok(&out, "pull");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.stderr.contains(&0x1b), "raw ESC on stderr: {err}");
    assert!(
        err.contains("not valid UTF-8"),
        "invalid UTF-8 names are reported: {err}"
    );

    let files = env.stored_files();
    assert!(!files.is_empty());
    for f in &files {
        let s = f.to_str().expect("stored names are valid UTF-8");
        assert!(s.starts_with("logs/web1/"), "{s}");
        assert!(
            !s.bytes().any(|b| b < 0x20 || b == 0x7f) && !s.split('/').any(|c| c == ".."),
            "{s:?}"
        );
    }
    // Every readable file was stored with its content, including through the symlinked dir.
    for (i, n) in names.iter().enumerate() {
        if std::str::from_utf8(n).is_err() {
            continue;
        }
        if n.starts_with(b".") {
            // As in a shell, `*` does not match a leading dot.
            let src = dir.join(std::ffi::OsStr::from_bytes(n));
            assert!(env.frames_for(src.to_str().expect("utf8")).is_empty());
            continue;
        }
        let p = dir.join(std::ffi::OsStr::from_bytes(n));
        let src = p.to_str().expect("utf8").to_string();
        assert_eq!(
            env.cat("web1", &src),
            format!("content {i}\n").into_bytes(),
            "{src:?}"
        );
    }
    let ledger_text =
        std::fs::read_to_string(env.store.join("ledger/ledger.jsonl")).expect("ledger");
    assert!(
        !ledger_text.contains('\x1b'),
        "JSON escapes control characters"
    );
}

#[test]
fn cat_neutralises_terminal_escapes_on_a_terminal() {
    let env = Env::new();
    let log = env.rpath("var/log/syslog");
    std::fs::write(&log, b"normal line\nevil \x1b]0;owned\x07 \x1b[2J line\n").expect("write");
    let sshd = env.init_and_start_sshd("");
    env.write_config(&[host("web1", &sshd.address(), &[&log])], "");
    env.trust("web1", &sshd);
    assert_ok(&env.run(&["pull"]), "pull");

    // Into a pipe: the bytes as they were.
    assert_eq!(
        env.cat("web1", "syslog"),
        std::fs::read(&log).expect("read")
    );
    // On a terminal (script(1) gives it a pty): escapes are neutralised.
    let cmd = format!(
        "{} --config {} cat web1 syslog",
        loghost_bin(),
        env.config.display()
    );
    let out = std::process::Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .output()
        .expect("script(1) from util-linux");
    assert_ok(&out, "cat on a pty");
    assert!(
        !out.stdout.contains(&0x1b),
        "{:?}",
        String::from_utf8_lossy(&out.stdout)
    );
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(
        shown.contains("evil #033]0;owned#007 #033[2J line"),
        "{shown}"
    );
}

#[test]
fn snapshot_files_are_stored_whole_when_they_change() {
    let env = Env::new();
    let lastlog = env.rpath("var/log/lastlog");
    std::fs::write(&lastlog, [1u8; 600]).expect("write");
    let sshd = env.init_and_start_sshd("");
    let mut h = host::<&str>("web1", &sshd.address(), &[]);
    h.snapshot = vec![lastlog.clone()];
    env.write_config(&[h], "");
    env.trust("web1", &sshd);
    assert_ok(&env.run(&["pull"]), "pull");
    assert_ok(&env.run(&["pull"]), "pull unchanged");
    assert_eq!(
        env.frames_for(&lastlog).len(),
        1,
        "unchanged: not stored again"
    );
    let mut changed = vec![1u8; 600];
    changed[10] = 9;
    std::fs::write(&lastlog, &changed).expect("rewrite in place");
    assert_ok(&env.run(&["pull"]), "pull changed");
    let frames = env.frames_for(&lastlog);
    assert_eq!(frames.len(), 2);
    assert_eq!(frames[1]["via"], "snapshot");
    assert_eq!(frames[1]["start"], 0);
    assert_eq!(frames[1]["end"], 600);
    let all = env.cat("web1", &lastlog);
    assert_eq!(
        &all[600..],
        &changed[..],
        "the second copy is the whole new content"
    );
}

#[test]
fn a_log_vanishing_between_listing_and_reading_is_a_warning() {
    let env = Env::new();
    let keep = env.rpath("var/log/keep.log");
    let gone = env.rpath("var/log/gone.log");
    std::fs::write(&keep, b"stays\n").expect("write");
    std::fs::write(&gone, b"goes\n").expect("write");
    let sshd = env.init_and_start_sshd("");
    env.write_config(
        &[host("web1", &sshd.address(), &[env.rpath("var/log/*.log")])],
        "",
    );
    env.trust("web1", &sshd);
    let child = env.spawn(&["pull"], &[("LOGHOST_PAUSE_AT", "after-listing:1500")]);
    std::thread::sleep(Duration::from_millis(700));
    std::fs::remove_file(&gone).expect("remove");
    let out = child.wait_with_output().expect("wait");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("vanished") && err.contains("gone.log"),
        "{err}"
    );
    assert_eq!(env.cat("web1", &keep), b"stays\n");
}

#[test]
fn config_errors_exit_2_and_name_the_line() {
    let env = Env::new();
    std::fs::create_dir_all(env.config.parent().expect("parent")).expect("mkdir");
    std::fs::write(
        &env.config,
        "store = \"/tmp/x\"\n[[host]]\nname = \"web1\"\naddress = \"h\"\npaths = [\"/var/log/syslog\"]\nevery = \"often\"\n",
    )
    .expect("write");
    let out = env.run(&["pull"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("line 6") && err.contains("invalid duration"),
        "{err}"
    );

    let out = std::process::Command::new(loghost_bin())
        .args(["--config", "/nonexistent/loghost.toml", "pull"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/loghost.toml"));
    // LOGHOST_CONFIG is honoured when --config is absent.
    let out = std::process::Command::new(loghost_bin())
        .arg("pull")
        .env("LOGHOST_CONFIG", "/nonexistent/env.toml")
        .output()
        .expect("run");
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/env.toml"));
}

#[test]
fn pull_without_init_explains_what_to_do() {
    let env = Env::new();
    env.write_config(&[host("web1", "127.0.0.1:1", &["/var/log/syslog"])], "");
    let out = env.run(&["pull"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("loghost init"));
}

#[test]
fn init_never_overwrites_keys() {
    let env = Env::new();
    env.write_config(&[], "");
    assert_ok(&env.run(&["init"]), "init");
    let dir = env.config.parent().expect("etc");
    let id = std::fs::read(dir.join("id_ed25519")).expect("identity");
    let lk = std::fs::read(dir.join("ledger.key")).expect("ledger key");
    let out = env.run(&["init"]);
    assert_ok(&out, "second init");
    assert!(String::from_utf8_lossy(&out.stdout).contains("exists, kept"));
    assert_eq!(std::fs::read(dir.join("id_ed25519")).expect("identity"), id);
    assert_eq!(std::fs::read(dir.join("ledger.key")).expect("key"), lk);
    let mode = |p: &Path| std::fs::metadata(p).expect("meta").permissions().mode() & 0o777;
    assert_eq!(mode(&dir.join("id_ed25519")), 0o600);
    assert_eq!(mode(&dir.join("ledger.key")), 0o600);
    assert_eq!(mode(&env.store), 0o700);
}

#[test]
fn cursors_derive_from_the_ledger_when_the_cache_is_gone_or_stale() {
    let env = Env::new();
    let log = env.rpath("var/log/syslog");
    std::fs::write(&log, log_lines(7, 1000)).expect("write");
    let sshd = env.init_and_start_sshd("");
    env.write_config(&[host("web1", &sshd.address(), &[&log])], "");
    env.trust("web1", &sshd);
    assert_ok(&env.run(&["pull"]), "pull");
    let cache = env.store.join("state/index.json");
    let stale = std::fs::read(&cache).expect("the index cache exists");
    let stale = stale.as_slice();

    // No cache: rebuilt from the ledger, only the new bytes move.
    std::fs::remove_file(&cache).expect("remove");
    append(Path::new(&log), &log_lines(8, 10));
    assert_ok(&env.run(&["pull"]), "pull without cache");
    // A stale cache (from before the last round): the ledger's newer entries are folded in.
    std::fs::write(&cache, stale).expect("write stale cache");
    append(Path::new(&log), &log_lines(9, 10));
    assert_ok(&env.run(&["pull"]), "pull with a stale cache");
    // A damaged cache is not believed (here a cursor that claims more than was collected).
    let text = std::fs::read_to_string(&cache).expect("cache");
    let damaged = text.replacen("\"end\":", "\"end\":1", 1);
    assert_ne!(damaged, text);
    std::fs::write(&cache, damaged).expect("write damaged cache");
    append(Path::new(&log), &log_lines(10, 10));
    assert_ok(&env.run(&["pull"]), "pull with a forged cache");

    let frames = env.frames_for(&log);
    assert_eq!(frames.len(), 4, "{frames:#?}");
    for w in frames.windows(2) {
        assert_eq!(w[1]["start"], w[0]["end"], "{frames:#?}");
    }
    assert_eq!(env.cat("web1", &log), std::fs::read(&log).expect("read"));
}

#[test]
fn many_hosts_under_a_concurrency_bound_and_cat_by_date() {
    let env = Env::new();
    let sshd = env.init_and_start_sshd("");
    let mut hosts = Vec::new();
    for i in 0..5 {
        let log = env.rpath(&format!("var/log/h{i}.log"));
        std::fs::write(&log, log_lines(30 + i, 200)).expect("write");
        hosts.push(host(&format!("web{i}"), &sshd.address(), &[&log]));
    }
    env.write_config(&hosts, "[ssh]\nconcurrency = 2");
    for i in 0..5 {
        env.trust(&format!("web{i}"), &sshd);
    }
    let out = env.run(&["-v", "pull"]);
    assert_ok(&out, "pull");
    for i in 0..5 {
        let log = env.rpath(&format!("var/log/h{i}.log"));
        assert_eq!(
            env.cat(&format!("web{i}"), &log),
            std::fs::read(&log).expect("read")
        );
    }
    // Only some hosts, by name.
    append(Path::new(&env.rpath("var/log/h0.log")), b"more\n");
    append(Path::new(&env.rpath("var/log/h1.log")), b"more\n");
    assert_ok(&env.run(&["pull", "web1"]), "pull web1");
    assert_eq!(env.frames_for(&env.rpath("var/log/h0.log")).len(), 1);
    assert_eq!(env.frames_for(&env.rpath("var/log/h1.log")).len(), 2);
    let out = env.run(&["pull", "nosuch"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("web0"),
        "{}",
        text(&out)
    );

    // --date selects the collection day (UTC).
    let today = env.frames_for(&env.rpath("var/log/h1.log"))[0]["file"]
        .as_str()
        .expect("file")
        .split('/')
        .nth(2)
        .expect("date")
        .to_string();
    let out = env.run(&["cat", "web1", "--date", &today]);
    assert_ok(&out, "cat --date");
    assert_eq!(
        out.stdout,
        std::fs::read(env.rpath("var/log/h1.log")).expect("read")
    );
    let out = env.run(&["cat", "web1", "--date", "2001-01-01"]);
    assert_eq!(out.status.code(), Some(1));
    let out = env.run(&["cat", "web1", "--date", "yesterday"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("YYYY-MM-DD"));
}

#[test]
fn a_second_writer_is_refused_while_the_store_is_locked() {
    let env = Env::new();
    let log = env.rpath("var/log/syslog");
    std::fs::write(&log, log_lines(40, 100)).expect("write");
    let sshd = env.init_and_start_sshd("");
    env.write_config(&[host("web1", &sshd.address(), &[&log])], "");
    env.trust("web1", &sshd);
    let first = env.spawn(&["pull"], &[("LOGHOST_PAUSE_AT", "after-listing:1500")]);
    std::thread::sleep(Duration::from_millis(700));
    let out = env.run(&["pull"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("in use by another loghost process (pid")
    );
    let out = first.wait_with_output().expect("wait");
    assert_ok(&out, "the first pull");
    assert_eq!(env.cat("web1", &log), std::fs::read(&log).expect("read"));
}

#[test]
fn a_server_that_stalls_mid_transfer_times_out_and_commits_nothing_partial() {
    let env = Env::new();
    let log = env.rpath("var/log/big.log");
    let mut data = Vec::new();
    while data.len() < 40 << 20 {
        data.extend_from_slice(&log_lines(data.len() as u64, 20_000));
    }
    std::fs::write(&log, &data).expect("write");
    let sshd = env.init_and_start_sshd("");
    env.write_config(
        &[host("web1", &sshd.address(), &[&log])],
        "[ssh]\nio_timeout = \"2s\"",
    );
    env.trust("web1", &sshd);
    let child = env.spawn(&["pull"], &[("LOGHOST_PAUSE_AT", "after-listing:1000")]);
    std::thread::sleep(Duration::from_millis(500));
    // Freeze the server's side of the connection (sshd's per-connection processes).
    let (out, took) = with_server_stalled(&sshd, child);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(took < Duration::from_secs(30), "{took:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("web1"), "{err}");
    // Nothing half-committed: every stored byte is covered by a frame, frames tile the source.
    assert!(
        env.frames_for(&log).is_empty(),
        "the stall came before the first frame ended"
    );
    assert!(
        env.stored_files().is_empty(),
        "no stored file may be left with uncommitted bytes, nor empty: {:?}",
        env.stored_files()
    );
    // The next round collects everything.
    let out = env.run(&["pull"]);
    assert_ok(&out, "pull after the stall");
    assert!(env.cat("web1", &log) == data);
}

#[test]
fn keys_readable_by_others_are_refused() {
    // Issue 17 §6: as OpenSSH refuses a private key others can read, loghost refuses its SSH
    // identity and its ledger signing key with group/other permissions, and says how to fix it.
    let env = Env::new();
    let log = env.rpath("var/log/syslog");
    std::fs::write(&log, log_lines(1, 10)).expect("write");
    let sshd = env.init_and_start_sshd("");
    env.write_config(&[host("web1", &sshd.address(), &[&log])], "");
    env.trust("web1", &sshd);
    let dir = env.config.parent().expect("etc").to_path_buf();
    let chmod = |p: &Path, m: u32| {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).expect("chmod")
    };
    for (file, what) in [
        ("id_ed25519", "the SSH identity"),
        ("ledger.key", "the ledger signing key"),
    ] {
        let path = dir.join(file);
        chmod(&path, 0o644);
        let out = env.run(&["pull"]);
        assert_ne!(out.status.code(), Some(0), "{}", text(&out));
        assert!(
            text(&out).contains(what) && text(&out).contains("chmod 600"),
            "{}",
            text(&out)
        );
        chmod(&path, 0o600);
    }
    assert_ok(&env.run(&["pull"]), "pull with the modes fixed");
}
