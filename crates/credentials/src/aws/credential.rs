//! What the chain hands back: [`AwsCredentials`], the [`Source`] they came from, and what one
//! source gave ([`Outcome`]).

use std::fmt;
use std::time::{Duration, SystemTime};

use crate::secret::Secret;
use catalog_core::printable;

/// Credentials with less than this left are renewed before use (the SDKs' margin).
const EXPIRY_MARGIN: Duration = Duration::from_secs(5 * 60);

/// Credentials to sign requests with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsCredentials {
    /// The access key id, which AWS does not treat as secret.
    pub access_key_id: String,
    /// The secret access key.
    pub secret_access_key: Secret,
    /// The session token of temporary credentials.
    pub session_token: Option<Secret>,
    /// When temporary credentials stop working; `None` for long-term keys.
    pub expires_at: Option<SystemTime>,
}

impl AwsCredentials {
    /// True when these credentials expire in less than five minutes (or have expired): resolve
    /// them again before signing.
    pub fn is_expiring(&self, now: SystemTime) -> bool {
        self.expires_at.is_some_and(|at| {
            at.duration_since(now)
                .map_or(true, |left| left < EXPIRY_MARGIN)
        })
    }

    /// The credentials in the form `rusty-s3` signs with.
    pub fn signing(&self) -> rusty_s3::Credentials {
        let (key, secret) = (
            self.access_key_id.clone(),
            self.secret_access_key.expose().to_owned(),
        );
        match &self.session_token {
            Some(token) => rusty_s3::Credentials::new_with_token(key, secret, token.expose()),
            None => rusty_s3::Credentials::new(key, secret),
        }
    }

    /// Checks that the keys are not empty, then builds the credentials.
    pub(super) fn new(
        access_key_id: &str,
        secret_access_key: &str,
        session_token: Option<&str>,
        expires_at: Option<SystemTime>,
    ) -> Option<Self> {
        let (access_key_id, secret_access_key) = (access_key_id.trim(), secret_access_key.trim());
        if access_key_id.is_empty() || secret_access_key.is_empty() {
            return None;
        }
        Some(AwsCredentials {
            access_key_id: access_key_id.to_owned(),
            secret_access_key: Secret::new(secret_access_key.to_owned()),
            session_token: session_token
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .map(|t| Secret::new(t.to_owned())),
            expires_at,
        })
    }
}

/// Where credentials came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY`.
    Environment,
    /// Keys in this profile of the shared files.
    Profile(String),
    /// The `credential_process` of this profile.
    CredentialProcess(String),
    /// `AssumeRoleWithWebIdentity` at STS.
    WebIdentity,
    /// The ECS or EKS container credentials endpoint.
    Container,
    /// The EC2 instance metadata service.
    InstanceMetadata,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Environment => f.write_str("the environment"),
            Source::Profile(p) => write!(f, "profile `{}`", printable(p)),
            Source::CredentialProcess(p) => {
                write!(f, "the `credential_process` of profile `{}`", printable(p))
            }
            Source::WebIdentity => f.write_str("web identity (STS)"),
            Source::Container => f.write_str("the container credentials endpoint"),
            Source::InstanceMetadata => f.write_str("the instance metadata service"),
        }
    }
}

/// What one source gave.
pub(super) enum Outcome {
    Found(AwsCredentials, Source),
    /// Nothing, for this reason.
    Absent(String),
}
