//! [`Session`]: the endpoint and the credentials of one fetch, and the JSON API calls it makes:
//! an object's metadata, a folder's listing page after page, and what a refusal means.
//!
//! ```text
//! GET {endpoint}/storage/v1/b/{bucket}/o/{object}                    an object's metadata
//! GET {endpoint}/storage/v1/b/{bucket}/o?prefix=..&pageToken=..      a page of the listing
//! GET {endpoint}/storage/v1/b/{bucket}                               after a 404: is the
//!                                                                    bucket there?
//! GET {endpoint}/download/storage/v1/b/{bucket}/o/{object}?alt=media&generation=N
//!                                                                    the bytes (place.rs)
//! ```
//!
//! Every request carries `Authorization: Bearer <token>` with the token held now, when there
//! are credentials; the token is replaced before it expires and after a `401` or `403`.

use std::fmt::Write as _;
use std::sync::Arc;

use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderValue};
use reqwest::{Client, StatusCode};
use serde::Deserialize;

use crate::error::{Error, Result, SourceFailure, no_answer, source_failure as failure};
use mp_credentials::gcp::{self as credentials, GcpCredentials, Resolved, Scope, Tried};
use mp_transfer::{BoxFuture, Call, Downloader, Reauthorize};

/// The largest answer read whole: a listing page of 1,000 objects is well under this.
const ANSWER_LIMIT: usize = 16 << 20;

/// Objects a listing page holds at most: Cloud Storage's own limit, asked for explicitly so
/// that every server pages alike.
const PAGE_SIZE: &str = "1000";

/// The metadata a listing or an object's `GET` gives, of the fields read.
const FIELDS: &str = "name,size,generation,etag,crc32c,md5Hash";

/// One object, as the JSON API describes it.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Object {
    pub(super) name: String,
    /// A decimal string, as the API writes 64-bit numbers.
    #[serde(default)]
    pub(super) size: Option<String>,
    #[serde(default)]
    pub(super) generation: Option<String>,
    #[serde(default)]
    pub(super) etag: Option<String>,
    #[serde(default)]
    pub(super) crc32c: Option<String>,
    #[serde(default)]
    pub(super) md5_hash: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Page {
    #[serde(default)]
    items: Vec<Object>,
    #[serde(default)]
    next_page_token: Option<String>,
}

/// Who the requests are from.
pub(super) enum Identity {
    /// `--no-sign-request`: no credentials looked for.
    Unsigned,
    /// The chain found none: every provider, and why.
    Anonymous(Vec<Tried>),
    /// A token's bearer.
    Token(Box<GcpCredentials>),
}

/// The endpoint and credentials of one fetch.
pub(super) struct Session {
    /// The endpoint's base URL, with no trailing `/`.
    pub(super) base: String,
    /// `scheme://host[:port]`, for messages and ids.
    pub(super) endpoint: String,
    identity: Identity,
    retry: mp_transfer::RetryPolicy,
}

impl Session {
    /// A session with `base`, with credentials from the chain unless `unsigned` or `trusted`
    /// is false (an endpoint the reference names that is not the configured one gets no
    /// token: a bearer token is good anywhere it is shown).
    pub(super) fn start(
        engine: &Downloader,
        base: &url::Url,
        (unsigned, trusted, scope): (bool, bool, Scope),
        env: &super::Env,
    ) -> Result<Arc<Session>> {
        let identity = if unsigned {
            Identity::Unsigned
        } else if !trusted {
            Identity::Anonymous(vec![Tried {
                provider: "endpoint",
                reason: format!(
                    "no token is sent to `{}`, which is not the configured endpoint",
                    super::endpoint_id(base)
                ),
            }])
        } else {
            let env = &**env;
            let found = engine
                .block_on(credentials::resolve(
                    engine.api_client(),
                    &|name| env(name),
                    scope,
                ))
                .map_err(|e| credential_error(&e))?;
            match found {
                Resolved::Found(credentials) => {
                    tracing::debug!(from = %credentials.source(), "Cloud Storage requests carry a token");
                    Identity::Token(credentials)
                }
                Resolved::Anonymous { tried } => {
                    tracing::debug!("Cloud Storage requests go anonymous");
                    Identity::Anonymous(tried)
                }
            }
        };
        Ok(Arc::new(Session {
            base: base.as_str().trim_end_matches('/').to_owned(),
            endpoint: super::endpoint_id(base),
            identity,
            retry: engine.config().retry,
        }))
    }

    /// `Authorization` with the token held now, if any.
    pub(super) fn authorization(&self) -> HeaderMap {
        let mut headers = HeaderMap::new();
        if let Identity::Token(credentials) = &self.identity
            && let Ok(mut value) =
                HeaderValue::from_str(&format!("Bearer {}", credentials.current().expose()))
        {
            value.set_sensitive(true);
            headers.insert(AUTHORIZATION, value);
        }
        headers
    }

    /// The retries of each request.
    pub(super) fn retry(&self) -> mp_transfer::RetryPolicy {
        self.retry
    }

    /// Replaces the token before a request when it expires within five minutes.
    pub(super) async fn fresh_token(&self, client: &Client) -> Result<()> {
        if let Identity::Token(credentials) = &self.identity {
            credentials
                .token(client)
                .await
                .map_err(|e| credential_error(&e))?;
        }
        Ok(())
    }

    /// Replaces the token after a refusal; whether there is a new one to try.
    pub(super) async fn refresh(&self, client: &Client) -> bool {
        let Identity::Token(credentials) = &self.identity else {
            return false;
        };
        match credentials.refresh(client, &credentials.current()).await {
            Ok(_) => true,
            Err(e) => {
                tracing::debug!(error = %e, "could not get a new Google access token");
                false
            }
        }
    }

    /// The metadata of `object` in `bucket`.
    pub(super) fn object(&self, engine: &Downloader, bucket: &str, object: &str) -> Result<Object> {
        let url = format!(
            "{}/storage/v1/b/{}/o/{}?fields={FIELDS}",
            self.base,
            encode(bucket),
            encode(object)
        );
        let (status, body) = self.get(engine, &url)?;
        if !status.is_success() {
            return Err(self.refusal(engine, status, bucket, Some(object)));
        }
        serde_json::from_slice(&body)
            .map_err(|e| protocol(format!("the metadata of `{object}` does not parse: {e}")))
    }

    /// Every object under `prefix` in `bucket`, page after page.
    pub(super) fn list(
        &self,
        engine: &Downloader,
        bucket: &str,
        prefix: &str,
    ) -> Result<Vec<Object>> {
        let mut objects = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut url =
                url::Url::parse(&format!("{}/storage/v1/b/{}/o", self.base, encode(bucket)))
                    .map_err(|e| protocol(format!("the listing's URL: {e}")))?;
            url.query_pairs_mut()
                .append_pair("prefix", prefix)
                .append_pair("maxResults", PAGE_SIZE)
                .append_pair("fields", &format!("nextPageToken,items({FIELDS})"));
            if let Some(t) = &token {
                url.query_pairs_mut().append_pair("pageToken", t);
            }
            let (status, body) = self.get(engine, url.as_str())?;
            if !status.is_success() {
                return Err(self.refusal(engine, status, bucket, None));
            }
            let page: Page = serde_json::from_slice(&body)
                .map_err(|e| protocol(format!("a listing page does not parse: {e}")))?;
            objects.extend(page.items);
            match page.next_page_token.filter(|t| !t.is_empty()) {
                Some(next) if Some(&next) != token.as_ref() => token = Some(next),
                _ => break,
            }
        }
        Ok(objects)
    }

    /// The whole of the small object `object` in `bucket` (a pushed folder's manifest), at
    /// most 16 MiB.
    pub(super) fn read_small(
        &self,
        engine: &Downloader,
        bucket: &str,
        object: &str,
    ) -> Result<Vec<u8>> {
        let url = format!(
            "{}/download/storage/v1/b/{}/o/{}?alt=media",
            self.base,
            encode(bucket),
            encode(object)
        );
        let (status, body) = self.get(engine, &url)?;
        if !status.is_success() {
            return Err(self.refusal(engine, status, bucket, Some(object)));
        }
        Ok(body)
    }

    /// Writes the object `object` in `bucket` in one media upload, each attempt's body made by
    /// `body` (with its length), through the engine's one request loop. The upload's own
    /// check (`check`) says why a body stopped short, before the store's answer does.
    pub(super) fn upload(
        &self,
        engine: &Downloader,
        bucket: &str,
        object: &str,
        body: &(dyn Fn() -> (reqwest::Body, u64, Option<crate::object_store::UploadCheck>) + Sync),
    ) -> Result<()> {
        let mut url = url::Url::parse(&format!(
            "{}/upload/storage/v1/b/{}/o",
            self.base,
            encode(bucket)
        ))
        .map_err(|e| protocol(format!("the upload's URL: {e}")))?;
        url.query_pairs_mut()
            .append_pair("uploadType", "media")
            .append_pair("name", object);
        let client = engine.client();
        let latest: std::sync::Mutex<Option<crate::object_store::UploadCheck>> =
            std::sync::Mutex::new(None);
        let sent = engine.block_on(async {
            if let Identity::Token(credentials) = &self.identity {
                credentials
                    .token(client)
                    .await
                    .map_err(|e| credential_error(&e))?;
            }
            let display = format!("{}/{bucket}/{object}", self.endpoint);
            let call = Call::new(&display, |c| {
                let (body, len, check) = body();
                *latest
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = check;
                c.post(url.clone())
                    .headers(self.authorization())
                    .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
                    .header(reqwest::header::CONTENT_LENGTH, len)
                    .body(body)
            })
            .authorized_by(self);
            let response = mp_transfer::call(client, self.retry, &call, &|| None).await;
            Ok::<_, Error>(response)
        })?;
        if let Some(stopped) = latest
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .as_ref()
            .and_then(crate::object_store::UploadCheck::take)
        {
            return Err(stopped);
        }
        let response = sent.map_err(|e| self.unreachable(e))?;
        let status = response.status();
        if !status.is_success() {
            return Err(self.refusal(engine, status, bucket, Some(object)));
        }
        Ok(())
    }

    /// A `GET` of `url` through the engine's one request loop: its status and body.
    fn get(&self, engine: &Downloader, url: &str) -> Result<(StatusCode, Vec<u8>)> {
        let client = engine.api_client();
        engine.block_on(async {
            if let Identity::Token(credentials) = &self.identity {
                credentials
                    .token(client)
                    .await
                    .map_err(|e| credential_error(&e))?;
            }
            let display = url.split('?').next().unwrap_or(url);
            let call = Call::new(display, |c| c.get(url).headers(self.authorization()))
                .authorized_by(self);
            let response = mp_transfer::call(client, self.retry, &call, &|| None)
                .await
                .map_err(|e| self.unreachable(e))?;
            let status = response.status();
            let body = mp_transfer::read_bounded(response, ANSWER_LIMIT)
                .await
                .map_err(|_| protocol(format!("the answer to `{display}` did not come whole")))?;
            Ok((status, body))
        })
    }

    /// What a refusal of a request about `object` (or the listing) in `bucket` means. A `404`
    /// asks whether the bucket is there, through `engine`: never from inside its runtime.
    pub(super) fn refusal(
        &self,
        engine: &Downloader,
        status: StatusCode,
        bucket: &str,
        object: Option<&str>,
    ) -> Error {
        let what = match object {
            Some(o) => format!("object `{o}` in bucket `{bucket}`"),
            None => format!("the objects of bucket `{bucket}`"),
        };
        let at = &self.endpoint;
        match status {
            StatusCode::NOT_FOUND => {
                let bucket_there = object.is_none()
                    || self
                        .get(
                            engine,
                            &format!("{}/storage/v1/b/{}", self.base, encode(bucket)),
                        )
                        .map_or(true, |(s, _)| s != StatusCode::NOT_FOUND);
                let message = if bucket_there && let Some(o) = object {
                    format!("no object `{o}` in bucket `{bucket}` at `{at}`")
                } else {
                    format!("no bucket `{bucket}` at `{at}`")
                };
                failure(
                    SourceFailure::NotFound,
                    message,
                    "check the bucket's and the object's names (object names are case-sensitive)",
                )
            }
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => match &self.identity {
                Identity::Token(credentials) => failure(
                    SourceFailure::Denied,
                    format!(
                        "`{at}` refused access to {what} (HTTP {status}) with the token of {}",
                        credentials.source()
                    ),
                    "grant that identity read access to the bucket (`roles/storage.objectViewer`), or use credentials that have it",
                ),
                Identity::Anonymous(tried) => failure(
                    SourceFailure::Denied,
                    format!(
                        "`{at}` refused anonymous access to {what} (HTTP {status}), and no Google credentials that work were found: {}",
                        Tried::list(tried)
                    ),
                    "set GOOGLE_APPLICATION_CREDENTIALS to a service account's key file, or run `gcloud auth application-default login`",
                ),
                Identity::Unsigned => failure(
                    SourceFailure::Denied,
                    format!("`{at}` refused unsigned access to {what} (HTTP {status})"),
                    "the bucket is not public: drop --no-sign-request to send Google credentials",
                ),
            },
            s => protocol(format!("`{at}` answered HTTP {s} for {what}")),
        }
    }

    /// A call that got no answer: the endpoint is down, unreachable, or untrusted.
    pub(super) fn unreachable(&self, e: mp_transfer::Error) -> Error {
        no_answer(
            e,
            &self.endpoint,
            "check the endpoint, or add its CA to the system's trust store",
            |reason| {
                (
                    format!("`{}` does not answer: {reason}", self.endpoint),
                    "check --endpoint-url, STORAGE_EMULATOR_HOST and the network",
                )
            },
        )
    }
}

impl Reauthorize for Session {
    fn reauthorize<'a>(
        &'a self,
        client: &'a Client,
        _status: StatusCode,
        _headers: &'a HeaderMap,
    ) -> BoxFuture<'a, mp_transfer::Result<bool>> {
        Box::pin(async move { Ok(self.refresh(client).await) })
    }
}

/// The endpoint answered something the JSON API does not.
pub(super) fn protocol(message: String) -> Error {
    failure(
        SourceFailure::Protocol,
        message,
        "check --endpoint-url or STORAGE_EMULATOR_HOST: it should name a Cloud Storage endpoint",
    )
}

/// Credentials that could not be had, with the chain's hint.
fn credential_error(e: &credentials::CredentialError) -> Error {
    Error::Source {
        failure: if e.is_transient() {
            SourceFailure::Unreachable
        } else {
            SourceFailure::Denied
        },
        message: with_causes(e),
        hint: Some(e.hint()),
    }
}

/// `e` and its causes, `: `-separated.
fn with_causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}

/// `text` percent-encoded as one path segment: every byte but the unreserved ones.
pub(super) fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_names_are_one_encoded_segment() {
        assert_eq!(encode("a/b c+d%é.gguf"), "a%2Fb%20c%2Bd%25%C3%A9.gguf");
        assert_eq!(encode("x-y_z~1"), "x-y_z~1");
    }
}
