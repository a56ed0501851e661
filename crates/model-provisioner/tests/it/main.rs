//! Integration tests of the provisioner over a real cache directory.

mod file;
#[cfg(feature = "hf")]
mod hf;
#[cfg(feature = "http")]
mod http;
mod model;
#[cfg(feature = "oci")]
mod oci;
#[cfg(all(feature = "oci", feature = "s3"))]
mod publish;
#[cfg(feature = "hf")]
mod quant;
#[cfg(feature = "s3")]
mod s3;
