//! Model references, digests, and the catalog of models present on this machine.
//!
//! This crate does no network I/O and starts no processes: it parses what users write
//! ([`ModelRef`], [`Digest`]), hashes and fingerprints local files, and keeps the catalog
//! ([`CatalogStore`], with [`FsCatalog`] as the default store) under a cache directory laid
//! out as [`layout`] draws.
#![deny(missing_docs)]

mod digest;
mod entry;
mod error;
mod fs_catalog;
pub mod layout;
mod model_info;
mod model_ref;
mod outcome;
mod rel_path;
mod store;
mod text;
pub mod verify;

pub use digest::{Algorithm, Digest, HASH_BUF_SIZE, Hasher, ParseDigestError, hash_reader, to_hex};
pub use entry::{
    CatalogEntry, FileRecord, Fingerprint, Lifecycle, Provenance, ResolvedModel, SignatureCheck,
    SignatureOutcome, Storage, Verification, now_ms,
};
pub use error::{Error, Result};
pub use fs_catalog::{FsCatalog, GcReport, INDEX_VERSION, IndexTxn};
pub use layout::{
    CACHE_ENV, CacheLayout, StagedDir, StagedFile, Staging, cache_dir_from_env,
    default_model_cache_dir,
};
pub use model_info::{ModelFormat, ModelInfo, Split, Structure, human_count};
pub use model_ref::{
    FileRef, HfRef, HttpRef, ModelRef, OLLAMA_REGISTRY, OciRef, OciReference, OllamaRef, OtherRef,
    ParseRefError, S3Ref, SUPPORTED_SCHEMES, Scheme, file_id,
};
pub use outcome::Outcome;
pub use rel_path::{ParseRelPathError, SafeRelPath};
pub use store::{ArtifactRemoval, CatalogStore, Deletion};
pub use text::printable;
pub use verify::{DigestMismatch, TreeDigest, check_digest, open_regular, verify_digest};
