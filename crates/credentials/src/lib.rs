//! Who may read and write a model: the credentials of the places models come from, found the
//! way each place's own tools find them, and never printed.
//!
//! | module | whose credentials | feature |
//! |---|---|---|
//! | [`aws`] | S3-compatible stores: the AWS configuration and credential chain | `aws` |
//! | [`gcp`] | Google Cloud Storage: Application Default Credentials | `gcp` |
//! | [`azure`] | Azure Blob Storage: SAS tokens, connection strings, account keys, Entra ID, managed identity | `azure` |
//! | [`registry`] | OCI registries: docker's configuration, credential helpers, tokens | `registry` |
//! | [`hf`] | the Hugging Face Hub: `HF_TOKEN` or the user's token file | — |
//! | [`modelscope`] | ModelScope: the session its client saved at login, read as data | — |
//!
//! A secret is a [`Secret`] (or the Hub's [`hf::Token`]): its `Debug` and `Display` print
//! `<redacted>`. The services asked over the network (STS, the container and instance
//! metadata endpoints, a registry's token service, Google's token endpoints and metadata
//! server) are asked through the download engine's one request loop (`mp-transfer`).
#![deny(missing_docs)]

#[cfg(feature = "aws")]
pub mod aws;
#[cfg(feature = "azure")]
pub mod azure;
#[cfg(feature = "gcp")]
pub mod gcp;
pub mod hf;
pub mod modelscope;
#[cfg(any(feature = "gcp", feature = "azure"))]
mod oauth;
#[cfg(feature = "registry")]
pub mod registry;
mod secret;
#[cfg(all(
    test,
    any(
        feature = "aws",
        feature = "gcp",
        feature = "azure",
        feature = "registry"
    )
))]
mod test_util;

pub use secret::Secret;
