//! What a model is, as read from its files' headers: [`ModelInfo`].
//!
//! The readers live in `model-provisioner`; this crate only records what they found, so that
//! `ls` and `show` can answer without opening the model again.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::outcome::Outcome;

/// The file format of a model's weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ModelFormat {
    /// llama.cpp's GGUF: one file, or a set of `-0000i-of-0000N.gguf` splits.
    Gguf,
    /// Hugging Face safetensors: one file, or shards named by `model.safetensors.index.json`.
    Safetensors,
    /// Nothing this build recognises (also what a newer build's format reads as here).
    #[default]
    #[serde(other)]
    Unknown,
}

impl fmt::Display for ModelFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ModelFormat::Gguf => "gguf",
            ModelFormat::Safetensors => "safetensors",
            ModelFormat::Unknown => "unknown",
        })
    }
}

/// A model stored as several files that belong together.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Split {
    /// How many files the set has, as its files say.
    pub count: u32,
    /// The files, relative to the model's directory (for a model of one file: its
    /// directory), in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<String>,
}

/// Whether a model's files are whole, as far as their headers and sizes tell.
///
/// `pass`: every file in a known format was checked and is sound. `warn`: nothing could be
/// checked (no file in a format this build reads). `fail`: a file claims its format and
/// breaks it (data past the end of the file, overlapping tensors, a missing shard); `problems`
/// says which file and how.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Structure {
    /// Pass, warn or fail.
    pub outcome: Outcome,
    /// What is wrong, one sentence each, naming the file.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<String>,
}

impl Default for Structure {
    fn default() -> Self {
        Structure {
            outcome: Outcome::Warn,
            problems: Vec::new(),
        }
    }
}

/// What a model is: read from its files' headers when it is ensured, again by `verify`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ModelInfo {
    /// The weights' file format.
    pub format: ModelFormat,
    /// The architecture (`llama`, `LlamaForCausalLM`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub architecture: Option<String>,
    /// The model's name, as its files state it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The number of parameters: as stated, else the elements of every tensor added up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<u64>,
    /// The quantisation (`Q4_K_M`, `Q8_0`, `F16`, …), or the weights' data type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quantization: Option<String>,
    /// The context length the model was trained for, in tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context_length: Option<u64>,
    /// The number of tensors in all files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tensor_count: Option<u64>,
    /// How many tensors have each data type (`F16`, `Q4_K`, `BF16`, …).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub dtypes: BTreeMap<String, u64>,
    /// The set of files, for a model split over several.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub split: Option<Split>,
    /// Whether the files are whole.
    #[serde(default)]
    pub structure: Structure,
    /// What looked wrong without breaking anything: a file named `.gguf` that holds HTML, a
    /// format version newer than this build reads.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

impl ModelInfo {
    /// Whether the structural check failed.
    pub fn is_broken(&self) -> bool {
        self.structure.outcome == Outcome::Fail
    }
}

/// A count of parameters for people: `135M`, `7.2B`, `1.1T`.
pub fn human_count(n: u64) -> String {
    const UNITS: [(f64, &str); 4] = [(1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "K")];
    let value = n as f64;
    for (scale, unit) in UNITS {
        if value >= scale {
            let scaled = value / scale;
            // One decimal below ten, none above, as model cards write them.
            let text = if scaled >= 10.0 {
                format!("{scaled:.0}")
            } else {
                format!("{scaled:.1}")
            };
            let text = text.strip_suffix(".0").unwrap_or(&text).to_owned();
            return format!("{text}{unit}");
        }
    }
    n.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_read_like_model_cards() {
        assert_eq!(human_count(0), "0");
        assert_eq!(human_count(999), "999");
        assert_eq!(human_count(1_500), "1.5K");
        assert_eq!(human_count(134_515_008), "135M");
        assert_eq!(human_count(7_241_732_096), "7.2B");
        assert_eq!(human_count(70_553_706_496), "71B");
        assert_eq!(human_count(1_000_000_000), "1B");
        assert_eq!(human_count(1_100_000_000_000), "1.1T");
    }

    #[test]
    fn a_format_from_a_newer_build_reads_as_unknown() -> Result<(), serde_json::Error> {
        let info: ModelInfo = serde_json::from_str(r#"{"format": "onnx"}"#)?;
        assert_eq!(info.format, ModelFormat::Unknown);
        assert_eq!(info.structure.outcome, Outcome::Warn);
        Ok(())
    }

    #[test]
    fn empty_fields_are_left_out() -> Result<(), serde_json::Error> {
        let text = serde_json::to_string(&ModelInfo::default())?;
        assert_eq!(
            text,
            r#"{"format":"unknown","structure":{"outcome":"warn"}}"#
        );
        Ok(())
    }
}
