//! Stored export-format bytes (read back by `loghost cat` and the audit samples): parsing never
//! panics and bounds every length by the input; the entry boundaries agree with the parse; the
//! short and json forms of what parses are produced.
#![no_main]

use libfuzzer_sys::fuzz_target;
use loghost::journal::export;

fuzz_target!(|data: &[u8]| {
    let parsed = export::parse(data);
    let spans = export::entry_spans(data);
    assert_eq!(parsed.is_ok(), spans.is_ok(), "parse and entry_spans agree on validity");
    if let (Ok(entries), Ok(spans)) = (parsed, spans) {
        assert_eq!(entries.len(), spans.len());
        for e in &entries {
            let _ = export::short(e);
            let _ = export::json(e);
        }
    }
});
