//! An `hf:` model read from a bucket mirror, in the layout [`crate::mirror`] gives it: the
//! revision's ref object names the commit (unless the reference pins one), and the commit's
//! folder is read as a pushed folder, held against the provenance its manifest records.

use std::sync::Arc;

use catalog_core::{Digest, ModelRef, SafeRelPath};
use reqwest::Client;

use super::session::Session;
use super::{MANIFEST_NAME, S3Fetcher};
use crate::error::{Error, Result};
use crate::fetcher::{FetchRequest, unsupported};
use crate::mirror::HfMirror;
use crate::pipeline::Listing;

impl S3Fetcher {
    /// An `hf:` model from a bucket mirror: the commit (pinned, or read from the revision's
    /// ref object), then that commit's folder, whose manifest must name the same repository and
    /// list every object with its sha256, as its provenance does; the files are placed as the
    /// Hub's, at that commit.
    pub(super) fn resolve_from_hf_mirror<'s>(
        &'s self,
        req: &FetchRequest<'_>,
        mirror: &HfMirror,
    ) -> Result<Listing<'s>> {
        if self.options.offline {
            return Err(Error::Offline {
                reference: req.reference.redacted(),
            });
        }
        let ModelRef::Hf(hf) = req.reference else {
            return Err(unsupported(req.reference));
        };
        let refuse = |at: &str, reason: String| Error::MirrorMismatch {
            id: req.id.to_owned(),
            mirror: at.to_owned(),
            reason,
        };
        let at = mirror.describe();
        let probe = mirror
            .s3_folder("x")
            .ok_or_else(|| refuse(&at, "no bucket location".to_owned()))?;
        let config = self.config()?;
        let engine = self.engine()?;
        let client = engine.client();
        let endpoint = Self::endpoint(config, &probe)?;
        let bucket = Self::bucket(config, &probe, &endpoint)?;
        let session = Arc::new(self.session(config, &endpoint, bucket, engine));
        engine.block_on(session.start(client))?;
        let commit = match mirror.pinned_commit() {
            Some(commit) => commit,
            None => engine
                .block_on(session.ref_object(client, mirror, &|reason| refuse(&at, reason)))?,
        };
        let folder = mirror
            .s3_folder(&mirror.commit_tag(&commit))
            .ok_or_else(|| refuse(&at, "no bucket location".to_owned()))?;
        let at = format!("{at}{}", mirror.commit_tag(&commit));
        let mut listed = engine.block_on(session.list(client, &folder.key))?;
        let manifest_key = format!("{}{MANIFEST_NAME}", folder.key);
        let Some(position) = listed.iter().position(|o| o.key == manifest_key) else {
            return Err(refuse(&at, "the folder has no manifest".to_owned()));
        };
        listed.remove(position);
        let manifest = engine.block_on(session.manifest(client, &manifest_key))?;
        session
            .vouch(&manifest, &mut listed)
            .map_err(|e| refuse(&at, e.to_string()))?;
        let provenance = manifest
            .provenance
            .as_ref()
            .ok_or_else(|| refuse(&at, "its manifest records no provenance".to_owned()))?;
        let files: Vec<(String, Digest)> = manifest
            .files
            .iter()
            .map(|f| (f.path.clone(), f.sha256.clone()))
            .collect();
        let (stated, etags) = crate::mirror::check_hf_copy(
            req.id,
            &at,
            mirror,
            Some(&manifest.id),
            provenance,
            &files,
        )?;
        if stated != commit {
            return Err(refuse(
                &at,
                format!("its manifest holds commit `{stated}`, not `{commit}`"),
            ));
        }
        let select = match &hf.path {
            Some(path) => {
                let path: SafeRelPath = path.parse()?;
                for object in &mut listed {
                    object.rel = path.clone();
                }
                Some(path)
            }
            None => None,
        };
        for object in &mut listed {
            object.etag = etags.get(object.rel.as_str()).cloned().flatten();
        }
        let origin = format!("s3+{}/{}/{}", session.endpoint, folder.bucket, folder.key);
        let mut listing = self.listing(req, &folder, &session, listed);
        crate::mirror::as_hf_listing(&mut listing, req, mirror, (commit, select), origin);
        Ok(listing)
    }
}

impl Session<'_> {
    /// The commit a mirror's ref object for the revision `mirror` names holds.
    async fn ref_object(
        &self,
        client: &Client,
        mirror: &HfMirror,
        refuse: &dyn Fn(String) -> Error,
    ) -> Result<String> {
        let object = mirror
            .s3_ref_object(mirror.revision())
            .ok_or_else(|| refuse("no bucket location".to_owned()))?;
        let text = self.read_small(client, &object.key, 1024).await?;
        let commit = String::from_utf8_lossy(&text).trim().to_ascii_lowercase();
        if commit.len() != 40 || !commit.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(refuse(format!(
                "its ref object `{}` holds no commit",
                object.key
            )));
        }
        Ok(commit)
    }
}
