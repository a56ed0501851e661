//! The fetcher interface: how the provisioner gets bytes for a reference.

use catalog_core::{CatalogEntry, ModelRef};

use crate::error::Result;
use crate::request::{FetchRequest, Fetched};

/// Gets the bytes of a model reference onto this machine.
///
/// A fetcher that hashes must compare with `expected` *before* it publishes anything under
/// the cache, with [`Error::check_digest`](crate::Error::check_digest), which fails with
/// [`Error::DigestMismatch`](crate::Error::DigestMismatch). A
/// model of several files is best made with an [`Assembly`](crate::Assembly), which does that.
pub trait ModelFetcher {
    /// A short name recorded in provenance (`file`, `hf-native`, …).
    fn name(&self) -> &'static str;

    /// Produces the artifact for `request`.
    fn fetch(&self, request: &FetchRequest<'_>) -> Result<Fetched>;

    /// The reference completed from this fetcher's configuration, when its id depends on it
    /// (an `s3://` reference gains the endpoint it is fetched from, so that one bucket name on
    /// two servers is two models). `None`: the reference is complete as written.
    fn complete(&self, reference: &ModelRef) -> Option<ModelRef> {
        let _ = reference;
        None
    }

    /// This fetcher as a [`Source`](crate::pipeline::Source), when it is one: a mirror's copy
    /// of another source's model is listed through it.
    #[cfg(feature = "http")]
    fn source(&self) -> Option<&dyn crate::pipeline::Source> {
        None
    }

    /// Whether an existing entry is what this fetcher would produce, so that it can be reused.
    fn accepts(&self, entry: &CatalogEntry) -> bool {
        let _ = entry;
        true
    }

    /// The folder of a bucket `destination` names, for a push into it, when a source of this
    /// fetcher writes there ([`Source::folder`](crate::pipeline::Source::folder)).
    #[cfg(feature = "http")]
    fn folder(
        &self,
        destination: &ModelRef,
    ) -> Option<Result<Box<dyn crate::object_store::Folder + '_>>> {
        let _ = destination;
        None
    }

    /// The schemes of registered sources it reads beside the built-in ones, so that their
    /// references parse ([`ModelRef::parse_with`]).
    fn schemes(&self) -> Vec<&'static str> {
        Vec::new()
    }

    /// Refuses a reference of a registered scheme that its source cannot read.
    ///
    /// # Errors
    ///
    /// When what follows the scheme breaks the source's grammar.
    fn check(&self, reference: &ModelRef) -> std::result::Result<(), catalog_core::ParseRefError> {
        let _ = reference;
        Ok(())
    }
}

#[cfg(feature = "http")]
impl<S: crate::pipeline::Source> ModelFetcher for S {
    fn name(&self) -> &'static str {
        crate::pipeline::Source::name(self)
    }

    /// The source resolves; the pipeline places.
    fn fetch(&self, req: &FetchRequest<'_>) -> Result<Fetched> {
        crate::pipeline::place(req, self.resolve(req)?)
    }

    fn complete(&self, reference: &ModelRef) -> Option<ModelRef> {
        crate::pipeline::Source::complete(self, reference)
    }

    fn source(&self) -> Option<&dyn crate::pipeline::Source> {
        Some(self)
    }

    fn accepts(&self, entry: &CatalogEntry) -> bool {
        crate::pipeline::Source::accepts(self, entry)
    }

    fn folder(
        &self,
        destination: &ModelRef,
    ) -> Option<Result<Box<dyn crate::object_store::Folder + '_>>> {
        crate::pipeline::Source::folder(self, destination)
    }

    fn check(&self, reference: &ModelRef) -> std::result::Result<(), catalog_core::ParseRefError> {
        match reference {
            ModelRef::Other(other) => crate::pipeline::Source::check(self, other),
            _ => Ok(()),
        }
    }
}
