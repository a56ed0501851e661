//! Zstandard streams, as `…tar+zstd` layers hold them: every frame, one after another.
//!
//! ```text
//! layer blob:  [frame][skippable frame][frame] …   ──▶   the tar archive, as one stream
//!                 │          │             │
//!                 decoded    skipped       decoded (each with its own window)
//! ```
//!
//! A zstd stream is any number of frames, with skippable frames (metadata, meaningless here)
//! between them: `zstd` writes one frame, while `pzstd` and concatenated files give several.
//! [`ruzstd`]'s frame decoder decodes one frame, so this reader starts the next one where each
//! ends, as `MultiGzDecoder` does for gzip members. A stream that holds no frame, ends inside
//! one, or holds bytes that are no frame fails as a read error; so does a frame that asks for a
//! window over 128 MiB (ruzstd's limit, libzstd's default one), refused before anything that
//! large is allocated. The frames' own checksums are not checked: the layer's sha256 was,
//! before it is unpacked.

use std::io::{self, BufRead, Read};

use ruzstd::decoding::errors::{FrameDecoderError, ReadFrameHeaderError};
use ruzstd::decoding::{BlockDecodingStrategy, FrameDecoder};

/// Reads the decompressed bytes of every frame of a zstd stream.
pub(crate) struct ZstdDecoder<R> {
    source: R,
    frame: FrameDecoder,
    /// Whether a frame has been started and not yet read to its end.
    in_frame: bool,
    /// Frames started so far, skippable ones included.
    frames: u64,
}

impl<R: BufRead> ZstdDecoder<R> {
    /// A reader of the zstd stream `source`.
    pub(crate) fn new(source: R) -> Self {
        ZstdDecoder {
            source,
            frame: FrameDecoder::new(),
            in_frame: false,
            frames: 0,
        }
    }

    /// Starts the frame at the source's position, or skips it if it is a skippable one.
    fn next_frame(&mut self) -> io::Result<()> {
        self.frames += 1;
        match self.frame.reset(&mut self.source) {
            Ok(()) => {
                self.in_frame = true;
                Ok(())
            }
            Err(FrameDecoderError::ReadFrameHeaderError(ReadFrameHeaderError::SkipFrame {
                length,
                ..
            })) => {
                let length = u64::from(length);
                let skipped = io::copy(&mut (&mut self.source).take(length), &mut io::sink())?;
                if skipped == length {
                    Ok(())
                } else {
                    Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!(
                            "the zstd stream ends inside a skippable frame, after {skipped} of its {length} bytes"
                        ),
                    ))
                }
            }
            Err(e) => Err(invalid(e)),
        }
    }
}

impl<R: BufRead> Read for ZstdDecoder<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            if self.in_frame {
                // One block at a time: a block holds at most 128 KiB, so what is buffered stays
                // within the frame's window and one block.
                while self.frame.can_collect() == 0 && !self.frame.is_finished() {
                    self.frame
                        .decode_blocks(&mut self.source, BlockDecodingStrategy::UptoBlocks(1))
                        .map_err(invalid)?;
                }
                let n = self.frame.read(buf)?;
                if n > 0 {
                    return Ok(n);
                }
                self.in_frame = false;
            }
            if self.source.fill_buf()?.is_empty() {
                if self.frames == 0 {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the zstd stream holds no frame",
                    ));
                }
                return Ok(0);
            }
            self.next_frame()?;
        }
    }
}

fn invalid(e: FrameDecoderError) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

#[cfg(test)]
mod tests {
    use ruzstd::encoding::{CompressionLevel, compress_to_vec};

    use super::*;

    fn decode(stream: &[u8]) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        ZstdDecoder::new(stream).read_to_end(&mut out)?;
        Ok(out)
    }

    fn zstd(bytes: &[u8]) -> Vec<u8> {
        compress_to_vec(bytes, CompressionLevel::Fastest)
    }

    /// A skippable frame holding `bytes`: its magic number, its length, the bytes.
    fn skippable(bytes: &[u8]) -> Vec<u8> {
        let mut frame = 0x184D_2A53_u32.to_le_bytes().to_vec();
        frame.extend_from_slice(&u32::try_from(bytes.len()).unwrap_or(u32::MAX).to_le_bytes());
        frame.extend_from_slice(bytes);
        frame
    }

    #[test]
    fn frames_are_read_one_after_another_and_skippable_ones_skipped() -> io::Result<()> {
        let first = vec![7_u8; 300_000];
        let second = b"the second frame".repeat(1000);
        let stream = [
            zstd(&first),
            skippable(b"metadata"),
            zstd(&second),
            skippable(b""),
        ]
        .concat();
        assert_eq!(decode(&stream)?, [first, second].concat());
        assert_eq!(
            decode(&skippable(b"only"))?,
            b"",
            "a stream of metadata only"
        );
        assert_eq!(decode(&zstd(b""))?, b"", "one empty frame");
        Ok(())
    }

    #[test]
    fn streams_that_are_not_whole_frames_are_errors() {
        let whole = zstd(&b"a frame that will be cut short".repeat(50));
        let then_garbage = [whole.as_slice(), b"xyz!"].concat();
        let metadata = skippable(b"metadata");
        // A frame header whose window descriptor asks for 2^31 bytes.
        let window_2gib = [0x28, 0xb5, 0x2f, 0xfd, 0x00, 0xa8, 0x01, 0x00, 0x00];
        let rows: &[(&str, &[u8], io::ErrorKind)] = &[
            ("no frame at all", b"", io::ErrorKind::UnexpectedEof),
            ("not a frame", b"garbage!", io::ErrorKind::InvalidData),
            (
                "cut inside a frame",
                &whole[..whole.len() - 3],
                io::ErrorKind::InvalidData,
            ),
            (
                "cut inside its header",
                &whole[..5],
                io::ErrorKind::InvalidData,
            ),
            (
                "a frame, then garbage",
                &then_garbage,
                io::ErrorKind::InvalidData,
            ),
            (
                "a skippable frame cut short",
                &metadata[..12],
                io::ErrorKind::UnexpectedEof,
            ),
            ("a 2 GiB window", &window_2gib, io::ErrorKind::InvalidData),
        ];
        for (what, stream, kind) in rows {
            match decode(stream) {
                Err(e) => assert_eq!(e.kind(), *kind, "{what}: {e}"),
                Ok(out) => panic!("{what}: decoded {} bytes", out.len()),
            }
        }
    }
}
