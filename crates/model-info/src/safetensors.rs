//! A safetensors header reader.
//!
//! ```text
//! n: u64 (little-endian)   the header's length
//! n bytes                  JSON: {"<tensor>": {"dtype", "shape", "data_offsets": [begin, end]},
//!                                 "__metadata__": {…}}
//! data                     offsets count from here
//! ```
//!
//! A file claims to be safetensors when `n` fits in the file and the header starts with `{`;
//! anything else is [`Problem::NotThisFormat`]. The header is read only up to the 100 MiB the
//! format allows, and only once its length is known to fit the file.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;

use serde::Deserialize;

use crate::Problem;

/// The largest header the format allows.
const MAX_HEADER: u64 = 100 << 20;

/// What a safetensors header says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SafetensorsHeader {
    /// The tensors' names.
    pub names: BTreeSet<String>,
    /// Tensors per dtype.
    pub dtypes: BTreeMap<String, u64>,
    /// Elements per dtype.
    pub elements_by_dtype: BTreeMap<String, u64>,
    /// The elements of every tensor added up.
    pub parameters: u64,
    /// What looked wrong without breaking the file.
    pub warnings: Vec<String>,
}

#[derive(Deserialize)]
struct TensorInfo {
    dtype: String,
    shape: Vec<u64>,
    data_offsets: (u64, u64),
}

/// Reads the header of a safetensors file of `file_len` bytes from `reader`, positioned at
/// its start, and checks every tensor's offsets against its shape, each other and the file.
pub fn read(mut reader: impl Read, file_len: u64) -> Result<SafetensorsHeader, Problem> {
    if file_len < 9 {
        return Err(Problem::NotThisFormat);
    }
    let mut len = [0u8; 8];
    reader.read_exact(&mut len).map_err(Problem::Io)?;
    let n = u64::from_le_bytes(len);
    if n == 0 || n > file_len - 8 {
        return Err(Problem::NotThisFormat);
    }
    let mut first = [0u8; 1];
    reader.read_exact(&mut first).map_err(Problem::Io)?;
    if first[0] != b'{' {
        return Err(Problem::NotThisFormat);
    }
    if n > MAX_HEADER {
        return Err(broken(format!(
            "has a header of {n} bytes, more than the {} MiB the format allows",
            MAX_HEADER >> 20
        )));
    }
    let mut header = Vec::with_capacity(usize::try_from(n).unwrap_or(0));
    header.push(b'{');
    (&mut reader)
        .take(n - 1)
        .read_to_end(&mut header)
        .map_err(Problem::Io)?;
    if header.len() as u64 != n {
        return Err(Problem::Io(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "the file ended before its length said it would (was it changed while read?)",
        )));
    }
    let data_len = file_len - 8 - n;
    let map: BTreeMap<String, serde_json::Value> = serde_json::from_slice(&header)
        .map_err(|e| broken(format!("has a header that is not a JSON object ({e})")))?;
    let mut out = SafetensorsHeader::default();
    let mut spans: Vec<(u64, u64, &str)> = Vec::with_capacity(map.len());
    for (name, value) in &map {
        if name == "__metadata__" {
            continue;
        }
        let info = TensorInfo::deserialize(value)
            .map_err(|e| broken(format!("describes tensor `{name}` wrongly ({e})")))?;
        let (begin, end) = info.data_offsets;
        if begin > end {
            return Err(broken(format!(
                "gives tensor `{name}` data offsets [{begin}, {end}] that run backwards"
            )));
        }
        if end > data_len {
            return Err(broken(format!(
                "has tensor data past its end: tensor `{name}` ends at data offset {end}, the file has {data_len} bytes of data"
            )));
        }
        let elements = info
            .shape
            .iter()
            .try_fold(1u64, |acc, d| acc.checked_mul(*d))
            .ok_or_else(|| {
                broken(format!(
                    "gives tensor `{name}` more elements than fit in 64 bits"
                ))
            })?;
        out.parameters = out.parameters.saturating_add(elements);
        *out.dtypes.entry(info.dtype.clone()).or_default() += 1;
        *out.elements_by_dtype.entry(info.dtype.clone()).or_default() += elements;
        match dtype_bits(&info.dtype) {
            Some(bits) => {
                let want = elements
                    .checked_mul(bits)
                    .map(|b| b.div_ceil(8))
                    .ok_or_else(|| broken(format!("gives tensor `{name}` a size past 64 bits")))?;
                if end - begin != want {
                    return Err(broken(format!(
                        "gives tensor `{name}` {} bytes, but its shape and dtype take {want}",
                        end - begin
                    )));
                }
            }
            None if out.warnings.len() < 8 => out.warnings.push(format!(
                "tensor `{name}` has dtype `{}`, which this build does not know; its size is not checked",
                catalog_core::printable(&info.dtype)
            )),
            None => {}
        }
        if end > begin {
            spans.push((begin, end, name));
        }
        out.names.insert(name.clone());
    }
    spans.sort_unstable();
    if let Some(w) = spans.windows(2).find(|w| w[1].0 < w[0].1) {
        return Err(broken(format!(
            "has overlapping tensors: `{}` [{}, {}] and `{}` [{}, {}]",
            w[0].2, w[0].0, w[0].1, w[1].2, w[1].0, w[1].1
        )));
    }
    Ok(out)
}

impl SafetensorsHeader {
    /// The dtype most elements have.
    pub fn dominant_dtype(&self) -> Option<&str> {
        self.elements_by_dtype
            .iter()
            .max_by_key(|(name, n)| (**n, std::cmp::Reverse(name.as_str())))
            .map(|(name, _)| name.as_str())
    }
}

fn broken(what: impl std::fmt::Display) -> Problem {
    Problem::Broken(format!("is a safetensors file that {what}"))
}

/// Bits per element of the safetensors dtypes.
fn dtype_bits(dtype: &str) -> Option<u64> {
    Some(match dtype {
        "F4" => 4,
        "F6_E2M3" | "F6_E3M2" => 6,
        "BOOL" | "U8" | "I8" | "F8_E5M2" | "F8_E4M3" | "F8_E8M0" => 8,
        "I16" | "U16" | "F16" | "BF16" => 16,
        "I32" | "U32" | "F32" => 32,
        "I64" | "U64" | "F64" | "C64" => 64,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use test_support::model_files::SafetensorsBuilder;

    use super::*;

    fn parse(bytes: &[u8]) -> Result<SafetensorsHeader, Problem> {
        read(bytes, bytes.len() as u64)
    }

    fn two_tensors() -> SafetensorsBuilder {
        SafetensorsBuilder::default()
            .tensor("a", "BF16", &[4, 8])
            .tensor("b", "F32", &[8])
    }

    #[test]
    fn a_valid_file_reads_with_counts_and_dtypes() -> Result<(), Problem> {
        let h = parse(&two_tensors().bytes())?;
        assert_eq!(h.names.len(), 2);
        assert_eq!(h.parameters, 40);
        assert_eq!(h.dtypes.get("BF16"), Some(&1));
        assert_eq!(h.dominant_dtype(), Some("BF16"));
        Ok(())
    }

    #[derive(Debug, PartialEq, Clone, Copy)]
    enum Class {
        Ok,
        NotSafetensors,
        Broken,
    }

    fn class(r: &Result<SafetensorsHeader, Problem>) -> Class {
        match r {
            Ok(_) => Class::Ok,
            Err(Problem::NotThisFormat) => Class::NotSafetensors,
            Err(Problem::Broken(_)) => Class::Broken,
            Err(other) => panic!("{other:?}"),
        }
    }

    #[test]
    fn every_prefix_of_a_valid_file_is_classified_without_panicking() {
        let bytes = two_tensors().bytes();
        let header_end = 8 + two_tensors().header().len();
        for n in 0..bytes.len() {
            // Cut inside the header, the length no longer fits: not claimed. Cut in the data,
            // the last tensor runs past the end.
            let want = if n < header_end {
                Class::NotSafetensors
            } else {
                Class::Broken
            };
            assert_eq!(class(&parse(&bytes[..n])), want, "prefix of {n} bytes");
        }
        assert_eq!(class(&parse(&bytes)), Class::Ok);
    }

    #[test]
    fn corrupted_headers_are_classified_without_panicking() {
        let data = 64 + 32;
        let h = |header: &str| SafetensorsBuilder::with_header(header, data);
        let valid = two_tensors().bytes();
        let mut huge_len = valid.clone();
        huge_len[..8].copy_from_slice(&u64::MAX.to_le_bytes());
        let mut html = b"<!DOCTYPE html><html>".to_vec();
        html.resize(200, b' ');
        let cases: Vec<(&str, Vec<u8>, Class)> = vec![
            ("length past the end", huge_len, Class::NotSafetensors),
            ("html", html, Class::NotSafetensors),
            ("not an object", h("[1, 2]"), Class::NotSafetensors),
            ("invalid json", h("{\"a\": "), Class::Broken),
            (
                "missing fields",
                h(r#"{"a": {"dtype": "F32"}}"#),
                Class::Broken,
            ),
            (
                "backwards offsets",
                h(r#"{"a": {"dtype": "U8", "shape": [0], "data_offsets": [8, 4]}}"#),
                Class::Broken,
            ),
            (
                "offsets past the end",
                h(r#"{"a": {"dtype": "U8", "shape": [1000], "data_offsets": [0, 1000]}}"#),
                Class::Broken,
            ),
            (
                "offsets near u64::MAX",
                h(
                    r#"{"a": {"dtype": "U8", "shape": [1], "data_offsets": [18446744073709551615, 18446744073709551615]}}"#,
                ),
                Class::Broken,
            ),
            (
                "shape past 64 bits",
                h(
                    r#"{"a": {"dtype": "F32", "shape": [4294967296, 4294967296], "data_offsets": [0, 16]}}"#,
                ),
                Class::Broken,
            ),
            (
                "size not the shape's",
                h(r#"{"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 16]}}"#),
                Class::Broken,
            ),
            (
                "overlapping",
                h(
                    r#"{"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}, "b": {"dtype": "F32", "shape": [4], "data_offsets": [8, 24]}}"#,
                ),
                Class::Broken,
            ),
            (
                "unknown dtype",
                h(r#"{"a": {"dtype": "Q9", "shape": [4], "data_offsets": [0, 16]}}"#),
                Class::Ok,
            ),
            (
                "deep nesting",
                h(&format!(
                    "{{\"a\": {}{}}}",
                    "[".repeat(10_000),
                    "]".repeat(10_000)
                )),
                Class::Broken,
            ),
        ];
        for (what, bytes, want) in cases {
            assert_eq!(class(&parse(&bytes)), want, "{what}: {:?}", parse(&bytes));
        }
    }

    #[test]
    fn a_header_over_the_format_s_limit_is_refused_unread() {
        // A length that fits the file (by what the caller says) but is over 100 MiB.
        let mut bytes = (MAX_HEADER + 1).to_le_bytes().to_vec();
        bytes.push(b'{');
        let r = read(&bytes[..], MAX_HEADER + 100);
        assert!(matches!(r, Err(Problem::Broken(p)) if p.contains("100")));
    }
}
