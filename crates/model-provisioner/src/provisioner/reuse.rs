//! Reuse: a recorded entry handed out without reading its bytes, when they have not changed.

use catalog_core::verify::fingerprint;
use catalog_core::{CatalogEntry, CatalogStore, Digest, Lifecycle, Outcome, now_ms};

use super::{ModelProvisioner, selected};
use crate::error::{Error, Result};
use crate::fetcher::ModelFetcher;
use crate::model_info::inspect_selection;

impl<C: CatalogStore, F: ModelFetcher> ModelProvisioner<C, F> {
    /// The existing entry, if it can be handed out without reading the artifact: its bytes are
    /// unchanged since they were recorded (same fingerprint) and agree with `expected`.
    pub(super) fn reuse(
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
}
