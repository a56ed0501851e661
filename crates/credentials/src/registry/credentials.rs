//! [`Credentials`]: where the [`Credential`] for a registry comes from. The username and
//! password given explicitly (flags, or `MODEL_PROVISIONER_REGISTRY_USERNAME` and
//! `MODEL_PROVISIONER_REGISTRY_PASSWORD`) come first, then docker's config and its helpers.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use super::credential::{Credential, PASSWORD_VAR, USERNAME_VAR};
use super::docker_config::{DockerConfig, server_key};
use super::error::CredentialError;
use super::helper;
use crate::secret::Secret;
use catalog_core::printable;

/// Where the explicit credentials came from, for [`Credentials::describe_sources`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ExplicitFrom {
    Flags,
    Env,
}

/// Where credentials come from, in this order: explicit (flags/env), then docker's config.
#[derive(Debug, Clone, Default)]
pub struct Credentials {
    explicit: Option<(String, Secret, ExplicitFrom)>,
    /// Whether the environment was consulted (for the message when nothing was found).
    from_env: bool,
    /// The docker config file, when `DOCKER_CONFIG` or `HOME` names one.
    docker_config: Option<PathBuf>,
    /// `HOME`, to print the config's path as `~/…`.
    home: Option<PathBuf>,
    /// `PATH`, where credential helpers are looked for.
    path: Option<OsString>,
}

impl Credentials {
    /// Explicit user/password (from flags), applying to the registry being pulled from.
    pub fn explicit(username: String, password: Secret) -> Self {
        Credentials {
            explicit: Some((username, password, ExplicitFrom::Flags)),
            ..Credentials::default()
        }
    }

    /// These credentials, with `username` and `password` (from flags) tried before any other.
    #[must_use]
    pub fn with_explicit(self, username: String, password: Secret) -> Self {
        Credentials {
            explicit: Some((username, password, ExplicitFrom::Flags)),
            ..self
        }
    }

    /// From the environment: `MODEL_PROVISIONER_REGISTRY_USERNAME` +
    /// `MODEL_PROVISIONER_REGISTRY_PASSWORD` if both set; and docker's config at
    /// `$DOCKER_CONFIG/config.json`, else `$HOME/.docker/config.json`. Credential helpers are
    /// looked for on `$PATH`.
    pub fn from_env(env: &dyn Fn(&str) -> Option<String>) -> Self {
        let set = |name: &str| env(name).filter(|v| !v.is_empty());
        let explicit = match (set(USERNAME_VAR), set(PASSWORD_VAR)) {
            (Some(user), Some(password)) => Some((user, Secret::new(password), ExplicitFrom::Env)),
            _ => None,
        };
        let home = set("HOME").map(PathBuf::from);
        let docker_config = set("DOCKER_CONFIG")
            .map(PathBuf::from)
            .or_else(|| home.as_ref().map(|h| h.join(".docker")))
            .map(|dir| dir.join("config.json"));
        Credentials {
            explicit,
            from_env: true,
            docker_config,
            home,
            path: set("PATH").map(OsString::from),
        }
    }

    /// No credentials: every request is anonymous.
    pub fn none() -> Self {
        Credentials::default()
    }

    /// The credential for `registry` (host\[:port\] as written in the reference, e.g.
    /// `index.docker.io`, `127.0.0.1:5000`). `Ok(None)` when nothing is configured for it.
    ///
    /// This may run a credential helper and wait for it: call it off the async runtime
    /// (`tokio::task::spawn_blocking`).
    pub fn lookup(&self, registry: &str) -> Result<Option<Credential>, CredentialError> {
        if let Some((username, password, _)) = &self.explicit {
            return Ok(Some(Credential::Basic {
                username: username.clone(),
                password: password.clone(),
            }));
        }
        let Some(file) = &self.docker_config else {
            return Ok(None);
        };
        let Some(config) = DockerConfig::read(file)? else {
            return Ok(None);
        };
        let server = server_key(registry);
        // docker: `credHelpers[<registry>]`, else `credsStore`, else the file's `auths`. A
        // store that holds nothing is the answer: docker does not fall back to `auths`.
        if let Some(helper) = config.helper_for(registry) {
            tracing::debug!(registry, helper, "asking a credential helper");
            return helper::run(self.path.as_deref(), helper, &server);
        }
        match config.auth_entry(registry) {
            Some((key, entry)) => entry.credential(file, key),
            None => Ok(None),
        }
    }

    /// Where the lookup looked, for an error hint (e.g. "docker config
    /// `~/.docker/config.json` has no entry for `x`").
    pub fn describe_sources(&self, registry: &str) -> String {
        let registry = printable(registry);
        match &self.explicit {
            Some((user, _, ExplicitFrom::Flags)) => {
                return format!(
                    "the username `{}` and password given explicitly",
                    printable(user)
                );
            }
            Some((user, _, ExplicitFrom::Env)) => {
                return format!(
                    "the username `{}` and password from `{USERNAME_VAR}` and `{PASSWORD_VAR}`",
                    printable(user)
                );
            }
            None => {}
        }
        if !self.from_env {
            return "no registry credentials were given".to_owned();
        }
        let env = format!("`{USERNAME_VAR}` and `{PASSWORD_VAR}` are not both set");
        let Some(file) = &self.docker_config else {
            return format!("{env}; no docker config (neither `DOCKER_CONFIG` nor `HOME` is set)");
        };
        let shown = self.show_path(file);
        let docker = match DockerConfig::read(file) {
            Ok(None) => format!("there is no docker config at `{shown}`"),
            Err(_) => format!("the docker config `{shown}` could not be read"),
            Ok(Some(config)) => {
                if let Some(helper) = config.helper_for(&registry) {
                    format!(
                        "docker config `{shown}` sends `{registry}` to `docker-credential-{}`",
                        printable(helper)
                    )
                } else if let Some((key, _)) = config.auth_entry(&registry) {
                    format!(
                        "docker config `{shown}` has an entry for `{registry}` (`{}`)",
                        printable(key)
                    )
                } else {
                    format!("docker config `{shown}` has no entry for `{registry}`")
                }
            }
        };
        format!("{env}; {docker}")
    }

    /// `path` with `$HOME` written `~`.
    fn show_path(&self, path: &Path) -> String {
        match self.home.as_deref().and_then(|h| path.strip_prefix(h).ok()) {
            Some(rest) => format!("~/{}", rest.display()),
            None => path.display().to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::testing::{DockerHome, TestResult, basic};

    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;

    #[test]
    fn docker_config_env_and_explicit_credentials() -> TestResult {
        let home = DockerHome::new(&serde_json::json!({
            "auths": { "ghcr.io": { "auth": STANDARD.encode("file:pw") } },
        }))?;
        let other = tempfile::tempdir()?;
        std::fs::write(
            other.path().join("config.json"),
            serde_json::to_vec(&serde_json::json!({
                "auths": { "ghcr.io": { "username": "elsewhere", "password": "pw2" } },
            }))?,
        )?;
        let dir = other.path().to_str().expect("utf-8");
        let creds = Credentials::from_env(&home.env(&[("DOCKER_CONFIG", dir)]));
        assert_eq!(creds.lookup("ghcr.io")?, Some(basic("elsewhere", "pw2")));

        // Both variables or neither.
        let only_user = Credentials::from_env(&home.env(&[(USERNAME_VAR, "u")]));
        assert_eq!(only_user.lookup("ghcr.io")?, Some(basic("file", "pw")));
        let env = Credentials::from_env(&home.env(&[(USERNAME_VAR, "u"), (PASSWORD_VAR, "p")]));
        assert_eq!(env.lookup("ghcr.io")?, Some(basic("u", "p")));
        assert_eq!(
            env.describe_sources("ghcr.io"),
            format!("the username `u` and password from `{USERNAME_VAR}` and `{PASSWORD_VAR}`")
        );
        let flags = Credentials::explicit("f".into(), Secret::new("fp".into()));
        assert_eq!(flags.lookup("anything.test")?, Some(basic("f", "fp")));
        Ok(())
    }
}
