//! [`FileFetcher`]: local files and directories, registered in place or copied into the cache.

use std::path::{Path, PathBuf};

use catalog_core::verify::{fingerprint, hash_path, walk_tree};
use catalog_core::{
    CatalogEntry, Digest, FileRecord, Fingerprint, ModelRef, Provenance, Storage, TreeDigest,
    now_ms,
};

use crate::error::{Error, Result};
use crate::fetcher::ModelFetcher;
use crate::request::{FetchRequest, Fetched, unsupported};
use mp_progress::Progress;

/// Fetches `file:` references and plain paths. Performs no network I/O.
///
/// By default a file or directory is registered where it lies (no copy of a 70 GB file) and
/// hashed only when a digest is expected. [`FileFetcher::copying`] copies it into the cache's
/// content-addressed store instead, hashing while copying.
#[derive(Debug, Clone, Copy, Default)]
pub struct FileFetcher {
    copy: bool,
}

impl FileFetcher {
    /// Registers files in place (the default).
    pub fn in_place() -> Self {
        FileFetcher { copy: false }
    }

    /// Copies files into the cache.
    pub fn copying() -> Self {
        FileFetcher { copy: true }
    }

    fn storage(self) -> Storage {
        if self.copy {
            Storage::Cache
        } else {
            Storage::InPlace
        }
    }
}

impl ModelFetcher for FileFetcher {
    fn name(&self) -> &'static str {
        "file"
    }

    fn fetch(&self, req: &FetchRequest<'_>) -> Result<Fetched> {
        let ModelRef::File(file) = req.reference else {
            return Err(unsupported(req.reference));
        };
        let path = file
            .canonical_path()
            .map_err(|e| Error::read(&file.path, e))?;
        let before = fingerprint(&path).map_err(|e| Error::read(&path, e))?;
        let meta = std::fs::metadata(&path).map_err(|e| Error::read(&path, e))?;
        if !meta.is_file() && !meta.is_dir() {
            return Err(Error::NotAFile { path });
        }
        let label = path.file_name().map_or_else(
            || path.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        let progress = req.reporter.start_file(&mp_progress::FileTask {
            id: req.id,
            file: &label,
            label: &label,
            size: Some(before.size),
        });
        let fetched = if self.copy {
            copy_into_cache(&path, meta.is_dir(), req, &*progress)
        } else {
            register_in_place(&path, &before, req, &*progress)
        };
        progress.finish();
        let fetched = fetched?;
        // A digest of a file that changed under us describes no version of it.
        if fetched.bytes_read > 0
            && fingerprint(&path).map_err(|e| Error::read(&path, e))? != before
        {
            return Err(Error::ChangedWhileHashing { path });
        }
        Ok(fetched)
    }

    fn accepts(&self, entry: &CatalogEntry) -> bool {
        entry.storage == self.storage()
    }
}

fn provenance(files: Vec<FileRecord>) -> Provenance {
    Provenance {
        fetcher: "file".to_owned(),
        fetcher_version: env!("CARGO_PKG_VERSION").to_owned(),
        fetched_ms: now_ms(),
        resolved_revision: None,
        origin: None,
        files,
        include: Vec::new(),
        exclude: Vec::new(),
    }
}

fn register_in_place(
    path: &Path,
    before: &Fingerprint,
    req: &FetchRequest<'_>,
    progress: &dyn Progress,
) -> Result<Fetched> {
    let (computed, bytes_read) = match req.expected {
        Some(expected) => {
            let (computed, n) =
                hash_path(path, &mut |n| progress.advance(n)).map_err(|e| Error::read(path, e))?;
            Error::check_digest(req.id, Some(expected), &computed)?;
            (Some(computed), n)
        }
        None => (None, 0),
    };
    Ok(Fetched {
        unvouched: Vec::new(),
        signatures: Vec::new(),
        local_path: path.to_owned(),
        storage: Storage::InPlace,
        size_bytes: before.size,
        computed,
        fingerprint: before.clone(),
        bytes_read,
        provenance: provenance(Vec::new()),
        source_digest: None,
    })
}

fn copy_into_cache(
    path: &Path,
    is_dir: bool,
    req: &FetchRequest<'_>,
    progress: &dyn Progress,
) -> Result<Fetched> {
    let layout = req.layout;
    let name = path
        .file_name()
        .map_or_else(|| "model".into(), std::ffi::OsStr::to_os_string);
    // Files to copy: (path relative to the artifact, source path).
    let sources: Vec<(String, PathBuf)> = if is_dir {
        walk_tree(path)
            .map_err(|e| Error::read(path, e))?
            .into_iter()
            .map(|f| (f.rel, f.path))
            .collect()
    } else {
        vec![(String::new(), path.to_owned())]
    };
    let mut staged = Vec::with_capacity(sources.len());
    for (rel, src) in &sources {
        staged.push((
            rel.clone(),
            crate::assemble::stage_copy(layout, src, progress)?,
        ));
    }
    let digest = if is_dir {
        staged
            .iter()
            .map(|(rel, s)| (rel.as_str(), s.digest.clone()))
            .collect::<TreeDigest>()
            .finish()
    } else {
        staged[0].1.digest.clone()
    };
    Error::check_digest(req.id, req.expected, &digest)?;
    let dest = layout
        .models_dir()
        .join("file")
        .join(&Digest::sha256_of(req.id.as_bytes()).value()[..16])
        .join(&digest.value()[..12])
        .join(name);
    let mut files = Vec::with_capacity(staged.len());
    let mut bytes_read = 0;
    for (rel, s) in staged {
        let (size, file_digest) = (s.size, s.digest.clone());
        let blob = layout.publish_blob(s)?;
        let target = if rel.is_empty() {
            dest.clone()
        } else {
            dest.join(&rel)
        };
        layout.link_model(&blob, &target)?;
        bytes_read += size;
        files.push(FileRecord {
            path: if rel.is_empty() {
                dest.file_name()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .into_owned()
            } else {
                rel
            },
            size,
            digest: Some(file_digest),
            etag: None,
            media_type: None,
        });
    }
    let fingerprint = fingerprint(&dest).map_err(|e| Error::read(&dest, e))?;
    Ok(Fetched {
        unvouched: Vec::new(),
        signatures: Vec::new(),
        local_path: dest,
        storage: Storage::Cache,
        size_bytes: bytes_read,
        computed: Some(digest),
        fingerprint,
        bytes_read,
        provenance: provenance(files),
        source_digest: None,
    })
}
