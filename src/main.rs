//! The `loghost` binary: everything lives in the library; see `loghost --help`.

fn main() {
    std::process::exit(loghost::cli::main());
}
