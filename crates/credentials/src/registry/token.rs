//! The distribution token protocol: [`fetch_token`] asks the token service a `Bearer` challenge
//! names for a [`BearerToken`], with the user's credential when there is one.

use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use reqwest::StatusCode;
use reqwest::header::{self, HeaderValue};
use serde::Deserialize;

use super::challenge::Challenge;
use super::credential::Credential;
use super::error::AuthError;
use crate::secret::Secret;
use catalog_core::printable;
use mp_transfer::{BodyError, RetryPolicy, Unanswered, read_bounded, send_built};

/// The `client_id` sent to token services with an identity token.
const CLIENT_ID: &str = "model-provisioner";

/// Retries of a token request: a few, quickly, since a pull waits on it.
const TOKEN_RETRY: RetryPolicy = RetryPolicy {
    retries: 2,
    backoff: Duration::from_millis(100),
    max_backoff: Duration::from_secs(1),
};

/// The largest answer read from a token service (a token is a few KiB).
const TOKEN_ANSWER_LIMIT: usize = 1 << 20;

/// A registry token, valid until a moment measured on this machine's monotonic clock.
#[derive(Debug, Clone)]
pub struct BearerToken {
    value: Secret,
    expires_at: Instant,
    lifetime: Duration,
}

impl BearerToken {
    /// A token valid for `lifetime` from now (at least 1 s).
    pub fn new(value: Secret, lifetime: Duration) -> Self {
        let lifetime = lifetime.max(Duration::from_secs(1));
        BearerToken {
            value,
            expires_at: Instant::now() + lifetime,
            lifetime,
        }
    }

    /// The token, for `Authorization: Bearer`.
    pub fn value(&self) -> &Secret {
        &self.value
    }

    /// When the token stops being valid.
    pub fn expires_at(&self) -> Instant {
        self.expires_at
    }

    /// True when fewer than 10% of its life (at least 1 s) remains.
    pub fn is_expiring(&self, now: Instant) -> bool {
        let margin = (self.lifetime / 10).max(Duration::from_secs(1));
        self.expires_at.saturating_duration_since(now) < margin
    }
}

/// The token service's answer, the parts we read. `issued_at` is left out on purpose: the
/// token's life is counted from when we asked, on the monotonic clock, so a server's clock
/// that runs ahead or behind ours cannot make a token look expired or fresh.
#[derive(Deserialize)]
struct TokenAnswer {
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    access_token: Option<String>,
    #[serde(default)]
    expires_in: Option<f64>,
}

/// The lifetime when the token service does not say (the distribution spec's default).
const DEFAULT_LIFETIME: Duration = Duration::from_secs(60);

/// The scopes asked for and the challenge's own, each once, in order.
fn union_of<'a>(scopes: &'a [String], challenged: Option<&'a str>) -> Vec<&'a str> {
    let mut all: Vec<&str> = Vec::new();
    for s in scopes
        .iter()
        .map(String::as_str)
        .chain(challenged)
        .flat_map(str::split_whitespace)
    {
        if !all.contains(&s) {
            all.push(s);
        }
    }
    all
}

/// Asks the token service named by the `Bearer` challenge for a token with `scopes` (one
/// `scope=` parameter each, the challenge's own scope included when present).
///
/// - A [`Credential::Basic`]: `GET` with `Authorization: Basic` and `account=<username>`.
/// - A [`Credential::IdentityToken`]: `POST` of the `OAuth2` form
///   `grant_type=refresh_token&refresh_token=…&service=…&scope=…&client_id=model-provisioner`
///   (the scopes space-joined, as `OAuth2` has it).
/// - None: an anonymous `GET`.
///
/// The answer's `token` (or `access_token`) lives `expires_in` seconds (60 when absent, at
/// least 1), counted from when the request was sent.
pub async fn fetch_token(
    client: &reqwest::Client,
    challenge: &Challenge,
    scopes: &[String],
    credential: Option<&Credential>,
) -> Result<BearerToken, AuthError> {
    let Challenge::Bearer {
        realm,
        service,
        scope,
    } = challenge
    else {
        return Err(AuthError::BadResponse(
            "a `Basic` challenge names no token service".into(),
        ));
    };
    let url = url::Url::parse(realm)
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some())
        .ok_or_else(|| {
            AuthError::BadResponse(format!(
                "the registry's token service `{}` is not an http(s) URL",
                printable(realm)
            ))
        })?;
    let realm_host = match (url.host_str(), url.port()) {
        (Some(host), Some(port)) => format!("{host}:{port}"),
        (host, _) => host.unwrap_or_default().to_owned(),
    };
    let all_scopes = union_of(scopes, scope.as_deref());
    let request = token_request(client, url, service.as_deref(), &all_scopes, credential);

    let sent = Instant::now();
    let transport = |source: reqwest::Error| AuthError::Transport {
        realm_host: realm_host.clone(),
        source: source.without_url(),
    };
    let response = match send_built(request, TOKEN_RETRY, &realm_host).await {
        Ok(response) => response,
        Err(Unanswered::Transport(e)) => return Err(transport(e)),
        Err(Unanswered::Status(status)) => {
            return Err(AuthError::Status {
                realm_host,
                status: status.as_u16(),
            });
        }
    };
    let status = response.status();
    let refused = status == StatusCode::UNAUTHORIZED
        || status == StatusCode::FORBIDDEN
        // OAuth2 answers a refresh token it does not accept with `400 invalid_grant`.
        || (status == StatusCode::BAD_REQUEST
            && matches!(credential, Some(Credential::IdentityToken(_))));
    if refused {
        return Err(AuthError::Denied {
            realm_host,
            status: status.as_u16(),
        });
    }
    if !status.is_success() {
        return Err(AuthError::Status {
            realm_host,
            status: status.as_u16(),
        });
    }
    let body = read_bounded(response, TOKEN_ANSWER_LIMIT)
        .await
        .map_err(|e| match e {
            BodyError::Failed(e) => transport(e),
            BodyError::TooLarge => AuthError::BadResponse(format!(
                "the token service at `{realm_host}` answered with more than {} KiB",
                TOKEN_ANSWER_LIMIT >> 10
            )),
        })?;
    let answer: TokenAnswer = serde_json::from_slice(&body).map_err(|_| {
        AuthError::BadResponse(format!(
            "the token service at `{realm_host}` did not answer with a token object"
        ))
    })?;
    let token = [answer.token, answer.access_token]
        .into_iter()
        .flatten()
        .find(|t| !t.is_empty())
        .ok_or_else(|| {
            AuthError::BadResponse(format!(
                "the token service at `{realm_host}` answered without a `token` or `access_token`"
            ))
        })?;
    let lifetime = match answer.expires_in {
        // At most a year: enough for any real token, and `Duration` cannot overflow.
        Some(secs) if secs.is_finite() => Duration::from_secs_f64(secs.clamp(1.0, 31_536_000.0)),
        _ => DEFAULT_LIFETIME,
    };
    Ok(BearerToken {
        value: Secret::new(token),
        expires_at: sent + lifetime,
        lifetime,
    })
}

/// The request for a token: the refresh-token `POST` for an identity token, else a `GET`.
fn token_request(
    client: &reqwest::Client,
    mut url: url::Url,
    service: Option<&str>,
    all_scopes: &[&str],
    credential: Option<&Credential>,
) -> reqwest::RequestBuilder {
    if let Some(Credential::IdentityToken(refresh)) = credential {
        tracing::debug!(
            realm_host = url.host_str(),
            "exchanging an identity token for a registry token"
        );
        let mut form = url::form_urlencoded::Serializer::new(String::new());
        form.append_pair("grant_type", "refresh_token")
            .append_pair("refresh_token", refresh.expose());
        if let Some(service) = service {
            form.append_pair("service", service);
        }
        if !all_scopes.is_empty() {
            form.append_pair("scope", &all_scopes.join(" "));
        }
        form.append_pair("client_id", CLIENT_ID);
        client
            .post(url)
            .header(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/x-www-form-urlencoded"),
            )
            .body(form.finish())
    } else {
        tracing::debug!(
            realm_host = url.host_str(),
            with_credentials = credential.is_some(),
            "requesting a registry token"
        );
        let basic = match credential {
            Some(Credential::Basic { username, password }) => Some((username, password)),
            _ => None,
        };
        if service.is_some() || !all_scopes.is_empty() || basic.is_some() {
            let mut query = url.query_pairs_mut();
            if let Some(service) = service {
                query.append_pair("service", service);
            }
            for s in all_scopes {
                query.append_pair("scope", s);
            }
            if let Some((username, _)) = basic {
                query.append_pair("account", username);
            }
        }
        let mut request = client.get(url);
        if let Some((username, password)) = basic {
            request = request.header(header::AUTHORIZATION, basic_header(username, password));
        }
        request
    }
}

/// `Authorization: Basic …`, marked sensitive so that it is never printed.
fn basic_header(username: &str, password: &Secret) -> HeaderValue {
    let encoded = STANDARD.encode(format!("{username}:{}", password.expose()));
    let mut value =
        HeaderValue::from_str(&format!("Basic {encoded}")).expect("base64 is visible ASCII");
    value.set_sensitive(true);
    value
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::testing::{TestResult, basic, bearer, identity};
    use crate::test_util::block_on;

    use std::fmt::Write as _;
    use std::io;
    use std::thread::JoinHandle;

    #[test]
    fn tokens_expire_in_the_last_tenth_of_their_life() {
        let now = Instant::now();
        let token = BearerToken {
            value: Secret::new("t".into()),
            expires_at: now + Duration::from_secs(300),
            lifetime: Duration::from_secs(300),
        };
        assert!(!token.is_expiring(now));
        assert!(!token.is_expiring(now + Duration::from_secs(269)));
        assert!(token.is_expiring(now + Duration::from_secs(271)));
        assert!(token.is_expiring(now + Duration::from_secs(400)));
        let short = BearerToken {
            value: Secret::new("t".into()),
            expires_at: now + Duration::from_secs(5),
            lifetime: Duration::from_secs(5),
        };
        assert!(!short.is_expiring(now + Duration::from_millis(3900)));
        assert!(short.is_expiring(now + Duration::from_millis(4100)));
    }

    /// Serves one canned JSON answer on 127.0.0.1 and hands back the requests as received.
    fn serve_once(
        status: &'static str,
        body: &'static str,
    ) -> io::Result<(String, JoinHandle<Vec<String>>)> {
        test_support::serve_canned(Some("application/json"), vec![(status, body.to_owned())])
    }

    fn scopes(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn anonymous_get_sends_service_and_every_scope() -> TestResult {
        let (base, server) = serve_once(
            "200 OK",
            r#"{"token":"anon-tok","expires_in":300,"issued_at":"2024-01-01T00:00:00Z"}"#,
        )?;
        let challenge = bearer(
            &format!("{base}/token"),
            Some("reg.test"),
            Some("repository:a:pull"),
        );
        let before = Instant::now();
        let token = block_on(fetch_token(
            &reqwest::Client::new(),
            &challenge,
            &scopes(&["repository:b:pull", "repository:a:pull"]),
            None,
        ))?;
        let request = server.join().expect("the server").remove(0);
        assert!(
            request.starts_with("GET /token?service=reg.test&scope=repository%3Ab%3Apull&scope=repository%3Aa%3Apull HTTP/1.1\r\n"),
            "{request}"
        );
        assert!(
            !request.to_ascii_lowercase().contains("authorization"),
            "{request}"
        );
        assert_eq!(token.value().expose(), "anon-tok");
        let life = token.expires_at() - before;
        assert!(
            life > Duration::from_secs(299) && life <= Duration::from_secs(301),
            "{life:?}"
        );
        Ok(())
    }

    #[test]
    fn basic_get_sends_the_header_and_account() -> TestResult {
        let (base, server) = serve_once("200 OK", r#"{"access_token":"acc-tok"}"#)?;
        let challenge = bearer(&format!("{base}/auth?x=1"), Some("reg"), None);
        let credential = basic("alice", "hunter2");
        let before = Instant::now();
        let token = block_on(fetch_token(
            &reqwest::Client::new(),
            &challenge,
            &scopes(&["repository:m:pull"]),
            Some(&credential),
        ))?;
        let request = server.join().expect("the server").remove(0);
        assert!(
            request.starts_with(
                "GET /auth?x=1&service=reg&scope=repository%3Am%3Apull&account=alice HTTP/1.1\r\n"
            ),
            "{request}"
        );
        let expected = format!(
            "authorization: Basic {}\r\n",
            STANDARD.encode("alice:hunter2")
        );
        assert!(
            request
                .to_ascii_lowercase()
                .contains(&expected.to_ascii_lowercase()),
            "{request}"
        );
        assert_eq!(token.value().expose(), "acc-tok");
        // No `expires_in`: 60 s.
        let life = token.expires_at() - before;
        assert!(
            life > Duration::from_secs(59) && life <= Duration::from_secs(61),
            "{life:?}"
        );
        Ok(())
    }

    #[test]
    fn identity_token_posts_the_refresh_form() -> TestResult {
        let (base, server) = serve_once(
            "200 OK",
            r#"{"token":"t1","access_token":"t1","expires_in":0.2}"#,
        )?;
        let challenge = bearer(
            &format!("{base}/token"),
            Some("reg svc"),
            Some("repository:a:pull"),
        );
        let credential = identity("refresh/+=&tok");
        let token = block_on(fetch_token(
            &reqwest::Client::new(),
            &challenge,
            &scopes(&["repository:a:pull", "repository:b:push"]),
            Some(&credential),
        ))?;
        let request = server.join().expect("the server").remove(0);
        assert!(request.starts_with("POST /token HTTP/1.1\r\n"), "{request}");
        assert!(
            request
                .to_ascii_lowercase()
                .contains("content-type: application/x-www-form-urlencoded\r\n"),
            "{request}"
        );
        assert!(
            request.ends_with("\r\n\r\ngrant_type=refresh_token&refresh_token=refresh%2F%2B%3D%26tok&service=reg+svc&scope=repository%3Aa%3Apull+repository%3Ab%3Apush&client_id=model-provisioner"),
            "{request}"
        );
        assert_eq!(token.value().expose(), "t1");
        // A lifetime under a second is raised to one.
        assert_eq!(token.lifetime, Duration::from_secs(1));
        Ok(())
    }

    #[test]
    fn a_refusal_is_denied_without_the_secret() -> TestResult {
        for (status, code) in [("401 Unauthorized", 401), ("403 Forbidden", 403)] {
            let (base, server) = serve_once(status, r#"{"errors":[{"code":"UNAUTHORIZED"}]}"#)?;
            let challenge = bearer(&format!("{base}/token"), None, None);
            let credential = basic("alice", "hunter2");
            let err = block_on(fetch_token(
                &reqwest::Client::new(),
                &challenge,
                &[],
                Some(&credential),
            ))
            .unwrap_err();
            server.join().expect("the server");
            assert!(
                matches!(&err, AuthError::Denied { status, .. } if *status == code),
                "{err:?}"
            );
            let shown = format!("{err} {err:?} {}", err.hint());
            assert!(!shown.contains("hunter2"), "{shown}");
            assert!(
                !shown.contains(&STANDARD.encode("alice:hunter2")),
                "{shown}"
            );
            assert!(
                err.to_string()
                    .starts_with("the token service at `127.0.0.1:"),
                "{err}"
            );
            assert!(err.hint().contains("docker login"), "{}", err.hint());
            assert!(!err.is_transient());
        }
        let (base, server) = serve_once("400 Bad Request", r#"{"error":"invalid_grant"}"#)?;
        let credential = identity("refresh-secret");
        let err = block_on(fetch_token(
            &reqwest::Client::new(),
            &bearer(&format!("{base}/token"), None, None),
            &[],
            Some(&credential),
        ))
        .unwrap_err();
        server.join().expect("the server");
        assert!(
            matches!(err, AuthError::Denied { status: 400, .. }),
            "{err:?}"
        );
        assert!(!format!("{err:?}").contains("refresh-secret"));
        Ok(())
    }

    #[test]
    fn other_answers_are_errors_that_say_what_went_wrong() -> TestResult {
        let (base, server) = serve_once("200 OK", r#"{"nothing":"here"}"#)?;
        let err = block_on(fetch_token(
            &reqwest::Client::new(),
            &bearer(&format!("{base}/t"), None, None),
            &[],
            None,
        ))
        .unwrap_err();
        server.join().expect("the server");
        assert!(matches!(err, AuthError::BadResponse(_)), "{err:?}");

        // A service that is down answers every attempt of the request loop with 503.
        let attempts = 1 + TOKEN_RETRY.retries as usize;
        let (base, server) = test_support::serve_canned(
            Some("application/json"),
            vec![("503 Service Unavailable", String::new()); attempts],
        )?;
        let err = block_on(fetch_token(
            &reqwest::Client::new(),
            &bearer(&format!("{base}/t"), None, None),
            &[],
            None,
        ))
        .unwrap_err();
        assert_eq!(server.join().expect("the server").len(), attempts);
        assert!(
            matches!(err, AuthError::Status { status: 503, .. }) && err.is_transient(),
            "{err:?}"
        );

        // Nothing listens there any more: a transport error naming the host, not the query.
        let port = test_support::free_port();
        let challenge = bearer(
            &format!("http://127.0.0.1:{port}/t"),
            Some("svc"),
            Some("repository:x:pull"),
        );
        let err =
            block_on(fetch_token(&reqwest::Client::new(), &challenge, &[], None)).unwrap_err();
        assert!(
            matches!(err, AuthError::Transport { .. }) && err.is_transient(),
            "{err:?}"
        );
        let mut chain = err.to_string();
        let mut source = std::error::Error::source(&err);
        while let Some(s) = source {
            write!(chain, ": {s}")?;
            source = s.source();
        }
        assert!(!chain.contains("repository"), "{chain}");

        let err = block_on(fetch_token(
            &reqwest::Client::new(),
            &Challenge::Basic { realm: None },
            &[],
            None,
        ))
        .unwrap_err();
        assert!(matches!(err, AuthError::BadResponse(_)), "{err:?}");
        let err = block_on(fetch_token(
            &reqwest::Client::new(),
            &bearer("ftp://x/y", None, None),
            &[],
            None,
        ))
        .unwrap_err();
        assert!(matches!(err, AuthError::BadResponse(_)), "{err:?}");
        Ok(())
    }
}
