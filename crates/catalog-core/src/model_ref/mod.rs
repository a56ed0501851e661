//! Model references: what a user or a config file names, before anything is fetched.
//!
//! # Syntax and normalisation
//!
//! | form | meaning |
//! |---|---|
//! | `hf:org/repo` | a whole Hugging Face repository at its default branch |
//! | `hf:org/repo/path/in/repo` | one file of that repository |
//! | `hf:org/repo@rev[/path]` | the same, pinned to a branch, tag or commit |
//! | `hf:org/repo[@rev]:QUANT` | the GGUF file(s) of one quantisation in that repository (`:Q4_K_M`) |
//! | `file:/abs/path`, `file:rel/path`, `file:///abs/path` | a local file or directory |
//! | `/abs/path`, `./rel/path`, `rel/path` | the same, without the scheme |
//! | `http://…`, `https://…` | a file served over HTTP |
//! | `s3://bucket/key` | an object (or, with a trailing `/`, a prefix) in S3 |
//! | `s3+http://host[:port]/bucket/key`, `s3+https://…` | the same on another S3-compatible endpoint |
//! | `oci://registry[:port]/repo[:tag \| @sha256:…][/file]` | an artifact in an OCI registry, or one file of it |
//! | `ollama:name[:tag]`, `ollama:namespace/name[:tag]` | a model in Ollama's library (an OCI registry) |
//!
//! The rules every kind follows, which are stable:
//! - Surrounding ASCII whitespace is trimmed; a control character anywhere is refused.
//! - Scheme names are case-insensitive and displayed lowercase; `hf://` is accepted for `hf:`.
//! - A word of two or more characters followed by `:` is a scheme; unknown schemes are refused
//!   (a local file whose name has such a colon is written `./name` or `file:name`).
//! - A scheme that a source registered with a provisioner reads parses as [`ModelRef::Other`],
//!   where the schemes are given ([`ModelRef::parse_with`]); `FromStr` knows the built-in ones.
//!
//! `Display` writes the normalised form, and parsing it gives back an equal value.
//!
//! # Where each rule lives
//!
//! One module per kind of reference (`file`, `hf`, `http`, `oci` with `ollama:`, `s3`, and
//! `other` for the registered schemes) owns
//! its type, its parser, its normalised form and its id, and states its own rules in its docs.
//! This module owns what they share: the [`ModelRef`] enum and [`Scheme`]; `FromStr`, the one
//! place that splits off the scheme, refuses empty input and control characters, and sends
//! the rest to the kind's parser; `Display` and the ids, which ask the kind; and the checks
//! for hostile input that the parsers share ([`ParseRefError`], which never echoes URL
//! credentials or control characters, and `check_segment`, the segment rules of
//! [`SafeRelPath`]).
//!
//! [`SafeRelPath`]: crate::SafeRelPath

pub use crate::text::printable;
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

mod file;
mod hf;
mod http;
mod oci;
mod other;
mod s3;

pub use file::{FileRef, file_id};
pub use hf::HfRef;
pub use http::HttpRef;
pub use oci::{OLLAMA_REGISTRY, OciRef, OciReference, OllamaRef};
pub use other::OtherRef;
pub use s3::S3Ref;

/// The schemes a reference may use, for error messages.
pub const SUPPORTED_SCHEMES: &str = "hf:, file:, http://, https://, s3://, oci://, ollama:";

/// A parsed model reference: `hf:…`, a local path or `file:…`, `http(s)://…`, `s3://…`,
/// `oci://…`, `ollama:…`, or a scheme a registered source reads ([`ModelRef::parse_with`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ModelRef {
    /// A Hugging Face Hub repository or a file in one.
    Hf(HfRef),
    /// A local file or directory.
    File(FileRef),
    /// An `http://` or `https://` URL.
    Http(HttpRef),
    /// An S3 object or prefix.
    S3(S3Ref),
    /// An OCI registry artifact.
    Oci(OciRef),
    /// A model in Ollama's library.
    Ollama(OllamaRef),
    /// A reference of a scheme that a registered source reads (see [`ModelRef::parse_with`]).
    Other(OtherRef),
}

/// The kind of reference, by scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scheme {
    /// `hf:`
    Hf,
    /// `file:` or a bare path.
    File,
    /// `http://` or `https://`
    Http,
    /// `s3://`
    S3,
    /// `oci://`
    Oci,
    /// `ollama:`
    Ollama,
    /// A scheme that a registered source reads.
    Other,
}

impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Scheme::Hf => "hf",
            Scheme::File => "file",
            Scheme::Http => "http",
            Scheme::S3 => "s3",
            Scheme::Oci => "oci",
            Scheme::Ollama => "ollama",
            Scheme::Other => "other",
        })
    }
}

impl ModelRef {
    /// Which scheme the reference uses.
    pub fn scheme(&self) -> Scheme {
        match self {
            ModelRef::Hf(_) => Scheme::Hf,
            ModelRef::File(_) => Scheme::File,
            ModelRef::Http(_) => Scheme::Http,
            ModelRef::S3(_) => Scheme::S3,
            ModelRef::Oci(_) => Scheme::Oci,
            ModelRef::Ollama(_) => Scheme::Ollama,
            ModelRef::Other(_) => Scheme::Other,
        }
    }

    /// The catalog id, when it follows from the text alone (every scheme but local files).
    pub fn syntactic_id(&self) -> Option<String> {
        match self {
            ModelRef::File(_) => None,
            ModelRef::Http(h) => Some(h.redacted()),
            ModelRef::Other(o) => Some(o.redacted()),
            other => Some(other.to_string()),
        }
    }

    /// The catalog id: `file:<canonical path>` for local files (reads the file system to
    /// resolve it), the normalised reference without credentials for everything else.
    pub fn canonical_id(&self) -> std::io::Result<String> {
        match self {
            ModelRef::File(f) => file_id(&f.canonical_path()?),
            ModelRef::Http(h) => Ok(h.redacted()),
            ModelRef::Other(o) => Ok(o.redacted()),
            other => Ok(other.to_string()),
        }
    }

    /// The reference as safe to print: URLs lose their credentials and query.
    pub fn redacted(&self) -> String {
        match self {
            ModelRef::Http(h) => h.redacted(),
            ModelRef::Other(o) => o.redacted(),
            other => other.to_string(),
        }
    }

    /// Whether the reference names a set of files that include and exclude patterns select
    /// from: a whole `hf:` repository (or one quantisation's files in it), an S3 folder, or a
    /// registered source's reference, whose source applies the patterns to what it names.
    pub fn is_collection(&self) -> bool {
        match self {
            ModelRef::Hf(h) => h.path.is_none(),
            ModelRef::S3(s) => s.is_prefix(),
            ModelRef::Other(_) => true,
            _ => false,
        }
    }

    /// This `hf:` reference at `revision` (a branch, tag or commit), checked as a revision
    /// written in the reference is. Refused for any other scheme, and for a reference that
    /// already pins another revision.
    pub fn with_revision(&self, revision: &str) -> Result<ModelRef, ParseRefError> {
        let ModelRef::Hf(hf) = self else {
            return Err(ParseRefError::new(
                &self.redacted(),
                "a revision applies to `hf:` references only",
            ));
        };
        if hf.revision.as_deref().is_some_and(|r| r != revision) {
            return Err(ParseRefError::new(
                &self.to_string(),
                format!(
                    "it already pins a revision, and `{}` was given",
                    printable(revision)
                ),
            )
            .with_hint("drop one of the two: the revision given or the `@…` in the reference"));
        }
        // Re-parsed, so that the revision is checked like one written in the reference.
        let mut pinned = hf.clone();
        pinned.revision = Some(revision.to_owned());
        ModelRef::Hf(pinned).to_string().parse()
    }
}

impl fmt::Display for ModelRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ModelRef::Hf(h) => h.write_normalised(f),
            ModelRef::File(r) => r.write_normalised(f),
            ModelRef::Http(h) => h.write_normalised(f),
            ModelRef::S3(s) => s.write_normalised(f),
            ModelRef::Oci(o) => o.write_normalised(f),
            ModelRef::Ollama(o) => o.write_normalised(f),
            ModelRef::Other(o) => o.write_normalised(f),
        }
    }
}

/// Why a string is not a model reference.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid model reference `{input}`: {reason}")]
pub struct ParseRefError {
    input: String,
    reason: String,
    hint: Option<String>,
}

impl ParseRefError {
    /// `input` refused for `reason`: for the parsers of registered sources, which read what
    /// follows their scheme. The input is shown escaped and without URL credentials.
    pub fn new(input: &str, reason: impl Into<String>) -> Self {
        ParseRefError {
            input: printable(&scrub_secrets(input)),
            reason: reason.into(),
            hint: None,
        }
    }

    /// With what the user can do about it.
    #[must_use]
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// What the user can do about it, when there is something.
    pub fn hint(&self) -> Option<&str> {
        self.hint.as_deref()
    }

    /// Why the reference was refused, without the input.
    pub fn reason(&self) -> &str {
        &self.reason
    }
}

/// `s` without what may be a secret in a URL-like string: the user info before `@` in the
/// authority, and the query.
fn scrub_secrets(s: &str) -> String {
    let Some((scheme, rest)) = s.split_once("://") else {
        return s.to_owned();
    };
    let (rest, had_query) = match rest.split_once('?') {
        Some((before, _)) => (before, true),
        None => (rest, false),
    };
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let authority = match authority.rsplit_once('@') {
        Some((_, host)) => format!("***@{host}"),
        None => authority.to_owned(),
    };
    format!(
        "{scheme}://{authority}{path}{}",
        if had_query { "?…" } else { "" }
    )
}

impl FromStr for ModelRef {
    type Err = ParseRefError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        ModelRef::parse_with(input, &[])
    }
}

impl ModelRef {
    /// Parses `input` as [`FromStr`] does, and also accepts the `schemes` that sources
    /// registered with a provisioner read (lowercase, without `:`), as [`ModelRef::Other`].
    /// The built-in schemes keep their own rules; an unknown one is refused, naming the
    /// schemes that would do.
    ///
    /// # Errors
    ///
    /// When `input` is no reference of a built-in scheme or of one of `schemes`.
    pub fn parse_with(input: &str, schemes: &[&str]) -> Result<Self, ParseRefError> {
        let supported = || {
            schemes.iter().fold(SUPPORTED_SCHEMES.to_owned(), |all, s| {
                format!("{all}, {s}:")
            })
        };
        let s = input.trim_matches(|c: char| c.is_ascii_whitespace());
        if s.is_empty() {
            return Err(ParseRefError::new(input, "the reference is empty").with_hint(
                format!("a reference looks like `hf:org/repo/file.gguf` or `./model.gguf`; supported schemes: {}", supported()),
            ));
        }
        if let Some(c) = s.chars().find(|c| c.is_control()) {
            return Err(ParseRefError::new(
                input,
                format!("it contains the control character `{}`", c.escape_default()),
            ));
        }
        let Some((scheme, rest)) = split_scheme(s) else {
            return Ok(ModelRef::File(FileRef {
                path: PathBuf::from(s),
                explicit_scheme: false,
            }));
        };
        match scheme.to_ascii_lowercase().as_str() {
            "hf" => hf::parse(input, rest.strip_prefix("//").unwrap_or(rest)).map(ModelRef::Hf),
            "file" => file::parse(input, rest).map(ModelRef::File),
            "http" | "https" => http::parse(input, s).map(ModelRef::Http),
            "s3" => s3::parse(input, rest, None).map(ModelRef::S3),
            "s3+http" | "s3+https" => s3::parse_endpoint(input, s).map(ModelRef::S3),
            "oci" => oci::parse(input, rest).map(ModelRef::Oci),
            "ollama" => oci::parse_ollama(input, rest).map(ModelRef::Ollama),
            other if schemes.contains(&other) => {
                other::parse(input, other, rest).map(ModelRef::Other)
            }
            // `x://…` is surely a URL; only a bare `name:…` may be a file name with a colon.
            other if rest.starts_with("//") => Err(ParseRefError::new(
                input,
                format!(
                    "unknown scheme `{}:`; supported: {}",
                    printable(other),
                    supported()
                ),
            )
            .with_hint(
                "download the file with a tool that speaks this protocol and pass its local path",
            )),
            other => Err(ParseRefError::new(
                input,
                format!(
                    "unknown scheme `{}:`; supported: {}",
                    printable(other),
                    supported()
                ),
            )
            .with_hint(format!(
                "if `{}` is a local file, write it as `./{}` or `file:{}`",
                printable(s),
                printable(s),
                printable(s)
            ))),
        }
    }
}

/// Splits `scheme:rest` when `s` starts with a URI scheme of two or more characters.
fn split_scheme(s: &str) -> Option<(&str, &str)> {
    let (scheme, rest) = s.split_once(':')?;
    let mut chars = scheme.chars();
    let first = chars.next()?;
    let valid = scheme.len() >= 2
        && first.is_ascii_alphabetic()
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    valid.then_some((scheme, rest))
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')
}

/// Checks one `/`-separated segment of a repository path, by the rules of [`SafeRelPath`].
///
/// [`SafeRelPath`]: crate::SafeRelPath
fn check_segment(input: &str, what: &str, seg: &str) -> Result<(), ParseRefError> {
    match crate::rel_path::problem_in_segment(seg) {
        Some(problem) => Err(ParseRefError::new(input, format!("the {what} {problem}"))),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) fn parse(s: &str) -> ModelRef {
        s.parse().unwrap_or_else(|e| panic!("{s:?}: {e}"))
    }

    #[test]
    fn a_revision_pins_an_hf_reference_once() {
        let pinned = parse("hf:org/repo:Q4_K_M").with_revision("v1");
        assert_eq!(pinned, Ok(parse("hf:org/repo@v1:Q4_K_M")));
        let same = parse("hf:org/repo@v1/m.gguf").with_revision("v1");
        assert_eq!(same, Ok(parse("hf:org/repo@v1/m.gguf")));
        let other = parse("hf:org/repo@v1/m.gguf").with_revision("v2");
        assert!(other.is_err_and(|e| e.reason().contains("already pins") && e.hint().is_some()));
        let http = parse("https://example.com/m.gguf").with_revision("v1");
        assert!(http.is_err_and(|e| e.reason().contains("`hf:` references only")));
        assert!(parse("hf:org/repo").with_revision("bad rev").is_err());
    }

    #[test]
    fn canonical_forms_round_trip() {
        for s in [
            "hf:org/repo",
            "hf:org/repo/model.Q4_K_M.gguf",
            "hf:org/repo/sub/dir/file.safetensors",
            "hf:org/repo@main",
            "hf:org/repo@v1.0/file.gguf",
            "hf:TheBloke/Llama-2-7B-GGUF@2c9a0d7/llama.gguf",
            "hf:org/repo:Q4_K_M",
            "hf:org/repo@main:Q4_K_M",
            "hf:unsloth/Qwen3-8B-GGUF@0123abcd:UD-Q4_K_XL",
            "hf:org/repo/dir/file:with:colons.gguf",
            "file:/abs/model.gguf",
            "file:rel/model.gguf",
            "/abs/model.gguf",
            "./rel/model.gguf",
            "rel/model.gguf",
            "model.gguf",
            "http://example.com/m.gguf",
            "https://example.com/a/b/m.gguf?x=1",
            "s3://bucket/key/model.gguf",
            "s3://my.bucket/prefix/",
            "s3+http://127.0.0.1:9000/bucket/key/model.gguf",
            "s3+https://minio.example/models/llama/",
            "oci://registry.example:5000/models/llama:latest",
            "oci://ghcr.io/org/models/llama:q4",
            "oci://ghcr.io/org/models/llama:q4/model.gguf",
            "oci://127.0.0.1:5000/m@sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855/sub/f.bin",
            "ollama:library/llama3.2:latest",
            "ollama:ns/model:1b-instruct-q4_K_M",
            "oci://ghcr.io/org/llama@sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        ] {
            let r = parse(s);
            assert_eq!(r.to_string(), s);
            assert_eq!(parse(&r.to_string()), r);
        }
    }

    #[test]
    fn collections_are_whole_repositories_quantisations_and_folders() {
        for (s, collection) in [
            ("hf:org/repo", true),
            ("hf:org/repo@main:Q4_K_M", true),
            ("hf:org/repo/model.gguf", false),
            ("s3://bucket/prefix/", true),
            ("s3://bucket/prefix/model.gguf", false),
            ("oci://registry.example/m:1", false),
            ("https://example.com/m/", false),
            ("./models/", false),
        ] {
            assert_eq!(parse(s).is_collection(), collection, "{s}");
        }
        let registered = ModelRef::parse_with("gs://bucket/prefix/", &["gs"]).expect("parses");
        assert!(
            registered.is_collection(),
            "its source applies the patterns"
        );
    }

    #[test]
    fn alternative_spellings_normalise() {
        assert_eq!(parse("HF:org/repo").to_string(), "hf:org/repo");
        assert_eq!(parse("hf://org/repo/f").to_string(), "hf:org/repo/f");
        assert_eq!(parse("file:///abs/m").to_string(), "file:/abs/m");
        assert_eq!(
            parse("hf:org/repo:q4_k_m").to_string(),
            "hf:org/repo:Q4_K_M"
        );
        assert_eq!(
            parse("hf://org/repo@v1:iq4_xs").syntactic_id().as_deref(),
            Some("hf:org/repo@v1:IQ4_XS")
        );
        assert_eq!(parse("  ./m.gguf \n".trim_end()).to_string(), "./m.gguf");
        assert_eq!(
            parse("HTTPS://EXAMPLE.com:443/m").to_string(),
            "https://example.com/m"
        );
    }

    #[test]
    fn ids_drop_credentials_and_query() {
        let r = parse("https://user:secret@example.com/m.gguf?token=abc#frag");
        assert_eq!(
            r.syntactic_id().as_deref(),
            Some("https://example.com/m.gguf")
        );
        assert!(!r.redacted().contains("secret"));
        assert_eq!(
            parse("hf:o/r@v/f").syntactic_id().as_deref(),
            Some("hf:o/r@v/f")
        );
        assert_eq!(parse("./x").syntactic_id(), None);
    }

    #[test]
    fn a_registered_scheme_parses_as_other_and_only_where_it_is_given() -> Result<(), ParseRefError>
    {
        let schemes = ["gs", "modelscope"];
        let gs = ModelRef::parse_with("GS://bucket/dir/w.gguf", &schemes)?;
        let ModelRef::Other(other) = &gs else {
            panic!("{gs:?}")
        };
        assert_eq!(
            (other.scheme(), other.rest()),
            ("gs", "//bucket/dir/w.gguf")
        );
        assert_eq!(gs.to_string(), "gs://bucket/dir/w.gguf");
        assert_eq!(gs.scheme(), Scheme::Other);
        assert_eq!(ModelRef::parse_with(&gs.to_string(), &schemes)?, gs);
        let ms = ModelRef::parse_with("modelscope:org/repo@v1:Q4_K_M", &schemes)?;
        assert_eq!(
            ms.syntactic_id().as_deref(),
            Some("modelscope:org/repo@v1:Q4_K_M")
        );
        // The built-in schemes keep their rules; a plain parse knows no other scheme.
        assert!(matches!(
            ModelRef::parse_with("hf:o/r", &schemes)?,
            ModelRef::Hf(_)
        ));
        let err = "gs://bucket/k".parse::<ModelRef>().unwrap_err();
        assert!(err.reason().contains("unknown scheme `gs:`"), "{err}");
        let err = ModelRef::parse_with("az://a/c/k", &schemes).unwrap_err();
        assert!(err.reason().ends_with("ollama:, gs:, modelscope:"), "{err}");
        Ok(())
    }

    #[test]
    fn a_registered_reference_keeps_no_secret_in_its_id_and_refuses_an_empty_rest() {
        let schemes = ["gs"];
        let r = ModelRef::parse_with("gs://user:pw@bucket/k?token=t", &schemes).expect("parses");
        assert_eq!(r.redacted(), "gs://***@bucket/k?…");
        assert_eq!(r.canonical_id().expect("an id"), "gs://***@bucket/k?…");
        for bad in ["gs:", "gs://", "gs:///"] {
            let err = ModelRef::parse_with(bad, &schemes).unwrap_err();
            assert!(
                err.reason().contains("nothing follows `gs:`"),
                "{bad}: {err}"
            );
        }
        let err = OtherRef::new("gs", "//b/k\u{7}").unwrap_err();
        assert!(err.reason().contains("control character"), "{err}");
        assert!(!err.to_string().contains('\u{7}'), "{err}");
    }

    #[test]
    fn refusals_say_why() {
        for (input, reason) in [
            ("", "empty"),
            ("   ", "empty"),
            ("ftp://x/y", "unknown scheme `ftp:`"),
            ("gs://bucket/key", "supported: hf:, file:"),
            ("hf:org", "at least `org/repo`"),
            ("hf:", "at least `org/repo`"),
            ("hf:org/", "empty segment"),
            ("hf:/repo", "empty segment"),
            ("hf:org//f", "empty segment"),
            ("hf:org/repo/", "empty segment"),
            ("hf:org/../x", "`..` segment"),
            ("hf:../repo", "`..` segment"),
            ("hf:org/repo/../../etc/passwd", "`..` segment"),
            ("hf:org/repo/./f", "`.` segment"),
            ("hf:org\\x/repo", "backslash"),
            ("hf:org/repo/a\\b", "backslash"),
            ("hf:org/re po", "contains ` `"),
            ("hf:org/repo@", "empty segment"),
            ("hf:org/repo:", "not a quantisation tag"),
            ("hf:org/repo:Q4 K", "not a quantisation tag"),
            ("hf:org/repo:_Q4", "not a quantisation tag"),
            ("hf:org/repo:Q4:K", "not a quantisation tag"),
            ("hf:org/repo:Q4@main", "not a quantisation tag"),
            ("hf:org/repo@:Q4", "empty segment"),
            ("hf:org:Q4/repo", "organisation `org:Q4` contains `:`"),
            ("hf:org/repo:Q4_K_M/model.gguf", "not both"),
            ("hf:org/repo/f\u{0}", "control character `\\u{0}`"),
            ("./m\n.gguf", "control character `\\n`"),
            ("file:", "no path"),
            ("file://host/x", "absolute path"),
            ("https://", "not a valid URL"),
            ("s3://Bucket/key", "not a valid S3 bucket"),
            ("s3://bucket", "no key"),
            ("s3://bucket/a/../b", "`..` segment"),
            ("s3:bucket/key", "`//bucket/key`"),
            ("s3+http://127.0.0.1:9000/bucket", "no key"),
            ("s3+http://127.0.0.1:9000/bkt/../k", "`..` segment"),
            (
                "s3+http://u:p@127.0.0.1:9000/bucket/k",
                "credentials do not belong",
            ),
            ("s3+http://127.0.0.1:9000/bucket/k?x=1", "no query"),
            ("oci://reg", "no repository"),
            ("oci://reg/Repo", "lowercase"),
            ("oci://reg/repo@sha256:xyz", "invalid digest"),
            ("oci://reg/repo:", "not a valid tag"),
            ("oci://reg/repo:t/../x", "`..` segment"),
            (
                "oci://reg/repo@sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855//x",
                "empty segment",
            ),
            ("oci://re g/repo", "not a valid registry host"),
            ("ollama:", "no model name"),
            ("ollama:a/b/c", "at most two segments"),
            ("ollama:llama:", "not a valid tag"),
            ("ollama:lla ma", "may hold only"),
            (
                &format!("oci://reg/{}", "a".repeat(256)),
                "registries take at most 255",
            ),
        ] {
            let err = input.parse::<ModelRef>().unwrap_err();
            assert!(err.to_string().contains(reason), "{input:?}: {err}");
        }
    }

    #[test]
    fn secrets_in_refused_urls_are_not_echoed() {
        for bad in [
            "https://user:pw@/x",
            "https://user:pw@[::1/x?token=s3cr3t",
            "ftp://user:pw@h/x?token=s3cr3t",
        ] {
            let err = bad.parse::<ModelRef>().unwrap_err().to_string();
            assert!(!err.contains("pw") && !err.contains("s3cr3t"), "{err}");
        }
    }

    #[test]
    fn control_characters_are_escaped_in_errors() {
        let err = "hf:o/r\u{1b}[31m"
            .parse::<ModelRef>()
            .unwrap_err()
            .to_string();
        assert!(!err.contains('\u{1b}'), "{err}");
    }

    #[test]
    fn unknown_scheme_hints_at_local_path() {
        let err = "weird:name.gguf".parse::<ModelRef>().unwrap_err();
        assert!(err.hint().unwrap().contains("./weird:name.gguf"));
    }

    #[test]
    fn single_letter_prefix_is_a_path() {
        assert!(matches!(parse("c:model.gguf"), ModelRef::File(_)));
    }
}
