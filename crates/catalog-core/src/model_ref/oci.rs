//! `oci://` references, an artifact in an OCI registry or one file of it, and `ollama:`
//! references, a model in Ollama's library, which is an OCI registry.
//!
//! - `oci://` references always carry a tag or a digest: no tag means `latest`. The registry
//!   host is lowercased, `docker.io` means `index.docker.io`, and a one-segment repository
//!   there gets `library/`, as Docker names them. A file inside the artifact follows the tag
//!   or digest (`oci://reg/repo:latest/model.gguf`); without a tag, every segment is part of
//!   the repository. The id names the tag, never what it resolved to (that is provenance).
//! - `ollama:` references are normalised to `ollama:<namespace>/<name>:<tag>` (namespace
//!   `library`, tag `latest` by default; namespace and name lowercased, as Ollama matches
//!   them). The id does not name a registry, so a mirror of Ollama's library gives the same id.
//!
//! `ollama:` lives here because it is an OCI repository by another name: it shares
//! [`check_repository`], and [`OllamaRef::to_oci`] makes it an [`OciRef`].

use std::fmt;

use super::{ParseRefError, check_segment, is_name_char, printable};
use crate::digest::Digest;

/// `oci://registry/repository:tag[/file]` or `oci://registry/repository@digest[/file]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct OciRef {
    /// The registry host, lowercase, with its port if one was given.
    pub registry: String,
    /// The repository path inside the registry.
    pub repository: String,
    /// The tag (`latest` when none was written) or digest.
    pub reference: OciReference,
    /// One file of the artifact, `/`-separated; `None` means the whole artifact.
    pub path: Option<String>,
}

impl OciRef {
    /// Writes the normalised form, `oci://registry/repository(:tag|@digest)[/path]`.
    pub(super) fn write_normalised(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "oci://{}/{}", self.registry, self.repository)?;
        match &self.reference {
            OciReference::Tag(t) => write!(f, ":{t}")?,
            OciReference::Digest(d) => write!(f, "@{d}")?,
        }
        if let Some(path) = &self.path {
            write!(f, "/{path}")?;
        }
        Ok(())
    }
}

/// The part of an OCI reference after the repository.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum OciReference {
    /// `:tag`.
    Tag(String),
    /// `@sha256:…`.
    Digest(Digest),
}

impl fmt::Display for OciReference {
    /// The tag or the digest, as the registry API takes it in `/manifests/<reference>`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OciReference::Tag(t) => f.write_str(t),
            OciReference::Digest(d) => write!(f, "{d}"),
        }
    }
}

/// `ollama:namespace/name:tag`: a model in Ollama's library, which is an OCI registry.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct OllamaRef {
    /// The namespace (`library` for Ollama's own models).
    pub namespace: String,
    /// The model's name.
    pub name: String,
    /// The tag (`latest` when none was written).
    pub tag: String,
}

/// The registry that serves Ollama's library.
pub const OLLAMA_REGISTRY: &str = "registry.ollama.ai";

impl OllamaRef {
    /// The same model as an `oci://` reference on `registry` (Ollama's, or a mirror of it).
    pub fn to_oci(&self, registry: &str) -> OciRef {
        OciRef {
            registry: registry.to_ascii_lowercase(),
            repository: format!("{}/{}", self.namespace, self.name),
            reference: OciReference::Tag(self.tag.clone()),
            path: None,
        }
    }

    /// Writes the normalised form, `ollama:namespace/name:tag`.
    pub(super) fn write_normalised(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ollama:{}/{}:{}", self.namespace, self.name, self.tag)
    }
}

/// Parses what follows `oci:` in `input`.
pub(super) fn parse(input: &str, rest: &str) -> Result<OciRef, ParseRefError> {
    let hint = "write `oci://registry.example:5000/repo/name:tag`, `…/name@sha256:<hex>`, or `…/name:tag/file.gguf` for one file";
    let Some(rest) = rest.strip_prefix("//") else {
        return Err(ParseRefError::new(
            input,
            "`oci:` must be followed by `//registry/repository`",
        )
        .with_hint(hint));
    };
    let Some((registry, remainder)) = rest.split_once('/') else {
        return Err(
            ParseRefError::new(input, "the OCI reference has no repository").with_hint(hint),
        );
    };
    let registry_ok = !registry.is_empty()
        && registry
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | ':' | '[' | ']'));
    if !registry_ok {
        return Err(ParseRefError::new(
            input,
            format!("`{}` is not a valid registry host", printable(registry)),
        )
        .with_hint(hint));
    }
    let mut registry = registry.to_ascii_lowercase();
    // The repository ends at `@digest` or at the first segment holding `:tag`; what follows
    // is a file inside the artifact.
    let (repository, reference, path) = if let Some((repo, after)) = remainder.split_once('@') {
        let (digest, path) = after
            .split_once('/')
            .map_or((after, None), |(d, p)| (d, Some(p)));
        let digest = digest
            .parse::<Digest>()
            .map_err(|e| ParseRefError::new(input, e.to_string()).with_hint(hint))?;
        (repo.to_owned(), OciReference::Digest(digest), path)
    } else {
        let segments: Vec<&str> = remainder.split('/').collect();
        match segments.iter().position(|seg| seg.contains(':')) {
            Some(i) => {
                let (name, tag) = segments[i].split_once(':').unwrap_or((segments[i], ""));
                let tag_ok = !tag.is_empty()
                    && tag.len() <= 128
                    && tag.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
                    && tag.chars().all(is_name_char);
                if !tag_ok {
                    return Err(ParseRefError::new(
                        input,
                        format!("`{}` is not a valid tag", printable(tag)),
                    )
                    .with_hint(hint));
                }
                let mut repo = segments[..i].to_vec();
                repo.push(name);
                let path = (i + 1 < segments.len()).then(|| {
                    &remainder[segments[..=i].iter().map(|s| s.len() + 1).sum::<usize>()..]
                });
                (repo.join("/"), OciReference::Tag(tag.to_owned()), path)
            }
            None => (
                remainder.to_owned(),
                OciReference::Tag("latest".to_owned()),
                None,
            ),
        }
    };
    check_repository(input, &repository, hint)?;
    if let Some(path) = path {
        for seg in path.split('/') {
            check_segment(input, "file path in the artifact", seg)?;
        }
    }
    let mut repository = repository;
    if registry == "docker.io" {
        "index.docker.io".clone_into(&mut registry);
    }
    if registry == "index.docker.io" && !repository.contains('/') {
        repository = format!("library/{repository}");
    }
    Ok(OciRef {
        registry,
        repository,
        reference,
        path: path.map(str::to_owned),
    })
}

/// Checks an OCI repository path: `/`-separated segments of lowercase letters, digits, `.`,
/// `_` and `-`.
fn check_repository(input: &str, repository: &str, hint: &str) -> Result<(), ParseRefError> {
    // The distribution specification's limit; registries refuse longer names.
    const MAX: usize = 255;
    if repository.len() > MAX {
        return Err(ParseRefError::new(
            input,
            format!(
                "the repository name is {} characters long; registries take at most {MAX}",
                repository.len()
            ),
        )
        .with_hint(hint));
    }
    for seg in repository.split('/') {
        check_segment(input, "repository", seg).map_err(|e| e.with_hint(hint))?;
        let ok = seg
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-'));
        if !ok {
            return Err(ParseRefError::new(
                input,
                format!(
                    "the repository segment `{}` may hold only lowercase letters, digits, `.`, `_` and `-`",
                    printable(seg)
                ),
            )
            .with_hint(hint));
        }
    }
    Ok(())
}

/// Parses what follows `ollama:` in `input`.
pub(super) fn parse_ollama(input: &str, rest: &str) -> Result<OllamaRef, ParseRefError> {
    let hint = "write `ollama:name`, `ollama:name:tag` or `ollama:namespace/name:tag`";
    let rest = rest.strip_prefix("//").unwrap_or(rest);
    let (path, tag) = match rest.split_once(':') {
        Some((path, tag)) => (path, tag),
        None => (rest, "latest"),
    };
    let path = path.to_ascii_lowercase();
    let (namespace, name) = match path.split_once('/') {
        Some((ns, name)) => (ns.to_owned(), name.to_owned()),
        None => ("library".to_owned(), path.clone()),
    };
    if name.is_empty() {
        return Err(
            ParseRefError::new(input, "the `ollama:` reference has no model name").with_hint(hint),
        );
    }
    check_repository(input, &format!("{namespace}/{name}"), hint)?;
    if name.contains('/') {
        return Err(ParseRefError::new(
            input,
            "an `ollama:` name has at most two segments, `namespace/name`",
        )
        .with_hint(hint));
    }
    let tag_ok = !tag.is_empty()
        && tag.len() <= 128
        && tag.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
        && tag.chars().all(is_name_char);
    if !tag_ok {
        return Err(
            ParseRefError::new(input, format!("`{}` is not a valid tag", printable(tag)))
                .with_hint(hint),
        );
    }
    Ok(OllamaRef {
        namespace,
        name,
        tag: tag.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::OLLAMA_REGISTRY;
    use crate::model_ref::ModelRef;
    use crate::model_ref::tests::parse;

    #[test]
    fn oci_defaults_follow_docker() {
        let cases = [
            (
                "oci://docker.io/alpine",
                "oci://index.docker.io/library/alpine:latest",
            ),
            (
                "oci://Docker.IO/ai/smollm2:Q4",
                "oci://index.docker.io/ai/smollm2:Q4",
            ),
            ("oci://reg:5000/a/b", "oci://reg:5000/a/b:latest"),
            ("oci://reg/a/b/c", "oci://reg/a/b/c:latest"),
            ("oci://reg/a/b:v1/w/x.gguf", "oci://reg/a/b:v1/w/x.gguf"),
            ("ollama:Llama3.2", "ollama:library/llama3.2:latest"),
            ("ollama:llama3.2:1b", "ollama:library/llama3.2:1b"),
            ("ollama://user/model:q4_K_M", "ollama:user/model:q4_K_M"),
        ];
        for (input, id) in cases {
            assert_eq!(parse(input).syntactic_id().as_deref(), Some(id), "{input}");
        }
        let ModelRef::Oci(o) = parse("oci://reg/a/b:v1/w/x.gguf") else {
            panic!("not oci")
        };
        assert_eq!(
            (o.repository.as_str(), o.path.as_deref()),
            ("a/b", Some("w/x.gguf"))
        );
        let ModelRef::Ollama(o) = parse("ollama:qwen3") else {
            panic!("not ollama")
        };
        assert_eq!(
            ModelRef::Oci(o.to_oci(OLLAMA_REGISTRY)).to_string(),
            "oci://registry.ollama.ai/library/qwen3:latest"
        );
    }
}
