#!/usr/bin/env bash
# Repeats the rotation-under-load soak (tests/soak.rs) N times (default 50) on a copy of the
# current debug build, and counts the runs that were exact. Extra arguments go to the test
# binary (a test name, say). Set LOGHOST_SOAK_SECS to lengthen each run; LOGHOST_SOAK_TEST names
# another test file (the journal's soak: LOGHOST_SOAK_TEST=journal scripts/soak.sh 30 journal_soak).
#   scripts/soak.sh 50
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-50}
shift || true
test=${LOGHOST_SOAK_TEST:-soak}
cargo test --locked --test "$test" --no-run 2>/dev/null
bin=$(ls -t target/debug/deps/"$test"-* | grep -v '\.d$' | head -1)
dir=$(mktemp -d /tmp/loghost-soak.XXXXXX)
cp target/debug/loghost "$dir/loghost"
cp "$bin" "$dir/soak"
exact=0
for i in $(seq 1 "$runs"); do
    if LOGHOST_SOAK_KEEP=1 LOGHOST_TEST_BIN="$dir/loghost" "$dir/soak" --test-threads 2 "$@" \
        >"$dir/run-$i.log" 2>&1; then
        exact=$((exact + 1))
        sed -n 's/^soak: kept //p' "$dir/run-$i.log" | xargs -r rm -rf
    else
        echo "run $i: NOT exact (log: $dir/run-$i.log)" >&2
        grep -E "panicked|soak:" "$dir/run-$i.log" | head -5 >&2 || true
        echo "(the failing run's store, remote files and ledger are kept in the directories above)" >&2
    fi
    echo "run $i: $exact of $i exact"
done
echo "soak: $exact of $runs runs exact (logs in $dir)"
[ "$exact" -eq "$runs" ]
