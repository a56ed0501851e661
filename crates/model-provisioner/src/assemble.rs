//! [`Assembly`]: a model made of several files (a Hub repository, an OCI artifact with several
//! layers, an S3 prefix), staged in one directory and published in one rename.
//!
//! ```text
//! <cache>/tmp/dir-XXXX/          the assembly, locked, removed on drop unless published
//!     config.json               hard links into blobs/sha256/, under the files' own paths
//!     onnx/model.onnx
//!          │ publish: per-file digests → tree digest → compared with the expected digest
//!          ▼
//! <cache>/models/<scheme>/…/     the fetcher's choice of directory, replaced in one rename
//! ```
//!
//! Every file placed carries its own SHA-256, so the tree digest of the published directory
//! is computed from the records without reading a byte again, and it equals what
//! [`catalog_core::verify::hash_path`] finds when `verify` reads the directory. Nothing
//! appears under `models/` unless that digest agrees with the expected one.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use catalog_core::verify::fingerprint;
use catalog_core::{
    CacheLayout, Digest, FileRecord, Provenance, SafeRelPath, StagedDir, StagedFile, Storage,
    TreeDigest, now_ms,
};

use crate::error::{Error, Result};
use crate::request::Fetched;
use mp_progress::Progress;

/// A directory under `tmp/` being filled with a model's files. Files may be placed from
/// several threads at once.
#[derive(Debug)]
pub struct Assembly<'a> {
    layout: &'a CacheLayout,
    staging: StagedDir,
    files: Mutex<Vec<Placed>>,
}

/// How an [`Assembly`] is published and recorded.
#[derive(Debug)]
pub struct Publish<'a> {
    /// The model's id, named in a mismatch error.
    pub id: &'a str,
    /// Where the directory goes, under `models/`; what was there is replaced.
    pub dest: PathBuf,
    /// One file of the assembly that is the artifact by itself (its `local_path`, and its
    /// digest the one compared); the whole directory when `None`.
    pub select: Option<&'a SafeRelPath>,
    /// The digest the artifact must have, when the caller knows it.
    pub expected: Option<&'a Digest>,
    /// The fetcher's name, recorded in provenance.
    pub fetcher: &'static str,
    /// The fetcher's version (or the version of the tool it ran).
    pub fetcher_version: String,
    /// What the source resolved the request to (a commit, a manifest digest), if anything.
    pub resolved_revision: Option<String>,
    /// The server the bytes came from, when the id does not name it.
    pub origin: Option<String>,
    /// The patterns that selected the files, recorded so a later request can compare.
    pub include: Vec<String>,
    /// The patterns that left files out.
    pub exclude: Vec<String>,
    /// Bytes transferred to produce the files (0 when they all came from the store).
    pub bytes_read: u64,
}

impl<'a> Assembly<'a> {
    /// Starts an assembly in a fresh directory under `layout`'s `tmp/`.
    pub fn new(layout: &'a CacheLayout) -> Result<Self> {
        Ok(Assembly {
            layout,
            staging: layout.stage_dir()?,
            files: Mutex::new(Vec::new()),
        })
    }

    /// The cache the assembly belongs to.
    pub fn layout(&self) -> &'a CacheLayout {
        self.layout
    }

    /// Where `path` is placed inside the staging directory.
    pub fn staged_path(&self, path: &SafeRelPath) -> PathBuf {
        self.staging.path().join(path.as_path())
    }

    /// Places the store's blob of `digest` at `path`; returns its size. The blob is named by
    /// its content, so it needs no new check.
    pub fn place_blob(
        &self,
        path: &SafeRelPath,
        digest: Digest,
        etag: Option<String>,
    ) -> Result<u64> {
        let blob = self.layout.blob_path(&digest);
        self.layout.link_model(&blob, &self.staged_path(path))?;
        let size = std::fs::metadata(&blob)
            .map_err(|e| Error::read(&blob, e))?
            .len();
        self.record(path, size, digest, etag);
        Ok(size)
    }

    /// Moves a staged (synced and hashed) file into the store and places it at `path`.
    pub fn place_staged(
        &self,
        path: &SafeRelPath,
        staged: StagedFile,
        etag: Option<String>,
    ) -> Result<()> {
        let (size, digest) = (staged.size, staged.digest.clone());
        let blob = self.layout.publish_blob(staged)?;
        self.layout.link_model(&blob, &self.staged_path(path))?;
        self.record(path, size, digest, etag);
        Ok(())
    }

    /// Copies the file at `source` (outside the cache) into the store, hashing on the way, and
    /// places it at `path` if it has the sha256 `claimed` for it (when one is).
    pub fn copy_checked(
        &self,
        path: &SafeRelPath,
        source: &Path,
        claimed: Option<&Digest>,
        etag: Option<String>,
        progress: &dyn Progress,
    ) -> Result<()> {
        let staged = stage_copy(self.layout, source, progress)?;
        Error::check_digest(&source.display().to_string(), claimed, &staged.digest)?;
        self.place_staged(path, staged, etag)
    }

    fn record(&self, path: &SafeRelPath, size: u64, digest: Digest, etag: Option<String>) {
        // A thread that panicked while holding the lock pushed whole records or none.
        self.files
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Placed {
                path: path.clone(),
                size,
                digest,
                etag,
                media_type: None,
                vouched: false,
            });
    }

    /// Records that the file at `path` was checked against a digest its source stated for it
    /// (a Hub file's LFS sha256 or git blob id, an OCI layer's digest, an S3 object's sha256
    /// checksum). When every file of the artifact was, the source vouches for the artifact's
    /// digest too ([`Fetched::source_digest`]), and it passes verification without a digest
    /// from the caller.
    pub fn vouch(&self, path: &SafeRelPath) {
        let mut files = self.files.lock().unwrap_or_else(PoisonError::into_inner);
        for placed in files.iter_mut().filter(|f| &f.path == path) {
            placed.vouched = true;
        }
    }

    /// Records what the source said the file at `path` is (an OCI layer's media type).
    pub fn set_media_type(&self, path: &SafeRelPath, media_type: &str) {
        let mut files = self.files.lock().unwrap_or_else(PoisonError::into_inner);
        for placed in files.iter_mut().filter(|f| &f.path == path) {
            placed.media_type = Some(media_type.to_owned());
        }
    }

    /// Checks the artifact against `how.expected`, publishes the directory at `how.dest`, and
    /// builds the fetch result. On a mismatch nothing is published and the staging directory
    /// is removed.
    pub fn publish(self, how: Publish<'_>) -> Result<Fetched> {
        let mut files = self
            .files
            .into_inner()
            .unwrap_or_else(PoisonError::into_inner);
        files.sort_by(|a, b| a.path.cmp(&b.path));
        let computed = match how.select {
            Some(select) => files
                .iter()
                .find(|f| &f.path == select)
                .map(|f| f.digest.clone())
                .ok_or_else(|| Error::AssemblyIncomplete {
                    id: how.id.to_owned(),
                    path: select.to_string(),
                })?,
            None => files
                .iter()
                .map(|f| (f.path.as_str(), f.digest.clone()))
                .collect::<TreeDigest>()
                .finish(),
        };
        Error::check_digest(how.id, how.expected, &computed)?;
        self.layout.publish_dir(self.staging, &how.dest)?;
        let local_path = match how.select {
            Some(select) => how.dest.join(select.as_path()),
            None => how.dest,
        };
        let fingerprint = fingerprint(&local_path).map_err(|e| Error::read(&local_path, e))?;
        // What the artifact is made of: the selected file, or all of them.
        let unvouched: Vec<String> = files
            .iter()
            .filter(|f| how.select.is_none_or(|s| &f.path == s) && !f.vouched)
            .map(|f| f.path.to_string())
            .collect();
        let vouched = unvouched.is_empty() && !files.is_empty();
        Ok(Fetched {
            source_digest: vouched.then(|| computed.clone()),
            unvouched,
            signatures: Vec::new(),
            size_bytes: fingerprint.size,
            local_path,
            storage: Storage::Cache,
            computed: Some(computed),
            fingerprint,
            bytes_read: how.bytes_read,
            provenance: Provenance {
                fetcher: how.fetcher.to_owned(),
                fetcher_version: how.fetcher_version,
                fetched_ms: now_ms(),
                resolved_revision: how.resolved_revision,
                origin: how.origin,
                files: files
                    .into_iter()
                    .map(|f| FileRecord {
                        path: f.path.into_string(),
                        size: f.size,
                        digest: Some(f.digest),
                        etag: f.etag,
                        media_type: f.media_type,
                    })
                    .collect(),
                include: how.include,
                exclude: how.exclude,
            },
        })
    }
}

/// Copies `src` into the stage, hashing on the way.
pub(crate) fn stage_copy(
    layout: &CacheLayout,
    src: &Path,
    progress: &dyn Progress,
) -> Result<StagedFile> {
    use std::io::{Read as _, Write as _};
    let mut reader = catalog_core::open_regular(src).map_err(|e| Error::read(src, e))?;
    let mut staging = layout.stage()?;
    let mut buf = vec![0u8; catalog_core::HASH_BUF_SIZE];
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Error::read(src, e)),
        };
        staging
            .write_all(&buf[..n])
            .map_err(|e| catalog_core::Error::io("write", staging.path(), e))?;
        progress.advance(n as u64);
    }
    Ok(staging.finish()?)
}

/// A file placed in an assembly.
#[derive(Debug)]
struct Placed {
    path: SafeRelPath,
    size: u64,
    digest: Digest,
    etag: Option<String>,
    media_type: Option<String>,
    /// Checked against a digest its source stated.
    vouched: bool,
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;

    use std::path::Path;

    use catalog_core::verify::hash_path;

    use super::*;

    type TestResult = std::result::Result<(), Box<dyn std::error::Error>>;

    /// A fresh cache, and the directory the tests publish to.
    fn cache() -> std::io::Result<(tempfile::TempDir, CacheLayout, PathBuf)> {
        let cache = tempfile::tempdir()?;
        let layout = CacheLayout::new(cache.path()).map_err(std::io::Error::other)?;
        let dest = layout.models_dir().join("test").join("m");
        Ok((cache, layout, dest))
    }

    /// A staged file holding `bytes`.
    fn staged(layout: &CacheLayout, bytes: &[u8]) -> Result<StagedFile> {
        let mut s = layout.stage()?;
        s.write_all(bytes)
            .map_err(|e| catalog_core::Error::io("write", s.path(), e))?;
        Ok(s.finish()?)
    }

    /// An assembly of `config.json` and `sub/w.bin`, the second placed from the store.
    fn two_files(layout: &CacheLayout) -> Result<Assembly<'_>> {
        let assembly = Assembly::new(layout)?;
        assembly.place_staged(&"config.json".parse()?, staged(layout, b"{}")?, None)?;
        let blob = staged(layout, b"weights")?;
        let digest = blob.digest.clone();
        layout.publish_blob(blob)?;
        let size = assembly.place_blob(&"sub/w.bin".parse()?, digest, Some("e".into()))?;
        assert_eq!(size, 7);
        Ok(assembly)
    }

    fn publish<'a>(
        dest: &Path,
        select: Option<&'a SafeRelPath>,
        expected: Option<&'a Digest>,
    ) -> Publish<'a> {
        Publish {
            id: "test:model",
            dest: dest.to_owned(),
            select,
            expected,
            fetcher: "test",
            fetcher_version: "1".into(),
            resolved_revision: Some("rev".into()),
            origin: None,
            include: vec!["*".into()],
            exclude: Vec::new(),
            bytes_read: 3,
        }
    }

    #[test]
    fn the_tree_digest_is_what_verify_reads_from_the_published_directory() -> TestResult {
        let (_cache, layout, dest) = cache()?;
        let fetched = two_files(&layout)?.publish(publish(&dest, None, None))?;
        let (read, bytes) = hash_path(&dest, &mut |_| {})?;
        assert_eq!(fetched.computed, Some(read));
        assert_eq!(
            (fetched.local_path, fetched.size_bytes, bytes),
            (dest, 9, 9)
        );
        let p = fetched.provenance;
        let paths: Vec<&str> = p.files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(paths, ["config.json", "sub/w.bin"]);
        assert_eq!(p.files[1].etag.as_deref(), Some("e"));
        assert_eq!(
            (
                p.fetcher.as_str(),
                p.resolved_revision.as_deref(),
                fetched.bytes_read
            ),
            ("test", Some("rev"), 3)
        );
        assert_eq!(
            std::fs::read_dir(layout.tmp_dir())?.count(),
            0,
            "staging is gone"
        );
        Ok(())
    }

    #[test]
    fn a_mismatch_publishes_nothing() -> TestResult {
        let (_cache, layout, dest) = cache()?;
        let wrong = Digest::sha256_of(b"something else");
        let err = two_files(&layout)?
            .publish(publish(&dest, None, Some(&wrong)))
            .unwrap_err();
        assert!(
            matches!(&err, Error::DigestMismatch(m) if m.id == "test:model" && m.expected == wrong),
            "{err:?}"
        );
        assert!(!layout.models_dir().exists(), "nothing under models/");
        assert_eq!(
            std::fs::read_dir(layout.tmp_dir())?.count(),
            0,
            "staging is gone"
        );
        Ok(())
    }

    #[test]
    fn a_selected_file_is_the_artifact_inside_the_published_directory() -> TestResult {
        let (_cache, layout, dest) = cache()?;
        let select: SafeRelPath = "sub/w.bin".parse()?;
        let expected = Digest::sha256_of(b"weights");
        let fetched =
            two_files(&layout)?.publish(publish(&dest, Some(&select), Some(&expected)))?;
        assert_eq!(fetched.local_path, dest.join("sub/w.bin"));
        assert_eq!(fetched.computed, Some(expected));
        assert_eq!(fetched.size_bytes, 7);
        assert_eq!(std::fs::read(&fetched.local_path)?, b"weights");

        let missing: SafeRelPath = "absent.bin".parse()?;
        let err = two_files(&layout)?
            .publish(publish(&dest, Some(&missing), None))
            .unwrap_err();
        assert!(matches!(err, Error::AssemblyIncomplete { .. }), "{err:?}");
        Ok(())
    }
}
