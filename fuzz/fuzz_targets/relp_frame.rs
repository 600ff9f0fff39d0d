//! The RELP deframer never panics, holds at most one frame's bytes, and cuts the same frames
//! whatever way the stream is split into reads.
#![no_main]

use libfuzzer_sys::fuzz_target;
use loghost::receive::relp::Deframer;

fuzz_target!(|data: &[u8]| {
    let Some((&cut, input)) = data.split_first() else {
        return;
    };
    let frames = |step: usize| {
        let mut d = Deframer::new(1000);
        let mut out = Vec::new();
        let mut rest = input;
        loop {
            let take = step.min(rest.len()).min(d.room());
            d.push(&rest[..take]);
            rest = &rest[take..];
            loop {
                match d.next_frame() {
                    Ok(Some(f)) => out.push(f),
                    Ok(None) => break,
                    Err(e) => return (out, Some(e)),
                }
            }
            if rest.is_empty() || take == 0 {
                return (out, None);
            }
        }
    };
    let whole = frames(usize::MAX);
    let pieces = frames(usize::from(cut).max(1));
    assert_eq!(whole.0, pieces.0, "the same frames whatever the reads");
    assert_eq!(whole.1.is_some(), pieces.1.is_some());
});
