//! [`OciFetcher::push`]: a cataloged model to an OCI registry, as a CNCF `ModelPack` artifact
//! that an `oci://` pull lays out again file for file.
//!
//! ```text
//! manifest  application/vnd.oci.image.manifest.v1+json
//!   artifactType  application/vnd.cncf.model.manifest.v1+json
//!   config        application/vnd.cncf.model.config.v1+json
//!                 {"descriptor": {"name", "createdAt"}, "config": {"format"},
//!                  "modelfs": {"type": "layers", "diffIds": [...]}, "provenance": {...}}
//!   layers        one per file, `application/vnd.cncf.model.{weight,weight.config,doc}.v1.raw`,
//!                 named by `org.cncf.model.filepath` (and `org.opencontainers.image.title`)
//! ```
//!
//! Each blob is asked for first (`HEAD`): one the registry has is not sent again, nor read.
//! Otherwise an upload session is opened (`POST …/blobs/uploads/`) and the whole file is
//! streamed in one `PUT <location>?digest=…`, read once and hashed on the way out, never held
//! in memory; its last bytes go only if it matches the digest the `PUT` names (`crate::upload`),
//! so a registry never completes a blob of other bytes, and the manifest is not pushed. Registries ignore a body on the `POST`
//! (distribution 2.8 does), and a monolithic `PUT` avoids chained `PATCH`es whose `Location`
//! changes each time. A failed upload starts again from a new session: sessions are not
//! resumed. The manifest goes last, under the tag; its digest is the sha256 of the bytes sent.
//!
//! `artifact.rs` gives the artifact's shape (media types, the config, the manifest's bytes);
//! `blob_upload.rs` sends one blob (the `HEAD`, a mount, the session and its `PUT`).

use std::sync::Arc;

use catalog_core::{CacheLayout, CatalogEntry, Digest, ModelRef, OciRef, OciReference};
use reqwest::Client;
use reqwest::header;

use super::OciFetcher;
use super::artifact::{config_blob, json_error, manifest_bytes};
use super::blob_upload::{Content, error_code, refused, upload_blob};
use super::client::{Access, MANIFEST_TYPE, Repository};
use super::referrers;
use crate::error::{Error, Result};
use crate::model_files::{ModelFile, ModelFiles, model_files};
use crate::sign::Sign;
use crate::upload::Hash;
use mp_progress::{FileTask, NoReporter, Progress, Reporter};

/// What a push did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushReport {
    /// The sha256 of the manifest as sent; `oci://registry/repo@<digest>` pulls exactly it.
    pub manifest_digest: Digest,
    /// The model's files, one layer each.
    pub files: usize,
    /// Bytes sent in blob uploads (files and the config), not counting the manifest.
    pub bytes_uploaded: u64,
    /// Blobs (files or the config) the registry already had, or mounted from the repository
    /// the model was pulled from, so not sent.
    pub blobs_skipped: usize,
}

impl OciFetcher {
    /// Pushes `entry`, a model of the catalog at `layout`, to `dest` (`oci://registry/repo:tag`)
    /// as a CNCF `ModelPack` artifact: one layer per file, a config recording the model's
    /// provenance, and a manifest under the tag. Blobs the registry already has are not sent
    /// again. `oci/push.rs` says how.
    ///
    /// Nothing the catalog does not vouch for is published: every file's sha256 (recorded by
    /// the catalog, or the model's own digest for a model of one file; else hashed first) must
    /// give the model's digest, and every byte sent is hashed on its way out, the end of a
    /// file's body held back unless the file matches. A file the registry has already is not
    /// read. A mismatch is [`Error::DigestMismatch`], and then no manifest is pushed.
    ///
    /// # Errors
    ///
    /// [`Error::DigestMismatch`] when the model's bytes no longer match the catalog's digests;
    /// [`Error::OciPushTarget`] for a `dest` that names a digest or a file; [`Error::OciDenied`]
    /// when the registry refuses the credentials (or wants some); [`Error::OciProtocol`] when it
    /// refuses a blob or the manifest (with the status and the registry's error code); a read
    /// error naming the file; [`Error::Offline`] when the fetcher is offline.
    pub fn push(
        &self,
        layout: &CacheLayout,
        entry: &CatalogEntry,
        dest: &OciRef,
        reporter: &dyn Reporter,
    ) -> Result<PushReport> {
        self.push_signed(layout, entry, dest, reporter, &Sign::default())
    }

    /// [`push`](Self::push), and, when `sign` says so (`push --sign`), the bundle over the files
    /// pushed attached to the manifest as a referrer (`oci/referrers.rs`); a `model.sig` the
    /// model has is then not pushed as a layer.
    pub(crate) fn push_signed(
        &self,
        layout: &CacheLayout,
        entry: &CatalogEntry,
        dest: &OciRef,
        reporter: &dyn Reporter,
        sign: &Sign,
    ) -> Result<PushReport> {
        let tag = push_tag(dest)?;
        if self.config.offline {
            return Err(Error::Offline {
                reference: describe(dest),
            });
        }
        let (files, hash, bundle) = layers_of(layout, entry, reporter, sign)?;
        let engine = self.engine()?;
        let repo = Repository::new(
            &dest.registry,
            &dest.repository,
            &self.config.credentials,
            &self.config.insecure,
            engine.config().retry,
            Access::Push,
        )?;
        let client = engine.client();
        let config = config_blob(entry, &files)?;
        let mount_from = mount_source(entry, dest);
        engine.block_on(async {
            repo.ping(client).await?;
            let mut report = PushReport {
                manifest_digest: Digest::sha256_of(b""),
                files: files.len(),
                bytes_uploaded: 0,
                blobs_skipped: 0,
            };
            for file in &files {
                let progress: Arc<dyn Progress> = Arc::from(reporter.start_file(&FileTask {
                    id: &entry.id,
                    file: file.rel.as_str(),
                    label: file.rel.as_str(),
                    size: Some(file.size),
                }));
                let sent = upload_blob(
                    &repo,
                    client,
                    &file.digest,
                    file.size,
                    &Content::File(file, hash, engine.config().rate_limit.as_ref()),
                    mount_from.as_deref(),
                    &progress,
                )
                .await;
                progress.finish();
                match sent? {
                    Some(bytes) => report.bytes_uploaded += bytes,
                    None => report.blobs_skipped += 1,
                }
            }
            let config_digest = Digest::sha256_of(&config);
            let none: Arc<dyn Progress> = Arc::from(NoReporter.start("config", None));
            match upload_blob(
                &repo,
                client,
                &config_digest,
                config.len() as u64,
                &Content::Bytes(&config),
                None,
                &none,
            )
            .await?
            {
                Some(bytes) => report.bytes_uploaded += bytes,
                None => report.blobs_skipped += 1,
            }
            let manifest = manifest_bytes(&config_digest, config.len() as u64, &files)?;
            let manifest_size = manifest.len() as u64;
            let (digest, _) = put_manifest(&repo, client, tag, MANIFEST_TYPE, manifest).await?;
            report.manifest_digest = digest;
            if let Some(bundle) = &bundle {
                report.bytes_uploaded += attach_bundle(
                    &repo,
                    client,
                    &report.manifest_digest,
                    manifest_size,
                    bundle,
                )
                .await?;
            }
            tracing::debug!(
                manifest = %report.manifest_digest,
                files = report.files,
                bytes = report.bytes_uploaded,
                skipped = report.blobs_skipped,
                "pushed"
            );
            Ok(report)
        })
    }
}

/// The files `entry`'s model is pushed as (a `model.sig` left out when the push signs anew), how
/// they are hashed on their way, and the bundle over them when `sign` says so.
fn layers_of(
    layout: &CacheLayout,
    entry: &CatalogEntry,
    reporter: &dyn Reporter,
    sign: &Sign,
) -> Result<(Vec<ModelFile>, Hash, Option<Vec<u8>>)> {
    let ModelFiles {
        mut files,
        unchanged,
        ..
    } = model_files(layout, entry, reporter)?;
    if sign.is_on() {
        files.retain(|f| f.rel.as_str() != Sign::FILE);
    }
    let bundle = sign.bundle(&entry.id, &files)?;
    // A registry refuses a blob whose bytes do not have the digest it is told, so files
    // unchanged since they last matched are not hashed a second time on their way.
    let hash = if unchanged {
        Hash::ServerChecks
    } else {
        Hash::Each
    };
    Ok((files, hash, bundle))
}

/// The tag `dest` names; a push needs one, and cannot name a file inside the artifact.
fn push_tag(dest: &OciRef) -> Result<&str> {
    let refuse = |reason: &str| Error::OciPushTarget {
        reference: describe(dest),
        reason: reason.to_owned(),
    };
    if dest.path.is_some() {
        return Err(refuse(
            "it names a file inside the artifact; a push sends the whole model",
        ));
    }
    match &dest.reference {
        OciReference::Tag(tag) => Ok(tag),
        OciReference::Digest(_) => Err(refuse(
            "it names a digest; a push needs a tag to put the manifest under",
        )),
    }
}

/// `dest` as the user wrote it: `oci://registry/repo:tag`.
fn describe(dest: &OciRef) -> String {
    let sep = match dest.reference {
        OciReference::Tag(_) => ':',
        OciReference::Digest(_) => '@',
    };
    let path = dest
        .path
        .as_deref()
        .map(|p| format!("/{p}"))
        .unwrap_or_default();
    format!(
        "oci://{}/{}{sep}{}{path}",
        dest.registry, dest.repository, dest.reference
    )
}

/// The repository of the same registry as `dest` that `entry`'s model was pulled from, whose
/// blobs a push can mount instead of sending them; `None` for a model from anywhere else.
fn mount_source(entry: &CatalogEntry, dest: &OciRef) -> Option<String> {
    let Ok(ModelRef::Oci(from)) = entry.id.parse::<ModelRef>() else {
        return None;
    };
    (from.registry == dest.registry && from.repository != dest.repository)
        .then_some(from.repository)
}

/// `PUT /v2/<repo>/manifests/<tag>` of a manifest (or an index) of `media_type`. Returns the
/// manifest's digest, the sha256 of the bytes sent, which the registry's
/// `Docker-Content-Digest` must agree with, and whether the registry answered `OCI-Subject`
/// (it lists referrers itself).
async fn put_manifest(
    repo: &Repository,
    client: &Client,
    tag: &str,
    media_type: &str,
    manifest: Vec<u8>,
) -> Result<(Digest, bool)> {
    let digest = Digest::sha256_of(&manifest);
    let url = repo.url(&format!("v2/{}/manifests/{tag}", repo.name()));
    let response = repo
        .send(client, &url, |c| {
            c.put(url.clone())
                .header(header::CONTENT_TYPE, media_type)
                .body(manifest.clone())
        })
        .await?;
    let status = response.status();
    if !status.is_success() {
        let code = error_code(response).await;
        return Err(refused(repo, "the manifest", status, code));
    }
    let stated = response
        .headers()
        .get("docker-content-digest")
        .and_then(|v| v.to_str().ok())
        .and_then(|s| s.parse::<Digest>().ok());
    if let Some(stated) = stated {
        Error::check_digest(
            &format!("{}:{tag} (manifest)", repo.name()),
            Some(&digest),
            &stated,
        )?;
    }
    Ok((digest, response.headers().contains_key("oci-subject")))
}

/// Attaches `bundle` to the manifest `subject` (`subject_size` bytes) as a referrer: the
/// bundle's blob and the empty config, the referrer manifest by its digest, and, where the
/// registry does not list referrers itself, the tag scheme's index updated. Returns the bytes
/// of blobs sent.
async fn attach_bundle(
    repo: &Repository,
    client: &Client,
    subject: &Digest,
    subject_size: u64,
    bundle: &[u8],
) -> Result<u64> {
    let none: Arc<dyn Progress> = Arc::from(NoReporter.start("signature", None));
    let mut sent = 0;
    for blob in [bundle, referrers::EMPTY] {
        let digest = Digest::sha256_of(blob);
        let size = blob.len() as u64;
        let content = Content::Bytes(blob);
        sent += upload_blob(repo, client, &digest, size, &content, None, &none)
            .await?
            .unwrap_or(0);
    }
    let referrer = referrers::bundle_manifest(
        &Digest::sha256_of(bundle),
        bundle.len() as u64,
        subject,
        MANIFEST_TYPE,
        subject_size,
    );
    let referrer = serde_json::to_vec(&referrer).map_err(json_error)?;
    let referrer_size = referrer.len() as u64;
    let referrer_digest = Digest::sha256_of(&referrer);
    let (_, listed) = put_manifest(
        repo,
        client,
        &referrer_digest.to_string(),
        MANIFEST_TYPE,
        referrer,
    )
    .await?;
    if listed {
        tracing::debug!(referrer = %referrer_digest, "the registry lists referrers itself");
        return Ok(sent);
    }
    let tag = referrers::tag_of(subject);
    let existing = match repo.manifest(client, &tag).await {
        Ok(raw) => Some(raw.bytes),
        Err(Error::OciNotFound { .. }) => None,
        Err(e) => return Err(e),
    };
    let index = referrers::add_to_index(existing.as_deref(), &referrer_digest, referrer_size)
        .map_err(|reason| Error::OciProtocol {
            registry: repo.registry().to_owned(),
            reason: format!("`{tag}`: {reason}"),
        })?;
    put_manifest(repo, client, &tag, referrers::INDEX_TYPE, index).await?;
    tracing::debug!(referrer = %referrer_digest, %tag, "listed under the tag scheme");
    Ok(sent)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_push_needs_a_tag_and_the_whole_artifact()
    -> std::result::Result<(), Box<dyn std::error::Error>> {
        let oci = |text: &str| -> std::result::Result<OciRef, Box<dyn std::error::Error>> {
            match text.parse::<catalog_core::ModelRef>()? {
                catalog_core::ModelRef::Oci(o) => Ok(o),
                other => Err(format!("not an oci reference: {other:?}").into()),
            }
        };
        let tagged = oci("oci://reg.example/m:v1")?;
        assert_eq!(push_tag(&tagged)?, "v1");
        assert_eq!(describe(&tagged), "oci://reg.example/m:v1");
        let digest = format!("oci://reg.example/m@{}", Digest::sha256_of(b"x"));
        for bad in [digest.as_str(), "oci://reg.example/m:v1/model.gguf"] {
            let oci = oci(bad)?;
            assert_eq!(describe(&oci), bad);
            let err = push_tag(&oci).unwrap_err();
            assert!(matches!(err, Error::OciPushTarget { .. }), "{bad}: {err}");
        }
        Ok(())
    }
}
