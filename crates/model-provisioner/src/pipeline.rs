//! The one pipeline under every network source. A source only resolves: it turns a reference
//! into a [`Listing`], the model's files at one revision, each with its size, the digest the
//! source states for it and the [`RequestSource`] that fetches it. [`place`] does the rest, the
//! same way for every source:
//!
//! ```text
//! Listing ──▶ free space for what is still to come (ensure_room)
//!         ──▶ each file, several at once:
//!               the store's blob of its stated sha256          (nothing read)
//!             │ else a copy on this machine, checked            (the Hugging Face cache)
//!             │ else the download engine, checked while streaming
//!             └ an archive (a tar layer) unpacked into the model's directory
//!         ──▶ Assembly: the tree digest, held against the expected digest, published in one
//!             rename; every file with a stated digest that matched is vouched for
//! ```
//!
//! The provisioner then reads the model's headers and records it in the catalog. A plain URL
//! and an S3 object are listings of one file.

use std::path::{Path, PathBuf};

use catalog_core::{CatalogEntry, Digest, ModelRef, Provenance, SafeRelPath, StagedFile};

use crate::assemble::{Assembly, Publish};
use crate::error::{Error, Result};
use crate::parallel::{Tee, in_parallel};
use crate::request::{FetchRequest, Fetched};
use mp_progress::{Event, FileTask, Progress};
use mp_transfer::{
    Checksum, Download, Engine, Expected, Planned, RequestSource, ensure_room, partial_key,
};

/// What a source resolved a reference into: the files of one model at one revision, and how
/// the model is published and recorded.
pub struct Listing<'s> {
    /// The label of the model's progress bar (`org/repo`, `registry/repository`, a URL).
    pub label: String,
    /// Where the model's directory is published, under the cache's `models/`; what was there
    /// is replaced.
    pub dest: PathBuf,
    /// The one file that is the artifact by itself (the model's directory when `None`).
    pub select: Option<SafeRelPath>,
    /// The source's name, recorded in provenance (`hf-native`, `oci`, `s3`, `http`).
    pub fetcher: &'static str,
    /// The source's version.
    pub fetcher_version: String,
    /// What the reference resolved to (a commit, a manifest digest).
    pub revision: Revision,
    /// The server the bytes come from, when the id does not name it.
    pub origin: Option<String>,
    /// The patterns that selected the files, recorded so a later request can compare.
    pub include: Vec<String>,
    /// The patterns that left files out.
    pub exclude: Vec<String>,
    /// Files placed at once.
    pub parallel: usize,
    /// The engine that downloads what is not on this machine (built only if something is).
    pub engine: &'s Engine,
    /// The files.
    pub files: Vec<ListedFile<'s>>,
    /// What the location says it holds, when it is a copy that `push` or `mirror` made.
    pub claim: Option<Claim>,
    /// Signature bundles the source found beside the files (the Sigstore bundles among an OCI
    /// manifest's referrers), read and bounded, not yet checked: handed on in
    /// [`Fetched::signatures`].
    pub signatures: Vec<Vec<u8>>,
}

/// What a copy made by `push` or `mirror` records about the model it was pushed from (an S3
/// folder's manifest, a registry artifact's `ModelPack` config): what a mirror's copy is held
/// against.
#[derive(Debug, Clone)]
pub struct Claim {
    /// The catalog id of the model that was pushed, if recorded.
    pub id: Option<String>,
    /// Where that model came from: its revision, filters, and every file with its sha256.
    pub provenance: Provenance,
}

impl Claim {
    /// What a pushed folder's manifest says the folder holds, when it records the model's
    /// provenance: what a mirror's copy is held against ([`Listing::claim`]).
    pub fn from_manifest(manifest: crate::object_store::Manifest) -> Option<Claim> {
        Some(Claim {
            id: Some(manifest.id),
            provenance: manifest.provenance?,
        })
    }
}

/// What a reference resolved to, as recorded in the entry's provenance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Revision {
    /// The source names no revision.
    None,
    /// A commit, a manifest digest.
    Named(String),
    /// The `ETag` the one file was downloaded with (a plain URL).
    FileEtag,
}

/// One file of a [`Listing`].
pub struct ListedFile<'s> {
    /// Where it goes in the model's directory. An archive's files go where the archive says;
    /// its `path` only names it in messages when the source states no digest for it.
    pub path: SafeRelPath,
    /// Its size, when the source states it.
    pub size: Option<u64>,
    /// The digest the source states for its bytes, which they are checked against.
    pub stated: Stated,
    /// A checksum the source states beside it (an object store's MD5 or CRC32C), checked as
    /// the bytes stream. It catches damaged bytes; unlike a stated sha256, it vouches for
    /// nothing.
    pub checksum: Option<Checksum>,
    /// The source's `ETag` for it, recorded in the catalog (else the download's).
    pub etag: Option<String>,
    /// What the source says the file is (an OCI layer's media type), recorded in the catalog.
    pub media_type: Option<String>,
    /// A copy on this machine to take first, when it checks out (the Hugging Face cache).
    pub local: Option<LocalCopy>,
    /// Fetches the bytes; `None` when they can only come from the store or `local` (offline).
    pub source: Option<Box<dyn RequestSource + 's>>,
    /// The bytes are an archive whose files are placed, not the file itself.
    pub unpack: Option<Box<dyn Unpack + 's>>,
}

/// The digest a source states for a file's bytes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Stated {
    /// None: the file is checked only against a digest the caller gives for the model.
    #[default]
    Nothing,
    /// Its sha256 (an LFS file, an OCI layer, an S3 checksum, a manifest of ours).
    Sha256(Digest),
    /// Its git blob id, `sha1("blob <len>\0" + bytes)` in hex (a small file the Hub keeps in
    /// git).
    GitBlob(String),
}

impl Stated {
    /// The stated sha256, if that is what is stated.
    pub fn sha256(&self) -> Option<&Digest> {
        match self {
            Stated::Sha256(d) => Some(d),
            _ => None,
        }
    }
}

/// A copy of a file on this machine, outside the cache.
#[derive(Debug, Clone)]
pub struct LocalCopy {
    /// Where it is.
    pub path: PathBuf,
    /// The sha256 the place it sits in claims for it (a Hugging Face cache's blob name), which
    /// its bytes are checked against when the source states none. A claim vouches for nothing.
    pub claimed: Option<Digest>,
}

/// Places the files of an archive (a tar layer) in the model's directory.
pub trait Unpack: Send + Sync {
    /// Unpacks the archive at `blob` (in the store) into `assembly`; returns the paths placed.
    fn unpack(&self, assembly: &Assembly<'_>, blob: &Path) -> Result<Vec<SafeRelPath>>;
}

/// A source of models: it resolves a reference into a [`Listing`], and the pipeline places
/// it. Every source is a [`ModelFetcher`](crate::ModelFetcher).
pub trait Source {
    /// A short name recorded in provenance (`http`, `hf-native`, …).
    fn name(&self) -> &'static str;

    /// The files `req`'s reference names, and how the model is published.
    fn resolve<'s>(&'s self, req: &FetchRequest<'_>) -> Result<Listing<'s>>;

    /// See [`ModelFetcher::complete`](crate::ModelFetcher::complete).
    fn complete(&self, reference: &ModelRef) -> Option<ModelRef> {
        let _ = reference;
        None
    }

    /// See [`ModelFetcher::accepts`](crate::ModelFetcher::accepts).
    fn accepts(&self, entry: &CatalogEntry) -> bool {
        let _ = entry;
        true
    }

    /// The whole of the small object `location` names, at most `limit` bytes (a mirror's ref
    /// object). Only object stores have such objects.
    fn read_small(&self, location: &ModelRef, limit: usize) -> Result<Vec<u8>> {
        let _ = limit;
        Err(Error::Unsupported {
            reference: location.redacted(),
            reason: format!("the `{}` source reads no single objects", self.name()),
            hint: "name a bucket's object (`s3://…`)".to_owned(),
        })
    }

    /// The folder of a bucket `destination` names, for a push into it (see
    /// [`object_store`](crate::object_store)); `None` when this source writes nowhere, the
    /// default. A push to a reference of this source's schemes goes there.
    fn folder<'s>(
        &'s self,
        destination: &ModelRef,
    ) -> Option<Result<Box<dyn crate::object_store::Folder + 's>>> {
        let _ = destination;
        None
    }

    /// Refuses a reference of a registered scheme that it cannot read (see
    /// [`SourceKind::check`](crate::SourceKind::check)).
    ///
    /// # Errors
    ///
    /// When what follows the scheme breaks the source's grammar.
    fn check(
        &self,
        reference: &catalog_core::OtherRef,
    ) -> std::result::Result<(), catalog_core::ParseRefError> {
        let _ = reference;
        Ok(())
    }
}

/// Places every file of `listing` for `req` and publishes the model: see the
/// [module docs](self).
pub fn place(req: &FetchRequest<'_>, listing: Listing<'_>) -> Result<Fetched> {
    let Listing {
        label,
        dest,
        select,
        fetcher,
        fetcher_version,
        revision,
        origin,
        include,
        exclude,
        parallel,
        engine,
        files,
        claim: _,
        signatures,
    } = listing;
    // The reference may name one file, which then is the artifact: a wrong `--digest` fails
    // its download, before anything is written. An archive is never that file: the one named
    // is among what it unpacks.
    let the_artifact = |file: &ListedFile<'_>| {
        files.len() == 1 && file.unpack.is_none() && select.as_ref() == Some(&file.path)
    };
    let plans: Vec<Plan<'_, '_>> = files
        .iter()
        .map(|file| {
            let (id, expected) = if the_artifact(file) {
                (req.id.to_owned(), req.expected.or(file.stated.sha256()))
            } else if file.unpack.is_some() {
                let name = file
                    .stated
                    .sha256()
                    .map_or_else(|| file.path.to_string(), ToString::to_string);
                (format!("{}@{name}", req.id), file.stated.sha256())
            } else {
                (format!("{}/{}", req.id, file.path), file.stated.sha256())
            };
            // A partial file is named by the digest the source states, which every run knows,
            // else by the id (a digest given on one run only must not hide it from the next).
            let key = file.stated.sha256().is_none().then(|| partial_key(&id));
            Plan {
                file,
                id,
                expected,
                key,
            }
        })
        .collect();
    let planned: Vec<Planned<'_>> = plans
        .iter()
        .map(|p| Planned {
            size: p.file.size,
            digest: p.expected,
            key: p.key.as_deref(),
        })
        .collect();
    ensure_room(req.layout, req.id, &planned)?;
    let assembly = Assembly::new(req.layout)?;
    let one = plans.len() == 1;
    let overall = resolved(req, &label, &plans);
    let placer = Placer {
        req,
        engine,
        assembly: &assembly,
    };
    let results = in_parallel(plans, parallel, |plan| {
        if one {
            return placer.place(&plan, &*overall);
        }
        let both = Tee {
            file: plan.start(req),
            overall: &*overall,
        };
        let result = placer.place(&plan, &both);
        both.file.finish();
        result
    });
    overall.finish();
    let done = results?;
    let bytes_read = done.iter().map(|p| p.transferred).sum();
    let resolved_revision = match revision {
        Revision::None => None,
        Revision::Named(r) => Some(r),
        Revision::FileEtag => done.first().and_then(|p| p.etag.clone()),
    };
    req.reporter.event(&Event::Verifying { id: req.id });
    let mut fetched = assembly.publish(Publish {
        id: req.id,
        dest,
        select: select.as_ref(),
        expected: req.expected,
        fetcher,
        fetcher_version,
        resolved_revision,
        origin,
        include,
        exclude,
        bytes_read,
    })?;
    if one && select.is_some() {
        // One file is the artifact: "no digest was given" says all there is to say.
        fetched.unvouched.clear();
    }
    fetched.signatures = signatures;
    Ok(fetched)
}

/// Says that `req` resolved into `plans`, and starts what shows the model's progress: the file,
/// for a model of one file; their total, for a model of several (each file shows its own).
fn resolved(req: &FetchRequest<'_>, label: &str, plans: &[Plan<'_, '_>]) -> Box<dyn Progress> {
    let total = plans.iter().filter_map(|p| p.file.size).sum();
    req.reporter.event(&Event::Resolved {
        id: req.id,
        files: plans.len(),
        total_bytes: plans.iter().all(|p| p.file.size.is_some()).then_some(total),
    });
    match plans {
        [one] => req.reporter.start_file(&FileTask {
            id: req.id,
            file: one.file.path.as_str(),
            label,
            size: one.file.size,
        }),
        _ => req.reporter.start(label, Some(total)),
    }
}

/// One file as the pipeline places it: the id its download names, and what its bytes must be.
struct Plan<'f, 's> {
    file: &'f ListedFile<'s>,
    id: String,
    expected: Option<&'f Digest>,
    key: Option<String>,
}

impl Plan<'_, '_> {
    /// Starts what shows this file's progress.
    fn start(&self, req: &FetchRequest<'_>) -> Box<dyn Progress> {
        req.reporter.start_file(&FileTask {
            id: req.id,
            file: self.file.path.as_str(),
            label: &self.label(),
            size: self.file.size,
        })
    }

    fn label(&self) -> String {
        match (&self.file.unpack, self.file.stated.sha256()) {
            (Some(_), Some(digest)) => digest.to_string(),
            _ => self.file.path.to_string(),
        }
    }
}

/// What placing one file did.
struct Placed {
    /// Bytes downloaded.
    transferred: u64,
    /// The `ETag` recorded.
    etag: Option<String>,
}

/// Places files in one assembly.
struct Placer<'a, 'r> {
    req: &'a FetchRequest<'r>,
    engine: &'a Engine,
    assembly: &'a Assembly<'r>,
}

impl Placer<'_, '_> {
    /// One file: from the store, a copy on this machine, or the network, in that order.
    fn place(&self, plan: &Plan<'_, '_>, progress: &dyn Progress) -> Result<Placed> {
        let file = plan.file;
        let layout = self.req.layout;
        if let Some(sha) = self.known(file)
            && layout.blob_path(&sha).is_file()
        {
            let size = match &file.unpack {
                Some(_) => {
                    progress.advance(file.size.unwrap_or(0));
                    self.unpacked(file, &sha)?;
                    0
                }
                None => {
                    let size = self
                        .assembly
                        .place_blob(&file.path, sha, file.etag.clone())?;
                    self.placed(file, &file.path);
                    size
                }
            };
            progress.advance(size);
            tracing::debug!(file = %file.path, "reused a blob already in the store");
            return Ok(Placed {
                transferred: 0,
                etag: file.etag.clone(),
            });
        }
        if let Some(local) = &file.local
            && file.unpack.is_none()
            && Self::git_blob_matches(file, &local.path)
        {
            let claimed = file.stated.sha256().or(local.claimed.as_ref());
            let copied = self.assembly.copy_checked(
                &file.path,
                &local.path,
                claimed,
                file.etag.clone(),
                progress,
            );
            match copied {
                Ok(()) => {
                    self.placed(file, &file.path);
                    tracing::info!(file = %file.path, copy = %local.path.display(), "reused a copy on this machine");
                    return Ok(Placed {
                        transferred: 0,
                        etag: file.etag.clone(),
                    });
                }
                Err(e) if e.is_verification_failure() && file.source.is_some() => {
                    progress.restart();
                    tracing::warn!(file = %file.path, error = %e, "the copy on this machine is damaged; downloading");
                }
                Err(e) => return Err(e),
            }
        }
        let Some(source) = &file.source else {
            return Err(Error::AssemblyIncomplete {
                id: self.req.id.to_owned(),
                path: file.path.to_string(),
            });
        };
        let downloaded = self.engine.get()?.fetch(
            layout,
            &Download {
                source: &**source,
                expected: Expected {
                    size: file.size,
                    digest: plan.expected,
                    checksum: file.checksum.as_ref(),
                },
                id: &plan.id,
                key: plan.key.as_deref(),
            },
            progress,
        )?;
        let staged = downloaded.staged;
        check_stated(&plan.id, &file.stated, &staged)?;
        let etag = file.etag.clone().or(downloaded.etag);
        match &file.unpack {
            Some(_) => {
                let digest = staged.digest.clone();
                layout.publish_blob(staged)?;
                self.unpacked(file, &digest)?;
            }
            None => {
                self.assembly
                    .place_staged(&file.path, staged, etag.clone())?;
                self.placed(file, &file.path);
            }
        }
        Ok(Placed {
            transferred: downloaded.transferred,
            etag,
        })
    }

    /// The sha256 `file`'s bytes are known to have: the stated one, or, for a file stated by
    /// its git blob id, the one recorded for the same path and id by the entry made before.
    fn known(&self, file: &ListedFile<'_>) -> Option<Digest> {
        match &file.stated {
            Stated::Sha256(d) => Some(d.clone()),
            Stated::GitBlob(oid) => {
                let previous = self.req.previous?.provenance.as_ref()?;
                let before = previous
                    .files
                    .iter()
                    .find(|f| f.path == file.path.as_str())?;
                (before.etag.as_ref() == Some(oid))
                    .then(|| before.digest.clone())
                    .flatten()
            }
            Stated::Nothing => None,
        }
    }

    /// Whether a copy on this machine has the git blob id stated for `file`, when that is what
    /// is stated; a copy that differs is passed over.
    fn git_blob_matches(file: &ListedFile<'_>, path: &Path) -> bool {
        let Stated::GitBlob(oid) = &file.stated else {
            return true;
        };
        match git_blob_id(path) {
            Ok(computed) if &computed == oid => true,
            Ok(_) => {
                tracing::warn!(file = %file.path, "the copy on this machine is not the source's; downloading");
                false
            }
            Err(_) => false,
        }
    }

    /// Records what the source said of a file placed at `path`.
    fn placed(&self, file: &ListedFile<'_>, path: &SafeRelPath) {
        if let Some(media_type) = &file.media_type {
            self.assembly.set_media_type(path, media_type);
        }
        if file.stated != Stated::Nothing {
            self.assembly.vouch(path);
        }
    }

    /// Unpacks the archive `file` whose blob of `digest` is in the store.
    fn unpacked(&self, file: &ListedFile<'_>, digest: &Digest) -> Result<()> {
        let Some(unpack) = &file.unpack else {
            return Ok(());
        };
        let blob = self.req.layout.blob_path(digest);
        let paths = unpack.unpack(self.assembly, &blob)?;
        tracing::debug!(archive = %digest, files = paths.len(), "unpacked an archive");
        // Unpacked from bytes checked against the digest the source states.
        for path in &paths {
            self.placed(file, path);
        }
        Ok(())
    }
}

/// Checks a downloaded file against the digest its source states (the engine checked the one it
/// was asked for, which may be the caller's).
fn check_stated(id: &str, digest: &Stated, staged: &StagedFile) -> Result<()> {
    match digest {
        Stated::Nothing => Ok(()),
        Stated::Sha256(d) => Error::check_digest(id, Some(d), &staged.digest).map(drop),
        Stated::GitBlob(oid) => {
            let computed = git_blob_id(staged.path()).map_err(|e| Error::read(staged.path(), e))?;
            if &computed == oid {
                Ok(())
            } else {
                Err(Error::GitBlobMismatch {
                    file: id.to_owned(),
                    expected: oid.clone(),
                    computed,
                })
            }
        }
    }
}

/// The git blob id of a file's bytes: `sha1("blob <len>\0" + bytes)`, in hex.
fn git_blob_id(path: &Path) -> std::io::Result<String> {
    use sha1::Digest as _;
    use std::io::Read as _;
    let mut file = std::fs::File::open(path)?;
    let len = file.metadata()?.len();
    let mut hasher = sha1::Sha1::new();
    hasher.update(format!("blob {len}\0").as_bytes());
    let mut buf = vec![0u8; catalog_core::HASH_BUF_SIZE];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(catalog_core::to_hex(&hasher.finalize()))
}

impl std::fmt::Debug for ListedFile<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ListedFile")
            .field("path", &self.path)
            .field("size", &self.size)
            .field("stated", &self.stated)
            .field("etag", &self.etag)
            .field("media_type", &self.media_type)
            .field("local", &self.local)
            .field(
                "source",
                &self.source.as_ref().map(|s| s.display().to_owned()),
            )
            .field("unpack", &self.unpack.is_some())
            .finish()
    }
}

impl std::fmt::Debug for Listing<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Listing")
            .field("label", &self.label)
            .field("dest", &self.dest)
            .field("select", &self.select)
            .field("fetcher", &self.fetcher)
            .field("revision", &self.revision)
            .field("files", &self.files)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use catalog_core::CacheLayout;

    use super::*;
    use mp_progress::NoReporter;
    use mp_transfer::DownloadConfig;

    type TestResult = std::result::Result<(), Box<dyn std::error::Error>>;

    /// A cache, a directory of copies outside it, and an engine that is never built: every
    /// file of these listings is on this machine.
    struct Fixture {
        _dir: tempfile::TempDir,
        layout: CacheLayout,
        copies: PathBuf,
        engine: Engine,
    }

    impl Fixture {
        fn new() -> std::result::Result<Self, Box<dyn std::error::Error>> {
            let dir = tempfile::tempdir()?;
            std::fs::create_dir(dir.path().join("cache"))?;
            let layout = CacheLayout::new(dir.path().join("cache"))?;
            let copies = dir.path().join("copies");
            std::fs::create_dir(&copies)?;
            Ok(Fixture {
                _dir: dir,
                layout,
                copies,
                engine: Engine::new(DownloadConfig::default()),
            })
        }

        /// A file outside the cache holding `bytes`, offered as a local copy of `path`.
        fn copy(&self, path: &str, bytes: &[u8], stated: Stated) -> ListedFile<'_> {
            let at = self.copies.join(path.replace('/', "_"));
            std::fs::write(&at, bytes).expect("write a copy");
            ListedFile {
                path: path.parse().expect("a safe path"),
                size: Some(bytes.len() as u64),
                stated,
                checksum: None,
                etag: None,
                media_type: Some("text/plain".to_owned()),
                local: Some(LocalCopy {
                    path: at,
                    claimed: None,
                }),
                source: None,
                unpack: None,
            }
        }

        fn listing<'s>(&'s self, files: Vec<ListedFile<'s>>) -> Listing<'s> {
            Listing {
                label: "test/model".to_owned(),
                dest: self.layout.models_dir().join("test").join("model"),
                select: None,
                fetcher: "test",
                fetcher_version: "1".to_owned(),
                revision: Revision::Named("abc".to_owned()),
                origin: None,
                include: Vec::new(),
                exclude: Vec::new(),
                parallel: 2,
                engine: &self.engine,
                files,
                claim: None,
                signatures: Vec::new(),
            }
        }

        fn request(&self) -> FetchRequest<'_> {
            self.request_with(None)
        }

        fn request_with<'a>(&'a self, expected: Option<&'a Digest>) -> FetchRequest<'a> {
            static REFERENCE: std::sync::OnceLock<ModelRef> = std::sync::OnceLock::new();
            FetchRequest {
                reference: REFERENCE.get_or_init(|| "hf:test/model".parse().expect("a reference")),
                id: "test:model",
                expected,
                layout: &self.layout,
                reporter: &NoReporter,
                previous: None,
            }
        }
    }

    /// The git blob id of `bytes`, as a source states it.
    fn git_blob(bytes: &[u8]) -> String {
        use sha1::Digest as _;
        let mut hasher = sha1::Sha1::new();
        hasher.update(format!("blob {}\0", bytes.len()).as_bytes());
        hasher.update(bytes);
        catalog_core::to_hex(&hasher.finalize())
    }

    #[test]
    fn files_with_a_stated_digest_are_vouched_for_and_the_others_are_named() -> TestResult {
        let f = Fixture::new()?;
        let files = vec![
            f.copy(
                "w.bin",
                b"weights",
                Stated::Sha256(Digest::sha256_of(b"weights")),
            ),
            f.copy("config.json", b"{}", Stated::GitBlob(git_blob(b"{}"))),
            f.copy("sub/README.md", b"read me", Stated::Nothing),
        ];
        let fetched = place(&f.request(), f.listing(files))?;
        assert_eq!(fetched.unvouched, ["sub/README.md"]);
        assert_eq!(fetched.source_digest, None, "one file is not vouched for");
        let p = &fetched.provenance;
        assert_eq!(p.resolved_revision.as_deref(), Some("abc"));
        let paths: Vec<&str> = p.files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(paths, ["config.json", "sub/README.md", "w.bin"]);
        assert!(
            p.files
                .iter()
                .all(|f| f.media_type.as_deref() == Some("text/plain"))
        );
        assert_eq!(
            std::fs::read(fetched.local_path.join("sub/README.md"))?,
            b"read me"
        );
        assert_eq!(fetched.bytes_read, 0, "nothing came over the network");
        Ok(())
    }

    #[test]
    fn every_file_vouched_for_makes_the_model_pass_without_a_given_digest() -> TestResult {
        let f = Fixture::new()?;
        let files = vec![
            f.copy("a.bin", b"a", Stated::Sha256(Digest::sha256_of(b"a"))),
            f.copy("b.json", b"b", Stated::GitBlob(git_blob(b"b"))),
        ];
        let fetched = place(&f.request(), f.listing(files))?;
        assert!(fetched.unvouched.is_empty());
        assert_eq!(fetched.source_digest, fetched.computed);
        Ok(())
    }

    #[test]
    fn a_copy_that_is_not_what_the_source_states_is_refused_and_nothing_is_published() -> TestResult
    {
        let f = Fixture::new()?;
        let wrong = vec![f.copy(
            "w.bin",
            b"tampered",
            Stated::Sha256(Digest::sha256_of(b"weights")),
        )];
        let err = place(&f.request(), f.listing(wrong)).unwrap_err();
        assert!(err.is_verification_failure(), "{err}");
        // A copy whose git blob id differs is passed over; with nowhere else to get it from,
        // the model is incomplete.
        let other = vec![f.copy("c.json", b"{\"a\":1}", Stated::GitBlob(git_blob(b"{}")))];
        let err = place(&f.request(), f.listing(other)).unwrap_err();
        assert!(
            matches!(&err, Error::AssemblyIncomplete { path, .. } if path == "c.json"),
            "{err:?}"
        );
        assert!(
            !f.layout.models_dir().join("test").exists(),
            "nothing published"
        );
        Ok(())
    }

    #[test]
    fn a_blob_in_the_store_is_placed_without_reading_the_copy() -> TestResult {
        let f = Fixture::new()?;
        let digest = Digest::sha256_of(b"weights");
        let first = vec![f.copy("w.bin", b"weights", Stated::Sha256(digest.clone()))];
        place(&f.request(), f.listing(first))?;
        // The copy is gone; the store still has the blob its stated digest names.
        let mut again = f.copy("w.bin", b"weights", Stated::Sha256(digest));
        again.local = None;
        let fetched = place(&f.request(), f.listing(vec![again]))?;
        assert_eq!(std::fs::read(fetched.local_path.join("w.bin"))?, b"weights");
        Ok(())
    }

    #[test]
    fn one_selected_file_is_the_artifact_checked_against_the_given_digest() -> TestResult {
        let f = Fixture::new()?;
        let file = || vec![f.copy("m.gguf", b"GGUF", Stated::Nothing)];
        let mut listing = f.listing(file());
        listing.select = Some("m.gguf".parse()?);
        let fetched = place(&f.request(), listing)?;
        assert_eq!(
            fetched.local_path,
            f.layout.models_dir().join("test/model/m.gguf")
        );
        assert!(fetched.unvouched.is_empty(), "one file needs no naming");

        let wrong = Digest::sha256_of(b"other");
        let mut listing = f.listing(file());
        listing.select = Some("m.gguf".parse()?);
        let err = place(&f.request_with(Some(&wrong)), listing).unwrap_err();
        assert!(
            matches!(&err, Error::DigestMismatch(m) if m.id == "test:model"),
            "{err:?}"
        );
        Ok(())
    }
}
