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
target=${CARGO_TARGET_DIR:-target}
bin="$target/$dir/loghost"
[ -x "$bin" ] || { echo "scripts/package.sh: $bin is missing: build it first" >&2; exit 2; }

# Man pages and completions, from the clap definitions of this very binary.
# (Cargo.toml names them under ./target/assets, whatever CARGO_TARGET_DIR says: cargo-deb reads
# only target/release/… from the real target directory.)
assets=target/assets
rm -rf "$assets" && mkdir -p "$assets/man" "$assets/completions"
"$bin" manpages "$assets/man" >/dev/null
gzip -9n "$assets"/man/*.1
"$bin" completions bash > "$assets/completions/loghost"
"$bin" completions zsh > "$assets/completions/_loghost"
"$bin" completions fish > "$assets/completions/loghost.fish"

args=(--no-build --locked)
if [ "$profile" != release ]; then
    # Stripped (the package test installs and repacks it: keep it small) and fast to compress.
    args+=(--profile "$profile" --fast)
fi
cargo deb "${args[@]}"
