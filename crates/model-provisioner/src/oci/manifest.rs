//! Manifests and what their layers are: which files a model artifact holds, by format.
//!
//! | format | recognised by | file names |
//! |---|---|---|
//! | CNCF `ModelPack` | `application/vnd.cncf.model.*` | `org.cncf.model.filepath`; `.tar`, `.tar+gzip` and `.tar+zstd` layers unpacked |
//! | Docker model | `application/vnd.docker.ai.*` | `org.cncf.model.filepath`, else `model.gguf`, `model-0000i-of-0000N.gguf`, `model.safetensors`, `mmproj.gguf`, `template.jinja`, `LICENSE`; `.tar` layers unpacked |
//! | Ollama | `application/vnd.ollama.image.*` | `model.gguf`, `projector.gguf`, `adapter.gguf`, `template.txt`, `system.txt`, `params.json`, `messages.json`, `LICENSE` |
//! | `KitOps` `ModelKit` | `application/vnd.kitops.modelkit.*` (its config is the Kitfile) | every layer a tar of one Kitfile section (model, model parts, code, datasets, docs), unpacked where the Kitfile puts it ([`super::modelkit`]); `.tar`, `.tar+gzip` and `.tar+zstd` |
//! | ORAS, generic | every layer has `org.opencontainers.image.title` | the title; a directory when `io.deis.oras.content.unpack` is `true` |
//!
//! A second file of the same kind gets `-2`, `-3`, … before its extension. Anything else is
//! refused with an error that lists the media types. Tar layers are plain, gzip or zstd.

use std::collections::{BTreeSet, HashMap};

use catalog_core::{Digest, SafeRelPath};
use oci_spec::image::{Descriptor, ImageIndex, ImageManifest};

use super::layer::{Place, Placed, descriptor_digest};
use super::modelkit::{self, Kitfile, Pairing};
use super::unpack::Compression;
use crate::error::{Error, Result};

/// `ModelPack`'s layer annotation for a file's path in the model.
const FILEPATH: &str = "org.cncf.model.filepath";
/// The OCI annotation for a layer's file name, as ORAS writes it.
const TITLE: &str = "org.opencontainers.image.title";
/// ORAS's annotation for a directory pushed as a tar archive.
const ORAS_UNPACK: &str = "io.deis.oras.content.unpack";

/// What a registry sent for a reference: a manifest, or an index of manifests.
#[derive(Debug)]
pub(crate) enum Parsed {
    Manifest(Box<ImageManifest>),
    Index(Box<ImageIndex>),
}

/// Reads a manifest or index, by its content type or, failing that, its shape.
pub(crate) fn parse(
    bytes: &[u8],
    content_type: Option<&str>,
) -> std::result::Result<Parsed, String> {
    let value: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| format!("the manifest is not JSON: {e}"))?;
    let media_type = value
        .get("mediaType")
        .and_then(serde_json::Value::as_str)
        .or(content_type)
        .unwrap_or_default();
    let is_index = media_type.contains("index") || media_type.contains("manifest.list");
    if is_index || value.get("manifests").is_some() {
        serde_json::from_value(value)
            .map(|i| Parsed::Index(Box::new(i)))
            .map_err(|e| format!("the image index does not parse: {e}"))
    } else {
        if value
            .get("schemaVersion")
            .and_then(serde_json::Value::as_u64)
            == Some(1)
        {
            return Err("a Docker schema 1 manifest, which carries no model".to_owned());
        }
        serde_json::from_value(value)
            .map(|m| Parsed::Manifest(Box::new(m)))
            .map_err(|e| format!("the manifest does not parse: {e}"))
    }
}

/// This machine's platform as OCI names it, `(os, architecture)`.
pub(crate) fn this_platform() -> (&'static str, &'static str) {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    };
    (std::env::consts::OS, arch)
}

/// The index entry to use: the one for this platform, else the only one. `Err` lists the
/// platforms there are.
pub(crate) fn pick(index: &ImageIndex) -> std::result::Result<&Descriptor, Vec<String>> {
    let (os, arch) = this_platform();
    let manifests = index.manifests();
    let mine = manifests.iter().find(|d| {
        d.platform()
            .as_ref()
            .is_some_and(|p| p.os().to_string() == os && p.architecture().to_string() == arch)
    });
    match (mine, manifests.as_slice()) {
        (Some(d), _) => Ok(d),
        (None, [only]) => Ok(only),
        (None, all) => Err(all
            .iter()
            .map(|d| {
                d.platform().as_ref().map_or_else(
                    || format!("{} (no platform)", d.digest()),
                    |p| format!("{}/{}", p.os(), p.architecture()),
                )
            })
            .collect()),
    }
}

/// One layer to fetch, and where it goes.
#[derive(Debug, Clone)]
pub(crate) struct Layer {
    pub(crate) digest: Digest,
    pub(crate) size: u64,
    pub(crate) media_type: String,
    pub(crate) place: Place,
    /// Whether it holds weights (the model proper, not its license or template).
    pub(crate) weight: bool,
}

/// The artifact's format, as recognised from its media types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    ModelPack,
    Docker,
    Ollama,
    ModelKit,
    Generic,
}

impl Format {
    /// The name recorded and shown.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Format::ModelPack => "modelpack",
            Format::Docker => "docker-model",
            Format::Ollama => "ollama",
            Format::ModelKit => "modelkit",
            Format::Generic => "oras",
        }
    }
}

/// The format of `manifest`, if it is one we lay out.
pub(crate) fn format_of(manifest: &ImageManifest) -> Option<Format> {
    recognise(manifest, &media_types(manifest))
}

fn media_types(manifest: &ImageManifest) -> Vec<String> {
    manifest
        .layers()
        .iter()
        .map(|l| l.media_type().to_string())
        .collect()
}

/// The layers of `manifest` and where each goes: a `ModelKit`'s where `kitfile` (its config)
/// says. `reference` is named in errors.
pub(crate) fn layers(
    manifest: &ImageManifest,
    kitfile: Option<&Kitfile>,
    reference: &str,
) -> Result<(Format, Vec<Layer>)> {
    let types = media_types(manifest);
    let unknown = || unknown_format(manifest, reference);
    let format = recognise(manifest, &types).ok_or_else(unknown)?;
    let mut namer = Namer::new(&types);
    let no_kitfile = Kitfile::default();
    let mut kit = Pairing::new(kitfile.unwrap_or(&no_kitfile), reference);
    let mut out = Vec::new();
    for layer in manifest.layers() {
        let media_type = layer.media_type().to_string();
        let (place, weight) = match format {
            Format::ModelPack => modelpack_place(&mut namer.names, layer, &media_type)?,
            Format::Generic => generic_place(&mut namer.names, layer, &media_type)?,
            Format::Ollama => ollama_place(&mut namer.names, &media_type)?,
            Format::Docker => namer.docker_place(layer, &media_type)?,
            Format::ModelKit => kit.place(layer, &media_type)?,
        }
        .ok_or_else(unknown)?;
        out.push(Layer {
            digest: descriptor_digest(layer)?,
            size: layer.size(),
            media_type,
            place,
            weight,
        });
    }
    if out.is_empty() {
        return Err(unknown());
    }
    if format == Format::ModelKit {
        kit.finish()?;
    }
    Ok((format, out))
}

/// The format of `manifest`, from the media types of its config, artifact and layers.
fn recognise(manifest: &ImageManifest, types: &[String]) -> Option<Format> {
    let config_type = manifest.config().media_type().to_string();
    let artifact_type = manifest
        .artifact_type()
        .as_ref()
        .map(ToString::to_string)
        .unwrap_or_default();
    let any = |prefix: &str| {
        config_type.starts_with(prefix)
            || artifact_type.starts_with(prefix)
            || types.iter().any(|t| t.starts_with(prefix))
    };
    if any("application/vnd.cncf.model.") {
        Some(Format::ModelPack)
    } else if any("application/vnd.docker.ai.") {
        Some(Format::Docker)
    } else if any("application/vnd.ollama.image.") {
        Some(Format::Ollama)
    } else if any(modelkit::PREFIX) {
        Some(Format::ModelKit)
    } else if !types.is_empty()
        && manifest
            .layers()
            .iter()
            .all(|l| annotation(l, TITLE).is_some())
    {
        Some(Format::Generic)
    } else {
        None
    }
}

/// The error for an artifact we cannot lay out, naming every media type in it.
fn unknown_format(manifest: &ImageManifest, reference: &str) -> Error {
    Error::OciUnknownFormat {
        reference: reference.to_owned(),
        media_types: std::iter::once(format!("config {}", manifest.config().media_type()))
            .chain(manifest.layers().iter().map(|l| l.media_type().to_string()))
            .collect(),
    }
}

/// ORAS and generic artifacts: the title names the file, or the directory a tar unpacks to.
fn generic_place(names: &mut Names, layer: &Descriptor, media_type: &str) -> Result<Placed> {
    let Some(title) = annotation(layer, TITLE) else {
        return Ok(None);
    };
    let weight = is_weight_name(title);
    let place = if annotation(layer, ORAS_UNPACK) == Some("true") {
        Place::Unpack {
            base: Some(names.path(title)?),
            compression: tar_compression(media_type).unwrap_or(Compression::Gzip),
        }
    } else {
        Place::File(names.path(title)?)
    };
    Ok(Some((place, weight)))
}

/// Ollama's layers, under clear names.
fn ollama_place(names: &mut Names, media_type: &str) -> Result<Placed> {
    let Some(kind) = media_type
        .strip_prefix("application/vnd.ollama.image.")
        .map(|k| k.split(';').next().unwrap_or(k).trim())
    else {
        return Ok(None);
    };
    let (name, weight) = match kind {
        "model" => ("model.gguf", true),
        "projector" => ("projector.gguf", false),
        "adapter" => ("adapter.gguf", false),
        "template" => ("template.txt", false),
        "system" => ("system.txt", false),
        "params" => ("params.json", false),
        "messages" => ("messages.json", false),
        "license" => ("LICENSE", false),
        _ => return Ok(None),
    };
    Ok(Some((Place::File(names.numbered(name)?), weight)))
}

/// Names files as each format wants, and numbers shards.
#[derive(Debug, Default)]
struct Namer {
    names: Names,
    gguf: (usize, usize),
    safetensors: (usize, usize),
}

impl Namer {
    fn new(types: &[String]) -> Self {
        let count = |kind| {
            types
                .iter()
                .filter(|t| docker_kind(t) == Some(kind))
                .count()
        };
        Namer {
            names: Names::default(),
            gguf: (0, count("gguf")),
            safetensors: (0, count("safetensors")),
        }
    }

    /// Docker model layers: `org.cncf.model.filepath` where present, else by kind.
    fn docker_place(&mut self, layer: &Descriptor, media_type: &str) -> Result<Placed> {
        if let Some(compression) = tar_compression(media_type) {
            let place = Place::Unpack {
                base: None,
                compression,
            };
            return Ok(Some((place, false)));
        }
        let Some(kind) = docker_kind(media_type) else {
            return Ok(None);
        };
        let weight = matches!(kind, "gguf" | "safetensors" | "dduf");
        let names = &mut self.names;
        let path = if let Some(path) = annotation(layer, FILEPATH) {
            names.path(path)?
        } else {
            match kind {
                "gguf" => {
                    self.gguf.0 += 1;
                    names.path(&shard_name("model", "gguf", self.gguf))?
                }
                "safetensors" => {
                    self.safetensors.0 += 1;
                    names.path(&shard_name("model", "safetensors", self.safetensors))?
                }
                "mmproj" => names.numbered("mmproj.gguf")?,
                "dduf" => names.numbered("model.dduf")?,
                "template" => names.numbered("template.jinja")?,
                "license" => names.numbered("LICENSE")?,
                _ => return Ok(None),
            }
        };
        Ok(Some((Place::File(path), weight)))
    }
}

/// The file of the artifact that is the model by itself: its one weight file, when there is
/// exactly one and it stands alone (a GGUF; or the only layer of a generic artifact).
pub(crate) fn single_weight(format: Format, layers: &[Layer]) -> Option<SafeRelPath> {
    if format == Format::Generic
        && let [only] = layers
        && let Place::File(path) = &only.place
    {
        return Some(path.clone());
    }
    let mut weights = layers.iter().filter(|l| l.weight);
    let (Some(one), None) = (weights.next(), weights.next()) else {
        return None;
    };
    match &one.place {
        Place::File(path)
            if std::path::Path::new(path.as_str())
                .extension()
                .is_some_and(|e| e.eq_ignore_ascii_case("gguf")) =>
        {
            Some(path.clone())
        }
        _ => None,
    }
}

fn annotation<'a>(d: &'a Descriptor, key: &str) -> Option<&'a str> {
    d.annotations()
        .as_ref()
        .and_then(|a| a.get(key))
        .map(String::as_str)
        .filter(|s| !s.is_empty())
}

/// `ModelPack` layers: `org.cncf.model.filepath` names the file; tar layers carry their paths.
fn modelpack_place(names: &mut Names, layer: &Descriptor, media_type: &str) -> Result<Placed> {
    // application/vnd.cncf.model.<kind>.v1.<raw|tar|tar+gzip|tar+zstd>
    let kind = media_type
        .strip_prefix("application/vnd.cncf.model.")
        .unwrap_or_default();
    let weight = kind.starts_with("weight.") && !kind.starts_with("weight.config");
    if let Some(compression) = tar_compression(media_type) {
        let place = Place::Unpack {
            base: None,
            compression,
        };
        return Ok(Some((place, weight)));
    }
    if media_type.ends_with("+zstd") {
        // A zstd file that is no tar: its name would hold compressed bytes.
        return Err(Error::OciProtocol {
            registry: String::new(),
            reason: format!(
                "layer `{}` is zstd-compressed (`{media_type}`) but not a tar archive, and only tar archives are decompressed",
                layer.digest()
            ),
        });
    }
    let name = annotation(layer, FILEPATH)
        .or_else(|| annotation(layer, TITLE))
        .ok_or_else(|| Error::OciProtocol {
            registry: String::new(),
            reason: format!(
                "layer `{}` ({media_type}) has no `{FILEPATH}` annotation to name its file",
                layer.digest()
            ),
        })?;
    Ok(Some((Place::File(names.path(name)?), weight)))
}

/// The compression of a tar layer's media type, or `None` when it is not a tar.
fn tar_compression(media_type: &str) -> Option<Compression> {
    let base = media_type
        .split(';')
        .next()
        .unwrap_or(media_type)
        .trim()
        .to_ascii_lowercase();
    if base.rsplit_once('.').is_some_and(|(_, ext)| ext == "tar") {
        Some(Compression::None)
    } else if base.ends_with(".tar+gzip") || base.ends_with(".tar.gzip") {
        Some(Compression::Gzip)
    } else if base.ends_with(".tar+zstd") || base.ends_with(".tar.zstd") {
        Some(Compression::Zstd)
    } else {
        None
    }
}

/// What a Docker model layer holds, from its media type.
fn docker_kind(media_type: &str) -> Option<&'static str> {
    let rest = media_type.strip_prefix("application/vnd.docker.ai.")?;
    [
        ("gguf", "gguf"),
        ("safetensors", "safetensors"),
        ("mmproj", "mmproj"),
        ("dduf", "dduf"),
        ("chat.template", "template"),
        ("template", "template"),
        ("license", "license"),
    ]
    .into_iter()
    .find(|(needle, _)| rest.contains(needle))
    .map(|(_, kind)| kind)
}

fn is_weight_name(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    [
        ".gguf",
        ".safetensors",
        ".bin",
        ".pt",
        ".pth",
        ".onnx",
        ".dduf",
    ]
    .iter()
    .any(|ext| lower.ends_with(ext))
}

/// `model.gguf`, or `model-00002-of-00003.gguf` for the second `(i, count)` of three.
fn shard_name(stem: &str, ext: &str, (i, count): (usize, usize)) -> String {
    if count <= 1 {
        format!("{stem}.{ext}")
    } else {
        format!("{stem}-{i:05}-of-{count:05}.{ext}")
    }
}

/// The names given so far, so that no two layers land on one path.
#[derive(Debug, Default)]
struct Names {
    used: BTreeSet<String>,
    counts: HashMap<String, usize>,
}

impl Names {
    /// `name` as a safe path; a second layer with the same name is refused.
    fn path(&mut self, name: &str) -> Result<SafeRelPath> {
        let path: SafeRelPath = name.parse()?;
        if !self.used.insert(path.as_str().to_owned()) {
            return Err(Error::OciProtocol {
                registry: String::new(),
                reason: format!(
                    "two layers name the same file `{}`",
                    crate::error::printable(name)
                ),
            });
        }
        Ok(path)
    }

    /// `name`, or `stem-2.ext`, `stem-3.ext`, … when it was given already.
    fn numbered(&mut self, name: &str) -> Result<SafeRelPath> {
        let n = self.counts.entry(name.to_owned()).or_insert(0);
        *n += 1;
        let name = if *n == 1 {
            name.to_owned()
        } else {
            match name.rsplit_once('.') {
                Some((stem, ext)) => format!("{stem}-{n}.{ext}"),
                None => format!("{name}-{n}"),
            }
        };
        self.path(&name)
    }
}

/// The config of a `ModelKit`'s `manifest`, its Kitfile, as a file at the model's root named
/// [`KITFILE`](super::modelkit::KITFILE), checked against the config's digest.
pub(crate) fn kitfile_layer(manifest: &ImageManifest) -> Result<Layer> {
    let config = manifest.config();
    Ok(Layer {
        digest: descriptor_digest(config)?,
        size: config.size(),
        media_type: config.media_type().to_string(),
        place: Place::File(SafeRelPath::file_name(super::modelkit::KITFILE)?),
        weight: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const D1: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
    const D2: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";
    const D3: &str = "sha256:3333333333333333333333333333333333333333333333333333333333333333";

    /// A layer: media type, digest, annotations.
    type TestLayer<'a> = (&'a str, &'a str, &'a [(&'a str, &'a str)]);

    fn manifest(config_type: &str, layers: &[TestLayer<'_>]) -> ImageManifest {
        let layers: Vec<serde_json::Value> = layers
            .iter()
            .map(|(mt, digest, ann)| {
                let ann: serde_json::Map<String, serde_json::Value> = ann
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), serde_json::Value::from(*v)))
                    .collect();
                serde_json::json!({"mediaType": mt, "digest": digest, "size": 5, "annotations": ann})
            })
            .collect();
        let json = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": config_type, "digest": D1, "size": 2},
            "layers": layers,
        });
        match parse(json.to_string().as_bytes(), None) {
            Ok(Parsed::Manifest(m)) => *m,
            other => panic!("{other:?}"),
        }
    }

    fn paths(layers: &[Layer]) -> Vec<String> {
        layers
            .iter()
            .map(|l| match &l.place {
                Place::File(p) => p.to_string(),
                Place::Unpack { base, .. } => format!(
                    "unpack:{}",
                    base.as_ref().map(ToString::to_string).unwrap_or_default()
                ),
            })
            .collect()
    }

    #[test]
    fn ollama_layers_get_clear_names_and_the_gguf_is_the_model() -> Result<()> {
        let m = manifest(
            "application/vnd.docker.container.image.v1+json",
            &[
                ("application/vnd.ollama.image.model", D1, &[]),
                ("application/vnd.ollama.image.template", D2, &[]),
                ("application/vnd.ollama.image.license", D3, &[]),
                ("application/vnd.ollama.image.license", D2, &[]),
                ("application/vnd.ollama.image.params", D3, &[]),
            ],
        );
        let (format, layers) = layers(&m, None, "r")?;
        assert_eq!(format, Format::Ollama);
        assert_eq!(
            paths(&layers),
            [
                "model.gguf",
                "template.txt",
                "LICENSE",
                "LICENSE-2",
                "params.json"
            ]
        );
        assert_eq!(
            single_weight(format, &layers)
                .map(|p| p.to_string())
                .as_deref(),
            Some("model.gguf")
        );
        Ok(())
    }

    #[test]
    fn modelpack_names_files_by_filepath_and_unpacks_tars() -> Result<()> {
        let m = manifest(
            "application/vnd.cncf.model.config.v1+json",
            &[
                (
                    "application/vnd.cncf.model.weight.v1.raw",
                    D1,
                    &[(FILEPATH, "model.safetensors")],
                ),
                (
                    "application/vnd.cncf.model.weight.config.v1.raw",
                    D2,
                    &[(FILEPATH, "config.json")],
                ),
                (
                    "application/vnd.cncf.model.doc.v1.tar",
                    D3,
                    &[(FILEPATH, "docs")],
                ),
            ],
        );
        let (format, layers) = layers(&m, None, "r")?;
        assert_eq!(format, Format::ModelPack);
        assert_eq!(
            paths(&layers),
            ["model.safetensors", "config.json", "unpack:"]
        );
        assert_eq!(
            single_weight(format, &layers),
            None,
            "a safetensors model is its directory"
        );
        Ok(())
    }

    #[test]
    fn tar_layers_are_plain_gzip_or_zstd_and_a_zstd_file_that_is_no_tar_is_refused() {
        for (media_type, compression) in [
            (
                "application/vnd.cncf.model.weight.v1.tar",
                Some(Compression::None),
            ),
            (
                "application/vnd.cncf.model.weight.v1.tar+gzip",
                Some(Compression::Gzip),
            ),
            (
                "application/vnd.cncf.model.weight.v1.tar+zstd",
                Some(Compression::Zstd),
            ),
            (
                "application/vnd.oci.image.layer.v1.tar+zstd; x=1",
                Some(Compression::Zstd),
            ),
            ("application/vnd.cncf.model.weight.v1.raw", None),
        ] {
            assert_eq!(tar_compression(media_type), compression, "{media_type}");
        }
        let m = manifest(
            "application/vnd.cncf.model.config.v1+json",
            &[(
                "application/vnd.cncf.model.weight.v1.raw+zstd",
                D1,
                &[(FILEPATH, "model.safetensors")],
            )],
        );
        let err = layers(&m, None, "r").unwrap_err().to_string();
        assert!(
            err.contains(D1) && err.contains("not a tar archive"),
            "{err}"
        );
    }

    #[test]
    fn docker_models_follow_the_documented_naming() -> Result<()> {
        let m = manifest(
            "application/vnd.docker.ai.model.config.v0.1+json",
            &[
                ("application/vnd.docker.ai.gguf.v3", D1, &[]),
                ("application/vnd.docker.ai.gguf.v3", D2, &[]),
                ("application/vnd.docker.ai.license", D3, &[]),
                ("application/vnd.docker.ai.chat.template.jinja", D3, &[]),
            ],
        );
        let (format, layers) = layers(&m, None, "r")?;
        assert_eq!(format, Format::Docker);
        assert_eq!(
            paths(&layers),
            [
                "model-00001-of-00002.gguf",
                "model-00002-of-00002.gguf",
                "LICENSE",
                "template.jinja"
            ]
        );
        assert_eq!(
            single_weight(format, &layers),
            None,
            "two shards are a directory"
        );
        Ok(())
    }

    #[test]
    fn generic_artifacts_use_titles_and_unknown_ones_name_their_media_types() -> Result<()> {
        let m = manifest(
            "application/vnd.oci.empty.v1+json",
            &[("application/octet-stream", D1, &[(TITLE, "tiny.gguf")])],
        );
        let (format, layers) = layers(&m, None, "r")?;
        assert_eq!(
            (format, paths(&layers)),
            (Format::Generic, vec!["tiny.gguf".to_owned()])
        );

        let m = manifest(
            "application/vnd.oci.image.config.v1+json",
            &[("application/vnd.oci.image.layer.v1.tar+gzip", D1, &[])],
        );
        let err = super::layers(&m, None, "oci://r/x:latest").unwrap_err();
        assert!(
            err.to_string()
                .contains("application/vnd.oci.image.layer.v1.tar+gzip"),
            "{err}"
        );
        Ok(())
    }

    #[test]
    fn hostile_and_duplicate_names_are_refused() {
        for name in ["../x", "/etc/passwd", "a/../../b"] {
            let m = manifest(
                "application/vnd.oci.empty.v1+json",
                &[("application/octet-stream", D1, &[(TITLE, name)])],
            );
            assert!(
                matches!(layers(&m, None, "r"), Err(Error::HostileName { .. })),
                "{name}"
            );
        }
        let m = manifest(
            "application/vnd.oci.empty.v1+json",
            &[
                ("application/octet-stream", D1, &[(TITLE, "a.gguf")]),
                ("application/octet-stream", D2, &[(TITLE, "a.gguf")]),
            ],
        );
        assert!(
            layers(&m, None, "r")
                .unwrap_err()
                .to_string()
                .contains("same file")
        );
    }

    #[test]
    fn an_index_picks_this_platform_or_its_only_entry() {
        let (os, arch) = this_platform();
        let index = |entries: &[(&str, Option<(&str, &str)>)]| {
            let manifests: Vec<serde_json::Value> = entries
                .iter()
                .map(|(d, p)| {
                    let mut v = serde_json::json!({"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": d, "size": 10});
                    if let Some((os, arch)) = p {
                        v["platform"] = serde_json::json!({"os": os, "architecture": arch});
                    }
                    v
                })
                .collect();
            let json = serde_json::json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": manifests});
            match parse(json.to_string().as_bytes(), None) {
                Ok(Parsed::Index(i)) => *i,
                other => panic!("{other:?}"),
            }
        };
        let i = index(&[(D1, Some(("windows", "arm"))), (D2, Some((os, arch)))]);
        assert_eq!(pick(&i).map(|d| d.digest().to_string()), Ok(D2.to_owned()));
        let i = index(&[(D3, None)]);
        assert_eq!(pick(&i).map(|d| d.digest().to_string()), Ok(D3.to_owned()));
        let i = index(&[
            (D1, Some(("windows", "arm"))),
            (D2, Some(("plan9", "mips"))),
        ]);
        assert_eq!(
            pick(&i).map(|d| d.digest().to_string()),
            Err(vec!["windows/arm".to_owned(), "plan9/mips".to_owned()])
        );
    }

    #[test]
    fn schema_1_and_garbage_are_refused_with_a_reason() {
        assert!(
            parse(b"{\"schemaVersion\":1}", None)
                .unwrap_err()
                .contains("schema 1")
        );
        assert!(parse(b"<html>", None).unwrap_err().contains("not JSON"));
    }
}
