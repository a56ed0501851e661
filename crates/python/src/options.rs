//! The options the command line's flags carry, read from their Python values and handed to the
//! builder as the command line hands them: the parsing is the library's, a value it refuses is
//! a `UsageError` with its hint.

use std::path::{Path, PathBuf};

use model_provisioner::mirror::Mirrors;
use model_provisioner::signing::{PushSigner, SignatureSource, SignerPolicy, SignerRules};
use model_provisioner::{ModelProvisioner, ProvisionerBuilder, RateLimit};
use pyo3::prelude::*;

use crate::errors::{self, usage};

/// A builder over the cache in `cache_dir` (the command line's default when `None`), and that
/// directory.
pub(crate) fn builder(cache_dir: Option<PathBuf>) -> PyResult<(ProvisionerBuilder, PathBuf)> {
    let dir = crate::cache_dir(cache_dir).map_err(errors::to_py)?;
    Ok((ModelProvisioner::builder(&dir), dir))
}

/// The signer rules of the environment and of `cache_dir`, as the command line reads them.
pub(crate) fn signer_rules(cache_dir: &Path) -> PyResult<SignerRules> {
    SignerRules::configured(cache_dir).map_err(|e| usage(&e.to_string(), Some(e.hint())))
}

/// The mirror rules of an `ensure`: `given`, then the environment's and `cache_dir`'s; none
/// with `no_mirror` (`--mirror`, `--no-mirror`).
pub(crate) fn mirror_rules(
    given: Option<Vec<String>>,
    no_mirror: bool,
    cache_dir: &Path,
) -> PyResult<Mirrors> {
    match (given, no_mirror) {
        (Some(given), true) if !given.is_empty() => Err(usage(
            "`mirrors` and `no_mirror` cannot be given together",
            Some("give the rules to try, or `no_mirror=True` to fetch from the origin only"),
        )),
        (_, true) => Ok(Mirrors::new()),
        (given, false) => {
            Mirrors::configured(given.unwrap_or_default(), cache_dir).map_err(errors::to_py)
        }
    }
}

/// `signed_by` (`--signed-by`): who must have signed the model.
pub(crate) fn signer_policy(text: Option<&str>) -> PyResult<Option<SignerPolicy>> {
    text.map(|t| SignerPolicy::parse(t).map_err(|e| usage(&e.to_string(), Some(e.hint()))))
        .transpose()
}

/// `signature` (`--signature`): a bundle given apart from the model, a path or a URL.
pub(crate) fn signature(text: Option<&str>) -> Option<SignatureSource> {
    text.map(SignatureSource::parse)
}

/// `sign` (`push --sign`, `mirror --sign`): what signs the pushed copy.
pub(crate) fn push_signer(text: Option<&str>) -> PyResult<Option<PushSigner>> {
    text.map(|t| PushSigner::parse(t).map_err(|e| usage(&e.to_string(), Some(PushSigner::hint()))))
        .transpose()
}

/// `limit_rate` as given: `"50M"` (`--limit-rate`'s text) or bytes per second.
#[derive(Debug, FromPyObject)]
pub(crate) enum Rate {
    /// Written as `--limit-rate` takes it.
    Text(String),
    /// Bytes per second.
    Bytes(i64),
}

/// `connections` (`--connections`): ranged requests in flight at once, 1 to 64.
pub(crate) fn connections(connections: Option<i64>) -> PyResult<Option<usize>> {
    connections
        .map(|n| match usize::try_from(n) {
            Ok(n @ 1..=64) => Ok(n),
            _ => Err(usage(
                &format!("`connections` takes 1 to 64, not `{n}`"),
                None,
            )),
        })
        .transpose()
}

/// How bytes move and stores are reached, for `ensure`, `push` and `mirror` alike:
/// `--limit-rate`, `--endpoint-url` and `--no-sign-request`.
pub(crate) fn transfer(
    builder: ProvisionerBuilder,
    limit_rate: Option<Rate>,
    endpoint_url: Option<&str>,
    no_sign_request: bool,
) -> PyResult<ProvisionerBuilder> {
    let rate = match limit_rate {
        // Read by the same parser as the text, which refuses zero and a negative number.
        Some(Rate::Bytes(n)) => Some(n.to_string()),
        Some(Rate::Text(text)) => Some(text),
        None => None,
    };
    let rate = rate
        .map(|text| {
            RateLimit::parse(&text).map_err(|e| {
                usage(
                    &e.to_string(),
                    Some("give the text `--limit-rate` takes, as `\"50M\"`, or bytes per second, as `50_000_000`"),
                )
            })
        })
        .transpose()?;
    let endpoint = endpoint_url
        .map(|text| {
            model_provisioner::object_store::parse_endpoint(text).ok_or_else(|| {
                usage(
                    &format!(
                        "`endpoint_url` takes `http(s)://host[:port]`, not `{}`",
                        catalog_core::printable(text)
                    ),
                    None,
                )
            })
        })
        .transpose()?;
    Ok(builder
        .limit_rate(rate)
        .endpoint_url(endpoint)
        .no_sign_request(no_sign_request))
}
