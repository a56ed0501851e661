//! docker's `config.json`, the parts that name credentials, read the way the docker CLI reads
//! them: `credHelpers` per registry, `credsStore` for the others, `auths` with `auth` (base64
//! of `user:password`), `username` and `password`, or an `identitytoken`.

use std::collections::BTreeMap;
use std::io;
use std::path::Path;

use base64::Engine as _;
use base64::alphabet;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use serde::Deserialize;

use super::credential::Credential;
use super::error::CredentialError;
use crate::secret::Secret;

/// The key docker uses for Docker Hub, in `auths`, `credHelpers` and towards helpers.
pub(super) const DOCKER_HUB_KEY: &str = "https://index.docker.io/v1/";

/// Standard base64 that accepts `auth` values with or without padding, as written by hand.
const LENIENT_BASE64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// The parts of docker's `config.json` that name credentials.
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub(super) struct DockerConfig {
    #[serde(default)]
    auths: Option<BTreeMap<String, AuthEntry>>,
    #[serde(default)]
    creds_store: Option<String>,
    #[serde(default)]
    cred_helpers: Option<BTreeMap<String, String>>,
}

/// One `auths` entry.
#[derive(Deserialize, Default)]
pub(super) struct AuthEntry {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    identitytoken: Option<String>,
}

impl DockerConfig {
    /// The config at `file`; `None` when there is no such file.
    pub(super) fn read(file: &Path) -> Result<Option<Self>, CredentialError> {
        let bytes = match std::fs::read(file) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(CredentialError::ConfigRead {
                    path: file.to_owned(),
                    source,
                });
            }
        };
        // Only the position goes in the error: serde's messages may quote a value.
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| CredentialError::ConfigInvalid {
                path: file.to_owned(),
                line: e.line(),
                column: e.column(),
            })
    }

    /// The helper for `registry`: its `credHelpers` entry, else `credsStore`.
    pub(super) fn helper_for(&self, registry: &str) -> Option<&str> {
        let host = key_host(registry);
        self.cred_helpers
            .iter()
            .flatten()
            .find(|(key, _)| key_host(key) == host)
            .map(|(_, helper)| helper.as_str())
            .or(self.creds_store.as_deref())
            .filter(|helper| !helper.is_empty())
    }

    /// The `auths` entry for `registry` and its key: the exact key first, then any key naming
    /// the same host (`host`, `https://host`, `http://host/v1/`, Docker Hub's aliases).
    pub(super) fn auth_entry(&self, registry: &str) -> Option<(&str, &AuthEntry)> {
        let auths = self.auths.as_ref()?;
        let exact = server_key(registry);
        let host = key_host(registry);
        auths
            .get_key_value(exact.as_str())
            .or_else(|| auths.iter().find(|(key, _)| key_host(key) == host))
            .map(|(key, entry)| (key.as_str(), entry))
    }
}

impl AuthEntry {
    /// The credential this entry holds, if any: the identity token first, as docker uses it.
    pub(super) fn credential(
        &self,
        file: &Path,
        key: &str,
    ) -> Result<Option<Credential>, CredentialError> {
        let given = |s: &Option<String>| s.clone().filter(|v| !v.is_empty());
        if let Some(token) = given(&self.identitytoken) {
            return Ok(Some(Credential::IdentityToken(Secret::new(token))));
        }
        if let Some(auth) = given(&self.auth) {
            let bad = || CredentialError::ConfigAuth {
                path: file.to_owned(),
                key: key.to_owned(),
            };
            let decoded = LENIENT_BASE64.decode(auth.trim()).map_err(|_| bad())?;
            let decoded = String::from_utf8(decoded).map_err(|_| bad())?;
            let (username, password) = decoded.split_once(':').ok_or_else(bad)?;
            return Ok(Some(Credential::Basic {
                username: username.to_owned(),
                password: Secret::new(password.to_owned()),
            }));
        }
        Ok(given(&self.username)
            .zip(given(&self.password))
            .map(|(username, password)| Credential::Basic {
                username,
                password: Secret::new(password),
            }))
    }
}

/// The host a registry or a config key names, lowercased: `https://host/v1/` → `host`, and
/// Docker Hub's names → `index.docker.io`.
fn key_host(key: &str) -> String {
    let key = key.trim();
    let lower = key.to_ascii_lowercase();
    let rest = ["https://", "http://"]
        .iter()
        .find_map(|scheme| lower.strip_prefix(scheme))
        .unwrap_or(&lower);
    let host = rest.split('/').next().unwrap_or_default();
    match host {
        "docker.io" | "registry-1.docker.io" => "index.docker.io".to_owned(),
        _ => host.to_owned(),
    }
}

/// The server name docker uses for `registry`: Docker Hub's key, else the registry as written.
pub(super) fn server_key(registry: &str) -> String {
    if key_host(registry) == "index.docker.io" {
        DOCKER_HUB_KEY.to_owned()
    } else {
        registry.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use crate::registry::testing::{DockerHome, TestResult, basic, identity};
    use crate::registry::{CredentialError, Credentials, PASSWORD_VAR, USERNAME_VAR};

    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;

    #[test]
    fn auths_match_every_way_docker_writes_a_key() -> TestResult {
        let home = DockerHome::new(&serde_json::json!({
            "auths": {
                "https://index.docker.io/v1/": { "auth": STANDARD.encode("hubuser:hubpass") },
                "127.0.0.1:5000": { "auth": "bG9jYWw6cGFzczp3aXRoOmNvbG9ucw" },
                "https://ghcr.io": { "username": "gh", "password": "ghpass" },
                "http://insecure.test:8080/v1/": { "username": "in", "password": "sec" },
                "QUAY.io": { "auth": "", "identitytoken": "refresh-q" },
                "empty.test": {},
                "bad.test": { "auth": "not base64!" },
            },
            "HttpHeaders": { "User-Agent": "x" },
        }))?;
        let creds = home.credentials();
        for hub in ["index.docker.io", "docker.io", "registry-1.docker.io"] {
            assert_eq!(
                creds.lookup(hub)?,
                Some(basic("hubuser", "hubpass")),
                "{hub}"
            );
        }
        assert_eq!(
            creds.lookup("127.0.0.1:5000")?,
            Some(basic("local", "pass:with:colons"))
        );
        assert_eq!(creds.lookup("ghcr.io")?, Some(basic("gh", "ghpass")));
        assert_eq!(
            creds.lookup("insecure.test:8080")?,
            Some(basic("in", "sec"))
        );
        assert_eq!(creds.lookup("quay.io")?, Some(identity("refresh-q")));
        assert_eq!(creds.lookup("empty.test")?, None);
        assert_eq!(creds.lookup("unknown.test")?, None);
        assert_eq!(creds.lookup("127.0.0.1:5001")?, None);
        let err = creds.lookup("bad.test").unwrap_err();
        assert!(matches!(err, CredentialError::ConfigAuth { .. }), "{err:?}");
        assert!(err.to_string().contains("config.json"), "{err}");
        assert!(!err.to_string().contains("not base64!"), "{err}");

        assert_eq!(
            creds.describe_sources("unknown.test"),
            format!(
                "`{USERNAME_VAR}` and `{PASSWORD_VAR}` are not both set; docker config `~/.docker/config.json` has no entry for `unknown.test`"
            )
        );
        assert!(
            creds
                .describe_sources("docker.io")
                .contains("`https://index.docker.io/v1/`")
        );
        Ok(())
    }

    #[test]
    fn a_missing_or_broken_config_is_none_or_named() -> TestResult {
        let home = DockerHome::new(&serde_json::json!({}))?;
        let config = home.dir.path().join(".docker/config.json");
        std::fs::remove_file(&config)?;
        let creds = home.credentials();
        assert_eq!(creds.lookup("ghcr.io")?, None);
        assert!(
            creds
                .describe_sources("ghcr.io")
                .contains("there is no docker config at `~/.docker/config.json`")
        );
        std::fs::write(&config, r#"{"auths": {"x": {"auth": 12345678}}}"#)?;
        let err = creds.lookup("ghcr.io").unwrap_err();
        assert!(
            matches!(err, CredentialError::ConfigInvalid { line: 1, .. }),
            "{err:?}"
        );
        assert!(!err.to_string().contains("12345678"), "{err}");
        assert!(Credentials::none().lookup("ghcr.io")?.is_none());
        Ok(())
    }
}
