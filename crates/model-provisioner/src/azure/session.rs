//! One fetch's requests to a container: each built afresh and authorised as the credentials
//! found say (a SAS query, a `SharedKey` signature with its own date, the bearer token in force),
//! sent through the engine's one request loop; a blob's properties, a folder's listing page
//! after page, and what a refusal means.

use std::sync::Arc;

use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderName, HeaderValue};
use reqwest::{Client, Method, RequestBuilder, StatusCode};
use serde::Deserialize;

pub(super) use crate::error::source_failure as failure;
use crate::error::{Error, Result, SourceFailure, no_answer, printable};
use mp_credentials::azure::{API_VERSION, AzureCredentialError, Credential, Found, Provider};
use mp_transfer::{BodyError, BoxFuture, Call, Reauthorize, RetryPolicy};

/// The most one listing page, or an error's body, may weigh.
const ANSWER_LIMIT: usize = 16 << 20;

const X_MS_VERSION: HeaderName = HeaderName::from_static("x-ms-version");

/// What a `HEAD` of a blob, or its entry in a listing, says.
#[derive(Debug, Clone, Default)]
pub(super) struct Props {
    pub(super) size: Option<u64>,
    /// As the service writes it, quotes included: what `If-Match` sends back.
    pub(super) etag: Option<String>,
    /// `Content-MD5`, base64, when the blob has one.
    pub(super) md5: Option<String>,
}

/// One fetch's view of a container.
pub(super) struct Session {
    pub(super) account: String,
    pub(super) container: String,
    /// `…/<container>`, where blob names are appended.
    base: url::Url,
    /// `scheme://host[:port]`, as messages name it.
    pub(super) endpoint: String,
    found: Found,
    retry: RetryPolicy,
    /// The client a token is fetched again with, in the background, before it expires.
    client: Client,
}

impl Session {
    pub(super) fn new(
        account: &str,
        container: &str,
        base: url::Url,
        found: Found,
        retry: RetryPolicy,
        client: Client,
    ) -> Self {
        Session {
            account: account.to_owned(),
            container: container.to_owned(),
            endpoint: base.origin().ascii_serialization(),
            base,
            found,
            retry,
            client,
        }
    }

    /// The URL of `blob`, or of the container when it is empty, with `query`.
    pub(super) fn url(&self, blob: &str, query: &[(&str, &str)]) -> url::Url {
        let mut url = self.base.clone();
        if !blob.is_empty() {
            let mut segments = url.path_segments_mut().expect("an http(s) URL has a path");
            segments.pop_if_empty();
            segments.extend(blob.split('/'));
        }
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        url
    }

    /// `method url` carrying `headers`, authorised now: the SAS appended to the query, a
    /// `SharedKey` signature with this moment's date, or the bearer token in force (fetched again
    /// in the background when it expires within five minutes).
    pub(super) fn build(
        &self,
        client: &Client,
        method: Method,
        mut url: url::Url,
        mut headers: HeaderMap,
    ) -> RequestBuilder {
        headers.insert(X_MS_VERSION, HeaderValue::from_static(API_VERSION));
        match &self.found.credential {
            Credential::Sas(sas) => {
                let query = match url.query() {
                    Some(q) if !q.is_empty() => format!("{q}&{}", sas.expose()),
                    _ => sas.expose().to_owned(),
                };
                url.set_query(Some(&query));
            }
            Credential::SharedKey(key) => key.sign(method.as_str(), &url, &mut headers),
            Credential::Token(token) => {
                if token.expiring()
                    && let Ok(runtime) = tokio::runtime::Handle::try_current()
                {
                    let (token, client) = (Arc::clone(token), self.client.clone());
                    runtime.spawn(async move {
                        if let Err(e) = token.token(&client).await {
                            tracing::debug!(error = %e, "could not refresh the Azure token");
                        }
                    });
                }
                if let Some(bearer) = token.current()
                    && let Ok(mut value) =
                        HeaderValue::from_str(&format!("Bearer {}", bearer.expose()))
                {
                    value.set_sensitive(true);
                    headers.insert(AUTHORIZATION, value);
                }
            }
            Credential::Anonymous => {}
        }
        client.request(method, url).headers(headers)
    }

    /// Fetches a token again after a refusal; whether there is a new one to send.
    pub(super) async fn refresh(&self, client: &Client) -> bool {
        let Credential::Token(token) = &self.found.credential else {
            return false;
        };
        match token.refresh(client).await {
            Ok(_) => true,
            Err(e) => {
                tracing::debug!(error = %e, "could not refresh the Azure token");
                false
            }
        }
    }

    /// Sends what `build` makes through the engine's request loop; a token is fetched again
    /// once after a refusal.
    async fn send(
        &self,
        client: &Client,
        what: &str,
        build: impl Fn(&Client) -> RequestBuilder + Send + Sync,
    ) -> Result<reqwest::Response> {
        let display = format!("{}/{}/{}", self.endpoint, self.container, what);
        let call = Call::new(&display, build).authorized_by(self);
        mp_transfer::call(client, self.retry, &call, &|| None)
            .await
            .map_err(|e| self.unanswered(e))
    }

    /// A transfer error with no answer, as this source's: unreachable or untrusted.
    fn unanswered(&self, e: mp_transfer::Error) -> Error {
        no_answer(
            e,
            &self.endpoint,
            "add the CA that signed it to this machine's roots",
            |reason| {
                (
                    format!(
                        "Azure Blob Storage at `{}` did not answer: {reason}",
                        self.endpoint
                    ),
                    "check the account name, `--endpoint-url` and the network, then run the same command again",
                )
            },
        )
    }

    /// Size, `ETag` and `Content-MD5` of `blob`.
    pub(super) async fn head(&self, client: &Client, blob: &str) -> Result<Props> {
        let url = self.url(blob, &[]);
        let response = self
            .send(client, blob, |c| {
                self.build(c, Method::HEAD, url.clone(), HeaderMap::new())
            })
            .await?;
        let status = response.status();
        let headers = response.headers();
        if !status.is_success() {
            return Err(self.refusal(status, error_code(headers, None).as_deref(), Some(blob)));
        }
        let get = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        Ok(Props {
            size: get("content-length").and_then(|s| s.parse().ok()),
            etag: get("etag").map(str::to_owned),
            md5: get("content-md5").map(str::to_owned),
        })
    }

    /// The whole of the small blob `blob` (a pushed folder's manifest), at most 16 MiB.
    pub(super) async fn read_small(&self, client: &Client, blob: &str) -> Result<Vec<u8>> {
        let url = self.url(blob, &[]);
        let response = self
            .send(client, blob, |c| {
                self.build(c, Method::GET, url.clone(), HeaderMap::new())
            })
            .await?;
        self.accepted(&response, blob)?;
        mp_transfer::read_bounded(response, ANSWER_LIMIT)
            .await
            .map_err(|_| self.protocol(&format!("`{blob}` did not come whole")))
    }

    /// Writes the block blob `blob` in one `Put Blob`, each attempt's body made by `body` (with
    /// its length and, for a model's file, the check that says why it stopped short, which comes
    /// before the service's answer).
    pub(super) async fn put(
        &self,
        client: &Client,
        blob: &str,
        body: &(dyn Fn() -> (reqwest::Body, u64, Option<crate::object_store::UploadCheck>) + Sync),
    ) -> Result<()> {
        let url = self.url(blob, &[]);
        let latest: std::sync::Mutex<Option<crate::object_store::UploadCheck>> =
            std::sync::Mutex::new(None);
        let sent = self
            .send(client, blob, |c| {
                let (body, len, check) = body();
                *latest
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = check;
                let mut headers = HeaderMap::new();
                headers.insert("x-ms-blob-type", HeaderValue::from_static("BlockBlob"));
                headers.insert(reqwest::header::CONTENT_LENGTH, HeaderValue::from(len));
                headers.insert(
                    reqwest::header::CONTENT_TYPE,
                    HeaderValue::from_static("application/octet-stream"),
                );
                self.build(c, Method::PUT, url.clone(), headers).body(body)
            })
            .await;
        if let Some(stopped) = latest
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .as_ref()
            .and_then(crate::object_store::UploadCheck::take)
        {
            return Err(stopped);
        }
        let response = sent?;
        self.accepted(&response, blob)?;
        Ok(())
    }

    /// `Put Block`: `bytes` as the uncommitted block `id` of the block blob `blob`, retried on
    /// its own from memory.
    pub(super) async fn put_block(
        &self,
        client: &Client,
        blob: &str,
        id: &str,
        bytes: bytes::Bytes,
    ) -> Result<()> {
        let url = self.url(blob, &[("comp", "block"), ("blockid", id)]);
        let response = self
            .send(client, blob, |c| {
                let mut headers = HeaderMap::new();
                headers.insert(
                    reqwest::header::CONTENT_LENGTH,
                    HeaderValue::from(bytes.len()),
                );
                self.build(c, Method::PUT, url.clone(), headers)
                    .body(bytes.clone())
            })
            .await?;
        self.accepted(&response, blob)?;
        Ok(())
    }

    /// `Put Block List`: commits the blocks `ids`, in order, as the block blob `blob`. Until
    /// then the blob is not there (or is still the blob it was), and uncommitted blocks that are
    /// never committed are dropped by the service (after a week).
    pub(super) async fn put_block_list(
        &self,
        client: &Client,
        blob: &str,
        ids: &[String],
    ) -> Result<()> {
        let url = self.url(blob, &[("comp", "blocklist")]);
        let mut body = String::from("<?xml version=\"1.0\" encoding=\"utf-8\"?><BlockList>");
        for id in ids {
            body.push_str("<Latest>");
            body.push_str(id);
            body.push_str("</Latest>");
        }
        body.push_str("</BlockList>");
        let response = self
            .send(client, blob, |c| {
                let mut headers = HeaderMap::new();
                headers.insert(
                    reqwest::header::CONTENT_LENGTH,
                    HeaderValue::from(body.len()),
                );
                headers.insert(
                    reqwest::header::CONTENT_TYPE,
                    HeaderValue::from_static("application/xml"),
                );
                self.build(c, Method::PUT, url.clone(), headers)
                    .body(body.clone())
            })
            .await?;
        self.accepted(&response, blob)?;
        Ok(())
    }

    /// Every blob under `prefix`, page after page: its name and properties.
    pub(super) async fn list(&self, client: &Client, prefix: &str) -> Result<Vec<(String, Props)>> {
        let mut blobs = Vec::new();
        let mut marker: Option<String> = None;
        loop {
            let mut query = vec![("restype", "container"), ("comp", "list")];
            if !prefix.is_empty() {
                query.push(("prefix", prefix));
            }
            if let Some(m) = &marker {
                query.push(("marker", m));
            }
            let url = self.url("", &query);
            let response = self
                .send(client, prefix, |c| {
                    self.build(c, Method::GET, url.clone(), HeaderMap::new())
                })
                .await?;
            let status = response.status();
            let code = error_code(response.headers(), None);
            let body = mp_transfer::read_bounded(response, ANSWER_LIMIT)
                .await
                .map_err(|e| match e {
                    BodyError::TooLarge => self.protocol("a listing page larger than 16 MiB"),
                    BodyError::Failed(e) => failure(
                        SourceFailure::Unreachable,
                        format!("the listing from `{}` was cut short: {e}", self.endpoint),
                        "run the same command again",
                    ),
                })?;
            let body = String::from_utf8_lossy(&body);
            if !status.is_success() {
                let code = code.or_else(|| error_code(&HeaderMap::new(), Some(&body)));
                return Err(self.refusal(status, code.as_deref(), None));
            }
            let page: EnumerationResults = quick_xml::de::from_str(&body)
                .map_err(|e| self.protocol(&format!("a listing that does not parse: {e}")))?;
            for blob in page.blobs.map(|b| b.blob).unwrap_or_default() {
                let p = blob.properties;
                blobs.push((
                    blob.name,
                    Props {
                        size: p.content_length,
                        etag: p.etag.filter(|e| !e.is_empty()).map(|e| {
                            if e.starts_with('"') {
                                e
                            } else {
                                format!("\"{e}\"")
                            }
                        }),
                        md5: p.content_md5.filter(|m| !m.is_empty()),
                    },
                ));
            }
            match page.next_marker.filter(|m| !m.is_empty()) {
                Some(next) if Some(&next) != marker.as_ref() => marker = Some(next),
                _ => break,
            }
        }
        Ok(blobs)
    }

    fn protocol(&self, reason: &str) -> Error {
        failure(
            SourceFailure::Protocol,
            format!(
                "Azure Blob Storage at `{}` answered {reason}",
                self.endpoint
            ),
            "check `--endpoint-url`: it should name a Blob service",
        )
    }

    /// `Ok` when `response` is a success; else the refusal of `blob` it is.
    fn accepted(&self, response: &reqwest::Response, blob: &str) -> Result<()> {
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let code = error_code(response.headers(), None);
        Err(self.refusal(status, code.as_deref(), Some(blob)))
    }

    /// What a refused request means, by its status and the service's error code.
    pub(super) fn refusal(
        &self,
        status: StatusCode,
        code: Option<&str>,
        blob: Option<&str>,
    ) -> Error {
        let (account, container, at) = (&self.account, &self.container, &self.endpoint);
        let what = match blob {
            Some(b) => format!(
                "blob `{}` in container `{container}` of account `{account}` at `{at}`",
                printable(b)
            ),
            None => format!("container `{container}` of account `{account}` at `{at}`"),
        };
        let shown = code.map(|c| format!(" (`{c}`)")).unwrap_or_default();
        match (status, code) {
            (_, Some("ContainerNotFound")) => failure(
                SourceFailure::NotFound,
                format!("no container `{container}` in account `{account}` at `{at}`"),
                "check the container's name",
            ),
            (_, Some("BlobNotFound")) | (StatusCode::NOT_FOUND, _) => failure(
                SourceFailure::NotFound,
                format!("not found on Azure Blob Storage: {what}{shown}"),
                "check the blob's path, or end a folder's with `/`",
            ),
            (_, Some("ResourceNotFound" | "AccountNotFound")) => failure(
                SourceFailure::NotFound,
                format!("no account `{account}` at `{at}`{shown}"),
                "check the account's name",
            ),
            // Azure says `AuthenticationFailed` for a signature it cannot check; Azurite says
            // `AuthorizationFailure` for a SharedKey signature that does not match.
            (StatusCode::FORBIDDEN | StatusCode::UNAUTHORIZED, Some(c))
                if c == "AuthenticationFailed"
                    || (c == "AuthorizationFailure"
                        && matches!(self.found.credential, Credential::SharedKey(_))) =>
            {
                let hint = match self.found.provider {
                    Provider::SasInReference | Provider::SasVariable => {
                        "check the SAS token: its signature, its start and expiry times, and this machine's clock"
                    }
                    Provider::ClientSecret
                    | Provider::WorkloadIdentity
                    | Provider::ManagedIdentity => {
                        "the token was refused: check the identity's tenant, and this machine's clock"
                    }
                    _ => {
                        "check the account key (AZURE_STORAGE_KEY, or the connection string's AccountKey) and this machine's clock: a signature more than 15 minutes off the service's time is refused"
                    }
                };
                failure(
                    SourceFailure::Denied,
                    format!(
                        "`{at}` refused the signature of the request for {what} (`{c}`; credentials from {})",
                        self.found.provider
                    ),
                    hint,
                )
            }
            (StatusCode::FORBIDDEN | StatusCode::UNAUTHORIZED, _)
                if matches!(self.found.credential, Credential::Anonymous)
                    && !self.found.tried.is_empty() =>
            {
                let none = AzureCredentialError::NotFound {
                    tried: self.found.tried.clone(),
                };
                failure(
                    SourceFailure::Denied,
                    format!("{none}, and `{at}` refused an anonymous request for {what}{shown}"),
                    &none.hint(),
                )
            }
            (StatusCode::FORBIDDEN | StatusCode::UNAUTHORIZED, _) => failure(
                SourceFailure::Denied,
                format!(
                    "access denied to {what}{shown}; credentials from {}",
                    self.found.provider
                ),
                if matches!(self.found.credential, Credential::Anonymous) {
                    "the container is not public: drop --no-sign-request and give credentials"
                } else {
                    "check that the credentials may read this container: a SAS needs `r` (and `l` for a folder), a role needs Storage Blob Data Reader"
                },
            ),
            (status, code) => failure(
                SourceFailure::Protocol,
                format!(
                    "Azure Blob Storage answered HTTP {status}{} for {what}",
                    code.map(|c| format!(" (`{c}`)")).unwrap_or_default()
                ),
                "run the same command again later",
            ),
        }
    }
}

impl Reauthorize for Session {
    /// A token is fetched again after a `401` or `403`; keys and SAS tokens cannot change.
    fn reauthorize<'a>(
        &'a self,
        client: &'a Client,
        _status: StatusCode,
        _headers: &'a HeaderMap,
    ) -> BoxFuture<'a, mp_transfer::Result<bool>> {
        Box::pin(async move { Ok(self.refresh(client).await) })
    }
}

/// The service's error code: `x-ms-error-code`, else the `Code` of an error body; only a
/// short identifier.
fn error_code(headers: &HeaderMap, body: Option<&str>) -> Option<String> {
    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct ErrorBody {
        code: Option<String>,
    }
    let code = headers
        .get("x-ms-error-code")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or_else(|| {
            quick_xml::de::from_str::<ErrorBody>(body?)
                .ok()
                .and_then(|e| e.code)
        })?;
    let code = code.trim();
    (!code.is_empty() && code.len() < 64 && code.chars().all(|c| c.is_ascii_alphanumeric()))
        .then(|| code.to_owned())
}

/// A page of List Blobs: the part we read.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct EnumerationResults {
    blobs: Option<Blobs>,
    next_marker: Option<String>,
}

#[derive(Deserialize)]
struct Blobs {
    #[serde(rename = "Blob", default)]
    blob: Vec<ListedBlob>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ListedBlob {
    name: String,
    properties: Properties,
}

#[derive(Deserialize)]
struct Properties {
    #[serde(rename = "Content-Length")]
    content_length: Option<u64>,
    #[serde(rename = "Etag")]
    etag: Option<String>,
    #[serde(rename = "Content-MD5")]
    content_md5: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listing_page_reads_names_sizes_etags_and_md5s()
    -> std::result::Result<(), quick_xml::DeError> {
        let page = r#"<?xml version="1.0" encoding="utf-8"?><EnumerationResults ServiceEndpoint="http://127.0.0.1:1/devstoreaccount1" ContainerName="models"><Prefix>m/</Prefix><Marker/><MaxResults>5000</MaxResults><Blobs><Blob><Name>m/a.gguf</Name><Properties><Creation-Time>Sat, 05 Dec 2026 03:00:00 GMT</Creation-Time><Etag>0x8DC1</Etag><Content-Length>12</Content-Length><Content-MD5>XrY7u+Ae7tCTyyK7j1rNww==</Content-MD5><BlobType>BlockBlob</BlobType></Properties><OrMetadata/></Blob><Blob><Name>m/b</Name><Properties><Etag>"0x8DC2"</Etag><Content-Length>0</Content-Length><Content-MD5/></Properties></Blob></Blobs><NextMarker>next</NextMarker></EnumerationResults>"#;
        let page: EnumerationResults = quick_xml::de::from_str(page)?;
        let blobs = page.blobs.map(|b| b.blob).unwrap_or_default();
        assert_eq!(blobs.len(), 2);
        assert_eq!(blobs[0].name, "m/a.gguf");
        assert_eq!(blobs[0].properties.content_length, Some(12));
        assert_eq!(
            blobs[0].properties.content_md5.as_deref(),
            Some("XrY7u+Ae7tCTyyK7j1rNww==")
        );
        assert_eq!(blobs[1].properties.etag.as_deref(), Some("\"0x8DC2\""));
        assert_eq!(page.next_marker.as_deref(), Some("next"));
        let empty: EnumerationResults = quick_xml::de::from_str(
            "<EnumerationResults><Blobs/><NextMarker/></EnumerationResults>",
        )?;
        assert!(empty.blobs.is_none_or(|b| b.blob.is_empty()));
        Ok(())
    }

    #[test]
    fn error_codes_come_from_the_header_or_the_body() {
        let mut h = HeaderMap::new();
        h.insert("x-ms-error-code", HeaderValue::from_static("BlobNotFound"));
        assert_eq!(error_code(&h, None).as_deref(), Some("BlobNotFound"));
        let body = "<?xml version=\"1.0\"?><Error><Code>AuthenticationFailed</Code><Message>x</Message></Error>";
        assert_eq!(
            error_code(&HeaderMap::new(), Some(body)).as_deref(),
            Some("AuthenticationFailed")
        );
        assert_eq!(
            error_code(&HeaderMap::new(), Some("<Error><Code>a b</Code></Error>")),
            None
        );
    }
}
