//! `model_provisioner._native`: the library's calls for Python, each mapping its arguments to
//! the builder as the command line maps its flags, and nothing more.
//!
//! | module | its one job |
//! |---|---|
//! | `errors` | the exception classes, and the library's errors as them |
//! | `options` | the options the command line's flags carry, read from their Python values |
//! | `run` | a call on a worker thread: the GIL released, progress and Ctrl-C on the caller's |
//!
//! The Python package (`python/model_provisioner/`) re-exports these and carries the stubs.

mod errors;
mod options;
mod run;

use std::path::PathBuf;

use catalog_core::{CatalogStore, Digest, FsCatalog, ModelRef};
use model_provisioner::{AnyFetcher, DigestMismatch, Error, ModelProvisioner, ProvisionerBuilder};
use pyo3::prelude::*;
use pyo3::types::PyAny;
use serde::Serialize;

use errors::{UsageError, usage};
use run::Work;

type Provisioner = ModelProvisioner<FsCatalog, AnyFetcher>;

/// A model ensured: where it is and how it was verified.
#[pyclass(frozen, get_all, module = "model_provisioner")]
#[derive(Debug)]
struct Model {
    /// The model's id in the catalog.
    id: String,
    /// Where its file (or folder, for a model of several files) is.
    local_path: PathBuf,
    /// The digest it is recorded with (`sha256:…`), if any.
    digest: Option<String>,
    /// `"pass"`, `"warn"` (nothing vouched for the bytes) or `"fail"`.
    verification: String,
    /// The digest computed from its bytes, if it was.
    computed: Option<String>,
    /// Its size in bytes.
    bytes: u64,
    /// Bytes read or transferred by this call.
    bytes_read: u64,
    /// Whether the catalog already had it.
    cached: bool,
}

#[pymethods]
impl Model {
    fn __repr__(&self) -> String {
        format!(
            "Model(id={:?}, local_path={:?}, verification={:?})",
            self.id,
            self.local_path.display().to_string(),
            self.verification
        )
    }
}

/// The cache directory given, else the command line's default.
fn cache_dir(given: Option<PathBuf>) -> Result<PathBuf, Error> {
    match given {
        Some(dir) => Ok(dir),
        None => Ok(catalog_core::default_model_cache_dir()?),
    }
}

/// A reference parsed as the command line parses it: a mistake is a `UsageError`.
fn parse_reference(text: &str) -> PyResult<ModelRef> {
    model_provisioner::parse_ref(text).map_err(|e| usage(&e.to_string(), e.hint()))
}

/// Makes sure the model `reference` names is on this machine, verified and recorded.
///
/// Each argument is the `model-provisioner ensure` flag of its name: `digest` (`sha256:…`) is
/// what the bytes must hash to; `cache_dir` defaults to `$MODEL_PROVISIONER_CACHE`, then the
/// XDG cache directory; `revision` pins an `hf:` reference's branch, tag or commit; `include`
/// and `exclude` select files of a whole repository or a bucket's folder; `offline` makes no
/// network request; `refresh` resolves again a model the catalog has; `mirrors` are rules
/// (`SOURCE=MIRROR`) tried before the environment's and the cache's, `no_mirror` turns every
/// rule off; `signed_by` (`key:PATH.pem`, `cert-chain:CA.pem[#IDENTITY]`) says who must have
/// signed the model, `signature` (a path or an `http(s)://` URL) is its bundle given apart;
/// `limit_rate` caps the bytes per second (`"50M"`, or an `int`); `connections` is the ranged
/// requests in flight for one file (1 to 64); `endpoint_url` and `no_sign_request` reach an
/// object store or hub. `on_progress` is called on this thread with each progress event, a
/// `dict` of `docs/progress.md`'s schema; an exception it raises stops the call and is raised
/// from it. Ctrl-C stops the download, resumable, and raises `KeyboardInterrupt`.
/// Raises `UsageError`, `VerificationError` or `ProvisionError`.
#[pyfunction]
#[pyo3(signature = (
    reference, *, digest=None, cache_dir=None, revision=None, include=None, exclude=None,
    offline=false, refresh=false, mirrors=None, no_mirror=false, signed_by=None, signature=None,
    limit_rate=None, connections=None, endpoint_url=None, no_sign_request=false, on_progress=None
))]
#[expect(
    clippy::too_many_arguments,
    clippy::fn_params_excessive_bools,
    reason = "the keyword arguments of the Python call, the command line's flags"
)]
fn ensure(
    py: Python<'_>,
    reference: &str,
    digest: Option<&str>,
    cache_dir: Option<PathBuf>,
    revision: Option<&str>,
    include: Option<Vec<String>>,
    exclude: Option<Vec<String>>,
    offline: bool,
    refresh: bool,
    mirrors: Option<Vec<String>>,
    no_mirror: bool,
    signed_by: Option<&str>,
    signature: Option<&str>,
    limit_rate: Option<options::Rate>,
    connections: Option<i64>,
    endpoint_url: Option<&str>,
    no_sign_request: bool,
    on_progress: Option<&Bound<'_, PyAny>>,
) -> PyResult<Model> {
    let reference = parse_reference(reference)?;
    let digest = digest
        .map(|d| d.parse::<Digest>().map_err(|e| usage(&e.to_string(), None)))
        .transpose()?;
    let reference = match revision {
        Some(revision) => reference
            .with_revision(revision)
            .map_err(|e| usage(&e.to_string(), e.hint()))?,
        None => reference,
    };
    let (include, exclude) = (include.unwrap_or_default(), exclude.unwrap_or_default());
    if !(reference.is_collection() || include.is_empty() && exclude.is_empty()) {
        return Err(UsageError::new_err(
            "`include` and `exclude` select files of a whole repository (`hf:org/repo`, `modelscope:org/repo`) or a bucket's folder (`s3://bucket/prefix/`, `gs://…/`, `az://…/`)",
        ));
    }
    let (builder, dir) = options::builder(cache_dir)?;
    let builder = options::transfer(builder, limit_rate, endpoint_url, no_sign_request)?
        .connections(options::connections(connections)?)
        .offline(offline)
        .refresh(refresh)
        .include(include)
        .exclude(exclude)
        .mirrors(options::mirror_rules(mirrors, no_mirror, &dir)?)
        .signed_by(options::signer_policy(signed_by)?)
        .signature(options::signature(signature))
        .signers(options::signer_rules(&dir)?);
    let work: Work<_> = Box::new(move |builder: ProvisionerBuilder| {
        let ensured = builder.build()?.ensure(&reference, digest.as_ref())?;
        let e = ensured.entry;
        Ok(Model {
            id: e.id,
            local_path: e.local_path,
            digest: e.digest.as_ref().map(ToString::to_string),
            verification: e.verification.outcome.to_string(),
            computed: e.verification.computed.as_ref().map(ToString::to_string),
            bytes: e.size_bytes,
            bytes_read: ensured.bytes_read,
            cached: ensured.cached,
        })
    });
    run::run(py, builder, on_progress, work)
}

/// `value` as Python data, as `json.loads` reads its JSON.
fn to_python<'py>(py: Python<'py>, value: &impl Serialize) -> PyResult<Bound<'py, PyAny>> {
    let text = serde_json::to_string(value).map_err(|e| errors::provision(&e.to_string()))?;
    py.import("json")?.call_method1("loads", (text,))
}

/// A provisioner that fetches nothing, over the catalog in `cache_dir`.
fn catalog_only(cache_dir: Option<PathBuf>) -> Result<Provisioner, Error> {
    ModelProvisioner::builder(self::cache_dir(cache_dir)?)
        .http(false)
        .hf(None)
        .build()
}

/// The models in the catalog, as `model-provisioner ls --json` prints them.
#[pyfunction]
#[pyo3(signature = (*, cache_dir=None))]
fn ls(py: Python<'_>, cache_dir: Option<PathBuf>) -> PyResult<Bound<'_, PyAny>> {
    let entries = catalog_only(cache_dir)
        .and_then(|p| Ok(p.catalog().list()?))
        .map_err(errors::to_py)?;
    to_python(py, &entries)
}

/// One model of the catalog, by id or reference, as `model-provisioner show --json` prints it.
#[pyfunction]
#[pyo3(signature = (id, *, cache_dir=None))]
fn show<'py>(py: Python<'py>, id: &str, cache_dir: Option<PathBuf>) -> PyResult<Bound<'py, PyAny>> {
    let entry = catalog_only(cache_dir)
        .and_then(|p| p.find(id))
        .map_err(errors::to_py)?;
    to_python(py, &entry)
}

/// One model's verification, as `model-provisioner verify --json` prints it.
#[derive(Debug, Serialize)]
struct VerifyOutcome {
    id: String,
    verification: Option<catalog_core::Outcome>,
    expected: Option<String>,
    computed: Option<String>,
    bytes: Option<u64>,
    error: Option<String>,
}

impl VerifyOutcome {
    /// What verifying `target` came to: its outcome, or the error that stopped it.
    fn of(target: &str, result: Result<model_provisioner::Verified, Error>) -> Self {
        let failed = |id: String, expected: Option<String>, computed, error| VerifyOutcome {
            id,
            verification: Some(catalog_core::Outcome::Fail),
            expected,
            computed,
            bytes: None,
            error,
        };
        match result {
            Ok(v) => VerifyOutcome {
                expected: v
                    .entry
                    .digest
                    .as_ref()
                    .or(v.entry.source_digest.as_ref())
                    .map(ToString::to_string),
                computed: v
                    .entry
                    .verification
                    .computed
                    .as_ref()
                    .map(ToString::to_string),
                verification: Some(v.entry.verification.outcome),
                bytes: Some(v.bytes),
                error: None,
                id: v.entry.id,
            },
            Err(Error::DigestMismatch(DigestMismatch {
                id,
                expected,
                computed,
            })) => failed(
                id,
                Some(expected.to_string()),
                Some(computed.to_string()),
                None,
            ),
            Err(e) if e.is_verification_failure() => {
                failed(target.to_owned(), None, None, Some(errors::message(&e)))
            }
            Err(e) => VerifyOutcome {
                id: target.to_owned(),
                verification: None,
                expected: None,
                computed: None,
                bytes: None,
                error: Some(errors::message(&e)),
            },
        }
    }
}

/// Hashes models of the catalog again (`ids`, or every one) and returns each outcome.
#[pyfunction]
#[pyo3(signature = (ids=None, *, cache_dir=None))]
fn verify(
    py: Python<'_>,
    ids: Option<Vec<String>>,
    cache_dir: Option<PathBuf>,
) -> PyResult<Bound<'_, PyAny>> {
    let work: Work<Vec<VerifyOutcome>> = Box::new(move |builder: ProvisionerBuilder| {
        let provisioner = builder.http(false).hf(None).build()?;
        let ids = match ids {
            Some(ids) => ids,
            None => provisioner
                .catalog()
                .list()?
                .into_iter()
                .map(|e| e.id)
                .collect(),
        };
        Ok(ids
            .iter()
            .map(|id| VerifyOutcome::of(id, provisioner.verify(id)))
            .collect())
    });
    let (builder, dir) = options::builder(cache_dir)?;
    let builder = builder.signers(options::signer_rules(&dir)?);
    let results = run::run(py, builder, None, work)?;
    to_python(py, &results)
}

/// What a push did, as `model-provisioner push --json` prints it.
#[derive(Debug, Serialize)]
struct Pushed {
    id: String,
    destination: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    manifest_digest: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    manifest_key: Option<String>,
    files: usize,
    bytes_uploaded: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    blobs_skipped: Option<usize>,
}

/// What a mirror push did, as `model-provisioner mirror --json` prints it.
#[derive(Debug, Serialize)]
struct MirroredJson {
    id: String,
    mirror: String,
    rule: String,
    destinations: Vec<String>,
    files: usize,
    bytes_uploaded: u64,
}

/// A builder that reaches registries and buckets as the options say, and fetches nothing: what
/// `push` and `mirror` publish with.
fn publisher(
    cache_dir: Option<PathBuf>,
    sign: Option<&str>,
    limit_rate: Option<options::Rate>,
    endpoint_url: Option<&str>,
    no_sign_request: bool,
) -> PyResult<ProvisionerBuilder> {
    let (builder, _) = options::builder(cache_dir)?;
    Ok(
        options::transfer(builder, limit_rate, endpoint_url, no_sign_request)?
            .http(false)
            .hf(None)
            .sign_pushes(options::push_signer(sign)?),
    )
}

/// Publishes a model of the catalog to a registry's tag or a bucket's folder, verified.
///
/// `sign` (`key:PRIVATE.pem`, `cert-chain:KEY.pem,CHAIN.pem`) signs the pushed copy;
/// `limit_rate`, `endpoint_url` and `no_sign_request` are as for `ensure`.
#[pyfunction]
#[pyo3(signature = (
    id, destination, *, cache_dir=None, sign=None, limit_rate=None, endpoint_url=None,
    no_sign_request=false, on_progress=None
))]
#[expect(
    clippy::too_many_arguments,
    reason = "the keyword arguments of the Python call"
)]
fn push<'py>(
    py: Python<'py>,
    id: String,
    destination: &str,
    cache_dir: Option<PathBuf>,
    sign: Option<&str>,
    limit_rate: Option<options::Rate>,
    endpoint_url: Option<&str>,
    no_sign_request: bool,
    on_progress: Option<&Bound<'_, PyAny>>,
) -> PyResult<Bound<'py, PyAny>> {
    let destination = parse_reference(destination)?;
    let builder = publisher(cache_dir, sign, limit_rate, endpoint_url, no_sign_request)?;
    let work: Work<Pushed> = Box::new(move |builder: ProvisionerBuilder| {
        let p = builder.build()?.push(&id, &destination)?;
        Ok(Pushed {
            id: p.id,
            destination: p.destination,
            manifest_digest: p.manifest_digest.as_ref().map(ToString::to_string),
            manifest_key: p.manifest_key,
            files: p.files,
            bytes_uploaded: p.bytes_uploaded,
            blobs_skipped: p.blobs_skipped,
        })
    });
    let pushed = run::run(py, builder, on_progress, work)?;
    to_python(py, &pushed)
}

/// Pushes a model of the catalog to a mirror, exactly where `ensure` with the rule returned
/// looks for it.
///
/// `mirror_prefix` is a rule's mirror side (`oci://registry[/path]`, `s3://bucket[/prefix]`,
/// `gs://bucket[/prefix]`, `az://account/container[/prefix]`); `sign`, `limit_rate`,
/// `endpoint_url` and `no_sign_request` are as for `push`.
#[pyfunction]
#[pyo3(signature = (
    id, mirror_prefix, *, cache_dir=None, sign=None, limit_rate=None, endpoint_url=None,
    no_sign_request=false, on_progress=None
))]
#[expect(
    clippy::too_many_arguments,
    reason = "the keyword arguments of the Python call"
)]
fn mirror<'py>(
    py: Python<'py>,
    id: String,
    mirror_prefix: String,
    cache_dir: Option<PathBuf>,
    sign: Option<&str>,
    limit_rate: Option<options::Rate>,
    endpoint_url: Option<&str>,
    no_sign_request: bool,
    on_progress: Option<&Bound<'_, PyAny>>,
) -> PyResult<Bound<'py, PyAny>> {
    let builder = publisher(cache_dir, sign, limit_rate, endpoint_url, no_sign_request)?;
    let work: Work<MirroredJson> = Box::new(move |builder: ProvisionerBuilder| {
        let m = builder.build()?.mirror(&id, &mirror_prefix)?;
        Ok(MirroredJson {
            id: m.id,
            mirror: m.mirror,
            rule: m.rule,
            destinations: m.destinations,
            files: m.files,
            bytes_uploaded: m.bytes_uploaded,
        })
    });
    let mirrored = run::run(py, builder, on_progress, work)?;
    to_python(py, &mirrored)
}

/// The native half of the `model_provisioner` package.
#[pymodule]
#[pyo3(name = "_native")]
fn native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    errors::register(m)?;
    m.add_class::<Model>()?;
    m.add_function(wrap_pyfunction!(ensure, m)?)?;
    m.add_function(wrap_pyfunction!(ls, m)?)?;
    m.add_function(wrap_pyfunction!(show, m)?)?;
    m.add_function(wrap_pyfunction!(verify, m)?)?;
    m.add_function(wrap_pyfunction!(push, m)?)?;
    m.add_function(wrap_pyfunction!(mirror, m)?)?;
    Ok(())
}
