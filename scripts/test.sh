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
command -v ssh-keygen >/dev/null || need+=(openssh-client)
command -v zstdcat >/dev/null || need+=(zstd)
command -v zcat >/dev/null || need+=(gzip)
command -v script >/dev/null || need+=(bsdutils)
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

cargo fmt --check
cargo clippy --locked --all-targets -- -D warnings
cargo test --locked "$@"
