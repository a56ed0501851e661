//! A profile's `credential_process`: a command, run through the shell, that prints the
//! credentials as JSON.

use std::io;
use std::process::{Command, Stdio};

use serde::Deserialize;

use super::credential::AwsCredentials;
use super::error::CredentialError;
use super::service::parse_time;
use super::var;
use catalog_core::printable;

/// What a `credential_process` prints.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ProcessAnswer {
    version: u32,
    access_key_id: String,
    secret_access_key: String,
    #[serde(default)]
    session_token: Option<String>,
    #[serde(default)]
    expiration: Option<String>,
}

/// Runs `command` through the shell, as the SDKs do, with `PATH` from `env`; its standard
/// error goes to ours, so that it can prompt (for an MFA code, say).
pub(super) async fn run_credential_process(
    profile: &str,
    command: &str,
    env: &(dyn Fn(&str) -> Option<String> + Sync),
) -> Result<AwsCredentials, CredentialError> {
    let failed =
        |status: String, source: Option<io::Error>| CredentialError::CredentialProcessFailed {
            profile: printable(profile),
            status,
            source,
        };
    let bad = |reason| CredentialError::CredentialProcessOutput {
        profile: printable(profile),
        reason,
    };
    let mut shell = shell_command(command);
    shell
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    if let Some(path) = var(env, "PATH") {
        shell.env("PATH", path);
    }
    tracing::debug!(profile, "running the profile's credential_process");
    let output = tokio::task::spawn_blocking(move || shell.output())
        .await
        .map_err(|e| {
            failed(
                "it could not be waited for".into(),
                Some(io::Error::other(e)),
            )
        })?
        .map_err(|e| failed("it could not be started".into(), Some(e)))?;
    if !output.status.success() {
        return Err(failed(output.status.to_string(), None));
    }
    // serde's messages may quote the output, which holds secrets: only our words go out.
    let answer: ProcessAnswer = serde_json::from_slice(&output.stdout).map_err(|_| {
        bad("it is not the JSON `{\"Version\": 1, \"AccessKeyId\", \"SecretAccessKey\", …}`")
    })?;
    if answer.version != 1 {
        return Err(bad("its `Version` is not 1"));
    }
    let expires_at = match answer.expiration.as_deref() {
        Some(time) => {
            Some(parse_time(time).ok_or(bad("its `Expiration` is not an RFC 3339 time"))?)
        }
        None => None,
    };
    AwsCredentials::new(
        &answer.access_key_id,
        &answer.secret_access_key,
        answer.session_token.as_deref(),
        expires_at,
    )
    .ok_or(bad("its `AccessKeyId` or `SecretAccessKey` is empty"))
}

/// `sh -c <command>` (`cmd /C` on Windows).
fn shell_command(command: &str) -> Command {
    if cfg!(windows) {
        let mut shell = Command::new("cmd.exe");
        shell.arg("/C").arg(command);
        shell
    } else {
        let mut shell = Command::new("/bin/sh");
        shell.arg("-c").arg(command);
        shell
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aws::Source;
    use crate::aws::testing::{Home, TestResult, at, creds};
    use crate::secret::Secret;

    #[cfg(unix)]
    #[test]
    fn credential_process_runs_with_our_path_and_its_output_stays_secret() -> TestResult {
        let home = Home::new()?;
        home.file(
            ".aws/config",
            "[default]\ncredential_process = fake-creds --profile x\n[profile failing]\ncredential_process = fake-fail\n[profile garbled]\ncredential_process = fake-garbage\n[profile v2]\ncredential_process = fake-v2\n[profile forever]\ncredential_process = fake-forever\n[profile missing]\ncredential_process = no-such-command-here\n",
        )?;
        home.script(
            "fake-creds",
            r#"[ "$1 $2" = "--profile x" ] || exit 9
printf '{"Version": 1, "AccessKeyId": "ASIAPROC", "SecretAccessKey": "proc-secret", "SessionToken": "proc-token", "Expiration": "2030-05-01T12:00:00Z"}'"#,
        )?;
        home.script(
            "fake-fail",
            "echo 'SecretAccessKey: leaked-on-stdout'; exit 3",
        )?;
        home.script("fake-garbage", "echo 'not json, but proc-garbage-secret'")?;
        home.script(
            "fake-v2",
            r#"printf '{"Version": 2, "AccessKeyId": "A", "SecretAccessKey": "v2-secret"}'"#,
        )?;
        home.script("fake-forever", r#"printf '{"Version": 1, "AccessKeyId": "AKIALONG", "SecretAccessKey": "long-secret"}'"#)?;

        let (found, source) = creds(home.resolve()?);
        assert_eq!(source, Source::CredentialProcess("default".into()));
        assert_eq!(found.access_key_id, "ASIAPROC");
        assert_eq!(found.secret_access_key.expose(), "proc-secret");
        assert_eq!(
            found.session_token.as_ref().map(Secret::expose),
            Some("proc-token")
        );
        assert_eq!(found.expires_at, Some(at("2030-05-01T12:00:00Z")));

        let home = home.set("AWS_PROFILE", "forever");
        let found = creds(home.resolve()?).0;
        assert_eq!((found.session_token, found.expires_at), (None, None));

        let home = home.set("AWS_PROFILE", "failing");
        let err = home.resolve().unwrap_err();
        assert!(
            matches!(err, CredentialError::CredentialProcessFailed { .. }),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            "the `credential_process` of profile `failing` failed (exit status: 3)"
        );
        assert!(!format!("{err:?}").contains("leaked"));

        for (profile, secret, reason) in [
            ("garbled", "proc-garbage-secret", "is not the JSON"),
            ("v2", "v2-secret", "`Version` is not 1"),
        ] {
            let home = Home {
                dir: tempfile::tempdir()?,
                vars: home.vars.clone(),
            }
            .set("AWS_PROFILE", profile);
            let err = home.resolve().unwrap_err();
            let shown = format!("{err} {err:?} {}", err.hint());
            assert!(
                matches!(err, CredentialError::CredentialProcessOutput { .. }),
                "{err:?}"
            );
            assert!(shown.contains(reason), "{shown}");
            assert!(!shown.contains(secret), "{shown}");
        }

        // Not found on PATH: the shell's exit status 127.
        let home = home.set("AWS_PROFILE", "missing");
        let err = home.resolve().unwrap_err();
        assert!(
            err.to_string().ends_with("failed (exit status: 127)"),
            "{err}"
        );
        Ok(())
    }
}
