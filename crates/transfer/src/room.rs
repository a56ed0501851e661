//! Room on the cache's file system, checked before a download sends its first request for
//! bytes, so that a model too large for the disk fails at once instead of filling it.
//!
//! A fetch that knows its files' sizes from a listing (the Hub's `HEAD`s, an OCI manifest, an
//! S3 listing) calls [`ensure_room`] once, with every file it is about to place, before it
//! downloads any: a file whose blob is already in the store needs nothing, and the bytes a kept
//! partial file already holds on disk (from an interrupted run) are not counted again. A
//! download whose size no listing gave (a plain URL) is checked by the engine once the first
//! response's headers state it, before its body is written.
//!
//! What must be free: the bytes to come plus a margin of [`margin`]`(need)`, that is the larger
//! of 1% of the need and 64 MiB, for the index, resume records, directory entries and whatever
//! else writes to the same file system meanwhile. Free space is what `statvfs` reports as
//! available to this user (`f_bavail × f_frsize`) on the cache's file system.

use std::path::Path;

use catalog_core::{CacheLayout, Digest};

use crate::error::{Error, Result};

/// The smallest margin kept free beyond the bytes to come.
pub const MIN_MARGIN: u64 = 64 << 20;

/// One file a fetch is about to place.
#[derive(Debug, Clone, Copy)]
pub struct Planned<'a> {
    /// Its size, when the listing gave it; a file of unknown size counts for nothing here (the
    /// engine checks it when the server states its size).
    pub size: Option<u64>,
    /// Its sha256, when known: a blob of it in the store means nothing to download.
    pub digest: Option<&'a Digest>,
    /// The key naming its partial file, as in [`Download::key`](super::Download::key) (`None`:
    /// the digest names it).
    pub key: Option<&'a str>,
}

/// The margin kept free beyond `need` bytes: the larger of 1% of it and [`MIN_MARGIN`].
pub fn margin(need: u64) -> u64 {
    (need / 100).max(MIN_MARGIN)
}

/// The bytes that must be free to write `to_come` more: nothing when nothing is to come, else
/// `to_come` plus its [`margin`].
pub fn required(to_come: u64) -> u64 {
    if to_come == 0 {
        0
    } else {
        to_come.saturating_add(margin(to_come))
    }
}

/// The bytes still to come for `file`: none when its blob is in the store, else its size less
/// what its partial file already holds on disk.
pub fn still_to_come(layout: &CacheLayout, file: &Planned<'_>) -> u64 {
    use std::os::unix::fs::MetadataExt as _;
    let Some(size) = file.size else {
        return 0;
    };
    if file.digest.is_some_and(|d| layout.blob_path(d).is_file()) {
        return 0;
    }
    let key = file.key.or_else(|| file.digest.map(Digest::value));
    let kept = key
        .and_then(|k| layout.partial_paths(k).ok())
        .and_then(|(part, _)| std::fs::metadata(part).ok())
        // Chunks of a parallel download lie at their offsets: count the blocks written, not
        // the length, which holes make larger.
        .map_or(0, |m| m.len().min(m.blocks().saturating_mul(512)));
    size.saturating_sub(kept)
}

/// Fails with [`Error::NoSpace`] unless the cache's file system has room for the bytes still
/// to come for `files` (see the module docs); `id` names the model in the error.
pub fn ensure_room(layout: &CacheLayout, id: &str, files: &[Planned<'_>]) -> Result<()> {
    let to_come = files.iter().map(|f| still_to_come(layout, f)).sum();
    check(layout.root(), id, to_come)
}

/// Fails with [`Error::NoSpace`] unless the file system of `path` has [`required`]`(to_come)`
/// bytes available.
pub fn check(path: &Path, id: &str, to_come: u64) -> Result<()> {
    let needed = required(to_come);
    if needed == 0 {
        return Ok(());
    }
    let free = available(path)?;
    tracing::debug!(path = %path.display(), to_come, needed, free, "room for a download");
    if free < needed {
        return Err(Error::NoSpace {
            id: id.to_owned(),
            path: path.to_owned(),
            needed,
            free,
        });
    }
    Ok(())
}

/// The bytes available to this user on the file system of `path`.
fn available(path: &Path) -> Result<u64> {
    let stat = rustix::fs::statvfs(path)
        .map_err(|e| catalog_core::Error::io("measure the free space of", path, e.into()))?;
    Ok(stat.f_bavail.saturating_mul(stat.f_frsize))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    #[test]
    fn the_margin_is_one_percent_and_at_least_64_mib() {
        assert_eq!(margin(0), 64 * MIB);
        assert_eq!(margin(100 * MIB), 64 * MIB);
        assert_eq!(margin(6400 * MIB), 64 * MIB);
        assert_eq!(margin(6500 * MIB), 65 * MIB);
        assert_eq!(margin(70 << 30), (70 << 30) / 100);
        assert_eq!(required(0), 0, "nothing to come needs no room");
        assert_eq!(required(1), 1 + 64 * MIB);
        assert_eq!(required(10 << 30), (10 << 30) + (10 << 30) / 100);
        assert_eq!(required(u64::MAX), u64::MAX, "saturates");
    }

    #[test]
    fn blobs_in_the_store_and_kept_partial_bytes_are_not_counted_again() -> Result<()> {
        let dir = tempfile::tempdir()
            .map_err(|e| catalog_core::Error::io("create", Path::new("tmp"), e))?;
        let layout = CacheLayout::new(dir.path())?;
        layout.create_dir(&layout.tmp_dir())?;
        let io = |p: &Path, e| catalog_core::Error::io("write", p, e);

        // In the store: nothing to come.
        let stored = Digest::sha256_of(b"stored");
        let blob = layout.blob_path(&stored);
        std::fs::create_dir_all(blob.parent().expect("a parent")).map_err(|e| io(&blob, e))?;
        std::fs::write(&blob, b"stored").map_err(|e| io(&blob, e))?;
        let in_store = Planned {
            size: Some(6),
            digest: Some(&stored),
            key: None,
        };
        assert_eq!(still_to_come(&layout, &in_store), 0);

        // A partial file of 1 MiB kept for a 5 MiB download: 4 MiB to come.
        let partial = Digest::sha256_of(b"partial");
        let (part, _) = layout.partial_paths(partial.value())?;
        std::fs::write(&part, vec![7u8; 1 << 20]).map_err(|e| io(&part, e))?;
        let resumed = Planned {
            size: Some(5 * MIB),
            digest: Some(&partial),
            key: None,
        };
        assert_eq!(still_to_come(&layout, &resumed), 4 * MIB);

        // A keyed partial file with a hole: only the written blocks count.
        let (sparse, _) = layout.partial_paths("0123abcd")?;
        let file = std::fs::File::create(&sparse).map_err(|e| io(&sparse, e))?;
        file.set_len(8 * MIB).map_err(|e| io(&sparse, e))?;
        let keyed = Planned {
            size: Some(8 * MIB),
            digest: None,
            key: Some("0123abcd"),
        };
        assert!(still_to_come(&layout, &keyed) > 7 * MIB);

        let unknown = Planned {
            size: None,
            digest: None,
            key: None,
        };
        assert_eq!(still_to_come(&layout, &unknown), 0);
        let fresh = Planned {
            size: Some(3 * MIB),
            digest: None,
            key: None,
        };
        assert_eq!(still_to_come(&layout, &fresh), 3 * MIB);

        // What is already here fits; an exabyte does not, and the error says so.
        ensure_room(&layout, "m", &[in_store, resumed, unknown])?;
        let huge = Planned {
            size: Some(1 << 60),
            digest: None,
            key: None,
        };
        let err = ensure_room(&layout, "m", &[huge]).unwrap_err();
        let Error::NoSpace {
            needed, free, path, ..
        } = &err
        else {
            panic!("{err:?}")
        };
        assert_eq!(*needed, required(1 << 60));
        assert!(free < needed);
        assert_eq!(path, layout.root());
        Ok(())
    }
}
