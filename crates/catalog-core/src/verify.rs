//! Hashing files and directory trees, fingerprints, and the pass / warn / fail verdict.
//!
//! # Tree digest
//!
//! A directory (a Transformers-style model folder) is hashed as a whole by its *tree digest*:
//! the SHA-256 of a manifest with one line per regular file,
//! `<sha256 hex of the file>  <path relative to the directory>\n`, in byte order of the paths
//! (`/`-separated). Symlinks are followed (a Hugging Face snapshot is made of them); `.git`
//! directories are skipped. It is what this shell pipeline prints:
//!
//! ```text
//! cd DIR && find -L . -name .git -prune -o -type f -printf '%P\n' | LC_ALL=C sort \
//!   | xargs -d '\n' sha256sum | sha256sum
//! ```

use std::collections::HashSet;
use std::fs::{self, File, Metadata};
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::digest::{Digest, Hasher, hash_reader};
use crate::entry::Fingerprint;
use crate::outcome::Outcome;

/// Compares a computed digest with the expected one: `Warn` when nothing was expected.
pub fn verify_digest(expected: Option<&Digest>, computed: &Digest) -> Outcome {
    match expected {
        None => Outcome::Warn,
        Some(e) if e == computed => Outcome::Pass,
        Some(_) => Outcome::Fail,
    }
}

/// Bytes that do not have the digest expected of them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("digest mismatch for `{id}`: expected `{expected}`, computed `{computed}`")]
pub struct DigestMismatch {
    /// The model's id (and the file's path, in a model of several files).
    pub id: String,
    /// The digest that was asked for.
    pub expected: Digest,
    /// The digest of the bytes.
    pub computed: Digest,
}

/// Compares the digest of `id`'s bytes with the expected one, if any: the one place that turns
/// a [`verify_digest`] failure into an error, for the engine that downloads and for the
/// provisioner that copies and checks. `Pass` or `Warn` (nothing expected) when they agree.
pub fn check_digest(
    id: &str,
    expected: Option<&Digest>,
    computed: &Digest,
) -> Result<Outcome, DigestMismatch> {
    match (verify_digest(expected, computed), expected) {
        (Outcome::Fail, Some(expected)) => Err(DigestMismatch {
            id: id.to_owned(),
            expected: expected.clone(),
            computed: computed.clone(),
        }),
        (outcome, _) => Ok(outcome),
    }
}

/// Builds a [tree digest](self#tree-digest) from the digests of the files of a tree, given in
/// any order. The one writer of the manifest: folders hashed here, models assembled from
/// several files and copies into the cache all use it, so that their digests agree.
#[derive(Debug, Clone, Default)]
pub struct TreeDigest {
    files: Vec<(String, Digest)>,
}

impl TreeDigest {
    /// An empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds the file at `path` (relative to the tree, `/`-separated; each path once).
    pub fn add(&mut self, path: impl Into<String>, digest: Digest) {
        self.files.push((path.into(), digest));
    }

    /// The SHA-256 of the manifest: `<sha256 hex>  <path>\n` per file, in byte order of the
    /// paths.
    pub fn finish(mut self) -> Digest {
        self.files
            .sort_unstable_by(|(a, _), (b, _)| a.as_bytes().cmp(b.as_bytes()));
        let mut manifest = Hasher::new();
        for (path, digest) in &self.files {
            manifest.update(digest.value().as_bytes());
            manifest.update(b"  ");
            manifest.update(path.as_bytes());
            manifest.update(b"\n");
        }
        manifest.finish()
    }
}

impl<P: Into<String>> FromIterator<(P, Digest)> for TreeDigest {
    fn from_iter<I: IntoIterator<Item = (P, Digest)>>(iter: I) -> Self {
        let mut tree = TreeDigest::new();
        for (path, digest) in iter {
            tree.add(path, digest);
        }
        tree
    }
}

/// A regular file found under a directory.
#[derive(Debug)]
pub struct TreeFile {
    /// Relative path, `/`-separated.
    pub rel: String,
    /// Absolute path.
    pub path: PathBuf,
    /// Its metadata (symlinks followed).
    pub meta: Metadata,
}

/// Every regular file under `dir`, sorted by relative path; symlinks followed, `.git` skipped.
pub fn walk_tree(dir: &Path) -> io::Result<Vec<TreeFile>> {
    fn visit(
        dir: &Path,
        prefix: &str,
        seen: &mut HashSet<(u64, u64)>,
        out: &mut Vec<TreeFile>,
    ) -> io::Result<()> {
        let meta = fs::metadata(dir).map_err(|e| at(dir, e))?;
        if !seen.insert((meta.dev(), meta.ino())) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("`{}` is part of a symlink loop", dir.display()),
            ));
        }
        for entry in fs::read_dir(dir).map_err(|e| at(dir, e))? {
            let entry = entry.map_err(|e| at(dir, e))?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("`{}` is not valid UTF-8", entry.path().display()),
                ));
            };
            let path = entry.path();
            let meta = match fs::metadata(&path) {
                Ok(meta) => meta,
                // A dangling symlink is no file, as for `find -L … -type f`.
                Err(e)
                    if e.kind() == io::ErrorKind::NotFound
                        && fs::symlink_metadata(&path).is_ok() =>
                {
                    continue;
                }
                Err(e) => return Err(at(&path, e)),
            };
            let rel = if prefix.is_empty() {
                name.to_owned()
            } else {
                format!("{prefix}/{name}")
            };
            if meta.is_dir() {
                if name != ".git" {
                    visit(&path, &rel, seen, out)?;
                }
            } else if meta.is_file() {
                out.push(TreeFile { rel, path, meta });
            }
        }
        seen.remove(&(meta.dev(), meta.ino()));
        Ok(())
    }
    let mut out = Vec::new();
    visit(dir, "", &mut HashSet::new(), &mut out)?;
    out.sort_by(|a, b| a.rel.as_bytes().cmp(b.rel.as_bytes()));
    Ok(out)
}

/// `e` with `path` in its message, for errors deep inside a tree.
#[expect(
    clippy::needless_pass_by_value,
    reason = "used as `map_err(|e| at(path, e))`"
)]
fn at(path: &Path, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("`{}`: {e}", path.display()))
}

/// Opens `path` for reading if it is a regular file. Never blocks: a FIFO or a device is
/// refused instead of waiting for a writer.
pub fn open_regular(path: &Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    #[cfg(any(target_os = "linux", target_os = "android"))]
    const O_NONBLOCK: i32 = 0o4000;
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    const O_NONBLOCK: i32 = 0x0004;
    let file = fs::OpenOptions::new()
        .read(true)
        .custom_flags(O_NONBLOCK)
        .open(path)
        .map_err(|e| at(path, e))?;
    if file.metadata().map_err(|e| at(path, e))?.is_file() {
        // O_NONBLOCK means nothing for regular files, so reads behave as usual.
        Ok(file)
    } else {
        Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("`{}` is not a regular file or a directory", path.display()),
        ))
    }
}

fn mtime_ns(meta: &Metadata) -> i128 {
    i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec())
}

/// The fingerprint of a file or directory (symlinks followed). Stats, never reads contents.
pub fn fingerprint(path: &Path) -> io::Result<Fingerprint> {
    let meta = fs::metadata(path)?;
    if !meta.is_dir() {
        return Ok(Fingerprint {
            size: meta.len(),
            mtime_ns: mtime_ns(&meta),
            inode: meta.ino(),
            device: meta.dev(),
            tree: None,
        });
    }
    let files = walk_tree(path)?;
    let mut hasher = Hasher::new();
    let mut size = 0;
    let mut newest = mtime_ns(&meta);
    for f in &files {
        let line = format!(
            "{}\0{}\0{}\0{}\0{}\n",
            f.rel,
            f.meta.len(),
            mtime_ns(&f.meta),
            f.meta.ino(),
            f.meta.dev()
        );
        hasher.update(line.as_bytes());
        size += f.meta.len();
        newest = newest.max(mtime_ns(&f.meta));
    }
    Ok(Fingerprint {
        size,
        mtime_ns: newest,
        inode: meta.ino(),
        device: meta.dev(),
        tree: Some(hasher.finish().value().to_owned()),
    })
}

/// Total size of a file, or of the regular files under a directory.
pub fn total_size(path: &Path) -> io::Result<u64> {
    let meta = fs::metadata(path)?;
    if meta.is_dir() {
        Ok(walk_tree(path)?.iter().map(|f| f.meta.len()).sum())
    } else {
        Ok(meta.len())
    }
}

/// Hashes a file, or a directory by its [tree digest](self#tree-digest), reading each byte
/// once and reporting progress in bytes. Returns the digest and the number of bytes read.
pub fn hash_path(path: &Path, progress: &mut dyn FnMut(u64)) -> io::Result<(Digest, u64)> {
    let meta = fs::metadata(path)?;
    if !meta.is_dir() {
        return hash_reader(open_regular(path)?, progress);
    }
    let mut tree = TreeDigest::new();
    let mut total = 0;
    for f in walk_tree(path)? {
        let (digest, n) =
            hash_reader(open_regular(&f.path)?, &mut *progress).map_err(|e| at(&f.path, e))?;
        tree.add(f.rel, digest);
        total += n;
    }
    Ok((tree.finish(), total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts() {
        let a = Digest::sha256_of(b"a");
        let b = Digest::sha256_of(b"b");
        assert_eq!(verify_digest(Some(&a), &a), Outcome::Pass);
        assert_eq!(verify_digest(Some(&a), &b), Outcome::Fail);
        assert_eq!(verify_digest(None, &a), Outcome::Warn);
        assert_eq!(check_digest("m", Some(&a), &a), Ok(Outcome::Pass));
        assert_eq!(check_digest("m", None, &a), Ok(Outcome::Warn));
        let err = check_digest("m", Some(&a), &b).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("digest mismatch for `m`: expected `{a}`, computed `{b}`")
        );
    }

    #[test]
    fn tree_digest_is_the_documented_manifest_hash() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        fs::create_dir_all(dir.path().join("sub"))?;
        fs::create_dir_all(dir.path().join(".git"))?;
        fs::write(dir.path().join("config.json"), b"{}")?;
        fs::write(dir.path().join("sub/b.bin"), b"bbb")?;
        fs::write(dir.path().join(".git/HEAD"), b"ignored")?;
        let manifest = format!(
            "{}  config.json\n{}  sub/b.bin\n",
            Digest::sha256_of(b"{}").value(),
            Digest::sha256_of(b"bbb").value()
        );
        let (digest, n) = hash_path(dir.path(), &mut |_| {})?;
        assert_eq!(digest, Digest::sha256_of(manifest.as_bytes()));
        assert_eq!(n, 5);
        Ok(())
    }

    #[test]
    fn tree_digest_sorts_by_path_bytes_whatever_the_order_added() {
        let (a, b, c) = (
            Digest::sha256_of(b"a"),
            Digest::sha256_of(b"b"),
            Digest::sha256_of(b"c"),
        );
        // By bytes: upper case before lower case, and `.` (0x2e) before `/` (0x2f).
        let manifest = format!("{}  B\n{}  a.b\n{}  a/b\n", c.value(), a.value(), b.value());
        let added = [("a/b", b.clone()), ("B", c.clone()), ("a.b", a.clone())];
        let tree: TreeDigest = added.iter().cloned().collect();
        assert_eq!(tree.finish(), Digest::sha256_of(manifest.as_bytes()));
        let mut reversed = TreeDigest::new();
        for (path, digest) in added.into_iter().rev() {
            reversed.add(path, digest);
        }
        assert_eq!(reversed.finish(), Digest::sha256_of(manifest.as_bytes()));
        assert_eq!(TreeDigest::new().finish(), Digest::sha256_of(b""));
    }

    #[test]
    fn fingerprint_changes_with_contents() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        let f = dir.path().join("m");
        fs::write(&f, b"one")?;
        let before = fingerprint(dir.path())?;
        assert_eq!(before, fingerprint(dir.path())?);
        fs::write(&f, b"three")?;
        assert_ne!(before, fingerprint(dir.path())?);
        Ok(())
    }
}
