//! The AWS credential endpoints an S3 client may ask for keys, as small std-only servers on
//! 127.0.0.1: the EC2 instance metadata service (`IMDSv2`), the container credentials endpoint
//! (ECS, EKS Pod Identity), and STS `AssumeRoleWithWebIdentity`.
//!
//! Each answers with the [`AwsCreds`] it holds (replaceable with `set_creds`, for rotation)
//! and an expiration (`set_expiration`, RFC 3339, [`FAR_EXPIRATION`] at first), and logs
//! every request before answering it, so the log is complete once the client has its answer.
//! Built with `start_for` from an [`S3Server`], they hand out that server's key pair (and
//! [`crate::S3_SESSION_TOKEN`], which s3s-fs ignores), so credentials fetched from them sign
//! requests the server accepts.

use std::io;

use crate::S3Server;
use crate::endpoint::{Endpoint, EndpointRequest, Response};

/// The expiration the endpoints give at first: far enough that no client refreshes.
pub const FAR_EXPIRATION: &str = "2099-12-31T23:59:59Z";

/// The header an `IMDSv2` token request must carry.
pub const IMDS_TTL_HEADER: &str = "X-aws-ec2-metadata-token-ttl-seconds";
/// The header an `IMDSv2` metadata request carries its token in.
pub const IMDS_TOKEN_HEADER: &str = "X-aws-ec2-metadata-token";

/// A set of AWS credentials, as the endpoints hand them out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsCreds {
    /// `AccessKeyId`.
    pub access_key_id: String,
    /// `SecretAccessKey`.
    pub secret_access_key: String,
    /// `Token` / `SessionToken` (an empty string in the answers when `None`).
    pub session_token: Option<String>,
}

impl AwsCreds {
    /// Credentials with these values.
    pub fn new(access_key_id: &str, secret_access_key: &str, session_token: Option<&str>) -> Self {
        AwsCreds {
            access_key_id: access_key_id.to_owned(),
            secret_access_key: secret_access_key.to_owned(),
            session_token: session_token.map(str::to_owned),
        }
    }

    fn token(&self) -> &str {
        self.session_token.as_deref().unwrap_or_default()
    }
}

/// What the AWS endpoints' threads share.
struct State {
    creds: AwsCreds,
    expiration: String,
    /// `IMDSv2` tokens handed out so far.
    tokens: Vec<String>,
}

/// The server under each AWS endpoint, handing out `creds`.
fn start(
    creds: AwsCreds,
    handler: impl Fn(&EndpointRequest, &[u8], &mut State) -> Response + Send + Sync + 'static,
) -> io::Result<Endpoint<State>> {
    let state = State {
        creds,
        expiration: FAR_EXPIRATION.to_owned(),
        tokens: Vec::new(),
    };
    Endpoint::start(state, handler)
}

/// `s` with XML's special characters escaped.
fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&apos;")
}

macro_rules! common_methods {
    () => {
        /// Every request so far, in the order they arrived, with the status each got.
        pub fn log(&self) -> Vec<EndpointRequest> {
            self.server.log()
        }

        /// Hands out `creds` from now on.
        pub fn set_creds(&self, creds: AwsCreds) {
            self.server.with(|s| s.creds = creds);
        }

        /// Gives `expiration` (RFC 3339, e.g. `2030-01-01T00:00:00Z`) from now on.
        pub fn set_expiration(&self, expiration: &str) {
            self.server.with(|s| s.expiration = expiration.to_owned());
        }
    };
}

/// The EC2 instance metadata service, `IMDSv2` only: `PUT /latest/api/token` with
/// [`IMDS_TTL_HEADER`] gives a token (400 without the header); every `GET` needs a token it
/// gave in [`IMDS_TOKEN_HEADER`] (401 otherwise);
/// `GET /latest/meta-data/iam/security-credentials/` names the role, and
/// `GET /latest/meta-data/iam/security-credentials/<role>` gives its credentials as JSON
/// (`Code`, `Type`, `AccessKeyId`, `SecretAccessKey`, `Token`, `Expiration`, …).
#[derive(Debug)]
pub struct InstanceMetadata {
    server: Endpoint<State>,
}

const IMDS_CREDENTIALS: &str = "/latest/meta-data/iam/security-credentials/";

impl InstanceMetadata {
    /// Starts the service for an instance whose role is `role`, handing out `creds`.
    pub fn start(role: &str, creds: AwsCreds) -> io::Result<InstanceMetadata> {
        let role = role.to_owned();
        let handler = move |r: &EndpointRequest, _: &[u8], s: &mut State| {
            let json = |status, body: serde_json::Value| {
                Response::new(status, "application/json", body.to_string())
            };
            if r.path == "/latest/api/token" {
                if r.method != "PUT" {
                    return Response::text(405, "");
                }
                let Some(ttl) = r.header(IMDS_TTL_HEADER) else {
                    return Response::text(400, "missing X-aws-ec2-metadata-token-ttl-seconds");
                };
                let ttl = ttl.to_owned();
                let token = format!("imds-token-{}", s.tokens.len());
                s.tokens.push(token.clone());
                return Response::text(200, token).with_header(IMDS_TTL_HEADER, ttl);
            }
            if r.method != "GET" && r.method != "HEAD" {
                return Response::text(405, "");
            }
            if !r
                .header(IMDS_TOKEN_HEADER)
                .is_some_and(|t| s.tokens.iter().any(|k| k == t))
            {
                return Response::text(401, "");
            }
            match r.path.strip_prefix(IMDS_CREDENTIALS) {
                Some("") => Response::text(200, role.clone()),
                Some(name) if name == role => json(
                    200,
                    serde_json::json!({
                        "Code": "Success",
                        "LastUpdated": "2024-01-01T00:00:00Z",
                        "Type": "AWS-HMAC",
                        "AccessKeyId": s.creds.access_key_id,
                        "SecretAccessKey": s.creds.secret_access_key,
                        "Token": s.creds.token(),
                        "Expiration": s.expiration,
                    }),
                ),
                _ => Response::text(404, ""),
            }
        };
        Ok(InstanceMetadata {
            server: start(creds, handler)?,
        })
    }

    /// Starts the service handing out `s3`'s key pair ([`S3Server::aws_creds`]).
    pub fn start_for(role: &str, s3: &S3Server) -> io::Result<InstanceMetadata> {
        Self::start(role, s3.aws_creds())
    }

    /// `http://127.0.0.1:<port>`, what `AWS_EC2_METADATA_SERVICE_ENDPOINT` takes.
    pub fn url(&self) -> String {
        self.server.origin()
    }

    common_methods!();
}

/// The container credentials endpoint (`AWS_CONTAINER_CREDENTIALS_FULL_URI` or
/// `…_RELATIVE_URI`): `GET` on any path gives JSON `AccessKeyId`, `SecretAccessKey`,
/// `Token`, `Expiration` (and `RoleArn`). With a required authorization, a request without
/// an `Authorization` header gets 401 and one with another value 403.
#[derive(Debug)]
pub struct ContainerCredentials {
    server: Endpoint<State>,
}

impl ContainerCredentials {
    /// Starts the endpoint handing out `creds`, requiring `Authorization:
    /// <required_authorization>` when it is set.
    pub fn start(
        creds: AwsCreds,
        required_authorization: Option<String>,
    ) -> io::Result<ContainerCredentials> {
        let handler = move |r: &EndpointRequest, _: &[u8], s: &mut State| {
            if r.method != "GET" {
                return Response::text(405, "");
            }
            if let Some(required) = &required_authorization {
                match r.header("authorization") {
                    None => return Response::text(401, "no Authorization header"),
                    Some(a) if a != required => {
                        return Response::text(403, "wrong Authorization header");
                    }
                    Some(_) => {}
                }
            }
            let body = serde_json::json!({
                "RoleArn": "arn:aws:iam::000000000000:role/test-support",
                "AccessKeyId": s.creds.access_key_id,
                "SecretAccessKey": s.creds.secret_access_key,
                "Token": s.creds.token(),
                "Expiration": s.expiration,
            });
            Response::new(200, "application/json", body.to_string())
        };
        Ok(ContainerCredentials {
            server: start(creds, handler)?,
        })
    }

    /// Starts the endpoint handing out `s3`'s key pair ([`S3Server::aws_creds`]).
    pub fn start_for(
        s3: &S3Server,
        required_authorization: Option<String>,
    ) -> io::Result<ContainerCredentials> {
        Self::start(s3.aws_creds(), required_authorization)
    }

    /// `http://127.0.0.1:<port>/<path>`, what `AWS_CONTAINER_CREDENTIALS_FULL_URI` takes.
    pub fn url(&self, path: &str) -> String {
        self.server.url(path)
    }

    common_methods!();
}

/// STS answering `AssumeRoleWithWebIdentity`, from a form `POST` body or the query, with the
/// XML `AssumeRoleWithWebIdentityResponse` holding the credentials. Any other action, or a
/// request without `RoleArn` or `WebIdentityToken`, gets a 400 `ErrorResponse`.
#[derive(Debug)]
pub struct Sts {
    server: Endpoint<State>,
}

impl Sts {
    /// Starts STS handing out `creds`.
    pub fn start(creds: AwsCreds) -> io::Result<Sts> {
        let handler = |r: &EndpointRequest, _: &[u8], s: &mut State| {
            let error = |code: &str, message: &str| {
                Response::new(
                    400,
                    "text/xml",
                    format!(
                        "<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><Error><Type>Sender</Type><Code>{code}</Code><Message>{message}</Message></Error><RequestId>test-support</RequestId></ErrorResponse>"
                    ),
                )
            };
            if r.param("Action") != Some("AssumeRoleWithWebIdentity") {
                return error("InvalidAction", "only AssumeRoleWithWebIdentity is served");
            }
            let (Some(role_arn), Some(_)) = (r.param("RoleArn"), r.param("WebIdentityToken"))
            else {
                return error(
                    "MissingParameter",
                    "RoleArn and WebIdentityToken are required",
                );
            };
            let session = r.param("RoleSessionName").unwrap_or("session");
            let e = |v: &str| xml_escape(v);
            Response::new(
                200,
                "text/xml",
                format!(
                    "<AssumeRoleWithWebIdentityResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">\
<AssumeRoleWithWebIdentityResult>\
<SubjectFromWebIdentityToken>test-support-subject</SubjectFromWebIdentityToken>\
<Audience>sts.amazonaws.com</Audience>\
<AssumedRoleUser><Arn>{arn}/{session}</Arn><AssumedRoleId>AROATESTSUPPORT:{session}</AssumedRoleId></AssumedRoleUser>\
<Credentials>\
<AccessKeyId>{ak}</AccessKeyId>\
<SecretAccessKey>{sk}</SecretAccessKey>\
<SessionToken>{token}</SessionToken>\
<Expiration>{expiration}</Expiration>\
</Credentials>\
<Provider>test-support</Provider>\
</AssumeRoleWithWebIdentityResult>\
<ResponseMetadata><RequestId>test-support</RequestId></ResponseMetadata>\
</AssumeRoleWithWebIdentityResponse>",
                    arn = e(role_arn),
                    session = e(session),
                    ak = e(&s.creds.access_key_id),
                    sk = e(&s.creds.secret_access_key),
                    token = e(s.creds.token()),
                    expiration = e(&s.expiration),
                ),
            )
        };
        Ok(Sts {
            server: start(creds, handler)?,
        })
    }

    /// Starts STS handing out `s3`'s key pair ([`S3Server::aws_creds`]).
    pub fn start_for(s3: &S3Server) -> io::Result<Sts> {
        Self::start(s3.aws_creds())
    }

    /// `http://127.0.0.1:<port>/`, what `AWS_ENDPOINT_URL_STS` takes.
    pub fn url(&self) -> String {
        self.server.url("")
    }

    common_methods!();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{self, Body};

    fn creds() -> AwsCreds {
        AwsCreds::new("AKIAEXAMPLE", "secret/with+chars&<xml>", Some("token=="))
    }

    fn authority(url: &str) -> String {
        url.trim_start_matches("http://")
            .split('/')
            .next()
            .unwrap_or_default()
            .to_owned()
    }

    fn json(body: &[u8]) -> io::Result<serde_json::Value> {
        serde_json::from_slice(body).map_err(io::Error::other)
    }

    #[test]
    fn instance_metadata_needs_a_token_then_names_the_role_and_its_credentials() -> io::Result<()> {
        let imds = InstanceMetadata::start("model-reader", creds())?;
        let host = authority(&imds.url());
        let no_ttl = wire::exchange(&host, "PUT", "/latest/api/token", &[], Body::Bytes(b""))?;
        assert_eq!(no_ttl.status, 400);
        let token = wire::exchange(
            &host,
            "PUT",
            "/latest/api/token",
            &[(IMDS_TTL_HEADER, "21600")],
            Body::Bytes(b""),
        )?;
        assert_eq!(token.status, 200);
        let token = String::from_utf8_lossy(&token.body).into_owned();

        let refused = wire::exchange(&host, "GET", IMDS_CREDENTIALS, &[], Body::None)?;
        assert_eq!(refused.status, 401);
        let wrong = [(IMDS_TOKEN_HEADER, "forged")];
        let refused = wire::exchange(&host, "GET", IMDS_CREDENTIALS, &wrong, Body::None)?;
        assert_eq!(refused.status, 401);

        let with = [(IMDS_TOKEN_HEADER, token.as_str())];
        let role = wire::exchange(&host, "GET", IMDS_CREDENTIALS, &with, Body::None)?;
        assert_eq!(
            (role.status, role.body.as_slice()),
            (200, &b"model-reader"[..])
        );
        let path = format!("{IMDS_CREDENTIALS}model-reader");
        let got = wire::exchange(&host, "GET", &path, &with, Body::None)?;
        assert_eq!(got.status, 200);
        let v = json(&got.body)?;
        assert_eq!(v["Code"], "Success");
        assert_eq!(v["AccessKeyId"], "AKIAEXAMPLE");
        assert_eq!(v["SecretAccessKey"], "secret/with+chars&<xml>");
        assert_eq!(v["Token"], "token==");
        assert_eq!(v["Expiration"], FAR_EXPIRATION);
        let other = format!("{IMDS_CREDENTIALS}other-role");
        assert_eq!(
            wire::exchange(&host, "GET", &other, &with, Body::None)?.status,
            404
        );

        imds.set_creds(AwsCreds::new("AKIAROTATED", "s2", None));
        imds.set_expiration("2030-01-01T00:00:00Z");
        let v = json(&wire::exchange(&host, "GET", &path, &with, Body::None)?.body)?;
        assert_eq!(
            (v["AccessKeyId"].as_str(), v["Token"].as_str()),
            (Some("AKIAROTATED"), Some(""))
        );
        assert_eq!(v["Expiration"], "2030-01-01T00:00:00Z");

        let log: Vec<_> = imds
            .log()
            .into_iter()
            .map(|r| {
                let token = r.header(IMDS_TOKEN_HEADER).is_some();
                (r.method, r.path, token, r.status)
            })
            .collect();
        let creds_path = path.as_str();
        assert_eq!(
            log.iter()
                .map(|(m, p, t, s)| (m.as_str(), p.as_str(), *t, *s))
                .collect::<Vec<_>>(),
            [
                ("PUT", "/latest/api/token", false, 400),
                ("PUT", "/latest/api/token", false, 200),
                ("GET", IMDS_CREDENTIALS, false, 401),
                ("GET", IMDS_CREDENTIALS, true, 401),
                ("GET", IMDS_CREDENTIALS, true, 200),
                ("GET", creds_path, true, 200),
                ("GET", other.as_str(), true, 404),
                ("GET", creds_path, true, 200),
            ]
        );
        Ok(())
    }

    #[test]
    fn container_credentials_check_the_authorization_when_asked() -> io::Result<()> {
        let endpoint = ContainerCredentials::start(creds(), Some("Bearer pod-token".to_owned()))?;
        let url = endpoint.url("/v1/credentials");
        let host = authority(&url);
        assert_eq!(
            wire::exchange(&host, "GET", "/v1/credentials", &[], Body::None)?.status,
            401
        );
        let wrong = [("Authorization", "Bearer other")];
        assert_eq!(
            wire::exchange(&host, "GET", "/v1/credentials", &wrong, Body::None)?.status,
            403
        );
        let right = [("Authorization", "Bearer pod-token")];
        let got = wire::exchange(&host, "GET", "/v1/credentials", &right, Body::None)?;
        assert_eq!(got.status, 200);
        let v = json(&got.body)?;
        assert_eq!(v["AccessKeyId"], "AKIAEXAMPLE");
        assert_eq!(v["SecretAccessKey"], "secret/with+chars&<xml>");
        assert_eq!(v["Token"], "token==");
        assert_eq!(v["Expiration"], FAR_EXPIRATION);
        let statuses: Vec<_> = endpoint
            .log()
            .iter()
            .map(|r| {
                (
                    r.path.clone(),
                    r.header("authorization").map(str::to_owned),
                    r.status,
                )
            })
            .collect();
        assert_eq!(
            statuses,
            [
                ("/v1/credentials".to_owned(), None, 401),
                (
                    "/v1/credentials".to_owned(),
                    Some("Bearer other".to_owned()),
                    403
                ),
                (
                    "/v1/credentials".to_owned(),
                    Some("Bearer pod-token".to_owned()),
                    200
                ),
            ]
        );

        let open = ContainerCredentials::start(creds(), None)?;
        let host = authority(&open.url("/"));
        assert_eq!(
            wire::exchange(&host, "GET", "/any/path", &[], Body::None)?.status,
            200
        );
        Ok(())
    }

    #[test]
    fn sts_answers_assume_role_with_web_identity_from_a_form_or_the_query() -> io::Result<()> {
        let sts = Sts::start(creds())?;
        let host = authority(&sts.url());
        let form = b"Action=AssumeRoleWithWebIdentity&Version=2011-06-15&RoleArn=arn%3Aaws%3Aiam%3A%3A123%3Arole%2Freader&RoleSessionName=s+1&WebIdentityToken=eyJ.jwt.sig";
        let got = wire::exchange(
            &host,
            "POST",
            "/",
            &[(
                "Content-Type",
                "application/x-www-form-urlencoded; charset=utf-8",
            )],
            Body::Bytes(form),
        )?;
        assert_eq!(got.status, 200);
        let xml = String::from_utf8_lossy(&got.body);
        for part in [
            "<AssumeRoleWithWebIdentityResponse xmlns=",
            "<AssumeRoleWithWebIdentityResult>",
            "<Credentials><AccessKeyId>AKIAEXAMPLE</AccessKeyId>",
            "<SecretAccessKey>secret/with+chars&amp;&lt;xml&gt;</SecretAccessKey>",
            "<SessionToken>token==</SessionToken>",
            "<Expiration>2099-12-31T23:59:59Z</Expiration>",
            "<Arn>arn:aws:iam::123:role/reader/s 1</Arn>",
        ] {
            assert!(xml.contains(part), "{part} in {xml}");
        }
        let query = "/?Action=AssumeRoleWithWebIdentity&RoleArn=arn&WebIdentityToken=t";
        assert_eq!(
            wire::exchange(&host, "GET", query, &[], Body::None)?.status,
            200
        );
        let missing = "/?Action=AssumeRoleWithWebIdentity&RoleArn=arn";
        let refused = wire::exchange(&host, "GET", missing, &[], Body::None)?;
        assert_eq!(refused.status, 400);
        assert!(String::from_utf8_lossy(&refused.body).contains("<Code>MissingParameter</Code>"));
        let other = wire::exchange(&host, "GET", "/?Action=AssumeRole", &[], Body::None)?;
        assert_eq!(other.status, 400);

        let log = sts.log();
        assert_eq!(log.len(), 4);
        assert_eq!(
            log[0].param("RoleArn"),
            Some("arn:aws:iam::123:role/reader")
        );
        assert_eq!(log[0].param("RoleSessionName"), Some("s 1"));
        assert_eq!(log[0].param("WebIdentityToken"), Some("eyJ.jwt.sig"));
        assert_eq!(log[1].param("WebIdentityToken"), Some("t"));
        assert_eq!(
            log.iter().map(|r| r.status).collect::<Vec<_>>(),
            [200, 200, 400, 400]
        );
        Ok(())
    }

    /// Credentials fetched from the instance metadata service sign requests the S3 server
    /// takes, session token and all.
    #[test]
    fn credentials_from_instance_metadata_work_against_the_s3_server() -> io::Result<()> {
        let s3 = S3Server::start()?;
        s3.put("models", "tiny.gguf", b"GGUF tiny")?;
        let imds = InstanceMetadata::start_for("reader", &s3)?;
        let host = authority(&imds.url());
        let token = wire::exchange(
            &host,
            "PUT",
            "/latest/api/token",
            &[(IMDS_TTL_HEADER, "60")],
            Body::Bytes(b""),
        )?;
        let token = String::from_utf8_lossy(&token.body).into_owned();
        let path = format!("{IMDS_CREDENTIALS}reader");
        let got = wire::exchange(
            &host,
            "GET",
            &path,
            &[(IMDS_TOKEN_HEADER, &token)],
            Body::None,
        )?;
        let v = json(&got.body)?;
        let field = |name: &str| v[name].as_str().unwrap_or_default().to_owned();
        let creds = rusty_s3::Credentials::new_with_token(
            field("AccessKeyId"),
            field("SecretAccessKey"),
            field("Token"),
        );
        assert_eq!(creds.token(), Some(crate::S3_SESSION_TOKEN));
        let url = crate::presign_with(&s3.bucket("models"), &creds, "GET", "tiny.gguf", &[]);
        let object = s3.request("GET", &url, &[], &[])?;
        assert_eq!(
            (object.status, object.body.as_slice()),
            (200, &b"GGUF tiny"[..])
        );
        Ok(())
    }
}
