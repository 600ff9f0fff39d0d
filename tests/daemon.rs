//! `loghost run` as a real process: scheduled pulls from a real sshd, SIGHUP reloads (a bad config
//! is refused and the old one keeps running), metrics, SIGTERM, retention; `loghost status`
//! staleness.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// `loghost run` with its stderr in a file the test can read while it runs.
struct Daemon {
    child: Option<Child>,
    log: PathBuf,
}

impl Daemon {
    fn start(env: &Env, vars: &[(&str, &str)]) -> Daemon {
        let log = env.dir.path().join("daemon.log");
        let file = std::fs::File::create(&log).expect("log file");
        let mut cmd = Command::new(loghost_bin());
        cmd.arg("--config")
            .arg(&env.config)
            .arg("run")
            .stdout(Stdio::null())
            .stderr(Stdio::from(file));
        for (k, v) in vars {
            cmd.env(k, v);
        }
        Daemon {
            child: Some(cmd.spawn().expect("start loghost run")),
            log,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn alive(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| c.try_wait().expect("try_wait").is_none())
    }

    fn signal(&self, sig: &str) {
        signal(self.child.as_ref().expect("running").id(), sig);
    }

    /// SIGTERM; the exit code.
    fn stop(&mut self) -> Option<i32> {
        let mut child = self.child.take().expect("running");
        signal(child.id(), "TERM");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = child.try_wait().expect("wait") {
                return status.code();
            }
            assert!(
                Instant::now() < deadline,
                "loghost run did not stop on SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn wait_for(what: &str, d: &Daemon, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !cond() {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}; daemon log:\n{}",
            d.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// What the ledger says was collected from `source`, as `loghost cat` prints it.
fn collected(env: &Env, source: &Path) -> Vec<u8> {
    let out = env.run(&["cat", "web1", &source.display().to_string()]);
    if out.status.success() {
        out.stdout
    } else {
        Vec::new()
    }
}

fn metrics(port: u16) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect to metrics");
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .expect("request");
    let mut out = String::new();
    s.read_to_string(&mut out).expect("response");
    out
}

fn config_text(env: &Env, sshd: &Sshd, paths: &[&Path], metrics_port: u16) -> String {
    let list = paths
        .iter()
        .map(|p| format!("{:?}", p.display().to_string()))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "store = \"{}\"\nmetrics_listen = \"127.0.0.1:{metrics_port}\"\n\n[ledger]\n\
         checkpoint_every = \"1s\"\n\n[[host]]\nname = \"web1\"\naddress = \"{}\"\nuser = \"{}\"\n\
         paths = [{list}]\nevery = \"1s\"\n",
        env.store.display(),
        sshd.address(),
        current_user()
    )
}

#[test]
fn scheduled_pulls_sighup_reload_metrics_and_sigterm() {
    let env = Env::new();
    let auth = env.remote.join("var/log/auth.log");
    let app = env.remote.join("var/log/app.log");
    std::fs::write(&auth, log_lines(1, 500)).expect("write");
    std::fs::write(&app, log_lines(2, 300)).expect("write");
    let sshd = env.init_and_start_sshd("");
    let port = free_port();
    std::fs::write(&env.config, config_text(&env, &sshd, &[&auth], port)).expect("config");
    env.trust("web1", &sshd);

    let mut d = Daemon::start(&env, &[]);
    // Pulled on its schedule, again and again.
    wait_for("the first scheduled pull", &d, || {
        collected(&env, &auth) == std::fs::read(&auth).expect("read")
    });
    append(&auth, &log_lines(3, 100));
    wait_for("a later scheduled pull", &d, || {
        collected(&env, &auth) == std::fs::read(&auth).expect("read")
    });

    let ok_pulls = |m: &str| -> u64 {
        m.lines()
            .find_map(|l| l.strip_prefix("loghost_pulls_total{result=\"ok\"} "))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    };
    wait_for("two pulls counted", &d, || ok_pulls(&metrics(port)) >= 2);
    let m = metrics(port);
    assert!(m.starts_with("HTTP/1.1 200"), "{m}");
    assert!(m.contains("loghost_ledger_entries "), "{m}");
    assert!(m.contains("loghost_last_checkpoint_age_seconds "), "{m}");
    // What dist/prometheus/loghost.rules.yml alerts on.
    assert!(m.contains("loghost_host_stale{host=\"web1\"} 0\n"), "{m}");
    assert!(
        m.contains("loghost_host_last_seen_timestamp_seconds{host=\"web1\"} "),
        "{m}"
    );
    assert!(
        m.contains("loghost_receiver_refused_total{reason=\"identity\"} 0"),
        "{m}"
    );
    let free = m
        .lines()
        .find_map(|l| l.strip_prefix("loghost_store_free_bytes "))
        .and_then(|v| v.trim().parse::<f64>().ok());
    assert!(free.is_some_and(|f| f > 0.0), "{m}");

    // A broken config on SIGHUP is refused; the running one keeps pulling.
    let good = std::fs::read_to_string(&env.config).expect("config");
    std::fs::write(&env.config, format!("{good}\nno_such_key = 1\n")).expect("bad config");
    d.signal("HUP");
    wait_for("the refusal", &d, || d.log().contains("reload refused"));
    assert!(d.alive(), "a bad config must not stop the daemon");
    assert!(
        d.log().contains("no_such_key"),
        "the log says why:\n{}",
        d.log()
    );
    // (The good file back, for this test's own `loghost cat`; no SIGHUP, so no reload.)
    std::fs::write(&env.config, &good).expect("config");
    append(&auth, &log_lines(4, 100));
    wait_for("a pull under the old config", &d, || {
        collected(&env, &auth) == std::fs::read(&auth).expect("read")
    });

    // A good new config on SIGHUP is taken: the new log is pulled too.
    std::fs::write(&env.config, config_text(&env, &sshd, &[&auth, &app], port))
        .expect("new config");
    d.signal("HUP");
    wait_for("the new log", &d, || {
        collected(&env, &app) == std::fs::read(&app).expect("read")
    });
    assert!(d.log().contains("reloaded"), "{}", d.log());

    let out = env.run(&["status", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(status["hosts"][0]["stale"], false, "{status}");
    assert_eq!(status["hosts"][0]["stale_after"], "3s", "{status}");

    // SIGTERM: exit 0, and a final checkpoint covers the whole ledger.
    assert_eq!(d.stop(), Some(0), "{}", d.log());
    assert!(d.log().contains("stopped"), "{}", d.log());
    let entries = env.ledger().len() as u64;
    let newest = std::fs::read_dir(env.store.join("ledger/checkpoints"))
        .expect("checkpoints")
        .flatten()
        .filter_map(|e| {
            e.file_name()
                .to_str()?
                .strip_suffix(".ckpt")?
                .parse::<u64>()
                .ok()
        })
        .max();
    assert_eq!(
        newest,
        Some(entries),
        "the final checkpoint covers every entry"
    );
    assert_ok(&env.run(&["verify", "--deep"]), "verify after the daemon");

    // Later, nothing has been pulled for longer than stale_after (3 × every): status exit 3.
    let out = env.run_env(&["status"], &[("LOGHOST_FAKE_NOW", "2036-01-01T00:00:00Z")]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("STALE"),
        "{}",
        text(&out)
    );
}

#[test]
fn a_host_never_collected_is_stale() {
    let env = Env::new();
    env.write_config(&[host("web1", "127.0.0.1:1", &["/var/log/auth.log"])], "");
    assert_ok(&env.run(&["init"]), "init");
    let out = env.run(&["status", "--json"]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(status["hosts"][0]["stale"], true);
    assert_eq!(
        status["hosts"][0]["stale_after"], "3h",
        "default: three schedule periods"
    );
}

#[test]
fn the_daemon_applies_retention() {
    let env = Env::new();
    let auth = env.remote.join("var/log/auth.log");
    let sshd = env.init_and_start_sshd("");
    let archive = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let config = format!(
        "{}\n",
        config_text(&env, &sshd, &[&auth], port).replace(
            "[ledger]\n",
            &format!(
                "[retention]\nonline_days = 2\narchive = \"file://{}\"\n\n[ledger]\n",
                archive.path().display()
            )
        )
    );
    std::fs::write(&env.config, config).expect("config");
    env.trust("web1", &sshd);
    for (i, now) in ["2036-11-01T10:00:00Z", "2036-11-05T10:00:00Z"]
        .into_iter()
        .enumerate()
    {
        append(&auth, &log_lines(i as u64, 300));
        assert_ok(
            &env.run_env(&["pull"], &[("LOGHOST_FAKE_NOW", now)]),
            "pull",
        );
    }

    env.set_clock("2036-11-06T00:00:00Z");
    let mut d = Daemon::start(
        &env,
        &[
            ("LOGHOST_FAKE_NOW", "2036-11-05T12:00:00Z"),
            ("LOGHOST_RETENTION_DELAY_MS", "300"),
        ],
    );
    wait_for("the archived event", &d, || {
        env.ledger()
            .iter()
            .any(|e| e["event"] == "archived" && e["source"] == "2036-11-01")
    });
    wait_for("the metric", &d, || {
        metrics(port).contains("loghost_archived_days_total 1")
    });
    assert_eq!(d.stop(), Some(0), "{}", d.log());
    let day1 = env.store.join("logs/web1/2036-11-01");
    assert!(!day1.exists(), "the archived day left the store");
    assert!(env.store.join("logs/web1/2036-11-05").exists());
    assert_ok(&env.run(&["verify", "--archived"]), "verify --archived");
}

#[test]
fn a_frame_appended_to_a_closed_day_while_the_daemon_runs_is_a_problem() {
    // Issue 17 §3: with `loghost run` holding the store, verify runs "busy"; bytes after the
    // last frame are excused only in each log's newest file, never in a day long closed.
    let env = Env::new();
    let auth = env.remote.join("var/log/auth.log");
    // app.log is written once: its newest stored file is the first day's, long closed.
    let app = env.remote.join("var/log/app.log");
    std::fs::write(&app, log_lines(9, 50)).expect("write");
    let sshd = env.init_and_start_sshd("");
    std::fs::write(
        &env.config,
        config_text(&env, &sshd, &[&auth, &app], free_port()),
    )
    .expect("config");
    env.trust("web1", &sshd);
    for (i, now) in ["2036-11-01T10:00:00Z", "2036-11-05T10:00:00Z"]
        .into_iter()
        .enumerate()
    {
        append(&auth, &log_lines(i as u64, 300));
        assert_ok(
            &env.run_env(&["pull"], &[("LOGHOST_FAKE_NOW", now)]),
            "pull",
        );
    }
    env.set_clock("2036-11-05T12:00:00Z");
    let d = Daemon::start(&env, &[("LOGHOST_FAKE_NOW", "2036-11-05T12:00:00Z")]);
    wait_for("verify to find the store busy", &d, || {
        let out = env.run(&["verify"]);
        String::from_utf8_lossy(&out.stdout).contains("in use by another loghost process")
            && out.status.code() == Some(0)
    });
    let day1 = env
        .store
        .join(format!("logs/web1/2036-11-01/%root{}.zst", auth.display()));
    let forged = zstd::encode_all(
        &b"Nov  1 23:59:01 web1 sshd[666]: Accepted password for mallory from 10.6.6.6\n"[..],
        3,
    )
    .expect("zstd");
    let app1 = env
        .store
        .join(format!("logs/web1/2036-11-01/%root{}.zst", app.display()));
    let original = std::fs::read(&day1).expect("day 1");
    append(&day1, &forged);
    let out = env.run(&["verify"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("appended without being recorded"),
        "{}",
        text(&out)
    );
    // The newest file of a quiet log is no excuse either when its day is long over.
    std::fs::write(&day1, original).expect("restore");
    append(&app1, &forged);
    let out = env.run(&["verify"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("appended without being recorded"),
        "{}",
        text(&out)
    );
}

#[test]
fn the_metrics_endpoint_warns_beyond_loopback_and_idle_connections_do_not_pile_up() {
    let env = Env::new();
    let auth = env.remote.join("var/log/auth.log");
    std::fs::write(&auth, log_lines(1, 10)).expect("write");
    let sshd = env.init_and_start_sshd("");
    let port = free_port();
    let text = config_text(&env, &sshd, &[&auth], port).replace(
        "metrics_listen = \"127.0.0.1:",
        "metrics_listen = \"0.0.0.0:",
    );
    std::fs::write(&env.config, text).expect("config");
    env.trust("web1", &sshd);
    let mut d = Daemon::start(&env, &[]);
    wait_for("the metrics endpoint", &d, || {
        TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    // Forty clients that connect and say nothing: scrapes are served a few at a time (each
    // idle one is dropped after 5 s), and a real scrape still gets its answer.
    let idle: Vec<TcpStream> = (0..40)
        .filter_map(|_| TcpStream::connect(("127.0.0.1", port)).ok())
        .collect();
    let t = Instant::now();
    let m = metrics(port);
    assert!(m.starts_with("HTTP/1.1 200"), "{m}");
    assert!(m.contains("loghost_evidence_alarms_total 0"), "{m}");
    assert!(m.contains("loghost_checkpoint_failures_total"), "{m}");
    assert!(t.elapsed() < Duration::from_secs(30), "{:?}", t.elapsed());
    drop(idle);
    assert_eq!(d.stop(), Some(0), "{}", d.log());
    assert!(
        d.log().contains("reachable beyond this machine"),
        "{}",
        d.log()
    );
}

#[test]
fn run_waits_for_a_short_command_holding_the_store_and_refuses_a_second_daemon() {
    // A `verify` (or a cron `pull`) holding the store when `run` starts or reloads must not
    // take the service down; a second `run` on the same store is refused at once.
    let env = Env::new();
    let auth = env.remote.join("var/log/auth.log");
    append(&auth, &log_lines(0, 20));
    let sshd = env.init_and_start_sshd("");
    std::fs::write(&env.config, config_text(&env, &sshd, &[&auth], free_port())).expect("config");
    env.trust("web1", &sshd);
    let hold = |role: &str| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .open(env.store.join("lock"))
            .expect("lock file");
        f.try_lock().expect("take the store's lock");
        f.set_len(0).expect("truncate");
        writeln!(f, "4242 {role}").expect("write");
        f
    };

    // Held by "verify": run waits, says who holds it, and starts once it is free.
    let held = hold("verify");
    let mut d = Daemon::start(&env, &[]);
    wait_for("run to say it waits", &d, || {
        d.log().contains("pid 4242, loghost verify") && d.log().contains("waiting")
    });
    std::thread::sleep(Duration::from_millis(1500));
    assert!(d.alive(), "run gave up waiting: {}", d.log());
    assert!(collected(&env, &auth).is_empty(), "pulled without the lock");
    drop(held);
    wait_for("the pull after the lock was freed", &d, || {
        collected(&env, &auth) == log_lines(0, 20)
    });
    assert_eq!(d.stop(), Some(0), "{}", d.log());

    // SIGTERM while waiting: a clean exit.
    let held = hold("pull");
    let mut d = Daemon::start(&env, &[]);
    wait_for("run to say it waits", &d, || d.log().contains("waiting"));
    assert_eq!(d.stop(), Some(0), "{}", d.log());

    // Held by another "run": refused at once, naming the mistake.
    drop(held);
    let held = hold("run");
    let out = env.run(&["run"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("one `loghost run` per store") && text(&out).contains("pid 4242"),
        "{}",
        text(&out)
    );
    drop(held);

    // Taken by a command that has not yet written its name (the lock file empty, or still
    // naming the daemon that held it before): run reads it again, and waits.
    let mut held = hold("run");
    held.set_len(0).expect("truncate");
    let mut d = Daemon::start(&env, &[]);
    std::thread::sleep(Duration::from_millis(150));
    std::io::Seek::rewind(&mut held).expect("rewind");
    writeln!(held, "4242 verify").expect("write");
    wait_for("run to say it waits", &d, || {
        d.log().contains("pid 4242, loghost verify") && d.log().contains("waiting")
    });
    drop(held);
    wait_for("run to start once the lock was freed", &d, || {
        d.log().contains("loghost running")
    });
    assert_eq!(d.stop(), Some(0), "{}", d.log());
}
