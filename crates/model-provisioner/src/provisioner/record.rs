//! Record: a fetch checked (digest, structure, signature) and recorded; a failure recorded.

use catalog_core::{
    CatalogEntry, CatalogStore, Digest, Lifecycle, ModelInfo, ModelRef, Outcome, Verification,
    now_ms,
};

use super::{ModelProvisioner, broken, log_warnings, warn_unvouched};
use crate::error::{Error, Result};
use crate::fetcher::ModelFetcher;
use crate::model_info::inspect_selection;
use crate::request::FetchRequest;
use mp_progress::Event;

impl<C: CatalogStore, F: ModelFetcher> ModelProvisioner<C, F> {
    pub(super) fn fetch_and_record(
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
    pub(super) fn record_broken(&self, prev: &CatalogEntry, info: ModelInfo) -> Error {
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
}
