//! The one error type of this crate.
//!
//! | module | its one job |
//! |---|---|
//! | `classify` | what kind of failure an error is: verification, usage, cancelled |
//! | `hint` | what the user can do about an error, a transfer's included |
//! | `source` | [`SourceFailure`]: a registered source's failure in its own words |
//! | `transfer` | an error to and from the transfer engine's (feature `http`) |

use std::io;
use std::path::PathBuf;

use catalog_core::{Digest, DigestMismatch, Outcome, ParseRefError, ParseRelPathError};

mod classify;
mod hint;
mod source;
#[cfg(feature = "http")]
mod transfer;

pub use source::SourceFailure;
#[cfg(any(feature = "gcs", feature = "azure"))]
pub(crate) use source::no_answer;
#[cfg(any(feature = "hf", feature = "gcs", feature = "azure"))]
pub(crate) use source::source_failure;

/// What went wrong while ensuring or verifying a model.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The catalog or the cache directory failed.
    #[error(transparent)]
    Catalog(#[from] catalog_core::Error),
    /// The reference does not parse.
    #[error(transparent)]
    InvalidRef(#[from] ParseRefError),
    /// A local path does not exist.
    #[error("`{path}` does not exist")]
    NotFound {
        /// The path as given.
        path: PathBuf,
    },
    /// A local path is neither a regular file nor a directory.
    #[error("`{path}` is not a regular file or a directory")]
    NotAFile {
        /// The path.
        path: PathBuf,
    },
    /// Reading a local file failed.
    #[error("failed to read `{path}`")]
    Read {
        /// The path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// A file changed while it was being hashed, so the digest describes no version of it.
    #[error("`{path}` changed while it was being hashed")]
    ChangedWhileHashing {
        /// The path.
        path: PathBuf,
    },
    /// The bytes do not have the expected digest.
    #[error(transparent)]
    DigestMismatch(#[from] DigestMismatch),
    /// A registry refused a file of a push: the bytes it received do not have the digest the
    /// catalog records for them (the file changed on disk since it was last checked).
    #[error(
        "`{registry}` refused `{id}`: the bytes sent do not have the digest `{digest}` the catalog records"
    )]
    PushDigestRefused {
        /// The model's id (and the file's path, in a model of several files).
        id: String,
        /// The digest the catalog records, and the push declared.
        digest: Digest,
        /// The registry, `host[:port]`.
        registry: String,
    },
    /// A model's files claim their format and break it (tensor data past the end of a file,
    /// overlapping tensors), or a split set or an index lacks a file or has one too many.
    #[error("`{id}` failed its structural check: {}", problems.join("; "))]
    Structure {
        /// The model's id.
        id: String,
        /// What is wrong, naming each file.
        problems: Vec<String>,
    },
    /// A Hub file's bytes do not have the git blob id the Hub states for it.
    #[error(
        "`{file}` does not match the Hub: expected git blob `{expected}`, computed `{computed}`"
    )]
    GitBlobMismatch {
        /// The file, as `<id>/<path>`.
        file: String,
        /// The blob id the Hub stated.
        expected: String,
        /// The blob id of the bytes received.
        computed: String,
    },
    /// A file's bytes do not have the checksum (MD5, CRC32C) its source states.
    #[error("`{file}` does not match its source: expected {expected}, computed {computed}")]
    ChecksumMismatch {
        /// The file, as `<id>/<path>`.
        file: String,
        /// The checksum the source stated, as `md5:<base64>` or `crc32c:<base64>`.
        expected: String,
        /// The checksum of the bytes received.
        computed: String,
    },
    /// A model's signature does not satisfy the policy for it: unsigned, signed by another, or
    /// a file not as signed.
    #[error("`{id}` is refused: {reason}")]
    Signature {
        /// The model's id.
        id: String,
        /// What failed.
        reason: String,
    },
    /// A push could not sign the model it publishes (`push --sign`).
    #[error("`{id}` cannot be signed: {reason}")]
    PushSign {
        /// The model's id.
        id: String,
        /// Why, with the signer as written.
        reason: String,
    },
    /// A signature given apart from the model (`ensure --signature`) cannot be had.
    #[error("the signature `{source_name}` cannot be used: {reason}")]
    DetachedSignature {
        /// The file or URL, as given.
        source_name: String,
        /// Why: too large, or what the server answered.
        reason: String,
    },
    /// A signature given apart from the model cannot be kept with the catalog for `verify`.
    #[error("cannot keep the signature at `{}`", path.display())]
    SignatureKeep {
        /// Where it was being written.
        path: std::path::PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// This build cannot fetch references of this kind.
    #[error("cannot fetch `{reference}`: {reason}")]
    Unsupported {
        /// The reference, without credentials.
        reference: String,
        /// Why, naming the feature or tool needed.
        reason: String,
        /// What to do about it.
        hint: String,
    },
    /// A model cannot be pushed where it was asked to go.
    #[error("cannot push to `{destination}`: {reason}")]
    PushDestination {
        /// The destination, without credentials.
        destination: String,
        /// Why, in words.
        reason: String,
    },
    /// A push was asked for a destination that is no registry and no bucket.
    #[error(
        "`push` publishes to `oci://registry/repo:tag` or a bucket's folder (`s3://bucket/prefix/`, `gs://bucket/prefix/`, `az://account/container/prefix/`), not `{destination}`"
    )]
    PushScheme {
        /// The destination, without credentials.
        destination: String,
    },
    /// A mirror was asked for a model from a source no mirror rule maps (a web server, a local
    /// file).
    #[error(
        "`mirror` pushes models from `hf:`, `oci://`, `ollama:` and `s3://` references, not `{reference}`"
    )]
    MirrorSource {
        /// The model's source, without credentials.
        reference: String,
    },
    /// A mirror prefix that is no mirror location: the rule it makes does not parse. (No hint:
    /// the rule's speaks of whole rules, and a prefix is half of one.)
    #[error(transparent)]
    MirrorPrefix(crate::mirror::ParseMirrorError),
    /// A mirror prefix that gives the model no place: its rule does not map the model's source.
    #[error("`{prefix}` gives no mirror location for `{reference}`")]
    MirrorLocation {
        /// The prefix, as given.
        prefix: String,
        /// The model's source, without credentials.
        reference: String,
    },
    /// A mirror prefix that maps the model somewhere a push cannot go.
    #[error(
        "`mirror` pushes to a registry (`oci://…`) or a bucket (`s3://…`), not `{destination}`"
    )]
    MirrorScheme {
        /// Where the rule maps the model, without credentials.
        destination: String,
    },
    /// An `hf:` model whose entry records no commit, which its mirror's place is named by.
    #[error("`{id}` records no commit; ensure it again with `--refresh`")]
    MirrorCommit {
        /// The model's id.
        id: String,
    },
    /// Moving the bytes failed: a download, the free space for it, the HTTP client.
    #[cfg(feature = "http")]
    #[error(transparent)]
    Transfer(mp_transfer::Error),
    /// A file name in a remote listing that is no safe relative path (it would escape the
    /// model's directory, or holds characters no file name should).
    #[error("refusing the file name `{name}` from a remote listing: it {problem}")]
    HostileName {
        /// The name, made printable.
        name: String,
        /// What is wrong with it.
        problem: String,
    },
    /// A tar layer holds an entry that would escape the model's directory, or that cannot be
    /// placed as a regular file.
    #[error("refusing layer `{layer}`: its entry `{entry}` {reason}")]
    UnsafeArchive {
        /// The layer, as its digest.
        layer: String,
        /// The entry's name in the archive, made printable.
        entry: String,
        /// What is wrong with it, as words that complete "its entry … ".
        reason: String,
    },
    /// A model assembled from several files lacks the file that was asked for.
    #[error("`{path}` is not among the files fetched for `{id}`")]
    AssemblyIncomplete {
        /// The model's id.
        id: String,
        /// The file asked for, relative to the model's directory.
        path: String,
    },
    /// A repository, revision or file does not exist on the Hub.
    #[error("not found on the Hub: {what}")]
    HfNotFound {
        /// What was looked for.
        what: String,
    },
    /// No GGUF file of a repository carries the quantisation tag a reference names.
    #[error(
        "`{repo}` has no GGUF file of quantisation `{tag}`; {}",
        quants_note(available)
    )]
    HfUnknownQuant {
        /// `org/repo`.
        repo: String,
        /// The tag asked for.
        tag: String,
        /// The quantisations the repository has, sorted, each once.
        available: Vec<String>,
    },
    /// The Hub refused access.
    #[error("the Hub refused access to `{repo}` (HTTP {status})")]
    HfDenied {
        /// `org/repo`.
        repo: String,
        /// The status.
        status: u16,
    },
    /// Offline, and nothing to answer from.
    #[error("offline (`HF_HUB_OFFLINE=1`), and `{reference}` is neither in the catalog nor in the Hugging Face cache{}", cache.as_ref().map(|c| format!(" at `{}`", c.display())).unwrap_or_default())]
    HfOffline {
        /// The reference.
        reference: String,
        /// The Hugging Face cache that was searched.
        cache: Option<PathBuf>,
    },
    /// Neither Hugging Face command-line tool is on `PATH`.
    #[error("neither `hf` nor `huggingface-cli` was found on PATH")]
    HfToolMissing,
    /// The Hugging Face command-line tool failed.
    #[error("`{tool} download` failed ({status}): {stderr}")]
    HfTool {
        /// The tool that ran.
        tool: String,
        /// Its exit status.
        status: String,
        /// The last lines it printed on stderr.
        stderr: String,
    },
    /// Another process held the model's lock for longer than the lock timeout.
    #[error("gave up after {waited_s} s waiting for another process fetching `{id}`")]
    LockTimeout {
        /// The model.
        id: String,
        /// Seconds waited.
        waited_s: u64,
    },
    /// A registry has no such repository, tag, manifest or blob.
    #[error("not found in the registry: {what}")]
    OciNotFound {
        /// What was looked for, with the registry and repository.
        what: String,
    },
    /// A registry refused our credentials, or asked for some and we had none.
    #[error("the registry `{registry}` refused access to `{repository}` (HTTP {status})")]
    OciDenied {
        /// The registry host.
        registry: String,
        /// The repository.
        repository: String,
        /// The status.
        status: u16,
        /// Where credentials were looked for, for the hint.
        looked: String,
    },
    /// A push destination that is not `oci://registry/repo:tag`.
    #[error("cannot push to `{reference}`: {reason}")]
    OciPushTarget {
        /// The destination.
        reference: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A registry answered something the distribution protocol does not allow.
    #[error("the registry `{registry}` answered in a way we cannot use: {reason}")]
    OciProtocol {
        /// The registry host.
        registry: String,
        /// What was wrong.
        reason: String,
    },
    /// An artifact in no format we know how to lay out as a model.
    #[error("`{reference}` is not a model artifact we recognise (media types: {})", media_types.join(", "))]
    OciUnknownFormat {
        /// The reference.
        reference: String,
        /// The config's and layers' media types.
        media_types: Vec<String>,
    },
    /// A `KitOps` `ModelKit` whose Kitfile and layers do not agree, so that its files have no
    /// place.
    #[error("`{reference}` is a ModelKit that cannot be laid out: {reason}")]
    OciModelKit {
        /// The reference.
        reference: String,
        /// What is wrong, naming the layer or the Kitfile's section.
        reason: String,
    },
    /// A `KitOps` `ModelKit` whose model is another `ModelKit`, named in its Kitfile.
    #[error("`{reference}` is a ModelKit whose model is in the ModelKit `{model}`, which {reason}")]
    OciModelKitParent {
        /// The reference.
        reference: String,
        /// The other `ModelKit`, as the Kitfile that refers to it names it.
        model: String,
        /// What is wrong with it: not there, no registry named, a cycle, a chain too long.
        reason: String,
    },
    /// An image index with no manifest for this platform.
    #[error("`{reference}` has no manifest for {wanted}; it has: {}", available.join(", "))]
    OciNoPlatform {
        /// The reference.
        reference: String,
        /// This machine's platform, `os/arch`.
        wanted: String,
        /// The platforms the index lists.
        available: Vec<String>,
    },
    /// No object, prefix or bucket of that name at the endpoint.
    #[error("not found in S3: {what}")]
    S3NotFound {
        /// What was looked for, with the bucket and the endpoint.
        what: String,
    },
    /// The endpoint refused access to a bucket or an object.
    #[error("access denied to `{key}` in bucket `{bucket}` at `{endpoint}` ({code})")]
    S3Denied {
        /// The bucket.
        bucket: String,
        /// The key, or the prefix.
        key: String,
        /// The endpoint, `scheme://host[:port]`.
        endpoint: String,
        /// S3's error code (`AccessDenied`, `InvalidAccessKeyId`, …).
        code: String,
        /// Whether the request wrote (a push) rather than read.
        write: bool,
    },
    /// The endpoint does not accept our signature.
    #[error("`{endpoint}` refused the request's signature ({code})")]
    S3SignatureMismatch {
        /// The endpoint.
        endpoint: String,
        /// S3's error code.
        code: String,
    },
    /// The endpoint does not answer.
    #[error("the S3 endpoint `{endpoint}` does not answer: {reason}")]
    S3Unreachable {
        /// The endpoint.
        endpoint: String,
        /// What happened.
        reason: String,
    },
    /// The TLS client refused the endpoint's certificate.
    #[error(
        "the S3 endpoint `{endpoint}` sent a certificate this machine does not trust: {reason}"
    )]
    S3Untrusted {
        /// The endpoint.
        endpoint: String,
        /// What is wrong with the certificate.
        reason: String,
    },
    /// The endpoint answered something S3 does not.
    #[error("the S3 endpoint `{endpoint}` answered in a way we cannot use: {reason}")]
    S3Protocol {
        /// The endpoint.
        endpoint: String,
        /// What was wrong.
        reason: String,
    },
    /// No AWS credentials, or a source of them failed.
    #[cfg(feature = "s3")]
    #[error(transparent)]
    S3Credentials(mp_credentials::aws::CredentialError),
    /// Offline, and the model is not in the catalog.
    #[error("offline, and `{reference}` is not in the catalog")]
    Offline {
        /// The reference.
        reference: String,
    },
    /// A mirror serves something other than the model asked for: a manifest that disagrees with
    /// itself or with the reference. Refused like a digest mismatch, never replaced by the origin.
    #[error("the mirror `{mirror}` does not hold `{id}` as it should: {reason}")]
    MirrorMismatch {
        /// The model's id.
        id: String,
        /// Where the mirror holds it.
        mirror: String,
        /// What disagrees.
        reason: String,
    },
    /// A mirror rule does not parse.
    #[error(transparent)]
    MirrorRule(#[from] crate::mirror::ParseMirrorError),
    /// A registered source's own failure ([`SourceKind`](crate::SourceKind)), in its words.
    #[error("{message}")]
    Source {
        /// What kind of failure: whether a mirror is passed over for it, and how it is shown.
        failure: SourceFailure,
        /// What happened, naming what was looked for, where, and the endpoint.
        message: String,
        /// What the user can do about it.
        hint: Option<String>,
    },
    /// The id is not in the catalog.
    #[error("no model `{id}` in the catalog")]
    UnknownId {
        /// The id or reference given.
        id: String,
    },
}

impl Error {
    /// Compares the digest of the bytes with the expected one, if any (see
    /// [`catalog_core::check_digest`]). `Pass` or `Warn` (nothing expected) when they agree,
    /// else [`Error::DigestMismatch`].
    pub fn check_digest(id: &str, expected: Option<&Digest>, computed: &Digest) -> Result<Outcome> {
        Ok(catalog_core::check_digest(id, expected, computed)?)
    }

    /// A failure to read a local path: `NotFound` when the path itself is missing, `Read`
    /// otherwise (including a file missing deep inside a model folder).
    pub fn read(path: &std::path::Path, source: io::Error) -> Self {
        if source.kind() == io::ErrorKind::NotFound && std::fs::symlink_metadata(path).is_err() {
            Error::NotFound {
                path: path.to_owned(),
            }
        } else {
            Error::Read {
                path: path.to_owned(),
                source,
            }
        }
    }
}

/// A name from a remote listing that [`SafeRelPath`](catalog_core::SafeRelPath) refuses.
impl From<ParseRelPathError> for Error {
    fn from(e: ParseRelPathError) -> Self {
        Error::HostileName {
            name: e.input().to_owned(),
            problem: e.problem(),
        }
    }
}

/// The result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The end of an unknown-quantisation error: what the repository has.
fn quants_note(available: &[String]) -> String {
    if available.is_empty() {
        "it has no GGUF file at all".to_owned()
    } else {
        let list: Vec<String> = available.iter().map(|t| format!("`{t}`")).collect();
        format!("it has: {}", list.join(", "))
    }
}

/// `s` made safe to print.
pub(crate) fn printable(s: &str) -> String {
    catalog_core::printable(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_digest_passes_warns_or_names_both_digests() -> Result<()> {
        let (a, b) = (Digest::sha256_of(b"a"), Digest::sha256_of(b"b"));
        assert_eq!(Error::check_digest("m", Some(&a), &a)?, Outcome::Pass);
        assert_eq!(Error::check_digest("m", None, &a)?, Outcome::Warn);
        let err = Error::check_digest("m", Some(&a), &b).unwrap_err();
        assert!(err.is_verification_failure());
        assert_eq!(
            err.to_string(),
            format!("digest mismatch for `m`: expected `{a}`, computed `{b}`")
        );
        Ok(())
    }

    #[test]
    fn a_refused_relative_name_is_a_hostile_name() {
        let err = Error::from("../x".parse::<catalog_core::SafeRelPath>().unwrap_err());
        assert_eq!(
            err.to_string(),
            "refusing the file name `../x` from a remote listing: it has a `..` segment, which is not allowed"
        );
        let err = Error::from("a\tb".parse::<catalog_core::SafeRelPath>().unwrap_err());
        assert!(err.to_string().contains("control character"), "{err}");
    }
}
