//! A folder of a bucket: its objects, listed page after page with `ListObjectsV2`, each under
//! its path relative to the prefix (checked before anything is written), and the folder's
//! [manifest](Manifest), read and held against the listing.

use reqwest::Client;
use rusty_s3::S3Action as _;

use super::session::{SIGNATURE_LIFETIME, Session, error_code};
use super::{Manifest, Object};
use crate::error::{Error, Result};
use crate::object_store::{MANIFEST_LIMIT, relative_path};

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
        let body = self.read_small(client, key, MANIFEST_LIMIT).await?;
        Manifest::parse(&body).map_err(|why| self.protocol(format!("the manifest `{key}`: {why}")))
    }

    /// Gives each listed object the sha256 `manifest` states for it. The listing and the
    /// manifest must name the same files: an object the manifest does not name, or a file it
    /// names that is not listed, refuses the folder.
    pub(super) fn vouch(&self, manifest: &Manifest, listed: &mut [Object]) -> Result<()> {
        let vouched = manifest
            .vouch(listed.iter().map(|o| &o.rel))
            .map_err(|why| self.protocol(why))?;
        let stated: Vec<_> = listed.iter().map(|o| vouched[&o.rel].clone()).collect();
        for (object, sha256) in listed.iter_mut().zip(stated) {
            object.sha256 = Some(sha256);
        }
        Ok(())
    }
}
