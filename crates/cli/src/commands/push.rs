//! `push` and `mirror`: a model of the catalog published to a registry or a bucket.

use std::fmt::Write as _;
use std::process::ExitCode;

use catalog_core::{CatalogEntry, ModelRef};
use model_provisioner::download::DownloadConfig;
use model_provisioner::mirror::{HfLocation, HfMirror, MirrorContext, Mirrors, Target};
use model_provisioner::oci::{OciConfig, OciFetcher};
use model_provisioner::s3::credentials::S3Config;
use model_provisioner::s3::{S3Fetcher, S3Options};
use serde::Serialize;

use super::{Context, Provisioner, UsageError, oci_config, parse_reference, s3_config};
use crate::cli::{MirrorArgs, PushArgs};
use crate::output::{human_bytes, print, print_json};
use crate::progress::BarReporter;

/// A fetcher for `push` and `mirror` to a bucket, trusting the roots of `AWS_CA_BUNDLE` (or
/// the profile's `ca_bundle`) as `ensure` does.
fn s3_pusher(config: S3Config, options: S3Options) -> S3Fetcher {
    let download = DownloadConfig {
        ca_bundle: config.ca_bundle.clone(),
        ..DownloadConfig::default()
    };
    S3Fetcher::new(config, options, download)
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

pub(super) fn push(cx: &Context, args: &PushArgs) -> anyhow::Result<ExitCode> {
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

pub(super) fn mirror(cx: &Context, args: &MirrorArgs) -> anyhow::Result<ExitCode> {
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
