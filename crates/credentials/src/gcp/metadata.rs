//! The metadata server of a Compute Engine instance or a GKE workload: a token for the
//! instance's (or the workload's) service account.
//!
//! ```text
//! GET http://$GCE_METADATA_HOST/computeMetadata/v1/instance/service-accounts/default/token
//!     Metadata-Flavor: Google
//!   {"access_token", "expires_in", "token_type": "Bearer"}
//! ```
//!
//! Off Google's cloud there is no such server: the first request has [`PROBE_TIMEOUT`] to
//! answer, once, so that a run without credentials gives up fast and says so.

use std::time::Duration;

use url::Url;

use super::error::CredentialError;
use super::source::Source;
use super::token::{AccessToken, TOKEN_RETRY, TOKEN_TIMEOUT, fetch_token};
use super::var;
use mp_transfer::RetryPolicy;

/// The metadata server's address where `GCE_METADATA_HOST` names none (what
/// `metadata.google.internal` resolves to, without asking DNS).
const METADATA_HOST: &str = "169.254.169.254";

/// The token's path on the metadata server.
const TOKEN_PATH: &str = "/computeMetadata/v1/instance/service-accounts/default/token";

/// How long the metadata server has to answer the first request. It answers in milliseconds
/// where it exists; elsewhere this is what every run without credentials pays.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// The metadata server's token URL, from `GCE_METADATA_HOST` (`host[:port]`) or the default.
pub(super) fn token_url(
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(Url, String), CredentialError> {
    let host = var(env, "GCE_METADATA_HOST").unwrap_or_else(|| METADATA_HOST.to_owned());
    let host = host.trim().trim_end_matches('/');
    let text = if host.contains("://") {
        format!("{host}{TOKEN_PATH}")
    } else {
        format!("http://{host}{TOKEN_PATH}")
    };
    let url = Url::parse(&text).map_err(|_| CredentialError::Answer {
        from: Source::MetadataServer,
        endpoint: catalog_core::printable(host),
        reason: "`GCE_METADATA_HOST` is not `host[:port]`".into(),
    })?;
    let endpoint = url.origin().ascii_serialization();
    Ok((url, endpoint))
}

/// A token from the metadata server at `url`; `probe` for the first, which gets one short try.
pub(super) async fn token(
    client: &reqwest::Client,
    url: &Url,
    endpoint: &str,
    probe: bool,
) -> Result<AccessToken, CredentialError> {
    let request = client.get(url.clone()).header("Metadata-Flavor", "Google");
    let limits = if probe {
        (
            PROBE_TIMEOUT,
            RetryPolicy {
                retries: 0,
                ..TOKEN_RETRY
            },
        )
    } else {
        (TOKEN_TIMEOUT, TOKEN_RETRY)
    };
    fetch_token(request, &Source::MetadataServer, endpoint, limits).await
}
