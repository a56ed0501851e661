//! Which provider gave Azure credentials ([`Provider`]), one that gave nothing ([`Tried`]), and
//! why none could be had ([`AzureCredentialError`]).

use std::fmt;
use std::path::PathBuf;

/// Which provider gave the credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provider {
    /// A SAS token in the reference's query.
    SasInReference,
    /// `AZURE_STORAGE_SAS_TOKEN`.
    SasVariable,
    /// `AZURE_STORAGE_CONNECTION_STRING`.
    ConnectionString,
    /// `AZURE_STORAGE_ACCOUNT` and `AZURE_STORAGE_KEY`.
    AccountKey,
    /// Entra ID with `AZURE_CLIENT_SECRET`.
    ClientSecret,
    /// Entra ID with `AZURE_FEDERATED_TOKEN_FILE`.
    WorkloadIdentity,
    /// App Service's identity endpoint or the instance metadata service.
    ManagedIdentity,
    /// None was found, or `--no-sign-request`.
    Anonymous,
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Provider::SasInReference => "the SAS token in the reference",
            Provider::SasVariable => "the SAS token in `AZURE_STORAGE_SAS_TOKEN`",
            Provider::ConnectionString => "`AZURE_STORAGE_CONNECTION_STRING`",
            Provider::AccountKey => "the account key in `AZURE_STORAGE_KEY`",
            Provider::ClientSecret => "Entra ID with a client secret",
            Provider::WorkloadIdentity => "Entra ID with workload identity",
            Provider::ManagedIdentity => "managed identity",
            Provider::Anonymous => "no credentials",
        })
    }
}

/// One provider that gave nothing, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tried {
    /// The provider: `SAS token`, `connection string`, `account key`, `client secret`,
    /// `workload identity`, `managed identity`.
    pub provider: &'static str,
    /// Why it gave nothing, in a phrase.
    pub reason: String,
}

impl fmt::Display for Tried {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.provider, self.reason)
    }
}

/// Azure credentials could not be had.
#[derive(Debug, thiserror::Error)]
pub enum AzureCredentialError {
    /// No provider holds credentials, and the service refused an anonymous request.
    #[error("no Azure credentials found ({})", tried.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    NotFound {
        /// Every provider tried, in order, and why it gave nothing.
        tried: Vec<Tried>,
    },
    /// A variable does not hold a value of the kind it needs. Its value is never shown.
    #[error("{setting} is not {expected}")]
    InvalidSetting {
        /// The variable, as shown to the user.
        setting: String,
        /// What it should be.
        expected: &'static str,
    },
    /// A file could not be read.
    #[error("failed to read {what} `{}`", path.display())]
    FileRead {
        /// What the file is.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The token service answered with an error status.
    #[error("{provider}: the token service at `{endpoint}` answered HTTP {status}{}", code.as_ref().map(|c| format!(" (`{c}`)")).unwrap_or_default())]
    TokenRefused {
        /// Which provider.
        provider: Provider,
        /// Its `scheme://host[:port]`.
        endpoint: String,
        /// The status.
        status: u16,
        /// Its `error` code, when it gave one.
        code: Option<String>,
    },
    /// The token service could not be reached.
    #[error("{provider}: could not reach the token service at `{endpoint}`")]
    TokenUnreachable {
        /// Which provider.
        provider: Provider,
        /// Its `scheme://host[:port]`.
        endpoint: String,
        /// The cause, without its URL.
        #[source]
        source: reqwest::Error,
    },
    /// The token service answered, but with no token.
    #[error("{provider}: the token service at `{endpoint}` gave no token: {reason}")]
    TokenAnswer {
        /// Which provider.
        provider: Provider,
        /// Its `scheme://host[:port]`.
        endpoint: String,
        /// What is wrong with the answer, without quoting it.
        reason: String,
    },
}

impl AzureCredentialError {
    /// What the user can do about it.
    pub fn hint(&self) -> String {
        match self {
            AzureCredentialError::NotFound { .. } => "set AZURE_STORAGE_CONNECTION_STRING, AZURE_STORAGE_ACCOUNT and AZURE_STORAGE_KEY, AZURE_STORAGE_SAS_TOKEN, or AZURE_CLIENT_ID, AZURE_TENANT_ID and AZURE_CLIENT_SECRET; or pass --no-sign-request for a public container".into(),
            AzureCredentialError::InvalidSetting { setting, .. } => format!("fix {setting}"),
            AzureCredentialError::FileRead { .. } => "check that the file exists and is readable".into(),
            AzureCredentialError::TokenRefused { provider: Provider::ManagedIdentity, .. } => {
                "check that a managed identity is assigned to this machine, and AZURE_CLIENT_ID if it has several".into()
            }
            AzureCredentialError::TokenRefused { provider: Provider::WorkloadIdentity, .. } => {
                "check AZURE_CLIENT_ID and AZURE_TENANT_ID, and that the identity trusts the issuer of the token in AZURE_FEDERATED_TOKEN_FILE".into()
            }
            AzureCredentialError::TokenRefused { .. } => {
                "check AZURE_CLIENT_ID, AZURE_TENANT_ID and AZURE_CLIENT_SECRET (a secret may have expired)".into()
            }
            AzureCredentialError::TokenUnreachable { .. }
            | AzureCredentialError::TokenAnswer { .. } => {
                "check AZURE_AUTHORITY_HOST and the network (proxy settings included), then run the same command again".into()
            }
        }
    }
}
