//! Make sure the model an inference engine needs is on this machine, verified, and recorded in
//! the catalog.
//!
//! ```no_run
//! # fn main() -> Result<(), model_provisioner::Error> {
//! use model_provisioner::ModelProvisioner;
//!
//! let provisioner = ModelProvisioner::file_only("/var/cache/models")?;
//! let model = provisioner.ensure_present_str("./weights/tiny.gguf", None)?;
//! println!("{} is at {}", model.id, model.local_path.display());
//! # Ok(()) }
//! ```
//!
//! [`ModelProvisioner`] is generic over its catalog ([`CatalogStore`]) and its fetcher
//! ([`ModelFetcher`]). [`ModelProvisioner::file_only`] uses [`FsCatalog`] and [`FileFetcher`]
//! and performs no network I/O; in the default feature set this crate links no HTTP client.
//! [`ModelProvisioner::builder`] wires every fetcher this build has from options, as the
//! command-line tool does; with the `oci` and `s3` features, `ModelProvisioner::push` and
//! `ModelProvisioner::mirror` publish a model of the catalog through the same clients.
#![deny(missing_docs)]

#[cfg(feature = "http")]
mod access;
mod any;
mod assemble;
#[cfg(feature = "azure")]
mod azure;
mod builder;
mod error;
mod fetcher;
mod file;
#[cfg(feature = "gcs")]
pub mod gcs;
pub mod hf;
#[cfg(feature = "http")]
mod http;
pub mod list;
pub mod mirror;
#[cfg(any(feature = "http", feature = "signing"))]
mod model_files;
#[cfg(feature = "hf")]
mod modelscope;
#[cfg(feature = "http")]
pub mod object_store;
#[cfg(feature = "oci")]
pub mod oci;
#[cfg(feature = "http")]
mod parallel;
#[cfg(feature = "http")]
pub mod pipeline;
mod provisioner;
#[cfg(feature = "http")]
mod publish;
#[cfg(feature = "http")]
mod push;
#[cfg(feature = "http")]
mod register;
#[cfg(feature = "http")]
mod registered;
mod request;
#[cfg(feature = "s3")]
pub mod s3;
#[cfg(feature = "http")]
mod sign;
#[cfg(feature = "signing")]
pub mod signing;
#[cfg(feature = "http")]
mod upload;

#[cfg(feature = "oci")]
pub use access::RegistryAccess;
#[cfg(feature = "s3")]
pub use access::S3Access;
pub use any::AnyFetcher;
pub use assemble::{Assembly, Publish};
#[cfg(feature = "azure")]
pub use azure::{AzureEnv, AzureKind};
pub use builder::{HfClient, ProvisionerBuilder};
pub use catalog_core::{
    CatalogEntry, CatalogStore, Digest, DigestMismatch, FsCatalog, ModelRef, ResolvedModel,
};
pub use error::{Error, Result, SourceFailure};
pub use fetcher::ModelFetcher;
pub use file::FileFetcher;
#[cfg(feature = "gcs")]
pub use gcs::GcsKind;
#[cfg(feature = "http")]
pub use http::HttpFetcher;
pub use mirror::{MirrorRule, Mirrors};
/// What a model is, read from its headers, and the structural check (the `model-info` crate).
pub use model_info;
#[cfg(feature = "hf")]
pub use modelscope::ModelScopeKind;
#[cfg(feature = "http")]
pub use mp_credentials::Secret;
pub use mp_progress::{
    Event, Events, FileTask, NoReporter, Progress, Reporter, SCHEMA_VERSION, json_line,
};
/// How downloads are made: connections, chunk size, retries, the memory budget (`mp-transfer`).
#[cfg(feature = "http")]
pub use mp_transfer::{Cancel, DownloadConfig, RateLimit, RetryPolicy};
pub use provisioner::{Ensured, ModelProvisioner, Verified};
#[cfg(feature = "http")]
pub use publish::{Mirrored, Pushed};
#[cfg(feature = "http")]
pub use register::{SourceContext, SourceKind};
#[cfg(feature = "http")]
pub use registered::parse_ref;
pub use request::{FetchRequest, Fetched, unsupported};
