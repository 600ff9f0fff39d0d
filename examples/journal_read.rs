//! Reads journal files locally and exports their entries (timing the reader alone):
//! `cargo run --release --example journal_read -- FILE...`
fn main() {
    for path in std::env::args().skip(1) {
        let t = std::time::Instant::now();
        let f = std::fs::File::open(&path).expect("open");
        let mut out = Vec::new();
        let mut n = 0u64;
        let mut bytes = 0u64;
        loghost::journal::file::read_all(f, |h, e| {
            out.clear();
            loghost::journal::export::write_entry(&mut out, &h.seqnum_id, &e);
            n += 1;
            bytes += out.len() as u64;
        })
        .expect("read");
        println!(
            "{path}: {n} entries, {bytes} export bytes, {:.3} s",
            t.elapsed().as_secs_f64()
        );
    }
}
