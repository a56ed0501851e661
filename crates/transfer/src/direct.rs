//! Writing downloads with direct I/O, around the page cache.
//!
//! A buffered write copies every byte into the page cache and leaves the kernel to write it
//! back later; the fsync before publishing then waits for all of it. Measured on a 2-core VM,
//! filling the page cache alone ran at about 500 MB/s, slower than the disk, so a buffered
//! download could not keep up with loopback. A direct write hands the page-aligned buffer to
//! the disk as it is: no copy, no dirty pages, nothing left for the final fsync but the tail.
//!
//! Direct I/O wants the file offset, the length and the buffer's address aligned to the
//! device's block size. [`Writer::write_at`] writes the aligned head of each buffer directly and
//! the rest (the last bytes of the file, or any piece at an odd offset) through the ordinary,
//! buffered descriptor. A file system that refuses direct I/O (at open or at the first write)
//! turns it off for the rest of the download: the bytes always land, only the path differs.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

/// The alignment every direct write keeps: the page size, a multiple of any block size in use.
pub const ALIGN: usize = 4096;

/// A byte buffer that starts on a page boundary. Safe code only: a vector one page longer than
/// needed, used from its first aligned byte.
pub struct PageBuf {
    raw: Vec<u8>,
    start: usize,
    len: usize,
}

impl std::fmt::Debug for PageBuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PageBuf")
            .field("len", &self.len)
            .field("capacity", &self.capacity())
            .finish_non_exhaustive()
    }
}

impl PageBuf {
    /// An empty buffer with room for `capacity` bytes.
    pub fn new(capacity: usize) -> Self {
        let raw = vec![0u8; capacity + ALIGN];
        // `align_offset` may decline to answer; the buffer then works, unaligned, and its
        // writes take the buffered path.
        let start = match raw.as_ptr().align_offset(ALIGN) {
            n if n < ALIGN => n,
            _ => 0,
        };
        PageBuf { raw, start, len: 0 }
    }

    pub fn capacity(&self) -> usize {
        self.raw.len() - ALIGN
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn is_full(&self) -> bool {
        self.len == self.capacity()
    }

    pub fn bytes(&self) -> &[u8] {
        &self.raw[self.start..self.start + self.len]
    }

    /// Appends as much of `data` as fits; returns how much that was.
    pub fn push(&mut self, data: &[u8]) -> usize {
        let n = data.len().min(self.capacity() - self.len);
        let at = self.start + self.len;
        self.raw[at..at + n].copy_from_slice(&data[..n]);
        self.len += n;
        n
    }

    pub fn clear(&mut self) {
        self.len = 0;
    }
}

/// Positional writes to one file: aligned heads directly, the rest through `buffered`.
#[derive(Debug)]
pub struct Writer {
    direct: Option<File>,
    enabled: AtomicBool,
}

impl Writer {
    /// Opens `path` a second time for direct writes, when `wanted` and the platform and file
    /// system allow it.
    pub fn open(path: &Path, wanted: bool) -> Self {
        let direct = if wanted { open_direct(path) } else { None };
        Writer {
            enabled: AtomicBool::new(direct.is_some()),
            direct,
        }
    }

    /// Whether writes still go around the page cache.
    pub fn is_direct(&self) -> bool {
        self.enabled.load(Ordering::Relaxed)
    }

    /// Writes all of `buf` at `offset` in `buffered`'s file.
    pub fn write_at(&self, buffered: &File, buf: &[u8], offset: u64) -> io::Result<()> {
        let mut head = 0;
        if let Some(direct) = &self.direct
            && self.is_direct()
            && offset.is_multiple_of(ALIGN as u64)
            && buf.as_ptr().align_offset(ALIGN) == 0
        {
            let n = buf.len() / ALIGN * ALIGN;
            if n > 0 {
                match direct.write_all_at(&buf[..n], offset) {
                    Ok(()) => head = n,
                    Err(e) if e.kind() == io::ErrorKind::InvalidInput => {
                        // Refused by the file system: write these bytes, and all later
                        // ones, the ordinary way.
                        tracing::debug!(error = %e, "direct I/O refused; writing through the page cache");
                        self.enabled.store(false, Ordering::Relaxed);
                    }
                    Err(e) => return Err(e),
                }
            }
        }
        buffered.write_all_at(&buf[head..], offset + head as u64)
    }
}

#[cfg(target_os = "linux")]
fn open_direct(path: &Path) -> Option<File> {
    use std::os::unix::fs::OpenOptionsExt;
    match std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_DIRECT)
        .open(path)
    {
        Ok(f) => Some(f),
        Err(e) => {
            tracing::debug!(path = %path.display(), error = %e, "no direct I/O here");
            None
        }
    }
}

#[cfg(not(target_os = "linux"))]
fn open_direct(_path: &Path) -> Option<File> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_buf_is_aligned_and_bounded() {
        let mut b = PageBuf::new(3 * ALIGN);
        assert_eq!(b.bytes().as_ptr().align_offset(ALIGN), 0);
        assert!(b.is_empty());
        assert_eq!(b.push(&[1; 2 * ALIGN]), 2 * ALIGN);
        assert_eq!(b.push(&[2; 2 * ALIGN]), ALIGN);
        assert!(b.is_full());
        assert_eq!(b.bytes()[(2 * ALIGN - 1)..=(2 * ALIGN)], [1, 2]);
        b.clear();
        assert!(b.is_empty());
    }

    /// Every mix of aligned and odd offsets and lengths lands byte for byte, direct or not.
    #[test]
    fn writes_land_whatever_their_alignment() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let buffered = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .unwrap();
        for wanted in [true, false] {
            let writer = Writer::open(&path, wanted);
            assert_eq!(writer.is_direct(), wanted && cfg!(target_os = "linux"));
            let mut expected = vec![0u8; 5 * ALIGN + 100];
            let pieces: [(usize, usize); 4] = [
                (0, 2 * ALIGN),
                (2 * ALIGN, ALIGN + 7),
                (3 * ALIGN + 7, 5),
                (4 * ALIGN, ALIGN + 100),
            ];
            for (i, (at, len)) in pieces.into_iter().enumerate() {
                let mut buf = PageBuf::new(len);
                let fill = u8::try_from(i + 1).unwrap() + u8::from(wanted) * 10;
                buf.push(&vec![fill; len]);
                writer.write_at(&buffered, buf.bytes(), at as u64).unwrap();
                expected[at..at + len].fill(fill);
            }
            buffered.sync_all().unwrap();
            assert_eq!(std::fs::read(&path).unwrap(), expected);
        }
    }
}
