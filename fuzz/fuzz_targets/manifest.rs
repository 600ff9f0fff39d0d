//! Archive manifests, read back from the archive target by `verify --archived`: never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = loghost::archive::parse_manifest(data);
});
