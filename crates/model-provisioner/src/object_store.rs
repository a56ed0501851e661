//! What every object store shares (`s3://`, and any bucket a registered source reads): a model
//! pushed into a folder as one object per file and a [`Manifest`] of their sha256s, written
//! last; a pull of such a folder held against its manifest; and the paths of a folder's objects.
//!
//! ```text
//! <bucket>/<prefix>/
//! ├── <file>                     one object per file of the model, under its relative path
//! ├── <dir>/<file>               (a model that is one file is one object, named by its name)
//! ├── model.sig                  `push --sign`: the bundle over the files above, in the manifest
//! └── .model-provisioner.json    the manifest: written last, so never there without its files
//! ```
//!
//! A store writes objects ([`Folder`], each file handed over as an [`Upload`]); the push decides
//! what goes, in what order, and what the manifest says, the same for every store. A source
//! that writes its store says so with [`Source::folder`](crate::pipeline::Source::folder): a
//! push to its references then goes there, as `s3://` pushes go to S3. Nothing is published that the catalog does not vouch
//! for: a file whose bytes do not match its sha256 is never completed as an object (the store's
//! upload of it fails, see `crate::upload`), and then no manifest is written.
//!
//! The manifest (`{"version":1,"id","digest","files":[{"path","size","sha256"}],"provenance"}`)
//! states each file's sha256 whatever the upload, so a pull of the folder is verified even where
//! the store keeps no sha256 of its own.

use std::collections::HashMap;
use std::sync::Arc;

use catalog_core::{CacheLayout, CatalogEntry, Digest, Provenance, SafeRelPath, TreeDigest};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::model_files::{ModelFile, ModelFiles, model_files};
use crate::sign::Sign;
use mp_progress::{FileTask, Progress, Reporter};

/// `text` as the endpoint of a store or hub (see
/// [`ProvisionerBuilder::endpoint_url`](crate::ProvisionerBuilder::endpoint_url)), when it is
/// `http(s)://host[:port]` with nothing else: no credentials, path or query.
pub fn parse_endpoint(text: &str) -> Option<url::Url> {
    let url = url::Url::parse(text.trim()).ok()?;
    let plain = matches!(url.scheme(), "http" | "https")
        && url.host_str().is_some_and(|h| !h.is_empty())
        && url.username().is_empty()
        && url.password().is_none()
        && url.query().is_none()
        && matches!(url.path(), "" | "/");
    plain.then_some(url)
}

/// The name of the manifest object inside a pushed folder: `<prefix>.model-provisioner.json`.
pub const MANIFEST_NAME: &str = ".model-provisioner.json";

/// The manifest format written, and the only one read.
const MANIFEST_VERSION: u32 = 1;

/// The largest manifest a pull reads: a model of 100,000 files stays far below it.
pub const MANIFEST_LIMIT: usize = 16 << 20;

/// What a pushed folder says about itself: the model and each file's sha256.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// The format, `1`.
    pub version: u32,
    /// The catalog id of the model that was pushed.
    pub id: String,
    /// The model's digest: the tree digest of its files, or the one file's sha256.
    pub digest: Digest,
    /// Every file, by its path under the folder.
    pub files: Vec<ManifestFile>,
    /// Where the model came from before it was pushed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provenance: Option<Provenance>,
}

/// One file of a [`Manifest`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestFile {
    /// Path under the folder, `/`-separated.
    pub path: String,
    /// Length in bytes.
    pub size: u64,
    /// The file's sha256.
    pub sha256: Digest,
}

impl Manifest {
    /// The manifest `body` holds (a folder's [`MANIFEST_NAME`] object, read whole, at most
    /// [`MANIFEST_LIMIT`] bytes).
    ///
    /// # Errors
    ///
    /// What is wrong with it, in words: it does not parse, or is of another version.
    pub fn parse(body: &[u8]) -> std::result::Result<Manifest, String> {
        let manifest: Manifest =
            serde_json::from_slice(body).map_err(|e| format!("it does not parse: {e}"))?;
        if manifest.version != MANIFEST_VERSION {
            return Err(format!(
                "it is version {}, and only version {MANIFEST_VERSION} is read",
                manifest.version
            ));
        }
        Ok(manifest)
    }

    /// The sha256 it states for each of `listed`, the paths of a folder's objects, for the
    /// listing to state ([`Stated::Sha256`](crate::pipeline::Stated::Sha256)).
    ///
    /// # Errors
    ///
    /// The listing and the manifest must name the same files: an object the manifest does not
    /// name, or a file it names that is not listed, refuses the folder; the error says which,
    /// in words.
    pub fn vouch<'p>(
        &self,
        listed: impl IntoIterator<Item = &'p SafeRelPath>,
    ) -> std::result::Result<HashMap<&'p SafeRelPath, Digest>, String> {
        let mut stated: HashMap<&str, &ManifestFile> =
            self.files.iter().map(|f| (f.path.as_str(), f)).collect();
        let mut vouched = HashMap::new();
        for path in listed {
            let Some(file) = stated.remove(path.as_str()) else {
                return Err(format!("`{path}` is in the folder but not in its manifest"));
            };
            vouched.insert(path, file.sha256.clone());
        }
        if let Some(missing) = stated.keys().min() {
            return Err(format!(
                "`{}` is in the folder's manifest but not in the folder",
                crate::error::printable(missing)
            ));
        }
        Ok(vouched)
    }
}

/// A folder of a bucket a push writes into, as its store writes objects. Each call is one
/// object, retried as the store's requests are.
pub trait Folder {
    /// What the folder is, for messages and the push's result: `s3://bucket/prefix/`.
    fn describe(&self) -> String;

    /// Uploads `file` as the object `name` in the folder (its path in the model), reporting to
    /// `progress`. Its [body](Upload::body) is read once and hashed on its way out; a file whose
    /// bytes no longer match its sha256 must never be completed as an object, which the body
    /// ensures by failing short of its end.
    ///
    /// # Errors
    ///
    /// The store's refusal, a transport failure, or the reason the body stopped
    /// ([`UploadCheck::take`]), which comes first.
    fn put_file(&self, name: &str, file: &Upload<'_>, progress: &Arc<dyn Progress>) -> Result<()>;

    /// Writes `body` as the object `name` in the folder.
    ///
    /// # Errors
    ///
    /// The store's refusal, or a transport failure.
    fn put_bytes(&self, name: &str, body: &[u8]) -> Result<()>;
}

/// How a push cuts a large file: a file of [`from`](Self::from) bytes or more goes up in parts
/// of [`size`](Self::size) bytes (the parts of an `s3://` multipart upload, `az://` blocks, the
/// chunks of a `gs://` resumable upload), each sent and retried on its own; a smaller one in one
/// request. A store may make the parts other than asked, to stay within its limits (S3's parts
/// of 5 MiB to 5 GiB and 10,000 an object, Azure's 50,000 blocks a blob, Cloud Storage's chunks
/// of a multiple of 256 KiB), and sends a file in parts that one request cannot write whatever
/// `from` says. Each store has its own default ([`ProvisionerBuilder::upload_parts`]
/// sets another, as a test does to push a few MiB in parts).
///
/// [`ProvisionerBuilder::upload_parts`]: crate::ProvisionerBuilder::upload_parts
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartSizes {
    /// The size from which a file goes up in parts.
    pub from: u64,
    /// The size of a part.
    pub size: u64,
}

/// A file of a model on its way to a store: read once, in order, and hashed as it goes.
#[derive(Debug)]
pub struct Upload<'a> {
    file: &'a ModelFile,
}

/// Why an [`Upload`]'s body stopped before its end: the file's bytes no longer match its sha256,
/// or it could not be read.
#[derive(Clone)]
pub struct UploadCheck(crate::upload::ReadCheck);

impl std::fmt::Debug for UploadCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UploadCheck").finish_non_exhaustive()
    }
}

impl UploadCheck {
    /// The reason the body stopped short, once: report it instead of the failed request, and do
    /// not retry it.
    pub fn take(&self) -> Option<Error> {
        self.0.take()
    }
}

/// The pieces a body is read and sent in, and how many are read ahead.
const BODY_PIECE: u64 = 2 << 20;
const BODY_AHEAD: usize = 4;

impl<'a> Upload<'a> {
    pub(crate) fn new(file: &'a ModelFile) -> Self {
        Upload { file }
    }

    #[cfg(any(feature = "s3", feature = "azure", feature = "gcs"))]
    pub(crate) fn file(&self) -> &'a ModelFile {
        self.file
    }

    /// Its path in the model.
    pub fn path(&self) -> &str {
        self.file.rel.as_str()
    }

    /// Its length in bytes.
    pub fn size(&self) -> u64 {
        self.file.size
    }

    /// The sha256 its bytes must have: the catalog's.
    pub fn sha256(&self) -> &Digest {
        &self.file.digest
    }

    /// The file as a request body of exactly [`size`](Self::size) bytes, read from disk in
    /// pieces no faster than `rate` allows, each hashed, with `progress` advanced as they go.
    /// The last piece is sent only when the whole file matched its sha256; otherwise the body
    /// fails short of its end, and the returned check says why. Each attempt of a request needs
    /// a body of its own.
    pub fn body(
        &self,
        progress: Arc<dyn Progress>,
        rate: Option<&mp_transfer::RateLimit>,
    ) -> (reqwest::Body, UploadCheck) {
        let pieces = crate::upload::read_pieces(
            self.file,
            BODY_PIECE,
            BODY_AHEAD,
            crate::upload::Hash::Each,
            rate,
        );
        let check = UploadCheck(pieces.check().clone());
        (pieces.into_body(progress), check)
    }
}

/// What a push into a folder did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Pushed {
    /// Files uploaded (the manifest not counted).
    pub(crate) files: usize,
    /// Bytes of those files sent.
    pub(crate) bytes_uploaded: u64,
    /// The manifest's place: the folder's description and [`MANIFEST_NAME`].
    pub(crate) manifest: String,
}

/// Uploads the model of `entry` into `folder`, each file under its path, then, when pushes are
/// signed, the bundle `model.sig` over those files, then the [manifest](Manifest) as
/// [`MANIFEST_NAME`], which a later pull of the folder verifies every file (the bundle too)
/// against. Progress is reported per file.
///
/// Every file's sha256 (recorded by the catalog, or the model's own digest for a model of one
/// file; else hashed first) must give the model's digest; a file whose bytes do not match its
/// sha256 fails its upload, and then no bundle and no manifest are written. The bundle signs
/// the catalog's sha256s of the files pushed: no file is hashed again for it.
pub(crate) fn push(
    folder: &dyn Folder,
    layout: &CacheLayout,
    entry: &CatalogEntry,
    reporter: &dyn Reporter,
    sign: &Sign,
) -> Result<Pushed> {
    let ModelFiles { files, digest, .. } = model_files(layout, entry, reporter)?;
    let listed = files.len();
    let files: Vec<ModelFile> = files
        .into_iter()
        .filter(|f| {
            // The manifest of the folder the model came from: this push writes a new one; and
            // the old signature of a model this push signs again.
            let replaced =
                f.rel.as_str() == MANIFEST_NAME || (sign.is_on() && f.rel.as_str() == Sign::FILE);
            if replaced {
                tracing::warn!(path = %f.rel, "not pushing an old manifest or signature");
            }
            !replaced
        })
        .collect();
    let bundle = sign.bundle(&entry.id, &files)?;
    let mut stated: Vec<ManifestFile> = files
        .iter()
        .map(|f| ManifestFile {
            path: f.rel.as_str().to_owned(),
            size: f.size,
            sha256: f.digest.clone(),
        })
        .collect();
    if let Some(bundle) = &bundle {
        stated.push(ManifestFile {
            path: Sign::FILE.to_owned(),
            size: bundle.len() as u64,
            sha256: Digest::sha256_of(bundle),
        });
    }
    let manifest = Manifest {
        version: MANIFEST_VERSION,
        id: entry.id.clone(),
        // What a pull of the folder computes: the tree of the files it holds.
        digest: if stated.len() == listed && bundle.is_none() {
            digest
        } else {
            tree_digest(&stated)
        },
        files: stated,
        provenance: entry.provenance.clone(),
    };
    let manifest_body = serde_json::to_vec_pretty(&manifest).map_err(|e| {
        Error::Transfer(mp_transfer::Error::Setup {
            what: "write the manifest",
            source: Box::new(e),
        })
    })?;
    let mut bytes_uploaded = 0;
    for file in &files {
        let progress: Arc<dyn Progress> = Arc::from(reporter.start_file(&FileTask {
            id: &entry.id,
            file: file.rel.as_str(),
            label: file.rel.as_str(),
            size: Some(file.size),
        }));
        let result = folder.put_file(file.rel.as_str(), &Upload::new(file), &progress);
        progress.finish();
        result?;
        bytes_uploaded += file.size;
        tracing::debug!(folder = %folder.describe(), file = %file.rel, size = file.size, "uploaded");
    }
    if let Some(bundle) = &bundle {
        folder.put_bytes(Sign::FILE, bundle)?;
    }
    folder.put_bytes(MANIFEST_NAME, &manifest_body)?;
    Ok(Pushed {
        files: files.len(),
        bytes_uploaded,
        manifest: format!("{}{MANIFEST_NAME}", folder.describe()),
    })
}

/// The tree digest of `files`.
fn tree_digest(files: &[ManifestFile]) -> Digest {
    files
        .iter()
        .map(|f| (f.path.as_str(), f.sha256.clone()))
        .collect::<TreeDigest>()
        .finish()
}

/// Where the object `key` goes in the folder `prefix`: its path under the prefix, checked
/// (`..`, absolute paths, empty segments, backslashes and control characters are refused, and
/// refuse the whole folder). `None` for what is no file: a key outside the prefix, or a
/// zero-byte "folder" marker ending with `/`.
///
/// # Errors
///
/// [`Error::HostileName`] for a key whose path under the prefix is not a safe relative path.
pub fn relative_path(prefix: &str, key: &str) -> Result<Option<SafeRelPath>> {
    let Some(rest) = key.strip_prefix(prefix) else {
        return Ok(None);
    };
    if rest.is_empty() || rest.ends_with('/') {
        return Ok(None);
    }
    Ok(Some(SafeRelPath::new(rest.to_owned())?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_become_safe_paths_under_the_prefix_or_refuse_the_folder() {
        let rel = |key: &str| relative_path("repo/", key);
        assert_eq!(
            rel("repo/sub/model.gguf")
                .ok()
                .flatten()
                .map(|p| p.to_string()),
            Some("sub/model.gguf".to_owned())
        );
        assert!(matches!(rel("other/x"), Ok(None)));
        assert!(matches!(rel("repo/dir/"), Ok(None)), "a folder marker");
        for hostile in [
            "repo/../x",
            "repo/a/../../x",
            "repo//abs",
            "repo/a//b",
            "repo/a\\b",
            "repo/a\u{1}b",
            "repo/./x",
        ] {
            assert!(
                matches!(rel(hostile), Err(Error::HostileName { .. })),
                "{hostile:?}"
            );
        }
    }

    fn manifest(paths: &[&str]) -> Manifest {
        Manifest {
            version: 1,
            id: "s3://b/m/".into(),
            digest: Digest::sha256_of(b"tree"),
            files: paths
                .iter()
                .map(|p| ManifestFile {
                    path: (*p).to_owned(),
                    size: 1,
                    sha256: Digest::sha256_of(p.as_bytes()),
                })
                .collect(),
            provenance: None,
        }
    }

    #[test]
    fn a_manifest_vouches_for_exactly_the_listed_files() {
        let paths: Vec<SafeRelPath> = ["a.bin", "sub/b.bin"]
            .iter()
            .map(|p| SafeRelPath::new((*p).to_owned()).unwrap())
            .collect();
        let vouched = manifest(&["sub/b.bin", "a.bin"]).vouch(&paths).unwrap();
        assert_eq!(vouched[&paths[0]], Digest::sha256_of(b"a.bin"));
        let extra = manifest(&["a.bin"]).vouch(&paths).unwrap_err();
        assert!(extra.contains("`sub/b.bin` is in the folder but not in its manifest"));
        let missing = manifest(&["a.bin", "sub/b.bin", "c.bin"])
            .vouch(&paths)
            .unwrap_err();
        assert!(missing.contains("`c.bin` is in the folder's manifest but not in the folder"));
    }

    #[test]
    fn the_manifest_reads_back_as_written() {
        let written = manifest(&["a/b.bin"]);
        let text = serde_json::to_string(&written).unwrap();
        assert!(text.contains(r#""sha256":"sha256:"#), "{text}");
        assert_eq!(Manifest::parse(text.as_bytes()), Ok(written));
    }

    #[test]
    fn a_manifest_of_another_version_or_no_json_is_refused_in_words() {
        let body = serde_json::to_vec(&Manifest {
            version: 2,
            ..manifest(&[])
        })
        .unwrap();
        assert!(Manifest::parse(&body).unwrap_err().contains("version 2"));
        assert!(
            Manifest::parse(b"{")
                .unwrap_err()
                .contains("does not parse")
        );
    }
}
