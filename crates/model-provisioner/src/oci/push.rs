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

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use catalog_core::{CacheLayout, CatalogEntry, Digest, ModelRef, OciRef, OciReference};
use reqwest::header::{self, HeaderValue};
use reqwest::{Client, StatusCode};
use serde_json::{Value, json};

use super::OciFetcher;
use super::client::{Access, MANIFEST_TYPE, Repository};
use super::referrers;
use crate::error::{Error, Result};
use crate::model_files::{ModelFile, ModelFiles, model_files};
use crate::sign::Sign;
use crate::upload::{Hash, read_pieces};
use mp_progress::{FileTask, NoReporter, Progress, Reporter};
use mp_transfer::{Failure, with_retries};

/// What a `ModelPack` manifest declares itself to be.
const ARTIFACT_TYPE: &str = "application/vnd.cncf.model.manifest.v1+json";
/// The `ModelPack` config blob.
const CONFIG_TYPE: &str = "application/vnd.cncf.model.config.v1+json";
/// Weights, and any file of no other kind.
pub(crate) const WEIGHT: &str = "application/vnd.cncf.model.weight.v1.raw";
/// Configuration, tokenizers and vocabularies.
pub(crate) const WEIGHT_CONFIG: &str = "application/vnd.cncf.model.weight.config.v1.raw";
/// Documentation and licences.
pub(crate) const DOC: &str = "application/vnd.cncf.model.doc.v1.raw";

const FILEPATH: &str = "org.cncf.model.filepath";
const TITLE: &str = "org.opencontainers.image.title";

/// The largest error body read from a refusal, for its error code.
const ERROR_BODY_LIMIT: usize = 64 << 10;

/// The pieces a blob's body is read and sent in, and how many are read ahead of the
/// connection.
const BODY_PIECE: u64 = 2 << 20;
const BODY_AHEAD: usize = 4;

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

/// A blob to upload: a file streamed from disk, or bytes made here.
enum Content<'a> {
    /// A model's file, read from disk, hashed by us or only by the registry, under the
    /// engine's rate cap.
    File(&'a ModelFile, Hash, Option<&'a mp_transfer::RateLimit>),
    Bytes(&'a [u8]),
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

/// The layer media type for the file at `path` (relative, `/`-separated).
pub(crate) fn media_type_for(path: &str) -> &'static str {
    let name = path.rsplit('/').next().unwrap_or(path).to_ascii_lowercase();
    let ext = name.rsplit_once('.').map_or("", |(_, ext)| ext);
    if name.starts_with("readme") || name.starts_with("license") || name.starts_with("licence") {
        DOC
    } else if matches!(ext, "gguf" | "safetensors" | "bin" | "pt" | "pth" | "onnx") {
        WEIGHT
    } else if name.starts_with("tokenizer") || matches!(ext, "json" | "model" | "txt") {
        WEIGHT_CONFIG
    } else {
        WEIGHT
    }
}

/// The `config.format` of a model: that of its first weights file.
fn format_of(files: &[ModelFile]) -> Option<&'static str> {
    files.iter().find_map(|f| {
        let name = f.rel.as_str().to_ascii_lowercase();
        match name.rsplit_once('.').map(|(_, ext)| ext) {
            Some("gguf") => Some("gguf"),
            Some("safetensors") => Some("safetensors"),
            Some("onnx") => Some("onnx"),
            Some("bin" | "pt" | "pth") => Some("pytorch"),
            _ => None,
        }
    })
}

/// The `ModelPack` config: the model's name, format, layer digests and provenance.
fn config_blob(entry: &CatalogEntry, files: &[ModelFile]) -> Result<Vec<u8>> {
    let mut descriptor = json!({ "name": entry.id });
    if let Some(created) = rfc3339(entry.created_ms) {
        descriptor["createdAt"] = Value::String(created);
    }
    let mut config = serde_json::Map::new();
    if let Some(format) = format_of(files) {
        config.insert("format".to_owned(), Value::String(format.to_owned()));
    }
    let diff_ids: Vec<String> = files.iter().map(|f| f.digest.to_string()).collect();
    let mut blob = json!({
        "descriptor": descriptor,
        "config": config,
        "modelfs": { "type": "layers", "diffIds": diff_ids },
    });
    if let Some(provenance) = &entry.provenance {
        blob["provenance"] = serde_json::to_value(provenance).map_err(json_error)?;
    }
    serde_json::to_vec(&blob).map_err(json_error)
}

/// The manifest's bytes, exactly as they are sent and hashed.
fn manifest_bytes(config: &Digest, config_size: u64, files: &[ModelFile]) -> Result<Vec<u8>> {
    let layers: Vec<Value> = files
        .iter()
        .map(|f| {
            json!({
                "mediaType": media_type_for(f.rel.as_str()),
                "digest": f.digest.to_string(),
                "size": f.size,
                "annotations": { FILEPATH: f.rel.as_str(), TITLE: f.rel.as_str() },
            })
        })
        .collect();
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": MANIFEST_TYPE,
        "artifactType": ARTIFACT_TYPE,
        "config": { "mediaType": CONFIG_TYPE, "digest": config.to_string(), "size": config_size },
        "layers": layers,
    });
    serde_json::to_vec(&manifest).map_err(json_error)
}

fn json_error(e: serde_json::Error) -> Error {
    Error::Transfer(mp_transfer::Error::Setup {
        what: "write the artifact's JSON",
        source: Box::new(e),
    })
}

/// `ms` since the Unix epoch as RFC 3339 UTC (`2024-05-01T12:00:00Z`).
fn rfc3339(ms: u64) -> Option<String> {
    let secs = ms / 1000;
    let days = i64::try_from(secs / 86_400).ok()?;
    let rem = secs % 86_400;
    // Days to a civil date (Howard Hinnant's `civil_from_days`).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    Some(format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    ))
}

/// Uploads one blob unless the registry has it, or can mount it from the repository
/// `mount_from` of the same registry. Returns the bytes sent, or `None` when it was there
/// already or was mounted.
async fn upload_blob(
    repo: &Repository,
    client: &Client,
    digest: &Digest,
    size: u64,
    content: &Content<'_>,
    mount_from: Option<&str>,
    progress: &Arc<dyn Progress>,
) -> Result<Option<u64>> {
    repo.refresh_if_expiring(client).await?;
    let blob = repo.url(&format!("v2/{}/blobs/{digest}", repo.name()));
    let response = repo.send(client, &blob, |c| c.head(blob.clone())).await?;
    match response.status() {
        s if s.is_success() => {
            progress.advance(size);
            tracing::debug!(blob = %digest, "the registry has it already");
            return Ok(None);
        }
        StatusCode::NOT_FOUND => {}
        s => {
            return Err(refused(
                repo,
                &format!("the check for blob `{digest}`"),
                s,
                None,
            ));
        }
    }
    let uploads = repo.url(&format!("v2/{}/blobs/uploads/", repo.name()));
    let reauthorised = AtomicBool::new(false);
    // A mount is asked for once; a registry that cannot mount answers with an upload session.
    let mount_from = Mutex::new(mount_from);
    // One attempt is a new upload session and its body; the engine's loop retries it.
    Ok(with_retries(repo.retry(), uploads.as_str(), || async {
        loop {
            repo.refresh_if_expiring(client)
                .await
                .map_err(Failure::local)?;
            let mount = mount_from
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take();
            let started = start_upload(repo, client, &uploads, digest, mount)
                .await
                .map_err(Failure::local)?;
            let target = match started {
                Started::Mounted => {
                    progress.advance(size);
                    tracing::debug!(blob = %digest, "mounted from the repository the model came from");
                    return Ok(None);
                }
                Started::Session(target) => target,
            };
            progress.restart();
            let (body, check) = match content {
                Content::Bytes(bytes) => (reqwest::Body::from(bytes.to_vec()), None),
                Content::File(file, hash, rate) => {
                    let pieces = read_pieces(file, BODY_PIECE, BODY_AHEAD, *hash, *rate);
                    let check = pieces.check().clone();
                    (pieces.into_body(Arc::clone(progress)), Some(check))
                }
            };
            let mut request = client
                .put(target.clone())
                .header(header::CONTENT_TYPE, "application/octet-stream")
                .header(header::CONTENT_LENGTH, HeaderValue::from(size))
                .body(body);
            if same_origin(&target, &uploads) {
                request = request.headers(repo.auth_headers());
            }
            let sent = request.send().await;
            // Bytes that do not match, or a file that could not be read, stopped the body
            // short of its end: that is the failure, and no retry mends it.
            if let Some(e) = check.and_then(|c| c.take()) {
                return Err(Failure::local(e));
            }
            let response = match sent {
                Ok(r) => r,
                Err(e) => {
                    tracing::debug!(blob = %digest, "the upload failed; starting a new session");
                    return Err(Failure::from_reqwest(e));
                }
            };
            match response.status() {
                StatusCode::UNAUTHORIZED => {
                    // Once: a new session with the new token, at once.
                    if !reauthorised.swap(true, Ordering::Relaxed)
                        && repo
                            .reauthorize(client, response.headers())
                            .await
                            .map_err(Failure::local)?
                    {
                        continue;
                    }
                    return Err(Failure::local(repo.denied(401)));
                }
                StatusCode::FORBIDDEN => return Err(Failure::local(repo.denied(403))),
                _ => return put_answer(repo, response, digest, size, content).await,
            }
        }
    })
    .await?)
}

/// What the answer to a blob's `PUT` (other than a refusal) means: its size when the registry
/// took it, a transient failure to retry with a new session, or a final error.
async fn put_answer(
    repo: &Repository,
    response: reqwest::Response,
    digest: &Digest,
    size: u64,
    content: &Content<'_>,
) -> std::result::Result<Option<u64>, Failure> {
    let status = response.status();
    if status.is_success() {
        let returned = response
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .and_then(|s| s.parse::<Digest>().ok());
        if let Some(returned) = returned {
            Error::check_digest(&format!("blob {digest}"), Some(digest), &returned)
                .map_err(Failure::local)?;
        }
        return Ok(Some(size));
    }
    if let Some(failure) = Failure::transient_status(status) {
        tracing::debug!(blob = %digest, "the upload failed; starting a new session");
        return Err(failure);
    }
    let code = error_code(response).await;
    if code.as_deref() == Some("DIGEST_INVALID")
        && let Content::File(file, ..) = content
    {
        // The registry hashed what it was sent and found another digest.
        return Err(Failure::local(Error::PushDigestRefused {
            id: file.what.clone(),
            digest: digest.clone(),
            registry: repo.registry().to_owned(),
        }));
    }
    let what = format!("the upload of blob `{digest}`");
    Err(Failure::local(refused(repo, &what, status, code)))
}

/// How a blob's upload began.
enum Started {
    /// The registry mounted the blob from another repository: nothing to send.
    Mounted,
    /// An upload session: where to `PUT` the blob, with its digest in the query.
    Session(url::Url),
}

/// `POST …/blobs/uploads/`: a new upload session, or, with `mount_from`, a request to mount
/// the blob from that repository of the same registry (`?mount=<digest>&from=<repository>`),
/// which a registry that cannot mount it answers with a session.
async fn start_upload(
    repo: &Repository,
    client: &Client,
    uploads: &url::Url,
    digest: &Digest,
    mount_from: Option<&str>,
) -> Result<Started> {
    let mut post = uploads.clone();
    if let Some(from) = mount_from {
        post.query_pairs_mut()
            .append_pair("mount", &digest.to_string())
            .append_pair("from", from);
    }
    let response = repo
        .send(client, &post, |c| {
            c.post(post.clone())
                .header(header::CONTENT_LENGTH, HeaderValue::from(0))
        })
        .await?;
    let status = response.status();
    if status == StatusCode::CREATED && mount_from.is_some() {
        return Ok(Started::Mounted);
    }
    if status != StatusCode::ACCEPTED {
        let code = error_code(response).await;
        return Err(refused(repo, "a new upload session", status, code));
    }
    let mut target = response
        .headers()
        .get(header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|l| uploads.join(l).ok())
        .ok_or_else(|| Error::OciProtocol {
            registry: repo.registry().to_owned(),
            reason: "an upload session without a usable `Location`".to_owned(),
        })?;
    target
        .query_pairs_mut()
        .append_pair("digest", &digest.to_string());
    Ok(Started::Session(target))
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

/// Whether `a` and `b` are the same scheme, host and port: only then may `Authorization` go.
fn same_origin(a: &url::Url, b: &url::Url) -> bool {
    a.scheme() == b.scheme()
        && a.host_str() == b.host_str()
        && a.port_or_known_default() == b.port_or_known_default()
}

/// The registry refused `what` with `status`, and said why with `code` (`errors[0].code`).
fn refused(repo: &Repository, what: &str, status: StatusCode, code: Option<String>) -> Error {
    let code = code.map(|c| format!(", `{c}`")).unwrap_or_default();
    Error::OciProtocol {
        registry: repo.registry().to_owned(),
        reason: format!("it refused {what} (HTTP {}{code})", status.as_u16()),
    }
}

/// `errors[0].code` of a registry's error body, when it has one.
async fn error_code(response: reqwest::Response) -> Option<String> {
    let body = mp_transfer::read_bounded(response, ERROR_BODY_LIMIT)
        .await
        .ok()?;
    code_of(&body)
}

/// `errors[0].code` of an error body.
fn code_of(body: &[u8]) -> Option<String> {
    let value: Value = serde_json::from_slice(body).ok()?;
    value
        .get("errors")?
        .get(0)?
        .get("code")?
        .as_str()
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layers_are_weights_configs_or_docs_by_file_name() {
        for path in [
            "model.gguf",
            "model-00001-of-00002.safetensors",
            "pytorch_model.bin",
            "w.pt",
            "w.PTH",
            "m.onnx",
            "sub/dir/x.gguf",
            "something.else",
            "noext",
        ] {
            assert_eq!(media_type_for(path), WEIGHT, "{path}");
        }
        for path in [
            "config.json",
            "generation_config.json",
            "tokenizer.json",
            "tokenizer_config.json",
            "tokenizer.model",
            "tokenizer",
            "special_tokens_map.json",
            "merges.txt",
            "vocab.txt",
            "spiece.model",
            "sub/config.json",
        ] {
            assert_eq!(media_type_for(path), WEIGHT_CONFIG, "{path}");
        }
        for path in [
            "README.md",
            "readme",
            "LICENSE",
            "LICENSE.txt",
            "docs/README.md",
        ] {
            assert_eq!(media_type_for(path), DOC, "{path}");
        }
    }

    #[test]
    fn created_times_are_rfc3339_utc() {
        assert_eq!(rfc3339(0).as_deref(), Some("1970-01-01T00:00:00Z"));
        assert_eq!(
            rfc3339(951_782_400_000).as_deref(),
            Some("2000-02-29T00:00:00Z")
        );
        assert_eq!(
            rfc3339(1_714_564_800_999).as_deref(),
            Some("2024-05-01T12:00:00Z")
        );
        assert_eq!(
            rfc3339(4_102_444_799_000).as_deref(),
            Some("2099-12-31T23:59:59Z")
        );
    }

    #[test]
    fn the_registrys_error_code_is_the_first_errors_code() {
        let body = br#"{"errors":[{"code":"MANIFEST_INVALID","message":"x"},{"code":"B"}]}"#;
        assert_eq!(code_of(body).as_deref(), Some("MANIFEST_INVALID"));
        assert_eq!(code_of(b"not json"), None);
        assert_eq!(code_of(br#"{"errors":[]}"#), None);
    }

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
