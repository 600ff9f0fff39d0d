//! **Part `cli/`: the commands.** The command line and the commands a person runs that are not
//! a service: `check`, `status`, `cat`, `key`/`prove`/`verify-proof` (`audit`), `demo`, and the
//! shell completions and man pages generated from this very command line. It may import
//! every other part, and must not be imported by any (shared formatting lives in `units`).
//!
//! The command line: parses arguments, sets up the process (umask, logging, runtime), runs one
//! command and maps the outcome to the exit statuses of DESIGN §2.
//!
//! Exit statuses: 0 success; 1 a host failed (pull), a fingerprint did not match (trust) or
//! another command failed at its job; 2 bad configuration, store or arguments.

pub mod audit;
pub mod cat;
pub mod check;
pub mod demo;
pub mod status;

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

use crate::config::{Config, SetupError};
use crate::ledger::{Entry, Event, EventKind, Ledger};
use crate::pull::known_hosts::{self, KnownHosts};
use crate::pull::{Outcome, RoundReport};
use crate::sanitize::Shown;
use crate::store::Store;

#[derive(Parser, Debug)]
#[command(
    name = "loghost",
    version,
    about = "A secure central log server: pulls logs over SSH into a tamper-evident archive",
    long_about = "loghost pulls log files from remote hosts over SFTP (loghost connects out; the \
servers hold no credential for it), stores them per host and day as compressed frames readable \
with zstdcat/zcat, and records every stored byte in an append-only ledger.\n\n\
Start with `loghost demo` to see the whole job on an embedded test server.\n\
For real use: write a config (see the README), `loghost init`, install the printed key on each \
server, pin each host with `loghost trust HOST --fingerprint SHA256:...`, then run `loghost pull` \
from cron.",
    after_help = "Exit status: 0 ok; 1 a host failed or a check did not pass; 2 bad configuration, \
store or arguments; 3 (status) a host is stale; 4 (pull) a collected log was rewritten on its server."
)]
struct Cli {
    /// Configuration file [default: $LOGHOST_CONFIG, else /etc/loghost/loghost.toml]
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,

    #[command(flatten)]
    noise: Noise,

    #[command(subcommand)]
    command: Command,
}

/// How much loghost says on stderr. Taken before the command (`loghost -v pull`) or after it
/// (`loghost pull -v`); `grep` and `tail` keep `-v` and `-q` for grep's own meanings.
#[derive(clap::Args, Debug, Default, Clone, Copy)]
struct Noise {
    /// More detail on stderr (repeat for debug output)
    #[arg(short, long, action = clap::ArgAction::Count)]
    verbose: u8,

    /// Only errors on stderr
    #[arg(short, long, conflicts_with = "verbose")]
    quiet: bool,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Create the store (0700) and, where missing, the SSH client key and the ledger signing key
    ///
    /// Never overwrites an existing key. Prints the public key to install on each server and the
    /// ledger's verifier key for auditors.
    #[command(
        after_help = "Exit status: 0 done (existing keys are kept); 2 bad config, or the store or a key cannot be \
created.

Example:
  sudo -u loghost loghost init"
    )]
    Init {
        #[command(flatten)]
        noise: Noise,
    },

    /// Show a host's SSH host key fingerprint, and pin it once it has been checked
    ///
    /// Without --fingerprint: connects and prints the key the server offers; nothing is pinned.
    /// With --fingerprint: pins the key only if it matches (compare with `ssh-keygen -lf
    /// /etc/ssh/ssh_host_ed25519_key.pub` run on the server), else exits 1. Pins live in
    /// `ssh.known_hosts`; a pull refuses any host whose key is not pinned.
    #[command(
        after_help = "Exit status: 0 the key was shown, or pinned; 1 the fingerprint does not match (nothing is \
pinned) or the host cannot be reached; 2 bad config or arguments.

Examples:
  loghost trust web1
  loghost trust web1 --fingerprint SHA256:gS7vgvaU0HqA/Qi0ClU0E4FxR1r+e0mUIbmtrsWLbBw"
    )]
    Trust {
        #[command(flatten)]
        noise: Noise,
        /// A host name from the config
        host: String,
        /// The fingerprint checked out of band, e.g. SHA256:gS7vgvaU0HqA/Qi0ClU0E4FxR1r+e0mUIbmtrsWLbBw
        #[arg(long, value_name = "SHA256:...")]
        fingerprint: Option<String>,
    },

    /// Run the service: scheduled pulls, the syslog-over-TLS receiver, checkpoints, retention
    ///
    /// Each host with an address is pulled on its schedule (`every` or `cron`); [receiver] is
    /// served; a checkpoint is signed every checkpoint_every; retention runs once a day when
    /// [retention] archive is set; metrics are served on metrics_listen. SIGTERM or SIGINT: pulls
    /// in flight finish, connections are drained, buffers flushed, a final checkpoint, exit 0.
    /// SIGHUP: the config is read again; an invalid one is refused and the running one stays.
    #[command(
        after_help = "Exit status: 0 stopped by SIGTERM or SIGINT, drained and checkpointed; 1 the service failed \
(the receiver stopped, the ledger refused: the log says why); 2 bad config or store.

Examples:
  systemctl enable --now loghost      # the unit runs `loghost --config /etc/loghost/loghost.toml run`
  loghost -v run"
    )]
    Run {
        #[command(flatten)]
        noise: Noise,
    },

    /// Pull new log data from hosts now (one round; for cron)
    ///
    /// Every host is tried even if others fail. Exit 0 when all were collected, 1 when some host
    /// or file failed (named on stderr), 2 on a bad config or store.
    #[command(
        after_help = "Exit status: 0 every host collected; 1 a host or a file failed (named on stderr); 2 bad config \
or store; 4 a collected log was rewritten on its server (ALARM, the original is kept).

Examples:
  loghost pull
  loghost pull web1 db1
  */10 * * * * loghost /usr/bin/loghost pull      # in /etc/cron.d: quiet unless something fails"
    )]
    Pull {
        #[command(flatten)]
        noise: Noise,
        /// Hosts to pull [default: all hosts with an address]
        hosts: Vec<String>,
    },

    /// Check the setup before the first pull: config, hosts, receiver, anchors, archive
    ///
    /// The preflight to run after editing the config. Changes nothing anywhere. Checks that the
    /// config is valid; that the store, SSH key, known_hosts and ledger key are usable; for each
    /// host (all pulled hosts, or those named): that it is reachable, its host key pinned and
    /// matching, loghost's key accepted, the SFTP session read-only, each path and glob matching
    /// files that can be read (named, with sizes), its journal directories readable; the
    /// receiver's certificate, key and client CA (match, dates, chain order); each anchor and the
    /// archive target (writable directory; S3: reachable, Object Lock). Every problem is printed
    /// with the fix to apply. Hosts named on the command line: only those hosts are checked.
    #[command(
        after_help = "Exit status: 0 no problem found; 1 problems found (each with its fix); 2 the config is invalid or a named host is not in it.

Examples:
  loghost check
  loghost check web1 db1
  loghost --config /etc/loghost/staging.toml check"
    )]
    Check {
        #[command(flatten)]
        noise: Noise,
        /// Hosts to check [default: all pulled hosts, the receiver, anchors and archive]
        hosts: Vec<String>,
        /// Colour the verdicts
        #[arg(long, value_enum, default_value = "auto", value_name = "WHEN")]
        color: ColorChoice,
    },

    /// Print shell completions for bash, zsh, fish, elvish or PowerShell
    ///
    /// The package installs them already; from a source build, write them where your shell
    /// looks for them.
    #[command(after_help = "Exit status: 0.

Examples:
  loghost completions bash > /usr/share/bash-completion/completions/loghost
  loghost completions zsh > /usr/local/share/zsh/site-functions/_loghost
  loghost completions fish > ~/.config/fish/completions/loghost.fish")]
    Completions {
        /// The shell
        shell: clap_complete::Shell,
    },

    /// Write the man pages (loghost.1 and one per command) into DIR (for packaging)
    #[command(hide = true)]
    Manpages {
        /// Directory to write the pages to (created if missing)
        dir: PathBuf,
    },

    /// Per host: what was collected and when, the last round's outcome, rewrite alarms, staleness
    ///
    /// A host is stale when it had no successful pull (a host that is only received from: no
    /// message) for longer than its stale_after (default: three schedule periods). Exit 3 when a
    /// host is stale, else 0: fit for a monitoring check.
    #[command(
        after_help = "Exit status: 0 no host is stale; 3 a host is stale; 2 bad config or store.

Examples:
  loghost status
  loghost status --json | jq -r '.hosts[] | select(.stale) | .host'"
    )]
    Status {
        #[command(flatten)]
        noise: Noise,
        /// Machine-readable output
        #[arg(long)]
        json: bool,
    },

    /// Print stored logs, decompressed, in the order they were collected
    #[command(
        after_help = "Exit status: 0 printed; 1 nothing is stored for that host, log or day, or a stored file could \
not be read; 2 bad config or store.

Examples:
  loghost cat web1 auth.log --date 2026-11-28
  loghost cat web1 /var/log/nginx/access.log | grep ' 500 '
  loghost cat db1 journal -o json"
    )]
    Cat {
        #[command(flatten)]
        noise: Noise,
        /// A host name
        host: String,
        /// A log: its remote path (/var/log/auth.log) or stored name (auth.log) [default: all]
        log: Option<String>,
        /// Only this day (UTC collection date), YYYY-MM-DD
        #[arg(long, value_name = "YYYY-MM-DD")]
        date: Option<String>,
        /// How journal entries are printed (LOG `journal`: a host's systemd journal)
        #[arg(short = 'o', long, value_enum, default_value_t)]
        output: crate::cli::cat::JournalOutput,
    },

    /// Search stored logs across hosts and days (ripgrep's engine, on every core)
    ///
    /// Searches every stored log of the selected hosts, logs and times, decompressing in-process
    /// on every core. Prints `HOST LOG: LINE`, a log's lines in the order they were collected
    /// (logs by host, then name, then day); journal entries are matched on their MESSAGE and
    /// printed as `journalctl` does. On a terminal, control characters from the logs are
    /// neutralised and matches coloured.
    ///
    /// --since/--until: frames collected before --since are not read; lines are kept by the time
    /// they state at their start (RFC 3339 or RFC 3164, read as UTC), an undated line by the line
    /// before it, else by when it was collected. Each frame's stored bytes are checked against the
    /// ledger: a mismatch or a damaged frame is named on stderr (exit 2) and the search goes on.
    ///
    /// Exit status: 0 a line was selected; 1 none; 2 a bad pattern, time or selection, or a
    /// frame that could not be read or did not match the ledger.
    #[command(after_help = "Examples:
  loghost grep 'Failed password' --host 'web*' --log auth.log --since yesterday
  loghost grep -c -F ' 500 ' --log nginx/access.log --since -1h
  loghost grep -i -C 3 'out of memory' --log journal --field _SYSTEMD_UNIT=postgresql.service
  loghost grep --json 'session opened' --host db1 --since '2026-12-01 22:00' --until '2026-12-02 06:00'")]
    Grep {
        /// A regular expression (Rust regex syntax, as ripgrep); not given when -e is
        #[arg(required_unless_present = "regexp")]
        pattern: Option<String>,
        /// A pattern; repeat for several (a line matching any is selected)
        #[arg(short = 'e', long = "regexp", value_name = "PATTERN")]
        regexp: Vec<String>,
        /// The patterns are fixed strings, not regular expressions
        #[arg(short = 'F', long)]
        fixed_strings: bool,
        /// Ignore case
        #[arg(short = 'i', long)]
        ignore_case: bool,
        /// Select the lines that do not match
        #[arg(short = 'v', long)]
        invert_match: bool,
        /// Match whole words only
        #[arg(short = 'w', long)]
        word_regexp: bool,
        /// Print only the number of selected lines, per host and log
        #[arg(short = 'c', long, conflicts_with = "files_with_matches")]
        count: bool,
        /// Print only the host and log of each log with a selected line
        #[arg(short = 'l', long)]
        files_with_matches: bool,
        /// Stop reading a log (of one day) after NUM selected lines
        #[arg(short = 'm', long, value_name = "NUM")]
        max_count: Option<u64>,
        /// Print NUM lines of context around each selected line
        #[arg(short = 'C', long, value_name = "NUM")]
        context: Option<usize>,
        /// Print NUM lines of context after each selected line
        #[arg(short = 'A', long, value_name = "NUM")]
        after_context: Option<usize>,
        /// Print NUM lines of context before each selected line
        #[arg(short = 'B', long, value_name = "NUM")]
        before_context: Option<usize>,
        /// Only hosts matching this glob (repeatable) [default: all]
        #[arg(long = "host", value_name = "GLOB")]
        hosts: Vec<String>,
        /// Only this log: a remote path, a stored name (auth.log, nginx/access.log), or
        /// `journal` (repeatable) [default: all]
        #[arg(long = "log", value_name = "LOG")]
        logs: Vec<String>,
        /// Only lines from this time on: 2026-12-01T10:00:00Z, 2026-12-01, "2026-12-01 10:00"
        /// (UTC), yesterday, today, -2h, "30min ago"
        #[arg(long, value_name = "TIME", allow_hyphen_values = true)]
        since: Option<String>,
        /// Only lines before this time (same forms as --since)
        #[arg(long, value_name = "TIME", allow_hyphen_values = true)]
        until: Option<String>,
        /// Only journal entries whose field NAME is VALUE (repeatable; text logs are left out)
        #[arg(long = "field", value_name = "NAME=VALUE")]
        fields: Vec<String>,
        /// One JSON object per line: host, log, file, seq, time (of the frame), line
        #[arg(long)]
        json: bool,
        /// Colour matches and names
        #[arg(long, value_enum, default_value = "auto", value_name = "WHEN")]
        color: ColorChoice,
        /// Also search archived days, read from the archive tier ([retention] archive): each
        /// day's manifest must be the one the ledger recorded, each frame its ledger entry
        #[arg(long)]
        archived: bool,
        /// Worker threads [default: one per core]
        #[arg(short = 'j', long, value_name = "NUM")]
        threads: Option<usize>,
        /// More detail on stderr
        #[arg(long, action = clap::ArgAction::Count)]
        verbose: u8,
    },

    /// Show the last lines of stored logs, then (-f) each new line as it is collected
    ///
    /// Shows the last NUM lines of each selected log (journal entries as `journalctl` prints
    /// them); with --follow, then each new line as its frame commits, pulled or received, until
    /// interrupted (Ctrl-C). Lines are prefixed `HOST LOG: ` unless one host and one log are
    /// named. A rotation of a followed log and the ledger's alarms for it are told as notes on
    /// stderr (in --json: objects of type "note"). Frames are checked against the ledger before
    /// their lines are shown. Exit status: 0, or 2 on a bad selection or a frame that could not
    /// be read or did not match the ledger.
    #[command(after_help = "Examples:
  loghost tail web1 auth.log
  loghost tail -f -n 0 --host 'web*' --log nginx/access.log
  loghost tail -f db1 journal
  loghost tail -f --json db1 | jq -r .line")]
    Tail {
        #[command(flatten)]
        noise: Noise,
        /// A host (a glob as with --host) [default: all]
        host: Option<String>,
        /// A log: its remote path (/var/log/auth.log), stored name (auth.log), file name, or
        /// `journal` [default: all]
        log: Option<String>,
        /// Lines shown per log before following
        #[arg(short = 'n', long, value_name = "NUM", default_value_t = 10)]
        lines: usize,
        /// Keep showing new lines as they are collected, until interrupted
        #[arg(short = 'f', long)]
        follow: bool,
        /// Only hosts matching this glob (repeatable)
        #[arg(long = "host", value_name = "GLOB")]
        hosts: Vec<String>,
        /// Only this log (repeatable; as LOG)
        #[arg(long = "log", value_name = "LOG")]
        logs: Vec<String>,
        /// One JSON object per line: type, host, log, file, seq, time (of the frame), line
        #[arg(long)]
        json: bool,
        /// Colour the host and log names
        #[arg(long, value_enum, default_value = "auto", value_name = "WHEN")]
        color: ColorChoice,
    },

    /// Check the whole archive against the ledger and the checkpoints
    ///
    /// Recomputes every stored frame's hash, every ledger entry, the Merkle tree and every
    /// checkpoint (the store's, the newest in each anchor, and each --checkpoint); reports files
    /// or bytes the ledger does not cover and the entries newer than the last anchored
    /// checkpoint. Exit 0 when everything holds, 1 when tampering is found (each problem named
    /// by file, byte range and entry), 2 when verify could not run.
    #[command(after_help = "Examples:
  loghost verify
  loghost verify --deep --checkpoint /mnt/auditor/loghost/1234.ckpt
  loghost verify --archived")]
    Verify {
        #[command(flatten)]
        noise: Noise,
        /// Also decompress every frame and check the raw content's hash and length
        #[arg(long)]
        deep: bool,
        /// A checkpoint kept outside this machine (an auditor's copy); the ledger must extend it
        #[arg(long = "checkpoint", value_name = "FILE")]
        checkpoints: Vec<PathBuf>,
        /// The log's verifier key (default: derived from [ledger] signing_key)
        #[arg(long, value_name = "VKEY")]
        key: Option<String>,
        /// Also re-read every archived day from the archive target and check it: the manifest
        /// the ledger recorded, its checkpoint and inclusion proofs, every file decompressed
        #[arg(long)]
        archived: bool,
    },

    /// Apply retention now: move old host-days to the archive target
    ///
    /// Every host-day up to --through (default: today minus [retention] online_days; never today)
    /// is checked against the ledger, copied with a manifest (its ledger entries, their inclusion
    /// proofs, the covering checkpoint) to [retention] archive, read back and checked (on S3:
    /// size, SHA-256, Object Lock COMPLIANCE and retain-until), recorded as an `archived` event in
    /// the ledger, and only then removed locally. `loghost run` does this once a day. Exit 0 when
    /// every due day was archived, 1 when some could not be (named on stderr; they stay local and
    /// are tried again next time), 2 on a bad config or store.
    #[command(after_help = "Examples:
  loghost archive
  loghost archive --through 2026-10-31")]
    Archive {
        #[command(flatten)]
        noise: Noise,
        /// Archive every day up to and including this one (UTC), YYYY-MM-DD
        #[arg(long, value_name = "YYYY-MM-DD")]
        through: Option<String>,
    },

    /// Print the ledger's verifier key (signed-note form) for auditors
    #[command(
        after_help = "Exit status: 0; 2 no signing key (`loghost init` creates it) or bad config.

Example:
  loghost key > loghost.vkey      # give this to auditors"
    )]
    Key {
        #[command(flatten)]
        noise: Noise,
    },

    /// Accept the ledger as it is when it is not what this loghost last wrote (after an ALARM)
    ///
    /// loghost signs a head of the ledger before every append and refuses to go on (ALARM) when
    /// the ledger holds entries it did not write, or differs from what it wrote. Run `loghost
    /// verify` first: if the ledger is genuine (a store restored from a backup, entries from an
    /// older version), this records a `ledger_accepted` event and signs the ledger as it is.
    /// Exit 0 accepted, 1 refused (an entry dated far ahead of the clock), 2 could not run.
    ///
    /// Example: loghost verify && loghost accept-ledger
    AcceptLedger {
        #[command(flatten)]
        noise: Noise,
    },

    /// Write proof files for auditors (checked offline with `verify-proof`)
    #[command(
        after_help = "Exit status: 0 the proofs were written; 1 they could not be (no checkpoint covers the entry, \
an unwritable output); 2 bad config, store or arguments.

Examples:
  loghost prove inclusion --file logs/web1/2026-11-28/auth.log.zst --out proofs/
  loghost prove inclusion 4711
  loghost prove consistency 1200 5400"
    )]
    Prove {
        #[command(flatten)]
        noise: Noise,
        #[command(subcommand)]
        what: ProveCommand,
    },

    /// Check proof files offline with only the verifier key
    ///
    /// With --data, also checks that the given stored file (e.g. one day of auth.log.zst) is
    /// exactly the frames the inclusion proofs name, byte for byte. Exit 0 when all hold, 1 when
    /// any does not.
    #[command(after_help = "Example:
  loghost verify-proof --key loghost.vkey --data auth.log.zst proofs/*.tlog-proof")]
    VerifyProof {
        #[command(flatten)]
        noise: Noise,
        /// The log's verifier key, or a file holding it (`loghost key` prints it)
        #[arg(long, value_name = "VKEY")]
        key: String,
        /// A stored file to check against the inclusion proofs
        #[arg(long, value_name = "FILE")]
        data: Option<PathBuf>,
        /// Proof files (.tlog-proof, .consistency-proof)
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },

    /// A zero-setup tour: an embedded SFTP server with sample logs, two pull rounds, the result
    #[command(
        after_help = "Exit status: 0 the demo ran to its end; 1 a step failed (it says which).

Examples:
  loghost demo
  loghost demo --keep /tmp/loghost-demo      # then: loghost --config /tmp/loghost-demo/etc/loghost.toml status"
    )]
    Demo {
        #[command(flatten)]
        noise: Noise,
        /// Keep the demo's files (config, keys, store) in DIR instead of deleting them
        #[arg(long, value_name = "DIR")]
        keep: Option<PathBuf>,
    },
}

impl Command {
    /// `-v`/`-q` given before the command and after it, together.
    fn noise(&self, before: Noise) -> Noise {
        let after = match self {
            Command::Init { noise }
            | Command::Trust { noise, .. }
            | Command::Run { noise }
            | Command::Pull { noise, .. }
            | Command::Check { noise, .. }
            | Command::Status { noise, .. }
            | Command::Cat { noise, .. }
            | Command::Tail { noise, .. }
            | Command::Verify { noise, .. }
            | Command::Archive { noise, .. }
            | Command::Key { noise }
            | Command::AcceptLedger { noise }
            | Command::Prove { noise, .. }
            | Command::VerifyProof { noise, .. }
            | Command::Demo { noise, .. } => *noise,
            Command::Grep { verbose, .. } => Noise {
                verbose: *verbose,
                quiet: false,
            },
            Command::Completions { .. } | Command::Manpages { .. } => Noise::default(),
        };
        Noise {
            verbose: before.verbose.saturating_add(after.verbose),
            quiet: before.quiet || after.quiet,
        }
    }
}

/// When to colour output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum ColorChoice {
    /// On a terminal
    Auto,
    Always,
    Never,
}

impl ColorChoice {
    /// Whether to colour: never in JSON; `auto` on a terminal.
    fn wanted(self, json: bool, terminal: bool) -> bool {
        !json
            && match self {
                ColorChoice::Always => true,
                ColorChoice::Never => false,
                ColorChoice::Auto => terminal,
            }
    }
}

#[derive(Subcommand, Debug)]
enum ProveCommand {
    /// An inclusion proof (C2SP tlog-proof) for a ledger entry, or one per frame of a stored file
    Inclusion {
        /// The entry's sequence number (its line in the ledger, from 0)
        #[arg(required_unless_present = "file")]
        entry: Option<u64>,
        /// Every frame of this stored file, e.g. logs/web1/2026-11-28/auth.log.zst
        #[arg(long, conflicts_with = "entry", value_name = "STORED_FILE")]
        file: Option<String>,
        /// The checkpoint to prove against: a file, or the size of a stored one [default: newest]
        #[arg(long, value_name = "FILE|SIZE")]
        checkpoint: Option<String>,
        /// Output file (one entry) or directory (--file) [default: <seq>.tlog-proof here]
        #[arg(short, long, value_name = "PATH")]
        out: Option<PathBuf>,
    },
    /// A consistency proof: the older checkpoint's tree is a prefix of the newer one's
    Consistency {
        /// The older checkpoint: a file, or the size of a stored one
        old: String,
        /// The newer checkpoint: a file, or the size of a stored one
        new: String,
        /// Output file [default: <old>-<new>.consistency-proof]
        #[arg(short, long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
}

/// Entry point: returns the process exit status.
pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { 2 } else { 0 };
        }
    };
    restrict_umask();
    let noise = cli.command.noise(cli.noise);
    init_logging(
        noise.verbose,
        noise.quiet,
        matches!(cli.command, Command::Run { .. }),
    );
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("loghost: error: cannot start the async runtime: {e}");
            return 2;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("loghost: error: {e:#}");
            if is_setup_error(&e) { 2 } else { 1 }
        }
    }
}

/// Writes `loghost.1` and `loghost-COMMAND.1` for every visible command (and `prove`'s
/// subcommands) into `dir`; the number of pages.
fn write_man_pages(dir: &Path) -> Result<usize> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut cmd = <Cli as clap::CommandFactory>::command();
    cmd.build();
    let mut n = 0;
    let mut write = |name: String, page: clap::Command| -> Result<()> {
        let path = dir.join(format!("{name}.1"));
        let mut buf = Vec::new();
        clap_mangen::Man::new(page)
            .title(name.to_uppercase())
            .render(&mut buf)?;
        std::fs::write(&path, buf).with_context(|| format!("cannot write {}", path.display()))?;
        n += 1;
        Ok(())
    };
    write("loghost".into(), cmd.clone())?;
    // Not clap's own `help` subcommands: `--help` is in every page already.
    let documented = |c: &&clap::Command| !c.is_hide_set() && c.get_name() != "help";
    for sub in cmd.get_subcommands().filter(documented) {
        let name = format!("loghost-{}", sub.get_name());
        write(name.clone(), sub.clone().display_name(name.clone()))?;
        for subsub in sub.get_subcommands().filter(documented) {
            let name2 = format!("{name}-{}", subsub.get_name());
            write(name2.clone(), subsub.clone().display_name(name2.clone()))?;
        }
    }
    Ok(n)
}

/// Prints what `archive` did; the exit status.
fn print_archive_report(r: &crate::archive::Report) -> i32 {
    for d in &r.archived {
        println!("archived {d} to {}", r.target);
    }
    for d in &r.finished {
        println!("removed the local files of {d} (archived earlier)");
    }
    for d in &r.failed {
        eprintln!("loghost: error: not archived: {d}");
    }
    if r.archived.is_empty() && r.failed.is_empty() {
        println!("nothing to archive through {}", r.through);
    }
    if r.failed.is_empty() { 0 } else { 1 }
}

/// A ledger that refused to open (an ALARM) stops `pull` and `run` before any round: the
/// refusal is recorded where `loghost status` shows it.
fn note_refusal<T>(config: &Config, result: &Result<T>) {
    let Err(e) = result else { return };
    let refused = e.chain().any(|c| {
        matches!(
            c.downcast_ref::<crate::ledger::LedgerError>(),
            Some(crate::ledger::LedgerError::Refused(_))
        )
    });
    if refused && let Ok(store) = Store::open(&config.store) {
        let _ = crate::store::rounds::save_checkpoint(&store, Err(&format!("{e:#}")));
    }
}

/// Errors about configuration, store or keys: exit 2. A ledger that refuses an append (an
/// ALARM about the evidence, a clock far behind) is not a setup error: exit 1.
fn is_setup_error(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.is::<crate::config::ConfigError>()
            || c.is::<crate::store::StoreError>()
            || c.downcast_ref::<crate::ledger::LedgerError>()
                .is_some_and(|l| !matches!(l, crate::ledger::LedgerError::Refused(_)))
            || c.is::<SetupError>()
    })
}

/// Everything loghost creates is for its owner only.
fn restrict_umask() {
    #[allow(unsafe_code)]
    // SAFETY: umask(2) only sets the process's file mode mask; it cannot fail or touch memory.
    unsafe {
        libc::umask(0o077);
    }
}

fn init_logging(verbose: u8, quiet: bool, daemon: bool) {
    let default = match (quiet, verbose) {
        (true, _) => "error",
        (false, 0) if daemon => "info",
        (false, 0) => "warn",
        (false, 1) => "info",
        (false, _) => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("LOGHOST_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(format!("loghost={default}")));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::stderr().is_terminal());
    // A service's log wants times; a one-shot command's output does not.
    let _ = if daemon {
        builder.try_init()
    } else {
        builder.without_time().try_init()
    };
}

fn load_config(flag: Option<&Path>) -> Result<Config> {
    let path = Config::locate(flag);
    Ok(Config::load(&path)?)
}

async fn run(cli: Cli) -> Result<i32> {
    let noise = cli.command.noise(cli.noise);
    match cli.command {
        Command::Demo { keep, .. } => crate::cli::demo::run(keep.as_deref()).await,
        Command::Check { hosts, color, .. } => {
            let config = load_config(cli.config.as_deref())?;
            let color = color.wanted(false, std::io::stdout().is_terminal());
            crate::cli::check::run(&config, &hosts, &mut std::io::stdout(), color).await
        }
        Command::Completions { shell } => {
            clap_complete::generate(
                shell,
                &mut <Cli as clap::CommandFactory>::command(),
                "loghost",
                &mut std::io::stdout(),
            );
            Ok(0)
        }
        Command::Manpages { dir } => {
            let n = write_man_pages(&dir)?;
            println!("wrote {n} man pages to {}", dir.display());
            Ok(0)
        }
        Command::Init { .. } => {
            let config = load_config(cli.config.as_deref())?;
            init(&config)?;
            Ok(0)
        }
        Command::Trust {
            host, fingerprint, ..
        } => {
            let config = load_config(cli.config.as_deref())?;
            trust(
                &config,
                &host,
                fingerprint.as_deref(),
                &mut std::io::stdout(),
            )
            .await
        }
        Command::Run { .. } => {
            let path = Config::locate(cli.config.as_deref());
            let config = Config::load(&path)?;
            let result = crate::daemon::run(path, config.clone()).await;
            note_refusal(&config, &result);
            result
        }
        Command::Pull { hosts, .. } => {
            let config = load_config(cli.config.as_deref())?;
            let report = crate::pull::run_round(&config, &hosts).await;
            note_refusal(&config, &report);
            let report = report?;
            print_report(
                &report,
                std::io::stdout().is_terminal() || noise.verbose > 0,
            );
            Ok(report.exit_code())
        }
        Command::Verify {
            deep,
            checkpoints,
            key,
            archived,
            ..
        } => {
            // Whatever stops verify from finishing is "could not run": exit 2.
            let result = async {
                let config = load_config(cli.config.as_deref())?;
                let opts = crate::verify::Options {
                    deep,
                    external: checkpoints,
                    verifier_key: key.map(|k| crate::cli::audit::read_vkey(&k)).transpose()?,
                    progress: std::io::stderr().is_terminal(),
                };
                let mut report = crate::verify::run(&config, &opts)?;
                if !report.archived.is_empty() {
                    let found = crate::archive::check_versions(&config, &report.archived).await?;
                    report.problems.extend(found);
                    let vkey = crate::verify::verifier_key(&config, &opts)?;
                    let (problems, days) =
                        crate::archive::verify_archived(&config, &vkey, opts.progress, archived)
                            .await?;
                    report.problems.extend(problems);
                    report.notes.push(if archived {
                        format!("{days} archived host-days re-read and checked")
                    } else {
                        format!(
                            "{days} archived host-days: manifests and objects found in the \
                             target (`--archived` re-reads their content)"
                        )
                    });
                }
                Ok::<i32, anyhow::Error>(report.print(&mut std::io::stdout())?)
            }
            .await;
            match result {
                Ok(code) => Ok(code),
                Err(e) => {
                    eprintln!("loghost: error: verify could not run: {e:#}");
                    Ok(2)
                }
            }
        }
        Command::Archive { through, .. } => {
            let config = load_config(cli.config.as_deref())?;
            let through = match through {
                Some(d) => jiff::civil::Date::strptime("%Y-%m-%d", &d).map_err(|_| {
                    SetupError(format!(
                        "invalid --through {d:?}: expected YYYY-MM-DD, e.g. 2026-10-31"
                    ))
                })?,
                None => crate::archive::default_through(
                    &config,
                    crate::failpoint::fake_now().unwrap_or_else(jiff::Timestamp::now),
                )?,
            };
            let rec = crate::ledger::writer::Recorder::open(&config, "archive")?;
            let report =
                crate::archive::run(&rec, through, std::io::stderr().is_terminal()).await?;
            Ok(print_archive_report(&report))
        }
        Command::AcceptLedger { .. } => {
            let config = load_config(cli.config.as_deref())?;
            let store = Store::open(&config.store)?;
            let lock = store.lock("accept-ledger")?;
            let key = crate::keys::load_signing_key(&config.ledger.signing_key)
                .map_err(|e| SetupError(format!("{e:#}")))?;
            let head = crate::ledger::head::read(
                &crate::ledger::head::path(store.root()),
                &key.verifier_key(),
            )?;
            let said = match head.iter().flatten().map(|c| c.size).max() {
                Some(n) => format!("its signed head said {n} entries"),
                None => "it had no valid signed head".to_string(),
            };
            let mut ledger = Ledger::open(&store, &lock, &key, true)?;
            let entries = ledger.index().entries;
            ledger.append(vec![Entry::Event(Event {
                seq: 0,
                time: String::new(),
                event: EventKind::LedgerAccepted,
                host: None,
                source: None,
                start: None,
                end: None,
                sha256: None,
                detail: format!(
                    "the operator accepted the ledger's {entries} entries as they were ({said})"
                ),
            })])?;
            let _ = ledger.save_index();
            println!(
                "accepted: the ledger's {entries} entries ({said}); the acceptance is entry \
                 {entries}"
            );
            Ok(0)
        }
        Command::Key { .. } => {
            let config = load_config(cli.config.as_deref())?;
            println!("{}", crate::cli::audit::verifier_key(&config)?);
            Ok(0)
        }
        Command::Prove { what, .. } => {
            let config = load_config(cli.config.as_deref())?;
            let mut out = std::io::stdout();
            match what {
                ProveCommand::Inclusion {
                    entry,
                    file,
                    checkpoint,
                    out: dest,
                } => {
                    let target = match (entry, file) {
                        (Some(n), None) => crate::cli::audit::Target::Entry(n),
                        (None, Some(f)) => crate::cli::audit::Target::File(f),
                        _ => {
                            return Err(SetupError("give an entry number or --file".into()).into());
                        }
                    };
                    crate::cli::audit::prove_inclusion(
                        &config,
                        &target,
                        checkpoint.as_deref(),
                        dest.as_deref(),
                        &mut out,
                    )?;
                }
                ProveCommand::Consistency {
                    old,
                    new,
                    out: dest,
                } => {
                    crate::cli::audit::prove_consistency(
                        &config,
                        &old,
                        &new,
                        dest.as_deref(),
                        &mut out,
                    )?;
                }
            }
            Ok(0)
        }
        Command::VerifyProof {
            key, data, files, ..
        } => {
            let vkey = crate::cli::audit::read_vkey(&key)?;
            crate::cli::audit::verify_proofs(&vkey, &files, data.as_deref(), &mut std::io::stdout())
        }
        Command::Status { json, .. } => {
            let config = load_config(cli.config.as_deref())?;
            let status = crate::cli::status::gather(&config)?;
            let mut out = std::io::stdout();
            if json {
                serde_json::to_writer_pretty(&mut out, &status)?;
                writeln!(out)?;
            } else {
                status.print(&mut out)?;
            }
            Ok(status.exit_code())
        }
        Command::Grep {
            pattern,
            regexp,
            fixed_strings,
            ignore_case,
            invert_match,
            word_regexp,
            count,
            files_with_matches,
            max_count,
            context,
            after_context,
            before_context,
            hosts,
            logs,
            since,
            until,
            fields,
            json,
            color,
            threads,
            archived,
            ..
        } => {
            let now = crate::failpoint::fake_now().unwrap_or_else(jiff::Timestamp::now);
            let when = |flag: &str, v: Option<String>| -> Result<Option<jiff::Timestamp>> {
                v.map(|s| {
                    crate::search::time::parse_when(&s, now)
                        .map_err(|e| anyhow::anyhow!("invalid {flag}: {e}"))
                })
                .transpose()
            };
            let setup = || -> Result<crate::search::Options> {
                let terminal = std::io::stdout().is_terminal();
                Ok(crate::search::Options {
                    patterns: pattern.into_iter().chain(regexp).collect(),
                    fixed_strings,
                    ignore_case,
                    invert: invert_match,
                    word: word_regexp,
                    count,
                    files_with_matches,
                    max_count,
                    before: before_context.or(context).unwrap_or(0),
                    after: after_context.or(context).unwrap_or(0),
                    hosts,
                    logs,
                    since: when("--since", since)?,
                    until: when("--until", until)?,
                    fields: parse_fields(&fields)?,
                    json,
                    color: color.wanted(json, terminal),
                    terminal,
                    threads: threads.unwrap_or(0),
                })
            };
            match setup() {
                Ok(opts) => Ok(grep_command(cli.config.as_deref(), opts, archived)),
                Err(e) => {
                    eprintln!("loghost: error: {e:#}");
                    Ok(2)
                }
            }
        }
        Command::Tail {
            host,
            log,
            lines,
            follow,
            mut hosts,
            mut logs,
            json,
            color,
            ..
        } => {
            let prefix = !(hosts.is_empty()
                && logs.is_empty()
                && log.is_some()
                && host
                    .as_ref()
                    .is_some_and(|h| !h.contains(['*', '?', '[', '{'])));
            hosts.extend(host);
            logs.extend(log);
            let terminal = std::io::stdout().is_terminal();
            let opts = crate::search::tail::TailOptions {
                select: crate::search::Options {
                    hosts,
                    logs,
                    json,
                    color: color.wanted(json, terminal),
                    terminal,
                    ..Default::default()
                },
                lines,
                follow,
                prefix,
                poll: std::time::Duration::from_millis(200),
            };
            let run = || -> Result<i32> {
                let config = load_config(cli.config.as_deref())?;
                let stdout = std::io::stdout();
                let mut out = std::io::BufWriter::with_capacity(1 << 16, stdout.lock());
                let stderr = std::io::stderr();
                let mut err = stderr.lock();
                let outcome = crate::search::tail::tail(&config, &opts, &mut out, &mut err)?;
                Ok(if outcome.problems > 0 { 2 } else { 0 })
            };
            Ok(match run() {
                Ok(code) => code,
                Err(e) if is_broken_pipe(&e) => 0,
                Err(e) => {
                    eprintln!("loghost: error: {e:#}");
                    2
                }
            })
        }
        Command::Cat {
            host,
            log,
            date,
            output,
            ..
        } => {
            let config = load_config(cli.config.as_deref())?;
            let stdout = std::io::stdout();
            let terminal = stdout.is_terminal();
            let mut out = std::io::BufWriter::new(stdout.lock());
            let sel = crate::cli::cat::Selection {
                host: &host,
                log: log.as_deref(),
                date: date.as_deref(),
                output,
            };
            match crate::cli::cat::run(&config, &sel, &mut out, terminal) {
                Ok(()) => Ok(0),
                // A closed pipe (`loghost cat … | head`) is not an error.
                Err(e) if is_broken_pipe(&e) => Ok(0),
                Err(e) => Err(e),
            }
        }
    }
}

/// `loghost grep`: every failure is exit 2, as grep's.
fn grep_command(config_path: Option<&Path>, opts: crate::search::Options, archived: bool) -> i32 {
    // The search blocks: it runs on a thread of its own, the archive tier's requests (async)
    // on the command's runtime.
    let runtime = tokio::runtime::Handle::current();
    let run = || -> Result<i32> {
        let config = load_config(config_path)?;
        let stdout = std::io::stdout();
        let mut out = std::io::BufWriter::with_capacity(1 << 16, stdout.lock());
        let stderr = std::io::stderr();
        let mut err = stderr.lock();
        let archive = if archived {
            Some(crate::archive::ArchiveReader::open(&config, runtime)?)
        } else {
            None
        };
        let archive = archive.as_ref().map(|a| a as &dyn crate::search::Archive);
        let outcome = crate::search::grep(&config, &opts, archive, &mut out, &mut err)?;
        Ok(outcome.exit_code())
    };
    let result = std::thread::scope(|s| s.spawn(run).join())
        .unwrap_or_else(|_| Err(anyhow::anyhow!("the search thread panicked")));
    match result {
        Ok(code) => code,
        Err(e) if is_broken_pipe(&e) => 0,
        Err(e) => {
            eprintln!("loghost: error: {e:#}");
            2
        }
    }
}

/// Reads `NAME=VALUE` field filters.
fn parse_fields(fields: &[String]) -> Result<Vec<(String, Vec<u8>)>> {
    fields
        .iter()
        .map(|f| match f.split_once('=') {
            Some((n, v)) if !n.is_empty() => Ok((n.to_string(), v.as_bytes().to_vec())),
            _ => anyhow::bail!(
                "invalid --field {:?}: expected NAME=VALUE, e.g. _SYSTEMD_UNIT=ssh.service",
                Shown(f).to_string()
            ),
        })
        .collect()
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// `loghost init`.
pub fn init(config: &Config) -> Result<()> {
    Store::create(&config.store)?;
    println!("store      {} (mode 0700)", config.store.display());
    let (public, created) = crate::keys::ensure_identity(&config.ssh.identity)?;
    println!(
        "ssh key    {} ({})",
        config.ssh.identity.display(),
        if created { "created" } else { "exists, kept" }
    );
    let (vkey, created) =
        crate::keys::ensure_signing_key(&config.ledger.signing_key, &config.ledger.origin)?;
    println!(
        "ledger key {} ({})",
        config.ledger.signing_key.display(),
        if created { "created" } else { "exists, kept" }
    );
    let line = public
        .to_openssh()
        .context("cannot encode the public key")?;
    println!();
    println!("Install this public key on each server, in the read-only SFTP account's");
    println!("~/.ssh/authorized_keys (replace LOGHOST_IP with this machine's address):");
    println!();
    println!("restrict,from=\"LOGHOST_IP\" {line}");
    println!();
    println!("Give auditors the ledger's verifier key:");
    println!();
    println!("{vkey}");
    println!();
    println!("Then pin each host's key: loghost trust HOST --fingerprint SHA256:...");
    Ok(())
}

/// Normalizes a fingerprint argument: `SHA256:` prefix optional.
fn normalize_fingerprint(fp: &str) -> String {
    let body = fp.trim().strip_prefix("SHA256:").unwrap_or(fp.trim());
    format!("SHA256:{}", body.trim_end_matches('='))
}

/// `loghost trust`.
pub async fn trust(
    config: &Config,
    name: &str,
    expected: Option<&str>,
    out: &mut dyn std::io::Write,
) -> Result<i32> {
    let Some(host) = config.host(name) else {
        let known: Vec<&str> = config.hosts.iter().map(|h| h.name.as_str()).collect();
        return Err(SetupError(format!(
            "no host named {:?} in {}; configured: {}",
            Shown(name).to_string(),
            config.source.display(),
            known.join(", ")
        ))
        .into());
    };
    let Some(address) = host.address.as_ref() else {
        return Err(SetupError(format!(
            "host {name} has no `address`: there is no SSH key to pin"
        ))
        .into());
    };
    let key = crate::pull::remote::offered_host_key(address, config.ssh.connect_timeout).await?;
    let (ktype, fp) = (known_hosts::key_type(&key), known_hosts::fingerprint(&key));
    writeln!(out, "{name} ({address}) offers {ktype} {fp}")?;
    let mut kh = KnownHosts::load(&config.ssh.known_hosts).map_err(SetupError)?;
    if kh.is_revoked(&key) {
        writeln!(
            out,
            "This key is marked @revoked in {}: not pinned.",
            config.ssh.known_hosts.display()
        )?;
        return Ok(1);
    }
    let kh_name = address.known_hosts_name();
    let pinned = kh.pinned(&kh_name);
    let already = pinned.iter().any(|p| p.key_data() == key.key_data());
    let Some(expected) = expected else {
        if already {
            writeln!(out, "This key is pinned.")?;
        } else {
            if !pinned.is_empty() {
                writeln!(
                    out,
                    "WARNING: a different key is pinned for {kh_name}: {}",
                    pinned
                        .iter()
                        .map(known_hosts::fingerprint)
                        .collect::<Vec<_>>()
                        .join(", ")
                )?;
            }
            writeln!(
                out,
                "Not pinned. Check the fingerprint on the server itself:"
            )?;
            writeln!(out, "    ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub")?;
            writeln!(out, "and if it matches, pin it:")?;
            writeln!(out, "    loghost trust {name} --fingerprint {fp}")?;
        }
        return Ok(0);
    };
    if normalize_fingerprint(expected) != fp {
        writeln!(
            out,
            "MISMATCH: expected {}, but the server offered {fp}. Not pinned.",
            normalize_fingerprint(expected)
        )?;
        return Ok(1);
    }
    if already {
        writeln!(out, "Fingerprint matches; this key was already pinned.")?;
        return Ok(0);
    }
    // Record the pin in the ledger first (it needs the store lock), then write known_hosts.
    let store = Store::open(&config.store)?;
    let lock = store.lock("trust")?;
    let signing = crate::keys::load_signing_key(&config.ledger.signing_key)
        .map_err(|e| SetupError(format!("{e:#}")))?;
    let mut ledger = Ledger::open(&store, &lock, &signing, false)?;
    let replaced = kh.pin(&kh_name, &key).map_err(SetupError)?;
    let mut detail = format!("{kh_name} {ktype} {fp}");
    if !replaced.is_empty() {
        detail.push_str(" replacing ");
        detail.push_str(
            &replaced
                .iter()
                .map(|k| {
                    format!(
                        "{} {}",
                        known_hosts::key_type(k),
                        known_hosts::fingerprint(k)
                    )
                })
                .collect::<Vec<_>>()
                .join(", "),
        );
    }
    ledger.append(vec![Entry::Event(Event {
        seq: 0,
        time: String::new(),
        event: EventKind::HostKeyPinned,
        host: Some(name.to_string()),
        source: None,
        start: None,
        end: None,
        sha256: None,
        detail,
    })])?;
    let _ = ledger.save_index();
    writeln!(
        out,
        "Fingerprint matches; pinned in {}.",
        config.ssh.known_hosts.display()
    )?;
    for k in &replaced {
        writeln!(
            out,
            "Replaced the previously pinned {}.",
            known_hosts::fingerprint(k)
        )?;
    }
    Ok(0)
}

/// Prints a round's outcome: problems always (stderr), the summary when asked (stdout).
pub fn print_report(report: &RoundReport, summary: bool) {
    match &report.checkpoint {
        Some(Err(e)) => eprintln!("loghost: error: checkpoint: {e}"),
        Some(Ok(c)) => {
            for e in &c.anchor_errors {
                eprintln!("loghost: error: anchor {e}");
            }
        }
        None => {}
    }
    for h in &report.hosts {
        for w in &h.warnings {
            eprintln!("loghost: warning: {}: {w}", h.host);
        }
        if let Some(e) = &h.error {
            eprintln!("loghost: error: {}: {e}", h.host);
        }
        for f in &h.files {
            if let Outcome::Failed(e) = &f.outcome {
                eprintln!("loghost: error: {}: {}: {e}", h.host, Shown(&f.source));
            }
        }
        if summary {
            let collected = h.files.iter().filter(|f| f.frames > 0).count();
            let status = if h.alarms() > 0 {
                "ALARM"
            } else if h.ok() {
                "ok"
            } else {
                "FAILED"
            };
            let entries: u64 = h.files.iter().map(|f| f.entries).sum();
            let journal = if entries > 0 {
                format!(" ({entries} journal entries)")
            } else {
                String::new()
            };
            println!(
                "{:<16} {status:<6} {} files, {collected} with new data{journal}: {} collected, {} stored, {:.1}s",
                h.host,
                h.files.len(),
                crate::units::human(h.raw_bytes()),
                crate::units::human(h.stored_bytes()),
                h.seconds
            );
        }
    }
    if summary && let Some(Ok(c)) = &report.checkpoint {
        match &c.written {
            Some(p) => println!("checkpoint: {} entries, {}", c.size, p.display()),
            None if c.size > 0 => println!("checkpoint: {} entries (unchanged)", c.size),
            None => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_man_page_per_command_and_none_for_help() {
        let dir = tempfile::tempdir().expect("tempdir");
        let n = write_man_pages(dir.path()).expect("pages");
        let names: Vec<String> = std::fs::read_dir(dir.path())
            .expect("ls")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(n, names.len());
        for page in ["loghost.1", "loghost-check.1", "loghost-prove-inclusion.1"] {
            assert!(names.iter().any(|p| p == page), "{page}: {names:?}");
        }
        assert!(!names.iter().any(|p| p.contains("help")), "{names:?}");
        assert!(!names.iter().any(|p| p.contains("manpages")), "{names:?}");
        let check = std::fs::read_to_string(dir.path().join("loghost-check.1")).expect("page");
        assert!(check.contains("Exit status") && check.contains("loghost check web1"));
    }

    #[test]
    fn every_command_help_says_its_exit_statuses_and_shows_an_example() {
        let mut cli = <Cli as clap::CommandFactory>::command();
        cli.build();
        for sub in cli
            .get_subcommands_mut()
            .filter(|c| !c.is_hide_set() && c.get_name() != "help")
        {
            let name = sub.get_name().to_string();
            let help = sub.render_long_help().to_string();
            assert!(
                help.contains("Exit"),
                "`loghost {name} --help` gives no exit status"
            );
            assert!(
                help.contains("Example"),
                "`loghost {name} --help` shows no example"
            );
        }
    }

    #[test]
    fn fingerprints_normalize() {
        assert_eq!(normalize_fingerprint("SHA256:abc"), "SHA256:abc");
        assert_eq!(normalize_fingerprint("abc="), "SHA256:abc");
        assert_eq!(normalize_fingerprint(" SHA256:abc \n"), "SHA256:abc");
    }

    #[test]
    fn cli_is_well_formed() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn human_sizes() {
        assert_eq!(crate::units::human(5), "5 B");
        assert_eq!(crate::units::human(1536), "1.5 KiB");
        assert_eq!(crate::units::human(3 * 1024 * 1024), "3.0 MiB");
    }
}
