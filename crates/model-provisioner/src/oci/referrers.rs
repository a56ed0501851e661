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
//! index, adds the referrer (once) and puts it back under the tag, so that other referrers
//! stay listed.

use serde_json::{Value, json};

use catalog_core::Digest;

/// The artifact type and layer media type of a Sigstore bundle.
pub(crate) const BUNDLE_TYPE: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";
/// An image index: the referrers list.
pub(crate) const INDEX_TYPE: &str = "application/vnd.oci.image.index.v1+json";
/// The media type of the empty config, and its bytes.
pub(crate) const EMPTY_TYPE: &str = "application/vnd.oci.empty.v1+json";
pub(crate) const EMPTY: &[u8] = b"{}";

/// The most referrers of one manifest read from a list; the rest are not looked at.
pub(crate) const MAX_REFERRERS: usize = 1_000;

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
        "mediaType": super::push::MANIFEST_TYPE,
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
        "mediaType": super::push::MANIFEST_TYPE,
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

/// The digests of the Sigstore bundles a referrers list (`index`, from the API or the tag
/// scheme) names, newest (last listed) first, at most [`MAX_REFERRERS`] of them looked at;
/// referrers of any other type are passed over.
///
/// # Errors
///
/// What is wrong with `index`, in words.
pub(crate) fn bundles_in(index: &[u8]) -> std::result::Result<Vec<Digest>, String> {
    let index: Value = serde_json::from_slice(index)
        .map_err(|e| format!("the referrers list does not parse: {e}"))?;
    let manifests = index
        .get("manifests")
        .and_then(Value::as_array)
        .ok_or("the referrers list has no `manifests`")?;
    Ok(manifests
        .iter()
        .take(MAX_REFERRERS)
        .filter(|m| m.get("artifactType").and_then(Value::as_str) == Some(BUNDLE_TYPE))
        .filter_map(|m| m.get("digest")?.as_str()?.parse().ok())
        .rev()
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tag_scheme_names_the_subject_with_a_dash() {
        let d = Digest::sha256_of(b"m");
        assert_eq!(tag_of(&d), format!("sha256-{}", &d.to_string()[7..]));
    }

    #[test]
    fn an_index_is_added_to_once_and_keeps_other_referrers()
    -> std::result::Result<(), Box<dyn std::error::Error>> {
        let (a, b) = (Digest::sha256_of(b"a"), Digest::sha256_of(b"b"));
        let other = json!({"schemaVersion": 2, "manifests": [
            {"mediaType": "x", "digest": Digest::sha256_of(b"sbom").to_string(), "artifactType": "application/spdx+json"}
        ]});
        let one = add_to_index(Some(&serde_json::to_vec(&other)?), &a, 10)?;
        let two = add_to_index(Some(&one), &b, 10)?;
        let again = add_to_index(Some(&two), &a, 10)?;
        assert_eq!(
            bundles_in(&again)?,
            vec![a.clone(), b.clone()],
            "newest first, once each"
        );
        let index: Value = serde_json::from_slice(&again)?;
        assert_eq!(
            index["manifests"].as_array().map(Vec::len),
            Some(3),
            "the sbom stays"
        );
        assert!(add_to_index(Some(b"[]"), &a, 1).is_err());
        Ok(())
    }

    #[test]
    fn a_list_of_many_referrers_is_read_only_so_far() -> std::result::Result<(), String> {
        let many: Vec<Value> = (0..MAX_REFERRERS + 50)
            .map(|i| {
                json!({"digest": Digest::sha256_of(&i.to_le_bytes()).to_string(),
                       "artifactType": BUNDLE_TYPE})
            })
            .collect();
        let body = serde_json::to_vec(&json!({ "manifests": many })).map_err(|e| e.to_string())?;
        assert_eq!(bundles_in(&body)?.len(), MAX_REFERRERS);
        let cut = add_to_index(Some(&body), &Digest::sha256_of(b"new"), 1)?;
        assert_eq!(bundles_in(&cut)?.first(), Some(&Digest::sha256_of(b"new")));
        Ok(())
    }
}
