//! The kinds of source this crate registers beside the built-in ones: a source of this crate
//! is its module and its line in [`BUILT_IN`]. Above the sources, so that none of them names
//! this list.

use std::sync::Arc;

use catalog_core::{ModelRef, OtherRef, ParseRefError};

use crate::register::SourceKind;

/// The kinds of source this crate registers beside the built-in ones: a source of this crate
/// is its module and its line here.
static BUILT_IN: &[&dyn SourceKind] = &[
    #[cfg(feature = "hf")]
    &crate::modelscope::ModelScopeKind::FROM_ENV,
    #[cfg(feature = "gcs")]
    &crate::gcs::GcsKind::FROM_ENV,
    #[cfg(feature = "azure")]
    &crate::azure::AzureKind::FROM_ENV,
];

/// Parses `text` as a reference of a built-in scheme or of a source this crate registers,
/// checked by that source: for parsing before a provisioner is built (the command line's).
///
/// # Errors
///
/// When `text` is no reference of those schemes, or its source cannot read it.
pub fn parse_ref(text: &str) -> std::result::Result<ModelRef, ParseRefError> {
    let schemes: Vec<&str> = BUILT_IN.iter().flat_map(|k| k.schemes()).copied().collect();
    let reference = claim(ModelRef::parse_with(text, &schemes)?);
    if let ModelRef::Other(other) = &reference {
        check(BUILT_IN, other)?;
    }
    Ok(reference)
}

/// Refuses `reference` when the first of `kinds` that reads its scheme cannot read it
/// ([`SourceKind::check`]); a scheme none reads is not theirs to refuse.
///
/// # Errors
///
/// The kind's own reason.
pub(crate) fn check(
    kinds: &[&dyn SourceKind],
    reference: &OtherRef,
) -> std::result::Result<(), ParseRefError> {
    kinds
        .iter()
        .find(|k| k.schemes().contains(&reference.scheme()))
        .map_or(Ok(()), |k| k.check(reference))
}

/// `reference`, or the reference of a registered scheme that one of this crate's kinds reads
/// it as ([`SourceKind::claim`]).
pub(crate) fn claim(reference: ModelRef) -> ModelRef {
    BUILT_IN
        .iter()
        .find_map(|k| k.claim(&reference))
        .unwrap_or(reference)
}

/// The kinds registered with a builder: a library user's first, so that one configured
/// otherwise stands before this crate's of the same scheme, then this crate's.
pub(crate) fn kinds(added: &[Arc<dyn SourceKind>]) -> Vec<&dyn SourceKind> {
    added
        .iter()
        .map(|k| &**k)
        .chain(BUILT_IN.iter().copied())
        .collect()
}
