//! [`ModelProvisioner::push`] and [`ModelProvisioner::mirror`]: the library calls that publish
//! a model of the catalog through the provisioner's [`Publisher`](crate::publish::Publisher),
//! and record a model found to have changed as failing.

use catalog_core::{CatalogStore, ModelRef};

use crate::error::Result;
use crate::fetcher::ModelFetcher;
use crate::provisioner::ModelProvisioner;
use crate::publish::{Mirrored, Pushed};

impl<C: CatalogStore, F: ModelFetcher> ModelProvisioner<C, F> {
    /// Publishes the model `id_or_ref` names (its id, or a reference that resolves to it) at
    /// `destination`: a registry's tag (`oci://registry/repo:tag`, a CNCF `ModelPack` artifact,
    /// one layer per file, blobs the registry has skipped) or a bucket's folder
    /// (`s3://bucket/prefix/`, every file with its sha256, then a manifest). A pull of the
    /// destination verifies against the same digests.
    ///
    /// Nothing is published unless the model's bytes match the catalog's digests; a model
    /// found to have changed is recorded as failing, as [`verify`](Self::verify) records it.
    ///
    /// ```no_run
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use model_provisioner::ModelProvisioner;
    ///
    /// let provisioner = ModelProvisioner::builder("/var/cache/models").build()?;
    /// let pushed = provisioner.push("hf:org/repo", &"oci://registry.internal/models/repo:v1".parse()?)?;
    /// println!("{} files, manifest {:?}", pushed.files, pushed.manifest_digest);
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::UnknownId`](crate::Error::UnknownId); [`Error::PushScheme`](crate::Error::PushScheme) for a destination that is no registry or
    /// bucket; a verification failure ([`Error::DigestMismatch`](crate::Error::DigestMismatch), [`Error::PushDigestRefused`](crate::Error::PushDigestRefused))
    /// when the model's bytes changed; the registry's or the store's refusals.
    pub fn push(&self, id_or_ref: &str, destination: &ModelRef) -> Result<Pushed> {
        let pushed = self.find(id_or_ref).and_then(|entry| {
            self.publisher.push(
                &self.layout,
                &entry,
                destination,
                &*self.reporter,
                self.fetcher(),
            )
        });
        self.recording_failure(id_or_ref, pushed)
    }

    /// Pushes the model `id_or_ref` names to the mirror `mirror_prefix` (a rule's mirror side,
    /// `oci://registry[/path]` or `s3://bucket[/prefix]`), exactly where `ensure` with a rule to
    /// that prefix looks for it, and says that rule. An `hf:` model goes into the mirror layout
    /// (see [`mirror`](crate::mirror)), carrying the Hub's sha256 of every file and the commit;
    /// any other model goes where the rule from its registry or bucket to the prefix maps it.
    /// Verified, and a changed model recorded as failing, as for [`push`](Self::push).
    ///
    /// # Errors
    ///
    /// As [`push`](Self::push); [`Error::MirrorSource`](crate::Error::MirrorSource) for a model from a web server or a local
    /// file; [`Error::MirrorPrefix`](crate::Error::MirrorPrefix), [`Error::MirrorLocation`](crate::Error::MirrorLocation) or [`Error::MirrorScheme`](crate::Error::MirrorScheme) for
    /// a prefix that gives the model no place a push can go; [`Error::MirrorCommit`](crate::Error::MirrorCommit) for an
    /// `hf:` model whose entry records no commit.
    pub fn mirror(&self, id_or_ref: &str, mirror_prefix: &str) -> Result<Mirrored> {
        let mirrored = self.find(id_or_ref).and_then(|entry| {
            self.publisher.mirror(
                &self.layout,
                &entry,
                mirror_prefix.trim(),
                &*self.reporter,
                self.fetcher(),
            )
        });
        self.recording_failure(id_or_ref, mirrored)
    }

    /// `result`, after the entry was verified again when `result` is a verification failure:
    /// that records the failure, as `verify` does.
    fn recording_failure<T>(&self, id_or_ref: &str, result: Result<T>) -> Result<T> {
        if let Err(e) = &result
            && e.is_verification_failure()
            && let Err(recorded) = self.verify(id_or_ref)
            && !recorded.is_verification_failure()
        {
            tracing::warn!(error = %recorded, "the failed verification could not be recorded");
        }
        result
    }
}
