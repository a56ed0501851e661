//! One repository on one registry: where to reach it, how to authorise, and its requests.
//!
//! Authorisation follows the registry's challenge: anonymous first; on a `401` with
//! `WWW-Authenticate: Basic`, the credential for the registry; on `Bearer`, a token from the
//! challenge's realm for `repository:<repo>:pull` (`pull,push` for a push), fetched with the credential when there is
//! one. A token is fetched again when the registry refuses it (for a blob, the download engine
//! asks its [`RequestSource`] to reauthorise, then sends the refused request once more), and,
//! by a push, before an upload when it is about to expire.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use catalog_core::Digest;
use reqwest::header::{self, HeaderMap, HeaderValue};
use reqwest::{Client, RequestBuilder, StatusCode};

use crate::error::{Error, Result};
use mp_credentials::registry::{self as auth, BearerToken, Challenge, Credential, Credentials};
use mp_transfer::{self, BodyError, BoxFuture, Call, Reauthorize, RequestSource, RetryPolicy};

/// The manifest types we ask for, most specific first: a registry that is not told it may
/// send the OCI types answers `404` for an OCI manifest.
pub(crate) const ACCEPT: &str = "application/vnd.oci.image.index.v1+json, \
application/vnd.oci.image.manifest.v1+json, \
application/vnd.docker.distribution.manifest.list.v2+json, \
application/vnd.docker.distribution.manifest.v2+json";

/// An OCI image manifest's media type, which a pushed artifact and a referrer have.
pub(crate) const MANIFEST_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";

/// The largest manifest we read: real ones are a few KiB.
const MANIFEST_LIMIT: usize = 4 << 20;

/// What a token is asked to allow on the repository.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Access {
    /// Read manifests and blobs.
    Pull,
    /// Read, and write blobs and manifests.
    Push,
}

impl Access {
    /// The actions of a token scope.
    fn actions(self) -> &'static str {
        match self {
            Access::Pull => "pull",
            Access::Push => "pull,push",
        }
    }
}

/// How the registry wants requests authorised, as far as we know yet.
#[derive(Debug)]
enum Auth {
    /// No challenge seen: requests go without `Authorization`.
    Anonymous,
    /// `Basic` with the credential.
    Basic,
    /// A bearer token from `challenge`'s realm.
    Bearer {
        challenge: Challenge,
        token: BearerToken,
    },
}

/// A repository on a registry, with the credentials and the authorisation in force.
#[derive(Debug)]
pub(crate) struct Repository {
    /// The registry as the reference names it (`host[:port]`), for messages.
    registry: String,
    /// `http(s)://host[:port]`, where the API is.
    base: url::Url,
    /// The repository path.
    name: String,
    credential: Option<Credential>,
    /// Where credentials were looked for, for the hint of a refusal.
    looked: String,
    auth: Mutex<Auth>,
    /// One refresh at a time: requests refused together share the new token.
    refreshing: tokio::sync::Mutex<()>,
    retry: RetryPolicy,
    access: Access,
}

/// A manifest as the registry sent it.
#[derive(Debug)]
pub(crate) struct RawManifest {
    pub(crate) bytes: Vec<u8>,
    pub(crate) content_type: Option<String>,
    /// `Docker-Content-Digest`, when the registry sent it.
    pub(crate) stated_digest: Option<String>,
}

/// Whether `host` (without port) is on this machine: such a registry is spoken to over plain
/// HTTP with no flag, as Docker does.
pub(crate) fn is_loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// `host` of `host[:port]`, IPv6 brackets kept.
fn host_of(registry: &str) -> &str {
    if registry.starts_with('[') {
        return registry.find(']').map_or(registry, |end| &registry[..=end]);
    }
    registry.split(':').next().unwrap_or(registry)
}

impl Repository {
    /// `name` on `registry`, over HTTPS unless the registry is on loopback or named in
    /// `insecure` (by `host` or `host:port`), with tokens asked for `access`.
    pub(crate) fn new(
        registry: &str,
        name: &str,
        credentials: &Credentials,
        insecure: &[String],
        retry: RetryPolicy,
        access: Access,
    ) -> Result<Self> {
        let host = host_of(registry);
        let plain = is_loopback(host)
            || insecure
                .iter()
                .any(|i| i.eq_ignore_ascii_case(registry) || i.eq_ignore_ascii_case(host));
        // Docker Hub's API is not on the host its references name.
        let api_host = if registry == "index.docker.io" {
            "registry-1.docker.io"
        } else {
            registry
        };
        let scheme = if plain { "http" } else { "https" };
        let base = url::Url::parse(&format!("{scheme}://{api_host}/")).map_err(|e| {
            Error::OciProtocol {
                registry: registry.to_owned(),
                reason: format!("`{registry}` does not make a URL: {e}"),
            }
        })?;
        let credential = credentials.lookup(registry).map_err(|e| {
            Error::Transfer(mp_transfer::Error::Setup {
                what: "read registry credentials",
                source: Box::new(e),
            })
        })?;
        Ok(Repository {
            registry: registry.to_owned(),
            base,
            name: name.to_owned(),
            credential,
            looked: credentials.describe_sources(registry),
            auth: Mutex::new(Auth::Anonymous),
            refreshing: tokio::sync::Mutex::new(()),
            retry,
            access,
        })
    }

    /// The registry as the reference names it.
    pub(crate) fn registry(&self) -> &str {
        &self.registry
    }

    /// The repository path.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    pub(crate) fn url(&self, path: &str) -> url::Url {
        // The base is `scheme://host/` and `path` is a plain relative path.
        self.base.join(path).unwrap_or_else(|_| self.base.clone())
    }

    /// The `Authorization` to send now, if any.
    fn authorization(&self) -> Option<HeaderValue> {
        let auth = self.auth.lock().unwrap_or_else(PoisonError::into_inner);
        let text = match &*auth {
            Auth::Anonymous => return None,
            Auth::Basic => match &self.credential {
                Some(Credential::Basic { username, password }) => {
                    basic_value(username, password.expose())
                }
                _ => return None,
            },
            Auth::Bearer { token, .. } => format!("Bearer {}", token.value().expose()),
        };
        let mut value = HeaderValue::from_str(&text).ok()?;
        value.set_sensitive(true);
        Some(value)
    }

    /// `Authorization` as headers, for a request to the registry's own host.
    pub(crate) fn auth_headers(&self) -> HeaderMap {
        let mut headers = HeaderMap::new();
        if let Some(value) = self.authorization() {
            headers.insert(header::AUTHORIZATION, value);
        }
        headers
    }

    /// The scope every token is asked for.
    fn scope(&self) -> String {
        format!("repository:{}:{}", self.name, self.access.actions())
    }

    /// The retry policy requests to this repository follow.
    pub(crate) fn retry(&self) -> RetryPolicy {
        self.retry
    }

    /// Takes the registry's refusal (`401`, with its challenges) and sets up the authorisation
    /// it asks for. Returns whether there is something new to try.
    pub(crate) async fn reauthorize(&self, client: &Client, headers: &HeaderMap) -> Result<bool> {
        let _one = self.refreshing.lock().await;
        let challenges = auth::parse_challenges(headers);
        let bearer = challenges
            .iter()
            .find(|c| matches!(c, Challenge::Bearer { .. }));
        if let Some(challenge) = bearer {
            let token =
                auth::fetch_token(client, challenge, &[self.scope()], self.credential.as_ref())
                    .await
                    .map_err(|e| self.token_error(e))?;
            tracing::debug!(registry = %self.registry, "got a registry token");
            *self.auth.lock().unwrap_or_else(PoisonError::into_inner) = Auth::Bearer {
                challenge: challenge.clone(),
                token,
            };
            return Ok(true);
        }
        let basic = challenges
            .iter()
            .any(|c| matches!(c, Challenge::Basic { .. }));
        let mut auth = self.auth.lock().unwrap_or_else(PoisonError::into_inner);
        if basic
            && matches!(self.credential, Some(Credential::Basic { .. }))
            && !matches!(*auth, Auth::Basic)
        {
            *auth = Auth::Basic;
            return Ok(true);
        }
        Ok(false)
    }

    /// Fetches a new token before this one runs out, so that a push is not refused in the
    /// middle of an upload for a token that merely expired (its body would be sent again in
    /// full).
    pub(crate) async fn refresh_if_expiring(&self, client: &Client) -> Result<()> {
        let challenge = {
            let auth = self.auth.lock().unwrap_or_else(PoisonError::into_inner);
            match &*auth {
                Auth::Bearer { challenge, token } if token.is_expiring(Instant::now()) => {
                    challenge.clone()
                }
                _ => return Ok(()),
            }
        };
        let _one = self.refreshing.lock().await;
        let token = auth::fetch_token(
            client,
            &challenge,
            &[self.scope()],
            self.credential.as_ref(),
        )
        .await
        .map_err(|e| self.token_error(e))?;
        *self.auth.lock().unwrap_or_else(PoisonError::into_inner) =
            Auth::Bearer { challenge, token };
        Ok(())
    }

    fn token_error(&self, e: auth::AuthError) -> Error {
        match e {
            auth::AuthError::Denied { status, .. } => self.denied(status),
            other => Error::OciProtocol {
                registry: self.registry.clone(),
                reason: format!("the token service failed: {other}"),
            },
        }
    }

    pub(crate) fn denied(&self, status: u16) -> Error {
        Error::OciDenied {
            registry: self.registry.clone(),
            repository: self.name.clone(),
            status,
            looked: self.looked.clone(),
        }
    }

    /// Sends a request to the registry's API through the engine's one request loop: transient
    /// failures retried, one `401` answered by authorising as the registry asks. A second
    /// refusal, or a `403`, comes back as [`Error::OciDenied`].
    pub(crate) async fn send(
        &self,
        client: &Client,
        url: &url::Url,
        build: impl Fn(&Client) -> RequestBuilder + Send + Sync,
    ) -> Result<reqwest::Response> {
        let call = Call::new(url.as_str(), |c: &Client| {
            build(c).headers(self.auth_headers())
        })
        .authorized_by(self);
        let response = mp_transfer::call(client, self.retry, &call, &|| None).await?;
        match response.status() {
            StatusCode::UNAUTHORIZED => Err(self.denied(401)),
            StatusCode::FORBIDDEN => Err(self.denied(403)),
            _ => Ok(response),
        }
    }

    /// `GET /v2/`: checks that this is a registry, and learns how it wants to be authorised.
    pub(crate) async fn ping(&self, client: &Client) -> Result<()> {
        let url = self.url("v2/");
        let response = self.send(client, &url, |c| c.get(url.clone())).await?;
        match response.status() {
            s if s.is_success() => Ok(()),
            StatusCode::NOT_FOUND => Err(Error::OciProtocol {
                registry: self.registry.clone(),
                reason: "it has no `/v2/` API; is this an OCI registry?".to_owned(),
            }),
            s => Err(Self::status_error(&url, s)),
        }
    }

    /// The manifest `reference` (a tag or a digest) names.
    pub(crate) async fn manifest(&self, client: &Client, reference: &str) -> Result<RawManifest> {
        let url = self.url(&format!("v2/{}/manifests/{reference}", self.name));
        let response = self
            .send(client, &url, |c| {
                c.get(url.clone()).header(header::ACCEPT, ACCEPT)
            })
            .await?;
        let status = response.status();
        if status == StatusCode::NOT_FOUND {
            return Err(Error::OciNotFound {
                what: format!(
                    "`{}/{}` has no manifest `{reference}`",
                    self.registry, self.name
                ),
            });
        }
        if !status.is_success() {
            return Err(Self::status_error(&url, status));
        }
        let text_header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let content_type = text_header("content-type");
        let stated_digest = text_header("docker-content-digest");
        let bytes = self
            .read_small(response, &url, "manifest", MANIFEST_LIMIT)
            .await?;
        Ok(RawManifest {
            bytes,
            content_type,
            stated_digest,
        })
    }

    /// The whole body of a small answer (a manifest, a config), at most `limit` bytes; `what`
    /// it is names it in errors.
    pub(crate) async fn read_small(
        &self,
        response: reqwest::Response,
        url: &url::Url,
        what: &str,
        limit: usize,
    ) -> Result<Vec<u8>> {
        mp_transfer::read_bounded(response, limit)
            .await
            .map_err(|e| match e {
                BodyError::TooLarge => Error::OciProtocol {
                    registry: self.registry.clone(),
                    reason: format!("a {what} larger than {} MiB", limit >> 20),
                },
                BodyError::Failed(e) => Error::Transfer(mp_transfer::Error::Download {
                    url: url.to_string(),
                    status: None,
                    attempts: 1,
                    reason: format!("the {what}'s body failed"),
                    source: Some(Box::new(e)),
                }),
            })
    }

    fn status_error(url: &url::Url, status: StatusCode) -> Error {
        Error::Transfer(mp_transfer::Error::Download {
            url: url.to_string(),
            status: Some(status.as_u16()),
            attempts: 1,
            reason: format!("HTTP {status}"),
            source: None,
        })
    }

    /// The blob `digest` as a source for the download engine. Where the registry redirects it
    /// (to object storage, a CDN), the engine's first request finds the redirect and every
    /// later request goes to the final location; `Authorization` goes there only if it is the
    /// registry's own host.
    ///
    /// No token is fetched here, and none is needed: the one in force was fetched while the
    /// reference was resolved, moments before the first blob is asked for. One that runs out
    /// during a long pull (a layer started after others finished, a range late in a large
    /// blob) is refused with a `401`, which the engine hands to the source's
    /// [`reauthorize`](RequestSource::reauthorize): a new token comes from the registry's
    /// challenge and the refused request is sent once more.
    pub(crate) fn blob(self: &Arc<Self>, digest: &Digest) -> BlobSource {
        let url = self.url(&format!("v2/{}/blobs/{digest}", self.name));
        BlobSource {
            repository: Arc::clone(self),
            digest: digest.clone(),
            display: url.to_string(),
            url,
            location: Mutex::new(None),
        }
    }
}

impl Reauthorize for Repository {
    /// A `401` is answered as the registry's challenge asks; a `403` is final.
    fn reauthorize<'a>(
        &'a self,
        client: &'a Client,
        status: StatusCode,
        headers: &'a HeaderMap,
    ) -> BoxFuture<'a, mp_transfer::Result<bool>> {
        Box::pin(async move {
            if status != StatusCode::UNAUTHORIZED {
                return Ok(false);
            }
            Ok(Repository::reauthorize(self, client, headers).await?)
        })
    }
}

/// `Basic base64(user:password)`.
fn basic_value(username: &str, password: &str) -> String {
    use base64::Engine as _;
    let encoded =
        base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"));
    format!("Basic {encoded}")
}

/// Where a blob's bytes are once a redirect was followed.
#[derive(Debug, Clone)]
struct Location {
    url: url::Url,
    /// Whether it is the registry's own host, so that `Authorization` may go there.
    same_host: bool,
}

/// One blob of a repository, as the download engine's [`RequestSource`].
#[derive(Debug)]
pub(crate) struct BlobSource {
    repository: Arc<Repository>,
    digest: Digest,
    url: url::Url,
    display: String,
    location: Mutex<Option<Location>>,
}

impl RequestSource for BlobSource {
    fn display(&self) -> &str {
        &self.display
    }

    fn request(&self, client: &Client, headers: HeaderMap) -> RequestBuilder {
        let location = self
            .location
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        match location {
            Some(Location { url, same_host }) => {
                let request = client.get(url);
                let request = if same_host {
                    request.headers(self.repository.auth_headers())
                } else {
                    request
                };
                request.headers(headers)
            }
            None => client
                .get(self.url.clone())
                .headers(self.repository.auth_headers())
                .headers(headers),
        }
    }

    fn sees_redirects(&self) -> bool {
        true
    }

    /// The registry, or the storage it redirects to, does not have the blob.
    fn not_found(&self) -> Option<mp_transfer::Error> {
        Some(
            Error::OciNotFound {
                what: format!(
                    "`{}/{}` has no blob `{}`",
                    self.repository.registry, self.repository.name, self.digest
                ),
            }
            .into(),
        )
    }

    fn redirected(&self, status: StatusCode, target: &url::Url) -> bool {
        let same_host = target.host_str() == self.url.host_str()
            && target.port_or_known_default() == self.url.port_or_known_default()
            && target.scheme() == self.url.scheme();
        tracing::debug!(
            blob = self.url.path_segments().and_then(Iterator::last).unwrap_or_default(),
            %status,
            to = target.host_str().unwrap_or_default(),
            same_host,
            "the registry redirects the blob"
        );
        *self.location.lock().unwrap_or_else(PoisonError::into_inner) = Some(Location {
            url: target.clone(),
            same_host,
        });
        true
    }

    fn reauthorize<'a>(
        &'a self,
        client: &'a Client,
        status: StatusCode,
        headers: &'a HeaderMap,
    ) -> BoxFuture<'a, bool> {
        Box::pin(async move {
            let redirected = self
                .location
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .as_ref()
                .is_some_and(|l| !l.same_host);
            if redirected {
                // Storage refused a location that has expired (a signed URL): ask the
                // registry again, which authorises and redirects afresh.
                tracing::debug!(%status, "storage refused the blob's location; asking the registry again");
                *self.location.lock().unwrap_or_else(PoisonError::into_inner) = None;
                return true;
            }
            if status != StatusCode::UNAUTHORIZED {
                return false;
            }
            match self.repository.reauthorize(client, headers).await {
                Ok(refreshed) => refreshed,
                Err(e) => {
                    tracing::debug!(error = %e, "could not authorise again");
                    false
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_registries_are_spoken_to_over_plain_http() {
        for host in ["localhost", "127.0.0.1", "127.1.2.3", "[::1]", "LOCALHOST"] {
            assert!(is_loopback(host), "{host}");
        }
        for host in ["example.com", "10.0.0.1", "localhost.example.com", "[::2]"] {
            assert!(!is_loopback(host), "{host}");
        }
        assert_eq!(host_of("127.0.0.1:5000"), "127.0.0.1");
        assert_eq!(host_of("[::1]:5000"), "[::1]");
        assert_eq!(host_of("reg.example"), "reg.example");
    }

    #[test]
    fn other_registries_get_https_unless_named_insecure() -> Result<()> {
        let base = |registry: &str, insecure: &[&str]| -> Result<String> {
            let insecure: Vec<String> = insecure.iter().map(|s| (*s).to_owned()).collect();
            let repo = Repository::new(
                registry,
                "m",
                &Credentials::none(),
                &insecure,
                RetryPolicy::default(),
                Access::Pull,
            )?;
            Ok(repo.base.to_string())
        };
        assert_eq!(base("127.0.0.1:5000", &[])?, "http://127.0.0.1:5000/");
        assert_eq!(base("localhost", &[])?, "http://localhost/");
        assert_eq!(base("reg.example", &[])?, "https://reg.example/");
        assert_eq!(
            base("reg.example:5000", &["reg.example"])?,
            "http://reg.example:5000/"
        );
        assert_eq!(
            base("reg.example:5000", &["reg.example:5000"])?,
            "http://reg.example:5000/"
        );
        assert_eq!(
            base("reg.example:5000", &["reg.example:6000"])?,
            "https://reg.example:5000/"
        );
        assert_eq!(
            base("index.docker.io", &[])?,
            "https://registry-1.docker.io/"
        );
        Ok(())
    }

    #[test]
    fn basic_authorization_is_base64_of_user_colon_password() {
        assert_eq!(basic_value("user", "pass"), "Basic dXNlcjpwYXNz");
        assert_eq!(basic_value("a", "b"), "Basic YTpi");
        assert_eq!(basic_value("ab", "c"), "Basic YWI6Yw==");
    }
}
