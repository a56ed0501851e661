//! The one error type of this crate.

use std::io;
use std::path::PathBuf;

/// What went wrong in a catalog operation. Every variant names the path or id involved.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No cache directory could be chosen.
    #[error(
        "no cache directory: none of `MODEL_PROVISIONER_CACHE`, `XDG_CACHE_HOME` or `HOME` is set"
    )]
    NoCacheDir,
    /// The cache root exists but is not a directory.
    #[error("the cache directory `{path}` is not a directory")]
    CacheRootNotDir {
        /// The cache root.
        path: PathBuf,
    },
    /// The index could not be read.
    #[error("failed to read the catalog index `{path}`")]
    IndexRead {
        /// The index file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The index is not valid JSON, or not the shape this version writes.
    #[error("the catalog index `{path}` is corrupt")]
    IndexParse {
        /// The index file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: serde_json::Error,
    },
    /// The index was written by another version of this program.
    #[error(
        "the catalog index `{path}` has version {found}, but this build reads only version {supported}"
    )]
    IndexVersion {
        /// The index file.
        path: PathBuf,
        /// The version found in the file.
        found: String,
        /// The version this build reads and writes.
        supported: u32,
    },
    /// The index lock could not be taken.
    #[error("failed to lock the catalog index `{path}`")]
    IndexLock {
        /// The lock file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The new index could not be written.
    #[error("failed to write the catalog index `{path}`")]
    IndexWrite {
        /// The index file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// A path that the cache would write or delete lies outside its root.
    #[error("refusing to touch `{path}`: it is outside the cache directory `{root}`")]
    OutsideRoot {
        /// The offending path.
        path: PathBuf,
        /// The cache root.
        root: PathBuf,
    },
    /// A file-system operation inside the cache failed.
    #[error("failed to {op} `{path}`")]
    Io {
        /// What was being done, as a verb phrase (`create directory`, `hash`, …).
        op: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
}

impl Error {
    /// Builds an [`Error::Io`].
    pub fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        Error::Io {
            op,
            path: path.into(),
            source,
        }
    }

    /// What the user can do about it, when there is something.
    pub fn hint(&self) -> Option<String> {
        match self {
            Error::NoCacheDir => Some("pass `--cache-dir DIR` or set `MODEL_PROVISIONER_CACHE`".into()),
            Error::CacheRootNotDir { .. } => {
                Some("point `--cache-dir` (or `MODEL_PROVISIONER_CACHE`) at a directory".into())
            }
            Error::IndexParse { path, .. } => Some(format!(
                "the file was left untouched; move it aside (e.g. `mv {0} {0}.bad`) to start a new catalog",
                path.display()
            )),
            Error::IndexVersion { .. } => Some(
                "the cache was written by a newer model-provisioner: upgrade, or use another `--cache-dir`"
                    .into(),
            ),
            Error::Io { source, path, .. } | Error::IndexWrite { source, path }
                if source.raw_os_error() == Some(28) =>
            {
                Some(format!("free space on the file system of `{}`", path.display()))
            }
            _ => None,
        }
    }
}

/// The result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
