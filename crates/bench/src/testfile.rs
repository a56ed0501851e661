//! The pseudo-random test files, shared by `mp-bench`, `mp-bench-oci`, `mp-bench-s3`,
//! `mp-bench-push` and `mp-bench-rate`: written once under the data directory
//! (`random-<N>MiB.bin`) and reused while its size matches, so that every suite downloads,
//! pushes or hashes the same bytes.
//! Other streams of the same generator ([`SHARED`] is the common one) give files of different
//! content, such as the parts of a folder.

use std::fs::{self, File};
use std::io::{self, Read, Write as _};
use std::path::Path;
use std::time::Instant;

use anyhow::{Context as _, ensure};
use catalog_core::{Digest, Hasher};

/// One mebibyte.
pub const MIB: u64 = 1 << 20;

/// The stream of the shared test file, `random-<N>MiB.bin`.
pub const SHARED: u64 = 0;

/// The program that prints the progress lines.
const BIN: &str = env!("CARGO_BIN_NAME");

/// Writes `size` bytes of xorshift output, from the stream numbered `stream`, to `path`,
/// unless a file of that size is there. Then reads it once so that it sits in the page cache,
/// hashing it on the way when `hash`.
pub fn prepare_file(
    path: &Path,
    size: u64,
    stream: u64,
    hash: bool,
) -> anyhow::Result<Option<Digest>> {
    let reusable = fs::metadata(path).is_ok_and(|m| m.is_file() && m.len() == size);
    if reusable {
        eprintln!("{BIN}: reusing {}", path.display());
    } else {
        eprintln!("{BIN}: writing {} to {}", human_size(size), path.display());
        let start = Instant::now();
        let tmp = path.with_extension("partial");
        let mut out =
            File::create(&tmp).with_context(|| format!("cannot create `{}`", tmp.display()))?;
        // Xorshift never leaves zero: keep the seed of every stream odd.
        let mut state: u64 =
            (0x9E37_79B9_7F4A_7C15 ^ stream.wrapping_mul(0xD1B5_4A32_D192_ED02)) | 1;
        let mut buf = vec![0u8; 4 << 20];
        let mut left = size;
        while left > 0 {
            for word in buf.chunks_exact_mut(8) {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                word.copy_from_slice(&state.to_le_bytes());
            }
            let n = usize::try_from(left.min(buf.len() as u64))?;
            out.write_all(&buf[..n])
                .with_context(|| format!("cannot write `{}`", tmp.display()))?;
            left -= n as u64;
        }
        drop(out);
        fs::rename(&tmp, path).with_context(|| format!("cannot rename `{}`", tmp.display()))?;
        eprintln!("{BIN}: written in {:.1} s", start.elapsed().as_secs_f64());
    }
    let start = Instant::now();
    let mut f = File::open(path).with_context(|| format!("cannot open `{}`", path.display()))?;
    // 64 KiB, from the heap: larger buffers make the kernel's copy slower (see the docs).
    let mut buf = vec![0u8; 64 << 10];
    let mut read = 0u64;
    let mut hasher = hash.then(Hasher::new);
    loop {
        match f.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                read += n as u64;
                if let Some(h) = &mut hasher {
                    h.update(&buf[..n]);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e).with_context(|| format!("cannot read `{}`", path.display())),
        }
    }
    ensure!(
        read == size,
        "read {read} bytes of `{}`, expected {size}",
        path.display()
    );
    eprintln!(
        "{BIN}: warmed the page cache{} in {:.2} s",
        if hash { " and hashed the file" } else { "" },
        start.elapsed().as_secs_f64()
    );
    Ok(hasher.map(Hasher::finish))
}

/// `1 GiB`, or `400 MiB`.
pub fn human_size(bytes: u64) -> String {
    if bytes >= 1 << 30 && bytes.is_multiple_of(1 << 30) {
        format!("{} GiB", bytes >> 30)
    } else {
        format!("{} MiB", bytes as f64 / MIB as f64)
    }
}
