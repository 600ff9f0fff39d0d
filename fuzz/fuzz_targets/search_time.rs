//! The timestamp at the start of a stored line (`grep`/`tail` filter by it) and the
//! `--since`/`--until` forms never panic, whatever the bytes and whatever the reference time.
#![no_main]

use libfuzzer_sys::fuzz_target;
use loghost::search::time::{line_time, parse_when};

fuzz_target!(|data: &[u8]| {
    // The first 8 bytes are the line's collection time (any i64, hostile ones included).
    let (reference, line) = match data.split_first_chunk::<8>() {
        Some((r, rest)) => (i64::from_le_bytes(*r), rest),
        None => (0, data),
    };
    let _ = line_time(line, reference);
    if let Ok(s) = std::str::from_utf8(line) {
        let now = jiff::Timestamp::from_second(1_796_000_000).unwrap_or(jiff::Timestamp::UNIX_EPOCH);
        let _ = parse_when(s, now);
        if let Ok(now) = jiff::Timestamp::from_microsecond(reference) {
            let _ = parse_when(s, now);
        }
    }
});
