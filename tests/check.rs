//! `loghost check`, the preflight, against real OpenSSH servers: a good host, an unpinned host,
//! unreadable files, a missing path, a writable account, a refused key, a changed host key; the
//! receiver's certificates, anchors and archive directories; a bad config.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use common::*;

fn chmod(p: &Path, mode: u32) {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

/// `check`'s exit status and its output (stdout then stderr).
fn check(env: &Env, args: &[&str]) -> (Option<i32>, String) {
    let mut all = vec!["check"];
    all.extend_from_slice(args);
    let out = env.run(&all);
    (out.status.code(), text(&out))
}

/// The lines of `report` from the one containing `what`, that line and the next (its fix).
fn finding<'a>(report: &'a str, what: &str) -> (&'a str, &'a str) {
    let lines: Vec<&str> = report.lines().collect();
    let i = lines
        .iter()
        .position(|l| l.contains(what))
        .unwrap_or_else(|| panic!("no line with {what:?} in:\n{report}"));
    (lines[i], lines.get(i + 1).copied().unwrap_or(""))
}

/// An initialized loghost and an authorized_keys file holding its key.
fn initialized() -> (Env, std::path::PathBuf) {
    let env = Env::new();
    env.write_config(&[], "");
    assert_ok(&env.run(&["init"]), "init");
    let ak = env.authorized_keys();
    std::fs::copy(env.identity_pub(), &ak).expect("authorized_keys");
    (env, ak)
}

#[test]
fn a_good_host_passes_and_each_problem_comes_with_its_fix() {
    let (env, ak) = initialized();
    // Permissions hold for the SFTP session even when the tests run as root.
    let sshd = Sshd::start_opts(&ak, "", None, true);

    let good = env.rpath("var/log/syslog");
    std::fs::write(&good, log_lines(1, 100)).expect("write");
    let dir = env.remote.join("var/log/app");
    std::fs::create_dir_all(&dir).expect("mkdir");
    for i in 0..3 {
        std::fs::write(dir.join(format!("app{i}.log")), log_lines(i, 10)).expect("write");
    }
    // Readable by its group only (not by its owner, the test's user): the fix is the group.
    let group_only = env.rpath("var/log/auth.log");
    std::fs::write(&group_only, log_lines(2, 10)).expect("write");
    chmod(Path::new(&group_only), 0o040);
    // As root (CI), the file's group would be root, which check never advises joining: give
    // it Debian's log group, as on a real server.
    let group = if current_user() == "root" {
        let st = std::process::Command::new("chgrp")
            .args(["adm", &group_only])
            .status()
            .expect("chgrp");
        assert!(st.success(), "chgrp adm");
        Some("adm")
    } else {
        None
    };
    // Readable by nobody: the fix is an ACL.
    let private = env.rpath("var/log/secret.log");
    std::fs::write(&private, log_lines(3, 10)).expect("write");
    chmod(Path::new(&private), 0o000);
    let missing = env.rpath("var/log/nothing.log");
    let glob = format!("{}/*.log", dir.display());
    let paths = [
        good.clone(),
        glob.clone(),
        group_only.clone(),
        private.clone(),
        missing.clone(),
    ];
    env.write_config(&[host("web1", &sshd.address(), &paths)], "");

    // Not pinned yet: the fingerprint the server offers and the command that pins it.
    let (code, report) = check(&env, &[]);
    assert_eq!(code, Some(1), "{report}");
    let (line, fix) = finding(&report, "not pinned");
    assert!(line.contains("PROBLEM"), "{report}");
    assert!(
        fix.contains(&format!(
            "loghost trust web1 --fingerprint {}",
            sshd.fingerprint()
        )),
        "{report}"
    );
    assert!(
        report.contains("check: 1 problem to fix: web1 (1)"),
        "{report}"
    );

    env.trust("web1", &sshd);
    let (code, report) = check(&env, &[]);
    assert_eq!(code, Some(1), "{report}");
    for ok in [
        "host key pinned and matching",
        "our key is accepted",
        "the SFTP session is read-only",
        "syslog: ",
        "app0.log: ",
        "app2.log: ",
    ] {
        let (line, _) = finding(&report, ok);
        assert!(line.trim_start().starts_with("ok"), "{ok}: {report}");
    }
    let (line, _) = finding(&report, &format!("{good}: "));
    assert!(
        line.contains("readable") && line.contains("KiB"),
        "{report}"
    );
    let user = current_user();
    let (line, fix) = finding(&report, &format!("{group_only}: cannot be read"));
    assert!(line.contains("PROBLEM"), "{report}");
    let join = match group {
        Some(g) => format!("usermod -aG {g} {user}"),
        None => "usermod -aG ".to_string(),
    };
    assert!(fix.contains(&join) && fix.contains(&user), "{report}");
    let (line, fix) = finding(&report, &format!("{private}: cannot be read"));
    assert!(line.contains("PROBLEM"), "{report}");
    assert!(
        fix.contains(&format!("setfacl -m u:{user}:r {private}")),
        "{report}"
    );
    let (line, fix) = finding(&report, &format!("{missing} matches no file"));
    assert!(
        line.contains("PROBLEM") && fix.contains("`paths`"),
        "{report}"
    );
    assert!(
        report.contains("check: 3 problems to fix: web1 (3)"),
        "{report}"
    );
    // check changes nothing: the files are as they were.
    assert_eq!(std::fs::read(&good).expect("read"), log_lines(1, 100));
    assert!(
        !env.store.join("logs/web1").exists(),
        "check collected something"
    );

    // Fixed: exit 0.
    chmod(Path::new(&group_only), 0o640);
    chmod(Path::new(&private), 0o640);
    let paths = [good, glob, group_only, private];
    env.write_config(&[host("web1", &sshd.address(), &paths)], "");
    let (code, report) = check(&env, &[]);
    assert_eq!(code, Some(0), "{report}");
    assert!(report.contains("\ncheck: no problem found\n"), "{report}");
    assert!(!report.contains("PROBLEM"), "{report}");
    // Only the named host; an unknown one is a usage error.
    let (code, report) = check(&env, &["web1"]);
    assert_eq!(code, Some(0), "{report}");
    let (code, report) = check(&env, &["web9"]);
    assert_eq!(code, Some(2), "{report}");
    assert!(report.contains("web9"), "{report}");
}

#[test]
fn a_writable_account_and_a_refused_key_are_problems() {
    let (env, ak) = initialized();
    let log = env.rpath("var/log/syslog");
    std::fs::write(&log, log_lines(1, 10)).expect("write");
    chmod(Path::new(&log), 0o640);
    // An SFTP account without -R: it can write.
    let writable = Sshd::start_opts(&ak, "ForceCommand internal-sftp", None, false);
    // One that refuses removals only: it can still create and write.
    let no_remove = Sshd::start_opts(
        &ak,
        "ForceCommand internal-sftp -P remove,rmdir",
        None,
        false,
    );
    // A server that holds another key than loghost's.
    let other = env.dir.path().join("other_key");
    let st = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&other)
        .status()
        .expect("ssh-keygen");
    assert!(st.success());
    let wrong_ak = env.dir.path().join("wrong_authorized_keys");
    std::fs::copy(other.with_extension("pub"), &wrong_ak).expect("copy");
    let refusing = Sshd::start(&wrong_ak, "");
    env.write_config(
        &[
            host("web1", &writable.address(), &[&log]),
            host("web2", &refusing.address(), &[&log]),
            host("web3", &no_remove.address(), &[&log]),
        ],
        "",
    );
    env.trust("web1", &writable);
    env.trust("web2", &refusing);
    env.trust("web3", &no_remove);

    let before = std::fs::read(&log).expect("read");
    let (code, report) = check(&env, &[]);
    assert_eq!(code, Some(1), "{report}");
    let (line, fix) = finding(&report, "takes write requests");
    assert!(line.contains("PROBLEM"), "{report}");
    assert!(fix.contains("ForceCommand internal-sftp -R"), "{report}");
    let (line, _) = finding(&report, &format!("{log} can be written"));
    assert!(line.contains("PROBLEM"), "{report}");
    let (line, fix) = finding(&report, "refused the public key");
    assert!(line.contains("PROBLEM"), "{report}");
    assert!(fix.contains("authorized_keys"), "{report}");
    assert!(
        report.contains("web1 (2)") && report.contains("web2 (1)"),
        "{report}"
    );
    // Refusing removals is not being read-only: the create request is taken.
    let web3 = &report[report.find("web3 (").expect("web3")..];
    let web3 = &web3[..web3.find("\n\n").unwrap_or(web3.len())];
    assert!(
        web3.contains("PROBLEM  the SFTP session on web3 takes write requests"),
        "{report}"
    );
    // The probes changed nothing on the writable server.
    assert_eq!(std::fs::read(&log).expect("read"), before);
    let names: Vec<_> = std::fs::read_dir(env.remote.join("var/log"))
        .expect("ls")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from("syslog")]);

    // web2's pin replaced by another key (a reinstalled server, or someone in the middle).
    let pinned = std::fs::read_to_string(env.known_hosts()).expect("known_hosts");
    let other_host_key =
        std::fs::read_to_string(writable.host_key.with_extension("pub")).expect("host key");
    let name = format!("[127.0.0.1]:{}", refusing.port);
    let changed: String = pinned
        .lines()
        .map(|l| {
            if l.starts_with(&name) {
                let mut fields = other_host_key.split_whitespace();
                let (kind, key) = (fields.next().expect("type"), fields.next().expect("key"));
                format!("{name} {kind} {key}\n")
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    assert_ne!(changed, pinned, "no pin of web2 in:\n{pinned}");
    std::fs::write(env.known_hosts(), changed).expect("write known_hosts");
    let (code, report) = check(&env, &["web2"]);
    assert_eq!(code, Some(1), "{report}");
    let (line, fix) = finding(&report, "HOST KEY CHANGED");
    assert!(line.contains("PROBLEM"), "{report}");
    // The advice never hands over the offered key to paste: it may be the attacker's.
    assert!(
        fix.contains("loghost trust web2 --fingerprint SHA256:<that fingerprint>"),
        "{report}"
    );
}

#[test]
fn receiver_certificates_anchors_and_the_archive_are_checked() {
    let env = Env::new();
    let pki = Pki::new("check");
    let (cert, key) = pki.issue("server", &["loghost.example.org"], false);
    let (_, other_key) = pki.issue("other", &["other.example.org"], false);
    let (old_cert, old_key) = pki.issue("old", &["loghost.example.org"], true);
    let anchor = env.dir.path().join("anchor");
    std::fs::create_dir_all(&anchor).expect("mkdir");
    let archive = env.dir.path().join("no-such-archive");
    let config = |cert: &Path, key: &Path| {
        format!(
            "[receiver]\nlisten = \"127.0.0.1:{}\"\ncert = \"{}\"\nkey = \"{}\"\n\
             client_ca = \"{}\"\n\n[ledger]\nanchors = [\"file://{}\"]\n\n\
             [retention]\narchive = \"file://{}\"\n\n\
             [[host]]\nname = \"web1\"\ntls_name = \"web1.example.org\"\n",
            free_port(),
            cert.display(),
            key.display(),
            pki.ca_path().display(),
            anchor.display(),
            archive.display()
        )
    };
    let write = |text: String| {
        std::fs::create_dir_all(env.config.parent().expect("etc")).expect("mkdir");
        std::fs::write(
            &env.config,
            format!("store = \"{}\"\n{text}", env.store.display()),
        )
        .expect("write config");
    };
    write(config(&cert, &key));
    assert_ok(&env.run(&["init"]), "init");

    let (code, report) = check(&env, &[]);
    assert_eq!(code, Some(1), "{report}");
    let (line, _) = finding(&report, "go together");
    assert!(line.trim_start().starts_with("ok"), "{report}");
    let (line, _) = finding(&report, "valid until");
    assert!(line.trim_start().starts_with("ok"), "{report}");
    let (line, _) = finding(&report, &format!("{} is writable", anchor.display()));
    assert!(line.trim_start().starts_with("ok"), "{report}");
    let (line, fix) = finding(
        &report,
        &format!("{} is not a directory", archive.display()),
    );
    assert!(
        line.contains("PROBLEM") && fix.contains("install -d"),
        "{report}"
    );
    assert!(
        report.contains("check: 1 problem to fix: archive (1)"),
        "{report}"
    );

    std::fs::create_dir_all(&archive).expect("mkdir");
    let (code, report) = check(&env, &[]);
    assert_eq!(code, Some(0), "{report}");

    // A key of another certificate; an expired certificate.
    write(config(&cert, &other_key));
    let (code, report) = check(&env, &[]);
    assert_eq!(code, Some(1), "{report}");
    let (line, _) = finding(&report, "do not go together");
    assert!(line.contains("PROBLEM"), "{report}");
    write(config(&old_cert, &old_key));
    let (code, report) = check(&env, &[]);
    assert_eq!(code, Some(1), "{report}");
    let (line, fix) = finding(&report, "expired on");
    assert!(
        line.contains("PROBLEM") && fix.contains("renew"),
        "{report}"
    );

    // A config that does not load: exit 2, the line named.
    std::fs::write(&env.config, "store = \"/x\"\n[[host]]\nname = 3\n").expect("write");
    let (code, report) = check(&env, &[]);
    assert_eq!(code, Some(2), "{report}");
    assert!(report.contains("line 3"), "{report}");
}
