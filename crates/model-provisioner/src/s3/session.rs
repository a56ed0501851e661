//! [`Session`]: the credentials of one fetch or push, and the bucket its requests go to.
//!
//! Every request is signed afresh, as a presigned URL that lives [`SIGNATURE_LIFETIME`], and
//! goes through the engine's one request loop ([`Session::send`]). Credentials that can change
//! (a role's, the metadata service's, a process's) are resolved again before they expire and
//! after a `401` or `403`. A refused request becomes an error by its status and S3's error code
//! ([`Session::refusal`]); a `HEAD` gives an object's size, `ETag` and sha256 checksum. Small
//! answers (an error, a listing page, an upload's XML) are read whole, within [`ANSWER_LIMIT`].

use std::sync::{PoisonError, RwLock};
use std::time::{Duration, SystemTime};

use catalog_core::Digest;
use reqwest::header::{HeaderMap, HeaderValue};
use reqwest::{Client, RequestBuilder, StatusCode};
use rusty_s3::{Bucket, S3Action as _};

use super::{Env, S3Fetcher, endpoint_id};
use crate::error::{Error, Result};
use mp_credentials::aws::{self as credentials, AwsCredentials, S3Config, Source};
use mp_transfer::{self, BodyError, BoxFuture, Call, Downloader, Reauthorize};

/// How long a presigned request stays valid: long enough for one request to start.
pub(super) const SIGNATURE_LIFETIME: Duration = Duration::from_secs(15 * 60);

/// The largest answer read whole: a listing page of 1,000 keys is well under 1 MiB.
const ANSWER_LIMIT: usize = 16 << 20;

/// The credentials of one fetch, shared by its requests, and the bucket they go to.
pub(super) struct Session<'a> {
    config: &'a S3Config,
    env: &'a Env,
    credentials: RwLock<Option<AwsCredentials>>,
    source: RwLock<Option<Source>>,
    refreshing: tokio::sync::Mutex<()>,
    /// `scheme://host[:port]`, for messages and ids.
    pub(super) endpoint: String,
    pub(super) bucket: Bucket,
    retry: mp_transfer::RetryPolicy,
    /// The cap on bytes per second that uploads read their bodies under.
    pub(super) rate: Option<mp_transfer::RateLimit>,
}

impl S3Fetcher {
    /// A session for `bucket` at `endpoint`, with no credentials resolved yet.
    pub(super) fn session<'a>(
        &'a self,
        config: &'a S3Config,
        endpoint: &url::Url,
        bucket: Bucket,
        engine: &Downloader,
    ) -> Session<'a> {
        Session {
            config,
            env: &self.env,
            credentials: RwLock::new(None),
            source: RwLock::new(None),
            refreshing: tokio::sync::Mutex::new(()),
            endpoint: endpoint_id(endpoint),
            bucket,
            retry: engine.config().retry,
            rate: engine.config().rate_limit.clone(),
        }
    }
}

impl Session<'_> {
    /// Resolves the credentials, once.
    pub(super) async fn start(&self, client: &Client) -> Result<()> {
        let env = &**self.env;
        let found = credentials::resolve(client, self.config, &|name| env(name))
            .await
            .map_err(Error::S3Credentials)?;
        if let Some((credentials, source)) = found {
            tracing::debug!(%source, "signing S3 requests");
            *self
                .credentials
                .write()
                .unwrap_or_else(PoisonError::into_inner) = Some(credentials);
            *self.source.write().unwrap_or_else(PoisonError::into_inner) = Some(source);
        } else {
            tracing::debug!("S3 requests go unsigned (--no-sign-request)");
        }
        Ok(())
    }

    /// Resolves the credentials again when they can change (temporary ones from a role, the
    /// metadata service, a process). Returns whether they did.
    pub(super) async fn refresh(&self, client: &Client) -> bool {
        let refreshable = matches!(
            *self.source.read().unwrap_or_else(PoisonError::into_inner),
            Some(
                Source::WebIdentity
                    | Source::Container
                    | Source::InstanceMetadata
                    | Source::CredentialProcess(_)
            )
        );
        if !refreshable {
            return false;
        }
        let _one = self.refreshing.lock().await;
        match self.start(client).await {
            Ok(()) => true,
            Err(e) => {
                tracing::debug!(error = %e, "could not refresh the AWS credentials");
                false
            }
        }
    }

    /// Refreshes credentials that are about to expire, before a request that must not fail.
    async fn refresh_if_expiring(&self, client: &Client) {
        let expiring = self
            .credentials
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .is_some_and(|c| c.is_expiring(SystemTime::now()));
        if expiring {
            self.refresh(client).await;
        }
    }

    pub(super) fn signing(&self) -> Option<rusty_s3::Credentials> {
        self.credentials
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .map(AwsCredentials::signing)
    }

    /// A presigned `GET` of `key`.
    pub(super) fn get_url(&self, key: &str) -> url::Url {
        let credentials = self.signing();
        self.bucket
            .get_object(credentials.as_ref(), key)
            .sign(SIGNATURE_LIFETIME)
    }

    /// Sends what `build` makes (with a fresh signature each time) through the engine's one
    /// request loop: transient failures retried, credentials refreshed once after a refusal.
    pub(super) async fn send(
        &self,
        client: &Client,
        what: &str,
        build: impl Fn(&Client) -> RequestBuilder + Send + Sync,
    ) -> Result<reqwest::Response> {
        self.send_until(client, what, build, &|| None).await
    }

    /// [`Self::send`], but after each attempt an error from `stopped` (a request body that
    /// could not be read, or did not verify) ends it: no retry mends that.
    pub(super) async fn send_until(
        &self,
        client: &Client,
        what: &str,
        build: impl Fn(&Client) -> RequestBuilder + Send + Sync,
        stopped: &(dyn Fn() -> Option<Error> + Sync),
    ) -> Result<reqwest::Response> {
        self.refresh_if_expiring(client).await;
        let location = format!("{}/{}", self.endpoint, what);
        let call = Call::new(&location, build).authorized_by(self);
        let stopped = || stopped().map(mp_transfer::Error::from);
        mp_transfer::call(client, self.retry, &call, &stopped)
            .await
            .map_err(Error::from)
            .map_err(|e| match e {
                // No answer at all: the endpoint is down or unreachable, or its certificate
                // is not one this machine trusts.
                Error::Transfer(mp_transfer::Error::Download {
                    status: None,
                    reason,
                    source,
                    ..
                }) => match source
                    .as_deref()
                    .and_then(|s| mp_transfer::untrusted_certificate(s))
                {
                    Some(problem) => Error::S3Untrusted {
                        endpoint: self.endpoint.clone(),
                        reason: problem,
                    },
                    None => Error::S3Unreachable {
                        endpoint: self.endpoint.clone(),
                        reason,
                    },
                },
                other => other,
            })
    }

    /// Size, `ETag` and checksum of `key`.
    pub(super) async fn head(&self, client: &Client, key: &str) -> Result<Head> {
        let response = self
            .send(client, key, |c| {
                let credentials = self.signing();
                let mut head = self.bucket.head_object(credentials.as_ref(), key);
                head.headers_mut().insert("x-amz-checksum-mode", "ENABLED");
                c.head(head.sign(SIGNATURE_LIFETIME))
                    .header("x-amz-checksum-mode", HeaderValue::from_static("ENABLED"))
            })
            .await?;
        let status = response.status();
        if !status.is_success() {
            // A `HEAD` has no body to say why: a one-byte `GET` does.
            let code = self.error_code_of_get(client, key).await;
            return Err(self.refusal(status, code.as_deref(), Some(key), false));
        }
        let h = response.headers();
        let get = |name: &str| h.get(name).and_then(|v| v.to_str().ok());
        Ok(Head {
            size: get("content-length").and_then(|s| s.parse().ok()),
            etag: get("etag").map(|e| e.trim_matches('"').to_owned()),
            sha256: full_object_sha256(h),
        })
    }

    /// The error code S3 gives for a `GET` of the first byte of `key`, if any.
    async fn error_code_of_get(&self, client: &Client, key: &str) -> Option<String> {
        let response = self
            .send(client, key, |c| {
                c.get(self.get_url(key))
                    .header(reqwest::header::RANGE, "bytes=0-0")
            })
            .await
            .ok()?;
        error_code(&self.body_text(response, "an error").await.ok()?)
    }

    /// The whole of the small object `key`, at most `limit` bytes.
    pub(super) async fn read_small(
        &self,
        client: &Client,
        key: &str,
        limit: usize,
    ) -> Result<Vec<u8>> {
        let response = self.send(client, key, |c| c.get(self.get_url(key))).await?;
        if !response.status().is_success() {
            return Err(self.refused(response, key, false).await);
        }
        mp_transfer::read_bounded(response, limit)
            .await
            .map_err(|e| match e {
                BodyError::TooLarge => {
                    self.protocol(format!("the object `{key}` is larger than {limit} bytes"))
                }
                BodyError::Failed(e) => Error::S3Unreachable {
                    endpoint: self.endpoint.clone(),
                    reason: format!("the body of `{key}` failed: {e}"),
                },
            })
    }

    /// The error for a refused request, by status and S3's error code; `write` for a push's.
    pub(super) fn refusal(
        &self,
        status: StatusCode,
        code: Option<&str>,
        key: Option<&str>,
        write: bool,
    ) -> Error {
        let bucket = self.bucket.name().to_owned();
        let key = key.unwrap_or_default().to_owned();
        match (status, code) {
            (_, Some("NoSuchBucket")) => Error::S3NotFound {
                what: format!("no bucket `{bucket}` at `{}`", self.endpoint),
            },
            (_, Some("NoSuchKey")) | (StatusCode::NOT_FOUND, _) => Error::S3NotFound {
                what: format!(
                    "no object `{key}` in bucket `{bucket}` at `{}`",
                    self.endpoint
                ),
            },
            (
                _,
                Some(
                    c @ ("SignatureDoesNotMatch"
                    | "AuthorizationHeaderMalformed"
                    | "RequestTimeTooSkewed"
                    | "AuthorizationQueryParametersError"),
                ),
            ) => Error::S3SignatureMismatch {
                endpoint: self.endpoint.clone(),
                code: c.to_owned(),
            },
            (StatusCode::FORBIDDEN | StatusCode::UNAUTHORIZED, code) => Error::S3Denied {
                bucket,
                key,
                endpoint: self.endpoint.clone(),
                code: code.unwrap_or("AccessDenied").to_owned(),
                write,
            },
            (status, code) => Error::S3Protocol {
                endpoint: self.endpoint.clone(),
                reason: format!(
                    "HTTP {status}{}",
                    code.map(|c| format!(" ({c})")).unwrap_or_default()
                ),
            },
        }
    }

    /// The error for a refused request for `key` (a write when `write`), from its status and
    /// body.
    pub(super) async fn refused(
        &self,
        response: reqwest::Response,
        key: &str,
        write: bool,
    ) -> Error {
        let status = response.status();
        let code = self
            .body_text(response, "an error")
            .await
            .ok()
            .and_then(|b| error_code(&b));
        self.refusal(status, code.as_deref(), Some(key), write)
    }

    /// The whole body of a small answer (an error, a listing page, an upload's XML), as text,
    /// at most [`ANSWER_LIMIT`] bytes; `what` it is names it in errors.
    pub(super) async fn body_text(
        &self,
        response: reqwest::Response,
        what: &str,
    ) -> Result<String> {
        let body = mp_transfer::read_bounded(response, ANSWER_LIMIT)
            .await
            .map_err(|e| match e {
                mp_transfer::BodyError::TooLarge => {
                    self.protocol(format!("{what} larger than {} MiB", ANSWER_LIMIT >> 20))
                }
                mp_transfer::BodyError::Failed(e) => Error::S3Unreachable {
                    endpoint: self.endpoint.clone(),
                    reason: format!("the body of {what} failed: {e}"),
                },
            })?;
        Ok(String::from_utf8_lossy(&body).into_owned())
    }

    pub(super) fn protocol(&self, reason: String) -> Error {
        Error::S3Protocol {
            endpoint: self.endpoint.clone(),
            reason,
        }
    }
}

impl Reauthorize for Session<'_> {
    /// Credentials that can change (a role's, the metadata service's, a process's) are
    /// resolved again after a `401` or `403`.
    fn reauthorize<'a>(
        &'a self,
        client: &'a Client,
        _status: StatusCode,
        _headers: &'a HeaderMap,
    ) -> BoxFuture<'a, mp_transfer::Result<bool>> {
        Box::pin(async move { Ok(self.refresh(client).await) })
    }
}

/// What a `HEAD` of an object says.
#[derive(Debug, Default)]
pub(super) struct Head {
    pub(super) size: Option<u64>,
    pub(super) etag: Option<String>,
    pub(super) sha256: Option<Digest>,
}

/// The sha256 in `x-amz-checksum-sha256` (base64), when it is the whole object's: a checksum
/// of parts (`…-N`, or `x-amz-checksum-type: COMPOSITE`) is not.
fn full_object_sha256(headers: &HeaderMap) -> Option<Digest> {
    use base64::Engine as _;
    let get = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if get("x-amz-checksum-type").is_some_and(|t| t.eq_ignore_ascii_case("COMPOSITE")) {
        return None;
    }
    let value = get("x-amz-checksum-sha256")?;
    if value.contains('-') {
        return None;
    }
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(value.trim())
        .ok()?;
    <[u8; 32]>::try_from(bytes)
        .ok()
        .map(Digest::sha256_from_bytes)
}

/// An S3 error body, `<Error><Code>…</Code>…</Error>`: the part we read.
#[derive(serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct S3Error {
    code: Option<String>,
}

/// The `Code` of an S3 error body, when it is one and the code is a short identifier.
pub(super) fn error_code(body: &str) -> Option<String> {
    let error: S3Error = quick_xml::de::from_str(body).ok()?;
    let code = error.code?;
    let code = code.trim();
    (!code.is_empty() && code.len() < 64 && code.chars().all(|c| c.is_ascii_alphanumeric()))
        .then(|| code.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_full_object_sha256_checksum_is_a_digest() {
        let sha = Digest::sha256_of(b"hello");
        let b64 = {
            use base64::Engine as _;
            base64::engine::general_purpose::STANDARD.encode(sha.bytes())
        };
        let headers = |pairs: &[(&'static str, &str)]| {
            let mut h = HeaderMap::new();
            for (k, v) in pairs {
                h.insert(*k, HeaderValue::from_str(v).expect("a header value"));
            }
            h
        };
        assert_eq!(
            full_object_sha256(&headers(&[("x-amz-checksum-sha256", &b64)])),
            Some(sha.clone())
        );
        assert_eq!(
            full_object_sha256(&headers(&[
                ("x-amz-checksum-sha256", &b64),
                ("x-amz-checksum-type", "FULL_OBJECT")
            ])),
            Some(sha)
        );
        assert_eq!(
            full_object_sha256(&headers(&[
                ("x-amz-checksum-sha256", &b64),
                ("x-amz-checksum-type", "COMPOSITE")
            ])),
            None
        );
        assert_eq!(
            full_object_sha256(&headers(&[("x-amz-checksum-sha256", &format!("{b64}-3"))])),
            None
        );
        assert_eq!(
            full_object_sha256(&headers(&[("x-amz-checksum-sha256", "xx")])),
            None
        );
    }

    #[test]
    fn error_codes_come_from_the_body_and_nothing_else() {
        let body = "<?xml version=\"1.0\"?><Error><Code>SignatureDoesNotMatch</Code><Message>m</Message></Error>";
        assert_eq!(error_code(body).as_deref(), Some("SignatureDoesNotMatch"));
        assert_eq!(error_code("<Error><Code>a b</Code></Error>"), None);
        assert_eq!(error_code("garbage"), None);
        // A body cut short is not an error body.
        assert_eq!(error_code("<Error><Code>NoSuchKey</Code>"), None);
    }
}
