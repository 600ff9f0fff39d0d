//! A hostile journal file: the reader ends (entry arrays cannot loop, offsets stay inside the
//! file), never panics, allocates in proportion to what it reads (fields and entries are
//! capped), and what it exports parses back into as many entries as it read.
#![no_main]

use libfuzzer_sys::fuzz_target;
use loghost::journal::{export, file};

fuzz_target!(|data: &[u8]| {
    let mut out = Vec::new();
    let mut n = 0usize;
    let _ = file::read_all(data, |h, e| {
        n += 1;
        export::write_entry(&mut out, &h.seqnum_id, &e);
    });
    if let Ok(back) = export::parse(&out) {
        assert_eq!(back.len(), n, "every exported entry parses back");
    }
});
