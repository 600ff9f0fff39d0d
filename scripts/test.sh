#!/usr/bin/env bash
# The test command (README, .ci/run): installs the real peers the tests talk to when they are
# missing (as root, with apt-get), then checks formatting and lints and runs every test.
# Extra arguments go to `cargo test` (e.g. `scripts/test.sh --test pull`).
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
[ -x /usr/sbin/sshd ] || need+=(openssh-server)
[ -x /usr/sbin/logrotate ] || need+=(logrotate)
[ -x /usr/sbin/rsyslogd ] || need+=(rsyslog)
[ -e /usr/lib/x86_64-linux-gnu/rsyslog/lmnsd_gtls.so ] || [ -n "$(find /usr/lib -name lmnsd_gtls.so 2>/dev/null | head -1)" ] || need+=(rsyslog-gnutls)
# omrelp: the RELP sender of tests/receiver.rs.
[ -n "$(find /usr/lib -name omrelp.so 2>/dev/null | head -1)" ] || need+=(rsyslog-relp)
command -v ssh-keygen >/dev/null || need+=(openssh-client)
command -v zstdcat >/dev/null || need+=(zstd)
command -v zcat >/dev/null || need+=(gzip)
command -v script >/dev/null || need+=(bsdutils)
# It writes real journal files (it plays journald in tests/journal.rs); journalctl is the oracle.
[ -x /lib/systemd/systemd-journal-remote ] || need+=(systemd-journal-remote)
command -v journalctl >/dev/null || need+=(systemd)
# The alerting rules in dist/ are checked with promtool; the package test finds man pages.
command -v promtool >/dev/null || need+=(prometheus)
command -v man >/dev/null || need+=(man-db)
if [ ${#need[@]} -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "scripts/test.sh: missing test peers: ${need[*]}" >&2
        echo "install them (apt-get install ${need[*]}) or run this script as root" >&2
        exit 2
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y --no-install-recommends "${need[@]}" \
        || { apt-get update && apt-get install -y --no-install-recommends "${need[@]}"; }
fi

# The S3-compatible server of the archive-tier tests: moto (PyPI), with boto3 to check from the
# outside what loghost stored.
if ! command -v moto_server >/dev/null || ! python3 -c 'import boto3' 2>/dev/null; then
    command -v pip3 >/dev/null || command -v pip >/dev/null || {
        [ "$(id -u)" -eq 0 ] && apt-get install -y --no-install-recommends python3-pip
    }
    pip_cmd=$(command -v pip3 || command -v pip)
    "$pip_cmd" install --quiet 'moto[server]>=5,<6' boto3 \
        || "$pip_cmd" install --quiet --break-system-packages 'moto[server]>=5,<6' boto3
fi

# Supply chain (deny.toml): licences, banned crates and sources always; RustSec advisories when
# their database (on GitHub) can be fetched from here.
command -v cargo-deny >/dev/null || cargo install --locked cargo-deny
cargo deny --locked check licenses bans sources
if curl -sfI --max-time 10 https://github.com/rustsec/advisory-db >/dev/null 2>&1; then
    cargo deny --locked check advisories
else
    echo "scripts/test.sh: NOTE: github.com is unreachable, RustSec advisories NOT checked" \
         "(run \`cargo deny check advisories\` where it is reachable)" >&2
fi

cargo fmt --check
cargo clippy --locked --all-targets -- -D warnings
# The build without the S3 tier must stay clean too.
cargo clippy --locked --no-default-features --lib -- -D warnings

# The fuzz targets build (sharing our target directory; fuzz/Cargo.lock pins the same versions
# as Cargo.lock, so a dependency change is made in both) and each runs for 2 s from its seeds
# (fuzz/seeds/) without coverage instrumentation: a smoke test; scripts/fuzz.sh really fuzzes.
cargo build --locked --manifest-path fuzz/Cargo.toml --target-dir target
for t in $(sed -n 's/^name = "\([a-z_0-9]*\)"$/\1/p' fuzz/Cargo.toml); do
    rm -rf "target/fuzz-smoke/$t" && mkdir -p "target/fuzz-smoke/$t/corpus"
    cp fuzz/seeds/"$t"/* "target/fuzz-smoke/$t/corpus/"
    (cd "target/fuzz-smoke/$t" && "../../debug/$t" corpus -max_total_time=2 -max_len=65536 \
        >/dev/null 2>log) \
        || { tail -n 30 "target/fuzz-smoke/$t/log" >&2; echo "fuzz target $t crashed" >&2; exit 1; }
done

cargo test --locked "$@"

# dist/: the alerting rules are valid and each fires on what it should (promtool's unit tests).
promtool check rules dist/prometheus/loghost.rules.yml
(cd dist/prometheus && promtool test rules loghost.rules.test.yml)

# The Debian package, built from the debug binary the tests just used (a release build would
# double the build time; `scripts/package.sh` alone makes the release package), then installed,
# used and purged for real when running as root. (Not when only some tests were asked for.)
if [ $# -eq 0 ]; then
    command -v cargo-deb >/dev/null || cargo install --locked cargo-deb@3.8.0
    scripts/package.sh --profile dev
    scripts/package-test.sh
fi
