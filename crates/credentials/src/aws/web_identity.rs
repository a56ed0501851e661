//! Web identity: a token file exchanged for credentials at STS (`AssumeRoleWithWebIdentity`),
//! named by the environment or by a profile.

use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use reqwest::header::{self, HeaderValue};
use serde::Deserialize;
use url::Url;

use super::config::{S3Config, parse_endpoint};
use super::credential::{AwsCredentials, Outcome, Source};
use super::error::CredentialError;
use super::service::{SERVICE_TIMEOUT, error_code, origin, parse_time, read_token_file, send};
use super::{is_true, var};

/// An `AssumeRoleWithWebIdentity` request.
pub(super) struct WebIdentity {
    pub(super) token_file: PathBuf,
    pub(super) role_arn: String,
    pub(super) session_name: Option<String>,
}

/// 3. `AWS_WEB_IDENTITY_TOKEN_FILE` + `AWS_ROLE_ARN` (+ `AWS_ROLE_SESSION_NAME`).
pub(super) async fn from_web_identity_env(
    client: &reqwest::Client,
    config: &S3Config,
    env: &(dyn Fn(&str) -> Option<String> + Sync),
) -> Result<Outcome, CredentialError> {
    let Some(token_file) = var(env, "AWS_WEB_IDENTITY_TOKEN_FILE") else {
        return Ok(Outcome::Absent(
            "`AWS_WEB_IDENTITY_TOKEN_FILE` not set".into(),
        ));
    };
    let Some(role_arn) = var(env, "AWS_ROLE_ARN") else {
        return Ok(Outcome::Absent(
            "`AWS_WEB_IDENTITY_TOKEN_FILE` is set but `AWS_ROLE_ARN` is not".into(),
        ));
    };
    let request = WebIdentity {
        token_file: PathBuf::from(token_file),
        role_arn: role_arn.trim().to_owned(),
        session_name: var(env, "AWS_ROLE_SESSION_NAME"),
    };
    let credentials = request.assume(client, config, env).await?;
    Ok(Outcome::Found(credentials, Source::WebIdentity))
}

impl WebIdentity {
    /// Exchanges the token for credentials at STS.
    pub(super) async fn assume(
        &self,
        client: &reqwest::Client,
        config: &S3Config,
        env: &(dyn Fn(&str) -> Option<String> + Sync),
    ) -> Result<AwsCredentials, CredentialError> {
        let token = read_token_file(&self.token_file, "the web identity token file")?;
        let url = sts_endpoint(&config.region, env)?;
        let endpoint = origin(&url);
        let session_name = self.session_name.clone().unwrap_or_else(|| {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default();
            format!("model-provisioner-{}", now.as_secs())
        });
        let body = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("Action", "AssumeRoleWithWebIdentity")
            .append_pair("Version", "2011-06-15")
            .append_pair("RoleArn", &self.role_arn)
            .append_pair("RoleSessionName", &session_name)
            .append_pair("WebIdentityToken", token.expose())
            .finish();
        tracing::debug!(
            endpoint,
            role_arn = self.role_arn,
            "assuming a role with a web identity"
        );
        let request = client
            .post(url)
            .header(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/x-www-form-urlencoded"),
            )
            .body(body);
        let (status, body) = send(request, Source::WebIdentity, &endpoint, SERVICE_TIMEOUT).await?;
        if !status.is_success() {
            return Err(CredentialError::ServiceRefused {
                from: Source::WebIdentity,
                endpoint,
                status: status.as_u16(),
                code: StsRefusal::code(&body),
            });
        }
        let bad = |reason: &str| CredentialError::ServiceAnswer {
            from: Source::WebIdentity,
            endpoint: endpoint.clone(),
            reason: reason.to_owned(),
        };
        let credentials =
            StsAnswer::credentials(&body).ok_or_else(|| bad("no `Credentials` element"))?;
        let expires_at = match credentials.expiration.as_deref() {
            Some(time) => Some(
                parse_time(time).ok_or_else(|| bad("its `Expiration` is not an RFC 3339 time"))?,
            ),
            None => None,
        };
        AwsCredentials::new(
            credentials.access_key_id.as_deref().unwrap_or_default(),
            credentials.secret_access_key.as_deref().unwrap_or_default(),
            credentials.session_token.as_deref(),
            expires_at,
        )
        .ok_or_else(|| bad("no `AccessKeyId` or `SecretAccessKey`"))
    }
}

/// STS: `AWS_ENDPOINT_URL_STS`, `AWS_ENDPOINT_URL`, else the region's endpoint.
fn sts_endpoint(
    region: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Url, CredentialError> {
    if !is_true(env, "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS") {
        for name in ["AWS_ENDPOINT_URL_STS", "AWS_ENDPOINT_URL"] {
            if let Some(value) = var(env, name) {
                return parse_endpoint(&value, format!("`{name}`"));
            }
        }
    }
    let domain = if region.starts_with("cn-") {
        "amazonaws.com.cn"
    } else {
        "amazonaws.com"
    };
    let url = if region.is_empty() {
        format!("https://sts.{domain}/")
    } else {
        format!("https://sts.{region}.{domain}/")
    };
    parse_endpoint(&url, "the region".into())
}

/// STS's answer to `AssumeRoleWithWebIdentity`, the parts we read:
/// `<AssumeRoleWithWebIdentityResponse><AssumeRoleWithWebIdentityResult><Credentials>…`.
/// Elements are matched by their local name, so the namespace STS declares (and a stand-in may
/// not) does not matter; a body that is not well-formed XML, one cut short included, is no
/// answer.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct StsAnswer {
    assume_role_with_web_identity_result: Option<StsResult>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct StsResult {
    credentials: Option<StsCredentials>,
}

/// The `Credentials` element; an empty element reads as `""`.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct StsCredentials {
    access_key_id: Option<String>,
    secret_access_key: Option<String>,
    session_token: Option<String>,
    expiration: Option<String>,
}

impl StsAnswer {
    /// The `Credentials` of `body`, when it is such an answer. quick-xml's errors are dropped:
    /// they may quote the body, which holds secrets.
    fn credentials(body: &str) -> Option<StsCredentials> {
        quick_xml::de::from_str::<StsAnswer>(body)
            .ok()?
            .assume_role_with_web_identity_result?
            .credentials
    }
}

/// STS's refusal: `<ErrorResponse><Error><Code>…`.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct StsRefusal {
    error: Option<StsError>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct StsError {
    code: Option<String>,
}

impl StsRefusal {
    /// The error code of the refusal `body`, when it names one fit to show.
    fn code(body: &str) -> Option<String> {
        let refusal: StsRefusal = quick_xml::de::from_str(body).ok()?;
        error_code(&refusal.error?.code?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aws::testing::{Home, STS_ANSWER, TestResult, at, creds, serve};
    use crate::secret::Secret;

    #[test]
    fn web_identity_posts_the_token_to_sts() -> TestResult {
        let (base, server) = serve(vec![("200 OK", STS_ANSWER.into())])?;
        let home = Home::new()?;
        let token = home.file("token", "eyJ.web+identity/token=\n")?;
        let home = home
            .set("AWS_WEB_IDENTITY_TOKEN_FILE", &token.display().to_string())
            .set("AWS_ROLE_ARN", "arn:aws:iam::123456789012:role/reader")
            .set("AWS_ROLE_SESSION_NAME", "my session")
            .set("AWS_ENDPOINT_URL_STS", &base)
            .set("AWS_ENDPOINT_URL", "http://127.0.0.1:1");
        let (found, source) = creds(home.resolve()?);
        let request = server.join().expect("the server").remove(0);
        assert_eq!(source, Source::WebIdentity);
        assert_eq!(found.access_key_id, "ASIASTS");
        assert_eq!(found.secret_access_key.expose(), "sts-secret");
        assert_eq!(
            found.session_token.as_ref().map(Secret::expose),
            Some("sts/token+with=&entity")
        );
        assert_eq!(found.expires_at, Some(at("2030-02-03T04:05:06Z")));
        assert!(request.starts_with("POST / HTTP/1.1\r\n"), "{request}");
        assert!(
            request
                .to_ascii_lowercase()
                .contains("content-type: application/x-www-form-urlencoded\r\n"),
            "{request}"
        );
        assert!(
            request.ends_with("\r\n\r\nAction=AssumeRoleWithWebIdentity&Version=2011-06-15&RoleArn=arn%3Aaws%3Aiam%3A%3A123456789012%3Arole%2Freader&RoleSessionName=my+session&WebIdentityToken=eyJ.web%2Bidentity%2Ftoken%3D"),
            "{request}"
        );
        Ok(())
    }

    #[test]
    fn web_identity_from_a_profile_and_a_default_session_name() -> TestResult {
        let (base, server) = serve(vec![("200 OK", STS_ANSWER.into())])?;
        let home = Home::new()?.set("AWS_ENDPOINT_URL", &base);
        home.file("token", "profile-token")?;
        home.file(
            ".aws/config",
            "[default]\nrole_arn = arn:aws:iam::1:role/p\nweb_identity_token_file = ~/token\n",
        )?;
        let (_, source) = creds(home.resolve()?);
        let request = server.join().expect("the server").remove(0);
        assert_eq!(source, Source::WebIdentity);
        assert!(
            request.contains("&RoleSessionName=model-provisioner-"),
            "{request}"
        );
        assert!(
            request.ends_with("&WebIdentityToken=profile-token"),
            "{request}"
        );
        Ok(())
    }

    #[test]
    fn sts_refusals_and_garbage_name_the_endpoint_and_no_secret() -> TestResult {
        let refusal = r"<ErrorResponse><Error><Type>Sender</Type><Code>InvalidIdentityToken</Code><Message>token sts-token-value is bad</Message></Error></ErrorResponse>";
        let (base, server) = serve(vec![
            ("400 Bad Request", refusal.into()),
            ("200 OK", "<html>sts-token-value</html>".into()),
            ("503 Service Unavailable", String::new()),
        ])?;
        let home = Home::new()?;
        let token = home.file("token", "sts-token-value")?;
        let home = home
            .set("AWS_WEB_IDENTITY_TOKEN_FILE", &token.display().to_string())
            .set("AWS_ROLE_ARN", "arn:aws:iam::1:role/r")
            .set("AWS_ENDPOINT_URL_STS", &format!("{base}/sts/path?x=1"));
        let err = home.resolve().unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("web identity (STS) at `{base}` answered HTTP 400 (`InvalidIdentityToken`)")
        );
        assert!(err.hint().contains("AWS_ROLE_ARN"));
        let err2 = home.resolve().unwrap_err();
        assert!(
            matches!(err2, CredentialError::ServiceAnswer { .. }),
            "{err2:?}"
        );
        let err3 = home.resolve().unwrap_err();
        assert!(err3.is_transient() && !err.is_transient(), "{err3:?}");
        server.join().expect("the server");
        for err in [err, err2, err3] {
            let shown = format!("{err} {err:?} {}", err.hint());
            assert!(!shown.contains("sts-token-value"), "{shown}");
        }

        // A token file that cannot be read names the file.
        let home = home.set("AWS_WEB_IDENTITY_TOKEN_FILE", "/nonexistent/token");
        let err = home.resolve().unwrap_err();
        assert_eq!(
            err.to_string(),
            "failed to read the web identity token file `/nonexistent/token`"
        );
        Ok(())
    }

    #[test]
    fn the_sts_endpoint_follows_the_region_unless_configured() -> TestResult {
        let env = |vars: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                vars.iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, v)| (*v).to_owned())
            }
        };
        assert_eq!(
            sts_endpoint("eu-west-1", &env(&[]))?.as_str(),
            "https://sts.eu-west-1.amazonaws.com/"
        );
        assert_eq!(
            sts_endpoint("cn-north-1", &env(&[]))?.as_str(),
            "https://sts.cn-north-1.amazonaws.com.cn/"
        );
        assert_eq!(
            sts_endpoint("", &env(&[]))?.as_str(),
            "https://sts.amazonaws.com/"
        );
        assert_eq!(
            sts_endpoint("x", &env(&[("AWS_ENDPOINT_URL", "http://127.0.0.1:9/")]))?.as_str(),
            "http://127.0.0.1:9/"
        );
        assert_eq!(
            sts_endpoint(
                "x",
                &env(&[
                    ("AWS_ENDPOINT_URL", "http://a/"),
                    ("AWS_ENDPOINT_URL_STS", "http://b/")
                ])
            )?
            .as_str(),
            "http://b/"
        );
        assert!(sts_endpoint("x", &env(&[("AWS_ENDPOINT_URL_STS", "not a url")])).is_err());
        Ok(())
    }

    #[test]
    fn xml_elements_and_text() {
        let answer = |credentials: &str| {
            format!(
                r#"<AssumeRoleWithWebIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><AssumeRoleWithWebIdentityResult><CredentialsX>no</CredentialsX>{credentials}</AssumeRoleWithWebIdentityResult></AssumeRoleWithWebIdentityResponse>"#
            )
        };
        let found = StsAnswer::credentials(&answer(
            r#"<Credentials kind="x"><AccessKeyId>v&lt;1&gt; &#65;&#x42; &amp;amp</AccessKeyId><SessionToken/><Expiration /></Credentials>"#,
        ))
        .expect("the element");
        assert_eq!(found.access_key_id.as_deref(), Some("v<1> AB &amp"));
        assert_eq!(found.session_token.as_deref(), Some(""));
        assert_eq!(found.expiration.as_deref(), Some(""));
        assert_eq!(found.secret_access_key, None);
        assert!(StsAnswer::credentials(&answer("")).is_none());
        // What is not well-formed XML is no answer: an answer cut short, a tag never closed,
        // an entity XML does not define.
        let cut = &STS_ANSWER[..STS_ANSWER.find("</SecretAccessKey>").expect("the secret")];
        for broken in [
            cut.to_owned(),
            "<Open".to_owned(),
            answer("<Credentials><AccessKeyId>&bogus;</AccessKeyId></Credentials>"),
        ] {
            assert!(StsAnswer::credentials(&broken).is_none(), "{broken}");
        }

        assert_eq!(
            StsRefusal::code(
                r"<ErrorResponse><Error><Type>Sender</Type><Code>InvalidIdentityToken</Code></Error></ErrorResponse>"
            ),
            Some("InvalidIdentityToken".into())
        );
        assert_eq!(
            StsRefusal::code(
                "<ErrorResponse><Error><Code>has spaces</Code></Error></ErrorResponse>"
            ),
            None
        );
        assert_eq!(StsRefusal::code("<html>503</html>"), None);
        assert_eq!(
            error_code("InvalidIdentityToken"),
            Some("InvalidIdentityToken".into())
        );
        assert_eq!(error_code("has spaces <and> secrets"), None);
    }
}
