//! [`HttpFetcher`]: `http://` and `https://` references, through the [download engine](mp_transfer).

use catalog_core::{Digest, ModelRef, SafeRelPath};

use crate::error::{Error, Result};
use crate::pipeline::{ListedFile, Listing, Revision, Source, Stated};
use crate::request::{FetchRequest, unsupported};
use mp_transfer::{DownloadConfig, Downloader, Engine, UrlSource};

/// Fetches a file over HTTP(S) into the cache's content-addressed store: a listing of one
/// file for the [pipeline](crate::pipeline).
///
/// The id is the URL without credentials, query or fragment. The file lands in
/// `blobs/sha256/<hex>` and is linked at `models/http/<host>/<id hash>/<file name>`. Its
/// SHA-256 is always computed while streaming and compared with the expected digest, if any,
/// before anything is published.
#[derive(Debug)]
pub struct HttpFetcher {
    engine: Engine,
    offline: bool,
}

impl Default for HttpFetcher {
    fn default() -> Self {
        HttpFetcher::new(DownloadConfig::default())
    }
}

impl HttpFetcher {
    /// A fetcher with its own download engine, configured by `config`.
    pub fn new(config: DownloadConfig) -> Self {
        HttpFetcher::with_engine(Engine::new(config))
    }

    /// A fetcher that downloads with `engine`, shared with other fetchers.
    pub fn with_engine(engine: Engine) -> Self {
        HttpFetcher {
            engine,
            offline: false,
        }
    }

    /// The same fetcher, asking nothing when `offline`: a URL not in the catalog is then
    /// [`Error::Offline`](crate::Error::Offline), as for every other source.
    #[must_use]
    pub fn offline(mut self, offline: bool) -> Self {
        self.offline = offline;
        self
    }

    /// The download engine, built on first use.
    pub fn engine(&self) -> Result<&Downloader> {
        Ok(self.engine.get()?)
    }
}

impl Source for HttpFetcher {
    fn name(&self) -> &'static str {
        "http"
    }

    /// A URL is a listing of one file, named by the URL's last segment, under
    /// `models/http/<host>/<id hash>/`.
    fn resolve<'s>(&'s self, req: &FetchRequest<'_>) -> Result<Listing<'s>> {
        let ModelRef::Http(http) = req.reference else {
            return Err(unsupported(req.reference));
        };
        if self.offline {
            return Err(Error::Offline {
                reference: req.reference.redacted(),
            });
        }
        let name = http
            .file_name()
            .and_then(file_name)
            .unwrap_or_else(|| "download".to_owned());
        let path = SafeRelPath::file_name(&name)?;
        let host = match (http.url().host_str(), http.url().port()) {
            (Some(h), Some(p)) => format!("{h}-{p}"),
            (Some(h), None) => h.to_owned(),
            (None, _) => "unknown-host".to_owned(),
        };
        let dest = req
            .layout
            .models_dir()
            .join("http")
            .join(host)
            .join(&Digest::sha256_of(req.id.as_bytes()).value()[..16]);
        Ok(Listing {
            label: name,
            dest,
            select: Some(path.clone()),
            fetcher: "http",
            fetcher_version: env!("CARGO_PKG_VERSION").to_owned(),
            revision: Revision::FileEtag,
            origin: None,
            include: Vec::new(),
            exclude: Vec::new(),
            parallel: 1,
            engine: &self.engine,
            claim: None,
            signatures: Vec::new(),
            files: vec![ListedFile {
                path,
                size: None,
                stated: Stated::Nothing,
                checksum: None,
                etag: None,
                media_type: None,
                local: None,
                source: Some(Box::new(UrlSource::new(
                    http.url().clone(),
                    http.redacted(),
                    reqwest::header::HeaderMap::new(),
                ))),
                unpack: None,
            }],
        })
    }
}

/// The last URL segment, percent-decoded, if it is a safe file name.
fn file_name(segment: &str) -> Option<String> {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| char::from(b).to_digit(16);
        match (
            bytes[i],
            bytes.get(i + 1).copied().and_then(hex),
            bytes.get(i + 2).copied().and_then(hex),
        ) {
            (b'%', Some(hi), Some(lo)) => {
                out.push(u8::try_from(hi * 16 + lo).expect("two hex digits fit a byte"));
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    let name = String::from_utf8(out).ok()?;
    catalog_core::SafeRelPath::file_name(name)
        .ok()
        .map(catalog_core::SafeRelPath::into_string)
}

#[cfg(test)]
mod tests {
    use super::file_name;

    #[test]
    fn file_names_are_decoded_and_checked() {
        assert_eq!(
            file_name("model.Q4_K_M.gguf").as_deref(),
            Some("model.Q4_K_M.gguf")
        );
        assert_eq!(
            file_name("my%20model.gguf").as_deref(),
            Some("my model.gguf")
        );
        for bad in [
            "", ".", "..", "%2e%2e", "a%2Fb", "a%5Cb", "%00x", ".hidden", "%ff",
        ] {
            assert_eq!(file_name(bad), None, "{bad}");
        }
    }
}
