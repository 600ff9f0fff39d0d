//! Checkpoints as auditors hand them in (`--checkpoint`) or anchors hold them: parsing and
//! signature checking never panic; a parsed body prints back to itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use loghost::ledger::checkpoint::{Checkpoint, open};

/// The verifier key of the seed checkpoints and proofs (fuzz/seeds/, from `loghost demo`).
const VKEY: &str =
    "demo.loghost.invalid/archive+926d2c42+AUhowbnWb5pGZvS2YGqCCJB7y0VxQz/O3mNFJrlDBMc0";

fuzz_target!(|data: &[u8]| {
    if let Err(e) = open(data, VKEY) {
        // The key itself must be valid, or this target would test nothing past it.
        assert!(!e.starts_with("bad verifier key"), "{e}");
    }
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(c) = Checkpoint::parse_body(text)
    {
        let body = c.body();
        assert_eq!(Checkpoint::parse_body(&body), Ok(c));
    }
});
