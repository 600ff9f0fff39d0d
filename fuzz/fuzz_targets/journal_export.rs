//! Stored export-format bytes (read back by `loghost cat`): parsing never panics and bounds
//! every length by the input; the short and json forms of what parses are produced.
#![no_main]

use libfuzzer_sys::fuzz_target;
use loghost::journal::export;

fuzz_target!(|data: &[u8]| {
    if let Ok(entries) = export::parse(data) {
        for e in &entries {
            let _ = export::short(e);
            let _ = export::json(e);
        }
    }
});
