//! [`S3Config`]: where S3 requests go and how (endpoint, region, addressing style, extra root
//! certificates), settled from the environment and the profile's settings in the shared files.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use url::Url;

use super::error::CredentialError;
use super::shared_files::{DEFAULT_PROFILE, SharedFiles};
use super::{is_true, var};
use catalog_core::printable;

/// The region used when nothing names one.
pub const DEFAULT_REGION: &str = "us-east-1";

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
pub(super) fn parse_endpoint(value: &str, name: String) -> Result<Url, CredentialError> {
    Url::parse(value.trim())
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some())
        .ok_or_else(|| CredentialError::InvalidSetting {
            setting: name,
            value: Some(printable(value)),
            expected: "an http(s) URL",
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aws::testing::{Home, TestResult};

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
}
