//! [`TokenCredential`]: a bearer token for the storage scope, from Entra ID (a client secret,
//! or a workload identity's federated token) or from a managed identity (App Service's
//! identity endpoint, or the instance metadata service), kept with its expiry.
//!
//! ```text
//! POST {authority}/{tenant}/oauth2/v2.0/token          client secret, workload identity
//!      grant_type=client_credentials&client_id=…&scope=https://storage.azure.com/.default
//!      &client_secret=…  |  &client_assertion_type=…jwt-bearer&client_assertion=<file>
//! GET  {IDENTITY_ENDPOINT}?api-version=2019-08-01&resource=https://storage.azure.com/
//!      X-IDENTITY-HEADER: {IDENTITY_HEADER}                                  App Service
//! GET  http://169.254.169.254/metadata/identity/oauth2/token?api-version=2018-02-01
//!      &resource=https://storage.azure.com/   Metadata: true                 IMDS
//!   →  {"access_token": …, "expires_in": 3599 | "expires_on": "1700000000", …}
//! ```

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reqwest::StatusCode;
use serde::Deserialize;
use url::Url;

use super::error::{AzureCredentialError, Provider};
use crate::Secret;
use mp_transfer::{BodyError, RetryPolicy, Unanswered, read_bounded, send_built};

/// The scope a storage token is asked for.
pub const STORAGE_SCOPE: &str = "https://storage.azure.com/.default";

/// The resource a managed identity's token is asked for (the scope without `.default`).
const STORAGE_RESOURCE: &str = "https://storage.azure.com/";

/// A token with less than this left is fetched again before use.
const EXPIRY_MARGIN: Duration = Duration::from_secs(5 * 60);

/// A token fetched this recently is used even when it expires within the margin: a service
/// that hands out short-lived tokens is asked at most this often, not once per request.
const MIN_REFETCH: Duration = Duration::from_secs(30);

/// How long a token service has to answer.
pub(super) const SERVICE_TIMEOUT: Duration = Duration::from_secs(5);

/// How long the instance metadata service has to answer the first request. It answers in
/// milliseconds where it exists; elsewhere this is what a run without credentials pays.
pub(super) const IMDS_PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// Two quick retries for a token service: a caller waits on them before its first byte.
pub(super) const SERVICE_RETRY: RetryPolicy = RetryPolicy {
    retries: 2,
    backoff: Duration::from_millis(100),
    max_backoff: Duration::from_secs(1),
};

/// The largest answer read from a token service.
const ANSWER_LIMIT: usize = 1 << 20;

/// Where a token comes from.
#[derive(Debug)]
pub(super) enum Grant {
    /// Entra ID with a client secret.
    ClientSecret {
        authority: Url,
        tenant: String,
        client_id: String,
        secret: Secret,
    },
    /// Entra ID with the federated token in `file` as the client assertion.
    WorkloadIdentity {
        authority: Url,
        tenant: String,
        client_id: String,
        file: PathBuf,
    },
    /// App Service's identity endpoint.
    AppService {
        endpoint: Url,
        header: Secret,
        client_id: Option<String>,
    },
    /// The instance metadata service.
    Imds {
        endpoint: Url,
        client_id: Option<String>,
    },
}

/// A bearer token for the storage scope, fetched on first use, kept with its expiry and
/// fetched again five minutes before it, or when a request was refused.
#[derive(Debug)]
pub struct TokenCredential {
    grant: Grant,
    /// The token in force and when it expires: read without waiting by every request.
    cached: std::sync::Mutex<Option<(Secret, SystemTime)>>,
    /// Held while a token is fetched, so that one fetch serves every request waiting; when
    /// the last fetch was.
    fetching: tokio::sync::Mutex<Option<std::time::Instant>>,
}

#[derive(Deserialize)]
struct Answer {
    #[serde(default)]
    access_token: Option<String>,
    #[serde(default)]
    expires_in: Option<serde_json::Value>,
    #[serde(default)]
    expires_on: Option<serde_json::Value>,
    #[serde(default)]
    error: Option<String>,
}

/// A number, or a number written as a string (the metadata services' way).
fn seconds(value: Option<&serde_json::Value>) -> Option<u64> {
    match value? {
        serde_json::Value::Number(n) => n.as_u64(),
        serde_json::Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

impl TokenCredential {
    pub(super) fn new(grant: Grant) -> Self {
        TokenCredential {
            grant,
            cached: std::sync::Mutex::new(None),
            fetching: tokio::sync::Mutex::new(None),
        }
    }

    fn kept(&self) -> std::sync::MutexGuard<'_, Option<(Secret, SystemTime)>> {
        self.cached
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The token kept, whatever its expiry: what a request built now carries.
    pub fn current(&self) -> Option<Secret> {
        self.kept().as_ref().map(|(token, _)| token.clone())
    }

    /// Whether there is no token kept, or it expires within five minutes: fetch one now.
    pub fn expiring(&self) -> bool {
        self.kept().as_ref().is_none_or(|(_, expires)| {
            expires
                .duration_since(SystemTime::now())
                .map_or(true, |left| left <= EXPIRY_MARGIN)
        })
    }

    /// The provider the token comes from.
    pub fn provider(&self) -> Provider {
        match self.grant {
            Grant::ClientSecret { .. } => Provider::ClientSecret,
            Grant::WorkloadIdentity { .. } => Provider::WorkloadIdentity,
            Grant::AppService { .. } | Grant::Imds { .. } => Provider::ManagedIdentity,
        }
    }

    /// `scheme://host[:port]` of the token service, as messages name it.
    pub fn endpoint(&self) -> String {
        match &self.grant {
            Grant::ClientSecret { authority, .. } | Grant::WorkloadIdentity { authority, .. } => {
                authority.origin().ascii_serialization()
            }
            Grant::AppService { endpoint, .. } | Grant::Imds { endpoint, .. } => {
                endpoint.origin().ascii_serialization()
            }
        }
    }

    /// The token in force: the one kept, unless it expires within five minutes.
    ///
    /// # Errors
    ///
    /// When a new token was needed and the service gave none.
    pub async fn token(&self, client: &reqwest::Client) -> Result<Secret, AzureCredentialError> {
        if !self.expiring()
            && let Some(token) = self.current()
        {
            return Ok(token);
        }
        let mut last = self.fetching.lock().await;
        let recent = last.is_some_and(|at| at.elapsed() < MIN_REFETCH);
        if (recent || !self.expiring())
            && let Some(token) = self.current()
        {
            return Ok(token);
        }
        let fresh = self.fetch(client, SERVICE_TIMEOUT, SERVICE_RETRY).await?;
        *last = Some(std::time::Instant::now());
        *self.kept() = Some(fresh.clone());
        Ok(fresh.0)
    }

    /// A new token, whatever is kept: after a request was refused.
    ///
    /// # Errors
    ///
    /// When the service gave none.
    pub async fn refresh(&self, client: &reqwest::Client) -> Result<Secret, AzureCredentialError> {
        let mut last = self.fetching.lock().await;
        let fresh = self.fetch(client, SERVICE_TIMEOUT, SERVICE_RETRY).await?;
        *last = Some(std::time::Instant::now());
        *self.kept() = Some(fresh.clone());
        Ok(fresh.0)
    }

    /// The first token, asked within `timeout` and `retry`: how the chain finds out whether
    /// the provider works (the metadata service gets one short attempt).
    pub(super) async fn first(
        &self,
        client: &reqwest::Client,
        timeout: Duration,
        retry: RetryPolicy,
    ) -> Result<(), AzureCredentialError> {
        let mut last = self.fetching.lock().await;
        let fresh = self.fetch(client, timeout, retry).await?;
        *last = Some(std::time::Instant::now());
        *self.kept() = Some(fresh);
        Ok(())
    }

    /// The request for a new token.
    fn request(
        &self,
        client: &reqwest::Client,
    ) -> Result<reqwest::RequestBuilder, AzureCredentialError> {
        Ok(match &self.grant {
            Grant::ClientSecret {
                authority,
                tenant,
                client_id,
                secret,
            } => entra(
                client,
                authority,
                tenant,
                &[("client_id", client_id), ("client_secret", secret.expose())],
            ),
            Grant::WorkloadIdentity {
                authority,
                tenant,
                client_id,
                file,
            } => {
                // Read again for every token: the platform rotates the file.
                let assertion = std::fs::read_to_string(file).map_err(|source| {
                    AzureCredentialError::FileRead {
                        what: "the federated token file (`AZURE_FEDERATED_TOKEN_FILE`)",
                        path: file.clone(),
                        source,
                    }
                })?;
                entra(
                    client,
                    authority,
                    tenant,
                    &[
                        ("client_id", client_id),
                        (
                            "client_assertion_type",
                            "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                        ),
                        ("client_assertion", assertion.trim()),
                    ],
                )
            }
            Grant::AppService {
                endpoint,
                header,
                client_id,
            } => {
                let mut url = endpoint.clone();
                url.query_pairs_mut()
                    .append_pair("api-version", "2019-08-01")
                    .append_pair("resource", STORAGE_RESOURCE);
                if let Some(id) = client_id {
                    url.query_pairs_mut().append_pair("client_id", id);
                }
                let mut value =
                    reqwest::header::HeaderValue::from_str(header.expose()).map_err(|_| {
                        AzureCredentialError::InvalidSetting {
                            setting: "`IDENTITY_HEADER`".into(),
                            expected: "a header value",
                        }
                    })?;
                value.set_sensitive(true);
                client.get(url).header("X-IDENTITY-HEADER", value)
            }
            Grant::Imds {
                endpoint,
                client_id,
            } => {
                let mut url = endpoint.clone();
                url.set_path("/metadata/identity/oauth2/token");
                url.query_pairs_mut()
                    .append_pair("api-version", "2018-02-01")
                    .append_pair("resource", STORAGE_RESOURCE);
                if let Some(id) = client_id {
                    url.query_pairs_mut().append_pair("client_id", id);
                }
                client.get(url).header("Metadata", "true")
            }
        })
    }

    async fn fetch(
        &self,
        client: &reqwest::Client,
        timeout: Duration,
        retry: RetryPolicy,
    ) -> Result<(Secret, SystemTime), AzureCredentialError> {
        let endpoint = self.endpoint();
        let request = self.request(client)?;
        let provider = self.provider();
        tracing::debug!(%provider, endpoint, "asking for an Azure storage token");
        let unreachable = |source: reqwest::Error| AzureCredentialError::TokenUnreachable {
            provider,
            endpoint: endpoint.clone(),
            source: source.without_url(),
        };
        let response = match send_built(request.timeout(timeout), retry, &endpoint).await {
            Ok(r) => r,
            Err(Unanswered::Status(status)) => {
                return Err(AzureCredentialError::TokenRefused {
                    provider,
                    endpoint,
                    status: status.as_u16(),
                    code: None,
                });
            }
            Err(Unanswered::Transport(e)) => return Err(unreachable(e)),
        };
        let status = response.status();
        let body = read_bounded(response, ANSWER_LIMIT)
            .await
            .map_err(|e| match e {
                BodyError::Failed(e) => unreachable(e),
                BodyError::TooLarge => AzureCredentialError::TokenAnswer {
                    provider,
                    endpoint: endpoint.clone(),
                    reason: "an answer larger than 1 MiB".into(),
                },
            })?;
        let answer: Option<Answer> = serde_json::from_slice(&body).ok();
        if status != StatusCode::OK {
            return Err(AzureCredentialError::TokenRefused {
                provider,
                endpoint,
                status: status.as_u16(),
                code: answer
                    .and_then(|a| a.error)
                    .and_then(|c| crate::oauth::error_code(&c)),
            });
        }
        let bad = |reason: &str| AzureCredentialError::TokenAnswer {
            provider,
            endpoint: endpoint.clone(),
            reason: reason.to_owned(),
        };
        let answer = answer.ok_or_else(|| bad("it is not JSON with an `access_token`"))?;
        let token = answer
            .access_token
            .filter(|t| !t.trim().is_empty())
            .ok_or_else(|| bad("it has no `access_token`"))?;
        let now = SystemTime::now();
        let expires = match (
            seconds(answer.expires_on.as_ref()),
            seconds(answer.expires_in.as_ref()),
        ) {
            (Some(on), _) => UNIX_EPOCH + Duration::from_secs(on),
            (None, Some(secs)) => now + Duration::from_secs(secs),
            (None, None) => return Err(bad("it has no `expires_in` or `expires_on`")),
        };
        Ok((Secret::new(token.trim().to_owned()), expires))
    }
}

/// The token request to Entra ID for `tenant`, with the client's own fields.
fn entra(
    client: &reqwest::Client,
    authority: &Url,
    tenant: &str,
    fields: &[(&str, &str)],
) -> reqwest::RequestBuilder {
    let mut url = authority.clone();
    url.path_segments_mut()
        .expect("an authority is an http(s) URL")
        .pop_if_empty()
        .extend([tenant, "oauth2", "v2.0", "token"]);
    let mut form = url::form_urlencoded::Serializer::new(String::new());
    form.append_pair("grant_type", "client_credentials")
        .append_pair("scope", STORAGE_SCOPE);
    for (k, v) in fields {
        form.append_pair(k, v);
    }
    client
        .post(url)
        .header(
            reqwest::header::CONTENT_TYPE,
            "application/x-www-form-urlencoded",
        )
        .body(form.finish())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::block_on;

    #[test]
    fn a_token_is_kept_until_five_minutes_before_it_expires_and_fetched_again_after_a_refusal()
    -> Result<(), Box<dyn std::error::Error>> {
        let entra = test_support::EntraToken::start()?;
        let token = TokenCredential::new(Grant::ClientSecret {
            authority: entra.url().parse()?,
            tenant: "tenant".into(),
            client_id: "app".into(),
            secret: Secret::new("s".into()),
        });
        let client = reqwest::Client::new();
        let got = block_on(async {
            let mut got = vec![token.token(&client).await?, token.token(&client).await?];
            // A token that lives less than the margin is expiring as soon as it comes, but is
            // not asked for again before a while has passed: no fetch per request.
            entra.set_expires_in(200);
            got.push(token.refresh(&client).await?);
            assert!(token.expiring());
            got.push(token.token(&client).await?);
            // After a refusal, a new one is always fetched.
            got.push(token.refresh(&client).await?);
            Ok::<_, AzureCredentialError>(got)
        })?;
        let got: Vec<&str> = got.iter().map(Secret::expose).collect();
        assert_eq!(
            got,
            [
                "entra-token-0",
                "entra-token-0",
                "entra-token-1",
                "entra-token-1",
                "entra-token-2"
            ]
        );
        assert_eq!(entra.log().len(), 3);
        assert_eq!(token.provider(), Provider::ClientSecret);
        assert!(!format!("{token:?}").contains("entra-token"), "{token:?}");
        Ok(())
    }
}
