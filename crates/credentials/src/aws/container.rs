//! The ECS and EKS container credentials endpoint, named by
//! `AWS_CONTAINER_CREDENTIALS_RELATIVE_URI` or `AWS_CONTAINER_CREDENTIALS_FULL_URI`.

use std::path::Path;

use reqwest::header::{self, HeaderValue};
use url::Url;

use super::credential::{Outcome, Source};
use super::error::CredentialError;
use super::service::{SERVICE_TIMEOUT, ServiceAnswer, origin, read_token_file, send};
use super::var;
use crate::secret::Secret;

/// Where the ECS and EKS agents serve `AWS_CONTAINER_CREDENTIALS_RELATIVE_URI`.
const CONTAINER_HOST: &str = "http://169.254.170.2";

/// 4. The container credentials endpoint, when the agent names one.
pub(super) async fn from_container(
    client: &reqwest::Client,
    env: &(dyn Fn(&str) -> Option<String> + Sync),
) -> Result<Outcome, CredentialError> {
    let Some(url) = container_endpoint(env)? else {
        return Ok(Outcome::Absent(
            "`AWS_CONTAINER_CREDENTIALS_RELATIVE_URI` and `AWS_CONTAINER_CREDENTIALS_FULL_URI` not set"
                .into(),
        ));
    };
    let endpoint = origin(&url);
    let mut request = client.get(url);
    if let Some(token) = container_token(env)? {
        let mut value =
            HeaderValue::from_str(token.expose()).map_err(|_| CredentialError::InvalidSetting {
                setting: "the container authorization token".into(),
                value: None,
                expected: "one line of visible characters",
            })?;
        value.set_sensitive(true);
        request = request.header(header::AUTHORIZATION, value);
    }
    tracing::debug!(endpoint, "asking the container credentials endpoint");
    let (status, body) = send(request, Source::Container, &endpoint, SERVICE_TIMEOUT).await?;
    if !status.is_success() {
        return Err(CredentialError::ServiceRefused {
            from: Source::Container,
            endpoint,
            status: status.as_u16(),
            code: None,
        });
    }
    let credentials = ServiceAnswer::parse(&body, &Source::Container, &endpoint)?;
    Ok(Outcome::Found(credentials, Source::Container))
}

/// The container credentials URL: `AWS_CONTAINER_CREDENTIALS_RELATIVE_URI` on
/// `http://169.254.170.2`, else `AWS_CONTAINER_CREDENTIALS_FULL_URI`, which must be `https`
/// or `http` to loopback or the ECS/EKS agents (as the SDKs require: the token goes there).
fn container_endpoint(
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<Url>, CredentialError> {
    if let Some(relative) = var(env, "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI") {
        let relative = relative.trim();
        let slash = if relative.starts_with('/') { "" } else { "/" };
        return Url::parse(&format!("{CONTAINER_HOST}{slash}{relative}"))
            .map(Some)
            .map_err(|_| CredentialError::InvalidSetting {
                setting: "`AWS_CONTAINER_CREDENTIALS_RELATIVE_URI`".into(),
                value: None,
                expected: "a URL path",
            });
    }
    let Some(full) = var(env, "AWS_CONTAINER_CREDENTIALS_FULL_URI") else {
        return Ok(None);
    };
    let url = Url::parse(full.trim())
        .ok()
        .filter(|u| match (u.scheme(), u.host()) {
            ("https", Some(_)) => true,
            ("http", Some(url::Host::Domain(host))) => host.eq_ignore_ascii_case("localhost"),
            ("http", Some(url::Host::Ipv4(ip))) => {
                ip.is_loopback()
                    || ip.octets() == [169, 254, 170, 2]
                    || ip.octets() == [169, 254, 170, 23]
            }
            ("http", Some(url::Host::Ipv6(ip))) => {
                ip.is_loopback() || ip.segments() == [0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x23]
            }
            _ => false,
        });
    url.map(Some).ok_or(CredentialError::InvalidSetting {
        setting: "`AWS_CONTAINER_CREDENTIALS_FULL_URI`".into(),
        value: None,
        expected: "an https URL, or http to a loopback address or the ECS/EKS agent",
    })
}

/// `AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE` (read each time: the agent rotates it), else
/// `AWS_CONTAINER_AUTHORIZATION_TOKEN`.
fn container_token(
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<Secret>, CredentialError> {
    if let Some(file) = var(env, "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE") {
        return read_token_file(Path::new(&file), "the container authorization token file")
            .map(Some);
    }
    Ok(var(env, "AWS_CONTAINER_AUTHORIZATION_TOKEN").map(|t| Secret::new(t.trim().to_owned())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aws::testing::{Home, JSON_CREDS, TestResult, at, creds, serve};

    #[test]
    fn container_relative_uri_is_on_the_agent_and_full_uri_must_be_safe() -> TestResult {
        let env = |name: &'static str, value: &'static str| {
            move |n: &str| (n == name).then(|| value.to_owned())
        };
        let relative = container_endpoint(&env(
            "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
            "/v2/credentials/abc-123",
        ))?;
        assert_eq!(
            relative.map(String::from).as_deref(),
            Some("http://169.254.170.2/v2/credentials/abc-123")
        );
        let relative =
            container_endpoint(&env("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "creds?id=1"))?;
        assert_eq!(
            relative.map(String::from).as_deref(),
            Some("http://169.254.170.2/creds?id=1")
        );
        for allowed in [
            "https://creds.example.test/x",
            "http://127.0.0.1:8080/creds",
            "http://localhost/creds",
            "http://[::1]:1/c",
            "http://169.254.170.23/v1/credentials",
            "http://[fd00:ec2::23]/v1/credentials",
        ] {
            let url = container_endpoint(&move |n: &str| {
                (n == "AWS_CONTAINER_CREDENTIALS_FULL_URI").then(|| allowed.to_owned())
            })?;
            assert_eq!(url.map(String::from).as_deref(), Some(allowed));
        }
        for refused in [
            "http://creds.example.test/x",
            "http://10.0.0.1/c",
            "ftp://127.0.0.1/c",
            "nonsense",
        ] {
            let err = container_endpoint(&move |n: &str| {
                (n == "AWS_CONTAINER_CREDENTIALS_FULL_URI").then(|| refused.to_owned())
            })
            .unwrap_err();
            assert!(
                matches!(err, CredentialError::InvalidSetting { value: None, .. }),
                "{refused}: {err:?}"
            );
        }
        assert!(container_endpoint(&|_| None)?.is_none());
        Ok(())
    }

    #[test]
    fn container_full_uri_sends_the_token_from_the_env_or_the_file() -> TestResult {
        let (base, server) = serve(vec![
            ("200 OK", JSON_CREDS.into()),
            ("200 OK", JSON_CREDS.into()),
            ("401 Unauthorized", r#"{"message":"bad token"}"#.into()),
        ])?;
        let home = Home::new()?
            .set(
                "AWS_CONTAINER_CREDENTIALS_FULL_URI",
                &format!("{base}/get-credentials?a=1"),
            )
            .set("AWS_CONTAINER_AUTHORIZATION_TOKEN", "env-auth-token");
        let (found, source) = creds(home.resolve()?);
        assert_eq!(source, Source::Container);
        assert_eq!(found.access_key_id, "ASIAJSON");
        assert_eq!(
            found.session_token.as_ref().map(Secret::expose),
            Some("json-token")
        );
        assert_eq!(found.expires_at, Some(at("2030-01-01T00:00:00Z")));

        // The file beats the variable.
        let file = home.file("auth", "file-auth-token\n")?;
        let home = home.set(
            "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
            &file.display().to_string(),
        );
        creds(home.resolve()?);
        let err = home.resolve().unwrap_err();
        let requests = server.join().expect("the server");
        assert!(
            requests[0].starts_with("GET /get-credentials?a=1 HTTP/1.1\r\n"),
            "{}",
            requests[0]
        );
        assert!(
            requests[0]
                .to_ascii_lowercase()
                .contains("authorization: env-auth-token\r\n"),
            "{}",
            requests[0]
        );
        assert!(
            requests[1]
                .to_ascii_lowercase()
                .contains("authorization: file-auth-token\r\n"),
            "{}",
            requests[1]
        );
        assert_eq!(
            err.to_string(),
            format!("the container credentials endpoint at `{base}` answered HTTP 401")
        );
        assert!(!format!("{err:?} {}", err.hint()).contains("auth-token"));
        Ok(())
    }
}
