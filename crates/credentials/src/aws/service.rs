//! What STS, the container endpoint and the metadata service have in common: a request sent
//! within a time limit, the JSON answer of the last two, RFC 3339 times, error codes fit to
//! show, token files, and how an endpoint is named in messages.

use std::path::Path;
use std::time::{Duration, SystemTime};

use reqwest::StatusCode;
use serde::Deserialize;
use url::Url;

use super::credential::{AwsCredentials, Source};
use super::error::CredentialError;
use crate::secret::Secret;
use mp_transfer::{BodyError, RetryPolicy, Unanswered, read_bounded, send_built};

/// How long STS, a container agent or the metadata service (once found) has to answer.
pub(super) const SERVICE_TIMEOUT: Duration = Duration::from_secs(5);

/// `scheme://host[:port]` of `url`: what messages show of an endpoint (a path or query may
/// identify credentials).
pub(super) fn origin(url: &Url) -> String {
    url.origin().ascii_serialization()
}

/// A token from a file, trimmed. The file is named in errors, never its content.
pub(super) fn read_token_file(path: &Path, what: &'static str) -> Result<Secret, CredentialError> {
    let token = std::fs::read_to_string(path).map_err(|source| CredentialError::FileRead {
        what,
        path: path.to_owned(),
        source,
    })?;
    Ok(Secret::new(token.trim().to_owned()))
}

/// What the container endpoint and the metadata service answer.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct ServiceAnswer {
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    access_key_id: String,
    #[serde(default)]
    secret_access_key: String,
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    expiration: Option<String>,
}

impl ServiceAnswer {
    /// The credentials in `body`, from `from` at `endpoint`.
    pub(super) fn parse(
        body: &str,
        from: &Source,
        endpoint: &str,
    ) -> Result<AwsCredentials, CredentialError> {
        let bad = |reason: String| CredentialError::ServiceAnswer {
            from: from.clone(),
            endpoint: endpoint.to_owned(),
            reason,
        };
        let answer: ServiceAnswer = serde_json::from_str(body).map_err(|_| {
            bad("it is not the JSON `{\"AccessKeyId\", \"SecretAccessKey\", \"Token\", \"Expiration\"}`".into())
        })?;
        if let Some(code) = answer.code.as_deref()
            && code != "Success"
        {
            let code = error_code(code).unwrap_or_else(|| "?".into());
            return Err(bad(format!("its `Code` is `{code}`")));
        }
        let expires_at = match answer.expiration.as_deref() {
            Some(time) => Some(
                parse_time(time)
                    .ok_or_else(|| bad("its `Expiration` is not an RFC 3339 time".into()))?,
            ),
            None => None,
        };
        AwsCredentials::new(
            &answer.access_key_id,
            &answer.secret_access_key,
            answer.token.as_deref(),
            expires_at,
        )
        .ok_or_else(|| bad("no `AccessKeyId` or `SecretAccessKey`".into()))
    }
}

/// Retries of a request to a credential service, as the AWS SDKs' standard mode (three
/// attempts), quicker: a caller waits on them before its first byte.
const SERVICE_RETRY: RetryPolicy = RetryPolicy {
    retries: 2,
    backoff: Duration::from_millis(100),
    max_backoff: Duration::from_secs(1),
};

/// The largest answer read from a credential service.
const ANSWER_LIMIT: usize = 1 << 20;

/// Sends `request` through the engine's one request loop, each attempt within `timeout`; the
/// status and the body as text.
pub(super) async fn send(
    request: reqwest::RequestBuilder,
    from: Source,
    endpoint: &str,
    timeout: Duration,
) -> Result<(StatusCode, String), CredentialError> {
    let unreachable = |source: reqwest::Error| CredentialError::ServiceUnreachable {
        from: from.clone(),
        endpoint: endpoint.to_owned(),
        source: source.without_url(),
    };
    let response = match send_built(request.timeout(timeout), SERVICE_RETRY, endpoint).await {
        Ok(response) => response,
        Err(Unanswered::Status(status)) => return Ok((status, String::new())),
        Err(Unanswered::Transport(e)) => return Err(unreachable(e)),
    };
    let status = response.status();
    let body = read_bounded(response, ANSWER_LIMIT)
        .await
        .map_err(|e| match e {
            BodyError::Failed(e) => unreachable(e),
            BodyError::TooLarge => CredentialError::ServiceAnswer {
                from: from.clone(),
                endpoint: endpoint.to_owned(),
                reason: format!("an answer larger than {} MiB", ANSWER_LIMIT >> 20),
            },
        })?;
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

/// An RFC 3339 time (`2024-05-01T12:00:00Z`), as STS, IMDS and `credential_process` write it.
pub(super) fn parse_time(text: &str) -> Option<SystemTime> {
    text.trim()
        .parse::<jiff::Timestamp>()
        .ok()
        .map(SystemTime::from)
}

/// An error code fit to show: a short identifier.
pub(super) fn error_code(code: &str) -> Option<String> {
    let code = code.trim();
    (!code.is_empty()
        && code.len() <= 64
        && code
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-'))
    .then(|| code.to_owned())
}
