//! `az://` references: blobs and folders of Azure Blob Storage, a registered source (see
//! [`register`](crate::register)), fetched over the Blob service's REST API.
//!
//! ```text
//! az://account/container/path/to/blob         one blob
//! az://account/container/prefix/              a folder: every blob under the prefix
//! https://account.blob.core.windows.net/container/path[?SAS]
//!                                             the same, read as its `az://` reference
//! az+http://host:port/account/container/path  on another endpoint (Azurite), its id
//!
//! HEAD {endpoint}/{container}/{blob}                              size, ETag, Content-MD5
//! GET  {endpoint}/{container}?restype=container&comp=list&prefix=…&marker=…   page by page
//! GET  {endpoint}/{container}/{blob}   Range, If-Match: <ETag>    the bytes, by the engine
//! ```
//!
//! - The endpoint is `https://{account}.blob.core.windows.net`, or with `--endpoint-url` (or a
//!   connection string's `BlobEndpoint`) `{endpoint}/{account}`, Azurite's path style. An
//!   endpoint that is not Azure's is part of the id: `az+http://127.0.0.1:10000/account/…`.
//! - Credentials come from [`mp_credentials::azure`], in the SDKs' order; every request is
//!   authorised as it is sent (a `SharedKey` signature with its own date, the token in force).
//!   A SAS token in the reference's query is a credential: [`Source::complete`] takes it out
//!   of the reference before its id is taken, and the source keeps it for that reference's
//!   requests, so it reaches no id, log, error or index.
//! - A folder's blobs are placed under their paths relative to the prefix, each checked
//!   ([`SafeRelPath`]) before anything is written; `--include`/`--exclude` select.
//! - Bytes come through the engine: parallel ranges, resume, each range validated with
//!   `If-Match` against the blob's `ETag`. A blob's `Content-MD5`, where it has one, is checked
//!   as the bytes stream (a mismatch fails as a verification failure). The expected digest is
//!   `--digest`; without it the entry is `warn`, the sha256 recorded (an MD5 vouches for
//!   nothing).
//! - Files are published under `models/az/[<endpoint>/]<account>/<container>/<path>/<version>/`.

mod blocks;
mod reference;
mod session;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use catalog_core::{CatalogEntry, Digest, ModelRef, OtherRef, ParseRefError, SafeRelPath};
use reqwest::header::{HeaderMap, HeaderValue, IF_MATCH};
use reqwest::{Client, Method, RequestBuilder, StatusCode};

use self::reference::{AZURE_SUFFIX, BlobRef, read};
use self::session::{Props, Session, failure};
use crate::error::{Error, Result, SourceFailure};
use crate::hf::glob::selected;
use crate::object_store::{Folder, MANIFEST_NAME, Manifest, PartSizes, Upload};
use crate::pipeline::{Claim, ListedFile, Listing, Revision, Source, Stated};
use crate::register::{SourceContext, SourceKind};
use crate::request::FetchRequest;
use mp_credentials::Secret;
use mp_progress::Progress;
use mp_transfer::{BoxFuture, Checksum, Engine, RequestSource};

/// The environment, as a lookup the credential chain can call from any thread.
pub type AzureEnv = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// The kind that registers `az://` (and `az+http://`, `az+https://`): this crate registers it
/// reading this process's environment; a library user may register one reading another
/// ([`ProvisionerBuilder::source`](crate::ProvisionerBuilder::source)).
#[derive(Clone)]
pub struct AzureKind {
    env: Option<AzureEnv>,
}

impl std::fmt::Debug for AzureKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AzureKind")
            .field("env", &self.env.as_ref().map(|_| "given"))
            .finish()
    }
}

impl AzureKind {
    /// Credentials and endpoint from this process's environment, read when a provisioner is
    /// built and when a fetch starts.
    pub const FROM_ENV: AzureKind = AzureKind { env: None };

    /// Credentials and endpoint from `env` instead of this process's environment.
    pub fn with_env(env: AzureEnv) -> Self {
        AzureKind { env: Some(env) }
    }
}

impl SourceKind for AzureKind {
    fn schemes(&self) -> &'static [&'static str] {
        &["az", "az+http", "az+https"]
    }

    fn check(&self, reference: &OtherRef) -> std::result::Result<(), ParseRefError> {
        read(reference).map(drop)
    }

    fn claim(&self, reference: &ModelRef) -> Option<ModelRef> {
        reference::claim(reference)
    }

    fn mirror_shape(&self) -> crate::mirror::MirrorShape {
        crate::mirror::MirrorShape::Bucket
    }

    fn build(&self, context: &SourceContext<'_>) -> Result<Box<dyn Source + Send + Sync>> {
        let env: AzureEnv = self
            .env
            .clone()
            .unwrap_or_else(|| Arc::new(|name| std::env::var(name).ok()));
        let endpoint = match context.endpoint {
            Some(url) => Some(origin(url)),
            None => env("AZURE_STORAGE_CONNECTION_STRING")
                .and_then(|text| mp_credentials::azure::ConnectionString::parse(&text).ok())
                .and_then(|c| c.endpoint())
                .and_then(|e| url::Url::parse(&e).ok())
                .map(|u| origin(&u)),
        }
        .filter(|e| !is_azure(e));
        Ok(Box::new(Azure {
            env,
            endpoint,
            sas: Mutex::new(HashMap::new()),
            engine: context.engine.clone(),
            offline: context.offline,
            no_sign_request: context.no_sign_request,
            include: context.include.to_vec(),
            exclude: context.exclude.to_vec(),
            parallel: context.parallel_files,
            parts: context.upload_parts.unwrap_or(blocks::BLOCKS),
        }))
    }
}

/// `scheme://host[:port]` of `url`.
fn origin(url: &url::Url) -> String {
    url.origin().ascii_serialization()
}

/// Whether `endpoint` is one of Azure's own, which ids do not name.
fn is_azure(endpoint: &str) -> bool {
    endpoint.starts_with("https://") && endpoint.ends_with(AZURE_SUFFIX)
}

/// A blob to place: its name, its path in the model, its properties, and the sha256 its
/// folder's manifest states.
type Chosen = (String, SafeRelPath, Props, Option<Digest>);

/// The `az://` source.
struct Azure {
    env: AzureEnv,
    /// The endpoint named (`--endpoint-url`, a connection string's `BlobEndpoint`) when it is
    /// not Azure's own.
    endpoint: Option<String>,
    /// The SAS tokens taken out of references by `complete`, by the reference they left.
    sas: Mutex<HashMap<String, Secret>>,
    engine: Engine,
    offline: bool,
    no_sign_request: bool,
    include: Vec<String>,
    exclude: Vec<String>,
    parallel: usize,
    /// How a push cuts a large file into blocks.
    parts: PartSizes,
}

impl Azure {
    /// The reference read, with the SAS token it carried or that `complete` took out of it.
    fn blob_ref(&self, reference: &ModelRef) -> Result<BlobRef> {
        let ModelRef::Other(other) = reference else {
            return Err(crate::request::unsupported(reference));
        };
        let mut blob = read(other)?;
        if blob.sas.is_none() {
            blob.sas = self
                .sas
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .get(&blob.text())
                .cloned();
        }
        Ok(blob)
    }

    /// A session for `blob`'s container, with the credentials the chain finds for its account.
    fn session(&self, engine: &mp_transfer::Downloader, blob: &BlobRef) -> Result<Arc<Session>> {
        let env = &*self.env;
        let found = engine
            .block_on(mp_credentials::azure::resolve(
                engine.api_client(),
                &blob.account,
                blob.sas.clone(),
                self.no_sign_request,
                &|name| env(name),
            ))
            .map_err(|e| failure(SourceFailure::Denied, e.to_string(), &e.hint()))?;
        Ok(Arc::new(Session::new(
            &blob.account,
            &blob.container,
            Self::container_url(blob)?,
            found,
            engine.config().retry,
            engine.api_client().clone(),
        )))
    }

    /// The URL of `blob`'s container.
    fn container_url(blob: &BlobRef) -> Result<url::Url> {
        let text = match &blob.endpoint {
            Some(e) => format!("{e}/{}/{}", blob.account, blob.container),
            None => format!("https://{}{AZURE_SUFFIX}/{}", blob.account, blob.container),
        };
        url::Url::parse(&text).map_err(|e| {
            failure(
                SourceFailure::Protocol,
                format!("`{text}` makes no URL: {e}"),
                "check `--endpoint-url`",
            )
        })
    }

    /// The blobs the reference names: the one blob, or every one under the folder's prefix
    /// that the filters pass, each with its path in the model's directory.
    fn blobs(
        &self,
        engine: &mp_transfer::Downloader,
        session: &Session,
        blob: &BlobRef,
    ) -> Result<(Vec<Chosen>, Option<Claim>)> {
        let client = engine.api_client();
        if !blob.is_folder() {
            let props = engine.block_on(session.head(client, &blob.path))?;
            let name = blob.path.rsplit('/').next().unwrap_or(&blob.path);
            let one = (
                blob.path.clone(),
                SafeRelPath::file_name(name)?,
                props,
                None,
            );
            return Ok((vec![one], None));
        }
        let mut listed = engine.block_on(session.list(client, &blob.path))?;
        // A folder a push wrote: its manifest states every file's sha256.
        let manifest_name = format!("{}{MANIFEST_NAME}", blob.path);
        let manifest = match listed.iter().position(|(name, _)| *name == manifest_name) {
            Some(i) => {
                listed.remove(i);
                let body = engine.block_on(session.read_small(client, &manifest_name))?;
                Some(Manifest::parse(&body).map_err(|why| {
                    failure(
                        SourceFailure::Protocol,
                        format!(
                            "the manifest `{manifest_name}` in container `{}`: {why}",
                            blob.container
                        ),
                        "push the model to this folder again",
                    )
                })?)
            }
            None => None,
        };
        let mut chosen = Vec::new();
        for (name, props) in listed {
            let Some(rest) = name.strip_prefix(&blob.path) else {
                continue;
            };
            if rest.is_empty() || rest.ends_with('/') {
                continue;
            }
            // Checked before anything is written: one hostile name refuses the folder.
            let rel = SafeRelPath::new(rest.to_owned())?;
            if manifest.is_some() || selected(rel.as_str(), &self.include, &self.exclude) {
                chosen.push((name, rel, props, None));
            }
        }
        if let Some(manifest) = &manifest {
            let stated: Vec<Digest> = {
                let vouched = manifest
                    .vouch(chosen.iter().map(|(_, rel, _, _)| rel))
                    .map_err(|why| {
                        failure(
                            SourceFailure::Protocol,
                            format!(
                                "the folder `{}` in container `{}` disagrees with its manifest: {why}",
                                blob.path, blob.container
                            ),
                            "push the model to this folder again",
                        )
                    })?;
                chosen
                    .iter()
                    .map(|(_, rel, _, _)| vouched[rel].clone())
                    .collect()
            };
            for (c, sha256) in chosen.iter_mut().zip(stated) {
                c.3 = Some(sha256);
            }
            chosen.retain(|(_, rel, _, _)| selected(rel.as_str(), &self.include, &self.exclude));
        }
        if chosen.is_empty() {
            return Err(failure(
                SourceFailure::NotFound,
                format!(
                    "no blob under `{}` in container `{}` of account `{}` at `{}` matches",
                    blob.path, blob.container, blob.account, session.endpoint
                ),
                "check the folder's path, and the `--include`/`--exclude` patterns",
            ));
        }
        Ok((chosen, manifest.and_then(Claim::from_manifest)))
    }
}

impl Azure {
    /// The folder `blob` names, for a push.
    fn push_folder(&self, blob: BlobRef) -> Result<Box<dyn Folder + '_>> {
        if !blob.is_folder() {
            return Err(Error::PushDestination {
                destination: blob.text(),
                reason: "it names a blob, and a model goes into a folder".into(),
            });
        }
        if self.offline {
            return Err(Error::Offline {
                reference: blob.text(),
            });
        }
        let engine = self.engine.get()?;
        let session = self.session(engine, &blob)?;
        Ok(Box::new(AzureFolder {
            session,
            engine,
            blob,
            parts: self.parts,
        }))
    }
}

/// A folder of a container, as a push writes it: each file one `Put Blob`, or from
/// [`PartSizes::from`] on blocks committed by a block list (`blocks.rs`).
struct AzureFolder<'s> {
    session: Arc<Session>,
    engine: &'s mp_transfer::Downloader,
    blob: BlobRef,
    parts: PartSizes,
}

/// The largest blob one `Put Blob` writes (5000 MiB, since the service's 2019-12-12 version):
/// a larger file goes in blocks whatever the sizes asked.
const PUT_BLOB_LIMIT: u64 = 5000 << 20;

impl Folder for AzureFolder<'_> {
    fn describe(&self) -> String {
        self.blob.text()
    }

    fn put_file(&self, name: &str, file: &Upload<'_>, progress: &Arc<dyn Progress>) -> Result<()> {
        let blob = format!("{}{name}", self.blob.path);
        if file.size() >= self.parts.from || file.size() > PUT_BLOB_LIMIT {
            return blocks::put_blocks(
                self.engine,
                &self.session,
                &blob,
                file.file(),
                self.parts.size,
                progress,
            );
        }
        let rate = self.engine.config().rate_limit.clone();
        self.engine
            .block_on(self.session.put(self.engine.client(), &blob, &|| {
                // What an earlier attempt reported is void.
                progress.restart();
                let (body, check) = file.body(Arc::clone(progress), rate.as_ref());
                (body, file.size(), Some(check))
            }))
    }

    fn put_bytes(&self, name: &str, body: &[u8]) -> Result<()> {
        let blob = format!("{}{name}", self.blob.path);
        self.engine
            .block_on(self.session.put(self.engine.client(), &blob, &|| {
                (body.to_vec().into(), body.len() as u64, None)
            }))
    }
}

impl Source for Azure {
    fn name(&self) -> &'static str {
        "az"
    }

    fn check(&self, reference: &OtherRef) -> std::result::Result<(), ParseRefError> {
        read(reference).map(drop)
    }

    fn resolve<'s>(&'s self, req: &FetchRequest<'_>) -> Result<Listing<'s>> {
        let blob = self.blob_ref(req.reference)?;
        if self.offline {
            return Err(Error::Offline {
                reference: req.reference.redacted(),
            });
        }
        let engine = self.engine.get()?;
        let session = self.session(engine, &blob)?;
        let (blobs, claim) = self.blobs(engine, &session, &blob)?;
        let version = version_of(&blobs);
        let mut dest = req.layout.models_dir().join("az");
        if let Some(e) = &blob.endpoint {
            dest.push(e.replace("://", "/"));
        }
        dest.push(&blob.account);
        dest.push(&blob.container);
        for segment in blob.path.split('/').filter(|s| !s.is_empty()) {
            dest.push(segment);
        }
        dest.push(version);
        let folder = blob.is_folder();
        let files = blobs
            .into_iter()
            .map(|(name, rel, props, sha256)| ListedFile {
                source: Some(Box::new(BlobSource {
                    display: format!("{}/{}/{}", session.endpoint, blob.container, name),
                    session: Arc::clone(&session),
                    name,
                    etag: props.etag.clone(),
                })),
                path: rel,
                size: props.size,
                stated: sha256.map_or(Stated::Nothing, Stated::Sha256),
                checksum: props.md5.as_deref().and_then(Checksum::md5_base64),
                etag: props.etag.map(|e| e.trim_matches('"').to_owned()),
                media_type: None,
                local: None,
                unpack: None,
            })
            .collect::<Vec<_>>();
        Ok(Listing {
            label: blob.text(),
            dest,
            select: (!folder).then(|| files[0].path.clone()),
            fetcher: "az",
            fetcher_version: env!("CARGO_PKG_VERSION").to_owned(),
            revision: Revision::None,
            origin: Some(session.endpoint.clone()),
            include: if folder {
                self.include.clone()
            } else {
                Vec::new()
            },
            exclude: if folder {
                self.exclude.clone()
            } else {
                Vec::new()
            },
            parallel: self.parallel,
            engine: &self.engine,
            files,
            claim,
            signatures: Vec::new(),
        })
    }

    /// The whole of the small blob `location` names (a mirror's ref object).
    fn read_small(&self, location: &ModelRef, limit: usize) -> Result<Vec<u8>> {
        let completed = self.complete(location);
        let blob = self.blob_ref(completed.as_ref().unwrap_or(location))?;
        if self.offline {
            return Err(Error::Offline {
                reference: blob.text(),
            });
        }
        let engine = self.engine.get()?;
        let session = self.session(engine, &blob)?;
        let body = engine.block_on(session.read_small(engine.api_client(), &blob.path))?;
        if body.len() > limit {
            return Err(failure(
                SourceFailure::Protocol,
                format!(
                    "`{}` holds {} bytes, more than the {limit} expected",
                    blob.text(),
                    body.len()
                ),
                "write the object again",
            ));
        }
        Ok(body)
    }

    fn folder<'s>(&'s self, destination: &ModelRef) -> Option<Result<Box<dyn Folder + 's>>> {
        // The destination as an ensure would read it: the configured endpoint named.
        let completed = self.complete(destination);
        let blob = match self.blob_ref(completed.as_ref().unwrap_or(destination)) {
            Ok(blob) => blob,
            Err(e) => return Some(Err(e)),
        };
        Some(self.push_folder(blob))
    }

    /// The reference without its SAS token (kept by the source), and with the endpoint named
    /// when it is not Azure's: the id of one blob whatever form named it.
    fn complete(&self, reference: &ModelRef) -> Option<ModelRef> {
        let ModelRef::Other(other) = reference else {
            return None;
        };
        let mut blob = read(other).ok()?;
        if blob.endpoint.is_none() {
            blob.endpoint.clone_from(&self.endpoint);
        }
        if let Some(sas) = blob.sas.take() {
            self.sas
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(blob.text(), sas);
        }
        let completed = blob.to_ref();
        (completed != *reference).then_some(completed)
    }

    fn accepts(&self, entry: &CatalogEntry) -> bool {
        let Ok(ModelRef::Other(other)) =
            ModelRef::parse_with(&entry.source, &["az", "az+http", "az+https"])
        else {
            return true;
        };
        if !read(&other).is_ok_and(|b| b.is_folder()) {
            return true;
        }
        let (include, exclude) = entry
            .provenance
            .as_ref()
            .map_or((&[][..], &[][..]), |p| (&p.include[..], &p.exclude[..]));
        include == self.include.as_slice() && exclude == self.exclude.as_slice()
    }
}

/// A short name for what the blobs are now: their names, sizes and `ETag`s.
fn version_of(blobs: &[Chosen]) -> String {
    let mut text = String::new();
    for (name, _, p, _) in blobs {
        text.push_str(name);
        text.push('\0');
        text.push_str(&p.size.map(|s| s.to_string()).unwrap_or_default());
        text.push('\0');
        text.push_str(p.etag.as_deref().unwrap_or_default());
        text.push('\n');
    }
    Digest::sha256_of(text.as_bytes()).value()[..16].to_owned()
}

/// One blob, as the engine's [`RequestSource`]: every request authorised as it is sent, and
/// held to the `ETag` the listing gave (`If-Match`), so that a blob replaced mid-download fails
/// rather than mixing two versions.
struct BlobSource {
    session: Arc<Session>,
    name: String,
    etag: Option<String>,
    display: String,
}

impl RequestSource for BlobSource {
    fn display(&self) -> &str {
        &self.display
    }

    fn request(&self, client: &Client, mut headers: HeaderMap) -> RequestBuilder {
        if let Some(etag) = self
            .etag
            .as_deref()
            .and_then(|e| HeaderValue::from_str(e).ok())
        {
            headers.insert(IF_MATCH, etag);
        }
        self.session.build(
            client,
            Method::GET,
            self.session.url(&self.name, &[]),
            headers,
        )
    }

    fn reauthorize<'a>(
        &'a self,
        client: &'a Client,
        _status: StatusCode,
        _headers: &'a HeaderMap,
    ) -> BoxFuture<'a, bool> {
        Box::pin(self.session.refresh(client))
    }
}
