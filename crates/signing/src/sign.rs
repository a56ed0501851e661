//! [`sign`]: the bundle the reference verifier accepts, for a model's `(path, sha256)` pairs,
//! signed with a key ([`Signer::key`]) or a key and its certificate chain
//! ([`Signer::certificate`]).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use catalog_core::{Digest, SafeRelPath};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject as _;
use serde_json::json;

use crate::Error;
use crate::bundle::{MEDIA_TYPES, PAYLOAD_TYPE, pae};
use crate::cert::CertInfo;
use crate::keys::{PrivateKey, PublicKey};
use crate::statement::Statement;

/// What a bundle is signed with.
#[derive(Debug)]
pub struct Signer {
    key: PrivateKey,
    chain: Option<Vec<Vec<u8>>>,
}

impl Signer {
    /// Signs with a private key (PEM, PKCS#8 or SEC1, unencrypted; P-256 or P-384); the bundle
    /// names the key by its hint, as the reference's `key` method does.
    pub fn key(private_key_pem: &[u8]) -> Result<Signer, Error> {
        Ok(Signer {
            key: PrivateKey::from_pem(private_key_pem)?,
            chain: None,
        })
    }

    /// Signs with a private key and its certificate (PEM), the certificates up to the CA
    /// (`chain_pem`, PEM, possibly empty) written after it in the bundle.
    pub fn certificate(
        private_key_pem: &[u8],
        certificate_pem: &[u8],
        chain_pem: &[u8],
    ) -> Result<Signer, Error> {
        let certificate =
            CertificateDer::from_pem_slice(certificate_pem).map_err(|e| Error::Certificate {
                reason: format!("not a PEM `CERTIFICATE`: {e}"),
            })?;
        let mut chain = vec![certificate.to_vec()];
        chain.extend(pem_certificates(chain_pem)?);
        Signer::with_chain(private_key_pem, chain)
    }

    /// Signs with a private key and the certificate chain in one PEM file, the key's own
    /// certificate first, then the certificates up to the CA (what a `fullchain.pem` holds).
    pub fn certificate_chain(private_key_pem: &[u8], chain_pem: &[u8]) -> Result<Signer, Error> {
        let chain = pem_certificates(chain_pem)?;
        if chain.is_empty() {
            return Err(Error::Certificate {
                reason: "the chain holds no PEM `CERTIFICATE`".to_owned(),
            });
        }
        Signer::with_chain(private_key_pem, chain)
    }

    /// `chain` (DER, the key's certificate first) checked against the key and bounded.
    fn with_chain(private_key_pem: &[u8], chain: Vec<Vec<u8>>) -> Result<Signer, Error> {
        let key = PrivateKey::from_pem(private_key_pem)?;
        let leaf = CertificateDer::from(chain[0].as_slice());
        let info = CertInfo::read(&leaf).map_err(|reason| Error::Certificate { reason })?;
        let cert_key = info.key.map_err(|reason| Error::Certificate { reason })?;
        if &cert_key != key.public() {
            return Err(Error::CertificateKeyMismatch);
        }
        if chain.len() > crate::MAX_CHAIN_LEN {
            return Err(Error::ChainTooLong {
                count: chain.len(),
                limit: crate::MAX_CHAIN_LEN,
            });
        }
        Ok(Signer {
            key,
            chain: Some(chain),
        })
    }

    /// The public key signatures made with this signer verify with.
    pub fn public_key(&self) -> &PublicKey {
        self.key.public()
    }
}

/// The certificates of `pem`, DER, in order.
fn pem_certificates(pem: &[u8]) -> Result<Vec<Vec<u8>>, Error> {
    CertificateDer::pem_slice_iter(pem)
        .map(|c| {
            c.map(|c| c.to_vec()).map_err(|e| Error::Certificate {
                reason: format!("the chain is not PEM certificates: {e}"),
            })
        })
        .collect()
}

/// Signs `files` (the ones at or under the default ignore paths left out, see
/// [`DEFAULT_IGNORE_PATHS`](crate::DEFAULT_IGNORE_PATHS)) as the model `model_name`, and
/// returns the bundle's JSON: what `model.sig` holds.
pub fn sign(
    files: &[(SafeRelPath, Digest)],
    signer: &Signer,
    model_name: &str,
) -> Result<Vec<u8>, Error> {
    let payload = Statement::build(model_name, files)?;
    let signature = signer.key.sign(&pae(&payload))?;
    let material = match &signer.chain {
        None => json!({
            "publicKey": { "hint": signer.public_key().hint() },
            "tlogEntries": [],
        }),
        Some(chain) => json!({
            "x509CertificateChain": {
                "certificates": chain
                    .iter()
                    .map(|der| json!({ "rawBytes": STANDARD.encode(der) }))
                    .collect::<Vec<_>>(),
            },
            "tlogEntries": [],
        }),
    };
    let bundle = json!({
        "mediaType": MEDIA_TYPES[0],
        "verificationMaterial": material,
        "dsseEnvelope": {
            "payload": STANDARD.encode(&payload),
            "payloadType": PAYLOAD_TYPE,
            "signatures": [{ "sig": STANDARD.encode(signature), "keyid": "" }],
        },
    });
    serde_json::to_vec_pretty(&bundle).map_err(|e| Error::Sign {
        reason: e.to_string(),
    })
}
