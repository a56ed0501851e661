//! [`CredentialError`]: why credentials or configuration could not be had, and what the user can
//! do about it.

use std::fmt;
use std::io;
use std::path::PathBuf;

use reqwest::StatusCode;

use super::credential::Source;

/// One source that gave nothing, and why, for [`CredentialError::NotFound`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tried {
    /// The source: `environment`, `shared files`, `web identity`, `container`,
    /// `instance metadata`.
    pub source: &'static str,
    /// Why it gave nothing, in a phrase.
    pub reason: String,
}

impl fmt::Display for Tried {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.source, self.reason)
    }
}

/// Credentials or configuration could not be had.
#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    /// No source holds credentials.
    #[error("no AWS credentials found ({})", tried.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    NotFound {
        /// Every source tried, in order, and why it gave nothing.
        tried: Vec<Tried>,
    },
    /// The profile asked for is in neither shared file.
    #[error("there is no profile `{profile}` in {files}")]
    ProfileNotFound {
        /// The profile.
        profile: String,
        /// The files searched, as shown to the user.
        files: String,
    },
    /// The profile has one of its keys but not the other.
    #[error("profile `{profile}` sets `{present}` but not `{missing}`")]
    ProfileIncomplete {
        /// The profile.
        profile: String,
        /// The key it sets.
        present: &'static str,
        /// The key it lacks.
        missing: &'static str,
    },
    /// The profile gets credentials in a way this crate does not implement.
    #[error("profile `{profile}` uses `{setting}`, which is not supported")]
    ProfileUnsupported {
        /// The profile.
        profile: String,
        /// The setting: `role_arn`, `sso_session`, `sso_start_url`, `credential_source`.
        setting: &'static str,
    },
    /// A file exists but could not be read.
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
    /// A setting does not have a value of the kind it needs.
    #[error("{setting} is not {expected}{}", value.as_ref().map(|v| format!(" (it is `{v}`)")).unwrap_or_default())]
    InvalidSetting {
        /// The variable or profile setting, as shown to the user.
        setting: String,
        /// Its value, made printable; `None` when it is secret.
        value: Option<String>,
        /// What it should be.
        expected: &'static str,
    },
    /// A profile's `credential_process` could not be run, or failed. Its output is not shown:
    /// it may hold secrets.
    #[error("the `credential_process` of profile `{profile}` failed ({status})")]
    CredentialProcessFailed {
        /// The profile.
        profile: String,
        /// Its exit status, or what went wrong starting it.
        status: String,
        /// The cause, when starting it failed.
        #[source]
        source: Option<io::Error>,
    },
    /// A profile's `credential_process` succeeded but printed no usable credentials.
    #[error(
        "the `credential_process` of profile `{profile}` printed no usable credentials: {reason}"
    )]
    CredentialProcessOutput {
        /// The profile.
        profile: String,
        /// What is wrong with the output, without quoting it.
        reason: &'static str,
    },
    /// STS, the container endpoint or the metadata service answered with an error status.
    #[error("{from} at `{endpoint}` answered HTTP {status}{}", code.as_ref().map(|c| format!(" (`{c}`)")).unwrap_or_default())]
    ServiceRefused {
        /// Which service.
        from: Source,
        /// Its `scheme://host[:port]`.
        endpoint: String,
        /// The status.
        status: u16,
        /// STS's or the metadata service's error code, when it gave one.
        code: Option<String>,
    },
    /// STS, the container endpoint or the metadata service could not be reached, or did not
    /// answer in time.
    #[error("could not get credentials from {from} at `{endpoint}`")]
    ServiceUnreachable {
        /// Which service.
        from: Source,
        /// Its `scheme://host[:port]`.
        endpoint: String,
        /// The cause, without its URL.
        #[source]
        source: reqwest::Error,
    },
    /// STS, the container endpoint or the metadata service answered, but not with credentials.
    #[error("{from} at `{endpoint}` answered with no usable credentials: {reason}")]
    ServiceAnswer {
        /// Which service.
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
            CredentialError::NotFound { .. } => "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE, or pass --no-sign-request for a public bucket".into(),
            CredentialError::ProfileNotFound { profile, .. } => format!(
                "add `[profile {profile}]` to the config file or `[{profile}]` to the credentials file, or set AWS_PROFILE to a profile that exists"
            ),
            CredentialError::ProfileIncomplete { missing, .. } => {
                format!("add `{missing}` to the profile, or remove the key it goes with")
            }
            CredentialError::ProfileUnsupported { profile, .. } => format!(
                "export the profile's credentials with `aws configure export-credentials --profile {profile} --format env` and run again"
            ),
            CredentialError::FileRead { .. } => {
                "check that the file exists and is readable, or point the variable naming it elsewhere".into()
            }
            CredentialError::InvalidSetting { setting, .. } => format!("fix {setting}"),
            CredentialError::CredentialProcessFailed { .. } => {
                "run the profile's `credential_process` command by hand to see what it says".into()
            }
            CredentialError::CredentialProcessOutput { .. } => {
                "the command must print `{\"Version\": 1, \"AccessKeyId\": …, \"SecretAccessKey\": …}`, with `SessionToken` and `Expiration` for temporary credentials".into()
            }
            _ if self.is_transient() => {
                "the credentials service may be busy or starting: run the same command again".into()
            }
            CredentialError::ServiceRefused { from: Source::WebIdentity, .. }
            | CredentialError::ServiceAnswer { from: Source::WebIdentity, .. } => {
                "check AWS_ROLE_ARN, and that the role trusts the identity provider that issued the token in AWS_WEB_IDENTITY_TOKEN_FILE".into()
            }
            CredentialError::ServiceRefused { from: Source::Container, .. } => {
                "check AWS_CONTAINER_AUTHORIZATION_TOKEN or AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE".into()
            }
            CredentialError::ServiceRefused { from: Source::InstanceMetadata, .. }
            | CredentialError::ServiceAnswer { from: Source::InstanceMetadata, .. } => {
                "check the IAM role attached to the instance, or set AWS_EC2_METADATA_DISABLED=true and give credentials another way".into()
            }
            CredentialError::ServiceRefused { .. }
            | CredentialError::ServiceAnswer { .. }
            | CredentialError::ServiceUnreachable { .. } => {
                "check the endpoint and the network (proxy settings included)".into()
            }
        }
    }

    /// Whether resolving again may help: a timeout or failed connection to a service that was
    /// named, `5xx` or `429`.
    pub fn is_transient(&self) -> bool {
        match self {
            CredentialError::ServiceRefused { status, .. } => {
                *status >= 500 || *status == StatusCode::TOO_MANY_REQUESTS.as_u16()
            }
            CredentialError::ServiceUnreachable { source, .. } => {
                source.is_timeout() || source.is_connect() || source.is_body()
            }
            _ => false,
        }
    }
}
