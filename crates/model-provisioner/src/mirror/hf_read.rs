//! A hub's model (`hf:`, or a registered hub's) read back from a mirror, a registry's or a
//! bucket's, in the layout [`HfMirror`] gives it. The mirror's own source lists its copy like any other model (a
//! registry's tag, a bucket's folder); here, above every source, that listing is held against
//! what was asked ([`check_hf_copy`]) and becomes the listing of the Hub's model, at the commit
//! the copy records, under the reference's own id.

use catalog_core::{ModelRef, SafeRelPath};

use super::hf_copy::{as_hf_listing, check_hf_copy};
use super::{HfLocation, HfMirror};
use crate::error::{Error, Result};
use crate::pipeline::{Listing, Revision, Source};
use crate::request::{FetchRequest, unsupported};

/// The largest ref object read: it holds one commit.
const REF_OBJECT_LIMIT: usize = 1024;

/// The listing of the hub's model `req` names, as `mirror` holds it, read through `source`
/// (the registry's or the bucket's).
pub(crate) fn resolve_hf_copy<'s>(
    source: &'s dyn Source,
    req: &FetchRequest<'_>,
    mirror: &HfMirror,
) -> Result<Listing<'s>> {
    let hf = &mirror.hf;
    if !matches!(req.reference, ModelRef::Hf(_) | ModelRef::Other(_)) {
        return Err(unsupported(req.reference));
    }
    let refuse = |at: &str, reason: String| Error::MirrorMismatch {
        id: req.id.to_owned(),
        mirror: at.to_owned(),
        reason,
    };
    let described = mirror.describe();
    let (location, commit, at) = locate(source, mirror, &|reason| refuse(&described, reason))?;
    let copy = FetchRequest {
        reference: &location,
        id: req.id,
        expected: None,
        layout: req.layout,
        reporter: req.reporter,
        previous: None,
    };
    let mut listing = source.resolve(&copy)?;
    let claim = listing.claim.take().ok_or_else(|| {
        refuse(
            &at,
            "it records no provenance: it is no copy that `model-provisioner mirror` made"
                .to_owned(),
        )
    })?;
    let mut files = Vec::with_capacity(listing.files.len());
    for file in &listing.files {
        if file.unpack.is_some() {
            return Err(refuse(
                &at,
                "it has a tar layer; a mirror holds files".to_owned(),
            ));
        }
        let Some(sha256) = file.stated.sha256() else {
            return Err(refuse(
                &at,
                format!("it states no sha256 for `{}`", file.path),
            ));
        };
        files.push((file.path.to_string(), sha256.clone()));
    }
    let (stated, etags) = check_hf_copy(
        req.id,
        &at,
        mirror,
        claim.id.as_deref(),
        &claim.provenance,
        &files,
    )?;
    if let Some(commit) = commit
        && commit != stated
    {
        return Err(refuse(
            &at,
            format!("its manifest holds commit `{stated}`, not `{commit}`"),
        ));
    }
    let select = match &hf.path {
        Some(path) => {
            // The one file stands for the reference's path, whatever its name there.
            let path: SafeRelPath = path.parse()?;
            for file in &mut listing.files {
                file.path = path.clone();
            }
            Some(path)
        }
        None => None,
    };
    for file in &mut listing.files {
        file.etag = etags.get(file.path.as_str()).cloned().flatten();
    }
    let origin = match (&location, &listing.revision) {
        (ModelRef::Oci(_), Revision::Named(digest)) => format!("{described}@{digest}"),
        (ModelRef::S3(folder), _) => format!(
            "s3+{}/{}/{}",
            listing.origin.as_deref().unwrap_or_default(),
            folder.bucket,
            folder.key
        ),
        (ModelRef::Other(_), _) => location.redacted(),
        _ => described,
    };
    as_hf_listing(&mut listing, req, mirror, (stated, select), origin);
    Ok(listing)
}

/// Where `mirror` keeps its copy, with the commit when that is known before the copy is read,
/// and the copy described for messages: the tag of its commit (pinned) or of its revision
/// name in a registry; the folder of its commit in a bucket, whose ref object names the
/// revision's commit.
fn locate(
    source: &dyn Source,
    mirror: &HfMirror,
    refuse: &dyn Fn(String) -> Error,
) -> Result<(ModelRef, Option<String>, String)> {
    let described = mirror.describe();
    let nowhere = || refuse("no location of its kind".to_owned());
    Ok(match &mirror.location {
        HfLocation::Oci { .. } => {
            let tag = match mirror.pinned_commit() {
                Some(commit) => mirror.commit_tag(&commit),
                None => mirror.revision_tag(mirror.revision()),
            };
            let oci = mirror.oci(&tag).ok_or_else(nowhere)?;
            (ModelRef::Oci(oci), None, format!("{described}:{tag}"))
        }
        HfLocation::Bucket { .. } => {
            let commit = match mirror.pinned_commit() {
                Some(commit) => commit,
                None => ref_object(source, mirror, refuse)?,
            };
            let tag = mirror.commit_tag(&commit);
            let folder = completed(source, mirror.folder(&tag).ok_or_else(nowhere)?);
            (folder, Some(commit), format!("{described}{tag}"))
        }
    })
}

/// The commit the bucket mirror's ref object for the revision `mirror` names holds.
fn ref_object(
    source: &dyn Source,
    mirror: &HfMirror,
    refuse: &dyn Fn(String) -> Error,
) -> Result<String> {
    let object = mirror
        .ref_object(mirror.revision())
        .ok_or_else(|| refuse("no bucket location".to_owned()))?;
    let key = match &object {
        ModelRef::S3(s3) => s3.key.clone(),
        other => other.redacted(),
    };
    let text = source.read_small(&completed(source, object), REF_OBJECT_LIMIT)?;
    let commit = String::from_utf8_lossy(&text).trim().to_ascii_lowercase();
    if commit.len() != 40 || !commit.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(refuse(format!("its ref object `{key}` holds no commit")));
    }
    Ok(commit)
}

/// A registered store's `location` in its normal form, the configured endpoint named, as an
/// ensure of it would read it (and as provenance names it); a bucket of `s3://` as it is.
fn completed(source: &dyn Source, location: ModelRef) -> ModelRef {
    match &location {
        ModelRef::Other(_) => source.complete(&location).unwrap_or(location),
        _ => location,
    }
}
