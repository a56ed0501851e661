//! A GGUF header reader: the metadata and the tensor-info table, never the tensor data.
//!
//! ```text
//! "GGUF"  version u32  tensor_count u64  kv_count u64      (little-endian; v2 and v3)
//! kv_count × { key: string, type: u32, value }             string = u64 length + bytes
//! tensor_count × { name: string, n_dims u32, dims u64[n_dims], type u32, offset u64 }
//! padding to `general.alignment` (32 by default), then the tensor data
//! ```
//!
//! Every length and count comes from the file, so each is checked against the bytes left
//! before anything is read or allocated for it; a file whose header lies about its size is
//! [`Problem::Broken`], never a panic or a large allocation.

use std::collections::BTreeMap;
use std::io::{self, Read};

use crate::Problem;

/// `GGUF` as a little-endian u32.
const MAGIC: u32 = 0x4655_4747;
/// The format versions this build reads.
const VERSIONS: std::ops::RangeInclusive<u32> = 2..=3;
/// The longest key the format allows.
const MAX_KEY_LEN: u64 = 65_535;
/// The longest string value kept (a name, an architecture); longer ones are skipped.
const MAX_KEPT_STRING: u64 = 1024;
/// Arrays of arrays deeper than this are refused: no model nests them at all.
const MAX_ARRAY_DEPTH: u32 = 3;
/// ggml tensors have at most four dimensions.
const MAX_DIMS: u32 = 4;
/// The alignment when `general.alignment` is absent.
const DEFAULT_ALIGNMENT: u64 = 32;

/// What a GGUF header says about the model.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GgufHeader {
    /// The format version (2 or 3).
    pub version: u32,
    /// `general.architecture`.
    pub architecture: Option<String>,
    /// `general.name`.
    pub name: Option<String>,
    /// `general.parameter_count`, when the file states it.
    pub stated_parameters: Option<u64>,
    /// `general.file_type`, llama.cpp's quantisation code.
    pub file_type: Option<u64>,
    /// `<architecture>.context_length`.
    pub context_length: Option<u64>,
    /// `split.no` (counted from 0).
    pub split_no: Option<u64>,
    /// `split.count`.
    pub split_count: Option<u64>,
    /// The number of tensors in this file.
    pub tensor_count: u64,
    /// The elements of every tensor added up.
    pub parameters: u64,
    /// Tensors per ggml type name.
    pub dtypes: BTreeMap<String, u64>,
    /// Elements per ggml type name: the dominant type stands for the quantisation when the
    /// file states none.
    pub elements_by_type: BTreeMap<String, u64>,
    /// Where the tensor data starts.
    pub data_start: u64,
    /// Where the last tensor's data ends.
    pub data_end: u64,
    /// What looked wrong without breaking the file (a tensor type this build does not know).
    pub warnings: Vec<String>,
}

impl GgufHeader {
    /// The quantisation: `general.file_type` by name, else the type most elements have.
    pub fn quantization(&self) -> Option<String> {
        if let Some(name) = self.file_type.and_then(file_type_name) {
            return Some(name.to_owned());
        }
        self.elements_by_type
            .iter()
            .max_by_key(|(name, n)| (**n, std::cmp::Reverse(name.as_str())))
            .map(|(name, _)| name.clone())
    }

    /// The parameter count: as stated, else as counted.
    pub fn parameter_count(&self) -> u64 {
        self.stated_parameters.unwrap_or(self.parameters)
    }
}

/// Whether `head` starts like a GGUF file (its magic).
pub fn has_magic(head: &[u8]) -> bool {
    head.len() >= 4 && u32::from_le_bytes([head[0], head[1], head[2], head[3]]) == MAGIC
}

/// Reads the header of a GGUF file of `file_len` bytes from `reader`, positioned at its start,
/// and checks that every tensor's data lies inside the file.
pub fn read(reader: impl Read, file_len: u64) -> Result<GgufHeader, Problem> {
    let mut r = Bytes {
        inner: reader,
        pos: 0,
        len: file_len,
    };
    if file_len < 4 || r.u32()? != MAGIC {
        return Err(Problem::NotThisFormat);
    }
    if file_len < 8 {
        return Err(broken("ends inside its header (in the version)"));
    }
    let version = r.u32()?;
    if !VERSIONS.contains(&version) {
        return Err(unsupported_version(version));
    }
    let tensor_count = r.u64()?;
    let kv_count = r.u64()?;
    // The smallest key-value pair: an empty key (8), its type (4) and a one-byte value.
    r.claim(kv_count, 13, "metadata entries")?;
    let mut header = GgufHeader {
        version,
        tensor_count,
        ..GgufHeader::default()
    };
    let alignment = r.metadata(kv_count, &mut header)?;
    let furthest = r.tensors(tensor_count, alignment, &mut header)?;
    header.data_start = r.pos.div_ceil(alignment).saturating_mul(alignment);
    let (name, end) = furthest.unwrap_or_default();
    header.data_end = header.data_start.saturating_add(end);
    if header.data_end > file_len {
        return Err(broken(format!(
            "has tensor data past its end: tensor `{name}` ends at byte {}, the file has {file_len}",
            header.data_end
        )));
    }
    Ok(header)
}

fn broken(what: impl std::fmt::Display) -> Problem {
    Problem::Broken(format!("is a GGUF file that {what}"))
}

fn unsupported_version(version: u32) -> Problem {
    let swapped = version.swap_bytes();
    Problem::Unsupported(if VERSIONS.contains(&swapped) {
        format!("is a big-endian GGUF (version {swapped}), which this build does not read")
    } else if version == 1 {
        "is GGUF version 1, older than this build reads".to_owned()
    } else if version > *VERSIONS.end() {
        format!("is GGUF version {version}, newer than this build reads")
    } else {
        format!("is GGUF version {version}, which does not exist")
    })
}

/// The reader, with the position and the file's length, so that every length read can be
/// checked against the bytes left.
struct Bytes<R> {
    inner: R,
    pos: u64,
    len: u64,
}

impl<R: Read> Bytes<R> {
    /// Reads the metadata into `header`; returns the alignment of the tensor data.
    fn metadata(&mut self, kv_count: u64, header: &mut GgufHeader) -> Result<u64, Problem> {
        let r = self;
        let mut alignment = DEFAULT_ALIGNMENT;
        let mut context_lengths: Vec<(String, u64)> = Vec::new();
        for _ in 0..kv_count {
            let key_len = r.u64()?;
            if key_len > MAX_KEY_LEN {
                return Err(broken(format!(
                    "has a metadata key of {key_len} bytes, longer than the {MAX_KEY_LEN} the format allows"
                )));
            }
            let key = r.string(key_len)?;
            let value_type = r.u32()?;
            match key.as_str() {
                "general.architecture" => header.architecture = r.kept_string(value_type)?,
                "general.name" => header.name = r.kept_string(value_type)?,
                "general.parameter_count" => header.stated_parameters = r.number(value_type)?,
                "general.file_type" => header.file_type = r.number(value_type)?,
                "split.no" => header.split_no = r.number(value_type)?,
                "split.count" => header.split_count = r.number(value_type)?,
                "general.alignment" => {
                    let value = r.number(value_type)?;
                    match value {
                        Some(a) if a.is_power_of_two() && a <= 1 << 20 => alignment = a,
                        _ => {
                            return Err(broken(
                                "has a `general.alignment` that is not a power of two",
                            ));
                        }
                    }
                }
                k if k.ends_with(".context_length") => {
                    if let Some(n) = r.number(value_type)?
                        && context_lengths.len() < 16
                    {
                        context_lengths.push((key.clone(), n));
                    }
                }
                _ => r.skip_value(value_type, 0)?,
            }
        }
        if let Some(arch) = &header.architecture {
            let wanted = format!("{arch}.context_length");
            header.context_length = context_lengths
                .iter()
                .find(|(k, _)| *k == wanted)
                .map(|(_, n)| *n);
        }
        Ok(alignment)
    }

    /// Reads the tensor table into `header`, checking each tensor's shape, type and offset
    /// and that no two overlap; returns the tensor whose data ends last, and where.
    fn tensors(
        &mut self,
        tensor_count: u64,
        alignment: u64,
        header: &mut GgufHeader,
    ) -> Result<Option<(String, u64)>, Problem> {
        let r = self;
        // The smallest tensor info: an empty name (8), n_dims (4), type (4), offset (8).
        r.claim(tensor_count, 24, "tensors")?;
        let mut furthest: Option<(String, u64)> = None;
        let mut ends = Vec::new();
        for index in 0..tensor_count {
            let name_len = r.u64()?;
            let name = if name_len <= 256 {
                r.string(name_len)?
            } else {
                r.skip(name_len, "a tensor name")?;
                format!("#{index}")
            };
            let n_dims = r.u32()?;
            if n_dims > MAX_DIMS {
                return Err(broken(format!(
                    "gives tensor `{name}` {n_dims} dimensions; ggml tensors have at most {MAX_DIMS}"
                )));
            }
            let mut dims = [1u64; MAX_DIMS as usize];
            for d in dims.iter_mut().take(n_dims as usize) {
                *d = r.u64()?;
            }
            let ggml_type = r.u32()?;
            let offset = r.u64()?;
            let elements = dims
                .iter()
                .try_fold(1u64, |acc, d| acc.checked_mul(*d))
                .ok_or_else(|| {
                    broken(format!(
                        "gives tensor `{name}` more elements than fit in 64 bits"
                    ))
                })?;
            header.parameters = header.parameters.saturating_add(elements);
            let Some(t) = ggml_type_info(ggml_type) else {
                if header.warnings.len() < 8 {
                    header.warnings.push(format!(
                        "tensor `{name}` has ggml type {ggml_type}, which this build does not know; its size is not checked"
                    ));
                }
                *header
                    .dtypes
                    .entry(format!("type {ggml_type}"))
                    .or_default() += 1;
                continue;
            };
            *header.dtypes.entry(t.name.to_owned()).or_default() += 1;
            *header
                .elements_by_type
                .entry(t.name.to_owned())
                .or_default() += elements;
            if dims[0] % t.block != 0 {
                return Err(broken(format!(
                    "gives tensor `{name}` rows of {} elements, not a multiple of {}'s block of {}",
                    dims[0], t.name, t.block
                )));
            }
            let size = (elements / t.block)
                .checked_mul(t.bytes)
                .ok_or_else(|| broken(format!("gives tensor `{name}` a size past 64 bits")))?;
            if offset % alignment != 0 {
                return Err(broken(format!(
                    "places tensor `{name}` at offset {offset}, not a multiple of the alignment {alignment}"
                )));
            }
            let end = offset
                .checked_add(size)
                .ok_or_else(|| broken(format!("places tensor `{name}` past 64 bits")))?;
            if furthest.as_ref().is_none_or(|(_, e)| end > *e) {
                furthest = Some((name, end));
            }
            // An empty tensor takes no bytes, so it cannot overlap anything.
            if end > offset {
                ends.push((offset, end));
            }
        }
        ends.sort_unstable();
        if let Some(w) = ends.windows(2).find(|w| w[1].0 < w[0].1) {
            return Err(broken(format!(
                "has overlapping tensors: one at data offset {} runs to {}, the next starts at {}",
                w[0].0, w[0].1, w[1].0
            )));
        }
        Ok(furthest)
    }

    fn left(&self) -> u64 {
        self.len.saturating_sub(self.pos)
    }

    /// Fails unless `count` items of at least `min_size` bytes each fit in what is left.
    fn claim(&self, count: u64, min_size: u64, what: &str) -> Result<(), Problem> {
        if count.saturating_mul(min_size) > self.left() {
            return Err(broken(format!(
                "claims {count} {what}, more than its remaining {} bytes can hold",
                self.left()
            )));
        }
        Ok(())
    }

    fn exact<const N: usize>(&mut self) -> Result<[u8; N], Problem> {
        if (N as u64) > self.left() {
            return Err(broken(format!(
                "ends inside its header (at byte {})",
                self.pos
            )));
        }
        let mut buf = [0u8; N];
        self.inner.read_exact(&mut buf).map_err(io_problem)?;
        self.pos += N as u64;
        Ok(buf)
    }

    fn u32(&mut self) -> Result<u32, Problem> {
        self.exact().map(u32::from_le_bytes)
    }

    fn u64(&mut self) -> Result<u64, Problem> {
        self.exact().map(u64::from_le_bytes)
    }

    /// `n` bytes, at most [`MAX_KEY_LEN`] (callers check), as text.
    fn string(&mut self, n: u64) -> Result<String, Problem> {
        if n > self.left() {
            return Err(broken(format!(
                "has a string of {n} bytes at byte {}, past its end",
                self.pos
            )));
        }
        let mut buf = vec![0u8; usize::try_from(n).map_err(|_| broken("has a string too long"))?];
        self.inner.read_exact(&mut buf).map_err(io_problem)?;
        self.pos += n;
        Ok(String::from_utf8_lossy(&buf).into_owned())
    }

    fn skip(&mut self, n: u64, what: &str) -> Result<(), Problem> {
        if n > self.left() {
            return Err(broken(format!(
                "has {what} of {n} bytes at byte {}, past its end",
                self.pos
            )));
        }
        let copied =
            io::copy(&mut (&mut self.inner).take(n), &mut io::sink()).map_err(io_problem)?;
        if copied != n {
            return Err(broken(format!(
                "ends inside its header (at byte {})",
                self.pos + copied
            )));
        }
        self.pos += n;
        Ok(())
    }

    /// A string value short enough to keep; a longer one, or a value of another type, is
    /// skipped.
    fn kept_string(&mut self, value_type: u32) -> Result<Option<String>, Problem> {
        if value_type != STRING {
            self.skip_value(value_type, 0)?;
            return Ok(None);
        }
        let n = self.u64()?;
        if n > MAX_KEPT_STRING {
            self.skip(n, "a string")?;
            return Ok(None);
        }
        Ok(Some(self.string(n)?))
    }

    /// An integer value that is not negative; a value of another type is skipped.
    fn number(&mut self, value_type: u32) -> Result<Option<u64>, Problem> {
        Ok(match value_type {
            0 => Some(u64::from(self.exact::<1>()?[0])),
            1 => u64::try_from(i8::from_le_bytes(self.exact()?)).ok(),
            2 => Some(u64::from(u16::from_le_bytes(self.exact()?))),
            3 => u64::try_from(i16::from_le_bytes(self.exact()?)).ok(),
            4 => Some(u64::from(self.u32()?)),
            5 => u64::try_from(i32::from_le_bytes(self.exact()?)).ok(),
            10 => Some(self.u64()?),
            11 => u64::try_from(i64::from_le_bytes(self.exact()?)).ok(),
            other => {
                self.skip_value(other, 0)?;
                None
            }
        })
    }

    /// Skips one value of `value_type`, arrays included, reading no more than the value.
    fn skip_value(&mut self, value_type: u32, depth: u32) -> Result<(), Problem> {
        match value_type {
            STRING => {
                let n = self.u64()?;
                self.skip(n, "a string")
            }
            ARRAY => {
                if depth >= MAX_ARRAY_DEPTH {
                    return Err(broken(format!(
                        "nests arrays more than {MAX_ARRAY_DEPTH} deep"
                    )));
                }
                let item_type = self.u32()?;
                let count = self.u64()?;
                match fixed_size(item_type) {
                    Some(size) => {
                        let bytes = count.checked_mul(size).ok_or_else(|| {
                            broken(format!("claims an array of {count} items, past 64 bits"))
                        })?;
                        self.skip(bytes, "an array")
                    }
                    None => {
                        // Strings and arrays take at least 8 bytes (a length or a type and
                        // a count) each.
                        self.claim(
                            count,
                            if item_type == STRING { 8 } else { 12 },
                            "array items",
                        )?;
                        for _ in 0..count {
                            self.skip_value(item_type, depth + 1)?;
                        }
                        Ok(())
                    }
                }
            }
            t => match fixed_size(t) {
                Some(size) => self.skip(size, "a value"),
                None => Err(broken(format!(
                    "has a metadata value of type {t}, which the format does not define"
                ))),
            },
        }
    }
}

const STRING: u32 = 8;
const ARRAY: u32 = 9;

/// The size of a value of a fixed-size metadata type.
fn fixed_size(value_type: u32) -> Option<u64> {
    match value_type {
        0 | 1 | 7 => Some(1),
        2 | 3 => Some(2),
        4..=6 => Some(4),
        10..=12 => Some(8),
        _ => None,
    }
}

fn io_problem(e: io::Error) -> Problem {
    if e.kind() == io::ErrorKind::UnexpectedEof {
        // The file was shorter than its length said: it changed under us.
        Problem::Io(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "the file ended before its length said it would (was it changed while read?)",
        ))
    } else {
        Problem::Io(e)
    }
}

/// A ggml tensor type: its name, and how many bytes a block of how many elements takes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct GgmlType {
    pub(crate) name: &'static str,
    pub(crate) block: u64,
    pub(crate) bytes: u64,
}

/// The ggml tensor types, by their number in the file (gaps are types ggml removed).
pub(crate) fn ggml_type_info(t: u32) -> Option<GgmlType> {
    let (name, block, bytes) = match t {
        0 => ("F32", 1, 4),
        1 => ("F16", 1, 2),
        2 => ("Q4_0", 32, 18),
        3 => ("Q4_1", 32, 20),
        6 => ("Q5_0", 32, 22),
        7 => ("Q5_1", 32, 24),
        8 => ("Q8_0", 32, 34),
        9 => ("Q8_1", 32, 36),
        10 => ("Q2_K", 256, 84),
        11 => ("Q3_K", 256, 110),
        12 => ("Q4_K", 256, 144),
        13 => ("Q5_K", 256, 176),
        14 => ("Q6_K", 256, 210),
        15 => ("Q8_K", 256, 292),
        16 => ("IQ2_XXS", 256, 66),
        17 => ("IQ2_XS", 256, 74),
        18 => ("IQ3_XXS", 256, 98),
        19 => ("IQ1_S", 256, 50),
        20 => ("IQ4_NL", 32, 18),
        21 => ("IQ3_S", 256, 110),
        22 => ("IQ2_S", 256, 82),
        23 => ("IQ4_XS", 256, 136),
        24 => ("I8", 1, 1),
        25 => ("I16", 1, 2),
        26 => ("I32", 1, 4),
        27 => ("I64", 1, 8),
        28 => ("F64", 1, 8),
        29 => ("IQ1_M", 256, 56),
        30 => ("BF16", 1, 2),
        34 => ("TQ1_0", 256, 54),
        35 => ("TQ2_0", 256, 66),
        39 => ("MXFP4", 32, 17),
        _ => return None,
    };
    Some(GgmlType { name, block, bytes })
}

/// llama.cpp's `general.file_type` codes, by the names its quantize tool gives them.
fn file_type_name(code: u64) -> Option<&'static str> {
    Some(match code {
        0 => "F32",
        1 => "F16",
        2 => "Q4_0",
        3 => "Q4_1",
        7 => "Q8_0",
        8 => "Q5_0",
        9 => "Q5_1",
        10 => "Q2_K",
        11 => "Q3_K_S",
        12 => "Q3_K_M",
        13 => "Q3_K_L",
        14 => "Q4_K_S",
        15 => "Q4_K_M",
        16 => "Q5_K_S",
        17 => "Q5_K_M",
        18 => "Q6_K",
        19 => "IQ2_XXS",
        20 => "IQ2_XS",
        21 => "Q2_K_S",
        22 => "IQ3_XS",
        23 => "IQ3_XXS",
        24 => "IQ1_S",
        25 => "IQ4_NL",
        26 => "IQ3_S",
        27 => "IQ3_M",
        28 => "IQ2_S",
        29 => "IQ2_M",
        30 => "IQ4_XS",
        31 => "IQ1_M",
        32 => "BF16",
        36 => "TQ1_0",
        37 => "TQ2_0",
        38 => "MXFP4_MOE",
        _ => return None,
    })
}

/// The parts of a split file's name, `<prefix>-<no>-of-<count>.gguf` (five digits each, as
/// llama.cpp's split tool writes them): the prefix, the part (from 1) and the count.
pub fn split_name(file_name: &str) -> Option<(&str, u32, u32)> {
    let stem = file_name.strip_suffix(".gguf")?;
    let (rest, count) = stem.rsplit_once("-of-")?;
    let (prefix, no) = rest.rsplit_once('-')?;
    let digits = |s: &str| s.len() == 5 && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(no) || !digits(count) || prefix.is_empty() {
        return None;
    }
    Some((prefix, no.parse().ok()?, count.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use test_support::model_files::{GgufBuilder, Value, tiny_llama};

    use super::*;

    fn parse(bytes: &[u8]) -> Result<GgufHeader, Problem> {
        read(bytes, bytes.len() as u64)
    }

    #[test]
    fn a_tiny_model_reads_with_everything_it_states() -> Result<(), Problem> {
        let h = parse(&tiny_llama().bytes())?;
        assert_eq!(h.version, 3);
        assert_eq!(h.architecture.as_deref(), Some("llama"));
        assert_eq!(h.name.as_deref(), Some("Tiny Llama"));
        assert_eq!(h.context_length, Some(2048));
        assert_eq!(h.tensor_count, 4);
        assert_eq!(h.parameters, 64 * 3 + 64 * 64 + 64 * 128 + 64);
        assert_eq!(h.quantization().as_deref(), Some("Q8_0"));
        assert_eq!(h.dtypes.get("F32"), Some(&2));
        assert_eq!(h.dtypes.get("Q8_0"), Some(&2));
        Ok(())
    }

    #[test]
    fn without_a_file_type_the_dominant_tensor_type_names_the_quantization() -> Result<(), Problem>
    {
        let bytes = GgufBuilder::default()
            .kv("general.architecture", Value::Str("qwen2".into()))
            .kv("general.parameter_count", Value::U64(1_500_000_000))
            .tensor("a", &[256, 4], 12)
            .tensor("b", &[256], 0)
            .bytes();
        let h = parse(&bytes)?;
        assert_eq!(h.quantization().as_deref(), Some("Q4_K"));
        assert_eq!(h.parameter_count(), 1_500_000_000);
        assert_eq!(h.context_length, None);
        Ok(())
    }

    #[test]
    fn version_2_reads_and_versions_it_does_not_know_are_named() {
        let mut b = tiny_llama();
        b.version = 2;
        assert!(parse(&b.bytes()).is_ok());
        for (version, says) in [
            (4, "GGUF version 4, newer than this build reads"),
            (1, "GGUF version 1, older than this build reads"),
            (3u32.swap_bytes(), "big-endian GGUF (version 3)"),
        ] {
            b.version = version;
            match parse(&b.bytes()) {
                Err(Problem::Unsupported(w)) => assert!(w.contains(says), "{w}"),
                other => panic!("version {version}: {other:?}"),
            }
        }
    }

    #[test]
    fn split_names_are_recognised_only_in_llama_cpp_s_form() {
        assert_eq!(
            split_name("m-Q4_K_M-00002-of-00003.gguf"),
            Some(("m-Q4_K_M", 2, 3))
        );
        assert_eq!(split_name("m-2-of-3.gguf"), None);
        assert_eq!(split_name("-00001-of-00002.gguf"), None);
        assert_eq!(split_name("m-00001-of-00002.bin"), None);
    }

    /// What a damaged file must read as.
    #[derive(Debug, Clone, Copy, PartialEq)]
    enum Class {
        Ok,
        NotGguf,
        Unsupported,
        Broken,
    }

    fn class(r: &Result<GgufHeader, Problem>) -> Class {
        match r {
            Ok(_) => Class::Ok,
            Err(Problem::NotThisFormat) => Class::NotGguf,
            Err(Problem::Unsupported(_)) => Class::Unsupported,
            Err(Problem::Broken(_)) => Class::Broken,
            Err(Problem::Io(e)) => panic!("an in-memory read failed: {e}"),
        }
    }

    #[test]
    fn every_prefix_of_a_valid_file_is_classified_without_panicking() {
        let bytes = tiny_llama().bytes();
        for n in 0..bytes.len() {
            let want = if n < 4 { Class::NotGguf } else { Class::Broken };
            assert_eq!(class(&parse(&bytes[..n])), want, "prefix of {n} bytes");
        }
        assert_eq!(class(&parse(&bytes)), Class::Ok);
    }

    /// Writes `value` at `at` in a copy of `bytes`.
    fn patched(bytes: &[u8], at: usize, value: &[u8]) -> Vec<u8> {
        let mut out = bytes.to_vec();
        out[at..at + value.len()].copy_from_slice(value);
        out
    }

    #[test]
    fn corrupted_headers_are_classified_without_panicking() {
        let valid = tiny_llama().bytes();
        // The first key's length is at 24, its bytes at 32; `general.architecture` is 20 bytes,
        // so its value type is at 52 and the string's length at 56.
        let cases: Vec<(&str, Vec<u8>, Class)> = vec![
            ("bad magic", patched(&valid, 0, b"GGUX"), Class::NotGguf),
            (
                "huge tensor count",
                patched(&valid, 8, &u64::MAX.to_le_bytes()),
                Class::Broken,
            ),
            (
                "tensor count one more",
                patched(&valid, 8, &5u64.to_le_bytes()),
                Class::Broken,
            ),
            (
                "huge kv count",
                patched(&valid, 16, &(1u64 << 40).to_le_bytes()),
                Class::Broken,
            ),
            (
                "key length past the end",
                patched(&valid, 24, &(1u64 << 62).to_le_bytes()),
                Class::Broken,
            ),
            (
                "key length over the format's limit",
                patched(&valid, 24, &70_000u64.to_le_bytes()),
                Class::Broken,
            ),
            (
                "unknown value type",
                patched(&valid, 52, &13u32.to_le_bytes()),
                Class::Broken,
            ),
            (
                "string length past the end",
                patched(&valid, 56, &u64::MAX.to_le_bytes()),
                Class::Broken,
            ),
            (
                "string length slightly long",
                patched(&valid, 56, &10_000u64.to_le_bytes()),
                Class::Broken,
            ),
            (
                "value read as an array",
                patched(&valid, 52, &9u32.to_le_bytes()),
                Class::Broken,
            ),
            (
                "version 0",
                patched(&valid, 4, &0u32.to_le_bytes()),
                Class::Unsupported,
            ),
        ];
        for (what, bytes, want) in cases {
            assert_eq!(class(&parse(&bytes)), want, "{what}: {:?}", parse(&bytes));
        }
    }

    #[test]
    fn tensor_tables_that_lie_are_broken() {
        let shape = |dims: &[u64], t: u32| GgufBuilder::default().tensor("t", dims, t);
        // Each valid file, then the same with one field of its only tensor rewritten. The
        // tensor info follows the 24-byte header: name (8 + 1), n_dims (4), dims, type, offset.
        let base = shape(&[64, 2], 0).bytes();
        let n_dims_at = 24 + 9;
        let dims_at = n_dims_at + 4;
        let type_at = dims_at + 16;
        let offset_at = type_at + 4;
        let cases: Vec<(&str, Vec<u8>, &str)> = vec![
            (
                "five dimensions",
                patched(&base, n_dims_at, &5u32.to_le_bytes()),
                "dimensions",
            ),
            (
                "dims past 64 bits",
                patched(&base, dims_at, &u64::MAX.to_le_bytes()),
                "64 bits",
            ),
            (
                "data past the end",
                patched(&base, dims_at, &4096u64.to_le_bytes()),
                "past its end",
            ),
            (
                "misaligned offset",
                patched(&base, offset_at, &3u64.to_le_bytes()),
                "alignment",
            ),
            (
                "offset past the end",
                patched(&base, offset_at, &(1u64 << 40).to_le_bytes()),
                "past its end",
            ),
            (
                "offset near u64::MAX",
                patched(&base, offset_at, &(u64::MAX - 31).to_le_bytes()),
                "64 bits",
            ),
            (
                "row not a block",
                patched(&base, type_at, &12u32.to_le_bytes()),
                "block",
            ),
        ];
        for (what, bytes, says) in cases {
            match parse(&bytes) {
                Err(Problem::Broken(p)) => assert!(p.contains(says), "{what}: {p}"),
                other => panic!("{what}: {other:?}"),
            }
        }
        // An unknown type is a warning: its size cannot be checked.
        let h = parse(&patched(&base, type_at, &200u32.to_le_bytes())).expect("readable");
        assert!(h.warnings[0].contains("ggml type 200"), "{:?}", h.warnings);
    }

    #[test]
    fn overlapping_tensors_are_broken() {
        let mut bytes = GgufBuilder::default()
            .tensor("a", &[64], 0)
            .tensor("b", &[64], 0)
            .bytes();
        // The second tensor's offset (256 bytes in) rewritten to 0: both start at 0.
        let second_offset_at = 24 + (9 + 4 + 8 + 4 + 8) + (9 + 4 + 8 + 4);
        bytes[second_offset_at..second_offset_at + 8].copy_from_slice(&0u64.to_le_bytes());
        match parse(&bytes) {
            Err(Problem::Broken(p)) => assert!(p.contains("overlapping"), "{p}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn deep_and_huge_arrays_are_refused_before_any_allocation() {
        let mut bytes = b"GGUF".to_vec();
        bytes.extend_from_slice(&3u32.to_le_bytes());
        bytes.extend_from_slice(&0u64.to_le_bytes());
        bytes.extend_from_slice(&1u64.to_le_bytes());
        bytes.extend_from_slice(&1u64.to_le_bytes());
        bytes.push(b'k');
        // An array of arrays of arrays of arrays, each claiming one item.
        bytes.extend_from_slice(&9u32.to_le_bytes());
        for _ in 0..4 {
            bytes.extend_from_slice(&9u32.to_le_bytes());
            bytes.extend_from_slice(&1u64.to_le_bytes());
        }
        bytes.extend_from_slice(&[0; 64]);
        assert!(matches!(parse(&bytes), Err(Problem::Broken(p)) if p.contains("nests")));
        // An array of 2^61 u64s: its byte length overflows.
        let mut huge = bytes[..37].to_vec();
        huge.extend_from_slice(&10u32.to_le_bytes());
        huge.extend_from_slice(&(1u64 << 61).to_le_bytes());
        assert!(matches!(parse(&huge), Err(Problem::Broken(_))));
    }
}
