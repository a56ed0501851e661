//! What can go wrong moving bytes.

use std::path::PathBuf;

use catalog_core::DigestMismatch;

/// Why a transfer failed.
///
/// The engine knows nothing of the sources that use it: an error of theirs that travels through
/// it (a refused re-authorisation, their reading of a `404`, an upload's body that failed its
/// check) is carried as [`Error::Caller`] and handed back as it was given.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A download failed for good (after its retries, or at once for a permanent error).
    #[error("failed to download `{url}`: {reason}{}", attempts_note(*attempts))]
    Download {
        /// The URL, without credentials or query.
        url: String,
        /// The last HTTP status, when there was a response.
        status: Option<u16>,
        /// How many attempts were made.
        attempts: u32,
        /// What went wrong, in words.
        reason: String,
        /// The underlying error, scrubbed of URLs.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
    /// The cache's file system has no room for the bytes a download still needs (checked
    /// before the first byte is asked for).
    #[error(
        "not enough free space in `{}` to fetch `{id}`: it needs {} (the bytes to come and a margin), and {} are free",
        path.display(), human_bytes(*needed), human_bytes(*free)
    )]
    NoSpace {
        /// The model's id.
        id: String,
        /// The cache directory whose file system was measured.
        path: PathBuf,
        /// The bytes that must be free: the bytes still to come and the margin.
        needed: u64,
        /// The bytes available.
        free: u64,
    },
    /// Setting up a component (an HTTP client, a runtime) failed.
    #[error("failed to {what}")]
    Setup {
        /// What was being set up, as a verb phrase.
        what: &'static str,
        /// The cause.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A file of extra root certificates that cannot be used.
    #[error("cannot use the CA bundle `{}`: {reason}", path.display())]
    CaBundle {
        /// The file, as given.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The bytes do not have the expected digest.
    #[error(transparent)]
    DigestMismatch(#[from] DigestMismatch),
    /// The bytes do not have the checksum their source states.
    #[error("`{file}` is not what its source states: expected {expected}, computed {computed}")]
    ChecksumMismatch {
        /// The file, as its download names it.
        file: String,
        /// The checksum the source states.
        expected: crate::Checksum,
        /// The checksum of the bytes received.
        computed: crate::Checksum,
    },
    /// The cache directory failed (a partial file, a resume record).
    #[error(transparent)]
    Catalog(#[from] catalog_core::Error),
    /// The download was stopped by its [`Cancel`](crate::Cancel) flag; what reached the disk
    /// is in its resume record, for the next run.
    #[error("the download was cancelled")]
    Cancelled,
    /// The caller's own error, carried through the engine unchanged.
    #[error(transparent)]
    Caller(Box<dyn std::error::Error + Send + Sync>),
}

/// The result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

fn attempts_note(attempts: u32) -> String {
    if attempts > 1 {
        format!(" (after {attempts} attempts)")
    } else {
        String::new()
    }
}

/// `bytes` for people: `1.5 GiB (1610612736 bytes)`, or `512 bytes` below 1 KiB.
fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if bytes < 1024 {
        return format!("{bytes} bytes");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {} ({bytes} bytes)", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_space_names_both_sizes_for_people_and_exactly() {
        assert_eq!(human_bytes(1000), "1000 bytes");
        assert_eq!(human_bytes(1536), "1.5 KiB (1536 bytes)");
        let err = Error::NoSpace {
            id: "hf:o/r".into(),
            path: "/c".into(),
            needed: (3 << 30) + (64 << 20),
            free: 8 << 20,
        };
        assert_eq!(
            err.to_string(),
            "not enough free space in `/c` to fetch `hf:o/r`: it needs 3.1 GiB (3288334336 bytes) (the bytes to come and a margin), and 8.0 MiB (8388608 bytes) are free"
        );
    }

    #[test]
    fn a_download_counts_its_attempts_only_when_there_were_several() {
        let err = |attempts| Error::Download {
            url: "https://h/f".into(),
            status: Some(503),
            attempts,
            reason: "HTTP 503".into(),
            source: None,
        };
        assert_eq!(
            err(1).to_string(),
            "failed to download `https://h/f`: HTTP 503"
        );
        assert_eq!(
            err(3).to_string(),
            "failed to download `https://h/f`: HTTP 503 (after 3 attempts)"
        );
    }
}
