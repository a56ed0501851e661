//! What is retried and how: [`RetryPolicy`], [`with_retries`] (the one loop every API call and
//! upload goes through; a download's requests count their attempts with the same
//! [`Attempts`], between reads of the body), and the failure of one attempt before it becomes
//! an [`Error`].

use std::time::Duration;

use reqwest::StatusCode;

use crate::error::Error;
use mp_progress::Progress;

/// Retries after transient failures (connection errors, timeouts, `5xx`, `429`, a body cut
/// short, a stalled stream), with exponential backoff. Other failures end a request at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first attempt, per request.
    pub retries: u32,
    /// Delay before the first retry; doubled for each further one, up to `max_backoff`.
    pub backoff: Duration,
    /// The longest delay between two attempts.
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            retries: 5,
            backoff: Duration::from_millis(250),
            max_backoff: Duration::from_secs(10),
        }
    }
}

impl RetryPolicy {
    /// The delay before retry number `attempt` (1 for the first retry).
    pub fn delay(&self, attempt: u32) -> Duration {
        let factor = 1u32 << attempt.saturating_sub(1).min(6);
        (self.backoff * factor).min(self.max_backoff)
    }

    /// A fresh count of attempts for one request to `url` (as shown in messages).
    pub fn attempts<'a>(&self, url: &'a str) -> Attempts<'a> {
        Attempts {
            progress: None,
            policy: *self,
            url,
            failed: 0,
        }
    }
}

/// Runs `attempt` until it succeeds, fails for good, or the policy's retries are spent,
/// waiting with backoff between attempts; `display` names what is asked for in messages. One
/// attempt is usually one `source::send` (which re-authorises once and follows
/// a source's redirects); an upload's attempt may be several requests (a new upload session,
/// then its body).
pub async fn with_retries<T, F, Fut>(
    policy: RetryPolicy,
    display: &str,
    mut attempt: F,
) -> Result<T, Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, Failure>>,
{
    let mut attempts = policy.attempts(display);
    loop {
        match attempt().await {
            Ok(value) => return Ok(value),
            Err(failure) => attempts.failed(failure).await?,
        }
    }
}

/// The attempts made so far at one request: [`with_retries`] counts with it, and so do a
/// download's requests, whose attempts span reading the body too.
pub struct Attempts<'a> {
    /// Told of each retry (a download's progress).
    progress: Option<&'a dyn Progress>,
    policy: RetryPolicy,
    url: &'a str,
    failed: u32,
}

impl std::fmt::Debug for Attempts<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Attempts")
            .field("policy", &self.policy)
            .field("url", &self.url)
            .field("failed", &self.failed)
            .field("progress", &self.progress.is_some())
            .finish()
    }
}

impl<'a> Attempts<'a> {
    /// These attempts, with each retry told to `progress` as well as logged.
    #[must_use]
    pub fn reporting(self, progress: &'a dyn Progress) -> Self {
        Attempts {
            progress: Some(progress),
            ..self
        }
    }

    /// Records a failed attempt: waits before the next one when `failure` is transient and
    /// retries remain, else returns the final error.
    pub async fn failed(&mut self, failure: Failure) -> Result<(), Error> {
        if !failure.transient || self.failed >= self.policy.retries {
            return Err(failure.into_error(self.url, self.failed + 1));
        }
        self.failed += 1;
        let delay = self.policy.delay(self.failed);
        tracing::warn!(
            url = self.url,
            attempt = self.failed,
            retries = self.policy.retries,
            delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
            error = %failure,
            "retrying"
        );
        if let Some(progress) = self.progress {
            progress.retrying(self.failed, &failure.to_string());
        }
        tokio::time::sleep(delay).await;
        Ok(())
    }

    /// The attempts made so far, the current one included.
    pub fn count(&self) -> u32 {
        self.failed + 1
    }
}

/// One failed attempt, before it becomes an [`Error`].
#[derive(Debug)]
pub struct Failure {
    status: Option<StatusCode>,
    transient: bool,
    reason: String,
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
    local: Option<Box<Error>>,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.reason)?;
        let mut source = self.source.as_deref().map(|s| s as &dyn std::error::Error);
        while let Some(s) = source {
            write!(f, ": {s}")?;
            source = s.source();
        }
        Ok(())
    }
}

impl Failure {
    /// A request that got no answer: retried when the error is one that passes (a connection
    /// refused or reset, a timeout).
    pub fn from_reqwest(e: reqwest::Error) -> Self {
        let mut failure = Failure::like(&e);
        failure.source = Some(Box::new(e.without_url()));
        failure
    }

    /// A failure of the kind `e` is (transient or not, and why), without `e` as its source.
    pub fn like(e: &reqwest::Error) -> Self {
        // The same certificate comes back on every attempt: not worth a retry.
        if let Some(problem) = untrusted_certificate(e) {
            return Failure {
                status: None,
                transient: false,
                reason: format!("the server's certificate is not trusted: {problem}"),
                source: None,
                local: None,
            };
        }
        let transient =
            e.is_timeout() || e.is_connect() || e.is_body() || e.is_request() || e.is_decode();
        let reason = if e.is_timeout() {
            "the request timed out"
        } else if e.is_connect() {
            "could not connect"
        } else if e.is_body() || e.is_decode() {
            "the connection broke while receiving the body"
        } else {
            "the request failed"
        };
        Failure {
            status: e.status(),
            transient,
            reason: reason.to_owned(),
            source: None,
            local: None,
        }
    }

    /// An HTTP status: transient for `5xx` and `429`.
    pub fn status(status: StatusCode) -> Self {
        Failure {
            status: Some(status),
            transient: status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS,
            reason: format!("HTTP {status}"),
            source: None,
            local: None,
        }
    }

    /// The failure a response with `status` is, when it is one to retry (`5xx`, `429`).
    pub fn transient_status(status: StatusCode) -> Option<Self> {
        let failure = Failure::status(status);
        failure.transient.then_some(failure)
    }

    pub(crate) fn stalled(after: Duration) -> Self {
        Failure::other(&format!("no data for {} s", after.as_secs()), true)
    }

    pub(crate) fn other(reason: &str, transient: bool) -> Self {
        Failure {
            status: None,
            transient,
            reason: reason.to_owned(),
            source: None,
            local: None,
        }
    }

    /// The server said something the protocol does not allow: never retried.
    pub fn protocol(what: &str) -> Self {
        Failure::other(&format!("the server sent {what}"), false)
    }

    /// A failure on this machine (a write, a sync): reported as it is, never retried.
    pub fn local(e: impl Into<Error>) -> Self {
        Failure {
            status: None,
            transient: false,
            reason: String::new(),
            source: None,
            local: Some(Box::new(e.into())),
        }
    }

    pub(crate) fn into_error(self, url: &str, attempts: u32) -> Error {
        if let Some(local) = self.local {
            return *local;
        }
        Error::Download {
            url: url.to_owned(),
            status: self.status.map(|s| s.as_u16()),
            attempts,
            reason: self.reason,
            source: self.source,
        }
    }
}

/// What is wrong with the server's certificate, in words, when `e` or an error it wraps is the
/// TLS client refusing it (an unknown certificate authority, another host name, expired).
pub fn untrusted_certificate(e: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut next = Some(e);
    while let Some(e) = next {
        // An `io::Error`'s `source()` skips the error it wraps, and the TLS error comes wrapped
        // in two of them (hyper-rustls in tokio-rustls's): unwrap them by hand.
        let mut inner = e;
        while let Some(wrapped) = inner
            .downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::get_ref)
        {
            inner = wrapped;
        }
        if let Some(tls @ rustls::Error::InvalidCertificate(problem)) = inner.downcast_ref() {
            return Some(match problem {
                rustls::CertificateError::UnknownIssuer => {
                    "it is signed by an unknown certificate authority".to_owned()
                }
                _ => tls.to_string(),
            });
        }
        next = e.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let p = RetryPolicy {
            retries: 10,
            backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(700),
        };
        let delays: Vec<_> = (1..=5).map(|a| p.delay(a).as_millis()).collect();
        assert_eq!(delays, [100, 200, 400, 700, 700]);
    }

    #[test]
    fn only_transient_statuses_are_retried() {
        for (code, transient) in [
            (500, true),
            (503, true),
            (429, true),
            (404, false),
            (401, false),
        ] {
            let f = Failure::status(StatusCode::from_u16(code).unwrap());
            assert_eq!(f.transient, transient, "{code}");
        }
    }

    #[test]
    fn attempts_end_with_the_last_failure_and_its_count() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        let policy = RetryPolicy {
            retries: 2,
            backoff: Duration::from_millis(1),
            ..RetryPolicy::default()
        };
        rt.block_on(async {
            let mut attempts = policy.attempts("http://h/f");
            attempts.failed(Failure::other("cut", true)).await.unwrap();
            attempts.failed(Failure::other("cut", true)).await.unwrap();
            let err = attempts
                .failed(Failure::other("cut", true))
                .await
                .unwrap_err();
            assert!(
                matches!(err, Error::Download { attempts: 3, .. }),
                "{err:?}"
            );
            let mut fresh = policy.attempts("http://h/f");
            let err = fresh
                .failed(Failure::status(StatusCode::NOT_FOUND))
                .await
                .unwrap_err();
            assert!(
                matches!(
                    err,
                    Error::Download {
                        status: Some(404),
                        attempts: 1,
                        ..
                    }
                ),
                "{err:?}"
            );
        });
    }

    /// A wrapper that shows only its own words, as hyper's errors do.
    #[derive(Debug)]
    struct Wrapped(Box<dyn std::error::Error + Send + Sync>);

    impl std::fmt::Display for Wrapped {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("client error (Connect)")
        }
    }

    impl std::error::Error for Wrapped {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&*self.0)
        }
    }

    #[test]
    fn a_refused_certificate_is_found_inside_nested_io_errors_and_named() {
        let tls = |problem| {
            Wrapped(Box::new(std::io::Error::other(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                rustls::Error::InvalidCertificate(problem),
            ))))
        };
        assert_eq!(
            untrusted_certificate(&tls(rustls::CertificateError::UnknownIssuer)).as_deref(),
            Some("it is signed by an unknown certificate authority")
        );
        assert_eq!(
            untrusted_certificate(&tls(rustls::CertificateError::Expired)).as_deref(),
            Some("invalid peer certificate: Expired")
        );
        let refused = Wrapped(Box::new(std::io::Error::from(
            std::io::ErrorKind::ConnectionRefused,
        )));
        assert_eq!(untrusted_certificate(&refused), None);
        let alert = Wrapped(Box::new(std::io::Error::other(
            rustls::Error::AlertReceived(rustls::AlertDescription::HandshakeFailure),
        )));
        assert_eq!(untrusted_certificate(&alert), None);
    }
}
