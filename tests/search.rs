//! `loghost grep` against the stock tools over the same stored files: a store built by real
//! pulls (OpenSSH sshd) over three days, four rounds a day, frames cut small so that lines
//! straddle frames; each search's output compared with `zstdcat FILE | grep` per stored file.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::*;

const DAYS: [&str; 3] = ["2036-11-01", "2036-11-02", "2036-11-03"];
const HOURS: [u32; 4] = [3, 9, 15, 21];
const HOSTS: [&str; 2] = ["web1", "web2"];

/// One stored log of one day, in the order grep prints them (host, log, day).
struct StoredLog {
    host: String,
    log: String,
    file: PathBuf,
}

struct Store {
    env: Env,
    _sshd: Sshd,
}

/// A line an application writes (RFC 3339) or syslog writes (RFC 3164), dated `t` (seconds).
fn line(app: bool, host: &str, t: i64, i: u64) -> String {
    let users = ["alice", "bob", "Root", "deploy"];
    let words = [
        "login",
        "logout",
        "ERROR disk full",
        "Timeout talking to db",
        "connection refused",
        "error: bad [x] value",
        "status=503 upstream",
        "status=200",
    ];
    let w = words[(i * 7 % words.len() as u64) as usize];
    let u = users[(i % users.len() as u64) as usize];
    let ts = jiff::Timestamp::from_second(t).expect("time");
    if app {
        format!(
            "{} {host} app[{}]: user={u} {w} id={i:x}\n",
            ts.strftime("%Y-%m-%dT%H:%M:%S%.6f+00:00"),
            1000 + i % 97
        )
    } else {
        format!(
            "{} {host} sshd[{}]: user {u} {w} a.b{i}\n",
            ts.strftime("%b %e %H:%M:%S"),
            2000 + i % 89
        )
    }
}

fn build_store() -> Store {
    let env = Env::new();
    let sshd = env.init_and_start_sshd("");
    let mut hosts = Vec::new();
    for h in HOSTS {
        std::fs::create_dir_all(env.remote.join(format!("var/log/{h}"))).expect("mkdir");
        hosts.push(host(
            h,
            &sshd.address(),
            &[
                env.rpath(&format!("var/log/{h}/app.log")),
                env.rpath(&format!("var/log/{h}/auth.log")),
            ],
        ));
    }
    env.write_config(&hosts, "");
    for h in HOSTS {
        env.trust(h, &sshd);
    }
    let mut i = 0u64;
    for day in DAYS {
        for hour in HOURS {
            let round: jiff::Timestamp = format!("{day}T{hour:02}:00:00Z").parse().expect("t");
            for h in HOSTS {
                for app in [true, false] {
                    let mut text = String::new();
                    // 60 lines over the six hours before the round.
                    for k in 0..60 {
                        i += 1;
                        text.push_str(&line(app, h, round.as_second() - 21_600 + k * 360, i));
                    }
                    let name = if app { "app.log" } else { "auth.log" };
                    append(
                        &env.remote.join(format!("var/log/{h}/{name}")),
                        text.as_bytes(),
                    );
                }
            }
            let now = format!("{day}T{hour:02}:00:30Z");
            let out = env.run_env(
                &["pull"],
                &[
                    ("LOGHOST_FAKE_NOW", now.as_str()),
                    ("LOGHOST_MAX_FRAME_RAW", "1500"),
                ],
            );
            assert_ok(&out, "pull");
        }
    }
    env.set_clock("2036-11-04T00:00:00Z");
    Store { env, _sshd: sshd }
}

impl Store {
    /// Every stored text log, in grep's order.
    fn logs(&self) -> Vec<StoredLog> {
        let mut v = Vec::new();
        for h in HOSTS {
            for name in ["app.log", "auth.log"] {
                for day in DAYS {
                    let dir = self.env.store.join(format!("logs/{h}/{day}"));
                    let file = walk(&dir)
                        .into_iter()
                        .find(|f| f.ends_with(format!("{h}/{name}.zst")))
                        .expect("stored");
                    let rel = file.strip_prefix(&dir).expect("under the day");
                    let log = rel.to_string_lossy().trim_end_matches(".zst").to_string();
                    v.push(StoredLog {
                        host: h.into(),
                        log,
                        file,
                    });
                }
            }
        }
        v
    }

    fn grep(&self, args: &[&str]) -> Output {
        let mut a = vec!["grep"];
        a.extend_from_slice(args);
        self.env.run(&a)
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).expect("read_dir") {
        let p = e.expect("entry").path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// The name grep prints for a test log (stored under `%root/` and the test's directory).
fn name(store: &Store, host: &str, log: &str) -> String {
    store
        .logs()
        .into_iter()
        .find(|l| l.host == host && l.log.ends_with(&format!("{host}/{log}")))
        .expect("a stored log")
        .log
}

/// `zstdcat FILE | grep -n ARGS`, as `host log: line` / `host log- line` / `--`.
fn stock_grep(log: &StoredLog, args: &[&str]) -> Vec<String> {
    let raw = stock_decompress(&log.file);
    let mut child = Command::new("grep")
        .arg("-n")
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("grep");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(&raw).expect("feed grep");
    }
    let out = child.wait_with_output().expect("grep output");
    String::from_utf8(out.stdout)
        .expect("utf-8")
        .lines()
        .map(|l| {
            if l == "--" {
                return l.to_string();
            }
            let n = l.find(|c: char| !c.is_ascii_digit()).expect("line number");
            let (sep, rest) = l[n..].split_at(1);
            format!("{} {}{sep} {rest}", log.host, log.log)
        })
        .collect()
}

/// What loghost grep should print for `args`, from the stock tools, file by file.
fn expected(store: &Store, ours: &[&str], stock: &[&str]) -> String {
    let context = ours.iter().any(|a| ["-C", "-A", "-B"].contains(a));
    let mut out: Vec<String> = Vec::new();
    for log in store.logs() {
        let lines = stock_grep(&log, stock);
        if lines.is_empty() {
            continue;
        }
        if context && !out.is_empty() {
            out.push("--".into());
        }
        out.extend(lines);
    }
    out.iter().map(|l| format!("{l}\n")).collect()
}

#[test]
fn grep_prints_what_zstdcat_and_grep_print_over_every_stored_file() {
    let store = build_store();
    let cases: &[(&[&str], &[&str])] = &[
        (&["ERROR"], &["ERROR"]),
        (&["-i", "error"], &["-i", "error"]),
        (&["status=5[0-9]{2}"], &["-E", "status=5[0-9]{2}"]),
        (&["-F", "[x]"], &["-F", "[x]"]),
        (&["-F", "a.b1"], &["-F", "a.b1"]),
        (&["-v", "user=alice"], &["-v", "user=alice"]),
        (&["-w", "Root"], &["-w", "Root"]),
        (
            &["-e", "Timeout", "-e", "refused"],
            &["-e", "Timeout", "-e", "refused"],
        ),
        (&["-C", "2", "ERROR"], &["-C", "2", "ERROR"]),
        (
            &["-A", "1", "-B", "3", "Timeout"],
            &["-A", "1", "-B", "3", "Timeout"],
        ),
        (&["-m", "3", "login"], &["-m", "3", "login"]),
        (
            &["-i", "-m", "2", "-C", "1", "root"],
            &["-i", "-m", "2", "-C", "1", "root"],
        ),
    ];
    for (ours, stock) in cases {
        let out = store.grep(ours);
        assert_eq!(out.status.code(), Some(0), "{ours:?}: {}", text(&out));
        let want = expected(&store, ours, stock);
        let got = String::from_utf8(out.stdout).expect("utf-8");
        assert!(want.lines().count() > 3, "{ours:?} finds something");
        if got != want {
            let diff: Vec<_> = got
                .lines()
                .zip(want.lines())
                .enumerate()
                .filter(|(_, (a, b))| a != b)
                .take(3)
                .collect();
            panic!(
                "{ours:?}: {} lines, zstdcat|grep {} lines; first differences {diff:?}",
                got.lines().count(),
                want.lines().count()
            );
        }
    }

    // tail: the last lines of a log whose frames span days, frames cut mid-line; per log with
    // a glob (prefixed, logs by host then name).
    let app: Vec<StoredLog> = store
        .logs()
        .into_iter()
        .filter(|l| l.host == "web1" && l.log.ends_with("app.log"))
        .collect();
    let all: Vec<u8> = app.iter().flat_map(|l| stock_decompress(&l.file)).collect();
    let all_lines: Vec<&[u8]> = all.split_inclusive(|&b| b == b'\n').collect();
    let out = store.env.run(&["tail", "-n", "300", "web1", &app[0].log]);
    assert_ok(&out, "tail");
    assert_eq!(out.stdout, all_lines[all_lines.len() - 300..].concat());
    let out = store.env.run(&["tail", "-n", "2", "--host", "web?"]);
    let want: String = store
        .logs()
        .iter()
        .filter(|l| l.file.to_string_lossy().contains(DAYS[2]))
        .flat_map(|l| {
            let raw = stock_decompress(&l.file);
            let text = String::from_utf8(raw).expect("utf-8");
            let lines: Vec<String> = text.lines().map(String::from).collect();
            lines[lines.len() - 2..]
                .iter()
                .map(|x| format!("{} {}: {x}\n", l.host, l.log))
                .collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(String::from_utf8_lossy(&out.stdout), want);

    // -c: per host and log, summed over the days; -l: the logs with a line.
    let out = store.grep(&["-c", "ERROR"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for log in store.logs() {
        *counts
            .entry(format!("{} {}", log.host, log.log))
            .or_default() += stock_grep(&log, &["ERROR"]).len();
    }
    let want: String = counts.iter().map(|(k, n)| format!("{k}: {n}\n")).collect();
    assert_eq!(String::from_utf8_lossy(&out.stdout), want);
    let out = store.grep(&["-l", "user=Root"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!(
            "web1 {}\nweb2 {}\n",
            name(&store, "web1", "app.log"),
            name(&store, "web2", "app.log")
        )
    );

    // Host and log selection.
    let auth2 = format!("web2 {}", name(&store, "web2", "auth.log"));
    let out = store.grep(&["-c", "--host", "web2", "--log", "auth.log", "ERROR"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("{auth2}: {}\n", counts[&auth2])
    );
    let app1 = name(&store, "web1", "app.log");
    let out = store.grep(&["-c", "--host", "web*", "--log", &app1, "ERROR"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("web1 {app1}: {}\n", counts[&format!("web1 {app1}")])
    );

    // Exit statuses: nothing found, bad pattern, bad time, unknown host or log.
    let out = store.grep(&["no such text anywhere"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(out.stdout.is_empty());
    for (args, says) in [
        (&["("][..], "invalid pattern"),
        (&["--since", "last blue moon", "x"], "invalid --since"),
        (&["--host", "db9", "x"], "no host named \"db9\""),
        (
            &["--log", "mail.log", "x"],
            "no stored log is named \"mail.log\"",
        ),
        (&["--field", "novalue", "x"], "NAME=VALUE"),
    ] {
        let out = store.grep(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", text(&out));
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(says),
            "{args:?}: {}",
            text(&out)
        );
    }

    // JSON: one valid object a line, naming the frame each line is in.
    let out = store.grep(&["--json", "-C", "1", "Timeout"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let ledger = store.env.ledger();
    let mut matches = 0;
    for l in String::from_utf8(out.stdout).expect("utf-8").lines() {
        let v: serde_json::Value = serde_json::from_str(l).expect("JSON line");
        let seq = v["seq"].as_u64().expect("seq") as usize;
        let frame = &ledger[seq];
        assert_eq!(frame["file"], v["file"], "{l}");
        assert_eq!(frame["time"], v["time"], "{l}");
        assert_eq!(frame["host"], v["host"], "{l}");
        assert!(v["log"].as_str().expect("log").ends_with(".log"));
        let line = v["line"].as_str().expect("line");
        match v["type"].as_str() {
            Some("match") => {
                matches += 1;
                assert!(line.contains("Timeout"), "{l}");
            }
            Some("context") => assert!(!line.is_empty()),
            other => panic!("type {other:?}"),
        }
    }
    let want = store
        .logs()
        .iter()
        .map(|l| stock_grep(l, &["Timeout"]).len())
        .sum::<usize>();
    assert_eq!(matches, want);

    time_windows(&store);
    damaged_frames(&store);
}

/// Seconds of a line's own timestamp, as the test wrote it.
fn line_second(l: &str) -> i64 {
    if let Ok(t) = l[..32].parse::<jiff::Timestamp>() {
        return t.as_second();
    }
    // `Nov  1 03:00:00`: the test's lines are of the end of October and of November 2036.
    let day: i64 = l[4..6].trim().parse().expect("day");
    let day = match &l[..4] {
        "Nov " => day,
        "Oct " => day - 31,
        _ => panic!("{l}"),
    };
    let (h, m, s): (i64, i64, i64) = (
        l[7..9].parse().expect("hour"),
        l[10..12].parse().expect("minute"),
        l[13..15].parse().expect("second"),
    );
    let nov1: jiff::Timestamp = "2036-11-01T00:00:00Z".parse().expect("t");
    nov1.as_second() + (day - 1) * 86_400 + h * 3600 + m * 60 + s
}

/// --since/--until keep the lines whose own time is in the window.
fn time_windows(store: &Store) {
    for (since, until) in [
        ("2036-11-02T04:30:00Z", "2036-11-02T10:00:00Z"),
        ("2036-11-01", "2036-11-02"),
        ("2036-11-03T20:00:00Z", "2036-11-04T00:00:00Z"),
    ] {
        let s = since
            .parse::<jiff::Timestamp>()
            .or_else(|_| format!("{since}T00:00:00Z").parse())
            .expect("since")
            .as_second();
        let u = until
            .parse::<jiff::Timestamp>()
            .or_else(|_| format!("{until}T00:00:00Z").parse())
            .expect("until")
            .as_second();
        let mut want = String::new();
        for log in store.logs() {
            let raw = String::from_utf8(stock_decompress(&log.file)).expect("utf-8");
            for l in raw.lines() {
                let t = line_second(l);
                if l.contains("user=bob") && s <= t && t < u {
                    want.push_str(&format!("{} {}: {l}\n", log.host, log.log));
                }
            }
        }
        let out = store.grep(&["--since", since, "--until", until, "user=bob"]);
        assert_eq!(out.status.code(), Some(0), "{since}: {}", text(&out));
        assert!(!want.is_empty());
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            want,
            "--since {since} --until {until}"
        );
    }
    // A relative time, as journalctl takes it (the test's clock: 2036-11-04T00:00:00Z).
    let a = store.grep(&["-c", "--since", "-6h", "ERROR"]);
    let b = store.grep(&["-c", "--since", "2036-11-03 18:00", "ERROR"]);
    assert_eq!(a.stdout, b.stdout, "{}", text(&a));
    let out = store.grep(&["--since", "2036-11-04", "--until", "2036-11-03", "x"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
}

/// A damaged frame is named (exit 2) and the rest is searched; frames outside --since are
/// never read.
fn damaged_frames(store: &Store) {
    let ledger = store.env.ledger();
    let frame = ledger
        .iter()
        .find(|e| {
            e["kind"] == "frame"
                && e["host"] == "web1"
                && e["file"]
                    .as_str()
                    .is_some_and(|f| f.contains("2036-11-01") && f.ends_with("app.log.zst"))
        })
        .expect("a day-1 frame");
    let path: &Path = &store.env.store.join(frame["file"].as_str().expect("file"));
    let mut bytes = std::fs::read(path).expect("stored file");
    let at = frame["offset"].as_u64().expect("offset") as usize + 5;
    bytes[at] ^= 0x55;
    std::fs::write(path, &bytes).expect("damage");

    let out = store.grep(&["-c", "ERROR"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("ledger entry {}", frame["seq"]))
            && err.contains(frame["file"].as_str().expect("file")),
        "{err}"
    );
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .contains(&format!("web2 {}: ", name(store, "web2", "app.log"))),
        "the other logs are still searched: {}",
        text(&out)
    );
    // Day 1 is before --since: its frames are not read, so nothing is wrong.
    let out = store.grep(&["-c", "--since", "2036-11-02", "ERROR"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(out.stderr.is_empty(), "{}", text(&out));
    bytes[at] ^= 0x55;
    std::fs::write(path, &bytes).expect("repair");
}

#[test]
fn journal_entries_are_searched_by_message_and_fields() {
    let dir = tempfile::tempdir().expect("tempdir");
    let keep = dir.path().join("demo");
    let out = Command::new(loghost_bin())
        .args(["demo", "--keep"])
        .arg(&keep)
        .output()
        .expect("demo");
    assert_ok(&out, "demo");
    let config = keep.join("etc/loghost.toml");
    let run = |args: &[&str]| {
        Command::new(loghost_bin())
            .arg("--config")
            .arg(&config)
            .args(args)
            .output()
            .expect("loghost")
    };
    let out = run(&["cat", "demo-web", "journal", "-o", "json"]);
    assert_ok(&out, "cat");
    let entries: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .expect("utf-8")
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    let short = run(&["cat", "demo-web", "journal"]);
    let short: Vec<String> = String::from_utf8(short.stdout)
        .expect("utf-8")
        .lines()
        .map(String::from)
        .collect();
    assert_eq!(short.len(), entries.len(), "one short line per entry");
    let units: Vec<&str> = entries
        .iter()
        .filter_map(|e| e["_SYSTEMD_UNIT"].as_str())
        .collect();
    let unit = units.first().copied().expect("a unit");

    // MESSAGE only: the identifier "sudo" is not in sudo's messages.
    for (args, pick) in [
        (
            vec!["--log", "journal", "-i", "USER=ROOT"],
            Box::new(|e: &serde_json::Value| {
                e["MESSAGE"]
                    .as_str()
                    .is_some_and(|m| m.to_lowercase().contains("user=root"))
            }) as Box<dyn Fn(&serde_json::Value) -> bool>,
        ),
        (
            vec!["--log", "journal", "sudo"],
            Box::new(|e: &serde_json::Value| {
                e["MESSAGE"].as_str().is_some_and(|m| m.contains("sudo"))
            }),
        ),
        (
            vec!["--field", &*format!("_SYSTEMD_UNIT={unit}"), "."],
            Box::new(move |e: &serde_json::Value| {
                e["_SYSTEMD_UNIT"].as_str() == Some(unit)
                    && e["MESSAGE"].as_str().is_some_and(|m| !m.is_empty())
            }),
        ),
    ] {
        let want: String = entries
            .iter()
            .zip(&short)
            .filter(|(e, _)| pick(e))
            .map(|(_, s)| format!("demo-web journal: {s}\n"))
            .collect();
        let out = run(&[&["grep"][..], &args].concat());
        let code = if want.is_empty() { 1 } else { 0 };
        assert_eq!(out.status.code(), Some(code), "{args:?}: {}", text(&out));
        assert_eq!(String::from_utf8_lossy(&out.stdout), want, "{args:?}");
    }
    // --field leaves text logs out; -c counts entries.
    let out = run(&[
        "grep",
        "-c",
        "--field",
        &format!("_SYSTEMD_UNIT={unit}"),
        ".",
    ]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!(
            "demo-web journal: {}\n",
            units.iter().filter(|u| **u == unit).count()
        )
    );
    // tail: the last entries, as cat prints them; -n larger than the journal: all of them.
    for n in [3, 100_000] {
        let out = run(&["tail", "-n", &n.to_string(), "demo-web", "journal"]);
        assert_ok(&out, "tail journal");
        let want: String = short[short.len().saturating_sub(n)..]
            .iter()
            .map(|s| format!("{s}\n"))
            .collect();
        assert_eq!(String::from_utf8_lossy(&out.stdout), want, "tail -n {n}");
    }
}

/// What an intruder who can write the store may plant is named (exit 2), never obeyed: a FIFO
/// or device where a stored file should be (no hang), a ledger line without end, a frame
/// whose ledger entry claims a huge raw length, a ledger replaced under `tail -f`.
#[test]
fn hostile_store_content_is_named_not_obeyed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let keep = dir.path().join("demo");
    assert_ok(
        &Command::new(loghost_bin())
            .args(["demo", "--keep"])
            .arg(&keep)
            .output()
            .expect("demo"),
        "demo",
    );
    let config = keep.join("etc/loghost.toml");
    let run = |args: &[&str]| {
        // `timeout`: a hang is a failure, not a stuck test.
        Command::new("timeout")
            .arg("60")
            .arg(loghost_bin())
            .arg("--config")
            .arg(&config)
            .args(args)
            .output()
            .expect("loghost")
    };
    let ledger = keep.join("store/ledger/ledger.jsonl");
    let original = std::fs::read(&ledger).expect("ledger");
    let stored = walk(&keep.join("store/logs"))
        .into_iter()
        .find(|p| p.ends_with("syslog.zst"))
        .expect("syslog stored");
    let reports = |out: &Output, what: &str| {
        assert_eq!(out.status.code(), Some(2), "{what}: {}", text(out));
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(what),
            "{what}: {}",
            text(out)
        );
    };

    // A FIFO in place of a stored file.
    let saved = std::fs::read(&stored).expect("stored");
    std::fs::remove_file(&stored).expect("rm");
    let fifo = Command::new("mkfifo")
        .arg(&stored)
        .status()
        .expect("mkfifo");
    assert!(fifo.success());
    reports(&run(&["grep", "-c", "CRON"]), "not a regular file");
    reports(
        &run(&["tail", "-n", "1", "demo-web", "syslog"]),
        "not a regular file",
    );
    let out = run(&["cat", "demo-web", "syslog"]);
    assert_ne!(out.status.code(), Some(0), "{}", text(&out));
    assert_ne!(out.status.code(), Some(124), "cat hung on a FIFO");
    std::fs::remove_file(&stored).expect("rm fifo");
    std::fs::write(&stored, &saved).expect("restore");

    // A frame entry claiming more raw content than any frame loghost writes.
    let text_ledger = String::from_utf8(original.clone()).expect("utf-8");
    let frame = text_ledger
        .lines()
        .rfind(|l| l.contains("\"source\":\"/var/log/syslog\""))
        .expect("a syslog frame");
    let end = frame
        .split("\"end\":")
        .nth(1)
        .and_then(|r| r.split(',').next())
        .expect("end");
    let forged = frame.replace(&format!("\"end\":{end},"), "\"end\":18446744073709551615,");
    std::fs::write(&ledger, format!("{text_ledger}{forged}\n")).expect("forge");
    reports(
        &run(&["grep", "-c", "CRON"]),
        "more than loghost puts in a frame",
    );
    reports(
        &run(&["tail", "-n", "3", "demo-web", "syslog"]),
        "more than loghost puts in a frame",
    );

    // A ledger "line" without end (2 MiB, no newline) is refused, not read into memory.
    let mut long = original.clone();
    long.extend(std::iter::repeat_n(b'x', 2 << 20));
    std::fs::write(&ledger, &long).expect("long line");
    reports(&run(&["grep", "-c", "CRON"]), "a ledger line longer than");
    std::fs::write(&ledger, &original).expect("restore ledger");
    assert_ok(&run(&["grep", "-c", "CRON"]), "restored");

    // tail -f notices a ledger replaced under it (a copy renamed over it).
    let mut follower = Follower::spawn_with(&config, &["tail", "-f", "-n", "0"]);
    std::thread::sleep(std::time::Duration::from_millis(500));
    let copy = keep.join("store/ledger/copy");
    std::fs::write(&copy, &original).expect("copy");
    std::fs::rename(&copy, &ledger).expect("replace");
    assert!(
        follower.wait_error("it was replaced"),
        "{:?}",
        follower.errors
    );
    assert_eq!(follower.wait_exit(), Some(2));
}
