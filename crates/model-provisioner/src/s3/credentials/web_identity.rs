//! Web identity: a token file exchanged for credentials at STS (`AssumeRoleWithWebIdentity`),
//! named by the environment or by a profile.

use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use reqwest::header::{self, HeaderValue};
use url::Url;

use super::chain::{AwsCredentials, Outcome, Source};
use super::config::{S3Config, parse_endpoint};
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
                code: xml_element(&body, "Code").and_then(error_code),
            });
        }
        let bad = |reason: &str| CredentialError::ServiceAnswer {
            from: Source::WebIdentity,
            endpoint: endpoint.clone(),
            reason: reason.to_owned(),
        };
        let credentials =
            xml_element(&body, "Credentials").ok_or_else(|| bad("no `Credentials` element"))?;
        let field = |name: &str| xml_element(credentials, name).map(|v| xml_text(v.trim()));
        let expires_at = match field("Expiration") {
            Some(time) => Some(
                parse_time(&time).ok_or_else(|| bad("its `Expiration` is not an RFC 3339 time"))?,
            ),
            None => None,
        };
        AwsCredentials::new(
            &field("AccessKeyId").unwrap_or_default(),
            &field("SecretAccessKey").unwrap_or_default(),
            field("SessionToken").as_deref(),
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

/// The content of the first element named `name` in `xml` (raw, entities not decoded); `""`
/// for `<name/>`. Enough for STS's answers, which have no CDATA, comments or repeated names
/// that matter.
fn xml_element<'a>(xml: &'a str, name: &str) -> Option<&'a str> {
    let mut from = 0;
    loop {
        let open = from + xml[from..].find('<')?;
        let rest = &xml[open + 1..];
        from = open + 1;
        let Some(after) = rest.strip_prefix(name) else {
            continue;
        };
        let end = after.find('>')?;
        match after.as_bytes().first() {
            Some(b'>') => {}
            Some(b'/') if end == 1 => return Some(""),
            Some(b) if b.is_ascii_whitespace() => {
                if after[..end].ends_with('/') {
                    return Some("");
                }
            }
            // A longer name that starts with this one.
            _ => continue,
        }
        let content = &after[end + 1..];
        let close = format!("</{name}>");
        return content.find(&close).map(|at| &content[..at]);
    }
}

/// `text` with XML's predefined and numeric character references decoded.
fn xml_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        rest = &rest[amp..];
        let decoded = rest.find(';').and_then(|semi| {
            let entity = &rest[1..semi];
            let c = match entity {
                "amp" => Some('&'),
                "lt" => Some('<'),
                "gt" => Some('>'),
                "quot" => Some('"'),
                "apos" => Some('\''),
                _ => entity
                    .strip_prefix("#x")
                    .map(|hex| u32::from_str_radix(hex, 16))
                    .or_else(|| entity.strip_prefix('#').map(str::parse))
                    .and_then(Result::ok)
                    .and_then(char::from_u32),
            }?;
            Some((c, semi + 1))
        });
        match decoded {
            Some((c, len)) => {
                out.push(c);
                rest = &rest[len..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::s3::credentials::testing::{Home, STS_ANSWER, TestResult, at, creds, serve};
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
        let xml = r#"<a><CredentialsX>no</CredentialsX><Credentials kind="x"><Key>v&lt;1&gt; &#65;&#x42; &amp;amp &bogus;</Key><Empty/><Also /></Credentials></a>"#;
        let inner = xml_element(xml, "Credentials").expect("the element");
        assert!(inner.starts_with("<Key>"), "{inner}");
        assert_eq!(
            xml_text(xml_element(inner, "Key").expect("key")),
            "v<1> AB &amp &bogus;"
        );
        assert_eq!(xml_element(inner, "Empty"), Some(""));
        assert_eq!(xml_element(inner, "Also"), Some(""));
        assert_eq!(xml_element(inner, "Missing"), None);
        assert_eq!(xml_element("<Open>never closed", "Open"), None);
        assert_eq!(xml_element("<Open", "Open"), None);
        assert_eq!(
            error_code("InvalidIdentityToken"),
            Some("InvalidIdentityToken".into())
        );
        assert_eq!(error_code("has spaces <and> secrets"), None);
    }
}
