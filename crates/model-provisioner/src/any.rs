//! [`AnyFetcher`]: one fetcher that hands each reference to the one for its scheme.

use catalog_core::{CatalogEntry, ModelRef};

use crate::error::Result;
use crate::fetcher::{FetchRequest, Fetched, ModelFetcher, unsupported};
use crate::file::FileFetcher;

/// Dispatches by scheme: local paths to a [`FileFetcher`], URLs to an
/// [`HttpFetcher`](crate::HttpFetcher) when the `http` feature is on. Anything else fails with
/// an error that names what would be needed.
#[derive(Debug, Default)]
pub struct AnyFetcher {
    file: FileFetcher,
    #[cfg(feature = "http")]
    http: Option<crate::http::HttpFetcher>,
}

impl AnyFetcher {
    /// Local files only, handled by `file`.
    pub fn new(file: FileFetcher) -> Self {
        AnyFetcher {
            file,
            #[cfg(feature = "http")]
            http: None,
        }
    }

    /// Also fetches `http://` and `https://` references with `http`.
    #[cfg(feature = "http")]
    #[must_use]
    pub fn with_http(mut self, http: crate::http::HttpFetcher) -> Self {
        self.http = Some(http);
        self
    }
}

impl ModelFetcher for AnyFetcher {
    fn name(&self) -> &'static str {
        "any"
    }

    fn fetch(&self, req: &FetchRequest<'_>) -> Result<Fetched> {
        match req.reference {
            ModelRef::File(_) => self.file.fetch(req),
            #[cfg(feature = "http")]
            ModelRef::Http(_) if self.http.is_some() => {
                self.http.as_ref().expect("checked").fetch(req)
            }
            other => Err(unsupported(other)),
        }
    }

    fn accepts(&self, entry: &CatalogEntry) -> bool {
        !entry.id.starts_with("file:") || self.file.accepts(entry)
    }
}
