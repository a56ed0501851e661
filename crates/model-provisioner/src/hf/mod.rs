//! `hf:` references: a native Hub client (feature `hf`) and the spec's shell-out to the `hf`
//! command-line tool, both placing files in the cache through one [`Assembly`].
//!
//! ```text
//! <cache>/models/hf/<org>/<repo>/<commit>-<variant>/   one directory per entry: the variant is a
//!     config.json                                     hash of the id and the file filters, so
//!     model-00001-of-00002.safetensors                that entries never share links
//!     …                                               (all hard links into blobs/sha256/)
//! ```
//!
//! A whole repository's `local_path` is that directory (what vLLM or TGI is pointed at); a
//! single file's is the file inside it, under its original name.

mod cli;
pub(crate) mod glob;
#[cfg(feature = "hf")]
mod native;
mod quant;

use std::path::{Path, PathBuf};

use catalog_core::{CacheLayout, Digest, Hasher, HfRef, Provenance, SafeRelPath};

pub use cli::HfCliFetcher;
pub use glob::{matches as glob_matches, selected};
pub use mp_credentials::hf::{Token, find_token, hf_home};
#[cfg(feature = "hf")]
pub use native::HfFetcher;
pub use quant::{QuantSelection, is_mmproj, matches_quant, quant_tags, select_quant};

use crate::assemble::{Assembly, Publish};
use crate::error::Result;
use crate::request::{FetchRequest, Fetched};

/// The public Hub, used when `HF_ENDPOINT` is not set.
pub const DEFAULT_ENDPOINT: &str = "https://huggingface.co";

/// How `hf:` references are fetched; read from the environment by [`HfConfig::from_env`].
#[derive(Debug, Clone)]
pub struct HfConfig {
    /// The Hub's base URL (`HF_ENDPOINT`).
    pub endpoint: String,
    /// The token (`HF_TOKEN` or the token file), sent to the endpoint's host only.
    pub token: Option<Token>,
    /// Make no request at all (`HF_HUB_OFFLINE=1`): use the catalog or the HF cache.
    pub offline: bool,
    /// The Hugging Face tools' own cache (`HF_HUB_CACHE`, else `<HF_HOME>/hub`), reused when it
    /// already holds the files.
    pub hub_cache: Option<PathBuf>,
    /// Only files matching one of these patterns (all when empty).
    pub include: Vec<String>,
    /// No file matching any of these patterns.
    pub exclude: Vec<String>,
    /// Files fetched at once.
    pub parallel_files: usize,
}

impl Default for HfConfig {
    fn default() -> Self {
        HfConfig {
            endpoint: DEFAULT_ENDPOINT.to_owned(),
            token: None,
            offline: false,
            hub_cache: None,
            include: Vec::new(),
            exclude: Vec::new(),
            parallel_files: crate::request::PARALLEL_FILES,
        }
    }
}

impl HfConfig {
    /// The configuration the Hugging Face tools would use in this environment.
    pub fn from_env() -> Self {
        let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let truthy = |name: &str| {
            env(name).is_some_and(|v| {
                matches!(v.to_ascii_lowercase().as_str(), "1" | "true" | "yes" | "on")
            })
        };
        HfConfig {
            endpoint: env("HF_ENDPOINT").map_or_else(
                || DEFAULT_ENDPOINT.to_owned(),
                |e| e.trim_end_matches('/').to_owned(),
            ),
            token: find_token(&env),
            offline: truthy("HF_HUB_OFFLINE"),
            hub_cache: env("HF_HUB_CACHE")
                .map(PathBuf::from)
                .or_else(|| hf_home(&env).map(|h| h.join("hub"))),
            ..HfConfig::default()
        }
    }

    /// The files of a repository listing that a whole-repository reference takes: those the
    /// filters let through, and of those, when the reference names a quantisation, the files
    /// of that quantisation ([`select_quant`]).
    #[cfg_attr(
        not(feature = "hf"),
        expect(dead_code, reason = "only the native client lists a repository itself")
    )]
    fn choose(&self, hf: &HfRef, listing: Vec<String>) -> Result<Vec<String>> {
        choose_files(hf, listing, &self.include, &self.exclude)
    }

    /// Whether an entry was made with the same file filters.
    fn same_selection(&self, provenance: Option<&Provenance>) -> bool {
        let (include, exclude) =
            provenance.map_or((&[][..], &[][..]), |p| (&p.include[..], &p.exclude[..]));
        include == self.include.as_slice() && exclude == self.exclude.as_slice()
    }
}

/// The files of a repository listing that a whole-repository reference of a hub shaped like
/// the Hub (`hf:`, `modelscope:`) takes: those `include` and `exclude` let through, and of
/// those, when the reference names a quantisation, the files of that quantisation
/// ([`select_quant`]).
pub(crate) fn choose_files(
    hf: &HfRef,
    listing: Vec<String>,
    include: &[String],
    exclude: &[String],
) -> Result<Vec<String>> {
    let passed: Vec<String> = listing
        .into_iter()
        .filter(|n| selected(n, include, exclude))
        .collect();
    match &hf.quant {
        Some(tag) => Ok(select_quant(&hf.repo_id(), tag, &passed)?.paths()),
        None => Ok(passed),
    }
}

/// The names of a remote listing, checked before anything is written under them.
fn remote_names(names: Vec<String>) -> Result<Vec<SafeRelPath>> {
    names
        .into_iter()
        .map(|name| Ok(SafeRelPath::new(name)?))
        .collect()
}

/// The file a reference names inside its repository, if it names one.
fn selection(hf: &HfRef) -> Result<Option<SafeRelPath>> {
    Ok(hf.path.as_deref().map(SafeRelPath::new).transpose()?)
}

/// Where an entry's files go: `models/hf/<org>/<repo>/<commit>-<variant>`.
fn entry_dir(
    layout: &CacheLayout,
    hf: &HfRef,
    id: &str,
    commit: &str,
    config: &HfConfig,
) -> PathBuf {
    entry_dir_for(layout, hf, id, commit, &config.include, &config.exclude)
}

/// Where an entry's files go, for the file filters `include` and `exclude`.
pub(crate) fn entry_dir_for(
    layout: &CacheLayout,
    hf: &HfRef,
    id: &str,
    commit: &str,
    include: &[String],
    exclude: &[String],
) -> PathBuf {
    repo_entry_dir(layout, "hf", hf, id, commit, (include, exclude))
}

/// Where an entry of a hub shaped like the Hub (`hf:`, `modelscope:`) goes:
/// `models/<hub>/<org>/<repo>/<commit>-<variant>`, the variant a hash of the id and the file
/// filters, so that two selections of one commit are two entries.
pub(crate) fn repo_entry_dir(
    layout: &CacheLayout,
    hub: &str,
    hf: &HfRef,
    id: &str,
    commit: &str,
    (include, exclude): (&[String], &[String]),
) -> PathBuf {
    let mut variant = Hasher::new();
    variant.update(id.as_bytes());
    for pattern in include
        .iter()
        .chain([&"\0".to_owned()])
        .chain(exclude.iter())
    {
        variant.update(b"\0");
        variant.update(pattern.as_bytes());
    }
    let short = |s: &str, n: usize| s.chars().take(n).collect::<String>();
    layout
        .models_dir()
        .join(hub)
        .join(&hf.org)
        .join(&hf.repo)
        .join(format!(
            "{}-{}",
            short(commit, 12),
            short(variant.finish().value(), 8)
        ))
}

/// Publishes what a Hub fetch assembled: in the entry's directory, resolved to `commit`, with
/// the file filters recorded; `origin` is the fetcher's name and version.
fn publish(
    assembly: Assembly<'_>,
    req: &FetchRequest<'_>,
    hf: &HfRef,
    config: &HfConfig,
    commit: String,
    origin: (&'static str, String),
    bytes_read: u64,
) -> Result<Fetched> {
    let select = selection(hf)?;
    assembly.publish(Publish {
        id: req.id,
        dest: entry_dir(req.layout, hf, req.id, &commit, config),
        select: select.as_ref(),
        expected: req.expected,
        fetcher: origin.0,
        fetcher_version: origin.1,
        resolved_revision: Some(commit),
        origin: None,
        include: config.include.clone(),
        exclude: config.exclude.clone(),
        bytes_read,
    })
}

/// The commit a path inside a Hugging Face cache snapshot belongs to
/// (`…/snapshots/<commit>/…`).
fn commit_of_snapshot_path(path: &Path) -> Option<String> {
    let mut components = path
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned());
    while let Some(c) = components.next() {
        if c == "snapshots" {
            return components.next();
        }
    }
    None
}

/// The directory of a repository in a Hugging Face cache: `models--<org>--<repo>`.
fn hub_cache_repo(hub_cache: &Path, hf: &HfRef) -> PathBuf {
    hub_cache.join(format!("models--{}--{}", hf.org, hf.repo))
}

/// The commit a revision names in a Hugging Face cache (`refs/<revision>`), or the revision
/// itself when it is a full commit sha.
#[cfg_attr(
    not(feature = "hf"),
    expect(
        dead_code,
        reason = "only the native client reads the Hugging Face cache"
    )
)]
fn hub_cache_commit(hub_cache: &Path, hf: &HfRef, revision: &str) -> Option<String> {
    if revision.len() == 40 && revision.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Some(revision.to_ascii_lowercase());
    }
    let text =
        std::fs::read_to_string(hub_cache_repo(hub_cache, hf).join("refs").join(revision)).ok()?;
    Some(text.trim().to_owned()).filter(|c| !c.is_empty())
}

/// The sha256 a Hugging Face cache snapshot file claims: the name of the blob its symlink
/// points at, when that is a sha256 (LFS files); `None` for small git files.
fn hub_cache_claimed_sha256(snapshot_file: &Path) -> Option<Digest> {
    let target = std::fs::read_link(snapshot_file).ok()?;
    let name = target.file_name()?.to_str()?;
    format!("sha256:{name}").parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Error;

    #[test]
    fn hostile_names_in_a_listing_are_refused_by_name() {
        let names = |list: &[&str]| remote_names(list.iter().map(|&n| n.to_owned()).collect());
        assert!(names(&["config.json", "onnx/model.onnx"]).is_ok());
        let err = names(&["config.json", "a/../../x"]).unwrap_err();
        assert!(
            matches!(&err, Error::HostileName { name, .. } if name == "a/../../x"),
            "{err:?}"
        );
    }

    #[test]
    fn snapshot_paths_name_their_commit() {
        let p = Path::new("/c/models--o--r/snapshots/0123abcd/sub/f.gguf");
        assert_eq!(commit_of_snapshot_path(p).as_deref(), Some("0123abcd"));
        assert_eq!(commit_of_snapshot_path(Path::new("/tmp/x")), None);
    }
}
