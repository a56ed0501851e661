//! [`Bundle`]: a Sigstore bundle (`model.sig`) read with bounds: its verification material (a
//! key hint, a certificate chain, or a keyless certificate with transparency-log entries), its
//! DSSE envelope, and the statement inside, read and checked.
//!
//! ```json
//! { "mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
//!   "verificationMaterial": { "publicKey": { "hint": "<sha256 of the key's PEM>" }
//!                           | "x509CertificateChain": { "certificates": [{ "rawBytes": "<DER>" }, …] }
//!                           | "certificate": { "rawBytes": "<DER>" },
//!                             "tlogEntries": [ … ] },
//!   "dsseEnvelope": { "payload": "<statement>", "payloadType": "application/vnd.in-toto+json",
//!                     "signatures": [{ "sig": "<DER ECDSA signature>", "keyid": "" }] } }
//! ```

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};

use crate::Error;
use crate::statement::{Bounded, Statement, printable};

/// The bundle media types this crate reads; it writes the first.
pub const MEDIA_TYPES: [&str; 3] = [
    "application/vnd.dev.sigstore.bundle.v0.3+json",
    "application/vnd.dev.sigstore.bundle+json;version=0.3",
    "application/vnd.dev.sigstore.bundle+json;version=0.2",
];
/// The DSSE payload type of an in-toto statement.
pub const PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";
/// The largest bundle read, in bytes; a larger one is refused before it is parsed. A model of
/// [`MAX_FILES`](crate::MAX_FILES) files signs into about 40 MiB.
pub const MAX_BUNDLE_BYTES: usize = 64 << 20;
/// The largest statement read, in bytes (the decoded DSSE payload).
pub const MAX_STATEMENT_BYTES: usize = 48 << 20;
/// The most certificates a bundle's chain may hold, the leaf included.
pub const MAX_CHAIN_LEN: usize = 8;
/// The most signatures an envelope may hold.
const MAX_SIGNATURES: usize = 8;

/// A signature bundle, read: nothing in it is verified yet (see [`verify`](crate::verify)).
#[derive(Debug, Clone)]
pub struct Bundle {
    material: Material,
    payload: Vec<u8>,
    signatures: Vec<Vec<u8>>,
    statement: Statement,
}

/// What the bundle offers to check its signature with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Material {
    /// A public key, named by a hint: the sha256 of its PEM (`None`: a bundle of the older
    /// format that names no key).
    KeyHint(Option<String>),
    /// A certificate chain, leaf first, each certificate DER.
    Chain(Vec<Vec<u8>>),
    /// A keyless (Sigstore) signature: a short-lived certificate, DER, and transparency-log
    /// entries.
    Keyless {
        /// The certificate.
        certificate: Vec<u8>,
        /// How many transparency-log entries the bundle holds.
        tlog_entries: usize,
    },
}

impl Bundle {
    /// Reads a bundle and the statement it carries; see [`Error`] for what is refused.
    pub fn read(bytes: &[u8]) -> Result<Bundle, Error> {
        if bytes.len() > MAX_BUNDLE_BYTES {
            return Err(Error::BundleTooLarge {
                size: bytes.len(),
                limit: MAX_BUNDLE_BYTES,
            });
        }
        let raw: RawBundle =
            serde_json::from_slice(bytes).map_err(|source| Error::BundleJson { source })?;
        if !MEDIA_TYPES.contains(&raw.media_type.as_str()) {
            return Err(Error::MediaType(printable(&raw.media_type)));
        }
        let Some(envelope) = raw.dsse_envelope else {
            return Err(Error::NoEnvelope);
        };
        if envelope.payload_type != PAYLOAD_TYPE {
            return Err(Error::PayloadType(printable(&envelope.payload_type)));
        }
        let material = raw.verification_material.material()?;
        // Base64 is 4 characters for 3 bytes: refuse before decoding what would be too large.
        if envelope.payload.len() / 4 * 3 > MAX_STATEMENT_BYTES + 3 {
            return Err(Error::StatementTooLarge {
                limit: MAX_STATEMENT_BYTES,
            });
        }
        let payload = decode("dsseEnvelope.payload", &envelope.payload)?;
        let signatures = envelope
            .signatures
            .take("signatures")
            .map_err(|_| Error::Signatures {
                count: MAX_SIGNATURES + 1,
            })?;
        if signatures.len() > 1 {
            return Err(Error::Signatures {
                count: signatures.len(),
            });
        }
        let signatures = signatures
            .iter()
            .map(|s| decode("dsseEnvelope.signatures.sig", &s.sig))
            .collect::<Result<Vec<_>, _>>()?;
        let statement = Statement::read(&payload)?;
        Ok(Bundle {
            material,
            payload,
            signatures,
            statement,
        })
    }

    /// The statement the bundle carries (read, not yet verified).
    pub fn statement(&self) -> &Statement {
        &self.statement
    }

    /// What the bundle offers to check its signature with.
    pub fn material(&self) -> &Material {
        &self.material
    }

    /// The signed bytes: the DSSE payload.
    pub(crate) fn payload(&self) -> &[u8] {
        &self.payload
    }

    /// The envelope's signatures, DER.
    pub(crate) fn signatures(&self) -> &[Vec<u8>] {
        &self.signatures
    }
}

fn decode(field: &'static str, text: &str) -> Result<Vec<u8>, Error> {
    STANDARD
        .decode(text)
        .map_err(|source| Error::Base64 { field, source })
}

/// The DSSE pre-authentication encoding of `payload`: what the signature covers.
pub(crate) fn pae(payload: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "DSSEv1 {} {PAYLOAD_TYPE} {} ",
        PAYLOAD_TYPE.len(),
        payload.len()
    )
    .into_bytes();
    out.extend_from_slice(payload);
    out
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawBundle {
    media_type: String,
    verification_material: RawMaterial,
    dsse_envelope: Option<RawEnvelope>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawMaterial {
    public_key: Option<RawHint>,
    x509_certificate_chain: Option<RawChain>,
    certificate: Option<RawCertificate>,
    #[serde(default)]
    tlog_entries: Option<Bounded<serde::de::IgnoredAny, 64>>,
}

impl RawMaterial {
    fn material(self) -> Result<Material, Error> {
        if let Some(chain) = self.x509_certificate_chain {
            if chain.certificates.overflow {
                return Err(Error::ChainTooLong {
                    count: MAX_CHAIN_LEN + 1,
                    limit: MAX_CHAIN_LEN,
                });
            }
            let mut certificates: Vec<Vec<u8>> = Vec::new();
            for certificate in chain.certificates.items {
                let der = decode(
                    "x509CertificateChain.certificates.rawBytes",
                    &certificate.raw_bytes,
                )?;
                if certificates.contains(&der) {
                    return Err(Error::ChainLoop {
                        index: certificates.len(),
                    });
                }
                certificates.push(der);
            }
            if certificates.is_empty() {
                return Err(Error::Certificate {
                    reason: "the bundle's certificate chain is empty".to_owned(),
                });
            }
            return Ok(Material::Chain(certificates));
        }
        if let Some(certificate) = self.certificate {
            return Ok(Material::Keyless {
                certificate: decode("certificate.rawBytes", &certificate.raw_bytes)?,
                tlog_entries: self.tlog_entries.map_or(0, |e| e.items.len()),
            });
        }
        let hint = self
            .public_key
            .and_then(|key| key.hint)
            .filter(|h| !h.is_empty());
        Ok(Material::KeyHint(hint))
    }
}

#[derive(Deserialize)]
struct RawHint {
    hint: Option<String>,
}

#[derive(Deserialize)]
struct RawChain {
    certificates: Bounded<RawCertificate, MAX_CHAIN_LEN>,
}

#[derive(Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RawCertificate {
    pub(crate) raw_bytes: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawEnvelope {
    payload: String,
    payload_type: String,
    signatures: Bounded<RawSignature, MAX_SIGNATURES>,
}

#[derive(Deserialize)]
struct RawSignature {
    sig: String,
}
