//! Integration tests of the provisioner over a real cache directory.

#[cfg(feature = "azure")]
mod azure;
mod file;
#[cfg(feature = "gcs")]
mod gcs;
#[cfg(feature = "hf")]
mod hf;
#[cfg(feature = "http")]
mod http;
mod model;
#[cfg(feature = "hf")]
mod modelscope;
#[cfg(feature = "oci")]
mod oci;
#[cfg(all(feature = "oci", feature = "s3"))]
mod publish;
#[cfg(feature = "hf")]
mod quant;
#[cfg(feature = "http")]
mod registered;
#[cfg(feature = "s3")]
mod s3;
#[cfg(feature = "signing")]
mod signing;

/// Few, quick retries and short timeouts: a server on loopback fails only when a test wants it
/// to.
#[cfg(any(feature = "hf", all(feature = "oci", feature = "s3")))]
fn quick_download() -> mp_transfer::DownloadConfig {
    use mp_transfer::{DownloadConfig, RetryPolicy};
    use std::time::Duration;
    DownloadConfig {
        retry: RetryPolicy {
            retries: 1,
            backoff: Duration::from_millis(10),
            ..RetryPolicy::default()
        },
        stall_timeout: Duration::from_secs(5),
        connect_timeout: Duration::from_secs(2),
        ..DownloadConfig::default()
    }
}
