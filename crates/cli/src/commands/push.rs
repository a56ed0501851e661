//! `push` and `mirror`: the library publishes, verified; this prints what it did.

use std::fmt::Write as _;
use std::process::ExitCode;

use serde::Serialize;

use super::{
    Context, Provisioner, object_store, parse_reference, registry_access, transfer_settings,
    usage_if_refused,
};
use crate::cli::{MirrorArgs, PushArgs, RegistryArgs, S3Args, TransferArgs};
use crate::output::{human_bytes, print, print_json};

/// The `push --json` object.
#[derive(Serialize)]
struct PushJson<'a> {
    id: &'a str,
    destination: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    manifest_digest: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    manifest_key: Option<&'a str>,
    files: usize,
    bytes_uploaded: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    blobs_skipped: Option<usize>,
}

/// The `mirror --json` object.
#[derive(Serialize)]
struct MirrorJson<'a> {
    id: &'a str,
    mirror: &'a str,
    rule: &'a str,
    destinations: &'a [String],
    files: usize,
    bytes_uploaded: u64,
}

/// A provisioner that reaches registries and buckets as the flags say.
fn publisher(
    cx: &Context,
    registry: &RegistryArgs,
    s3: &S3Args,
    transfer: &TransferArgs,
    sign: Option<&model_provisioner::signing::PushSigner>,
    json: bool,
) -> anyhow::Result<Provisioner> {
    let registry = registry_access(registry)?;
    Ok(
        transfer_settings(object_store(cx.builder(json), s3)?, transfer)
            .http(false)
            .hf(None)
            .registry_access(registry)
            .sign_pushes(sign.cloned())
            .build()?,
    )
}

pub(super) fn push(cx: &Context, args: &PushArgs) -> anyhow::Result<ExitCode> {
    let destination = parse_reference(&args.destination)?;
    let provisioner = publisher(
        cx,
        &args.registry,
        &args.s3,
        &args.transfer,
        args.sign.as_ref(),
        args.json,
    )?;
    let pushed = provisioner
        .push(&args.target, &destination)
        .map_err(usage_if_refused)?;
    if args.json {
        print_json(&PushJson {
            id: &pushed.id,
            destination: &pushed.destination,
            manifest_digest: pushed.manifest_digest.as_ref().map(ToString::to_string),
            manifest_key: pushed.manifest_key.as_deref(),
            files: pushed.files,
            bytes_uploaded: pushed.bytes_uploaded,
            blobs_skipped: pushed.blobs_skipped,
        })?;
    } else {
        let mut out = format!(
            "pushed {} to {} ({} files, {} uploaded)\n",
            pushed.id,
            pushed.destination,
            pushed.files,
            human_bytes(pushed.bytes_uploaded)
        );
        if let Some(digest) = &pushed.manifest_digest {
            let _ = writeln!(out, "manifest:     {digest}");
        }
        if let Some(key) = &pushed.manifest_key {
            let _ = writeln!(out, "manifest:     {key}");
        }
        print(&out)?;
    }
    Ok(ExitCode::SUCCESS)
}

pub(super) fn mirror(cx: &Context, args: &MirrorArgs) -> anyhow::Result<ExitCode> {
    let provisioner = publisher(
        cx,
        &args.registry,
        &args.s3,
        &args.transfer,
        args.sign.as_ref(),
        args.json,
    )?;
    let mirrored = provisioner
        .mirror(&args.target, &args.mirror)
        .map_err(usage_if_refused)?;
    if args.json {
        print_json(&MirrorJson {
            id: &mirrored.id,
            mirror: &mirrored.mirror,
            rule: &mirrored.rule,
            destinations: &mirrored.destinations,
            files: mirrored.files,
            bytes_uploaded: mirrored.bytes_uploaded,
        })?;
    } else {
        let mut text = format!(
            "mirrored {} to {} ({} files, {} uploaded)\n",
            mirrored.id,
            mirrored.mirror,
            mirrored.files,
            human_bytes(mirrored.bytes_uploaded)
        );
        for dest in &mirrored.destinations {
            let _ = writeln!(text, "  {dest}");
        }
        let _ = writeln!(text, "pull through it with: --mirror '{}'", mirrored.rule);
        print(&text)?;
    }
    Ok(ExitCode::SUCCESS)
}
