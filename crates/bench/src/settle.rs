//! Quiet before each timed run, shared by `mp-bench`, `mp-bench-hf`, `mp-bench-oci`,
//! `mp-bench-s3`, `mp-bench-push` and `mp-bench-rate`.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context as _, ensure};

/// The pause after syncing, before each timed run.
pub const SETTLE: Duration = Duration::from_secs(2);

/// Writes every dirty page of the machine back and lets the disk finish what the last run
/// left (deleting a 2 GiB file sends the disk a discard), so that no run pays for its
/// predecessor's writeback. Not timed.
pub fn settle(dir: &Path) -> anyhow::Result<()> {
    settle_all(&[dir])
}

/// [`settle`] for the file systems of several directories (a server's storage may live on
/// another one than the data directory), with one pause after them all.
pub fn settle_all(dirs: &[&Path]) -> anyhow::Result<()> {
    for dir in dirs {
        let status = Command::new("sync")
            .arg("-f")
            .arg(dir)
            .status()
            .context("cannot run `sync`")?;
        ensure!(status.success(), "`sync -f {}` failed", dir.display());
    }
    std::thread::sleep(SETTLE);
    Ok(())
}
