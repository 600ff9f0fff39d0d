//! Proof files (`verify-proof`), which auditors receive from elsewhere: never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

const VKEY: &str =
    "demo.loghost.invalid/archive+1f5e57c1+AfRZmOvmQpLiwGfU8rwslVBWOuAQ90v66TgsRQOAhnhW";

fuzz_target!(|data: &[u8]| {
    let _ = loghost::proof::check(data, VKEY);
});
