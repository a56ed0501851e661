//! [`CredentialError`] (a credential could not be looked up) and [`AuthError`] (a token could not
//! be had), and what the user can do about each.

use std::io;
use std::path::PathBuf;

use reqwest::StatusCode;

use super::credential::{PASSWORD_VAR, USERNAME_VAR};

/// A credential could not be looked up.
#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    /// The docker config exists but could not be read.
    #[error("failed to read the docker config `{}`", path.display())]
    ConfigRead {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The docker config is not valid JSON, or a field has the wrong type.
    #[error("the docker config `{}` is not valid (line {line}, column {column})", path.display())]
    ConfigInvalid {
        /// The file.
        path: PathBuf,
        /// Where the parser stopped.
        line: usize,
        /// Where the parser stopped.
        column: usize,
    },
    /// An `auth` value is not base64 of `user:password`.
    #[error(
        "the docker config `{}` has an `auth` for `{key}` that is not base64 of `user:password`",
        path.display()
    )]
    ConfigAuth {
        /// The file.
        path: PathBuf,
        /// The `auths` key.
        key: String,
    },
    /// The configured credential helper is not on `PATH`.
    #[error("the credential helper `{helper}` is not on PATH")]
    HelperMissing {
        /// The program, `docker-credential-<name>`.
        helper: String,
    },
    /// The credential helper failed.
    #[error("the credential helper `{helper}` failed ({reason})")]
    HelperFailed {
        /// The program, `docker-credential-<name>`.
        helper: String,
        /// Its exit status and first line of error, or what went wrong talking to it.
        reason: String,
        /// The cause, when starting or reading it failed.
        #[source]
        source: Option<io::Error>,
    },
}

impl CredentialError {
    /// What the user can do about it.
    pub fn hint(&self) -> String {
        match self {
            CredentialError::ConfigRead { .. } | CredentialError::ConfigInvalid { .. } => {
                "fix the file, or point `DOCKER_CONFIG` at another directory".into()
            }
            CredentialError::ConfigAuth { .. } => "log in again with `docker login`".into(),
            CredentialError::HelperMissing { helper } => format!(
                "install `{helper}`, or remove it from `credHelpers`/`credsStore` in the docker config"
            ),
            CredentialError::HelperFailed { helper, .. } => {
                format!("run `echo <registry> | {helper} get` to see what it says")
            }
        }
    }
}

/// A token could not be had.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// The token service refused the credentials (or their absence).
    #[error("the token service at `{realm_host}` refused access (HTTP {status})")]
    Denied {
        /// The token service's host\[:port\].
        realm_host: String,
        /// `401`, `403`, or `400` for a refresh token it does not accept.
        status: u16,
    },
    /// The token service answered another error status.
    #[error("the token service at `{realm_host}` answered HTTP {status}")]
    Status {
        /// The token service's host\[:port\].
        realm_host: String,
        /// The status.
        status: u16,
    },
    /// The token service could not be reached, or the connection broke.
    #[error("could not get a token from `{realm_host}`")]
    Transport {
        /// The token service's host\[:port\].
        realm_host: String,
        /// The cause, without its URL.
        #[source]
        source: reqwest::Error,
    },
    /// The challenge or the token service's answer is not what the protocol says.
    #[error("{0}")]
    BadResponse(String),
}

impl AuthError {
    /// What the user can do about it.
    pub fn hint(&self) -> String {
        match self {
            AuthError::Denied { .. } => format!(
                "log in with `docker login <registry>`, or set `{USERNAME_VAR}` and `{PASSWORD_VAR}`; check that the repository exists and that the account may pull it"
            ),
            AuthError::Status { .. } | AuthError::Transport { .. } if self.is_transient() => {
                "the token service may be busy or unreachable: run the same command again later"
                    .into()
            }
            AuthError::Status { .. } | AuthError::Transport { .. } => {
                "check the registry's address and the network (proxy settings included)".into()
            }
            AuthError::BadResponse(_) => {
                "the registry's token service does not follow the distribution token protocol"
                    .into()
            }
        }
    }

    /// Whether trying again may help: a connection failure, a timeout, `5xx` or `429`.
    pub fn is_transient(&self) -> bool {
        match self {
            AuthError::Status { status, .. } => {
                *status >= 500 || *status == StatusCode::TOO_MANY_REQUESTS.as_u16()
            }
            AuthError::Transport { source, .. } => {
                source.is_timeout()
                    || source.is_connect()
                    || source.is_request()
                    || source.is_body()
            }
            AuthError::Denied { .. } | AuthError::BadResponse(_) => false,
        }
    }
}
