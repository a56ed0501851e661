//! `modelscope:` references: models of ModelScope, a registered source (see
//! [`register`](crate::register)), listed and fetched through ModelScope's HTTP API.
//!
//! `modelscope:org/repo[@rev][/path][:QUANT]` means what the same text means after `hf:`: a
//! whole repository, one file of it, or the GGUF files of one quantisation, at a branch, tag
//! or commit (`master` when none is named). The grammar is `hf:`'s, read by `catalog-core`.
//!
//! ```text
//! GET  <endpoint>/api/v1/models/<org>/<repo>/repo/files?Revision=<rev>&Recursive=true
//!        {"Code": 200, "Data": {"Files": [{"Path", "Type": "blob", "Size", "Sha256", "Revision"}]}}
//! GET  <endpoint>/api/v1/models/<org>/<repo>/repo?Revision=<commit>&FilePath=<path>
//!        the file's bytes (ranges)
//! POST <endpoint>/api/v1/login {"AccessToken": <token>}
//!        Set-Cookie: m_session_id=…, sent with every later request to the endpoint
//! ```
//!
//! - Every file's sha256 comes from the listing and is checked while it streams, so a model
//!   passes without `--digest`.
//! - The endpoint is `--endpoint-url` ([`SourceContext::endpoint`]), else `MODELSCOPE_ENDPOINT`,
//!   else `MODELSCOPE_DOMAIN` (each a host name, or a URL for a private deployment over
//!   `http://`), else ModelScope's own: the order of ModelScope's current client, which keeps
//!   `MODELSCOPE_DOMAIN` as a deprecated name.
//! - `MODELSCOPE_API_TOKEN`, when set, logs in once per source; the session cookie goes to the
//!   endpoint only (the HTTP client drops it on a redirect to another host).
//! - Without it (unset: a blank one means "no token", as in ModelScope's client), the session
//!   its client saved at `modelscope login` is sent as it is, when its cookie is for the
//!   endpoint's host and has not expired ([`mp_credentials::modelscope`], which reads the
//!   client's pickled cookie jar as data). Anything else about the file is logged at debug
//!   level and the source goes on without a session.
//! - Files are published under `models/modelscope/<org>/<repo>/<commit>-<variant>/`, the
//!   variant naming the file filters, as for `hf:`.

use std::sync::OnceLock;

use catalog_core::{Digest, HfRef, ModelRef, OtherRef, ParseRefError, SafeRelPath};
use reqwest::StatusCode;
use reqwest::header::{COOKIE, HeaderMap, HeaderValue};
use serde::Deserialize;

use crate::error::{Error, Result, SourceFailure, source_failure as failure};
use crate::hf::{choose_files, repo_entry_dir};
use crate::pipeline::{ListedFile, Listing, Revision, Source, Stated};
use crate::register::{SourceContext, SourceKind};
use crate::request::FetchRequest;
use mp_transfer::{Call, Engine, UrlSource};

/// ModelScope's own endpoint, when the environment names none.
const DEFAULT_DOMAIN: &str = "www.modelscope.cn";

/// The revision a reference without one names.
const DEFAULT_REVISION: &str = "master";

/// The most a listing may weigh.
const LISTING_LIMIT: usize = 64 << 20;

/// The kind that registers `modelscope:`: this crate registers it configured from the
/// environment; a library user registers one configured otherwise
/// ([`ProvisionerBuilder::source`](crate::ProvisionerBuilder::source)).
#[derive(Debug, Clone)]
pub struct ModelScopeKind {
    endpoint: Option<String>,
    token: Option<mp_credentials::Secret>,
}

impl ModelScopeKind {
    /// `MODELSCOPE_ENDPOINT` (else `MODELSCOPE_DOMAIN`) and `MODELSCOPE_API_TOKEN`, else the
    /// login ModelScope's client saved, read when a provisioner is built.
    pub const FROM_ENV: ModelScopeKind = ModelScopeKind {
        endpoint: None,
        token: None,
    };

    /// ModelScope at `endpoint` (a URL, or a host name over `https://`), logged in to with
    /// `token` when one is given; neither the environment nor a saved login is read.
    pub fn new(endpoint: &str, token: Option<mp_credentials::Secret>) -> Self {
        ModelScopeKind {
            endpoint: Some(self::endpoint(Some(endpoint))),
            token,
        }
    }
}

impl SourceKind for ModelScopeKind {
    fn schemes(&self) -> &'static [&'static str] {
        &["modelscope"]
    }

    fn check(&self, reference: &OtherRef) -> std::result::Result<(), ParseRefError> {
        read(reference).map(drop)
    }

    fn mirror_shape(&self) -> crate::mirror::MirrorShape {
        crate::mirror::MirrorShape::Hub {
            default_revision: DEFAULT_REVISION,
        }
    }

    fn build(&self, context: &SourceContext<'_>) -> Result<Box<dyn Source + Send + Sync>> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        let (endpoint, token, saved) = match (&self.endpoint, context.endpoint) {
            (Some(given), _) => (given.clone(), self.token.clone(), None),
            (None, named) => {
                let endpoint = match named {
                    Some(url) => endpoint(Some(url.as_str())),
                    None => endpoint(named_by(var).as_deref()),
                };
                // Set, even blank, it stands before the saved login, as in ModelScope's client.
                let saved = match std::env::var_os("MODELSCOPE_API_TOKEN") {
                    Some(_) => None,
                    None => saved_login(&endpoint, &|name| std::env::var(name).ok()),
                };
                (
                    endpoint,
                    var("MODELSCOPE_API_TOKEN").map(mp_credentials::Secret::new),
                    saved,
                )
            }
        };
        Ok(Box::new(ModelScope {
            endpoint,
            token,
            saved,
            session: OnceLock::new(),
            engine: context.engine.clone(),
            offline: context.offline,
            include: context.include.to_vec(),
            exclude: context.exclude.to_vec(),
            parallel: context.parallel_files,
        }))
    }
}

/// `reference` read by `hf:`'s grammar, refused in `modelscope:`'s words.
fn read(reference: &OtherRef) -> std::result::Result<HfRef, ParseRefError> {
    let text = reference.to_string();
    match ModelRef::parse_with(&format!("hf:{}", reference.rest()), &[]) {
        Ok(ModelRef::Hf(hf)) => Ok(hf),
        Ok(_) => unreachable!("an `hf:` text parses as an `hf:` reference"),
        Err(e) => Err(ParseRefError::new(&text, e.reason()
                .replace("an `hf:`", "a `modelscope:`")
                .replace("`hf:`", "`modelscope:`"))
            .with_hint("write `modelscope:org/repo`, `modelscope:org/repo/path/in/repo`, `modelscope:org/repo@revision/path` or `modelscope:org/repo@revision:Q4_K_M`")),
    }
}

/// The endpoint the environment names, `var` reading it (blank as unset): `MODELSCOPE_ENDPOINT`,
/// else `MODELSCOPE_DOMAIN`, as ModelScope's client reads them (`modelscope_hub`'s `HubConfig`).
fn named_by(var: impl Fn(&str) -> Option<String>) -> Option<String> {
    var("MODELSCOPE_ENDPOINT").or_else(|| var("MODELSCOPE_DOMAIN"))
}

/// The session ModelScope's client saved at login for `endpoint`'s host, as the cookie to
/// send; `None`, with the reason logged at debug level, when there is none to use.
fn saved_login(endpoint: &str, env: &dyn Fn(&str) -> Option<String>) -> Option<HeaderValue> {
    let url = url::Url::parse(endpoint).ok()?;
    let host = url.host_str()?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let session =
        mp_credentials::modelscope::saved_session(env, host, url.scheme() == "https", now)
            .map_err(|why| tracing::debug!(endpoint, %why, "no saved ModelScope login"))
            .ok()?;
    let Ok(mut cookie) = HeaderValue::from_str(&format!("m_session_id={}", session.expose()))
    else {
        tracing::debug!(
            endpoint,
            "the saved ModelScope session is not a cookie value"
        );
        return None;
    };
    cookie.set_sensitive(true);
    tracing::debug!(
        endpoint,
        "the session ModelScope's client saved at login is sent"
    );
    Some(cookie)
}

/// The endpoint `domain` names: a URL as given, a host name over `https://`.
fn endpoint(domain: Option<&str>) -> String {
    let domain = domain
        .unwrap_or(DEFAULT_DOMAIN)
        .trim()
        .trim_end_matches('/');
    if domain.contains("://") {
        domain.to_owned()
    } else {
        format!("https://{domain}")
    }
}

/// The `modelscope:` source.
struct ModelScope {
    endpoint: String,
    token: Option<mp_credentials::Secret>,
    /// The session cookie ModelScope's client saved, when there is no token.
    saved: Option<HeaderValue>,
    /// The session cookie the token logged in for, once asked.
    session: OnceLock<Option<HeaderValue>>,
    engine: Engine,
    offline: bool,
    include: Vec<String>,
    exclude: Vec<String>,
    parallel: usize,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Answer<T> {
    code: u64,
    #[serde(default)]
    message: String,
    data: Option<T>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Files {
    #[serde(default)]
    files: Vec<RemoteFile>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RemoteFile {
    path: String,
    #[serde(rename = "Type")]
    kind: String,
    #[serde(default)]
    size: Option<u64>,
    #[serde(default)]
    sha256: Option<String>,
    #[serde(default)]
    revision: Option<String>,
}

impl ModelScope {
    /// The reference `req` holds, read by `hf:`'s grammar.
    fn repo(reference: &ModelRef) -> Result<HfRef> {
        let ModelRef::Other(other) = reference else {
            return Err(crate::request::unsupported(reference));
        };
        Ok(read(other)?)
    }

    /// The cookie of a session the token logged in for, else the saved one; `None` without
    /// either.
    fn session(&self) -> Result<Option<HeaderValue>> {
        if let Some(session) = self.session.get() {
            return Ok(session.clone());
        }
        let Some(token) = &self.token else {
            return Ok(self.saved.clone());
        };
        let url = format!("{}/api/v1/login", self.endpoint);
        let body = serde_json::json!({ "AccessToken": token.expose() }).to_string();
        let engine = self.engine.get()?;
        let response = engine.block_on(mp_transfer::call(
            engine.api_client(),
            engine.config().retry,
            &Call::new(&url, |c| {
                c.post(&url)
                    .header(reqwest::header::CONTENT_TYPE, "application/json")
                    .body(body.clone())
            }),
            &|| None,
        ))?;
        if !response.status().is_success() {
            return Err(failure(
                SourceFailure::Denied,
                format!(
                    "ModelScope at `{}` refused the token (HTTP {})",
                    self.endpoint,
                    response.status()
                ),
                "check `MODELSCOPE_API_TOKEN`: an access token from the site's account settings",
            ));
        }
        let cookie = response
            .headers()
            .get_all(reqwest::header::SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .filter_map(|v| v.split(';').next())
            .find(|pair| pair.trim_start().starts_with("m_session_id="))
            .and_then(|pair| HeaderValue::from_str(pair.trim()).ok())
            .map(|mut v| {
                v.set_sensitive(true);
                v
            });
        if cookie.is_none() {
            return Err(failure(
                SourceFailure::Protocol,
                format!(
                    "ModelScope at `{}` logged in without a session",
                    self.endpoint
                ),
                "check `--endpoint-url`, `MODELSCOPE_ENDPOINT` or `MODELSCOPE_DOMAIN`: it should name a ModelScope site",
            ));
        }
        Ok(self.session.get_or_init(|| cookie).clone())
    }

    fn headers(&self) -> Result<HeaderMap> {
        let mut headers = HeaderMap::new();
        if let Some(cookie) = self.session()? {
            headers.insert(COOKIE, cookie);
        }
        Ok(headers)
    }

    /// The files of `hf` at `revision`, and the commit they are at.
    fn list(&self, hf: &HfRef, revision: &str) -> Result<(Vec<RemoteFile>, String)> {
        let repo = hf.repo_id();
        let url = self.api_url(
            &format!("models/{repo}/repo/files"),
            &[("Revision", revision), ("Recursive", "true")],
        )?;
        let headers = self.headers()?;
        let engine = self.engine.get()?;
        let (status, body) = engine.block_on(async {
            let response = mp_transfer::call(
                engine.api_client(),
                engine.config().retry,
                &Call::new(url.as_str(), |c| {
                    c.get(url.clone()).headers(headers.clone())
                }),
                &|| None,
            )
            .await?;
            let status = response.status();
            let body = mp_transfer::read_bounded(response, LISTING_LIMIT)
                .await
                .map_err(|_| {
                    failure(
                        SourceFailure::Protocol,
                        format!(
                            "the listing of `{repo}` at `{}` did not come whole",
                            self.endpoint
                        ),
                        "run the same command again",
                    )
                })?;
            Ok::<_, Error>((status, body))
        })?;
        let at = format!("`{repo}` at revision `{revision}` on `{}`", self.endpoint);
        match status {
            StatusCode::NOT_FOUND => {
                return Err(failure(
                    SourceFailure::NotFound,
                    format!("not found on ModelScope: {at}"),
                    "check the organisation, repository and revision",
                ));
            }
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                return Err(failure(
                    SourceFailure::Denied,
                    format!("ModelScope refused access to {at} (HTTP {status})"),
                    "set `MODELSCOPE_API_TOKEN` to a token with access to this repository, or log in again with `modelscope login`",
                ));
            }
            s if !s.is_success() => {
                return Err(failure(
                    SourceFailure::Protocol,
                    format!("ModelScope answered HTTP {s} for {at}"),
                    "run the same command again later",
                ));
            }
            _ => {}
        }
        let answer: Answer<Files> = serde_json::from_slice(&body).map_err(|e| {
            failure(
                SourceFailure::Protocol,
                format!("the listing of {at} is not ModelScope's: {e}"),
                "check `--endpoint-url`, `MODELSCOPE_ENDPOINT` or `MODELSCOPE_DOMAIN`: it should name a ModelScope site",
            )
        })?;
        if answer.code != 200 {
            return Err(failure(
                SourceFailure::NotFound,
                format!("ModelScope has no {at}: {}", answer.message),
                "check the organisation, repository and revision",
            ));
        }
        let files: Vec<RemoteFile> = answer
            .data
            .map(|d| d.files)
            .unwrap_or_default()
            .into_iter()
            .filter(|f| f.kind == "blob")
            .collect();
        // The commit every file is at, when the listing names one; else the revision asked.
        let commit = files
            .first()
            .and_then(|f| f.revision.clone())
            .filter(|c| files.iter().all(|f| f.revision.as_ref() == Some(c)))
            .unwrap_or_else(|| revision.to_owned());
        Ok((files, commit))
    }

    /// The paths of the listing `hf` asks for: the one file it names, the files of its
    /// quantisation, or every file the filters pass.
    fn choose(&self, hf: &HfRef, names: Vec<String>) -> Result<Vec<String>> {
        match &hf.path {
            Some(path) => Ok(names.into_iter().filter(|n| n == path).collect()),
            None => choose_files(hf, names, &self.include, &self.exclude),
        }
    }

    /// `<endpoint>/api/v1/<path>?<query>`, the query's values encoded.
    fn api_url(&self, path: &str, query: &[(&str, &str)]) -> Result<url::Url> {
        let mut url =
            url::Url::parse(&format!("{}/api/v1/{path}", self.endpoint)).map_err(|e| {
                failure(
                    SourceFailure::Protocol,
                    format!("`{}` makes no URL: {e}", self.endpoint),
                    "check `--endpoint-url`, `MODELSCOPE_ENDPOINT` or `MODELSCOPE_DOMAIN`",
                )
            })?;
        url.query_pairs_mut().extend_pairs(query);
        Ok(url)
    }
}

impl Source for ModelScope {
    fn name(&self) -> &'static str {
        "modelscope"
    }

    fn check(&self, reference: &OtherRef) -> std::result::Result<(), ParseRefError> {
        read(reference).map(drop)
    }

    fn resolve<'s>(&'s self, req: &FetchRequest<'_>) -> Result<Listing<'s>> {
        let hf = Self::repo(req.reference)?;
        if self.offline {
            return Err(Error::Offline {
                reference: req.reference.redacted(),
            });
        }
        let revision = hf.revision.as_deref().unwrap_or(DEFAULT_REVISION);
        let (listed, commit) = self.list(&hf, revision)?;
        let names = self.choose(&hf, listed.iter().map(|f| f.path.clone()).collect())?;
        if names.is_empty() {
            let what = match &hf.path {
                Some(path) => format!("`{path}` is not a file of `{}` at `{commit}`", hf.repo_id()),
                None => format!(
                    "no file of `{}` at `{commit}` matches the include/exclude patterns",
                    hf.repo_id()
                ),
            };
            return Err(failure(
                SourceFailure::NotFound,
                format!("not found on ModelScope: {what}"),
                "check the file's path, and the `--include`/`--exclude` patterns",
            ));
        }
        let headers = self.headers()?;
        let mut files = Vec::with_capacity(names.len());
        for remote in listed.iter().filter(|f| names.contains(&f.path)) {
            let url = self.api_url(
                &format!("models/{}/repo", hf.repo_id()),
                &[("Revision", &commit), ("FilePath", &remote.path)],
            )?;
            let stated = match remote.sha256.as_deref().filter(|s| !s.is_empty()) {
                Some(hex) => {
                    Stated::Sha256(format!("sha256:{hex}").parse::<Digest>().map_err(|e| {
                        failure(
                            SourceFailure::Protocol,
                            format!("ModelScope states no sha256 for `{}`: {e}", remote.path),
                            "run the same command again later",
                        )
                    })?)
                }
                None => Stated::Nothing,
            };
            files.push(ListedFile {
                path: SafeRelPath::new(remote.path.clone())?,
                size: remote.size,
                stated,
                checksum: None,
                etag: None,
                media_type: None,
                local: None,
                source: Some(Box::new(UrlSource::new(
                    url.clone(),
                    url.as_str(),
                    headers.clone(),
                ))),
                unpack: None,
            });
        }
        Ok(Listing {
            label: format!("modelscope:{}", hf.repo_id()),
            dest: repo_entry_dir(
                req.layout,
                "modelscope",
                &hf,
                req.id,
                &commit,
                (&self.include, &self.exclude),
            ),
            select: hf.path.as_deref().map(SafeRelPath::new).transpose()?,
            fetcher: "modelscope",
            fetcher_version: env!("CARGO_PKG_VERSION").to_owned(),
            revision: Revision::Named(commit),
            origin: Some(self.endpoint.clone()),
            include: self.include.clone(),
            exclude: self.exclude.clone(),
            parallel: self.parallel,
            engine: &self.engine,
            files,
            claim: None,
            signatures: Vec::new(),
        })
    }

    /// The reference in its normal form (`hf:`'s), so that one model has one id.
    fn complete(&self, reference: &ModelRef) -> Option<ModelRef> {
        let text = ModelRef::Hf(Self::repo(reference).ok()?).to_string();
        let rest = text.strip_prefix("hf:")?;
        ModelRef::parse_with(&format!("modelscope:{rest}"), &["modelscope"])
            .ok()
            .filter(|normal| normal != reference)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_endpoint_is_a_host_over_https_or_a_url_as_given() {
        assert_eq!(endpoint(None), "https://www.modelscope.cn");
        assert_eq!(endpoint(Some("ms.internal")), "https://ms.internal");
        assert_eq!(
            endpoint(Some("http://127.0.0.1:8080/")),
            "http://127.0.0.1:8080"
        );
    }

    #[test]
    fn modelscope_endpoint_stands_before_the_deprecated_modelscope_domain() {
        let env = |vars: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                vars.iter()
                    .find(|(k, v)| *k == name && !v.trim().is_empty())
                    .map(|(_, v)| (*v).to_owned())
            }
        };
        let both = env(&[
            ("MODELSCOPE_DOMAIN", "old.internal"),
            ("MODELSCOPE_ENDPOINT", "http://ms.internal:8080"),
        ]);
        assert_eq!(named_by(both).as_deref(), Some("http://ms.internal:8080"));
        let old = env(&[("MODELSCOPE_DOMAIN", "old.internal")]);
        assert_eq!(endpoint(named_by(old).as_deref()), "https://old.internal");
        // A blank variable is no variable.
        let blank = env(&[
            ("MODELSCOPE_ENDPOINT", " "),
            ("MODELSCOPE_DOMAIN", "old.internal"),
        ]);
        assert_eq!(named_by(blank).as_deref(), Some("old.internal"));
        let new = env(&[("MODELSCOPE_ENDPOINT", "ms.internal")]);
        assert_eq!(endpoint(named_by(new).as_deref()), "https://ms.internal");
        assert_eq!(
            endpoint(named_by(env(&[])).as_deref()),
            "https://www.modelscope.cn"
        );
    }

    #[test]
    fn a_reference_reads_as_hf_does() -> Result<()> {
        let r = ModelRef::parse_with("modelscope:Qwen/Qwen3-GGUF@v1:Q4_K_M", &["modelscope"])?;
        let hf = ModelScope::repo(&r)?;
        assert_eq!(hf.repo_id(), "Qwen/Qwen3-GGUF");
        assert_eq!(hf.revision.as_deref(), Some("v1"));
        assert_eq!(hf.quant.as_deref(), Some("Q4_K_M"));
        let bad = ModelRef::parse_with("modelscope:org/../x", &["modelscope"])?;
        assert!(ModelScope::repo(&bad).is_err());
        // Refused before anything is built, in this scheme's words.
        let err = crate::registered::parse_ref("modelscope:org").unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid model reference `modelscope:org`: a `modelscope:` reference needs at least `org/repo`"
        );
        assert!(
            err.hint()
                .is_some_and(|h| h.starts_with("write `modelscope:org/repo`"))
        );
        Ok(())
    }
}
