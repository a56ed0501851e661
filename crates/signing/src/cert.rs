//! Certificates: the names, usages and key a signing certificate holds, read from its DER, and
//! the chain from a bundle's leaf to a CA the caller trusts, checked with `rustls-webpki`.
//!
//! webpki checks the path (signatures, CA basic constraints, validity, path length, name
//! constraints) and, with [`KeyUsage::required_if_present`], the code-signing extended key
//! usage when the leaf lists extended usages. It does not read the leaf's key usage bits nor
//! return its names, so those come from [`CertInfo::read`]. Like the reference verifier, the
//! chain is checked at the leaf's `notBefore`: a short-lived signing certificate stays valid for
//! what it signed while it was valid.

use std::time::Duration;

use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, UnixTime};
use webpki::KeyUsage;

use crate::der::{Reader, Tlv, oid, tag};
use crate::keys::PublicKey;
use crate::{Error, Refused};

/// The CA certificates a [`Policy::CertChain`](crate::Policy::CertChain) trusts.
#[derive(Debug, Clone)]
pub struct TrustedCa {
    certificates: Vec<CertificateDer<'static>>,
}

impl TrustedCa {
    /// Reads every certificate of a PEM file (one CA or several).
    pub fn from_pem(pem: &[u8]) -> Result<TrustedCa, Error> {
        let certificates = CertificateDer::pem_slice_iter(pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| Error::Certificate {
                reason: format!("not PEM certificates: {e}"),
            })?;
        if certificates.is_empty() {
            return Err(Error::Certificate {
                reason: "no `CERTIFICATE` in the CA file".to_owned(),
            });
        }
        Ok(TrustedCa { certificates })
    }

    /// Checks that `chain` (leaf first, DER) leads to one of these CAs at the leaf's
    /// `notBefore`, and that the leaf may sign; returns what the leaf says.
    pub(crate) fn check(&self, chain: &[Vec<u8>]) -> Result<CertInfo, Refused> {
        let Some((leaf, intermediates)) = chain.split_first() else {
            return Err(Refused::NoCertificate);
        };
        let info =
            CertInfo::read(leaf).map_err(|reason| Refused::Certificate { index: 0, reason })?;
        let anchors = self
            .certificates
            .iter()
            .map(|c| webpki::anchor_from_trusted_cert(c).map(|a| a.to_owned()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| Refused::Chain {
                reason: format!("the given CA cannot be read: {e}"),
            })?;
        let leaf_der = CertificateDer::from(leaf.as_slice());
        let end_entity =
            webpki::EndEntityCert::try_from(&leaf_der).map_err(|e| Refused::Certificate {
                index: 0,
                reason: e.to_string(),
            })?;
        let intermediates: Vec<CertificateDer<'_>> = intermediates
            .iter()
            .map(|c| CertificateDer::from(c.as_slice()))
            .collect();
        end_entity
            .verify_for_usage(
                webpki::ALL_VERIFICATION_ALGS,
                &anchors,
                &intermediates,
                UnixTime::since_unix_epoch(Duration::from_secs(info.not_before)),
                KeyUsage::required_if_present(oid::CODE_SIGNING),
                None,
                None,
            )
            .map_err(|e| Refused::Chain {
                reason: e.to_string(),
            })?;
        // As the reference: the key usage allows digital signatures, or the extended key usage
        // lists code signing.
        if !(info.digital_signature || info.code_signing) {
            return Err(Refused::NotForSigning);
        }
        Ok(info)
    }
}

/// What a certificate says about its holder.
#[derive(Debug, Clone)]
pub(crate) struct CertInfo {
    pub(crate) subject: String,
    pub(crate) common_name: Option<String>,
    pub(crate) alt_names: Vec<String>,
    pub(crate) not_before: u64,
    pub(crate) digital_signature: bool,
    pub(crate) code_signing: bool,
    pub(crate) key: Result<PublicKey, String>,
}

impl CertInfo {
    /// Reads a DER certificate's subject, alternative names, validity start, usages and key.
    pub(crate) fn read(der: &[u8]) -> Result<CertInfo, String> {
        let malformed = |_| "malformed certificate".to_owned();
        let mut outer = Reader::new(der);
        let mut certificate = Reader::new(outer.expect(tag::SEQUENCE).map_err(malformed)?);
        let mut tbs = Reader::new(certificate.expect(tag::SEQUENCE).map_err(malformed)?);
        tbs.optional(0xa0).map_err(malformed)?;
        tbs.expect(tag::INTEGER).map_err(malformed)?;
        tbs.expect(tag::SEQUENCE).map_err(malformed)?;
        tbs.expect(tag::SEQUENCE).map_err(malformed)?;
        let mut validity = Reader::new(tbs.expect(tag::SEQUENCE).map_err(malformed)?);
        let not_before = time(validity.any().map_err(malformed)?)
            .ok_or_else(|| "malformed certificate validity".to_owned())?;
        let subject_der = tbs.expect(tag::SEQUENCE).map_err(malformed)?;
        let spki_value = tbs.expect(tag::SEQUENCE).map_err(malformed)?;
        let mut spki = Vec::new();
        crate::der::write(tag::SEQUENCE, spki_value, &mut spki);
        let key =
            PublicKey::from_spki(&spki, "certificate's public key").map_err(|e| e.to_string());
        let (subject, common_name) = name(subject_der).map_err(malformed)?;

        let mut info = CertInfo {
            subject,
            common_name,
            alt_names: Vec::new(),
            not_before,
            digital_signature: false,
            code_signing: false,
            key,
        };
        tbs.optional(0x81).map_err(malformed)?;
        tbs.optional(0x82).map_err(malformed)?;
        if let Some(extensions) = tbs.optional(0xa3).map_err(malformed)? {
            let mut list = Reader::new(
                Reader::new(extensions)
                    .expect(tag::SEQUENCE)
                    .map_err(malformed)?,
            );
            while !list.is_empty() {
                let mut extension = Reader::new(list.expect(tag::SEQUENCE).map_err(malformed)?);
                let id = extension.expect(tag::OID).map_err(malformed)?;
                extension.optional(0x01).map_err(malformed)?;
                let value = extension.expect(tag::OCTET_STRING).map_err(malformed)?;
                info.extension(id, value).map_err(malformed)?;
            }
        }
        Ok(info)
    }

    fn extension(&mut self, id: &[u8], value: &[u8]) -> Result<(), crate::der::Malformed> {
        match id {
            oid::SUBJECT_ALT_NAME => {
                let mut names = Reader::new(Reader::new(value).expect(tag::SEQUENCE)?);
                while !names.is_empty() {
                    let Tlv { tag, value } = names.any()?;
                    // rfc822Name [1], dNSName [2], uniformResourceIdentifier [6].
                    if matches!(tag, 0x81 | 0x82 | 0x86) {
                        self.alt_names
                            .push(String::from_utf8_lossy(value).into_owned());
                    }
                }
            }
            oid::KEY_USAGE => {
                let bits = Reader::new(value).expect(tag::BIT_STRING)?;
                self.digital_signature = bits.get(1).is_some_and(|b| b & 0x80 != 0);
            }
            oid::EXT_KEY_USAGE => {
                let mut usages = Reader::new(Reader::new(value).expect(tag::SEQUENCE)?);
                while !usages.is_empty() {
                    if usages.expect(tag::OID)? == oid::CODE_SIGNING {
                        self.code_signing = true;
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// Whether `identity` is the subject, its common name, or one of the alternative names.
    pub(crate) fn has_identity(&self, identity: &str) -> bool {
        self.subject == identity
            || self.common_name.as_deref() == Some(identity)
            || self.alt_names.iter().any(|n| n == identity)
    }

    /// The subject and alternative names, for a message.
    pub(crate) fn describe(&self) -> String {
        if self.alt_names.is_empty() {
            format!("certificate `{}`", self.subject)
        } else {
            format!(
                "certificate `{}` ({})",
                self.subject,
                self.alt_names.join(", ")
            )
        }
    }
}

/// A distinguished name as `CN=…, O=…` (attributes in the certificate's order) and its
/// common name.
fn name(der: &[u8]) -> Result<(String, Option<String>), crate::der::Malformed> {
    let mut parts = Vec::new();
    let mut common_name = None;
    let mut rdns = Reader::new(der);
    while !rdns.is_empty() {
        let mut set = Reader::new(rdns.expect(tag::SET)?);
        while !set.is_empty() {
            let mut attribute = Reader::new(set.expect(tag::SEQUENCE)?);
            let id = attribute.expect(tag::OID)?;
            let value = String::from_utf8_lossy(attribute.any()?.value).into_owned();
            let label = match id {
                [0x55, 0x04, 0x03] => "CN",
                [0x55, 0x04, 0x06] => "C",
                [0x55, 0x04, 0x07] => "L",
                [0x55, 0x04, 0x08] => "ST",
                [0x55, 0x04, 0x0a] => "O",
                [0x55, 0x04, 0x0b] => "OU",
                [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x01] => "emailAddress",
                _ => continue,
            };
            if label == "CN" && common_name.is_none() {
                common_name = Some(value.clone());
            }
            parts.push(format!("{label}={value}"));
        }
    }
    Ok((parts.join(", "), common_name))
}

/// A `UTCTime` or `GeneralizedTime` (`…Z`) as seconds since the Unix epoch.
fn time(tlv: Tlv<'_>) -> Option<u64> {
    let text = std::str::from_utf8(tlv.value).ok()?;
    let text = text.strip_suffix('Z')?;
    let (year, rest) = match tlv.tag {
        tag::UTC_TIME => {
            let yy: u64 = text.get(..2)?.parse().ok()?;
            (if yy >= 50 { 1900 + yy } else { 2000 + yy }, text.get(2..)?)
        }
        tag::GENERALIZED_TIME => (text.get(..4)?.parse().ok()?, text.get(4..)?),
        _ => return None,
    };
    if rest.len() != 10 || !rest.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let field = |i: usize| rest.get(i..i + 2).and_then(|s| s.parse::<u64>().ok());
    let (month, day, hour, minute, second) =
        (field(0)?, field(2)?, field(4)?, field(6)?, field(8)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || year < 1970 {
        return None;
    }
    // Days from the civil date (Howard Hinnant's algorithm), for years from 1970.
    let (y, m) = if month <= 2 {
        (year - 1, month + 9)
    } else {
        (year, month - 3)
    };
    let era = y / 400;
    let yoe = y - era * 400;
    let doy = (153 * m + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + hour * 3_600 + minute * 60 + second)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_read_as_unix_seconds() {
        let utc = |s: &str| {
            time(Tlv {
                tag: tag::UTC_TIME,
                value: s.as_bytes(),
            })
        };
        assert_eq!(utc("700101000000Z"), Some(0));
        assert_eq!(utc("240918153734Z"), Some(1_726_673_854));
        let generalized = Tlv {
            tag: tag::GENERALIZED_TIME,
            value: b"20500101000000Z",
        };
        assert_eq!(time(generalized), Some(2_524_608_000));
        assert_eq!(utc("2409181537Z"), None);
        assert_eq!(utc("241318153734Z"), None);
    }
}
