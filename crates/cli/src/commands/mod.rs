//! One function per subcommand, in a module per concept: `ensure`; `ls`, `show`, `retire`,
//! `rm` and `gc` (the catalog); `verify`; `push` and `mirror`.

mod catalog;
mod ensure;
mod push;
mod verify;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use catalog_core::{FsCatalog, ModelRef};
use model_provisioner::oci::OciConfig;
use model_provisioner::oci::auth::Secret;
use model_provisioner::s3::S3Options;
use model_provisioner::s3::credentials::S3Config;
use model_provisioner::{AnyFetcher, Error, ModelProvisioner};

use crate::cli::{Cli, Command, RegistryArgs, S3Args};
use crate::progress::BarReporter;

type Provisioner = ModelProvisioner<FsCatalog, AnyFetcher>;

/// Runs the command and returns the exit status for a run that did not fail outright.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let cache_dir = match cli.cache_dir {
        Some(dir) => dir,
        None => catalog_core::default_model_cache_dir()?,
    };
    let context = Context {
        cache_dir,
        quiet: cli.quiet,
    };
    match cli.command {
        Command::Ensure(args) => ensure::ensure(&context, &args),
        Command::Ls(args) => catalog::ls(&context, args.json),
        Command::Show(args) => catalog::show(&context, &args.target, args.json),
        Command::Verify(args) => verify::verify(&context, &args),
        Command::Retire(args) => catalog::retire(&context, &args.target),
        Command::Rm(args) => catalog::rm(&context, &args.target),
        Command::Gc(args) => catalog::gc(&context, &args),
        Command::Push(args) => push::push(&context, &args),
        Command::Mirror(args) => push::mirror(&context, &args),
    }
}

struct Context {
    cache_dir: PathBuf,
    quiet: bool,
}

impl Context {
    /// A provisioner for commands that fetch nothing.
    fn provisioner(&self) -> anyhow::Result<Provisioner> {
        Ok(ModelProvisioner::builder(&self.cache_dir)
            .http(false)
            .hf(None)
            .reporter(Arc::new(BarReporter::new(self.quiet)))
            .build()?)
    }
}

/// How S3 is reached: the environment, then the flags; `None` for a reference that is not an
/// S3 one (it does not need it, and a broken AWS configuration must not fail it).
fn s3_config(
    args: &S3Args,
    options: S3Options,
    reference: &ModelRef,
    to_bucket: bool,
) -> anyhow::Result<Option<(S3Config, S3Options)>> {
    // Anything but an S3 reference (or a mirror in a bucket) leaves the AWS files unread.
    if !to_bucket && !matches!(reference, ModelRef::S3(_)) {
        return Ok(None);
    }
    let mut config =
        S3Config::from_env(&|name| std::env::var(name).ok()).map_err(Error::S3Credentials)?;
    if let Some(text) = &args.endpoint_url {
        let url = url_of_endpoint(text).ok_or_else(|| {
            UsageError(format!(
                "`--endpoint-url` takes `http(s)://host[:port]`, not `{}`",
                catalog_core::printable(text)
            ))
        })?;
        config = config.with_endpoint(url);
    }
    if let Some(region) = &args.region {
        region.trim().clone_into(&mut config.region);
    }
    Ok(Some((
        config.with_no_sign_request(args.no_sign_request),
        options,
    )))
}

/// `http(s)://host[:port]` with nothing else, as an endpoint.
fn url_of_endpoint(text: &str) -> Option<url::Url> {
    let url = url::Url::parse(text.trim()).ok()?;
    let plain = matches!(url.scheme(), "http" | "https")
        && url.host_str().is_some_and(|h| !h.is_empty())
        && url.username().is_empty()
        && url.password().is_none()
        && url.query().is_none()
        && matches!(url.path(), "" | "/");
    plain.then_some(url)
}

/// How registries are reached: the environment, then the flags.
fn oci_config(args: &RegistryArgs, offline: bool) -> anyhow::Result<OciConfig> {
    let mut config = OciConfig::from_env();
    config.offline = offline;
    config
        .insecure
        .extend(args.insecure_registry.iter().cloned());
    if let Some(registry) = args.ollama_registry.as_deref().map(str::trim) {
        if registry.is_empty() || registry.contains(['/', ' ']) {
            return Err(UsageError(format!(
                "`--ollama-registry` takes a host and an optional port, e.g. `registry.example:5000`, not `{}`",
                catalog_core::printable(registry)
            ))
            .into());
        }
        registry.clone_into(&mut config.ollama_registry);
    }
    if let Some(username) = &args.registry_username {
        let password = if args.registry_password_stdin {
            let mut line = String::new();
            std::io::stdin().read_line(&mut line).map_err(|e| {
                anyhow::anyhow!("could not read the registry password from standard input: {e}")
            })?;
            line.trim_end_matches(['\r', '\n']).to_owned()
        } else {
            std::env::var("MODEL_PROVISIONER_REGISTRY_PASSWORD").map_err(|_| {
                UsageError(
                    "`--registry-username` needs a password: set `MODEL_PROVISIONER_REGISTRY_PASSWORD` or pass `--registry-password-stdin`"
                        .into(),
                )
            })?
        };
        config.credentials = config
            .credentials
            .with_explicit(username.clone(), Secret::new(password));
    }
    Ok(config)
}

/// A reference from the command line, parsed here rather than by clap, whose message would
/// echo the input raw (control characters and URL credentials included); ours are escaped and
/// redacted.
fn parse_reference(text: &str) -> anyhow::Result<ModelRef> {
    Ok(text.parse().map_err(|e: catalog_core::ParseRefError| {
        UsageError(match e.hint() {
            Some(hint) => format!("{e}\nhint: {hint}"),
            None => e.to_string(),
        })
    })?)
}

/// A mistake in the arguments that clap cannot see: reported with exit status 2.
#[derive(Debug)]
pub struct UsageError(pub String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}
