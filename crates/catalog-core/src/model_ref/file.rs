//! Local references: a file or directory on this machine, written as a path or with `file:`.
//!
//! - `file:/abs/path`, `file:rel/path` and `file:///abs/path` name a local file or directory;
//!   `file://host/…` (another machine) is refused. A path without a scheme is local too (the
//!   parent module decides that, as it splits off schemes).
//! - Paths are kept as written, with or without `file:`, and `Display` gives back the same
//!   form; only after `file:` do several leading slashes mean one (`file:////x` is `file:/x`).
//! - The catalog id is `file:` followed by the canonical absolute path (symlinks resolved),
//!   computed by [`ModelRef::canonical_id`] with [`file_id`]: it reads the file system, so
//!   it is the one id that does not follow from the text alone.
//!
//! [`ModelRef::canonical_id`]: super::ModelRef::canonical_id

use std::fmt;
use std::path::{Path, PathBuf};

use super::ParseRefError;

/// A local path, with or without the `file:` scheme.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FileRef {
    /// The path as written.
    pub path: PathBuf,
    /// Whether it was written with `file:` (kept so that `Display` gives back the same form).
    pub explicit_scheme: bool,
}

impl FileRef {
    /// The canonical absolute path: relative paths are taken from the current directory and
    /// symlinks are resolved. Reads the file system; writes nothing.
    pub fn canonical_path(&self) -> std::io::Result<PathBuf> {
        std::fs::canonicalize(&self.path)
    }

    /// Writes the path as written, after `file:` when it was written with the scheme.
    pub(super) fn write_normalised(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.explicit_scheme {
            f.write_str("file:")?;
        }
        write!(f, "{}", self.path.display())
    }
}

/// The catalog id of a local file at canonical path `path`.
pub fn file_id(path: &Path) -> std::io::Result<String> {
    match path.to_str() {
        Some(p) => Ok(format!("file:{p}")),
        None => Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("path `{}` is not valid UTF-8", path.display()),
        )),
    }
}

/// Parses what follows `file:` in `input`.
pub(super) fn parse(input: &str, rest: &str) -> Result<FileRef, ParseRefError> {
    // `file:///abs` is the URL spelling of `file:/abs`; `file://host/…` names another machine.
    let path = match rest.strip_prefix("//") {
        Some(after) if after.starts_with('/') => after,
        Some(_) => {
            return Err(ParseRefError::new(
                input,
                "`file://` must be followed by an absolute path",
            )
            .with_hint("write `file:/abs/path` or `file:///abs/path`"));
        }
        None => rest,
    };
    if path.is_empty() {
        return Err(ParseRefError::new(
            input,
            "the `file:` reference has no path",
        ));
    }
    // Several leading slashes mean one (`file:////x` is `/x`); kept, `Display` would write
    // `file://x`, which names a host.
    let path = if path.starts_with("//") {
        format!("/{}", path.trim_start_matches('/'))
    } else {
        path.to_owned()
    };
    Ok(FileRef {
        path: PathBuf::from(path),
        explicit_scheme: true,
    })
}
