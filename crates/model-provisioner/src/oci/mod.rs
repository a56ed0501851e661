//! [`OciFetcher`]: `oci://` and `ollama:` references, models in OCI registries.
//!
//! 1. `GET /v2/` learns how the registry wants to be authorised (anonymous, `Basic`, or a
//!    `Bearer` token from the challenge's realm, with `docker login`'s credentials or
//!    `MODEL_PROVISIONER_REGISTRY_USERNAME`/`_PASSWORD`).
//! 2. `GET /v2/<repo>/manifests/<tag or digest>`, accepting the OCI and Docker manifest and
//!    index types. Its bytes are hashed: a digest reference must match, and so must the
//!    registry's `Docker-Content-Digest`. An index gives the manifest for this platform (or
//!    its only one), fetched by digest and checked the same way.
//! 3. The layers are recognised by media type (`manifest.rs` lists the formats and how their
//!    files are named); one that we do not recognise fails with its media types. A `KitOps`
//!    `ModelKit`'s config, its Kitfile, is read too (checked against its digest): it says
//!    where each layer goes, it is written out as `Kitfile`, and its model may be in other
//!    `ModelKit`s, whose model layers are listed too (`modelkit.rs`).
//! 4. The layers are the model's files: a [listing](crate::pipeline::Listing) of the blobs,
//!    each with its size, its sha256 and media type from the manifest, handed to the
//!    [pipeline](crate::pipeline). A blob comes from the content-addressed store if one with
//!    its sha256 is there, else from the registry through the
//!    [download engine](mp_transfer), checked against that sha256 while streaming
//!    (parallel ranges, resume, stall detection). A redirect to storage is followed once and
//!    the ranges go there, without `Authorization` on another host. Tar layers are unpacked
//!    with nothing escaping the model's directory.
//! 5. With the `signing` feature, the Sigstore bundles among the referrers of the manifest
//!    pulled, then of the index it was picked from (the referrers API, else the tag scheme;
//!    `referrers.rs`), go with the listing, for the model's signature check when it has no
//!    `model.sig` of its own.
//! 6. The files are published as one directory under `models/oci/<registry>/<repo>/<manifest
//!    digest hex>/`; the model is that directory, or its one GGUF for a single-weight model,
//!    or the file the reference names. The catalog records the manifest digest the tag
//!    resolved to, the registry, and each file's media type.
//!
//! A registry on loopback (`127.0.0.0/8`, `::1`, `localhost`) is spoken to over plain HTTP,
//! as Docker does; any other over HTTPS unless it is named insecure. Credentials never appear
//! in logs, errors, the index or provenance.

mod artifact;
mod blob_upload;
mod client;
mod layer;
mod manifest;
mod modelkit;
mod push;
mod referrers;
mod unpack;
mod zstd;

use std::sync::Arc;

use catalog_core::{Digest, ModelRef, OLLAMA_REGISTRY, OciRef, OciReference, SafeRelPath};
use oci_spec::image::ImageManifest;

use self::client::{Access, RawManifest, Repository};
use self::layer::Place;
use self::manifest::{Format, Layer, Parsed};
pub use self::push::PushReport;
use crate::error::{Error, Result};
use crate::pipeline::{Claim, ListedFile, Listing, Revision, Source, Stated, Unpack};
use crate::request::{FetchRequest, unsupported};
use mp_credentials::registry::Credentials;
use mp_transfer::{DownloadConfig, Downloader, Engine};

/// How registries are reached.
#[derive(Debug, Clone)]
pub struct OciConfig {
    /// Where credentials come from.
    pub credentials: Credentials,
    /// Registries spoken to over plain HTTP although they are not on loopback (`host` or
    /// `host:port`).
    pub insecure: Vec<String>,
    /// The registry `ollama:` references are pulled from (Ollama's, or a mirror of it).
    pub ollama_registry: String,
    /// Make no network request: fail for anything not in the catalog.
    pub offline: bool,
    /// Layers fetched at once.
    pub parallel_layers: usize,
}

impl Default for OciConfig {
    fn default() -> Self {
        OciConfig {
            credentials: Credentials::none(),
            insecure: Vec::new(),
            ollama_registry: OLLAMA_REGISTRY.to_owned(),
            offline: false,
            parallel_layers: 4,
        }
    }
}

impl OciConfig {
    /// From the environment: `docker login`'s credentials (`$DOCKER_CONFIG/config.json`) and
    /// `MODEL_PROVISIONER_REGISTRY_USERNAME`/`_PASSWORD`;
    /// `MODEL_PROVISIONER_INSECURE_REGISTRIES` (separated by commas or whitespace); and
    /// `MODEL_PROVISIONER_OLLAMA_REGISTRY`.
    pub fn from_env() -> Self {
        OciConfig::from_env_with(&|name| std::env::var(name).ok())
    }

    /// [`OciConfig::from_env`] with the environment given as a lookup.
    pub fn from_env_with(env: &dyn Fn(&str) -> Option<String>) -> Self {
        let insecure = env("MODEL_PROVISIONER_INSECURE_REGISTRIES")
            .map(|list| {
                list.split(|c: char| c == ',' || c.is_whitespace())
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        OciConfig {
            credentials: Credentials::from_env(env),
            insecure,
            ollama_registry: env("MODEL_PROVISIONER_OLLAMA_REGISTRY")
                .filter(|r| !r.trim().is_empty())
                .map_or_else(|| OLLAMA_REGISTRY.to_owned(), |r| r.trim().to_owned()),
            ..OciConfig::default()
        }
    }
}

/// Fetches `oci://` and `ollama:` references from OCI registries. See the
/// [module docs](self).
#[derive(Debug)]
pub struct OciFetcher {
    config: OciConfig,
    engine: Engine,
}

/// A manifest and the digest its reference resolved to.
#[derive(Debug)]
struct Resolved {
    /// The digest of what the tag named (an index, when it names one).
    digest: Digest,
    /// The digest of the manifest this platform's entry of that index names, when it is one.
    #[cfg_attr(
        not(feature = "signing"),
        expect(dead_code, reason = "its referrers are read to check signatures")
    )]
    platform: Option<Digest>,
    manifest: ImageManifest,
}

impl Resolved {
    /// The manifests whose referrers may hold the model's signature: the one pulled, then the
    /// index it was picked from.
    #[cfg(feature = "signing")]
    fn signed_subjects(&self) -> Vec<Digest> {
        self.platform
            .iter()
            .chain([&self.digest])
            .cloned()
            .collect()
    }
}

impl OciFetcher {
    /// A fetcher with `config`, downloading with `download`.
    pub fn new(config: OciConfig, download: DownloadConfig) -> Self {
        OciFetcher::with_engine(config, Engine::new(download))
    }

    /// A fetcher with `config`, downloading with `engine`, shared with other fetchers.
    pub fn with_engine(config: OciConfig, engine: Engine) -> Self {
        OciFetcher { config, engine }
    }

    fn engine(&self) -> Result<&Downloader> {
        Ok(self.engine.get()?)
    }

    /// The `oci://` reference to pull, and the registry it is on.
    fn target(&self, reference: &ModelRef) -> Result<OciRef> {
        match reference {
            ModelRef::Oci(o) => Ok(o.clone()),
            ModelRef::Ollama(o) => Ok(o.to_oci(&self.config.ollama_registry)),
            other => Err(unsupported(other)),
        }
    }

    /// `oci`'s repository, to pull from, with this fetcher's credentials and retries.
    fn pull_repository(&self, engine: &Downloader, oci: &OciRef) -> Result<Repository> {
        Repository::new(
            &oci.registry,
            &oci.repository,
            &self.config.credentials,
            &self.config.insecure,
            engine.config().retry,
            Access::Pull,
        )
    }

    /// The listing of `oci`: the layers of the manifest its tag or digest resolves to (only
    /// the one the reference names, when it names a file), published under the manifest's
    /// digest.
    fn resolve_oci<'s>(&'s self, req: &FetchRequest<'_>, oci: &OciRef) -> Result<Listing<'s>> {
        if self.config.offline {
            return Err(Error::Offline {
                reference: req.reference.redacted(),
            });
        }
        let engine = self.engine()?;
        let repo = Arc::new(self.pull_repository(engine, oci)?);
        let resolved = engine.block_on(resolve(&repo, engine.client(), oci, req.id))?;
        let claim =
            engine.block_on(claim_of(&repo, engine.client(), &resolved.manifest, req.id))?;
        let kitfile = match manifest::format_of(&resolved.manifest) {
            Some(Format::ModelKit) => Some(engine.block_on(modelkit::fetch_kitfile(
                &repo,
                engine.client(),
                &resolved.manifest,
                req.id,
            ))?),
            _ => None,
        };
        let (format, own) = manifest::layers(&resolved.manifest, kitfile.as_ref(), req.id)?;
        tracing::debug!(
            format = format.name(),
            manifest = %resolved.digest,
            layers = own.len(),
            "resolved"
        );
        // A ModelKit's Kitfile is one of its files, and its model may be in other ModelKits.
        let mut layers: Vec<(Arc<Repository>, Layer)> = Vec::new();
        let single = match &kitfile {
            Some(kitfile) => {
                layers.push((repo.clone(), manifest::kitfile_layer(&resolved.manifest)?));
                match kitfile.model_reference() {
                    Some(model) => {
                        let referred =
                            self.referred_model(engine, kitfile, model, &resolved, req)?;
                        layers.extend(referred.layers);
                        referred.single_gguf
                    }
                    None => kitfile.single_gguf(),
                }
            }
            None => manifest::single_weight(format, &own),
        };
        layers.extend(own.into_iter().map(|layer| (repo.clone(), layer)));
        let select = match &oci.path {
            Some(path) => {
                let path: SafeRelPath = path.parse()?;
                narrow_to(&mut layers, &path, &repo, oci)?;
                Some(path)
            }
            None => single,
        };
        let files = layers
            .into_iter()
            .map(|(repo, layer)| {
                let etag = Some(layer.digest.to_string());
                listed(&repo, layer, etag)
            })
            .collect::<Result<_>>()?;
        // The signatures attached to the manifest pulled, then to the index it came from, for
        // the model's signature check.
        #[cfg(feature = "signing")]
        let signatures = engine.block_on(referrers::bundles(
            &repo,
            engine.client(),
            &resolved.signed_subjects(),
        ));
        #[cfg(not(feature = "signing"))]
        let signatures = Vec::new();
        let dest = req
            .layout
            .models_dir()
            .join("oci")
            .join(&oci.registry)
            .join(&oci.repository)
            .join(resolved.digest.value());
        Ok(Listing {
            label: format!("{}/{}", oci.registry, oci.repository),
            dest,
            select,
            fetcher: "oci",
            fetcher_version: env!("CARGO_PKG_VERSION").to_owned(),
            revision: Revision::Named(resolved.digest.to_string()),
            origin: Some(oci.registry.clone()),
            include: Vec::new(),
            exclude: Vec::new(),
            parallel: self.config.parallel_layers,
            engine: &self.engine,
            files,
            claim,
            signatures,
        })
    }
}

/// The layers a `ModelKit`'s model is in when its Kitfile names another `ModelKit` for it.
struct Referred {
    /// The model and model part layers of the `ModelKit`s on the way, each with the repository
    /// it is in.
    layers: Vec<(Arc<Repository>, Layer)>,
    /// The model's one GGUF file, when it is one: the last `ModelKit`'s, when no `ModelKit` on
    /// the way has parts.
    single_gguf: Option<SafeRelPath>,
}

impl OciFetcher {
    /// Follows `model`, the reference `kitfile` (of the `ModelKit` `top`) names for its model,
    /// as `kit unpack` does: of each `ModelKit` on the way only its model and model parts,
    /// placed by its own Kitfile, until one whose model is its own; at most
    /// [`modelkit::MAX_MODEL_REF_CHAIN`] of them, and none twice (by manifest digest).
    fn referred_model(
        &self,
        engine: &Downloader,
        kitfile: &modelkit::Kitfile,
        model: &str,
        top: &Resolved,
        req: &FetchRequest<'_>,
    ) -> Result<Referred> {
        let refuse = |model: &str, reason: String| Error::OciModelKitParent {
            reference: req.id.to_owned(),
            model: crate::error::printable(model),
            reason,
        };
        let mut chain: Vec<(String, Digest)> = Vec::new();
        let mut parts = kitfile.has_parts();
        let mut next = model.to_owned();
        let mut layers = Vec::new();
        loop {
            let model = std::mem::take(&mut next);
            if chain.len() == modelkit::MAX_MODEL_REF_CHAIN {
                let names: Vec<&str> = chain.iter().map(|(m, _)| m.as_str()).collect();
                return Err(refuse(
                    &model,
                    format!(
                        "comes after {} ModelKits in a chain of model references ({}), the most `kit` follows",
                        chain.len(),
                        names.join(" => ")
                    ),
                ));
            }
            let oci = modelkit::model_reference(&model).map_err(|r| refuse(&model, r))?;
            let repo = Arc::new(self.pull_repository(engine, &oci)?);
            let resolved = engine
                .block_on(resolve(&repo, engine.client(), &oci, req.id))
                .map_err(|e| match e {
                    Error::OciNotFound { what } => refuse(&model, format!("is not there: {what}")),
                    other => other,
                })?;
            let again = (resolved.digest == top.digest)
                .then_some(req.id)
                .or_else(|| {
                    chain
                        .iter()
                        .find(|(_, d)| *d == resolved.digest)
                        .map(|(m, _)| m.as_str())
                });
            if let Some(again) = again {
                return Err(refuse(
                    &model,
                    format!(
                        "is `{}` again (manifest `{}`): the model references go round in a circle",
                        crate::error::printable(again),
                        resolved.digest
                    ),
                ));
            }
            if manifest::format_of(&resolved.manifest) != Some(Format::ModelKit) {
                return Err(refuse(&model, "is not a ModelKit".to_owned()));
            }
            let kitfile = engine.block_on(modelkit::fetch_kitfile(
                &repo,
                engine.client(),
                &resolved.manifest,
                &model,
            ))?;
            let (_, of_it) = manifest::layers(&resolved.manifest, Some(&kitfile), &model)?;
            layers.extend(
                of_it
                    .into_iter()
                    .filter(|l| modelkit::is_model_layer(&l.media_type))
                    .map(|l| (repo.clone(), l)),
            );
            parts |= kitfile.has_parts();
            tracing::debug!(model = %model, manifest = %resolved.digest, "the model is in another ModelKit");
            chain.push((model, resolved.digest));
            match kitfile.model_reference() {
                Some(further) => further.clone_into(&mut next),
                None => {
                    let single_gguf = if parts { None } else { kitfile.single_gguf() };
                    return Ok(Referred {
                        layers,
                        single_gguf,
                    });
                }
            }
        }
    }
}

/// `layer` as a file of a listing: the blob of its digest, from the store or `repo`, placed
/// at its path or unpacked; `etag` is recorded for it.
fn listed(
    repo: &Arc<Repository>,
    layer: Layer,
    etag: Option<String>,
) -> Result<ListedFile<'static>> {
    let source = repo.blob(&layer.digest);
    let (path, unpack) = match layer.place {
        Place::File(path) => (path, None),
        Place::Unpack { base, compression } => {
            // An archive's files go where it says; this path only names it.
            let path = SafeRelPath::file_name(layer.digest.value())?;
            let unpack: Box<dyn Unpack> = Box::new(unpack::TarLayer {
                base,
                compression,
                layer: layer.digest.to_string(),
            });
            (path, Some(unpack))
        }
    };
    Ok(ListedFile {
        path,
        size: Some(layer.size),
        stated: Stated::Sha256(layer.digest),
        checksum: None,
        etag,
        media_type: Some(layer.media_type),
        local: None,
        source: Some(Box::new(source)),
        unpack,
    })
}

/// Keeps only the layer that is `path`, when one is; else every tar layer, one of which must
/// hold it (the assembly then fails if none did).
fn narrow_to(
    layers: &mut Vec<(Arc<Repository>, Layer)>,
    path: &SafeRelPath,
    repo: &Repository,
    oci: &OciRef,
) -> Result<()> {
    if let Some(i) = layers
        .iter()
        .position(|(_, l)| matches!(&l.place, Place::File(p) if p == path))
    {
        let one = layers.swap_remove(i);
        *layers = vec![one];
        return Ok(());
    }
    if layers
        .iter()
        .any(|(_, l)| matches!(l.place, Place::Unpack { .. }))
    {
        layers.retain(|(_, l)| matches!(l.place, Place::Unpack { .. }));
        return Ok(());
    }
    let files: Vec<String> = layers
        .iter()
        .filter_map(|(_, l)| match &l.place {
            Place::File(p) => Some(format!("`{p}`")),
            Place::Unpack { .. } => None,
        })
        .collect();
    Err(Error::OciNotFound {
        what: format!(
            "`{}/{}:{}` has no file `{path}`; it has {}",
            repo.registry(),
            repo.name(),
            oci.reference,
            files.join(", ")
        ),
    })
}

/// Resolves `oci`'s tag or digest to a manifest, checking every manifest's bytes against the
/// digest that names them.
async fn resolve(
    repo: &Repository,
    client: &reqwest::Client,
    oci: &OciRef,
    id: &str,
) -> Result<Resolved> {
    repo.ping(client).await?;
    let reference = oci.reference.to_string();
    let named = match &oci.reference {
        OciReference::Digest(d) => Some(d),
        OciReference::Tag(_) => None,
    };
    let raw = repo.manifest(client, &reference).await?;
    let digest = checked_digest(&raw, named, id)?;
    let parsed = manifest::parse(&raw.bytes, raw.content_type.as_deref()).map_err(|reason| {
        Error::OciProtocol {
            registry: repo.registry().to_owned(),
            reason,
        }
    })?;
    let (platform, manifest) = match parsed {
        Parsed::Manifest(m) => (None, *m),
        Parsed::Index(index) => {
            let entry = manifest::pick(&index).map_err(|available| {
                let (os, arch) = manifest::this_platform();
                Error::OciNoPlatform {
                    reference: id.to_owned(),
                    wanted: format!("{os}/{arch}"),
                    available,
                }
            })?;
            let entry_digest = layer::descriptor_digest(entry)?;
            let raw = repo.manifest(client, &entry_digest.to_string()).await?;
            checked_digest(&raw, Some(&entry_digest), id)?;
            match manifest::parse(&raw.bytes, raw.content_type.as_deref()) {
                Ok(Parsed::Manifest(m)) => (Some(entry_digest), *m),
                Ok(Parsed::Index(_)) => {
                    return Err(Error::OciProtocol {
                        registry: repo.registry().to_owned(),
                        reason: "an index inside an index".to_owned(),
                    });
                }
                Err(reason) => {
                    return Err(Error::OciProtocol {
                        registry: repo.registry().to_owned(),
                        reason,
                    });
                }
            }
        }
    };
    Ok(Resolved {
        digest,
        platform,
        manifest,
    })
}

/// The sha256 of a manifest's bytes, which must be the digest that named it and the one the
/// registry stated.
fn checked_digest(raw: &RawManifest, named: Option<&Digest>, id: &str) -> Result<Digest> {
    let computed = Digest::sha256_of(&raw.bytes);
    if let Some(named) = named {
        Error::check_digest(&format!("{id} (manifest)"), Some(named), &computed)?;
    }
    if let Some(stated) = raw
        .stated_digest
        .as_deref()
        .and_then(|s| s.parse::<Digest>().ok())
    {
        Error::check_digest(&format!("{id} (manifest)"), Some(&stated), &computed)?;
    }
    Ok(computed)
}

/// The largest config blob read: a model of 100,000 files stays far below it.
const CONFIG_LIMIT: usize = 16 << 20;

/// The media type of the `ModelPack` config that [`OciFetcher::push`] writes.
const MODEL_CONFIG: &str = "application/vnd.cncf.model.config.v1+json";

/// What a `ModelPack` config that `push` wrote records of the model it was pushed from (its
/// provenance, and its name), its bytes checked against the manifest's digest for them; `None`
/// for any other config, or one that records no provenance.
async fn claim_of(
    repo: &Repository,
    client: &reqwest::Client,
    manifest: &ImageManifest,
    id: &str,
) -> Result<Option<Claim>> {
    let config = manifest.config();
    let media_type: &str = config.media_type().as_ref();
    if media_type != MODEL_CONFIG {
        return Ok(None);
    }
    let digest = layer::descriptor_digest(config)?;
    let bytes = small_blob(repo, client, &digest, "config", CONFIG_LIMIT).await?;
    Error::check_digest(
        &format!("{id} (config)"),
        Some(&digest),
        &Digest::sha256_of(&bytes),
    )?;
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(&bytes) else {
        tracing::debug!(%digest, "the ModelPack config does not parse");
        return Ok(None);
    };
    let provenance = value
        .get("provenance")
        .cloned()
        .map(serde_json::from_value::<catalog_core::Provenance>);
    let Some(Ok(provenance)) = provenance else {
        return Ok(None);
    };
    let name = value
        .get("descriptor")
        .and_then(|d| d.get("name"))
        .and_then(serde_json::Value::as_str)
        .map(str::to_owned);
    Ok(Some(Claim {
        id: name,
        provenance,
    }))
}

/// The bytes of a small blob (a config, a signature bundle), at most `limit`; `what` it is names
/// it in errors. Its digest is not checked here.
async fn small_blob(
    repo: &Repository,
    client: &reqwest::Client,
    digest: &Digest,
    what: &str,
    limit: usize,
) -> Result<Vec<u8>> {
    let url = repo.url(&format!("v2/{}/blobs/{digest}", repo.name()));
    let response = repo.send(client, &url, |c| c.get(url.clone())).await?;
    let status = response.status();
    if status == reqwest::StatusCode::NOT_FOUND {
        return Err(Error::OciNotFound {
            what: format!(
                "`{}/{}` has no blob `{digest}`",
                repo.registry(),
                repo.name()
            ),
        });
    }
    if !status.is_success() {
        return Err(Error::Transfer(mp_transfer::Error::Download {
            url: url.to_string(),
            status: Some(status.as_u16()),
            attempts: 1,
            reason: format!("HTTP {status}"),
            source: None,
        }));
    }
    repo.read_small(response, &url, what, limit).await
}

impl Source for OciFetcher {
    fn name(&self) -> &'static str {
        "oci"
    }

    fn resolve<'s>(&'s self, req: &FetchRequest<'_>) -> Result<Listing<'s>> {
        let oci = self.target(req.reference)?;
        self.resolve_oci(req, &oci)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_environment_names_insecure_registries_and_ollamas_registry() {
        let env = |name: &str| match name {
            "MODEL_PROVISIONER_INSECURE_REGISTRIES" => Some("a.example:5000, b.example\tc".into()),
            "MODEL_PROVISIONER_OLLAMA_REGISTRY" => Some(" mirror.example ".into()),
            _ => None,
        };
        let config = OciConfig::from_env_with(&env);
        assert_eq!(config.insecure, ["a.example:5000", "b.example", "c"]);
        assert_eq!(config.ollama_registry, "mirror.example");
        let defaults = OciConfig::from_env_with(&|_| None);
        assert_eq!(defaults.ollama_registry, OLLAMA_REGISTRY);
        assert!(defaults.insecure.is_empty());
    }

    #[test]
    fn a_manifest_must_hash_to_the_digest_that_named_it_and_the_one_stated() {
        let bytes = b"{\"schemaVersion\":2}".to_vec();
        let right = Digest::sha256_of(&bytes);
        let wrong = Digest::sha256_of(b"other");
        let raw = |stated: Option<&Digest>| RawManifest {
            bytes: bytes.clone(),
            content_type: None,
            stated_digest: stated.map(ToString::to_string),
        };
        assert_eq!(
            checked_digest(&raw(None), None, "m").ok(),
            Some(right.clone())
        );
        assert_eq!(
            checked_digest(&raw(Some(&right)), Some(&right), "m").ok(),
            Some(right.clone())
        );
        for (stated, named) in [(None, Some(&wrong)), (Some(&wrong), None)] {
            let err = checked_digest(&raw(stated), named, "m").unwrap_err();
            assert!(err.is_verification_failure(), "{err}");
        }
    }
}
