//! Fixtures for the tests of registry credentials: a docker home with its config and fake
//! credential helpers, and the credentials and challenges the tests compare with.

use std::io;

use super::{Challenge, Credential, Credentials, Secret};

pub(super) type TestResult = Result<(), Box<dyn std::error::Error>>;

pub(super) fn bearer(realm: &str, service: Option<&str>, scope: Option<&str>) -> Challenge {
    Challenge::Bearer {
        realm: realm.into(),
        service: service.map(Into::into),
        scope: scope.map(Into::into),
    }
}

/// A docker home for one test: a config file and a directory of fake helpers.
pub(super) struct DockerHome {
    pub(super) dir: tempfile::TempDir,
}

impl DockerHome {
    pub(super) fn new(config: &serde_json::Value) -> io::Result<Self> {
        let dir = tempfile::tempdir()?;
        std::fs::create_dir_all(dir.path().join(".docker"))?;
        std::fs::create_dir_all(dir.path().join("bin"))?;
        std::fs::write(
            dir.path().join(".docker/config.json"),
            serde_json::to_vec(config)?,
        )?;
        Ok(DockerHome { dir })
    }

    /// A `docker-credential-<name>` that answers `script` (a `sh` body reading the
    /// server from stdin as `$server`).
    #[cfg(unix)]
    pub(super) fn helper(&self, name: &str, script: &str) -> io::Result<()> {
        use std::os::unix::fs::PermissionsExt as _;
        let path = self
            .dir
            .path()
            .join("bin")
            .join(format!("docker-credential-{name}"));
        std::fs::write(
            &path,
            format!("#!/bin/sh\n[ \"$1\" = get ] || exit 3\nread -r server\n{script}\n"),
        )?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))?;
        Ok(())
    }

    /// The environment: `HOME` here, `PATH` the helpers' directory and the system's.
    pub(super) fn env(&self, extra: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
        let home = self.dir.path().to_str().expect("utf-8").to_owned();
        let path = format!("{home}/bin:/usr/bin:/bin");
        let extra: Vec<(String, String)> = extra
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |name| match name {
            "HOME" => Some(home.clone()),
            "PATH" => Some(path.clone()),
            _ => extra
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone()),
        }
    }

    pub(super) fn credentials(&self) -> Credentials {
        Credentials::from_env(&self.env(&[]))
    }
}

pub(super) fn basic(username: &str, password: &str) -> Credential {
    Credential::Basic {
        username: username.into(),
        password: Secret::new(password.into()),
    }
}

pub(super) fn identity(token: &str) -> Credential {
    Credential::IdentityToken(Secret::new(token.into()))
}
