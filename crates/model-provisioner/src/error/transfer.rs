//! An error of this crate to and from the transfer engine's (feature `http`).

use super::Error;

/// A transfer's error in this crate's terms: a mismatch or a cache failure as the ones found
/// without the engine, and an error of ours that the engine carried handed back as it was.
impl From<mp_transfer::Error> for Error {
    fn from(e: mp_transfer::Error) -> Self {
        match e {
            mp_transfer::Error::DigestMismatch(m) => Error::DigestMismatch(m),
            mp_transfer::Error::ChecksumMismatch {
                file,
                expected,
                computed,
            } => Error::ChecksumMismatch {
                file,
                expected: expected.to_string(),
                computed: computed.to_string(),
            },
            mp_transfer::Error::Catalog(e) => Error::Catalog(e),
            mp_transfer::Error::Caller(e) => match e.downcast::<Error>() {
                Ok(ours) => *ours,
                Err(other) => Error::Transfer(mp_transfer::Error::Caller(other)),
            },
            e => Error::Transfer(e),
        }
    }
}

/// An error of ours for the engine to carry (from a request source, a re-authorisation or an
/// upload's check): a transfer error goes back as itself, anything else as the caller's own.
impl From<Error> for mp_transfer::Error {
    fn from(e: Error) -> Self {
        match e {
            Error::Transfer(e) => e,
            Error::DigestMismatch(m) => mp_transfer::Error::DigestMismatch(m),
            e => mp_transfer::Error::Caller(Box::new(e)),
        }
    }
}
