//! What a push signs the model it publishes with (`push --sign`): below the pushes of every
//! kind of destination (a registry's referrer, a bucket's `model.sig`), which take it as given.

use crate::error::Result;

/// What a push signs the model it publishes with (`push --sign`), if anything: the bundle
/// `model.sig` over exactly the files pushed, with the catalog's sha256s.
#[derive(Debug, Clone, Default)]
pub(crate) struct Sign {
    #[cfg(feature = "signing")]
    pub(crate) signer: Option<crate::signing::PushSigner>,
}

impl Sign {
    /// The name of the bundle in a model's folder.
    pub(crate) const FILE: &str = "model.sig";

    /// Whether pushes are signed: then a `model.sig` the model has is not pushed as one of its
    /// files, and a new one, over the files pushed, takes its place.
    #[cfg_attr(
        not(feature = "signing"),
        expect(clippy::unused_self, reason = "it holds a signer with the feature on")
    )]
    pub(crate) fn is_on(&self) -> bool {
        #[cfg(feature = "signing")]
        return self.signer.is_some();
        #[cfg(not(feature = "signing"))]
        false
    }

    /// The bundle over `files` (the ones pushed) for the model `id`, when pushes are signed.
    ///
    /// # Errors
    ///
    /// [`Error::PushSign`](crate::Error::PushSign) when the files cannot be signed (more than the format holds).
    #[cfg_attr(
        not(feature = "signing"),
        expect(
            clippy::unnecessary_wraps,
            clippy::unused_self,
            reason = "it signs with the feature on"
        )
    )]
    pub(crate) fn bundle(
        &self,
        id: &str,
        files: &[crate::model_files::ModelFile],
    ) -> Result<Option<Vec<u8>>> {
        #[cfg(feature = "signing")]
        if let Some(signer) = &self.signer {
            let pairs: Vec<_> = files
                .iter()
                .map(|f| (f.rel.clone(), f.digest.clone()))
                .collect();
            return signer.sign(&pairs, id).map(Some);
        }
        let _ = (id, files);
        Ok(None)
    }
}
