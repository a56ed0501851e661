//! [`AnyFetcher`]: one fetcher that hands each reference to the one for its scheme.

use catalog_core::{CatalogEntry, ModelRef};

use crate::error::Result;
use crate::fetcher::{FetchRequest, Fetched, ModelFetcher, unsupported};
use crate::file::FileFetcher;

/// A fetcher that can be shared across threads.
type Boxed = Box<dyn ModelFetcher + Send + Sync>;

/// Dispatches by scheme: local paths to a [`FileFetcher`], URLs, `hf:`, `oci://`, `ollama:`
/// and `s3://` references to the
/// fetchers configured for them. Anything else fails with an error that names what would be
/// needed.
#[derive(Default)]
pub struct AnyFetcher {
    file: FileFetcher,
    http: Option<Boxed>,
    hf: Option<Boxed>,
    oci: Option<Boxed>,
    s3: Option<Boxed>,
}

impl std::fmt::Debug for AnyFetcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AnyFetcher")
            .field("file", &self.file)
            .field("http", &self.http.as_ref().map(|h| h.name()))
            .field("hf", &self.hf.as_ref().map(|h| h.name()))
            .field("oci", &self.oci.as_ref().map(|h| h.name()))
            .field("s3", &self.s3.as_ref().map(|h| h.name()))
            .finish()
    }
}

impl AnyFetcher {
    /// Local files only, handled by `file`.
    pub fn new(file: FileFetcher) -> Self {
        AnyFetcher {
            file,
            http: None,
            hf: None,
            oci: None,
            s3: None,
        }
    }

    /// Also fetches `http://` and `https://` references with `http`.
    #[must_use]
    pub fn with_http(mut self, http: impl ModelFetcher + Send + Sync + 'static) -> Self {
        self.http = Some(Box::new(http));
        self
    }

    /// Also fetches `hf:` references with `hf` (the native client or the shell-out).
    #[must_use]
    pub fn with_hf(mut self, hf: impl ModelFetcher + Send + Sync + 'static) -> Self {
        self.hf = Some(Box::new(hf));
        self
    }

    /// Also fetches `oci://` and `ollama:` references with `oci`.
    #[must_use]
    pub fn with_oci(mut self, oci: impl ModelFetcher + Send + Sync + 'static) -> Self {
        self.oci = Some(Box::new(oci));
        self
    }

    /// Also fetches `s3://` references with `s3`.
    #[must_use]
    pub fn with_s3(mut self, s3: impl ModelFetcher + Send + Sync + 'static) -> Self {
        self.s3 = Some(Box::new(s3));
        self
    }

    /// The fetcher for `mr`'s scheme, or the error that names what this build would need: the
    /// one place that dispatches by scheme.
    pub fn fetcher_for(&self, mr: &ModelRef) -> Result<&dyn ModelFetcher> {
        let configured = match mr {
            ModelRef::File(_) => return Ok(&self.file),
            ModelRef::Http(_) => &self.http,
            ModelRef::Hf(_) => &self.hf,
            ModelRef::Oci(_) | ModelRef::Ollama(_) => &self.oci,
            ModelRef::S3(_) => &self.s3,
        };
        match configured {
            Some(fetcher) => Ok(&**fetcher),
            None => Err(unsupported(mr)),
        }
    }
}

impl ModelFetcher for AnyFetcher {
    fn name(&self) -> &'static str {
        "any"
    }

    fn fetch(&self, req: &FetchRequest<'_>) -> Result<Fetched> {
        self.fetcher_for(req.reference)?.fetch(req)
    }

    fn complete(&self, reference: &ModelRef) -> Option<ModelRef> {
        self.fetcher_for(reference).ok()?.complete(reference)
    }

    fn accepts(&self, entry: &CatalogEntry) -> bool {
        // The entry's source is the reference it was ensured from, without credentials. An
        // entry no fetcher here could make again is still handed out as it is.
        match entry.source.parse::<ModelRef>() {
            Ok(mr) => self.fetcher_for(&mr).map_or(true, |f| f.accepts(entry)),
            Err(_) => true,
        }
    }
}
