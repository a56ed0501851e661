//! A push's large file as a resumable upload: one session, the file's chunks sent in order,
//! each continued after a failure from what the server says it has.
//!
//! ```text
//! POST {endpoint}/upload/storage/v1/b/{bucket}/o?uploadType=resumable&name=…
//!      X-Upload-Content-Length: TOTAL                      → 200, Location: <session>
//! PUT  <session>  Content-Range: bytes A-B/*               a chunk → 308, Range: bytes=0-N
//! PUT  <session>  Content-Range: bytes */TOTAL             after a failure: what it has
//! PUT  <session>  Content-Range: bytes A-(TOTAL-1)/TOTAL   the last chunk → 200: the object
//! DELETE <session>                                         cancelled → 499
//! ```
//!
//! A file of 64 MiB or more goes up this way, in chunks of 32 MiB (a multiple of the 256 KiB
//! Cloud Storage requires of every chunk but the last). A session takes its chunks one after
//! the other, so they are larger than S3's parts: fewer round trips. Each chunk is held in
//! memory while it is sent (with the next one read ahead: at most three in memory), so that
//! after a failure (a connection cut, a `5xx`) the rest of it goes again from memory: the
//! session's status says how many bytes the server kept, and the chunk continues from there,
//! not from zero. The attempts go through the engine's retry loop; a `401` or `403` replaces the
//! token and sends the chunk once more.
//!
//! The file is read once, in order, and hashed (`crate::upload`): its last chunk, the one that
//! states the total and makes the object, is handed over only once the whole file matched its
//! sha256. A file that does not match, or an upload that fails, cancels the session (`DELETE`),
//! and no object appears; the object that was there before, if any, stays.
//!
//! The session's URL is a credential of its own (whoever holds it may write the object), so it
//! appears in no message or log; the bearer token goes with its requests only when it is on the
//! configured endpoint.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use bytes::Bytes;
use reqwest::header::{CONTENT_LENGTH, CONTENT_RANGE, HeaderMap, LOCATION, RANGE};
use reqwest::{Client, StatusCode};

use super::session::{Session, encode, protocol};
use crate::error::{Error, Result, SourceFailure, source_failure};
use crate::model_files::ModelFile;
use crate::object_store::PartSizes;
use crate::upload::{Hash, read_pieces};
use mp_progress::Progress;
use mp_transfer::{Call, Clients, Downloader, Failure, with_retries};

/// A push's sizes unless told otherwise: chunks of 32 MiB from 64 MiB on.
pub(super) const CHUNKS: PartSizes = PartSizes {
    from: 64 << 20,
    size: 32 << 20,
};

/// Every chunk but the last is a multiple of this.
const QUANTUM: u64 = 256 << 10;

/// `asked` rounded up to a multiple of [`QUANTUM`].
fn chunk_size(asked: u64) -> u64 {
    asked.div_ceil(QUANTUM).max(1) * QUANTUM
}

/// One resumable upload of a file: where its session is, and what it is called in messages.
struct Upload<'a> {
    session: &'a Session,
    client: &'a Client,
    /// The session's URL.
    target: url::Url,
    /// Whether the token goes with its requests: the session is on the configured endpoint.
    authorized: bool,
    /// `endpoint/bucket/object`.
    display: String,
    object: &'a str,
    total: u64,
}

/// Uploads `file` as `object` in `bucket` through a resumable session, in chunks of about
/// `chunk` bytes; the object appears only when the whole file went and matched its sha256.
pub(super) fn upload(
    engine: &Downloader,
    session: &Session,
    bucket: &str,
    object: &str,
    file: &ModelFile,
    chunk: u64,
    progress: &Arc<dyn Progress>,
) -> Result<()> {
    let client = engine.client();
    let started = engine.block_on(start(session, client, bucket, object, file.size))?;
    let target = match started {
        Ok(target) => target,
        Err(status) => return Err(session.refusal(engine, status, bucket, Some(object))),
    };
    let authorized =
        url::Url::parse(&session.base).is_ok_and(|base| base.origin() == target.origin());
    let upload = Upload {
        session,
        client,
        target,
        authorized,
        display: format!("{}/{bucket}/{object}", session.endpoint),
        object,
        total: file.size,
    };
    let rate = engine.config().rate_limit.as_ref();
    engine.block_on(async {
        let sent = upload.send(file, chunk_size(chunk), rate, progress).await;
        if sent.is_err() {
            upload.cancel().await;
        }
        sent
    })
}

/// Starts a session for `total` bytes as `object`: its URL, or the status that refused it.
async fn start(
    session: &Session,
    client: &Client,
    bucket: &str,
    object: &str,
    total: u64,
) -> Result<std::result::Result<url::Url, StatusCode>> {
    let mut url = url::Url::parse(&format!(
        "{}/upload/storage/v1/b/{}/o",
        session.base,
        encode(bucket)
    ))
    .map_err(|e| protocol(format!("the upload's URL: {e}")))?;
    url.query_pairs_mut()
        .append_pair("uploadType", "resumable")
        .append_pair("name", object);
    session.fresh_token(client).await?;
    let display = format!("{}/{bucket}/{object}", session.endpoint);
    let call = Call::new(&display, |c| {
        c.post(url.clone())
            .headers(session.authorization())
            .header("x-upload-content-length", total)
            .header("x-upload-content-type", "application/octet-stream")
            .header(CONTENT_LENGTH, 0)
    })
    .authorized_by(session);
    let response = mp_transfer::call(client, session.retry(), &call, &|| None)
        .await
        .map_err(|e| session.unreachable(e))?;
    let status = response.status();
    if !status.is_success() {
        return Ok(Err(status));
    }
    let location = response
        .headers()
        .get(LOCATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|l| response.url().join(l).ok())
        .ok_or_else(|| {
            protocol(format!(
                "`{}` started an upload of `{object}` with no `Location` to send it to",
                session.endpoint
            ))
        })?;
    Ok(Ok(location))
}

impl Upload<'_> {
    /// Sends the file's chunks in order; the last one only once the file matched.
    async fn send(
        &self,
        file: &ModelFile,
        chunk: u64,
        rate: Option<&mp_transfer::RateLimit>,
        progress: &Arc<dyn Progress>,
    ) -> Result<()> {
        let mut pieces = read_pieces(file, chunk, 1, Hash::Each, rate);
        let check = pieces.check().clone();
        // The server has the bytes before this one.
        let kept = AtomicU64::new(0);
        let mut start = 0;
        while let Some(piece) = pieces.next().await {
            let len = piece.len() as u64;
            self.send_chunk(&piece, start, &kept, progress).await?;
            start += len;
        }
        // A file that did not verify, or could not be read: its last chunk never went.
        if let Some(e) = check.take() {
            return Err(e);
        }
        if start != self.total {
            return Err(protocol(format!("`{}` was not sent whole", self.object)));
        }
        Ok(())
    }

    /// Sends `piece`, the bytes from `start`, until the server has them all; after a failed
    /// attempt, asks what it has and sends the rest from there. `kept` is what the server has.
    async fn send_chunk(
        &self,
        piece: &Bytes,
        start: u64,
        kept: &AtomicU64,
        progress: &Arc<dyn Progress>,
    ) -> Result<()> {
        let end = start + piece.len() as u64;
        let last = end == self.total;
        let failed_before = AtomicBool::new(false);
        with_retries(self.session.retry(), &self.display, || async {
            self.session
                .fresh_token(self.client)
                .await
                .map_err(Failure::local)?;
            if failed_before.swap(false, Ordering::Relaxed) {
                match self.status().await.inspect_err(|_| {
                    failed_before.store(true, Ordering::Relaxed);
                })? {
                    Some(have) => Self::kept(kept, have, progress),
                    // The object is made: only the last chunk does that.
                    None if last => return Ok(()),
                    None => {
                        return Err(Failure::local(protocol(format!(
                            "`{}` completed the upload of `{}` before its last chunk",
                            self.session.endpoint, self.object
                        ))));
                    }
                }
            }
            loop {
                let from = kept.load(Ordering::Relaxed);
                if from < start || from > end {
                    return Err(Failure::local(protocol(format!(
                        "`{}` has {from} bytes of `{}`, outside the chunk held (bytes {start} to {end})",
                        self.session.endpoint, self.object
                    ))));
                }
                if from == end && !last {
                    return Ok(());
                }
                let body = piece.slice(usize::try_from(from - start).unwrap_or(0)..);
                let range = match (last, body.is_empty()) {
                    (true, true) => format!("bytes */{}", self.total),
                    (true, false) => format!("bytes {from}-{}/{}", end - 1, self.total),
                    (false, _) => format!("bytes {from}-{}/*", end - 1),
                };
                let response = match self.put(&range, body).await {
                    Ok(r) => r,
                    Err(f) => {
                        failed_before.store(true, Ordering::Relaxed);
                        return Err(f);
                    }
                };
                match response.status() {
                    StatusCode::PERMANENT_REDIRECT => {
                        let have = have_from(response.headers());
                        Self::kept(kept, have, progress);
                        if have == from {
                            // Sent again, it would be kept no better.
                            return Err(Failure::protocol("a `308` that kept none of the chunk"));
                        }
                    }
                    s if s.is_success() && last => {
                        Self::kept(kept, self.total, progress);
                        return Ok(());
                    }
                    s => return Err(Failure::local(self.refused(s))),
                }
            }
        })
        .await
        .map_err(|e| self.session.unreachable(e))
    }

    /// Records that the server has `have` bytes, and advances `progress` by the new ones.
    fn kept(kept: &AtomicU64, have: u64, progress: &Arc<dyn Progress>) {
        let before = kept.swap(have, Ordering::Relaxed);
        progress.advance(have.saturating_sub(before));
    }

    /// A `PUT` of the session with `range` and `body`, the token replaced once after a refusal.
    async fn put(
        &self,
        range: &str,
        body: Bytes,
    ) -> std::result::Result<reqwest::Response, Failure> {
        let call = Call::new(&self.display, |c| {
            let headers = if self.authorized {
                self.session.authorization()
            } else {
                HeaderMap::new()
            };
            c.put(self.target.clone())
                .headers(headers)
                .header(CONTENT_RANGE, range)
                .header(CONTENT_LENGTH, body.len())
                .body(body.clone())
        })
        .authorized_by(self.session);
        let clients = Clients {
            request: self.client,
            auth: self.client,
        };
        mp_transfer::send(&call, clients, &HeaderMap::new()).await
    }

    /// What the server has of the upload (`Content-Range: bytes */TOTAL`): `Some` bytes, or
    /// `None` when the object is made.
    async fn status(&self) -> std::result::Result<Option<u64>, Failure> {
        let response = self
            .put(&format!("bytes */{}", self.total), Bytes::new())
            .await?;
        match response.status() {
            StatusCode::PERMANENT_REDIRECT => Ok(Some(have_from(response.headers()))),
            s if s.is_success() => Ok(None),
            s => Err(Failure::local(self.refused(s))),
        }
    }

    /// What a status other than the session's own means.
    fn refused(&self, status: StatusCode) -> Error {
        match status {
            // Never a `404` to `refusal`, which would ask about the bucket from inside the
            // runtime: here it is the session that is gone.
            StatusCode::NOT_FOUND | StatusCode::GONE => source_failure(
                SourceFailure::Protocol,
                format!(
                    "`{}` ended the upload session of `{}` (HTTP {status})",
                    self.session.endpoint, self.object
                ),
                "run the same command again: a new session starts from the first byte",
            ),
            s => protocol(format!(
                "`{}` answered HTTP {s} to a chunk of `{}`",
                self.session.endpoint, self.object
            )),
        }
    }

    /// Cancels the session, as far as the server lets it: a failure is only logged.
    async fn cancel(&self) {
        let call = Call::new(&self.display, |c| {
            let headers = if self.authorized {
                self.session.authorization()
            } else {
                HeaderMap::new()
            };
            c.delete(self.target.clone()).headers(headers)
        })
        .authorized_by(self.session);
        match mp_transfer::call(self.client, self.session.retry(), &call, &|| None).await {
            // Cloud Storage answers a cancelled session with 499.
            Ok(r) if r.status().as_u16() == 499 || r.status().is_success() => {}
            Ok(r) => {
                tracing::debug!(status = %r.status(), object = self.object, "cancelling the upload failed");
            }
            Err(e) => {
                tracing::debug!(error = %e, object = self.object, "cancelling the upload failed");
            }
        }
    }
}

/// The bytes a `308`'s `Range: bytes=0-N` says the server has (`N + 1`); none without one.
fn have_from(headers: &HeaderMap) -> u64 {
    headers
        .get(RANGE)
        .and_then(|v| v.to_str().ok())
        .and_then(|r| r.trim().strip_prefix("bytes=0-"))
        .and_then(|n| n.trim().parse::<u64>().ok())
        .map_or(0, |n| n + 1)
}

#[cfg(test)]
mod tests {
    use reqwest::header::HeaderValue;

    use super::*;

    #[test]
    fn chunks_are_whole_quanta_of_256_kib() {
        assert_eq!(chunk_size(1), 256 << 10);
        assert_eq!(chunk_size(256 << 10), 256 << 10);
        assert_eq!(chunk_size((1 << 20) + 1), (1 << 20) + (256 << 10));
        assert_eq!(chunk_size(CHUNKS.size), 32 << 20);
    }

    #[test]
    fn the_range_of_a_308_is_what_the_server_has() {
        let mut headers = HeaderMap::new();
        assert_eq!(have_from(&headers), 0);
        headers.insert(RANGE, HeaderValue::from_static("bytes=0-262143"));
        assert_eq!(have_from(&headers), 256 << 10);
        headers.insert(RANGE, HeaderValue::from_static("bytes=5-9"));
        assert_eq!(have_from(&headers), 0);
    }
}
