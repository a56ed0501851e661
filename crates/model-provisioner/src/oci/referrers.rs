//! Referrers: artifacts that point at a manifest by their `subject`, as OCI 1.1 defines them;
//! here, the Sigstore bundle (`model.sig`) a signed push attaches to the model's manifest, as
//! cosign attaches one.
//!
//! ```text
//! model manifest  sha256:M                          (the tag points here)
//! referrer        application/vnd.oci.image.manifest.v1+json
//!   artifactType  application/vnd.dev.sigstore.bundle.v0.3+json
//!   config        application/vnd.oci.empty.v1+json  `{}`
//!   layers        [the bundle, application/vnd.dev.sigstore.bundle.v0.3+json]
//!   subject       sha256:M
//! tag sha256-<M's hex>   an image index of the referrers of M: the tag scheme, kept by clients
//!                        for registries without the referrers API
//! ```
//!
//! A registry with the referrers API (`GET /v2/<repo>/referrers/<digest>`) says so by answering
//! a manifest with a `subject` with the header `OCI-Subject`, and lists referrers itself. One
//! without it (distribution 2.8) ignores the `subject`: the pusher then reads the tag scheme's
//! index (at most 4 MiB, as any manifest), adds the referrer (once, at the end) and puts it
//! back under the tag, so that other referrers stay listed; a list past [`MAX_REFERRERS`]
//! loses its oldest entries.
//!
//! A pull reads them back ([`bundles`]) for the manifest it pulled, then for the index it picked
//! that manifest from (a signature may be attached to either): `GET
//! /v2/<repo>/referrers/<digest>?artifactType=…` (the API; a `404` says there is none), else the
//! tag scheme's index, each at most [`MAX_LIST_BYTES`]; of the referrers listed as Sigstore
//! bundles, the newest, [`MAX_BUNDLES_READ`] in all, each a manifest checked against its digest
//! and its `subject`, its bundle layer read at most [`mp_signing::MAX_BUNDLE_BYTES`] and checked
//! against its sha256; a bundle found twice is kept once. A list or referrer that is not so is
//! passed over with a warning: what a policy then lacks is its own refusal.

use serde_json::{Value, json};

use catalog_core::Digest;

#[cfg(feature = "signing")]
use super::client::Repository;
#[cfg(feature = "signing")]
use crate::error::{Error, Result};

/// The artifact type and layer media type of a Sigstore bundle.
pub(crate) const BUNDLE_TYPE: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";
/// An image index: the referrers list.
pub(crate) const INDEX_TYPE: &str = "application/vnd.oci.image.index.v1+json";
/// The media type of the empty config, and its bytes.
pub(crate) const EMPTY_TYPE: &str = "application/vnd.oci.empty.v1+json";
pub(crate) const EMPTY: &[u8] = b"{}";

/// The most referrers of one manifest a list keeps: a list that would grow past it loses its
/// oldest entries, so that the index stays small.
pub(crate) const MAX_REFERRERS: usize = 1_000;

/// The most bytes of a referrers list read on a pull (the API's answer, the tag scheme's index),
/// as of any manifest.
#[cfg(feature = "signing")]
pub(crate) const MAX_LIST_BYTES: usize = 4 << 20;

/// The most bundles read on a pull, of the manifest and its index together: the newest listed.
#[cfg(feature = "signing")]
pub(crate) const MAX_BUNDLES_READ: usize = 8;

/// The tag of the tag scheme's referrers list of `subject`: `sha256-<hex>`.
pub(crate) fn tag_of(subject: &Digest) -> String {
    subject.to_string().replacen(':', "-", 1)
}

/// The referrer manifest of `bundle` (its digest and size) for the manifest `subject`.
pub(crate) fn bundle_manifest(
    bundle: &Digest,
    bundle_size: u64,
    subject: &Digest,
    subject_type: &str,
    subject_size: u64,
) -> Value {
    json!({
        "schemaVersion": 2,
        "mediaType": super::client::MANIFEST_TYPE,
        "artifactType": BUNDLE_TYPE,
        "config": {
            "mediaType": EMPTY_TYPE,
            "digest": Digest::sha256_of(EMPTY).to_string(),
            "size": EMPTY.len(),
        },
        "layers": [{
            "mediaType": BUNDLE_TYPE,
            "digest": bundle.to_string(),
            "size": bundle_size,
            "annotations": {
                "org.opencontainers.image.title": format!("{}.sigstore.json", tag_of(bundle)),
            },
        }],
        "subject": {
            "mediaType": subject_type,
            "digest": subject.to_string(),
            "size": subject_size,
        },
        "annotations": { "dev.sigstore.bundle.content": "dsse-envelope" },
    })
}

/// The tag scheme's index `existing` (none yet: `None`) with `referrer` (a manifest of
/// `size` bytes) listed once, at the end; a list of more than [`MAX_REFERRERS`] is cut to its
/// last ones.
///
/// # Errors
///
/// What is wrong with `existing`, in words: it is no image index.
pub(crate) fn add_to_index(
    existing: Option<&[u8]>,
    referrer: &Digest,
    size: u64,
) -> std::result::Result<Vec<u8>, String> {
    let mut manifests: Vec<Value> = match existing {
        None => Vec::new(),
        Some(bytes) => {
            let index: Value = serde_json::from_slice(bytes)
                .map_err(|e| format!("its referrers index does not parse: {e}"))?;
            index
                .get("manifests")
                .and_then(Value::as_array)
                .cloned()
                .ok_or("its referrers index has no `manifests`")?
        }
    };
    let digest = referrer.to_string();
    manifests.retain(|m| m.get("digest").and_then(Value::as_str) != Some(digest.as_str()));
    manifests.push(json!({
        "mediaType": super::client::MANIFEST_TYPE,
        "digest": digest,
        "size": size,
        "artifactType": BUNDLE_TYPE,
        "annotations": { "dev.sigstore.bundle.content": "dsse-envelope" },
    }));
    if manifests.len() > MAX_REFERRERS {
        manifests.drain(..manifests.len() - MAX_REFERRERS);
    }
    serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": INDEX_TYPE,
        "manifests": manifests,
    }))
    .map_err(|e| e.to_string())
}

/// The referrers `index` lists as Sigstore bundles, by digest, the last listed (the newest)
/// first.
///
/// # Errors
///
/// What is wrong with `index`, in words: it is no image index.
#[cfg_attr(
    not(any(feature = "signing", test)),
    expect(dead_code, reason = "a pull reads referrers to check signatures")
)]
pub(crate) fn bundle_referrers(index: &[u8]) -> std::result::Result<Vec<Digest>, String> {
    let index: Value = serde_json::from_slice(index)
        .map_err(|e| format!("the referrers list does not parse: {e}"))?;
    let manifests = index
        .get("manifests")
        .and_then(Value::as_array)
        .ok_or("the referrers list has no `manifests`")?;
    Ok(manifests
        .iter()
        .rev()
        .filter(|m| m.get("artifactType").and_then(Value::as_str) == Some(BUNDLE_TYPE))
        .filter_map(|m| m.get("digest")?.as_str()?.parse().ok())
        .collect())
}

/// The bundle layer (its digest and size) of the referrer manifest `manifest`, which must name
/// `subject` as its subject.
///
/// # Errors
///
/// What is wrong with it, in words: another subject, no bundle layer.
#[cfg_attr(
    not(any(feature = "signing", test)),
    expect(dead_code, reason = "a pull reads referrers to check signatures")
)]
pub(crate) fn bundle_layer(
    manifest: &[u8],
    subject: &Digest,
) -> std::result::Result<(Digest, u64), String> {
    let manifest: Value =
        serde_json::from_slice(manifest).map_err(|e| format!("it does not parse: {e}"))?;
    let named = manifest.pointer("/subject/digest").and_then(Value::as_str);
    if named != Some(subject.to_string().as_str()) {
        return Err(format!(
            "its subject is `{}`, not `{subject}`",
            named.unwrap_or("none")
        ));
    }
    manifest
        .get("layers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .find(|l| l.get("mediaType").and_then(Value::as_str) == Some(BUNDLE_TYPE))
        .and_then(|l| {
            let digest = l.get("digest")?.as_str()?.parse().ok()?;
            Some((digest, l.get("size")?.as_u64()?))
        })
        .ok_or_else(|| format!("it has no `{BUNDLE_TYPE}` layer"))
}

/// The Sigstore bundles attached to `subjects` in `repo`, those of the first subject first and
/// the newest first of each, [`MAX_BUNDLES_READ`] referrers read in all, each bundle once;
/// whatever cannot be read is passed over with a warning (see the module's docs).
#[cfg(feature = "signing")]
pub(crate) async fn bundles(
    repo: &Repository,
    client: &reqwest::Client,
    subjects: &[Digest],
) -> Vec<Vec<u8>> {
    let mut bundles = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let mut left = MAX_BUNDLES_READ;
    for subject in subjects {
        if left == 0 {
            break;
        }
        let digests = referrers(repo, client, subject).await;
        let mut read = 0;
        for referrer in digests.iter().take(left) {
            left -= 1;
            match bundle(repo, client, subject, referrer).await {
                Ok((digest, bytes)) => {
                    read += 1;
                    if seen.insert(digest) {
                        bundles.push(bytes);
                    }
                }
                Err(e) => {
                    tracing::warn!(%referrer, error = %e, "a signature referrer is passed over");
                }
            }
        }
        tracing::debug!(manifest = %subject, listed = digests.len(), read, "signature referrers");
    }
    bundles
}

/// The referrers of `subject` listed as Sigstore bundles, the newest first; none, with a
/// warning, when they cannot be listed.
#[cfg(feature = "signing")]
async fn referrers(repo: &Repository, client: &reqwest::Client, subject: &Digest) -> Vec<Digest> {
    let listed = match list(repo, client, subject).await {
        Ok(Some(listed)) => listed,
        Ok(None) => return Vec::new(),
        Err(e) => {
            tracing::warn!(manifest = %subject, error = %e, "its referrers cannot be listed; no signature is taken from them");
            return Vec::new();
        }
    };
    bundle_referrers(&listed).unwrap_or_else(|reason| {
        tracing::warn!(manifest = %subject, "{reason}; no signature is taken from it");
        Vec::new()
    })
}

/// The referrers list of `subject`: the API's, else the tag scheme's index; `None` when neither
/// has one.
#[cfg(feature = "signing")]
async fn list(
    repo: &Repository,
    client: &reqwest::Client,
    subject: &Digest,
) -> Result<Option<Vec<u8>>> {
    let mut url = repo.url(&format!("v2/{}/referrers/{subject}", repo.name()));
    url.query_pairs_mut()
        .append_pair("artifactType", BUNDLE_TYPE);
    let response = repo
        .send(client, &url, |c| {
            c.get(url.clone())
                .header(reqwest::header::ACCEPT, INDEX_TYPE)
        })
        .await?;
    let status = response.status();
    if status.is_success() {
        let listed = repo
            .read_small(response, &url, "referrers list", MAX_LIST_BYTES)
            .await?;
        return Ok(Some(listed));
    }
    if status != reqwest::StatusCode::NOT_FOUND {
        return Err(Error::OciProtocol {
            registry: repo.registry().to_owned(),
            reason: format!("the referrers API answered HTTP {status}"),
        });
    }
    // No API: the tag scheme.
    match repo.manifest(client, &tag_of(subject)).await {
        Ok(raw) => Ok(Some(raw.bytes)),
        Err(Error::OciNotFound { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The bundle of the referrer manifest `referrer` of `subject`, with its digest, checked against
/// the digests that name the manifest and the bundle.
#[cfg(feature = "signing")]
async fn bundle(
    repo: &Repository,
    client: &reqwest::Client,
    subject: &Digest,
    referrer: &Digest,
) -> Result<(Digest, Vec<u8>)> {
    let what = format!("{}/{}@{referrer}", repo.registry(), repo.name());
    let unusable = |reason: String| Error::OciProtocol {
        registry: repo.registry().to_owned(),
        reason: format!("the referrer `{referrer}`: {reason}"),
    };
    let raw = repo.manifest(client, &referrer.to_string()).await?;
    Error::check_digest(&what, Some(referrer), &Digest::sha256_of(&raw.bytes))?;
    let (layer, size) = bundle_layer(&raw.bytes, subject).map_err(unusable)?;
    if size > mp_signing::MAX_BUNDLE_BYTES as u64 {
        return Err(crate::signing::too_large(&what));
    }
    let bytes = super::small_blob(
        repo,
        client,
        &layer,
        "signature bundle",
        mp_signing::MAX_BUNDLE_BYTES,
    )
    .await?;
    Error::check_digest(&what, Some(&layer), &Digest::sha256_of(&bytes))?;
    Ok((layer, bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tag_scheme_names_the_subject_with_a_dash() {
        let d = Digest::sha256_of(b"m");
        assert_eq!(tag_of(&d), format!("sha256-{}", &d.to_string()[7..]));
    }

    /// The digests an index lists, in order.
    fn listed(index: &[u8]) -> Vec<String> {
        let index: Value = serde_json::from_slice(index).unwrap_or_default();
        index["manifests"]
            .as_array()
            .map(|m| {
                m.iter()
                    .filter_map(|e| e["digest"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }

    #[test]
    fn an_index_is_added_to_once_and_keeps_other_referrers() -> std::result::Result<(), String> {
        let (a, b) = (Digest::sha256_of(b"a"), Digest::sha256_of(b"b"));
        let sbom = Digest::sha256_of(b"sbom").to_string();
        let other = json!({"schemaVersion": 2, "manifests": [
            {"mediaType": "x", "digest": sbom, "artifactType": "application/spdx+json"}
        ]});
        let one = add_to_index(Some(other.to_string().as_bytes()), &a, 10)?;
        let two = add_to_index(Some(&one), &b, 10)?;
        let again = add_to_index(Some(&two), &a, 10)?;
        assert_eq!(listed(&again), vec![sbom, b.to_string(), a.to_string()]);
        assert!(add_to_index(Some(b"[]"), &a, 1).is_err());
        assert!(add_to_index(Some(b"{"), &a, 1).is_err());
        Ok(())
    }

    #[test]
    fn a_pull_takes_the_bundles_a_list_names_newest_first_and_nothing_else()
    -> std::result::Result<(), String> {
        let (old, new, sbom) = (
            Digest::sha256_of(b"old"),
            Digest::sha256_of(b"new"),
            Digest::sha256_of(b"sbom"),
        );
        let list = json!({"manifests": [
            {"digest": old.to_string(), "artifactType": BUNDLE_TYPE},
            {"digest": sbom.to_string(), "artifactType": "application/spdx+json"},
            {"digest": "not a digest", "artifactType": BUNDLE_TYPE},
            {"digest": new.to_string(), "artifactType": BUNDLE_TYPE},
        ]});
        assert_eq!(
            bundle_referrers(list.to_string().as_bytes())?,
            vec![new, old]
        );
        assert!(bundle_referrers(b"{").is_err());
        assert!(bundle_referrers(b"{\"manifests\": 1}").is_err());
        Ok(())
    }

    #[test]
    fn a_referrer_must_name_the_subject_and_hold_a_bundle() -> std::result::Result<(), String> {
        let (subject, bundle) = (Digest::sha256_of(b"m"), Digest::sha256_of(b"b"));
        let manifest = bundle_manifest(&bundle, 7, &subject, "x", 1).to_string();
        assert_eq!(
            bundle_layer(manifest.as_bytes(), &subject)?,
            (bundle.clone(), 7)
        );
        let other = Digest::sha256_of(b"other");
        let err = bundle_layer(manifest.as_bytes(), &other)
            .err()
            .unwrap_or_default();
        assert!(err.contains("its subject is"), "{err}");
        let sbom = json!({"subject": {"digest": subject.to_string()}, "layers": [
            {"mediaType": "application/spdx+json", "digest": bundle.to_string(), "size": 7}
        ]});
        let err = bundle_layer(sbom.to_string().as_bytes(), &subject)
            .err()
            .unwrap_or_default();
        assert!(err.contains("has no"), "{err}");
        assert!(bundle_layer(b"[", &subject).is_err());
        Ok(())
    }

    #[test]
    fn a_list_of_too_many_referrers_keeps_its_newest() -> std::result::Result<(), String> {
        let many: Vec<Value> = (0..MAX_REFERRERS + 50)
            .map(|i: usize| json!({"digest": Digest::sha256_of(&i.to_le_bytes()).to_string()}))
            .collect();
        let body = json!({ "manifests": many }).to_string();
        let new = Digest::sha256_of(b"new");
        let cut = listed(&add_to_index(Some(body.as_bytes()), &new, 1)?);
        assert_eq!(cut.len(), MAX_REFERRERS);
        assert_eq!(cut.last(), Some(&new.to_string()));
        assert_eq!(
            cut.first(),
            Some(&Digest::sha256_of(&51usize.to_le_bytes()).to_string())
        );
        Ok(())
    }
}
