//! EC keys: a [`PublicKey`] from PEM (`SubjectPublicKeyInfo`) and the private key a signer
//! signs with (PEM, PKCS#8 or SEC1), on the curves the reference signer's `key` method makes
//! and `ring` signs with: P-256 with SHA-256 and P-384 with SHA-384. The signatures are
//! ASN.1 DER, as in the bundle.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, KeyPair as _, UnparsedPublicKey};
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{PrivateKeyDer, SubjectPublicKeyInfoDer};
use sha2::{Digest as _, Sha256};

use crate::Error;
use crate::der::{self, Reader, oid, tag};

/// A curve this crate verifies and signs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Curve {
    /// NIST P-256 (`prime256v1`), signatures over SHA-256.
    P256,
    /// NIST P-384 (`secp384r1`), signatures over SHA-384.
    P384,
}

impl Curve {
    fn from_oid(curve: &[u8], what: &'static str) -> Result<Curve, Error> {
        match curve {
            oid::P256 => Ok(Curve::P256),
            oid::P384 => Ok(Curve::P384),
            oid::P521 => Err(Error::Key {
                what,
                reason: "curve P-521 is not supported; P-256 and P-384 are".to_owned(),
            }),
            _ => Err(Error::Key {
                what,
                reason: "an unknown curve; P-256 and P-384 are supported".to_owned(),
            }),
        }
    }

    fn oid(self) -> &'static [u8] {
        match self {
            Curve::P256 => oid::P256,
            Curve::P384 => oid::P384,
        }
    }

    fn verification(self) -> &'static signature::EcdsaVerificationAlgorithm {
        match self {
            Curve::P256 => &signature::ECDSA_P256_SHA256_ASN1,
            Curve::P384 => &signature::ECDSA_P384_SHA384_ASN1,
        }
    }

    fn signing(self) -> &'static signature::EcdsaSigningAlgorithm {
        match self {
            Curve::P256 => &signature::ECDSA_P256_SHA256_ASN1_SIGNING,
            Curve::P384 => &signature::ECDSA_P384_SHA384_ASN1_SIGNING,
        }
    }
}

/// An EC public key: what a [`Policy::Key`](crate::Policy::Key) trusts.
#[derive(Clone, PartialEq, Eq)]
pub struct PublicKey {
    curve: Curve,
    point: Vec<u8>,
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PublicKey")
            .field("curve", &self.curve)
            .field("point", &catalog_core::to_hex(&self.point))
            .field("fingerprint", &self.fingerprint())
            .finish()
    }
}

impl PublicKey {
    /// Reads a PEM `PUBLIC KEY` (`SubjectPublicKeyInfo`), as `openssl ec -pubout` writes it.
    pub fn from_pem(pem: &[u8]) -> Result<PublicKey, Error> {
        let spki = SubjectPublicKeyInfoDer::from_pem_slice(pem).map_err(|e| Error::Key {
            what: "public key",
            reason: format!("not a PEM `PUBLIC KEY`: {e}"),
        })?;
        PublicKey::from_spki(&spki, "public key")
    }

    /// Reads a DER `SubjectPublicKeyInfo` (what a certificate holds).
    pub(crate) fn from_spki(spki: &[u8], what: &'static str) -> Result<PublicKey, Error> {
        let malformed = |_| Error::Key {
            what,
            reason: "malformed SubjectPublicKeyInfo".to_owned(),
        };
        let mut outer = Reader::new(spki);
        let mut inner = Reader::new(outer.expect(tag::SEQUENCE).map_err(malformed)?);
        let mut algorithm = Reader::new(inner.expect(tag::SEQUENCE).map_err(malformed)?);
        if algorithm.expect(tag::OID).map_err(malformed)? != oid::EC_PUBLIC_KEY {
            return Err(Error::Key {
                what,
                reason: "not an elliptic-curve key; P-256 and P-384 are supported".to_owned(),
            });
        }
        let curve = Curve::from_oid(algorithm.expect(tag::OID).map_err(malformed)?, what)?;
        let bits = inner.expect(tag::BIT_STRING).map_err(malformed)?;
        let Some((0, point)) = bits.split_first() else {
            return Err(malformed(der::Malformed));
        };
        Ok(PublicKey {
            curve,
            point: point.to_vec(),
        })
    }

    /// The curve.
    pub fn curve(&self) -> Curve {
        self.curve
    }

    /// The key's fingerprint, `sha256:<hex>` over its PEM: the hint a bundle signed with it
    /// names (the format's choice, not a fingerprint over the DER).
    pub fn fingerprint(&self) -> String {
        format!("sha256:{}", self.hint())
    }

    /// The hint the bundle's verification material names the key by: the sha256, hex, of the
    /// key's PEM `SubjectPublicKeyInfo` as the reference writes it (64 columns, final newline).
    pub(crate) fn hint(&self) -> String {
        catalog_core::to_hex(&Sha256::digest(self.pem().as_bytes()))
    }

    fn spki(&self) -> Vec<u8> {
        let mut algorithm = Vec::new();
        der::write(tag::OID, oid::EC_PUBLIC_KEY, &mut algorithm);
        der::write(tag::OID, self.curve.oid(), &mut algorithm);
        let mut inner = Vec::new();
        der::write(tag::SEQUENCE, &algorithm, &mut inner);
        let mut bits = vec![0];
        bits.extend_from_slice(&self.point);
        der::write(tag::BIT_STRING, &bits, &mut inner);
        let mut out = Vec::new();
        der::write(tag::SEQUENCE, &inner, &mut out);
        out
    }

    fn pem(&self) -> String {
        let b64 = STANDARD.encode(self.spki());
        let mut pem = String::from("-----BEGIN PUBLIC KEY-----\n");
        for line in b64.as_bytes().chunks(64) {
            pem.push_str(&String::from_utf8_lossy(line));
            pem.push('\n');
        }
        pem.push_str("-----END PUBLIC KEY-----\n");
        pem
    }

    /// Whether `signature` (DER) signs `message` with this key.
    pub(crate) fn verifies(&self, message: &[u8], signature: &[u8]) -> bool {
        UnparsedPublicKey::new(self.curve.verification(), &self.point)
            .verify(message, signature)
            .is_ok()
    }
}

/// A private key to sign with.
pub(crate) struct PrivateKey {
    pair: EcdsaKeyPair,
    public: PublicKey,
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PrivateKey")
            .field("public", &self.public)
            .finish_non_exhaustive()
    }
}

impl PrivateKey {
    /// Reads an unencrypted PEM private key: `PRIVATE KEY` (PKCS#8, what `openssl genpkey`
    /// writes) or `EC PRIVATE KEY` (SEC1, what `openssl ecparam -genkey` writes), with its
    /// public key inside (OpenSSL writes it).
    pub(crate) fn from_pem(pem: &[u8]) -> Result<PrivateKey, Error> {
        let key_error = |reason: String| Error::Key {
            what: "private key",
            reason,
        };
        let key = PrivateKeyDer::from_pem_slice(pem).map_err(|e| {
            key_error(format!(
                "not an unencrypted PEM `PRIVATE KEY` or `EC PRIVATE KEY`: {e}"
            ))
        })?;
        let (curve, pkcs8) = match &key {
            PrivateKeyDer::Pkcs8(der) => (
                pkcs8_curve(der.secret_pkcs8_der())?,
                der.secret_pkcs8_der().to_vec(),
            ),
            PrivateKeyDer::Sec1(der) => sec1_to_pkcs8(der.secret_sec1_der())?,
            _ => {
                return Err(key_error(
                    "an RSA key; EC keys (P-256, P-384) are supported".to_owned(),
                ));
            }
        };
        let pair = EcdsaKeyPair::from_pkcs8(curve.signing(), &pkcs8, &SystemRandom::new())
            .map_err(|e| key_error(format!("rejected: {e}")))?;
        let public = PublicKey {
            curve,
            point: pair.public_key().as_ref().to_vec(),
        };
        Ok(PrivateKey { pair, public })
    }

    pub(crate) fn public(&self) -> &PublicKey {
        &self.public
    }

    /// Signs `message`; the signature is DER.
    pub(crate) fn sign(&self, message: &[u8]) -> Result<Vec<u8>, Error> {
        self.pair
            .sign(&SystemRandom::new(), message)
            .map(|s| s.as_ref().to_vec())
            .map_err(|e| Error::Sign {
                reason: e.to_string(),
            })
    }
}

/// The curve of a PKCS#8 EC key, from its algorithm identifier.
fn pkcs8_curve(der: &[u8]) -> Result<Curve, Error> {
    let malformed = |_| Error::Key {
        what: "private key",
        reason: "malformed PKCS#8".to_owned(),
    };
    let mut outer = Reader::new(der);
    let mut info = Reader::new(outer.expect(tag::SEQUENCE).map_err(malformed)?);
    info.expect(tag::INTEGER).map_err(malformed)?;
    let mut algorithm = Reader::new(info.expect(tag::SEQUENCE).map_err(malformed)?);
    if algorithm.expect(tag::OID).map_err(malformed)? != oid::EC_PUBLIC_KEY {
        return Err(Error::Key {
            what: "private key",
            reason: "not an elliptic-curve key; P-256 and P-384 are supported".to_owned(),
        });
    }
    Curve::from_oid(
        algorithm.expect(tag::OID).map_err(malformed)?,
        "private key",
    )
}

/// Wraps a SEC1 `ECPrivateKey` into PKCS#8 (what `ring` reads), taking the curve from its
/// parameters.
fn sec1_to_pkcs8(der: &[u8]) -> Result<(Curve, Vec<u8>), Error> {
    let malformed = |_| Error::Key {
        what: "private key",
        reason: "malformed SEC1 `EC PRIVATE KEY`".to_owned(),
    };
    let mut outer = Reader::new(der);
    let mut key = Reader::new(outer.expect(tag::SEQUENCE).map_err(malformed)?);
    key.expect(tag::INTEGER).map_err(malformed)?;
    key.expect(tag::OCTET_STRING).map_err(malformed)?;
    let Some(parameters) = key.optional(0xa0).map_err(malformed)? else {
        return Err(Error::Key {
            what: "private key",
            reason: "the SEC1 key names no curve".to_owned(),
        });
    };
    let curve = Curve::from_oid(
        Reader::new(parameters)
            .expect(tag::OID)
            .map_err(malformed)?,
        "private key",
    )?;
    let mut algorithm = Vec::new();
    der::write(tag::OID, oid::EC_PUBLIC_KEY, &mut algorithm);
    der::write(tag::OID, curve.oid(), &mut algorithm);
    let mut info = Vec::new();
    der::write(tag::INTEGER, &[0], &mut info);
    der::write(tag::SEQUENCE, &algorithm, &mut info);
    der::write(tag::OCTET_STRING, der, &mut info);
    let mut out = Vec::new();
    der::write(tag::SEQUENCE, &info, &mut out);
    Ok((curve, out))
}
