//! Proof files (`verify-proof`), which auditors receive from elsewhere: never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

/// The verifier key of the seed checkpoints and proofs (fuzz/seeds/, from `loghost demo`).
const VKEY: &str =
    "demo.loghost.invalid/archive+926d2c42+AUhowbnWb5pGZvS2YGqCCJB7y0VxQz/O3mNFJrlDBMc0";

fuzz_target!(|data: &[u8]| {
    let _ = loghost::ledger::proof::check(data, VKEY);
});
