//! One function per subcommand: each maps its flags to the library's options, calls the
//! library, and prints what it returns.

mod catalog;
mod ensure;
mod push;
mod shell;
mod verify;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use catalog_core::{FsCatalog, ModelRef};
use model_provisioner::{
    AnyFetcher, Error, Event, Events, ModelProvisioner, ProvisionerBuilder, RegistryAccess,
    S3Access, Secret, json_line,
};

use model_provisioner::signing::SignerRules;

use crate::cli::{Cli, Command, ProgressFormat, RegistryArgs, S3Args, TransferArgs};
use crate::progress::BarReporter;

type Provisioner = ModelProvisioner<FsCatalog, AnyFetcher>;

/// Runs the command and returns the exit status for a run that did not fail outright.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    // These read no cache: they print what the arguments are.
    match &cli.command {
        Command::Completions(args) => return shell::completions(args.shell),
        Command::Man(args) => return shell::man(args.out_dir.as_deref()),
        _ => {}
    }
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
        Command::Completions(_) | Command::Man(_) => unreachable!("answered above"),
    }
}

struct Context {
    cache_dir: PathBuf,
    quiet: bool,
}

impl Context {
    /// A builder for the cache, drawing progress bars unless `--quiet` or `quiet` (a command
    /// printing JSON).
    fn builder(&self, quiet: bool) -> ProvisionerBuilder {
        ModelProvisioner::builder(&self.cache_dir)
            .reporter(Arc::new(BarReporter::new(self.quiet || quiet)))
    }

    /// A provisioner for commands that fetch nothing.
    fn provisioner(&self) -> anyhow::Result<Provisioner> {
        Ok(self
            .builder(false)
            .http(false)
            .hf(None)
            .signers(self.signer_rules()?)
            .build()?)
    }

    /// The signer rules: `MODEL_PROVISIONER_SIGNERS`, then `<cache>/signers.conf`.
    fn signer_rules(&self) -> anyhow::Result<SignerRules> {
        Ok(SignerRules::configured(&self.cache_dir)
            .map_err(|e| UsageError(format!("{e}\nhint: {}", e.hint())))?)
    }
}

/// How registries are reached, from `--insecure-registry`, `--ollama-registry` and
/// `--registry-username` with its password.
fn registry_access(args: &RegistryArgs) -> anyhow::Result<RegistryAccess> {
    let mut access = RegistryAccess {
        insecure: args.insecure_registry.clone(),
        ..RegistryAccess::default()
    };
    if let Some(registry) = args.ollama_registry.as_deref().map(str::trim) {
        if registry.is_empty() || registry.contains(['/', ' ']) {
            return Err(UsageError(format!(
                "`--ollama-registry` takes a host and an optional port, e.g. `registry.example:5000`, not `{}`",
                catalog_core::printable(registry)
            ))
            .into());
        }
        access.ollama_registry = Some(registry.to_owned());
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
        access.login = Some((username.clone(), Secret::new(password)));
    }
    Ok(access)
}

/// The object store's flags, mapped onto `builder`: `--endpoint-url` and `--no-sign-request`
/// for every source that reads them, `--region` for S3.
fn object_store(builder: ProvisionerBuilder, args: &S3Args) -> anyhow::Result<ProvisionerBuilder> {
    let endpoint = match &args.endpoint_url {
        Some(text) => Some(
            model_provisioner::object_store::parse_endpoint(text).ok_or_else(|| {
                UsageError(format!(
                    "`--endpoint-url` takes `http(s)://host[:port]`, not `{}`",
                    catalog_core::printable(text)
                ))
            })?,
        ),
        None => None,
    };
    Ok(builder
        .endpoint_url(endpoint)
        .no_sign_request(args.no_sign_request)
        .s3_access(S3Access {
            region: args.region.clone(),
            ..S3Access::default()
        }))
}

/// How bytes move, from `--limit-rate` and `--progress`, mapped onto `builder`.
fn transfer_settings(builder: ProvisionerBuilder, args: &TransferArgs) -> ProvisionerBuilder {
    let builder = builder.limit_rate(args.limit_rate.clone());
    match args.progress {
        ProgressFormat::Bars => builder,
        ProgressFormat::Json => builder.reporter(Arc::new(Events::new(|event: &Event<'_>| {
            use std::io::Write as _;
            let line = format!("{}\n", json_line(event));
            // A closed standard error loses the events, not the work.
            let _ = std::io::stderr().lock().write_all(line.as_bytes());
        }))),
    }
}

/// A reference from the command line, parsed here rather than by clap, whose message would
/// echo the input raw (control characters and URL credentials included); ours are escaped and
/// redacted.
fn parse_reference(text: &str) -> anyhow::Result<ModelRef> {
    Ok(model_provisioner::parse_ref(text).map_err(|e| {
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

/// `e`, as a usage error when the library refused what the arguments named: a destination or
/// a mirror prefix no push can go to, a model no mirror rule maps.
fn usage_if_refused(e: Error) -> anyhow::Error {
    if e.is_usage() {
        UsageError(match e.hint() {
            Some(hint) => format!("{e}\nhint: {hint}"),
            None => e.to_string(),
        })
        .into()
    } else {
        e.into()
    }
}
