//! How a header reader says it has no header to give. Only a failed read is an error; the
//! other answers are findings that [`inspect()`](crate::inspect()) turns into a structural
//! failure or a warning.

use std::io;

/// Why a header reader did not return a header.
#[derive(Debug)]
pub enum Problem {
    /// The bytes do not claim the format at all.
    NotThisFormat,
    /// The bytes claim the format in a version this build does not read: a warning, saying
    /// which (completes "`<file>` …").
    Unsupported(String),
    /// The bytes claim the format and break it: the structural check fails, saying how
    /// (completes "`<file>` …").
    Broken(String),
    /// Reading failed.
    Io(io::Error),
}
