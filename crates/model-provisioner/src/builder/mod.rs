//! [`ProvisionerBuilder`]: a provisioner wired from options, the way the command-line tool
//! wires it, so that a library user gets the same behaviour.
//!
//! Two layers: whole configurations (`download_config`, `hf_config`, `oci_config`, `s3_config`),
//! each read from the environment unless given, and settings laid over them (`connections`,
//! `retries`, `offline`, `include`, `registry_access`, `s3_access`, …), which are what the
//! command line's flags map to.
//!
//! `setters.rs` holds the options as the builder takes them; `config.rs` what each source is
//! built with (its configuration, given or read, with the settings laid over it), the mirrors'
//! context and the signature given apart; `build` wires them here.

mod config;
mod setters;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use catalog_core::FsCatalog;

#[cfg(feature = "oci")]
use crate::access::RegistryAccess;
#[cfg(feature = "s3")]
use crate::access::S3Access;
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
