//! The CNCF `ModelPack` artifact a push sends: its media types, its config, its manifest.

use catalog_core::{CatalogEntry, Digest};
use serde_json::{Value, json};

use super::client::MANIFEST_TYPE;
use crate::error::{Error, Result};
use crate::model_files::ModelFile;

/// What a `ModelPack` manifest declares itself to be.
const ARTIFACT_TYPE: &str = "application/vnd.cncf.model.manifest.v1+json";
/// The `ModelPack` config blob.
const CONFIG_TYPE: &str = "application/vnd.cncf.model.config.v1+json";
/// Weights, and any file of no other kind.
pub(crate) const WEIGHT: &str = "application/vnd.cncf.model.weight.v1.raw";
/// Configuration, tokenizers and vocabularies.
pub(crate) const WEIGHT_CONFIG: &str = "application/vnd.cncf.model.weight.config.v1.raw";
/// Documentation and licences.
pub(crate) const DOC: &str = "application/vnd.cncf.model.doc.v1.raw";

const FILEPATH: &str = "org.cncf.model.filepath";
const TITLE: &str = "org.opencontainers.image.title";

/// The layer media type for the file at `path` (relative, `/`-separated).
pub(crate) fn media_type_for(path: &str) -> &'static str {
    let name = path.rsplit('/').next().unwrap_or(path).to_ascii_lowercase();
    let ext = name.rsplit_once('.').map_or("", |(_, ext)| ext);
    if name.starts_with("readme") || name.starts_with("license") || name.starts_with("licence") {
        DOC
    } else if matches!(ext, "gguf" | "safetensors" | "bin" | "pt" | "pth" | "onnx") {
        WEIGHT
    } else if name.starts_with("tokenizer") || matches!(ext, "json" | "model" | "txt") {
        WEIGHT_CONFIG
    } else {
        WEIGHT
    }
}

/// The `config.format` of a model: that of its first weights file.
fn format_of(files: &[ModelFile]) -> Option<&'static str> {
    files.iter().find_map(|f| {
        let name = f.rel.as_str().to_ascii_lowercase();
        match name.rsplit_once('.').map(|(_, ext)| ext) {
            Some("gguf") => Some("gguf"),
            Some("safetensors") => Some("safetensors"),
            Some("onnx") => Some("onnx"),
            Some("bin" | "pt" | "pth") => Some("pytorch"),
            _ => None,
        }
    })
}

/// The `ModelPack` config: the model's name, format, layer digests and provenance.
pub(super) fn config_blob(entry: &CatalogEntry, files: &[ModelFile]) -> Result<Vec<u8>> {
    let mut descriptor = json!({ "name": entry.id });
    if let Some(created) = rfc3339(entry.created_ms) {
        descriptor["createdAt"] = Value::String(created);
    }
    let mut config = serde_json::Map::new();
    if let Some(format) = format_of(files) {
        config.insert("format".to_owned(), Value::String(format.to_owned()));
    }
    let diff_ids: Vec<String> = files.iter().map(|f| f.digest.to_string()).collect();
    let mut blob = json!({
        "descriptor": descriptor,
        "config": config,
        "modelfs": { "type": "layers", "diffIds": diff_ids },
    });
    if let Some(provenance) = &entry.provenance {
        blob["provenance"] = serde_json::to_value(provenance).map_err(json_error)?;
    }
    serde_json::to_vec(&blob).map_err(json_error)
}

/// The manifest's bytes, exactly as they are sent and hashed.
pub(super) fn manifest_bytes(
    config: &Digest,
    config_size: u64,
    files: &[ModelFile],
) -> Result<Vec<u8>> {
    let layers: Vec<Value> = files
        .iter()
        .map(|f| {
            json!({
                "mediaType": media_type_for(f.rel.as_str()),
                "digest": f.digest.to_string(),
                "size": f.size,
                "annotations": { FILEPATH: f.rel.as_str(), TITLE: f.rel.as_str() },
            })
        })
        .collect();
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": MANIFEST_TYPE,
        "artifactType": ARTIFACT_TYPE,
        "config": { "mediaType": CONFIG_TYPE, "digest": config.to_string(), "size": config_size },
        "layers": layers,
    });
    serde_json::to_vec(&manifest).map_err(json_error)
}

pub(super) fn json_error(e: serde_json::Error) -> Error {
    Error::Transfer(mp_transfer::Error::Setup {
        what: "write the artifact's JSON",
        source: Box::new(e),
    })
}

/// `ms` since the Unix epoch as RFC 3339 UTC (`2024-05-01T12:00:00Z`).
fn rfc3339(ms: u64) -> Option<String> {
    let secs = ms / 1000;
    let days = i64::try_from(secs / 86_400).ok()?;
    let rem = secs % 86_400;
    // Days to a civil date (Howard Hinnant's `civil_from_days`).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    Some(format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layers_are_weights_configs_or_docs_by_file_name() {
        for path in [
            "model.gguf",
            "model-00001-of-00002.safetensors",
            "pytorch_model.bin",
            "w.pt",
            "w.PTH",
            "m.onnx",
            "sub/dir/x.gguf",
            "something.else",
            "noext",
        ] {
            assert_eq!(media_type_for(path), WEIGHT, "{path}");
        }
        for path in [
            "config.json",
            "generation_config.json",
            "tokenizer.json",
            "tokenizer_config.json",
            "tokenizer.model",
            "tokenizer",
            "special_tokens_map.json",
            "merges.txt",
            "vocab.txt",
            "spiece.model",
            "sub/config.json",
        ] {
            assert_eq!(media_type_for(path), WEIGHT_CONFIG, "{path}");
        }
        for path in [
            "README.md",
            "readme",
            "LICENSE",
            "LICENSE.txt",
            "docs/README.md",
        ] {
            assert_eq!(media_type_for(path), DOC, "{path}");
        }
    }

    #[test]
    fn created_times_are_rfc3339_utc() {
        assert_eq!(rfc3339(0).as_deref(), Some("1970-01-01T00:00:00Z"));
        assert_eq!(
            rfc3339(951_782_400_000).as_deref(),
            Some("2000-02-29T00:00:00Z")
        );
        assert_eq!(
            rfc3339(1_714_564_800_999).as_deref(),
            Some("2024-05-01T12:00:00Z")
        );
        assert_eq!(
            rfc3339(4_102_444_799_000).as_deref(),
            Some("2099-12-31T23:59:59Z")
        );
    }
}
