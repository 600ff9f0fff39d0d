//! RFC 5424 / RFC 3164 classification never panics and the HOSTNAME it finds is part of the
//! message; the stored form always turns back into the received bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use loghost::receive::syslog::{classify, escape_line, unescape_line};

fuzz_target!(|msg: &[u8]| {
    let (_, host) = classify(msg);
    if let Some(h) = host {
        let start = h.as_ptr() as usize - msg.as_ptr() as usize;
        assert!(start + h.len() <= msg.len());
    }
    let mut line = Vec::new();
    escape_line(msg, &mut line);
    assert_eq!(line.pop(), Some(b'\n'));
    assert!(!line.contains(&b'\n'), "one message, one line");
    assert_eq!(unescape_line(&line), msg, "the stored form is reversible");
});
