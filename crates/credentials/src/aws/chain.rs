//! [`resolve`]: the sources tried in the SDKs' order, and what they find ([`AwsCredentials`],
//! from a [`Source`]). The first two sources are here: the environment's keys, and the
//! profile's, which may hand over to a `credential_process` or a web identity.

use super::config::S3Config;
use super::container::from_container;
use super::credential::{AwsCredentials, Outcome, Source};
use super::error::{CredentialError, Tried};
use super::imds::from_instance_metadata;
use super::process::run_credential_process;
use super::shared_files::{DEFAULT_PROFILE, SharedFiles};
use super::var;
use super::web_identity::{WebIdentity, from_web_identity_env};
use catalog_core::printable;

/// Resolves credentials, trying each source in order; returns what it found and from where, or
/// an error that lists every source tried and why it gave nothing.
///
/// `Ok(None)` only with [`S3Config::no_sign_request`], which looks at nothing. The shared files
/// are read again (they may have changed since [`S3Config::from_env`]); a `credential_process`
/// runs on tokio's blocking pool. The metadata service is spoken to through `client`, so its
/// proxy settings apply: the SDKs' default `NO_PROXY` lists `169.254.169.254`.
pub async fn resolve(
    client: &reqwest::Client,
    config: &S3Config,
    env: &(dyn Fn(&str) -> Option<String> + Sync),
) -> Result<Option<(AwsCredentials, Source)>, CredentialError> {
    if config.no_sign_request {
        return Ok(None);
    }
    let mut tried = Vec::new();
    let mut note = |source, outcome| match outcome {
        Outcome::Found(credentials, from) => {
            tracing::debug!(%from, "found AWS credentials");
            Some((credentials, from))
        }
        Outcome::Absent(reason) => {
            tracing::debug!(source, reason, "no AWS credentials here");
            tried.push(Tried { source, reason });
            None
        }
    };
    if let Some(found) = note("environment", from_environment(env)) {
        return Ok(Some(found));
    }
    if let Some(found) = note("shared files", from_profile(client, config, env).await?) {
        return Ok(Some(found));
    }
    if let Some(found) = note(
        "web identity",
        from_web_identity_env(client, config, env).await?,
    ) {
        return Ok(Some(found));
    }
    if let Some(found) = note("container", from_container(client, env).await?) {
        return Ok(Some(found));
    }
    if let Some(found) = note(
        "instance metadata",
        from_instance_metadata(client, env).await?,
    ) {
        return Ok(Some(found));
    }
    Err(CredentialError::NotFound { tried })
}

/// 1. `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`.
fn from_environment(env: &dyn Fn(&str) -> Option<String>) -> Outcome {
    match (
        var(env, "AWS_ACCESS_KEY_ID"),
        var(env, "AWS_SECRET_ACCESS_KEY"),
    ) {
        (Some(id), Some(secret)) => {
            match AwsCredentials::new(&id, &secret, var(env, "AWS_SESSION_TOKEN").as_deref(), None)
            {
                Some(credentials) => Outcome::Found(credentials, Source::Environment),
                None => Outcome::Absent(
                    "`AWS_ACCESS_KEY_ID` or `AWS_SECRET_ACCESS_KEY` is blank".into(),
                ),
            }
        }
        (None, _) => Outcome::Absent("`AWS_ACCESS_KEY_ID` not set".into()),
        (Some(_), None) => {
            Outcome::Absent("`AWS_ACCESS_KEY_ID` is set but `AWS_SECRET_ACCESS_KEY` is not".into())
        }
    }
}

/// 2. The profile's keys, else its `credential_process`, else its web identity.
async fn from_profile(
    client: &reqwest::Client,
    config: &S3Config,
    env: &(dyn Fn(&str) -> Option<String> + Sync),
) -> Result<Outcome, CredentialError> {
    let files = SharedFiles::locate(env);
    let name = config.profile.as_str();
    let Some(props) = files.read()?.profile(name) else {
        if name != DEFAULT_PROFILE {
            return Err(CredentialError::ProfileNotFound {
                profile: printable(name),
                files: files.describe(),
            });
        }
        return Ok(Outcome::Absent(format!(
            "no profile `default` in {}",
            files.describe()
        )));
    };
    let get = |key: &str| {
        props
            .get(key)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    };
    let incomplete = |present, missing| CredentialError::ProfileIncomplete {
        profile: printable(name),
        present,
        missing,
    };
    match (get("aws_access_key_id"), get("aws_secret_access_key")) {
        (Some(id), Some(secret)) => {
            let credentials =
                AwsCredentials::new(&id, &secret, get("aws_session_token").as_deref(), None)
                    .ok_or_else(|| incomplete("aws_access_key_id", "aws_secret_access_key"))?;
            return Ok(Outcome::Found(
                credentials,
                Source::Profile(name.to_owned()),
            ));
        }
        (Some(_), None) => return Err(incomplete("aws_access_key_id", "aws_secret_access_key")),
        (None, Some(_)) => return Err(incomplete("aws_secret_access_key", "aws_access_key_id")),
        (None, None) => {}
    }
    if let Some(command) = get("credential_process") {
        let credentials = run_credential_process(name, &command, env).await?;
        return Ok(Outcome::Found(
            credentials,
            Source::CredentialProcess(name.to_owned()),
        ));
    }
    if let (Some(token_file), Some(role_arn)) = (get("web_identity_token_file"), get("role_arn")) {
        let request = WebIdentity {
            token_file: files.expand(&token_file),
            role_arn,
            session_name: get("role_session_name"),
        };
        let credentials = request.assume(client, config, env).await?;
        return Ok(Outcome::Found(credentials, Source::WebIdentity));
    }
    for setting in [
        "role_arn",
        "credential_source",
        "sso_session",
        "sso_start_url",
    ] {
        if get(setting).is_some() {
            return Err(CredentialError::ProfileUnsupported {
                profile: printable(name),
                setting,
            });
        }
    }
    Ok(Outcome::Absent(format!(
        "profile `{}` holds no credentials",
        printable(name)
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aws::service::parse_time;
    use crate::aws::testing::{Home, JSON_CREDS, STS_ANSWER, TestResult, at, creds, serve};
    use crate::secret::Secret;
    use crate::test_util::block_on;

    #[test]
    fn environment_keys_come_first() -> TestResult {
        let home = Home::new()?
            .set("AWS_ACCESS_KEY_ID", "AKIAENV")
            .set("AWS_SECRET_ACCESS_KEY", "env-secret")
            .set("AWS_SESSION_TOKEN", "env-token");
        home.file(
            ".aws/credentials",
            "[default]\naws_access_key_id = AKIAFILE\naws_secret_access_key = file-secret\n",
        )?;
        let (found, source) = creds(home.resolve()?);
        assert_eq!(source, Source::Environment);
        assert_eq!(found.access_key_id, "AKIAENV");
        assert_eq!(found.secret_access_key.expose(), "env-secret");
        assert_eq!(
            found.session_token.as_ref().map(Secret::expose),
            Some("env-token")
        );
        assert_eq!(found.expires_at, None);

        // Without a token; an empty token is none.
        let home = home.set("AWS_SESSION_TOKEN", "");
        assert_eq!(creds(home.resolve()?).0.session_token, None);

        // The id alone is not enough: the profile is next.
        let home = home.unset("AWS_SECRET_ACCESS_KEY");
        let (found, source) = creds(home.resolve()?);
        assert_eq!(source, Source::Profile("default".into()));
        assert_eq!(found.access_key_id, "AKIAFILE");
        Ok(())
    }

    #[test]
    fn profiles_default_and_named() -> TestResult {
        let home = Home::new()?;
        home.file(
            ".aws/credentials",
            "[default]\naws_access_key_id = AKIADEF\naws_secret_access_key = def-secret\n\n[work]\n  aws_access_key_id = AKIAWORK  \naws_secret_access_key=work-secret\naws_session_token = work-token\n",
        )?;
        home.file(".aws/config", "[profile cfg]\naws_access_key_id = AKIACFG\naws_secret_access_key = cfg-secret\n[plain]\naws_access_key_id = AKIAPLAIN\naws_secret_access_key = x\n")?;
        let (found, source) = creds(home.resolve()?);
        assert_eq!(
            (found.access_key_id.as_str(), source),
            ("AKIADEF", Source::Profile("default".into()))
        );

        let home = home.set("AWS_PROFILE", "work");
        let (found, source) = creds(home.resolve()?);
        assert_eq!(source, Source::Profile("work".into()));
        assert_eq!(found.access_key_id, "AKIAWORK");
        assert_eq!(
            found.session_token.as_ref().map(Secret::expose),
            Some("work-token")
        );

        let home = home.set("AWS_PROFILE", "cfg");
        assert_eq!(creds(home.resolve()?).0.access_key_id, "AKIACFG");

        // `[plain]` in the config file is not a profile.
        let home = home.set("AWS_PROFILE", "plain");
        let err = home.config().unwrap_err();
        assert!(
            matches!(&err, CredentialError::ProfileNotFound { profile, .. } if profile == "plain"),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            "there is no profile `plain` in `~/.aws/credentials` or `~/.aws/config`"
        );
        assert!(err.hint().contains("[profile plain]"), "{}", err.hint());

        // Another place for both files.
        let elsewhere = home.file(
            "creds.ini",
            "[default]\naws_access_key_id = AKIAELSE\naws_secret_access_key = s\n",
        )?;
        let home = home
            .unset("AWS_PROFILE")
            .set(
                "AWS_SHARED_CREDENTIALS_FILE",
                &elsewhere.display().to_string(),
            )
            .set("AWS_CONFIG_FILE", "~/nosuch");
        assert_eq!(creds(home.resolve()?).0.access_key_id, "AKIAELSE");
        Ok(())
    }

    #[test]
    fn profiles_that_hold_half_or_unsupported_credentials_are_errors() -> TestResult {
        let home = Home::new()?.set("AWS_PROFILE", "half");
        home.file(
            ".aws/config",
            "[profile half]\naws_access_key_id = AKIAHALF\n[profile role]\nrole_arn = arn:aws:iam::1:role/r\nsource_profile = default\n[profile empty]\nregion = x\n",
        )?;
        let err = home.resolve().unwrap_err();
        assert_eq!(
            err.to_string(),
            "profile `half` sets `aws_access_key_id` but not `aws_secret_access_key`"
        );
        let home = home.set("AWS_PROFILE", "role");
        let err = home.resolve().unwrap_err();
        assert!(
            matches!(
                err,
                CredentialError::ProfileUnsupported {
                    setting: "role_arn",
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(
            err.hint()
                .contains("aws configure export-credentials --profile role")
        );
        // A profile with no credentials lets the chain go on.
        let home = home.set("AWS_PROFILE", "empty");
        let err = home.resolve().unwrap_err();
        assert!(
            err.to_string()
                .contains("shared files: profile `empty` holds no credentials"),
            "{err}"
        );
        Ok(())
    }

    #[test]
    fn nothing_found_lists_every_source_and_why() -> TestResult {
        let port = test_support::free_port();
        let home = Home::new()?.unset("AWS_EC2_METADATA_DISABLED").set(
            "AWS_EC2_METADATA_SERVICE_ENDPOINT",
            &format!("http://127.0.0.1:{port}"),
        );
        let err = home.resolve().unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "no AWS credentials found (environment: `AWS_ACCESS_KEY_ID` not set; shared files: no profile `default` in `~/.aws/credentials` or `~/.aws/config`; web identity: `AWS_WEB_IDENTITY_TOKEN_FILE` not set; container: `AWS_CONTAINER_CREDENTIALS_RELATIVE_URI` and `AWS_CONTAINER_CREDENTIALS_FULL_URI` not set; instance metadata: no answer from `http://127.0.0.1:{port}` (1 s))"
            )
        );
        let CredentialError::NotFound { tried } = &err else {
            panic!("{err:?}");
        };
        let sources: Vec<&str> = tried.iter().map(|t| t.source).collect();
        assert_eq!(
            sources,
            [
                "environment",
                "shared files",
                "web identity",
                "container",
                "instance metadata"
            ]
        );
        assert_eq!(
            err.hint(),
            "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE, or pass --no-sign-request for a public bucket"
        );

        let home = Home::new()?.set("AWS_WEB_IDENTITY_TOKEN_FILE", "/t");
        let err = home.resolve().unwrap_err();
        let shown = err.to_string();
        assert!(
            shown.contains(
                "web identity: `AWS_WEB_IDENTITY_TOKEN_FILE` is set but `AWS_ROLE_ARN` is not"
            ),
            "{shown}"
        );
        assert!(
            shown.ends_with("instance metadata: `AWS_EC2_METADATA_DISABLED` is `true`)"),
            "{shown}"
        );

        // Anonymous: nothing is looked at.
        let config = home.config()?.with_no_sign_request(true);
        assert!(block_on(resolve(&reqwest::Client::new(), &config, &home.env()))?.is_none());
        Ok(())
    }

    #[test]
    fn each_source_beats_the_next() -> TestResult {
        let (sts, sts_server) = serve(vec![("200 OK", STS_ANSWER.into())])?;
        let (container, container_server) = serve(vec![("200 OK", JSON_CREDS.into())])?;
        let (imds, imds_server) = serve(vec![
            ("200 OK", "t".into()),
            ("200 OK", "role".into()),
            ("200 OK", JSON_CREDS.into()),
        ])?;
        let home = Home::new()?;
        let token = home.file("token", "tok")?;
        home.file(
            ".aws/credentials",
            "[default]\naws_access_key_id = AKIAFILE\naws_secret_access_key = s\n",
        )?;
        let home = home
            .set("AWS_ACCESS_KEY_ID", "AKIAENV")
            .set("AWS_SECRET_ACCESS_KEY", "s")
            .set("AWS_WEB_IDENTITY_TOKEN_FILE", &token.display().to_string())
            .set("AWS_ROLE_ARN", "arn:aws:iam::1:role/r")
            .set("AWS_ENDPOINT_URL_STS", &sts)
            .set("AWS_CONTAINER_CREDENTIALS_FULL_URI", &container)
            .unset("AWS_EC2_METADATA_DISABLED")
            .set("AWS_EC2_METADATA_SERVICE_ENDPOINT", &imds);
        assert_eq!(creds(home.resolve()?).1, Source::Environment);
        let home = home.unset("AWS_ACCESS_KEY_ID");
        assert_eq!(creds(home.resolve()?).1, Source::Profile("default".into()));
        let home = home.set("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent");
        assert_eq!(creds(home.resolve()?).1, Source::WebIdentity);
        let home = home.unset("AWS_ROLE_ARN");
        assert_eq!(creds(home.resolve()?).1, Source::Container);
        let home = home.unset("AWS_CONTAINER_CREDENTIALS_FULL_URI");
        assert_eq!(creds(home.resolve()?).1, Source::InstanceMetadata);
        for server in [sts_server, container_server, imds_server] {
            server.join().expect("a server");
        }
        Ok(())
    }

    #[test]
    fn expiry_is_near_five_minutes_ahead() {
        let now = at("2030-01-01T00:00:00Z");
        let mut found = AwsCredentials::new("A", "s", Some("t"), None).expect("credentials");
        assert!(!found.is_expiring(now));
        for (expires, expiring) in [
            ("2030-01-01T00:10:00Z", false),
            ("2030-01-01T00:05:01Z", false),
            ("2030-01-01T00:04:59Z", true),
            ("2029-12-31T00:00:00Z", true),
        ] {
            found.expires_at = Some(at(expires));
            assert_eq!(found.is_expiring(now), expiring, "{expires}");
        }
        assert_eq!(parse_time("2030-01-01T01:00:00+01:00"), Some(now));
        assert_eq!(parse_time("tomorrow"), None);
        assert!(AwsCredentials::new(" ", "s", None, None).is_none());
    }

    #[test]
    fn debug_and_messages_never_show_a_secret() {
        let found = AwsCredentials::new(
            "AKIAID",
            "very-secret-key",
            Some("very-secret-token"),
            Some(at("2030-01-01T00:00:00Z")),
        )
        .expect("credentials");
        let signing = found.signing();
        assert_eq!(signing.key(), "AKIAID");
        assert_eq!(signing.secret(), "very-secret-key");
        assert_eq!(signing.token(), Some("very-secret-token"));
        let shown = format!(
            "{found:?} {found:#?} {signing:?} {:?} {:?}",
            Some((found.clone(), Source::Environment)),
            S3Config::default(),
        );
        assert!(shown.contains("AKIAID"), "{shown}");
        assert!(!shown.contains("very-secret"), "{shown}");
    }

    #[test]
    fn resolving_is_send() {
        fn send<T: Send>(_: &T) {}
        let client = reqwest::Client::new();
        let config = S3Config::default();
        let env = |_: &str| None;
        send(&resolve(&client, &config, &env));
    }
}
