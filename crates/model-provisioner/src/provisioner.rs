//! [`ModelProvisioner`]: resolve a reference to a verified local path recorded in the catalog.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use catalog_core::verify::{fingerprint, hash_path};
use catalog_core::{
    CacheLayout, CatalogEntry, CatalogStore, Digest, FsCatalog, Lifecycle, ModelInfo, ModelRef,
    Outcome, ResolvedModel, Verification, now_ms,
};

use crate::error::{Error, Result};
use crate::fetcher::ModelFetcher;
use crate::file::FileFetcher;
use crate::model_info::inspect_selection;
use crate::request::FetchRequest;
use mp_progress::{Event, NoReporter, Reporter};

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

/// The full outcome of an ensure, for front ends that show more than the path.
#[derive(Debug, Clone)]
pub struct Ensured {
    /// The id and local path.
    pub resolved: ResolvedModel,
    /// The entry as recorded.
    pub entry: CatalogEntry,
    /// Whether the catalog already had it and nothing was read or fetched.
    pub cached: bool,
    /// Bytes read or transferred by this call.
    pub bytes_read: u64,
    /// How long the call took.
    pub duration_ms: u64,
}

/// The outcome of [`ModelProvisioner::verify`].
#[derive(Debug, Clone)]
pub struct Verified {
    /// The entry as recorded after the check.
    pub entry: CatalogEntry,
    /// Bytes hashed.
    pub bytes: u64,
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

    /// Parses `model_ref` ([`parse_ref`](Self::parse_ref)) and ensures it; see
    /// [`ensure_present`](Self::ensure_present).
    pub fn ensure_present_str(
        &self,
        model_ref: &str,
        expected_digest: Option<Digest>,
    ) -> Result<ResolvedModel> {
        self.ensure_present(&self.parse_ref(model_ref)?, expected_digest)
    }

    /// Makes sure the model is on this machine and recorded as Active, and returns its id and
    /// local path. With `expected_digest`, the bytes are checked against it (a mismatch is an
    /// error and leaves no Active entry). Without one, a digest recorded by an earlier ensure
    /// is used when the bytes have to be read again; with neither, the artifact is recorded as
    /// unverified and a warning is logged.
    #[expect(
        clippy::needless_pass_by_value,
        reason = "the signature is the one the spec names"
    )]
    pub fn ensure_present(
        &self,
        mr: &ModelRef,
        expected_digest: Option<Digest>,
    ) -> Result<ResolvedModel> {
        self.ensure(mr, expected_digest.as_ref())
            .map(|e| e.resolved)
    }

    /// Like [`ensure_present`](Self::ensure_present), with everything a front end may show.
    pub fn ensure(&self, mr: &ModelRef, expected: Option<&Digest>) -> Result<Ensured> {
        let start = Instant::now();
        let completed = self.fetcher.complete(mr);
        let mr = completed.as_ref().unwrap_or(mr);
        let id = resolve_id(mr)?;
        let result = self.ensure_id(mr, &id, expected);
        let duration_ms = u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX);
        match result {
            Ok((entry, cached, bytes_read)) => {
                // A fetch said which files no source vouched for; a model reused says it again.
                if cached && expected.is_none() && entry.verification.outcome == Outcome::Warn {
                    warn_unvouched(&entry.id, &[]);
                }
                tracing::info!(
                    id = %entry.id,
                    bytes = entry.size_bytes,
                    bytes_read,
                    duration_ms,
                    verification = %entry.verification.outcome,
                    cached,
                    "model ensured"
                );
                self.reporter.event(&Event::Done {
                    id: &entry.id,
                    local_path: &entry.local_path,
                    verification: &entry.verification.outcome.to_string(),
                    cached,
                    bytes_read,
                    ms: duration_ms,
                });
                Ok(Ensured {
                    resolved: ResolvedModel {
                        id: entry.id.clone(),
                        local_path: entry.local_path.clone(),
                    },
                    entry,
                    cached,
                    bytes_read,
                    duration_ms,
                })
            }
            Err(err) => {
                tracing::info!(%id, duration_ms, verification = if err.is_verification_failure() { "fail" } else { "none" }, error = %err, "ensure failed");
                self.reporter.event(&Event::Failed {
                    id: &id,
                    class: err.class(),
                    message: &err.to_string(),
                });
                Err(err)
            }
        }
    }

    /// Reuses the catalog's entry for `id`, or fetches under the id's single-flight lock.
    fn ensure_id(
        &self,
        mr: &ModelRef,
        id: &str,
        expected: Option<&Digest>,
    ) -> Result<(CatalogEntry, bool, u64)> {
        let mut previous = self.catalog.get(id)?;
        let mut locked = None;
        loop {
            // A digest given once keeps guarding the entry: changed bytes are checked against it.
            let expected = expected.or_else(|| previous.as_ref().and_then(|p| p.digest.as_ref()));
            if let Some(p) = &previous
                && let Some(entry) = self.reuse(p, expected)?
            {
                return Ok((entry, true, 0));
            }
            if locked.is_some() {
                return self.fetch_and_record(mr, id, expected, previous.as_ref());
            }
            // One process fetches; the others wait, then find the result in the catalog. The
            // lock only saves work: correctness never depends on it.
            locked = Some(self.lock_id(id)?);
            previous = self.catalog.get(id)?;
        }
    }

    /// Takes `locks/<hash of id>.lock`, waiting (and saying so) while another process holds
    /// it, up to the lock timeout. The OS releases it when its holder dies, however it dies.
    fn lock_id(&self, id: &str) -> Result<Option<std::fs::File>> {
        if !self.single_flight {
            return Ok(None);
        }
        let dir = self.layout.root().join("locks");
        self.layout.create_dir(&dir)?;
        let path = dir.join(format!(
            "{}.lock",
            &Digest::sha256_of(id.as_bytes()).value()[..32]
        ));
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| catalog_core::Error::io("open the lock", &path, e))?;
        match file.try_lock() {
            Ok(()) => return Ok(Some(file)),
            Err(std::fs::TryLockError::WouldBlock) => {}
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(catalog_core::Error::io("lock", &path, e).into());
            }
        }
        tracing::warn!(%id, "another process is fetching this model; waiting for it");
        self.reporter.event(&Event::Waiting { id });
        let started = Instant::now();
        loop {
            std::thread::sleep(std::time::Duration::from_millis(50));
            match file.try_lock() {
                Ok(()) => return Ok(Some(file)),
                Err(std::fs::TryLockError::WouldBlock) => {}
                Err(std::fs::TryLockError::Error(e)) => {
                    return Err(catalog_core::Error::io("lock", &path, e).into());
                }
            }
            if let Some(limit) = self.lock_timeout
                && started.elapsed() >= limit
            {
                return Err(Error::LockTimeout {
                    id: id.to_owned(),
                    waited_s: started.elapsed().as_secs(),
                });
            }
        }
    }

    /// The existing entry, if it can be handed out without reading the artifact: its bytes are
    /// unchanged since they were recorded (same fingerprint) and agree with `expected`.
    fn reuse(
        &self,
        entry: &CatalogEntry,
        expected: Option<&Digest>,
    ) -> Result<Option<CatalogEntry>> {
        if self.refresh
            || entry.verification.outcome == Outcome::Fail
            || !self.fetcher.accepts(entry)
        {
            return Ok(None);
        }
        let Ok(now) = fingerprint(&entry.local_path) else {
            return Ok(None);
        };
        if entry.fingerprint.as_ref() != Some(&now) {
            return Ok(None);
        }
        let mut updated = entry.clone();
        if let Some(expected) = expected {
            // Unchanged bytes with a known digest: compare without reading them.
            let Some(computed) = &entry.verification.computed else {
                return Ok(None);
            };
            updated.verification.outcome =
                Error::check_digest(&entry.id, Some(expected), computed)?;
            updated.digest = Some(expected.clone());
        }
        if entry.model_info.is_none() {
            // Recorded before this build read what a model is: read it once now.
            let info = inspect_selection(&entry.local_path, selected(entry))
                .map_err(|e| Error::read(&entry.local_path, e))?;
            if info.is_broken() {
                return Err(self.record_broken(entry, info));
            }
            updated.model_info = Some(info);
        }
        updated.lifecycle = Lifecycle::Active;
        // A policy for it holds its recorded files (no byte read again) against its signature;
        // a refusal is recorded on the entry, which stays, and fails the ensure. A signature
        // that cannot be had (`--offline`, a server that does not answer) fails it unrecorded:
        // it says nothing of the model.
        #[cfg(feature = "signing")]
        let refused = if self.signing.has_policy(&entry.id, &entry.source) {
            match self
                .signing
                .check(&self.layout, &updated, &*self.reporter, &[])
            {
                Ok(signature) => {
                    updated.signature = signature;
                    None
                }
                Err(e) => {
                    if e.is_verification_failure() {
                        updated.signature = Some(crate::signing::failed(&e.to_string()));
                    }
                    Some(e)
                }
            }
        } else {
            None
        };
        if updated != *entry {
            updated.updated_ms = now_ms();
            self.catalog.put(updated.clone())?;
        }
        #[cfg(feature = "signing")]
        if let Some(e) = refused {
            return Err(e);
        }
        Ok(Some(updated))
    }

    fn fetch_and_record(
        &self,
        mr: &ModelRef,
        id: &str,
        expected: Option<&Digest>,
        previous: Option<&CatalogEntry>,
    ) -> Result<(CatalogEntry, bool, u64)> {
        let request = FetchRequest {
            reference: mr,
            id,
            expected,
            layout: &self.layout,
            reporter: &*self.reporter,
            previous,
        };
        let fetched = match self.fetcher.fetch(&request) {
            Ok(f) => f,
            Err(err) => {
                if let (Error::DigestMismatch(mismatch), Some(prev)) = (&err, previous) {
                    self.record_failure(prev, &mismatch.computed)?;
                }
                return Err(err);
            }
        };
        // A digest the source stated, which the bytes were checked against, stands in for one
        // the caller did not give.
        let checked_against = expected.or(fetched.source_digest.as_ref());
        let outcome = match (&fetched.computed, checked_against) {
            // A fetcher is meant to catch a mismatch itself; this is the backstop.
            (Some(computed), _) => match Error::check_digest(id, checked_against, computed) {
                Ok(outcome) => outcome,
                Err(err) => {
                    if let Some(prev) = previous {
                        self.record_failure(prev, computed)?;
                    }
                    return Err(err);
                }
            },
            (None, None) => Outcome::Warn,
            (None, Some(_)) => unreachable!("fetchers hash whenever a digest is expected"),
        };
        // Headers and sizes only: cheap next to the fetch. A broken model is not recorded as
        // good; a model the cache holds stays unreferenced, for `gc`.
        let selection =
            !(fetched.provenance.include.is_empty() && fetched.provenance.exclude.is_empty());
        let info = inspect_selection(&fetched.local_path, selection)
            .map_err(|e| Error::read(&fetched.local_path, e))?;
        if info.is_broken() {
            return Err(match previous {
                Some(prev) => self.record_broken(prev, info),
                None => broken(id, &info),
            });
        }
        log_warnings(id, &info, outcome);
        if outcome == Outcome::Warn {
            warn_unvouched(id, &fetched.unvouched);
        }
        let now = now_ms();
        #[cfg_attr(
            not(feature = "signing"),
            expect(unused_mut, reason = "only a signature check adds to it")
        )]
        let mut entry = CatalogEntry {
            id: id.to_owned(),
            source: mr.redacted(),
            local_path: fetched.local_path,
            lifecycle: Lifecycle::Active,
            storage: fetched.storage,
            digest: expected.cloned(),
            source_digest: fetched.source_digest,
            last_verified_ms: fetched.computed.as_ref().map(|_| now),
            verification: Verification {
                outcome,
                computed: fetched.computed,
            },
            size_bytes: fetched.size_bytes,
            fingerprint: Some(fetched.fingerprint),
            created_ms: previous.map_or(now, |p| p.created_ms),
            updated_ms: now,
            provenance: Some(fetched.provenance),
            model_info: Some(info),
            signature: None,
        };
        // A model its policy refuses is not recorded: the cache keeps its files, for `gc`.
        #[cfg(feature = "signing")]
        {
            entry.signature =
                self.signing
                    .check(&self.layout, &entry, &*self.reporter, &fetched.signatures)?;
        }
        self.catalog.put(entry.clone())?;
        self.reporter.event(&Event::Published {
            id,
            local_path: &entry.local_path,
        });
        Ok((entry, false, fetched.bytes_read))
    }

    /// Records that `prev`'s artifact no longer matches, so that it is not handed out.
    fn record_failure(&self, prev: &CatalogEntry, computed: &Digest) -> Result<()> {
        let mut failed = prev.clone();
        failed.lifecycle = Lifecycle::Retired;
        failed.verification = Verification {
            outcome: Outcome::Fail,
            computed: Some(computed.clone()),
        };
        failed.last_verified_ms = Some(now_ms());
        failed.updated_ms = now_ms();
        self.catalog.put(failed)?;
        Ok(())
    }

    /// Records that `prev`'s files are broken, so that it is not handed out, and returns the
    /// error to report (or the catalog's, if recording failed).
    fn record_broken(&self, prev: &CatalogEntry, info: ModelInfo) -> Error {
        let err = broken(&prev.id, &info);
        let mut failed = prev.clone();
        failed.lifecycle = Lifecycle::Retired;
        failed.verification.outcome = Outcome::Fail;
        failed.model_info = Some(info);
        failed.updated_ms = now_ms();
        match self.catalog.put(failed) {
            Ok(()) => err,
            Err(e) => e.into(),
        }
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

    /// Re-hashes an entry's artifact, records the outcome, and fails on a mismatch with the
    /// expected digest (or, when none was given, with the digest recorded earlier).
    pub fn verify(&self, id_or_ref: &str) -> Result<Verified> {
        let entry = self.find(id_or_ref)?;
        let path = &entry.local_path;
        let before = fingerprint(path).map_err(|e| Error::read(path, e))?;
        let progress = self.reporter.start(&entry.id, Some(before.size));
        let hashed = hash_path(path, &mut |n| progress.advance(n));
        progress.finish();
        let (computed, bytes) = hashed.map_err(|e| Error::read(path, e))?;
        if fingerprint(path).map_err(|e| Error::read(path, e))? != before {
            return Err(Error::ChangedWhileHashing { path: path.clone() });
        }
        let reference = entry
            .digest
            .as_ref()
            .or(entry.source_digest.as_ref())
            .or(entry.verification.computed.as_ref());
        let info = inspect_selection(path, selected(&entry)).map_err(|e| Error::read(path, e))?;
        // A digest mismatch is the first thing to say; a broken file the next.
        let checked = Error::check_digest(&entry.id, reference, &computed).and_then(|o| {
            if info.is_broken() {
                Err(broken(&entry.id, &info))
            } else {
                Ok(o)
            }
        });
        // Agreeing with a digest computed earlier, rather than one given, is no pass.
        let outcome = match &checked {
            Ok(_) if entry.digest.is_some() || entry.source_digest.is_some() => Outcome::Pass,
            Ok(_) => Outcome::Warn,
            Err(_) => Outcome::Fail,
        };
        log_warnings(&entry.id, &info, outcome);
        let mut updated = entry.clone();
        updated.verification = Verification {
            outcome,
            computed: Some(computed.clone()),
        };
        // A mismatch keeps the digest recorded before, so later checks still compare with it.
        if outcome == Outcome::Fail {
            updated
                .verification
                .computed
                .clone_from(&entry.verification.computed);
        }
        updated.last_verified_ms = Some(now_ms());
        updated.fingerprint = Some(before);
        updated.model_info = Some(info);
        updated.updated_ms = now_ms();
        // The signature again, over bytes just found to be the recorded ones.
        #[cfg(feature = "signing")]
        let signed = match &checked {
            Ok(_) => match self
                .signing
                .check(&self.layout, &updated, &*self.reporter, &[])
            {
                Ok(signature) => {
                    updated.signature = signature;
                    Ok(())
                }
                Err(e) => {
                    if e.is_verification_failure() {
                        updated.signature = Some(crate::signing::failed(&e.to_string()));
                    }
                    Err(e)
                }
            },
            Err(_) => Ok(()),
        };
        self.catalog.put(updated.clone())?;
        tracing::info!(id = %updated.id, bytes, verification = %outcome, "model verified");
        checked?;
        #[cfg(feature = "signing")]
        signed?;
        Ok(Verified {
            entry: updated,
            bytes,
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

/// The catalog id of `mr`; a local path that does not exist is an error here.
fn resolve_id(mr: &ModelRef) -> Result<String> {
    mr.canonical_id().map_err(|source| match mr {
        ModelRef::File(f) if source.kind() == std::io::ErrorKind::NotFound => Error::NotFound {
            path: f.path.clone(),
        },
        ModelRef::File(f) => Error::Read {
            path: f.path.clone(),
            source,
        },
        _ => unreachable!("only local paths touch the file system"),
    })
}
