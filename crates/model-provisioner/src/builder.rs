//! [`ProvisionerBuilder`]: a provisioner wired from options, the way the command-line tool
//! wires it, so that a library user gets the same behaviour.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use catalog_core::FsCatalog;

use crate::any::AnyFetcher;
#[cfg(feature = "http")]
use crate::download::DownloadConfig;
use crate::error::Result;
use crate::file::FileFetcher;
use crate::hf::{HfCliFetcher, HfConfig};
use crate::provisioner::ModelProvisioner;
use crate::reporter::{NoReporter, Reporter};

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
/// with an error naming the feature), and so are `oci://` and `ollama:` references (`oci`).
/// The Hub configuration is read from the environment
/// ([`HfConfig::from_env`]) unless one is given.
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
    s3_config: Option<(crate::s3::credentials::S3Config, crate::s3::S3Options)>,
    #[cfg(feature = "s3")]
    s3_download: Option<DownloadConfig>,
    reporter: Arc<dyn Reporter>,
    refresh: bool,
    lock_timeout: Option<Duration>,
    mirrors: crate::mirror::Mirrors,
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
            reporter: Arc::new(NoReporter),
            refresh: false,
            lock_timeout: None,
            mirrors: crate::mirror::Mirrors::new(),
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
        config: crate::s3::credentials::S3Config,
        options: crate::s3::S3Options,
    ) -> Self {
        self.s3_config = Some((config, options));
        self
    }

    /// How `s3://` downloads are made, instead of the download configuration with
    /// [`DownloadConfig::for_object_store`] applied.
    #[cfg(feature = "s3")]
    pub fn s3_download_config(mut self, config: DownloadConfig) -> Self {
        self.s3_download = Some(config);
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

    /// `download`, with the roots of `AWS_CA_BUNDLE` (or the profile's `ca_bundle`) when it
    /// names none: they are added for every fetcher.
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

    /// Opens the catalog and wires the fetchers.
    pub fn build(self) -> Result<ModelProvisioner<FsCatalog, AnyFetcher>> {
        let file = if self.copy_local_files {
            FileFetcher::copying()
        } else {
            FileFetcher::in_place()
        };
        let mut fetcher = AnyFetcher::new(file);
        // One engine for every network fetcher: one runtime, one connection pool, one memory
        // budget, started only when a download needs it.
        #[cfg(feature = "http")]
        let engine = crate::download::Engine::new(self.with_ca_bundle(self.download.clone()));
        // Without the `http` feature, `http(s)://` references fail as unsupported whatever
        // was asked; the engine's configuration exists only with it.
        #[cfg(feature = "http")]
        if self.http {
            fetcher = fetcher.with_http(crate::http::HttpFetcher::with_engine(engine.clone()));
        }
        #[cfg(not(feature = "http"))]
        let _ = self.http;
        #[cfg(feature = "oci")]
        if self.oci {
            let config = self
                .oci_config
                .clone()
                .unwrap_or_else(crate::oci::OciConfig::from_env);
            fetcher = fetcher.with_oci(crate::oci::OciFetcher::with_engine(config, engine.clone()));
        }
        #[cfg(not(feature = "oci"))]
        let _ = self.oci;
        #[cfg(feature = "s3")]
        if self.s3 {
            // An engine of its own, built on first use: object stores want more, smaller
            // ranges than the other sources (see `DownloadConfig::for_object_store`).
            let engine = crate::download::Engine::new(
                self.with_ca_bundle(
                    self.s3_download
                        .clone()
                        .unwrap_or_else(|| self.download.clone().for_object_store()),
                ),
            );
            fetcher = fetcher.with_s3(match self.s3_config.clone() {
                Some((config, options)) => {
                    crate::s3::S3Fetcher::with_engine(config, options, engine)
                }
                None => crate::s3::S3Fetcher::from_env(crate::s3::S3Options::default(), engine),
            });
        }
        #[cfg(not(feature = "s3"))]
        let _ = self.s3;
        let hf_config = || self.hf_config.clone().unwrap_or_else(HfConfig::from_env);
        if !self.mirrors.is_empty() {
            let hub = hf_config();
            #[cfg_attr(
                not(any(feature = "oci", feature = "s3")),
                expect(unused_mut, reason = "only registries and buckets add to it")
            )]
            let mut context = crate::mirror::MirrorContext {
                ollama_registry: catalog_core::OLLAMA_REGISTRY.to_owned(),
                include: hub.include.clone(),
                exclude: hub.exclude.clone(),
                offline: hub.offline,
            };
            #[cfg(feature = "oci")]
            {
                let config = self
                    .oci_config
                    .clone()
                    .unwrap_or_else(crate::oci::OciConfig::from_env);
                context.offline |= config.offline;
                context.ollama_registry = config.ollama_registry;
            }
            #[cfg(feature = "s3")]
            if let Some((_, options)) = &self.s3_config {
                context.offline |= options.offline;
            }
            fetcher = fetcher.with_mirrors(self.mirrors.clone(), context);
        }
        match self.hf {
            #[cfg(feature = "hf")]
            Some(HfClient::Native) => {
                fetcher = fetcher.with_hf(crate::hf::HfFetcher::with_engine(
                    hf_config(),
                    engine.clone(),
                ));
            }
            Some(HfClient::Cli) => fetcher = fetcher.with_hf(HfCliFetcher::new(hf_config())),
            _ => {}
        }
        Ok(ModelProvisioner::with_fetcher(self.cache_dir, fetcher)?
            .with_reporter(self.reporter)
            .with_refresh(self.refresh)
            .with_lock_timeout(self.lock_timeout))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use catalog_core::{ModelRef, Storage};

    use super::*;
    use crate::error::Error;
    use crate::reporter::Progress;

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

    /// Counts the tasks started.
    #[derive(Debug, Default)]
    struct Counting(AtomicUsize);

    impl Reporter for Counting {
        fn start(&self, _label: &str, _total: Option<u64>) -> Box<dyn Progress> {
            self.0.fetch_add(1, Ordering::Relaxed);
            crate::reporter::NoReporter.start("", None)
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
