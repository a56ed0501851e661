//! One function per subcommand.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use catalog_core::ModelRef;
use catalog_core::{
    ArtifactRemoval, CatalogEntry, CatalogStore, Deletion, FsCatalog, Lifecycle, Outcome,
};
use model_provisioner::download::{DownloadConfig, OBJECT_STORE_CONNECTIONS, RetryPolicy};
use model_provisioner::hf::HfConfig;
use model_provisioner::mirror::{
    HfLocation, HfMirror, MIRRORS_ENV, MIRRORS_FILE, MirrorContext, Mirrors, Target,
};
use model_provisioner::oci::auth::Secret;
use model_provisioner::oci::{OciConfig, OciFetcher};
use model_provisioner::s3::credentials::S3Config;
use model_provisioner::s3::{S3Fetcher, S3Options};
use model_provisioner::{AnyFetcher, Error, HfClient, ModelProvisioner};
use serde::Serialize;

use crate::cli::{
    Cli, Command, EnsureArgs, GcArgs, MirrorArgs, PushArgs, RegistryArgs, S3Args, VerifyArgs, Via,
};
use crate::output::{entries_table, entry_details, human_bytes, outcome_text, print, print_json};
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
        Command::Ensure(args) => ensure(&context, &args),
        Command::Ls(args) => ls(&context, args.json),
        Command::Show(args) => show(&context, &args.target, args.json),
        Command::Verify(args) => verify(&context, &args),
        Command::Retire(args) => retire(&context, &args.target),
        Command::Rm(args) => rm(&context, &args.target),
        Command::Gc(args) => gc(&context, &args),
        Command::Push(args) => push(&context, &args),
        Command::Mirror(args) => mirror(&context, &args),
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

/// The `ensure --json` object.
#[derive(Serialize)]
struct EnsureJson<'a> {
    id: &'a str,
    local_path: &'a std::path::Path,
    verification: Outcome,
    #[serde(skip_serializing_if = "Option::is_none")]
    digest: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    computed: Option<String>,
    bytes: u64,
    bytes_read: u64,
    cached: bool,
    storage: catalog_core::Storage,
    duration_ms: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    model_info: Option<&'a catalog_core::ModelInfo>,
}

/// How downloads are made: for every source but S3, and for S3. `--connections` applies to
/// both; without it, each has its own default.
fn download_configs(args: &EnsureArgs) -> (DownloadConfig, DownloadConfig) {
    let download = DownloadConfig {
        retry: RetryPolicy {
            retries: args.retries,
            ..RetryPolicy::default()
        },
        stall_timeout: Duration::from_secs(args.stall_timeout),
        ..DownloadConfig::default()
    };
    let connections = args.connections.map(usize::from);
    let object_store = DownloadConfig {
        connections: connections.unwrap_or(OBJECT_STORE_CONNECTIONS),
        ..download.clone().for_object_store()
    };
    let download = DownloadConfig {
        connections: connections.unwrap_or(download.connections),
        ..download
    };
    (download, object_store)
}

fn ensure(cx: &Context, args: &EnsureArgs) -> anyhow::Result<ExitCode> {
    let reference = parse_reference(&args.reference)?;
    let digest = match &args.digest {
        Some(d) => Some(
            d.parse::<catalog_core::Digest>()
                .map_err(|e| UsageError(e.to_string()))?,
        ),
        None => None,
    };
    let reference = with_revision(&reference, args.revision.as_deref())?;
    let whole_repo = match &reference {
        ModelRef::Hf(h) => h.path.is_none(),
        ModelRef::S3(s) => s.is_prefix(),
        _ => false,
    };
    let filtered = !(args.include.is_empty() && args.exclude.is_empty());
    if filtered && !whole_repo {
        return Err(UsageError(
            "`--include` and `--exclude` select files of a whole `hf:` repository (`hf:org/repo`) or an S3 folder (`s3://bucket/prefix/`)"
                .into(),
        )
        .into());
    }
    let mut hf = HfConfig::from_env();
    hf.offline |= args.offline;
    hf.include.clone_from(&args.include);
    hf.exclude.clone_from(&args.exclude);
    hf.parallel_files = usize::from(args.parallel_files);
    let mirrors = mirror_rules(cx, args)?;
    let to_bucket = mirrors.rules().iter().any(|r| r.mirror().starts_with("s3"));
    let s3 = s3_config(
        &args.s3,
        S3Options {
            include: args.include.clone(),
            exclude: args.exclude.clone(),
            parallel_files: usize::from(args.parallel_files),
            offline: args.offline,
        },
        &reference,
        to_bucket,
    )?;
    let (download, object_store) = download_configs(args);
    let provisioner = ModelProvisioner::builder(&cx.cache_dir)
        .copy_local_files(args.copy)
        .download_config(download)
        .s3_download_config(object_store)
        .hf(Some(match args.via {
            Via::Native => HfClient::Native,
            Via::HfCli => HfClient::Cli,
        }))
        .hf_config(hf)
        .oci_config(oci_config(&args.registry, args.offline)?)
        .mirrors(mirrors);
    let provisioner = match s3 {
        Some((config, options)) => provisioner.s3_config(config, options),
        None => provisioner,
    };
    let provisioner = provisioner
        .reporter(Arc::new(BarReporter::new(cx.quiet || args.json)))
        .refresh(args.refresh)
        .lock_timeout(args.lock_timeout.map(Duration::from_secs))
        .build()?;
    let ensured = provisioner.ensure(&reference, digest.as_ref())?;
    let e = &ensured.entry;
    if args.json {
        print_json(&EnsureJson {
            id: &e.id,
            local_path: &e.local_path,
            verification: e.verification.outcome,
            digest: e.digest.as_ref().map(ToString::to_string),
            computed: e.verification.computed.as_ref().map(ToString::to_string),
            bytes: e.size_bytes,
            bytes_read: ensured.bytes_read,
            cached: ensured.cached,
            storage: e.storage,
            duration_ms: ensured.duration_ms,
            model_info: e.model_info.as_ref(),
        })?;
    } else {
        let status = if ensured.cached {
            "already present"
        } else {
            "ready"
        };
        print(&format!(
            "id:            {}\npath:          {}\nverification:  {}\nsize:          {} ({status})\n",
            e.id,
            e.local_path.display(),
            outcome_text(e.verification.outcome),
            human_bytes(e.size_bytes),
        ))?;
    }
    Ok(ExitCode::SUCCESS)
}

fn ls(cx: &Context, json: bool) -> anyhow::Result<ExitCode> {
    let entries = FsCatalog::open(&cx.cache_dir)?.list()?;
    if json {
        print_json(&entries)?;
    } else {
        print(&entries_table(&entries))?;
    }
    Ok(ExitCode::SUCCESS)
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

/// A fetcher for `push` and `mirror` to a bucket, trusting the roots of `AWS_CA_BUNDLE` (or
/// the profile's `ca_bundle`) as `ensure` does.
fn s3_pusher(config: S3Config, options: S3Options) -> S3Fetcher {
    let download = DownloadConfig {
        ca_bundle: config.ca_bundle.clone(),
        ..DownloadConfig::default()
    };
    S3Fetcher::new(config, options, download)
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

/// The `push --json` object.
#[derive(Serialize)]
struct PushJson<'a> {
    id: &'a str,
    destination: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    manifest_digest: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    manifest_key: Option<String>,
    files: usize,
    bytes_uploaded: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    blobs_skipped: Option<usize>,
}

fn push(cx: &Context, args: &PushArgs) -> anyhow::Result<ExitCode> {
    let provisioner = cx.provisioner()?;
    let result = push_model(cx, args, &provisioner);
    recording_failure(&provisioner, &args.target, result)
}

/// `result` of a push of `target`; when the push found the model's bytes no longer match, the
/// entry is verified again first, which records the failure (as `verify` does), so that the
/// model is not handed out as it was.
fn recording_failure(
    provisioner: &Provisioner,
    target: &str,
    result: anyhow::Result<ExitCode>,
) -> anyhow::Result<ExitCode> {
    if let Err(e) = &result
        && e.downcast_ref::<model_provisioner::Error>()
            .is_some_and(model_provisioner::Error::is_verification_failure)
        && let Err(recorded) = provisioner.verify(target)
        && !recorded.is_verification_failure()
    {
        tracing::warn!(error = %recorded, "the failed verification could not be recorded");
    }
    result
}

fn push_model(
    cx: &Context,
    args: &PushArgs,
    provisioner: &Provisioner,
) -> anyhow::Result<ExitCode> {
    let destination = parse_reference(&args.destination)?;
    // Bytes that no longer verify are never pushed: the push hashes every byte it sends and
    // publishes nothing unless each file matches the catalog's digests (a mismatch exits 3).
    let entry = provisioner.find(&args.target)?;
    let layout = catalog_core::CacheLayout::new(&cx.cache_dir)?;
    let reporter = BarReporter::new(cx.quiet || args.json);
    let report = match &destination {
        ModelRef::Oci(oci) => {
            let fetcher = OciFetcher::new(
                oci_config(&args.registry, false)?,
                DownloadConfig::default(),
            );
            let r = fetcher.push(&layout, &entry, oci, &reporter)?;
            PushJson {
                id: &entry.id,
                destination: destination.redacted(),
                manifest_digest: Some(r.manifest_digest.to_string()),
                manifest_key: None,
                files: r.files,
                bytes_uploaded: r.bytes_uploaded,
                blobs_skipped: Some(r.blobs_skipped),
            }
        }
        ModelRef::S3(s3) => {
            let (config, options) = s3_config(&args.s3, S3Options::default(), &destination, true)?
                .ok_or_else(|| anyhow::anyhow!("the S3 configuration could not be read"))?;
            let fetcher = s3_pusher(config, options);
            let r = fetcher.push(&layout, &entry, s3, &reporter)?;
            PushJson {
                id: &entry.id,
                destination: destination.redacted(),
                manifest_digest: None,
                manifest_key: Some(r.manifest_key),
                files: r.files,
                bytes_uploaded: r.bytes_uploaded,
                blobs_skipped: None,
            }
        }
        _ => {
            return Err(UsageError(format!(
                "`push` publishes to `oci://registry/repo:tag` or `s3://bucket/prefix/`, not `{}`",
                destination.redacted()
            ))
            .into());
        }
    };
    if args.json {
        print_json(&report)?;
    } else {
        let mut out = format!(
            "pushed {} to {} ({} files, {} uploaded)\n",
            report.id,
            report.destination,
            report.files,
            human_bytes(report.bytes_uploaded)
        );
        if let Some(digest) = &report.manifest_digest {
            let _ = writeln!(out, "manifest:     {digest}");
        }
        if let Some(key) = &report.manifest_key {
            let _ = writeln!(out, "manifest:     {key}");
        }
        print(&out)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// The mirror rules of an `ensure`: `--mirror`, then `MODEL_PROVISIONER_MIRRORS`, then
/// `<cache>/mirrors.conf`; none with `--no-mirror`.
fn mirror_rules(cx: &Context, args: &EnsureArgs) -> anyhow::Result<Mirrors> {
    if args.no_mirror {
        return Ok(Mirrors::new());
    }
    let usage = |e: model_provisioner::mirror::ParseMirrorError| {
        UsageError(match e.hint() {
            Some(hint) => format!("{e}\nhint: {hint}"),
            None => e.to_string(),
        })
    };
    let mut mirrors = Mirrors::from_flags(&args.mirror).map_err(usage)?;
    if let Ok(value) = std::env::var(MIRRORS_ENV) {
        mirrors.extend(Mirrors::from_env_value(&value).map_err(usage)?);
    }
    mirrors.extend(Mirrors::from_file(&cx.cache_dir.join(MIRRORS_FILE))?);
    Ok(mirrors)
}

/// The `mirror --json` object.
#[derive(Serialize)]
struct MirrorJson<'a> {
    id: &'a str,
    mirror: &'a str,
    rule: String,
    destinations: Vec<String>,
    files: usize,
    bytes_uploaded: u64,
}

fn mirror(cx: &Context, args: &MirrorArgs) -> anyhow::Result<ExitCode> {
    let provisioner = cx.provisioner()?;
    let result = mirror_model(cx, args, &provisioner);
    recording_failure(&provisioner, &args.target, result)
}

fn mirror_model(
    cx: &Context,
    args: &MirrorArgs,
    provisioner: &Provisioner,
) -> anyhow::Result<ExitCode> {
    let prefix = args.mirror.trim();
    // Bytes that no longer verify are never pushed: each push hashes every byte it sends and
    // publishes nothing unless each file matches the catalog's digests (a mismatch exits 3).
    let entry = provisioner.find(&args.target)?;
    let source: ModelRef = entry
        .source
        .parse()
        .or_else(|_| entry.id.parse())
        .map_err(|e: catalog_core::ParseRefError| anyhow::anyhow!("the entry's source: {e}"))?;
    let layout = catalog_core::CacheLayout::new(&cx.cache_dir)?;
    let reporter = BarReporter::new(cx.quiet || args.json);
    let registry = oci_config(&args.registry, false)?;
    let mut out = MirrorJson {
        id: &entry.id,
        mirror: prefix,
        rule: String::new(),
        destinations: Vec::new(),
        files: 0,
        bytes_uploaded: 0,
    };
    match &source {
        ModelRef::Hf(hf) => mirror_hf(args, &entry, hf, (&layout, &reporter), registry, &mut out)?,
        other => {
            if let Some(code) = mirror_by_rule(
                args,
                &entry,
                other,
                (&layout, &reporter),
                registry,
                &mut out,
            )? {
                return Ok(code);
            }
        }
    }
    if args.json {
        print_json(&out)?;
    } else {
        let mut text = format!(
            "mirrored {} to {} ({} files, {} uploaded)\n",
            out.id,
            out.mirror,
            out.files,
            human_bytes(out.bytes_uploaded)
        );
        for dest in &out.destinations {
            let _ = writeln!(text, "  {dest}");
        }
        let _ = writeln!(text, "pull through it with: --mirror '{}'", out.rule);
        print(&text)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// `mirror` of an `hf:` model: its commit's tag or folder, and its revision's tag or ref object.
fn mirror_hf(
    args: &MirrorArgs,
    entry: &CatalogEntry,
    hf: &catalog_core::HfRef,
    (layout, reporter): (&catalog_core::CacheLayout, &BarReporter),
    registry: OciConfig,
    out: &mut MirrorJson<'_>,
) -> anyhow::Result<()> {
    let prefix = out.mirror;
    let usage = |e: model_provisioner::Error| UsageError(e.to_string());
    let provenance = entry.provenance.as_ref();
    let commit = provenance
        .and_then(|p| p.resolved_revision.clone())
        .filter(|c| c.len() == 40 && c.bytes().all(|b| b.is_ascii_hexdigit()))
        .ok_or_else(|| {
            anyhow::anyhow!(
                "`{}` records no commit; ensure it again with `--refresh`",
                entry.id
            )
        })?;
    let (include, exclude) = provenance.map_or((Vec::new(), Vec::new()), |p| {
        (p.include.clone(), p.exclude.clone())
    });
    let hm = HfMirror::for_push(hf, prefix, include, exclude).map_err(usage)?;
    out.rule = format!("hf:={prefix}");
    match &hm.location {
        HfLocation::Oci { .. } => {
            let fetcher = OciFetcher::new(registry, DownloadConfig::default());
            let mut tags = vec![hm.commit_tag(&commit)];
            if hm.pinned_commit().is_none() {
                tags.push(hm.revision_tag(hm.revision()));
            }
            for tag in tags {
                let dest = hm
                    .oci(&tag)
                    .ok_or_else(|| anyhow::anyhow!("no registry location for `{tag}`"))?;
                let r = fetcher.push(layout, entry, &dest, reporter)?;
                out.files = r.files;
                out.bytes_uploaded += r.bytes_uploaded;
                out.destinations.push(ModelRef::Oci(dest).to_string());
            }
        }
        HfLocation::S3 { .. } => {
            let folder = hm
                .s3_folder(&hm.commit_tag(&commit))
                .ok_or_else(|| anyhow::anyhow!("no bucket location"))?;
            let target = ModelRef::S3(folder.clone());
            let (config, options) = s3_config(&args.s3, S3Options::default(), &target, true)?
                .ok_or_else(|| anyhow::anyhow!("the S3 configuration could not be read"))?;
            let fetcher = s3_pusher(config, options);
            let r = fetcher.push(layout, entry, &folder, reporter)?;
            out.files = r.files;
            out.bytes_uploaded = r.bytes_uploaded;
            out.destinations.push(target.to_string());
            if hm.pinned_commit().is_none()
                && let Some(object) = hm.s3_ref_object(hm.revision())
            {
                fetcher.put_object(&object, format!("{commit}\n").as_bytes())?;
                out.destinations.push(ModelRef::S3(object).to_string());
            }
        }
    }
    Ok(())
}

/// `mirror` of any other model: where the rule from its registry or bucket maps it. `Some`
/// exit code when it cannot be mirrored.
fn mirror_by_rule(
    args: &MirrorArgs,
    entry: &CatalogEntry,
    other: &ModelRef,
    (layout, reporter): (&catalog_core::CacheLayout, &BarReporter),
    registry: OciConfig,
    out: &mut MirrorJson<'_>,
) -> anyhow::Result<Option<ExitCode>> {
    let prefix = out.mirror;
    let source_prefix = match other {
        ModelRef::Oci(o) => format!("oci://{}", o.registry),
        ModelRef::Ollama(_) => format!("oci://{}", registry.ollama_registry),
        ModelRef::S3(s) => match &s.endpoint {
            Some(endpoint) => format!("s3+{endpoint}/{}", s.bucket),
            None => format!("s3://{}", s.bucket),
        },
        _ => {
            return Err(UsageError(format!(
                "`mirror` pushes models from `hf:`, `oci://`, `ollama:` and `s3://` references, not `{}`\nhint: a model from a web server is mirrored by a caching server in front of it, and `ensure --mirror 'https://host/=https://cache.internal/host/'`",
                other.redacted()
            ))
            .into());
        }
    };
    out.rule = format!("{source_prefix}={prefix}");
    let mirrors = Mirrors::from_flags([&out.rule]).map_err(|e| UsageError(format!("{e}")))?;
    let context = MirrorContext {
        ollama_registry: registry.ollama_registry.clone(),
        ..MirrorContext::default()
    };
    let Some(Target::Reference(dest)) = mirrors
        .routes(other, &context)
        .into_iter()
        .next()
        .map(|r| r.target)
    else {
        return Err(UsageError(format!(
            "`{prefix}` gives no mirror location for `{}`",
            other.redacted()
        ))
        .into());
    };
    match &dest {
        ModelRef::Oci(oci) => {
            let fetcher = OciFetcher::new(registry, DownloadConfig::default());
            let r = fetcher.push(layout, entry, oci, reporter)?;
            out.files = r.files;
            out.bytes_uploaded = r.bytes_uploaded;
        }
        ModelRef::S3(s3) => {
            let (config, options) = s3_config(&args.s3, S3Options::default(), &dest, true)?
                .ok_or_else(|| anyhow::anyhow!("the S3 configuration could not be read"))?;
            let fetcher = s3_pusher(config, options);
            let r = fetcher.push(layout, entry, s3, reporter)?;
            out.files = r.files;
            out.bytes_uploaded = r.bytes_uploaded;
        }
        _ => {
            return Err(UsageError(format!(
                "`mirror` pushes to a registry (`oci://…`) or a bucket (`s3://…`), not `{}`",
                dest.redacted()
            ))
            .into());
        }
    }
    out.destinations.push(dest.redacted());
    Ok(None)
}

fn show(cx: &Context, target: &str, json: bool) -> anyhow::Result<ExitCode> {
    let entry = cx.provisioner()?.find(target)?;
    if json {
        print_json(&entry)?;
    } else {
        print(&entry_details(&entry))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// One line of `verify --json`.
#[derive(Serialize)]
struct VerifyJson {
    id: String,
    verification: Option<Outcome>,
    #[serde(skip_serializing_if = "Option::is_none")]
    expected: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    computed: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

fn verify(cx: &Context, args: &VerifyArgs) -> anyhow::Result<ExitCode> {
    let provisioner = cx.provisioner()?;
    let targets: Vec<String> = if args.all {
        provisioner
            .catalog()
            .list()?
            .into_iter()
            .map(|e| e.id)
            .collect()
    } else {
        args.targets.clone()
    };
    let (mut failed, mut errors) = (0, 0);
    let mut results = Vec::with_capacity(targets.len());
    for target in &targets {
        let result = verify_one(&provisioner, target, &mut failed, &mut errors);
        if !args.json {
            print(&verify_line(&result))?;
        }
        results.push(result);
    }
    if args.json {
        print_json(&results)?;
    } else if targets.is_empty() {
        print("no models in the catalog\n")?;
    }
    if failed > 0 {
        say!(
            "error: {failed} of {} model(s) failed verification",
            targets.len()
        );
        say!(
            "hint: fetch them again with `model-provisioner ensure`, or remove them with `model-provisioner rm`"
        );
        return Ok(ExitCode::from(crate::EXIT_VERIFY_FAILED));
    }
    if errors > 0 {
        // One model's error is already said; a count adds nothing.
        if targets.len() > 1 {
            say!(
                "error: {errors} of {} model(s) could not be verified",
                targets.len()
            );
        }
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// Verifies one model, counting failed verifications and other errors (printed to stderr).
fn verify_one(
    provisioner: &Provisioner,
    target: &str,
    failed: &mut usize,
    errors: &mut usize,
) -> VerifyJson {
    match provisioner.verify(target) {
        Ok(v) => VerifyJson {
            id: v.entry.id.clone(),
            verification: Some(v.entry.verification.outcome),
            expected: v
                .entry
                .digest
                .as_ref()
                .or(v.entry.source_digest.as_ref())
                .map(ToString::to_string),
            computed: v
                .entry
                .verification
                .computed
                .as_ref()
                .map(ToString::to_string),
            bytes: Some(v.bytes),
            error: None,
        },
        Err(Error::DigestMismatch {
            id,
            expected,
            computed,
        }) => {
            *failed += 1;
            VerifyJson {
                id,
                verification: Some(Outcome::Fail),
                expected: Some(expected.to_string()),
                computed: Some(computed.to_string()),
                bytes: None,
                error: None,
            }
        }
        Err(Error::Structure { id, problems }) => {
            *failed += 1;
            let e = Error::Structure {
                id: id.clone(),
                problems,
            };
            VerifyJson {
                id,
                verification: Some(Outcome::Fail),
                expected: None,
                computed: None,
                bytes: None,
                error: Some(e.to_string()),
            }
        }
        Err(e) => {
            *errors += 1;
            let hint = e.hint();
            let message = format!("{:#}", anyhow::Error::from(e));
            say!("error: {message}");
            if let Some(hint) = hint {
                say!("hint: {hint}");
            }
            VerifyJson {
                id: target.to_owned(),
                verification: None,
                expected: None,
                computed: None,
                bytes: None,
                error: Some(message),
            }
        }
    }
}

fn verify_line(r: &VerifyJson) -> String {
    match (r.verification, &r.error) {
        (Some(Outcome::Fail), Some(reason)) => format!("FAIL        {reason}\n"),
        // The reason went to stderr already.
        (_, Some(_)) => format!("error       {}\n", r.id),
        (Some(Outcome::Fail), _) => format!(
            "FAIL        {}: expected `{}`, computed `{}`\n",
            r.id,
            r.expected.as_deref().unwrap_or_default(),
            r.computed.as_deref().unwrap_or_default()
        ),
        (Some(outcome), _) => format!(
            "{:<12}{} ({})\n",
            outcome_text(outcome),
            r.id,
            r.computed.as_deref().unwrap_or_default()
        ),
        (None, None) => String::new(),
    }
}

fn retire(cx: &Context, target: &str) -> anyhow::Result<ExitCode> {
    let provisioner = cx.provisioner()?;
    let entry = provisioner.find(target)?;
    provisioner
        .catalog()
        .set_state(&entry.id, Lifecycle::Retired)?;
    print(&format!("retired {}\n", entry.id))?;
    Ok(ExitCode::SUCCESS)
}

fn rm(cx: &Context, target: &str) -> anyhow::Result<ExitCode> {
    let provisioner = cx.provisioner()?;
    let CatalogEntry { id, .. } = provisioner.find(target)?;
    let Deletion::Removed { entry, artifact } = provisioner.catalog().delete(&id)? else {
        return Err(Error::UnknownId { id }.into());
    };
    let detail = match artifact {
        ArtifactRemoval::Removed { bytes } => format!(
            "deleted its files from the cache, {} freed",
            human_bytes(bytes)
        ),
        ArtifactRemoval::KeptInPlace => {
            format!("left your file `{}` in place", entry.local_path.display())
        }
        ArtifactRemoval::Missing => "its files were already gone".to_owned(),
        ArtifactRemoval::Failed(e) => {
            print(&format!("removed {id}\n"))?;
            return Err(anyhow::Error::from(e).context(format!(
                "removed `{id}` from the catalog, but its files could not be deleted (`model-provisioner gc` will retry)"
            )));
        }
    };
    print(&format!("removed {id}; {detail}\n"))?;
    Ok(ExitCode::SUCCESS)
}

fn gc(cx: &Context, args: &GcArgs) -> anyhow::Result<ExitCode> {
    let catalog = FsCatalog::open(&cx.cache_dir)?;
    let report = catalog
        .gc(args.dry_run)
        .context("garbage collection failed")?;
    if args.json {
        #[derive(Serialize)]
        struct GcJson<'a> {
            dry_run: bool,
            removed: Vec<&'a std::path::Path>,
            bytes: u64,
        }
        print_json(&GcJson {
            dry_run: args.dry_run,
            removed: report.removed.iter().map(|(p, _)| p.as_path()).collect(),
            bytes: report.bytes(),
        })?;
        return Ok(ExitCode::SUCCESS);
    }
    let verb = if args.dry_run {
        "would remove"
    } else {
        "removed"
    };
    let mut text = String::new();
    for (path, size) in &report.removed {
        let _ = writeln!(text, "{verb} {} ({})", path.display(), human_bytes(*size));
    }
    let _ = writeln!(
        text,
        "{verb} {} item(s), {}",
        report.removed.len(),
        human_bytes(report.bytes())
    );
    print(&text)?;
    Ok(ExitCode::SUCCESS)
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

/// `reference` with `--revision` applied; a conflicting pin is a usage error.
fn with_revision(reference: &ModelRef, revision: Option<&str>) -> anyhow::Result<ModelRef> {
    let Some(revision) = revision else {
        return Ok(reference.clone());
    };
    let ModelRef::Hf(hf) = reference else {
        return Err(UsageError("`--revision` applies to `hf:` references only".into()).into());
    };
    if hf.revision.as_deref().is_some_and(|r| r != revision) {
        return Err(UsageError(format!(
            "`{reference}` already pins a revision; drop `--revision {revision}` or the `@…`"
        ))
        .into());
    }
    // Re-parse, so that the revision is checked like one written in the reference.
    let mut pinned = hf.clone();
    pinned.revision = Some(revision.to_owned());
    ModelRef::Hf(pinned)
        .to_string()
        .parse::<ModelRef>()
        .map_err(|e| UsageError(e.to_string()).into())
}
