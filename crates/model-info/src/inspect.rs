//! The structural check: what a path holds, grouped as an engine would load it.
//!
//! ```text
//! a file                      its header, read as what its bytes claim (GGUF, safetensors)
//! <p>-0000i-of-0000N.gguf     the whole split set, from any part: every part there, none
//!                             extra, each stating the same count and its own number
//! a folder, per subfolder     single GGUF files and GGUF split sets; safetensors shards
//!                             counted as `*.safetensors.index.json` names them (every file
//!                             when there is no index); `config.json` at the top only
//! ```
//!
//! Problems fail the structure and warnings do not; each list keeps its first [`MAX_NOTES`],
//! so an entry in the catalog stays short however many files are broken.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::Path;

use catalog_core::verify::walk_tree;
use catalog_core::{ModelFormat, ModelInfo, Outcome, SafeRelPath, Split, Structure, printable};

use crate::Problem;
use crate::gguf::{self, GgufHeader};
use crate::hf_config;
use crate::misnamed::looks_like;
use crate::safetensors::{self, SafetensorsHeader};

/// At most this many problems and warnings are recorded; a model with more has the first.
const MAX_NOTES: usize = 20;
/// Bytes looked at to tell what a file is.
const HEAD: usize = 512;

/// Reads what `path` (a file, or a folder of files) is, and checks its files' structure.
/// Fails only when a file cannot be read.
pub fn inspect(path: &Path) -> io::Result<ModelInfo> {
    inspect_selection(path, false)
}

/// Like [`inspect`]; with `selected`, the files are a selection the user made (`--include`,
/// `--exclude`), so a shard or split part that is not there is a warning, not a failure.
pub fn inspect_selection(path: &Path, selected: bool) -> io::Result<ModelInfo> {
    let meta = std::fs::metadata(path)?;
    let mut found = Findings {
        selected,
        ..Findings::default()
    };
    if meta.is_dir() {
        found.folder(path)?;
    } else {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if let Some((prefix, _, count)) = gguf::split_name(&name)
            && let Some(dir) = path.parent()
        {
            // One part of a split set: the set is what an engine loads, so check all of it.
            let mut siblings = Vec::new();
            for entry in std::fs::read_dir(dir)? {
                let entry = entry?;
                let sibling = entry.file_name().to_string_lossy().into_owned();
                if gguf::split_name(&sibling).is_some_and(|(p, _, c)| p == prefix && c == count)
                    && entry.path().is_file()
                {
                    siblings.push(sibling);
                }
            }
            siblings.sort();
            let parts = siblings
                .iter()
                .map(|s| (s.clone(), dir.join(s)))
                .collect::<Vec<_>>();
            found.gguf_split_set(prefix, count, &parts, "")?;
        } else {
            let len = meta.len();
            match found.file(path, &name, len)? {
                Read1::Gguf(h) => found.gguf_single(&name, h),
                Read1::Safetensors(h) => found.count_safetensors(&h),
                Read1::Other => {}
            }
        }
    }
    Ok(found.finish())
}

/// What one file turned out to be.
enum Read1 {
    Gguf(Box<GgufHeader>),
    Safetensors(SafetensorsHeader),
    Other,
}

/// One GGUF model: a file, or a split set read as one.
#[derive(Debug, Default)]
struct GgufModel {
    first: GgufHeader,
    tensor_count: u64,
    parameters: u64,
    dtypes: BTreeMap<String, u64>,
    split: Option<Split>,
}

/// Everything read so far.
#[derive(Debug, Default)]
struct Findings {
    gguf: Vec<GgufModel>,
    st_tensors: u64,
    st_parameters: u64,
    st_dtypes: BTreeMap<String, u64>,
    st_elements: BTreeMap<String, u64>,
    st_split: Option<Split>,
    config: Option<hf_config::HfConfig>,
    checked: usize,
    problems: Vec<String>,
    warnings: Vec<String>,
    /// The files are a selection: missing ones were left out on purpose.
    selected: bool,
}

impl Findings {
    fn problem(&mut self, p: String) {
        if self.problems.len() < MAX_NOTES {
            self.problems.push(p);
        }
    }

    /// A file that is not there: a problem, unless the files are a selection.
    fn missing(&mut self, p: String) {
        if self.selected {
            self.warn(format!("{p} (not selected by `--include`/`--exclude`)"));
        } else {
            self.problem(p);
        }
    }

    fn warn(&mut self, w: String) {
        if self.warnings.len() < MAX_NOTES {
            self.warnings.push(w);
        }
    }

    /// Reads one file's header, recording problems and warnings under `shown` (its name).
    fn file(&mut self, path: &Path, shown: &str, len: u64) -> io::Result<Read1> {
        let file = File::open(path)?;
        let mut reader = BufReader::with_capacity(64 * 1024, file);
        let mut head = Vec::with_capacity(HEAD);
        (&mut reader).take(HEAD as u64).read_to_end(&mut head)?;
        let whole = io::Cursor::new(head.clone()).chain(reader);
        let shown = printable(shown);
        if gguf::has_magic(&head) {
            self.checked += 1;
            return match gguf::read(whole, len) {
                Ok(h) => {
                    for w in &h.warnings {
                        self.warn(format!("`{shown}`: {w}"));
                    }
                    Ok(Read1::Gguf(Box::new(h)))
                }
                Err(p) => self.settle(p, &shown, "GGUF", &head).map(|()| Read1::Other),
            };
        }
        let named_safetensors = has_extension(&shown, "safetensors");
        if named_safetensors || claims_safetensors(&head, len) {
            match safetensors::read(whole, len) {
                Ok(h) => {
                    self.checked += 1;
                    for w in &h.warnings {
                        self.warn(format!("`{shown}`: {w}"));
                    }
                    return Ok(Read1::Safetensors(h));
                }
                Err(Problem::NotThisFormat) if !named_safetensors => {}
                Err(p) => {
                    if !matches!(p, Problem::NotThisFormat) {
                        self.checked += 1;
                    }
                    return self
                        .settle(p, &shown, "safetensors", &head)
                        .map(|()| Read1::Other);
                }
            }
        }
        if has_extension(&shown, "gguf") {
            self.warn(format!(
                "`{shown}` is named like a GGUF file but is not one: it {}",
                looks_like(&head)
            ));
        }
        Ok(Read1::Other)
    }

    /// Records what a reader's problem means for the model.
    fn settle(&mut self, p: Problem, shown: &str, format: &str, head: &[u8]) -> io::Result<()> {
        match p {
            Problem::Io(e) => return Err(e),
            Problem::Broken(p) => self.problem(format!("`{shown}` {p}")),
            Problem::Unsupported(w) => self.warn(format!("`{shown}` {w}")),
            Problem::NotThisFormat => self.warn(format!(
                "`{shown}` is named like a {format} file but is not one: it {}",
                looks_like(head)
            )),
        }
        Ok(())
    }

    fn gguf_single(&mut self, shown: &str, h: Box<GgufHeader>) {
        if let Some(count) = h.split_count.filter(|c| *c > 1) {
            self.warn(format!(
                "`{}` says it is part {} of {count}, but its name is not `<name>-0000i-of-0000N.gguf`; the other parts were not looked for",
                printable(shown),
                h.split_no.map_or(1, |n| n.saturating_add(1)),
            ));
        }
        self.gguf.push(GgufModel {
            tensor_count: h.tensor_count,
            parameters: h.parameter_count(),
            dtypes: h.dtypes.clone(),
            first: *h,
            split: None,
        });
    }

    /// Checks a split set `prefix-0000i-of-<count>.gguf` from the parts found (shown name,
    /// path), `dir` being where they are shown to be (`""` or `sub/`).
    fn gguf_split_set(
        &mut self,
        prefix: &str,
        count: u32,
        parts: &[(String, std::path::PathBuf)],
        dir: &str,
    ) -> io::Result<()> {
        let expected: Vec<String> = (1..=count)
            .map(|i| format!("{dir}{prefix}-{i:05}-of-{count:05}.gguf"))
            .collect();
        let found: BTreeSet<&str> = parts.iter().map(|(s, _)| s.as_str()).collect();
        for (i, name) in expected.iter().enumerate() {
            if !found.contains(name.as_str()) {
                self.missing(format!(
                    "`{}` is missing: `{}` is part 1 of a GGUF split set of {count} and this is part {}",
                    printable(name),
                    printable(&expected[0]),
                    i + 1
                ));
                if self.problems.len() >= MAX_NOTES {
                    break;
                }
            }
        }
        let mut model = GgufModel::default();
        for (shown, path) in parts {
            let Some((_, no, _)) = gguf::split_name(shown.rsplit('/').next().unwrap_or(shown))
            else {
                continue;
            };
            if no == 0 || no > count {
                self.problem(format!(
                    "`{}` is an extra part: the split set has {count} parts",
                    printable(shown)
                ));
                continue;
            }
            let len = std::fs::metadata(path)?.len();
            let Read1::Gguf(h) = self.file(path, shown, len)? else {
                continue;
            };
            if let Some(c) = h.split_count.filter(|c| *c != u64::from(count)) {
                self.problem(format!(
                    "`{}` says its split set has {c} parts; its name says {count}",
                    printable(shown)
                ));
            }
            if let Some(n) = h.split_no.filter(|n| *n != u64::from(no - 1)) {
                self.problem(format!(
                    "`{}` says it is part {} of its split set; its name says {no}",
                    printable(shown),
                    n.saturating_add(1)
                ));
            }
            model.tensor_count = model.tensor_count.saturating_add(h.tensor_count);
            model.parameters = model.parameters.saturating_add(h.parameters);
            for (t, n) in &h.dtypes {
                *model.dtypes.entry(t.clone()).or_default() += n;
            }
            if no == 1 {
                model.first = *h;
            } else {
                for (t, n) in &h.elements_by_type {
                    *model.first.elements_by_type.entry(t.clone()).or_default() += n;
                }
            }
        }
        if let Some(stated) = model.first.stated_parameters {
            model.parameters = stated;
        }
        model.split = Some(Split {
            count,
            files: expected,
        });
        self.gguf.push(model);
        Ok(())
    }

    fn count_safetensors(&mut self, h: &SafetensorsHeader) {
        self.st_tensors += h.names.len() as u64;
        self.st_parameters = self.st_parameters.saturating_add(h.parameters);
        for (d, n) in &h.dtypes {
            *self.st_dtypes.entry(d.clone()).or_default() += n;
        }
        for (d, n) in &h.elements_by_dtype {
            *self.st_elements.entry(d.clone()).or_default() += n;
        }
    }

    /// Reads every file of a folder that is in a format we know, grouped as an engine would
    /// load them: GGUF split sets, safetensors shards by their index.
    fn folder(&mut self, root: &Path) -> io::Result<()> {
        let files = walk_tree(root)?;
        // Files by their folder (`""` or `sub/`), as (name, path, size).
        let mut by_dir: BTreeMap<String, Vec<(String, std::path::PathBuf, u64)>> = BTreeMap::new();
        for f in files {
            let (dir, name) = match f.rel.rsplit_once('/') {
                Some((d, n)) => (format!("{d}/"), n.to_owned()),
                None => (String::new(), f.rel.clone()),
            };
            by_dir
                .entry(dir)
                .or_default()
                .push((name, f.path, f.meta.len()));
        }
        if let Some(files) = by_dir.get("")
            && let Some((_, path, len)) = files.iter().find(|(n, _, _)| n == "config.json")
            && *len <= hf_config::MAX_CONFIG
        {
            self.config = hf_config::read_config(&std::fs::read(path)?);
        }
        for (dir, files) in &by_dir {
            self.folder_files(dir, files)?;
        }
        Ok(())
    }

    fn folder_files(
        &mut self,
        dir: &str,
        files: &[(String, std::path::PathBuf, u64)],
    ) -> io::Result<()> {
        // GGUF: split sets by (prefix, count), and single files.
        let mut sets: BTreeMap<(&str, u32), Vec<(String, std::path::PathBuf)>> = BTreeMap::new();
        for (name, path, len) in files {
            if !has_extension(name, "gguf") {
                continue;
            }
            let shown = format!("{dir}{name}");
            match gguf::split_name(name) {
                Some((prefix, _, count)) => sets
                    .entry((prefix, count))
                    .or_default()
                    .push((shown, path.clone())),
                None => {
                    if let Read1::Gguf(h) = self.file(path, &shown, *len)? {
                        self.gguf_single(&shown, h);
                    }
                }
            }
        }
        for ((prefix, count), parts) in &sets {
            self.gguf_split_set(prefix, *count, parts, dir)?;
        }
        // Safetensors: read every file; count the shards the index names, or, without an
        // index, every file.
        let mut headers: BTreeMap<&str, Option<SafetensorsHeader>> = BTreeMap::new();
        for (name, path, len) in files {
            if has_extension(name, "safetensors") {
                let read = match self.file(path, &format!("{dir}{name}"), *len)? {
                    Read1::Safetensors(h) => Some(h),
                    _ => None,
                };
                headers.insert(name.as_str(), read);
            }
        }
        let index = files
            .iter()
            .find(|(n, _, _)| n == "model.safetensors.index.json")
            .or_else(|| {
                files
                    .iter()
                    .find(|(n, _, _)| n.ends_with(".safetensors.index.json"))
            });
        let counted: Vec<&str> = match index {
            Some((name, path, len)) => self.index(dir, name, path, *len, &headers)?,
            None => headers.keys().copied().collect(),
        };
        for name in counted {
            if let Some(Some(h)) = headers.get(name) {
                self.count_safetensors(h);
            }
        }
        Ok(())
    }

    /// Checks a safetensors index against the shards found beside it; returns the shards it
    /// names that are there.
    fn index<'a>(
        &mut self,
        dir: &str,
        name: &str,
        path: &Path,
        len: u64,
        headers: &BTreeMap<&'a str, Option<SafetensorsHeader>>,
    ) -> io::Result<Vec<&'a str>> {
        let shown = printable(&format!("{dir}{name}"));
        if len > hf_config::MAX_INDEX {
            self.warn(format!(
                "`{shown}` is larger than {} MiB and was not read",
                hf_config::MAX_INDEX >> 20
            ));
            return Ok(Vec::new());
        }
        let bytes = std::fs::read(path)?;
        let weight_map = match hf_config::read_index(&bytes) {
            Ok(map) => map,
            Err(e) if bytes.trim_ascii_start().starts_with(b"{") => {
                self.checked += 1;
                self.problem(format!("`{shown}` {e}"));
                return Ok(Vec::new());
            }
            Err(_) => {
                self.warn(format!(
                    "`{shown}` is named like a safetensors index but is not one: it {}",
                    looks_like(&bytes[..bytes.len().min(HEAD)])
                ));
                return Ok(Vec::new());
            }
        };
        self.checked += 1;
        let shards: BTreeSet<&str> = weight_map.values().map(String::as_str).collect();
        let mut present: Vec<&'a str> = Vec::new();
        for shard in &shards {
            if SafeRelPath::file_name(*shard).is_err() {
                self.problem(format!(
                    "`{shown}` names the shard `{}`, which is not a file name beside it",
                    printable(shard)
                ));
            } else if let Some((&key, _)) = headers.get_key_value::<str>(shard) {
                present.push(key);
            } else {
                self.missing(format!(
                    "`{shown}` names the shard `{dir}{}`, which is not there",
                    printable(shard)
                ));
            }
        }
        let mut misplaced = 0;
        for (tensor, shard) in &weight_map {
            if let Some(Some(h)) = headers.get(shard.as_str())
                && !h.names.contains(tensor)
            {
                misplaced += 1;
                if misplaced <= 3 {
                    self.problem(format!(
                        "`{shown}` puts tensor `{}` in `{dir}{}`, which does not hold it",
                        printable(tensor),
                        printable(shard)
                    ));
                }
            }
        }
        // A file named like a shard of the same set that the index does not name.
        let sets: BTreeSet<(&str, &str)> = shards.iter().filter_map(|s| shard_set(s)).collect();
        for file in headers.keys() {
            if !shards.contains(file) && shard_set(file).is_some_and(|s| sets.contains(&s)) {
                self.problem(format!(
                    "`{dir}{}` is an extra shard: `{shown}` does not name it",
                    printable(file)
                ));
            }
        }
        if self.st_split.is_none() {
            self.st_split = Some(Split {
                count: u32::try_from(shards.len()).unwrap_or(u32::MAX),
                files: shards.iter().map(|s| format!("{dir}{s}")).collect(),
            });
        }
        Ok(present)
    }

    fn finish(self) -> ModelInfo {
        let has_gguf = !self.gguf.is_empty();
        let has_st = !self.st_dtypes.is_empty() || self.st_split.is_some();
        let format = match (has_gguf, has_st) {
            (true, true) if self.config.is_some() => ModelFormat::Safetensors,
            (true, _) => ModelFormat::Gguf,
            (false, true) => ModelFormat::Safetensors,
            (false, false) => ModelFormat::Unknown,
        };
        let structure = Structure {
            outcome: if !self.problems.is_empty() {
                Outcome::Fail
            } else if self.checked > 0 {
                Outcome::Pass
            } else {
                Outcome::Warn
            },
            problems: self.problems,
        };
        let config = self.config.unwrap_or_default();
        let mut info = ModelInfo {
            format,
            architecture: config.architecture,
            context_length: config.context_length,
            quantization: config.quantization.or(config.dtype),
            structure,
            warnings: self.warnings,
            ..ModelInfo::default()
        };
        match format {
            ModelFormat::Gguf => {
                // Several models in one folder (one per quantisation, say): what they agree on.
                let agreed = |f: &dyn Fn(&GgufModel) -> Option<String>| {
                    let first = f(&self.gguf[0]);
                    self.gguf[1..]
                        .iter()
                        .all(|m| f(m) == first)
                        .then_some(first)
                        .flatten()
                };
                info.architecture = agreed(&|m| m.first.architecture.clone());
                info.name = agreed(&|m| m.first.name.clone());
                info.quantization = agreed(&|m| m.first.quantization());
                info.context_length = agreed(&|m| m.first.context_length.map(|n| n.to_string()))
                    .and_then(|s| s.parse().ok());
                info.parameters =
                    agreed(&|m| Some(m.parameters.to_string())).and_then(|s| s.parse().ok());
                if let [one] = self.gguf.as_slice() {
                    info.tensor_count = Some(one.tensor_count);
                    info.dtypes.clone_from(&one.dtypes);
                    info.split.clone_from(&one.split);
                }
            }
            ModelFormat::Safetensors => {
                info.parameters = Some(self.st_parameters);
                info.tensor_count = Some(self.st_tensors);
                let dominant = self
                    .st_elements
                    .iter()
                    .max_by_key(|(name, n)| (**n, std::cmp::Reverse(name.as_str())))
                    .map(|(name, _)| name.clone());
                info.quantization = info.quantization.or(dominant);
                info.dtypes = self.st_dtypes;
                info.split = self.st_split;
            }
            ModelFormat::Unknown => {}
        }
        info
    }
}

/// Whether `name` ends with `.<ext>`, in any case.
fn has_extension(name: &str, ext: &str) -> bool {
    name.rsplit_once('.')
        .is_some_and(|(_, e)| e.eq_ignore_ascii_case(ext))
}

/// Whether the first bytes claim safetensors: a header length that fits, then `{`.
fn claims_safetensors(head: &[u8], len: u64) -> bool {
    head.len() > 8
        && head[8] == b'{'
        && u64::from_le_bytes(head[..8].try_into().unwrap_or_default())
            .checked_add(8)
            .is_some_and(|end| end <= len)
}

/// The set a shard file name belongs to: `model-00001-of-00002.safetensors` → (`model`,
/// `00002`).
fn shard_set(name: &str) -> Option<(&str, &str)> {
    let stem = name.strip_suffix(".safetensors")?;
    let (rest, count) = stem.rsplit_once("-of-")?;
    let (prefix, no) = rest.rsplit_once('-')?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    (digits(no) && digits(count)).then_some((prefix, count))
}

#[cfg(test)]
mod tests {
    use test_support::model_files::{gguf_splits, sharded_safetensors, tiny_llama};

    use super::*;

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    fn write(dir: &Path, files: &[(String, Vec<u8>)]) -> io::Result<()> {
        for (rel, bytes) in files {
            let path = dir.join(rel);
            if let Some(p) = path.parent() {
                std::fs::create_dir_all(p)?;
            }
            std::fs::write(path, bytes)?;
        }
        Ok(())
    }

    #[test]
    fn a_gguf_file_is_described() -> TestResult {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("tiny.gguf");
        std::fs::write(&path, tiny_llama().bytes())?;
        let info = inspect(&path)?;
        assert_eq!(info.format, ModelFormat::Gguf);
        assert_eq!(info.architecture.as_deref(), Some("llama"));
        assert_eq!(info.name.as_deref(), Some("Tiny Llama"));
        assert_eq!(info.quantization.as_deref(), Some("Q8_0"));
        assert_eq!(info.context_length, Some(2048));
        assert_eq!(info.tensor_count, Some(4));
        assert_eq!(info.parameters, Some(12_544));
        assert_eq!(info.structure.outcome, Outcome::Pass);
        assert!(info.warnings.is_empty(), "{:?}", info.warnings);
        Ok(())
    }

    #[test]
    fn html_named_gguf_is_a_warning_not_a_failure() -> TestResult {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("model.gguf");
        std::fs::write(
            &path,
            "<!DOCTYPE html>\n<html><body>Sign in</body></html>\n",
        )?;
        let info = inspect(&path)?;
        assert_eq!(info.format, ModelFormat::Unknown);
        assert_eq!(info.structure.outcome, Outcome::Warn);
        assert_eq!(
            info.warnings,
            [
                "`model.gguf` is named like a GGUF file but is not one: it looks like HTML (a web page saved under the model's name?)"
            ]
        );
        Ok(())
    }

    #[test]
    fn a_split_set_is_read_as_one_model_and_a_missing_part_fails_it() -> TestResult {
        let dir = tempfile::tempdir()?;
        let parts = gguf_splits("m", 3);
        write(dir.path(), &parts)?;
        let first = dir.path().join(&parts[0].0);
        let info = inspect(&first)?;
        assert_eq!(
            info.structure.outcome,
            Outcome::Pass,
            "{:?}",
            info.structure
        );
        assert_eq!(info.architecture.as_deref(), Some("llama"));
        assert_eq!(info.tensor_count, Some(3));
        assert_eq!(info.parameters, Some(3 * 256));
        let split = info.split.ok_or("no split")?;
        assert_eq!(split.count, 3);
        assert_eq!(split.files[2], "m-00003-of-00003.gguf");
        assert_eq!(inspect(dir.path())?.split.map(|s| s.count), Some(3));

        std::fs::remove_file(dir.path().join(&parts[1].0))?;
        std::fs::write(dir.path().join("m-00004-of-00003.gguf"), &parts[2].1)?;
        let info = inspect(&first)?;
        assert_eq!(info.structure.outcome, Outcome::Fail);
        assert!(
            info.structure.problems[0].starts_with("`m-00002-of-00003.gguf` is missing"),
            "{:?}",
            info.structure.problems
        );
        assert!(
            info.structure.problems[1].contains("`m-00004-of-00003.gguf` is an extra part"),
            "{:?}",
            info.structure.problems
        );
        Ok(())
    }

    #[test]
    fn a_sharded_safetensors_folder_is_described_and_checked() -> TestResult {
        let dir = tempfile::tempdir()?;
        let files = sharded_safetensors();
        write(dir.path(), &files)?;
        let info = inspect(dir.path())?;
        assert_eq!(
            info.structure.outcome,
            Outcome::Pass,
            "{:?}",
            info.structure
        );
        assert_eq!(info.format, ModelFormat::Safetensors);
        assert_eq!(info.architecture.as_deref(), Some("LlamaForCausalLM"));
        assert_eq!(info.quantization.as_deref(), Some("BF16"));
        assert_eq!(info.context_length, Some(4096));
        assert_eq!(info.tensor_count, Some(4));
        assert_eq!(info.parameters, Some(512 + 256 + 512 + 16));
        assert_eq!(info.dtypes.get("BF16"), Some(&3));
        assert_eq!(info.split.as_ref().map(|s| s.count), Some(2));

        // An extra shard of the same set, then a missing one.
        std::fs::write(
            dir.path().join("model-00003-of-00002.safetensors"),
            &files[3].1,
        )?;
        let info = inspect(dir.path())?;
        assert_eq!(
            info.structure.problems,
            [
                "`model-00003-of-00002.safetensors` is an extra shard: `model.safetensors.index.json` does not name it"
            ]
        );
        std::fs::remove_file(dir.path().join("model-00003-of-00002.safetensors"))?;
        std::fs::remove_file(dir.path().join("model-00002-of-00002.safetensors"))?;
        let info = inspect(dir.path())?;
        assert_eq!(info.structure.outcome, Outcome::Fail);
        assert_eq!(
            info.structure.problems,
            [
                "`model.safetensors.index.json` names the shard `model-00002-of-00002.safetensors`, which is not there"
            ]
        );
        Ok(())
    }

    #[test]
    fn an_index_that_misplaces_a_tensor_or_names_a_path_outside_fails() -> TestResult {
        let dir = tempfile::tempdir()?;
        let mut files = sharded_safetensors();
        files[1].1 = serde_json::to_vec(&serde_json::json!({"weight_map": {
            "lm_head.weight": "model-00001-of-00002.safetensors",
            // The second shard goes unnamed: it is an extra one.
            "x": "../../etc/passwd",
        }}))?;
        write(dir.path(), &files)?;
        let problems = inspect(dir.path())?.structure.problems;
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert!(
            problems[0].contains("`../../etc/passwd`, which is not a file name"),
            "{problems:?}"
        );
        assert!(
            problems[1]
                .contains("puts tensor `lm_head.weight` in `model-00001-of-00002.safetensors`"),
            "{problems:?}"
        );
        Ok(())
    }
}
