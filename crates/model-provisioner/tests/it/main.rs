//! Integration tests of the provisioner over a real cache directory.

mod file;
#[cfg(feature = "http")]
mod http;
