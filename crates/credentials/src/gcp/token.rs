//! [`Scope`], [`AccessToken`], and how a token endpoint (Google's OAuth endpoint, the metadata
//! server) is asked and its answer read.

use std::time::{Duration, SystemTime};

use reqwest::StatusCode;
use serde::Deserialize;

use super::error::CredentialError;
use super::source::Source;
use crate::secret::Secret;
use mp_transfer::{BodyError, RetryPolicy, Unanswered, read_bounded, send_built};

/// A token with less than this left is replaced before use (Google's libraries use 3 min 45 s).
const EXPIRY_MARGIN: Duration = Duration::from_secs(5 * 60);

/// How long a token endpoint has to answer.
pub(super) const TOKEN_TIMEOUT: Duration = Duration::from_secs(10);

/// Retries of a token request: a caller waits on them before its first byte.
pub(super) const TOKEN_RETRY: RetryPolicy = RetryPolicy {
    retries: 2,
    backoff: Duration::from_millis(100),
    max_backoff: Duration::from_secs(1),
};

/// The largest answer read from a token endpoint.
const ANSWER_LIMIT: usize = 1 << 20;

/// What a token may do with Cloud Storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Scope {
    /// Read objects and their metadata, list buckets: a fetch.
    #[default]
    ReadOnly,
    /// Also write objects: a push.
    ReadWrite,
}

impl Scope {
    /// The OAuth scope's URL.
    pub fn url(self) -> &'static str {
        match self {
            Scope::ReadOnly => "https://www.googleapis.com/auth/devstorage.read_only",
            Scope::ReadWrite => "https://www.googleapis.com/auth/devstorage.read_write",
        }
    }
}

/// An OAuth access token, sent as `Authorization: Bearer <token>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessToken {
    /// The token.
    pub token: Secret,
    /// When it stops working, if the endpoint said.
    pub expires_at: Option<SystemTime>,
}

impl AccessToken {
    /// True when the token expires in less than five minutes (or has expired): get another
    /// before using it.
    pub fn is_expiring(&self, now: SystemTime) -> bool {
        self.expires_at.is_some_and(|at| {
            at.duration_since(now)
                .map_or(true, |left| left < EXPIRY_MARGIN)
        })
    }
}

/// What a token endpoint answers: `{"access_token", "expires_in", "token_type"}`, or
/// `{"error", "error_description"}`.
#[derive(Deserialize)]
struct TokenAnswer {
    #[serde(default)]
    access_token: Option<String>,
    #[serde(default)]
    expires_in: Option<u64>,
    #[serde(default)]
    error: Option<String>,
}

/// Sends `request` (a token request built once) within `timeout`, and reads the token it
/// answers, from `from` at `endpoint`.
pub(super) async fn fetch_token(
    request: reqwest::RequestBuilder,
    from: &Source,
    endpoint: &str,
    (timeout, retry): (Duration, RetryPolicy),
) -> Result<AccessToken, CredentialError> {
    let unreachable = |source: reqwest::Error| CredentialError::Unreachable {
        from: from.clone(),
        endpoint: endpoint.to_owned(),
        source: source.without_url(),
    };
    let response = match send_built(request.timeout(timeout), retry, endpoint).await {
        Ok(response) => response,
        Err(Unanswered::Status(status)) => {
            return Err(CredentialError::Refused {
                from: from.clone(),
                endpoint: endpoint.to_owned(),
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
            BodyError::TooLarge => CredentialError::Answer {
                from: from.clone(),
                endpoint: endpoint.to_owned(),
                reason: format!("an answer larger than {} MiB", ANSWER_LIMIT >> 20),
            },
        })?;
    parse_answer(status, &body, from, endpoint, SystemTime::now())
}

/// The token in a token endpoint's answer.
fn parse_answer(
    status: StatusCode,
    body: &[u8],
    from: &Source,
    endpoint: &str,
    now: SystemTime,
) -> Result<AccessToken, CredentialError> {
    let answer: Option<TokenAnswer> = serde_json::from_slice(body).ok();
    if !status.is_success() {
        return Err(CredentialError::Refused {
            from: from.clone(),
            endpoint: endpoint.to_owned(),
            status: status.as_u16(),
            code: answer
                .and_then(|a| a.error)
                .and_then(|c| crate::oauth::error_code(&c)),
        });
    }
    let bad = |reason: &str| CredentialError::Answer {
        from: from.clone(),
        endpoint: endpoint.to_owned(),
        reason: reason.to_owned(),
    };
    let answer =
        answer.ok_or_else(|| bad("it is not the JSON `{\"access_token\", \"expires_in\"}`"))?;
    let token = answer
        .access_token
        .map(|t| t.trim().to_owned())
        .filter(|t| !t.is_empty())
        .ok_or_else(|| bad("no `access_token`"))?;
    Ok(AccessToken {
        token: Secret::new(token),
        expires_at: answer
            .expires_in
            .and_then(|s| now.checked_add(Duration::from_secs(s))),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_gives_the_token_and_its_expiry_and_a_refusal_its_code_only() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let from = Source::MetadataServer;
        let token = parse_answer(
            StatusCode::OK,
            br#"{"access_token": "ya29.x", "expires_in": 3599, "token_type": "Bearer"}"#,
            &from,
            "http://e",
            now,
        )
        .expect("a token");
        assert_eq!(token.token.expose(), "ya29.x");
        assert_eq!(token.expires_at, Some(now + Duration::from_secs(3599)));
        assert!(!token.is_expiring(now));
        assert!(token.is_expiring(now + Duration::from_secs(3599 - 60)));

        let refused = parse_answer(
            StatusCode::BAD_REQUEST,
            br#"{"error": "invalid_grant", "error_description": "secret s3cr3t is bad"}"#,
            &from,
            "http://e",
            now,
        )
        .expect_err("refused");
        let text = refused.to_string();
        assert!(
            text.contains("invalid_grant") && text.contains("400"),
            "{text}"
        );
        assert!(!text.contains("s3cr3t"), "{text}");

        let empty = parse_answer(
            StatusCode::OK,
            br#"{"access_token": ""}"#,
            &from,
            "http://e",
            now,
        );
        assert!(matches!(empty, Err(CredentialError::Answer { .. })));
        assert_eq!(crate::oauth::error_code("a b"), None);
    }
}
