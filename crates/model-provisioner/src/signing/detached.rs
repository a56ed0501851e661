//! A signature given apart from the model (`ensure --signature`): where it is, read bounded, and
//! fetched once, by the first check that needs it.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Where a signature given apart from the model is (`ensure --signature PATH|URL`): a bundle
/// file, or an `http(s)://` URL, read at most [`mp_signing::MAX_BUNDLE_BYTES`]. It stands for
/// the model's `model.sig` when the model has none, and is what a model of one file is checked
/// against: its file must be in the statement with its sha256.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignatureSource {
    /// A file on this machine.
    File(PathBuf),
    /// An `http://` or `https://` URL, fetched with the provisioner's engine.
    Url(String),
}

impl SignatureSource {
    /// The source `text` names: a URL when it starts with `http://` or `https://`, else a path.
    pub fn parse(text: &str) -> SignatureSource {
        let text = text.trim();
        if text.starts_with("http://") || text.starts_with("https://") {
            SignatureSource::Url(text.to_owned())
        } else {
            SignatureSource::File(PathBuf::from(text))
        }
    }
}

impl std::fmt::Display for SignatureSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SignatureSource::File(path) => write!(f, "{}", path.display()),
            SignatureSource::Url(url) => f.write_str(url),
        }
    }
}

/// The bundle at `path`, at most [`mp_signing::MAX_BUNDLE_BYTES`], refused by its length before
/// it is read.
pub(crate) fn read_signature_file(path: &Path) -> Result<Vec<u8>> {
    use std::io::Read as _;
    let file = std::fs::File::open(path).map_err(|e| Error::read(path, e))?;
    let len = file.metadata().map_err(|e| Error::read(path, e))?.len();
    if len > mp_signing::MAX_BUNDLE_BYTES as u64 {
        return Err(too_large(&path.display().to_string()));
    }
    let mut bytes = Vec::new();
    file.take(mp_signing::MAX_BUNDLE_BYTES as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| Error::read(path, e))?;
    if bytes.len() > mp_signing::MAX_BUNDLE_BYTES {
        return Err(too_large(&path.display().to_string()));
    }
    Ok(bytes)
}

/// A signature that is larger than any bundle is.
pub(crate) fn too_large(what: &str) -> Error {
    Error::DetachedSignature {
        source_name: what.to_owned(),
        reason: format!(
            "it is larger than {} MiB, which no bundle is",
            mp_signing::MAX_BUNDLE_BYTES >> 20
        ),
    }
}

/// A signature given apart from the model (`ensure --signature`), had once per provisioner: a
/// file is read as the provisioner is built (a bad path fails before anything else); a URL is
/// fetched by the first check that needs it, not before, so that a model already in the
/// catalog with no policy asks nothing of its server, and `--offline` holds for it. What that
/// fetch gave, its bytes or its failure, serves every later check (the models of a list).
#[derive(Clone)]
pub(crate) struct Detached {
    /// The file or URL, as given.
    name: String,
    state: std::sync::Arc<std::sync::Mutex<DetachedState>>,
}

/// Where a [`Detached`] signature is at.
enum DetachedState {
    /// Not fetched yet; how to.
    Pending(Box<dyn Fn() -> Result<Vec<u8>> + Send>),
    /// Read.
    Read(std::sync::Arc<[u8]>),
    /// It could not be had: told again to every later check.
    Failed(Unfetched),
}

/// Why a [`Detached`] signature could not be had, kept to build its error again.
#[derive(Clone)]
enum Unfetched {
    /// `--offline`, which fetches nothing.
    Offline,
    /// Unreachable, too large, or refused by its server: in words.
    Unusable(String),
}

impl Detached {
    /// The bundle `bytes`, already read from `name`.
    pub(crate) fn read(name: String, bytes: Vec<u8>) -> Self {
        Detached::with(name, DetachedState::Read(bytes.into()))
    }

    /// The bundle at `name`, which `fetch` gets when a check first needs it.
    #[cfg_attr(
        not(feature = "http"),
        expect(dead_code, reason = "only a URL is fetched, and a URL needs `http`")
    )]
    pub(crate) fn fetched_by(
        name: String,
        fetch: impl Fn() -> Result<Vec<u8>> + Send + 'static,
    ) -> Self {
        Detached::with(name, DetachedState::Pending(Box::new(fetch)))
    }

    fn with(name: String, state: DetachedState) -> Self {
        Detached {
            name,
            state: std::sync::Arc::new(std::sync::Mutex::new(state)),
        }
    }

    /// The bundle's bytes, fetched now if no check has asked before. The lock is held while it
    /// is fetched, so that checks running at once wait for the one fetch.
    pub(super) fn bytes(&self) -> Result<std::sync::Arc<[u8]>> {
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let fetched = match &*state {
            DetachedState::Read(bytes) => return Ok(bytes.clone()),
            DetachedState::Failed(why) => return Err(why.error(&self.name)),
            DetachedState::Pending(fetch) => fetch(),
        };
        match fetched {
            Ok(bytes) => {
                let bytes: std::sync::Arc<[u8]> = bytes.into();
                *state = DetachedState::Read(bytes.clone());
                Ok(bytes)
            }
            Err(e) => {
                // A cancelled fetch is no answer about the signature; the next check asks again.
                if !e.is_cancelled() {
                    *state = DetachedState::Failed(Unfetched::of(&e));
                }
                Err(e)
            }
        }
    }
}

impl std::fmt::Debug for Detached {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Detached").field(&self.name).finish()
    }
}

impl Unfetched {
    fn of(e: &Error) -> Self {
        match e {
            Error::Offline { .. } => Unfetched::Offline,
            Error::DetachedSignature { reason, .. } => Unfetched::Unusable(reason.clone()),
            e => Unfetched::Unusable(e.to_string()),
        }
    }

    /// The error again, for the signature at `name`.
    fn error(&self, name: &str) -> Error {
        match self {
            Unfetched::Offline => Error::Offline {
                reference: name.to_owned(),
            },
            Unfetched::Unusable(reason) => Error::DetachedSignature {
                source_name: name.to_owned(),
                reason: reason.clone(),
            },
        }
    }
}

/// The bundle at `url`, fetched through `engine`'s request loop and read at most
/// [`mp_signing::MAX_BUNDLE_BYTES`]; nothing asked when `offline`.
#[cfg(feature = "http")]
pub(crate) fn fetch_signature(
    url: &str,
    engine: &mp_transfer::Engine,
    offline: bool,
) -> Result<Vec<u8>> {
    if offline {
        return Err(Error::Offline {
            reference: url.to_owned(),
        });
    }
    let unusable = |reason: String| Error::DetachedSignature {
        source_name: url.to_owned(),
        reason,
    };
    let parsed = url::Url::parse(url).map_err(|e| unusable(e.to_string()))?;
    let call = mp_transfer::Call::new(url, |c: &reqwest::Client| c.get(parsed.clone()));
    let engine = engine.get().map_err(Error::Transfer)?;
    engine.block_on(async {
        let response = mp_transfer::call(engine.client(), engine.config().retry, &call, &|| None)
            .await
            .map_err(Error::Transfer)?;
        if !response.status().is_success() {
            return Err(unusable(format!("HTTP {}", response.status())));
        }
        mp_transfer::read_bounded(response, mp_signing::MAX_BUNDLE_BYTES)
            .await
            .map_err(|e| match e {
                mp_transfer::BodyError::TooLarge => too_large(url),
                mp_transfer::BodyError::Failed(e) => unusable(e.to_string()),
            })
    })
}
