//! `ensure`: its flags as the library's options, and the model it ensured.

use std::fmt::Write as _;
use std::process::ExitCode;
use std::time::Duration;

use catalog_core::{ModelRef, Outcome};
use model_provisioner::HfClient;
use model_provisioner::list::{LIST_LIMIT, ModelList};
use model_provisioner::mirror::Mirrors;
use serde::Serialize;

use super::{
    Context, Provisioner, UsageError, object_store, parse_reference, registry_access,
    transfer_settings, usage_if_refused,
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
    #[serde(skip_serializing_if = "Option::is_none")]
    signature: Option<&'a catalog_core::SignatureCheck>,
}

pub(super) fn ensure(cx: &Context, args: &EnsureArgs) -> anyhow::Result<ExitCode> {
    if let Some(list) = &args.from {
        return ensure_list(cx, args, list);
    }
    let text = args
        .reference
        .as_deref()
        .expect("clap requires REF without --from");
    let reference = parse_reference(text)?;
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
            "`--include` and `--exclude` select files of a whole repository (`hf:org/repo`, `modelscope:org/repo`) or a bucket's folder (`s3://bucket/prefix/`, `gs://…/`, `az://…/`)"
                .into(),
        )
        .into());
    }
    let provisioner = provisioner(cx, args, &args.include, &args.exclude, &[], args.json)?;
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
            signature: e.signature.as_ref(),
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

/// A provisioner as `ensure`'s flags say, selecting `include` and `exclude`, with the mirror
/// rules `mirrors` before those of the flags and the environment.
fn provisioner(
    cx: &Context,
    args: &EnsureArgs,
    include: &[String],
    exclude: &[String],
    mirrors: &[String],
    quiet: bool,
) -> anyhow::Result<Provisioner> {
    let mirrors = mirror_rules(cx, args, mirrors)?;
    let registry = registry_access(&args.registry)?;
    let builder = transfer_settings(object_store(cx.builder(quiet), &args.s3)?, &args.transfer);
    Ok(builder
        .copy_local_files(args.copy)
        .connections(args.connections.map(usize::from))
        .retries(args.retries)
        .stall_timeout(Duration::from_secs(args.stall_timeout))
        .hf(Some(match args.via {
            Via::Native => HfClient::Native,
            Via::HfCli => HfClient::Cli,
        }))
        .offline(args.offline)
        .include(include.to_vec())
        .exclude(exclude.to_vec())
        .parallel_files(usize::from(args.parallel_files))
        .registry_access(registry)
        .mirrors(mirrors)
        .refresh(args.refresh)
        .lock_timeout(args.lock_timeout.map(Duration::from_secs))
        .signed_by(args.signed_by.clone())
        .signature(args.signature.clone())
        .signers(cx.signer_rules()?)
        .build()?)
}

/// One model of an `ensure --from --json`.
#[derive(Serialize)]
struct ListedJson<'a> {
    #[serde(rename = "ref")]
    reference: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    local_path: Option<&'a std::path::Path>,
    #[serde(skip_serializing_if = "Option::is_none")]
    verification: Option<Outcome>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cached: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    bytes_read: Option<u64>,
    /// The exit status this model alone would give.
    status: u8,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    hint: Option<String>,
}

/// What became of one model of a list.
enum Listed {
    Ensured(Box<model_provisioner::Ensured>),
    Failed {
        status: u8,
        error: String,
        hint: Option<String>,
    },
}

impl Listed {
    fn failed(e: &anyhow::Error) -> Self {
        let ours = e.downcast_ref::<model_provisioner::Error>();
        let status = if e.downcast_ref::<UsageError>().is_some() {
            2
        } else {
            match ours.map(model_provisioner::Error::class) {
                Some("verification") => crate::EXIT_VERIFY_FAILED,
                Some("usage") => 2,
                _ => 1,
            }
        };
        Listed::Failed {
            status,
            error: format!("{e:#}"),
            hint: ours.and_then(model_provisioner::Error::hint),
        }
    }

    fn status(&self) -> u8 {
        match self {
            Listed::Ensured(_) => 0,
            Listed::Failed { status, .. } => *status,
        }
    }
}

/// `ensure --from LIST`: every model of the list, each group of one set of settings by one
/// provisioner, its models at once; one line (or JSON object) per model, in the list's order;
/// the worst exit status of them.
fn ensure_list(
    cx: &Context,
    args: &EnsureArgs,
    path: &std::path::Path,
) -> anyhow::Result<ExitCode> {
    let text = read_list(path)?;
    let list = ModelList::parse(&text, &path.display().to_string())
        .map_err(|e| UsageError(e.to_string()))?;
    let mut outcomes: Vec<Option<Listed>> = list.models.iter().map(|_| None).collect();
    for group in list.groups() {
        let s = &group.settings;
        let provisioner = provisioner(cx, args, &s.include, &s.exclude, &s.mirrors, args.json)?;
        // Each model's reference, read as `ensure REF` reads it; a model that cannot be read
        // fails alone.
        let mut asked = Vec::new();
        for (i, model) in &group.models {
            match listed_request(model) {
                Ok(request) => asked.push((*i, request)),
                Err(e) => outcomes[*i] = Some(Listed::failed(&e)),
            }
        }
        let requests: Vec<_> = asked.iter().map(|(_, r)| r.clone()).collect();
        let results = provisioner.ensure_all(&requests, usize::from(args.parallel_models));
        for ((i, _), result) in asked.iter().zip(results) {
            outcomes[*i] = Some(match result {
                Ok(ensured) => Listed::Ensured(Box::new(ensured)),
                Err(e) => Listed::failed(&e.into()),
            });
        }
    }
    let outcomes: Vec<Listed> = outcomes
        .into_iter()
        .map(|o| o.expect("every model was tried"))
        .collect();
    print_list(&list, &outcomes, args.json)?;
    let worst = outcomes.iter().map(Listed::status).max().unwrap_or(0);
    Ok(ExitCode::from(worst))
}

/// The text of the list at `path` (`-`: standard input), at most [`LIST_LIMIT`] bytes.
fn read_list(path: &std::path::Path) -> anyhow::Result<String> {
    use std::io::Read as _;
    let mut text = String::new();
    let read = if path.as_os_str() == "-" {
        std::io::stdin()
            .take(LIST_LIMIT + 1)
            .read_to_string(&mut text)
    } else {
        std::fs::File::open(path).and_then(|f| f.take(LIST_LIMIT + 1).read_to_string(&mut text))
    };
    read.map_err(|e| {
        UsageError(format!(
            "cannot read the model list `{}`: {e}",
            path.display()
        ))
    })?;
    if text.len() as u64 > LIST_LIMIT {
        return Err(UsageError(format!(
            "the model list `{}` is larger than {} MiB",
            path.display(),
            LIST_LIMIT >> 20
        ))
        .into());
    }
    Ok(text)
}

/// A listed model's reference (its revision applied) and digest.
fn listed_request(
    model: &model_provisioner::list::ListedModel,
) -> anyhow::Result<(ModelRef, Option<catalog_core::Digest>)> {
    let reference = with_revision(
        &parse_reference(&model.reference)?,
        model.revision.as_deref(),
    )?;
    let digest = match &model.digest {
        Some(d) => Some(
            d.parse::<catalog_core::Digest>()
                .map_err(|e| UsageError(format!("`{}`: {e}", model.reference)))?,
        ),
        None => None,
    };
    Ok((reference, digest))
}

/// One line per model (`ok`, `FAIL`), or the JSON object of them all.
fn print_list(list: &ModelList, outcomes: &[Listed], json: bool) -> anyhow::Result<()> {
    if json {
        let models: Vec<ListedJson<'_>> = list
            .models
            .iter()
            .zip(outcomes)
            .map(|(model, outcome)| match outcome {
                Listed::Ensured(e) => ListedJson {
                    reference: &model.reference,
                    id: Some(&e.entry.id),
                    local_path: Some(&e.entry.local_path),
                    verification: Some(e.entry.verification.outcome),
                    cached: Some(e.cached),
                    bytes_read: Some(e.bytes_read),
                    status: 0,
                    error: None,
                    hint: None,
                },
                Listed::Failed {
                    status,
                    error,
                    hint,
                } => ListedJson {
                    reference: &model.reference,
                    id: None,
                    local_path: None,
                    verification: None,
                    cached: None,
                    bytes_read: None,
                    status: *status,
                    error: Some(error.clone()),
                    hint: hint.clone(),
                },
            })
            .collect();
        return print_json(&serde_json::json!({ "models": models }));
    }
    let mut text = String::new();
    for (model, outcome) in list.models.iter().zip(outcomes) {
        let _ = match outcome {
            Listed::Ensured(e) => writeln!(
                text,
                "ok    {}  {}  {} ({})",
                e.entry.id,
                e.entry.local_path.display(),
                outcome_text(e.entry.verification.outcome),
                if e.cached { "already present" } else { "ready" },
            ),
            Listed::Failed { error, .. } => writeln!(
                text,
                "FAIL  {}  {}",
                model.reference,
                error.replace('\n', " ")
            ),
        };
    }
    Ok(print(&text)?)
}

/// The mirror rules of an `ensure`: `first` (a listed model's), `--mirror`, then
/// `MODEL_PROVISIONER_MIRRORS`, then `<cache>/mirrors.conf`; none with `--no-mirror`.
fn mirror_rules(cx: &Context, args: &EnsureArgs, first: &[String]) -> anyhow::Result<Mirrors> {
    if args.no_mirror {
        return Ok(Mirrors::new());
    }
    Mirrors::configured(first.iter().chain(&args.mirror), &cx.cache_dir).map_err(usage_if_refused)
}

/// `reference` with `--revision` applied; a conflicting pin is a usage error.
fn with_revision(reference: &ModelRef, revision: Option<&str>) -> anyhow::Result<ModelRef> {
    let Some(revision) = revision else {
        return Ok(reference.clone());
    };
    reference.with_revision(revision).map_err(|e| {
        UsageError(match e.hint() {
            Some(hint) => format!("{e}\nhint: {hint}"),
            None => e.to_string(),
        })
        .into()
    })
}
