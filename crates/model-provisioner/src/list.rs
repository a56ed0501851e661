//! [`ModelList`]: the models a node needs, in one file (`ensure --from FILE`), TOML or JSON;
//! and [`ModelProvisioner::ensure_all`], which ensures many models at once.
//!
//! ```toml
//! # Settings every model takes unless it says otherwise.
//! include = ["*.json", "*.safetensors"]
//! mirrors = ["hf:=oci://registry.internal/hf"]
//!
//! [[models]]
//! ref = "hf:org/model-a"
//! revision = "v1.2"
//!
//! [[models]]
//! ref = "https://models.example/b.gguf"
//! digest = "sha256:…"
//!
//! [[models]]
//! ref = "s3://bucket/folder/"
//! exclude = ["*.bin"]
//! ```
//!
//! JSON has the same fields: `{"include": […], "models": [{"ref": "…", "digest": "…"}]}`.
//! Unknown fields are refused, so that a misspelt setting is not silently ignored.
//!
//! Models with the same settings (`include`, `exclude`, `mirrors`) are one [group](Group): one
//! provisioner ensures them in parallel, under its one memory budget. Groups of other settings
//! run one after another, so that the budget is never held twice.

use std::collections::BTreeMap;
use std::sync::Mutex;

use catalog_core::{CatalogStore, Digest};
use serde::Deserialize;

use crate::error::Result;
use crate::fetcher::ModelFetcher;
use crate::provisioner::{Ensured, ModelProvisioner};

/// The largest list read: far beyond any node's models.
pub const LIST_LIMIT: u64 = 4 << 20;

/// The models a node needs, and the settings they share.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelList {
    /// For a whole repository or folder: only files matching one of these, unless a model
    /// says otherwise.
    #[serde(default)]
    pub include: Vec<String>,
    /// For a whole repository or folder: no file matching one of these, unless a model says
    /// otherwise.
    #[serde(default)]
    pub exclude: Vec<String>,
    /// Mirror rules (`SOURCE=MIRROR`, as `--mirror` takes them), unless a model says otherwise.
    #[serde(default)]
    pub mirrors: Vec<String>,
    /// The models.
    pub models: Vec<ListedModel>,
}

/// One model of a [`ModelList`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListedModel {
    /// Its reference, as `ensure` takes it.
    #[serde(rename = "ref")]
    pub reference: String,
    /// The digest it must have (`sha256:<hex>`).
    #[serde(default)]
    pub digest: Option<String>,
    /// For `hf:`: the branch, tag or commit, as `--revision` takes it.
    #[serde(default)]
    pub revision: Option<String>,
    /// Its own include patterns, instead of the list's.
    #[serde(default)]
    pub include: Option<Vec<String>>,
    /// Its own exclude patterns, instead of the list's.
    #[serde(default)]
    pub exclude: Option<Vec<String>>,
    /// Its own mirror rules, instead of the list's.
    #[serde(default)]
    pub mirrors: Option<Vec<String>>,
}

/// The settings a group of models shares.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Settings {
    /// Include patterns.
    pub include: Vec<String>,
    /// Exclude patterns.
    pub exclude: Vec<String>,
    /// Mirror rules.
    pub mirrors: Vec<String>,
}

/// Models of one [`Settings`], by their place in the list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group<'l> {
    /// What they share.
    pub settings: Settings,
    /// Each model, with its index in the list.
    pub models: Vec<(usize, &'l ListedModel)>,
}

/// A list that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the model list {what}: {reason}")]
pub struct ParseListError {
    what: String,
    reason: String,
}

impl ModelList {
    /// The list `text` holds: JSON when it starts with `{`, else TOML. `what` names it in
    /// errors (its path).
    ///
    /// # Errors
    ///
    /// When it is neither, names a field that no list has, lacks `models` or a model's `ref`,
    /// or lists no model.
    pub fn parse(text: &str, what: &str) -> std::result::Result<ModelList, ParseListError> {
        let fail = |reason: String| ParseListError {
            what: format!("`{what}`"),
            reason,
        };
        let list: ModelList = if text.trim_start().starts_with('{') {
            serde_json::from_str(text).map_err(|e| fail(format!("not valid JSON: {e}")))?
        } else {
            toml::from_str(text).map_err(|e| fail(format!("not valid TOML: {e}")))?
        };
        if list.models.is_empty() {
            return Err(fail("it lists no model".into()));
        }
        if let Some(i) = list
            .models
            .iter()
            .position(|m| m.reference.trim().is_empty())
        {
            return Err(fail(format!("model {} has an empty `ref`", i + 1)));
        }
        Ok(list)
    }

    /// The models grouped by the settings each takes (its own, else the list's), groups in the
    /// order of their first model.
    pub fn groups(&self) -> Vec<Group<'_>> {
        let mut groups: Vec<Group<'_>> = Vec::new();
        for (i, model) in self.models.iter().enumerate() {
            let settings = Settings {
                include: model
                    .include
                    .clone()
                    .unwrap_or_else(|| self.include.clone()),
                exclude: model
                    .exclude
                    .clone()
                    .unwrap_or_else(|| self.exclude.clone()),
                mirrors: model
                    .mirrors
                    .clone()
                    .unwrap_or_else(|| self.mirrors.clone()),
            };
            match groups.iter_mut().find(|g| g.settings == settings) {
                Some(group) => group.models.push((i, model)),
                None => groups.push(Group {
                    settings,
                    models: vec![(i, model)],
                }),
            }
        }
        groups
    }
}

impl<C: CatalogStore + Sync, F: ModelFetcher + Sync> ModelProvisioner<C, F> {
    /// Ensures every model of `models` (a reference and the digest it must have), up to
    /// `parallel` at once; one result per model, in their order. A model that fails does not
    /// stop the others.
    pub fn ensure_all(
        &self,
        models: &[(catalog_core::ModelRef, Option<Digest>)],
        parallel: usize,
    ) -> Vec<Result<Ensured>> {
        let results: Mutex<BTreeMap<usize, Result<Ensured>>> = Mutex::new(BTreeMap::new());
        let next = Mutex::new(0..models.len());
        std::thread::scope(|s| {
            for _ in 0..parallel.clamp(1, models.len().max(1)) {
                s.spawn(|| {
                    loop {
                        let Some(i) = next
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner)
                            .next()
                        else {
                            break;
                        };
                        let (reference, digest) = &models[i];
                        let result = self.ensure(reference, digest.as_ref());
                        results
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner)
                            .insert(i, result);
                    }
                });
            }
        });
        results
            .into_inner()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .into_values()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOML: &str = r#"
include = ["*.json", "*.safetensors"]
mirrors = ["hf:=oci://registry.internal/hf"]

[[models]]
ref = "hf:org/a"
revision = "v1"

[[models]]
ref = "https://models.example/b.gguf"
digest = "sha256:0000000000000000000000000000000000000000000000000000000000000000"

[[models]]
ref = "s3://bucket/folder/"
exclude = ["*.bin"]
"#;

    #[test]
    fn a_toml_list_and_its_json_twin_read_the_same() {
        let toml = ModelList::parse(TOML, "models.toml").unwrap();
        let json = ModelList::parse(
            r#"{"include": ["*.json", "*.safetensors"],
                "mirrors": ["hf:=oci://registry.internal/hf"],
                "models": [
                  {"ref": "hf:org/a", "revision": "v1"},
                  {"ref": "https://models.example/b.gguf",
                   "digest": "sha256:0000000000000000000000000000000000000000000000000000000000000000"},
                  {"ref": "s3://bucket/folder/", "exclude": ["*.bin"]}]}"#,
            "models.json",
        )
        .unwrap();
        assert_eq!(toml, json);
        assert_eq!(toml.models[0].revision.as_deref(), Some("v1"));
    }

    #[test]
    fn models_of_the_same_settings_are_one_group_in_list_order() {
        let list = ModelList::parse(TOML, "models.toml").unwrap();
        let groups = list.groups();
        assert_eq!(groups.len(), 2);
        assert_eq!(
            groups[0].models.iter().map(|(i, _)| *i).collect::<Vec<_>>(),
            [0, 1]
        );
        assert_eq!(groups[1].models[0].0, 2);
        assert_eq!(groups[1].settings.exclude, ["*.bin"]);
        assert_eq!(groups[1].settings.include, ["*.json", "*.safetensors"]);
    }

    #[test]
    fn a_list_that_is_no_list_is_refused_in_words() {
        let err = |text: &str| ModelList::parse(text, "l").unwrap_err().to_string();
        assert!(err("models = []").contains("lists no model"));
        assert!(err("[[models]]\nref = \"a\"\nrevison = \"v1\"").contains("revison"));
        assert!(err("{\"models\": [{\"ref\": \" \"}]}").contains("model 1 has an empty `ref`"));
        assert!(err("{not json").contains("not valid JSON"));
        assert!(err("models = 3").contains("not valid TOML"));
    }
}
