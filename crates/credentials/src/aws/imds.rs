//! The EC2 instance metadata service, `IMDSv2`: a session token, then the name of the
//! instance's role, then the role's credentials.

use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::HeaderValue;
use url::Url;

use super::config::parse_endpoint;
use super::credential::{Outcome, Source};
use super::error::CredentialError;
use super::service::{SERVICE_TIMEOUT, ServiceAnswer, origin, send};
use super::{is_true, var};
use mp_transfer::{RetryPolicy, send_built};

/// The instance metadata service, over IPv4 and over IPv6.
const IMDS_ENDPOINT: &str = "http://169.254.169.254";
const IMDS_IPV6_ENDPOINT: &str = "http://[fd00:ec2::254]";

/// The life asked for an `IMDSv2` session token: six hours, the SDKs' value.
const IMDS_TOKEN_TTL: &str = "21600";

/// How long the instance metadata service has to answer the token request. It answers in
/// milliseconds where it exists; elsewhere this is what every run without credentials pays.
const IMDS_PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// 5. `IMDSv2`: a session token, the role's name, the role's credentials.
pub(super) async fn from_instance_metadata(
    client: &reqwest::Client,
    env: &(dyn Fn(&str) -> Option<String> + Sync),
) -> Result<Outcome, CredentialError> {
    if is_true(env, "AWS_EC2_METADATA_DISABLED") {
        return Ok(Outcome::Absent(
            "`AWS_EC2_METADATA_DISABLED` is `true`".into(),
        ));
    }
    let base = match var(env, "AWS_EC2_METADATA_SERVICE_ENDPOINT") {
        Some(value) => parse_endpoint(&value, "`AWS_EC2_METADATA_SERVICE_ENDPOINT`".into())?,
        None if var(env, "AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE")
            .is_some_and(|m| m.trim().eq_ignore_ascii_case("ipv6")) =>
        {
            Url::parse(IMDS_IPV6_ENDPOINT).expect("a valid URL")
        }
        None => Url::parse(IMDS_ENDPOINT).expect("a valid URL"),
    };
    let endpoint = origin(&base);
    let at = |path: &str| {
        let mut url = base.clone();
        url.set_path(path);
        url
    };

    let token_header = match imds_session(client, at("/latest/api/token"), &endpoint).await {
        Ok(header) => header,
        Err(reason) => return Ok(Outcome::Absent(reason)),
    };
    let roles = client
        .get(at("/latest/meta-data/iam/security-credentials/"))
        .header("x-aws-ec2-metadata-token", token_header.clone());
    let (status, body) = send(roles, Source::InstanceMetadata, &endpoint, SERVICE_TIMEOUT).await?;
    if status == StatusCode::NOT_FOUND {
        return Ok(Outcome::Absent(
            "no IAM role is attached to this instance".into(),
        ));
    }
    if !status.is_success() {
        return Err(CredentialError::ServiceRefused {
            from: Source::InstanceMetadata,
            endpoint,
            status: status.as_u16(),
            code: None,
        });
    }
    let Some(role) = body.lines().map(str::trim).find(|l| !l.is_empty()) else {
        return Ok(Outcome::Absent(
            "no IAM role is attached to this instance".into(),
        ));
    };
    let mut url = at("/latest/meta-data/iam/security-credentials/");
    url.path_segments_mut()
        .expect("an http URL has a path")
        .pop_if_empty()
        .push(role);
    tracing::debug!(endpoint, role, "asking the instance metadata service");
    let credentials = client
        .get(url)
        .header("x-aws-ec2-metadata-token", token_header);
    let (status, body) = send(
        credentials,
        Source::InstanceMetadata,
        &endpoint,
        SERVICE_TIMEOUT,
    )
    .await?;
    if !status.is_success() {
        return Err(CredentialError::ServiceRefused {
            from: Source::InstanceMetadata,
            endpoint,
            status: status.as_u16(),
            code: None,
        });
    }
    let credentials = ServiceAnswer::parse(&body, &Source::InstanceMetadata, &endpoint)?;
    Ok(Outcome::Found(credentials, Source::InstanceMetadata))
}

/// An `IMDSv2` session token, as the header that carries it; else why there is none. Where
/// there is no metadata service, this is the request that finds out, quickly.
async fn imds_session(
    client: &reqwest::Client,
    url: Url,
    endpoint: &str,
) -> Result<HeaderValue, String> {
    let request = client
        .put(url)
        .header("x-aws-ec2-metadata-token-ttl-seconds", IMDS_TOKEN_TTL)
        .timeout(IMDS_PROBE_TIMEOUT);
    // One attempt: where there is no metadata service, a retry only delays the answer.
    let once = RetryPolicy {
        retries: 0,
        ..RetryPolicy::default()
    };
    let response = send_built(request, once, endpoint).await.map_err(|_| {
        format!(
            "no answer from `{endpoint}` ({} s)",
            IMDS_PROBE_TIMEOUT.as_secs()
        )
    })?;
    if !response.status().is_success() {
        return Err(format!(
            "`{endpoint}` answered HTTP {} to the token request",
            response.status().as_u16()
        ));
    }
    let token = response.text().await.unwrap_or_default();
    let mut header = HeaderValue::from_str(token.trim())
        .ok()
        .filter(|h| !h.is_empty())
        .ok_or_else(|| format!("`{endpoint}` gave no session token"))?;
    header.set_sensitive(true);
    Ok(header)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aws::testing::{Home, JSON_CREDS, TestResult, creds, serve};

    use std::net::TcpListener;

    #[test]
    fn instance_metadata_v2_token_then_role_then_credentials() -> TestResult {
        let (base, server) = serve(vec![
            ("200 OK", "imds-session-token".into()),
            ("200 OK", "reader-role\n".into()),
            ("200 OK", JSON_CREDS.into()),
        ])?;
        let home = Home::new()?
            .unset("AWS_EC2_METADATA_DISABLED")
            .set("AWS_EC2_METADATA_SERVICE_ENDPOINT", &base);
        let (found, source) = creds(home.resolve()?);
        assert_eq!(source, Source::InstanceMetadata);
        assert_eq!(found.access_key_id, "ASIAJSON");
        assert_eq!(found.secret_access_key.expose(), "json-secret");
        let requests: Vec<String> = server
            .join()
            .expect("the server")
            .into_iter()
            .map(|r| r.to_ascii_lowercase())
            .collect();
        assert!(
            requests[0].starts_with("put /latest/api/token http/1.1\r\n"),
            "{}",
            requests[0]
        );
        assert!(
            requests[0].contains("x-aws-ec2-metadata-token-ttl-seconds: 21600\r\n"),
            "{}",
            requests[0]
        );
        assert!(
            requests[1].starts_with("get /latest/meta-data/iam/security-credentials/ http/1.1\r\n"),
            "{}",
            requests[1]
        );
        assert!(
            requests[1].contains("x-aws-ec2-metadata-token: imds-session-token\r\n"),
            "{}",
            requests[1]
        );
        assert!(
            requests[2].starts_with(
                "get /latest/meta-data/iam/security-credentials/reader-role http/1.1\r\n"
            ),
            "{}",
            requests[2]
        );
        assert!(
            requests[2].contains("x-aws-ec2-metadata-token: imds-session-token\r\n"),
            "{}",
            requests[2]
        );
        Ok(())
    }

    #[test]
    fn instance_metadata_without_a_role_or_refusing_a_token_gives_nothing() -> TestResult {
        let (base, server) = serve(vec![
            ("200 OK", "t".into()),
            ("404 Not Found", String::new()),
            ("403 Forbidden", String::new()),
            ("200 OK", "t".into()),
            ("200 OK", "role".into()),
            (
                "200 OK",
                r#"{"Code":"AssumeRoleUnauthorizedAccess","Message":"x"}"#.into(),
            ),
        ])?;
        let home = Home::new()?
            .unset("AWS_EC2_METADATA_DISABLED")
            .set("AWS_EC2_METADATA_SERVICE_ENDPOINT", &base);
        let err = home.resolve().unwrap_err();
        assert!(
            err.to_string()
                .ends_with("instance metadata: no IAM role is attached to this instance)"),
            "{err}"
        );
        let err = home.resolve().unwrap_err();
        assert!(
            err.to_string().ends_with(&format!(
                "instance metadata: `{base}` answered HTTP 403 to the token request)"
            )),
            "{err}"
        );
        let err = home.resolve().unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "the instance metadata service at `{base}` answered with no usable credentials: its `Code` is `AssumeRoleUnauthorizedAccess`"
            )
        );
        server.join().expect("the server");
        Ok(())
    }

    #[test]
    fn instance_metadata_that_does_not_answer_costs_a_second() -> TestResult {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let base = format!("http://{}", listener.local_addr()?);
        // The connection is accepted and held, silent, until the test has its answer.
        let (done, finished) = std::sync::mpsc::channel::<()>();
        let silent = std::thread::spawn(move || {
            let held = listener.accept();
            let _ = finished.recv();
            drop(held);
        });
        let home = Home::new()?
            .unset("AWS_EC2_METADATA_DISABLED")
            .set("AWS_EC2_METADATA_SERVICE_ENDPOINT", &base);
        let started = std::time::Instant::now();
        let err = home.resolve().unwrap_err();
        let took = started.elapsed();
        let _ = done.send(());
        // At least the timeout; the upper bound only says it did not wait for the server,
        // which never answers (generous, for a busy machine).
        assert!(
            took >= Duration::from_millis(900) && took < Duration::from_secs(10),
            "{took:?}"
        );
        assert!(
            err.to_string().ends_with(&format!(
                "instance metadata: no answer from `{base}` (1 s))"
            )),
            "{err}"
        );
        silent.join().expect("the listener");
        Ok(())
    }
}
