//! A folder of a bucket: its objects, listed page after page with `ListObjectsV2`, each under
//! its path relative to the prefix (checked before anything is written), and the folder's
//! [manifest](Manifest), read and held against the listing.

use catalog_core::SafeRelPath;
use reqwest::Client;
use rusty_s3::S3Action as _;

use super::session::{SIGNATURE_LIFETIME, Session, error_code};
use super::{Manifest, ManifestFile, Object, push};
use crate::error::{Error, Result};

impl Session<'_> {
    /// Every object under `prefix`, page after page, with its path under the prefix.
    pub(super) async fn list(&self, client: &Client, prefix: &str) -> Result<Vec<Object>> {
        let mut objects = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let response = self
                .send(client, prefix, |c| {
                    let credentials = self.signing();
                    let mut list = self.bucket.list_objects_v2(credentials.as_ref());
                    list.with_prefix(prefix);
                    if let Some(t) = &token {
                        list.with_continuation_token(t.as_str());
                    }
                    c.get(list.sign(SIGNATURE_LIFETIME))
                })
                .await?;
            let status = response.status();
            let body = self.body_text(response, "the listing").await?;
            if !status.is_success() {
                return Err(self.refusal(
                    status,
                    error_code(&body).as_deref(),
                    Some(prefix),
                    false,
                ));
            }
            let page = rusty_s3::actions::ListObjectsV2::parse_response(&body).map_err(|e| {
                Error::S3Protocol {
                    endpoint: self.endpoint.clone(),
                    reason: format!("a listing that does not parse: {e}"),
                }
            })?;
            for content in page.contents {
                let Some(rel) = relative_path(prefix, &content.key)? else {
                    continue;
                };
                objects.push(Object {
                    key: content.key.clone(),
                    rel,
                    size: content.size,
                    etag: content.etag.map(|e| e.trim_matches('"').to_owned()),
                    sha256: None,
                });
            }
            match page.next_continuation_token {
                Some(next) if Some(&next) != token.as_ref() => token = Some(next),
                _ => break,
            }
        }
        if objects.is_empty() {
            return Err(Error::S3NotFound {
                what: format!(
                    "no object under `{prefix}` in bucket `{}` at `{}`",
                    self.bucket.name(),
                    self.endpoint
                ),
            });
        }
        Ok(objects)
    }

    /// The [manifest](Manifest) at `key`: read whole (at most 16 MiB) and parsed.
    pub(super) async fn manifest(&self, client: &Client, key: &str) -> Result<Manifest> {
        let body = self.read_small(client, key, push::MANIFEST_LIMIT).await?;
        let manifest: Manifest = serde_json::from_slice(&body)
            .map_err(|e| self.protocol(format!("the manifest `{key}` does not parse: {e}")))?;
        if manifest.version != 1 {
            return Err(self.protocol(format!(
                "the manifest `{key}` is version {}, and only version 1 is read",
                manifest.version
            )));
        }
        Ok(manifest)
    }

    /// Gives each listed object the sha256 `manifest` states for it. The listing and the
    /// manifest must name the same files: an object the manifest does not name, or a file it
    /// names that is not listed, refuses the folder.
    pub(super) fn vouch(&self, manifest: &Manifest, listed: &mut [Object]) -> Result<()> {
        let mut stated: std::collections::HashMap<&str, &ManifestFile> = manifest
            .files
            .iter()
            .map(|f| (f.path.as_str(), f))
            .collect();
        for object in listed.iter_mut() {
            let Some(file) = stated.remove(object.rel.as_str()) else {
                return Err(self.protocol(format!(
                    "`{}` is in the folder but not in its manifest",
                    object.key
                )));
            };
            object.sha256 = Some(file.sha256.clone());
        }
        if let Some(missing) = stated.keys().min() {
            return Err(self.protocol(format!(
                "`{}` is in the folder's manifest but not in the folder",
                crate::error::printable(missing)
            )));
        }
        Ok(())
    }
}

/// Where the object `key` goes in the folder `prefix`: its path under the prefix, checked
/// (`..`, absolute paths, empty segments, backslashes and control characters are refused, and
/// refuse the whole folder). `None` for what is no file: a key outside the prefix, or a
/// zero-byte "folder" marker ending with `/`.
fn relative_path(prefix: &str, key: &str) -> Result<Option<SafeRelPath>> {
    let Some(rest) = key.strip_prefix(prefix) else {
        return Ok(None);
    };
    if rest.is_empty() || rest.ends_with('/') {
        return Ok(None);
    }
    Ok(Some(SafeRelPath::new(rest.to_owned())?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_become_safe_paths_under_the_prefix_or_refuse_the_folder() {
        let rel = |key: &str| relative_path("repo/", key);
        assert_eq!(
            rel("repo/sub/model.gguf")
                .ok()
                .flatten()
                .map(|p| p.to_string()),
            Some("sub/model.gguf".to_owned())
        );
        assert!(matches!(rel("other/x"), Ok(None)));
        assert!(matches!(rel("repo/dir/"), Ok(None)), "a folder marker");
        for hostile in [
            "repo/../x",
            "repo/a/../../x",
            "repo//abs",
            "repo/a//b",
            "repo/a\\b",
            "repo/a\u{1}b",
            "repo/./x",
        ] {
            assert!(
                matches!(rel(hostile), Err(Error::HostileName { .. })),
                "{hostile:?}"
            );
        }
    }
}
