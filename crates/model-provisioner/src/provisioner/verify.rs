//! Verify: an entry's artifact hashed again, its outcome recorded.

use catalog_core::verify::{fingerprint, hash_path};
use catalog_core::{CatalogEntry, CatalogStore, Outcome, Verification, now_ms};

use super::{ModelProvisioner, broken, log_warnings, selected};
use crate::error::{Error, Result};
use crate::fetcher::ModelFetcher;
use crate::model_info::inspect_selection;

/// The outcome of [`ModelProvisioner::verify`].
#[derive(Debug, Clone)]
pub struct Verified {
    /// The entry as recorded after the check.
    pub entry: CatalogEntry,
    /// Bytes hashed.
    pub bytes: u64,
}

impl<C: CatalogStore, F: ModelFetcher> ModelProvisioner<C, F> {
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
