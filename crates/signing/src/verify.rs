//! [`verify`] and [`verify_file`]: a bundle held against a [`Policy`] (who must have signed)
//! and the model's files as `(path, sha256)` pairs already known; nothing is read or hashed.

use std::collections::HashSet;

use catalog_core::{Algorithm, Digest, SafeRelPath};

use crate::Refused;
use crate::bundle::{Bundle, Material, pae};
use crate::cert::{CertInfo, TrustedCa};
use crate::keys::PublicKey;

/// Who must have signed a model.
#[derive(Debug, Clone)]
pub enum Policy {
    /// The holder of this private key's pair (the reference's `key` method).
    Key(PublicKey),
    /// A certificate that chains to one of these CAs (the reference's `certificate` method),
    /// optionally naming an identity: the certificate's subject (`CN=…, O=…`), its common name,
    /// or one of its alternative names (email, DNS name, URI).
    CertChain {
        /// The CAs trusted.
        ca: TrustedCa,
        /// The identity the signing certificate must name, if any.
        identity: Option<String>,
    },
    /// A Sigstore keyless signature by `identity` as `issuer` vouched. Not supported yet: it
    /// needs the transparency log's inclusion proof and Fulcio's chain; [`verify`] refuses it.
    Keyless {
        /// The signer's identity (an email, a workflow URI).
        identity: String,
        /// The OIDC issuer.
        issuer: String,
    },
}

/// Who signed, as the policy established it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignedBy {
    /// A key, by its fingerprint (`sha256:<hex>`, see [`PublicKey::fingerprint`]).
    Key {
        /// The fingerprint.
        fingerprint: String,
    },
    /// A certificate that chains to the policy's CA.
    Certificate {
        /// Its subject, `CN=…, O=…`.
        subject: String,
        /// Its alternative names.
        alt_names: Vec<String>,
    },
}

/// A bundle that passed: who signed, and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signed {
    /// Who signed.
    pub signed_by: SignedBy,
    /// The statement's model digest: the sha256 over the signed files' digests.
    pub model_digest: Digest,
    /// How many files the statement signs.
    pub files: usize,
}

/// Checks that `bundle` is signed as `policy` wants and that `files` are exactly the signed
/// files with their signed digests (files at or under the statement's ignore paths aside).
pub fn verify(
    bundle: &Bundle,
    policy: &Policy,
    files: &[(SafeRelPath, Digest)],
) -> Result<Signed, Refused> {
    let signed_by = check_signature(bundle, policy)?;
    let statement = bundle.statement();
    // Counted by distinct path: a file given twice must not stand in for a missing one.
    let mut given: HashSet<&SafeRelPath> = HashSet::with_capacity(files.len());
    for (path, digest) in files {
        if statement.is_ignored(path) {
            continue;
        }
        check_file(bundle, path, digest)?;
        given.insert(path);
    }
    if given.len() != statement.files().len()
        && let Some(missing) = statement.files().keys().find(|p| !given.contains(p))
    {
        return Err(Refused::FileMissing {
            path: missing.to_string(),
        });
    }
    Ok(signed(bundle, signed_by))
}

/// Checks that `bundle` is signed as `policy` wants and that it signs `path` with `digest`.
pub fn verify_file(
    bundle: &Bundle,
    policy: &Policy,
    path: &SafeRelPath,
    digest: &Digest,
) -> Result<Signed, Refused> {
    let signed_by = check_signature(bundle, policy)?;
    check_file(bundle, path, digest)?;
    Ok(signed(bundle, signed_by))
}

fn signed(bundle: &Bundle, signed_by: SignedBy) -> Signed {
    Signed {
        signed_by,
        model_digest: bundle.statement().model_digest().clone(),
        files: bundle.statement().files().len(),
    }
}

fn check_file(bundle: &Bundle, path: &SafeRelPath, digest: &Digest) -> Result<(), Refused> {
    if digest.algo() != Algorithm::Sha256 {
        return Err(Refused::FileDigestAlgorithm {
            path: path.to_string(),
            digest: digest.clone(),
        });
    }
    match bundle.statement().file(path) {
        None => Err(Refused::FileNotSigned {
            path: path.to_string(),
        }),
        Some(expected) if expected != digest => Err(Refused::FileMismatch {
            path: path.to_string(),
            expected: expected.clone(),
            computed: digest.clone(),
        }),
        Some(_) => Ok(()),
    }
}

/// Checks the envelope's signature over the statement, as the policy wants.
fn check_signature(bundle: &Bundle, policy: &Policy) -> Result<SignedBy, Refused> {
    if let Policy::Keyless { .. } = policy {
        return Err(Refused::KeylessUnsupported);
    }
    let Some(signature) = bundle.signatures().first() else {
        return Err(Refused::Unsigned);
    };
    let message = pae(bundle.payload());
    match policy {
        Policy::Key(key) => {
            if let Material::KeyHint(Some(hint)) = bundle.material()
                && !hint.eq_ignore_ascii_case(&key.hint())
            {
                return Err(Refused::WrongKey {
                    expected: key.fingerprint(),
                    found: format!("sha256:{}", crate::statement::printable(hint)),
                });
            }
            if !key.verifies(&message, signature) {
                return Err(Refused::BadSignature {
                    signer: format!("key {}", key.fingerprint()),
                });
            }
            Ok(SignedBy::Key {
                fingerprint: key.fingerprint(),
            })
        }
        Policy::CertChain { ca, identity } => {
            let chain = match bundle.material() {
                Material::Chain(chain) => chain.as_slice(),
                // A keyless certificate is trusted through the transparency log, which is not
                // checked here: such a bundle is not taken as a plain chain.
                Material::Keyless { .. } => return Err(Refused::KeylessUnsupported),
                Material::KeyHint(_) => return Err(Refused::NoCertificate),
            };
            let info: CertInfo = ca.check(chain)?;
            if let Some(identity) = identity
                && !info.has_identity(identity)
            {
                return Err(Refused::WrongIdentity {
                    expected: identity.clone(),
                    found: info.describe(),
                });
            }
            let key = info.key.as_ref().map_err(|reason| Refused::Certificate {
                index: 0,
                reason: reason.clone(),
            })?;
            if !key.verifies(&message, signature) {
                return Err(Refused::BadSignature {
                    signer: info.describe(),
                });
            }
            Ok(SignedBy::Certificate {
                subject: info.subject,
                alt_names: info.alt_names,
            })
        }
        Policy::Keyless { .. } => Err(Refused::KeylessUnsupported),
    }
}
