//! Ledger lines, as `verify` and the index read them from a store an intruder may have edited:
//! parsing never panics, and an accepted line is canonical (it re-serializes to itself).
#![no_main]

use libfuzzer_sys::fuzz_target;
use loghost::ledger::parse_line;

fuzz_target!(|data: &[u8]| {
    if data.is_empty() {
        return;
    }
    let seq = u64::from(data[0]);
    if let Ok(entry) = parse_line(&data[1..], seq) {
        assert_eq!(entry.seq(), seq);
        assert_eq!(entry.to_line(), &data[1..], "accepted lines are canonical");
    }
    let _ = loghost::store::layout::parse_log_path(&String::from_utf8_lossy(data));
});
