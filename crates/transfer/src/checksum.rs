//! [`Checksum`]: a checksum a source states for a file beside (or instead of) a sha256, and the
//! hashes of a download's bytes ([`Hashes`]), which compute it in the same in-order pass as the
//! sha256.
//!
//! A checksum catches bytes damaged or cut on their way; it proves nothing a sha256 does not,
//! and a file with only a checksum is not vouched for by it.

use catalog_core::{Digest, Hasher};

/// A checksum a source states for a file's bytes: cloud object stores state these, not a
/// sha256.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Checksum {
    /// MD5 (GCS's `md5Hash`, Azure's `Content-MD5`).
    Md5([u8; 16]),
    /// CRC32C, Castagnoli (GCS's `crc32c`).
    Crc32c(u32),
}

/// Which checksum a download computes beside the sha256.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChecksumKind {
    /// [`Checksum::Md5`].
    Md5,
    /// [`Checksum::Crc32c`].
    Crc32c,
}

impl Checksum {
    /// An MD5 as GCS (`md5Hash`) and Azure (`Content-MD5`) state it: the base64 of its 16
    /// bytes. `None` for anything else.
    pub fn md5_base64(text: &str) -> Option<Checksum> {
        decode(text)?.try_into().ok().map(Checksum::Md5)
    }

    /// A CRC32C as GCS states it (`crc32c`): the base64 of its 4 bytes, big-endian. `None`
    /// for anything else.
    pub fn crc32c_base64(text: &str) -> Option<Checksum> {
        let bytes: [u8; 4] = decode(text)?.try_into().ok()?;
        Some(Checksum::Crc32c(u32::from_be_bytes(bytes)))
    }

    /// Which kind it is.
    pub fn kind(&self) -> ChecksumKind {
        match self {
            Checksum::Md5(_) => ChecksumKind::Md5,
            Checksum::Crc32c(_) => ChecksumKind::Crc32c,
        }
    }

    /// The checksum of `data`, of `kind`.
    pub fn of(kind: ChecksumKind, data: &[u8]) -> Checksum {
        let mut running = Running::new(kind);
        running.update(data);
        running.finish()
    }
}

/// `md5:<base64>` or `crc32c:<base64>`, in the form the stores state them.
impl std::fmt::Display for Checksum {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::STANDARD;
        match self {
            Checksum::Md5(bytes) => write!(f, "md5:{}", b64.encode(bytes)),
            Checksum::Crc32c(value) => write!(f, "crc32c:{}", b64.encode(value.to_be_bytes())),
        }
    }
}

fn decode(text: &str) -> Option<Vec<u8>> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .ok()
}

/// A checksum being computed.
#[derive(Clone)]
enum Running {
    Md5(md5::Md5),
    Crc32c(u32),
}

impl Running {
    fn new(kind: ChecksumKind) -> Self {
        use md5::Digest as _;
        match kind {
            ChecksumKind::Md5 => Running::Md5(md5::Md5::new()),
            ChecksumKind::Crc32c => Running::Crc32c(0),
        }
    }

    fn kind(&self) -> ChecksumKind {
        match self {
            Running::Md5(_) => ChecksumKind::Md5,
            Running::Crc32c(_) => ChecksumKind::Crc32c,
        }
    }

    fn update(&mut self, data: &[u8]) {
        use md5::Digest as _;
        match self {
            Running::Md5(h) => h.update(data),
            Running::Crc32c(crc) => *crc = crc32c::crc32c_append(*crc, data),
        }
    }

    fn finish(self) -> Checksum {
        use md5::Digest as _;
        match self {
            Running::Md5(h) => Checksum::Md5(h.finalize().into()),
            Running::Crc32c(crc) => Checksum::Crc32c(crc),
        }
    }
}

/// The hashes of a download's bytes, fed in file order: the sha256 always, and the checksum the
/// source states when it states one.
#[derive(Clone)]
pub(crate) struct Hashes {
    sha256: Hasher,
    also: Option<Running>,
}

impl std::fmt::Debug for Hashes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hashes")
            .field("sha256", &self.sha256)
            .field("also", &self.also.as_ref().map(Running::kind))
            .finish()
    }
}

impl Hashes {
    /// Fresh hashes: the sha256, and a checksum of `also`'s kind.
    pub(crate) fn new(also: Option<ChecksumKind>) -> Self {
        Hashes {
            sha256: Hasher::new(),
            also: also.map(Running::new),
        }
    }

    pub(crate) fn update(&mut self, data: &[u8]) {
        self.sha256.update(data);
        if let Some(also) = &mut self.also {
            also.update(data);
        }
    }

    /// How many bytes were fed so far.
    pub(crate) fn bytes(&self) -> u64 {
        self.sha256.bytes()
    }

    /// The sha256 of what was fed so far, the hashes left running.
    pub(crate) fn sha256_so_far(&self) -> Digest {
        self.sha256.clone().finish()
    }

    /// The sha256 of everything fed, and the checksum when one was asked for.
    pub(crate) fn finish(self) -> (Digest, Option<Checksum>) {
        (self.sha256.finish(), self.also.map(Running::finish))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stores_forms_read_back_and_print_as_stated() {
        // The MD5 and CRC32C of "hello world", as GCS states them.
        let md5 = Checksum::md5_base64("XrY7u+Ae7tCTyyK7j1rNww==").unwrap();
        let crc = Checksum::crc32c_base64("yZRlqg==").unwrap();
        assert_eq!(Checksum::of(ChecksumKind::Md5, b"hello world"), md5);
        assert_eq!(Checksum::of(ChecksumKind::Crc32c, b"hello world"), crc);
        assert_eq!(md5.to_string(), "md5:XrY7u+Ae7tCTyyK7j1rNww==");
        assert_eq!(crc.to_string(), "crc32c:yZRlqg==");
        assert_eq!(Checksum::md5_base64("yZRlqg=="), None, "4 bytes are no MD5");
        assert_eq!(Checksum::crc32c_base64("not base64!"), None);
    }

    #[test]
    fn hashes_fed_in_pieces_are_the_hashes_of_the_whole() {
        let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        for kind in [ChecksumKind::Md5, ChecksumKind::Crc32c] {
            let mut hashes = Hashes::new(Some(kind));
            for piece in data.chunks(777) {
                hashes.update(piece);
            }
            let (sha, also) = hashes.finish();
            assert_eq!(sha, Digest::sha256_of(&data));
            assert_eq!(also, Some(Checksum::of(kind, &data)));
        }
        assert_eq!(Hashes::new(None).finish().1, None);
    }
}
