//! [`HfCliFetcher`]: the spec's path for `hf:` references, a shell-out to the Hugging Face
//! command-line tool (`hf` from `huggingface_hub` 2.x, or the older `huggingface-cli`).
//!
//! The tool downloads into a private Hugging Face cache under `<cache>/tmp/`, with the
//! environment passed through as it is (`HF_ENDPOINT`, `HF_TOKEN`, …; the token is never put
//! on a command line). Its files are then hashed, checked against the sha256 the cache names
//! them by (LFS files), moved into the content-addressed store and linked like the native
//! client's. Nothing is ever installed.

use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use catalog_core::verify::walk_tree;
use catalog_core::{CatalogEntry, Digest, ModelRef, SafeRelPath, StagedFile};

use super::{
    HfConfig, commit_of_snapshot_path, hub_cache_claimed_sha256, publish, remote_names,
    select_quant,
};
use crate::assemble::Assembly;
use crate::error::{Error, Result};
use crate::fetcher::ModelFetcher;
use crate::request::{FetchRequest, Fetched, unsupported};
use mp_progress::Progress;

/// Fetches `hf:` references by running `hf download` (or `huggingface-cli download`).
#[derive(Debug, Clone)]
pub struct HfCliFetcher {
    config: HfConfig,
    search_path: Option<OsString>,
}

impl HfCliFetcher {
    /// A fetcher that looks for the tool on `PATH`.
    pub fn new(config: HfConfig) -> Self {
        HfCliFetcher {
            config,
            search_path: std::env::var_os("PATH"),
        }
    }

    /// The tool to run: `hf` if it is on the search path, else `huggingface-cli`.
    pub fn find_tool(&self) -> Option<(PathBuf, &'static str)> {
        let dirs: Vec<PathBuf> = std::env::split_paths(self.search_path.as_deref()?).collect();
        ["hf", "huggingface-cli"].into_iter().find_map(|name| {
            dirs.iter()
                .map(|d| d.join(name))
                .find(|p| is_executable(p))
                .map(|p| (p, name))
        })
    }

    fn fetch_hf(&self, req: &FetchRequest<'_>, hf: &catalog_core::HfRef) -> Result<Fetched> {
        let (tool, name) = self.find_tool().ok_or(Error::HfToolMissing)?;
        let layout = req.layout;
        layout.create_dir(&layout.tmp_dir())?;
        let scratch = tempfile::Builder::new()
            .prefix("hf-cli-")
            .tempdir_in(layout.tmp_dir())
            .map_err(|e| catalog_core::Error::io("create a directory in", layout.tmp_dir(), e))?;
        let include = match &hf.quant {
            None => self.config.include.clone(),
            Some(tag) => {
                if name != "hf" {
                    return Err(Error::Unsupported {
                        reference: req.reference.redacted(),
                        reason: format!("choosing a quantisation needs the file list `hf download --dry-run` prints, which `{name}` does not"),
                        hint: "install `hf` with `pip install -U huggingface_hub`, or use the native client (`--via native`)".to_owned(),
                    });
                }
                let listing = self.list_files(&tool, name, hf, scratch.path())?;
                select_quant(&hf.repo_id(), tag, &listing)?.include_patterns()
            }
        };
        let printed = self.run_tool(&tool, name, hf, scratch.path(), &include, &[])?;
        let commit = commit_of_snapshot_path(&printed).ok_or_else(|| Error::HfTool {
            tool: name.to_owned(),
            status: "succeeded".to_owned(),
            stderr: format!(
                "but printed `{}`, not a path in its cache",
                printed.display()
            ),
        })?;
        let snapshot = scratch
            .path()
            .join(format!("models--{}--{}", hf.org, hf.repo))
            .join("snapshots")
            .join(&commit);
        let names = remote_names(match &hf.path {
            Some(p) => vec![p.clone()],
            None => walk_tree(&snapshot)
                .map_err(|e| Error::read(&snapshot, e))?
                .into_iter()
                .map(|f| f.rel)
                .collect(),
        })?;
        let assembly = Assembly::new(layout)?;
        let overall = req.reporter.start(&hf.repo_id(), None);
        // The tool downloaded every file into an empty cache of its own.
        let mut bytes_read = 0;
        for rel in &names {
            let source = snapshot.join(rel.as_path());
            let claimed = hub_cache_claimed_sha256(&source);
            bytes_read += adopt_verified(&assembly, &source, claimed.as_ref(), rel, &*overall)?;
        }
        overall.finish();
        let version = tool_version(&tool).unwrap_or_else(|| "unknown".to_owned());
        publish(
            assembly,
            req,
            hf,
            &self.config,
            commit,
            ("hf-cli", format!("{name} {version}")),
            bytes_read,
        )
    }
}

impl HfCliFetcher {
    /// The files of the repository that the include/exclude patterns let through, as
    /// `hf download --dry-run --format quiet` lists them (one path a line), downloading nothing.
    fn list_files(
        &self,
        tool: &Path,
        name: &str,
        hf: &catalog_core::HfRef,
        scratch: &Path,
    ) -> Result<Vec<String>> {
        let stdout = self.run(
            tool,
            name,
            hf,
            scratch,
            &self.config.include,
            &["--dry-run", "--format", "quiet"],
        )?;
        Ok(stdout
            .lines()
            .map(|l| strip_ansi(l).trim().to_owned())
            .filter(|l| !l.is_empty())
            .collect())
    }

    /// Runs `<tool> download` into the scratch Hugging Face cache `scratch`, with `include` and
    /// the configured exclude patterns; returns the path it printed.
    fn run_tool(
        &self,
        tool: &Path,
        name: &str,
        hf: &catalog_core::HfRef,
        scratch: &Path,
        include: &[String],
        extra: &[&str],
    ) -> Result<PathBuf> {
        let stdout = self.run(tool, name, hf, scratch, include, extra)?;
        // `hf` 2.x prints `path: <path>` (coloured, even into a pipe); older tools print the path
        // alone on the last line.
        let printed = stdout
            .lines()
            .rev()
            .map(|l| {
                strip_ansi(l)
                    .trim()
                    .trim_start_matches("path:")
                    .trim()
                    .to_owned()
            })
            .find(|l| !l.is_empty())
            .map(PathBuf::from)
            .ok_or_else(|| Error::HfTool {
                tool: name.to_owned(),
                status: "succeeded".to_owned(),
                stderr: "but printed no path".to_owned(),
            })?;
        Ok(printed)
    }

    /// Runs `<tool> download <repo> [<path>] --revision … --cache-dir <scratch>`, with `include`,
    /// the configured exclude patterns and `extra` arguments; returns what it printed on stdout.
    fn run(
        &self,
        tool: &Path,
        name: &str,
        hf: &catalog_core::HfRef,
        scratch: &Path,
        include: &[String],
        extra: &[&str],
    ) -> Result<String> {
        let revision = hf.revision.as_deref().unwrap_or("main");
        let mut cmd = Command::new(tool);
        cmd.arg("download").arg(hf.repo_id());
        if let Some(path) = &hf.path {
            cmd.arg(path);
        }
        cmd.arg("--revision")
            .arg(revision)
            .arg("--cache-dir")
            .arg(scratch)
            .args(extra);
        if hf.path.is_none() {
            for p in include {
                cmd.arg("--include").arg(p);
            }
            for p in &self.config.exclude {
                cmd.arg("--exclude").arg(p);
            }
        }
        cmd.env("HF_HUB_DISABLE_TELEMETRY", "1")
            .env("HF_HUB_DISABLE_UPDATE_CHECK", "1");
        if self.config.offline {
            cmd.env("HF_HUB_OFFLINE", "1");
        }
        tracing::info!(tool = %tool.display(), repo = %hf.repo_id(), revision, "running the Hugging Face CLI");
        let output = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .output()
            .map_err(|e| Error::HfTool {
                tool: name.to_owned(),
                status: "could not start".to_owned(),
                stderr: e.to_string(),
            })?;
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr);
            let tail: Vec<&str> = stderr
                .lines()
                .filter(|l| !l.trim().is_empty())
                .rev()
                .take(3)
                .collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            return Err(Error::HfTool {
                tool: name.to_owned(),
                status: output.status.to_string(),
                stderr: crate::error::printable(&tail.join(" | ")),
            });
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }
}

impl ModelFetcher for HfCliFetcher {
    fn name(&self) -> &'static str {
        "hf-cli"
    }

    fn fetch(&self, req: &FetchRequest<'_>) -> Result<Fetched> {
        match req.reference {
            ModelRef::Hf(hf) => self.fetch_hf(req, hf),
            other => Err(unsupported(other)),
        }
    }

    fn accepts(&self, entry: &CatalogEntry) -> bool {
        self.config.same_selection(entry.provenance.as_ref())
    }
}

/// `line` without ANSI escape sequences (`ESC [ … letter`).
fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for d in chars.by_ref() {
                if d.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// `huggingface_hub`'s version as the tool reports it, if it does.
fn tool_version(tool: &Path) -> Option<String> {
    let out = Command::new(tool)
        .arg("version")
        .stdin(Stdio::null())
        .output()
        .ok()?;
    // `hf version` prints lines such as `version: 2.4.0` (coloured); older tools print
    // `huggingface_hub version: 0.30.1`. Take the first word that looks like a version.
    let text = strip_ansi(&String::from_utf8_lossy(&out.stdout));
    text.split(|c: char| c.is_whitespace() || c == ':')
        .find(|w| {
            w.starts_with(|c: char| c.is_ascii_digit())
                && w.contains('.')
                && w.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-' || c == '+')
        })
        .map(str::to_owned)
}

/// Checks a hashed file against the sha256 its source claims.
fn check_claim(source: &Path, claimed: Option<&Digest>, computed: &Digest) -> Result<()> {
    Error::check_digest(&source.display().to_string(), claimed, computed).map(drop)
}

/// Hashes a file of our own scratch directory in place and moves it into the store (no copy),
/// placing it at `path` in `assembly`, the claimed sha256 recorded as its `ETag`. Returns its
/// size.
fn adopt_verified(
    assembly: &Assembly<'_>,
    source: &Path,
    claimed: Option<&Digest>,
    path: &SafeRelPath,
    progress: &dyn Progress,
) -> Result<u64> {
    let real = fs::canonicalize(source).map_err(|e| Error::read(source, e))?;
    let file = catalog_core::open_regular(&real).map_err(|e| Error::read(&real, e))?;
    let (digest, size) = catalog_core::hash_reader(&file, |n| progress.advance(n))
        .map_err(|e| Error::read(&real, e))?;
    check_claim(source, claimed, &digest)?;
    file.sync_all()
        .map_err(|e| catalog_core::Error::io("sync", &real, e))?;
    let staged = StagedFile::from_synced(&real, digest, size, None)?;
    assembly.place_staged(path, staged, claimed.map(|d| d.value().to_owned()))?;
    if claimed.is_some() {
        assembly.vouch(path);
    }
    Ok(size)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefers_hf_then_falls_back_to_huggingface_cli() -> std::io::Result<()> {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir()?;
        let make = |name: &str| -> std::io::Result<PathBuf> {
            let p = dir.path().join(name);
            fs::write(&p, "#!/bin/sh\n")?;
            fs::set_permissions(&p, fs::Permissions::from_mode(0o755))?;
            Ok(p)
        };
        let fetcher = |path: &Path| HfCliFetcher {
            config: HfConfig::default(),
            search_path: Some(path.as_os_str().to_owned()),
        };
        assert_eq!(fetcher(dir.path()).find_tool(), None);
        let old = make("huggingface-cli")?;
        assert_eq!(
            fetcher(dir.path()).find_tool(),
            Some((old, "huggingface-cli"))
        );
        let new = make("hf")?;
        assert_eq!(fetcher(dir.path()).find_tool(), Some((new, "hf")));
        Ok(())
    }
}
