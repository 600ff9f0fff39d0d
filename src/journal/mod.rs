//! **Part `journal/`: systemd's journal files** (pure: bytes in, entries out). It reads journal
//! files through random-access reads ([`file::ReadAt`]: a local file, bytes in memory, or SFTP
//! range reads supplied by `pull`) and writes and reads the export format loghost stores
//! ([`export`]). It imports only shared utilities; it must not import `store`, `ledger`, `pull`
//! or `cli`.
//!
//! Why hand-written: the journal is loghost's own input format, read from afar over SFTP with
//! random access and bounded memory; the Rust readers that exist open local files only.

pub mod export;
pub mod file;
