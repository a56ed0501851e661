//! The layout of a mirrored hub model (an `hf:` repository, or one of a registered hub such as
//! `modelscope:`; org/repo at a commit): where a mirror keeps the repository ([`HfLocation`]),
//! and the names of its commits and revisions there ([`HfMirror`]).
//!
//! ```text
//! oci://<registry>/<path>/<org>/<repo>    a repository of the registry
//! ├── :<commit>[-<variant>]               the model at a commit
//! └── :<revision>[-<variant>]             the same model, under a revision name
//! s3://<bucket>/<path>/<org>/<repo>/       (or the folder of any store: gs://, az://, …)
//! ├── <commit>[-<variant>]/               the model at a commit, a pushed folder
//! │   ├── <file>…
//! │   └── .model-provisioner.json         its manifest, with the model's provenance
//! └── refs/<revision>[-<variant>]         an object holding the commit a revision names
//! ```
//!
//! `<path>` is the rule's mirror path, and `<org>/<repo>` what follows its source. Names are
//! lowercased, and one no registry takes is spelled with a hash (`r_<hash>` for a revision).
//! `<variant>` is a hash of the reference's file, quantisation and `--include`/`--exclude`,
//! when it has any.

use catalog_core::{Digest, HfRef, ModelRef, OciRef};

use super::rules::{Kind, authority, kind_of, parse_at};
use super::{Hub, MirrorRule, ParseMirrorError, RuleOrigin};
use crate::error::Result;

/// Where a mirror keeps one Hub repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HfLocation {
    /// A repository of a registry.
    Oci {
        /// `host[:port]`.
        registry: String,
        /// The repository path.
        repository: String,
    },
    /// A folder of a bucket: `s3://bucket/<path>` (or `s3+http(s)://…`), or of a registered
    /// store (`gs://bucket/<path>`, `az://account/container/<path>`), no trailing `/`.
    Bucket {
        /// The folder's prefix as a reference would write it.
        base: String,
    },
}

impl HfLocation {
    /// The location of the repository `rest` (`org/repo`, `repo` or nothing, what follows a
    /// rule's source) under the mirror prefix `mirror`, with every name mapped to one a
    /// registry takes; `None` when that is no valid location.
    pub(super) fn new(mirror: &str, rest: &str) -> Option<Self> {
        let mut path: Vec<String> = Vec::new();
        let mirror = mirror.trim_end_matches('/');
        let base_path = mirror
            .split_once("://")
            .map_or("", |(_, r)| r.split_once('/').map_or("", |(_, p)| p));
        path.extend(
            base_path
                .split('/')
                .filter(|s| !s.is_empty())
                .map(str::to_owned),
        );
        path.extend(rest.split('/').filter(|s| !s.is_empty()).map(oci_component));
        match kind_of(mirror)? {
            Kind::Oci => {
                let registry = authority(mirror)?.to_owned();
                let text = format!("oci://{registry}/{}:x", path.join("/"));
                match text.parse::<ModelRef>().ok()? {
                    ModelRef::Oci(o) if o.path.is_none() => Some(HfLocation::Oci {
                        registry: o.registry,
                        repository: o.repository,
                    }),
                    _ => None,
                }
            }
            Kind::S3 => {
                let scheme = mirror.split_once("://")?.0;
                let (bucket_at, key) = if scheme == "s3" {
                    (authority(mirror)?.to_owned(), path.join("/"))
                } else {
                    let mut parts = path.clone();
                    if parts.is_empty() {
                        return None;
                    }
                    let bucket = parts.remove(0);
                    (format!("{}/{bucket}", authority(mirror)?), parts.join("/"))
                };
                let base = if key.is_empty() {
                    format!("{scheme}://{bucket_at}")
                } else {
                    format!("{scheme}://{bucket_at}/{key}")
                };
                // The folder of a commit must parse.
                format!("{base}/x/")
                    .parse::<ModelRef>()
                    .ok()
                    .filter(|r| matches!(r, ModelRef::S3(_)))?;
                Some(HfLocation::Bucket { base })
            }
            Kind::Other => {
                // A registered store's folder: its own grammar, which its source checks.
                let mut base = mirror.to_owned();
                for name in rest.split('/').filter(|s| !s.is_empty()) {
                    base.push('/');
                    base.push_str(&oci_component(name));
                }
                match parse_at(&format!("{base}/x/"))? {
                    ModelRef::Other(_) => Some(HfLocation::Bucket { base }),
                    _ => None,
                }
            }
            Kind::Hf | Kind::Http => None,
        }
    }

    /// A reference of the location's scheme, for choosing the source that reads it.
    pub fn probe(&self) -> Option<ModelRef> {
        match self {
            HfLocation::Oci { registry, .. } => parse_at(&format!("oci://{registry}/x:latest")),
            HfLocation::Bucket { base } => parse_at(&format!("{base}/x")),
        }
    }
}

/// A hub's model as a mirror holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HfMirror {
    /// The hub it is of (`hf:`, or a registered hub).
    pub hub: Hub,
    /// The reference, as at its origin, read by `hf:`'s grammar.
    pub hf: HfRef,
    /// The `--include` patterns it was selected with.
    pub include: Vec<String>,
    /// The `--exclude` patterns.
    pub exclude: Vec<String>,
    /// Where the mirror keeps the repository.
    pub location: HfLocation,
}

impl HfMirror {
    /// The mirror of `hf`, a repository of `hub`, under `mirror` (a rule's mirror prefix, for
    /// the source `<hub>:`), for `mirror` to push to.
    ///
    /// # Errors
    ///
    /// [`Error::MirrorRule`](crate::Error::MirrorRule) when `mirror` is no registry or bucket
    /// location.
    pub fn for_push(
        hub: Hub,
        hf: &HfRef,
        mirror: &str,
        include: Vec<String>,
        exclude: Vec<String>,
    ) -> Result<Self> {
        let rule = MirrorRule::parse(&format!("{}:={mirror}", hub.scheme), RuleOrigin::Flag)?;
        let location = HfLocation::new(rule.mirror(), &format!("{}/{}", hf.org, hf.repo))
            .ok_or_else(|| {
                ParseMirrorError::new(
                    mirror,
                    "it gives no valid location for this repository",
                    &RuleOrigin::Flag,
                )
            })?;
        Ok(HfMirror {
            hub,
            hf: hf.clone(),
            include,
            exclude,
            location,
        })
    }

    /// A short hash of the file path, the quantisation and the filters, when the reference has
    /// any: the model is then a part of the repository, kept apart from the whole.
    fn variant(&self) -> Option<String> {
        if self.hf.path.is_none()
            && self.hf.quant.is_none()
            && self.include.is_empty()
            && self.exclude.is_empty()
        {
            return None;
        }
        let mut text = String::from("path\0");
        text.push_str(self.hf.path.as_deref().unwrap_or_default());
        // Only a quantisation adds its part, so that the names of the other variants stay as
        // they were.
        if let Some(quant) = &self.hf.quant {
            text.push_str("\0quant\0");
            text.push_str(quant);
        }
        text.push_str("\0include");
        for p in &self.include {
            text.push('\0');
            text.push_str(p);
        }
        text.push_str("\0exclude");
        for p in &self.exclude {
            text.push('\0');
            text.push_str(p);
        }
        Some(Digest::sha256_of(text.as_bytes()).value()[..12].to_owned())
    }

    fn with_variant(&self, name: String) -> String {
        match self.variant() {
            Some(v) => format!("{name}-{v}"),
            None => name,
        }
    }

    /// The commit the reference pins, when its revision is a full commit sha.
    pub fn pinned_commit(&self) -> Option<String> {
        self.hf
            .revision
            .as_deref()
            .filter(|r| is_commit(r))
            .map(str::to_ascii_lowercase)
    }

    /// The revision the reference names (the hub's default when none: `main` on the Hub).
    pub fn revision(&self) -> &str {
        self.hf
            .revision
            .as_deref()
            .unwrap_or(self.hub.default_revision)
    }

    /// The tag (or folder name) of the model at `commit`.
    pub fn commit_tag(&self, commit: &str) -> String {
        self.with_variant(commit.to_ascii_lowercase())
    }

    /// The tag (or ref object name) of the revision name `revision`.
    pub fn revision_tag(&self, revision: &str) -> String {
        let valid = revision.len() <= 100
            && revision.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
            && revision
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
        let name = if valid {
            revision.to_owned()
        } else {
            format!(
                "r_{}",
                &Digest::sha256_of(revision.as_bytes()).value()[..16]
            )
        };
        self.with_variant(name)
    }

    /// `oci://registry/repository:<tag>`; `None` for a bucket.
    pub fn oci(&self, tag: &str) -> Option<OciRef> {
        match &self.location {
            HfLocation::Oci {
                registry,
                repository,
            } => match format!("oci://{registry}/{repository}:{tag}").parse::<ModelRef>() {
                Ok(ModelRef::Oci(o)) => Some(o),
                _ => None,
            },
            HfLocation::Bucket { .. } => None,
        }
    }

    /// The folder `…/<tag>/` of a bucket; `None` for a registry.
    pub fn folder(&self, tag: &str) -> Option<ModelRef> {
        self.bucket_at(&format!("{tag}/"))
    }

    /// The object `…/refs/<revision tag>` holding the commit a revision name resolved to.
    pub fn ref_object(&self, revision: &str) -> Option<ModelRef> {
        self.bucket_at(&format!("refs/{}", self.revision_tag(revision)))
    }

    /// The folder `…/refs/` of the ref objects, for a push to write one.
    pub fn refs_folder(&self) -> Option<ModelRef> {
        self.bucket_at("refs/")
    }

    fn bucket_at(&self, rest: &str) -> Option<ModelRef> {
        match &self.location {
            HfLocation::Bucket { base } => parse_at(&format!("{base}/{rest}")),
            HfLocation::Oci { .. } => None,
        }
    }

    /// The repository's place in the mirror, for logs.
    pub fn describe(&self) -> String {
        match &self.location {
            HfLocation::Oci {
                registry,
                repository,
            } => format!("oci://{registry}/{repository}"),
            HfLocation::Bucket { base } => format!("{base}/"),
        }
    }
}

/// Whether `revision` is a full commit sha.
pub(super) fn is_commit(revision: &str) -> bool {
    revision.len() == 40 && revision.bytes().all(|b| b.is_ascii_hexdigit())
}

/// A Hub name as a registry's repository path component
/// (`[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`): lowercased; a name that is still no such
/// component keeps its letters and digits, joined by `-`, and gains `-` and a hash of the
/// name, so that two names never meet.
fn oci_component(name: &str) -> String {
    let lower = name.to_ascii_lowercase();
    if is_component(&lower) {
        return lower;
    }
    let words: Vec<&str> = lower
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .collect();
    let digest = Digest::sha256_of(name.as_bytes());
    let hash = &digest.value()[..8];
    if words.is_empty() {
        hash.to_owned()
    } else {
        format!("{}-{hash}", words.join("-"))
    }
}

fn is_component(s: &str) -> bool {
    let alnum = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    if !s.starts_with(alnum) || !s.ends_with(alnum) {
        return false;
    }
    s.split(alnum)
        .filter(|sep| !sep.is_empty())
        .all(|sep| matches!(sep, "." | "_" | "__") || sep.chars().all(|c| c == '-'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mirror::testing::{TestResult, context, parse, rules, targets};
    use crate::mirror::{MirrorContext, Target};

    #[test]
    fn hf_sources_map_to_a_structural_layout() -> TestResult {
        let m = rules(&[
            "hf:=oci://Registry.Internal/hf",
            "hf:=s3://models/hf/",
            "hf:TheOrg=oci://registry.internal/theorg-models",
        ]);
        assert_eq!(
            targets(&m, "hf:TheOrg/Llama-3.B@main"),
            [
                "oci://registry.internal/hf/theorg/llama-3.b",
                "s3://models/hf/theorg/llama-3.b/",
                "oci://registry.internal/theorg-models/llama-3.b",
            ]
        );
        // `hf:TheOrg` matches `TheOrg/…` only, whatever the case, not `TheOrganisation/…`.
        assert_eq!(targets(&m, "hf:theorg/x").len(), 3);
        assert_eq!(targets(&m, "hf:TheOrganisation/x").len(), 2);

        let mr: ModelRef = "hf:Org/Repo".parse()?;
        let Target::Hf(h) = &m.routes(&mr, &context())[0].target else {
            return Err("not an hf mirror".into());
        };
        let commit = "0123456789abcdef0123456789ABCDEF01234567";
        assert_eq!(h.revision(), "main");
        assert_eq!(h.pinned_commit(), None);
        assert_eq!(
            h.oci(&h.commit_tag(commit))
                .map(|o| ModelRef::Oci(o).to_string()),
            Some(format!(
                "oci://registry.internal/hf/org/repo:{}",
                commit.to_ascii_lowercase()
            ))
        );
        assert_eq!(h.revision_tag("main"), "main");
        let Target::Hf(s3) = &m.routes(&mr, &context())[1].target else {
            return Err("not an hf mirror".into());
        };
        assert_eq!(
            s3.folder(&s3.commit_tag(commit)).map(|s| s.to_string()),
            Some(format!(
                "s3://models/hf/org/repo/{}/",
                commit.to_ascii_lowercase()
            ))
        );
        assert_eq!(
            s3.ref_object("main").map(|s| s.to_string()),
            Some("s3://models/hf/org/repo/refs/main".to_owned())
        );
        let pinned: ModelRef = format!("hf:org/repo@{commit}").parse()?;
        let Target::Hf(p) = &m.routes(&pinned, &context())[0].target else {
            return Err("not an hf mirror".into());
        };
        assert_eq!(p.pinned_commit(), Some(commit.to_ascii_lowercase()));
        Ok(())
    }

    #[test]
    fn a_hub_s_repository_maps_into_the_folders_of_a_registered_store() -> TestResult {
        let m = rules(&[
            "hf:=gs://fleet/hf",
            "hf:=az://acct/container/hf/",
            "hf:=shelf:x",
            "modelscope:=gs+http://127.0.0.1:4443/fleet/ms",
            "modelscope:org=oci://registry.internal/ms",
        ]);
        // `shelf:` holds no folders: no place for a repository.
        assert_eq!(
            targets(&m, "hf:TheOrg/Repo"),
            [
                "gs://fleet/hf/theorg/repo/",
                "az://acct/container/hf/theorg/repo/"
            ]
        );
        let commit = "0123456789abcdef0123456789abcdef01234567";
        let hub = |reference: &str, n: usize| -> TestResult<HfMirror> {
            match &m.routes(&parse(reference), &context())[n].target {
                Target::Hf(h) => Ok(h.clone()),
                Target::Reference(_) => Err("not a hub's mirror".into()),
            }
        };
        let gs = hub("hf:org/repo", 0)?;
        assert_eq!(
            gs.folder(&gs.commit_tag(commit)).map(|r| r.to_string()),
            Some(format!("gs://fleet/hf/org/repo/{commit}/"))
        );
        assert_eq!(
            gs.ref_object("main").map(|r| r.to_string()),
            Some("gs://fleet/hf/org/repo/refs/main".to_owned())
        );
        assert_eq!(gs.oci("main"), None);
        let az = hub("hf:org/repo/model.gguf", 1)?;
        let tag = az.commit_tag(commit);
        assert!(tag.starts_with(&format!("{commit}-")), "{tag}");
        assert_eq!(
            az.folder(&tag).map(|r| r.to_string()),
            Some(format!("az://acct/container/hf/org/repo/{tag}/"))
        );

        assert_eq!(
            targets(&m, "modelscope:Org/Tiny"),
            [
                "gs+http://127.0.0.1:4443/fleet/ms/org/tiny/",
                "oci://registry.internal/ms/tiny"
            ]
        );
        let ms = hub("modelscope:org/tiny", 0)?;
        assert_eq!(ms.hub.scheme, "modelscope");
        assert_eq!(ms.revision(), "master");
        assert_eq!(
            ms.ref_object(ms.revision()).map(|r| r.to_string()),
            Some("gs+http://127.0.0.1:4443/fleet/ms/org/tiny/refs/master".to_owned())
        );
        let quant = hub("modelscope:org/tiny:Q4_K_M", 1)?;
        assert!(quant.revision_tag("master").starts_with("master-"));
        // A hub's rule does not match another hub's repositories.
        assert!(targets(&rules(&["modelscope:=gs://f/ms"]), "hf:org/tiny").is_empty());
        Ok(())
    }

    #[test]
    fn a_file_or_filters_give_the_mirror_a_name_of_its_own() -> TestResult {
        let m = rules(&["hf:=oci://registry.internal/hf"]);
        let tag = |reference: &str, include: &[&str]| -> TestResult<String> {
            let mr: ModelRef = reference.parse()?;
            let cx = MirrorContext {
                include: include.iter().map(|s| (*s).to_owned()).collect(),
                ..context()
            };
            match &m.routes(&mr, &cx)[0].target {
                Target::Hf(h) => Ok(h.revision_tag("main")),
                Target::Reference(_) => Err("not an hf mirror".into()),
            }
        };
        let whole = tag("hf:o/r", &[])?;
        let file = tag("hf:o/r/model.gguf", &[])?;
        let other_file = tag("hf:o/r/other.gguf", &[])?;
        let filtered = tag("hf:o/r", &["*.gguf"])?;
        let quant = tag("hf:o/r:Q4_K_M", &[])?;
        let other_quant = tag("hf:o/r:q8_0", &[])?;
        assert_eq!(whole, "main");
        assert!(file.starts_with("main-") && file.len() == "main-".len() + 12);
        assert_eq!(
            tag("hf:o/r:q4_k_m", &[])?,
            quant,
            "the tag's case is not part of it"
        );
        let all = [&whole, &file, &other_file, &filtered, &quant, &other_quant];
        for (i, a) in all.iter().enumerate() {
            for b in &all[i + 1..] {
                assert_ne!(a, b);
            }
        }
        assert_eq!(tag("hf:o/r/model.gguf", &[])?, file, "deterministic");
        Ok(())
    }

    #[test]
    fn names_a_registry_refuses_are_mapped_deterministically() {
        assert_eq!(oci_component("Llama-3"), "llama-3");
        assert_eq!(oci_component("a__b"), "a__b");
        assert!(is_component("a--b"));
        for odd in ["a..b", ".hidden", "x-", "a._b", "_x"] {
            let mapped = oci_component(odd);
            assert!(is_component(&mapped), "{odd} -> {mapped}");
            assert_eq!(mapped, oci_component(odd));
        }
        assert_ne!(oci_component("a..b"), oci_component("a.-b"));
        let m = rules(&["hf:=oci://r.internal/hf"]);
        let mr: ModelRef = "hf:org/repo@.odd".parse().expect("a reference");
        let Target::Hf(h) = &m.routes(&mr, &context())[0].target else {
            panic!("not an hf mirror");
        };
        let tag = h.revision_tag(".odd");
        assert!(tag.starts_with("r_") && h.oci(&tag).is_some(), "{tag}");
    }
}
