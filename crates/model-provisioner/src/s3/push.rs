//! [`S3Fetcher::push`]: a cataloged model uploaded to an S3 folder, with a manifest that a
//! later pull of that folder verifies every file against.
//!
//! ```text
//! s3://bucket/prefix/
//! ├── <file>                     one object per file of the model, under its relative path
//! ├── <dir>/<file>               (a model that is one file is one object, named by its name)
//! └── .model-provisioner.json    the manifest: written last, so never there without its files
//! ```
//!
//! A file below 64 MiB is one `PutObject` carrying `x-amz-checksum-sha256`, so the store keeps
//! its full-object checksum; a larger one is a multipart upload of 64 MiB parts. Either way the
//! body is streamed from the file, never read into memory. Each request is retried on its own
//! with the engine's [`RetryPolicy`](crate::download::RetryPolicy).
//!
//! The manifest (`{"version":1,"id","digest","files":[{"path","size","sha256"}],"provenance"}`)
//! states each file's sha256 whatever the upload, so a pull of the folder is verified even where
//! the store has no full-object checksum (multipart uploads).

use std::io;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use catalog_core::{
    CacheLayout, CatalogEntry, Digest, Provenance, S3Ref, TreeDigest, open_regular,
};
use reqwest::header::CONTENT_LENGTH;
use reqwest::{Client, StatusCode};
use rusty_s3::S3Action as _;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt as _, ReadBuf};

use super::{S3Fetcher, SIGNATURE_LIFETIME, Session, error_code};
use crate::error::{Error, Result};
use crate::model_files::{ModelFile, model_files};
use crate::reporter::{Progress, Reporter};

/// The name of the manifest object inside a pushed folder: `<prefix>.model-provisioner.json`.
pub const MANIFEST_NAME: &str = ".model-provisioner.json";

/// The manifest format written, and the only one read.
const MANIFEST_VERSION: u32 = 1;

/// The largest manifest a pull reads: a model of 100,000 files stays far below it.
pub(super) const MANIFEST_LIMIT: u64 = 16 << 20;

/// Files of this size and more go up in parts of this size. S3 allows 10,000 parts, so one
/// file may reach 640 GiB; a part that fails is retried alone.
const PART_SIZE: u64 = 64 << 20;

/// What a pushed folder says about itself: the model and each file's sha256.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// The format, `1`.
    pub version: u32,
    /// The catalog id of the model that was pushed.
    pub id: String,
    /// The model's digest: the tree digest of its files, or the one file's sha256.
    pub digest: Digest,
    /// Every file, by its path under the folder.
    pub files: Vec<ManifestFile>,
    /// Where the model came from before it was pushed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provenance: Option<Provenance>,
}

/// One file of a [`Manifest`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestFile {
    /// Path under the folder, `/`-separated.
    pub path: String,
    /// Length in bytes.
    pub size: u64,
    /// The file's sha256.
    pub sha256: Digest,
}

/// What a push did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushReport {
    /// Files uploaded (the manifest not counted).
    pub files: usize,
    /// Bytes of those files sent.
    pub bytes_uploaded: u64,
    /// The key of the manifest object.
    pub manifest_key: String,
}

impl S3Fetcher {
    /// Uploads the model of `entry` into the folder `dest` (`s3://bucket/prefix/`), then the
    /// [manifest](Manifest) as `<prefix>.model-provisioner.json` ([`MANIFEST_NAME`]), which a
    /// later pull of the folder verifies every file against.
    ///
    /// A file below 64 MiB is one `PutObject` carrying its sha256 checksum, which the store
    /// keeps; a larger one is a multipart upload of 64 MiB parts, one after the other. Bodies
    /// are streamed from disk. Each request is retried with the engine's retry policy.
    ///
    /// Each file's sha256 comes from the entry's provenance when it is recorded there, else the
    /// file is hashed: the caller verifies the model first. Progress is reported per file.
    pub fn push(
        &self,
        layout: &CacheLayout,
        entry: &CatalogEntry,
        dest: &S3Ref,
        reporter: &dyn Reporter,
    ) -> Result<PushReport> {
        if !dest.is_prefix() {
            return Err(Error::PushDestination {
                destination: format!("s3://{}/{}", dest.bucket, dest.key),
                reason: "it names an object, and a model goes into a folder".into(),
            });
        }
        if self.options.offline {
            return Err(Error::Offline {
                reference: format!("s3://{}/{}", dest.bucket, dest.key),
            });
        }
        let files = model_files(layout, entry, reporter, &|rel| {
            // The manifest of the folder the model came from: this push writes a new one.
            let old_manifest = rel == MANIFEST_NAME;
            if old_manifest {
                tracing::warn!(path = rel, "not pushing an old manifest");
            }
            old_manifest
        })?;
        let manifest = Manifest {
            version: MANIFEST_VERSION,
            id: entry.id.clone(),
            digest: model_digest(entry, &files),
            files: files
                .iter()
                .map(|f| ManifestFile {
                    path: f.rel.as_str().to_owned(),
                    size: f.size,
                    sha256: f.digest.clone(),
                })
                .collect(),
            provenance: entry.provenance.clone(),
        };
        let manifest_body = serde_json::to_vec_pretty(&manifest).map_err(|e| Error::Setup {
            what: "write the manifest",
            source: Box::new(e),
        })?;

        let config = self.config()?;
        let engine = self.engine()?;
        let endpoint = Self::endpoint(config, dest)?;
        let bucket = Self::bucket(config, dest, &endpoint)?;
        let session = self.session(config, &endpoint, &bucket, engine);
        let client = engine.client();
        engine.block_on(session.start(client))?;

        let mut bytes_uploaded = 0;
        for file in &files {
            let key = format!("{}{}", dest.key, file.rel);
            let progress: Arc<dyn Progress> =
                Arc::from(reporter.start(file.rel.as_str(), Some(file.size)));
            let result = if file.size < PART_SIZE {
                engine.block_on(session.put_file(client, &key, file, &progress))
            } else {
                engine.block_on(session.put_multipart(client, &key, file, &progress))
            };
            progress.finish();
            result?;
            bytes_uploaded += file.size;
            tracing::debug!(%key, size = file.size, "uploaded");
        }
        let manifest_key = format!("{}{MANIFEST_NAME}", dest.key);
        engine.block_on(session.put_bytes(client, &manifest_key, &manifest_body))?;
        Ok(PushReport {
            files: files.len(),
            bytes_uploaded,
            manifest_key,
        })
    }
}

/// The model's digest as verification computes it: the one file's sha256, or the tree digest.
fn model_digest(entry: &CatalogEntry, files: &[ModelFile]) -> Digest {
    match files {
        [one] if !entry.local_path.is_dir() => one.digest.clone(),
        _ => files
            .iter()
            .map(|f| (f.rel.as_str(), f.digest.clone()))
            .collect::<TreeDigest>()
            .finish(),
    }
}

/// Base64 of the bytes of a sha256 digest, as `x-amz-checksum-sha256` carries it.
fn checksum_header(sha256: &Digest) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(sha256.bytes())
}

/// `len` bytes of the file at `path` from `offset`, streamed as a request body. Each attempt
/// opens the file anew, so a retry never shares a read position with a request that failed.
fn file_body(path: &Path, offset: u64, len: u64, progress: &Arc<dyn Progress>) -> reqwest::Body {
    // What an earlier attempt reported is void: count again from where this body starts.
    progress.restart();
    progress.advance(offset);
    let reader = open_regular(path)
        .and_then(|mut file| {
            io::Seek::seek(&mut file, io::SeekFrom::Start(offset))?;
            Ok(tokio::fs::File::from_std(file).take(len))
        })
        .map_err(|e| {
            Some(io::Error::new(
                e.kind(),
                format!("`{}`: {e}", path.display()),
            ))
        });
    reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::new(Counted {
        reader,
        progress: Arc::clone(progress),
    }))
}

/// A reader that reports what it reads, or the error that kept the file from being opened.
struct Counted {
    reader: std::result::Result<tokio::io::Take<tokio::fs::File>, Option<io::Error>>,
    progress: Arc<dyn Progress>,
}

impl AsyncRead for Counted {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match &mut this.reader {
            Ok(reader) => {
                let before = buf.filled().len();
                let polled = Pin::new(reader).poll_read(cx, buf);
                if let Poll::Ready(Ok(())) = polled {
                    this.progress.advance((buf.filled().len() - before) as u64);
                }
                polled
            }
            Err(e) => Poll::Ready(Err(e
                .take()
                .unwrap_or_else(|| io::Error::other("the file could not be opened")))),
        }
    }
}

impl Session<'_> {
    /// The error for a refused request for `key` (a write when `write`), from its status and
    /// body.
    pub(super) async fn refused(
        &self,
        response: reqwest::Response,
        key: &str,
        write: bool,
    ) -> Error {
        let status = response.status();
        let code = response.text().await.ok().and_then(|b| error_code(&b));
        self.refusal(status, code.as_deref(), Some(key), write)
    }

    /// One `PutObject` of the whole file, streamed, with its sha256 checksum for the store to
    /// check and keep.
    async fn put_file(
        &self,
        client: &Client,
        key: &str,
        file: &ModelFile,
        progress: &Arc<dyn Progress>,
    ) -> Result<()> {
        let checksum = checksum_header(&file.digest);
        let response = self
            .send(client, key, |c| {
                let credentials = self.signing();
                let mut put = self.bucket.put_object(credentials.as_ref(), key);
                put.headers_mut()
                    .insert("x-amz-checksum-sha256", checksum.as_str());
                c.put(put.sign(SIGNATURE_LIFETIME))
                    .header("x-amz-checksum-sha256", checksum.as_str())
                    .header(CONTENT_LENGTH, file.size)
                    .body(file_body(&file.path, 0, file.size, progress))
            })
            .await?;
        if !response.status().is_success() {
            return Err(self.refused(response, key, true).await);
        }
        Ok(())
    }

    /// A small object from memory (the manifest), with its sha256 checksum.
    pub(super) async fn put_bytes(&self, client: &Client, key: &str, body: &[u8]) -> Result<()> {
        let checksum = checksum_header(&Digest::sha256_of(body));
        let response = self
            .send(client, key, |c| {
                let credentials = self.signing();
                let mut put = self.bucket.put_object(credentials.as_ref(), key);
                put.headers_mut()
                    .insert("x-amz-checksum-sha256", checksum.as_str());
                put.headers_mut().insert("content-type", "application/json");
                c.put(put.sign(SIGNATURE_LIFETIME))
                    .header("x-amz-checksum-sha256", checksum.as_str())
                    .header("content-type", "application/json")
                    .body(body.to_vec())
            })
            .await?;
        if !response.status().is_success() {
            return Err(self.refused(response, key, true).await);
        }
        Ok(())
    }

    /// A multipart upload of the file in [`PART_SIZE`] parts, sent one after the other; an
    /// upload that fails is aborted so its parts are not kept (and paid for).
    async fn put_multipart(
        &self,
        client: &Client,
        key: &str,
        file: &ModelFile,
        progress: &Arc<dyn Progress>,
    ) -> Result<()> {
        let response = self
            .send(client, key, |c| {
                let credentials = self.signing();
                let create = self
                    .bucket
                    .create_multipart_upload(credentials.as_ref(), key);
                c.post(create.sign(SIGNATURE_LIFETIME))
            })
            .await?;
        if !response.status().is_success() {
            return Err(self.refused(response, key, true).await);
        }
        let body = self.body_text(response).await?;
        let created =
            rusty_s3::actions::CreateMultipartUpload::parse_response(&body).map_err(|e| {
                self.protocol(format!(
                    "a multipart upload's start that does not parse: {e}"
                ))
            })?;
        let upload_id = created.upload_id();
        let result = self
            .upload_parts(client, key, upload_id, file, progress)
            .await;
        if result.is_err() {
            self.abort(client, key, upload_id).await;
        }
        result
    }

    async fn upload_parts(
        &self,
        client: &Client,
        key: &str,
        upload_id: &str,
        file: &ModelFile,
        progress: &Arc<dyn Progress>,
    ) -> Result<()> {
        let mut etags = Vec::new();
        let mut offset = 0;
        while offset < file.size {
            let len = PART_SIZE.min(file.size - offset);
            let number = u16::try_from(etags.len() + 1)
                .ok()
                .filter(|n| *n <= 10_000)
                .ok_or_else(|| Error::PushDestination {
                    destination: key.to_owned(),
                    reason: format!("`{}` needs more than 10,000 parts", file.rel),
                })?;
            let response = self
                .send(client, key, |c| {
                    let credentials = self.signing();
                    let part =
                        self.bucket
                            .upload_part(credentials.as_ref(), key, number, upload_id);
                    c.put(part.sign(SIGNATURE_LIFETIME))
                        .header(CONTENT_LENGTH, len)
                        .body(file_body(&file.path, offset, len, progress))
                })
                .await?;
            if !response.status().is_success() {
                return Err(self.refused(response, key, true).await);
            }
            let etag = response
                .headers()
                .get("etag")
                .and_then(|v| v.to_str().ok())
                .ok_or_else(|| self.protocol(format!("part {number} of `{key}` has no `ETag`")))?
                .to_owned();
            etags.push(etag);
            offset += len;
        }
        let response = self
            .send(client, key, |c| {
                let credentials = self.signing();
                let complete = |credentials| {
                    self.bucket.complete_multipart_upload(
                        credentials,
                        key,
                        upload_id,
                        etags.iter().map(String::as_str),
                    )
                };
                c.post(complete(credentials.as_ref()).sign(SIGNATURE_LIFETIME))
                    .body(complete(None).body())
            })
            .await?;
        if !response.status().is_success() {
            return Err(self.refused(response, key, true).await);
        }
        // S3 may answer 200 and still fail: the body says which.
        let body = self.body_text(response).await?;
        rusty_s3::actions::CompleteMultipartUploadResponse::parse(&body).map_err(|_| {
            let code = error_code(&body);
            match code {
                Some(code) => self.refusal(StatusCode::OK, Some(&code), Some(key), true),
                None => self.protocol(format!(
                    "the end of the multipart upload of `{key}` does not parse"
                )),
            }
        })?;
        Ok(())
    }

    /// Aborts a multipart upload, as far as the store lets it: a failure is only logged.
    async fn abort(&self, client: &Client, key: &str, upload_id: &str) {
        let credentials = self.signing();
        let url = self
            .bucket
            .abort_multipart_upload(credentials.as_ref(), key, upload_id)
            .sign(SIGNATURE_LIFETIME);
        match client.delete(url).send().await {
            Ok(r) if r.status().is_success() => {}
            Ok(r) => tracing::debug!(status = %r.status(), %key, "aborting the upload failed"),
            Err(e) => tracing::debug!(error = %e.without_url(), %key, "aborting the upload failed"),
        }
    }

    /// The whole body of a small answer.
    pub(super) async fn body_text(&self, response: reqwest::Response) -> Result<String> {
        response.text().await.map_err(|e| Error::S3Unreachable {
            endpoint: self.endpoint.clone(),
            reason: format!("an answer's body failed: {}", e.without_url()),
        })
    }

    pub(super) fn protocol(&self, reason: String) -> Error {
        Error::S3Protocol {
            endpoint: self.endpoint.clone(),
            reason,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_checksum_header_is_base64_of_the_sha256_bytes() {
        // The sha256 of nothing, as AWS documents it in base64.
        assert_eq!(
            checksum_header(&Digest::sha256_of(b"")),
            "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="
        );
    }

    #[test]
    fn the_manifest_reads_back_as_written() -> Result<(), serde_json::Error> {
        let manifest = Manifest {
            version: MANIFEST_VERSION,
            id: "file:/m".into(),
            digest: Digest::sha256_of(b"tree"),
            files: vec![ManifestFile {
                path: "a/b.bin".into(),
                size: 3,
                sha256: Digest::sha256_of(b"abc"),
            }],
            provenance: None,
        };
        let text = serde_json::to_string(&manifest)?;
        assert!(text.contains(r#""sha256":"sha256:"#), "{text}");
        assert_eq!(serde_json::from_str::<Manifest>(&text)?, manifest);
        Ok(())
    }
}
