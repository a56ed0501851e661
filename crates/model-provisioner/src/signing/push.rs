//! [`PushSigner`]: what `push --sign` signs the model it publishes with.

use catalog_core::{Digest, SafeRelPath};

use super::ParsePolicyError;
use crate::error::{Error, Result};

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
