//! Registry credentials and authorisation challenges.
//!
//! A registry answers an anonymous request with `401` and a `WWW-Authenticate` challenge
//! ([`parse_challenges`]). For a `Bearer` challenge the client asks the token service it names
//! for a short-lived token ([`fetch_token`]), sending the user's [`Credential`] when there is
//! one; for a `Basic` challenge it sends the credential itself.
//!
//! Credentials come from [`Credentials`]: the explicit username and password first (flags or
//! `MODEL_PROVISIONER_REGISTRY_USERNAME`/`MODEL_PROVISIONER_REGISTRY_PASSWORD`), then docker's
//! own config, read the way the docker CLI reads it:
//!
//! ```text
//! $DOCKER_CONFIG/config.json   (else ~/.docker/config.json)
//! ├── credHelpers: { "<registry>": "<helper>" }   docker-credential-<helper> get
//! ├── credsStore:  "<helper>"                      the same, for every other registry
//! └── auths:       { "<key>": { auth | username + password, identitytoken } }
//! ```
//!
//! Secrets are [`Secret`]s, whose `Debug` and `Display` print `<redacted>`; nothing here logs
//! more than host names.
//!
//! The `docker_credential` crate is not used: it reads `auths` before `credsStore` (docker
//! does the opposite), reports a helper's "credentials not found" as a failure, cannot tell a
//! missing helper from a failing one nor name it, puts the helper's output in its error
//! message, fails when `auth` and `username`/`password` are both present, and reads
//! `HOME`, `DOCKER_CONFIG` and `PATH` from the process, which tests running in parallel
//! cannot change.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::alphabet;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use reqwest::StatusCode;
use reqwest::header::{self, HeaderMap, HeaderValue};
use serde::Deserialize;

use crate::error::printable;
pub use crate::secret::Secret;

/// The variable holding the explicit registry username.
pub const USERNAME_VAR: &str = "MODEL_PROVISIONER_REGISTRY_USERNAME";
/// The variable holding the explicit registry password.
pub const PASSWORD_VAR: &str = "MODEL_PROVISIONER_REGISTRY_PASSWORD";

/// The `client_id` sent to token services with an identity token.
const CLIENT_ID: &str = "model-provisioner";

/// The key docker uses for Docker Hub, in `auths`, `credHelpers` and towards helpers.
const DOCKER_HUB_KEY: &str = "https://index.docker.io/v1/";

/// What a credential helper prints when it holds nothing for a server
/// (`docker-credential-helpers`' `errCredentialsNotFoundMessage`).
const HELPER_NOT_FOUND: &str = "credentials not found";

/// Standard base64 that accepts `auth` values with or without padding, as written by hand.
const LENIENT_BASE64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// What the user holds for one registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    /// A username and password (or a personal access token in the password's place).
    Basic {
        /// The username, which is not secret.
        username: String,
        /// The password.
        password: Secret,
    },
    /// docker's `identitytoken`: an `OAuth2` refresh token.
    IdentityToken(Secret),
}

/// Where the explicit credentials came from, for [`Credentials::describe_sources`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ExplicitFrom {
    Flags,
    Env,
}

/// Where credentials come from, in this order: explicit (flags/env), then docker's config.
#[derive(Debug, Clone, Default)]
pub struct Credentials {
    explicit: Option<(String, Secret, ExplicitFrom)>,
    /// Whether the environment was consulted (for the message when nothing was found).
    from_env: bool,
    /// The docker config file, when `DOCKER_CONFIG` or `HOME` names one.
    docker_config: Option<PathBuf>,
    /// `HOME`, to print the config's path as `~/…`.
    home: Option<PathBuf>,
    /// `PATH`, where credential helpers are looked for.
    path: Option<OsString>,
}

impl Credentials {
    /// Explicit user/password (from flags), applying to the registry being pulled from.
    pub fn explicit(username: String, password: Secret) -> Self {
        Credentials {
            explicit: Some((username, password, ExplicitFrom::Flags)),
            ..Credentials::default()
        }
    }

    /// These credentials, with `username` and `password` (from flags) tried before any other.
    #[must_use]
    pub fn with_explicit(self, username: String, password: Secret) -> Self {
        Credentials {
            explicit: Some((username, password, ExplicitFrom::Flags)),
            ..self
        }
    }

    /// From the environment: `MODEL_PROVISIONER_REGISTRY_USERNAME` +
    /// `MODEL_PROVISIONER_REGISTRY_PASSWORD` if both set; and docker's config at
    /// `$DOCKER_CONFIG/config.json`, else `$HOME/.docker/config.json`. Credential helpers are
    /// looked for on `$PATH`.
    pub fn from_env(env: &dyn Fn(&str) -> Option<String>) -> Self {
        let set = |name: &str| env(name).filter(|v| !v.is_empty());
        let explicit = match (set(USERNAME_VAR), set(PASSWORD_VAR)) {
            (Some(user), Some(password)) => Some((user, Secret::new(password), ExplicitFrom::Env)),
            _ => None,
        };
        let home = set("HOME").map(PathBuf::from);
        let docker_config = set("DOCKER_CONFIG")
            .map(PathBuf::from)
            .or_else(|| home.as_ref().map(|h| h.join(".docker")))
            .map(|dir| dir.join("config.json"));
        Credentials {
            explicit,
            from_env: true,
            docker_config,
            home,
            path: set("PATH").map(OsString::from),
        }
    }

    /// No credentials: every request is anonymous.
    pub fn none() -> Self {
        Credentials::default()
    }

    /// The credential for `registry` (host\[:port\] as written in the reference, e.g.
    /// `index.docker.io`, `127.0.0.1:5000`). `Ok(None)` when nothing is configured for it.
    ///
    /// This may run a credential helper and wait for it: call it off the async runtime
    /// (`tokio::task::spawn_blocking`).
    pub fn lookup(&self, registry: &str) -> Result<Option<Credential>, CredentialError> {
        if let Some((username, password, _)) = &self.explicit {
            return Ok(Some(Credential::Basic {
                username: username.clone(),
                password: password.clone(),
            }));
        }
        let Some(file) = &self.docker_config else {
            return Ok(None);
        };
        let Some(config) = DockerConfig::read(file)? else {
            return Ok(None);
        };
        let server = server_key(registry);
        // docker: `credHelpers[<registry>]`, else `credsStore`, else the file's `auths`. A
        // store that holds nothing is the answer: docker does not fall back to `auths`.
        if let Some(helper) = config.helper_for(registry) {
            tracing::debug!(registry, helper, "asking a credential helper");
            return self.run_helper(helper, &server);
        }
        match config.auth_entry(registry) {
            Some((key, entry)) => entry.credential(file, key),
            None => Ok(None),
        }
    }

    /// Where the lookup looked, for an error hint (e.g. "docker config
    /// `~/.docker/config.json` has no entry for `x`").
    pub fn describe_sources(&self, registry: &str) -> String {
        let registry = printable(registry);
        match &self.explicit {
            Some((user, _, ExplicitFrom::Flags)) => {
                return format!(
                    "the username `{}` and password given explicitly",
                    printable(user)
                );
            }
            Some((user, _, ExplicitFrom::Env)) => {
                return format!(
                    "the username `{}` and password from `{USERNAME_VAR}` and `{PASSWORD_VAR}`",
                    printable(user)
                );
            }
            None => {}
        }
        if !self.from_env {
            return "no registry credentials were given".to_owned();
        }
        let env = format!("`{USERNAME_VAR}` and `{PASSWORD_VAR}` are not both set");
        let Some(file) = &self.docker_config else {
            return format!("{env}; no docker config (neither `DOCKER_CONFIG` nor `HOME` is set)");
        };
        let shown = self.show_path(file);
        let docker = match DockerConfig::read(file) {
            Ok(None) => format!("there is no docker config at `{shown}`"),
            Err(_) => format!("the docker config `{shown}` could not be read"),
            Ok(Some(config)) => {
                if let Some(helper) = config.helper_for(&registry) {
                    format!(
                        "docker config `{shown}` sends `{registry}` to `docker-credential-{}`",
                        printable(helper)
                    )
                } else if let Some((key, _)) = config.auth_entry(&registry) {
                    format!(
                        "docker config `{shown}` has an entry for `{registry}` (`{}`)",
                        printable(key)
                    )
                } else {
                    format!("docker config `{shown}` has no entry for `{registry}`")
                }
            }
        };
        format!("{env}; {docker}")
    }

    /// `path` with `$HOME` written `~`.
    fn show_path(&self, path: &Path) -> String {
        match self.home.as_deref().and_then(|h| path.strip_prefix(h).ok()) {
            Some(rest) => format!("~/{}", rest.display()),
            None => path.display().to_string(),
        }
    }

    /// `docker-credential-<helper>` on our `PATH`.
    fn find_helper(&self, program: &str) -> Option<PathBuf> {
        let file = format!("{program}{}", std::env::consts::EXE_SUFFIX);
        std::env::split_paths(self.path.as_ref()?)
            .filter(|dir| !dir.as_os_str().is_empty())
            .map(|dir| dir.join(&file))
            .find(|candidate| candidate.is_file())
    }

    /// Runs `docker-credential-<helper> get` with `server` on stdin, as docker does.
    fn run_helper(
        &self,
        helper: &str,
        server: &str,
    ) -> Result<Option<Credential>, CredentialError> {
        let program = format!("docker-credential-{helper}");
        let failed = |reason: String, source: Option<io::Error>| CredentialError::HelperFailed {
            helper: program.clone(),
            reason,
            source,
        };
        let Some(path) = self.find_helper(&program) else {
            return Err(CredentialError::HelperMissing { helper: program });
        };
        let mut command = Command::new(&path);
        command
            .arg("get")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(search) = &self.path {
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

/// The parts of docker's `config.json` that name credentials.
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct DockerConfig {
    #[serde(default)]
    auths: Option<BTreeMap<String, AuthEntry>>,
    #[serde(default)]
    creds_store: Option<String>,
    #[serde(default)]
    cred_helpers: Option<BTreeMap<String, String>>,
}

/// One `auths` entry.
#[derive(Deserialize, Default)]
struct AuthEntry {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    identitytoken: Option<String>,
}

impl DockerConfig {
    /// The config at `file`; `None` when there is no such file.
    fn read(file: &Path) -> Result<Option<Self>, CredentialError> {
        let bytes = match std::fs::read(file) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(CredentialError::ConfigRead {
                    path: file.to_owned(),
                    source,
                });
            }
        };
        // Only the position goes in the error: serde's messages may quote a value.
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| CredentialError::ConfigInvalid {
                path: file.to_owned(),
                line: e.line(),
                column: e.column(),
            })
    }

    /// The helper for `registry`: its `credHelpers` entry, else `credsStore`.
    fn helper_for(&self, registry: &str) -> Option<&str> {
        let host = key_host(registry);
        self.cred_helpers
            .iter()
            .flatten()
            .find(|(key, _)| key_host(key) == host)
            .map(|(_, helper)| helper.as_str())
            .or(self.creds_store.as_deref())
            .filter(|helper| !helper.is_empty())
    }

    /// The `auths` entry for `registry` and its key: the exact key first, then any key naming
    /// the same host (`host`, `https://host`, `http://host/v1/`, Docker Hub's aliases).
    fn auth_entry(&self, registry: &str) -> Option<(&str, &AuthEntry)> {
        let auths = self.auths.as_ref()?;
        let exact = server_key(registry);
        let host = key_host(registry);
        auths
            .get_key_value(exact.as_str())
            .or_else(|| auths.iter().find(|(key, _)| key_host(key) == host))
            .map(|(key, entry)| (key.as_str(), entry))
    }
}

impl AuthEntry {
    /// The credential this entry holds, if any: the identity token first, as docker uses it.
    fn credential(&self, file: &Path, key: &str) -> Result<Option<Credential>, CredentialError> {
        let given = |s: &Option<String>| s.clone().filter(|v| !v.is_empty());
        if let Some(token) = given(&self.identitytoken) {
            return Ok(Some(Credential::IdentityToken(Secret::new(token))));
        }
        if let Some(auth) = given(&self.auth) {
            let bad = || CredentialError::ConfigAuth {
                path: file.to_owned(),
                key: key.to_owned(),
            };
            let decoded = LENIENT_BASE64.decode(auth.trim()).map_err(|_| bad())?;
            let decoded = String::from_utf8(decoded).map_err(|_| bad())?;
            let (username, password) = decoded.split_once(':').ok_or_else(bad)?;
            return Ok(Some(Credential::Basic {
                username: username.to_owned(),
                password: Secret::new(password.to_owned()),
            }));
        }
        Ok(given(&self.username)
            .zip(given(&self.password))
            .map(|(username, password)| Credential::Basic {
                username,
                password: Secret::new(password),
            }))
    }
}

/// The host a registry or a config key names, lowercased: `https://host/v1/` → `host`, and
/// Docker Hub's names → `index.docker.io`.
fn key_host(key: &str) -> String {
    let key = key.trim();
    let lower = key.to_ascii_lowercase();
    let rest = ["https://", "http://"]
        .iter()
        .find_map(|scheme| lower.strip_prefix(scheme))
        .unwrap_or(&lower);
    let host = rest.split('/').next().unwrap_or_default();
    match host {
        "docker.io" | "registry-1.docker.io" => "index.docker.io".to_owned(),
        _ => host.to_owned(),
    }
}

/// The server name docker uses for `registry`: Docker Hub's key, else the registry as written.
fn server_key(registry: &str) -> String {
    if key_host(registry) == "index.docker.io" {
        DOCKER_HUB_KEY.to_owned()
    } else {
        registry.to_owned()
    }
}

/// A credential could not be looked up.
#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    /// The docker config exists but could not be read.
    #[error("failed to read the docker config `{}`", path.display())]
    ConfigRead {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The docker config is not valid JSON, or a field has the wrong type.
    #[error("the docker config `{}` is not valid (line {line}, column {column})", path.display())]
    ConfigInvalid {
        /// The file.
        path: PathBuf,
        /// Where the parser stopped.
        line: usize,
        /// Where the parser stopped.
        column: usize,
    },
    /// An `auth` value is not base64 of `user:password`.
    #[error(
        "the docker config `{}` has an `auth` for `{key}` that is not base64 of `user:password`",
        path.display()
    )]
    ConfigAuth {
        /// The file.
        path: PathBuf,
        /// The `auths` key.
        key: String,
    },
    /// The configured credential helper is not on `PATH`.
    #[error("the credential helper `{helper}` is not on PATH")]
    HelperMissing {
        /// The program, `docker-credential-<name>`.
        helper: String,
    },
    /// The credential helper failed.
    #[error("the credential helper `{helper}` failed ({reason})")]
    HelperFailed {
        /// The program, `docker-credential-<name>`.
        helper: String,
        /// Its exit status and first line of error, or what went wrong talking to it.
        reason: String,
        /// The cause, when starting or reading it failed.
        #[source]
        source: Option<io::Error>,
    },
}

impl CredentialError {
    /// What the user can do about it.
    pub fn hint(&self) -> String {
        match self {
            CredentialError::ConfigRead { .. } | CredentialError::ConfigInvalid { .. } => {
                "fix the file, or point `DOCKER_CONFIG` at another directory".into()
            }
            CredentialError::ConfigAuth { .. } => "log in again with `docker login`".into(),
            CredentialError::HelperMissing { helper } => format!(
                "install `{helper}`, or remove it from `credHelpers`/`credsStore` in the docker config"
            ),
            CredentialError::HelperFailed { helper, .. } => {
                format!("run `echo <registry> | {helper} get` to see what it says")
            }
        }
    }
}

/// An authorisation challenge from a registry's `WWW-Authenticate` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    /// Send the credential itself, in `Authorization: Basic`.
    Basic {
        /// The protection space, when named.
        realm: Option<String>,
    },
    /// Get a token from the service at `realm` and send it in `Authorization: Bearer`.
    Bearer {
        /// The token service's URL.
        realm: String,
        /// The `service` to ask the token for.
        service: Option<String>,
        /// The scope the registry asks for, when it says.
        scope: Option<String>,
    },
}

/// Parses every challenge in the `WWW-Authenticate` values (several headers, several
/// challenges in one, quoted strings with commas and escaped quotes, case-insensitive scheme
/// and param names, unquoted tokens). Schemes other than `Basic` and `Bearer`, a `Bearer`
/// without a realm, and what does not parse are left out.
pub fn parse_challenges(headers: &HeaderMap) -> Vec<Challenge> {
    headers
        .get_all(header::WWW_AUTHENTICATE)
        .iter()
        .flat_map(|value| parse_header(&String::from_utf8_lossy(value.as_bytes())))
        .filter_map(RawChallenge::into_challenge)
        .collect()
}

/// A challenge's scheme and parameters, names lowercased.
#[derive(Debug)]
struct RawChallenge {
    scheme: String,
    params: Vec<(String, String)>,
}

impl RawChallenge {
    fn into_challenge(self) -> Option<Challenge> {
        let param = |name: &str| {
            self.params
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.clone())
        };
        if self.scheme.eq_ignore_ascii_case("basic") {
            Some(Challenge::Basic {
                realm: param("realm"),
            })
        } else if self.scheme.eq_ignore_ascii_case("bearer") {
            Some(Challenge::Bearer {
                realm: param("realm").filter(|r| !r.is_empty())?,
                service: param("service"),
                scope: param("scope"),
            })
        } else {
            None
        }
    }
}

/// RFC 9110 `tchar`: what a scheme or a parameter name is made of.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// A cursor over one header value. Every delimiter is ASCII, so byte offsets cut the value
/// on character boundaries.
struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    fn skip_while(&mut self, keep: impl Fn(u8) -> bool) {
        while self.peek().is_some_and(&keep) {
            self.at += 1;
        }
    }

    fn skip_spaces(&mut self) {
        self.skip_while(|b| b == b' ' || b == b'\t');
    }

    fn skip_spaces_and_commas(&mut self) {
        self.skip_while(|b| b == b' ' || b == b'\t' || b == b',');
    }

    /// Skips what cannot be read, up to the next comma.
    fn skip_to_comma(&mut self) {
        self.skip_while(|b| b != b',');
    }

    fn token(&mut self) -> String {
        let start = self.at;
        self.skip_while(is_tchar);
        String::from_utf8_lossy(&self.bytes[start..self.at]).into_owned()
    }

    /// An unquoted value: lenient, as registries write URLs and scopes unquoted.
    fn bare_value(&mut self) -> String {
        let start = self.at;
        self.skip_while(|b| !matches!(b, b',' | b' ' | b'\t' | b'"'));
        String::from_utf8_lossy(&self.bytes[start..self.at]).into_owned()
    }

    /// A quoted string, the cursor on its opening quote; `\x` stands for `x`. An unterminated
    /// string runs to the end.
    fn quoted(&mut self) -> String {
        self.at += 1;
        let mut out = Vec::new();
        while let Some(b) = self.peek() {
            self.at += 1;
            match b {
                b'"' => break,
                b'\\' => {
                    if let Some(next) = self.peek() {
                        out.push(next);
                        self.at += 1;
                    }
                }
                _ => out.push(b),
            }
        }
        String::from_utf8_lossy(&out).into_owned()
    }
}

/// The challenges in one header value: `scheme [param=value, …]`, separated by commas. A
/// token after a comma starts a new challenge unless `=` follows it.
fn parse_header(value: &str) -> Vec<RawChallenge> {
    let mut cursor = Cursor {
        bytes: value.as_bytes(),
        at: 0,
    };
    let mut challenges = Vec::new();
    let mut next_scheme: Option<String> = None;
    loop {
        let scheme = match next_scheme.take() {
            Some(scheme) => scheme,
            None => {
                cursor.skip_spaces_and_commas();
                if cursor.peek().is_none() {
                    break;
                }
                let scheme = cursor.token();
                if scheme.is_empty() {
                    cursor.skip_to_comma();
                    continue;
                }
                scheme
            }
        };
        let mut params = Vec::new();
        loop {
            cursor.skip_spaces();
            match cursor.peek() {
                None => break,
                Some(b',') => {
                    cursor.skip_spaces_and_commas();
                    let start = cursor.at;
                    let token = cursor.token();
                    cursor.skip_spaces();
                    if token.is_empty() || cursor.peek() == Some(b'=') {
                        // A parameter of this challenge (or junk, read as one below).
                        cursor.at = start;
                    } else {
                        next_scheme = Some(token);
                        break;
                    }
                }
                Some(_) => {
                    let name = cursor.token();
                    cursor.skip_spaces();
                    if name.is_empty() || cursor.peek() != Some(b'=') {
                        // A token68 (`Basic dXNlcg==`) or junk: nothing we need.
                        cursor.skip_to_comma();
                        continue;
                    }
                    cursor.at += 1;
                    cursor.skip_spaces();
                    let value = if cursor.peek() == Some(b'"') {
                        cursor.quoted()
                    } else {
                        cursor.bare_value()
                    };
                    params.push((name.to_ascii_lowercase(), value));
                }
            }
        }
        challenges.push(RawChallenge { scheme, params });
    }
    challenges
}

/// A registry token, valid until a moment measured on this machine's monotonic clock.
#[derive(Debug, Clone)]
pub struct BearerToken {
    value: Secret,
    expires_at: Instant,
    lifetime: Duration,
}

impl BearerToken {
    /// A token valid for `lifetime` from now (at least 1 s).
    pub fn new(value: Secret, lifetime: Duration) -> Self {
        let lifetime = lifetime.max(Duration::from_secs(1));
        BearerToken {
            value,
            expires_at: Instant::now() + lifetime,
            lifetime,
        }
    }

    /// The token, for `Authorization: Bearer`.
    pub fn value(&self) -> &Secret {
        &self.value
    }

    /// When the token stops being valid.
    pub fn expires_at(&self) -> Instant {
        self.expires_at
    }

    /// True when fewer than 10% of its life (at least 1 s) remains.
    pub fn is_expiring(&self, now: Instant) -> bool {
        let margin = (self.lifetime / 10).max(Duration::from_secs(1));
        self.expires_at.saturating_duration_since(now) < margin
    }
}

/// A token could not be had.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// The token service refused the credentials (or their absence).
    #[error("the token service at `{realm_host}` refused access (HTTP {status})")]
    Denied {
        /// The token service's host\[:port\].
        realm_host: String,
        /// `401`, `403`, or `400` for a refresh token it does not accept.
        status: u16,
    },
    /// The token service answered another error status.
    #[error("the token service at `{realm_host}` answered HTTP {status}")]
    Status {
        /// The token service's host\[:port\].
        realm_host: String,
        /// The status.
        status: u16,
    },
    /// The token service could not be reached, or the connection broke.
    #[error("could not get a token from `{realm_host}`")]
    Transport {
        /// The token service's host\[:port\].
        realm_host: String,
        /// The cause, without its URL.
        #[source]
        source: reqwest::Error,
    },
    /// The challenge or the token service's answer is not what the protocol says.
    #[error("{0}")]
    BadResponse(String),
}

impl AuthError {
    /// What the user can do about it.
    pub fn hint(&self) -> String {
        match self {
            AuthError::Denied { .. } => format!(
                "log in with `docker login <registry>`, or set `{USERNAME_VAR}` and `{PASSWORD_VAR}`; check that the repository exists and that the account may pull it"
            ),
            AuthError::Status { .. } | AuthError::Transport { .. } if self.is_transient() => {
                "the token service may be busy or unreachable: run the same command again later"
                    .into()
            }
            AuthError::Status { .. } | AuthError::Transport { .. } => {
                "check the registry's address and the network (proxy settings included)".into()
            }
            AuthError::BadResponse(_) => {
                "the registry's token service does not follow the distribution token protocol"
                    .into()
            }
        }
    }

    /// Whether trying again may help: a connection failure, a timeout, `5xx` or `429`.
    pub fn is_transient(&self) -> bool {
        match self {
            AuthError::Status { status, .. } => {
                *status >= 500 || *status == StatusCode::TOO_MANY_REQUESTS.as_u16()
            }
            AuthError::Transport { source, .. } => {
                source.is_timeout()
                    || source.is_connect()
                    || source.is_request()
                    || source.is_body()
            }
            AuthError::Denied { .. } | AuthError::BadResponse(_) => false,
        }
    }
}

/// The token service's answer, the parts we read. `issued_at` is left out on purpose: the
/// token's life is counted from when we asked, on the monotonic clock, so a server's clock
/// that runs ahead or behind ours cannot make a token look expired or fresh.
#[derive(Deserialize)]
struct TokenAnswer {
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    access_token: Option<String>,
    #[serde(default)]
    expires_in: Option<f64>,
}

/// The lifetime when the token service does not say (the distribution spec's default).
const DEFAULT_LIFETIME: Duration = Duration::from_secs(60);

/// Asks the token service named by the `Bearer` challenge for a token with `scopes` (one
/// `scope=` parameter each, the challenge's own scope included when present).
///
/// - A [`Credential::Basic`]: `GET` with `Authorization: Basic` and `account=<username>`.
/// - A [`Credential::IdentityToken`]: `POST` of the `OAuth2` form
///   `grant_type=refresh_token&refresh_token=…&service=…&scope=…&client_id=model-provisioner`
///   (the scopes space-joined, as `OAuth2` has it).
/// - None: an anonymous `GET`.
///
/// The answer's `token` (or `access_token`) lives `expires_in` seconds (60 when absent, at
/// least 1), counted from when the request was sent.
pub async fn fetch_token(
    client: &reqwest::Client,
    challenge: &Challenge,
    scopes: &[String],
    credential: Option<&Credential>,
) -> Result<BearerToken, AuthError> {
    let Challenge::Bearer {
        realm,
        service,
        scope,
    } = challenge
    else {
        return Err(AuthError::BadResponse(
            "a `Basic` challenge names no token service".into(),
        ));
    };
    let url = url::Url::parse(realm)
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some())
        .ok_or_else(|| {
            AuthError::BadResponse(format!(
                "the registry's token service `{}` is not an http(s) URL",
                printable(realm)
            ))
        })?;
    let realm_host = match (url.host_str(), url.port()) {
        (Some(host), Some(port)) => format!("{host}:{port}"),
        (host, _) => host.unwrap_or_default().to_owned(),
    };
    let mut all_scopes: Vec<&str> = Vec::new();
    for s in scopes
        .iter()
        .map(String::as_str)
        .chain(scope.as_deref())
        .flat_map(str::split_whitespace)
    {
        if !all_scopes.contains(&s) {
            all_scopes.push(s);
        }
    }

    let request = token_request(client, url, service.as_deref(), &all_scopes, credential);

    let sent = Instant::now();
    let transport = |source: reqwest::Error| AuthError::Transport {
        realm_host: realm_host.clone(),
        source: source.without_url(),
    };
    let response = request.send().await.map_err(transport)?;
    let status = response.status();
    let refused = status == StatusCode::UNAUTHORIZED
        || status == StatusCode::FORBIDDEN
        // OAuth2 answers a refresh token it does not accept with `400 invalid_grant`.
        || (status == StatusCode::BAD_REQUEST
            && matches!(credential, Some(Credential::IdentityToken(_))));
    if refused {
        return Err(AuthError::Denied {
            realm_host,
            status: status.as_u16(),
        });
    }
    if !status.is_success() {
        return Err(AuthError::Status {
            realm_host,
            status: status.as_u16(),
        });
    }
    let body = response.bytes().await.map_err(transport)?;
    let answer: TokenAnswer = serde_json::from_slice(&body).map_err(|_| {
        AuthError::BadResponse(format!(
            "the token service at `{realm_host}` did not answer with a token object"
        ))
    })?;
    let token = [answer.token, answer.access_token]
        .into_iter()
        .flatten()
        .find(|t| !t.is_empty())
        .ok_or_else(|| {
            AuthError::BadResponse(format!(
                "the token service at `{realm_host}` answered without a `token` or `access_token`"
            ))
        })?;
    let lifetime = match answer.expires_in {
        // At most a year: enough for any real token, and `Duration` cannot overflow.
        Some(secs) if secs.is_finite() => Duration::from_secs_f64(secs.clamp(1.0, 31_536_000.0)),
        _ => DEFAULT_LIFETIME,
    };
    Ok(BearerToken {
        value: Secret::new(token),
        expires_at: sent + lifetime,
        lifetime,
    })
}

/// The request for a token: the refresh-token `POST` for an identity token, else a `GET`.
fn token_request(
    client: &reqwest::Client,
    mut url: url::Url,
    service: Option<&str>,
    all_scopes: &[&str],
    credential: Option<&Credential>,
) -> reqwest::RequestBuilder {
    if let Some(Credential::IdentityToken(refresh)) = credential {
        tracing::debug!(
            realm_host = url.host_str(),
            "exchanging an identity token for a registry token"
        );
        let mut form = url::form_urlencoded::Serializer::new(String::new());
        form.append_pair("grant_type", "refresh_token")
            .append_pair("refresh_token", refresh.expose());
        if let Some(service) = service {
            form.append_pair("service", service);
        }
        if !all_scopes.is_empty() {
            form.append_pair("scope", &all_scopes.join(" "));
        }
        form.append_pair("client_id", CLIENT_ID);
        client
            .post(url)
            .header(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/x-www-form-urlencoded"),
            )
            .body(form.finish())
    } else {
        tracing::debug!(
            realm_host = url.host_str(),
            with_credentials = credential.is_some(),
            "requesting a registry token"
        );
        let basic = match credential {
            Some(Credential::Basic { username, password }) => Some((username, password)),
            _ => None,
        };
        if service.is_some() || !all_scopes.is_empty() || basic.is_some() {
            let mut query = url.query_pairs_mut();
            if let Some(service) = service {
                query.append_pair("service", service);
            }
            for s in all_scopes {
                query.append_pair("scope", s);
            }
            if let Some((username, _)) = basic {
                query.append_pair("account", username);
            }
        }
        let mut request = client.get(url);
        if let Some((username, password)) = basic {
            request = request.header(header::AUTHORIZATION, basic_header(username, password));
        }
        request
    }
}

/// `Authorization: Basic …`, marked sensitive so that it is never printed.
fn basic_header(username: &str, password: &Secret) -> HeaderValue {
    let encoded = STANDARD.encode(format!("{username}:{}", password.expose()));
    let mut value =
        HeaderValue::from_str(&format!("Basic {encoded}")).expect("base64 is visible ASCII");
    value.set_sensitive(true);
    value
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::block_on;

    use std::fmt::Write as _;
    use std::thread::JoinHandle;

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for v in values {
            map.append(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_str(v).expect("a valid header value"),
            );
        }
        map
    }

    fn bearer(realm: &str, service: Option<&str>, scope: Option<&str>) -> Challenge {
        Challenge::Bearer {
            realm: realm.into(),
            service: service.map(Into::into),
            scope: scope.map(Into::into),
        }
    }

    #[test]
    fn challenges_parse_as_registries_write_them() -> TestResult {
        let basic = |realm: Option<&str>| Challenge::Basic {
            realm: realm.map(Into::into),
        };
        let table: Vec<(&[&str], Vec<Challenge>)> = vec![
            (
                &[
                    r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/alpine:pull""#,
                ],
                vec![bearer(
                    "https://auth.docker.io/token",
                    Some("registry.docker.io"),
                    Some("repository:library/alpine:pull"),
                )],
            ),
            (
                &[r#"Bearer realm="http://127.0.0.1:5001/auth", service="Docker registry""#],
                vec![bearer(
                    "http://127.0.0.1:5001/auth",
                    Some("Docker registry"),
                    None,
                )],
            ),
            (
                &[r#"Basic realm="Registry Realm""#],
                vec![basic(Some("Registry Realm"))],
            ),
            (&["Basic"], vec![basic(None)]),
            (
                &[
                    r#"Basic realm="a", Bearer realm="https://t/x", Negotiate, Bearer service="no realm""#,
                ],
                vec![basic(Some("a")), bearer("https://t/x", None, None)],
            ),
            (
                &[r#"Basic realm="one""#, r#"Bearer realm="https://t/y""#],
                vec![basic(Some("one")), bearer("https://t/y", None, None)],
            ),
            (
                &[
                    r#"Bearer realm="https://t/z",scope="repository:a/b:pull,push repository:c:pull""#,
                ],
                vec![bearer(
                    "https://t/z",
                    None,
                    Some("repository:a/b:pull,push repository:c:pull"),
                )],
            ),
            (
                &[r#"Basic realm="say \"hi\", \\ ok""#],
                vec![basic(Some(r#"say "hi", \ ok"#))],
            ),
            (
                &[r#"bEaReR REALM="https://t/m" , SeRvIcE = "s""#],
                vec![bearer("https://t/m", Some("s"), None)],
            ),
            (
                &["Bearer realm=https://t/u,service=reg,scope=repository:a:pull"],
                vec![bearer(
                    "https://t/u",
                    Some("reg"),
                    Some("repository:a:pull"),
                )],
            ),
            (
                &["Basic dXNlcjpwYXNz, Bearer realm=x"],
                vec![basic(None), bearer("x", None, None)],
            ),
            (&[""], vec![]),
            (&[",,, ,"], vec![]),
            (&["= = \"\" ,=\"x"], vec![]),
            (
                &[r#"Bearer realm="unterminated"#],
                vec![bearer("unterminated", None, None)],
            ),
            (&["Bearer"], vec![]),
            (&["}{garbage\"\\"], vec![]),
        ];
        for (values, expected) in table {
            assert_eq!(parse_challenges(&headers(values)), expected, "{values:?}");
        }
        // Bytes that are not UTF-8 do not panic either.
        let mut map = HeaderMap::new();
        map.append(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_bytes(b"Bearer realm=\"\xff\xfe\"")?,
        );
        assert_eq!(parse_challenges(&map).len(), 1);
        Ok(())
    }

    #[test]
    fn nothing_prints_a_secret() {
        let credential = Credential::Basic {
            username: "alice".into(),
            password: Secret::new("hunter2".into()),
        };
        let token = BearerToken::new(Secret::new("tok-123".into()), Duration::from_secs(60));
        for shown in [
            format!("{credential:?}"),
            format!(
                "{:?}",
                Credential::IdentityToken(Secret::new("refresh-9".into()))
            ),
            format!("{token:?}"),
            format!("{}", token.value()),
            format!(
                "{:?}",
                Credentials::explicit("alice".into(), Secret::new("hunter2".into()))
            ),
        ] {
            for secret in ["hunter2", "tok-123", "refresh-9"] {
                assert!(!shown.contains(secret), "{shown}");
            }
            assert!(shown.contains("<redacted>"), "{shown}");
        }
    }

    #[test]
    fn tokens_expire_in_the_last_tenth_of_their_life() {
        let now = Instant::now();
        let token = BearerToken {
            value: Secret::new("t".into()),
            expires_at: now + Duration::from_secs(300),
            lifetime: Duration::from_secs(300),
        };
        assert!(!token.is_expiring(now));
        assert!(!token.is_expiring(now + Duration::from_secs(269)));
        assert!(token.is_expiring(now + Duration::from_secs(271)));
        assert!(token.is_expiring(now + Duration::from_secs(400)));
        let short = BearerToken {
            value: Secret::new("t".into()),
            expires_at: now + Duration::from_secs(5),
            lifetime: Duration::from_secs(5),
        };
        assert!(!short.is_expiring(now + Duration::from_millis(3900)));
        assert!(short.is_expiring(now + Duration::from_millis(4100)));
    }

    /// A docker home for one test: a config file and a directory of fake helpers.
    struct DockerHome {
        dir: tempfile::TempDir,
    }

    impl DockerHome {
        fn new(config: &serde_json::Value) -> io::Result<Self> {
            let dir = tempfile::tempdir()?;
            std::fs::create_dir_all(dir.path().join(".docker"))?;
            std::fs::create_dir_all(dir.path().join("bin"))?;
            std::fs::write(
                dir.path().join(".docker/config.json"),
                serde_json::to_vec(config)?,
            )?;
            Ok(DockerHome { dir })
        }

        /// A `docker-credential-<name>` that answers `script` (a `sh` body reading the
        /// server from stdin as `$server`).
        #[cfg(unix)]
        fn helper(&self, name: &str, script: &str) -> io::Result<()> {
            use std::os::unix::fs::PermissionsExt as _;
            let path = self
                .dir
                .path()
                .join("bin")
                .join(format!("docker-credential-{name}"));
            std::fs::write(
                &path,
                format!("#!/bin/sh\n[ \"$1\" = get ] || exit 3\nread -r server\n{script}\n"),
            )?;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))?;
            Ok(())
        }

        /// The environment: `HOME` here, `PATH` the helpers' directory and the system's.
        fn env(&self, extra: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
            let home = self.dir.path().to_str().expect("utf-8").to_owned();
            let path = format!("{home}/bin:/usr/bin:/bin");
            let extra: Vec<(String, String)> = extra
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect();
            move |name| match name {
                "HOME" => Some(home.clone()),
                "PATH" => Some(path.clone()),
                _ => extra
                    .iter()
                    .find(|(k, _)| k == name)
                    .map(|(_, v)| v.clone()),
            }
        }

        fn credentials(&self) -> Credentials {
            Credentials::from_env(&self.env(&[]))
        }
    }

    fn basic(username: &str, password: &str) -> Credential {
        Credential::Basic {
            username: username.into(),
            password: Secret::new(password.into()),
        }
    }

    fn identity(token: &str) -> Credential {
        Credential::IdentityToken(Secret::new(token.into()))
    }

    #[test]
    fn auths_match_every_way_docker_writes_a_key() -> TestResult {
        let home = DockerHome::new(&serde_json::json!({
            "auths": {
                "https://index.docker.io/v1/": { "auth": STANDARD.encode("hubuser:hubpass") },
                "127.0.0.1:5000": { "auth": "bG9jYWw6cGFzczp3aXRoOmNvbG9ucw" },
                "https://ghcr.io": { "username": "gh", "password": "ghpass" },
                "http://insecure.test:8080/v1/": { "username": "in", "password": "sec" },
                "QUAY.io": { "auth": "", "identitytoken": "refresh-q" },
                "empty.test": {},
                "bad.test": { "auth": "not base64!" },
            },
            "HttpHeaders": { "User-Agent": "x" },
        }))?;
        let creds = home.credentials();
        for hub in ["index.docker.io", "docker.io", "registry-1.docker.io"] {
            assert_eq!(
                creds.lookup(hub)?,
                Some(basic("hubuser", "hubpass")),
                "{hub}"
            );
        }
        assert_eq!(
            creds.lookup("127.0.0.1:5000")?,
            Some(basic("local", "pass:with:colons"))
        );
        assert_eq!(creds.lookup("ghcr.io")?, Some(basic("gh", "ghpass")));
        assert_eq!(
            creds.lookup("insecure.test:8080")?,
            Some(basic("in", "sec"))
        );
        assert_eq!(creds.lookup("quay.io")?, Some(identity("refresh-q")));
        assert_eq!(creds.lookup("empty.test")?, None);
        assert_eq!(creds.lookup("unknown.test")?, None);
        assert_eq!(creds.lookup("127.0.0.1:5001")?, None);
        let err = creds.lookup("bad.test").unwrap_err();
        assert!(matches!(err, CredentialError::ConfigAuth { .. }), "{err:?}");
        assert!(err.to_string().contains("config.json"), "{err}");
        assert!(!err.to_string().contains("not base64!"), "{err}");

        assert_eq!(
            creds.describe_sources("unknown.test"),
            format!(
                "`{USERNAME_VAR}` and `{PASSWORD_VAR}` are not both set; docker config `~/.docker/config.json` has no entry for `unknown.test`"
            )
        );
        assert!(
            creds
                .describe_sources("docker.io")
                .contains("`https://index.docker.io/v1/`")
        );
        Ok(())
    }

    #[test]
    fn a_missing_or_broken_config_is_none_or_named() -> TestResult {
        let home = DockerHome::new(&serde_json::json!({}))?;
        let config = home.dir.path().join(".docker/config.json");
        std::fs::remove_file(&config)?;
        let creds = home.credentials();
        assert_eq!(creds.lookup("ghcr.io")?, None);
        assert!(
            creds
                .describe_sources("ghcr.io")
                .contains("there is no docker config at `~/.docker/config.json`")
        );
        std::fs::write(&config, r#"{"auths": {"x": {"auth": 12345678}}}"#)?;
        let err = creds.lookup("ghcr.io").unwrap_err();
        assert!(
            matches!(err, CredentialError::ConfigInvalid { line: 1, .. }),
            "{err:?}"
        );
        assert!(!err.to_string().contains("12345678"), "{err}");
        assert!(Credentials::none().lookup("ghcr.io")?.is_none());
        Ok(())
    }

    #[test]
    fn docker_config_env_and_explicit_credentials() -> TestResult {
        let home = DockerHome::new(&serde_json::json!({
            "auths": { "ghcr.io": { "auth": STANDARD.encode("file:pw") } },
        }))?;
        let other = tempfile::tempdir()?;
        std::fs::write(
            other.path().join("config.json"),
            serde_json::to_vec(&serde_json::json!({
                "auths": { "ghcr.io": { "username": "elsewhere", "password": "pw2" } },
            }))?,
        )?;
        let dir = other.path().to_str().expect("utf-8");
        let creds = Credentials::from_env(&home.env(&[("DOCKER_CONFIG", dir)]));
        assert_eq!(creds.lookup("ghcr.io")?, Some(basic("elsewhere", "pw2")));

        // Both variables or neither.
        let only_user = Credentials::from_env(&home.env(&[(USERNAME_VAR, "u")]));
        assert_eq!(only_user.lookup("ghcr.io")?, Some(basic("file", "pw")));
        let env = Credentials::from_env(&home.env(&[(USERNAME_VAR, "u"), (PASSWORD_VAR, "p")]));
        assert_eq!(env.lookup("ghcr.io")?, Some(basic("u", "p")));
        assert_eq!(
            env.describe_sources("ghcr.io"),
            format!("the username `u` and password from `{USERNAME_VAR}` and `{PASSWORD_VAR}`")
        );
        let flags = Credentials::explicit("f".into(), Secret::new("fp".into()));
        assert_eq!(flags.lookup("anything.test")?, Some(basic("f", "fp")));
        Ok(())
    }

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

    /// Serves one canned JSON answer on 127.0.0.1 and hands back the requests as received.
    fn serve_once(
        status: &'static str,
        body: &'static str,
    ) -> io::Result<(String, JoinHandle<Vec<String>>)> {
        test_support::serve_canned(Some("application/json"), vec![(status, body.to_owned())])
    }

    fn scopes(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn anonymous_get_sends_service_and_every_scope() -> TestResult {
        let (base, server) = serve_once(
            "200 OK",
            r#"{"token":"anon-tok","expires_in":300,"issued_at":"2024-01-01T00:00:00Z"}"#,
        )?;
        let challenge = bearer(
            &format!("{base}/token"),
            Some("reg.test"),
            Some("repository:a:pull"),
        );
        let before = Instant::now();
        let token = block_on(fetch_token(
            &reqwest::Client::new(),
            &challenge,
            &scopes(&["repository:b:pull", "repository:a:pull"]),
            None,
        ))?;
        let request = server.join().expect("the server").remove(0);
        assert!(
            request.starts_with("GET /token?service=reg.test&scope=repository%3Ab%3Apull&scope=repository%3Aa%3Apull HTTP/1.1\r\n"),
            "{request}"
        );
        assert!(
            !request.to_ascii_lowercase().contains("authorization"),
            "{request}"
        );
        assert_eq!(token.value().expose(), "anon-tok");
        let life = token.expires_at() - before;
        assert!(
            life > Duration::from_secs(299) && life <= Duration::from_secs(301),
            "{life:?}"
        );
        Ok(())
    }

    #[test]
    fn basic_get_sends_the_header_and_account() -> TestResult {
        let (base, server) = serve_once("200 OK", r#"{"access_token":"acc-tok"}"#)?;
        let challenge = bearer(&format!("{base}/auth?x=1"), Some("reg"), None);
        let credential = basic("alice", "hunter2");
        let before = Instant::now();
        let token = block_on(fetch_token(
            &reqwest::Client::new(),
            &challenge,
            &scopes(&["repository:m:pull"]),
            Some(&credential),
        ))?;
        let request = server.join().expect("the server").remove(0);
        assert!(
            request.starts_with(
                "GET /auth?x=1&service=reg&scope=repository%3Am%3Apull&account=alice HTTP/1.1\r\n"
            ),
            "{request}"
        );
        let expected = format!(
            "authorization: Basic {}\r\n",
            STANDARD.encode("alice:hunter2")
        );
        assert!(
            request
                .to_ascii_lowercase()
                .contains(&expected.to_ascii_lowercase()),
            "{request}"
        );
        assert_eq!(token.value().expose(), "acc-tok");
        // No `expires_in`: 60 s.
        let life = token.expires_at() - before;
        assert!(
            life > Duration::from_secs(59) && life <= Duration::from_secs(61),
            "{life:?}"
        );
        Ok(())
    }

    #[test]
    fn identity_token_posts_the_refresh_form() -> TestResult {
        let (base, server) = serve_once(
            "200 OK",
            r#"{"token":"t1","access_token":"t1","expires_in":0.2}"#,
        )?;
        let challenge = bearer(
            &format!("{base}/token"),
            Some("reg svc"),
            Some("repository:a:pull"),
        );
        let credential = identity("refresh/+=&tok");
        let token = block_on(fetch_token(
            &reqwest::Client::new(),
            &challenge,
            &scopes(&["repository:a:pull", "repository:b:push"]),
            Some(&credential),
        ))?;
        let request = server.join().expect("the server").remove(0);
        assert!(request.starts_with("POST /token HTTP/1.1\r\n"), "{request}");
        assert!(
            request
                .to_ascii_lowercase()
                .contains("content-type: application/x-www-form-urlencoded\r\n"),
            "{request}"
        );
        assert!(
            request.ends_with("\r\n\r\ngrant_type=refresh_token&refresh_token=refresh%2F%2B%3D%26tok&service=reg+svc&scope=repository%3Aa%3Apull+repository%3Ab%3Apush&client_id=model-provisioner"),
            "{request}"
        );
        assert_eq!(token.value().expose(), "t1");
        // A lifetime under a second is raised to one.
        assert_eq!(token.lifetime, Duration::from_secs(1));
        Ok(())
    }

    #[test]
    fn a_refusal_is_denied_without_the_secret() -> TestResult {
        for (status, code) in [("401 Unauthorized", 401), ("403 Forbidden", 403)] {
            let (base, server) = serve_once(status, r#"{"errors":[{"code":"UNAUTHORIZED"}]}"#)?;
            let challenge = bearer(&format!("{base}/token"), None, None);
            let credential = basic("alice", "hunter2");
            let err = block_on(fetch_token(
                &reqwest::Client::new(),
                &challenge,
                &[],
                Some(&credential),
            ))
            .unwrap_err();
            server.join().expect("the server");
            assert!(
                matches!(&err, AuthError::Denied { status, .. } if *status == code),
                "{err:?}"
            );
            let shown = format!("{err} {err:?} {}", err.hint());
            assert!(!shown.contains("hunter2"), "{shown}");
            assert!(
                !shown.contains(&STANDARD.encode("alice:hunter2")),
                "{shown}"
            );
            assert!(
                err.to_string()
                    .starts_with("the token service at `127.0.0.1:"),
                "{err}"
            );
            assert!(err.hint().contains("docker login"), "{}", err.hint());
            assert!(!err.is_transient());
        }
        let (base, server) = serve_once("400 Bad Request", r#"{"error":"invalid_grant"}"#)?;
        let credential = identity("refresh-secret");
        let err = block_on(fetch_token(
            &reqwest::Client::new(),
            &bearer(&format!("{base}/token"), None, None),
            &[],
            Some(&credential),
        ))
        .unwrap_err();
        server.join().expect("the server");
        assert!(
            matches!(err, AuthError::Denied { status: 400, .. }),
            "{err:?}"
        );
        assert!(!format!("{err:?}").contains("refresh-secret"));
        Ok(())
    }

    #[test]
    fn other_answers_are_errors_that_say_what_went_wrong() -> TestResult {
        let (base, server) = serve_once("200 OK", r#"{"nothing":"here"}"#)?;
        let err = block_on(fetch_token(
            &reqwest::Client::new(),
            &bearer(&format!("{base}/t"), None, None),
            &[],
            None,
        ))
        .unwrap_err();
        server.join().expect("the server");
        assert!(matches!(err, AuthError::BadResponse(_)), "{err:?}");

        let (base, server) = serve_once("503 Service Unavailable", "")?;
        let err = block_on(fetch_token(
            &reqwest::Client::new(),
            &bearer(&format!("{base}/t"), None, None),
            &[],
            None,
        ))
        .unwrap_err();
        server.join().expect("the server");
        assert!(
            matches!(err, AuthError::Status { status: 503, .. }) && err.is_transient(),
            "{err:?}"
        );

        // Nothing listens there any more: a transport error naming the host, not the query.
        let port = test_support::free_port();
        let challenge = bearer(
            &format!("http://127.0.0.1:{port}/t"),
            Some("svc"),
            Some("repository:x:pull"),
        );
        let err =
            block_on(fetch_token(&reqwest::Client::new(), &challenge, &[], None)).unwrap_err();
        assert!(
            matches!(err, AuthError::Transport { .. }) && err.is_transient(),
            "{err:?}"
        );
        let mut chain = err.to_string();
        let mut source = std::error::Error::source(&err);
        while let Some(s) = source {
            write!(chain, ": {s}")?;
            source = s.source();
        }
        assert!(!chain.contains("repository"), "{chain}");

        let err = block_on(fetch_token(
            &reqwest::Client::new(),
            &Challenge::Basic { realm: None },
            &[],
            None,
        ))
        .unwrap_err();
        assert!(matches!(err, AuthError::BadResponse(_)), "{err:?}");
        let err = block_on(fetch_token(
            &reqwest::Client::new(),
            &bearer("ftp://x/y", None, None),
            &[],
            None,
        ))
        .unwrap_err();
        assert!(matches!(err, AuthError::BadResponse(_)), "{err:?}");
        Ok(())
    }
}
