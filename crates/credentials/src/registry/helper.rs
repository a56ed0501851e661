//! docker's credential helpers: `docker-credential-<helper> get`, the server on its standard
//! input, `{"Username", "Secret"}` on its standard output.

use std::ffi::OsStr;
use std::io::{self, Write as _};
use std::path::PathBuf;
use std::process::{Command, Stdio};

use serde::Deserialize;

use super::credential::Credential;
use super::error::CredentialError;
use crate::secret::Secret;
use catalog_core::printable;

/// What a credential helper prints when it holds nothing for a server
/// (`docker-credential-helpers`' `errCredentialsNotFoundMessage`).
const HELPER_NOT_FOUND: &str = "credentials not found";

/// `docker-credential-<helper>` on `search`, our `PATH`.
fn find(search: Option<&OsStr>, program: &str) -> Option<PathBuf> {
    let file = format!("{program}{}", std::env::consts::EXE_SUFFIX);
    std::env::split_paths(search?)
        .filter(|dir| !dir.as_os_str().is_empty())
        .map(|dir| dir.join(&file))
        .find(|candidate| candidate.is_file())
}

/// Runs `docker-credential-<helper> get` with `server` on stdin, as docker does, the helper
/// found on `search` and run with it as its `PATH`.
pub(super) fn run(
    search: Option<&OsStr>,
    helper: &str,
    server: &str,
) -> Result<Option<Credential>, CredentialError> {
    let program = format!("docker-credential-{helper}");
    let failed = |reason: String, source: Option<io::Error>| CredentialError::HelperFailed {
        helper: program.clone(),
        reason,
        source,
    };
    let Some(path) = find(search, &program) else {
        return Err(CredentialError::HelperMissing { helper: program });
    };
    let mut command = Command::new(&path);
    command
        .arg("get")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(search) = search {
        command.env("PATH", search);
    }
    let mut child = command
        .spawn()
        .map_err(|e| failed("could not start it".into(), Some(e)))?;
    if let Some(mut stdin) = child.stdin.take() {
        // A helper may exit without reading stdin; its answer is what counts.
        let _ = stdin.write_all(server.as_bytes());
    }
    let output = child
        .wait_with_output()
        .map_err(|e| failed("could not read its answer".into(), Some(e)))?;
    if !output.status.success() {
        let said = String::from_utf8_lossy(&output.stdout);
        if said
            .trim()
            .to_ascii_lowercase()
            .starts_with(HELPER_NOT_FOUND)
        {
            return Ok(None);
        }
        // A failing helper prints its error message, not credentials: show its first line.
        let stderr = String::from_utf8_lossy(&output.stderr);
        let message = [said.as_ref(), stderr.as_ref()]
            .into_iter()
            .find_map(|s| s.lines().map(str::trim).find(|l| !l.is_empty()))
            .map(|line| {
                format!(
                    ": {}",
                    printable(&line.chars().take(200).collect::<String>())
                )
            })
            .unwrap_or_default();
        return Err(failed(format!("{}{message}", output.status), None));
    }
    // The answer holds the secret: never put any of it in a message.
    let answer: HelperAnswer = serde_json::from_slice(&output.stdout).map_err(|_| {
        failed(
            "its answer is not the JSON `{Username, Secret}`".into(),
            None,
        )
    })?;
    Ok(answer.into_credential())
}

/// `docker-credential-<helper> get`'s answer.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct HelperAnswer {
    #[serde(default)]
    username: String,
    #[serde(default)]
    secret: String,
}

impl HelperAnswer {
    fn into_credential(self) -> Option<Credential> {
        if self.secret.is_empty() {
            None
        } else if self.username == "<token>" {
            // The helpers' convention for an identity token.
            Some(Credential::IdentityToken(Secret::new(self.secret)))
        } else {
            Some(Credential::Basic {
                username: self.username,
                password: Secret::new(self.secret),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::registry::docker_config::DOCKER_HUB_KEY;
    use crate::registry::testing::{DockerHome, TestResult, basic, identity};
    use crate::registry::{CredentialError, Credentials, PASSWORD_VAR, USERNAME_VAR};

    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;

    #[cfg(unix)]
    #[test]
    fn helpers_come_first_and_speak_docker_protocol() -> TestResult {
        let home = DockerHome::new(&serde_json::json!({
            "credHelpers": {
                "helped.test": "test",
                "https://index.docker.io/v1/": "test",
                "tokened.test": "test",
                "absent.test": "test",
                "broken.test": "broken",
                "missing.test": "nosuch",
            },
            "credsStore": "store",
            "auths": {
                "helped.test": { "auth": STANDARD.encode("file:file") },
                "stored.test": { "auth": STANDARD.encode("file:file") },
            },
        }))?;
        // Echoes the server it was asked about, so the test sees what was sent.
        home.helper(
            "test",
            r#"case "$server" in
  tokened.test) printf '{"ServerURL":"%s","Username":"<token>","Secret":"refresh-h"}' "$server" ;;
  absent.test) echo "credentials not found in native keychain"; exit 1 ;;
  *) printf '{"ServerURL":"%s","Username":"%s","Secret":"helper-pw"}' "$server" "$server" ;;
esac"#,
        )?;
        home.helper(
            "store",
            r#"[ "$server" = stored.test ] || { echo "credentials not found in native keychain"; exit 1; }
printf '{"Username":"store-user","Secret":"store-pw"}'"#,
        )?;
        home.helper("broken", "echo 'the keyring is locked' >&2; echo leaked-secret-ish-stuff-on-a-later-line >&2; exit 2")?;
        let creds = home.credentials();

        // credHelpers beats auths and credsStore; the helper gets the host, or Hub's key.
        assert_eq!(
            creds.lookup("helped.test")?,
            Some(basic("helped.test", "helper-pw"))
        );
        assert_eq!(
            creds.lookup("docker.io")?,
            Some(basic(DOCKER_HUB_KEY, "helper-pw"))
        );
        assert_eq!(creds.lookup("tokened.test")?, Some(identity("refresh-h")));
        // "Not found" is no credential, and docker does not fall back to `auths` then.
        assert_eq!(creds.lookup("absent.test")?, None);
        // credsStore beats auths.
        assert_eq!(
            creds.lookup("stored.test")?,
            Some(basic("store-user", "store-pw"))
        );
        assert_eq!(creds.lookup("other.test")?, None);

        let err = creds.lookup("missing.test").unwrap_err();
        assert!(
            matches!(&err, CredentialError::HelperMissing { helper } if helper == "docker-credential-nosuch"),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            "the credential helper `docker-credential-nosuch` is not on PATH"
        );
        let err = creds.lookup("broken.test").unwrap_err();
        assert!(
            matches!(err, CredentialError::HelperFailed { .. }),
            "{err:?}"
        );
        let message = err.to_string();
        assert!(message.contains("docker-credential-broken"), "{message}");
        assert!(message.contains("the keyring is locked"), "{message}");
        assert!(!message.contains("leaked"), "{message}");
        assert!(
            creds
                .describe_sources("helped.test")
                .contains("`docker-credential-test`")
        );

        // Explicit beats everything.
        let explicit =
            Credentials::from_env(&home.env(&[(USERNAME_VAR, "e"), (PASSWORD_VAR, "ep")]));
        assert_eq!(explicit.lookup("helped.test")?, Some(basic("e", "ep")));
        Ok(())
    }

    #[cfg(unix)]
    #[test]
    fn a_helper_answering_garbage_does_not_show_it() -> TestResult {
        let home = DockerHome::new(&serde_json::json!({ "credsStore": "garbled" }))?;
        home.helper("garbled", "echo 'Secret: s3cr3t not json'")?;
        let err = home.credentials().lookup("x.test").unwrap_err();
        assert!(!err.to_string().contains("s3cr3t"), "{err}");
        Ok(())
    }
}
