//! [`SafeRelPath`]: a relative name from outside (a repository listing, a URL, a reference)
//! that is safe to join under a directory of the cache.

use std::fmt;
use std::path::{Component, Path};
use std::str::FromStr;

/// The longest file name most file systems take, in bytes.
const NAME_MAX: usize = 255;

/// A `/`-separated relative path that stays inside the directory it is joined to.
///
/// Refused: an empty path, a leading `/`, an empty, `.` or `..` segment, a backslash, a control
/// character. Parsing and [`Display`](fmt::Display) round-trip; the text is kept as given, so
/// paths order by their bytes, as the [tree digest](crate::verify#tree-digest) wants.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SafeRelPath(String);

impl SafeRelPath {
    /// Checks `path`; see the [type docs](Self) for what is refused.
    pub fn new(path: impl Into<String>) -> Result<Self, ParseRelPathError> {
        let path = path.into();
        match problem_in_path(&path) {
            None => Ok(SafeRelPath(path)),
            Some(problem) => Err(ParseRelPathError::new(&path, problem, Form::Path)),
        }
    }

    /// Checks a single file name: a safe path of one segment that does not start with `.`
    /// (no hidden file) and fits a file system's name limit of 255 bytes.
    pub fn file_name(name: impl Into<String>) -> Result<Self, ParseRelPathError> {
        let name = name.into();
        let problem = if name.contains('/') {
            Some(Problem::Separator)
        } else if name.starts_with('.') {
            Some(Problem::Hidden)
        } else if name.len() > NAME_MAX {
            Some(Problem::TooLong)
        } else {
            problem_in_path(&name)
        };
        match problem {
            None => Ok(SafeRelPath(name)),
            Some(problem) => Err(ParseRelPathError::new(&name, problem, Form::FileName)),
        }
    }

    /// The path as text, `/`-separated.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The path, to join under a directory.
    pub fn as_path(&self) -> &Path {
        Path::new(&self.0)
    }

    /// The path as an owned string.
    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Display for SafeRelPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for SafeRelPath {
    type Err = ParseRelPathError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        SafeRelPath::new(s)
    }
}

impl TryFrom<&str> for SafeRelPath {
    type Error = ParseRelPathError;

    fn try_from(s: &str) -> Result<Self, Self::Error> {
        SafeRelPath::new(s)
    }
}

impl TryFrom<String> for SafeRelPath {
    type Error = ParseRelPathError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        SafeRelPath::new(s)
    }
}

impl AsRef<Path> for SafeRelPath {
    fn as_ref(&self) -> &Path {
        self.as_path()
    }
}

/// Why a string is not a [`SafeRelPath`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {} `{input}`: it {problem}; expected {}", form.noun(), form.expected())]
pub struct ParseRelPathError {
    input: String,
    problem: Problem,
    form: Form,
}

impl ParseRelPathError {
    fn new(input: &str, problem: Problem, form: Form) -> Self {
        ParseRelPathError {
            input: crate::text::printable(input),
            problem,
            form,
        }
    }

    /// The refused input, made printable (control characters escaped, long input shortened).
    pub fn input(&self) -> &str {
        &self.input
    }

    /// What is wrong with the input, as words that complete "it …" ("is absolute"), for
    /// callers that name the input their own way.
    pub fn problem(&self) -> String {
        self.problem.to_string()
    }
}

/// Which form was expected, for the error message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Form {
    Path,
    FileName,
}

impl Form {
    fn noun(self) -> &'static str {
        match self {
            Form::Path => "relative path",
            Form::FileName => "file name",
        }
    }

    fn expected(self) -> &'static str {
        match self {
            Form::Path => {
                "`/`-separated names, none of them empty, `.` or `..`, without backslash or control character"
            }
            Form::FileName => {
                "one name of at most 255 bytes, not starting with `.`, without `/`, backslash or control character"
            }
        }
    }
}

/// What is wrong with a path or one of its segments. Its text completes "the path …" (the
/// reference parser writes "the path in the repository has an empty segment").
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Problem {
    #[error("is empty")]
    Empty,
    #[error("is absolute")]
    Absolute,
    #[error("has an empty segment")]
    EmptySegment,
    #[error("has a `.` segment, which is not allowed")]
    Dot,
    #[error("has a `..` segment, which is not allowed")]
    DotDot,
    #[error("contains a backslash; use `/` between segments")]
    Backslash,
    #[error("contains the control character `{}`", .0.escape_default())]
    Control(char),
    #[error("has more than one segment")]
    Separator,
    #[error("starts with `.`")]
    Hidden,
    #[error("is longer than 255 bytes")]
    TooLong,
}

/// What is wrong with one segment of a path, if anything.
pub(crate) fn problem_in_segment(segment: &str) -> Option<Problem> {
    match segment {
        "" => Some(Problem::EmptySegment),
        "." => Some(Problem::Dot),
        ".." => Some(Problem::DotDot),
        _ if segment.contains('\\') => Some(Problem::Backslash),
        _ => segment
            .chars()
            .find(|c| c.is_control())
            .map(Problem::Control),
    }
}

fn problem_in_path(path: &str) -> Option<Problem> {
    if path.is_empty() {
        return Some(Problem::Empty);
    }
    if path.starts_with('/') {
        return Some(Problem::Absolute);
    }
    if let Some(problem) = path.split('/').find_map(problem_in_segment) {
        return Some(problem);
    }
    // What the checks above let through is plain; the platform's own parse agrees or refuses.
    (!is_plain_relative(Path::new(path))).then_some(Problem::Absolute)
}

/// Whether every component of `path` is a plain name (no root, prefix, `.` or `..`): joined
/// under a directory, it stays inside it (symlinks aside).
pub(crate) fn is_plain_relative(path: &Path) -> bool {
    path.components().all(|c| matches!(c, Component::Normal(_)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn safe_paths_round_trip() -> Result<(), ParseRelPathError> {
        for good in [
            "config.json",
            "onnx/model.onnx",
            "a b/c.d",
            "..hidden-ish",
            ".gitattributes",
            "é/ü.bin",
        ] {
            let path: SafeRelPath = good.parse()?;
            assert_eq!(path.to_string(), good);
            assert_eq!(path.as_str(), good);
            assert_eq!(path.as_path(), Path::new(good));
            assert_eq!(path.to_string().parse::<SafeRelPath>()?, path);
            assert_eq!(SafeRelPath::try_from(good.to_owned())?, path);
            assert_eq!(path.into_string(), good);
        }
        Ok(())
    }

    #[test]
    fn hostile_paths_are_refused_with_the_expected_form() {
        for (bad, problem) in [
            ("", "it is empty"),
            ("/etc/passwd", "it is absolute"),
            ("../x", "`..` segment"),
            ("a/../../x", "`..` segment"),
            ("a//b", "empty segment"),
            ("a/", "empty segment"),
            ("./a", "`.` segment"),
            ("a/.", "`.` segment"),
            ("a\\b", "backslash"),
            ("a\0b", "control character `\\u{0}`"),
            ("a/\nb", "control character `\\n`"),
        ] {
            let err = SafeRelPath::try_from(bad).unwrap_err();
            let text = err.to_string();
            assert!(text.contains(problem), "{bad:?}: {text}");
            assert!(text.contains("expected `/`-separated names"), "{text}");
            assert!(!text.contains(['\0', '\n']), "printable: {text:?}");
            assert_eq!(err.input(), crate::text::printable(bad));
        }
    }

    #[test]
    fn file_names_are_one_visible_segment() -> Result<(), ParseRelPathError> {
        assert_eq!(
            SafeRelPath::file_name("model.Q4_K_M.gguf")?.as_str(),
            "model.Q4_K_M.gguf"
        );
        assert_eq!(SafeRelPath::file_name("n".repeat(255))?.as_str().len(), 255);
        for (bad, problem) in [
            ("", "it is empty"),
            (".", "starts with `.`"),
            ("..", "starts with `.`"),
            (".hidden", "starts with `.`"),
            ("a/b", "more than one segment"),
            ("a\\b", "backslash"),
            ("\0x", "control character"),
        ] {
            let text = SafeRelPath::file_name(bad).unwrap_err().to_string();
            assert!(text.contains(problem), "{bad:?}: {text}");
            assert!(text.starts_with("invalid file name"), "{text}");
        }
        let long = SafeRelPath::file_name("n".repeat(256)).unwrap_err();
        assert!(long.to_string().contains("longer than 255 bytes"), "{long}");
        Ok(())
    }
}
