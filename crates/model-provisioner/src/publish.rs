//! [`Publisher`]: how a model of the catalog is published to a registry or a bucket, for other
//! machines to pull, verified; [`ModelProvisioner::push`] and [`ModelProvisioner::mirror`]
//! (in `push.rs`) are its callers.
//!
//! ```text
//! push    <model> oci://registry/repo:tag     a ModelPack artifact        (oci/push.rs)
//!         <model> s3://bucket/prefix/         files, then a manifest      (s3/push.rs)
//! mirror  hf:org/repo@rev at commit C (or a registered hub's, `modelscope:org/repo@rev`), under
//!         PREFIX, as `ensure --mirror 'hf:=PREFIX'` looks:
//!           oci://registry/path    PREFIX/org/repo:C, and a tag for `rev`
//!           s3://bucket/path       PREFIX/org/repo/C/, and the object PREFIX/org/repo/refs/rev
//!           gs://bucket/path, …    the same, in the folders of a registered store
//!         any other model where the rule `<its registry or bucket>=PREFIX` maps it
//! ```
//!
//! [`Publisher::push`] is the one place a push is dispatched by the destination's scheme. Its
//! registry and bucket clients are the provisioner's own fetchers' (one configuration and one
//! download engine each, the S3 CA bundle included), so a push reaches a server as a pull does.
//! The verification is theirs: every byte sent is hashed on its way out, and nothing is
//! published unless each file matches the catalog's digests. A model found to have changed is
//! then verified again, which records it as failing, as [`ModelProvisioner::verify`] does, so
//! that it is no longer handed out as it was.

use catalog_core::{CacheLayout, CatalogEntry, Digest, HfRef, ModelRef};

use crate::error::{Error, Result};
use crate::fetcher::ModelFetcher;
use crate::mirror::{HfLocation, HfMirror, Hub, MirrorContext, MirrorShape, Mirrors, Target};
use crate::request::unsupported;
use crate::sign::Sign;
use mp_progress::Reporter;

/// What [`ModelProvisioner::push`](crate::ModelProvisioner::push) did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pushed {
    /// The model's id.
    pub id: String,
    /// Where it went, without credentials.
    pub destination: String,
    /// To a registry: the digest of the manifest pushed; `oci://registry/repo@<digest>` pulls
    /// exactly it.
    pub manifest_digest: Option<Digest>,
    /// To a bucket: the key of the manifest object, written last.
    pub manifest_key: Option<String>,
    /// The model's files.
    pub files: usize,
    /// Bytes sent.
    pub bytes_uploaded: u64,
    /// To a registry: the blobs it had already (or mounted from the repository the model came
    /// from), so not sent.
    pub blobs_skipped: Option<usize>,
}

/// What [`ModelProvisioner::mirror`](crate::ModelProvisioner::mirror) did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mirrored {
    /// The model's id.
    pub id: String,
    /// The mirror prefix, as given (trimmed).
    pub mirror: String,
    /// The rule under which `ensure` finds the model there, e.g. `hf:=oci://registry/hf`.
    pub rule: String,
    /// Every place written: tags, folders, ref objects.
    pub destinations: Vec<String>,
    /// The model's files.
    pub files: usize,
    /// Bytes sent, over every destination.
    pub bytes_uploaded: u64,
}

/// The registry and bucket clients pushes go through.
#[derive(Debug)]
pub(crate) struct Publisher {
    #[cfg(feature = "oci")]
    pub(crate) oci: Option<crate::oci::OciFetcher>,
    #[cfg(feature = "s3")]
    pub(crate) s3: Option<crate::access::S3Client>,
    /// The registry `ollama:` references are pulled from: the source side of their rule.
    pub(crate) ollama_registry: String,
    /// What the references of each registered scheme name (a hub's, a store's folders).
    pub(crate) shapes: Vec<(&'static str, MirrorShape)>,
    /// What pushes sign the models they publish with, if anything.
    pub(crate) sign: Sign,
}

impl Default for Publisher {
    /// No client: every push fails, naming what it would need.
    fn default() -> Self {
        Publisher {
            #[cfg(feature = "oci")]
            oci: None,
            #[cfg(feature = "s3")]
            s3: None,
            ollama_registry: catalog_core::OLLAMA_REGISTRY.to_owned(),
            shapes: Vec::new(),
            sign: Sign::default(),
        }
    }
}

impl Publisher {
    /// Pushes `entry` to `destination`, a registry's tag or a bucket's folder: the one place a
    /// push is dispatched by scheme.
    pub(crate) fn push(
        &self,
        layout: &CacheLayout,
        entry: &CatalogEntry,
        destination: &ModelRef,
        reporter: &dyn Reporter,
        fetcher: &dyn ModelFetcher,
    ) -> Result<Pushed> {
        let pushed = |files, bytes_uploaded| Pushed {
            id: entry.id.clone(),
            destination: destination.redacted(),
            manifest_digest: None,
            manifest_key: None,
            files,
            bytes_uploaded,
            blobs_skipped: None,
        };
        match destination {
            #[cfg(feature = "oci")]
            ModelRef::Oci(oci) => {
                let client = self.oci.as_ref().ok_or_else(|| unsupported(destination))?;
                let r = client.push_signed(layout, entry, oci, reporter, &self.sign)?;
                Ok(Pushed {
                    manifest_digest: Some(r.manifest_digest),
                    blobs_skipped: Some(r.blobs_skipped),
                    ..pushed(r.files, r.bytes_uploaded)
                })
            }
            #[cfg(feature = "s3")]
            ModelRef::S3(s3) => {
                let client = self.s3.as_ref().ok_or_else(|| unsupported(destination))?;
                let r = client
                    .get()
                    .push_signed(layout, entry, s3, reporter, &self.sign)?;
                Ok(Pushed {
                    manifest_key: Some(r.manifest_key),
                    ..pushed(r.files, r.bytes_uploaded)
                })
            }
            #[cfg(not(feature = "oci"))]
            ModelRef::Oci(_) => Err(unsupported(destination)),
            #[cfg(not(feature = "s3"))]
            ModelRef::S3(_) => Err(unsupported(destination)),
            ModelRef::Other(_) => match fetcher.folder(destination) {
                Some(folder) => {
                    let r =
                        crate::object_store::push(&*folder?, layout, entry, reporter, &self.sign)?;
                    Ok(Pushed {
                        manifest_key: Some(r.manifest),
                        ..pushed(r.files, r.bytes_uploaded)
                    })
                }
                None => Err(Error::PushScheme {
                    destination: destination.redacted(),
                }),
            },
            _ => Err(Error::PushScheme {
                destination: destination.redacted(),
            }),
        }
    }

    /// Pushes `entry` under the mirror prefix `prefix`, where a rule to it finds it.
    pub(crate) fn mirror(
        &self,
        layout: &CacheLayout,
        entry: &CatalogEntry,
        prefix: &str,
        reporter: &dyn Reporter,
        fetcher: &dyn ModelFetcher,
    ) -> Result<Mirrored> {
        let schemes = fetcher.schemes();
        let source = ModelRef::parse_with(&entry.source, &schemes)
            .or_else(|_| ModelRef::parse_with(&entry.id, &schemes))?;
        let mut out = Mirrored {
            id: entry.id.clone(),
            mirror: prefix.to_owned(),
            rule: String::new(),
            destinations: Vec::new(),
            files: 0,
            bytes_uploaded: 0,
        };
        match self.context().hub_model(&source) {
            Some(hub) => self.mirror_hf(layout, entry, hub, reporter, fetcher, &mut out)?,
            None => self.mirror_by_rule(layout, entry, &source, reporter, fetcher, &mut out)?,
        }
        Ok(out)
    }

    /// What mirror rules are matched with.
    fn context(&self) -> MirrorContext {
        MirrorContext {
            ollama_registry: self.ollama_registry.clone(),
            shapes: self.shapes.clone(),
            ..MirrorContext::default()
        }
    }

    /// A hub's model: its commit's tag or folder, and its revision's tag or ref object.
    fn mirror_hf(
        &self,
        layout: &CacheLayout,
        entry: &CatalogEntry,
        (hub, hf): (Hub, HfRef),
        reporter: &dyn Reporter,
        fetcher: &dyn ModelFetcher,
        out: &mut Mirrored,
    ) -> Result<()> {
        let prefix = out.mirror.clone();
        let provenance = entry.provenance.as_ref();
        let commit = provenance
            .and_then(|p| p.resolved_revision.clone())
            .filter(|c| c.len() == 40 && c.bytes().all(|b| b.is_ascii_hexdigit()))
            .ok_or_else(|| Error::MirrorCommit {
                id: entry.id.clone(),
            })?;
        let (include, exclude) = provenance.map_or((Vec::new(), Vec::new()), |p| {
            (p.include.clone(), p.exclude.clone())
        });
        let hm = HfMirror::for_push(hub, &hf, &prefix, include, exclude).map_err(|e| match e {
            Error::MirrorRule(e) => Error::MirrorPrefix(e),
            other => other,
        })?;
        out.rule = format!("{}:={prefix}", hub.scheme);
        let nowhere = |place: String| Error::MirrorLocation {
            prefix: prefix.clone(),
            reference: place,
        };
        match &hm.location {
            HfLocation::Oci { .. } => {
                let mut tags = vec![hm.commit_tag(&commit)];
                if hm.pinned_commit().is_none() {
                    tags.push(hm.revision_tag(hm.revision()));
                }
                for tag in tags {
                    let dest = ModelRef::Oci(hm.oci(&tag).ok_or_else(|| nowhere(tag))?);
                    let r = self.push(layout, entry, &dest, reporter, fetcher)?;
                    out.files = r.files;
                    out.bytes_uploaded += r.bytes_uploaded;
                    out.destinations.push(dest.to_string());
                }
            }
            HfLocation::Bucket { .. } => {
                let tag = hm.commit_tag(&commit);
                let folder = hm.folder(&tag).ok_or_else(|| nowhere(tag))?;
                let r = self.push(layout, entry, &folder, reporter, fetcher)?;
                out.files = r.files;
                out.bytes_uploaded = r.bytes_uploaded;
                out.destinations.push(r.destination);
                if hm.pinned_commit().is_none()
                    && let Some(object) = hm.ref_object(hm.revision())
                {
                    let body = format!("{commit}\n");
                    let name = hm.revision_tag(hm.revision());
                    match (&object, hm.refs_folder()) {
                        (ModelRef::S3(s3), _) => self.put_ref(s3, body.as_bytes())?,
                        (_, Some(refs)) => match fetcher.folder(&refs) {
                            Some(folder) => folder?.put_bytes(&name, body.as_bytes())?,
                            None => {
                                return Err(Error::PushScheme {
                                    destination: refs.redacted(),
                                });
                            }
                        },
                        (_, None) => return Err(nowhere(name)),
                    }
                    out.destinations.push(object.redacted());
                }
            }
        }
        Ok(())
    }

    /// Writes the S3 object that says which commit a revision name resolved to.
    #[cfg(feature = "s3")]
    fn put_ref(&self, object: &catalog_core::S3Ref, body: &[u8]) -> Result<()> {
        let reference = ModelRef::S3(object.clone());
        let client = self.s3.as_ref().ok_or_else(|| unsupported(&reference))?;
        client.get().put_object(object, body)
    }

    #[cfg(not(feature = "s3"))]
    #[expect(clippy::unused_self, reason = "the same call with the feature on")]
    fn put_ref(&self, object: &catalog_core::S3Ref, _body: &[u8]) -> Result<()> {
        Err(unsupported(&ModelRef::S3(object.clone())))
    }

    /// Any other model: where the rule from its registry or bucket to the prefix maps it.
    fn mirror_by_rule(
        &self,
        layout: &CacheLayout,
        entry: &CatalogEntry,
        source: &ModelRef,
        reporter: &dyn Reporter,
        fetcher: &dyn ModelFetcher,
        out: &mut Mirrored,
    ) -> Result<()> {
        let source_prefix = match source {
            ModelRef::Oci(o) => format!("oci://{}", o.registry),
            ModelRef::Ollama(_) => format!("oci://{}", self.ollama_registry),
            ModelRef::S3(s) => match &s.endpoint {
                Some(endpoint) => format!("s3+{endpoint}/{}", s.bucket),
                None => format!("s3://{}", s.bucket),
            },
            ModelRef::Other(other) => store_prefix(&other.to_string()),
            _ => {
                return Err(Error::MirrorSource {
                    reference: source.redacted(),
                });
            }
        };
        // The source prefix ends at a name, so the mirror's does too: `s3://b/` would map
        // `s3://origin/m/` to `s3://b//m/`.
        out.rule = format!("{source_prefix}={}", out.mirror.trim_end_matches('/'));
        let mirrors = Mirrors::from_flags([&out.rule]).map_err(Error::MirrorPrefix)?;
        let context = self.context();
        let Some(Target::Reference(dest)) = mirrors
            .routes(source, &context)
            .into_iter()
            .next()
            .map(|r| r.target)
        else {
            return Err(Error::MirrorLocation {
                prefix: out.mirror.clone(),
                reference: source.redacted(),
            });
        };
        if !matches!(
            dest,
            ModelRef::Oci(_) | ModelRef::S3(_) | ModelRef::Other(_)
        ) {
            return Err(Error::MirrorScheme {
                destination: dest.redacted(),
            });
        }
        let r = self.push(layout, entry, &dest, reporter, fetcher)?;
        out.files = r.files;
        out.bytes_uploaded = r.bytes_uploaded;
        out.destinations.push(r.destination);
        Ok(())
    }
}

/// The prefix of a registered store's reference that names its bucket (or account), the
/// source side of the rule a model of it is mirrored under: its first name after the scheme
/// (`gs://bucket`, `drop:bucket`), after the endpoint when the scheme names one
/// (`gs+http://host:port/bucket`, as `s3+http://` does).
fn store_prefix(text: &str) -> String {
    let (scheme, rest) = text.split_once(':').unwrap_or((text, ""));
    let (slashes, rest) = match rest.strip_prefix("//") {
        Some(after) => ("//", after),
        None => ("", rest),
    };
    let names = if scheme.contains('+') { 2 } else { 1 };
    let kept: Vec<&str> = rest.split('/').take(names).collect();
    format!("{scheme}:{slashes}{}", kept.join("/"))
}

#[cfg(test)]
mod tests {
    use super::store_prefix;

    #[test]
    fn a_store_s_model_is_mirrored_under_its_bucket() {
        assert_eq!(store_prefix("gs://models/llm/x/"), "gs://models");
        assert_eq!(
            store_prefix("gs+http://127.0.0.1:4443/models/llm/x/"),
            "gs+http://127.0.0.1:4443/models"
        );
        assert_eq!(store_prefix("az://acct/c/m/"), "az://acct");
        assert_eq!(store_prefix("drop:drops/m/"), "drop:drops");
    }
}
