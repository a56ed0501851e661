//! The cache directory: where everything lives, and the file-system moves that keep it sound.
//!
//! ```text
//! <root>/
//! ├── catalog/
//! │   ├── index.json         {"version": 1, "entries": {…}}, replaced atomically
//! │   └── index.lock         advisory lock held for each read-modify-write of the index
//! ├── blobs/sha256/<hex>     immutable, read-only, named by their content
//! ├── models/<scheme>/…      what `local_path` points at: hard links into blobs/ under the
//! │                          artifact's own file names (a repository is a directory of them)
//! ├── signatures/<hex>.sig   a signature found apart from a model's files (`ensure
//! │                          --signature`, an OCI referrer), by the sha256 of the model's id,
//! │                          kept for `verify`; removed with the model, and by `gc` when no
//! │                          entry has that id
//! ├── tmp/                   in-flight files, unique names, locked by their writer
//! └── locks/                 one lock file per model id
//! ```
//!
//! Local files registered in place are not under the root at all; the catalog only records
//! where they are.

use std::fs::{self, File};
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::digest::{Digest, Hasher};
use crate::error::{Error, Result};

/// The environment variable that names the cache directory.
pub const CACHE_ENV: &str = "MODEL_PROVISIONER_CACHE";

/// The default cache directory: `$MODEL_PROVISIONER_CACHE`, else
/// `$XDG_CACHE_HOME/model-provisioner`, else `~/.cache/model-provisioner`.
pub fn default_model_cache_dir() -> Result<PathBuf> {
    cache_dir_from_env(|name| std::env::var_os(name))
}

/// [`default_model_cache_dir`] with the environment given by `lookup`.
pub fn cache_dir_from_env(lookup: impl Fn(&str) -> Option<std::ffi::OsString>) -> Result<PathBuf> {
    let var = |name: &str| lookup(name).filter(|v| !v.is_empty()).map(PathBuf::from);
    if let Some(dir) = var(CACHE_ENV) {
        return Ok(dir);
    }
    // The XDG spec says relative values are to be ignored.
    if let Some(xdg) = var("XDG_CACHE_HOME").filter(|p| p.is_absolute()) {
        return Ok(xdg.join("model-provisioner"));
    }
    var("HOME")
        .map(|home| home.join(".cache").join("model-provisioner"))
        .ok_or(Error::NoCacheDir)
}

/// The paths of one cache directory.
#[derive(Debug, Clone)]
pub struct CacheLayout {
    root: PathBuf,
}

impl CacheLayout {
    /// The layout under `root` (made absolute; nothing is created).
    pub fn new(root: impl Into<PathBuf>) -> Result<Self> {
        let root = root.into();
        let root = std::path::absolute(&root).map_err(|e| Error::io("resolve", &root, e))?;
        Ok(CacheLayout { root })
    }

    /// The cache root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `catalog/`.
    pub fn catalog_dir(&self) -> PathBuf {
        self.root.join("catalog")
    }

    /// `catalog/index.json`.
    pub fn index_path(&self) -> PathBuf {
        self.catalog_dir().join("index.json")
    }

    /// `catalog/index.lock`.
    pub fn index_lock_path(&self) -> PathBuf {
        self.catalog_dir().join("index.lock")
    }

    /// `blobs/sha256/`.
    pub fn blobs_dir(&self) -> PathBuf {
        self.root.join("blobs").join("sha256")
    }

    /// `blobs/sha256/<hex>`.
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.blobs_dir().join(digest.value())
    }

    /// `models/`.
    pub fn models_dir(&self) -> PathBuf {
        self.root.join("models")
    }

    /// `signatures/`.
    pub fn signatures_dir(&self) -> PathBuf {
        self.root.join("signatures")
    }

    /// `signatures/<sha256 of id>.sig`: where the signature of the model `id` that is not one
    /// of its files is kept.
    pub fn signature_path(&self, id: &str) -> PathBuf {
        let digest = Digest::sha256_of(id.as_bytes());
        self.signatures_dir()
            .join(format!("{}.sig", digest.value()))
    }

    /// `tmp/`.
    pub fn tmp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }

    /// Fails unless the root is a directory or does not exist yet.
    pub fn check_root(&self) -> Result<()> {
        match fs::metadata(&self.root) {
            Ok(m) if m.is_dir() => Ok(()),
            Ok(_) => Err(Error::CacheRootNotDir {
                path: self.root.clone(),
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::io("read", &self.root, e)),
        }
    }

    /// Creates `dir` (which must be under the root) and its parents.
    pub fn create_dir(&self, dir: &Path) -> Result<()> {
        self.check_root()?;
        self.check_lexically_inside(dir)?;
        self.refuse_symlinks(dir)?;
        fs::create_dir_all(dir).map_err(|e| Error::io("create directory", dir, e))
    }

    /// Fails if any existing component of `path` below the root is a symlink: a link planted
    /// inside the cache must not lead a write or a deletion outside it.
    pub fn refuse_symlinks(&self, path: &Path) -> Result<()> {
        self.check_lexically_inside(path)?;
        let rel = path.strip_prefix(&self.root).unwrap_or(Path::new(""));
        let mut at = self.root.clone();
        for part in rel.components() {
            at.push(part);
            match fs::symlink_metadata(&at) {
                Ok(m) if m.file_type().is_symlink() => {
                    return Err(Error::OutsideRoot {
                        path: path.to_owned(),
                        root: self.root.clone(),
                    });
                }
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
                Err(e) => return Err(Error::io("inspect", &at, e)),
            }
        }
        Ok(())
    }

    fn check_lexically_inside(&self, path: &Path) -> Result<()> {
        let inside = path.starts_with(&self.root)
            && path
                .strip_prefix(&self.root)
                .is_ok_and(crate::rel_path::is_plain_relative);
        if inside {
            Ok(())
        } else {
            Err(Error::OutsideRoot {
                path: path.to_owned(),
                root: self.root.clone(),
            })
        }
    }

    /// Checks that `path` is inside the root once symlinks in its parent are resolved, and
    /// returns the resolved path. The last component itself is not followed, so removing it
    /// removes the link, never what a planted symlink points at.
    pub fn resolve_inside(&self, path: &Path) -> Result<PathBuf> {
        let outside = || Error::OutsideRoot {
            path: path.to_owned(),
            root: self.root.clone(),
        };
        self.check_lexically_inside(path)?;
        let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
            return Err(outside());
        };
        let root = fs::canonicalize(&self.root).map_err(|e| Error::io("resolve", &self.root, e))?;
        let parent = fs::canonicalize(parent).map_err(|e| Error::io("resolve", parent, e))?;
        if parent.starts_with(&root) {
            Ok(parent.join(name))
        } else {
            Err(outside())
        }
    }

    /// The partial file and resume state of download `key` under `tmp/`
    /// (`dl-<key>.part`, `dl-<key>.state`). `key` must be a lowercase hex string.
    pub fn partial_paths(&self, key: &str) -> Result<(PathBuf, PathBuf)> {
        let tmp = self.tmp_dir();
        if key.is_empty()
            || !key
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(Error::OutsideRoot {
                path: tmp.join(key),
                root: self.root.clone(),
            });
        }
        Ok((
            tmp.join(format!("dl-{key}.part")),
            tmp.join(format!("dl-{key}.state")),
        ))
    }

    /// Starts writing a new file under `tmp/`: bytes written are hashed on the way, and the
    /// file is locked so that `gc` leaves it alone while its writer lives.
    pub fn stage(&self) -> Result<Staging> {
        let tmp = self.tmp_dir();
        self.create_dir(&tmp)?;
        let file = tempfile::Builder::new()
            .prefix("stage-")
            .tempfile_in(&tmp)
            .map_err(|e| Error::io("create a temporary file in", &tmp, e))?;
        file.as_file()
            .lock()
            .map_err(|e| Error::io("lock", file.path(), e))?;
        Ok(Staging {
            file,
            hasher: Hasher::new(),
        })
    }

    /// Moves a finished staged file to `blobs/sha256/<hex>`, read-only, and returns the blob's
    /// path. A blob already there is replaced (atomically): the staged bytes were just hashed,
    /// while the old blob may have been damaged since, which is why it is being fetched again.
    pub fn publish_blob(&self, staged: StagedFile) -> Result<PathBuf> {
        let dir = self.blobs_dir();
        self.create_dir(&dir)?;
        let blob = self.blob_path(&staged.digest);
        let tmp = staged.path;
        fs::set_permissions(&tmp, fs::Permissions::from_mode(0o444))
            .map_err(|e| Error::io("make read-only", &*tmp, e))?;
        tmp.persist(&blob)
            .map_err(|e| Error::io("rename into the store", &blob, e.error))?;
        sync_dir(&dir)?;
        Ok(blob)
    }

    /// Hard-links `blob` at `dest` (under `models/`), replacing what was there, and syncs the
    /// directory. The link appears atomically: it is made under a temporary name first.
    pub fn link_model(&self, blob: &Path, dest: &Path) -> Result<()> {
        let dir = dest.parent().ok_or_else(|| Error::OutsideRoot {
            path: dest.to_owned(),
            root: self.root.clone(),
        })?;
        self.create_dir(dir)?;
        let dest = self.resolve_inside(dest)?;
        // Already that blob: done. (A rename between two links of one file does nothing and
        // would leave the temporary link behind.)
        if let (Ok(d), Ok(b)) = (fs::symlink_metadata(&dest), fs::metadata(blob))
            && (d.dev(), d.ino()) == (b.dev(), b.ino())
        {
            return Ok(());
        }
        // Unique per process and per call: threads of one process may link the same name.
        let tmp = dir.join(format!(
            ".{}.link-{}-{}",
            dest.file_name().unwrap_or_default().to_string_lossy(),
            std::process::id(),
            NEXT_LINK.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        let _ = fs::remove_file(&tmp);
        // A blob published again (the same bytes, by another process or thread that fetched
        // them too) replaces the file at its path; linking the old inode in that instant fails
        // with `NotFound` although the path names a blob again: link what it names now.
        let mut attempts = 0;
        while let Err(e) = fs::hard_link(blob, &tmp) {
            attempts += 1;
            if e.kind() != std::io::ErrorKind::NotFound || attempts == 3 || !blob.is_file() {
                return Err(Error::io("link", &tmp, e));
            }
        }
        fs::rename(&tmp, &dest).map_err(|e| {
            let _ = fs::remove_file(&tmp);
            Error::io("rename", &dest, e)
        })?;
        sync_dir(dir)
    }

    /// A directory under `tmp/` in which an artifact made of several files is assembled,
    /// locked so that `gc` leaves it alone, and removed on drop unless published with
    /// [`publish_dir`](Self::publish_dir).
    pub fn stage_dir(&self) -> Result<StagedDir> {
        let tmp = self.tmp_dir();
        self.create_dir(&tmp)?;
        let dir = tempfile::Builder::new()
            .prefix("dir-")
            .tempdir_in(&tmp)
            .map_err(|e| Error::io("create a directory in", &tmp, e))?;
        let lock = File::open(dir.path()).map_err(|e| Error::io("open", dir.path(), e))?;
        lock.lock().map_err(|e| Error::io("lock", dir.path(), e))?;
        Ok(StagedDir { dir, _lock: lock })
    }

    /// Moves an assembled directory to `dest` (under `models/`), replacing what was there:
    /// the old directory is moved aside first and removed after, so `dest` is only ever
    /// missing between two renames.
    ///
    /// Writers that publish the same `dest` at once (ensures of one model without the
    /// single-flight lock) all succeed, the last one's directory standing: a rename that
    /// finds `dest` taken again (another writer published between this one's two renames)
    /// moves that aside too and tries again. Every such retry follows another writer's
    /// success, so the retries end.
    pub fn publish_dir(&self, staged: StagedDir, dest: &Path) -> Result<()> {
        /// More than any number of writers a cache sees at once.
        const ATTEMPTS: usize = 64;
        let parent = dest.parent().ok_or_else(|| Error::OutsideRoot {
            path: dest.to_owned(),
            root: self.root.clone(),
        })?;
        self.create_dir(parent)?;
        let dest = self.resolve_inside(dest)?;
        let aside = || {
            parent.join(format!(
                ".{}.old-{}-{}",
                dest.file_name().unwrap_or_default().to_string_lossy(),
                std::process::id(),
                NEXT_LINK.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            ))
        };
        let from = staged.dir.keep();
        let mut moved = Vec::new();
        let mut attempt = 0;
        loop {
            let old = aside();
            match fs::rename(&dest, &old) {
                Ok(()) => moved.push(old),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => {
                    let _ = fs::remove_dir_all(&from);
                    return Err(Error::io("move aside", &dest, e));
                }
            }
            match fs::rename(&from, &dest) {
                Ok(()) => break,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::DirectoryNotEmpty | io::ErrorKind::AlreadyExists
                    ) && attempt + 1 < ATTEMPTS =>
                {
                    attempt += 1;
                }
                Err(e) => {
                    if let Some(last) = moved.pop() {
                        let _ = fs::rename(&last, &dest);
                    }
                    let _ = fs::remove_dir_all(&from);
                    for old in &moved {
                        let _ = fs::remove_dir_all(old);
                    }
                    return Err(Error::io("publish", &dest, e));
                }
            }
        }
        sync_dir(parent)?;
        for old in &moved {
            let _ = fs::remove_dir_all(old);
        }
        Ok(())
    }

    /// Removes the blob of `digest` when nothing links to it any more. Returns bytes freed.
    pub fn remove_blob_if_unused(&self, digest: &Digest) -> Result<u64> {
        let blob = self.blob_path(digest);
        match fs::symlink_metadata(&blob) {
            Ok(m) if m.is_file() && m.nlink() == 1 => {
                fs::remove_file(&blob).map_err(|e| Error::io("remove", &blob, e))?;
                Ok(m.len())
            }
            _ => Ok(0),
        }
    }
}

/// Numbers the temporary names of links being made, see [`CacheLayout::link_model`].
static NEXT_LINK: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// A file being written under `tmp/`; see [`CacheLayout::stage`].
#[derive(Debug)]
pub struct Staging {
    file: tempfile::NamedTempFile,
    hasher: Hasher,
}

impl Staging {
    /// The temporary file's path.
    pub fn path(&self) -> &Path {
        self.file.path()
    }

    /// Flushes the bytes to disk and returns the finished file with its digest.
    pub fn finish(self) -> Result<StagedFile> {
        let path = self.file.path().to_owned();
        self.file
            .as_file()
            .sync_all()
            .map_err(|e| Error::io("sync", &path, e))?;
        let size = self.hasher.bytes();
        let (file, path) = self.file.into_parts();
        Ok(StagedFile {
            digest: self.hasher.finish(),
            size,
            path,
            _lock: Some(file),
        })
    }
}

impl Write for Staging {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

/// A staged file, synced, with its digest; removed on drop unless published.
#[derive(Debug)]
pub struct StagedFile {
    /// The SHA-256 of its bytes.
    pub digest: Digest,
    /// Its length.
    pub size: u64,
    path: tempfile::TempPath,
    /// The writer's lock on the file, held until it is published or dropped.
    _lock: Option<File>,
}

impl StagedFile {
    /// A file under `tmp/` that the caller wrote, synced and hashed itself (a download that
    /// may have resumed). It is removed on drop unless published; `lock`, the writer's locked
    /// handle, is released then.
    pub fn from_synced(path: &Path, digest: Digest, size: u64, lock: Option<File>) -> Result<Self> {
        let path =
            tempfile::TempPath::try_from_path(path).map_err(|e| Error::io("take over", path, e))?;
        Ok(StagedFile {
            digest,
            size,
            path,
            _lock: lock,
        })
    }
}

/// A directory being assembled under `tmp/`; see [`CacheLayout::stage_dir`].
#[derive(Debug)]
pub struct StagedDir {
    dir: tempfile::TempDir,
    _lock: File,
}

impl StagedDir {
    /// The directory.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl StagedFile {
    /// Where the staged file is, until it is published.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Fsyncs a directory so that a rename or link inside it survives a crash.
pub fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io("sync directory", dir, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_dir_precedence() -> Result<()> {
        let env = |vars: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                vars.iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| (*v).into())
            }
        };
        let all = env(&[
            ("MODEL_PROVISIONER_CACHE", "/mp"),
            ("XDG_CACHE_HOME", "/xdg"),
            ("HOME", "/home/u"),
        ]);
        assert_eq!(cache_dir_from_env(all)?, Path::new("/mp"));
        let xdg = env(&[
            ("MODEL_PROVISIONER_CACHE", ""),
            ("XDG_CACHE_HOME", "/xdg"),
            ("HOME", "/home/u"),
        ]);
        assert_eq!(
            cache_dir_from_env(xdg)?,
            Path::new("/xdg/model-provisioner")
        );
        let relative_xdg = env(&[("XDG_CACHE_HOME", "rel"), ("HOME", "/home/u")]);
        assert_eq!(
            cache_dir_from_env(relative_xdg)?,
            Path::new("/home/u/.cache/model-provisioner")
        );
        assert!(matches!(
            cache_dir_from_env(env(&[])),
            Err(Error::NoCacheDir)
        ));
        Ok(())
    }

    #[test]
    fn resolve_inside_refuses_escapes() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| Error::io("tmp", "", e))?;
        let layout = CacheLayout::new(dir.path())?;
        layout.create_dir(&layout.models_dir())?;
        assert!(
            layout
                .resolve_inside(&layout.models_dir().join("x"))
                .is_ok()
        );
        assert!(matches!(
            layout.resolve_inside(&layout.models_dir().join("../../etc/passwd")),
            Err(Error::OutsideRoot { .. })
        ));
        assert!(matches!(
            layout.resolve_inside(Path::new("/etc/passwd")),
            Err(Error::OutsideRoot { .. })
        ));
        let outside = tempfile::tempdir().map_err(|e| Error::io("tmp", "", e))?;
        std::os::unix::fs::symlink(outside.path(), layout.models_dir().join("evil"))
            .map_err(|e| Error::io("symlink", "", e))?;
        assert!(matches!(
            layout.resolve_inside(&layout.models_dir().join("evil/file")),
            Err(Error::OutsideRoot { .. })
        ));
        Ok(())
    }

    #[test]
    fn staged_blob_is_read_only_and_deduplicated() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| Error::io("tmp", "", e))?;
        let layout = CacheLayout::new(dir.path())?;
        let publish = || -> Result<PathBuf> {
            let mut s = layout.stage()?;
            s.write_all(b"weights")
                .map_err(|e| Error::io("write", "", e))?;
            layout.publish_blob(s.finish()?)
        };
        let blob = publish()?;
        assert_eq!(publish()?, blob);
        assert_eq!(blob, layout.blob_path(&Digest::sha256_of(b"weights")));
        assert!(
            fs::metadata(&blob)
                .map_err(|e| Error::io("stat", "", e))?
                .permissions()
                .readonly()
        );
        assert_eq!(
            fs::read_dir(layout.tmp_dir())
                .map_err(|e| Error::io("ls", "", e))?
                .count(),
            0
        );
        Ok(())
    }

    #[test]
    fn writers_publishing_one_directory_at_once_all_succeed_and_leave_one_whole_copy() -> Result<()>
    {
        let root = tempfile::tempdir().map_err(|e| Error::io("create", Path::new("tmp"), e))?;
        let layout = CacheLayout::new(root.path())?;
        let dest = layout.models_dir().join("http/host/model");
        let barrier = std::sync::Barrier::new(8);
        std::thread::scope(|s| {
            let writers: Vec<_> = (0..8)
                .map(|i| {
                    let (layout, dest, barrier) = (&layout, &dest, &barrier);
                    s.spawn(move || -> Result<()> {
                        let staged = layout.stage_dir()?;
                        for name in ["a.bin", "b.bin"] {
                            let path = staged.path().join(name);
                            fs::write(&path, format!("{name} {i}"))
                                .map_err(|e| Error::io("write", &path, e))?;
                        }
                        barrier.wait();
                        layout.publish_dir(staged, dest)
                    })
                })
                .collect();
            writers
                .into_iter()
                .try_for_each(|w| w.join().expect("a writer panicked"))
        })?;
        // One writer's whole directory stands: both files, from the same writer.
        let a = fs::read_to_string(dest.join("a.bin")).map_err(|e| Error::io("read", &dest, e))?;
        let b = fs::read_to_string(dest.join("b.bin")).map_err(|e| Error::io("read", &dest, e))?;
        assert_eq!(a.split(' ').nth(1), b.split(' ').nth(1));
        let parent = dest.parent().expect("a parent");
        let left: Vec<_> = fs::read_dir(parent)
            .map_err(|e| Error::io("list", parent, e))?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<io::Result<_>>()
            .map_err(|e| Error::io("list", parent, e))?;
        assert_eq!(left, ["model"], "nothing moved aside is left");
        Ok(())
    }
}
