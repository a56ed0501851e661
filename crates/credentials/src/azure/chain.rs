//! [`resolve`]: the providers tried in the Azure SDKs' order, what they find
//! ([`Credential`]), and why none did ([`AzureCredentialError`]).

use std::path::PathBuf;
use std::sync::Arc;

use url::Url;

use super::connection::ConnectionString;
use super::error::{AzureCredentialError, Provider, Tried};
use super::shared_key::SharedKey;
use super::token::{Grant, IMDS_PROBE_TIMEOUT, TokenCredential};
use super::{Env, sas_query, var};
use crate::Secret;
use mp_transfer::RetryPolicy;

/// Entra ID's own authority, unless `AZURE_AUTHORITY_HOST` names another cloud's.
const DEFAULT_AUTHORITY: &str = "https://login.microsoftonline.com";

/// The instance metadata service.
const IMDS_ENDPOINT: &str = "http://169.254.169.254";

/// What signs a request.
#[derive(Debug, Clone)]
pub enum Credential {
    /// A SAS token, the query every request carries (without `?`).
    Sas(Secret),
    /// The account key: every request signed with `SharedKey`.
    SharedKey(SharedKey),
    /// A bearer token for the storage scope.
    Token(Arc<TokenCredential>),
    /// Nothing: a public container.
    Anonymous,
}

/// What [`resolve`] found.
#[derive(Debug, Clone)]
pub struct Found {
    /// What signs the requests.
    pub credential: Credential,
    /// Where it came from.
    pub provider: Provider,
    /// Every provider tried before it, and why each gave nothing: for the error an anonymous
    /// request that is refused gives.
    pub tried: Vec<Tried>,
}

/// What one provider gave.
enum Outcome {
    Found(Credential, Provider),
    Absent(String),
}

/// Resolves the credentials for `account`, trying each provider in order (see the
/// [module docs](super)): `sas` is a SAS token the reference carried. With `no_sign_request`
/// nothing is looked at. When nothing is found the credential is [`Credential::Anonymous`],
/// with every provider tried in [`Found::tried`].
///
/// # Errors
///
/// A provider whose settings are there but broken (a key that is not base64, a token service
/// that refuses), so that another provider's credentials are never used in its place.
pub async fn resolve(
    client: &reqwest::Client,
    account: &str,
    sas: Option<Secret>,
    no_sign_request: bool,
    env: Env<'_>,
) -> Result<Found, AzureCredentialError> {
    if no_sign_request {
        return Ok(Found {
            credential: Credential::Anonymous,
            provider: Provider::Anonymous,
            tried: Vec::new(),
        });
    }
    let mut tried = Vec::new();
    let providers: [(&'static str, Outcome); 3] = [
        ("SAS token", from_sas(sas, env)?),
        ("connection string", from_connection_string(account, env)?),
        ("account key", from_account_key(account, env)?),
    ];
    for (name, outcome) in providers {
        match outcome {
            Outcome::Found(credential, provider) => return Ok(found(credential, provider, tried)),
            Outcome::Absent(reason) => note(&mut tried, name, reason),
        }
    }
    let authority = authority(env)?;
    for (name, outcome) in [
        ("client secret", from_client_secret(&authority, env)),
        ("workload identity", from_workload_identity(&authority, env)),
    ] {
        match outcome {
            Outcome::Found(Credential::Token(token), provider) => {
                token
                    .first(
                        client,
                        super::token::SERVICE_TIMEOUT,
                        super::token::SERVICE_RETRY,
                    )
                    .await?;
                return Ok(found(Credential::Token(token), provider, tried));
            }
            Outcome::Found(credential, provider) => return Ok(found(credential, provider, tried)),
            Outcome::Absent(reason) => note(&mut tried, name, reason),
        }
    }
    match from_managed_identity(client, env).await? {
        Outcome::Found(credential, provider) => Ok(found(credential, provider, tried)),
        Outcome::Absent(reason) => {
            note(&mut tried, "managed identity", reason);
            tracing::debug!("no Azure credentials: requests go anonymous");
            Ok(Found {
                credential: Credential::Anonymous,
                provider: Provider::Anonymous,
                tried,
            })
        }
    }
}

fn note(tried: &mut Vec<Tried>, provider: &'static str, reason: String) {
    tracing::debug!(provider, reason, "no Azure credentials here");
    tried.push(Tried { provider, reason });
}

fn found(credential: Credential, provider: Provider, tried: Vec<Tried>) -> Found {
    tracing::debug!(%provider, "found Azure credentials");
    Found {
        credential,
        provider,
        tried,
    }
}

/// 1. The reference's SAS token, else `AZURE_STORAGE_SAS_TOKEN`.
fn from_sas(sas: Option<Secret>, env: Env<'_>) -> Result<Outcome, AzureCredentialError> {
    if let Some(sas) = sas {
        return Ok(Outcome::Found(
            Credential::Sas(sas),
            Provider::SasInReference,
        ));
    }
    match var(env, "AZURE_STORAGE_SAS_TOKEN") {
        Some(text) => sas_query(&text)
            .map(|sas| Outcome::Found(Credential::Sas(sas), Provider::SasVariable))
            .ok_or(AzureCredentialError::InvalidSetting {
                setting: "`AZURE_STORAGE_SAS_TOKEN`".into(),
                expected: "a SAS token (a query string with `sig=`)",
            }),
        None => Ok(Outcome::Absent(
            "the reference has no query and `AZURE_STORAGE_SAS_TOKEN` is not set".into(),
        )),
    }
}

/// 2. `AZURE_STORAGE_CONNECTION_STRING`, when it is for `account`.
fn from_connection_string(account: &str, env: Env<'_>) -> Result<Outcome, AzureCredentialError> {
    let Some(text) = var(env, "AZURE_STORAGE_CONNECTION_STRING") else {
        return Ok(Outcome::Absent(
            "`AZURE_STORAGE_CONNECTION_STRING` not set".into(),
        ));
    };
    let parsed =
        ConnectionString::parse(&text).map_err(|_| AzureCredentialError::InvalidSetting {
            setting: "`AZURE_STORAGE_CONNECTION_STRING`".into(),
            expected: "`key=value` pairs separated by `;`",
        })?;
    if let Some(named) = parsed.account.as_deref().filter(|n| *n != account) {
        return Ok(Outcome::Absent(format!(
            "it is for account `{}`, not `{account}`",
            catalog_core::printable(named)
        )));
    }
    if let Some(sas) = parsed.sas {
        return Ok(Outcome::Found(
            Credential::Sas(sas),
            Provider::ConnectionString,
        ));
    }
    if let Some(key) = parsed.key {
        let key = SharedKey::new(account, &key).ok_or(AzureCredentialError::InvalidSetting {
            setting: "the `AccountKey` of `AZURE_STORAGE_CONNECTION_STRING`".into(),
            expected: "base64",
        })?;
        return Ok(Outcome::Found(
            Credential::SharedKey(key),
            Provider::ConnectionString,
        ));
    }
    Ok(Outcome::Absent(
        "it holds neither `AccountKey` nor `SharedAccessSignature`".into(),
    ))
}

/// 3. `AZURE_STORAGE_ACCOUNT` and `AZURE_STORAGE_KEY`.
fn from_account_key(account: &str, env: Env<'_>) -> Result<Outcome, AzureCredentialError> {
    let Some(key) = var(env, "AZURE_STORAGE_KEY") else {
        return Ok(Outcome::Absent("`AZURE_STORAGE_KEY` not set".into()));
    };
    match var(env, "AZURE_STORAGE_ACCOUNT") {
        None => Ok(Outcome::Absent(
            "`AZURE_STORAGE_KEY` is set but `AZURE_STORAGE_ACCOUNT` is not".into(),
        )),
        Some(named) if named.trim() != account => Ok(Outcome::Absent(format!(
            "`AZURE_STORAGE_ACCOUNT` is `{}`, not `{account}`",
            catalog_core::printable(named.trim())
        ))),
        Some(_) => SharedKey::new(account, &Secret::new(key))
            .map(|k| Outcome::Found(Credential::SharedKey(k), Provider::AccountKey))
            .ok_or(AzureCredentialError::InvalidSetting {
                setting: "`AZURE_STORAGE_KEY`".into(),
                expected: "an account key (base64)",
            }),
    }
}

/// `AZURE_AUTHORITY_HOST`, else Entra ID's own.
fn authority(env: Env<'_>) -> Result<Url, AzureCredentialError> {
    let text = var(env, "AZURE_AUTHORITY_HOST").unwrap_or_else(|| DEFAULT_AUTHORITY.to_owned());
    let text = if text.contains("://") {
        text
    } else {
        format!("https://{text}")
    };
    Url::parse(text.trim())
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https"))
        .ok_or(AzureCredentialError::InvalidSetting {
            setting: "`AZURE_AUTHORITY_HOST`".into(),
            expected: "an http(s) URL",
        })
}

/// Which of `names` are not set, as `` `A` and `B` not set ``.
fn missing(env: Env<'_>, names: &[&str]) -> Option<String> {
    let unset: Vec<String> = names
        .iter()
        .filter(|n| var(env, n).is_none())
        .map(|n| format!("`{n}`"))
        .collect();
    (!unset.is_empty()).then(|| format!("{} not set", unset.join(" and ")))
}

/// 4. `AZURE_CLIENT_ID`, `AZURE_CLIENT_SECRET` and `AZURE_TENANT_ID`.
fn from_client_secret(authority: &Url, env: Env<'_>) -> Outcome {
    if let Some(unset) = missing(
        env,
        &["AZURE_CLIENT_SECRET", "AZURE_CLIENT_ID", "AZURE_TENANT_ID"],
    ) {
        return Outcome::Absent(unset);
    }
    let get = |n| var(env, n).unwrap_or_default().trim().to_owned();
    Outcome::Found(
        Credential::Token(Arc::new(TokenCredential::new(Grant::ClientSecret {
            authority: authority.clone(),
            tenant: get("AZURE_TENANT_ID"),
            client_id: get("AZURE_CLIENT_ID"),
            secret: Secret::new(get("AZURE_CLIENT_SECRET")),
        }))),
        Provider::ClientSecret,
    )
}

/// 5. `AZURE_FEDERATED_TOKEN_FILE`, `AZURE_CLIENT_ID` and `AZURE_TENANT_ID`.
fn from_workload_identity(authority: &Url, env: Env<'_>) -> Outcome {
    if let Some(unset) = missing(
        env,
        &[
            "AZURE_FEDERATED_TOKEN_FILE",
            "AZURE_CLIENT_ID",
            "AZURE_TENANT_ID",
        ],
    ) {
        return Outcome::Absent(unset);
    }
    let get = |n| var(env, n).unwrap_or_default().trim().to_owned();
    Outcome::Found(
        Credential::Token(Arc::new(TokenCredential::new(Grant::WorkloadIdentity {
            authority: authority.clone(),
            tenant: get("AZURE_TENANT_ID"),
            client_id: get("AZURE_CLIENT_ID"),
            file: PathBuf::from(get("AZURE_FEDERATED_TOKEN_FILE")),
        }))),
        Provider::WorkloadIdentity,
    )
}

/// Managed identity (6): App Service's identity endpoint, else the instance metadata service,
/// asked once with a short time limit, since off Azure nothing answers there.
async fn from_managed_identity(
    client: &reqwest::Client,
    env: Env<'_>,
) -> Result<Outcome, AzureCredentialError> {
    let client_id = var(env, "AZURE_CLIENT_ID").map(|c| c.trim().to_owned());
    if let (Some(endpoint), Some(header)) =
        (var(env, "IDENTITY_ENDPOINT"), var(env, "IDENTITY_HEADER"))
    {
        let endpoint =
            Url::parse(endpoint.trim()).map_err(|_| AzureCredentialError::InvalidSetting {
                setting: "`IDENTITY_ENDPOINT`".into(),
                expected: "a URL",
            })?;
        let token = Arc::new(TokenCredential::new(Grant::AppService {
            endpoint,
            header: Secret::new(header.trim().to_owned()),
            client_id,
        }));
        token
            .first(
                client,
                super::token::SERVICE_TIMEOUT,
                super::token::SERVICE_RETRY,
            )
            .await?;
        return Ok(Outcome::Found(
            Credential::Token(token),
            Provider::ManagedIdentity,
        ));
    }
    let base =
        var(env, "AZURE_POD_IDENTITY_AUTHORITY_HOST").unwrap_or_else(|| IMDS_ENDPOINT.to_owned());
    let endpoint = Url::parse(base.trim()).map_err(|_| AzureCredentialError::InvalidSetting {
        setting: "`AZURE_POD_IDENTITY_AUTHORITY_HOST`".into(),
        expected: "a URL",
    })?;
    let token = Arc::new(TokenCredential::new(Grant::Imds {
        endpoint,
        client_id,
    }));
    let once = RetryPolicy {
        retries: 0,
        ..RetryPolicy::default()
    };
    let at = token.endpoint();
    match token.first(client, IMDS_PROBE_TIMEOUT, once).await {
        Ok(()) => Ok(Outcome::Found(
            Credential::Token(token),
            Provider::ManagedIdentity,
        )),
        Err(AzureCredentialError::TokenRefused { status, .. }) => Ok(Outcome::Absent(format!(
            "the instance metadata service at `{at}` answered HTTP {status}: no identity for this machine"
        ))),
        Err(AzureCredentialError::TokenUnreachable { .. }) => Ok(Outcome::Absent(format!(
            "no answer from the instance metadata service at `{at}` within {} s: not an Azure machine",
            IMDS_PROBE_TIMEOUT.as_secs()
        ))),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::block_on;

    const KEY: &str =
        "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

    fn run(pairs: &[(&str, &str)], sas: Option<&str>) -> Result<Found, AzureCredentialError> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let env = move |name: &str| {
            pairs
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        };
        block_on(resolve(
            &reqwest::Client::new(),
            "acct",
            sas.map(|s| Secret::new(s.to_owned())),
            false,
            &env,
        ))
    }

    #[test]
    fn each_provider_beats_the_next_and_one_for_another_account_is_passed_over() {
        let all = [
            ("AZURE_STORAGE_SAS_TOKEN", "sv=1&sig=env"),
            (
                "AZURE_STORAGE_CONNECTION_STRING",
                "AccountName=acct;SharedAccessSignature=sv=1&sig=cs",
            ),
            ("AZURE_STORAGE_ACCOUNT", "acct"),
            ("AZURE_STORAGE_KEY", KEY),
        ];
        let provider = |pairs: &[(&str, &str)], sas| run(pairs, sas).expect("found").provider;
        assert_eq!(provider(&all, Some("sig=url")), Provider::SasInReference);
        assert_eq!(provider(&all, None), Provider::SasVariable);
        assert_eq!(provider(&all[1..], None), Provider::ConnectionString);
        assert_eq!(provider(&all[2..], None), Provider::AccountKey);
        let other = [
            (
                "AZURE_STORAGE_CONNECTION_STRING",
                "AccountName=other;AccountKey=eA==",
            ),
            ("AZURE_STORAGE_ACCOUNT", "acct"),
            ("AZURE_STORAGE_KEY", KEY),
        ];
        let found = run(&other, None).expect("found");
        assert_eq!(found.provider, Provider::AccountKey);
        assert_eq!(
            found.tried[1].to_string(),
            "connection string: it is for account `other`, not `acct`"
        );
        let err = run(&[("AZURE_STORAGE_SAS_TOKEN", "sv=1")], None).unwrap_err();
        assert_eq!(
            err.to_string(),
            "`AZURE_STORAGE_SAS_TOKEN` is not a SAS token (a query string with `sig=`)"
        );
        let err = run(
            &[
                ("AZURE_STORAGE_ACCOUNT", "acct"),
                ("AZURE_STORAGE_KEY", "not base64!"),
            ],
            None,
        )
        .unwrap_err();
        assert!(!format!("{err} {err:?}").contains("base64!"), "{err:?}");
    }

    #[test]
    fn nothing_found_is_anonymous_with_every_provider_and_why() {
        let port = test_support::free_port();
        let imds = format!("http://127.0.0.1:{port}");
        let found = run(
            &[
                ("AZURE_POD_IDENTITY_AUTHORITY_HOST", &imds),
                ("AZURE_CLIENT_ID", "app"),
            ],
            None,
        )
        .expect("anonymous");
        assert!(matches!(found.credential, Credential::Anonymous));
        let err = AzureCredentialError::NotFound { tried: found.tried };
        assert_eq!(
            err.to_string(),
            format!(
                "no Azure credentials found (SAS token: the reference has no query and `AZURE_STORAGE_SAS_TOKEN` is not set; connection string: `AZURE_STORAGE_CONNECTION_STRING` not set; account key: `AZURE_STORAGE_KEY` not set; client secret: `AZURE_CLIENT_SECRET` and `AZURE_TENANT_ID` not set; workload identity: `AZURE_FEDERATED_TOKEN_FILE` and `AZURE_TENANT_ID` not set; managed identity: no answer from the instance metadata service at `{imds}` within 1 s: not an Azure machine)"
            )
        );
        assert!(err.hint().contains("--no-sign-request"));
    }

    #[test]
    fn app_service_s_identity_endpoint_is_asked_with_its_header()
    -> Result<(), Box<dyn std::error::Error>> {
        let (base, server) = test_support::serve_canned(
            Some("application/json"),
            vec![(
                "200 OK",
                r#"{"access_token":"app-token","expires_on":"4102444800","token_type":"Bearer"}"#
                    .into(),
            )],
        )?;
        let endpoint = format!("{base}/msi/token");
        let found = run(
            &[
                ("IDENTITY_ENDPOINT", &endpoint),
                ("IDENTITY_HEADER", "header-secret"),
                ("AZURE_CLIENT_ID", "app"),
            ],
            None,
        )?;
        assert_eq!(found.provider, Provider::ManagedIdentity);
        let Credential::Token(token) = &found.credential else {
            panic!("{found:?}");
        };
        assert_eq!(
            token.current().as_ref().map(Secret::expose),
            Some("app-token")
        );
        let requests = server.join().expect("the server");
        let request = requests[0].to_ascii_lowercase();
        assert!(
            request.starts_with("get /msi/token?api-version=2019-08-01&resource=https%3a%2f%2fstorage.azure.com%2f&client_id=app "),
            "{request}"
        );
        assert!(
            request.contains("x-identity-header: header-secret\r\n"),
            "{request}"
        );
        assert!(!format!("{found:?}").contains("header-secret"));
        Ok(())
    }
}
