#!/usr/bin/env bash
# Runs every cargo-fuzz target for a while (default 60 s each): `scripts/fuzz.sh [SECONDS] [TARGET…]`.
# Installs cargo-fuzz when missing. Uses AddressSanitizer through RUSTC_BOOTSTRAP (the machine
# has only stable Rust); `FUZZ_SANITIZER=none` runs without. A crash leaves its input under
# fuzz/artifacts/<target>/: turn it into a regression test in the module it broke, then fix.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-60}
shift || true
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    mapfile -t targets < <(cd fuzz && cargo fuzz list)
fi
san=${FUZZ_SANITIZER:-address}
status=0
for t in "${targets[@]}"; do
    echo "== $t: ${secs}s"
    mkdir -p "fuzz/corpus/$t"
    if [ -d "fuzz/seeds/$t" ]; then cp -n fuzz/seeds/"$t"/* "fuzz/corpus/$t/" 2>/dev/null || true; fi
    if ! (cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run -s "$san" "$t" -- \
            -max_total_time="$secs" -max_len=65536 -print_final_stats=1 2>&1 | tail -n 12); then
        echo "!! $t found a crash: see fuzz/artifacts/$t/" >&2
        status=1
    fi
done
exit $status
