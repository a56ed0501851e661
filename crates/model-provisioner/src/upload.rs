//! A model file read once for an upload: in order, on a blocking thread, hashed as it goes, and
//! handed over in pieces (the chunks of a request body, or the parts of a multipart upload).
//!
//! The last piece is handed over only after the file's sha256 has been compared with the one
//! the catalog expects ([`ModelFile::digest`]). A file whose bytes no longer match never reaches
//! a server whole: a request body ends in an error before its last bytes, and a multipart upload
//! lacks its last part, so neither can be completed, whatever the server checks. The reader
//! keeps the mismatch (or a read error) in a [`ReadCheck`] for the uploader, which reports it
//! instead of the failed request and does not retry it.
//!
//! Memory is bounded: at most `depth` pieces wait in the channel, plus the one being read.

use std::io::{self, Read as _};
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use bytes::Bytes;
use catalog_core::Hasher;
use tokio::sync::mpsc;

use crate::error::{Error, Result};
use crate::model_files::ModelFile;
use mp_progress::Progress;
use mp_transfer::RateLimit;

/// Why a file's pieces stopped before its end: a mismatch, or a read error. Shared by the
/// reader, which sets it before it stops, and the uploader, which takes it.
#[derive(Clone, Default)]
pub(crate) struct ReadCheck(Arc<Mutex<Option<Error>>>);

impl ReadCheck {
    fn set(&self, error: Error) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get_or_insert(error);
    }

    /// The error that stopped the reader, if one did.
    pub(crate) fn take(&self) -> Option<Error> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).take()
    }
}

/// The pieces of one file, in order, as the reader hands them over.
pub(crate) struct Pieces {
    rx: mpsc::Receiver<Bytes>,
    check: ReadCheck,
    size: u64,
}

/// Whether a file is hashed while it is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Hash {
    /// Every byte, and the last piece held back unless the file matches its sha256.
    Each,
    /// Not by us: the file is unchanged since it last matched, and the server checks the sha256
    /// it is told (a registry must refuse a blob that does not have its digest).
    #[cfg_attr(
        not(feature = "oci"),
        expect(dead_code, reason = "only a registry checks what it is sent")
    )]
    ServerChecks,
}

/// Starts reading `file` on a thread of its own, in pieces of `piece` bytes (the last one
/// shorter), at most `depth` of them read ahead, each handed over no faster than `rate` allows.
/// A thread of its own rather than the runtime's blocking pool: a caller need not be inside a
/// runtime (a store of a library user's builds its bodies where it likes).
pub(crate) fn read_pieces(
    file: &ModelFile,
    piece: u64,
    depth: usize,
    hash: Hash,
    rate: Option<&RateLimit>,
) -> Pieces {
    let (tx, rx) = mpsc::channel(depth.max(1));
    let check = ReadCheck::default();
    let reader_check = check.clone();
    let size = file.size;
    let file = file.clone();
    let rate = rate.cloned();
    let path = file.path.clone();
    let spawned = std::thread::Builder::new()
        .name("upload-read".into())
        .spawn(move || {
            if let Err(e) = read_into(&file, piece.max(1), &tx, hash, rate.as_ref()) {
                reader_check.set(e);
            }
        });
    if let Err(e) = spawned {
        // No reader: the body ends at once, short of its bytes, and says why.
        check.set(Error::read(&path, e));
    }
    Pieces { rx, check, size }
}

/// Reads, hashes and sends `file`'s pieces; returns early, with no error, once nobody takes
/// them. The last piece is sent only when the whole file matched its sha256.
fn read_into(
    file: &ModelFile,
    piece: u64,
    tx: &mpsc::Sender<Bytes>,
    hash: Hash,
    rate: Option<&RateLimit>,
) -> Result<()> {
    let path = &file.path;
    let mut reader = catalog_core::open_regular(path).map_err(|e| Error::read(path, e))?;
    let mut hasher = (hash == Hash::Each).then(Hasher::new);
    let mut left = file.size;
    loop {
        // The piece's turn under the cap starts now, while it is read and hashed.
        let started = std::time::Instant::now();
        let want = piece.min(left);
        let mut buf = Vec::with_capacity(usize::try_from(want).unwrap_or(usize::MAX));
        (&mut reader)
            .take(want)
            .read_to_end(&mut buf)
            .map_err(|e| Error::read(path, e))?;
        if (buf.len() as u64) < want {
            return Err(Error::read(
                path,
                io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the file is shorter than when it was listed",
                ),
            ));
        }
        if let Some(hasher) = &mut hasher {
            hasher.update(&buf);
        }
        left -= want;
        if left == 0
            && let Some(hasher) = hasher.take()
        {
            Error::check_digest(&file.what, Some(&file.digest), &hasher.finish())?;
        }
        if let Some(rate) = rate {
            rate.take_blocking_since(buf.len(), started);
        }
        if tx.blocking_send(Bytes::from(buf)).is_err() || left == 0 {
            return Ok(());
        }
    }
}

impl Pieces {
    /// The next piece; `None` at the end, or when the reader stopped (see [`Self::check`]).
    #[cfg(any(feature = "s3", feature = "azure", feature = "gcs", test))]
    pub(crate) async fn next(&mut self) -> Option<Bytes> {
        self.rx.recv().await
    }

    /// Where the reader leaves the error that stopped it.
    pub(crate) fn check(&self) -> &ReadCheck {
        &self.check
    }

    /// The pieces as a request body of exactly the file's size, with `progress` advanced for
    /// each piece taken. The body fails, short of its last bytes, when the reader stops early.
    pub(crate) fn into_body(self, progress: Arc<dyn Progress>) -> reqwest::Body {
        reqwest::Body::wrap_stream(Body {
            left: self.size,
            pieces: self,
            progress,
        })
    }
}

/// Sends `pieces` as numbered parts, `in_flight` at once: whichever sender is free takes the next
/// piece in order and hands it to `send_part` with its number (from 1). Returns what each
/// `send_part` returned, by number. After a failure no further piece is taken. A reader that stopped short
/// (the file does not match its sha256, or could not be read) is the failure reported, before
/// any of the senders': its last piece never went, so the parts are never a whole file.
///
/// Memory is what the reader holds (see [`read_pieces`]) and the `in_flight` pieces being sent.
#[cfg(any(feature = "s3", feature = "azure"))]
pub(crate) async fn send_parts<T, F, Fut>(
    pieces: Pieces,
    in_flight: usize,
    send_part: F,
) -> Result<Vec<T>>
where
    F: Fn(u32, Bytes) -> Fut,
    Fut: Future<Output = Result<T>>,
{
    use std::sync::atomic::{AtomicBool, Ordering};

    let check = pieces.check().clone();
    // The next piece and its number, taken in order by whichever sender is free.
    let next = tokio::sync::Mutex::new((pieces, 0u32));
    let done = Mutex::new(Vec::new());
    let failed = AtomicBool::new(false);
    let (next, done, failed, send_part) = (&next, &done, &failed, &send_part);
    let senders = (0..in_flight.max(1)).map(|_| async move {
        while !failed.load(Ordering::Relaxed) {
            let (number, bytes) = {
                let mut next = next.lock().await;
                let Some(bytes) = next.0.next().await else {
                    break;
                };
                next.1 += 1;
                (next.1, bytes)
            };
            match send_part(number, bytes).await {
                Ok(value) => done
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push((number, value)),
                Err(e) => {
                    failed.store(true, Ordering::Relaxed);
                    return Err(e);
                }
            }
        }
        Ok(())
    });
    let results = mp_transfer::join_all(senders).await;
    if let Some(e) = check.take() {
        return Err(e);
    }
    results.into_iter().collect::<Result<Vec<()>>>()?;
    let mut done = std::mem::take(&mut *done.lock().unwrap_or_else(PoisonError::into_inner));
    done.sort_by_key(|(number, _)| *number);
    Ok(done.into_iter().map(|(_, value)| value).collect())
}

/// [`Pieces`] as a stream of a request body's chunks.
struct Body {
    pieces: Pieces,
    /// Bytes still to come.
    left: u64,
    progress: Arc<dyn Progress>,
}

impl futures_core::Stream for Body {
    type Item = io::Result<Bytes>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        match this.pieces.rx.poll_recv(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Some(piece)) => {
                this.left = this.left.saturating_sub(piece.len() as u64);
                this.progress.advance(piece.len() as u64);
                Poll::Ready(Some(Ok(piece)))
            }
            Poll::Ready(None) if this.left == 0 => Poll::Ready(None),
            // The reader stopped short: the request must fail, not end as if complete.
            Poll::Ready(None) => Poll::Ready(Some(Err(io::Error::other(
                "the file was not read to its end",
            )))),
        }
    }
}

#[cfg(test)]
mod tests {
    use catalog_core::Digest;

    use super::*;
    use mp_progress::Reporter as _;

    fn runtime() -> io::Result<tokio::runtime::Runtime> {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .build()
    }

    fn model_file(
        dir: &std::path::Path,
        bytes: &[u8],
        digest: Digest,
    ) -> std::result::Result<ModelFile, Box<dyn std::error::Error>> {
        let path = dir.join("m.bin");
        std::fs::write(&path, bytes)?;
        Ok(ModelFile {
            rel: catalog_core::SafeRelPath::file_name("m.bin")?,
            path,
            size: bytes.len() as u64,
            digest,
            what: "file:/m.bin".into(),
        })
    }

    #[test]
    fn a_matching_file_comes_whole_in_pieces() -> std::result::Result<(), Box<dyn std::error::Error>>
    {
        let dir = tempfile::tempdir()?;
        let bytes: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        let file = model_file(dir.path(), &bytes, Digest::sha256_of(&bytes))?;
        for piece in [1, 999, 5_000, 10_000, 20_000] {
            let got = runtime()?.block_on(async {
                let mut pieces = read_pieces(&file, piece, 2, Hash::Each, None);
                let mut got = Vec::new();
                while let Some(p) = pieces.next().await {
                    assert!(p.len() as u64 <= piece);
                    got.extend_from_slice(&p);
                }
                assert!(pieces.check().take().is_none());
                got
            });
            assert!(got == bytes, "pieces of {piece}");
        }
        Ok(())
    }

    #[test]
    fn a_mismatching_file_never_hands_over_its_last_piece()
    -> std::result::Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let bytes = vec![7u8; 10_000];
        let file = model_file(dir.path(), &bytes, Digest::sha256_of(b"other bytes"))?;
        let (got, err) = runtime()?.block_on(async {
            let mut pieces = read_pieces(&file, 4_000, 1, Hash::Each, None);
            let mut got = 0;
            while let Some(p) = pieces.next().await {
                got += p.len();
            }
            (got, pieces.check().take())
        });
        assert_eq!(got, 8_000, "the last piece is held back");
        let err = err.ok_or("no error")?;
        assert!(err.is_verification_failure(), "{err}");
        assert!(err.to_string().contains("file:/m.bin"), "{err}");
        Ok(())
    }

    #[test]
    fn a_body_short_of_its_end_fails() -> std::result::Result<(), Box<dyn std::error::Error>> {
        use futures_core::Stream as _;
        let dir = tempfile::tempdir()?;
        let bytes = vec![7u8; 100];
        let file = model_file(dir.path(), &bytes, Digest::sha256_of(b"other"))?;
        let results = runtime()?.block_on(async {
            let mut body = Body {
                left: file.size,
                pieces: read_pieces(&file, 60, 1, Hash::Each, None),
                progress: Arc::from(mp_progress::NoReporter.start("m.bin", None)),
            };
            let mut results = Vec::new();
            while let Some(r) = std::future::poll_fn(|cx| Pin::new(&mut body).poll_next(cx)).await {
                let failed = r.is_err();
                results.push(r.map(|b| b.len()).map_err(|e| e.to_string()));
                if failed {
                    break;
                }
            }
            results
        });
        assert_eq!(results.len(), 2, "{results:?}");
        assert_eq!(results[0], Ok(60));
        assert!(results[1].is_err(), "{results:?}");
        Ok(())
    }
}
