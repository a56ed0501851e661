//! `ensure`: its flags as the library's options, and the model it ensured.

use std::process::ExitCode;
use std::time::Duration;

use catalog_core::{ModelRef, Outcome};
use model_provisioner::HfClient;
use model_provisioner::mirror::{MIRRORS_ENV, MIRRORS_FILE, Mirrors, ParseMirrorError};
use serde::Serialize;

use super::{
    Context, UsageError, object_store, parse_reference, registry_access, transfer_settings,
};
use crate::cli::{EnsureArgs, Via};
use crate::output::{human_bytes, outcome_text, print, print_json};

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
    let filtered = !(args.include.is_empty() && args.exclude.is_empty());
    if filtered && !reference.is_collection() {
        return Err(UsageError(
            "`--include` and `--exclude` select files of a whole `hf:` repository (`hf:org/repo`) or an S3 folder (`s3://bucket/prefix/`)"
                .into(),
        )
        .into());
    }
    let mirrors = mirror_rules(cx, args)?;
    let registry = registry_access(&args.registry)?;
    let builder = transfer_settings(
        object_store(cx.builder(args.json), &args.s3)?,
        &args.transfer,
    );
    let provisioner = builder
        .copy_local_files(args.copy)
        .connections(args.connections.map(usize::from))
        .retries(args.retries)
        .stall_timeout(Duration::from_secs(args.stall_timeout))
        .hf(Some(match args.via {
            Via::Native => HfClient::Native,
            Via::HfCli => HfClient::Cli,
        }))
        .offline(args.offline)
        .include(args.include.clone())
        .exclude(args.exclude.clone())
        .parallel_files(usize::from(args.parallel_files))
        .registry_access(registry)
        .mirrors(mirrors)
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
    let usage = |e: ParseMirrorError| {
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
