//! What the catalog records about each model.

use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::digest::Digest;
use crate::model_info::ModelInfo;
use crate::outcome::Outcome;

/// Whether a model may be handed out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Lifecycle {
    /// Ready for use: `locate` and `ensure` return it.
    #[serde(alias = "Active")]
    Active,
    /// Kept on disk but no longer handed out; `ensure` makes it Active again.
    #[serde(alias = "Retired")]
    Retired,
}

impl fmt::Display for Lifecycle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Lifecycle::Active => "active",
            Lifecycle::Retired => "retired",
        })
    }
}

/// The last verification of an entry's artifact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verification {
    /// Pass, warn or fail.
    pub outcome: Outcome,
    /// The digest computed from the bytes on disk, when they were hashed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub computed: Option<Digest>,
}

impl Verification {
    /// Nothing was compared and nothing hashed.
    pub fn unverified() -> Self {
        Verification {
            outcome: Outcome::Warn,
            computed: None,
        }
    }
}

/// Who owns the bytes an entry points at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Storage {
    /// A user's file registered where it lies: the catalog never deletes it.
    InPlace,
    /// A file or directory inside the cache root, owned by the catalog.
    Cache,
}

/// Cheap identity of a file as last seen: when it is unchanged, its digest is too.
///
/// For a directory, `size` is the total of its files, `mtime_ns` the newest of theirs, and
/// `tree` a hash over every file's relative path, size, mtime, inode and device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fingerprint {
    /// Length in bytes.
    pub size: u64,
    /// Modification time, nanoseconds since the Unix epoch.
    pub mtime_ns: i128,
    /// Inode number.
    pub inode: u64,
    /// Device number.
    pub device: u64,
    /// For directories: the hash of the per-file fingerprints.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tree: Option<String>,
}

/// One file of a multi-file artifact, for provenance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileRecord {
    /// Path relative to the artifact's root, `/`-separated.
    pub path: String,
    /// Length in bytes.
    pub size: u64,
    /// The file's digest, when it was computed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<Digest>,
    /// The source's own identifier of the content (a Hub file's git blob id or LFS sha256),
    /// so that a later fetch can tell the file has not changed without downloading it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    /// What the source said the file is (an OCI layer's media type), when it said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
}

/// Where an artifact came from and how it was obtained. Holds no secrets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Provenance {
    /// The fetcher that produced the artifact (`file`, `hf-native`, …).
    pub fetcher: String,
    /// That fetcher's version.
    pub fetcher_version: String,
    /// When the artifact was fetched, ms since the Unix epoch.
    pub fetched_ms: u64,
    /// The commit or version the source resolved to, when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved_revision: Option<String>,
    /// The server the bytes came from, when the id does not name it (an `ollama:` model's
    /// registry, a mirror). Never holds credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<String>,
    /// The files the artifact is made of.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<FileRecord>,
    /// The `--include` patterns the files were selected with.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub include: Vec<String>,
    /// The `--exclude` patterns the files were selected with.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude: Vec<String>,
}

/// One model in the catalog.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CatalogEntry {
    /// The stable id (see [`ModelRef::canonical_id`](crate::ModelRef::canonical_id)).
    pub id: String,
    /// The reference it was ensured from, without credentials.
    pub source: String,
    /// The file or directory to hand to an engine.
    pub local_path: PathBuf,
    /// Active or Retired.
    pub lifecycle: Lifecycle,
    /// Whether the catalog owns the bytes.
    pub storage: Storage,
    /// The digest the artifact is expected to have, when one was given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<Digest>,
    /// The digest the source itself stated for the artifact when it was fetched (an S3
    /// object's checksum, a registry's layer digests), which the bytes matched. `verify`
    /// compares with it when no digest was given; unlike `digest`, it does not outlive the
    /// next fetch (a moved tag brings a new one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_digest: Option<Digest>,
    /// The outcome of the last verification.
    pub verification: Verification,
    /// When the bytes were last hashed, ms since the Unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_verified_ms: Option<u64>,
    /// Total length in bytes.
    pub size_bytes: u64,
    /// The artifact's fingerprint when it was last checked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<Fingerprint>,
    /// When the entry was first recorded, ms since the Unix epoch.
    pub created_ms: u64,
    /// When the entry last changed, ms since the Unix epoch.
    pub updated_ms: u64,
    /// Where the artifact came from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provenance: Option<Provenance>,
    /// What the model is (format, architecture, parameters, …) and whether its files are
    /// whole, read from their headers. Absent from entries recorded before this was read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_info: Option<ModelInfo>,
    /// What the model's signature (an OpenSSF model-signing bundle) said when it was last
    /// checked. Absent for a model without one, and for entries recorded before signatures
    /// were read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<SignatureCheck>,
}

/// What a model's signature said when it was checked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignatureCheck {
    /// Whether it holds.
    pub outcome: SignatureOutcome,
    /// Who signed: `key sha256:<fingerprint>`, or `certificate <subject>` with its alternative
    /// names; for an unchecked signature, who it says signed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signer: Option<String>,
    /// The policy it was held against (`key:…`, `cert-chain:…`), when one was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
    /// The digest the signed statement gives the model (the sha256 over its files' digests).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub statement_digest: Option<Digest>,
    /// What failed, or why it was not checked, in words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// When it was checked, ms since the Unix epoch.
    pub checked_ms: u64,
}

/// What a signature check concluded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SignatureOutcome {
    /// Signed as the policy wants, every file as signed.
    Verified,
    /// Every file as signed, but no policy names who must sign: the signature itself was not
    /// held against a key.
    Unchecked,
    /// The signature or a file does not hold (recorded only when no policy asked for one: a
    /// policy that fails fails the ensure).
    Failed,
}

impl std::fmt::Display for SignatureOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SignatureOutcome::Verified => "verified",
            SignatureOutcome::Unchecked => "unchecked",
            SignatureOutcome::Failed => "failed",
        })
    }
}

/// What a caller needs to start an engine: the model's id and where its bytes are.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResolvedModel {
    /// The stable catalog id.
    pub id: String,
    /// An absolute path to the file or directory.
    pub local_path: PathBuf,
}

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
