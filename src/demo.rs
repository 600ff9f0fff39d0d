//! `loghost demo`.

use std::path::Path;

pub async fn run(_keep: Option<&Path>) -> anyhow::Result<i32> {
    anyhow::bail!("not yet")
}
