//! What a fetch is asked for and what it produces: the data that passes between the
//! provisioner, its fetchers, the pipeline and the assembly.

use std::path::PathBuf;

use catalog_core::{CacheLayout, CatalogEntry, Digest, Fingerprint, ModelRef, Provenance, Storage};

use crate::error::Error;
use mp_progress::Reporter;

/// Files of one model fetched at once, unless a setting says otherwise (`--parallel-files`).
pub(crate) const PARALLEL_FILES: usize = 4;

/// What a fetcher is asked for.
#[derive(Debug)]
pub struct FetchRequest<'a> {
    /// The parsed reference.
    pub reference: &'a ModelRef,
    /// Its catalog id.
    pub id: &'a str,
    /// The digest the artifact must have, when the caller knows it.
    pub expected: Option<&'a Digest>,
    /// The cache directory, for staging and publishing.
    pub layout: &'a CacheLayout,
    /// Where progress goes.
    pub reporter: &'a dyn Reporter,
    /// The catalog's entry for this id, if there is one (a fetcher may reuse its files).
    pub previous: Option<&'a CatalogEntry>,
}

/// What a fetcher produced: an artifact on disk, ready to be registered.
#[derive(Debug, Clone)]
pub struct Fetched {
    /// The file or directory to hand out.
    pub local_path: PathBuf,
    /// Whether the cache owns it.
    pub storage: Storage,
    /// Total size.
    pub size_bytes: u64,
    /// The digest of the bytes, when they were hashed (always when a digest was expected).
    pub computed: Option<Digest>,
    /// The artifact's fingerprint as registered.
    pub fingerprint: Fingerprint,
    /// Bytes read or transferred to produce it (0 when nothing was read).
    pub bytes_read: u64,
    /// Where it came from.
    pub provenance: Provenance,
    /// The digest the source itself stated for the artifact, which its bytes were checked
    /// against while fetched (an S3 object's `x-amz-checksum-sha256`, a model whose every file
    /// came with its sha256 from a registry). Recorded as the entry's expected digest when the
    /// caller gave none, so that the entry passes verification.
    pub source_digest: Option<Digest>,
    /// The files of a model of several files that no source stated a digest for, so that the
    /// model is `warn` without a digest from the caller; the output names them.
    pub unvouched: Vec<String>,
    /// Signature bundles the source found apart from the model's files (an OCI manifest's
    /// referrers), which the model's signature check considers when it has no `model.sig`.
    pub signatures: Vec<Vec<u8>>,
}

/// The error for references a fetcher cannot handle in this build, naming what is needed.
pub fn unsupported(reference: &ModelRef) -> Error {
    let (reason, hint) = match reference {
        ModelRef::Hf(_) => (
            "this build has no Hugging Face support (the `hf` cargo feature is off)",
            "build with `--features hf`, or download the file (e.g. `hf download`) and pass its local path",
        ),
        ModelRef::Http(_) => (
            "this build has no HTTP support (the `http` cargo feature is off)",
            "build with `--features http`, or download the file and pass its local path",
        ),
        ModelRef::S3(_) => (
            "this build has no S3 support (the `s3` cargo feature is off)",
            "build with `--features s3`, or download the object (e.g. `aws s3 cp`) and pass its local path",
        ),
        ModelRef::Oci(_) | ModelRef::Ollama(_) => (
            "this build has no OCI registry support (the `oci` cargo feature is off)",
            "build with `--features oci`, or pull the artifact (e.g. `oras pull`) and pass its local path",
        ),
        ModelRef::File(_) => (
            "local files need the file fetcher",
            "use `ModelProvisioner::file_only`",
        ),
        ModelRef::Other(other) => {
            return Error::Unsupported {
                reference: reference.redacted(),
                reason: format!(
                    "no source of this provisioner reads `{}:` references",
                    other.scheme()
                ),
                hint: "register one (`ProvisionerBuilder::source`), or download the model with a tool that speaks this protocol and pass its local path".to_owned(),
            };
        }
    };
    Error::Unsupported {
        reference: reference.redacted(),
        reason: reason.to_owned(),
        hint: hint.to_owned(),
    }
}
