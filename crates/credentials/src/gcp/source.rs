//! [`Source`]: where a Google token came from, named in messages and errors.

use std::fmt;
use std::path::{Path, PathBuf};

/// Where a token came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A service account's key file.
    ServiceAccount(PathBuf),
    /// An authorized user's file (gcloud's ADC file, usually).
    AuthorizedUser(PathBuf),
    /// The metadata server.
    MetadataServer,
}

impl Source {
    /// The key file, for the two kinds that have one.
    pub fn path(&self) -> Option<&Path> {
        match self {
            Source::ServiceAccount(p) | Source::AuthorizedUser(p) => Some(p),
            Source::MetadataServer => None,
        }
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::ServiceAccount(p) => {
                write!(f, "the service account key `{}`", p.display())
            }
            Source::AuthorizedUser(p) => write!(f, "the authorized user file `{}`", p.display()),
            Source::MetadataServer => f.write_str("the metadata server"),
        }
    }
}
