//! The JSON files of a Hub-style model folder: `config.json` (architecture, dtype, context
//! length, quantisation) and `model.safetensors.index.json` (which shard holds which tensor).

use std::collections::BTreeMap;

use serde::Deserialize;

/// The largest `config.json` read; real ones are a few KiB.
pub(crate) const MAX_CONFIG: u64 = 4 << 20;
/// The largest index read; one for a 400B model is a few MiB.
pub(crate) const MAX_INDEX: u64 = 64 << 20;

/// What `config.json` says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HfConfig {
    /// `architectures`, joined, else `model_type`.
    pub architecture: Option<String>,
    /// `torch_dtype` or `dtype`, as a safetensors dtype (`BF16`).
    pub dtype: Option<String>,
    /// `quantization_config`'s method and bits (`GPTQ 4-bit`, `FP8`).
    pub quantization: Option<String>,
    /// `max_position_embeddings`, `n_positions`, `max_seq_len`, … (or the same in
    /// `text_config`, for models that also see images).
    pub context_length: Option<u64>,
}

/// Reads `config.json`; `None` when it is not a JSON object.
pub fn read_config(bytes: &[u8]) -> Option<HfConfig> {
    let value: serde_json::Value = serde_json::from_slice(bytes).ok()?;
    let object = value.as_object()?;
    let architecture = object
        .get("architectures")
        .and_then(|a| a.as_array())
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str())
                .take(4)
                .collect::<Vec<_>>()
                .join(", ")
        })
        .filter(|s| !s.is_empty())
        .or_else(|| str_field(&value, "model_type"));
    let dtype = str_field(&value, "torch_dtype")
        .or_else(|| str_field(&value, "dtype"))
        .map(|d| torch_dtype_name(&d));
    let context_length = context_length(&value).or_else(|| {
        ["text_config", "llm_config", "language_config"]
            .iter()
            .find_map(|k| value.get(*k).and_then(context_length))
    });
    let quantization = value.get("quantization_config").and_then(|q| {
        let method = str_field(q, "quant_method")?.to_uppercase();
        Some(match q.get("bits").and_then(serde_json::Value::as_u64) {
            Some(bits) => format!("{method} {bits}-bit"),
            None => method,
        })
    });
    Some(HfConfig {
        architecture,
        dtype,
        quantization,
        context_length,
    })
}

fn str_field(value: &serde_json::Value, key: &str) -> Option<String> {
    let s = value.get(key)?.as_str()?;
    (!s.is_empty() && s.len() <= 256).then(|| catalog_core::printable(s))
}

fn context_length(value: &serde_json::Value) -> Option<u64> {
    [
        "max_position_embeddings",
        "n_positions",
        "max_seq_len",
        "max_sequence_length",
        "seq_length",
        "n_ctx",
    ]
    .iter()
    .find_map(|k| value.get(*k).and_then(serde_json::Value::as_u64))
}

/// `bfloat16` → `BF16`, as safetensors names dtypes; anything else upper-cased.
fn torch_dtype_name(dtype: &str) -> String {
    match dtype.trim_start_matches("torch.") {
        "bfloat16" => "BF16".to_owned(),
        "float16" | "half" => "F16".to_owned(),
        "float32" | "float" => "F32".to_owned(),
        "float64" | "double" => "F64".to_owned(),
        other => other.to_uppercase(),
    }
}

#[derive(Deserialize)]
struct IndexFile {
    weight_map: BTreeMap<String, String>,
}

/// Reads a safetensors index: tensor name → shard file name. The error says what is wrong.
pub fn read_index(bytes: &[u8]) -> Result<BTreeMap<String, String>, String> {
    serde_json::from_slice::<IndexFile>(bytes)
        .map(|i| i.weight_map)
        .map_err(|e| format!("is not a safetensors index with a `weight_map` ({e})"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_config_gives_architecture_dtype_and_context_length() {
        let c = read_config(
            br#"{"architectures": ["LlamaForCausalLM"], "torch_dtype": "bfloat16",
                "max_position_embeddings": 8192, "quantization_config": {"quant_method": "gptq", "bits": 4}}"#,
        )
        .expect("a config");
        assert_eq!(c.architecture.as_deref(), Some("LlamaForCausalLM"));
        assert_eq!(c.dtype.as_deref(), Some("BF16"));
        assert_eq!(c.context_length, Some(8192));
        assert_eq!(c.quantization.as_deref(), Some("GPTQ 4-bit"));
    }

    #[test]
    fn older_and_nested_names_are_understood() {
        let c = read_config(br#"{"model_type": "gpt2", "n_positions": 1024, "dtype": "float32"}"#)
            .expect("a config");
        assert_eq!(c.architecture.as_deref(), Some("gpt2"));
        assert_eq!(c.context_length, Some(1024));
        assert_eq!(c.dtype.as_deref(), Some("F32"));
        let c = read_config(
            br#"{"architectures": [], "text_config": {"max_position_embeddings": 131072}}"#,
        )
        .expect("a config");
        assert_eq!(c.architecture, None);
        assert_eq!(c.context_length, Some(131_072));
        assert_eq!(read_config(b"[1]"), None);
        assert_eq!(read_config(b"<html>"), None);
    }

    #[test]
    fn an_index_without_a_weight_map_says_so() {
        assert!(
            read_index(br#"{"metadata": {}}"#)
                .unwrap_err()
                .contains("weight_map")
        );
        assert_eq!(
            read_index(br#"{"weight_map": {"a": "s1.safetensors"}}"#).map(|m| m.len()),
            Ok(1)
        );
    }
}
