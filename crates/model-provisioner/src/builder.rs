//! [`ProvisionerBuilder`]: a provisioner wired from options, the way the command-line tool
//! wires it, so that a library user gets the same behaviour.
//!
//! Two layers: whole configurations (`download_config`, `hf_config`, `oci_config`, `s3_config`),
//! each read from the environment unless given, and settings laid over them (`connections`,
//! `retries`, `offline`, `include`, `registry_access`, `s3_access`, …), which are what the
//! command line's flags map to.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use catalog_core::FsCatalog;

#[cfg(feature = "oci")]
use crate::access::RegistryAccess;
#[cfg(feature = "s3")]
use crate::access::{S3Access, S3Client};
use crate::any::AnyFetcher;
use crate::error::Result;
use crate::file::FileFetcher;
use crate::hf::{HfCliFetcher, HfConfig};
use crate::provisioner::ModelProvisioner;
use mp_progress::{NoReporter, Reporter};
#[cfg(feature = "http")]
use mp_transfer::DownloadConfig;

/// Which client fetches `hf:` references.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HfClient {
    /// The built-in Hub client, which checks every file's sha256 ([`HfFetcher`], cargo
    /// feature `hf`; without it, `hf:` references fail with an error saying so).
    ///
    /// [`HfFetcher`]: crate::hf::HfFetcher
    #[default]
    Native,
    /// The `hf` (or `huggingface-cli`) tool found on `PATH` ([`HfCliFetcher`]); needs no
    /// cargo feature.
    Cli,
}

/// Builds a [`ModelProvisioner`] over an [`FsCatalog`] and an [`AnyFetcher`] from options.
/// Made by [`ModelProvisioner::builder`].
///
/// By default local files are registered in place, and `http(s)://` and `hf:` references are
/// fetched when this build has the cargo features for them (`http`, `hf`; otherwise they fail
/// with an error naming the feature), and so are `oci://` and `ollama:` references (`oci`),
/// and `s3://` references (`s3`). Each configuration is read from the environment
/// ([`HfConfig::from_env`], `OciConfig::from_env`, `S3Config::from_env`) unless one is
/// given; the settings (`connections`, `retries`, `stall_timeout`, `offline`, `include`,
/// `exclude`, `parallel_files`, `registry_access`, `s3_access`) are laid over either. The AWS
/// configuration is read on the first S3 request, push or mirror, unless it is given.
///
/// The registry and bucket clients also serve `ModelProvisioner::push` and
/// `ModelProvisioner::mirror` (features `oci`, `s3`): a push reaches a server as a pull does.
#[derive(Debug)]
#[must_use = "a builder does nothing until `build` is called"]
#[expect(
    clippy::struct_excessive_bools,
    reason = "each scheme and option is on or off"
)]
pub struct ProvisionerBuilder {
    cache_dir: PathBuf,
    copy_local_files: bool,
    http: bool,
    #[cfg(feature = "http")]
    download: DownloadConfig,
    hf: Option<HfClient>,
    hf_config: Option<HfConfig>,
    oci: bool,
    #[cfg(feature = "oci")]
    oci_config: Option<crate::oci::OciConfig>,
    s3: bool,
    #[cfg(feature = "s3")]
    s3_config: Option<(mp_credentials::aws::S3Config, crate::s3::S3Options)>,
    #[cfg(feature = "s3")]
    s3_download: Option<DownloadConfig>,
    #[cfg(feature = "s3")]
    s3_env: Option<Lookup>,
    reporter: Arc<dyn Reporter>,
    refresh: bool,
    lock_timeout: Option<Duration>,
    mirrors: crate::mirror::Mirrors,
    #[cfg(feature = "signing")]
    signed_by: Option<crate::signing::SignerPolicy>,
    #[cfg(feature = "signing")]
    signers: crate::signing::SignerRules,
    #[cfg(feature = "signing")]
    sign_pushes: Option<crate::signing::PushSigner>,
    #[cfg(feature = "signing")]
    signature: Option<crate::signing::SignatureSource>,
    /// Kinds of source a library user registered, beside this crate's.
    #[cfg(feature = "http")]
    sources: Vec<Arc<dyn crate::register::SourceKind>>,
    settings: Settings,
}

/// The settings laid over the configurations.
#[derive(Debug, Default)]
struct Settings {
    #[cfg(feature = "http")]
    connections: Option<usize>,
    #[cfg(feature = "http")]
    retries: Option<u32>,
    #[cfg(feature = "http")]
    stall_timeout: Option<Duration>,
    #[cfg(feature = "http")]
    limit_rate: Option<mp_transfer::RateLimit>,
    #[cfg(feature = "http")]
    cancel: Option<mp_transfer::Cancel>,
    offline: bool,
    include: Option<Vec<String>>,
    exclude: Option<Vec<String>>,
    parallel_files: Option<usize>,
    #[cfg(feature = "http")]
    endpoint: Option<url::Url>,
    no_sign_request: bool,
    #[cfg(feature = "http")]
    upload_parts: Option<crate::object_store::PartSizes>,
    #[cfg(feature = "oci")]
    registry: RegistryAccess,
    #[cfg(feature = "s3")]
    s3: S3Access,
}

/// An environment given as a lookup, which has no `Debug` of its own.
#[cfg(feature = "s3")]
#[derive(Clone)]
struct Lookup(crate::s3::Env);

#[cfg(feature = "s3")]
impl std::fmt::Debug for Lookup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Lookup(..)")
    }
}

impl ModelProvisioner<FsCatalog, AnyFetcher> {
    /// A builder that wires the fetchers from options, as the command-line tool does, with
    /// the catalog under `cache_dir`.
    ///
    /// ```no_run
    /// # fn main() -> Result<(), model_provisioner::Error> {
    /// use std::time::Duration;
    ///
    /// use model_provisioner::hf::HfConfig;
    /// use model_provisioner::{HfClient, ModelProvisioner};
    ///
    /// let mut hub = HfConfig::from_env();
    /// hub.include = vec!["*.Q4_K_M.gguf".to_owned()];
    /// let provisioner = ModelProvisioner::builder("/var/cache/models")
    ///     .hf(Some(HfClient::Native))
    ///     .hf_config(hub)
    ///     .lock_timeout(Some(Duration::from_secs(600)))
    ///     .build()?;
    /// let model = provisioner.ensure_present_str("hf:org/repo", None)?;
    /// println!("{} is at {}", model.id, model.local_path.display());
    /// # Ok(()) }
    /// ```
    pub fn builder(cache_dir: impl Into<PathBuf>) -> ProvisionerBuilder {
        ProvisionerBuilder::new(cache_dir.into())
    }
}

impl ProvisionerBuilder {
    /// The defaults, with the catalog under `cache_dir`.
    pub(crate) fn new(cache_dir: PathBuf) -> Self {
        ProvisionerBuilder {
            cache_dir,
            copy_local_files: false,
            http: true,
            #[cfg(feature = "http")]
            download: DownloadConfig::default(),
            hf: Some(HfClient::default()),
            hf_config: None,
            oci: true,
            #[cfg(feature = "oci")]
            oci_config: None,
            s3: true,
            #[cfg(feature = "s3")]
            s3_config: None,
            #[cfg(feature = "s3")]
            s3_download: None,
            #[cfg(feature = "s3")]
            s3_env: None,
            reporter: Arc::new(NoReporter),
            refresh: false,
            lock_timeout: None,
            mirrors: crate::mirror::Mirrors::new(),
            #[cfg(feature = "signing")]
            signed_by: None,
            #[cfg(feature = "signing")]
            signers: crate::signing::SignerRules::new(),
            #[cfg(feature = "signing")]
            sign_pushes: None,
            #[cfg(feature = "signing")]
            signature: None,
            #[cfg(feature = "http")]
            sources: Vec::new(),
            settings: Settings::default(),
        }
    }

    /// Mirrors to try before a model's origin, in order (none by default); see
    /// [`mirror`](crate::mirror). The catalog keeps the origin's id; provenance names the
    /// mirror.
    pub fn mirrors(mut self, mirrors: crate::mirror::Mirrors) -> Self {
        self.mirrors = mirrors;
        self
    }

    /// Copy local files into the cache instead of registering them in place.
    pub fn copy_local_files(mut self, copy: bool) -> Self {
        self.copy_local_files = copy;
        self
    }

    /// Whether `http://` and `https://` references are fetched (when the build can).
    pub fn http(mut self, enabled: bool) -> Self {
        self.http = enabled;
        self
    }

    /// How downloads are made, for `http(s)://` and native `hf:` fetches alike.
    #[cfg(feature = "http")]
    pub fn download_config(mut self, config: DownloadConfig) -> Self {
        self.download = config;
        self
    }

    /// Ranged requests in flight at once for one large file, from every source; `None` keeps
    /// each configuration's (4, and 10 for S3: see [`DownloadConfig::for_object_store`]).
    #[cfg(feature = "http")]
    pub fn connections(mut self, connections: Option<usize>) -> Self {
        self.settings.connections = connections;
        self
    }

    /// Retries of a failed request before giving up, from every source.
    #[cfg(feature = "http")]
    pub fn retries(mut self, retries: u32) -> Self {
        self.settings.retries = Some(retries);
        self
    }

    /// How long a request may deliver no data before it is abandoned and retried.
    #[cfg(feature = "http")]
    pub fn stall_timeout(mut self, timeout: Duration) -> Self {
        self.settings.stall_timeout = Some(timeout);
        self
    }

    /// A cap on the bytes per second this provisioner moves, across all its connections and
    /// files, downloads and uploads alike, whatever the source (one cap, shared); `None` keeps
    /// the download configuration's (none by default).
    ///
    /// ```no_run
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use model_provisioner::{ModelProvisioner, RateLimit};
    ///
    /// let provisioner = ModelProvisioner::builder("/var/cache/models")
    ///     .limit_rate(Some(RateLimit::parse("50M")?))
    ///     .build()?;
    /// # Ok(()) }
    /// ```
    #[cfg(feature = "http")]
    pub fn limit_rate(mut self, rate: Option<mp_transfer::RateLimit>) -> Self {
        self.settings.limit_rate = rate;
        self
    }

    /// A flag that, once set (from another thread, a signal handler's watcher), stops this
    /// provisioner's downloads between two reads, from every source: the call fails with
    /// [`Error::is_cancelled`](crate::Error::is_cancelled), and what reached the disk is kept
    /// for the next run to resume.
    #[cfg(feature = "http")]
    pub fn cancel(mut self, cancel: mp_transfer::Cancel) -> Self {
        self.settings.cancel = Some(cancel);
        self
    }

    /// Which client fetches `hf:` references; `None` turns them off.
    pub fn hf(mut self, client: Option<HfClient>) -> Self {
        self.hf = client;
        self
    }

    /// The Hub's configuration (endpoint, token, offline, file filters, parallel files),
    /// instead of the one read from the environment.
    pub fn hf_config(mut self, config: HfConfig) -> Self {
        self.hf_config = Some(config);
        self
    }

    /// Make no network request: answer from the catalog (or, for `hf:`, the Hugging Face
    /// cache), or fail; no mirror is tried. Turned on, it holds for every source.
    pub fn offline(mut self, offline: bool) -> Self {
        self.settings.offline = offline;
        self
    }

    /// For a whole repository (`hf:`, `modelscope:`) or a bucket's folder: only files matching
    /// one of these patterns (`*` matches any run of characters, `/` included).
    pub fn include(mut self, patterns: Vec<String>) -> Self {
        self.settings.include = Some(patterns);
        self
    }

    /// For a whole repository (`hf:`, `modelscope:`) or a bucket's folder: no file matching one
    /// of these patterns.
    pub fn exclude(mut self, patterns: Vec<String>) -> Self {
        self.settings.exclude = Some(patterns);
        self
    }

    /// Files of a repository or a folder fetched at once.
    pub fn parallel_files(mut self, files: usize) -> Self {
        self.settings.parallel_files = Some(files);
        self
    }

    /// The endpoint of the store or hub a reference names, instead of the one its source reads
    /// from the environment: an S3-compatible store, a GCS emulator, Azurite, a private
    /// ModelScope. [`S3Access::endpoint`], when set, stands before it for `s3://`.
    #[cfg(feature = "http")]
    pub fn endpoint_url(mut self, endpoint: Option<url::Url>) -> Self {
        self.settings.endpoint = endpoint;
        self
    }

    /// From which size a push to a bucket (`s3://`, `gs://`, `az://`) sends a file in parts, and
    /// how large they are, instead of each store's own (`None`): the parts of a multipart upload
    /// of 16 MiB from 64 MiB on for S3, blocks of 16 MiB from 64 MiB on for Azure, chunks of
    /// 32 MiB of a resumable upload from 64 MiB on for Cloud Storage. Each store keeps its parts
    /// within its limits (S3's at least 5 MiB, Cloud Storage's a multiple of 256 KiB).
    #[cfg(feature = "http")]
    pub fn upload_parts(mut self, parts: Option<crate::object_store::PartSizes>) -> Self {
        self.settings.upload_parts = parts;
        self
    }

    /// Send object-store requests unsigned, for a public bucket: no credentials are looked
    /// for. Turned on, it holds for every bucket source.
    pub fn no_sign_request(mut self, unsigned: bool) -> Self {
        self.settings.no_sign_request = unsigned;
        self
    }

    /// Whether `oci://` and `ollama:` references are fetched (when the build can).
    pub fn oci(mut self, enabled: bool) -> Self {
        self.oci = enabled;
        self
    }

    /// How registries are reached (credentials, insecure registries, Ollama's registry),
    /// instead of the configuration read from the environment.
    #[cfg(feature = "oci")]
    pub fn oci_config(mut self, config: crate::oci::OciConfig) -> Self {
        self.oci_config = Some(config);
        self
    }

    /// Insecure registries, Ollama's registry and a login, laid over the registry
    /// configuration.
    #[cfg(feature = "oci")]
    pub fn registry_access(mut self, access: RegistryAccess) -> Self {
        self.settings.registry = access;
        self
    }

    /// Whether `s3://` references are fetched (when the build can).
    pub fn s3(mut self, enabled: bool) -> Self {
        self.s3 = enabled;
        self
    }

    /// How S3 is reached (endpoint, region, addressing style, `--no-sign-request`) and what a
    /// folder's fetch selects, instead of the configuration read from the environment.
    #[cfg(feature = "s3")]
    pub fn s3_config(
        mut self,
        config: mp_credentials::aws::S3Config,
        options: crate::s3::S3Options,
    ) -> Self {
        self.s3_config = Some((config, options));
        self
    }

    /// The endpoint, the region, unsigned requests and the profile, laid over the S3
    /// configuration.
    #[cfg(feature = "s3")]
    pub fn s3_access(mut self, access: S3Access) -> Self {
        self.settings.s3 = access;
        self
    }

    /// How `s3://` downloads are made, instead of the download configuration with
    /// [`DownloadConfig::for_object_store`] applied.
    #[cfg(feature = "s3")]
    pub fn s3_download_config(mut self, config: DownloadConfig) -> Self {
        self.s3_download = Some(config);
        self
    }

    /// The environment S3's configuration and credentials are read from, as a lookup, instead
    /// of this process's.
    #[cfg(feature = "s3")]
    pub fn s3_env(mut self, env: crate::s3::Env) -> Self {
        self.s3_env = Some(Lookup(env));
        self
    }

    /// Also fetches the references of `kind`'s schemes, with a source it makes from the
    /// engine and the settings every source shares (see [`SourceKind`]). It comes before the
    /// kinds this crate registers (one configured otherwise replaces this crate's); a scheme
    /// that a built-in source or an earlier kind reads stays theirs.
    ///
    /// [`SourceKind`]: crate::SourceKind
    #[cfg(feature = "http")]
    pub fn source(mut self, kind: impl crate::register::SourceKind + 'static) -> Self {
        self.sources.push(Arc::new(kind));
        self
    }

    /// Where progress goes (nowhere by default).
    pub fn reporter(mut self, reporter: Arc<dyn Reporter>) -> Self {
        self.reporter = reporter;
        self
    }

    /// Fetch again even when the catalog has the model; see
    /// [`ModelProvisioner::with_refresh`].
    pub fn refresh(mut self, refresh: bool) -> Self {
        self.refresh = refresh;
        self
    }

    /// Wait at most `timeout` for another process fetching the same model (forever: `None`).
    pub fn lock_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.lock_timeout = timeout;
        self
    }

    /// Who must have signed every model this provisioner ensures (the command line's
    /// `--signed-by`); see [`signing`](crate::signing).
    #[cfg(feature = "signing")]
    pub fn signed_by(mut self, policy: Option<crate::signing::SignerPolicy>) -> Self {
        self.signed_by = policy;
        self
    }

    /// Who must have signed models, per reference prefix (`MODEL_PROVISIONER_SIGNERS`,
    /// `<cache>/signers.conf`); see [`signing`](crate::signing).
    #[cfg(feature = "signing")]
    pub fn signers(mut self, rules: crate::signing::SignerRules) -> Self {
        self.signers = rules;
        self
    }

    /// What `push` and `mirror` sign the models they publish with (the command line's
    /// `push --sign`): a bundle over exactly the files pushed, with the catalog's sha256s,
    /// `model.sig` in a bucket's folder or a referrer of the manifest in a registry; see
    /// [`signing`](crate::signing).
    #[cfg(feature = "signing")]
    pub fn sign_pushes(mut self, signer: Option<crate::signing::PushSigner>) -> Self {
        self.sign_pushes = signer;
        self
    }

    /// A signature given apart from the model (the command line's `ensure --signature`): a
    /// bundle file, read when the provisioner is built, or an `http(s)://` URL, fetched
    /// (bounded) once, when a check first needs it (a model fetched, or a policy for a model
    /// already in the catalog); it stands for a model's `model.sig` when it has none, and a model of one file is
    /// checked against it alone. See [`signing`](crate::signing).
    #[cfg(feature = "signing")]
    pub fn signature(mut self, source: Option<crate::signing::SignatureSource>) -> Self {
        self.signature = source;
        self
    }

    /// The signature given apart (`signature`): a file, read now, or a URL, to be fetched with
    /// `engine` when a check first needs it; at most [`mp_signing::MAX_BUNDLE_BYTES`] either
    /// way.
    #[cfg(all(feature = "signing", feature = "http"))]
    fn detached_signature(
        &self,
        engine: &mp_transfer::Engine,
    ) -> Result<Option<crate::signing::Detached>> {
        use crate::signing::{Detached, SignatureSource};
        match &self.signature {
            None => Ok(None),
            Some(SignatureSource::File(path)) => {
                let bundle = crate::signing::read_signature_file(path)?;
                Ok(Some(Detached::read(path.display().to_string(), bundle)))
            }
            Some(SignatureSource::Url(url)) => {
                let (url, engine, offline) = (url.clone(), engine.clone(), self.settings.offline);
                Ok(Some(Detached::fetched_by(url.clone(), move || {
                    fetch_signature(&url, &engine, offline)
                })))
            }
        }
    }

    /// The signature given apart (`signature`), read from its file; a URL needs the `http`
    /// feature.
    #[cfg(all(feature = "signing", not(feature = "http")))]
    fn detached_signature(&self) -> Result<Option<crate::signing::Detached>> {
        use crate::signing::{Detached, SignatureSource};
        match &self.signature {
            None => Ok(None),
            Some(SignatureSource::File(path)) => {
                let bundle = crate::signing::read_signature_file(path)?;
                Ok(Some(Detached::read(path.display().to_string(), bundle)))
            }
            Some(SignatureSource::Url(url)) => Err(crate::error::Error::DetachedSignature {
                source_name: url.clone(),
                reason: "this build fetches no URL (the `http` cargo feature is off)".to_owned(),
            }),
        }
    }

    /// `download` with the settings laid over it.
    #[cfg(feature = "http")]
    fn settle(&self, mut download: DownloadConfig) -> DownloadConfig {
        let s = &self.settings;
        download.connections = s.connections.unwrap_or(download.connections);
        download.retry.retries = s.retries.unwrap_or(download.retry.retries);
        download.stall_timeout = s.stall_timeout.unwrap_or(download.stall_timeout);
        if let Some(rate) = &s.limit_rate {
            download.rate_limit = Some(rate.clone());
        }
        if let Some(cancel) = &s.cancel {
            download.cancel = Some(cancel.clone());
        }
        download
    }

    /// `download`, with the roots of `AWS_CA_BUNDLE` (or the profile's `ca_bundle`) of the S3
    /// configuration given, when it names none: they are added for every fetcher.
    #[cfg(feature = "http")]
    #[cfg_attr(not(feature = "s3"), allow(clippy::unused_self))]
    fn with_ca_bundle(&self, download: DownloadConfig) -> DownloadConfig {
        #[cfg(feature = "s3")]
        if download.ca_bundle.is_none()
            && let Some((config, _)) = &self.s3_config
        {
            return DownloadConfig {
                ca_bundle: config.ca_bundle.clone(),
                ..download
            };
        }
        download
    }

    /// The Hub's configuration, given or from the environment, with the settings.
    fn hub_config(&self) -> HfConfig {
        let s = &self.settings;
        let mut config = self.hf_config.clone().unwrap_or_else(HfConfig::from_env);
        config.offline |= s.offline;
        config.include = s.include.clone().unwrap_or(config.include);
        config.exclude = s.exclude.clone().unwrap_or(config.exclude);
        config.parallel_files = s.parallel_files.unwrap_or(config.parallel_files);
        config
    }

    /// The registries' configuration, given or from the environment, with the settings.
    #[cfg(feature = "oci")]
    fn registry_config(&self) -> crate::oci::OciConfig {
        let mut config = self.settings.registry.apply(
            self.oci_config
                .clone()
                .unwrap_or_else(crate::oci::OciConfig::from_env),
        );
        config.offline |= self.settings.offline;
        config
    }

    /// What an S3 folder's fetch selects, given or the defaults, with the settings.
    #[cfg(feature = "s3")]
    fn s3_options(&self) -> crate::s3::S3Options {
        let s = &self.settings;
        let mut options = self
            .s3_config
            .as_ref()
            .map(|(_, options)| options.clone())
            .unwrap_or_default();
        options.offline |= s.offline;
        options.include = s.include.clone().unwrap_or(options.include);
        options.exclude = s.exclude.clone().unwrap_or(options.exclude);
        options.parallel_files = s.parallel_files.unwrap_or(options.parallel_files);
        options.upload_parts = s.upload_parts.or(options.upload_parts);
        options
    }

    /// The `s3://` client, with an engine of its own: object stores want more, smaller ranges
    /// than the other sources (see [`DownloadConfig::for_object_store`]).
    #[cfg(feature = "s3")]
    fn s3_client(&self) -> S3Client {
        let download = self.settle(
            self.s3_download
                .clone()
                .unwrap_or_else(|| self.download.clone().for_object_store()),
        );
        let (mut access, options) = (self.settings.s3.clone(), self.s3_options());
        if access.endpoint.is_none() {
            access.endpoint.clone_from(&self.settings.endpoint);
        }
        access.no_sign_request |= self.settings.no_sign_request;
        let env = self.s3_env.clone().map(|l| l.0);
        match self.s3_config.clone() {
            Some((config, _)) => {
                let engine = mp_transfer::Engine::new(self.with_ca_bundle(download));
                S3Client::with_config(config, access, options, engine, env)
            }
            None => S3Client::from_env(access, options, download, env),
        }
    }

    /// What the mirror rules' matches depend on: Ollama's registry, the Hub's filters, offline.
    fn mirror_context(
        &self,
        #[cfg(feature = "oci")] registries: &crate::oci::OciConfig,
    ) -> crate::mirror::MirrorContext {
        let hub = self.hub_config();
        #[cfg_attr(
            not(any(feature = "oci", feature = "s3")),
            expect(unused_mut, reason = "only registries and buckets add to it")
        )]
        let mut context = crate::mirror::MirrorContext {
            ollama_registry: catalog_core::OLLAMA_REGISTRY.to_owned(),
            include: hub.include,
            exclude: hub.exclude,
            offline: hub.offline,
            shapes: Vec::new(),
        };
        #[cfg(feature = "oci")]
        {
            context.offline |= registries.offline;
            context
                .ollama_registry
                .clone_from(&registries.ollama_registry);
        }
        #[cfg(feature = "s3")]
        {
            context.offline |= self.s3_options().offline;
        }
        context
    }

    /// `fetcher` with the sources registered (this crate's and a library user's), and what the
    /// references of each of their schemes name, for mirror rules.
    #[cfg(feature = "http")]
    fn with_registered(
        &self,
        mut fetcher: AnyFetcher,
        engine: &mp_transfer::Engine,
    ) -> Result<(AnyFetcher, Vec<(&'static str, crate::mirror::MirrorShape)>)> {
        let s = &self.settings;
        let context = crate::register::SourceContext {
            engine,
            offline: s.offline,
            include: s.include.as_deref().unwrap_or_default(),
            exclude: s.exclude.as_deref().unwrap_or_default(),
            parallel_files: s.parallel_files.unwrap_or(crate::request::PARALLEL_FILES),
            endpoint: s.endpoint.as_ref(),
            no_sign_request: s.no_sign_request,
            upload_parts: s.upload_parts,
        };
        let mut shapes = Vec::new();
        for kind in crate::registered::kinds(&self.sources) {
            let shape = kind.mirror_shape();
            shapes.extend(kind.schemes().iter().map(|scheme| (*scheme, shape)));
            fetcher = fetcher.with_source(kind.schemes(), kind.build(&context)?);
        }
        Ok((fetcher, shapes))
    }

    /// Opens the catalog and wires the fetchers, and the clients pushes go through.
    pub fn build(self) -> Result<ModelProvisioner<FsCatalog, AnyFetcher>> {
        let file = if self.copy_local_files {
            FileFetcher::copying()
        } else {
            FileFetcher::in_place()
        };
        let mut fetcher = AnyFetcher::new(file);
        #[cfg(feature = "http")]
        let mut publisher = crate::publish::Publisher::default();
        // One engine for every network fetcher: one runtime, one connection pool, one memory
        // budget, started only when a download needs it.
        #[cfg(feature = "http")]
        let engine =
            mp_transfer::Engine::new(self.with_ca_bundle(self.settle(self.download.clone())));
        // Without the `http` feature, `http(s)://` references fail as unsupported whatever
        // was asked; the engine's configuration exists only with it.
        #[cfg(feature = "http")]
        if self.http {
            fetcher = fetcher.with_http(
                crate::http::HttpFetcher::with_engine(engine.clone())
                    .offline(self.settings.offline),
            );
        }
        #[cfg(not(feature = "http"))]
        let _ = self.http;
        #[cfg(feature = "oci")]
        let registries = self.registry_config();
        #[cfg(feature = "oci")]
        if self.oci {
            let client = || crate::oci::OciFetcher::with_engine(registries.clone(), engine.clone());
            fetcher = fetcher.with_oci(client());
            publisher.oci = Some(client());
        }
        #[cfg(feature = "oci")]
        publisher
            .ollama_registry
            .clone_from(&registries.ollama_registry);
        #[cfg(not(feature = "oci"))]
        let _ = self.oci;
        #[cfg(feature = "s3")]
        if self.s3 {
            let client = self.s3_client();
            fetcher = fetcher.with_s3(client.clone());
            publisher.s3 = Some(client);
        }
        #[cfg(not(feature = "s3"))]
        let _ = self.s3;
        #[cfg(all(feature = "http", feature = "signing"))]
        publisher.sign.signer.clone_from(&self.sign_pushes);
        #[cfg(all(not(feature = "http"), feature = "signing"))]
        let _ = &self.sign_pushes; // without `http`, no push to sign
        // What the references of each registered scheme name, for mirror rules.
        #[cfg(feature = "http")]
        let shapes = {
            let shapes;
            (fetcher, shapes) = self.with_registered(fetcher, &engine)?;
            publisher.shapes.clone_from(&shapes);
            shapes
        };
        #[cfg(not(feature = "http"))]
        let shapes = Vec::new();
        if !self.mirrors.is_empty() {
            let mut context = self.mirror_context(
                #[cfg(feature = "oci")]
                &registries,
            );
            context.shapes = shapes;
            // A rule's mirror in a registered store is checked by the store's own kind.
            #[cfg(feature = "http")]
            let kinds = crate::registered::kinds(&self.sources);
            #[cfg(feature = "http")]
            let read = |folder: &catalog_core::OtherRef| crate::registered::check(&kinds, folder);
            // Without `http` no scheme is registered: a rule naming one is refused before this.
            #[cfg(not(feature = "http"))]
            let read = |_: &catalog_core::OtherRef| Ok(());
            self.mirrors.check(&context, read)?;
            fetcher = fetcher.with_mirrors(self.mirrors.clone(), context);
        }
        match self.hf {
            #[cfg(feature = "hf")]
            Some(HfClient::Native) => {
                fetcher = fetcher.with_hf(crate::hf::HfFetcher::with_engine(
                    self.hub_config(),
                    engine.clone(),
                ));
            }
            Some(HfClient::Cli) => fetcher = fetcher.with_hf(HfCliFetcher::new(self.hub_config())),
            _ => {}
        }
        // A signature file given apart is read now, so that a bad one fails before anything
        // else; a URL waits for a check that needs it.
        #[cfg(all(feature = "signing", feature = "http"))]
        let detached = self.detached_signature(&engine)?;
        #[cfg(all(feature = "signing", not(feature = "http")))]
        let detached = self.detached_signature()?;
        let provisioner = ModelProvisioner::with_fetcher(self.cache_dir, fetcher)?
            .with_reporter(self.reporter)
            .with_refresh(self.refresh)
            .with_lock_timeout(self.lock_timeout);
        #[cfg(feature = "signing")]
        let provisioner = provisioner
            .with_signers(self.signed_by, self.signers)
            .with_detached_signature(detached);
        #[cfg(feature = "http")]
        let provisioner = provisioner.with_publisher(publisher);
        Ok(provisioner)
    }
}

/// The bundle at `url`, fetched through `engine`'s request loop and read at most
/// [`mp_signing::MAX_BUNDLE_BYTES`]; nothing asked when `offline`.
#[cfg(all(feature = "signing", feature = "http"))]
fn fetch_signature(url: &str, engine: &mp_transfer::Engine, offline: bool) -> Result<Vec<u8>> {
    use crate::error::Error;
    if offline {
        return Err(Error::Offline {
            reference: url.to_owned(),
        });
    }
    let unusable = |reason: String| Error::DetachedSignature {
        source_name: url.to_owned(),
        reason,
    };
    let parsed = url::Url::parse(url).map_err(|e| unusable(e.to_string()))?;
    let call = mp_transfer::Call::new(url, |c: &reqwest::Client| c.get(parsed.clone()));
    let engine = engine.get().map_err(Error::Transfer)?;
    engine.block_on(async {
        let response = mp_transfer::call(engine.client(), engine.config().retry, &call, &|| None)
            .await
            .map_err(Error::Transfer)?;
        if !response.status().is_success() {
            return Err(unusable(format!("HTTP {}", response.status())));
        }
        mp_transfer::read_bounded(response, mp_signing::MAX_BUNDLE_BYTES)
            .await
            .map_err(|e| match e {
                mp_transfer::BodyError::TooLarge => crate::signing::too_large(url),
                mp_transfer::BodyError::Failed(e) => unusable(e.to_string()),
            })
    })
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use catalog_core::{ModelRef, Storage};

    use super::*;
    use crate::error::Error;
    use mp_progress::Progress;

    type TestResult = std::result::Result<(), Box<dyn std::error::Error>>;

    /// The name of the fetcher `provisioner` would use for `reference`, or `None` when it
    /// answers that the build cannot fetch it.
    fn serving(
        provisioner: &ModelProvisioner<FsCatalog, AnyFetcher>,
        reference: &str,
    ) -> std::result::Result<Option<&'static str>, Box<dyn std::error::Error>> {
        let mr: ModelRef = reference.parse()?;
        match provisioner.fetcher().fetcher_for(&mr) {
            Ok(fetcher) => Ok(Some(fetcher.name())),
            Err(Error::Unsupported { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    #[test]
    fn by_default_every_scheme_the_build_has_is_wired() -> TestResult {
        let cache = tempfile::tempdir()?;
        let p = ModelProvisioner::builder(cache.path())
            .hf_config(HfConfig::default())
            .build()?;
        assert_eq!(serving(&p, "./m.gguf")?, Some("file"));
        let http = cfg!(feature = "http").then_some("http");
        assert_eq!(serving(&p, "https://example.com/m.gguf")?, http);
        let hf = cfg!(feature = "hf").then_some("hf-native");
        assert_eq!(serving(&p, "hf:org/repo/m.gguf")?, hf);
        let s3 = cfg!(feature = "s3").then_some("s3");
        assert_eq!(serving(&p, "s3://bucket/m.gguf")?, s3);
        let oci = cfg!(feature = "oci").then_some("oci");
        assert_eq!(serving(&p, "oci://r.example/m:1")?, oci);
        assert_eq!(serving(&p, "ollama:m")?, oci);
        Ok(())
    }

    #[test]
    fn schemes_can_be_turned_off_or_served_otherwise() -> TestResult {
        let cache = tempfile::tempdir()?;
        let p = ModelProvisioner::builder(cache.path())
            .http(false)
            .hf(Some(HfClient::Cli))
            .hf_config(HfConfig::default())
            .build()?;
        assert_eq!(serving(&p, "https://example.com/m.gguf")?, None);
        assert_eq!(serving(&p, "hf:org/repo")?, Some("hf-cli"));
        let p = ModelProvisioner::builder(cache.path()).hf(None).build()?;
        assert_eq!(serving(&p, "hf:org/repo")?, None);
        Ok(())
    }

    #[test]
    fn settings_are_laid_over_the_configurations_given_or_read() {
        let hub = HfConfig {
            parallel_files: 9,
            ..HfConfig::default()
        };
        let b = ModelProvisioner::builder("/nonexistent")
            .hf_config(hub)
            .offline(true)
            .include(vec!["*.gguf".into()]);
        let config = b.hub_config();
        assert!(config.offline);
        assert_eq!(config.include, ["*.gguf"]);
        assert!(config.exclude.is_empty());
        assert_eq!(config.parallel_files, 9, "kept: no setting");
        #[cfg(feature = "http")]
        {
            let b = b.connections(Some(7)).retries(1);
            let main = b.settle(DownloadConfig::default());
            assert_eq!((main.connections, main.retry.retries), (7, 1));
            assert_eq!(main.stall_timeout, DownloadConfig::default().stall_timeout);
        }
        #[cfg(feature = "oci")]
        {
            let b = ModelProvisioner::builder("/nonexistent")
                .oci_config(crate::oci::OciConfig::default())
                .offline(true)
                .registry_access(RegistryAccess {
                    insecure: vec!["registry.lan".into()],
                    ollama_registry: Some("ollama.lan:5000".into()),
                    login: None,
                });
            let registries = b.registry_config();
            assert!(registries.offline);
            assert_eq!(registries.insecure, ["registry.lan"]);
            assert_eq!(registries.ollama_registry, "ollama.lan:5000");
        }
        #[cfg(feature = "s3")]
        {
            let b = ModelProvisioner::builder("/nonexistent")
                .exclude(vec!["*.bin".into()])
                .parallel_files(2);
            let options = b.s3_options();
            assert_eq!(options.exclude, ["*.bin"]);
            assert_eq!(options.parallel_files, 2);
            assert!(!options.offline);
            assert_eq!(options.upload_parts, None);
            let parts = crate::object_store::PartSizes {
                from: 1 << 20,
                size: 5 << 20,
            };
            let options = b.upload_parts(Some(parts)).s3_options();
            assert_eq!(options.upload_parts, Some(parts));
        }
    }

    /// Counts the tasks started.
    #[derive(Debug, Default)]
    struct Counting(AtomicUsize);

    impl Reporter for Counting {
        fn start(&self, _label: &str, _total: Option<u64>) -> Box<dyn Progress> {
            self.0.fetch_add(1, Ordering::Relaxed);
            mp_progress::NoReporter.start("", None)
        }
    }

    #[test]
    fn local_options_reach_the_provisioner() -> TestResult {
        let cache = tempfile::tempdir()?;
        let dir = tempfile::tempdir()?;
        let model = dir.path().join("m.gguf");
        std::fs::write(&model, b"weights")?;
        let reporter = Arc::new(Counting::default());
        let p = ModelProvisioner::builder(cache.path())
            .copy_local_files(true)
            .reporter(reporter.clone())
            .lock_timeout(Some(Duration::from_secs(1)))
            .build()?;
        let mr = ModelRef::File(catalog_core::FileRef {
            path: model,
            explicit_scheme: false,
        });
        let ensured = p.ensure(&mr, None)?;
        assert_eq!(ensured.entry.storage, Storage::Cache);
        assert!(ensured.resolved.local_path.starts_with(cache.path()));
        assert_eq!(reporter.0.load(Ordering::Relaxed), 1);
        // Refresh: an entry in the catalog is fetched again rather than reused.
        let again = ModelProvisioner::builder(cache.path())
            .copy_local_files(true)
            .refresh(true)
            .build()?
            .ensure(&mr, None)?;
        assert!(!again.cached);
        let reused = p.ensure(&mr, None)?;
        assert!(reused.cached);
        Ok(())
    }
}
