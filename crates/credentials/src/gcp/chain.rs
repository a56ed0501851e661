//! [`resolve`]: the providers tried in Google's order, and what one gives, [`GcpCredentials`]:
//! a token that is replaced before it expires.

use std::path::{Path, PathBuf};
use std::sync::{PoisonError, RwLock};
use std::time::SystemTime;

use url::Url;

use super::error::{CredentialError, Tried};
use super::key_file::KeyFile;
use super::metadata;
use super::source::Source;
use super::token::{AccessToken, Scope};
use super::var;
use crate::secret::Secret;

/// What [`resolve`] found.
#[derive(Debug)]
pub enum Resolved {
    /// Credentials, with a token.
    Found(Box<GcpCredentials>),
    /// None: requests go anonymous. Every provider tried, and why each gave nothing, for the
    /// message when a bucket then refuses them.
    Anonymous {
        /// The providers, in order.
        tried: Vec<Tried>,
    },
}

/// Credentials that give tokens: the provider, and the token it gave last.
#[derive(Debug)]
pub struct GcpCredentials {
    provider: Provider,
    source: Source,
    scope: Scope,
    token: RwLock<AccessToken>,
    /// One refresh at a time: the requests refused together wait for the same new token.
    refreshing: tokio::sync::Mutex<()>,
}

#[derive(Debug)]
enum Provider {
    KeyFile(KeyFile),
    Metadata { url: Url, endpoint: String },
}

impl GcpCredentials {
    /// Where the tokens come from.
    pub fn source(&self) -> &Source {
        &self.source
    }

    /// The token held now, for a request built without waiting (a download's range).
    pub fn current(&self) -> Secret {
        self.token
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .token
            .clone()
    }

    /// The token held now, or a new one when it is about to expire.
    ///
    /// # Errors
    ///
    /// When a new token was needed and could not be had.
    pub async fn token(&self, client: &reqwest::Client) -> Result<Secret, CredentialError> {
        let held = self
            .token
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        if held.is_expiring(SystemTime::now()) {
            return self.refresh(client, &held.token).await;
        }
        Ok(held.token)
    }

    /// A new token in place of `stale` (refused, or about to expire); the token already held
    /// when another caller replaced `stale` meanwhile.
    ///
    /// # Errors
    ///
    /// When the provider gave none.
    pub async fn refresh(
        &self,
        client: &reqwest::Client,
        stale: &Secret,
    ) -> Result<Secret, CredentialError> {
        let _one = self.refreshing.lock().await;
        let now = self.current();
        if &now != stale {
            return Ok(now);
        }
        let token = self
            .provider
            .token(client, self.scope, &self.source, false)
            .await?;
        tracing::debug!(from = %self.source, "got a new Google access token");
        let secret = token.token.clone();
        *self.token.write().unwrap_or_else(PoisonError::into_inner) = token;
        Ok(secret)
    }
}

impl Provider {
    async fn token(
        &self,
        client: &reqwest::Client,
        scope: Scope,
        source: &Source,
        probe: bool,
    ) -> Result<AccessToken, CredentialError> {
        match self {
            Provider::KeyFile(file) => file.token(client, scope, source).await,
            Provider::Metadata { url, endpoint } => {
                metadata::token(client, url, endpoint, probe).await
            }
        }
    }
}

/// Finds credentials for `scope`, trying each provider in Google's order (see the
/// [module docs](super)), and gets their first token. The environment is `env`.
///
/// # Errors
///
/// When a key file is named but cannot be read or used, or a provider that is there refused
/// or failed to give a token.
pub async fn resolve(
    client: &reqwest::Client,
    env: &(dyn Fn(&str) -> Option<String> + Sync),
    scope: Scope,
) -> Result<Resolved, CredentialError> {
    let mut tried = Vec::new();
    // 1. GOOGLE_APPLICATION_CREDENTIALS.
    match var(env, "GOOGLE_APPLICATION_CREDENTIALS") {
        Some(path) => {
            let path = PathBuf::from(path);
            let file = KeyFile::read(&path, "GOOGLE_APPLICATION_CREDENTIALS")?;
            return found(client, Provider::KeyFile(file), &path, scope).await;
        }
        None => tried.push(Tried {
            provider: "GOOGLE_APPLICATION_CREDENTIALS",
            reason: "GOOGLE_APPLICATION_CREDENTIALS not set".into(),
        }),
    }
    // 2. gcloud's ADC file.
    match adc_file(env) {
        Some(path) if path.is_file() => {
            let file = KeyFile::read(&path, "gcloud's application default credentials")?;
            return found(client, Provider::KeyFile(file), &path, scope).await;
        }
        Some(path) => tried.push(Tried {
            provider: "gcloud",
            reason: format!("no gcloud ADC file at `{}`", path.display()),
        }),
        None => tried.push(Tried {
            provider: "gcloud",
            reason: "no gcloud ADC file (neither CLOUDSDK_CONFIG nor HOME is set)".into(),
        }),
    }
    // 3. The metadata server.
    let (url, endpoint) = metadata::token_url(env)?;
    let source = Source::MetadataServer;
    match metadata::token(client, &url, &endpoint, true).await {
        Ok(token) => {
            tracing::debug!(from = %source, "found Google credentials");
            return Ok(Resolved::Found(Box::new(GcpCredentials {
                provider: Provider::Metadata { url, endpoint },
                source,
                scope,
                token: RwLock::new(token),
                refreshing: tokio::sync::Mutex::new(()),
            })));
        }
        Err(CredentialError::Unreachable { .. }) => tried.push(Tried {
            provider: "metadata server",
            reason: format!("metadata server not reachable at `{endpoint}`"),
        }),
        Err(CredentialError::Refused { status: 404, .. }) => tried.push(Tried {
            provider: "metadata server",
            reason: format!("the metadata server at `{endpoint}` has no service account"),
        }),
        Err(e) => return Err(e),
    }
    // 4. Anonymous.
    for t in &tried {
        tracing::debug!(provider = t.provider, reason = %t.reason, "no Google credentials here");
    }
    Ok(Resolved::Anonymous { tried })
}

/// The credentials of the key file `file` at `path`, with their first token.
async fn found(
    client: &reqwest::Client,
    provider: Provider,
    path: &Path,
    scope: Scope,
) -> Result<Resolved, CredentialError> {
    let source = match &provider {
        Provider::KeyFile(file) => file.source(path),
        Provider::Metadata { .. } => Source::MetadataServer,
    };
    let token = provider.token(client, scope, &source, false).await?;
    tracing::debug!(from = %source, "found Google credentials");
    Ok(Resolved::Found(Box::new(GcpCredentials {
        provider,
        source,
        scope,
        token: RwLock::new(token),
        refreshing: tokio::sync::Mutex::new(()),
    })))
}

/// gcloud's ADC file: in `$CLOUDSDK_CONFIG`, else `~/.config/gcloud`.
fn adc_file(env: &dyn Fn(&str) -> Option<String>) -> Option<PathBuf> {
    let dir = match var(env, "CLOUDSDK_CONFIG") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(var(env, "HOME")?).join(".config/gcloud"),
    };
    Some(dir.join("application_default_credentials.json"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::block_on;

    #[test]
    fn with_nothing_there_every_provider_says_why_and_requests_go_anonymous() {
        let home = tempfile::tempdir().expect("a directory");
        // A port nothing listens on: the metadata server is not there, and says so at once.
        let closed = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a port");
        let home_dir = home.path().to_string_lossy().into_owned();
        let env = move |name: &str| match name {
            "HOME" => Some(home_dir.clone()),
            "GCE_METADATA_HOST" => Some(closed.to_string()),
            _ => None,
        };
        let client = reqwest::Client::new();
        let resolved = block_on(resolve(&client, &env, Scope::ReadOnly)).expect("no error");
        let Resolved::Anonymous { tried } = resolved else {
            panic!("anonymous");
        };
        assert_eq!(
            Tried::list(&tried),
            format!(
                "GOOGLE_APPLICATION_CREDENTIALS not set; no gcloud ADC file at `{}`; metadata server not reachable at `http://{closed}`",
                home.path()
                    .join(".config/gcloud/application_default_credentials.json")
                    .display()
            )
        );
    }

    #[test]
    fn a_named_key_file_that_is_missing_is_an_error_not_a_fall_through() {
        let env = |name: &str| {
            (name == "GOOGLE_APPLICATION_CREDENTIALS").then(|| "/nonexistent/key.json".to_owned())
        };
        let client = reqwest::Client::new();
        let err = block_on(resolve(&client, &env, Scope::ReadOnly)).expect_err("an error");
        assert!(matches!(err, CredentialError::FileRead { .. }), "{err}");
        assert!(err.to_string().contains("/nonexistent/key.json"));
    }

    #[test]
    fn gcloud_config_overrides_home() {
        let env = |name: &str| match name {
            "CLOUDSDK_CONFIG" => Some("/cfg".to_owned()),
            "HOME" => Some("/home/u".to_owned()),
            _ => None,
        };
        assert_eq!(
            adc_file(&env),
            Some(PathBuf::from("/cfg/application_default_credentials.json"))
        );
        assert_eq!(adc_file(&|_: &str| None), None);
    }
}
