//! `gs://` references: objects and folders in Google Cloud Storage, a registered source (a
//! [`SourceKind`]), read through Cloud Storage's JSON API.
//!
//! 1. `gs://bucket/object` is one object; `gs://bucket/prefix/` is a folder: every object
//!    under the prefix, listed page after page, placed under its path relative to the prefix
//!    (checked before anything is written; `--include`/`--exclude` select). The grammar is
//!    checked before anything is built (`reference.rs`).
//! 2. Credentials are Google's Application Default Credentials ([`mp_credentials::gcp`]:
//!    `GOOGLE_APPLICATION_CREDENTIALS`, gcloud's ADC file, the metadata server, else
//!    anonymous), or none with `--no-sign-request`. Every request carries the token held at
//!    that moment, which is replaced before it expires and after a `401` or `403`.
//! 3. The endpoint is `--endpoint-url`, else `STORAGE_EMULATOR_HOST` (`host:port` or a URL),
//!    else Google's. An endpoint other than Google's is part of the id:
//!    `gs+http://host:port/bucket/object`. A token goes only to the configured endpoint; a
//!    reference naming another endpoint is read anonymously.
//! 4. The objects are a [listing](crate::pipeline::Listing), which the pipeline places through
//!    the [download engine](mp_transfer): parallel ranges of the generation listed (every
//!    range reads the same bytes), resumed when the URL (generation included) and the `ETag`
//!    are the same. Each object's CRC32C (else its MD5) is checked as the bytes stream; a
//!    mismatch is a verification failure. The expected digest is `--digest`; without it the
//!    model is `warn`, with the computed sha256 recorded.
//! 5. The files are published as one directory,
//!    `models/gs/<endpoint>/<bucket>/<object>/<version>/`; the model is that directory, or
//!    the one object.
//!
//! | module | its one job |
//! |---|---|
//! | this one | [`GcsKind`] and the source: a reference resolved into objects |
//! | `reference` | the grammar of `gs://` references, and their normal form |
//! | `session` | one fetch's endpoint and token; metadata, listings, refusals |
//! | `place` | the objects as a listing, each fetched with the token held at each request |

mod place;
mod reference;
mod resumable;
mod session;

use std::sync::Arc;

use catalog_core::{CatalogEntry, ModelRef, OtherRef, ParseRefError, SafeRelPath};

use self::place::Placed;
use self::reference::{GsRef, endpoint_id};
use self::session::Session;
use crate::error::{Error, Result, SourceFailure};
use crate::hf::glob::selected;
use crate::object_store::{Folder, MANIFEST_NAME, Manifest, PartSizes, Upload};
use crate::pipeline::{Claim, Listing, Source};
use crate::register::{SourceContext, SourceKind};
use crate::request::{FetchRequest, unsupported};
use mp_credentials::gcp::Scope;
use mp_progress::Progress;
use mp_transfer::{Downloader, Engine};

/// Google's endpoint, where neither `--endpoint-url` nor `STORAGE_EMULATOR_HOST` names one.
const GOOGLE_ENDPOINT: &str = "https://storage.googleapis.com";

/// The environment, as a lookup the credential chain can call from any thread.
pub type Env = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// The kind that registers `gs://` (and `gs+http(s)://`, an object on a named endpoint): this
/// crate registers it reading this process's environment; a test or a library user registers
/// one with an environment of its own ([`GcsKind::with_env`]).
#[derive(Clone)]
pub struct GcsKind {
    env: Option<Env>,
}

impl std::fmt::Debug for GcsKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GcsKind").finish_non_exhaustive()
    }
}

impl GcsKind {
    /// `STORAGE_EMULATOR_HOST` and the credential chain's variables, read from this process's
    /// environment.
    pub const FROM_ENV: GcsKind = GcsKind { env: None };

    /// The same, with the environment given as a lookup.
    pub fn with_env(env: Env) -> Self {
        GcsKind { env: Some(env) }
    }
}

impl SourceKind for GcsKind {
    fn schemes(&self) -> &'static [&'static str] {
        &["gs", "gs+http", "gs+https"]
    }

    fn check(&self, reference: &OtherRef) -> std::result::Result<(), ParseRefError> {
        GsRef::read(reference).map(drop)
    }

    fn mirror_shape(&self) -> crate::mirror::MirrorShape {
        crate::mirror::MirrorShape::Bucket
    }

    fn build(&self, context: &SourceContext<'_>) -> Result<Box<dyn Source + Send + Sync>> {
        let env: Env = self
            .env
            .clone()
            .unwrap_or_else(|| Arc::new(|name| std::env::var(name).ok()));
        let endpoint = match context.endpoint {
            Some(url) => url.clone(),
            None => endpoint(env("STORAGE_EMULATOR_HOST").as_deref())?,
        };
        Ok(Box::new(Gcs {
            endpoint,
            env,
            unsigned: context.no_sign_request,
            engine: context.engine.clone(),
            offline: context.offline,
            include: context.include.to_vec(),
            exclude: context.exclude.to_vec(),
            parallel: context.parallel_files,
            parts: context.upload_parts.unwrap_or(resumable::CHUNKS),
        }))
    }
}

/// The endpoint `STORAGE_EMULATOR_HOST` names (`host:port` over `http://`, or a URL), else
/// Google's.
fn endpoint(emulator: Option<&str>) -> Result<url::Url> {
    let text = match emulator.map(str::trim).filter(|e| !e.is_empty()) {
        Some(e) if e.contains("://") => e.to_owned(),
        Some(e) => format!("http://{e}"),
        None => GOOGLE_ENDPOINT.to_owned(),
    };
    url::Url::parse(&text).map_err(|e| Error::Source {
        failure: SourceFailure::Protocol,
        message: format!(
            "STORAGE_EMULATOR_HOST `{}` is no endpoint: {e}",
            catalog_core::printable(&text)
        ),
        hint: Some("write `host:port` or `http://host:port`".to_owned()),
    })
}

/// The `gs://` source.
struct Gcs {
    /// The configured endpoint.
    endpoint: url::Url,
    env: Env,
    unsigned: bool,
    engine: Engine,
    offline: bool,
    include: Vec<String>,
    exclude: Vec<String>,
    parallel: usize,
    /// How a push cuts a large file into the chunks of a resumable upload.
    parts: PartSizes,
}

impl Gcs {
    /// The folder `gs` names, for a push: written with a token of the read-write scope.
    fn push_folder(&self, gs: GsRef) -> Result<Box<dyn Folder + '_>> {
        if !gs.is_prefix() {
            return Err(Error::PushDestination {
                destination: format!("gs://{}/{}", gs.bucket, gs.object),
                reason: "it names an object, and a model goes into a folder".into(),
            });
        }
        if self.offline {
            return Err(Error::Offline {
                reference: format!("gs://{}/{}", gs.bucket, gs.object),
            });
        }
        if gs
            .endpoint
            .as_ref()
            .is_some_and(|named| *named != endpoint_id(&self.endpoint))
        {
            return Err(Error::PushDestination {
                destination: format!("gs://{}/{}", gs.bucket, gs.object),
                reason: format!(
                    "it names another endpoint than the configured `{}`",
                    endpoint_id(&self.endpoint)
                ),
            });
        }
        let engine = self.engine.get()?;
        let session = Session::start(
            engine,
            &self.endpoint,
            (self.unsigned, true, Scope::ReadWrite),
            &self.env,
        )?;
        Ok(Box::new(GcsFolder {
            session,
            engine,
            gs,
            parts: self.parts,
        }))
    }

    /// The objects of the folder `gs`: each under its path in the folder, the filters applied,
    /// and, when a push wrote the folder, each with the sha256 its manifest states.
    fn folder_objects(
        &self,
        engine: &Downloader,
        session: &Session,
        gs: &GsRef,
    ) -> Result<(Vec<Placed>, Option<Claim>)> {
        let mut listed = session.list(engine, &gs.bucket, &gs.object)?;
        // A folder a push wrote: its manifest states every file's sha256.
        let manifest_name = format!("{}{MANIFEST_NAME}", gs.object);
        let manifest = match listed.iter().position(|o| o.name == manifest_name) {
            Some(i) => {
                listed.remove(i);
                let body = session.read_small(engine, &gs.bucket, &manifest_name)?;
                Some(Manifest::parse(&body).map_err(|why| Error::Source {
                    failure: SourceFailure::Protocol,
                    message: format!(
                        "the manifest `{manifest_name}` in bucket `{}`: {why}",
                        gs.bucket
                    ),
                    hint: Some("push the model to this folder again".to_owned()),
                })?)
            }
            None => None,
        };
        let mut placed = Vec::new();
        for object in listed {
            let Some(rest) = object.name.strip_prefix(&gs.object) else {
                continue;
            };
            // A zero-byte "folder" marker is no file.
            if rest.is_empty() || rest.ends_with('/') {
                continue;
            }
            // Checked before anything is written: a hostile name refuses the folder.
            let rel = SafeRelPath::new(rest.to_owned())?;
            if manifest.is_some() || selected(rel.as_str(), &self.include, &self.exclude) {
                placed.push(Placed {
                    rel,
                    object,
                    sha256: None,
                });
            }
        }
        if let Some(manifest) = &manifest {
            let stated: Vec<_> = {
                let vouched = manifest
                    .vouch(placed.iter().map(|p| &p.rel))
                    .map_err(|why| Error::Source {
                        failure: SourceFailure::Protocol,
                        message: format!(
                            "the folder `{}` in bucket `{}` disagrees with its manifest: {why}",
                            gs.object, gs.bucket
                        ),
                        hint: Some("push the model to this folder again".to_owned()),
                    })?;
                placed.iter().map(|p| vouched[&p.rel].clone()).collect()
            };
            for (p, sha256) in placed.iter_mut().zip(stated) {
                p.sha256 = Some(sha256);
            }
            placed.retain(|p| selected(p.rel.as_str(), &self.include, &self.exclude));
        }
        if placed.is_empty() {
            return Err(Error::Source {
                failure: SourceFailure::NotFound,
                message: format!(
                    "no object under `{}` in bucket `{}` at `{}`{}",
                    gs.object,
                    gs.bucket,
                    session.endpoint,
                    if self.include.is_empty() && self.exclude.is_empty() {
                        ""
                    } else {
                        " matches the include/exclude patterns"
                    }
                ),
                hint: Some(
                    "check the prefix (it ends with `/`), and the `--include`/`--exclude` patterns"
                        .to_owned(),
                ),
            });
        }
        Ok((placed, manifest.and_then(Claim::from_manifest)))
    }

    /// A session that reads `gs`: at the configured endpoint with its token, or anonymously at
    /// another endpoint the reference names.
    fn reader(&self, engine: &Downloader, gs: &GsRef) -> Result<Arc<Session>> {
        let configured = endpoint_id(&self.endpoint);
        let (base, trusted) = match &gs.endpoint {
            Some(named) if *named != configured => (
                url::Url::parse(named).map_err(|e| Error::Source {
                    failure: SourceFailure::Protocol,
                    message: format!("`{named}` is no endpoint: {e}"),
                    hint: None,
                })?,
                false,
            ),
            _ => (self.endpoint.clone(), true),
        };
        Session::start(
            engine,
            &base,
            (self.unsigned, trusted, Scope::ReadOnly),
            &self.env,
        )
    }

    fn gs(reference: &ModelRef) -> Result<GsRef> {
        let ModelRef::Other(other) = reference else {
            return Err(unsupported(reference));
        };
        Ok(GsRef::read(other)?)
    }

    /// Whether the configured endpoint is Google's, which ids do not name.
    fn is_google(&self) -> bool {
        self.endpoint.host_str() == Some("storage.googleapis.com")
    }
}

impl Source for Gcs {
    fn name(&self) -> &'static str {
        "gcs"
    }

    fn check(&self, reference: &OtherRef) -> std::result::Result<(), ParseRefError> {
        GsRef::read(reference).map(drop)
    }

    fn resolve<'s>(&'s self, req: &FetchRequest<'_>) -> Result<Listing<'s>> {
        let gs = Self::gs(req.reference)?;
        if self.offline {
            return Err(Error::Offline {
                reference: req.reference.redacted(),
            });
        }
        let engine = self.engine.get()?;
        let session = self.reader(engine, &gs)?;
        let (objects, claim) = if gs.is_prefix() {
            self.folder_objects(engine, &session, &gs)?
        } else {
            let object = session.object(engine, &gs.bucket, &gs.object)?;
            let name = gs.object.rsplit('/').next().unwrap_or(&gs.object);
            let one = Placed {
                rel: SafeRelPath::file_name(name)?,
                object,
                sha256: None,
            };
            (vec![one], None)
        };
        self.listing(req, &gs, &session, objects, claim)
    }

    /// The whole of the small object `location` names (a mirror's ref object).
    fn read_small(&self, location: &ModelRef, limit: usize) -> Result<Vec<u8>> {
        let gs = Self::gs(location)?;
        if self.offline {
            return Err(Error::Offline {
                reference: location.redacted(),
            });
        }
        let engine = self.engine.get()?;
        let session = self.reader(engine, &gs)?;
        let body = session.read_small(engine, &gs.bucket, &gs.object)?;
        if body.len() > limit {
            return Err(Error::Source {
                failure: SourceFailure::Protocol,
                message: format!(
                    "object `{}` in bucket `{}` holds {} bytes, more than the {limit} expected",
                    gs.object,
                    gs.bucket,
                    body.len()
                ),
                hint: None,
            });
        }
        Ok(body)
    }

    /// The reference with the configured endpoint in it, when that is not Google's: one
    /// bucket name on two servers is two models.
    fn complete(&self, reference: &ModelRef) -> Option<ModelRef> {
        let gs = Self::gs(reference).ok()?;
        let normal = if gs.endpoint.is_none() && !self.is_google() {
            GsRef {
                endpoint: Some(endpoint_id(&self.endpoint)),
                ..gs
            }
        } else {
            gs
        };
        let other = normal.to_other()?;
        let completed = ModelRef::Other(other);
        (completed != *reference).then_some(completed)
    }

    fn folder<'s>(&'s self, destination: &ModelRef) -> Option<Result<Box<dyn Folder + 's>>> {
        let gs = Self::gs(destination).ok()?;
        Some(self.push_folder(gs))
    }

    fn accepts(&self, entry: &CatalogEntry) -> bool {
        let Some(gs) = entry
            .source
            .split_once(':')
            .and_then(|(scheme, rest)| OtherRef::new(scheme, rest).ok())
            .and_then(|other| GsRef::read(&other).ok())
        else {
            return true;
        };
        if !gs.is_prefix() {
            return true;
        }
        let (include, exclude) = entry
            .provenance
            .as_ref()
            .map_or((&[][..], &[][..]), |p| (&p.include[..], &p.exclude[..]));
        include == self.include.as_slice() && exclude == self.exclude.as_slice()
    }
}

/// A folder of a bucket, as a push writes it: each object one media upload, or from
/// [`PartSizes::from`] on a resumable upload (`resumable.rs`).
struct GcsFolder<'s> {
    session: Arc<Session>,
    engine: &'s Downloader,
    gs: GsRef,
    parts: PartSizes,
}

impl Folder for GcsFolder<'_> {
    fn describe(&self) -> String {
        format!("gs://{}/{}", self.gs.bucket, self.gs.object)
    }

    fn put_file(&self, name: &str, file: &Upload<'_>, progress: &Arc<dyn Progress>) -> Result<()> {
        let object = format!("{}{name}", self.gs.object);
        if file.size() >= self.parts.from && file.size() > 0 {
            return resumable::upload(
                self.engine,
                &self.session,
                &self.gs.bucket,
                &object,
                file.file(),
                self.parts.size,
                progress,
            );
        }
        let rate = self.engine.config().rate_limit.clone();
        self.session
            .upload(self.engine, &self.gs.bucket, &object, &|| {
                // What an earlier attempt reported is void.
                progress.restart();
                let (body, check) = file.body(Arc::clone(progress), rate.as_ref());
                (body, file.size(), Some(check))
            })
    }

    fn put_bytes(&self, name: &str, body: &[u8]) -> Result<()> {
        let object = format!("{}{name}", self.gs.object);
        self.session
            .upload(self.engine, &self.gs.bucket, &object, &|| {
                (body.to_vec().into(), body.len() as u64, None)
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_emulator_host_is_a_host_over_http_or_a_url_and_google_otherwise() -> Result<()> {
        assert_eq!(endpoint(None)?.as_str(), "https://storage.googleapis.com/");
        assert_eq!(
            endpoint(Some("127.0.0.1:4443"))?.as_str(),
            "http://127.0.0.1:4443/"
        );
        assert_eq!(
            endpoint(Some("https://gcs.internal:8443"))?.as_str(),
            "https://gcs.internal:8443/"
        );
        Ok(())
    }

    #[test]
    fn references_are_refused_before_anything_is_built_in_gs_words() {
        let err = crate::registered::parse_ref("gs://bucket").expect_err("no object");
        assert_eq!(
            err.to_string(),
            "invalid model reference `gs://bucket`: it names bucket `bucket` but no object in it"
        );
        assert!(
            err.hint()
                .is_some_and(|h| h.contains("gs://bucket/prefix/"))
        );
        assert!(crate::registered::parse_ref("gs://bucket/a/b.gguf").is_ok());
        assert!(crate::registered::parse_ref("gs+http://127.0.0.1:1/bkt/x/").is_ok());
    }
}
