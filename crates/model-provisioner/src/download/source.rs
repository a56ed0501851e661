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

/// A future the engine awaits, boxed so that [`RequestSource`] stays object safe.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Builds each request of a download. See the [module docs](self).
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

/// The engine's two ways of sending: a client that follows redirects, and one that hands
/// them to the source.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Clients<'a> {
    pub(crate) follow: &'a Client,
    pub(crate) manual: &'a Client,
}

/// Redirects followed for one request of a source that sees them, at most.
const MAX_HOPS: usize = 5;

/// Sends one request built by `source`: a refused authorisation is handed to the source, and
/// the request built and sent once more if it refreshed its credentials; a redirect is handed
/// to a source that sees redirects. A transient status comes back as a transient failure;
/// other statuses are the caller's to judge.
pub(crate) async fn send(
    source: &dyn RequestSource,
    clients: Clients<'_>,
    headers: &HeaderMap,
) -> Result<reqwest::Response, Failure> {
    let client = if source.sees_redirects() {
        clients.manual
    } else {
        clients.follow
    };
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
                .reauthorize(clients.follow, status, response.headers())
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
