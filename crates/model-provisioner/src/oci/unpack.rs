//! Tar layers unpacked into an assembly, with no path escaping the model's directory.
//!
//! ```text
//! layer blob (verified)              <cache>/tmp/dir-XXXX/  (the assembly)
//!     ./config.json        ──stage──▶     <base>/config.json   link to blobs/sha256/<a>
//!     weights/w.bin        ──stage──▶     <base>/weights/w.bin link to blobs/sha256/<b>
//!     w.bin  → weights/w.bin (symlink)    <base>/w.bin         link to blobs/sha256/<b>
//!     dev, fifo, `..`, `/abs`, …          refused: the whole layer fails
//! ```
//!
//! A layer is a plain tar, or one compressed with gzip or zstd; the rules below are the same for
//! all three, applied to the archive as it is decompressed.
//!
//! Nothing is extracted by the `tar` crate itself: every regular file is copied through
//! [`CacheLayout::stage`](catalog_core::CacheLayout::stage), so it is hashed on the way and
//! lands in the store, and the assembly records its digest like any other file. Links are
//! never made on disk: a hard link or a symbolic link to a file placed earlier in the same
//! layer becomes one more link to that file's blob (engines want real files), and any other
//! link is refused. Directories are never created from the archive; files create their
//! parents. Every name is checked twice: the one the `tar` crate resolves from PAX and GNU
//! long-name records, and the raw header name another extractor might use instead.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{self, BufReader, Read, Write as _};
use std::path::Path;

use catalog_core::{Digest, HASH_BUF_SIZE, SafeRelPath};
use flate2::read::MultiGzDecoder;
use tar::{Archive, Entry, EntryType};

use super::zstd::ZstdDecoder;
use crate::assemble::Assembly;
use crate::error::{Error, Result, printable};
use crate::pipeline::Unpack;

/// How a tar layer is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Compression {
    /// A plain tar archive (`…tar`).
    None,
    /// A gzip-compressed tar archive (`…tar+gzip`).
    Gzip,
    /// A zstd-compressed tar archive (`…tar+zstd`).
    Zstd,
}

/// Unpacks the verified tar archive at `archive` into `assembly`, under `base` (`None` for the
/// model's root).
///
/// Every regular file goes through the store (staged, hashed, published as a blob, linked), so
/// the assembly's per-file digests stay true. Returns the paths placed (links included) and
/// the bytes written (links excluded). `layer` (the layer's digest) is named in
/// errors. On an error, blobs already published stay in the store (they are named by their
/// content) and the caller drops the assembly with whatever it held.
pub(crate) fn unpack_tar(
    assembly: &Assembly<'_>,
    archive: &Path,
    compression: Compression,
    base: Option<&SafeRelPath>,
    layer: &str,
) -> Result<Unpacked> {
    let file = File::open(archive).map_err(|e| Error::read(archive, e))?;
    let mut unpacker = Unpacker {
        assembly,
        archive,
        base,
        layer,
        files: HashMap::new(),
        dirs: HashSet::new(),
        buf: vec![0; HASH_BUF_SIZE],
        bytes: 0,
    };
    match compression {
        Compression::None => unpacker.run(BufReader::new(file))?,
        Compression::Gzip => unpacker.run(MultiGzDecoder::new(BufReader::new(file)))?,
        Compression::Zstd => unpacker.run(ZstdDecoder::new(BufReader::new(file)))?,
    }
    let mut paths = unpacker
        .files
        .into_keys()
        .map(|p| p.parse::<SafeRelPath>())
        .collect::<std::result::Result<Vec<_>, _>>()?;
    paths.sort();
    Ok(Unpacked {
        paths,
        bytes: unpacker.bytes,
    })
}

/// A tar layer as the [pipeline](crate::pipeline) unpacks it, once its blob is in the store.
#[derive(Debug)]
pub(crate) struct TarLayer {
    /// The directory its files go under (the model's root if `None`).
    pub(crate) base: Option<SafeRelPath>,
    pub(crate) compression: Compression,
    /// The layer's digest, named in errors.
    pub(crate) layer: String,
}

impl Unpack for TarLayer {
    fn unpack(&self, assembly: &Assembly<'_>, blob: &Path) -> Result<Vec<SafeRelPath>> {
        let unpacked = unpack_tar(
            assembly,
            blob,
            self.compression,
            self.base.as_ref(),
            &self.layer,
        )?;
        tracing::debug!(layer = %self.layer, bytes = unpacked.bytes, "unpacked a tar layer");
        Ok(unpacked.paths)
    }
}

/// What [`unpack_tar`] placed.
#[derive(Debug)]
pub(crate) struct Unpacked {
    /// Every file placed (links included), relative to the model's root.
    pub(crate) paths: Vec<SafeRelPath>,
    /// Bytes written (links excluded).
    pub(crate) bytes: u64,
}

/// One archive being unpacked.
struct Unpacker<'a, 'b> {
    assembly: &'a Assembly<'b>,
    archive: &'a Path,
    base: Option<&'a SafeRelPath>,
    layer: &'a str,
    /// The files placed so far, with their digests: what links may point to.
    files: HashMap<String, Digest>,
    /// Every directory the placed files live in, so that no file is placed over one.
    dirs: HashSet<String>,
    buf: Vec<u8>,
    bytes: u64,
}

impl Unpacker<'_, '_> {
    fn run(&mut self, reader: impl Read) -> Result<()> {
        let mut archive = Archive::new(reader);
        let entries = archive
            .entries()
            .map_err(|e| Error::read(self.archive, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| Error::read(self.archive, e))?;
            self.entry(entry)?;
        }
        Ok(())
    }

    fn entry(&mut self, mut entry: Entry<'_, impl Read>) -> Result<()> {
        let kind = entry.header().entry_type();
        if kind.is_pax_global_extensions() {
            // Archive-wide metadata (`git archive` writes the commit there); it places nothing,
            // and the `tar` crate applies none of it to the names below.
            return Ok(());
        }
        let name_bytes = entry.path_bytes().into_owned();
        let layer = self.layer;
        let refuse = |reason: String| Error::UnsafeArchive {
            layer: layer.to_owned(),
            entry: printable(&String::from_utf8_lossy(&name_bytes)),
            reason,
        };
        let Ok(name) = std::str::from_utf8(&name_bytes) else {
            return Err(refuse("has a name that is not UTF-8".into()));
        };
        let raw = entry.header().path_bytes();
        if raw != name_bytes.as_slice() && escapes(&raw) {
            return Err(refuse(format!(
                "has a long name, but its header names `{}`, which would leave the model's directory",
                printable(&String::from_utf8_lossy(&raw))
            )));
        }
        if kind.is_dir() {
            // Created by nothing, so checked only for its name; `./` is the root.
            let dir = without_dot(name).trim_end_matches('/');
            if !dir.is_empty() && dir != "." {
                self.name(dir).map_err(refuse)?;
            }
            return Ok(());
        }
        let path = self.name(name).map_err(refuse)?;
        match kind {
            // A contiguous file is a regular file to every extractor that knows the type.
            EntryType::Regular | EntryType::Continuous => {
                self.claim(&path).map_err(refuse)?;
                let digest = self.place_file(&path, &mut entry, name)?;
                self.files.insert(path.into_string(), digest);
                Ok(())
            }
            EntryType::Link | EntryType::Symlink => {
                let digest = self.link_target(&entry, &path).map_err(refuse)?;
                self.claim(&path).map_err(refuse)?;
                self.assembly.place_blob(&path, digest.clone(), None)?;
                self.files.insert(path.into_string(), digest);
                Ok(())
            }
            EntryType::Char => Err(refuse("is a character device".into())),
            EntryType::Block => Err(refuse("is a block device".into())),
            EntryType::Fifo => Err(refuse("is a FIFO".into())),
            EntryType::GNUSparse => Err(refuse("is a sparse file, which is not supported".into())),
            other => Err(refuse(format!(
                "has the entry type `{}`, which is not a file, a directory or a link",
                printable(&String::from_utf8_lossy(&[other.as_byte()]))
            ))),
        }
    }

    /// The path an entry names, under `base`, a leading `./` dropped.
    fn name(&self, name: &str) -> Result<SafeRelPath, String> {
        let rel = without_dot(name);
        if rel.starts_with('/') {
            return Err("is an absolute path".into());
        }
        if rel.split('/').any(|segment| segment == "..") {
            return Err("has a `..` segment, which is not allowed".into());
        }
        if rel.ends_with('/') {
            return Err("ends with `/` but is not a directory".into());
        }
        self.under_base(rel)
    }

    /// `rel` under `base`, if it is a safe relative path.
    fn under_base(&self, rel: &str) -> Result<SafeRelPath, String> {
        let path = match self.base {
            Some(base) => SafeRelPath::new(format!("{base}/{rel}")),
            None => SafeRelPath::new(rel),
        };
        path.map_err(|e| e.problem())
    }

    /// The digest of the file placed earlier that the link entry at `path` points to.
    fn link_target(
        &self,
        entry: &Entry<'_, impl Read>,
        path: &SafeRelPath,
    ) -> Result<Digest, String> {
        let hard = entry.header().entry_type().is_hard_link();
        let what = if hard { "hard link" } else { "symbolic link" };
        let Some(target) = entry.link_name_bytes() else {
            return Err(format!("is a {what} without a target"));
        };
        let shown = printable(&String::from_utf8_lossy(&target));
        if let Some(raw) = entry.header().link_name_bytes()
            && raw != target
            && escapes(&raw)
        {
            return Err(format!(
                "is a {what} to the long name `{shown}`, but its header names `{}`, which would leave the model's directory",
                printable(&String::from_utf8_lossy(&raw))
            ));
        }
        let Ok(target) = std::str::from_utf8(&target) else {
            return Err(format!("is a {what} to a name that is not UTF-8"));
        };
        let resolved = if hard {
            // A hard link names its target from the archive's root, as entries are named.
            self.name(target)
                .map_err(|problem| format!("is a hard link to `{shown}`, a name that {problem}"))?
        } else {
            if target.starts_with('/') {
                return Err(format!("is a symbolic link to the absolute path `{shown}`"));
            }
            // Relative to the link's directory, inside the model's root (which `base` is under).
            let mut resolved: Vec<&str> = path.as_str().split('/').collect();
            resolved.pop();
            for segment in target.split('/') {
                match segment {
                    "" | "." => {}
                    ".." => {
                        if resolved.pop().is_none() {
                            return Err(format!(
                                "is a symbolic link to `{shown}`, outside the model's directory"
                            ));
                        }
                    }
                    _ => resolved.push(segment),
                }
            }
            SafeRelPath::new(resolved.join("/")).map_err(|_| {
                format!("is a symbolic link to `{shown}`, which is not a file placed earlier in the layer")
            })?
        };
        self.files.get(resolved.as_str()).cloned().ok_or_else(|| {
            format!("is a {what} to `{shown}`, which is not a file placed earlier in the layer")
        })
    }

    /// Takes `path` for a new file: refused if a file is there already, if files were placed
    /// under it, or if one of its parents is a file.
    fn claim(&mut self, path: &SafeRelPath) -> Result<(), String> {
        if self.files.contains_key(path.as_str()) {
            return Err(format!("places a second file at `{path}`"));
        }
        if self.dirs.contains(path.as_str()) {
            return Err(format!(
                "places a file at `{path}`, a directory of files placed earlier"
            ));
        }
        let parents = path
            .as_str()
            .match_indices('/')
            .map(|(i, _)| &path.as_str()[..i]);
        for parent in parents.clone() {
            if let Some((file, _)) = self.files.get_key_value(parent) {
                return Err(format!("is under `{file}`, a file placed earlier"));
            }
        }
        self.dirs.extend(parents.map(str::to_owned));
        Ok(())
    }

    /// Copies the entry's bytes into the store and places them at `path`.
    fn place_file(
        &mut self,
        path: &SafeRelPath,
        entry: &mut Entry<'_, impl Read>,
        name: &str,
    ) -> Result<Digest> {
        let mut staging = self.assembly.layout().stage()?;
        let mut written = 0;
        loop {
            let n = match entry.read(&mut self.buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Error::read(self.archive, e)),
            };
            staging
                .write_all(&self.buf[..n])
                .map_err(|e| catalog_core::Error::io("write", staging.path(), e))?;
            written += n as u64;
        }
        // The `tar` crate ends an entry quietly where the archive ends.
        if written != entry.size() {
            return Err(Error::read(
                self.archive,
                io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!(
                        "the archive ends inside `{}`, after {written} of its {} bytes",
                        printable(name),
                        entry.size()
                    ),
                ),
            ));
        }
        let staged = staging.finish()?;
        let digest = staged.digest.clone();
        self.assembly.place_staged(path, staged, None)?;
        self.bytes += written;
        Ok(digest)
    }
}

/// `name` without its leading `./` (any number of them).
fn without_dot(mut name: &str) -> &str {
    while let Some(rest) = name.strip_prefix("./") {
        name = rest;
    }
    name
}

/// Whether a raw header name would leave the directory it is unpacked in, read the way the
/// most lenient extractor would: absolute, or with a `..` segment, with either separator.
fn escapes(raw: &[u8]) -> bool {
    raw.first().is_some_and(|b| matches!(b, b'/' | b'\\'))
        || raw.split(|b| matches!(b, b'/' | b'\\')).any(|s| s == b"..")
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;
    use std::path::PathBuf;

    use catalog_core::CacheLayout;
    use flate2::write::GzEncoder;
    use tar::{Builder, Header};

    use super::*;
    use crate::assemble::Publish;

    type TestResult = std::result::Result<(), Box<dyn std::error::Error>>;

    const LAYER: &str = "sha256:0123";

    /// A name longer than a tar header holds (100 bytes), so it travels in a long-name record.
    const LONG: &str = "weights/a-file-name-long-enough-that-it-needs-a-long-name-record-because-old-headers-stop-at-one-hundred-bytes.bin";
    const LONG_BYTES: &[u8] = LONG.as_bytes();
    /// What a header holds of [`LONG`].
    const LONG_HEAD: &[u8] = LONG_BYTES.split_at(100).0;

    /// One entry of a test archive. Names go into the header bytes as given, past the checks
    /// of `Header::set_path`, which would refuse the hostile ones.
    #[derive(Debug, Clone, Copy)]
    enum E {
        File(&'static [u8], &'static [u8]),
        Dir(&'static [u8]),
        Hard(&'static [u8], &'static [u8]),
        Sym(&'static [u8], &'static [u8]),
        /// An entry of another type, without data.
        Other(&'static [u8], EntryType),
        /// A file named by a GNU long-name record (first) while its header says the second name.
        Gnu(&'static [u8], &'static [u8], &'static [u8]),
        /// A hard link to the target of a GNU long-link record (second) while its header says
        /// the third name.
        GnuHard(&'static [u8], &'static [u8], &'static [u8]),
        /// A file named by a PAX `path` record (first) while its header says the second name.
        Pax(&'static [u8], &'static [u8], &'static [u8]),
    }

    fn header(kind: EntryType, name: &[u8], link: &[u8], size: usize) -> Header {
        let mut h = Header::new_gnu();
        h.as_old_mut().name[..name.len()].copy_from_slice(name);
        h.as_old_mut().linkname[..link.len()].copy_from_slice(link);
        h.set_entry_type(kind);
        if let Some(gnu) = h.as_gnu_mut() {
            // What a sparse entry must carry to parse; ignored by every other type.
            gnu.set_real_size(0);
        }
        h.set_size(size as u64);
        h.set_mode(0o644);
        h.set_cksum();
        h
    }

    /// A PAX extended-header record: its length counts its own digits.
    fn pax_record(key: &str, value: &[u8]) -> Vec<u8> {
        let body = key.len() + value.len() + 3; // ' ', '=', '\n'
        let mut len = body + 1;
        while len != body + len.to_string().len() {
            len = body + len.to_string().len();
        }
        let mut record = format!("{len} {key}=").into_bytes();
        record.extend_from_slice(value);
        record.push(b'\n');
        record
    }

    fn tar(entries: &[E]) -> io::Result<Vec<u8>> {
        let mut b = Builder::new(Vec::new());
        for entry in entries {
            match *entry {
                E::File(name, data) => {
                    b.append(&header(EntryType::Regular, name, b"", data.len()), data)?;
                }
                E::Dir(name) => {
                    b.append(&header(EntryType::Directory, name, b"", 0), io::empty())?;
                }
                E::Hard(name, to) => {
                    b.append(&header(EntryType::Link, name, to, 0), io::empty())?;
                }
                E::Sym(name, to) => {
                    b.append(&header(EntryType::Symlink, name, to, 0), io::empty())?;
                }
                E::Other(name, kind) => b.append(&header(kind, name, b"", 0), io::empty())?,
                E::Gnu(long, raw, data) => {
                    let record = [long, b"\0"].concat();
                    let h = header(EntryType::GNULongName, b"././@LongLink", b"", record.len());
                    b.append(&h, record.as_slice())?;
                    b.append(&header(EntryType::Regular, raw, b"", data.len()), data)?;
                }
                E::GnuHard(name, long, raw) => {
                    let record = [long, b"\0"].concat();
                    let h = header(EntryType::GNULongLink, b"././@LongLink", b"", record.len());
                    b.append(&h, record.as_slice())?;
                    b.append(&header(EntryType::Link, name, raw, 0), io::empty())?;
                }
                E::Pax(path, raw, data) => {
                    let record = pax_record("path", path);
                    let h = header(EntryType::XHeader, b"PaxHeaders/x", b"", record.len());
                    b.append(&h, record.as_slice())?;
                    b.append(&header(EntryType::Regular, raw, b"", data.len()), data)?;
                }
            }
        }
        b.into_inner()
    }

    fn gzip(bytes: &[u8]) -> io::Result<Vec<u8>> {
        let mut gz = GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(bytes)?;
        gz.finish()
    }

    fn zstd(bytes: &[u8]) -> Vec<u8> {
        ruzstd::encoding::compress_to_vec(bytes, ruzstd::encoding::CompressionLevel::Fastest)
    }

    const COMPRESSIONS: [Compression; 3] =
        [Compression::None, Compression::Gzip, Compression::Zstd];

    fn compress(archive: &[u8], compression: Compression) -> io::Result<Vec<u8>> {
        match compression {
            Compression::None => Ok(archive.to_vec()),
            Compression::Gzip => gzip(archive),
            Compression::Zstd => Ok(zstd(archive)),
        }
    }

    /// A fresh cache at `<dir>/cache`, so that anything written beside it is a stray.
    fn cache() -> std::result::Result<(tempfile::TempDir, CacheLayout), Box<dyn std::error::Error>>
    {
        let dir = tempfile::tempdir()?;
        let layout = CacheLayout::new(dir.path().join("cache"))?;
        Ok((dir, layout))
    }

    /// Unpacks `archive` into a fresh assembly, and hands both to `check`.
    fn unpack(
        archive: &[u8],
        compression: Compression,
        base: Option<&str>,
        check: impl FnOnce(&Path, &CacheLayout, Assembly<'_>, Result<(u64, u64)>) -> TestResult,
    ) -> TestResult {
        let (dir, layout) = cache()?;
        let path = dir.path().join("layer.tar");
        std::fs::write(&path, archive)?;
        let base: Option<SafeRelPath> = base.map(str::parse).transpose()?;
        let assembly = Assembly::new(&layout)?;
        let result = unpack_tar(&assembly, &path, compression, base.as_ref(), LAYER)
            .map(|u| (u.paths.len() as u64, u.bytes));
        check(dir.path(), &layout, assembly, result)
    }

    /// Every file and link under `dir` that is neither the archive, nor a blob, nor under
    /// `allowed`; links count whatever their place (none is ever made).
    fn strays(dir: &Path, allowed: &[PathBuf]) -> io::Result<Vec<PathBuf>> {
        let mut found = Vec::new();
        let mut todo = vec![dir.to_owned()];
        while let Some(d) = todo.pop() {
            for e in std::fs::read_dir(&d)? {
                let path = e?.path();
                let meta = std::fs::symlink_metadata(&path)?;
                if meta.is_dir() {
                    todo.push(path);
                } else if meta.is_symlink()
                    || !(path == dir.join("layer.tar")
                        || path.starts_with(dir.join("cache/blobs"))
                        || allowed.iter().any(|a| path.starts_with(a)))
                {
                    found.push(path);
                }
            }
        }
        Ok(found)
    }

    fn publish(dest: PathBuf) -> Publish<'static> {
        Publish {
            id: "test:model",
            dest,
            select: None,
            expected: None,
            fetcher: "test",
            fetcher_version: "1".into(),
            resolved_revision: None,
            origin: None,
            include: Vec::new(),
            exclude: Vec::new(),
            bytes_read: 0,
        }
    }

    /// What a row expects placed: each file's path and bytes.
    type Files = &'static [(&'static str, &'static [u8])];

    /// A row of archives that unpack: what it shows, its entries, the base, the files placed,
    /// and the bytes written.
    type Placed = (&'static str, &'static [E], Option<&'static str>, Files, u64);

    #[test]
    #[expect(clippy::too_many_lines, reason = "one table of cases")]
    fn files_and_links_inside_the_layer_are_placed_with_their_digests() -> TestResult {
        let rows: &[Placed] = &[
            (
                "`./` prefix and a root entry",
                &[E::Dir(b"./"), E::Dir(b"."), E::File(b"./ok", b"fine")],
                None,
                &[("ok", b"fine")],
                4,
            ),
            (
                "directories are implicit, files go under the base",
                &[
                    E::Dir(b"d/"),
                    E::File(b"d/a.md", b"a"),
                    E::File(b"././b.md", b"bb"),
                ],
                Some("docs"),
                &[("docs/b.md", b"bb"), ("docs/d/a.md", b"a")],
                3,
            ),
            (
                "symbolic links to earlier files become files",
                &[
                    E::File(b"a/w.bin", b"weights"),
                    E::Sym(b"b/w.bin", b"../a/w.bin"),
                    E::Sym(b"w.bin", b"./a//w.bin"),
                    E::Sym(b"chain.bin", b"b/w.bin"),
                ],
                None,
                &[
                    ("a/w.bin", b"weights"),
                    ("b/w.bin", b"weights"),
                    ("chain.bin", b"weights"),
                    ("w.bin", b"weights"),
                ],
                7,
            ),
            (
                "a symbolic link under the base resolves from its own directory",
                &[E::File(b"w", b"x"), E::Sym(b"l/w", b"../w")],
                Some("m"),
                &[("m/l/w", b"x"), ("m/w", b"x")],
                1,
            ),
            (
                "hard links to earlier files, named from the archive's root",
                &[
                    E::File(b"f", b"data"),
                    E::Hard(b"h", b"./f"),
                    E::Hard(b"d/h", b"f"),
                ],
                Some("sub"),
                &[("sub/d/h", b"data"), ("sub/f", b"data"), ("sub/h", b"data")],
                4,
            ),
            (
                "a GNU long name",
                &[E::Gnu(LONG_BYTES, LONG_HEAD, b"long")],
                None,
                &[(LONG, b"long")],
                4,
            ),
            (
                "a GNU long link to an earlier file",
                &[
                    E::Gnu(LONG_BYTES, LONG_HEAD, b"w"),
                    E::GnuHard(b"h", LONG_BYTES, b"weights/a"),
                ],
                None,
                &[("h", b"w"), (LONG, b"w")],
                1,
            ),
            (
                "a PAX path over a safe header name",
                &[E::Pax(b"p/pax.bin", b"PaxHeaders/pax.bin", b"pax")],
                None,
                &[("p/pax.bin", b"pax")],
                3,
            ),
            (
                "a PAX global header places nothing",
                &[
                    E::Other(b"pax_global_header", EntryType::XGlobalHeader),
                    E::File(b"a", b"a"),
                ],
                None,
                &[("a", b"a")],
                1,
            ),
            (
                "a contiguous file is a regular file",
                &[E::Other(b"c.bin", EntryType::Continuous)],
                None,
                &[("c.bin", b"")],
                0,
            ),
            ("an empty archive", &[], None, &[], 0),
        ];
        for &(what, entries, base, files, bytes) in rows {
            let archive = tar(entries)?;
            for (compression, archive) in [
                (Compression::None, archive.clone()),
                (Compression::Gzip, gzip(&archive)?),
                (Compression::Zstd, zstd(&archive)),
            ] {
                let what = format!("{what} ({compression:?})");
                unpack(
                    &archive,
                    compression,
                    base,
                    |dir, layout, assembly, result| {
                        assert_eq!(result?, (files.len() as u64, bytes), "{what}");
                        let dest = layout.models_dir().join("test").join("m");
                        let fetched = assembly.publish(publish(dest.clone()))?;
                        let placed: Vec<_> = fetched
                            .provenance
                            .files
                            .iter()
                            .map(|f| (f.path.as_str(), f.size, f.digest.clone()))
                            .collect();
                        let expected: Vec<_> = files
                            .iter()
                            .map(|&(p, b)| (p, b.len() as u64, Some(Digest::sha256_of(b))))
                            .collect();
                        assert_eq!(placed, expected, "{what}");
                        for &(p, b) in files {
                            assert_eq!(std::fs::read(dest.join(p))?, b, "{what}: {p}");
                        }
                        assert_eq!(strays(dir, &[dest])?, Vec::<PathBuf>::new(), "{what}");
                        Ok(())
                    },
                )?;
            }
        }
        Ok(())
    }

    #[test]
    #[expect(clippy::too_many_lines, reason = "one table of cases")]
    fn hostile_entries_refuse_the_layer_and_name_the_entry() -> TestResult {
        let rows: &[(&str, &[E], Option<&str>, &str)] = &[
            ("absolute path", &[E::File(b"/etc/x", b"x")], None, "/etc/x"),
            ("`..`", &[E::File(b"../x", b"x")], None, "../x"),
            (
                "`..` deeper",
                &[E::File(b"a/../../x", b"x")],
                None,
                "a/../../x",
            ),
            (
                "`..` that stays inside",
                &[E::File(b"a/../x", b"x")],
                None,
                "a/../x",
            ),
            ("`.` segment", &[E::File(b"a/./x", b"x")], None, "a/./x"),
            ("empty segment", &[E::File(b"a//x", b"x")], None, "a//x"),
            (
                "file name ending in `/`",
                &[E::File(b"x/", b"x")],
                None,
                "x/",
            ),
            ("directory with `..`", &[E::Dir(b"../d/")], None, "../d/"),
            ("backslash", &[E::File(b"a\\b", b"x")], None, "a\\b"),
            ("not UTF-8", &[E::File(b"a\xffb", b"x")], None, "a\u{fffd}b"),
            (
                "control character",
                &[E::File(b"a\nb", b"x")],
                None,
                "a\\nb",
            ),
            (
                "symbolic link to an absolute path",
                &[E::Sym(b"passwd", b"/etc/passwd")],
                None,
                "passwd",
            ),
            (
                "symbolic link up and out",
                &[E::Sym(b"a/l", b"../../x")],
                None,
                "a/l",
            ),
            (
                "symbolic link out of the base to a file of another layer",
                &[E::Sym(b"l", b"../config.json")],
                Some("docs"),
                "l",
            ),
            (
                "symbolic link to a directory",
                &[E::File(b"d/f", b"x"), E::Sym(b"l", b"d")],
                None,
                "l",
            ),
            (
                "symbolic link to the root",
                &[E::File(b"f", b"x"), E::Sym(b"d/l", b"..")],
                None,
                "d/l",
            ),
            (
                "symbolic link to a later file",
                &[E::Sym(b"l", b"f"), E::File(b"f", b"x")],
                None,
                "l",
            ),
            ("symbolic link to itself", &[E::Sym(b"l", b"l")], None, "l"),
            ("hard link out", &[E::Hard(b"h", b"../x")], None, "h"),
            (
                "hard link to an absolute path",
                &[E::Hard(b"h", b"/etc/passwd")],
                None,
                "h",
            ),
            (
                "hard link to a later file",
                &[E::Hard(b"h", b"f"), E::File(b"f", b"x")],
                None,
                "h",
            ),
            (
                "hard link to nothing",
                &[E::Hard(b"h", b"missing")],
                None,
                "h",
            ),
            (
                "hard link without a target",
                &[E::Hard(b"h", b"")],
                None,
                "h",
            ),
            (
                "character device",
                &[E::Other(b"tty", EntryType::Char)],
                None,
                "tty",
            ),
            (
                "block device",
                &[E::Other(b"sda", EntryType::Block)],
                None,
                "sda",
            ),
            ("FIFO", &[E::Other(b"pipe", EntryType::Fifo)], None, "pipe"),
            (
                "sparse file",
                &[E::Other(b"s", EntryType::GNUSparse)],
                None,
                "s",
            ),
            (
                "unknown entry type",
                &[E::Other(b"u", EntryType::new(b'Z'))],
                None,
                "u",
            ),
            (
                "the same file twice",
                &[E::File(b"a", b"1"), E::File(b"./a", b"2")],
                None,
                "./a",
            ),
            (
                "a link over a file",
                &[
                    E::File(b"a", b"1"),
                    E::File(b"b", b"2"),
                    E::Hard(b"a", b"b"),
                ],
                None,
                "a",
            ),
            (
                "a file under a file",
                &[E::File(b"a", b"1"), E::File(b"a/b", b"2")],
                None,
                "a/b",
            ),
            (
                "a file over a directory of files",
                &[E::File(b"a/b", b"1"), E::File(b"a", b"2")],
                None,
                "a",
            ),
            (
                "a GNU long name over a header name with `..`",
                &[E::Gnu(b"ok/long", b"../../evil", b"x")],
                None,
                "ok/long",
            ),
            (
                "a GNU long name with `..`",
                &[E::Gnu(b"../long", b"safe", b"x")],
                None,
                "../long",
            ),
            (
                "a GNU long link over a header target with `..`",
                &[
                    E::File(b"f", b"x"),
                    E::GnuHard(b"h", b"f", b"../../etc/passwd"),
                ],
                None,
                "h",
            ),
            (
                "a PAX path over an absolute header name",
                &[E::Pax(b"ok/pax", b"/etc/x", b"x")],
                None,
                "ok/pax",
            ),
        ];
        for (&(what, entries, base, entry), compression) in rows
            .iter()
            .flat_map(|row| COMPRESSIONS.into_iter().map(move |c| (row, c)))
        {
            let what = format!("{what} ({compression:?})");
            unpack(
                &compress(&tar(entries)?, compression)?,
                compression,
                base,
                |dir, layout, assembly, result| {
                    match result {
                        Err(Error::UnsafeArchive {
                            layer,
                            entry: named,
                            reason,
                        }) => {
                            assert_eq!((layer.as_str(), named.as_str()), (LAYER, entry), "{what}");
                            assert!(!reason.is_empty(), "{what}");
                        }
                        other => panic!("{what}: {other:?}"),
                    }
                    drop(assembly);
                    assert!(!layout.models_dir().exists(), "{what}");
                    assert_eq!(std::fs::read_dir(layout.tmp_dir())?.count(), 0, "{what}");
                    assert_eq!(strays(dir, &[])?, Vec::<PathBuf>::new(), "{what}");
                    Ok(())
                },
            )?;
        }
        Ok(())
    }

    #[test]
    fn an_unsafe_entry_is_explained_with_a_hint() -> TestResult {
        unpack(
            &tar(&[E::File(b"a/../../x", b"x")])?,
            Compression::None,
            None,
            |_, _, _, result| {
                let err = result.unwrap_err();
                assert_eq!(
                    err.to_string(),
                    "refusing layer `sha256:0123`: its entry `a/../../x` has a `..` segment, which is not allowed"
                );
                assert_eq!(
                    err.hint().as_deref(),
                    Some("the artifact is malformed or hostile; nothing from it was published")
                );
                Ok(())
            },
        )?;
        unpack(
            &tar(&[E::Sym(b"l", b"/etc/passwd")])?,
            Compression::None,
            None,
            |_, _, _, result| {
                assert_eq!(
                    result.unwrap_err().to_string(),
                    "refusing layer `sha256:0123`: its entry `l` is a symbolic link to the absolute path `/etc/passwd`"
                );
                Ok(())
            },
        )
    }

    /// `weights/w.bin` (50 lines of `zstd from the reference encoder`) in a GNU tar, as
    /// `zstd -19 --check` compresses it: literals and sequences, not only raw blocks.
    const REFERENCE_ZSTD: &[u8] = &[
        0x28, 0xb5, 0x2f, 0xfd, 0x64, 0x00, 0x27, 0xf5, 0x02, 0x00, 0x22, 0x44, 0x0e, 0x11, 0xa0,
        0x6f, 0x08, 0x36, 0x29, 0xf5, 0xda, 0x6b, 0x03, 0x80, 0xc3, 0xbe, 0xc3, 0xa0, 0x8a, 0x37,
        0x52, 0x0c, 0xde, 0x97, 0x6c, 0x57, 0xd1, 0xdf, 0x99, 0x7f, 0xbb, 0xa3, 0x0d, 0xe5, 0xb3,
        0x5e, 0x74, 0x5e, 0xee, 0x7e, 0x44, 0x67, 0xe5, 0xd1, 0x4c, 0x08, 0x29, 0x83, 0x8d, 0x39,
        0x83, 0xe3, 0x4b, 0xc1, 0x8a, 0x49, 0x5d, 0x7b, 0x6e, 0x03, 0x0c, 0x00, 0xbc, 0xff, 0xf6,
        0xa2, 0xc3, 0xa1, 0x7e, 0x0d, 0x0a, 0x30, 0xe8, 0x80, 0x8a, 0x00, 0x97, 0xbe, 0x9b, 0x40,
        0x76, 0x0e, 0xf0, 0xb2, 0xa1, 0x8b, 0x02, 0x18, 0x14, 0x00, 0xec, 0x4c, 0x40, 0x09, 0xfe,
        0x25, 0x5a, 0x97,
    ];

    #[test]
    fn a_tar_compressed_by_the_reference_zstd_encoder_is_unpacked() -> TestResult {
        unpack(
            REFERENCE_ZSTD,
            Compression::Zstd,
            Some("m"),
            |_, layout, assembly, result| {
                assert_eq!(result?, (1, 1600));
                let dest = layout.models_dir().join("test").join("m");
                assembly.publish(publish(dest.clone()))?;
                assert_eq!(
                    std::fs::read(dest.join("m/weights/w.bin"))?,
                    b"zstd from the reference encoder\n".repeat(50)
                );
                Ok(())
            },
        )
    }

    #[test]
    fn broken_archives_are_read_errors_not_panics() -> TestResult {
        let big = tar(&[E::File(b"big", &[7; 2000])])?;
        let rows: &[(&str, Vec<u8>, Compression)] = &[
            ("cut inside a file", big[..1512].to_vec(), Compression::None),
            (
                "cut inside a header",
                big[..300].to_vec(),
                Compression::None,
            ),
            ("garbage", vec![b'A'; 1024], Compression::None),
            ("garbage, as gzip", vec![b'A'; 1024], Compression::Gzip),
            (
                "gzip cut short",
                gzip(&big)?[..20].to_vec(),
                Compression::Gzip,
            ),
            ("plain tar read as gzip", big.clone(), Compression::Gzip),
            ("garbage, as zstd", vec![b'A'; 1024], Compression::Zstd),
            (
                "zstd cut short",
                zstd(&big)[..40].to_vec(),
                Compression::Zstd,
            ),
            ("plain tar read as zstd", big.clone(), Compression::Zstd),
            ("nothing, as zstd", Vec::new(), Compression::Zstd),
            (
                "a whole zstd frame of a cut tar",
                zstd(&big[..1512]),
                Compression::Zstd,
            ),
        ];
        for (what, archive, compression) in rows {
            unpack(archive, *compression, None, |dir, _, _, result| {
                match result {
                    Err(Error::Read { path, .. }) => {
                        assert_eq!(path, dir.join("layer.tar"), "{what}");
                    }
                    other => panic!("{what}: {other:?}"),
                }
                Ok(())
            })?;
        }
        Ok(())
    }
}
