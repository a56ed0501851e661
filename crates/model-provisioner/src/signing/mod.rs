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
//!
//! `policy.rs` holds the policies and the rules, `push.rs` the signer of a push, `detached.rs`
//! the signature given apart and its fetch, `check.rs` the check of one bundle; `Signing` here
//! picks the policy and the bundle for a model.

mod check;
mod detached;
mod policy;
mod push;

use std::path::{Path, PathBuf};

use catalog_core::{CacheLayout, CatalogEntry, SignatureCheck};

use crate::error::{Error, Result};
pub(crate) use check::failed;
use check::{check_any, check_bundle};
pub use detached::SignatureSource;
pub(crate) use detached::{Detached, read_signature_file};
#[cfg(feature = "http")]
pub(crate) use detached::{fetch_signature, too_large};
use mp_progress::Reporter;
pub use policy::{ParsePolicyError, SignerPolicy, SignerRules};
pub use push::PushSigner;

/// The file a model's signature is in, at its root.
pub const SIGNATURE_FILE: &str = "model.sig";

/// The environment variable of signer rules, separated by whitespace.
pub const SIGNERS_ENV: &str = "MODEL_PROVISIONER_SIGNERS";

/// The file of signer rules in the cache directory, one a line, `#` comments.
pub const SIGNERS_FILE: &str = "signers.conf";

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

/// Where the signature of a model at `local_path` is: `model.sig` in its directory; none for a
/// model of one file.
fn bundle_path(local_path: &Path) -> Option<PathBuf> {
    local_path.is_dir().then(|| local_path.join(SIGNATURE_FILE))
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
