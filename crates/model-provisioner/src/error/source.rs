//! A registered source's failure in its own words: its kind, and the errors sources build.

#[cfg(any(feature = "hf", feature = "gcs", feature = "azure"))]
use super::Error;

/// What kind of failure a registered source reports ([`Error::Source`](super::Error::Source)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SourceFailure {
    /// No such model, file, bucket or repository.
    NotFound,
    /// The credentials were refused, or none were found where some are needed.
    Denied,
    /// The endpoint does not answer.
    Unreachable,
    /// The endpoint's certificate is not one this machine trusts.
    Untrusted,
    /// The endpoint answered something its protocol does not allow.
    Protocol,
}

/// A source's failure in its own words, with what to do ([`Error::Source`]).
#[cfg(any(feature = "hf", feature = "gcs", feature = "azure"))]
pub(crate) fn source_failure(failure: SourceFailure, message: String, hint: &str) -> Error {
    Error::Source {
        failure,
        message,
        hint: Some(hint.to_owned()),
    }
}

/// A request of a source's that got no answer, in the source's words: an endpoint whose
/// certificate is not trusted (`untrusted_hint`), or one that does not answer (`unreachable`
/// words the reason, with its hint); any other transfer error in this crate's terms.
#[cfg(any(feature = "gcs", feature = "azure"))]
pub(crate) fn no_answer(
    e: mp_transfer::Error,
    endpoint: &str,
    untrusted_hint: &str,
    unreachable: impl FnOnce(&str) -> (String, &'static str),
) -> Error {
    match e {
        mp_transfer::Error::Download {
            status: None,
            reason,
            source,
            ..
        } => match source
            .as_deref()
            .and_then(|s| mp_transfer::untrusted_certificate(s))
        {
            Some(problem) => source_failure(
                SourceFailure::Untrusted,
                format!("the certificate of `{endpoint}` is not trusted: {problem}"),
                untrusted_hint,
            ),
            None => {
                let (message, hint) = unreachable(&reason);
                source_failure(SourceFailure::Unreachable, message, hint)
            }
        },
        other => Error::from(other),
    }
}
