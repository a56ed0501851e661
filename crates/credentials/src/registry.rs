//! Registry credentials and authorisation challenges.
//!
//! A registry answers an anonymous request with `401` and a `WWW-Authenticate` challenge
//! ([`parse_challenges`]). For a `Bearer` challenge the client asks the token service it names
//! for a short-lived token ([`fetch_token`]), sending the user's [`Credential`] when there is
//! one; for a `Basic` challenge it sends the credential itself.
//!
//! Credentials come from [`Credentials`]: the explicit username and password first (flags or
//! `MODEL_PROVISIONER_REGISTRY_USERNAME`/`MODEL_PROVISIONER_REGISTRY_PASSWORD`), then docker's
//! own config, read the way the docker CLI reads it:
//!
//! ```text
//! $DOCKER_CONFIG/config.json   (else ~/.docker/config.json)
//! ├── credHelpers: { "<registry>": "<helper>" }   docker-credential-<helper> get
//! ├── credsStore:  "<helper>"                      the same, for every other registry
//! └── auths:       { "<key>": { auth | username + password, identitytoken } }
//! ```
//!
//! Secrets are [`Secret`]s, whose `Debug` and `Display` print `<redacted>`; nothing here logs
//! more than host names.
//!
//! ```text
//! credentials.rs   Credentials: where a registry's credential comes from, in order
//! docker_config.rs docker's config.json: credHelpers, credsStore, auths
//! helper.rs        docker-credential-<helper> get
//! challenge.rs     WWW-Authenticate challenges
//! token.rs         BearerToken, fetch_token: the distribution token protocol
//! error.rs         CredentialError, AuthError and their hints
//! ```
//!
//! docker's config and its helpers are read by our own code, not the `docker_credential` crate:
//! `docs/architecture.md` says why.

mod challenge;
mod credential;
mod credentials;
mod docker_config;
mod error;
mod helper;
#[cfg(test)]
mod testing;
mod token;

pub use self::challenge::{Challenge, parse_challenges};
pub use self::credential::{Credential, PASSWORD_VAR, USERNAME_VAR};
pub use self::credentials::Credentials;
pub use self::error::{AuthError, CredentialError};
pub use self::token::{BearerToken, fetch_token};
pub use crate::Secret;

#[cfg(test)]
mod tests {
    use super::*;

    use std::time::Duration;

    #[test]
    fn nothing_prints_a_secret() {
        let credential = Credential::Basic {
            username: "alice".into(),
            password: Secret::new("hunter2".into()),
        };
        let token = BearerToken::new(Secret::new("tok-123".into()), Duration::from_secs(60));
        for shown in [
            format!("{credential:?}"),
            format!(
                "{:?}",
                Credential::IdentityToken(Secret::new("refresh-9".into()))
            ),
            format!("{token:?}"),
            format!("{}", token.value()),
            format!(
                "{:?}",
                Credentials::explicit("alice".into(), Secret::new("hunter2".into()))
            ),
        ] {
            for secret in ["hunter2", "tok-123", "refresh-9"] {
                assert!(!shown.contains(secret), "{shown}");
            }
            assert!(shown.contains("<redacted>"), "{shown}");
        }
    }
}
