//! [`S3Fetcher::push`]: a cataloged model uploaded to an S3 folder with a manifest, through
//! the [one push of every object store](crate::object_store): this module writes the objects.
//!
//! A file below 64 MiB is one `PutObject` carrying `x-amz-checksum-sha256`, so the store keeps
//! its full-object checksum; a larger one is a multipart upload of 16 MiB parts (larger for a
//! file of more than 160 GiB, to stay within 10,000 parts), 8 of them in flight at once: S3
//! servers take many parts at once more cheaply than one after the other (see
//! `docs/benchmarks.md`). Those sizes are [`PARTS`] unless the builder sets others
//! ([`S3Options::upload_parts`](super::S3Options::upload_parts)); a part is never below S3's
//! 5 MiB nor above its 5 GiB, and a file over 5 GiB, more than one `PutObject` writes, goes in
//! parts whatever the sizes asked. Each file is read once, in order, and hashed on its way out
//! (`crate::upload`): a `PutObject`'s body is streamed, and the parts of a multipart upload are
//! read into memory one by one (at most 10 at a time), so that a part that fails is sent again
//! from memory. Each request is retried on its own with the engine's
//! [`RetryPolicy`](mp_transfer::RetryPolicy); a multipart upload that fails is aborted.
//!
//! A file whose bytes do not match its sha256 loses its last bytes (a `PutObject`'s body ends in
//! an error, which the store also refuses by the checksum) or its last part (the multipart
//! upload is aborted, never completed).
//!
//! [`S3Fetcher::put_object`] writes one small object from memory the same way, with its sha256
//! checksum: a mirror's ref object.

use std::sync::{Arc, Mutex, PoisonError};

use catalog_core::{CacheLayout, CatalogEntry, Digest, S3Ref};
use reqwest::header::CONTENT_LENGTH;
use reqwest::{Client, StatusCode};
use rusty_s3::S3Action as _;

use super::S3Fetcher;
use super::session::{SIGNATURE_LIFETIME, Session, error_code};
use crate::error::{Error, Result};
use crate::model_files::ModelFile;
use crate::object_store::{self, Folder, MANIFEST_NAME, PartSizes, Upload};
use crate::sign::Sign;
use crate::upload::{Hash, ReadCheck, read_pieces, send_parts};
use mp_progress::{Progress, Reporter};

/// A push's sizes unless told otherwise: files of 64 MiB and more go up as multipart uploads of
/// 16 MiB parts (larger when the file needs them, [`part_size`]); smaller ones in one
/// `PutObject`, whose checksum the store keeps.
pub(super) const PARTS: PartSizes = PartSizes {
    from: 64 << 20,
    size: 16 << 20,
};

/// Parts in flight at once. At most 10 parts are in memory: these, the one waiting for a free
/// upload, and the one being read.
const PARTS_IN_FLIGHT: usize = 8;

/// S3's limit on the parts of one upload.
const MAX_PARTS: u64 = 10_000;

/// S3's smallest part (but the last) and its largest.
const MIN_PART: u64 = 5 << 20;
const MAX_PART: u64 = 5 << 30;

/// The largest object one `PutObject` writes: a larger file goes in parts whatever the sizes
/// asked.
const PUT_OBJECT_LIMIT: u64 = 5 << 30;

/// The pieces a `PutObject`'s body is read and sent in, and how many are read ahead.
const BODY_PIECE: u64 = 2 << 20;
const BODY_AHEAD: usize = 4;

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
    /// [manifest](crate::object_store::Manifest) as `<prefix>.model-provisioner.json` ([`MANIFEST_NAME`]), which a
    /// later pull of the folder verifies every file against.
    ///
    /// A file below 64 MiB is one `PutObject` carrying its sha256 checksum, which the store
    /// keeps; a larger one is a multipart upload of 16 MiB parts, 8 at a time (other sizes with
    /// [`S3Options::upload_parts`](super::S3Options::upload_parts)). Each file is read once and
    /// hashed on its way out. Each request is retried with the engine's retry policy. Progress is
    /// reported per file.
    ///
    /// Nothing the catalog does not vouch for is published: every file's sha256 (recorded by
    /// the catalog, or the model's own digest for a model of one file; else hashed first) must
    /// give the model's digest, and a file whose bytes do not match its sha256 is never
    /// completed as an object, and then no manifest is written.
    ///
    /// # Errors
    ///
    /// [`Error::DigestMismatch`] when the model's bytes no longer match the catalog's digests;
    /// [`Error::PushDestination`] for a `dest` that is no folder; the store's refusals and
    /// transport failures; a read error naming the file.
    pub fn push(
        &self,
        layout: &CacheLayout,
        entry: &CatalogEntry,
        dest: &S3Ref,
        reporter: &dyn Reporter,
    ) -> Result<PushReport> {
        self.push_signed(layout, entry, dest, reporter, &Sign::default())
    }

    /// [`push`](Self::push), and the bundle `model.sig` over the files pushed when `sign` says
    /// so (`push --sign`).
    pub(crate) fn push_signed(
        &self,
        layout: &CacheLayout,
        entry: &CatalogEntry,
        dest: &S3Ref,
        reporter: &dyn Reporter,
        sign: &Sign,
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
        let config = self.config()?;
        let engine = self.engine()?;
        let endpoint = Self::endpoint(config, dest)?;
        let bucket = Self::bucket(config, dest, &endpoint)?;
        let session = self.session(config, &endpoint, bucket, engine);
        engine.block_on(session.start(engine.client()))?;
        let folder = S3Folder {
            session: &session,
            engine,
            dest,
            parts: self.options.upload_parts.unwrap_or(PARTS),
        };
        let pushed = object_store::push(&folder, layout, entry, reporter, sign)?;
        Ok(PushReport {
            files: pushed.files,
            bytes_uploaded: pushed.bytes_uploaded,
            manifest_key: format!("{}{MANIFEST_NAME}", dest.key),
        })
    }

    /// Writes `body` as the object `dest` (a mirror's ref object), with its sha256 checksum.
    ///
    /// # Errors
    ///
    /// As [`S3Fetcher::push`].
    pub fn put_object(&self, dest: &S3Ref, body: &[u8]) -> Result<()> {
        if self.options.offline {
            return Err(Error::Offline {
                reference: format!("s3://{}/{}", dest.bucket, dest.key),
            });
        }
        let config = self.config()?;
        let engine = self.engine()?;
        let endpoint = Self::endpoint(config, dest)?;
        let bucket = Self::bucket(config, dest, &endpoint)?;
        let session = self.session(config, &endpoint, bucket, engine);
        engine.block_on(session.start(engine.client()))?;
        engine.block_on(session.put_bytes(engine.client(), &dest.key, body))
    }
}

/// Base64 of the bytes of a sha256 digest, as `x-amz-checksum-sha256` carries it.
fn checksum_header(sha256: &Digest) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(sha256.bytes())
}

/// The size of the parts of a file of `size` bytes: `asked`, within S3's [`MIN_PART`] and
/// [`MAX_PART`], or the smallest whole MiB that keeps the file within [`MAX_PARTS`].
fn part_size(size: u64, asked: u64) -> u64 {
    let least = size.div_ceil(MAX_PARTS).div_ceil(1 << 20) << 20;
    asked.clamp(MIN_PART, MAX_PART).max(least)
}

/// A folder of a bucket, as [`object_store::push`] writes it: each object one `PutObject`, or a
/// multipart upload from [`PartSizes::from`] on.
struct S3Folder<'a> {
    session: &'a Session<'a>,
    engine: &'a mp_transfer::Downloader,
    dest: &'a S3Ref,
    parts: PartSizes,
}

impl Folder for S3Folder<'_> {
    fn describe(&self) -> String {
        format!("s3://{}/{}", self.dest.bucket, self.dest.key)
    }

    fn put_file(&self, name: &str, file: &Upload<'_>, progress: &Arc<dyn Progress>) -> Result<()> {
        let key = format!("{}{name}", self.dest.key);
        let file = file.file();
        let client = self.engine.client();
        if file.size < self.parts.from && file.size <= PUT_OBJECT_LIMIT {
            self.engine
                .block_on(self.session.put_file(client, &key, file, progress))
        } else {
            let part = part_size(file.size, self.parts.size);
            self.engine.block_on(
                self.session
                    .put_multipart(client, &key, file, part, progress),
            )
        }
    }

    fn put_bytes(&self, name: &str, body: &[u8]) -> Result<()> {
        let key = format!("{}{name}", self.dest.key);
        self.engine
            .block_on(self.session.put_bytes(self.engine.client(), &key, body))
    }
}

impl Session<'_> {
    /// One `PutObject` of the whole file, streamed and hashed on its way out, with its sha256
    /// checksum for the store to check and keep. Each attempt reads the file anew.
    async fn put_file(
        &self,
        client: &Client,
        key: &str,
        file: &ModelFile,
        progress: &Arc<dyn Progress>,
    ) -> Result<()> {
        let checksum = checksum_header(&file.digest);
        // The reader of the latest attempt, which says why its body stopped short.
        let latest: Mutex<Option<ReadCheck>> = Mutex::new(None);
        let stopped = || {
            latest
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .as_ref()
                .and_then(ReadCheck::take)
        };
        let response = self
            .send_until(
                client,
                key,
                |c| {
                    // What an earlier attempt reported is void.
                    progress.restart();
                    let pieces =
                        read_pieces(file, BODY_PIECE, BODY_AHEAD, Hash::Each, self.rate.as_ref());
                    *latest.lock().unwrap_or_else(PoisonError::into_inner) =
                        Some(pieces.check().clone());
                    let credentials = self.signing();
                    let mut put = self.bucket.put_object(credentials.as_ref(), key);
                    put.headers_mut()
                        .insert("x-amz-checksum-sha256", checksum.as_str());
                    c.put(put.sign(SIGNATURE_LIFETIME))
                        .header("x-amz-checksum-sha256", checksum.as_str())
                        .header(CONTENT_LENGTH, file.size)
                        .body(pieces.into_body(Arc::clone(progress)))
                },
                &stopped,
            )
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

    /// A multipart upload of the file in parts of `part` bytes, [`PARTS_IN_FLIGHT`] at once;
    /// an upload that fails, or whose file does not match its sha256, is aborted so its parts
    /// are not kept (and paid for).
    async fn put_multipart(
        &self,
        client: &Client,
        key: &str,
        file: &ModelFile,
        part: u64,
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
        let body = self.body_text(response, "the answer").await?;
        let created =
            rusty_s3::actions::CreateMultipartUpload::parse_response(&body).map_err(|e| {
                self.protocol(format!(
                    "a multipart upload's start that does not parse: {e}"
                ))
            })?;
        let upload_id = created.upload_id();
        let result = self
            .upload_parts(client, key, upload_id, file, part, progress)
            .await;
        if result.is_err() {
            self.abort(client, key, upload_id).await;
        }
        result
    }

    /// Sends every part, several at once, and completes the upload once every part is there
    /// and the file matched its sha256.
    async fn upload_parts(
        &self,
        client: &Client,
        key: &str,
        upload_id: &str,
        file: &ModelFile,
        part: u64,
        progress: &Arc<dyn Progress>,
    ) -> Result<()> {
        let count = file.size.div_ceil(part);
        if count > MAX_PARTS {
            return Err(Error::PushDestination {
                destination: key.to_owned(),
                reason: format!("`{}` needs more than 10,000 parts", file.rel),
            });
        }
        let pieces = read_pieces(file, part, 1, Hash::Each, self.rate.as_ref());
        // A file that did not verify, or could not be read, is the failure reported: the parts
        // that went are aborted with the upload.
        let etags = send_parts(pieces, PARTS_IN_FLIGHT, |number, bytes| async move {
            let number = u16::try_from(number)
                .map_err(|_| self.protocol(format!("`{key}` has more than 10,000 parts")))?;
            let (etag, len) = self
                .upload_part(client, key, upload_id, number, bytes)
                .await?;
            progress.advance(len);
            Ok(etag)
        })
        .await?;
        if etags.len() as u64 != count {
            return Err(self.protocol(format!("`{key}` was not sent whole")));
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
        let body = self.body_text(response, "the answer").await?;
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

    /// `UploadPart` of part `number` from memory, retried on its own. Returns its `ETag` and
    /// length.
    async fn upload_part(
        &self,
        client: &Client,
        key: &str,
        upload_id: &str,
        number: u16,
        bytes: bytes::Bytes,
    ) -> Result<(String, u64)> {
        let len = bytes.len() as u64;
        let response = self
            .send(client, key, |c| {
                let credentials = self.signing();
                let part = self
                    .bucket
                    .upload_part(credentials.as_ref(), key, number, upload_id);
                c.put(part.sign(SIGNATURE_LIFETIME))
                    .header(CONTENT_LENGTH, len)
                    .body(bytes.clone())
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
        Ok((etag, len))
    }

    /// Aborts a multipart upload, as far as the store lets it: a failure is only logged.
    async fn abort(&self, client: &Client, key: &str, upload_id: &str) {
        let aborted = self
            .send(client, key, |c| {
                let credentials = self.signing();
                c.delete(
                    self.bucket
                        .abort_multipart_upload(credentials.as_ref(), key, upload_id)
                        .sign(SIGNATURE_LIFETIME),
                )
            })
            .await;
        match aborted {
            Ok(r) if r.status().is_success() => {}
            Ok(r) => tracing::debug!(status = %r.status(), %key, "aborting the upload failed"),
            Err(e) => tracing::debug!(error = %e, %key, "aborting the upload failed"),
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
    fn parts_stay_within_5_mib_5_gib_and_10_000() {
        const MIB: u64 = 1 << 20;
        assert_eq!(part_size(100 * MIB, PARTS.size), 16 * MIB);
        // Asked below S3's least part, a part is 5 MiB; above its largest, 5 GiB.
        assert_eq!(part_size(100 * MIB, MIB), 5 * MIB);
        assert_eq!(part_size(100 << 30, 6 << 30), 5 << 30);
        // 156.25 GiB is 10,000 parts of 16 MiB; one byte more needs parts of 17 MiB.
        assert_eq!(part_size(10_000 * 16 * MIB, 16 * MIB), 16 * MIB);
        assert_eq!(part_size(10_000 * 16 * MIB + 1, 16 * MIB), 17 * MIB);
        for (size, asked) in [
            (1, MIB),
            (5 * MIB, MIB),
            (10_000 * 16 * MIB + 1, 16 * MIB),
            (5 << 40, MIB),
        ] {
            let part = part_size(size, asked);
            assert!(size.div_ceil(part) <= MAX_PARTS, "{size}");
            assert!((MIN_PART..=MAX_PART).contains(&part), "{size}");
        }
    }
}
