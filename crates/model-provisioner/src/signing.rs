//! Signed models: an OpenSSF model-signing bundle (`model.sig` at a model's root) checked as the
//! model is recorded, and again by `verify`, with [`mp_signing`].
//!
//! - A [`SignerPolicy`] says who must have signed: `key:PATH.pem` (a public key), or
//!   `cert-chain:CA.pem` (a certificate issued under that CA), optionally `#IDENTITY` (its
//!   subject, common name or an alternative name). `sigstore:IDENTITY@ISSUER` (keyless) is
//!   read, and refused when checked: its transparency log cannot be checked yet.
//! - [`SignerRules`] give a policy per reference prefix (`hf:myorg/=key:/etc/keys/myorg.pub`),
//!   as mirror rules do: a policy given for the ensure itself stands first, then the rules in
//!   order.
//! - A model with a matching policy must be signed so: every file of it, as the catalog records
//!   their sha256 (no file is hashed again that was hashed as it was placed), exactly the signed
//!   files (the format's ignore paths aside). Anything else fails the ensure as a verification
//!   failure (exit 3), and nothing is recorded.
//! - A model with a `model.sig` and no policy: its files are held against the statement, and the
//!   result recorded (`unchecked` when they hold, since no key was named; `failed` when they do
//!   not), so that users see signatures before they enforce them.
//!
//! - A signature given apart ([`SignatureSource`], `ensure --signature PATH|URL`, read at most
//!   64 MiB; a URL fetched once, by the first check that needs it) stands for
//!   `model.sig` when the model has none, and is kept in the cache
//!   (`signatures/`) for `verify`. A model of one file is checked alone against it: its file
//!   must be signed with its sha256, under its name or the one signed path ending with it.
//! - [`PushSigner`] signs what `push --sign` publishes (`crate::publish`).
//!
//! The outcome is [`SignatureCheck`], recorded on the catalog entry.

use std::path::{Path, PathBuf};

use catalog_core::{
    CacheLayout, CatalogEntry, Digest, SafeRelPath, SignatureCheck, SignatureOutcome, now_ms,
};
use mp_signing::{Bundle, Material, Policy, Refused, SignedBy, TrustedCa};

use crate::error::{Error, Result};
use crate::model_files::model_files;
use mp_progress::Reporter;

/// The file a model's signature is in, at its root.
pub const SIGNATURE_FILE: &str = "model.sig";

/// The environment variable of signer rules, separated by whitespace.
pub const SIGNERS_ENV: &str = "MODEL_PROVISIONER_SIGNERS";

/// The file of signer rules in the cache directory, one a line, `#` comments.
pub const SIGNERS_FILE: &str = "signers.conf";

/// Who must have signed a model, as written (`key:PATH`, `cert-chain:PATH[#IDENTITY]`,
/// `sigstore:IDENTITY@ISSUER`), its key or CA read.
#[derive(Debug, Clone)]
pub struct SignerPolicy {
    text: String,
    policy: Policy,
}

/// A policy or a rule that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{text}` is no signer policy: {reason}")]
pub struct ParsePolicyError {
    text: String,
    reason: String,
}

impl ParsePolicyError {
    fn new(text: &str, reason: impl Into<String>) -> Self {
        ParsePolicyError {
            text: text.to_owned(),
            reason: reason.into(),
        }
    }

    /// What to write instead.
    pub fn hint(&self) -> &'static str {
        "write `key:PATH.pem`, `cert-chain:CA.pem`, `cert-chain:CA.pem#IDENTITY` or `sigstore:IDENTITY@ISSUER`"
    }
}

impl SignerPolicy {
    /// The policy `text` writes, its key or CA file read now.
    ///
    /// # Errors
    ///
    /// An unknown form, or a file that cannot be read or holds no key or certificate.
    pub fn parse(text: &str) -> std::result::Result<SignerPolicy, ParsePolicyError> {
        let text = text.trim();
        let read = |path: &str| {
            std::fs::read(path).map_err(|e| ParsePolicyError::new(text, format!("`{path}`: {e}")))
        };
        let policy = if let Some(path) = text.strip_prefix("key:") {
            let key = mp_signing::PublicKey::from_pem(&read(path)?)
                .map_err(|e| ParsePolicyError::new(text, e.to_string()))?;
            Policy::Key(key)
        } else if let Some(rest) = text.strip_prefix("cert-chain:") {
            let (path, identity) = match rest.split_once('#') {
                Some((path, identity)) => (path, Some(identity.to_owned())),
                None => (rest, None),
            };
            let ca = TrustedCa::from_pem(&read(path)?)
                .map_err(|e| ParsePolicyError::new(text, e.to_string()))?;
            Policy::CertChain { ca, identity }
        } else if let Some(rest) = text.strip_prefix("sigstore:") {
            let Some((identity, issuer)) = rest.rsplit_once('@') else {
                return Err(ParsePolicyError::new(
                    text,
                    "a keyless policy names IDENTITY@ISSUER",
                ));
            };
            Policy::Keyless {
                identity: identity.to_owned(),
                issuer: issuer.to_owned(),
            }
        } else {
            return Err(ParsePolicyError::new(text, "an unknown form"));
        };
        Ok(SignerPolicy {
            text: text.to_owned(),
            policy,
        })
    }

    /// The policy as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

/// What a push signs the model it publishes with (`push --sign`): `key:PRIVATE.pem` (an EC
/// private key, PKCS#8 or SEC1), or `cert-chain:KEY.pem,CHAIN.pem` (`cert:` is the same), a
/// private key and its certificate chain, its own certificate first. The bundle goes with the
/// pushed copy: `model.sig` in a bucket's folder, a referrer of the manifest in a registry.
#[derive(Debug, Clone)]
pub struct PushSigner {
    text: String,
    signer: std::sync::Arc<mp_signing::Signer>,
}

impl PushSigner {
    /// The signer `text` writes, its key and chain read now.
    ///
    /// # Errors
    ///
    /// An unknown form, or a file that cannot be read or holds no usable key or chain.
    pub fn parse(text: &str) -> std::result::Result<PushSigner, ParsePolicyError> {
        let text = text.trim();
        let read = |path: &str| {
            std::fs::read(path).map_err(|e| ParsePolicyError::new(text, format!("`{path}`: {e}")))
        };
        let refused = |e: mp_signing::Error| ParsePolicyError::new(text, e.to_string());
        let signer = if let Some(path) = text.strip_prefix("key:") {
            mp_signing::Signer::key(&read(path)?).map_err(refused)?
        } else if let Some(rest) = text
            .strip_prefix("cert-chain:")
            .or_else(|| text.strip_prefix("cert:"))
        {
            let Some((key, chain)) = rest.split_once(',') else {
                return Err(ParsePolicyError::new(
                    text,
                    "a certificate signer names KEY.pem,CHAIN.pem",
                ));
            };
            mp_signing::Signer::certificate_chain(&read(key)?, &read(chain)?).map_err(refused)?
        } else {
            return Err(ParsePolicyError::new(text, "an unknown form"));
        };
        Ok(PushSigner {
            text: text.to_owned(),
            signer: std::sync::Arc::new(signer),
        })
    }

    /// The signer as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// What to write instead of a signer [`PushSigner::parse`] refused.
    pub fn hint() -> &'static str {
        "write `key:PRIVATE.pem` or `cert-chain:KEY.pem,CHAIN.pem`"
    }

    /// The bundle (`model.sig`) over `files`, as the model `name`: the sha256s given, no file
    /// read.
    #[cfg_attr(
        not(feature = "http"),
        expect(dead_code, reason = "a push signs; without `http` there is none")
    )]
    pub(crate) fn sign(&self, files: &[(SafeRelPath, Digest)], name: &str) -> Result<Vec<u8>> {
        mp_signing::sign(files, &self.signer, name).map_err(|e| Error::PushSign {
            id: name.to_owned(),
            reason: format!("`{}`: {e}", self.text),
        })
    }
}

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
    fn bytes(&self) -> Result<std::sync::Arc<[u8]>> {
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

/// A policy per reference prefix: `PREFIX=POLICY`, the first whose prefix starts a model's
/// id (or the reference as written) applies.
#[derive(Debug, Clone, Default)]
pub struct SignerRules {
    rules: Vec<(String, SignerPolicy)>,
}

impl SignerRules {
    /// No rule.
    pub fn new() -> Self {
        SignerRules::default()
    }

    /// The rules of `lines` (`PREFIX=POLICY` each; blank lines and `#` comments skipped).
    ///
    /// # Errors
    ///
    /// A line that is no rule, or whose policy cannot be read, naming its line number.
    pub fn parse(lines: &str) -> std::result::Result<SignerRules, ParsePolicyError> {
        let mut rules = SignerRules::new();
        for (n, line) in lines.lines().enumerate() {
            let line = line.split_once('#').map_or(line, |(rule, _)| rule).trim();
            if line.is_empty() {
                continue;
            }
            rules.push(line).map_err(|e| ParsePolicyError {
                text: e.text,
                reason: format!("line {}: {}", n + 1, e.reason),
            })?;
        }
        Ok(rules)
    }

    /// The rules of `value`, separated by whitespace (the environment's form).
    ///
    /// # Errors
    ///
    /// As [`SignerRules::parse`].
    pub fn from_env_value(value: &str) -> std::result::Result<SignerRules, ParsePolicyError> {
        let mut rules = SignerRules::new();
        for rule in value.split_whitespace() {
            rules.push(rule)?;
        }
        Ok(rules)
    }

    /// The rules of the file at `path`; none when there is no such file.
    ///
    /// # Errors
    ///
    /// A file that cannot be read, or a line that is no rule.
    pub fn from_file(path: &Path) -> std::result::Result<SignerRules, ParsePolicyError> {
        match std::fs::read_to_string(path) {
            Ok(text) => SignerRules::parse(&text).map_err(|e| ParsePolicyError {
                text: path.display().to_string(),
                reason: format!("{}: {}", e.text, e.reason),
            }),
            // No file, or no cache directory to hold one (the cache's own error says so).
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
                ) =>
            {
                Ok(SignerRules::new())
            }
            Err(e) => Err(ParsePolicyError::new(
                &path.display().to_string(),
                e.to_string(),
            )),
        }
    }

    /// The rules in force for a provisioner over `cache_dir`: [`SIGNERS_ENV`]'s, then those of
    /// `<cache_dir>/`[`SIGNERS_FILE`]. What the command line and the Python package read, read
    /// once here.
    ///
    /// # Errors
    ///
    /// The first rule that is no rule, or whose policy cannot be read; a file that cannot be
    /// read.
    pub fn configured(cache_dir: &Path) -> std::result::Result<SignerRules, ParsePolicyError> {
        let mut rules = match std::env::var(SIGNERS_ENV) {
            Ok(value) => SignerRules::from_env_value(&value)?,
            Err(_) => SignerRules::new(),
        };
        rules.extend(SignerRules::from_file(&cache_dir.join(SIGNERS_FILE))?);
        Ok(rules)
    }

    /// Adds the rule `PREFIX=POLICY` after the others.
    ///
    /// # Errors
    ///
    /// When it is no rule, or its policy cannot be read.
    pub fn push(&mut self, rule: &str) -> std::result::Result<(), ParsePolicyError> {
        let Some((prefix, policy)) = rule.split_once('=') else {
            return Err(ParsePolicyError::new(rule, "a rule is PREFIX=POLICY"));
        };
        if prefix.trim().is_empty() {
            return Err(ParsePolicyError::new(rule, "a rule's prefix is empty"));
        }
        self.rules
            .push((prefix.trim().to_owned(), SignerPolicy::parse(policy)?));
        Ok(())
    }

    /// `other`'s rules after these.
    pub fn extend(&mut self, other: SignerRules) {
        self.rules.extend(other.rules);
    }

    fn matching(&self, names: &[&str]) -> Option<&SignerPolicy> {
        self.rules
            .iter()
            .find(|(prefix, _)| names.iter().any(|n| n.starts_with(prefix.as_str())))
            .map(|(_, policy)| policy)
    }
}

/// The policies of a provisioner: one for the ensure at hand, and the rules.
#[derive(Debug, Clone, Default)]
pub(crate) struct Signing {
    pub(crate) explicit: Option<SignerPolicy>,
    pub(crate) rules: SignerRules,
    /// A bundle given apart from the model (`ensure --signature`).
    pub(crate) detached: Option<Detached>,
}

impl Signing {
    /// The policy for a model of `id` ensured from `source`.
    fn policy(&self, id: &str, source: &str) -> Option<&SignerPolicy> {
        self.explicit
            .as_ref()
            .or_else(|| self.rules.matching(&[id, source]))
    }

    /// Whether a policy applies to the model of `id` ensured from `source`.
    pub(crate) fn has_policy(&self, id: &str, source: &str) -> bool {
        self.policy(id, source).is_some()
    }

    /// Checks the signature of the model `entry` records (its files at `layout`), as the
    /// policy for it wants, or, with none, as far as a signature found can be checked.
    /// `None`: no signature, and none asked for.
    ///
    /// The signature is the model's `model.sig`; else the bundle given apart (`--signature`);
    /// else those its source `found` beside it (an OCI manifest's referrers), of which one
    /// that satisfies the policy is enough; else the one kept from an earlier check. One given
    /// apart or found is kept for `verify` once its check is recorded.
    pub(crate) fn check(
        &self,
        layout: &CacheLayout,
        entry: &CatalogEntry,
        reporter: &dyn Reporter,
        found: &[Vec<u8>],
    ) -> Result<Option<SignatureCheck>> {
        let policy = self.policy(&entry.id, &entry.source);
        if let Some(path) = bundle_path(&entry.local_path) {
            match std::fs::read(&path) {
                Ok(bytes) => return check_bundle(layout, entry, reporter, policy, &bytes),
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(Error::read(&path, e));
                }
                Err(_) => {}
            }
        }
        let kept = layout.signature_path(&entry.id);
        let given = self.detached.as_ref().map(Detached::bytes).transpose()?;
        let apart: Vec<&[u8]> = match &given {
            Some(bytes) => vec![bytes],
            None => found.iter().map(Vec::as_slice).collect(),
        };
        if !apart.is_empty() {
            let (bytes, checked) = check_any(layout, entry, reporter, policy, &apart);
            if let Ok(Some(_)) = &checked {
                keep(&kept, bytes)?;
            }
            return checked;
        }
        match read_signature_file(&kept) {
            Ok(bytes) => check_bundle(layout, entry, reporter, policy, &bytes),
            Err(_) => match policy {
                Some(p) => Err(Error::Signature {
                    id: entry.id.clone(),
                    reason: format!(
                        "it is unsigned (no `{SIGNATURE_FILE}` at its root, no `--signature`, and no signature among its referrers), and `{}` asks for a signature",
                        p.as_str()
                    ),
                }),
                None => Ok(None),
            },
        }
    }
}

/// Checks `bundles` (at least one) in turn against the model `entry` records: the first that
/// satisfies `policy` (with none: whose files hold) is taken, else the first one's record;
/// with a policy none satisfies, the refusal names each. Returns the bundle taken.
fn check_any<'b>(
    layout: &CacheLayout,
    entry: &CatalogEntry,
    reporter: &dyn Reporter,
    policy: Option<&SignerPolicy>,
    bundles: &[&'b [u8]],
) -> (&'b [u8], Result<Option<SignatureCheck>>) {
    let mut first = None;
    let mut refusals = Vec::new();
    for bytes in bundles {
        let checked = check_bundle(layout, entry, reporter, policy, bytes);
        match &checked {
            Ok(Some(c)) if c.outcome != SignatureOutcome::Failed => return (bytes, checked),
            Ok(_) => {
                first.get_or_insert((*bytes, checked));
            }
            Err(Error::Signature { reason, .. }) => refusals.push(reason.clone()),
            Err(_) => return (bytes, checked),
        }
    }
    if let Some(first) = first {
        return first;
    }
    let reason = match refusals.as_slice() {
        [one] => one.clone(),
        all => format!(
            "none of its {} signatures will do: {}",
            all.len(),
            all.join("; ")
        ),
    };
    let id = entry.id.clone();
    (bundles[0], Err(Error::Signature { id, reason }))
}

/// Checks the bundle `bytes` against the model `entry` records, as [`Signing::check`].
fn check_bundle(
    layout: &CacheLayout,
    entry: &CatalogEntry,
    reporter: &dyn Reporter,
    policy: Option<&SignerPolicy>,
    bytes: &[u8],
) -> Result<Option<SignatureCheck>> {
    let refuse = |reason: String| Error::Signature {
        id: entry.id.clone(),
        reason,
    };
    let bundle = match Bundle::read(bytes) {
        Ok(bundle) => bundle,
        Err(e) => {
            let reason = format!("its `{SIGNATURE_FILE}` cannot be read: {e}");
            return match policy {
                Some(_) => Err(refuse(reason)),
                None => Ok(Some(record(
                    SignatureOutcome::Failed,
                    None,
                    None,
                    None,
                    reason,
                ))),
            };
        }
    };
    let mut files: Vec<(SafeRelPath, Digest)> = model_files(layout, entry, reporter)?
        .files
        .into_iter()
        .map(|f| (f.rel, f.digest))
        .collect();
    let statement_digest = Some(bundle.statement().model_digest().clone());
    // A model of one file is one file of the signed repository: it is checked alone, under
    // the path the statement gives it.
    let one_file = entry.local_path.is_file();
    if one_file
        && let [(name, digest)] = files.as_mut_slice()
        && let Some(path) = path_in_statement(&bundle, name, digest)
    {
        *name = path;
    }
    let verified = |p: &SignerPolicy| match files.as_slice() {
        [(path, digest)] if one_file => mp_signing::verify_file(&bundle, &p.policy, path, digest),
        _ => mp_signing::verify(&bundle, &p.policy, &files),
    };
    match policy {
        Some(p) => match verified(p) {
            Ok(signed) => Ok(Some(record(
                SignatureOutcome::Verified,
                Some(signer(&signed.signed_by)),
                Some(p.as_str()),
                statement_digest,
                String::new(),
            ))),
            Err(refused) => Err(refuse(refusal(&refused, p.as_str()))),
        },
        None => {
            let claimed = claimed_signer(bundle.material());
            let held = match files.as_slice() {
                [(path, digest)] if one_file => file_holds(&bundle, path, digest),
                _ => files_hold(&bundle, &files),
            };
            Ok(Some(match held {
                Ok(()) => record(
                    SignatureOutcome::Unchecked,
                    claimed,
                    None,
                    statement_digest,
                    "every file is as signed; no policy names who must have signed".into(),
                ),
                Err(reason) => {
                    tracing::warn!(id = %entry.id, "{reason}");
                    record(
                        SignatureOutcome::Failed,
                        claimed,
                        None,
                        statement_digest,
                        reason,
                    )
                }
            }))
        }
    }
}

/// Where the signature of a model at `local_path` is: `model.sig` in its directory; none for a
/// model of one file.
fn bundle_path(local_path: &Path) -> Option<PathBuf> {
    local_path.is_dir().then(|| local_path.join(SIGNATURE_FILE))
}

/// A check that failed for `reason`, to record.
pub(crate) fn failed(reason: &str) -> SignatureCheck {
    record(
        SignatureOutcome::Failed,
        None,
        None,
        None,
        reason.to_owned(),
    )
}

fn record(
    outcome: SignatureOutcome,
    signer: Option<String>,
    policy: Option<&str>,
    statement_digest: Option<Digest>,
    detail: String,
) -> SignatureCheck {
    SignatureCheck {
        outcome,
        signer,
        policy: policy.map(str::to_owned),
        statement_digest,
        detail: (!detail.is_empty()).then_some(detail),
        checked_ms: now_ms(),
    }
}

/// Who a policy established signed.
fn signer(signed_by: &SignedBy) -> String {
    match signed_by {
        SignedBy::Key { fingerprint } => format!("key {fingerprint}"),
        SignedBy::Certificate { subject, alt_names } if alt_names.is_empty() => {
            format!("certificate {subject}")
        }
        SignedBy::Certificate { subject, alt_names } => {
            format!("certificate {subject} ({})", alt_names.join(", "))
        }
    }
}

/// Who a bundle says signed, unchecked.
fn claimed_signer(material: &Material) -> Option<String> {
    match material {
        Material::KeyHint(Some(hint)) => Some(format!("key {hint} (as the bundle names it)")),
        Material::KeyHint(None) => None,
        Material::Chain(_) => Some("a certificate chain (not checked)".into()),
        Material::Keyless { .. } => Some("a keyless Sigstore certificate (not checked)".into()),
    }
}

/// Whether `files` are exactly the files the statement signs, each with its signed digest (the
/// signature itself not checked).
fn files_hold(bundle: &Bundle, files: &[(SafeRelPath, Digest)]) -> std::result::Result<(), String> {
    let statement = bundle.statement();
    let mut seen = 0;
    for (path, digest) in files {
        if statement.is_ignored(path) {
            continue;
        }
        match statement.file(path) {
            Some(signed) if signed == digest => seen += 1,
            Some(_) => return Err(format!("`{path}` is not the file that was signed")),
            None => return Err(format!("`{path}` is in the model but not signed")),
        }
    }
    if seen != statement.files().len() {
        let missing = statement
            .files()
            .keys()
            .find(|p| !files.iter().any(|(f, _)| f == *p))
            .map_or_else(String::new, |p| format!("`{p}` "));
        return Err(format!("{missing}is signed but not in the model"));
    }
    Ok(())
}

/// The path the statement signs the one file `name` (with `digest`) under: `name` itself, or
/// the one signed path that ends with `/name` and has that digest (a file of a repository's
/// sub-folder, ensured alone).
fn path_in_statement(bundle: &Bundle, name: &SafeRelPath, digest: &Digest) -> Option<SafeRelPath> {
    let files = bundle.statement().files();
    if files.contains_key(name) {
        return None;
    }
    let suffix = format!("/{name}");
    let mut found = files
        .iter()
        .filter(|(path, signed)| path.as_str().ends_with(&suffix) && *signed == digest);
    match (found.next(), found.next()) {
        (Some((path, _)), None) => Some(path.clone()),
        _ => None,
    }
}

/// Whether the one file `path` is signed with `digest` (the signature itself not checked).
fn file_holds(
    bundle: &Bundle,
    path: &SafeRelPath,
    digest: &Digest,
) -> std::result::Result<(), String> {
    match bundle.statement().file(path) {
        Some(signed) if signed == digest => Ok(()),
        Some(_) => Err(format!("`{path}` is not the file that was signed")),
        None => Err(format!("`{path}` is not signed")),
    }
}

/// Writes `bytes` at `path`, through a file beside it renamed into place.
fn keep(path: &Path, bytes: &[u8]) -> Result<()> {
    let failed = |path: &Path| {
        let path = path.to_owned();
        move |source| Error::SignatureKeep { path, source }
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(failed(dir))?;
    let staged = path.with_extension("sig.partial");
    std::fs::write(&staged, bytes).map_err(failed(&staged))?;
    std::fs::rename(&staged, path).map_err(failed(path))
}

/// A refusal in words, naming the policy.
fn refusal(refused: &Refused, policy: &str) -> String {
    format!("its signature does not satisfy `{policy}`: {refused}")
}
