//! Azure Blob Storage credentials, found in the order the Azure SDKs look for them.
//!
//! [`resolve`] tries each provider in turn and stops at the first that holds credentials:
//!
//! ```text
//! 1. SAS token           in the reference's query, else AZURE_STORAGE_SAS_TOKEN
//! 2. connection string   AZURE_STORAGE_CONNECTION_STRING: AccountName, AccountKey,
//!                        SharedAccessSignature, BlobEndpoint, DefaultEndpointsProtocol
//! 3. account key         AZURE_STORAGE_ACCOUNT + AZURE_STORAGE_KEY: SharedKey signing
//! 4. client secret       AZURE_CLIENT_ID + AZURE_CLIENT_SECRET + AZURE_TENANT_ID, a token from
//!                        {AZURE_AUTHORITY_HOST}/{tenant}/oauth2/v2.0/token
//! 5. workload identity   AZURE_FEDERATED_TOKEN_FILE + AZURE_CLIENT_ID + AZURE_TENANT_ID: the
//!                        file's JWT as the client assertion, read again for every token
//! 6. managed identity    App Service's IDENTITY_ENDPOINT + IDENTITY_HEADER, else the instance
//!                        metadata service (IMDS) at http://169.254.169.254, which has 1 s to
//!                        answer (AZURE_POD_IDENTITY_AUTHORITY_HOST names another)
//! ```
//!
//! When none holds credentials, requests go anonymous (a public container), and the error a
//! refusal then gives lists every provider and why each gave nothing ([`Tried`]).
//! `--no-sign-request` looks at none of them.
//!
//! Tokens (4–6) are kept with their expiry and fetched again five minutes before it, or after
//! a refusal ([`TokenCredential`]); `SharedKey` signs every request afresh, with its own date
//! ([`SharedKey`]). Secrets are [`Secret`]s: no message or `Debug` output holds a key, a SAS
//! token, a client secret, an assertion or an access token. The environment is passed in as
//! a function, so that tests can run in parallel.
//!
//! ```text
//! chain.rs       resolve: the providers in order, Credential, Provider, Tried, the errors
//! connection.rs  connection strings
//! shared_key.rs  SharedKey: the canonical string of a request and its HMAC-SHA256
//! token.rs       TokenCredential: Entra ID (client secret, workload identity), managed identity
//! ```

mod chain;
mod connection;
mod error;
mod shared_key;
mod token;

pub use self::chain::{Credential, Found, resolve};
pub use self::connection::ConnectionString;
pub use self::error::{AzureCredentialError, Provider, Tried};
pub use self::shared_key::{SharedKey, string_to_sign};
pub use self::token::{STORAGE_SCOPE, TokenCredential};
pub use crate::Secret;

/// The `x-ms-version` every request carries: a version Azure and Azurite 3.35 both serve.
pub const API_VERSION: &str = "2023-11-03";

/// The environment, as a lookup.
pub type Env<'a> = &'a (dyn Fn(&str) -> Option<String> + Sync);

/// A variable's value; empty counts as unset, as in the SDKs.
fn var(env: Env<'_>, name: &str) -> Option<String> {
    env(name).filter(|v| !v.trim().is_empty())
}

/// A SAS token as a query string, without a leading `?`; `None` when it is not one (it must
/// carry a signature, `sig=`).
pub fn sas_query(text: &str) -> Option<Secret> {
    let text = text.trim().trim_start_matches('?');
    text.split('&')
        .any(|pair| {
            pair.split_once('=')
                .is_some_and(|(k, v)| k == "sig" && !v.is_empty())
        })
        .then(|| Secret::new(text.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sas_token_is_a_query_with_a_signature() {
        let sas = sas_query("?sv=2020-12-06&sr=b&sp=r&se=2030-01-01&sig=abc%2Bd").expect("a SAS");
        assert_eq!(
            sas.expose(),
            "sv=2020-12-06&sr=b&sp=r&se=2030-01-01&sig=abc%2Bd"
        );
        assert!(sas_query("sv=2020-12-06&sp=r").is_none());
        assert!(sas_query("sig=").is_none());
        assert!(sas_query("").is_none());
        assert_eq!(format!("{sas:?}"), "<redacted>");
    }
}
