//! [`S3Fetcher`]: `s3://` references, objects and folders in S3-compatible object stores.
//!
//! 1. Credentials come from the chain the AWS SDKs use ([`mp_credentials::aws`]), or none with
//!    `--no-sign-request`. Every request is signed afresh (a presigned URL, with `rusty-s3`), so
//!    a long download's later ranges carry a fresh signature, and credentials that expire in
//!    the middle of it are fetched again.
//! 2. `s3://bucket/key` is one object: a `HEAD` (with `x-amz-checksum-mode: ENABLED`) gives its
//!    size, `ETag`, `Last-Modified` and, when it has one, its full-object sha256 checksum.
//!    `s3://bucket/prefix/` is a folder: `ListObjectsV2`, page after page, gives every object
//!    under the prefix, placed under its path relative to the prefix (checked before anything
//!    is written; `--include`/`--exclude` select), and a `HEAD` of each gives its checksum.
//! 3. The objects are a [listing](crate::pipeline::Listing), which the pipeline places: each
//!    from the content-addressed store when its sha256 is known and there, else through the
//!    [download engine](mp_transfer): parallel ranges, resume (validated by `ETag` and
//!    `Last-Modified`), stall detection, retries. Every byte is hashed; the expected digest is
//!    `--digest`, else the object's sha256 checksum; without either the entry is `warn` with
//!    the computed sha256 recorded.
//! 4. A folder with a manifest, `<prefix>.model-provisioner.json` (what [`S3Fetcher::push`]
//!    writes, last), is verified against it instead: the manifest is no model file, it must
//!    name exactly the listed objects, and each object's expected digest is the sha256 it
//!    states (no `HEAD` is needed). Every file then has a stated digest, so the folder passes
//!    without `--digest`.
//! 5. The files are published as one directory, `models/s3/<endpoint>/<bucket>/<key>/<version>/`;
//!    the model is that directory, or the one object.
//!
//! The endpoint (when it is not AWS's) is part of the id: `s3+http://host:port/bucket/key`.
//! Credentials never appear in ids, logs, errors, the index or provenance.
//!
//! | module | its one job |
//! |---|---|
//! | this one | [`S3Fetcher`] and [`S3Options`]: the fetch of an object or a folder |
//! | [`mp_credentials::aws`] | the AWS configuration and credential chain |
//! | `session` | one fetch's or push's credentials, signing, request loop and refusals |
//! | `list` | a folder's objects, page after page, and its manifest held against them |
//! | `place` | the objects as a listing for the [pipeline](crate::pipeline), each fetched by a presigned request |
//! | `push` | the writes: [`S3Fetcher::push`], [`S3Fetcher::put_object`] |

mod list;
mod place;
mod push;
mod session;

use std::sync::Arc;

use catalog_core::{CatalogEntry, Digest, ModelRef, S3Ref, SafeRelPath};
use rusty_s3::{Bucket, UrlStyle};

pub use self::push::PushReport;
use crate::error::{Error, Result};
use crate::hf::glob::selected;
pub use crate::object_store::{MANIFEST_NAME, Manifest, ManifestFile};
use crate::parallel::in_parallel;
use crate::pipeline::{Listing, Source};
use crate::request::{FetchRequest, unsupported};
use mp_credentials::aws::S3Config;
use mp_transfer::{DownloadConfig, Downloader, Engine};

/// The environment, as a lookup the credential chain can call from any thread.
pub type Env = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// What to fetch from a folder, and how.
#[derive(Debug, Clone)]
pub struct S3Options {
    /// For a folder: only objects whose path under the prefix matches one of these.
    pub include: Vec<String>,
    /// For a folder: no object whose path under the prefix matches one of these.
    pub exclude: Vec<String>,
    /// Objects fetched at once.
    pub parallel_files: usize,
    /// Make no network request: fail for anything not in the catalog.
    pub offline: bool,
    /// How a push cuts a large file into the parts of a multipart upload, instead of S3's own
    /// sizes (parts of 16 MiB from 64 MiB on): what
    /// [`ProvisionerBuilder::upload_parts`](crate::ProvisionerBuilder::upload_parts) sets.
    pub upload_parts: Option<crate::object_store::PartSizes>,
}

impl Default for S3Options {
    fn default() -> Self {
        S3Options {
            include: Vec::new(),
            exclude: Vec::new(),
            parallel_files: crate::request::PARALLEL_FILES,
            offline: false,
            upload_parts: None,
        }
    }
}

/// Fetches `s3://` references. See the [module docs](self).
pub struct S3Fetcher {
    /// Read from the environment on first use (so that nothing but an `s3://` reference
    /// pays for reading the AWS files); `None` when that configuration is broken: every fetch
    /// then says why.
    config: std::sync::OnceLock<Option<S3Config>>,
    options: S3Options,
    env: Env,
    engine: Engine,
}

impl std::fmt::Debug for S3Fetcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Fetcher")
            .field("config", &self.config)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

/// One object to fetch.
#[derive(Debug, Clone)]
struct Object {
    key: String,
    /// Where it goes in the model's directory.
    rel: SafeRelPath,
    size: Option<u64>,
    etag: Option<String>,
    /// Its full-object sha256 checksum, when it has one.
    sha256: Option<Digest>,
}

impl S3Fetcher {
    /// A fetcher with `config`, reading credentials from this process's environment,
    /// downloading with `download`.
    pub fn new(config: S3Config, options: S3Options, download: DownloadConfig) -> Self {
        S3Fetcher::with_engine(config, options, Engine::new(download))
    }

    /// A fetcher downloading with `engine`, shared with other fetchers.
    pub fn with_engine(config: S3Config, options: S3Options, engine: Engine) -> Self {
        S3Fetcher {
            config: std::sync::OnceLock::from(Some(config)),
            options,
            env: Arc::new(|name| std::env::var(name).ok()),
            engine,
        }
    }

    /// A fetcher configured from this process's environment ([`S3Config::from_env`]). A broken
    /// configuration (a profile that does not exist, say) fails only `s3://` fetches, each
    /// with the reason.
    pub fn from_env(options: S3Options, engine: Engine) -> Self {
        S3Fetcher {
            config: std::sync::OnceLock::new(),
            options,
            env: Arc::new(|name| std::env::var(name).ok()),
            engine,
        }
    }

    /// The configuration, or the error that keeps it from being read.
    fn config(&self) -> Result<&S3Config> {
        match self.loaded() {
            Some(c) => Ok(c),
            None => Err(Error::S3Credentials(
                S3Config::from_env(&*self.env).err().unwrap_or(
                    mp_credentials::aws::CredentialError::NotFound { tried: Vec::new() },
                ),
            )),
        }
    }

    /// The configuration, read from the environment now if this is its first use.
    fn loaded(&self) -> Option<&S3Config> {
        self.config
            .get_or_init(|| {
                S3Config::from_env(&*self.env)
                    .inspect_err(|e| tracing::debug!(error = %e, "the S3 configuration is broken"))
                    .ok()
            })
            .as_ref()
    }

    /// The same, with the environment the credential chain reads given as a lookup.
    #[must_use]
    pub fn with_env(mut self, env: Env) -> Self {
        self.env = env;
        self
    }

    fn engine(&self) -> Result<&Downloader> {
        Ok(self.engine.get()?)
    }

    /// The endpoint `s3` is fetched from: its own, else the configured one, else AWS's for the
    /// region.
    fn endpoint(config: &S3Config, s3: &S3Ref) -> Result<url::Url> {
        let text = match (&s3.endpoint, &config.endpoint) {
            (Some(e), _) => e.clone(),
            (None, Some(e)) => e.to_string(),
            (None, None) => format!("https://s3.{}.amazonaws.com", config.region),
        };
        url::Url::parse(&text).map_err(|e| {
            Error::Transfer(mp_transfer::Error::Setup {
                what: "make a URL of the S3 endpoint",
                source: Box::new(e),
            })
        })
    }

    fn bucket(config: &S3Config, s3: &S3Ref, endpoint: &url::Url) -> Result<Bucket> {
        // A reference that names its own endpoint is a custom one: path style, as for any
        // endpoint but AWS's, unless the configuration asks otherwise for that same endpoint.
        let configured = config.endpoint.as_ref().map(endpoint_id);
        let path_style = if s3.endpoint.is_some() && s3.endpoint != configured {
            true
        } else {
            config.path_style
        };
        let style = if path_style {
            UrlStyle::Path
        } else {
            UrlStyle::VirtualHost
        };
        Bucket::new(
            endpoint.clone(),
            style,
            s3.bucket.clone(),
            config.region.clone(),
        )
        .map_err(|e| {
            Error::Transfer(mp_transfer::Error::Setup {
                what: "address the S3 bucket",
                source: format!("{e:?}").into(),
            })
        })
    }

    /// The listing of one object, or of a folder's objects (held against its manifest when it
    /// has one, else each with the checksum its `HEAD` states).
    fn resolve_s3<'s>(&'s self, req: &FetchRequest<'_>, s3: &S3Ref) -> Result<Listing<'s>> {
        if self.options.offline {
            return Err(Error::Offline {
                reference: req.reference.redacted(),
            });
        }
        let config = self.config()?;
        let engine = self.engine()?;
        let endpoint = Self::endpoint(config, s3)?;
        let bucket = Self::bucket(config, s3, &endpoint)?;
        let session = Arc::new(self.session(config, &endpoint, bucket, engine));
        engine.block_on(session.start(engine.client()))?;
        let (objects, manifest) = if s3.is_prefix() {
            let mut listed = engine.block_on(session.list(engine.client(), &s3.key))?;
            let manifest_key = format!("{}{MANIFEST_NAME}", s3.key);
            let manifest = match listed.iter().position(|o| o.key == manifest_key) {
                Some(at) => {
                    listed.remove(at);
                    let manifest =
                        engine.block_on(session.manifest(engine.client(), &manifest_key))?;
                    session.vouch(&manifest, &mut listed)?;
                    Some(manifest)
                }
                None => None,
            };
            let selected: Vec<Object> = listed
                .into_iter()
                .filter(|o| selected(o.rel.as_str(), &self.options.include, &self.options.exclude))
                .collect();
            if selected.is_empty() {
                return Err(Error::S3NotFound {
                    what: format!(
                        "no object under `{}` in bucket `{}` at `{}` matches",
                        s3.key, s3.bucket, session.endpoint
                    ),
                });
            }
            if manifest.is_some() {
                // The manifest states every digest: no object needs a `HEAD`.
                (selected, manifest)
            } else {
                let headed = in_parallel(selected, self.options.parallel_files * 2, |o| {
                    let head = engine.block_on(session.head(engine.client(), &o.key))?;
                    Ok(Object {
                        size: head.size.or(o.size),
                        etag: head.etag.or(o.etag),
                        sha256: head.sha256,
                        ..o
                    })
                })?;
                (headed, None)
            }
        } else {
            let head = engine.block_on(session.head(engine.client(), &s3.key))?;
            let name = s3.key.rsplit('/').next().unwrap_or(&s3.key);
            let object = Object {
                key: s3.key.clone(),
                rel: SafeRelPath::file_name(name)?,
                size: head.size,
                etag: head.etag,
                sha256: head.sha256,
            };
            (vec![object], None)
        };
        Ok(self.listing(req, s3, &session, objects, manifest))
    }
}

impl Source for S3Fetcher {
    fn name(&self) -> &'static str {
        "s3"
    }

    fn resolve<'s>(&'s self, req: &FetchRequest<'_>) -> Result<Listing<'s>> {
        match req.reference {
            ModelRef::S3(s3) => self.resolve_s3(req, s3),
            other => Err(unsupported(other)),
        }
    }

    fn read_small(&self, location: &ModelRef, limit: usize) -> Result<Vec<u8>> {
        let ModelRef::S3(s3) = location else {
            return Err(unsupported(location));
        };
        if self.options.offline {
            return Err(Error::Offline {
                reference: location.redacted(),
            });
        }
        let config = self.config()?;
        let engine = self.engine()?;
        let endpoint = Self::endpoint(config, s3)?;
        let bucket = Self::bucket(config, s3, &endpoint)?;
        let session = self.session(config, &endpoint, bucket, engine);
        engine.block_on(async {
            session.start(engine.client()).await?;
            session.read_small(engine.client(), &s3.key, limit).await
        })
    }

    fn complete(&self, reference: &ModelRef) -> Option<ModelRef> {
        let ModelRef::S3(s3) = reference else {
            return None;
        };
        if s3.endpoint.is_some() {
            return None;
        }
        let endpoint = self.loaded()?.endpoint.as_ref()?;
        if is_aws(endpoint) {
            return None;
        }
        Some(ModelRef::S3(S3Ref {
            endpoint: Some(endpoint_id(endpoint)),
            ..s3.clone()
        }))
    }

    fn accepts(&self, entry: &CatalogEntry) -> bool {
        let Ok(ModelRef::S3(s3)) = entry.source.parse::<ModelRef>() else {
            return true;
        };
        if !s3.is_prefix() {
            return true;
        }
        let (include, exclude) = entry
            .provenance
            .as_ref()
            .map_or((&[][..], &[][..]), |p| (&p.include[..], &p.exclude[..]));
        include == self.options.include.as_slice() && exclude == self.options.exclude.as_slice()
    }
}

/// `scheme://host[:port]` of an endpoint, as ids write it.
fn endpoint_id(url: &url::Url) -> String {
    let host = url.host_str().unwrap_or_default();
    match url.port() {
        Some(port) => format!("{}://{host}:{port}", url.scheme()),
        None => format!("{}://{host}", url.scheme()),
    }
}

/// Whether `url` is one of AWS's own endpoints, which ids do not name.
fn is_aws(url: &url::Url) -> bool {
    url.host_str()
        .is_some_and(|h| h == "amazonaws.com" || h.ends_with(".amazonaws.com"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_are_named_without_default_ports_and_aws_is_recognised()
    -> Result<(), url::ParseError> {
        assert_eq!(
            endpoint_id(&"http://127.0.0.1:9000/".parse()?),
            "http://127.0.0.1:9000"
        );
        assert_eq!(
            endpoint_id(&"https://minio.example:443".parse()?),
            "https://minio.example"
        );
        assert!(is_aws(&"https://s3.eu-west-1.amazonaws.com".parse()?));
        assert!(!is_aws(&"https://amazonaws.com.example".parse()?));
        Ok(())
    }
}
