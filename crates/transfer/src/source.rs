//! [`RequestSource`]: where the engine's requests come from.
//!
//! The engine never builds a request itself. For every request, the first, each ranged part
//! and every retry, it asks the source, which can sign it afresh (S3's `SigV4` carries a
//! timestamp) or attach the credentials in force now (an OCI bearer token expires in the
//! middle of a long pull). When a server answers `401` or `403`, the engine tells the source,
//! which may refresh its credentials; the engine then retries that request once.
//!
//! A source that [sees redirects](RequestSource::sees_redirects) gets its requests sent by a
//! client that does not follow them: the engine hands each redirect's target to the source,
//! which decides where the next request goes (an OCI blob's storage location, pinned for
//! every ranged request, with `Authorization` only on the registry's own host). So the first
//! request of a download is the one that finds the redirect, and no request is made only to
//! look for one (a pull-through registry would start fetching the blob from its origin for
//! it, and abandon that fetch when the look-up hung up).

use std::future::Future;
use std::pin::Pin;

use reqwest::header::HeaderMap;
use reqwest::{Client, RequestBuilder, StatusCode};

use super::retry::Failure;
use crate::error::Error;

/// A future the engine awaits, boxed so that [`RequestSource`] stays object safe.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Builds each request of a download. See the [crate docs](crate).
pub trait RequestSource: Send + Sync {
    /// The location as shown in messages and logs: no credentials, no query.
    fn display(&self) -> &str;

    /// A `GET` of the bytes, carrying `headers` (the engine's `Range` and `If-Range`, which a
    /// signing source includes in what it signs). Called once for every request sent.
    fn request(&self, client: &Client, headers: HeaderMap) -> RequestBuilder;

    /// Whether this source follows redirects itself, through [`redirected`](Self::redirected);
    /// otherwise the HTTP client follows them.
    fn sees_redirects(&self) -> bool {
        false
    }

    /// Told that a request was redirected to `target` with `status`. Returns whether the
    /// source will send the next request there, in which case the engine builds it and sends
    /// it (a few hops at most); otherwise the redirect is the request's answer.
    fn redirected(&self, status: StatusCode, target: &url::Url) -> bool {
        let _ = (status, target);
        false
    }

    /// Told that a request was refused with `status` (`401` or `403`) and these response
    /// headers (e.g. `WWW-Authenticate`). Returns whether the credentials were refreshed, in
    /// which case the engine builds the request again and sends it once more.
    fn reauthorize<'a>(
        &'a self,
        client: &'a Client,
        status: StatusCode,
        headers: &'a HeaderMap,
    ) -> BoxFuture<'a, bool> {
        let _ = (client, status, headers);
        Box::pin(async { false })
    }

    /// What a `404` for the bytes means, when the source can say more than the status (a
    /// registry's blob that is not there): the download fails with it instead of the
    /// [`Error::Download`] that names the URL and the status. `None` keeps that one.
    fn not_found(&self) -> Option<Error> {
        None
    }
}

/// A plain URL with fixed headers (e.g. a token for the URL's own host): plain HTTP(S) and
/// the Hub. The HTTP client drops `Authorization` on a redirect to another host.
#[derive(Debug, Clone)]
pub struct UrlSource {
    url: url::Url,
    display: String,
    headers: HeaderMap,
}

impl UrlSource {
    /// Requests `url` with `headers`; `display` is the URL as shown in messages.
    pub fn new(url: url::Url, display: impl Into<String>, headers: HeaderMap) -> Self {
        UrlSource {
            url,
            display: display.into(),
            headers,
        }
    }
}

impl RequestSource for UrlSource {
    fn display(&self) -> &str {
        &self.display
    }

    fn request(&self, client: &Client, headers: HeaderMap) -> RequestBuilder {
        client
            .get(self.url.clone())
            .headers(self.headers.clone())
            .headers(headers)
    }
}

/// Credentials that can be refreshed after a refusal: a registry's token, an object store's
/// temporary keys. What an API call ([`Call`]) asks after a `401` or `403`.
pub trait Reauthorize: Send + Sync {
    /// Told that a request was refused with `status` and these headers; returns whether the
    /// credentials were refreshed, so that the request is worth sending once more. An error
    /// (a token service that failed) ends the call with it.
    fn reauthorize<'a>(
        &'a self,
        client: &'a Client,
        status: StatusCode,
        headers: &'a HeaderMap,
    ) -> BoxFuture<'a, crate::error::Result<bool>>;
}

/// One API call (a listing, a manifest, a token, an upload's part) as a [`RequestSource`]:
/// `build` makes the request afresh for every attempt (a signature carries a time), and
/// `auth`, if any, refreshes credentials once after a refusal.
pub struct Call<'a, B> {
    display: &'a str,
    build: B,
    auth: Option<&'a dyn Reauthorize>,
    /// Why refreshing the credentials failed, for [`call`] to end with.
    auth_failed: std::sync::Mutex<Option<crate::error::Error>>,
}

impl<'a, B> Call<'a, B>
where
    B: Fn(&Client) -> RequestBuilder + Send + Sync,
{
    /// A call that `build` makes, named `display` in messages.
    pub fn new(display: &'a str, build: B) -> Self {
        Call {
            display,
            build,
            auth: None,
            auth_failed: std::sync::Mutex::new(None),
        }
    }

    /// With credentials that `auth` refreshes after a refusal.
    #[must_use]
    pub fn authorized_by(mut self, auth: &'a dyn Reauthorize) -> Self {
        self.auth = Some(auth);
        self
    }
}

impl<B> RequestSource for Call<'_, B>
where
    B: Fn(&Client) -> RequestBuilder + Send + Sync,
{
    fn display(&self) -> &str {
        self.display
    }

    fn request(&self, client: &Client, headers: HeaderMap) -> RequestBuilder {
        (self.build)(client).headers(headers)
    }

    fn reauthorize<'a>(
        &'a self,
        client: &'a Client,
        status: StatusCode,
        headers: &'a HeaderMap,
    ) -> BoxFuture<'a, bool> {
        Box::pin(async move {
            let Some(auth) = self.auth else {
                return false;
            };
            match auth.reauthorize(client, status, headers).await {
                Ok(refreshed) => refreshed,
                Err(e) => {
                    *self
                        .auth_failed
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(e);
                    false
                }
            }
        })
    }
}

impl<B> std::fmt::Debug for Call<'_, B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Call")
            .field("display", &self.display)
            .finish()
    }
}

/// Sends `call` with `client` (which follows no redirects, for API calls that read them),
/// retrying transient failures with `policy` and re-authorising once after a refusal; the
/// answer's status is the caller's to judge. `stopped`, checked after every attempt, ends the
/// call with its error (an upload's body that could not be read or did not verify: no retry
/// mends that).
pub async fn call<B>(
    client: &Client,
    policy: super::RetryPolicy,
    call: &Call<'_, B>,
    stopped: &(dyn Fn() -> Option<crate::error::Error> + Sync),
) -> crate::error::Result<reqwest::Response>
where
    B: Fn(&Client) -> RequestBuilder + Send + Sync,
{
    let clients = Clients {
        request: client,
        auth: client,
    };
    super::retry::with_retries(policy, call.display, || async {
        let sent = send(call, clients, &HeaderMap::new()).await;
        let auth_failed = call
            .auth_failed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        match auth_failed.or_else(stopped) {
            Some(e) => Err(Failure::local(e)),
            None => sent,
        }
    })
    .await
}

/// Why [`send_built`] has no answer to give.
#[derive(Debug)]
pub enum Unanswered {
    /// A transient status (`5xx`, `429`) that outlasted the retries.
    Status(StatusCode),
    /// The connection failed every time; the last error.
    Transport(reqwest::Error),
}

/// Sends a request built once (a credential service's, with a byte body that can be cloned)
/// through the one loop: transient failures retried with `policy`. Returns the answer,
/// whatever its status, for the caller to judge.
///
/// # Panics
///
/// If `request`'s body is a stream, which cannot be sent twice.
pub async fn send_built(
    request: RequestBuilder,
    policy: super::RetryPolicy,
    display: &str,
) -> Result<reqwest::Response, Unanswered> {
    let last = std::sync::Mutex::new(None);
    let answered = super::retry::with_retries(policy, display, || async {
        let attempt = request
            .try_clone()
            .expect("requests sent by send_built have byte bodies");
        match attempt.send().await {
            Ok(r) => Failure::transient_status(r.status()).map_or(Ok(r), Err),
            Err(e) => {
                let failure = Failure::like(&e);
                *last
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(e);
                Err(failure)
            }
        }
    })
    .await;
    answered.map_err(|e| {
        let transport = last
            .into_inner()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match (e, transport) {
            (
                crate::error::Error::Download {
                    status: Some(status),
                    ..
                },
                _,
            ) => {
                Unanswered::Status(StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY))
            }
            (_, Some(e)) => Unanswered::Transport(e.without_url()),
            (_, None) => Unanswered::Status(StatusCode::BAD_GATEWAY),
        }
    })
}

/// The clients one request uses: `request` sends it (one that follows no redirects for a
/// source that [follows its own](RequestSource::sees_redirects)), `auth` asks for new
/// credentials after a refusal.
#[derive(Debug, Clone, Copy)]
pub struct Clients<'a> {
    /// Sends the request.
    pub request: &'a Client,
    /// Asks for new credentials after a refusal.
    pub auth: &'a Client,
}

/// Redirects followed for one request of a source that sees them, at most.
const MAX_HOPS: usize = 5;

/// Sends one request built by `source`: a refused authorisation is handed to the source, and
/// the request built and sent once more if it refreshed its credentials; a redirect is handed
/// to a source that sees redirects. A transient status comes back as a transient failure;
/// other statuses are the caller's to judge.
pub async fn send(
    source: &dyn RequestSource,
    clients: Clients<'_>,
    headers: &HeaderMap,
) -> Result<reqwest::Response, Failure> {
    let client = clients.request;
    let mut refreshed = false;
    let mut hops = 0;
    loop {
        let response = source
            .request(client, headers.clone())
            .send()
            .await
            .map_err(Failure::from_reqwest)?;
        let status = response.status();
        if status.is_redirection()
            && hops < MAX_HOPS
            && let Some(target) = redirect_target(&response)
            && source.redirected(status, &target)
        {
            hops += 1;
            continue;
        }
        if matches!(status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN)
            && !refreshed
            && source
                .reauthorize(clients.auth, status, response.headers())
                .await
        {
            tracing::debug!(url = source.display(), %status, "credentials refreshed; sending again");
            refreshed = true;
            continue;
        }
        if let Some(failure) = Failure::transient_status(status) {
            tracing::debug!(url = source.display(), %status, "transient status");
            return Err(failure);
        }
        return Ok(response);
    }
}

/// Where a redirect points, resolved against the URL that answered it.
fn redirect_target(response: &reqwest::Response) -> Option<url::Url> {
    let location = response
        .headers()
        .get(reqwest::header::LOCATION)?
        .to_str()
        .ok()?;
    response.url().join(location).ok()
}
