//! [`CredentialError`]: why Google credentials could not be had, and what the user can do.

use std::fmt;
use std::io;
use std::path::PathBuf;

use reqwest::StatusCode;

use super::source::Source;

/// One provider that gave nothing, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tried {
    /// The provider: `GOOGLE_APPLICATION_CREDENTIALS`, `gcloud`, `metadata server`.
    pub provider: &'static str,
    /// Why it gave nothing, in a phrase.
    pub reason: String,
}

impl fmt::Display for Tried {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.reason)
    }
}

impl Tried {
    /// Every provider tried, in order, with why each gave nothing: `a; b; c`.
    pub fn list(tried: &[Tried]) -> String {
        tried
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// Google credentials could not be had.
#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    /// A key file exists but could not be read.
    #[error("failed to read {what} `{}`", path.display())]
    FileRead {
        /// What the file is.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// A key file is not one that can be used.
    #[error("{what} `{}` is not a usable key file: {reason}", path.display())]
    KeyFile {
        /// What the file is.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// What is wrong with it, without quoting it.
        reason: String,
    },
    /// A token endpoint or the metadata server answered with an error status.
    #[error("{from} at `{endpoint}` refused to give a token (HTTP {status}{})", code.as_ref().map(|c| format!(", `{c}`")).unwrap_or_default())]
    Refused {
        /// Which provider.
        from: Source,
        /// Its `scheme://host[:port]`.
        endpoint: String,
        /// The status.
        status: u16,
        /// The OAuth error code, when it gave one (`invalid_grant`).
        code: Option<String>,
    },
    /// A token endpoint or the metadata server could not be reached, or did not answer in time.
    #[error("could not get a token from {from} at `{endpoint}`")]
    Unreachable {
        /// Which provider.
        from: Source,
        /// Its `scheme://host[:port]`.
        endpoint: String,
        /// The cause, without its URL.
        #[source]
        source: reqwest::Error,
    },
    /// A token endpoint or the metadata server answered, but not with a token.
    #[error("{from} at `{endpoint}` answered with no usable token: {reason}")]
    Answer {
        /// Which provider.
        from: Source,
        /// Its `scheme://host[:port]`.
        endpoint: String,
        /// What is wrong with the answer, without quoting secrets.
        reason: String,
    },
}

impl CredentialError {
    /// What the user can do about it.
    pub fn hint(&self) -> String {
        match self {
            CredentialError::FileRead { .. } => {
                "check that the file exists and is readable, or point GOOGLE_APPLICATION_CREDENTIALS elsewhere".into()
            }
            CredentialError::KeyFile { .. } => {
                "use a service account's JSON key, or run `gcloud auth application-default login` again".into()
            }
            _ if self.is_transient() => {
                "the token service may be busy: run the same command again".into()
            }
            CredentialError::Refused {
                from: Source::MetadataServer,
                ..
            } => "check the service account attached to the instance or the workload's identity"
                .into(),
            CredentialError::Refused { from: Source::AuthorizedUser(_), .. } => {
                "the refresh token may be revoked or expired: run `gcloud auth application-default login`".into()
            }
            CredentialError::Refused { .. } => {
                "the key may be disabled or deleted: check the service account, or make a new key".into()
            }
            CredentialError::Unreachable { .. } | CredentialError::Answer { .. } => {
                "check the token endpoint and the network (proxy settings included)".into()
            }
        }
    }

    /// Whether asking again may help: a timeout or failed connection, `5xx` or `429`.
    pub fn is_transient(&self) -> bool {
        match self {
            CredentialError::Refused { status, .. } => {
                *status >= 500 || *status == StatusCode::TOO_MANY_REQUESTS.as_u16()
            }
            CredentialError::Unreachable { source, .. } => {
                source.is_timeout() || source.is_connect() || source.is_body()
            }
            _ => false,
        }
    }
}
