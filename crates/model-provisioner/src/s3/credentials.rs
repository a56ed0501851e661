//! The AWS configuration and credential chain, read the way the AWS SDKs read them.
//!
//! [`S3Config::from_env`] settles where requests go; [`resolve`] finds what signs them,
//! trying each source in the SDKs' order and stopping at the first that holds credentials:
//!
//! ```text
//! 1. environment        AWS_ACCESS_KEY_ID + AWS_SECRET_ACCESS_KEY (+ AWS_SESSION_TOKEN)
//! 2. shared files       profile AWS_PROFILE (else `default`) in
//!                       $AWS_SHARED_CREDENTIALS_FILE (else ~/.aws/credentials)   [name]
//!                       $AWS_CONFIG_FILE             (else ~/.aws/config)        [profile name], [default]
//!                       ├── aws_access_key_id + aws_secret_access_key (+ aws_session_token)
//!                       ├── credential_process = <command>   prints {"Version": 1, …}
//!                       └── web_identity_token_file + role_arn   as in 3
//! 3. web identity       AWS_WEB_IDENTITY_TOKEN_FILE + AWS_ROLE_ARN (+ AWS_ROLE_SESSION_NAME)
//!                       POST Action=AssumeRoleWithWebIdentity to STS
//! 4. container          AWS_CONTAINER_CREDENTIALS_RELATIVE_URI (on http://169.254.170.2)
//!                       or AWS_CONTAINER_CREDENTIALS_FULL_URI, with
//!                       AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE or _TOKEN as `Authorization`
//! 5. instance metadata  IMDSv2 at http://169.254.169.254 (AWS_EC2_METADATA_SERVICE_ENDPOINT),
//!                       unless AWS_EC2_METADATA_DISABLED=true; 1 s to answer the token request
//! ```
//!
//! A public bucket needs none of it: [`S3Config::no_sign_request`] makes [`resolve`] answer
//! `None` without looking.
//!
//! When a profile holds both keys and a `credential_process`, the keys are used, as the AWS
//! CLI and the Go SDK do. Profiles that assume a role (`role_arn` with `source_profile` or
//! `credential_source`) or use SSO are refused with an error rather than skipped, so that
//! another source's credentials are never used in their place.
//!
//! The environment is passed in as a function, never read from the process, so that tests can
//! run in parallel. Secrets are [`Secret`]s; no message or `Debug` output holds one, nor the
//! output of a `credential_process`, nor a container credentials path (it identifies the
//! task's credentials).

use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reqwest::StatusCode;
use reqwest::header::{self, HeaderValue};
use serde::Deserialize;
use url::Url;

use crate::error::printable;
pub use crate::secret::Secret;

/// The profile used when `AWS_PROFILE` is not set.
pub const DEFAULT_PROFILE: &str = "default";

/// The region used when nothing names one.
pub const DEFAULT_REGION: &str = "us-east-1";

/// Where the ECS and EKS agents serve `AWS_CONTAINER_CREDENTIALS_RELATIVE_URI`.
const CONTAINER_HOST: &str = "http://169.254.170.2";

/// The instance metadata service, over IPv4 and over IPv6.
const IMDS_ENDPOINT: &str = "http://169.254.169.254";
const IMDS_IPV6_ENDPOINT: &str = "http://[fd00:ec2::254]";

/// The life asked for an `IMDSv2` session token: six hours, the SDKs' value.
const IMDS_TOKEN_TTL: &str = "21600";

/// How long the instance metadata service has to answer the token request. It answers in
/// milliseconds where it exists; elsewhere this is what every run without credentials pays.
const IMDS_PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// How long STS, a container agent or the metadata service (once found) has to answer.
const SERVICE_TIMEOUT: Duration = Duration::from_secs(5);

/// Credentials with less than this left are renewed before use (the SDKs' margin).
const EXPIRY_MARGIN: Duration = Duration::from_secs(5 * 60);

/// A variable's value; empty counts as unset, as in the SDKs.
fn var(env: &dyn Fn(&str) -> Option<String>, name: &str) -> Option<String> {
    env(name).filter(|v| !v.trim().is_empty())
}

/// Whether a variable is `true` (in any case).
fn is_true(env: &dyn Fn(&str) -> Option<String>, name: &str) -> bool {
    var(env, name).is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
}

/// How buckets are addressed: `https://endpoint/bucket/key` or `https://bucket.endpoint/key`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AddressingStyle {
    /// Path style for a custom endpoint, virtual-host style for AWS.
    #[default]
    Auto,
    /// Always `endpoint/bucket/key`.
    Path,
    /// Always `bucket.endpoint/key`.
    Virtual,
}

impl FromStr for AddressingStyle {
    type Err = CredentialError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(AddressingStyle::Auto),
            "path" => Ok(AddressingStyle::Path),
            "virtual" => Ok(AddressingStyle::Virtual),
            _ => Err(CredentialError::InvalidSetting {
                setting: "the addressing style".into(),
                value: Some(printable(s)),
                expected: "`path`, `virtual` or `auto`",
            }),
        }
    }
}

impl fmt::Display for AddressingStyle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AddressingStyle::Auto => "auto",
            AddressingStyle::Path => "path",
            AddressingStyle::Virtual => "virtual",
        })
    }
}

/// Where S3 requests go and how, as the AWS SDKs work it out from the environment and the
/// shared config files.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct S3Config {
    /// A custom endpoint (`MinIO`, R2, a local server); `None` for AWS itself.
    pub endpoint: Option<Url>,
    /// The region requests are signed for.
    pub region: String,
    /// Whether buckets go in the path (`endpoint/bucket/key`) rather than the host name; follows
    /// from [`S3Config::addressing_style`] and the endpoint.
    pub path_style: bool,
    /// The addressing style asked for (the profile's `s3.addressing_style`, or an option).
    pub addressing_style: AddressingStyle,
    /// A PEM file of extra root certificates for the HTTP client (`AWS_CA_BUNDLE`).
    pub ca_bundle: Option<PathBuf>,
    /// The shared-config profile credentials and settings are read from.
    pub profile: String,
    /// Send requests unsigned, for public buckets (the AWS CLI's `--no-sign-request`).
    pub no_sign_request: bool,
}

impl Default for S3Config {
    /// AWS in `us-east-1`, the `default` profile, virtual-host addressing.
    fn default() -> Self {
        S3Config {
            endpoint: None,
            region: DEFAULT_REGION.to_owned(),
            path_style: false,
            addressing_style: AddressingStyle::Auto,
            ca_bundle: None,
            profile: DEFAULT_PROFILE.to_owned(),
            no_sign_request: false,
        }
    }
}

impl S3Config {
    /// The configuration the AWS SDKs would use, from `env` and the shared files it names:
    ///
    /// - profile: `AWS_PROFILE`, else `default`; a profile named there that neither file has
    ///   is an error;
    /// - endpoint: `AWS_ENDPOINT_URL_S3`, `AWS_ENDPOINT_URL`, the `s3 = endpoint_url` of the
    ///   profile's `services` section, the profile's nested `s3 = endpoint_url`, the profile's
    ///   `endpoint_url`; none when `AWS_IGNORE_CONFIGURED_ENDPOINT_URLS=true` or the profile's
    ///   `ignore_configured_endpoint_urls = true`;
    /// - region: `AWS_REGION`, `AWS_DEFAULT_REGION`, the profile's `region`, else `us-east-1`;
    /// - addressing style: the profile's `s3 = addressing_style`, else `auto` (path style for
    ///   a custom endpoint, virtual-host style for AWS);
    /// - extra roots: `AWS_CA_BUNDLE`, else the profile's `ca_bundle`.
    pub fn from_env(env: &dyn Fn(&str) -> Option<String>) -> Result<Self, CredentialError> {
        let files = SharedFiles::locate(env);
        let parsed = files.read()?;
        let profile = var(env, "AWS_PROFILE")
            .map_or_else(|| DEFAULT_PROFILE.to_owned(), |p| p.trim().to_owned());
        let props = parsed.profile(&profile);
        if props.is_none() && profile != DEFAULT_PROFILE {
            return Err(CredentialError::ProfileNotFound {
                profile: printable(&profile),
                files: files.describe(),
            });
        }
        let props = props.unwrap_or_default();
        let in_profile = |key: &str| props.get(key).filter(|v| !v.is_empty());
        let setting = |key: &str| format!("`{key}` in profile `{}`", printable(&profile));

        let ignore_endpoints = is_true(env, "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS")
            || in_profile("ignore_configured_endpoint_urls")
                .is_some_and(|v| v.eq_ignore_ascii_case("true"));
        let mut endpoint = None;
        if !ignore_endpoints {
            let services = in_profile("services")
                .and_then(|name| Some((name, parsed.services(name)?.remove("s3.endpoint_url")?)))
                .filter(|(_, v)| !v.is_empty())
                .map(|(name, v)| {
                    (
                        v,
                        format!("`s3.endpoint_url` in `[services {}]`", printable(name)),
                    )
                });
            let candidates = [
                var(env, "AWS_ENDPOINT_URL_S3").map(|v| (v, "`AWS_ENDPOINT_URL_S3`".to_owned())),
                var(env, "AWS_ENDPOINT_URL").map(|v| (v, "`AWS_ENDPOINT_URL`".to_owned())),
                services,
                in_profile("s3.endpoint_url").map(|v| (v.clone(), setting("s3.endpoint_url"))),
                in_profile("endpoint_url").map(|v| (v.clone(), setting("endpoint_url"))),
            ];
            if let Some((value, name)) = candidates.into_iter().flatten().next() {
                endpoint = Some(parse_endpoint(&value, name)?);
            }
        }

        let region = var(env, "AWS_REGION")
            .or_else(|| var(env, "AWS_DEFAULT_REGION"))
            .or_else(|| in_profile("region").cloned())
            .map_or_else(|| DEFAULT_REGION.to_owned(), |r| r.trim().to_owned());

        let addressing_style = match in_profile("s3.addressing_style") {
            Some(style) => style.parse().map_err(|_| CredentialError::InvalidSetting {
                setting: setting("s3.addressing_style"),
                value: Some(printable(style)),
                expected: "`path`, `virtual` or `auto`",
            })?,
            None => AddressingStyle::Auto,
        };

        let ca_bundle = var(env, "AWS_CA_BUNDLE")
            .or_else(|| in_profile("ca_bundle").cloned())
            .map(|p| files.expand(p.trim()));

        Ok(S3Config {
            path_style: path_style(addressing_style, endpoint.as_ref()),
            endpoint,
            region,
            addressing_style,
            ca_bundle,
            profile,
            no_sign_request: false,
        })
    }

    /// This configuration with `endpoint` (e.g. from `--endpoint-url`), path style following
    /// from it unless a style was asked for.
    #[must_use]
    pub fn with_endpoint(mut self, endpoint: Url) -> Self {
        self.path_style = path_style(self.addressing_style, Some(&endpoint));
        self.endpoint = Some(endpoint);
        self
    }

    /// This configuration with the addressing style `style` (e.g. from an option).
    #[must_use]
    pub fn with_addressing_style(mut self, style: AddressingStyle) -> Self {
        self.addressing_style = style;
        self.path_style = path_style(style, self.endpoint.as_ref());
        self
    }

    /// This configuration with requests sent unsigned (or not).
    #[must_use]
    pub fn with_no_sign_request(mut self, no_sign_request: bool) -> Self {
        self.no_sign_request = no_sign_request;
        self
    }
}

/// Path style for `style`: `auto` means path style for a custom endpoint, where buckets are
/// rarely in DNS, and virtual-host style for AWS, which is deprecating path style.
fn path_style(style: AddressingStyle, endpoint: Option<&Url>) -> bool {
    match style {
        AddressingStyle::Path => true,
        AddressingStyle::Virtual => false,
        AddressingStyle::Auto => endpoint.is_some(),
    }
}

/// An `http(s)` URL with a host, from the setting `name`.
fn parse_endpoint(value: &str, name: String) -> Result<Url, CredentialError> {
    Url::parse(value.trim())
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some())
        .ok_or_else(|| CredentialError::InvalidSetting {
            setting: name,
            value: Some(printable(value)),
            expected: "an http(s) URL",
        })
}

/// `scheme://host[:port]` of `url`: what messages show of an endpoint (a path or query may
/// identify credentials).
fn origin(url: &Url) -> String {
    url.origin().ascii_serialization()
}

/// Credentials to sign requests with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsCredentials {
    /// The access key id, which AWS does not treat as secret.
    pub access_key_id: String,
    /// The secret access key.
    pub secret_access_key: Secret,
    /// The session token of temporary credentials.
    pub session_token: Option<Secret>,
    /// When temporary credentials stop working; `None` for long-term keys.
    pub expires_at: Option<SystemTime>,
}

impl AwsCredentials {
    /// True when these credentials expire in less than five minutes (or have expired): resolve
    /// them again before signing.
    pub fn is_expiring(&self, now: SystemTime) -> bool {
        self.expires_at.is_some_and(|at| {
            at.duration_since(now)
                .map_or(true, |left| left < EXPIRY_MARGIN)
        })
    }

    /// The credentials in the form `rusty-s3` signs with.
    pub fn signing(&self) -> rusty_s3::Credentials {
        let (key, secret) = (
            self.access_key_id.clone(),
            self.secret_access_key.expose().to_owned(),
        );
        match &self.session_token {
            Some(token) => rusty_s3::Credentials::new_with_token(key, secret, token.expose()),
            None => rusty_s3::Credentials::new(key, secret),
        }
    }

    /// Checks that the keys are not empty, then builds the credentials.
    fn new(
        access_key_id: &str,
        secret_access_key: &str,
        session_token: Option<&str>,
        expires_at: Option<SystemTime>,
    ) -> Option<Self> {
        let (access_key_id, secret_access_key) = (access_key_id.trim(), secret_access_key.trim());
        if access_key_id.is_empty() || secret_access_key.is_empty() {
            return None;
        }
        Some(AwsCredentials {
            access_key_id: access_key_id.to_owned(),
            secret_access_key: Secret::new(secret_access_key.to_owned()),
            session_token: session_token
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .map(|t| Secret::new(t.to_owned())),
            expires_at,
        })
    }
}

/// Where credentials came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY`.
    Environment,
    /// Keys in this profile of the shared files.
    Profile(String),
    /// The `credential_process` of this profile.
    CredentialProcess(String),
    /// `AssumeRoleWithWebIdentity` at STS.
    WebIdentity,
    /// The ECS or EKS container credentials endpoint.
    Container,
    /// The EC2 instance metadata service.
    InstanceMetadata,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Environment => f.write_str("the environment"),
            Source::Profile(p) => write!(f, "profile `{}`", printable(p)),
            Source::CredentialProcess(p) => {
                write!(f, "the `credential_process` of profile `{}`", printable(p))
            }
            Source::WebIdentity => f.write_str("web identity (STS)"),
            Source::Container => f.write_str("the container credentials endpoint"),
            Source::InstanceMetadata => f.write_str("the instance metadata service"),
        }
    }
}

/// One source that gave nothing, and why, for [`CredentialError::NotFound`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tried {
    /// The source: `environment`, `shared files`, `web identity`, `container`,
    /// `instance metadata`.
    pub source: &'static str,
    /// Why it gave nothing, in a phrase.
    pub reason: String,
}

impl fmt::Display for Tried {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.source, self.reason)
    }
}

/// Credentials or configuration could not be had.
#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    /// No source holds credentials.
    #[error("no AWS credentials found ({})", tried.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    NotFound {
        /// Every source tried, in order, and why it gave nothing.
        tried: Vec<Tried>,
    },
    /// The profile asked for is in neither shared file.
    #[error("there is no profile `{profile}` in {files}")]
    ProfileNotFound {
        /// The profile.
        profile: String,
        /// The files searched, as shown to the user.
        files: String,
    },
    /// The profile has one of its keys but not the other.
    #[error("profile `{profile}` sets `{present}` but not `{missing}`")]
    ProfileIncomplete {
        /// The profile.
        profile: String,
        /// The key it sets.
        present: &'static str,
        /// The key it lacks.
        missing: &'static str,
    },
    /// The profile gets credentials in a way this crate does not implement.
    #[error("profile `{profile}` uses `{setting}`, which is not supported")]
    ProfileUnsupported {
        /// The profile.
        profile: String,
        /// The setting: `role_arn`, `sso_session`, `sso_start_url`, `credential_source`.
        setting: &'static str,
    },
    /// A file exists but could not be read.
    #[error("failed to read {what} `{}`", path.display())]
    FileRead {
        /// What the file is.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// A setting does not have a value of the kind it needs.
    #[error("{setting} is not {expected}{}", value.as_ref().map(|v| format!(" (it is `{v}`)")).unwrap_or_default())]
    InvalidSetting {
        /// The variable or profile setting, as shown to the user.
        setting: String,
        /// Its value, made printable; `None` when it is secret.
        value: Option<String>,
        /// What it should be.
        expected: &'static str,
    },
    /// A profile's `credential_process` could not be run, or failed. Its output is not shown:
    /// it may hold secrets.
    #[error("the `credential_process` of profile `{profile}` failed ({status})")]
    CredentialProcessFailed {
        /// The profile.
        profile: String,
        /// Its exit status, or what went wrong starting it.
        status: String,
        /// The cause, when starting it failed.
        #[source]
        source: Option<io::Error>,
    },
    /// A profile's `credential_process` succeeded but printed no usable credentials.
    #[error(
        "the `credential_process` of profile `{profile}` printed no usable credentials: {reason}"
    )]
    CredentialProcessOutput {
        /// The profile.
        profile: String,
        /// What is wrong with the output, without quoting it.
        reason: &'static str,
    },
    /// STS, the container endpoint or the metadata service answered with an error status.
    #[error("{from} at `{endpoint}` answered HTTP {status}{}", code.as_ref().map(|c| format!(" (`{c}`)")).unwrap_or_default())]
    ServiceRefused {
        /// Which service.
        from: Source,
        /// Its `scheme://host[:port]`.
        endpoint: String,
        /// The status.
        status: u16,
        /// STS's or the metadata service's error code, when it gave one.
        code: Option<String>,
    },
    /// STS, the container endpoint or the metadata service could not be reached, or did not
    /// answer in time.
    #[error("could not get credentials from {from} at `{endpoint}`")]
    ServiceUnreachable {
        /// Which service.
        from: Source,
        /// Its `scheme://host[:port]`.
        endpoint: String,
        /// The cause, without its URL.
        #[source]
        source: reqwest::Error,
    },
    /// STS, the container endpoint or the metadata service answered, but not with credentials.
    #[error("{from} at `{endpoint}` answered with no usable credentials: {reason}")]
    ServiceAnswer {
        /// Which service.
        from: Source,
        /// Its `scheme://host[:port]`.
        endpoint: String,
        /// What is wrong with the answer, without quoting secrets.
        reason: String,
    },
}

impl CredentialError {
    /// What the user can do about it.
    pub fn hint(&self) -> String {
        match self {
            CredentialError::NotFound { .. } => "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE, or pass --no-sign-request for a public bucket".into(),
            CredentialError::ProfileNotFound { profile, .. } => format!(
                "add `[profile {profile}]` to the config file or `[{profile}]` to the credentials file, or set AWS_PROFILE to a profile that exists"
            ),
            CredentialError::ProfileIncomplete { missing, .. } => {
                format!("add `{missing}` to the profile, or remove the key it goes with")
            }
            CredentialError::ProfileUnsupported { profile, .. } => format!(
                "export the profile's credentials with `aws configure export-credentials --profile {profile} --format env` and run again"
            ),
            CredentialError::FileRead { .. } => {
                "check that the file exists and is readable, or point the variable naming it elsewhere".into()
            }
            CredentialError::InvalidSetting { setting, .. } => format!("fix {setting}"),
            CredentialError::CredentialProcessFailed { .. } => {
                "run the profile's `credential_process` command by hand to see what it says".into()
            }
            CredentialError::CredentialProcessOutput { .. } => {
                "the command must print `{\"Version\": 1, \"AccessKeyId\": …, \"SecretAccessKey\": …}`, with `SessionToken` and `Expiration` for temporary credentials".into()
            }
            _ if self.is_transient() => {
                "the credentials service may be busy or starting: run the same command again".into()
            }
            CredentialError::ServiceRefused { from: Source::WebIdentity, .. }
            | CredentialError::ServiceAnswer { from: Source::WebIdentity, .. } => {
                "check AWS_ROLE_ARN, and that the role trusts the identity provider that issued the token in AWS_WEB_IDENTITY_TOKEN_FILE".into()
            }
            CredentialError::ServiceRefused { from: Source::Container, .. } => {
                "check AWS_CONTAINER_AUTHORIZATION_TOKEN or AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE".into()
            }
            CredentialError::ServiceRefused { from: Source::InstanceMetadata, .. }
            | CredentialError::ServiceAnswer { from: Source::InstanceMetadata, .. } => {
                "check the IAM role attached to the instance, or set AWS_EC2_METADATA_DISABLED=true and give credentials another way".into()
            }
            CredentialError::ServiceRefused { .. }
            | CredentialError::ServiceAnswer { .. }
            | CredentialError::ServiceUnreachable { .. } => {
                "check the endpoint and the network (proxy settings included)".into()
            }
        }
    }

    /// Whether resolving again may help: a timeout or failed connection to a service that was
    /// named, `5xx` or `429`.
    pub fn is_transient(&self) -> bool {
        match self {
            CredentialError::ServiceRefused { status, .. } => {
                *status >= 500 || *status == StatusCode::TOO_MANY_REQUESTS.as_u16()
            }
            CredentialError::ServiceUnreachable { source, .. } => {
                source.is_timeout() || source.is_connect() || source.is_body()
            }
            _ => false,
        }
    }
}

/// What one source gave.
enum Outcome {
    Found(AwsCredentials, Source),
    /// Nothing, for this reason.
    Absent(String),
}

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
async fn run_credential_process(
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

/// An `AssumeRoleWithWebIdentity` request.
struct WebIdentity {
    token_file: PathBuf,
    role_arn: String,
    session_name: Option<String>,
}

/// 3. `AWS_WEB_IDENTITY_TOKEN_FILE` + `AWS_ROLE_ARN` (+ `AWS_ROLE_SESSION_NAME`).
async fn from_web_identity_env(
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
    async fn assume(
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

/// A token from a file, trimmed. The file is named in errors, never its content.
fn read_token_file(path: &Path, what: &'static str) -> Result<Secret, CredentialError> {
    let token = std::fs::read_to_string(path).map_err(|source| CredentialError::FileRead {
        what,
        path: path.to_owned(),
        source,
    })?;
    Ok(Secret::new(token.trim().to_owned()))
}

/// What the container endpoint and the metadata service answer.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ServiceAnswer {
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    access_key_id: String,
    #[serde(default)]
    secret_access_key: String,
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    expiration: Option<String>,
}

impl ServiceAnswer {
    /// The credentials in `body`, from `from` at `endpoint`.
    fn parse(body: &str, from: &Source, endpoint: &str) -> Result<AwsCredentials, CredentialError> {
        let bad = |reason: String| CredentialError::ServiceAnswer {
            from: from.clone(),
            endpoint: endpoint.to_owned(),
            reason,
        };
        let answer: ServiceAnswer = serde_json::from_str(body).map_err(|_| {
            bad("it is not the JSON `{\"AccessKeyId\", \"SecretAccessKey\", \"Token\", \"Expiration\"}`".into())
        })?;
        if let Some(code) = answer.code.as_deref()
            && code != "Success"
        {
            let code = error_code(code).unwrap_or_else(|| "?".into());
            return Err(bad(format!("its `Code` is `{code}`")));
        }
        let expires_at = match answer.expiration.as_deref() {
            Some(time) => Some(
                parse_time(time)
                    .ok_or_else(|| bad("its `Expiration` is not an RFC 3339 time".into()))?,
            ),
            None => None,
        };
        AwsCredentials::new(
            &answer.access_key_id,
            &answer.secret_access_key,
            answer.token.as_deref(),
            expires_at,
        )
        .ok_or_else(|| bad("no `AccessKeyId` or `SecretAccessKey`".into()))
    }
}

/// 4. The container credentials endpoint, when the agent names one.
async fn from_container(
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

/// 5. `IMDSv2`: a session token, the role's name, the role's credentials.
async fn from_instance_metadata(
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
    let response = client
        .put(url)
        .header("x-aws-ec2-metadata-token-ttl-seconds", IMDS_TOKEN_TTL)
        .timeout(IMDS_PROBE_TIMEOUT)
        .send()
        .await
        .map_err(|_| {
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

/// Sends `request` within `timeout`; the status and the body as text.
async fn send(
    request: reqwest::RequestBuilder,
    from: Source,
    endpoint: &str,
    timeout: Duration,
) -> Result<(StatusCode, String), CredentialError> {
    let unreachable = |source: reqwest::Error| CredentialError::ServiceUnreachable {
        from: from.clone(),
        endpoint: endpoint.to_owned(),
        source: source.without_url(),
    };
    let response = request.timeout(timeout).send().await.map_err(unreachable)?;
    let status = response.status();
    let body = response.text().await.map_err(unreachable)?;
    Ok((status, body))
}

/// An RFC 3339 time (`2024-05-01T12:00:00Z`), as STS, IMDS and `credential_process` write it.
fn parse_time(text: &str) -> Option<SystemTime> {
    text.trim()
        .parse::<jiff::Timestamp>()
        .ok()
        .map(SystemTime::from)
}

/// An error code fit to show: a short identifier.
fn error_code(code: &str) -> Option<String> {
    let code = code.trim();
    (!code.is_empty()
        && code.len() <= 64
        && code
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-'))
    .then(|| code.to_owned())
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

/// Properties of one section, keys lowercased; a nested `s3 =` block's keys as `s3.<key>`.
type Props = BTreeMap<String, String>;

/// The shared credentials and config files, where `env` puts them.
#[derive(Debug)]
struct SharedFiles {
    credentials: Option<PathBuf>,
    config: Option<PathBuf>,
    home: Option<PathBuf>,
}

/// The sections of both shared files.
#[derive(Debug, Default)]
struct ParsedFiles {
    config: Vec<Section>,
    credentials: Vec<Section>,
}

/// One `[header]` and its properties.
#[derive(Debug)]
struct Section {
    header: String,
    props: Props,
}

impl SharedFiles {
    fn locate(env: &dyn Fn(&str) -> Option<String>) -> Self {
        let home = var(env, "HOME")
            .or_else(|| var(env, "USERPROFILE"))
            .map(PathBuf::from);
        let mut files = SharedFiles {
            credentials: None,
            config: None,
            home,
        };
        let at = |name: &str, default: &str, files: &SharedFiles| match var(env, name) {
            Some(path) => Some(files.expand(&path)),
            None => files.home.as_ref().map(|h| h.join(".aws").join(default)),
        };
        files.credentials = at("AWS_SHARED_CREDENTIALS_FILE", "credentials", &files);
        files.config = at("AWS_CONFIG_FILE", "config", &files);
        files
    }

    /// `path` with a leading `~` for the home directory.
    fn expand(&self, path: &str) -> PathBuf {
        match (path.strip_prefix('~'), &self.home) {
            (Some(rest), Some(home)) if rest.is_empty() || rest.starts_with(['/', '\\']) => {
                home.join(rest.trim_start_matches(['/', '\\']))
            }
            _ => PathBuf::from(path),
        }
    }

    /// `path` with the home directory written `~`.
    fn show(&self, path: &Path) -> String {
        match self.home.as_deref().and_then(|h| path.strip_prefix(h).ok()) {
            Some(rest) => format!("~/{}", rest.display()),
            None => path.display().to_string(),
        }
    }

    /// "`~/.aws/credentials` or `~/.aws/config`".
    fn describe(&self) -> String {
        let shown: Vec<String> = [&self.credentials, &self.config]
            .into_iter()
            .flatten()
            .map(|p| format!("`{}`", self.show(p)))
            .collect();
        if shown.is_empty() {
            "the shared files (neither `HOME` nor `AWS_CONFIG_FILE` is set)".into()
        } else {
            shown.join(" or ")
        }
    }

    fn read(&self) -> Result<ParsedFiles, CredentialError> {
        let read = |path: &Option<PathBuf>, what| -> Result<Vec<Section>, CredentialError> {
            let Some(path) = path else {
                return Ok(Vec::new());
            };
            match std::fs::read(path) {
                Ok(bytes) => Ok(parse_ini(&String::from_utf8_lossy(&bytes))),
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
                Err(source) => Err(CredentialError::FileRead {
                    what,
                    path: path.clone(),
                    source,
                }),
            }
        };
        Ok(ParsedFiles {
            config: read(&self.config, "the AWS config file")?,
            credentials: read(&self.credentials, "the AWS shared credentials file")?,
        })
    }
}

impl ParsedFiles {
    /// Profile `name`: its `[profile name]` sections in the config file (`[default]` for the
    /// default profile, unless `[profile default]` exists), then its `[name]` sections in the
    /// credentials file, which win. `None` when neither file has it.
    fn profile(&self, name: &str) -> Option<Props> {
        let prefixed: Vec<&Section> = self
            .config
            .iter()
            .filter(|s| prefixed_name(&s.header, "profile") == Some(name))
            .collect();
        let config = if prefixed.is_empty() && name == DEFAULT_PROFILE {
            self.config
                .iter()
                .filter(|s| s.header == DEFAULT_PROFILE)
                .collect()
        } else {
            prefixed
        };
        // In the credentials file the header is the name itself: `[profile x]` names nothing.
        let credentials = self
            .credentials
            .iter()
            .filter(|s| s.header == name && !s.header.contains(char::is_whitespace));
        let mut found = false;
        let mut props = Props::new();
        for section in config.into_iter().chain(credentials) {
            found = true;
            props.extend(section.props.clone());
        }
        found.then_some(props)
    }

    /// The config file's `[services name]` section.
    fn services(&self, name: &str) -> Option<Props> {
        let mut found = None;
        for section in &self.config {
            if prefixed_name(&section.header, "services") == Some(name) {
                found
                    .get_or_insert_with(Props::new)
                    .extend(section.props.clone());
            }
        }
        found
    }
}

/// `x` for a header `<kind> x` (any whitespace between).
fn prefixed_name<'a>(header: &'a str, kind: &str) -> Option<&'a str> {
    let rest = header.strip_prefix(kind)?;
    rest.starts_with([' ', '\t']).then(|| rest.trim())
}

/// The sections of an AWS shared file: `[header]` lines; `key = value` properties; a property
/// with an empty value followed by indented `key = value` lines (`s3 =\n  addressing_style =
/// path`) stored as `s3.addressing_style`; other indented lines continue the previous value;
/// `#` and `;` start a comment at the start of a line, and after whitespace in a value.
/// Properties before the first header, and lines that are none of these, are ignored.
fn parse_ini(text: &str) -> Vec<Section> {
    let mut sections: Vec<Section> = Vec::new();
    // The property whose value is empty (sub-properties follow) or the last one (continued).
    let mut parent: Option<String> = None;
    let mut last: Option<String> = None;
    let mut in_section = false;
    for raw in text.lines() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with(['#', ';']) {
            continue;
        }
        let indented = raw.starts_with([' ', '\t']);
        if line.starts_with('[') && !indented {
            parent = None;
            last = None;
            in_section = match line.find(']') {
                Some(end) => {
                    sections.push(Section {
                        header: line[1..end].trim().to_owned(),
                        props: Props::new(),
                    });
                    true
                }
                None => false,
            };
            continue;
        }
        let Some(section) = sections.last_mut().filter(|_| in_section) else {
            continue;
        };
        if indented {
            if let Some(parent) = &parent {
                if let Some((key, value)) = split_property(line) {
                    section.props.insert(format!("{parent}.{key}"), value);
                }
                continue;
            }
            if let Some(last) = &last {
                if let Some(value) = section.props.get_mut(last) {
                    value.push('\n');
                    value.push_str(&strip_comment(line));
                }
                continue;
            }
        }
        let Some((key, value)) = split_property(line) else {
            continue;
        };
        if value.is_empty() {
            parent = Some(key.clone());
            last = None;
        } else {
            parent = None;
            last = Some(key.clone());
        }
        section.props.insert(key, value);
    }
    sections
}

/// `key = value`, the key lowercased, the value without its comment.
fn split_property(line: &str) -> Option<(String, String)> {
    let (key, value) = line.split_once('=')?;
    let key = key.trim().to_ascii_lowercase();
    (!key.is_empty()).then(|| (key, strip_comment(value)))
}

/// `value` up to a `#` or `;` that follows whitespace, trimmed.
fn strip_comment(value: &str) -> String {
    let mut previous_blank = false;
    for (at, c) in value.char_indices() {
        if previous_blank && (c == '#' || c == ';') {
            return value[..at].trim().to_owned();
        }
        previous_blank = c.is_whitespace();
    }
    value.trim().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::block_on;

    use std::net::TcpListener;
    use std::thread::JoinHandle;

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    /// A home directory with `.aws` files and scripts, and the environment that points at it.
    /// The instance metadata service is off unless a test turns it on.
    struct Home {
        dir: tempfile::TempDir,
        vars: BTreeMap<String, String>,
    }

    impl Home {
        fn new() -> io::Result<Self> {
            let dir = tempfile::tempdir()?;
            std::fs::create_dir_all(dir.path().join(".aws"))?;
            std::fs::create_dir_all(dir.path().join("bin"))?;
            let mut vars = BTreeMap::new();
            vars.insert("HOME".into(), dir.path().display().to_string());
            vars.insert(
                "PATH".into(),
                format!("{}:/usr/bin:/bin", dir.path().join("bin").display()),
            );
            vars.insert("AWS_EC2_METADATA_DISABLED".into(), "true".into());
            Ok(Home { dir, vars })
        }

        fn set(mut self, name: &str, value: &str) -> Self {
            self.vars.insert(name.into(), value.into());
            self
        }

        fn unset(mut self, name: &str) -> Self {
            self.vars.remove(name);
            self
        }

        /// Writes `contents` at `relative` under the home directory.
        fn file(&self, relative: &str, contents: &str) -> io::Result<PathBuf> {
            let path = self.dir.path().join(relative);
            std::fs::write(&path, contents)?;
            Ok(path)
        }

        #[cfg(unix)]
        fn script(&self, name: &str, body: &str) -> io::Result<()> {
            use std::os::unix::fs::PermissionsExt as _;
            let path = self.file(&format!("bin/{name}"), &format!("#!/bin/sh\n{body}\n"))?;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
        }

        fn env(&self) -> impl Fn(&str) -> Option<String> + Sync + use<> {
            let vars = self.vars.clone();
            move |name| vars.get(name).cloned()
        }

        fn config(&self) -> Result<S3Config, CredentialError> {
            S3Config::from_env(&self.env())
        }

        /// The configuration with one more variable set.
        fn config_with(&self, name: &str, value: &str) -> Result<S3Config, CredentialError> {
            let env = self.env();
            let (name, value) = (name.to_owned(), value.to_owned());
            S3Config::from_env(&move |n| {
                if n == name {
                    Some(value.clone())
                } else {
                    env(n)
                }
            })
        }

        fn resolve(&self) -> Result<Option<(AwsCredentials, Source)>, CredentialError> {
            let config = self.config()?;
            block_on(resolve(&reqwest::Client::new(), &config, &self.env()))
        }
    }

    /// Serves one canned answer per connection, in order; see [`test_support::serve_canned`].
    fn serve(
        answers: Vec<(&'static str, String)>,
    ) -> io::Result<(String, JoinHandle<Vec<String>>)> {
        test_support::serve_canned(None, answers)
    }

    fn creds(found: Option<(AwsCredentials, Source)>) -> (AwsCredentials, Source) {
        found.expect("credentials")
    }

    fn at(rfc3339: &str) -> SystemTime {
        parse_time(rfc3339).expect("a time")
    }

    const JSON_CREDS: &str = r#"{"Code":"Success","Type":"AWS-HMAC","AccessKeyId":"ASIAJSON","SecretAccessKey":"json-secret","Token":"json-token","Expiration":"2030-01-01T00:00:00Z"}"#;

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
    fn shared_files_are_parsed_as_the_sdks_parse_them() {
        let config = "\
# a comment
; another
top = ignored before any section
[default]
region = eu-west-1   # trailing comment
output=json;not-a-comment
[profile dev]
region=us-west-2
s3 =
    addressing_style = path
  endpoint_url = http://minio.test:9000
role_session_name = a
   continued
[dev]
region = not-read-in-the-config-file
[profile  spaced\t]
region = ap-south-1
[services shared]
s3 =
  endpoint_url = http://services.test
[sso-session corp]
sso_region = x
[broken
region = lost
";
        let credentials = "\
[default]
aws_access_key_id=AKIADEF
aws_secret_access_key = def/secret+=   ; comment
[dev]
aws_access_key_id = AKIADEV
region = us-east-2
[profile dev]
aws_access_key_id = NOT-READ
";
        let files = ParsedFiles {
            config: parse_ini(config),
            credentials: parse_ini(credentials),
        };
        let default = files.profile("default").expect("default");
        assert_eq!(default["region"], "eu-west-1");
        assert_eq!(default["output"], "json;not-a-comment");
        assert_eq!(default["aws_access_key_id"], "AKIADEF");
        assert_eq!(default["aws_secret_access_key"], "def/secret+=");
        assert!(!default.contains_key("top"));

        let dev = files.profile("dev").expect("dev");
        // The credentials file wins over the config file.
        assert_eq!(dev["region"], "us-east-2");
        assert_eq!(dev["aws_access_key_id"], "AKIADEV");
        assert_eq!(dev["s3.addressing_style"], "path");
        assert_eq!(dev["s3.endpoint_url"], "http://minio.test:9000");
        assert_eq!(dev["role_session_name"], "a\ncontinued");
        assert_eq!(
            files.profile("spaced").expect("spaced")["region"],
            "ap-south-1"
        );
        assert_eq!(
            files.services("shared").expect("services")["s3.endpoint_url"],
            "http://services.test"
        );
        // `[x]` in the config file and `[profile x]` in the credentials file name nothing.
        assert!(files.profile("corp").is_none());
        assert!(files.profile("profile dev").is_none());
        assert!(files.profile("broken").is_none());
        assert!(files.profile("nosuch").is_none());

        // `[profile default]` beats `[default]` in the config file.
        let files = ParsedFiles {
            config: parse_ini("[default]\nregion = a\n[profile default]\nregion = b\n"),
            credentials: Vec::new(),
        };
        assert_eq!(files.profile("default").expect("default")["region"], "b");
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

    const STS_ANSWER: &str = r#"<AssumeRoleWithWebIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <AssumeRoleWithWebIdentityResult>
    <SubjectFromWebIdentityToken>system:serviceaccount:ns:sa</SubjectFromWebIdentityToken>
    <AssumedRoleUser><Arn>arn:aws:sts::1:assumed-role/r/s</Arn><AssumedRoleId>AROA:s</AssumedRoleId></AssumedRoleUser>
    <Credentials>
      <SessionToken>sts/token+with=&amp;entity</SessionToken>
      <SecretAccessKey>sts-secret</SecretAccessKey>
      <Expiration>2030-02-03T04:05:06Z</Expiration>
      <AccessKeyId>ASIASTS</AccessKeyId>
    </Credentials>
    <Audience>sts.amazonaws.com</Audience>
  </AssumeRoleWithWebIdentityResult>
  <ResponseMetadata><RequestId>1</RequestId></ResponseMetadata>
</AssumeRoleWithWebIdentityResponse>"#;

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
    fn endpoint_region_and_addressing_style_as_the_sdks_choose() -> TestResult {
        let home = Home::new()?;
        let config = home.config()?;
        assert_eq!(config, S3Config::default());
        assert_eq!(
            (config.region.as_str(), config.path_style, config.endpoint),
            ("us-east-1", false, None)
        );

        home.file(
            ".aws/config",
            "[default]\nregion = eu-central-1\nendpoint_url = http://profile.test:9000\nca_bundle = ~/roots.pem\n\
             [profile nested]\nservices = svc\nendpoint_url = http://profile.test\ns3 =\n  endpoint_url = http://nested.test\n  addressing_style = virtual\n\
             [services svc]\ns3 =\n  endpoint_url = http://services.test\n",
        )?;
        let config = home.config()?;
        assert_eq!(config.region, "eu-central-1");
        assert_eq!(
            config.endpoint.as_ref().map(Url::as_str),
            Some("http://profile.test:9000/")
        );
        assert!(config.path_style, "a custom endpoint is path style");
        assert_eq!(config.ca_bundle, Some(home.dir.path().join("roots.pem")));

        let home = home
            .set("AWS_DEFAULT_REGION", "ap-east-1")
            .set("AWS_ENDPOINT_URL", "http://global.test")
            .set("AWS_CA_BUNDLE", "/etc/ca.pem");
        let config = home.config()?;
        assert_eq!(config.region, "ap-east-1");
        assert_eq!(
            config.endpoint.as_ref().map(Url::as_str),
            Some("http://global.test/")
        );
        assert_eq!(config.ca_bundle, Some(PathBuf::from("/etc/ca.pem")));
        let home = home
            .set("AWS_REGION", "sa-east-1")
            .set("AWS_ENDPOINT_URL_S3", "https://s3.test");
        let config = home.config()?;
        assert_eq!(config.region, "sa-east-1");
        assert_eq!(
            config.endpoint.as_ref().map(Url::as_str),
            Some("https://s3.test/")
        );

        let home = home.set("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "TRUE");
        let config = home.config()?;
        assert_eq!((config.endpoint, config.path_style), (None, false));

        // The services section, then the nested `s3 =`, then the profile's own.
        let home = home
            .unset("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS")
            .unset("AWS_ENDPOINT_URL_S3")
            .unset("AWS_ENDPOINT_URL")
            .set("AWS_PROFILE", "nested");
        let config = home.config()?;
        assert_eq!(
            config.endpoint.as_ref().map(Url::as_str),
            Some("http://services.test/")
        );
        assert_eq!(
            (config.addressing_style, config.path_style),
            (AddressingStyle::Virtual, false)
        );
        home.file(
            ".aws/config",
            &std::fs::read_to_string(home.dir.path().join(".aws/config"))?
                .replace("[services svc]", "[services other]"),
        )?;
        assert_eq!(
            home.config()?.endpoint.as_ref().map(Url::as_str),
            Some("http://nested.test/")
        );

        let config = home.config()?.with_addressing_style(AddressingStyle::Path);
        assert!(config.path_style);
        Ok(())
    }

    #[test]
    fn explicit_options_and_bad_settings() -> TestResult {
        let home = Home::new()?;
        home.file(
            ".aws/config",
            "[profile bad]\ns3 =\n  addressing_style = sideways\n[profile badurl]\nendpoint_url = minio:9000\n",
        )?;
        let config = S3Config::default().with_endpoint(Url::parse("http://127.0.0.1:9000")?);
        assert!(config.path_style);
        let config = S3Config::default()
            .with_addressing_style(AddressingStyle::Virtual)
            .with_endpoint(Url::parse("http://minio.test")?);
        assert!(!config.path_style);
        let config = S3Config::default().with_addressing_style(AddressingStyle::Path);
        assert!(config.path_style);

        let err = home.config_with("AWS_PROFILE", "bad").unwrap_err();
        assert_eq!(
            err.to_string(),
            "`s3.addressing_style` in profile `bad` is not `path`, `virtual` or `auto` (it is `sideways`)"
        );
        let err = home.config_with("AWS_PROFILE", "badurl").unwrap_err();
        assert_eq!(
            err.to_string(),
            "`endpoint_url` in profile `badurl` is not an http(s) URL (it is `minio:9000`)"
        );
        let err = home.config_with("AWS_ENDPOINT_URL_S3", "::").unwrap_err();
        assert_eq!(
            err.to_string(),
            "`AWS_ENDPOINT_URL_S3` is not an http(s) URL (it is `::`)"
        );
        assert_eq!(
            "Virtual".parse::<AddressingStyle>()?,
            AddressingStyle::Virtual
        );
        assert_eq!(AddressingStyle::Path.to_string(), "path");
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
