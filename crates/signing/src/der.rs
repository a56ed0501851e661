//! A small DER reader: just what a key, a certificate's names and its usages need.
//!
//! Every read is bounded by the input it is given: lengths are checked against what is left,
//! long-form lengths take at most four bytes, and nothing is allocated.

/// A tag and its contents, read from DER.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Tlv<'a> {
    pub(crate) tag: u8,
    pub(crate) value: &'a [u8],
}

/// DER tags this crate reads.
pub(crate) mod tag {
    pub(crate) const INTEGER: u8 = 0x02;
    pub(crate) const BIT_STRING: u8 = 0x03;
    pub(crate) const OCTET_STRING: u8 = 0x04;
    pub(crate) const OID: u8 = 0x06;
    pub(crate) const UTC_TIME: u8 = 0x17;
    pub(crate) const GENERALIZED_TIME: u8 = 0x18;
    pub(crate) const SEQUENCE: u8 = 0x30;
    pub(crate) const SET: u8 = 0x31;
}

/// Object identifiers, as their DER contents.
pub(crate) mod oid {
    /// `id-ecPublicKey` (1.2.840.10045.2.1).
    pub(crate) const EC_PUBLIC_KEY: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
    /// `prime256v1` / `secp256r1` (1.2.840.10045.3.1.7).
    pub(crate) const P256: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
    /// `secp384r1` (1.3.132.0.34).
    pub(crate) const P384: &[u8] = &[0x2b, 0x81, 0x04, 0x00, 0x22];
    /// `secp521r1` (1.3.132.0.35).
    pub(crate) const P521: &[u8] = &[0x2b, 0x81, 0x04, 0x00, 0x23];
    /// `subjectAltName` (2.5.29.17).
    pub(crate) const SUBJECT_ALT_NAME: &[u8] = &[0x55, 0x1d, 0x11];
    /// `keyUsage` (2.5.29.15).
    pub(crate) const KEY_USAGE: &[u8] = &[0x55, 0x1d, 0x0f];
    /// `extKeyUsage` (2.5.29.37).
    pub(crate) const EXT_KEY_USAGE: &[u8] = &[0x55, 0x1d, 0x25];
    /// `id-kp-codeSigning` (1.3.6.1.5.5.7.3.3).
    pub(crate) const CODE_SIGNING: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x03];
}

/// Reads DER elements one after another from a slice.
#[derive(Debug, Clone)]
pub(crate) struct Reader<'a> {
    rest: &'a [u8],
}

/// The DER was not what was expected; the caller says what it was reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Malformed;

impl<'a> Reader<'a> {
    pub(crate) fn new(input: &'a [u8]) -> Self {
        Reader { rest: input }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    /// The next element, whatever its tag.
    pub(crate) fn any(&mut self) -> Result<Tlv<'a>, Malformed> {
        let (&tag, rest) = self.rest.split_first().ok_or(Malformed)?;
        // Multi-byte tags (low bits all set) never occur in what this crate reads.
        if tag & 0x1f == 0x1f {
            return Err(Malformed);
        }
        let (&first, mut rest) = rest.split_first().ok_or(Malformed)?;
        let len = if first < 0x80 {
            usize::from(first)
        } else {
            let count = usize::from(first & 0x7f);
            if count == 0 || count > 4 || rest.len() < count {
                return Err(Malformed);
            }
            let (bytes, after) = rest.split_at(count);
            rest = after;
            bytes.iter().fold(0usize, |n, &b| (n << 8) | usize::from(b))
        };
        if rest.len() < len {
            return Err(Malformed);
        }
        let (value, after) = rest.split_at(len);
        self.rest = after;
        Ok(Tlv { tag, value })
    }

    /// The next element, which must have `tag`.
    pub(crate) fn expect(&mut self, tag: u8) -> Result<&'a [u8], Malformed> {
        let tlv = self.any()?;
        if tlv.tag == tag {
            Ok(tlv.value)
        } else {
            Err(Malformed)
        }
    }

    /// The next element if it has `tag`; nothing is consumed otherwise.
    pub(crate) fn optional(&mut self, tag: u8) -> Result<Option<&'a [u8]>, Malformed> {
        if self.rest.first() == Some(&tag) {
            self.expect(tag).map(Some)
        } else {
            Ok(None)
        }
    }
}

/// Writes one DER element (for the PKCS#8 wrapping of a SEC1 key).
pub(crate) fn write(tag: u8, value: &[u8], out: &mut Vec<u8>) {
    out.push(tag);
    let len = value.len();
    if len < 0x80 {
        out.push(u8::try_from(len).unwrap_or(0));
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|&&b| b == 0).count();
        out.push(0x80 | u8::try_from(bytes.len() - skip).unwrap_or(0));
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(value);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_past_the_input_are_malformed() {
        assert_eq!(
            Reader::new(&[0x30, 0x05, 0x01]).any().map(|_| ()),
            Err(Malformed)
        );
        assert_eq!(
            Reader::new(&[0x30, 0x85, 1, 1, 1, 1, 1]).any().map(|_| ()),
            Err(Malformed)
        );
        assert_eq!(Reader::new(&[0x30]).any().map(|_| ()), Err(Malformed));
    }

    #[test]
    fn written_elements_read_back() -> Result<(), Malformed> {
        for len in [0usize, 1, 127, 128, 255, 256, 70_000] {
            let mut out = Vec::new();
            write(tag::OCTET_STRING, &vec![7; len], &mut out);
            let mut reader = Reader::new(&out);
            assert_eq!(reader.expect(tag::OCTET_STRING)?.len(), len);
            assert!(reader.is_empty());
        }
        Ok(())
    }
}
