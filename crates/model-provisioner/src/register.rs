//! Sources registered by kind: how a source beyond the built-in ones joins a provisioner.
//!
//! A [`SourceKind`] names the schemes it reads and makes its [`Source`] from what every
//! source shares ([`SourceContext`]: the engine and the settings laid over every source).
//! References of those schemes parse as [`ModelRef::Other`] ([`ModelRef::parse_with`]), and
//! [`AnyFetcher`](crate::AnyFetcher) hands them to the source, whose listing the pipeline
//! places as any other. A source of this crate is its module and one line in
//! `registered.rs`; a library user's is its type and one call of
//! [`ProvisionerBuilder::source`](crate::ProvisionerBuilder::source).
//!
//! The built-in schemes (`file:`, `http(s)://`, `hf:`, `oci://`, `ollama:`, `s3://`) keep their
//! typed references in `catalog-core`: their grammar and ids are part of the catalog's format.

use catalog_core::{CatalogEntry, ModelRef, OtherRef, ParseRefError};

use crate::error::Result;
use crate::mirror::MirrorShape;
use crate::pipeline::{Listing, Source};
use crate::request::FetchRequest;
use mp_transfer::Engine;

/// A kind of source: the schemes it reads, and how one is made for a provisioner.
pub trait SourceKind: Send + Sync + std::fmt::Debug {
    /// The schemes it reads, lowercase, without `:` (`gs`, `modelscope`).
    fn schemes(&self) -> &'static [&'static str];

    /// The source, made from what every source shares. Configuration of its own (an endpoint,
    /// credentials) it reads from the environment, as the built-in sources do.
    ///
    /// # Errors
    ///
    /// When its configuration is unusable.
    fn build(&self, context: &SourceContext<'_>) -> Result<Box<dyn Source + Send + Sync>>;

    /// Refuses a reference of its schemes that it cannot read, as parsing refuses one of a
    /// built-in scheme: before anything is built or asked (the command line's usage error).
    ///
    /// # Errors
    ///
    /// When what follows the scheme breaks the source's grammar.
    fn check(&self, reference: &OtherRef) -> std::result::Result<(), ParseRefError> {
        let _ = reference;
        Ok(())
    }

    /// A reference of a built-in scheme that this kind reads as one of its own (an Azure
    /// blob's `https://` URL), so that parsing hands it over with the id of the form it means.
    fn claim(&self, reference: &ModelRef) -> Option<ModelRef> {
        let _ = reference;
        None
    }

    /// What its references name, for mirror rules: a hub's repositories (mirrored in the
    /// layout `hf:` models have), a store of folders (which holds mirrors, and which its source
    /// writes through [`Source::folder`]), or anything else (mapped by text), the default.
    fn mirror_shape(&self) -> MirrorShape {
        MirrorShape::Path
    }
}

/// What every source is made from.
#[derive(Debug)]
pub struct SourceContext<'a> {
    /// The engine every network source shares: one runtime, one connection pool, one memory
    /// budget.
    pub engine: &'a Engine,
    /// Make no network request: answer from what is on this machine, or fail.
    pub offline: bool,
    /// For a reference naming a set of files: only files matching one of these patterns.
    pub include: &'a [String],
    /// For a reference naming a set of files: no file matching one of these patterns.
    pub exclude: &'a [String],
    /// Files of one model placed at once.
    pub parallel_files: usize,
    /// The endpoint the caller named (the command line's `--endpoint-url`), instead of the one
    /// the source reads from the environment.
    pub endpoint: Option<&'a url::Url>,
    /// Send requests unsigned, looking for no credentials (`--no-sign-request`): for a public
    /// bucket.
    pub no_sign_request: bool,
    /// How a push cuts a large file into parts, instead of the store's own sizes.
    pub upload_parts: Option<crate::object_store::PartSizes>,
}

/// A source made by a kind, boxed: it resolves as the source it holds.
impl Source for Box<dyn Source + Send + Sync> {
    fn name(&self) -> &'static str {
        (**self).name()
    }

    fn resolve<'s>(&'s self, req: &FetchRequest<'_>) -> Result<Listing<'s>> {
        (**self).resolve(req)
    }

    fn complete(&self, reference: &ModelRef) -> Option<ModelRef> {
        (**self).complete(reference)
    }

    fn accepts(&self, entry: &CatalogEntry) -> bool {
        (**self).accepts(entry)
    }

    fn read_small(&self, location: &ModelRef, limit: usize) -> Result<Vec<u8>> {
        (**self).read_small(location, limit)
    }

    fn check(&self, reference: &OtherRef) -> std::result::Result<(), ParseRefError> {
        (**self).check(reference)
    }

    fn folder<'s>(
        &'s self,
        destination: &ModelRef,
    ) -> Option<Result<Box<dyn crate::object_store::Folder + 's>>> {
        (**self).folder(destination)
    }
}
