//! `ensure`: its flags as the provisioner's configuration, and the model it ensured.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use catalog_core::{ModelRef, Outcome};
use model_provisioner::download::{DownloadConfig, OBJECT_STORE_CONNECTIONS, RetryPolicy};
use model_provisioner::hf::HfConfig;
use model_provisioner::mirror::{MIRRORS_ENV, MIRRORS_FILE, Mirrors};
use model_provisioner::s3::S3Options;
use model_provisioner::{HfClient, ModelProvisioner};
use serde::Serialize;

use super::{Context, UsageError, oci_config, parse_reference, s3_config};
use crate::cli::{EnsureArgs, Via};
use crate::output::{human_bytes, outcome_text, print, print_json};
use crate::progress::BarReporter;

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

pub(super) fn ensure(cx: &Context, args: &EnsureArgs) -> anyhow::Result<ExitCode> {
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
