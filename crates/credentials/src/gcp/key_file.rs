//! A key file, as `GOOGLE_APPLICATION_CREDENTIALS` or gcloud's ADC file holds it: a service
//! account's key, whose token comes from a JWT assertion signed with its private key, or an
//! authorized user's refresh token.
//!
//! ```text
//! {"type": "service_account", "client_email", "private_key" (PKCS#8 PEM), "private_key_id",
//!  "token_uri"}
//!   POST token_uri  grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer&assertion=<JWT>
//!     JWT = b64url({"alg":"RS256","typ":"JWT","kid"}) . b64url({"iss","scope","aud","iat","exp"})
//!           . b64url(RS256 signature of the two)
//! {"type": "authorized_user", "client_id", "client_secret", "refresh_token"[, "token_uri"]}
//!   POST token_uri  grant_type=refresh_token&client_id&client_secret&refresh_token
//! ```

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::header::CONTENT_TYPE;
use ring::signature::{RSA_PKCS1_SHA256, RsaKeyPair};
use rustls_pki_types::PrivatePkcs8KeyDer;
use rustls_pki_types::pem::PemObject as _;
use serde::Deserialize;

use super::error::CredentialError;
use super::source::Source;
use super::token::{AccessToken, Scope, TOKEN_RETRY, TOKEN_TIMEOUT, fetch_token};
use crate::secret::Secret;

/// Google's OAuth token endpoint, for an authorized user's file that names none.
const GOOGLE_TOKEN_URI: &str = "https://oauth2.googleapis.com/token";

/// How long an assertion is good for: the most Google accepts.
const ASSERTION_LIFETIME: u64 = 3600;

/// The grant a signed assertion is exchanged with.
const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

/// A key file's contents.
#[derive(Debug, Clone)]
pub enum KeyFile {
    /// A service account's key.
    ServiceAccount(ServiceAccountKey),
    /// A user's refresh token, as `gcloud auth application-default login` writes it.
    AuthorizedUser(AuthorizedUser),
}

/// A service account's key: who it is, and the RSA key its assertions are signed with.
#[derive(Clone)]
pub struct ServiceAccountKey {
    /// The account, `name@project.iam.gserviceaccount.com`: the assertion's issuer.
    pub client_email: String,
    /// The key's id, named in the assertion's header.
    pub private_key_id: Option<String>,
    /// Where assertions are exchanged for tokens.
    pub token_uri: String,
    key: Arc<RsaKeyPair>,
}

impl std::fmt::Debug for ServiceAccountKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceAccountKey")
            .field("client_email", &self.client_email)
            .field("private_key_id", &self.private_key_id)
            .field("token_uri", &self.token_uri)
            .finish_non_exhaustive()
    }
}

/// A user's refresh token and the OAuth client it was issued to.
#[derive(Debug, Clone)]
pub struct AuthorizedUser {
    client_id: String,
    client_secret: Secret,
    refresh_token: Secret,
    token_uri: String,
}

#[derive(Deserialize)]
struct Raw {
    #[serde(rename = "type", default)]
    kind: Option<String>,
    #[serde(default)]
    client_email: Option<String>,
    #[serde(default)]
    private_key: Option<String>,
    #[serde(default)]
    private_key_id: Option<String>,
    #[serde(default)]
    token_uri: Option<String>,
    #[serde(default)]
    client_id: Option<String>,
    #[serde(default)]
    client_secret: Option<String>,
    #[serde(default)]
    refresh_token: Option<String>,
}

impl KeyFile {
    /// Reads the key file at `path`, named `what` in messages.
    ///
    /// # Errors
    ///
    /// When it cannot be read, or is no key file of a kind this crate uses.
    pub fn read(path: &Path, what: &'static str) -> Result<KeyFile, CredentialError> {
        let text = std::fs::read(path).map_err(|source| CredentialError::FileRead {
            what,
            path: path.to_owned(),
            source,
        })?;
        KeyFile::parse(&text).map_err(|reason| CredentialError::KeyFile {
            what,
            path: path.to_owned(),
            reason,
        })
    }

    /// A key file's JSON; the reason it is unusable, never quoting it.
    fn parse(text: &[u8]) -> Result<KeyFile, String> {
        let raw: Raw = serde_json::from_slice(text).map_err(|_| "it is not JSON".to_owned())?;
        let field = |value: Option<String>, name: &str| {
            value
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
                .ok_or_else(|| format!("it has no `{name}`"))
        };
        match raw.kind.as_deref() {
            Some("service_account") => {
                let pem = field(raw.private_key, "private_key")?;
                let der = PrivatePkcs8KeyDer::from_pem_slice(pem.as_bytes()).map_err(|_| {
                    "its `private_key` is not a PKCS#8 PEM key (`-----BEGIN PRIVATE KEY-----`)"
                        .to_owned()
                })?;
                let key = RsaKeyPair::from_pkcs8(der.secret_pkcs8_der())
                    .map_err(|_| "its `private_key` is not an RSA key ring accepts".to_owned())?;
                Ok(KeyFile::ServiceAccount(ServiceAccountKey {
                    client_email: field(raw.client_email, "client_email")?,
                    private_key_id: raw.private_key_id.filter(|k| !k.trim().is_empty()),
                    token_uri: field(raw.token_uri, "token_uri")?,
                    key: Arc::new(key),
                }))
            }
            Some("authorized_user") => Ok(KeyFile::AuthorizedUser(AuthorizedUser {
                client_id: field(raw.client_id, "client_id")?,
                client_secret: Secret::new(field(raw.client_secret, "client_secret")?),
                refresh_token: Secret::new(field(raw.refresh_token, "refresh_token")?),
                token_uri: raw
                    .token_uri
                    .filter(|u| !u.trim().is_empty())
                    .unwrap_or_else(|| GOOGLE_TOKEN_URI.to_owned()),
            })),
            Some(other) => Err(format!(
                "its `type` is `{}`, and only `service_account` and `authorized_user` are read",
                catalog_core::printable(other)
            )),
            None => Err("it has no `type`".to_owned()),
        }
    }

    /// The source a token of this file comes from, for a file at `path`.
    pub(super) fn source(&self, path: &Path) -> Source {
        match self {
            KeyFile::ServiceAccount(_) => Source::ServiceAccount(path.to_owned()),
            KeyFile::AuthorizedUser(_) => Source::AuthorizedUser(path.to_owned()),
        }
    }

    /// A token for `scope` from the file's token endpoint.
    pub(super) async fn token(
        &self,
        client: &reqwest::Client,
        scope: Scope,
        from: &Source,
    ) -> Result<AccessToken, CredentialError> {
        let (uri, form) = match self {
            KeyFile::ServiceAccount(key) => {
                let assertion = key.assertion(scope, SystemTime::now())?;
                (
                    &key.token_uri,
                    form(&[
                        ("grant_type", JWT_BEARER),
                        ("assertion", assertion.expose()),
                    ]),
                )
            }
            KeyFile::AuthorizedUser(user) => (
                &user.token_uri,
                form(&[
                    ("grant_type", "refresh_token"),
                    ("client_id", &user.client_id),
                    ("client_secret", user.client_secret.expose()),
                    ("refresh_token", user.refresh_token.expose()),
                ]),
            ),
        };
        let url = url::Url::parse(uri).map_err(|_| CredentialError::KeyFile {
            what: "the key file",
            path: from.path().map(Path::to_path_buf).unwrap_or_default(),
            reason: "its `token_uri` is not a URL".into(),
        })?;
        let endpoint = url.origin().ascii_serialization();
        let request = client
            .post(url)
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(form);
        fetch_token(request, from, &endpoint, (TOKEN_TIMEOUT, TOKEN_RETRY)).await
    }
}

impl ServiceAccountKey {
    /// The signed JWT that asks for a token of `scope`, issued at `now`, good for an hour.
    ///
    /// # Errors
    ///
    /// When the key cannot sign (it always can once read).
    pub fn assertion(&self, scope: Scope, now: SystemTime) -> Result<Secret, CredentialError> {
        let iat = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let mut header = serde_json::json!({ "alg": "RS256", "typ": "JWT" });
        if let Some(kid) = &self.private_key_id {
            header["kid"] = kid.clone().into();
        }
        let claims = serde_json::json!({
            "iss": self.client_email,
            "scope": scope.url(),
            "aud": self.token_uri,
            "iat": iat,
            "exp": iat + ASSERTION_LIFETIME,
        });
        let signed = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let mut signature = vec![0; self.key.public().modulus_len()];
        self.key
            .sign(
                &RSA_PKCS1_SHA256,
                &ring::rand::SystemRandom::new(),
                signed.as_bytes(),
                &mut signature,
            )
            .map_err(|_| CredentialError::KeyFile {
                what: "the service account key of",
                path: PathBuf::from(&self.client_email),
                reason: "its private key could not sign".into(),
            })?;
        Ok(Secret::new(format!(
            "{signed}.{}",
            URL_SAFE_NO_PAD.encode(signature)
        )))
    }
}

/// `pairs` as an `application/x-www-form-urlencoded` body.
fn form(pairs: &[(&str, &str)]) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_of_other_kinds_or_without_their_fields_are_refused_without_being_quoted() {
        let refused = |text: &str| KeyFile::parse(text.as_bytes()).expect_err(text);
        assert_eq!(refused("not json"), "it is not JSON");
        assert_eq!(refused("{}"), "it has no `type`");
        assert!(refused(r#"{"type": "external_account"}"#).contains("`external_account`"));
        assert_eq!(
            refused(r#"{"type": "authorized_user", "client_id": "c", "client_secret": "hunter2"}"#),
            "it has no `refresh_token`"
        );
        let bad_key = refused(
            r#"{"type": "service_account", "client_email": "a@b", "token_uri": "http://t",
                "private_key": "-----BEGIN PRIVATE KEY-----\nhunter2\n-----END PRIVATE KEY-----\n"}"#,
        );
        assert!(
            bad_key.contains("`private_key`") && !bad_key.contains("hunter2"),
            "{bad_key}"
        );
    }

    #[test]
    fn an_authorized_user_file_without_a_token_uri_goes_to_google() {
        let file = KeyFile::parse(
            br#"{"type": "authorized_user", "client_id": "c", "client_secret": "s", "refresh_token": "r"}"#,
        );
        let Ok(KeyFile::AuthorizedUser(user)) = file else {
            panic!("an authorized user");
        };
        assert_eq!(user.token_uri, GOOGLE_TOKEN_URI);
        assert!(!format!("{user:?}").contains("\"s\""));
        assert_eq!(form(&[("a", "b c"), ("d", "=")]), "a=b+c&d=%3D");
    }
}
