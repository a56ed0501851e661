//! [`FsCatalog`]: the catalog as one versioned JSON index in the cache directory.
//!
//! Writers take `catalog/index.lock` (an exclusive advisory lock, released by the OS when a
//! process dies), read the index, change it, and replace it atomically: a temporary file in
//! the same directory, fsync, rename, fsync of the directory. Readers take no lock: a rename
//! is atomic, so they see the old index or the new one, never a mix. An index that does not
//! parse, or that carries another version, is refused and never written over.

use std::collections::BTreeMap;
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::value::RawValue;

use crate::entry::{CatalogEntry, Lifecycle, Storage};
use crate::error::{Error, Result};
use crate::layout::{CacheLayout, sync_dir};
use crate::store::{ArtifactRemoval, CatalogStore, Deletion};

/// The index version this build reads and writes.
pub const INDEX_VERSION: u32 = 1;

/// The default [`CatalogStore`]: a JSON index under a cache root.
#[derive(Debug, Clone)]
pub struct FsCatalog {
    layout: CacheLayout,
}

/// The entries of the index, open for change inside [`FsCatalog::update`].
#[derive(Debug)]
pub struct IndexTxn {
    entries: BTreeMap<String, CatalogEntry>,
    dirty: bool,
}

impl IndexTxn {
    /// The entry with this id.
    pub fn get(&self, id: &str) -> Option<&CatalogEntry> {
        self.entries.get(id)
    }

    /// The entry with this id, to change.
    pub fn get_mut(&mut self, id: &str) -> Option<&mut CatalogEntry> {
        let entry = self.entries.get_mut(id);
        self.dirty |= entry.is_some();
        entry
    }

    /// Inserts or replaces an entry.
    pub fn insert(&mut self, entry: CatalogEntry) {
        self.dirty = true;
        self.entries.insert(entry.id.clone(), entry);
    }

    /// Removes an entry.
    pub fn remove(&mut self, id: &str) -> Option<CatalogEntry> {
        let entry = self.entries.remove(id);
        self.dirty |= entry.is_some();
        entry
    }

    /// Every entry, ordered by id.
    pub fn entries(&self) -> impl Iterator<Item = &CatalogEntry> {
        self.entries.values()
    }
}

#[derive(Serialize)]
struct IndexOut<'a> {
    version: u32,
    entries: &'a BTreeMap<String, CatalogEntry>,
}

impl FsCatalog {
    /// The catalog under `root`. Creates nothing; fails if `root` exists and is not a directory.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self> {
        let layout = CacheLayout::new(root)?;
        layout.check_root()?;
        Ok(FsCatalog { layout })
    }

    /// The cache's paths.
    pub fn layout(&self) -> &CacheLayout {
        &self.layout
    }

    /// Runs `f` on the entries under the index lock, then writes the index if `f` changed it.
    /// When `f` fails, nothing is written.
    pub fn update<T, E: From<Error>>(
        &self,
        f: impl FnOnce(&mut IndexTxn) -> Result<T, E>,
    ) -> Result<T, E> {
        let _lock = self.lock()?;
        let mut txn = IndexTxn {
            entries: self.load_all()?,
            dirty: false,
        };
        let out = f(&mut txn)?;
        if txn.dirty {
            self.write(&txn.entries)?;
        }
        Ok(out)
    }

    /// Takes the index lock, blocking while another process holds it. Dropping the file
    /// releases it.
    fn lock(&self) -> Result<File> {
        let dir = self.layout.catalog_dir();
        self.layout.create_dir(&dir)?;
        let path = self.layout.index_lock_path();
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|source| Error::IndexLock {
                path: path.clone(),
                source,
            })?;
        file.lock()
            .map_err(|source| Error::IndexLock { path, source })?;
        Ok(file)
    }

    fn write(&self, entries: &BTreeMap<String, CatalogEntry>) -> Result<()> {
        let path = self.layout.index_path();
        let dir = self.layout.catalog_dir();
        let fail = |source: io::Error| Error::IndexWrite {
            path: path.clone(),
            source,
        };
        let mut bytes = serde_json::to_vec_pretty(&IndexOut {
            version: INDEX_VERSION,
            entries,
        })
        .map_err(|e| fail(e.into()))?;
        bytes.push(b'\n');
        let mut tmp = tempfile::Builder::new()
            .prefix(".index.json.")
            .tempfile_in(&dir)
            .map_err(fail)?;
        tmp.write_all(&bytes).map_err(fail)?;
        // Temporary files are private; the index is as readable as the directory it is in.
        tmp.as_file()
            .set_permissions(fs::Permissions::from_mode(0o644))
            .map_err(fail)?;
        tmp.as_file().sync_all().map_err(fail)?;
        tmp.persist(&path).map_err(|e| fail(e.error))?;
        sync_dir(&dir)
    }

    fn read_bytes(&self) -> Result<Option<Vec<u8>>> {
        let path = self.layout.index_path();
        match fs::read(&path) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                self.layout.check_root()?;
                Ok(None)
            }
            Err(source) => Err(Error::IndexRead { path, source }),
        }
    }

    /// Parses the index, keeping only the entries `select` wants, each checked only after the
    /// version is known to be ours.
    fn load(&self, select: Select<'_>) -> Result<BTreeMap<String, CatalogEntry>> {
        let Some(bytes) = self.read_bytes()? else {
            return Ok(BTreeMap::new());
        };
        let path = self.layout.index_path();
        let parse_err = |source| Error::IndexParse {
            path: path.clone(),
            source,
        };
        let mut de = serde_json::Deserializer::from_slice(&bytes);
        let raw = select.deserialize(&mut de).map_err(parse_err)?;
        de.end().map_err(parse_err)?;
        match raw.version {
            Some(Version::Ours) => {}
            Some(Version::Other(found)) => {
                return Err(Error::IndexVersion {
                    path,
                    found,
                    supported: INDEX_VERSION,
                });
            }
            None => return Err(parse_err(serde::de::Error::missing_field("version"))),
        }
        if !raw.has_entries {
            return Err(parse_err(serde::de::Error::missing_field("entries")));
        }
        let mut entries = BTreeMap::new();
        for (key, value) in raw.entries {
            let entry: CatalogEntry = serde_json::from_str(value.get()).map_err(parse_err)?;
            // This build never writes either; a file that has them was damaged or hand-edited.
            if entry.id != key {
                return Err(parse_err(serde::de::Error::custom(format!(
                    "the entry under `{key}` has the id `{}`",
                    entry.id
                ))));
            }
            if entries.insert(key.clone(), entry).is_some() {
                return Err(parse_err(serde::de::Error::custom(format!(
                    "two entries under `{key}`"
                ))));
            }
        }
        Ok(entries)
    }

    fn load_all(&self) -> Result<BTreeMap<String, CatalogEntry>> {
        self.load(Select::All)
    }

    /// Removes what the catalog no longer needs: temporary files no live process holds, model
    /// files no entry points at, blobs nothing links to, and kept signatures of no entry. With
    /// `dry_run`, only reports.
    pub fn gc(&self, dry_run: bool) -> Result<GcReport> {
        self.update(|txn| {
            let mut report = GcReport::default();
            self.gc_tmp(dry_run, &mut report)?;
            let referenced: Vec<&Path> = txn
                .entries()
                .filter(|e| e.storage == Storage::Cache)
                .map(|e| e.local_path.as_path())
                .collect();
            let models = self.layout.models_dir();
            self.layout.refuse_symlinks(&models)?;
            if models.is_dir() {
                self.gc_models(&models, &referenced, dry_run, &mut report)?;
            }
            self.gc_blobs(dry_run, &mut report)?;
            let kept: Vec<PathBuf> = txn
                .entries()
                .map(|e| self.layout.signature_path(&e.id))
                .collect();
            self.gc_signatures(&kept, dry_run, &mut report)?;
            Ok(report)
        })
    }

    /// Removes the kept signatures (`signatures/*.sig`) not in `kept`. A `.sig.partial` file is
    /// left: its writer renames it into place while holding no lock that `gc` could test.
    fn gc_signatures(&self, kept: &[PathBuf], dry_run: bool, report: &mut GcReport) -> Result<()> {
        let dir = self.layout.signatures_dir();
        self.layout.refuse_symlinks(&dir)?;
        for (path, meta) in list_dir(&dir)? {
            let is_sig = path.extension().is_some_and(|e| e == "sig");
            if meta.is_file() && is_sig && !kept.contains(&path) {
                report.remove(&path, meta.len(), dry_run, |p| fs::remove_file(p))?;
            }
        }
        Ok(())
    }

    fn gc_tmp(&self, dry_run: bool, report: &mut GcReport) -> Result<()> {
        let tmp = self.layout.tmp_dir();
        self.layout.refuse_symlinks(&tmp)?;
        for (path, meta) in list_dir(&tmp)? {
            // A writer holds a lock on its temporary file (a download's resume state goes with
            // its `.part` file); if we can take that lock, the writer is gone.
            let locked_by = match path.extension() {
                Some(ext) if ext == "state" && path.with_extension("part").exists() => {
                    path.with_extension("part")
                }
                _ => path.clone(),
            };
            let stale = match File::open(&locked_by) {
                Ok(f) => f.try_lock().is_ok(),
                Err(_) => false,
            };
            if stale && meta.is_dir() {
                let size = crate::verify::total_size(&path).unwrap_or(0);
                report.remove(&path, size, dry_run, |p| fs::remove_dir_all(p))?;
            } else if stale {
                report.remove(&path, meta.len(), dry_run, |p| fs::remove_file(p))?;
            }
        }
        Ok(())
    }

    fn gc_models(
        &self,
        dir: &Path,
        referenced: &[&Path],
        dry_run: bool,
        report: &mut GcReport,
    ) -> Result<()> {
        for (path, meta) in list_dir(dir)? {
            if referenced.iter().any(|r| *r == path) {
                continue;
            }
            if meta.is_dir() && referenced.iter().any(|r| r.starts_with(&path)) {
                self.gc_models(&path, referenced, dry_run, report)?;
                continue;
            }
            let path = self.layout.resolve_inside(&path)?;
            let size = if meta.is_dir() {
                crate::verify::total_size(&path).unwrap_or(0)
            } else {
                meta.len()
            };
            report.remove(&path, size, dry_run, |p| {
                if meta.is_dir() {
                    fs::remove_dir_all(p)
                } else {
                    fs::remove_file(p)
                }
            })?;
        }
        Ok(())
    }

    fn gc_blobs(&self, dry_run: bool, report: &mut GcReport) -> Result<()> {
        use std::os::unix::fs::MetadataExt;
        self.layout.refuse_symlinks(&self.layout.blobs_dir())?;
        for (path, meta) in list_dir(&self.layout.blobs_dir())? {
            // Links removed by this same dry run still count, so the report may say less.
            if meta.is_file() && meta.nlink() == 1 {
                report.remove(&path, meta.len(), dry_run, |p| fs::remove_file(p))?;
            }
        }
        Ok(())
    }
}

/// What [`FsCatalog::gc`] removed (or, in a dry run, would remove).
#[derive(Debug, Default, Serialize)]
pub struct GcReport {
    /// Each path with its size in bytes.
    pub removed: Vec<(PathBuf, u64)>,
}

impl GcReport {
    /// Total bytes freed.
    pub fn bytes(&self) -> u64 {
        self.removed.iter().map(|(_, n)| n).sum()
    }

    fn remove(
        &mut self,
        path: &Path,
        size: u64,
        dry_run: bool,
        rm: impl FnOnce(&Path) -> io::Result<()>,
    ) -> Result<()> {
        if !dry_run {
            match rm(path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
                Err(e) => return Err(Error::io("remove", path, e)),
            }
        }
        self.removed.push((path.to_owned(), size));
        Ok(())
    }
}

/// The entries of `dir` (empty when it does not exist), with metadata not following symlinks.
fn list_dir(dir: &Path) -> Result<Vec<(PathBuf, fs::Metadata)>> {
    let rd = match fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io("list", dir, e)),
    };
    let mut out = Vec::new();
    for entry in rd {
        let entry = entry.map_err(|e| Error::io("list", dir, e))?;
        let path = entry.path();
        let meta = fs::symlink_metadata(&path).map_err(|e| Error::io("stat", &path, e))?;
        out.push((path, meta));
    }
    Ok(out)
}

impl CatalogStore for FsCatalog {
    fn get(&self, id: &str) -> Result<Option<CatalogEntry>> {
        let path = self.layout.index_path();
        match scan_for_entry(&path, id) {
            Ok(Scan::Found(entry)) => return Ok(Some(*entry)),
            Ok(Scan::Absent) => return Ok(None),
            Ok(Scan::Unusable) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(source) => return Err(Error::IndexRead { path, source }),
        }
        Ok(self.load(Select::One(id))?.remove(id))
    }

    fn put(&self, entry: CatalogEntry) -> Result<()> {
        self.update(|txn| {
            txn.insert(entry);
            Ok::<_, Error>(())
        })
    }

    fn set_state(&self, id: &str, state: Lifecycle) -> Result<bool> {
        self.update(|txn| match txn.entries.get(id) {
            Some(e) if e.lifecycle == state => Ok(true),
            Some(_) => {
                let e = txn.get_mut(id).expect("checked above");
                e.lifecycle = state;
                e.updated_ms = crate::entry::now_ms();
                Ok(true)
            }
            None => Ok::<_, Error>(false),
        })
    }

    fn list(&self) -> Result<Vec<CatalogEntry>> {
        Ok(self.load_all()?.into_values().collect())
    }

    fn delete(&self, id: &str) -> Result<Deletion> {
        let Some(entry) = self.update(|txn| Ok::<_, Error>(txn.remove(id)))? else {
            return Ok(Deletion::NotFound);
        };
        // Its kept signature goes with it, whatever becomes of its files.
        let signature = self.layout.signature_path(id);
        match fs::remove_file(&signature) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            // `gc` removes it later: no entry has its id now.
            Err(e) => {
                tracing::warn!(path = %signature.display(), error = %e, "the kept signature stays");
            }
        }
        let artifact = match entry.storage {
            Storage::InPlace => ArtifactRemoval::KeptInPlace,
            Storage::Cache => match self.remove_artifact(&entry) {
                Ok(Some(bytes)) => ArtifactRemoval::Removed { bytes },
                Ok(None) => ArtifactRemoval::Missing,
                Err(e) => ArtifactRemoval::Failed(e),
            },
        };
        Ok(Deletion::Removed {
            entry: Box::new(entry),
            artifact,
        })
    }
}

impl FsCatalog {
    /// Removes a cache-owned artifact and the blobs only it used. `None` if it was missing.
    fn remove_artifact(&self, entry: &CatalogEntry) -> Result<Option<u64>> {
        let path = match self.layout.resolve_inside(&entry.local_path) {
            Err(Error::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
                return Ok(None);
            }
            other => other?,
        };
        let meta = match fs::symlink_metadata(&path) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io("stat", &path, e)),
        };
        let removed = if meta.is_dir() {
            fs::remove_dir_all(&path)
        } else {
            fs::remove_file(&path)
        };
        removed.map_err(|e| Error::io("remove", &path, e))?;
        let mut freed = 0;
        let digests = entry.verification.computed.iter().chain(
            entry
                .provenance
                .iter()
                .flat_map(|p| p.files.iter().filter_map(|f| f.digest.as_ref())),
        );
        for digest in digests {
            freed += self.layout.remove_blob_if_unused(digest)?;
        }
        Ok(Some(freed))
    }
}

/// How every index this build writes begins (pretty-printed, `version` first).
fn header() -> String {
    format!("{{\n  \"version\": {INDEX_VERSION},\n  \"entries\": {{")
}

/// Finds one entry without parsing the others: the index is read in pieces into one small
/// buffer and searched for the entry's key as this build writes it (`\n    "<id>": `, a
/// depth no other key has; newlines inside strings are escaped). This keeps a lookup in a
/// catalog of 10,000 models at a few milliseconds, where parsing all of it takes tens.
///
/// [`Scan::Unusable`] when the file is not laid out as this build writes it, or the entry
/// does not parse: the caller then parses the whole index, which reports any damage properly.
fn scan_for_entry(path: &Path, id: &str) -> io::Result<Scan> {
    const PIECE: usize = 256 << 10;
    // The `entries` object ends at the first line holding only `  }`.
    const END: &[u8] = b"\n  }";
    let file = File::open(path)?;
    let key = format!(
        "\n    {}: ",
        serde_json::to_string(id).map_err(io::Error::other)?
    );
    let header = header();
    let finder = memchr::memmem::Finder::new(key.as_bytes());
    let end_finder = memchr::memmem::Finder::new(END);
    let overlap = key.len().max(END.len()) - 1;
    let mut buf = vec![0u8; PIECE + overlap];
    let (mut kept, mut base, mut first) = (0usize, 0u64, true);
    let mut found_at: Option<u64> = None;
    loop {
        let n = read_full(&file, &mut buf[kept..], base + kept as u64)?;
        let window = &buf[..kept + n];
        if first {
            if !window.starts_with(header.as_bytes()) {
                return Ok(Scan::Unusable);
            }
            first = false;
        }
        let end = end_finder.find(window);
        for hit in finder.find_iter(window) {
            if end.is_some_and(|e| e < hit) {
                break;
            }
            // Two entries under one key: let the full parse judge the file.
            if found_at.is_some() {
                return Ok(Scan::Unusable);
            }
            found_at = Some(base + (hit + key.len()) as u64);
        }
        if end.is_some() {
            let Some(at) = found_at else {
                return Ok(Scan::Absent);
            };
            return Ok(match parse_entry_at(&file, at)? {
                // An entry filed under another key than its id is a damaged index.
                Some(entry) if entry.id == id => Scan::Found(Box::new(entry)),
                _ => Scan::Unusable,
            });
        }
        if n == 0 {
            return Ok(Scan::Unusable);
        }
        // Keep the tail, in case a key or the end straddles two pieces.
        let len = kept + n;
        let tail = overlap.min(len);
        buf.copy_within(len - tail..len, 0);
        base += (len - tail) as u64;
        kept = tail;
    }
}

/// What [`scan_for_entry`] found.
#[derive(Debug)]
enum Scan {
    Found(Box<CatalogEntry>),
    Absent,
    Unusable,
}

/// Reads from `offset` until `buf` is full or the file ends; returns the bytes read.
fn read_full(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    use std::os::unix::fs::FileExt;
    let mut done = 0;
    while done < buf.len() {
        match file.read_at(&mut buf[done..], offset + done as u64) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

/// Parses the entry that starts at `offset`, reading more until it is complete.
fn parse_entry_at(file: &File, offset: u64) -> io::Result<Option<CatalogEntry>> {
    let mut buf = vec![0u8; 16 << 10];
    loop {
        let n = read_full(file, &mut buf, offset)?;
        let mut values =
            serde_json::Deserializer::from_slice(&buf[..n]).into_iter::<CatalogEntry>();
        match values.next() {
            Some(Ok(entry)) => return Ok(Some(entry)),
            Some(Err(e)) if e.is_eof() && n == buf.len() => buf.resize(buf.len() * 2, 0),
            _ => return Ok(None),
        }
    }
}

/// Which entries a load keeps.
#[derive(Clone, Copy)]
enum Select<'a> {
    All,
    One(&'a str),
}

enum Version {
    Ours,
    Other(String),
}

/// The index as first parsed: version known, entries still raw.
struct RawIndex {
    version: Option<Version>,
    has_entries: bool,
    entries: Vec<(String, Box<RawValue>)>,
}

impl<'de> DeserializeSeed<'de> for Select<'_> {
    type Value = RawIndex;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<RawIndex, D::Error> {
        d.deserialize_map(IndexVisitor(self))
    }
}

struct IndexVisitor<'a>(Select<'a>);

impl<'de> Visitor<'de> for IndexVisitor<'_> {
    type Value = RawIndex;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object with `version` and `entries`")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawIndex, A::Error> {
        let mut raw = RawIndex {
            version: None,
            has_entries: false,
            entries: Vec::new(),
        };
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "version" => {
                    let v: serde_json::Value = map.next_value()?;
                    raw.version = Some(if v.as_u64() == Some(u64::from(INDEX_VERSION)) {
                        Version::Ours
                    } else {
                        Version::Other(v.to_string())
                    });
                }
                "entries" => {
                    raw.entries = map.next_value_seed(EntriesSeed(self.0))?;
                    raw.has_entries = true;
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(raw)
    }
}

struct EntriesSeed<'a>(Select<'a>);

impl<'de> DeserializeSeed<'de> for EntriesSeed<'_> {
    type Value = Vec<(String, Box<RawValue>)>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for EntriesSeed<'_> {
    type Value = Vec<(String, Box<RawValue>)>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a map from id to entry")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut out = Vec::new();
        while let Some(id) = map.next_key::<String>()? {
            let wanted = match self.0 {
                Select::All => true,
                Select::One(want) => want == id,
            };
            if wanted {
                out.push((id, map.next_value::<Box<RawValue>>()?));
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entry::{Verification, now_ms};
    use crate::outcome::Outcome;

    pub(crate) fn entry(id: &str, path: &Path) -> CatalogEntry {
        CatalogEntry {
            id: id.to_owned(),
            source: id.to_owned(),
            local_path: path.to_owned(),
            lifecycle: Lifecycle::Active,
            storage: Storage::InPlace,
            digest: None,
            source_digest: None,
            verification: Verification {
                outcome: Outcome::Warn,
                computed: None,
            },
            last_verified_ms: None,
            size_bytes: 1,
            fingerprint: None,
            created_ms: now_ms(),
            updated_ms: now_ms(),
            provenance: None,
            model_info: None,
            signature: None,
        }
    }

    #[test]
    fn put_get_list_delete() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| Error::io("tmp", "", e))?;
        let cat = FsCatalog::open(dir.path().join("cache"))?;
        assert!(cat.list()?.is_empty());
        cat.put(entry("file:/a", Path::new("/a")))?;
        cat.put(entry("file:/b", Path::new("/b")))?;
        assert_eq!(
            cat.get("file:/a")?.map(|e| e.id),
            Some("file:/a".to_owned())
        );
        assert_eq!(cat.get("file:/zz")?, None);
        assert_eq!(cat.list()?.len(), 2);
        assert!(cat.set_state("file:/a", Lifecycle::Retired)?);
        assert!(!cat.set_state("file:/zz", Lifecycle::Retired)?);
        assert!(matches!(
            cat.delete("file:/a")?,
            Deletion::Removed {
                artifact: ArtifactRemoval::KeptInPlace,
                ..
            }
        ));
        assert!(!cat.delete("file:/a")?.existed());
        assert_eq!(cat.list()?.len(), 1);
        Ok(())
    }

    #[test]
    fn scanning_finds_every_entry_across_piece_boundaries() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| Error::io("tmp", "", e))?;
        let cat = FsCatalog::open(dir.path())?;
        let ids: Vec<String> = (0..2000)
            .map(|i| format!("file:/models/{i}/\"quoted\" é {}", "x".repeat(i % 97)))
            .collect();
        cat.update(|txn| {
            for id in &ids {
                txn.insert(entry(id, Path::new(id)));
            }
            Ok::<_, Error>(())
        })?;
        let size = fs::metadata(cat.layout().index_path())
            .map_err(|e| Error::io("stat", "", e))?
            .len();
        assert!(
            size > 3 * (256 << 10),
            "the index spans several pieces: {size}"
        );
        for id in ids.iter().step_by(7).chain(ids.last()) {
            let found = scan_for_entry(&cat.layout().index_path(), id)
                .map_err(|e| Error::io("scan", "", e))?;
            assert!(matches!(found, Scan::Found(e) if e.id == *id));
        }
        let missing = scan_for_entry(&cat.layout().index_path(), "file:/nope")
            .map_err(|e| Error::io("scan", "", e))?;
        assert!(matches!(missing, Scan::Absent));
        // A prefix of an id is not that id.
        assert_eq!(cat.get("file:/models/1")?, None);
        Ok(())
    }

    #[test]
    fn the_fast_lookup_expects_the_header_this_build_writes() -> Result<()> {
        // Guards `header()` against a change of `INDEX_VERSION`: a header that no longer matches
        // what `write` produces would send every lookup to the slow full parse.
        let dir = tempfile::tempdir().map_err(|e| Error::io("tmp", "", e))?;
        let cat = FsCatalog::open(dir.path())?;
        cat.put(entry("file:/a", Path::new("/a")))?;
        let path = cat.layout().index_path();
        let text = fs::read(&path).map_err(|e| Error::io("read", &path, e))?;
        assert!(
            text.starts_with(header().as_bytes()),
            "{}",
            String::from_utf8_lossy(&text)
        );
        let found = scan_for_entry(&path, "file:/a").map_err(|e| Error::io("scan", &path, e))?;
        assert!(matches!(found, Scan::Found(e) if e.id == "file:/a"));
        assert!(header().contains(&format!("\"version\": {INDEX_VERSION},")));
        Ok(())
    }

    #[test]
    fn future_version_is_refused_and_kept() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| Error::io("tmp", "", e))?;
        let cat = FsCatalog::open(dir.path())?;
        cat.layout().create_dir(&cat.layout().catalog_dir())?;
        let text = r#"{"version": 2, "entries": {"x": {"totally": "different"}}}"#;
        fs::write(cat.layout().index_path(), text).map_err(|e| Error::io("write", "", e))?;
        assert!(matches!(cat.list(), Err(Error::IndexVersion { .. })));
        assert!(matches!(cat.get("x"), Err(Error::IndexVersion { .. })));
        assert!(matches!(
            cat.put(entry("y", Path::new("/y"))),
            Err(Error::IndexVersion { .. })
        ));
        assert_eq!(
            fs::read_to_string(cat.layout().index_path()).map_err(|e| Error::io("read", "", e))?,
            text
        );
        Ok(())
    }

    #[test]
    fn lookup_of_one_entry_skips_the_others() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| Error::io("tmp", "", e))?;
        let cat = FsCatalog::open(dir.path())?;
        cat.layout().create_dir(&cat.layout().catalog_dir())?;
        // The other entry is not a valid entry, yet a lookup of `a` does not care.
        let text = format!(
            r#"{{"version": 1, "entries": {{"b": {{"odd": true}}, "a": {}}}}}"#,
            serde_json::to_string(&entry("a", Path::new("/a"))).map_err(|e| Error::io(
                "json",
                "",
                e.into()
            ))?
        );
        fs::write(cat.layout().index_path(), text).map_err(|e| Error::io("write", "", e))?;
        assert!(cat.get("a")?.is_some());
        assert!(matches!(cat.list(), Err(Error::IndexParse { .. })));
        Ok(())
    }
}
