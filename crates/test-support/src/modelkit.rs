//! `KitOps` `ModelKit`s built as `kit pack` builds them: the Kitfile as the config, with each
//! section's layer digest, and one tar layer per section, model first.

use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

use crate::archives::{Packing, tar_of};
use crate::registry::{Artifact, OCI_MANIFEST};

/// The media type of a `ModelKit`'s config, its Kitfile as JSON.
pub const MODELKIT_CONFIG: &str = "application/vnd.kitops.modelkit.config.v1+json";

/// What a section holds, and the kind its layer's media type names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    /// `model` (its path), `…modelkit.model.v1.tar`.
    Model,
    /// `model.parts[]`, `…modelkit.modelpart.v1.tar`.
    Part,
    /// `code[]`, `…modelkit.code.v1.tar`.
    Code,
    /// `datasets[]`, `…modelkit.dataset.v1.tar`.
    Dataset,
    /// `docs[]`, `…modelkit.docs.v1.tar`.
    Docs,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Model => "model",
            Kind::Part => "modelpart",
            Kind::Code => "code",
            Kind::Dataset => "dataset",
            Kind::Docs => "docs",
        }
    }
}

/// One section and its layer.
#[derive(Debug, Clone)]
struct Section {
    kind: Kind,
    path: String,
    tar: Vec<u8>,
    packing: Packing,
}

/// A `ModelKit` to push. Sections keep the order they were added in within their kind; the
/// layers go model, parts, code, datasets, docs, as `kit pack` writes them.
///
/// ```no_run
/// # use test_support::{Registry, archives::Packing, modelkit::{Kind, ModelKit}};
/// # fn main() -> std::io::Result<()> {
/// let registry = Registry::start()?;
/// ModelKit::new("tiny")
///     .section(Kind::Model, "model.gguf", &[("model.gguf", b"GGUF")], Packing::Zstd)
///     .section(Kind::Code, "src", &[("src/run.py", b"print()")], Packing::Gzip)
///     .artifact()
///     .push(&registry, "kits/tiny", "v1")?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct ModelKit {
    name: String,
    sections: Vec<Section>,
    legacy: bool,
    model_in: Option<String>,
}

impl ModelKit {
    /// A `ModelKit` named `name`, with no sections yet.
    pub fn new(name: &str) -> Self {
        ModelKit {
            name: name.to_owned(),
            sections: Vec::new(),
            legacy: false,
            model_in: None,
        }
    }

    /// Makes the model the one in another `ModelKit`, as `kit pack` packs a Kitfile whose
    /// `model.path` is a reference (`registry/repo:tag`): the Kitfile's `model.path` is
    /// `reference`, and there is no model layer (parts, code, datasets and docs stay).
    #[must_use]
    pub fn model_in(mut self, reference: &str) -> Self {
        self.sections.retain(|s| s.kind != Kind::Model);
        self.model_in = Some(reference.to_owned());
        self
    }

    /// Adds a section at `path` whose layer holds `files` (paths from the Kitfile's directory,
    /// so under `path`), packed as `packing`.
    #[must_use]
    pub fn section(
        self,
        kind: Kind,
        path: &str,
        files: &[(&str, &[u8])],
        packing: Packing,
    ) -> Self {
        self.section_tar(kind, path, tar_of(files), packing)
    }

    /// Adds a section at `path` whose layer is `tar`, as given (a hostile one, say), packed as
    /// `packing`.
    #[must_use]
    pub fn section_tar(mut self, kind: Kind, path: &str, tar: Vec<u8>, packing: Packing) -> Self {
        self.sections.push(Section {
            kind,
            path: path.to_owned(),
            tar,
            packing,
        });
        self
    }

    /// As `kit pack` built `ModelKit`s before the Kitfile recorded each layer's digest: no
    /// digests, and each layer's entries named from the directory holding its section's path.
    /// Call it last: the sections added so far are rewritten.
    #[must_use]
    pub fn legacy(mut self) -> Self {
        for section in &mut self.sections {
            let parent = match section.path.rsplit_once('/') {
                Some((dir, _)) => format!("{dir}/"),
                None => String::new(),
            };
            let mut archive = tar::Archive::new(section.tar.as_slice());
            let mut files = Vec::new();
            for entry in archive.entries().expect("a tar in memory") {
                let mut entry = entry.expect("a tar in memory");
                if entry.header().entry_type().is_dir() {
                    continue;
                }
                let name = entry.path().expect("a path").display().to_string();
                let mut data = Vec::new();
                std::io::Read::read_to_end(&mut entry, &mut data).expect("a tar in memory");
                let name = name.strip_prefix(&parent).unwrap_or(&name).to_owned();
                files.push((name, data));
            }
            let borrowed: Vec<(&str, &[u8])> = files
                .iter()
                .map(|(n, d)| (n.as_str(), d.as_slice()))
                .collect();
            section.tar = tar_of(&borrowed);
        }
        self.legacy = true;
        self
    }

    /// The layers in the order `kit pack` writes them: `(kind, media type, bytes, section)`.
    fn layers(&self) -> Vec<(&Section, String, Vec<u8>)> {
        let mut sections: Vec<&Section> = self.sections.iter().collect();
        sections.sort_by_key(|s| s.kind);
        sections
            .into_iter()
            .map(|s| {
                let media_type = format!(
                    "application/vnd.kitops.modelkit.{}.v1.tar{}",
                    s.kind.name(),
                    s.packing.suffix()
                );
                (s, media_type, s.packing.pack(&s.tar))
            })
            .collect()
    }

    /// The Kitfile as `kit pack` writes it into the config: each section with its layer's
    /// `digest` and `diffId` (the sha256 of the uncompressed tar), unless [`Self::legacy`].
    pub fn kitfile(&self) -> Value {
        let mut kitfile = json!({
            "manifestVersion": "1.0.0",
            "package": {"name": self.name, "authors": ["tests"]},
        });
        if let Some(reference) = &self.model_in {
            kitfile["model"] = json!({"name": self.name, "path": reference});
        }
        for (section, _, bytes) in self.layers() {
            let mut entry = json!({"path": section.path});
            if !self.legacy {
                entry["digest"] = json!(sha256(&bytes));
                entry["diffId"] = json!(sha256(&section.tar));
            }
            let list = match section.kind {
                Kind::Model => {
                    let model = &mut kitfile["model"];
                    if model.is_null() {
                        *model = json!({"name": self.name});
                    }
                    for (k, v) in entry.as_object().expect("an object") {
                        model[k] = v.clone();
                    }
                    continue;
                }
                Kind::Part => {
                    if kitfile["model"].is_null() {
                        kitfile["model"] = json!({"name": self.name});
                    }
                    &mut kitfile["model"]["parts"]
                }
                Kind::Code => &mut kitfile["code"],
                Kind::Dataset => &mut kitfile["datasets"],
                Kind::Docs => &mut kitfile["docs"],
            };
            if list.is_null() {
                *list = json!([]);
            }
            list.as_array_mut().expect("a list").push(entry);
        }
        kitfile
    }

    /// The artifact to push, with [`Self::kitfile`] as its config.
    pub fn artifact(&self) -> Artifact {
        self.artifact_with(&self.kitfile())
    }

    /// The artifact to push, with `kitfile` as its config (one a test changed).
    pub fn artifact_with(&self, kitfile: &Value) -> Artifact {
        let config = serde_json::to_vec(kitfile).expect("a JSON value serialises");
        let mut artifact = Artifact::new(OCI_MANIFEST)
            .config(MODELKIT_CONFIG, &config)
            .annotation("ml.kitops.modelkit.cli-version", "1.0.0");
        for (_, media_type, bytes) in self.layers() {
            artifact = artifact.layer(&media_type, &bytes, &[]);
        }
        artifact
    }
}

fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{:x}", Sha256::digest(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kitfile_lists_each_section_with_its_layer_in_kit_order() {
        let kit = ModelKit::new("tiny")
            .section(
                Kind::Docs,
                "README.md",
                &[("README.md", b"# tiny")],
                Packing::Tar,
            )
            .section(Kind::Code, "src", &[("src/a.py", b"a")], Packing::Gzip)
            .section(
                Kind::Model,
                "m/w.gguf",
                &[("m/w.gguf", b"GGUF")],
                Packing::Zstd,
            );
        let kitfile = kit.kitfile();
        let layers = kit.layers();
        let kinds: Vec<&str> = layers.iter().map(|(_, mt, _)| mt.as_str()).collect();
        assert_eq!(
            kinds,
            [
                "application/vnd.kitops.modelkit.model.v1.tar+zstd",
                "application/vnd.kitops.modelkit.code.v1.tar+gzip",
                "application/vnd.kitops.modelkit.docs.v1.tar",
            ]
        );
        assert_eq!(kitfile["model"]["path"], "m/w.gguf");
        assert_eq!(kitfile["model"]["digest"], sha256(&layers[0].2));
        assert_eq!(kitfile["code"][0]["diffId"], sha256(&layers[1].0.tar));
        assert_eq!(kitfile["docs"][0]["path"], "README.md");

        let legacy = kit.legacy();
        let kitfile = legacy.kitfile();
        assert!(kitfile["model"].get("digest").is_none());
        let model = &legacy.layers()[0].0.tar;
        let names: Vec<String> = tar::Archive::new(model.as_slice())
            .entries()
            .expect("a tar")
            .map(|e| {
                e.expect("an entry")
                    .path()
                    .expect("a path")
                    .display()
                    .to_string()
            })
            .collect();
        assert_eq!(
            names,
            ["w.gguf"],
            "named from the directory of the model's path"
        );
    }
}
