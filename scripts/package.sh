#!/usr/bin/env bash
# Builds the Debian package: target/debian/loghost_<version>-1_<arch>.deb.
#   scripts/package.sh                  a release build, then the package
#   scripts/package.sh --profile dev    package an existing debug build (scripts/test.sh does
#                                       this to test the packaging without a second build)
# Needs cargo-deb (`cargo install --locked cargo-deb@3.8.0`, installed here when missing).
set -euo pipefail
cd "$(dirname "$0")/.."

profile=release
if [ "${1:-}" = --profile ]; then profile=${2:?--profile needs a name}; fi
dir=$([ "$profile" = dev ] && echo debug || echo "$profile")

command -v cargo-deb >/dev/null || cargo install --locked cargo-deb@3.8.0
if [ "$profile" = release ]; then cargo build --locked --release; fi
bin="target/$dir/loghost"
[ -x "$bin" ] || { echo "scripts/package.sh: $bin is missing: build it first" >&2; exit 2; }

# Man pages and completions, from the clap definitions of this very binary.
rm -rf target/assets && mkdir -p target/assets/man target/assets/completions
"$bin" manpages target/assets/man >/dev/null
gzip -9n target/assets/man/*.1
"$bin" completions bash > target/assets/completions/loghost
"$bin" completions zsh > target/assets/completions/_loghost
"$bin" completions fish > target/assets/completions/loghost.fish

args=(--no-build --locked)
if [ "$profile" != release ]; then
    # A debug build carries its debug info whole: keep it fast, it is not shipped.
    args+=(--profile "$profile" --no-strip --fast)
fi
cargo deb "${args[@]}"
