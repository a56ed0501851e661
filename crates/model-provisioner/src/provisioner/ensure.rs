//! Ensure: a reference's id, the cached entry or a fetch under the id's single-flight lock.

use std::time::Instant;

use catalog_core::{CatalogEntry, CatalogStore, Digest, ModelRef, Outcome, ResolvedModel};

use super::{ModelProvisioner, warn_unvouched};
use crate::error::{Error, Result};
use crate::fetcher::ModelFetcher;
use mp_progress::Event;

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

impl<C: CatalogStore, F: ModelFetcher> ModelProvisioner<C, F> {
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
