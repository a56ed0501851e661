//! [`Error`], why a bundle could not be read or made, and [`Refused`], why a bundle that was
//! read does not pass a policy.

use catalog_core::{Digest, ParseRelPathError};

/// A bundle, a statement, a key or a certificate could not be read, or a bundle not made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The bundle is larger than [`MAX_BUNDLE_BYTES`](crate::MAX_BUNDLE_BYTES); it is refused
    /// before it is parsed.
    #[error("the signature bundle is {size} bytes, over the limit of {limit} bytes")]
    BundleTooLarge {
        /// The bundle's size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// The bundle is not JSON of the Sigstore bundle's shape (or nests deeper than the JSON
    /// reader's recursion limit of 128).
    #[error("the signature bundle is not a Sigstore bundle: {source}")]
    BundleJson {
        /// What the JSON reader found.
        #[source]
        source: serde_json::Error,
    },
    /// The bundle's media type is not one this crate reads.
    #[error(
        "the signature bundle has media type `{0}`; expected `application/vnd.dev.sigstore.bundle.v0.3+json`"
    )]
    MediaType(String),
    /// The bundle holds a bare message signature instead of a DSSE envelope.
    #[error(
        "the signature bundle holds no DSSE envelope (model signatures sign an in-toto statement)"
    )]
    NoEnvelope,
    /// A base64 field of the bundle does not decode.
    #[error("the signature bundle's `{field}` is not base64")]
    Base64 {
        /// The field, as the bundle names it.
        field: &'static str,
        /// What the decoder found.
        #[source]
        source: base64::DecodeError,
    },
    /// The envelope holds more signatures than one model signature has.
    #[error("the signature bundle holds {count} signatures; expected one")]
    Signatures {
        /// How many it holds.
        count: usize,
    },
    /// The DSSE payload is not an in-toto statement.
    #[error("the DSSE payload type is `{0}`; expected `application/vnd.in-toto+json`")]
    PayloadType(String),
    /// The signed statement is larger than
    /// [`MAX_STATEMENT_BYTES`](crate::MAX_STATEMENT_BYTES).
    #[error("the signed statement is over the limit of {limit} bytes")]
    StatementTooLarge {
        /// The limit.
        limit: usize,
    },
    /// The signed statement is not JSON of an in-toto statement's shape.
    #[error("the signed statement is not an in-toto statement: {source}")]
    StatementJson {
        /// What the JSON reader found.
        #[source]
        source: serde_json::Error,
    },
    /// The statement's `_type` is not the in-toto statement v1.
    #[error("the statement type is `{0}`; expected `https://in-toto.io/Statement/v1`")]
    StatementType(String),
    /// The statement's predicate type is not the model signature v1.0.
    #[error("the predicate type is `{0}`; expected `https://model_signing/signature/v1.0`")]
    PredicateType(String),
    /// The statement has not one subject (the model).
    #[error("the statement has {0} subjects; expected one, the model")]
    Subjects(usize),
    /// The model was serialised in a way whose digests this crate cannot check from whole-file
    /// sha256s.
    #[error(
        "the model was signed with serialization `{method}` and hash `{hash}`; only `files` with `sha256` is supported"
    )]
    Serialization {
        /// The method (`files`, `shards`).
        method: String,
        /// The hash (`sha256`, `blake3`).
        hash: String,
    },
    /// The statement lists more files than [`MAX_FILES`](crate::MAX_FILES), or more ignored
    /// paths than [`MAX_IGNORE_PATHS`](crate::MAX_IGNORE_PATHS).
    #[error("the statement lists more than {limit} {what}")]
    TooMany {
        /// `files` or `ignored paths`.
        what: &'static str,
        /// The limit.
        limit: usize,
    },
    /// A name in the statement is not a relative path inside the model.
    #[error("the statement names `{name}`, which is not a path inside the model")]
    UnsafePath {
        /// The name, made printable.
        name: String,
        /// Why it is refused.
        #[source]
        source: ParseRelPathError,
    },
    /// The statement lists a file twice.
    #[error("the statement lists `{0}` twice")]
    DuplicatePath(String),
    /// A file's digest in the statement is not a sha256.
    #[error("the statement's digest of `{name}` is not a sha256 of 64 hex digits")]
    FileDigest {
        /// The file.
        name: String,
    },
    /// The statement's subject digest is not the digest of its files' digests.
    #[error("the statement's model digest is {expected} but its files' digests hash to {computed}")]
    ModelDigest {
        /// The subject's digest.
        expected: String,
        /// The digest over the listed files' digests.
        computed: Digest,
    },
    /// The bundle's certificate chain is longer than
    /// [`MAX_CHAIN_LEN`](crate::MAX_CHAIN_LEN).
    #[error("the certificate chain has {count} certificates, over the limit of {limit}")]
    ChainTooLong {
        /// How many certificates.
        count: usize,
        /// The limit.
        limit: usize,
    },
    /// The bundle's certificate chain holds one certificate twice: a loop.
    #[error("the certificate chain holds certificate {index} twice (a loop)")]
    ChainLoop {
        /// The position of the repeated certificate, from the leaf (0).
        index: usize,
    },
    /// A key could not be read.
    #[error("cannot read the {what}: {reason}")]
    Key {
        /// `public key`, `private key`.
        what: &'static str,
        /// Why, in words.
        reason: String,
    },
    /// A certificate could not be read.
    #[error("cannot read the certificate: {reason}")]
    Certificate {
        /// Why, in words.
        reason: String,
    },
    /// The signing certificate is not the private key's.
    #[error("the signing certificate's public key is not the private key's")]
    CertificateKeyMismatch,
    /// Signing failed.
    #[error("cannot sign the statement: {reason}")]
    Sign {
        /// Why, in words.
        reason: String,
    },
    /// A file to sign has a digest that is not a sha256.
    #[error("cannot sign `{path}`: its digest {digest} is not a sha256")]
    SignDigest {
        /// The file.
        path: String,
        /// Its digest.
        digest: Digest,
    },
}

/// Why a bundle does not pass a policy. The bundle was read; this is about whom it says signed
/// and what.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Refused {
    /// The envelope holds no signature.
    #[error("the model is not signed: the bundle's envelope holds no signature")]
    Unsigned,
    /// The bundle names a key other than the policy's.
    #[error("signed by key {found}, not by {expected}")]
    WrongKey {
        /// The policy's key fingerprint.
        expected: String,
        /// The fingerprint the bundle names.
        found: String,
    },
    /// The signature does not verify with the policy's key or the certificate's.
    #[error("the signature does not verify with {signer}")]
    BadSignature {
        /// The key fingerprint or the certificate's subject.
        signer: String,
    },
    /// The policy wants a certificate and the bundle has none (or the other way round).
    #[error("the bundle has no certificate; the policy wants one that chains to the given CA")]
    NoCertificate,
    /// A certificate in the bundle cannot be read.
    #[error("the bundle's certificate {index} cannot be read: {reason}")]
    Certificate {
        /// Its position, from the leaf (0).
        index: usize,
        /// Why.
        reason: String,
    },
    /// The certificate chain does not end at the given CA, or is not valid.
    #[error("the certificate chain does not verify to the given CA: {reason}")]
    Chain {
        /// What the chain check found.
        reason: String,
    },
    /// The signing certificate does not allow signing.
    #[error(
        "the signing certificate allows neither digital signatures (key usage) nor code signing (extended key usage)"
    )]
    NotForSigning,
    /// The signing certificate names another identity than the policy's.
    #[error("signed by {found}, not by `{expected}`")]
    WrongIdentity {
        /// The identity the policy wants.
        expected: String,
        /// The certificate's subject and alternative names.
        found: String,
    },
    /// Keyless (Sigstore) verification needs a transparency log proof and a Fulcio chain.
    #[error("keyless verification is not supported yet")]
    KeylessUnsupported,
    /// A file's digest is not the signed one.
    #[error("`{path}` does not match its signature: expected {expected}, computed {computed}")]
    FileMismatch {
        /// The file.
        path: String,
        /// The signed digest.
        expected: Digest,
        /// The digest given for the file.
        computed: Digest,
    },
    /// A file of the model is not in the signed statement.
    #[error("`{path}` is not signed: the signed statement does not list it")]
    FileNotSigned {
        /// The file.
        path: String,
    },
    /// A file in the signed statement is not in the model.
    #[error("`{path}` is signed but missing from the model")]
    FileMissing {
        /// The file.
        path: String,
    },
    /// A file's given digest is not a sha256, which the statement lists.
    #[error("`{path}` has digest {digest}; the signature lists sha256 digests")]
    FileDigestAlgorithm {
        /// The file.
        path: String,
        /// The given digest.
        digest: Digest,
    },
}
