//! The builder's options, each a setter: the configurations given, and the settings laid over
//! them.

use std::sync::Arc;
use std::time::Duration;

#[cfg(feature = "s3")]
use super::Lookup;
use super::{HfClient, ProvisionerBuilder};
#[cfg(feature = "oci")]
use crate::access::RegistryAccess;
#[cfg(feature = "s3")]
use crate::access::S3Access;
use crate::hf::HfConfig;
use mp_progress::Reporter;
#[cfg(feature = "http")]
use mp_transfer::DownloadConfig;

impl ProvisionerBuilder {
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
    /// [`ModelProvisioner::with_refresh`](crate::ModelProvisioner::with_refresh).
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
}
