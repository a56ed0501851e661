//! One blob's upload: asked for first, mounted or sent in one session; a registry's refusals.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use catalog_core::Digest;
use reqwest::header::{self, HeaderValue};
use reqwest::{Client, StatusCode};
use serde_json::Value;

use super::client::Repository;
use crate::error::{Error, Result};
use crate::model_files::ModelFile;
use crate::upload::{Hash, read_pieces};
use mp_progress::Progress;
use mp_transfer::{Failure, with_retries};

/// The largest error body read from a refusal, for its error code.
const ERROR_BODY_LIMIT: usize = 64 << 10;

/// The pieces a blob's body is read and sent in, and how many are read ahead of the
/// connection.
const BODY_PIECE: u64 = 2 << 20;
const BODY_AHEAD: usize = 4;

/// A blob to upload: a file streamed from disk, or bytes made here.
pub(super) enum Content<'a> {
    /// A model's file, read from disk, hashed by us or only by the registry, under the
    /// engine's rate cap.
    File(&'a ModelFile, Hash, Option<&'a mp_transfer::RateLimit>),
    Bytes(&'a [u8]),
}

/// Uploads one blob unless the registry has it, or can mount it from the repository
/// `mount_from` of the same registry. Returns the bytes sent, or `None` when it was there
/// already or was mounted.
pub(super) async fn upload_blob(
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

/// Whether `a` and `b` are the same scheme, host and port: only then may `Authorization` go.
fn same_origin(a: &url::Url, b: &url::Url) -> bool {
    a.scheme() == b.scheme()
        && a.host_str() == b.host_str()
        && a.port_or_known_default() == b.port_or_known_default()
}

/// The registry refused `what` with `status`, and said why with `code` (`errors[0].code`).
pub(super) fn refused(
    repo: &Repository,
    what: &str,
    status: StatusCode,
    code: Option<String>,
) -> Error {
    let code = code.map(|c| format!(", `{c}`")).unwrap_or_default();
    Error::OciProtocol {
        registry: repo.registry().to_owned(),
        reason: format!("it refused {what} (HTTP {}{code})", status.as_u16()),
    }
}

/// `errors[0].code` of a registry's error body, when it has one.
pub(super) async fn error_code(response: reqwest::Response) -> Option<String> {
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
    fn the_registrys_error_code_is_the_first_errors_code() {
        let body = br#"{"errors":[{"code":"MANIFEST_INVALID","message":"x"},{"code":"B"}]}"#;
        assert_eq!(code_of(body).as_deref(), Some("MANIFEST_INVALID"));
        assert_eq!(code_of(b"not json"), None);
        assert_eq!(code_of(br#"{"errors":[]}"#), None);
    }
}
