//! The configuration file: any text is either a config or an error naming what is wrong, never a
//! panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ =
            loghost::config::Config::parse(text, std::path::Path::new("/etc/loghost/fuzz.toml"));
    }
});
