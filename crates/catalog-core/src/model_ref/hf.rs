//! `hf:` references: a Hugging Face Hub repository, one file of it, or the GGUF files of one
//! quantisation in it, at its default branch or at a pinned revision.
//!
//! - `hf:` names have at least two segments (`org/repo`), no empty, `.` or `..` segment, no
//!   backslash; org, repo and revision use only ASCII letters, digits, `-`, `_` and `.`.
//! - A quantisation tag follows the repository (and its revision): `hf:org/repo@rev:Q4_K_M`.
//!   It is 1 to 64 ASCII letters, digits, `_` and `-`, starting with a letter or digit, and is
//!   written uppercase in the normalised form (matching file names ignores case, so
//!   `:q4_k_m` and `:Q4_K_M` name the same model and have the same id). A reference names a
//!   quantisation or a file, never both. Without a revision the id has none either
//!   (`hf:org/repo:Q4_K_M`, which follows `main`, as `hf:org/repo` does).
//! - The id is the normalised form: `hf:org/repo[@rev][:QUANT | /path]`.

use std::fmt;

use super::{ParseRefError, check_segment, is_name_char, printable};

/// `hf:org/repo[@revision][/path]` or `hf:org/repo[@revision]:QUANT`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HfRef {
    /// The owner (user or organisation).
    pub org: String,
    /// The repository name.
    pub repo: String,
    /// A branch, tag or commit, when the reference pins one.
    pub revision: Option<String>,
    /// A file inside the repository, `/`-separated; `None` means the whole repository.
    pub path: Option<String>,
    /// A quantisation tag (`Q4_K_M`), uppercase: the GGUF file(s) of that quantisation. Never
    /// set together with `path`.
    pub quant: Option<String>,
}

impl HfRef {
    /// `org/repo`.
    pub fn repo_id(&self) -> String {
        format!("{}/{}", self.org, self.repo)
    }

    /// Writes the normalised form, `hf:org/repo[@rev][:QUANT][/path]`.
    pub(super) fn write_normalised(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "hf:{}/{}", self.org, self.repo)?;
        if let Some(rev) = &self.revision {
            write!(f, "@{rev}")?;
        }
        if let Some(quant) = &self.quant {
            write!(f, ":{quant}")?;
        }
        if let Some(path) = &self.path {
            write!(f, "/{path}")?;
        }
        Ok(())
    }
}

fn check_name(input: &str, what: &str, name: &str) -> Result<(), ParseRefError> {
    check_segment(input, what, name)?;
    if let Some(c) = name.chars().find(|c| !is_name_char(*c)) {
        return Err(ParseRefError::new(
            input,
            format!(
                "the {what} `{}` contains `{}`; only ASCII letters, digits, `-`, `_` and `.` are allowed",
                printable(name),
                c.escape_default()
            ),
        ));
    }
    Ok(())
}

/// Parses what follows `hf:` (or `hf://`) in `input`.
pub(super) fn parse(input: &str, rest: &str) -> Result<HfRef, ParseRefError> {
    let hint = "write `hf:org/repo`, `hf:org/repo/path/in/repo`, `hf:org/repo@revision/path` or `hf:org/repo@revision:Q4_K_M`";
    let mut segments = rest.split('/');
    let org = segments.next().unwrap_or_default();
    let Some(repo_rev) = segments.next() else {
        return Err(
            ParseRefError::new(input, "an `hf:` reference needs at least `org/repo`")
                .with_hint(hint),
        );
    };
    // No name may hold a `:`, so the first one starts the quantisation tag.
    let (repo_rev, quant) = match repo_rev.split_once(':') {
        Some((before, tag)) => (before, Some(tag)),
        None => (repo_rev, None),
    };
    let (repo, revision) = match repo_rev.split_once('@') {
        Some((repo, rev)) => (repo, Some(rev)),
        None => (repo_rev, None),
    };
    check_name(input, "organisation", org).map_err(|e| e.with_hint(hint))?;
    check_name(input, "repository name", repo).map_err(|e| e.with_hint(hint))?;
    if let Some(rev) = revision {
        check_name(input, "revision", rev).map_err(|e| e.with_hint(hint))?;
    }
    let quant = quant
        .map(|tag| check_quant(input, tag).map_err(|e| e.with_hint(hint)))
        .transpose()?;
    let path: Vec<&str> = segments.collect();
    if quant.is_some() && !path.is_empty() {
        return Err(ParseRefError::new(
            input,
            "a reference names a quantisation or a file in the repository, not both",
        )
        .with_hint("write `hf:org/repo:Q4_K_M` for the files of a quantisation, or `hf:org/repo/file.gguf` for one file"));
    }
    for seg in &path {
        check_segment(input, "path in the repository", seg)?;
    }
    Ok(HfRef {
        org: org.to_owned(),
        repo: repo.to_owned(),
        revision: revision.map(str::to_owned),
        path: (!path.is_empty()).then(|| path.join("/")),
        quant,
    })
}

/// Checks a quantisation tag and returns it uppercase, its normalised form.
fn check_quant(input: &str, tag: &str) -> Result<String, ParseRefError> {
    const MAX: usize = 64;
    let ok = (1..=MAX).contains(&tag.len())
        && tag.starts_with(|c: char| c.is_ascii_alphanumeric())
        && tag
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if !ok {
        return Err(ParseRefError::new(
            input,
            format!(
                "`{}` is not a quantisation tag (1 to {MAX} ASCII letters, digits, `_` or `-`, such as `Q4_K_M`)",
                printable(tag)
            ),
        ));
    }
    Ok(tag.to_ascii_uppercase())
}

#[cfg(test)]
mod tests {
    use crate::model_ref::ModelRef;
    use crate::model_ref::tests::parse;

    #[test]
    fn hf_parts() {
        let ModelRef::Hf(h) = parse("hf:org/repo@abc123/sub/f.gguf") else {
            panic!("not hf")
        };
        assert_eq!((h.org.as_str(), h.repo.as_str()), ("org", "repo"));
        assert_eq!(h.revision.as_deref(), Some("abc123"));
        assert_eq!(h.path.as_deref(), Some("sub/f.gguf"));
        assert_eq!(h.quant, None);
        let ModelRef::Hf(h) = parse("hf:org/repo@abc123:Q4_K_M") else {
            panic!("not hf")
        };
        assert_eq!(
            (h.repo.as_str(), h.revision.as_deref(), h.quant.as_deref()),
            ("repo", Some("abc123"), Some("Q4_K_M"))
        );
        assert_eq!(h.path, None);
        let ModelRef::Hf(h) = parse("hf:org/repo:bf16") else {
            panic!("not hf")
        };
        assert_eq!((h.revision, h.quant.as_deref()), (None, Some("BF16")));
    }
}
