//! RFC 6587 deframing: never panics, and cutting the stream anywhere gives the same frames as
//! feeding it whole (what a TCP read boundary must not change).
#![no_main]

use libfuzzer_sys::fuzz_target;
use loghost::receive::syslog::{Deframer, Frame};

#[derive(Debug, PartialEq, Eq)]
enum Owned {
    Message(Vec<u8>),
    Oversized(u64),
}

/// Feeds `chunks` as the receiver does: unconsumed bytes are kept and fed again with the next
/// read. Returns the frames and whether the stream ended in a framing error.
fn run(max: usize, chunks: &[&[u8]]) -> (Vec<Owned>, bool) {
    let mut d = Deframer::new(max);
    let mut pending: Vec<u8> = Vec::new();
    let mut out = Vec::new();
    for chunk in chunks {
        pending.extend_from_slice(chunk);
        let mut emit = |f: Frame<'_>| {
            out.push(match f {
                Frame::Message(m) => Owned::Message(m.to_vec()),
                Frame::Oversized { len } => Owned::Oversized(len),
            });
        };
        match d.feed(&pending, &mut emit) {
            Ok(n) => {
                assert!(n <= pending.len(), "consumed more than was fed");
                pending.drain(..n);
            }
            Err(_) => return (out, true),
        }
    }
    (out, false)
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 3 {
        return;
    }
    let max = 1 + usize::from(data[0]) * 4;
    let cut = usize::from(data[1]);
    let stream = &data[2..];
    let whole = run(max, &[stream]);
    for f in &whole.0 {
        if let Owned::Message(m) = f {
            assert!(m.len() <= max, "a message over the maximum was emitted");
        }
    }
    let at = cut % (stream.len() + 1);
    let split = run(max, &[&stream[..at], &stream[at..]]);
    assert_eq!(whole, split, "a read boundary at {at} changed the frames");
});
