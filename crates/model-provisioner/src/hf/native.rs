//! [`HfFetcher`]: the Hub's HTTP API, spoken directly, every byte checked.
//!
//! 1. `GET <endpoint>/api/models/<org>/<repo>/revision/<rev>` resolves the revision to a
//!    commit and lists the repository's files.
//! 2. `HEAD <endpoint>/<org>/<repo>/resolve/<commit>/<path>` (redirects not followed) gives each
//!    file's size and `ETag`; for LFS files the `ETag` (or `X-Linked-Etag`) is the file's sha256.
//! 3. Each file comes from the content-addressed store if a blob with that sha256 is there,
//!    else from the Hugging Face cache if it holds the file at that commit (checked), else it
//!    is downloaded by the [download engine](mp_transfer), verified against the sha256
//!    while streaming. Several files are fetched at once.
//!
//! The token goes in `Authorization` to the endpoint's own host only; the HTTP client drops it
//! on a redirect to another host. It is never logged, and never written anywhere.

use std::path::PathBuf;

use catalog_core::{CatalogEntry, Digest, HfRef, ModelRef, SafeRelPath};
use reqwest::StatusCode;
use reqwest::header::{self, HeaderMap, HeaderValue};
use serde::Deserialize;

use super::{
    HfConfig, entry_dir, hub_cache_claimed_sha256, hub_cache_commit, hub_cache_repo, remote_names,
    selection,
};
use crate::error::{Error, Result};
use crate::parallel::in_parallel;
use crate::pipeline::{ListedFile, Listing, LocalCopy, Revision, Source, Stated};
use crate::request::{FetchRequest, unsupported};
use mp_transfer::{self, BodyError, Call, DownloadConfig, Downloader, Engine, UrlSource};

/// The largest revision listing read: a repository of 100,000 files lists in a few MiB.
const LISTING_LIMIT: usize = 64 << 20;

/// Fetches `hf:` references with the Hub's HTTP API: resolves the revision to a commit, asks
/// each file's size and sha256 with a `HEAD`, and takes each file from the store, the Hugging
/// Face cache or the network, checked against that sha256.
#[derive(Debug)]
pub struct HfFetcher {
    config: HfConfig,
    engine: Engine,
}

/// `GET /api/models/<repo>/revision/<rev>`, the parts we read.
#[derive(Debug, Deserialize)]
struct RevisionInfo {
    sha: String,
    #[serde(default)]
    siblings: Vec<Sibling>,
}

#[derive(Debug, Deserialize)]
struct Sibling {
    rfilename: String,
}

/// What a `HEAD` says of one file.
#[derive(Debug)]
struct FileJob {
    rel: SafeRelPath,
    size: Option<u64>,
    /// The sha256 the Hub states (LFS files).
    sha256: Option<Digest>,
    /// The git blob id the Hub states (small files kept in git).
    git_oid: Option<String>,
}

impl HfFetcher {
    /// A fetcher with `config`, downloading with `download`.
    pub fn new(config: HfConfig, download: DownloadConfig) -> Self {
        HfFetcher::with_engine(config, Engine::new(download))
    }

    /// A fetcher with `config`, downloading with `engine`, shared with other fetchers.
    pub fn with_engine(config: HfConfig, engine: Engine) -> Self {
        HfFetcher { config, engine }
    }

    fn engine(&self) -> Result<&Downloader> {
        Ok(self.engine.get()?)
    }

    /// The engine's client for API calls and HEADs, which does not follow redirects, so that
    /// the Hub's `X-Linked-*` headers on a redirect to a CDN can be read.
    fn api(&self) -> Result<&reqwest::Client> {
        Ok(self.engine()?.api_client())
    }

    /// `Authorization` for requests to the endpoint, when there is a token.
    fn auth_headers(&self) -> HeaderMap {
        let mut headers = HeaderMap::new();
        if let Some(token) = &self.config.token
            && let Ok(mut value) = HeaderValue::from_str(&format!("Bearer {}", token.expose()))
        {
            value.set_sensitive(true);
            headers.insert(header::AUTHORIZATION, value);
        }
        headers
    }

    fn repo_url(&self, hf: &HfRef) -> String {
        format!("{}/{}/{}", self.config.endpoint, hf.org, hf.repo)
    }

    fn resolve_url(&self, hf: &HfRef, commit: &str, rel: &str) -> Result<url::Url> {
        let text = format!("{}/resolve/{commit}/{rel}", self.repo_url(hf));
        url::Url::parse(&text).map_err(|e| {
            Error::Transfer(mp_transfer::Error::Setup {
                what: "build a download URL from `HF_ENDPOINT`",
                source: Box::new(e),
            })
        })
    }

    /// Sends the request `build` makes through the engine's one request loop: transient
    /// failures (connection errors, timeouts, `5xx`, `429`) retried with its policy.
    async fn send_api(
        &self,
        url: &str,
        build: impl Fn(&reqwest::Client) -> reqwest::RequestBuilder + Send + Sync,
    ) -> Result<reqwest::Response> {
        let policy = self.engine()?.config().retry;
        Ok(mp_transfer::call(self.api()?, policy, &Call::new(url, build), &|| None).await?)
    }

    /// Resolves `revision` to a commit and lists the repository's files.
    fn revision_info(&self, hf: &HfRef, revision: &str) -> Result<RevisionInfo> {
        let url = format!(
            "{}/api/models/{}/{}/revision/{}",
            self.config.endpoint, hf.org, hf.repo, revision
        );
        let engine = self.engine()?;
        engine.block_on(async {
            let response = self
                .send_api(&url, |c| c.get(&url).headers(self.auth_headers()))
                .await?;
            // The Hub answers 401 `RepoNotFound` for a repository that does not exist or is
            // private (and some mirrors do for a missing revision too).
            let code = response
                .headers()
                .get("x-error-code")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned();
            match response.status() {
                StatusCode::OK => {
                    let bad = |reason: String, source: Option<Box<dyn std::error::Error + Send + Sync>>| {
                        Error::Transfer(mp_transfer::Error::Download {
                            url: url.clone(),
                            status: None,
                            attempts: 1,
                            reason,
                            source,
                        })
                    };
                    let body = mp_transfer::read_bounded(response, LISTING_LIMIT)
                        .await
                        .map_err(|e| match e {
                            BodyError::Failed(e) => api_error(&url, e),
                            BodyError::TooLarge => bad(
                                format!("the Hub's listing is larger than {} MiB", LISTING_LIMIT >> 20),
                                None,
                            ),
                        })?;
                    serde_json::from_slice::<RevisionInfo>(&body).map_err(|e| {
                        bad("the Hub's answer is not the JSON expected".to_owned(), Some(Box::new(e)))
                    })
                }
                StatusCode::NOT_FOUND => Err(Error::HfNotFound {
                    what: format!("repository `{}` at revision `{revision}`", hf.repo_id()),
                }),
                StatusCode::UNAUTHORIZED if code == "RepoNotFound" || code == "RevisionNotFound" => {
                    Err(Error::HfNotFound {
                        what: format!(
                            "repository `{}` at revision `{revision}` (or it is private and needs a token)",
                            hf.repo_id()
                        ),
                    })
                }
                s @ (StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) => Err(Error::HfDenied {
                    repo: hf.repo_id(),
                    status: s.as_u16(),
                }),
                s => Err(Error::Transfer(mp_transfer::Error::Download {
                    url,
                    status: Some(s.as_u16()),
                    attempts: 1,
                    reason: format!("HTTP {s}"),
                    source: None,
                })),
            }
        })
    }

    /// Size and stated sha256 of one file, from a `HEAD` that does not follow redirects.
    fn head(
        &self,
        hf: &HfRef,
        commit: &str,
        rel: &str,
    ) -> Result<(Option<u64>, Option<Digest>, Option<String>)> {
        let url = self.resolve_url(hf, commit, rel)?;
        self.engine()?.block_on(async {
            let response = self
                .send_api(url.as_str(), |c| {
                    c.head(url.clone()).headers(self.auth_headers())
                })
                .await?;
            let status = response.status();
            if status == StatusCode::NOT_FOUND {
                return Err(Error::HfNotFound {
                    what: format!("file `{rel}` in `{}` at `{commit}`", hf.repo_id()),
                });
            }
            if !(status.is_success() || status.is_redirection()) {
                // Some servers refuse HEAD: the download will tell size and digest anyway.
                return Ok((None, None, None));
            }
            let h = response.headers();
            let get = |name: &str| h.get(name).and_then(|v| v.to_str().ok());
            let size = get("x-linked-size")
                .or_else(|| status.is_success().then(|| get("content-length")).flatten())
                .and_then(|s| s.parse().ok());
            let etag = get("x-linked-etag").or_else(|| get("etag"));
            let sha256 = etag.and_then(etag_sha256);
            // Without a sha256, the ETag of a file kept in git is its git blob id.
            let git_oid = get("etag")
                .and_then(etag_git_oid)
                .filter(|_| sha256.is_none());
            Ok((size, sha256, git_oid))
        })
    }

    /// The listing of `hf` at its revision: the Hub's files, each with the size and digest a
    /// `HEAD` states, to be taken from the store, the Hugging Face cache or the Hub.
    fn resolve_hf<'s>(&'s self, req: &FetchRequest<'_>, hf: &HfRef) -> Result<Listing<'s>> {
        let revision = hf.revision.as_deref().unwrap_or("main");
        if self.config.offline {
            return self.offline_from_hub_cache(req, hf, revision);
        }
        let info = self.revision_info(hf, revision)?;
        let commit = info.sha;
        let names: Vec<String> = match &hf.path {
            Some(path) => {
                if !info.siblings.iter().any(|s| &s.rfilename == path) {
                    return Err(Error::HfNotFound {
                        what: format!("file `{path}` in `{}` at `{commit}`", hf.repo_id()),
                    });
                }
                vec![path.clone()]
            }
            None => self
                .config
                .choose(hf, info.siblings.into_iter().map(|s| s.rfilename).collect())?,
        };
        if names.is_empty() {
            return Err(Error::HfNotFound {
                what: format!(
                    "no file of `{}` at `{commit}` matches the include/exclude patterns",
                    hf.repo_id()
                ),
            });
        }
        let names = remote_names(names)?;
        let jobs = self.plan(hf, &commit, names)?;
        let mut files = Vec::with_capacity(jobs.len());
        for job in jobs {
            let url = self.resolve_url(hf, &commit, job.rel.as_str())?;
            let display = url.as_str().to_owned();
            let (stated, etag) = match (job.sha256, job.git_oid) {
                (Some(sha), _) => {
                    let etag = sha.value().to_owned();
                    (Stated::Sha256(sha), Some(etag))
                }
                (None, Some(oid)) => (Stated::GitBlob(oid.clone()), Some(oid)),
                (None, None) => (Stated::Nothing, None),
            };
            files.push(ListedFile {
                local: self
                    .hub_cache_file(hf, &commit, &job.rel)
                    .map(|path| LocalCopy {
                        path,
                        claimed: None,
                    }),
                path: job.rel,
                size: job.size,
                stated,
                checksum: None,
                etag,
                media_type: None,
                source: Some(Box::new(UrlSource::new(url, display, self.auth_headers()))),
                unpack: None,
            });
        }
        self.listing(req, hf, commit, files)
    }

    /// The listing of `files` of `hf` at `commit`, published in the entry's directory.
    fn listing<'s>(
        &'s self,
        req: &FetchRequest<'_>,
        hf: &HfRef,
        commit: String,
        files: Vec<ListedFile<'s>>,
    ) -> Result<Listing<'s>> {
        Ok(Listing {
            label: hf.repo_id(),
            dest: entry_dir(req.layout, hf, req.id, &commit, &self.config),
            select: selection(hf)?,
            fetcher: "hf-native",
            fetcher_version: env!("CARGO_PKG_VERSION").to_owned(),
            revision: Revision::Named(commit),
            origin: None,
            include: self.config.include.clone(),
            exclude: self.config.exclude.clone(),
            parallel: self.config.parallel_files,
            engine: &self.engine,
            claim: None,
            signatures: Vec::new(),
            files,
        })
    }

    /// Sizes and stated digests of every file, by `HEAD`, several at once.
    fn plan(&self, hf: &HfRef, commit: &str, names: Vec<SafeRelPath>) -> Result<Vec<FileJob>> {
        // HEADs are cheap for the server: twice as many at once as downloads.
        in_parallel(names, self.config.parallel_files * 2, |rel| {
            let (size, sha256, git_oid) = self.head(hf, commit, rel.as_str())?;
            Ok(FileJob {
                rel,
                size,
                sha256,
                git_oid,
            })
        })
    }

    /// The file in the Hugging Face cache's snapshot of `commit`, if it is there.
    fn hub_cache_file(&self, hf: &HfRef, commit: &str, rel: &SafeRelPath) -> Option<PathBuf> {
        let cache = self.config.hub_cache.as_ref()?;
        let path = hub_cache_repo(cache, hf)
            .join("snapshots")
            .join(commit)
            .join(rel.as_path());
        path.is_file().then_some(path)
    }

    /// Offline: every file from the Hugging Face cache, or a clear error.
    fn offline_from_hub_cache<'s>(
        &'s self,
        req: &FetchRequest<'_>,
        hf: &HfRef,
        revision: &str,
    ) -> Result<Listing<'s>> {
        let offline = || Error::HfOffline {
            reference: req.reference.redacted(),
            cache: self.config.hub_cache.clone(),
        };
        let cache = self.config.hub_cache.as_ref().ok_or_else(offline)?;
        let commit = hub_cache_commit(cache, hf, revision).ok_or_else(offline)?;
        let snapshot = hub_cache_repo(cache, hf).join("snapshots").join(&commit);
        let names: Vec<String> = match &hf.path {
            Some(p) => vec![p.clone()],
            None => self.config.choose(
                hf,
                catalog_core::verify::walk_tree(&snapshot)
                    .map_err(|_| offline())?
                    .into_iter()
                    .map(|f| f.rel)
                    .collect(),
            )?,
        };
        let names = remote_names(names)?;
        if names.is_empty() || names.iter().any(|n| !snapshot.join(n.as_path()).is_file()) {
            return Err(offline());
        }
        let files = names
            .into_iter()
            .map(|rel| {
                let path = snapshot.join(rel.as_path());
                ListedFile {
                    local: Some(LocalCopy {
                        claimed: hub_cache_claimed_sha256(&path),
                        path,
                    }),
                    path: rel,
                    size: None,
                    stated: Stated::Nothing,
                    checksum: None,
                    etag: None,
                    media_type: None,
                    source: None,
                    unpack: None,
                }
            })
            .collect();
        self.listing(req, hf, commit, files)
    }
}

impl Source for HfFetcher {
    fn name(&self) -> &'static str {
        "hf-native"
    }

    fn resolve<'s>(&'s self, req: &FetchRequest<'_>) -> Result<Listing<'s>> {
        match req.reference {
            ModelRef::Hf(hf) => self.resolve_hf(req, hf),
            other => Err(unsupported(other)),
        }
    }

    fn accepts(&self, entry: &CatalogEntry) -> bool {
        self.config.same_selection(entry.provenance.as_ref())
    }
}

/// The git blob id in an `ETag`, when it is one (40 hex digits, possibly quoted).
fn etag_git_oid(etag: &str) -> Option<String> {
    let value = etag.trim().trim_start_matches("W/").trim_matches('"');
    (value.len() == 40 && value.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| value.to_ascii_lowercase())
}

/// The sha256 in an `ETag`, when it is one (`"<64 hex>"`, possibly weak).
fn etag_sha256(etag: &str) -> Option<Digest> {
    let value = etag.trim().trim_start_matches("W/").trim_matches('"');
    (value.len() == 64)
        .then(|| format!("sha256:{value}").parse().ok())
        .flatten()
}

fn api_error(url: &str, e: reqwest::Error) -> Error {
    Error::Transfer(mp_transfer::Error::Download {
        url: url.to_owned(),
        status: e.status().map(|s| s.as_u16()),
        attempts: 1,
        reason: if e.is_connect() {
            "could not connect".to_owned()
        } else if e.is_decode() {
            "the Hub's answer is not the JSON expected".to_owned()
        } else {
            "the request failed".to_owned()
        },
        source: Some(Box::new(e.without_url())),
    })
}

#[cfg(test)]
mod tests {
    use super::etag_sha256;

    #[test]
    fn etags_that_are_sha256() {
        let hex = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        assert_eq!(
            etag_sha256(&format!("\"{hex}\"")).map(|d| d.value().to_owned()),
            Some(hex.to_owned())
        );
        assert_eq!(
            etag_sha256(&format!("W/\"{hex}\"")).map(|d| d.value().to_owned()),
            Some(hex.to_owned())
        );
        assert_eq!(etag_sha256("\"0123abcd\""), None, "a git sha1 is no sha256");
    }
}
