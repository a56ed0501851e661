//! The files of a model in the catalog, each with its sha256: what a push publishes.

use std::collections::HashMap;
use std::path::PathBuf;

use catalog_core::verify::walk_tree;
use catalog_core::{Algorithm, CacheLayout, CatalogEntry, Digest, SafeRelPath, Storage};

use crate::error::{Error, Result};
use crate::reporter::Reporter;

/// One file of a model.
#[derive(Debug, Clone)]
pub(crate) struct ModelFile {
    /// Its path inside the model (its file name, for a model of one file).
    pub(crate) rel: SafeRelPath,
    /// Where its bytes are read from: the store's blob when it is there, else the file.
    pub(crate) path: PathBuf,
    pub(crate) size: u64,
    /// Its sha256.
    pub(crate) digest: Digest,
}

/// Every file of `entry`'s model but those `skip` names: its one file, or each file of its
/// directory (the tree `verify` hashes), with the sha256 the catalog recorded for the same
/// path and size, else hashed now (with progress). A model the cache owns is resolved inside
/// the cache, so that no planted symlink leads out of it.
pub(crate) fn model_files(
    layout: &CacheLayout,
    entry: &CatalogEntry,
    reporter: &dyn Reporter,
    skip: &dyn Fn(&str) -> bool,
) -> Result<Vec<ModelFile>> {
    let root = match entry.storage {
        Storage::Cache => layout.resolve_inside(&entry.local_path)?,
        Storage::InPlace => entry.local_path.clone(),
    };
    let meta = std::fs::metadata(&root).map_err(|e| Error::read(&root, e))?;
    let found: Vec<(SafeRelPath, PathBuf, u64)> = if meta.is_file() {
        let name = root
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| Error::NotAFile { path: root.clone() })?;
        vec![(SafeRelPath::file_name(name)?, root.clone(), meta.len())]
    } else if meta.is_dir() {
        let mut found = Vec::new();
        for f in walk_tree(&root).map_err(|e| Error::read(&root, e))? {
            if skip(&f.rel) {
                continue;
            }
            found.push((SafeRelPath::new(f.rel)?, f.path, f.meta.len()));
        }
        found
    } else {
        return Err(Error::NotAFile { path: root });
    };
    let recorded: HashMap<&str, (u64, &Digest)> = entry
        .provenance
        .iter()
        .flat_map(|p| &p.files)
        .filter_map(|f| {
            let digest = f.digest.as_ref()?;
            (digest.algo() == Algorithm::Sha256).then_some((f.path.as_str(), (f.size, digest)))
        })
        .collect();
    found
        .into_iter()
        .map(|(rel, path, size)| {
            let digest = match recorded.get(rel.as_str()) {
                Some((recorded_size, digest)) if *recorded_size == size => (*digest).clone(),
                _ => {
                    let progress = reporter.start(&format!("hash {rel}"), Some(size));
                    let file =
                        catalog_core::open_regular(&path).map_err(|e| Error::read(&path, e))?;
                    let hashed = catalog_core::hash_reader(file, |n| progress.advance(n));
                    progress.finish();
                    hashed.map_err(|e| Error::read(&path, e))?.0
                }
            };
            // The store's blob is immutable and holds exactly these bytes.
            let blob = layout.blob_path(&digest);
            let path = if blob.is_file() { blob } else { path };
            Ok(ModelFile {
                rel,
                path,
                size,
                digest,
            })
        })
        .collect()
}
