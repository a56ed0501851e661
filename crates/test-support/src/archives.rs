//! Tar archives as registries' tar layers hold them: plain, gzip or zstd, and hostile ones.

use std::io::{self, Write as _};

/// How a tar layer is compressed, as the end of its media type says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Packing {
    /// `…tar`.
    Tar,
    /// `…tar+gzip`.
    Gzip,
    /// `…tar+zstd`.
    Zstd,
}

impl Packing {
    /// What a media type ends with after `tar`: `""`, `+gzip`, `+zstd`.
    pub fn suffix(self) -> &'static str {
        match self {
            Packing::Tar => "",
            Packing::Gzip => "+gzip",
            Packing::Zstd => "+zstd",
        }
    }

    /// `tar`, compressed this way.
    pub fn pack(self, tar: &[u8]) -> Vec<u8> {
        match self {
            Packing::Tar => tar.to_vec(),
            Packing::Gzip => {
                let mut gz =
                    flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
                gz.write_all(tar).expect("writes to memory");
                gz.finish().expect("writes to memory")
            }
            Packing::Zstd => {
                ruzstd::encoding::compress_to_vec(tar, ruzstd::encoding::CompressionLevel::Fastest)
            }
        }
    }
}

/// A tar archive of `files` (paths with `/`), each preceded by an entry for each of its
/// directories not listed yet, as `tar` and `kit pack` write them.
pub fn tar_of(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    let mut dirs: Vec<String> = Vec::new();
    for (path, data) in files {
        let mut at = 0;
        while let Some(i) = path[at..].find('/') {
            let dir = &path[..at + i];
            at += i + 1;
            if !dirs.iter().any(|d| d == dir) {
                dirs.push(dir.to_owned());
                let mut header = tar::Header::new_gnu();
                header.set_size(0);
                header.set_mode(0o755);
                header.set_entry_type(tar::EntryType::Directory);
                builder
                    .append_data(&mut header, dir, io::empty())
                    .expect("writes to memory");
            }
        }
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_entry_type(tar::EntryType::Regular);
        builder
            .append_data(&mut header, path, *data)
            .expect("a path a tar header takes");
    }
    builder.into_inner().expect("writes to memory")
}

/// A tar archive of one regular file whose header names `name` as given, `..` and all (the
/// `tar` crate's own builder refuses such names).
pub fn hostile_tar(name: &str, data: &[u8]) -> Vec<u8> {
    let mut header = tar::Header::new_old();
    header.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
    header.set_size(data.len() as u64);
    header.set_mode(0o644);
    header.set_entry_type(tar::EntryType::Regular);
    header.set_cksum();
    let mut archive = header.as_bytes().to_vec();
    archive.extend_from_slice(data);
    // The data padded to its 512-byte block, then the two empty blocks that end an archive.
    archive.resize(archive.len().div_ceil(512) * 512 + 1024, 0);
    archive
}

#[cfg(test)]
mod tests {
    use std::io::Read as _;

    use super::*;

    #[test]
    fn each_packing_unpacks_to_the_files_with_their_directories() -> io::Result<()> {
        let tar = tar_of(&[("a/b/c.txt", b"c"), ("a/d.txt", b"dd")]);
        for packing in [Packing::Tar, Packing::Gzip, Packing::Zstd] {
            let packed = packing.pack(&tar);
            let plain = match packing {
                Packing::Tar => packed,
                Packing::Gzip => {
                    let mut out = Vec::new();
                    flate2::read::GzDecoder::new(packed.as_slice()).read_to_end(&mut out)?;
                    out
                }
                Packing::Zstd => {
                    let mut out = Vec::new();
                    ruzstd::decoding::StreamingDecoder::new(packed.as_slice())
                        .map_err(io::Error::other)?
                        .read_to_end(&mut out)?;
                    out
                }
            };
            let mut archive = tar::Archive::new(plain.as_slice());
            let names: Vec<String> = archive
                .entries()?
                .map(|e| Ok(e?.path()?.display().to_string()))
                .collect::<io::Result<_>>()?;
            assert_eq!(names, ["a", "a/b", "a/b/c.txt", "a/d.txt"], "{packing:?}");
        }
        let hostile = hostile_tar("../escape", b"evil");
        assert_eq!(hostile.len(), 2048);
        assert_eq!(&hostile[..9], b"../escape");
        Ok(())
    }
}
