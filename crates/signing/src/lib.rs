//! The `OpenSSF` model-signing format: a Sigstore bundle, by convention `model.sig` at a model's
//! root, whose DSSE envelope signs an in-toto statement listing every file of the model with
//! its sha256.
//!
//! - [`Bundle::read`] reads a bundle and the statement in it, bounded and total: a bundle
//!   over [`MAX_BUNDLE_BYTES`], a statement over [`MAX_STATEMENT_BYTES`] or of more than
//!   [`MAX_FILES`] files, a path that leaves the model, a file listed twice, an unknown
//!   statement or predicate type, a chain over [`MAX_CHAIN_LEN`] or with a loop are each an
//!   [`Error`], never a panic.
//! - [`verify`] holds a bundle against a [`Policy`] (a key, a CA and an optional identity;
//!   keyless is refused as not supported yet) and the model's `(path, sha256)` pairs, already
//!   known: the signature, then every file, exactly. [`verify_file`] checks one file.
//!   The answer is [`Signed`] (who, the model digest) or [`Refused`] (which check failed).
//! - [`sign`] makes the bundle the reference `model_signing verify key` / `verify certificate`
//!   accepts, with a [`Signer`].
//!
//! No file is read, hashed or fetched here: keys, certificates and bundles come in as bytes.
//! `docs/signing.md` states what is checked and the format facts relied on.
#![deny(missing_docs)]

mod bundle;
mod cert;
mod der;
mod error;
mod keys;
mod sign;
mod statement;
mod verify;

pub use bundle::{
    Bundle, MAX_BUNDLE_BYTES, MAX_CHAIN_LEN, MAX_STATEMENT_BYTES, MEDIA_TYPES, Material,
    PAYLOAD_TYPE,
};
pub use cert::TrustedCa;
pub use error::{Error, Refused};
pub use keys::{Curve, PublicKey};
pub use sign::{Signer, sign};
pub use statement::{
    DEFAULT_IGNORE_PATHS, MAX_FILES, MAX_IGNORE_PATHS, PREDICATE_TYPE, STATEMENT_TYPE, Statement,
};
pub use verify::{Policy, Signed, SignedBy, verify, verify_file};
