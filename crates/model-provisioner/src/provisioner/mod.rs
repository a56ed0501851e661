//! [`ModelProvisioner`]: resolve a reference to a verified local path recorded in the catalog.
//!
//! The type, its settings and its catalog queries are here; each concept has a module of its
//! own: `ensure.rs` ([`ModelProvisioner::ensure`]: the id, the single-flight lock), `reuse.rs`
//! (a cached entry handed out without reading it), `record.rs` (a fetch checked and recorded,
//! a failure recorded), `verify.rs` ([`ModelProvisioner::verify`]).

mod ensure;
mod record;
mod reuse;
mod verify;

pub use ensure::Ensured;
pub use verify::Verified;

use std::path::PathBuf;
use std::sync::Arc;

use catalog_core::{
    CacheLayout, CatalogEntry, CatalogStore, FsCatalog, ModelInfo, ModelRef, Outcome,
};

use crate::error::{Error, Result};
use crate::fetcher::ModelFetcher;
use crate::file::FileFetcher;
use mp_progress::{NoReporter, Reporter};

/// Makes sure models are present, verified and recorded, with catalog `C` and fetcher `F`.
#[derive(Debug)]
pub struct ModelProvisioner<C: CatalogStore, F: ModelFetcher> {
    catalog: C,
    fetcher: F,
    pub(crate) layout: CacheLayout,
    pub(crate) reporter: Arc<dyn Reporter>,
    /// The registry and bucket clients of [`push`](Self::push) and [`mirror`](Self::mirror).
    #[cfg(feature = "http")]
    pub(crate) publisher: crate::publish::Publisher,
    refresh: bool,
    single_flight: bool,
    lock_timeout: Option<std::time::Duration>,
    /// Who must have signed which models.
    #[cfg(feature = "signing")]
    signing: crate::signing::Signing,
}

impl ModelProvisioner<FsCatalog, FileFetcher> {
    /// A provisioner for local files only, with the catalog under `cache_dir`. It performs no
    /// network I/O: the file fetcher has none, and other schemes fail with an error that says
    /// what would be needed.
    pub fn file_only(cache_dir: impl Into<PathBuf>) -> Result<Self> {
        let catalog = FsCatalog::open(cache_dir)?;
        let layout = catalog.layout().clone();
        Ok(Self::new(catalog, FileFetcher::in_place(), layout))
    }
}

impl<F: ModelFetcher> ModelProvisioner<FsCatalog, F> {
    /// A provisioner over an [`FsCatalog`] at `cache_dir` and the given fetcher.
    pub fn with_fetcher(cache_dir: impl Into<PathBuf>, fetcher: F) -> Result<Self> {
        let catalog = FsCatalog::open(cache_dir)?;
        let layout = catalog.layout().clone();
        Ok(Self::new(catalog, fetcher, layout))
    }
}

impl<C: CatalogStore, F: ModelFetcher> ModelProvisioner<C, F> {
    /// A provisioner from its parts; `layout` is where fetchers stage and publish files.
    pub fn new(catalog: C, fetcher: F, layout: CacheLayout) -> Self {
        ModelProvisioner {
            catalog,
            fetcher,
            layout,
            reporter: Arc::new(NoReporter),
            #[cfg(feature = "http")]
            publisher: crate::publish::Publisher::default(),
            refresh: false,
            single_flight: true,
            lock_timeout: None,
            #[cfg(feature = "signing")]
            signing: crate::signing::Signing::default(),
        }
    }

    /// Checks models' signatures: `explicit` for every model ensured (the command line's
    /// `--signed-by`), else the first of `rules` whose prefix starts the model's id or
    /// reference; a model with a `model.sig` and no policy is checked as far as it can be.
    #[cfg(feature = "signing")]
    #[must_use]
    pub fn with_signers(
        mut self,
        explicit: Option<crate::signing::SignerPolicy>,
        rules: crate::signing::SignerRules,
    ) -> Self {
        self.signing.explicit = explicit;
        self.signing.rules = rules;
        self
    }

    /// Checks models against a bundle (read, or fetched when a check first needs it) when they
    /// have no `model.sig` of their own (the command line's `--signature`).
    #[cfg(feature = "signing")]
    #[must_use]
    pub(crate) fn with_detached_signature(
        mut self,
        detached: Option<crate::signing::Detached>,
    ) -> Self {
        self.signing.detached = detached;
        self
    }

    /// Sends progress to `reporter`.
    #[must_use]
    pub fn with_reporter(mut self, reporter: Arc<dyn Reporter>) -> Self {
        self.reporter = reporter;
        self
    }

    /// With `refresh`, an entry already in the catalog is not trusted as it is: the reference
    /// is resolved and fetched again (a moved branch brings its new commit; files already in the
    /// store are reused, not downloaded again).
    #[must_use]
    pub fn with_refresh(mut self, refresh: bool) -> Self {
        self.refresh = refresh;
        self
    }

    /// Waits at most `timeout` for another process fetching the same model (forever: `None`).
    #[must_use]
    pub fn with_lock_timeout(mut self, timeout: Option<std::time::Duration>) -> Self {
        self.lock_timeout = timeout;
        self
    }

    /// Pushes through `publisher`'s clients.
    #[cfg(feature = "http")]
    #[must_use]
    pub(crate) fn with_publisher(mut self, publisher: crate::publish::Publisher) -> Self {
        self.publisher = publisher;
        self
    }

    /// Turns the per-model lock off (for tests showing that correctness does not need it):
    /// concurrent ensures of one model may then fetch it more than once.
    #[must_use]
    pub fn with_single_flight(mut self, on: bool) -> Self {
        self.single_flight = on;
        self
    }

    /// The catalog.
    pub fn catalog(&self) -> &C {
        &self.catalog
    }

    /// The fetcher.
    pub fn fetcher(&self) -> &F {
        &self.fetcher
    }

    /// Parses `text` as a reference: the built-in schemes, and those of the sources
    /// registered with this provisioner's fetcher.
    pub fn parse_ref(&self, text: &str) -> Result<ModelRef> {
        let reference = ModelRef::parse_with(text, &self.fetcher.schemes())?;
        #[cfg(feature = "http")]
        let reference = crate::registered::claim(reference);
        self.fetcher.check(&reference)?;
        Ok(reference)
    }

    /// Looks an entry up by id, or by a reference that resolves to one.
    pub fn find(&self, id_or_ref: &str) -> Result<CatalogEntry> {
        if let Some(entry) = self.catalog.get(id_or_ref)? {
            return Ok(entry);
        }
        if let Ok(mr) = id_or_ref.parse::<ModelRef>()
            && let Ok(id) = self.fetcher.complete(&mr).unwrap_or(mr).canonical_id()
            && let Some(entry) = self.catalog.get(&id)?
        {
            return Ok(entry);
        }
        Err(Error::UnknownId {
            id: id_or_ref.to_owned(),
        })
    }
}

/// Warns that a model is `warn`: nothing to check it against, and which of its files (if it
/// has several) no source stated a digest for.
fn warn_unvouched(id: &str, files: &[String]) {
    const SHOWN: usize = 5;
    if files.is_empty() {
        tracing::warn!(%id, "artifact is unverified: no expected digest was given");
        return;
    }
    let mut named: Vec<String> = files.iter().take(SHOWN).map(|f| format!("`{f}`")).collect();
    if files.len() > SHOWN {
        named.push(format!("{} more", files.len() - SHOWN));
    }
    tracing::warn!(
        %id,
        "artifact is unverified: no digest was given, and its source stated none for {}",
        named.join(", ")
    );
}

/// Whether the entry's files are a selection (`--include`, `--exclude`) of its source's.
fn selected(entry: &CatalogEntry) -> bool {
    entry
        .provenance
        .as_ref()
        .is_some_and(|p| !(p.include.is_empty() && p.exclude.is_empty()))
}

/// The error for a model whose structural check failed.
fn broken(id: &str, info: &ModelInfo) -> Error {
    Error::Structure {
        id: id.to_owned(),
        problems: info.structure.problems.clone(),
    }
}

/// Logs what looked wrong in a model's files: as a warning when nothing vouches for its bytes,
/// else for `-v` only (a digest that matched says the bytes are the ones wanted).
fn log_warnings(id: &str, info: &ModelInfo, outcome: Outcome) {
    for w in &info.warnings {
        if outcome == Outcome::Pass {
            tracing::info!(%id, "{w}");
        } else {
            tracing::warn!(%id, "{w}");
        }
    }
}
