//! Google's Application Default Credentials, found the way Google's client libraries find them,
//! for Google Cloud Storage.
//!
//! [`resolve`] tries each provider in Google's order and takes the first that is there:
//!
//! ```text
//! 1. GOOGLE_APPLICATION_CREDENTIALS   a key file:
//!                                     ├── "type": "service_account"   a JWT (RS256, signed with
//!                                     │   its private_key) exchanged at its token_uri
//!                                     │   (grant urn:ietf:params:oauth:grant-type:jwt-bearer)
//!                                     └── "type": "authorized_user"   its refresh_token
//!                                         exchanged at its token_uri (grant refresh_token)
//! 2. gcloud's ADC file                $CLOUDSDK_CONFIG/application_default_credentials.json,
//!                                     else ~/.config/gcloud/application_default_credentials.json,
//!                                     the same two kinds
//! 3. the metadata server              GCE, GKE workload identity: GET
//!                                     http://$GCE_METADATA_HOST (else 169.254.169.254)
//!                                     /computeMetadata/v1/instance/service-accounts/default/token
//!                                     with `Metadata-Flavor: Google`; 1 s to connect
//! 4. anonymous                        no token: public buckets only
//! ```
//!
//! A key file that is named but cannot be read or used is an error, never passed over, so
//! that no other identity is used in its place. What is found is a [`GcpCredentials`]: it
//! holds the [`AccessToken`] it got last, with its expiry, and gets a new one before that
//! expires ([`GcpCredentials::token`]) or after a refusal ([`GcpCredentials::refresh`]).
//! The token asks for a [`Scope`]: read-only for a fetch, read-write for a write.
//!
//! The environment is passed in as a function, never read from the process, so that tests can
//! run in parallel. Private keys, refresh tokens, client secrets and access tokens are
//! [`Secret`]s; no message or `Debug` output holds one.
//!
//! ```text
//! chain.rs      resolve: the providers in order, and GcpCredentials, the token cache
//! key_file.rs   a service account's or an authorized user's key file; the JWT assertion
//! metadata.rs   the metadata server
//! token.rs      Scope, AccessToken, and the token endpoints' answers
//! error.rs      CredentialError and its hints
//! ```

mod chain;
mod error;
mod key_file;
mod metadata;
mod source;
mod token;

pub use self::chain::{GcpCredentials, Resolved, resolve};
pub use self::error::{CredentialError, Tried};
pub use self::key_file::{KeyFile, ServiceAccountKey};
pub use self::source::Source;
pub use self::token::{AccessToken, Scope};
pub use crate::Secret;

/// A variable's value; empty counts as unset.
fn var(env: &dyn Fn(&str) -> Option<String>, name: &str) -> Option<String> {
    env(name).filter(|v| !v.trim().is_empty())
}
