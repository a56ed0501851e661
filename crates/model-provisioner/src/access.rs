//! [`RegistryAccess`] and [`S3Access`]: how registries and buckets are reached, as settings laid
//! over the configuration read from the environment (the command line's `--insecure-registry`,
//! `--endpoint-url`, … are these); and the `s3://` client, made when first used.

#[cfg(feature = "s3")]
use std::sync::{Arc, OnceLock};

#[cfg(feature = "s3")]
use catalog_core::{CatalogEntry, ModelRef};

#[cfg(feature = "s3")]
use crate::error::Result;
#[cfg(feature = "s3")]
use crate::fetcher::ModelFetcher;
#[cfg(feature = "oci")]
use crate::oci::OciConfig;
#[cfg(feature = "s3")]
use crate::request::{FetchRequest, Fetched};
#[cfg(feature = "s3")]
use crate::s3::{Env, S3Fetcher, S3Options};
#[cfg(feature = "oci")]
use mp_credentials::Secret;
#[cfg(feature = "s3")]
use mp_credentials::aws::S3Config;
#[cfg(feature = "s3")]
use mp_transfer::{DownloadConfig, Engine};

/// How registries are reached: settings over [`OciConfig::from_env`] (or the configuration
/// given to the builder).
#[cfg(feature = "oci")]
#[derive(Debug, Clone, Default)]
pub struct RegistryAccess {
    /// Registries spoken to over plain HTTP besides the configuration's (`host` or `host:port`).
    pub insecure: Vec<String>,
    /// The registry `ollama:` references are pulled from, instead of the configuration's.
    pub ollama_registry: Option<String>,
    /// A user name and password, tried before any other credentials.
    pub login: Option<(String, Secret)>,
}

#[cfg(feature = "oci")]
impl RegistryAccess {
    /// `config` with these settings laid over it.
    pub(crate) fn apply(&self, mut config: OciConfig) -> OciConfig {
        config.insecure.extend(self.insecure.iter().cloned());
        if let Some(registry) = &self.ollama_registry {
            registry.clone_into(&mut config.ollama_registry);
        }
        if let Some((username, password)) = &self.login {
            config.credentials = config
                .credentials
                .with_explicit(username.clone(), password.clone());
        }
        config
    }
}

/// How S3 is reached: settings over [`S3Config::from_env`] (or the configuration given to the
/// builder).
#[cfg(feature = "s3")]
#[derive(Debug, Clone, Default)]
pub struct S3Access {
    /// The endpoint, instead of `AWS_ENDPOINT_URL_S3`, `AWS_ENDPOINT_URL` or the profile's.
    pub endpoint: Option<url::Url>,
    /// The region requests are signed for, instead of `AWS_REGION`, `AWS_DEFAULT_REGION` or
    /// the profile's.
    pub region: Option<String>,
    /// Send requests unsigned, for a public bucket: no credentials are looked for.
    pub no_sign_request: bool,
    /// The shared-config profile read, instead of `AWS_PROFILE` (when the configuration is read
    /// from the environment).
    pub profile: Option<String>,
}

#[cfg(feature = "s3")]
impl S3Access {
    /// `config` with these settings laid over it.
    pub(crate) fn apply(&self, mut config: S3Config) -> S3Config {
        if let Some(endpoint) = &self.endpoint {
            config = config.with_endpoint(endpoint.clone());
        }
        if let Some(region) = &self.region {
            region.trim().clone_into(&mut config.region);
        }
        if self.no_sign_request {
            config = config.with_no_sign_request(true);
        }
        config
    }

    /// `env` (this process's environment when `None`), with `AWS_PROFILE` naming
    /// [`S3Access::profile`] when set.
    fn env(&self, env: Option<Env>) -> Env {
        let env = env.unwrap_or_else(|| Arc::new(|name| std::env::var(name).ok()));
        match self.profile.clone() {
            Some(profile) => Arc::new(move |name| {
                if name == "AWS_PROFILE" {
                    Some(profile.clone())
                } else {
                    env(name)
                }
            }),
            None => env,
        }
    }
}

/// The `s3://` client of a provisioner, shared by its fetches, pushes and mirrors. Unless a
/// configuration was given, it is made when first used: the AWS files are read then, so that
/// nothing but S3 pays for them and a broken configuration fails only S3 (with its reason, at
/// each use); the [`S3Access`] settings are laid over them, and the engine trusts the
/// configuration's CA bundle (`AWS_CA_BUNDLE`, or the profile's `ca_bundle`).
#[cfg(feature = "s3")]
#[derive(Clone)]
pub(crate) struct S3Client(Arc<Lazy>);

#[cfg(feature = "s3")]
struct Lazy {
    fetcher: OnceLock<S3Fetcher>,
    access: S3Access,
    options: S3Options,
    download: DownloadConfig,
    /// The environment the configuration and the credentials are read from.
    env: Env,
}

#[cfg(feature = "s3")]
impl std::fmt::Debug for S3Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Client")
            .field("fetcher", &self.0.fetcher.get())
            .field("access", &self.0.access)
            .field("options", &self.0.options)
            .finish_non_exhaustive()
    }
}

#[cfg(feature = "s3")]
impl S3Client {
    /// A client with `config`, made now, downloading with `engine`; credentials are read from
    /// `env` (this process's environment when `None`).
    pub(crate) fn with_config(
        config: S3Config,
        access: S3Access,
        options: S3Options,
        engine: Engine,
        env: Option<Env>,
    ) -> Self {
        let env = access.env(env);
        let download = engine.config().clone();
        let fetcher = S3Fetcher::with_engine(access.apply(config), options.clone(), engine)
            .with_env(env.clone());
        S3Client(Arc::new(Lazy {
            fetcher: OnceLock::from(fetcher),
            access,
            options,
            download,
            env,
        }))
    }

    /// A client configured from `env` (this process's environment when `None`) and `access`
    /// when first used, downloading with `download` (and the configuration's CA bundle, unless
    /// `download` names one).
    pub(crate) fn from_env(
        access: S3Access,
        options: S3Options,
        download: DownloadConfig,
        env: Option<Env>,
    ) -> Self {
        S3Client(Arc::new(Lazy {
            fetcher: OnceLock::new(),
            env: access.env(env),
            access,
            options,
            download,
        }))
    }

    /// The fetcher, made now if this is the first use.
    pub(crate) fn get(&self) -> &S3Fetcher {
        let lazy = &*self.0;
        lazy.fetcher.get_or_init(|| {
            let env = lazy.env.clone();
            let options = lazy.options.clone();
            match S3Config::from_env(&*env) {
                Ok(config) => {
                    let download = DownloadConfig {
                        ca_bundle: lazy.download.ca_bundle.clone().or(config.ca_bundle.clone()),
                        ..lazy.download.clone()
                    };
                    S3Fetcher::with_engine(
                        lazy.access.apply(config),
                        options,
                        Engine::new(download),
                    )
                    .with_env(env)
                }
                Err(e) => {
                    tracing::debug!(error = %e, "the S3 configuration is broken");
                    // It reads the configuration again at each use, and says why it fails.
                    S3Fetcher::from_env(options, Engine::new(lazy.download.clone())).with_env(env)
                }
            }
        })
    }
}

#[cfg(feature = "s3")]
impl ModelFetcher for S3Client {
    fn name(&self) -> &'static str {
        // The fetcher's own name, without reading the AWS files for it.
        "s3"
    }

    fn fetch(&self, request: &FetchRequest<'_>) -> Result<Fetched> {
        self.get().fetch(request)
    }

    fn complete(&self, reference: &ModelRef) -> Option<ModelRef> {
        self.get().complete(reference)
    }

    fn source(&self) -> Option<&dyn crate::pipeline::Source> {
        Some(self.get())
    }

    fn accepts(&self, entry: &CatalogEntry) -> bool {
        self.get().accepts(entry)
    }
}

#[cfg(all(test, feature = "s3"))]
mod tests {
    use super::*;

    type TestResult = std::result::Result<(), Box<dyn std::error::Error>>;

    #[test]
    fn access_settings_override_the_environments() -> TestResult {
        let env = |name: &str| {
            Some(
                match name {
                    "AWS_ENDPOINT_URL" => "http://env.test:9000",
                    "AWS_REGION" => "eu-west-1",
                    "HOME" => "/nonexistent",
                    _ => return None,
                }
                .to_owned(),
            )
        };
        let from_env = S3Config::from_env(&env)?;
        let access = S3Access {
            endpoint: Some("http://flag.test:9100".parse()?),
            region: Some(" ap-south-1 ".into()),
            no_sign_request: true,
            profile: None,
        };
        let config = access.apply(from_env.clone());
        assert_eq!(config.endpoint, access.endpoint);
        assert_eq!(config.region, "ap-south-1");
        assert!(config.no_sign_request && config.path_style);
        // No settings: the environment's configuration as it was.
        assert_eq!(S3Access::default().apply(from_env.clone()), from_env);
        Ok(())
    }

    #[test]
    fn the_profile_is_read_as_aws_profile_would_name_it() {
        let access = S3Access {
            profile: Some("team".into()),
            ..S3Access::default()
        };
        let env = access.env(Some(Arc::new(|name| Some(format!("{name} from the base")))));
        assert_eq!(env("AWS_PROFILE").as_deref(), Some("team"));
        assert_eq!(
            env("AWS_REGION").as_deref(),
            Some("AWS_REGION from the base")
        );
    }
}
