//! The files of a model in the catalog, each with the sha256 it must have: what a push
//! publishes, and what every byte it sends is checked against.

use std::collections::HashMap;
use std::path::PathBuf;

use catalog_core::verify::{fingerprint, walk_tree};
use catalog_core::{
    Algorithm, CacheLayout, CatalogEntry, Digest, Outcome, SafeRelPath, Storage, TreeDigest,
};

use crate::error::{Error, Result};
use mp_progress::Reporter;

/// One file of a model.
#[derive(Debug, Clone)]
pub(crate) struct ModelFile {
    /// Its path inside the model (its file name, for a model of one file).
    pub(crate) rel: SafeRelPath,
    #[cfg_attr(
        not(feature = "http"),
        expect(dead_code, reason = "a push reads it; a signature check does not")
    )]
    /// Where its bytes are read from: the store's blob when it is there, else the file.
    pub(crate) path: PathBuf,
    #[cfg_attr(
        not(feature = "http"),
        expect(dead_code, reason = "a push reads it; a signature check does not")
    )]
    pub(crate) size: u64,
    /// The sha256 its bytes must have.
    pub(crate) digest: Digest,
    #[cfg_attr(
        not(feature = "http"),
        expect(dead_code, reason = "a push reads it; a signature check does not")
    )]
    /// What a mismatch names: the model's id, and the file's path in a model of several.
    pub(crate) what: String,
}

/// Every file of `entry`'s model (its one file, or each file of its directory: the tree
/// `verify` hashes), each with the sha256 it must have, checked against the model's digest.
///
/// A file's sha256 is the one the catalog recorded for the same path and size; for a model of
/// one file, else the model's own digest; else the file is hashed now (with progress). The
/// model's digest computed from these (the one sha256, or the tree digest) must be the one
/// `verify` compares with (the digest given, else the source's, else the one computed last),
/// or this fails with [`Error::DigestMismatch`] before anything is sent. A push then hashes
/// every byte it sends and compares it with its file's sha256 (see `crate::upload`), so that
/// what it publishes is the model the catalog vouches for, read once.
///
/// A model the cache owns is resolved inside the cache, so that no planted symlink leads out.
pub(crate) fn model_files(
    layout: &CacheLayout,
    entry: &CatalogEntry,
    reporter: &dyn Reporter,
) -> Result<ModelFiles> {
    let root = match entry.storage {
        Storage::Cache => layout.resolve_inside(&entry.local_path)?,
        Storage::InPlace => entry.local_path.clone(),
    };
    let meta = std::fs::metadata(&root).map_err(|e| Error::read(&root, e))?;
    let one_file = meta.is_file();
    let found: Vec<(SafeRelPath, PathBuf, u64)> = if one_file {
        let name = root
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| Error::NotAFile { path: root.clone() })?;
        vec![(SafeRelPath::file_name(name)?, root.clone(), meta.len())]
    } else if meta.is_dir() {
        let mut found = Vec::new();
        for f in walk_tree(&root).map_err(|e| Error::read(&root, e))? {
            found.push((SafeRelPath::new(f.rel)?, f.path, f.meta.len()));
        }
        found
    } else {
        return Err(Error::NotAFile { path: root });
    };
    let reference = entry
        .digest
        .as_ref()
        .or(entry.source_digest.as_ref())
        .or(entry.verification.computed.as_ref());
    let recorded: HashMap<&str, (u64, &Digest)> = entry
        .provenance
        .iter()
        .flat_map(|p| &p.files)
        .filter_map(|f| {
            let digest = f.digest.as_ref()?;
            (digest.algo() == Algorithm::Sha256).then_some((f.path.as_str(), (f.size, digest)))
        })
        .collect();
    let files = found
        .into_iter()
        .map(|(rel, path, size)| {
            let digest = match recorded.get(rel.as_str()) {
                Some((recorded_size, digest)) if *recorded_size == size => (*digest).clone(),
                // A model of one file: its digest is the file's sha256.
                _ if one_file
                    && let Some(d) = reference.filter(|d| d.algo() == Algorithm::Sha256) =>
                {
                    d.clone()
                }
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
            let what = if one_file {
                entry.id.clone()
            } else {
                format!("{}/{rel}", entry.id)
            };
            Ok(ModelFile {
                rel,
                path,
                size,
                digest,
                what,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let digest = match files.as_slice() {
        [one] if one_file => one.digest.clone(),
        _ => files
            .iter()
            .map(|f| (f.rel.as_str(), f.digest.clone()))
            .collect::<TreeDigest>()
            .finish(),
    };
    Error::check_digest(&entry.id, reference, &digest)?;
    // The same test `ensure` makes before it hands a model out without reading it.
    let unchanged = entry.verification.outcome != Outcome::Fail
        && entry.verification.computed.is_some()
        && entry.fingerprint.is_some()
        && fingerprint(&root).ok() == entry.fingerprint;
    Ok(ModelFiles {
        files,
        digest,
        unchanged,
    })
}

/// A model's files, and its digest.
#[derive(Debug, Clone)]
pub(crate) struct ModelFiles {
    /// Every file, in the order of their paths.
    pub(crate) files: Vec<ModelFile>,
    /// The model's digest as verification computes it: the one file's sha256, or the tree
    /// digest of the files.
    #[cfg_attr(
        not(feature = "http"),
        expect(dead_code, reason = "a push reads it; a signature check does not")
    )]
    pub(crate) digest: Digest,
    /// Whether the files are unchanged (size, modification time, inode and device) since
    /// their bytes were last hashed and matched, as the entry's fingerprint records.
    #[cfg_attr(
        not(feature = "oci"),
        expect(dead_code, reason = "only a registry checks what it is sent")
    )]
    pub(crate) unchanged: bool,
}
