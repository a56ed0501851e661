//! What the builder hands each source: its configuration, given or read from the environment,
//! with the settings laid over it; the mirrors' context; the signature given apart.

use super::ProvisionerBuilder;
#[cfg(feature = "s3")]
use crate::access::S3Client;
#[cfg(feature = "signing")]
use crate::error::Result;
use crate::hf::HfConfig;
#[cfg(feature = "http")]
use mp_transfer::DownloadConfig;

impl ProvisionerBuilder {
    /// The signature given apart (`signature`): a file, read now, or a URL, to be fetched with
    /// `engine` when a check first needs it; at most [`mp_signing::MAX_BUNDLE_BYTES`] either
    /// way.
    #[cfg(all(feature = "signing", feature = "http"))]
    pub(super) fn detached_signature(
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
                    crate::signing::fetch_signature(&url, &engine, offline)
                })))
            }
        }
    }

    /// The signature given apart (`signature`), read from its file; a URL needs the `http`
    /// feature.
    #[cfg(all(feature = "signing", not(feature = "http")))]
    pub(super) fn detached_signature(&self) -> Result<Option<crate::signing::Detached>> {
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
    pub(super) fn settle(&self, mut download: DownloadConfig) -> DownloadConfig {
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
    pub(super) fn with_ca_bundle(&self, download: DownloadConfig) -> DownloadConfig {
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
    pub(super) fn hub_config(&self) -> HfConfig {
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
    pub(super) fn registry_config(&self) -> crate::oci::OciConfig {
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
    pub(super) fn s3_options(&self) -> crate::s3::S3Options {
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
    pub(super) fn s3_client(&self) -> S3Client {
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
    pub(super) fn mirror_context(
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
}
