//! Mirror rules: [`MirrorRule`] (`SOURCE=MIRROR`, parsed and checked), [`Mirrors`] (the rules
//! in order, from `--mirror`, [`MIRRORS_ENV`] and the cache's [`MIRRORS_FILE`]), and their
//! matches: the [`Route`]s a reference is tried at, each a reference or a hub's model in a
//! mirror's layout.
//!
//! Beside the built-in schemes, a rule may name those of registered sources; what such a
//! scheme is ([`MirrorShape`]: a hub, a store of folders, or neither) is declared by its kind
//! and handed over in the [`MirrorContext`], so that rules are parsed before any source exists
//! and checked against them ([`Mirrors::check`]) once they do.

use std::fmt;
use std::path::{Path, PathBuf};

use catalog_core::{HfRef, ModelRef, OtherRef, ParseRefError, printable};

use super::{HfLocation, HfMirror};
use crate::error::{Error, Result};

/// The environment variable holding rules, separated by whitespace.
pub const MIRRORS_ENV: &str = "MODEL_PROVISIONER_MIRRORS";

/// The file of rules in the cache directory: one rule a line, `#` starts a comment.
pub const MIRRORS_FILE: &str = "mirrors.conf";

/// Where a rule was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuleOrigin {
    /// `--mirror` on the command line (or given by a library caller).
    Flag,
    /// [`MIRRORS_ENV`].
    Env,
    /// A line of a rules file.
    File {
        /// The file.
        path: PathBuf,
        /// The line, from 1.
        line: usize,
    },
}

impl fmt::Display for RuleOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RuleOrigin::Flag => f.write_str("--mirror"),
            RuleOrigin::Env => f.write_str(MIRRORS_ENV),
            RuleOrigin::File { path, line } => write!(f, "{}:{line}", path.display()),
        }
    }
}

/// Why a mirror rule was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}invalid mirror rule `{rule}`: {reason}", at.as_ref().map(|(p, l)| format!("`{}`, line {l}: ", p.display())).unwrap_or_default())]
pub struct ParseMirrorError {
    rule: String,
    reason: String,
    at: Option<(PathBuf, usize)>,
}

impl ParseMirrorError {
    pub(super) fn new(rule: &str, reason: impl Into<String>, origin: &RuleOrigin) -> Self {
        ParseMirrorError {
            rule: printable(rule),
            reason: reason.into(),
            at: match origin {
                RuleOrigin::File { path, line } => Some((path.clone(), *line)),
                _ => None,
            },
        }
    }

    /// Whether the rule was written in a file (rather than given, or in the environment).
    pub(crate) fn in_file(&self) -> bool {
        self.at.is_some()
    }

    /// What to write instead.
    pub fn hint(&self) -> Option<&str> {
        Some(
            "a rule is `SOURCE=MIRROR`, e.g. `hf:=oci://registry.internal/hf`, `hf:=s3://models/hf/` or `oci://registry.internal=oci://harbor.internal/cache`",
        )
    }
}

/// What the references of a registered scheme name, for mirror rules: declared by its kind
/// ([`SourceKind::mirror_shape`](crate::SourceKind::mirror_shape)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MirrorShape {
    /// Anything else: a rule maps its references by text, and it holds no mirror of a hub.
    #[default]
    Path,
    /// A hub's repositories, `org/repo[@revision][/path][:QUANT]` in `hf:`'s grammar, each at
    /// a commit: mapped into the mirror layout, as `hf:` references are.
    Hub {
        /// The revision a reference without one names (`main` on the Hub).
        default_revision: &'static str,
    },
    /// A store of folders, which a push writes ([`Source::folder`](crate::pipeline::Source::folder))
    /// and a pull reads back against their manifest: mapped by text, and a mirror that holds a
    /// hub's repositories in the bucket layout, as `s3://` does.
    Bucket,
}

/// A hub: the scheme of its references, and the revision a reference without one names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hub {
    /// The scheme, without `:` (`hf`).
    pub scheme: &'static str,
    /// The revision a reference without one names.
    pub default_revision: &'static str,
}

/// The Hugging Face Hub, the built-in hub.
pub const HF_HUB: Hub = Hub {
    scheme: "hf",
    default_revision: "main",
};

/// The kinds of prefix a rule may name: the built-in ones, and any other scheme, which a
/// registered source may read ([`MirrorShape`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Hf,
    Oci,
    S3,
    Http,
    Other,
}

pub(super) fn kind_of(prefix: &str) -> Option<Kind> {
    let scheme = prefix.split_once(':')?.0;
    match scheme {
        "hf" => Some(Kind::Hf),
        "oci" => Some(Kind::Oci),
        "s3" | "s3+http" | "s3+https" => Some(Kind::S3),
        "http" | "https" => Some(Kind::Http),
        "file" | "ollama" => None,
        s if is_scheme(s) => Some(Kind::Other),
        _ => None,
    }
}

/// Whether `s` is a URI scheme: a letter, then letters, digits, `+`, `-` or `.`.
fn is_scheme(s: &str) -> bool {
    s.starts_with(|c: char| c.is_ascii_lowercase())
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '+' | '-' | '.'))
}

/// The scheme of a prefix or reference text, before its `:`.
pub(super) fn scheme_of(text: &str) -> &str {
    text.split_once(':').map_or(text, |(s, _)| s)
}

/// `text` parsed as a reference, its own scheme taken for a registered one.
pub(super) fn parse_at(text: &str) -> Option<ModelRef> {
    ModelRef::parse_with(text, &[scheme_of(text)]).ok()
}

/// Whether what follows a hub's scheme in a rule's source is `org` or `org/repo`, or nothing.
fn hub_source_ok(names: &str) -> bool {
    let names = names.trim_end_matches('/');
    if names.is_empty() {
        return true;
    }
    let segments: Vec<&str> = names.split('/').collect();
    let name_ok = |s: &&str| {
        !s.is_empty()
            && *s != "."
            && *s != ".."
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    };
    segments.len() <= 2 && segments.iter().all(name_ok)
}

/// Why a hub's source is refused a mirror.
const HUB_MIRRORS: &str = "a hub's repository is mirrored in a registry (`oci://host[:port][/path]`) or a bucket (`s3://bucket[/prefix]`, or a folder of a registered store such as `gs://bucket[/prefix]`)";

/// Why a registry is refused a mirror of another kind, or another kind a registry.
const REGISTRIES_ONLY: &str = "a registry (`oci://`) is mirrored by a registry, and only a registry holds artifacts: both sides are `oci://` or neither is";

/// One rule: references starting with `source` are tried at `mirror` first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MirrorRule {
    source: String,
    mirror: String,
    origin: RuleOrigin,
}

impl fmt::Display for MirrorRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={}", self.source, self.mirror)
    }
}

impl MirrorRule {
    /// Parses `SOURCE=MIRROR`, written at `origin`.
    ///
    /// # Errors
    ///
    /// A rule without `=`, with an empty side, with whitespace, a control character, a query or
    /// credentials, a source of no known scheme, or a mirror that cannot hold what the source
    /// names (an `hf:` source needs `oci://` or `s3://`).
    pub fn parse(text: &str, origin: RuleOrigin) -> std::result::Result<Self, ParseMirrorError> {
        let rule = text.trim();
        let err = |reason: &str| ParseMirrorError::new(rule, reason, &origin);
        if rule.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err(err("it contains whitespace or a control character"));
        }
        let Some((source, mirror)) = rule.split_once('=') else {
            return Err(err("it has no `=` between the source and the mirror"));
        };
        if source.is_empty() || mirror.is_empty() {
            return Err(err("the source and the mirror must both be given"));
        }
        if rule.contains(['?', '#']) {
            return Err(err("a prefix takes no query or fragment"));
        }
        let (source, mirror) = (normalise(source), normalise(mirror));
        if authority(&mirror).is_some_and(|a| a.contains('@')) || mirror.contains('@') {
            return Err(err(
                "credentials do not belong in a rule: they come from the environment, as for any reference",
            ));
        }
        let Some(source_kind) = kind_of(&source) else {
            return Err(err(if source.starts_with("ollama:") {
                "`ollama:` references are matched as `oci://registry.ollama.ai/…`: write the source that way"
            } else {
                "the source must start with `hf:`, `oci://`, `s3://`, `http(s)://` or the scheme of a registered source"
            }));
        };
        let Some(mirror_kind) = kind_of(&mirror).filter(|k| *k != Kind::Hf) else {
            return Err(err(
                "the mirror must start with `oci://`, `s3://`, `http(s)://` or the scheme of a registered store",
            ));
        };
        if source_kind == Kind::Hf {
            if !hub_source_ok(&source["hf:".len()..]) {
                return Err(err("an `hf:` source is `hf:`, `hf:org` or `hf:org/repo`"));
            }
            if HfLocation::new(&mirror, "org/repo").is_none() {
                return Err(err(HUB_MIRRORS));
            }
        } else if source_kind != Kind::Other
            && (mirror_kind == Kind::Oci) != (source_kind == Kind::Oci)
        {
            // A registered source's scheme may be a hub's, mirrored in a registry: that is
            // known once the sources are (`Mirrors::check`).
            return Err(err(REGISTRIES_ONLY));
        }
        Ok(MirrorRule {
            source,
            mirror,
            origin,
        })
    }

    /// The source prefix, normalised.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The mirror prefix, normalised.
    pub fn mirror(&self) -> &str {
        &self.mirror
    }

    /// Where the rule was written.
    pub fn origin(&self) -> &RuleOrigin {
        &self.origin
    }

    /// Checks what the rule names against the registered sources `context` knows: each scheme
    /// is read by a source, a mirror in a store is a folder its source reads (`read`), a hub's
    /// repositories go to a registry or a store of folders, and a registry is mirrored by a
    /// registry only.
    fn check(
        &self,
        context: &MirrorContext,
        read: &dyn Fn(&OtherRef) -> std::result::Result<(), ParseRefError>,
    ) -> std::result::Result<(), ParseMirrorError> {
        let err = |reason: String| ParseMirrorError::new(&self.to_string(), reason, &self.origin);
        let shape = |prefix: &str| match kind_of(prefix) {
            Some(Kind::Other) => context.shape(scheme_of(prefix)).ok_or_else(|| {
                err(format!(
                    "no source of this build reads `{}:`",
                    scheme_of(prefix)
                ))
            }),
            _ => Ok(MirrorShape::Path),
        };
        let (source_shape, mirror_shape) = (shape(&self.source)?, shape(&self.mirror)?);
        let mirror_kind = kind_of(&self.mirror);
        let source_is_hub = kind_of(&self.source) == Some(Kind::Hf)
            || matches!(source_shape, MirrorShape::Hub { .. });
        if matches!(mirror_shape, MirrorShape::Hub { .. }) {
            return Err(err(format!(
                "`{}:` is a hub, and a mirror is a registry or a store",
                scheme_of(&self.mirror)
            )));
        }
        if mirror_shape == MirrorShape::Bucket {
            // What the rule maps to lies in the folder the prefix names, so the prefix must name
            // one (a bucket, a container) by the store's own grammar, as `s3://`'s does when the
            // rule is parsed: otherwise it would fail at the first fetch, in the store's words.
            let folder = if self.mirror.ends_with('/') {
                self.mirror.clone()
            } else {
                format!("{}/", self.mirror)
            };
            let checked = match ModelRef::parse_with(&folder, &[scheme_of(&folder)]) {
                Ok(ModelRef::Other(other)) => read(&other),
                Ok(_) => Ok(()),
                Err(e) => Err(e),
            };
            if let Err(e) = checked {
                return Err(err(format!(
                    "the mirror `{}` is no folder of its store: {}",
                    printable(&self.mirror),
                    e.reason()
                )));
            }
        }
        if source_is_hub {
            let names = self.source.split_once(':').map_or("", |(_, n)| n);
            if !hub_source_ok(names) {
                let scheme = scheme_of(&self.source);
                return Err(err(format!(
                    "a `{scheme}:` source is `{scheme}:`, `{scheme}:org` or `{scheme}:org/repo`"
                )));
            }
            let holds = match mirror_kind {
                Some(Kind::Oci | Kind::S3) => true,
                Some(Kind::Other) => mirror_shape == MirrorShape::Bucket,
                _ => false,
            };
            if !holds || HfLocation::new(&self.mirror, "org/repo").is_none() {
                return Err(err(HUB_MIRRORS.to_owned()));
            }
        } else if (mirror_kind == Some(Kind::Oci)) != (kind_of(&self.source) == Some(Kind::Oci)) {
            return Err(err(REGISTRIES_ONLY.to_owned()));
        }
        Ok(())
    }
}

/// The scheme lowercase (`hf://` as `hf:`), and the host of a URL-like prefix lowercase, as
/// references are normalised.
fn normalise(prefix: &str) -> String {
    let lower = prefix.to_ascii_lowercase();
    if lower.starts_with("hf://") {
        return format!("hf:{}", &prefix["hf://".len()..]);
    }
    if let Some((scheme, rest)) = prefix.split_once("://") {
        let end = rest.find('/').unwrap_or(rest.len());
        let (host, path) = rest.split_at(end);
        return format!(
            "{}://{}{path}",
            scheme.to_ascii_lowercase(),
            host.to_ascii_lowercase()
        );
    }
    match prefix.split_once(':') {
        Some((scheme, rest)) => format!("{}:{rest}", scheme.to_ascii_lowercase()),
        None => prefix.to_owned(),
    }
}

/// The authority of a `scheme://authority/…` prefix.
pub(super) fn authority(prefix: &str) -> Option<&str> {
    let rest = prefix.split_once("://")?.1;
    Some(&rest[..rest.find('/').unwrap_or(rest.len())])
}

/// What follows `source` in `text`, when `source` is a prefix of it that ends at a boundary: at
/// the end, before a `/`, after a `/` or a scheme's `:`, or before a tag's `:` or a digest's
/// `@` once the prefix names a path (so a host never matches a longer host or another port).
fn strip_source<'a>(text: &'a str, source: &str) -> Option<&'a str> {
    let rest = text.strip_prefix(source)?;
    let has_path = match source.split_once("://") {
        Some((_, after)) => after.contains('/'),
        None => true,
    };
    let at_boundary = rest.is_empty()
        || source.ends_with('/')
        || (source.ends_with(':') && !source.contains("://"))
        || rest.starts_with('/')
        || (has_path && rest.starts_with([':', '@']));
    at_boundary.then_some(rest)
}

/// The settings a rule's match depends on.
#[derive(Debug, Clone, Default)]
pub struct MirrorContext {
    /// The registry `ollama:` references are pulled from.
    pub ollama_registry: String,
    /// The `--include` patterns of an `hf:` repository (part of its mirror's name).
    pub include: Vec<String>,
    /// The `--exclude` patterns.
    pub exclude: Vec<String>,
    /// Offline: no mirror is tried (nor the origin).
    pub offline: bool,
    /// The schemes of registered sources, each with what its references name.
    pub shapes: Vec<(&'static str, MirrorShape)>,
}

impl MirrorContext {
    /// What the references of the registered scheme `scheme` name; `None` when no source
    /// reads it.
    pub fn shape(&self, scheme: &str) -> Option<MirrorShape> {
        self.shapes
            .iter()
            .find(|(s, _)| *s == scheme)
            .map(|(_, shape)| *shape)
    }

    /// The hub `reference` is a repository of, with the repository read by `hf:`'s grammar:
    /// the Hub for an `hf:` reference, a registered hub for one of its scheme.
    pub fn hub_model(&self, reference: &ModelRef) -> Option<(Hub, HfRef)> {
        match reference {
            ModelRef::Hf(hf) => Some((HF_HUB, hf.clone())),
            ModelRef::Other(other) => {
                let (scheme, shape) = self.shapes.iter().find(|(s, _)| *s == other.scheme())?;
                let MirrorShape::Hub { default_revision } = shape else {
                    return None;
                };
                let hub = Hub {
                    scheme,
                    default_revision,
                };
                Some((hub, read_hub(&other.to_string(), hub.scheme)?))
            }
            _ => None,
        }
    }
}

/// The repository `text` (`<scheme>:org/repo…`, a hub's reference or id) names, read by `hf:`'s
/// grammar; `None` when it is of another scheme or no repository.
pub(super) fn read_hub(text: &str, scheme: &str) -> Option<HfRef> {
    let rest = text.strip_prefix(scheme)?.strip_prefix(':')?;
    match ModelRef::parse_with(&format!("hf:{rest}"), &[]) {
        Ok(ModelRef::Hf(hf)) => Some(hf),
        _ => None,
    }
}

/// One place to try a model at.
#[derive(Debug, Clone)]
pub struct Route {
    /// The rule that gave it.
    pub rule: MirrorRule,
    /// Where the model is.
    pub target: Target,
}

/// Where a mirror holds a model.
#[derive(Debug, Clone)]
pub enum Target {
    /// A reference fetched as any other: the source's text with the mirror's prefix.
    Reference(ModelRef),
    /// A hub's model (`hf:`, or a registered hub's) in a mirror's layout.
    Hf(HfMirror),
}

impl Target {
    /// The place, for logs and provenance.
    pub fn describe(&self) -> String {
        match self {
            Target::Reference(r) => r.redacted(),
            Target::Hf(h) => h.describe(),
        }
    }
}

/// The ordered mirror rules.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Mirrors {
    rules: Vec<MirrorRule>,
}

impl Mirrors {
    /// No rules.
    pub fn new() -> Self {
        Mirrors::default()
    }

    /// Adds `rule` after the others.
    pub fn push(&mut self, rule: MirrorRule) {
        self.rules.push(rule);
    }

    /// Adds `other`'s rules after these.
    pub fn extend(&mut self, other: Mirrors) {
        self.rules.extend(other.rules);
    }

    /// The rules, in order.
    pub fn rules(&self) -> &[MirrorRule] {
        &self.rules
    }

    /// Whether there is no rule.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Checks every rule against the registered sources `context` knows (see
    /// [`MirrorShape`]): a scheme no source reads, a mirror in a store that names no folder
    /// `read` (the source's [`SourceKind::check`](crate::SourceKind::check) of a reference of
    /// its scheme) accepts, a hub mirrored where no folder or tag can hold it, a registry
    /// mirrored by something else.
    ///
    /// # Errors
    ///
    /// The first rule refused, naming where it was written.
    pub fn check(
        &self,
        context: &MirrorContext,
        read: impl Fn(&OtherRef) -> std::result::Result<(), ParseRefError>,
    ) -> std::result::Result<(), ParseMirrorError> {
        self.rules
            .iter()
            .try_for_each(|rule| rule.check(context, &read))
    }

    /// Rules given one by one (`--mirror`).
    ///
    /// # Errors
    ///
    /// The first rule that does not parse.
    pub fn from_flags<S: AsRef<str>>(
        rules: impl IntoIterator<Item = S>,
    ) -> std::result::Result<Self, ParseMirrorError> {
        let rules = rules
            .into_iter()
            .map(|r| MirrorRule::parse(r.as_ref(), RuleOrigin::Flag))
            .collect::<std::result::Result<_, _>>()?;
        Ok(Mirrors { rules })
    }

    /// The rules in force for a provisioner over `cache_dir`, in the order they apply: `given`
    /// (`--mirror`, or a library caller's), then [`MIRRORS_ENV`]'s, then those of
    /// `<cache_dir>/`[`MIRRORS_FILE`]. What the command line and the Python package read,
    /// read once here.
    ///
    /// # Errors
    ///
    /// [`Error::MirrorRule`] for the first rule that does not parse (a usage error, see
    /// [`Error::is_usage`], when it was given or in the environment); [`Error::Read`] when the
    /// file exists and cannot be read.
    pub fn configured<S: AsRef<str>>(
        given: impl IntoIterator<Item = S>,
        cache_dir: &Path,
    ) -> Result<Self> {
        let mut mirrors = Mirrors::from_flags(given)?;
        if let Ok(value) = std::env::var(MIRRORS_ENV) {
            mirrors.extend(Mirrors::from_env_value(&value)?);
        }
        mirrors.extend(Mirrors::from_file(&cache_dir.join(MIRRORS_FILE))?);
        Ok(mirrors)
    }

    /// Rules separated by whitespace, as [`MIRRORS_ENV`] holds them.
    ///
    /// # Errors
    ///
    /// The first rule that does not parse.
    pub fn from_env_value(text: &str) -> std::result::Result<Self, ParseMirrorError> {
        let rules = text
            .split_whitespace()
            .map(|r| MirrorRule::parse(r, RuleOrigin::Env))
            .collect::<std::result::Result<_, _>>()?;
        Ok(Mirrors { rules })
    }

    /// The rules of a file's text: one a line; blank lines and `#` comments are skipped.
    ///
    /// # Errors
    ///
    /// The first line that is no rule, naming `path` and the line.
    pub fn from_file_text(path: &Path, text: &str) -> std::result::Result<Self, ParseMirrorError> {
        let mut rules = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line
                .split_once('#')
                .map_or(line, |(before, _)| before)
                .trim();
            if line.is_empty() {
                continue;
            }
            rules.push(MirrorRule::parse(
                line,
                RuleOrigin::File {
                    path: path.to_owned(),
                    line: n + 1,
                },
            )?);
        }
        Ok(Mirrors { rules })
    }

    /// The rules of the file at `path`; none when it does not exist.
    ///
    /// # Errors
    ///
    /// [`Error::Read`] when it exists and cannot be read; [`Error::MirrorRule`] for a line
    /// that is no rule.
    pub fn from_file(path: &Path) -> Result<Self> {
        match std::fs::read_to_string(path) {
            Ok(text) => Ok(Mirrors::from_file_text(path, &text)?),
            // No file, or no cache directory yet (or a file in its place, which opening the
            // catalog reports better): no rules.
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
                ) =>
            {
                Ok(Mirrors::new())
            }
            Err(e) => Err(Error::read(path, e)),
        }
    }

    /// Where to try `reference`, in order: one route for each rule that matches it.
    pub fn routes(&self, reference: &ModelRef, context: &MirrorContext) -> Vec<Route> {
        let hub_model = context.hub_model(reference);
        let mut routes = Vec::new();
        for rule in &self.rules {
            let target = if let Some((hub, hf)) = &hub_model {
                if scheme_of(&rule.source) != hub.scheme {
                    continue;
                }
                let text = format!("{}:{}/{}", hub.scheme, hf.org, hf.repo).to_ascii_lowercase();
                let Some(rest) = strip_source(&text, &rule.source.to_ascii_lowercase()) else {
                    continue;
                };
                let location = HfLocation::new(&rule.mirror, rest).filter(|l| match l {
                    HfLocation::Bucket { base } if kind_of(base) == Some(Kind::Other) => {
                        context.shape(scheme_of(base)) == Some(MirrorShape::Bucket)
                    }
                    _ => true,
                });
                let Some(location) = location else {
                    tracing::warn!(rule = %rule, "the rule gives no valid mirror location for `{reference}`; skipped");
                    continue;
                };
                Target::Hf(HfMirror {
                    hub: *hub,
                    hf: hf.clone(),
                    include: context.include.clone(),
                    exclude: context.exclude.clone(),
                    location,
                })
            } else {
                let text = match reference {
                    ModelRef::File(_) => continue,
                    ModelRef::Ollama(o) => {
                        ModelRef::Oci(o.to_oci(&context.ollama_registry)).to_string()
                    }
                    other => other.redacted(),
                };
                let Some(rest) = strip_source(&text, &rule.source) else {
                    continue;
                };
                let mapped = format!("{}{rest}", rule.mirror);
                match ModelRef::parse_with(&mapped, &[scheme_of(&mapped)]) {
                    Ok(mapped) => Target::Reference(mapped),
                    Err(e) => {
                        tracing::warn!(rule = %rule, error = %e, "the rule gives no valid reference; skipped");
                        continue;
                    }
                }
            };
            routes.push(Route {
                rule: rule.clone(),
                target,
            });
        }
        routes
    }
}

#[cfg(test)]
mod tests {
    use catalog_core::Digest;

    use super::*;
    use crate::mirror::testing::{context, read_registered, rules, targets};

    #[test]
    fn rules_match_in_order_and_at_boundaries_only() {
        let m = rules(&[
            "oci://127.0.0.1:5000=oci://127.0.0.1:5001",
            "oci://127.0.0.1:5000/team=oci://harbor.internal/cache/team",
            "https://host.example/=https://cache.internal/host/",
        ]);
        assert_eq!(
            targets(&m, "oci://127.0.0.1:5000/team/m:v1"),
            [
                "oci://127.0.0.1:5001/team/m:v1",
                "oci://harbor.internal/cache/team/m:v1"
            ]
        );
        // Another port, a longer host, a longer repository name: no match.
        assert!(targets(&m, "oci://127.0.0.1:50001/team/m:v1").is_empty());
        assert!(targets(&m, "oci://127.0.0.1/team/m:v1").is_empty());
        assert_eq!(
            targets(&m, "oci://127.0.0.1:5000/teamster/m:v1"),
            ["oci://127.0.0.1:5001/teamster/m:v1"]
        );
        assert_eq!(
            targets(&m, "https://host.example/a/b.gguf?token=secret"),
            ["https://cache.internal/host/a/b.gguf"],
            "the query and its credentials stay with the origin"
        );
        assert!(targets(&m, "https://host.example.evil/a.gguf").is_empty());
        assert!(targets(&m, "./local.gguf").is_empty());
    }

    #[test]
    fn a_repository_prefix_matches_before_a_tag_or_digest() {
        let m = rules(&["oci://reg.internal/team/m=oci://mirror.internal/m"]);
        assert_eq!(
            targets(&m, "oci://reg.internal/team/m:v1"),
            ["oci://mirror.internal/m:v1"]
        );
        let digest = Digest::sha256_of(b"x");
        assert_eq!(
            targets(&m, &format!("oci://reg.internal/team/m@{digest}")),
            [format!("oci://mirror.internal/m@{digest}")]
        );
        assert!(targets(&m, "oci://reg.internal/team/model:v1").is_empty());
    }

    #[test]
    fn ollama_references_match_as_oci_references_on_their_registry() {
        let m = rules(&["oci://registry.ollama.ai=oci://harbor.internal/ollama"]);
        assert_eq!(
            targets(&m, "ollama:qwen2.5:0.5b"),
            ["oci://harbor.internal/ollama/library/qwen2.5:0.5b"]
        );
    }

    #[test]
    fn hostile_or_malformed_rules_are_refused_with_the_reason() {
        for (bad, why) in [
            ("", "no `=`"),
            ("hf:", "no `=`"),
            ("=oci://r/x", "both"),
            ("hf:=", "both"),
            ("hf:=https://cache.internal/hf", "registry"),
            ("hf:=hf:other", "mirror must start"),
            ("ollama:=oci://r/x", "registry.ollama.ai"),
            ("file:x=oci://r/y", "source must start"),
            ("1x://a=oci://r/y", "source must start"),
            ("hf:=file:/x", "mirror must start"),
            ("oci://r=s3://b/x/", "registry"),
            ("https://h/=oci://r/x", "registry"),
            ("oci://r=oci://user:pw@mirror.internal", "credentials"),
            ("https://h/=https://c/h/?sig=1", "query"),
            ("hf:a/b/c=oci://r/x", "hf:org/repo"),
            ("hf:../x=oci://r/x", "hf:org/repo"),
            ("hf:=oci://r/UPPER", "registry"),
            ("hf:=oci://r/x\u{1b}[2J", "control"),
            ("hf:=oci://r/x y", "whitespace"),
        ] {
            let err = MirrorRule::parse(bad, RuleOrigin::Flag).unwrap_err();
            assert!(err.to_string().contains(why), "{bad:?}: {err}");
            assert!(!err.to_string().contains('\u{1b}'), "{err}");
        }
        assert!(
            MirrorRule::parse("hf://=S3+HTTP://127.0.0.1:9000/models/hf", RuleOrigin::Env).is_ok()
        );
    }

    #[test]
    fn rules_of_registered_schemes_are_checked_against_what_their_sources_are() {
        let cx = context();
        for good in [
            "hf:=gs://fleet/hf",
            "hf:org=az://acct/container/hf/",
            "modelscope:=oci://registry.internal/ms",
            "modelscope:org/=s3://models/ms/",
            "modelscope:=gs://fleet/ms",
            "gs://origin-bucket/=az://acct/mirror-container/",
            "s3://origin=gs://fleet/copy",
            "shelf:=https://cache.internal/shelf/",
        ] {
            let m = rules(&[good]);
            assert_eq!(m.check(&cx, read_registered), Ok(()), "{good}");
        }
        for (bad, why) in [
            ("ftp://x=oci://r/y", "no source of this build reads `ftp:`"),
            (
                "hf:=drop:bucket/hf",
                "no source of this build reads `drop:`",
            ),
            ("hf:=shelf:x", "a hub's repository is mirrored"),
            ("hf:=modelscope:org", "is a hub"),
            ("modelscope:a/b/c=gs://fleet/ms", "`modelscope:org/repo`"),
            (
                "modelscope:=https://cache.internal/ms",
                "a hub's repository is mirrored",
            ),
            ("gs://origin=oci://registry.internal/x", "registry"),
            ("oci://registry.internal=gs://fleet/x", "registry"),
        ] {
            // Refused when parsed, or once the sources are known.
            let err = match Mirrors::from_flags([bad]) {
                Ok(m) => m.check(&cx, read_registered).expect_err(bad),
                Err(e) => e,
            };
            assert!(err.to_string().contains(why), "{bad}: {err}");
        }
    }

    #[cfg(all(feature = "gcs", feature = "azure"))]
    #[test]
    fn a_mirror_in_a_store_is_a_folder_the_store_reads_or_the_rule_is_refused() {
        let cx = context();
        for good in [
            "hf:=gs://fleet",
            "hf:=gs://fleet/hf/",
            "hf:org=az://acct/container",
            "modelscope:=gs+http://127.0.0.1:4443/fleet/ms",
            "gs://a/=az://acct/mirror-container/",
            "s3://a/=gs://fleet",
        ] {
            assert_eq!(rules(&[good]).check(&cx, read_registered), Ok(()), "{good}");
        }
        for (bad, why) in [
            ("hf:=gs://", "nothing follows `gs:`"),
            ("hf:=az://acct", "needs at least `account/container`"),
            ("gs://a/=az://acct", "needs at least `account/container`"),
            ("s3://a/=gs://", "nothing follows `gs:`"),
            ("hf:=gs+http://127.0.0.1:4443", "names no bucket"),
            ("modelscope:=gs://ab/ms", "not a bucket name"),
        ] {
            let err = rules(&[bad]).check(&cx, read_registered).expect_err(bad);
            let text = err.to_string();
            assert!(
                text.starts_with(&format!("invalid mirror rule `{bad}`: the mirror `"))
                    && text.contains("is no folder of its store")
                    && text.contains(why),
                "{bad}: {text}"
            );
        }
        // Written in a file: the line is named.
        let path = Path::new("/cache/mirrors.conf");
        let m = Mirrors::from_file_text(path, "hf:=oci://r/x\nhf:=gs://\n").expect("parses");
        let err = m
            .check(&cx, read_registered)
            .expect_err("a bucket-less mirror");
        assert!(
            err.to_string()
                .starts_with("`/cache/mirrors.conf`, line 2: invalid mirror rule `hf:=gs://`"),
            "{err}"
        );
    }

    #[test]
    fn a_store_s_references_map_by_path_to_another_store() {
        let m = rules(&[
            "gs://origin-bucket/=az://acct/mirror-container/",
            "s3://origin=gs://fleet/copy",
            "az+http://127.0.0.1:10000/acct=gs+http://127.0.0.1:4443/fleet",
        ]);
        assert_eq!(
            targets(&m, "gs://origin-bucket/llm/tiny/"),
            ["az://acct/mirror-container/llm/tiny/"]
        );
        assert!(targets(&m, "gs://origin-bucket-2/llm/tiny/").is_empty());
        assert_eq!(
            targets(&m, "s3://origin/llm/tiny/"),
            ["gs://fleet/copy/llm/tiny/"]
        );
        assert_eq!(
            targets(&m, "az+http://127.0.0.1:10000/acct/c/m/"),
            ["gs+http://127.0.0.1:4443/fleet/c/m/"]
        );
    }

    #[test]
    fn a_rules_file_skips_comments_and_names_the_line_it_refuses() {
        let path = Path::new("/cache/mirrors.conf");
        let m = Mirrors::from_file_text(
            path,
            "# fleet mirrors\n\nhf:=oci://registry.internal/hf  # first\n  oci://a.internal=oci://b.internal\n",
        )
        .expect("a valid file");
        assert_eq!(m.rules().len(), 2);
        assert_eq!(m.rules()[0].origin().to_string(), "/cache/mirrors.conf:3");
        let err = Mirrors::from_file_text(path, "hf:=oci://r/x\nnot a rule\n").unwrap_err();
        assert!(
            err.to_string()
                .starts_with("`/cache/mirrors.conf`, line 2: invalid mirror rule"),
            "{err}"
        );
        let env = Mirrors::from_env_value(" hf:=oci://r/x\toci://a=oci://b\n").expect("valid");
        assert_eq!(env.rules().len(), 2);
        assert_eq!(env.rules()[1].to_string(), "oci://a=oci://b");
    }
}
