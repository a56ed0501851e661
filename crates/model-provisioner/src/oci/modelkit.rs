//! `KitOps` `ModelKit`s: each layer unpacked where its Kitfile puts it.
//!
//! A `ModelKit`'s config (`application/vnd.kitops.modelkit.config.v1+json`) is its Kitfile as
//! JSON, and each of its layers is a tar archive of one Kitfile section, compressed or not
//! (`application/vnd.kitops.modelkit.<kind>.v1.tar`, `…tar+gzip`, `…tar+zstd`):
//!
//! ```text
//! Kitfile (the config)                 layers, in this order                model directory
//!   model:    path: models/tiny  ◀──   …modelkit.model.v1.tar+zstd    ──▶   models/tiny/…
//!     parts:  - path: lora.gguf  ◀──   …modelkit.modelpart.v1.tar     ──▶   lora.gguf
//!   code:     - path: src        ◀──   …modelkit.code.v1.tar+gzip     ──▶   src/…
//!   datasets: - path: data       ◀──   …modelkit.dataset.v1.tar       ──▶   data/…
//!   docs:     - path: README.md  ◀──   …modelkit.docs.v1.tar          ──▶   README.md
//! ```
//!
//! The n-th layer of a kind is the n-th section of that kind, as `kit unpack` pairs them, and
//! every section with a path must have its layer. A section that records its layer's
//! `digest` (as `kit pack` does now) names a tar whose entries are paths from the Kitfile's
//! directory (`models/tiny/config.json`): it is unpacked at the model's root, and the digest
//! must be the layer's. A section without one comes from an older
//! `kit pack`, whose entries were named from the directory holding the section's path
//! (`tiny/config.json`): it is unpacked in that directory. A layer of a kind this module does
//! not know (from a newer `kit`) is unpacked at the root, as `kit unpack` does. Every archive
//! goes through the same rules as any tar layer ([`super::unpack`]): nothing leaves the model's
//! directory.
//!
//! The Kitfile is written at the model's root as `Kitfile`, where `kit unpack` writes it: the
//! config blob's own bytes (JSON, which is YAML, so `kit` reads it back), checked against the
//! config's digest like any layer ([`kitfile_layer`](super::manifest::kitfile_layer)). `kit unpack` writes the same Kitfile
//! re-serialised as YAML; those bytes are not reproducible outside `kit`, and they would have
//! no digest the registry states.
//!
//! A model that is another `ModelKit` (`model.path` a reference, as `kit` allows: no model
//! layer of its own) is fetched as `kit unpack` fetches it ([`model_reference`]): the
//! reference names its registry (a first segment with a `.` or a `:`; without one it names
//! `kit`'s local storage, which we cannot read), and of that `ModelKit` only the model and its
//! parts are taken, placed by its own Kitfile, following its own reference in turn, at most
//! [`MAX_MODEL_REF_CHAIN`] deep and never back to a `ModelKit` already on the way.

use catalog_core::{Digest, ModelRef, OciRef, SafeRelPath};
use oci_spec::image::{Descriptor, ImageManifest};
use serde::Deserialize;

use super::client::Repository;
use super::layer::{Place, Placed, descriptor_digest};
use super::unpack::Compression;
use crate::error::{Error, Result, printable};

/// The name `kit unpack` gives the Kitfile at the model's root.
pub(crate) const KITFILE: &str = "Kitfile";

/// How many `ModelKit`s a chain of model references may pass through, as `kit` bounds it
/// (`MaxModelRefChain`).
pub(crate) const MAX_MODEL_REF_CHAIN: usize = 10;

/// What every `ModelKit` media type starts with, its config's
/// (`application/vnd.kitops.modelkit.config.v1+json`, the Kitfile as JSON) as its layers'.
pub(crate) const PREFIX: &str = "application/vnd.kitops.modelkit.";

/// What this module reads of a Kitfile: each section's path, and its layer's digest.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct Kitfile {
    model: Option<Model>,
    code: Vec<Section>,
    datasets: Vec<Section>,
    docs: Vec<Section>,
}

/// The Kitfile's `model`: a section of its own, and its parts.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Model {
    #[serde(flatten)]
    section: Section,
    parts: Vec<Section>,
}

/// One section of a Kitfile that has a layer.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Section {
    path: Option<String>,
    /// The digest of its layer, as `kit pack` records it in the config.
    digest: Option<String>,
}

impl Section {
    fn path(&self) -> Option<&str> {
        self.path.as_deref().filter(|p| !p.is_empty())
    }
}

/// The kinds of `ModelKit` layers, each the layer of one kind of section.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Model,
    Part,
    Code,
    Dataset,
    Docs,
}

impl Kind {
    const ALL: [Kind; 5] = [
        Kind::Model,
        Kind::Part,
        Kind::Code,
        Kind::Dataset,
        Kind::Docs,
    ];

    /// The kind that media types name (`…modelkit.<name>.v1.tar`).
    fn from_name(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.name() == name)
    }

    fn name(self) -> &'static str {
        match self {
            Kind::Model => "model",
            Kind::Part => "modelpart",
            Kind::Code => "code",
            Kind::Dataset => "dataset",
            Kind::Docs => "docs",
        }
    }

    /// The section `i` of this kind, as an error names it.
    fn section_name(self, i: usize) -> String {
        match self {
            Kind::Model => "model".to_owned(),
            Kind::Part => format!("model.parts[{i}]"),
            Kind::Code => format!("code[{i}]"),
            Kind::Dataset => format!("datasets[{i}]"),
            Kind::Docs => format!("docs[{i}]"),
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

impl Kitfile {
    /// The sections of `kind` that have a layer, in order. A model without a path has none
    /// (its parts may), nor has a model in another `ModelKit`.
    fn sections(&self, kind: Kind) -> Vec<&Section> {
        match kind {
            Kind::Model => self
                .model
                .iter()
                .map(|m| &m.section)
                .filter(|s| s.path().is_some_and(|p| !is_reference(p)))
                .collect(),
            Kind::Part => self.model.iter().flat_map(|m| &m.parts).collect(),
            Kind::Code => self.code.iter().collect(),
            Kind::Dataset => self.datasets.iter().collect(),
            Kind::Docs => self.docs.iter().collect(),
        }
    }

    /// The `ModelKit` the model is in, when `model.path` names one rather than a path.
    pub(crate) fn model_reference(&self) -> Option<&str> {
        self.model
            .as_ref()
            .and_then(|m| m.section.path())
            .filter(|p| is_reference(p))
    }

    /// Whether the model has parts.
    pub(crate) fn has_parts(&self) -> bool {
        self.model.as_ref().is_some_and(|m| !m.parts.is_empty())
    }

    /// The model's one GGUF file, when the model is one (no parts): the file the model is.
    pub(crate) fn single_gguf(&self) -> Option<SafeRelPath> {
        let model = self.model.as_ref()?;
        let path = clean(model.section.path()?);
        let gguf = std::path::Path::new(path)
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("gguf"));
        if !gguf || !model.parts.is_empty() {
            return None;
        }
        path.parse().ok()
    }
}

/// Pairs a `ModelKit`'s layers with the sections of its Kitfile, in manifest order.
#[derive(Debug)]
pub(crate) struct Pairing<'k> {
    kitfile: &'k Kitfile,
    reference: &'k str,
    /// Layers seen so far, by kind.
    seen: [usize; Kind::ALL.len()],
}

impl<'k> Pairing<'k> {
    pub(crate) fn new(kitfile: &'k Kitfile, reference: &'k str) -> Self {
        Pairing {
            kitfile,
            reference,
            seen: [0; Kind::ALL.len()],
        }
    }

    /// Where `layer` goes: unpacked at the root, or in the directory of its section's path.
    /// `None` for a layer that is no `ModelKit` tar (the artifact is then refused as unknown).
    pub(crate) fn place(&mut self, layer: &Descriptor, media_type: &str) -> Result<Placed> {
        let digest = descriptor_digest(layer)?;
        let Some((name, compression)) = parse_media_type(media_type) else {
            return Ok(None);
        };
        let Some(compression) = compression else {
            return Err(self.refuse(format!(
                "layer `{digest}` (`{media_type}`) is compressed in a way that is not unpacked: `ModelKit` layers are unpacked from `.tar`, `.tar+gzip` and `.tar+zstd`"
            )));
        };
        let Some(kind) = Kind::from_name(name) else {
            // A kind from a newer `kit`: its entries carry their paths, as every layer's do now.
            let place = Place::Unpack {
                base: None,
                compression,
            };
            return Ok(Some((place, false)));
        };
        let i = self.seen[kind.index()];
        self.seen[kind.index()] += 1;
        let sections = self.kitfile.sections(kind);
        let Some(section) = sections.get(i) else {
            return Err(self.refuse(format!(
                "layer `{digest}` is `{}` layer {} of the manifest, but the Kitfile has {} such section{}",
                kind.name(),
                i + 1,
                sections.len(),
                if sections.len() == 1 { "" } else { "s" },
            )));
        };
        let base = match &section.digest {
            Some(recorded) if recorded == &digest.to_string() => None,
            Some(recorded) => {
                return Err(self.refuse(format!(
                    "layer `{digest}` is the Kitfile's `{}`, which records the digest `{}`",
                    kind.section_name(i),
                    printable(recorded),
                )));
            }
            None => legacy_base(section.path())?,
        };
        let weight = matches!(kind, Kind::Model | Kind::Part);
        Ok(Some((Place::Unpack { base, compression }, weight)))
    }

    /// Checks that every section with a path had its layer.
    pub(crate) fn finish(self) -> Result<()> {
        for kind in Kind::ALL {
            let sections = self.kitfile.sections(kind);
            let Some((i, missing)) = sections.iter().enumerate().nth(self.seen[kind.index()])
            else {
                continue;
            };
            let path = printable(missing.path().unwrap_or_default());
            return Err(self.refuse(format!(
                "the Kitfile's `{}` (`{path}`) has no layer in the manifest",
                kind.section_name(i)
            )));
        }
        Ok(())
    }

    fn refuse(&self, reason: String) -> Error {
        Error::OciModelKit {
            reference: self.reference.to_owned(),
            reason,
        }
    }
}

/// Whether a Kitfile's `model.path` names another `ModelKit` rather than a path, by `kit`'s
/// own test: it holds a `:` or an `@`.
fn is_reference(path: &str) -> bool {
    path.contains(':') || path.contains('@')
}

/// Whether `media_type` is that of a model or model part layer: what is taken of a `ModelKit`
/// another one's model refers to, as `kit unpack` takes it (its `model` filter).
pub(crate) fn is_model_layer(media_type: &str) -> bool {
    parse_media_type(media_type)
        .and_then(|(kind, _)| Kind::from_name(kind))
        .is_some_and(|k| matches!(k, Kind::Model | Kind::Part))
}

/// The `oci://` reference of `model`, a Kitfile's `model.path` that names another `ModelKit`,
/// read as `kit` reads it: `registry/repository[:tag|@digest]`, any `,extra-tag` dropped. The
/// registry is the first segment when it holds a `.` or a `:`; `kit` reads any other
/// reference (`org/repo:v1`, a bare digest) from its local storage, never from a registry,
/// which the error says.
pub(crate) fn model_reference(model: &str) -> std::result::Result<OciRef, String> {
    let first = model.split(',').next().unwrap_or(model);
    let registry = first.split_once('/').map(|(r, _)| r);
    if !registry.is_some_and(|r| r.contains('.') || r.contains(':')) {
        return Err(
            "names no registry (its first segment has no `.` or `:`): `kit` looks for such a reference in its own local storage only".to_owned(),
        );
    }
    match format!("oci://{first}").parse::<ModelRef>() {
        Ok(ModelRef::Oci(oci)) if oci.path.is_none() => Ok(oci),
        Ok(_) => Err("is not a `registry/repository[:tag|@digest]` reference".to_owned()),
        Err(e) => Err(format!("is not a reference: {e}")),
    }
}

/// The kind named in a `ModelKit` tar layer's media type, and its compression (`None` for
/// one not unpacked); `None` for a media type that is no `ModelKit` tar.
fn parse_media_type(media_type: &str) -> Option<(&str, Option<Compression>)> {
    let rest = media_type.strip_prefix(PREFIX)?;
    let (kind, packing) = rest.split_once(".v1.tar")?;
    let compression = match packing {
        "" => Some(Compression::None),
        "+gzip" => Some(Compression::Gzip),
        "+zstd" => Some(Compression::Zstd),
        _ => None,
    };
    Some((kind, compression))
}

/// A path as a Kitfile may write it (`./models/`), as a relative path (`models`); `""` for the
/// Kitfile's own directory.
fn clean(path: &str) -> &str {
    let mut path = path.trim_end_matches('/');
    while let Some(rest) = path.strip_prefix("./") {
        path = rest.trim_start_matches('/');
    }
    if path == "." { "" } else { path }
}

/// Where an older `kit pack`'s layer for `path` unpacks: the directory that holds `path`
/// (`None` for the model's root).
fn legacy_base(path: Option<&str>) -> Result<Option<SafeRelPath>> {
    let path = clean(path.unwrap_or_default());
    match path.rsplit_once('/') {
        Some((dir, _)) => Ok(Some(dir.parse()?)),
        None => Ok(None),
    }
}

/// The Kitfile of `manifest`, read from its config blob and checked against its digest.
pub(crate) async fn fetch_kitfile(
    repo: &Repository,
    client: &reqwest::Client,
    manifest: &ImageManifest,
    id: &str,
) -> Result<Kitfile> {
    let config = manifest.config();
    let digest = descriptor_digest(config)?;
    let bytes = super::small_blob(repo, client, &digest, "config", super::CONFIG_LIMIT).await?;
    Error::check_digest(
        &format!("{id} (Kitfile)"),
        Some(&digest),
        &Digest::sha256_of(&bytes),
    )?;
    serde_json::from_slice(&bytes).map_err(|e| Error::OciModelKit {
        reference: id.to_owned(),
        reason: format!(
            "its config `{digest}` (`{}`) is not a Kitfile: {e}",
            config.media_type()
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oci::manifest::{Format, Layer, Parsed, format_of, layers, parse};

    const D1: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
    const D2: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";
    const D3: &str = "sha256:3333333333333333333333333333333333333333333333333333333333333333";
    const D4: &str = "sha256:4444444444444444444444444444444444444444444444444444444444444444";

    const CONFIG: &str = "application/vnd.kitops.modelkit.config.v1+json";

    fn manifest(config_type: &str, layers: &[(&str, &str)]) -> ImageManifest {
        let layers: Vec<serde_json::Value> = layers
            .iter()
            .map(|(kind, digest)| {
                serde_json::json!({
                    "mediaType": format!("{PREFIX}{kind}"),
                    "digest": digest,
                    "size": 5,
                })
            })
            .collect();
        let json = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": config_type, "digest": D4, "size": 2},
            "layers": layers,
        });
        match parse(json.to_string().as_bytes(), None) {
            Ok(Parsed::Manifest(m)) => *m,
            other => panic!("{other:?}"),
        }
    }

    fn kitfile(json: &serde_json::Value) -> Kitfile {
        serde_json::from_value(json.clone()).expect("a Kitfile")
    }

    /// Each layer as `base:compression`, and whether it holds weights.
    fn places(layers: &[Layer]) -> Vec<(String, bool)> {
        layers
            .iter()
            .map(|l| match &l.place {
                Place::Unpack { base, compression } => (
                    format!(
                        "{}:{compression:?}",
                        base.as_ref().map(ToString::to_string).unwrap_or_default()
                    ),
                    l.weight,
                ),
                Place::File(p) => (format!("file {p}"), l.weight),
            })
            .collect()
    }

    /// The four sections of [`layers_of_four`], with `digests` recorded or not.
    fn four_sections(digests: bool, paths: [&str; 4]) -> Kitfile {
        let with = |path: &str, digest: &str| {
            if digests {
                serde_json::json!({"path": path, "digest": digest, "diffId": D1})
            } else {
                serde_json::json!({"path": path})
            }
        };
        let mut model = with(paths[0], D1);
        model["name"] = "tiny".into();
        model["parts"] = serde_json::json!([with(paths[1], D2)]);
        kitfile(&serde_json::json!({
            "manifestVersion": "1.0.0",
            "package": {"name": "tiny"},
            "model": model,
            "code": [with(paths[2], D3)],
            "docs": [with(paths[3], D4)],
        }))
    }

    fn layers_of_four() -> ImageManifest {
        manifest(
            CONFIG,
            &[
                ("model.v1.tar+zstd", D1),
                ("modelpart.v1.tar", D2),
                ("code.v1.tar+gzip", D3),
                ("docs.v1.tar", D4),
            ],
        )
    }

    #[test]
    fn each_layer_is_its_sections_and_unpacks_at_the_root_when_the_kitfile_has_digests()
    -> Result<()> {
        let kit = four_sections(true, ["models/tiny", "lora.gguf", "src", "README.md"]);
        let (format, laid) = layers(&layers_of_four(), Some(&kit), "r")?;
        assert_eq!(format, Format::ModelKit);
        assert_eq!(
            places(&laid),
            [
                (":Zstd".to_owned(), true),
                (":None".to_owned(), true),
                (":Gzip".to_owned(), false),
                (":None".to_owned(), false),
            ]
        );
        Ok(())
    }

    #[test]
    fn an_older_modelkit_unpacks_each_layer_in_the_directory_of_its_path() -> Result<()> {
        let kit = four_sections(
            false,
            ["./models/tiny/", "lora.gguf", "src", "docs/guide/a.md"],
        );
        let (_, laid) = layers(&layers_of_four(), Some(&kit), "r")?;
        let bases: Vec<String> = places(&laid).into_iter().map(|(p, _)| p).collect();
        assert_eq!(bases, ["models:Zstd", ":None", ":Gzip", "docs/guide:None"]);
        Ok(())
    }

    #[test]
    fn a_modelkit_is_recognised_by_its_config_or_its_layers_and_new_kinds_unpack_at_the_root()
    -> Result<()> {
        let m = manifest(
            "application/vnd.oci.image.config.v1+json",
            &[("code.v1.tar", D1), ("prompts.v1.tar+zstd", D2)],
        );
        let kit = kitfile(&serde_json::json!({"code": [{"path": "src", "digest": D1}]}));
        let (format, laid) = layers(&m, Some(&kit), "r")?;
        assert_eq!(format, Format::ModelKit);
        let bases: Vec<String> = places(&laid).into_iter().map(|(p, _)| p).collect();
        assert_eq!(bases, [":None", ":Zstd"]);
        let m = manifest(CONFIG, &[]);
        assert_eq!(format_of(&m), Some(Format::ModelKit));
        Ok(())
    }

    #[test]
    fn a_kitfile_that_disagrees_with_the_layers_is_refused_naming_the_layer() {
        let paths = ["models/tiny", "lora.gguf", "src", "README.md"];
        let rows: Vec<(&str, Kitfile, ImageManifest, &[&str])> = vec![
            (
                "a digest that is not the layer's",
                kitfile(&serde_json::json!({"code": [{"path": "src", "digest": D2}]})),
                manifest(CONFIG, &[("code.v1.tar", D1)]),
                &[D1, "`code[0]`", D2],
            ),
            (
                "more layers of a kind than sections",
                kitfile(&serde_json::json!({"code": [{"path": "src", "digest": D1}]})),
                manifest(CONFIG, &[("code.v1.tar", D1), ("code.v1.tar", D2)]),
                &[D2, "`code` layer 2", "1 such section"],
            ),
            (
                "a section without its layer",
                four_sections(true, paths),
                manifest(
                    CONFIG,
                    &[
                        ("model.v1.tar+zstd", D1),
                        ("modelpart.v1.tar", D2),
                        ("code.v1.tar+gzip", D3),
                    ],
                ),
                &["`docs[0]` (`README.md`) has no layer"],
            ),
            (
                "a compression that is not unpacked",
                kitfile(&serde_json::json!({"code": [{"path": "src", "digest": D1}]})),
                manifest(CONFIG, &[("code.v1.tar+xz", D1)]),
                &[D1, "tar+xz", "`.tar+zstd`"],
            ),
        ];
        for (what, kit, m, needles) in rows {
            match layers(&m, Some(&kit), "oci://r/kit:v1") {
                Err(Error::OciModelKit { reference, reason }) => {
                    assert_eq!(reference, "oci://r/kit:v1", "{what}");
                    for needle in needles {
                        assert!(reason.contains(needle), "{what}: {reason}");
                    }
                }
                other => panic!("{what}: {other:?}"),
            }
        }
    }

    #[test]
    fn a_model_in_another_modelkit_has_no_layer_and_an_older_path_out_of_the_directory_is_refused()
    -> Result<()> {
        let kit = kitfile(&serde_json::json!({
            "model": {"path": "registry.internal/base/llama:v1", "parts": [{"path": "a.gguf", "digest": D2}]},
            "docs": [{"path": "README.md", "digest": D1}],
        }));
        assert_eq!(
            kit.model_reference(),
            Some("registry.internal/base/llama:v1")
        );
        assert!(kit.has_parts());
        let m = manifest(CONFIG, &[("modelpart.v1.tar", D2), ("docs.v1.tar", D1)]);
        let (_, laid) = layers(&m, Some(&kit), "r")?;
        assert_eq!(laid.len(), 2);
        // A model layer as well is one the Kitfile has no section for.
        let m = manifest(
            CONFIG,
            &[
                ("model.v1.tar", D3),
                ("modelpart.v1.tar", D2),
                ("docs.v1.tar", D1),
            ],
        );
        assert!(matches!(
            layers(&m, Some(&kit), "r"),
            Err(Error::OciModelKit { .. })
        ));

        let kit = kitfile(&serde_json::json!({"docs": [{"path": "../../etc/passwd"}]}));
        let m = manifest(CONFIG, &[("docs.v1.tar", D1)]);
        let err = layers(&m, Some(&kit), "r").unwrap_err();
        assert!(matches!(err, Error::HostileName { .. }), "{err}");
        Ok(())
    }

    #[test]
    fn a_model_reference_is_read_as_kit_reads_it() {
        let oci = |r: &str| model_reference(r).map(|o| ModelRef::Oci(o).to_string());
        assert_eq!(
            oci("registry.internal/base/llama:v1").as_deref(),
            Ok("oci://registry.internal/base/llama:v1")
        );
        assert_eq!(
            oci("localhost:5000/base:v1,extra").as_deref(),
            Ok("oci://localhost:5000/base:v1")
        );
        assert_eq!(
            oci(&format!("127.0.0.1:5000/base@{D1}")).as_deref(),
            Ok(format!("oci://127.0.0.1:5000/base@{D1}").as_str())
        );
        for local in ["myorg/base:v1", "base:v1", D1] {
            let err = oci(local).unwrap_err();
            assert!(err.contains("names no registry"), "{local}: {err}");
        }
        assert!(oci("registry.internal/base:v1/model.gguf").is_err());
        assert!(is_model_layer(&format!("{PREFIX}model.v1.tar+zstd")));
        assert!(is_model_layer(&format!("{PREFIX}modelpart.v1.tar")));
        assert!(!is_model_layer(&format!("{PREFIX}docs.v1.tar")));
        assert!(!is_model_layer(CONFIG));
    }

    #[test]
    fn the_model_is_its_gguf_when_it_is_one_gguf_file() {
        let single = |model: serde_json::Value| {
            kitfile(&serde_json::json!({"model": model}))
                .single_gguf()
                .map(|p| p.to_string())
        };
        assert_eq!(
            single(serde_json::json!({"path": "./models/tiny.gguf"})).as_deref(),
            Some("models/tiny.gguf")
        );
        assert_eq!(
            single(serde_json::json!({"path": "Tiny.GGUF"})).as_deref(),
            Some("Tiny.GGUF")
        );
        assert_eq!(single(serde_json::json!({"path": "models/tiny"})), None);
        assert_eq!(
            single(serde_json::json!({"path": "tiny.gguf", "parts": [{"path": "mmproj.gguf"}]})),
            None,
            "a model with parts is its directory"
        );
        assert_eq!(single(serde_json::json!({"name": "no path"})), None);
    }
}
