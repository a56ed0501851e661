//! Git repositories that [`crate::Olah`] serves as Hugging Face model repos.
//!
//! A repo lives at `<mirrors>/models/<org>/<name>`: a plain (non-bare) git repo on branch
//! `main`, with git-lfs tracking `*.gguf` and `*.safetensors`, so those files' `etag` is
//! their sha256, as on the real Hub; other files' `etag` is their git blob sha1.
//! Commits have fixed authors and dates, so the same content gives the same commit shas.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::path::{Component, Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

use sha2::{Digest, Sha256};

/// The patterns git-lfs tracks in every repo (the real Hub tracks these, and more).
pub const LFS_PATTERNS: [&str; 2] = ["*.gguf", "*.safetensors"];

/// The id of [`HfRepoBuilder::tiny_gguf`].
pub const TINY_GGUF: &str = "test-org/tiny-gguf";
/// The id of [`HfRepoBuilder::tiny_llama`].
pub const TINY_LLAMA: &str = "test-org/tiny-llama";

/// Default size of a canned fixture's weight file (bigger quantisations are multiples of it).
pub const DEFAULT_WEIGHTS_SIZE: usize = 8 * 1024;

/// `len` pseudo-random bytes, the same for the same `seed` and `len` on every run.
pub fn pseudo_random_bytes(seed: &str, len: usize) -> Vec<u8> {
    // FNV-1a of the seed, then splitmix64.
    let mut state = seed.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        out.extend_from_slice(&z.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Lower-case hex sha256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// Lower-case hex of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// A GGUF file of `len` bytes (at least 24): a valid header (version 3, no tensors, no
/// metadata) followed by pseudo-random bytes.
pub fn fake_gguf(seed: &str, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len.max(24));
    out.extend_from_slice(b"GGUF");
    out.extend_from_slice(&3u32.to_le_bytes());
    out.extend_from_slice(&0u64.to_le_bytes());
    out.extend_from_slice(&0u64.to_le_bytes());
    let rest = len.saturating_sub(out.len());
    out.extend_from_slice(&pseudo_random_bytes(seed, rest));
    out
}

/// A valid safetensors file holding one `U8` tensor `name` of `data_len` pseudo-random bytes.
pub fn fake_safetensors(seed: &str, name: &str, data_len: usize) -> Vec<u8> {
    let mut header = format!(
        r#"{{"{name}":{{"dtype":"U8","shape":[{data_len}],"data_offsets":[0,{data_len}]}}}}"#
    );
    while header.len() % 8 != 0 {
        header.push(' ');
    }
    let mut out = Vec::with_capacity(8 + header.len() + data_len);
    out.extend_from_slice(&(header.len() as u64).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(&pseudo_random_bytes(seed, data_len));
    out
}

/// The files of a repo to create; see [`HfRepoBuilder::create`].
#[derive(Debug, Clone)]
pub struct HfRepoBuilder {
    id: String,
    files: BTreeMap<String, Vec<u8>>,
    message: String,
}

impl HfRepoBuilder {
    /// An empty repo `org/name`.
    pub fn new(repo_id: &str) -> Self {
        split_id(repo_id);
        HfRepoBuilder {
            id: repo_id.to_owned(),
            files: BTreeMap::new(),
            message: "Initial commit".to_owned(),
        }
    }

    /// [`TINY_GGUF`] with weights of the default size: `model.Q4_K_M.gguf` (8 KiB),
    /// `model.Q8_0.gguf` (16 KiB), both LFS, and `README.md`.
    pub fn tiny_gguf() -> Self {
        Self::tiny_gguf_sized(DEFAULT_WEIGHTS_SIZE)
    }

    /// [`TINY_GGUF`] with `model.Q4_K_M.gguf` of `weights` bytes and `model.Q8_0.gguf` of
    /// twice that.
    pub fn tiny_gguf_sized(weights: usize) -> Self {
        Self::new(TINY_GGUF)
            .file(
                "README.md",
                "---\nlicense: mit\ntags:\n- gguf\n---\n# tiny-gguf\n\nA test fixture.\n",
            )
            .file(
                "model.Q4_K_M.gguf",
                fake_gguf("tiny-gguf/model.Q4_K_M.gguf", weights),
            )
            .file(
                "model.Q8_0.gguf",
                fake_gguf("tiny-gguf/model.Q8_0.gguf", weights * 2),
            )
    }

    /// [`TINY_LLAMA`] with shards of the default size: a Transformers layout.
    ///
    /// `config.json`, `generation_config.json`, `tokenizer.json`, `tokenizer_config.json`,
    /// `model-00001-of-00002.safetensors`, `model-00002-of-00002.safetensors` (LFS, valid
    /// safetensors), `model.safetensors.index.json`, `README.md`, and two subfolders:
    /// `original/params.json` and `onnx/model.onnx` (binary, not LFS).
    pub fn tiny_llama() -> Self {
        Self::tiny_llama_sized(DEFAULT_WEIGHTS_SIZE)
    }

    /// [`TINY_LLAMA`] whose two shards each hold a tensor of `shard` bytes.
    pub fn tiny_llama_sized(shard: usize) -> Self {
        let vocab: Vec<String> = (0..200).map(|i| format!(r#""tok{i}":{i}"#)).collect();
        let tokenizer = format!(
            r#"{{"version":"1.0","truncation":null,"padding":null,"added_tokens":[],"model":{{"type":"BPE","vocab":{{{}}},"merges":[]}}}}"#,
            vocab.join(",")
        );
        let index = format!(
            r#"{{
  "metadata": {{"total_size": {total}}},
  "weight_map": {{
    "lm_head.weight": "model-00002-of-00002.safetensors",
    "model.embed_tokens.weight": "model-00001-of-00002.safetensors"
  }}
}}
"#,
            total = shard * 2
        );
        Self::new(TINY_LLAMA)
            .file(
                "README.md",
                "---\nlicense: apache-2.0\nlibrary_name: transformers\n---\n# tiny-llama\n\nA test fixture.\n",
            )
            .file(
                "config.json",
                r#"{
  "architectures": ["LlamaForCausalLM"],
  "hidden_size": 64,
  "intermediate_size": 128,
  "model_type": "llama",
  "num_attention_heads": 4,
  "num_hidden_layers": 2,
  "torch_dtype": "bfloat16",
  "vocab_size": 200
}
"#,
            )
            .file(
                "generation_config.json",
                r#"{"bos_token_id": 1, "eos_token_id": 2, "do_sample": false}
"#,
            )
            .file("tokenizer.json", tokenizer)
            .file(
                "tokenizer_config.json",
                r#"{"bos_token": "<s>", "eos_token": "</s>", "model_max_length": 2048, "tokenizer_class": "LlamaTokenizerFast"}
"#,
            )
            .file(
                "model-00001-of-00002.safetensors",
                fake_safetensors("tiny-llama/shard1", "model.embed_tokens.weight", shard),
            )
            .file(
                "model-00002-of-00002.safetensors",
                fake_safetensors("tiny-llama/shard2", "lm_head.weight", shard),
            )
            .file("model.safetensors.index.json", index)
            .file(
                "original/params.json",
                r#"{"dim": 64, "n_layers": 2, "n_heads": 4, "vocab_size": 200}
"#,
            )
            .file(
                "onnx/model.onnx",
                pseudo_random_bytes("tiny-llama/onnx/model.onnx", 3000),
            )
    }

    /// Renames the repo (`org/name`): for a canned fixture in a shared server, say.
    #[must_use]
    pub fn id(mut self, repo_id: &str) -> Self {
        split_id(repo_id);
        repo_id.clone_into(&mut self.id);
        self
    }

    /// Adds (or replaces) a file; `path` may have subfolders (`a/b/c.json`).
    #[must_use]
    pub fn file(mut self, path: &str, bytes: impl Into<Vec<u8>>) -> Self {
        check_path(path);
        self.files.insert(path.to_owned(), bytes.into());
        self
    }

    /// Adds (or replaces) a file of `len` pseudo-random bytes, seeded by the repo id and path.
    #[must_use]
    pub fn random_file(self, path: &str, len: usize) -> Self {
        let bytes = pseudo_random_bytes(&format!("{}/{path}", self.id), len);
        self.file(path, bytes)
    }

    /// Drops a file the builder had.
    #[must_use]
    pub fn without_file(mut self, path: &str) -> Self {
        self.files.remove(path);
        self
    }

    /// The first commit's message.
    #[must_use]
    pub fn message(mut self, message: &str) -> Self {
        message.clone_into(&mut self.message);
        self
    }

    /// The files so far, path → bytes.
    pub fn files(&self) -> &BTreeMap<String, Vec<u8>> {
        &self.files
    }

    /// Creates the git repo at `<mirrors_dir>/models/<org>/<name>` and commits the files to
    /// `main`. Panics if the repo exists already.
    pub fn create(self, mirrors_dir: &Path) -> HfRepo {
        let (org, name) = split_id(&self.id);
        let dir = mirrors_dir.join("models").join(org).join(name);
        assert!(
            !dir.exists(),
            "a repo already exists at {}: pick another id",
            dir.display()
        );
        fs::create_dir_all(&dir).expect("creating the repo directory");
        let repo = HfRepo { id: self.id, dir };
        repo.git(&["init", "--quiet", "--initial-branch=main"]);
        repo.git(&["lfs", "install", "--local"]);
        let mut attributes = String::new();
        for pattern in LFS_PATTERNS {
            let _ = writeln!(attributes, "{pattern} filter=lfs diff=lfs merge=lfs -text");
        }
        fs::write(repo.dir.join(".gitattributes"), attributes).expect("writing .gitattributes");
        let files: Vec<(&str, &[u8])> = self
            .files
            .iter()
            .map(|(p, b)| (p.as_str(), b.as_slice()))
            .collect();
        repo.commit_files(&self.message, &files);
        repo
    }
}

/// `org` and `name` of a repo id `org/name`, each of `[A-Za-z0-9-_.]`; panics otherwise.
pub(crate) fn split_id(repo_id: &str) -> (&str, &str) {
    match repo_id.split_once('/') {
        Some((org, name)) if safe_name(org) && safe_name(name) => (org, name),
        _ => panic!("a repo id is `org/name` of [A-Za-z0-9-_.], not {repo_id:?}"),
    }
}

/// Whether `s` is a name of `[A-Za-z0-9-_.]`, neither empty nor `.` nor `..`.
pub(crate) fn safe_name(s: &str) -> bool {
    !s.is_empty()
        && s != "."
        && s != ".."
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
}

fn check_path(path: &str) {
    let p = Path::new(path);
    assert!(
        !path.is_empty()
            && p.components().all(|c| matches!(c, Component::Normal(_)))
            && !p.starts_with(".git"),
        "a repo file path is relative, without `..` or `.git`: {path:?}"
    );
}

/// A fixture repo on disk: a git repo on `main` at `<mirrors>/models/<org>/<name>`, git-lfs
/// tracking [`LFS_PATTERNS`].
#[derive(Debug, Clone)]
pub struct HfRepo {
    id: String,
    dir: PathBuf,
}

/// Fixed identity and clock for commits; nothing from the user's or system git config.
fn git_command(dir: &Path) -> Command {
    let mut cmd = Command::new(git_binary());
    cmd.current_dir(dir)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_AUTHOR_NAME", "Test Fixture")
        .env("GIT_AUTHOR_EMAIL", "fixture@example.invalid")
        .env("GIT_COMMITTER_NAME", "Test Fixture")
        .env("GIT_COMMITTER_EMAIL", "fixture@example.invalid")
        .env("GIT_TERMINAL_PROMPT", "0")
        .env_remove("GIT_DIR")
        .env_remove("GIT_WORK_TREE")
        .env_remove("GIT_INDEX_FILE")
        .stdin(Stdio::null());
    cmd
}

fn git_binary() -> &'static Path {
    static GIT: OnceLock<PathBuf> = OnceLock::new();
    GIT.get_or_init(|| {
        let git = crate::process::find_in_path("git").unwrap_or_else(|| {
            panic!(
                "git is not installed: the Hugging Face test repos are git repos; run `bash scripts/install-test-deps.sh` (it runs `apt-get install git git-lfs`)"
            )
        });
        let lfs = Command::new(&git)
            .args(["lfs", "version"])
            .stdin(Stdio::null())
            .output();
        assert!(
            lfs.is_ok_and(|o| o.status.success()),
            "git-lfs is not installed: the Hugging Face test repos keep weights in git-lfs; run `bash scripts/install-test-deps.sh` (it runs `apt-get install git-lfs`)"
        );
        git
    })
}

impl HfRepo {
    /// Opens a repo created earlier at `<mirrors_dir>/models/<org>/<name>`.
    pub fn open(mirrors_dir: &Path, repo_id: &str) -> Self {
        let (org, name) = split_id(repo_id);
        let dir = mirrors_dir.join("models").join(org).join(name);
        assert!(dir.join(".git").is_dir(), "no repo at {}", dir.display());
        HfRepo {
            id: repo_id.to_owned(),
            dir,
        }
    }

    fn git_output(&self, args: &[&str], dates_from_history: bool) -> Output {
        let mut cmd = git_command(&self.dir);
        if dates_from_history {
            // One minute per commit from a fixed start, so shas are reproducible.
            let n = self.commit_count();
            let date = format!("@{} +0000", 1_700_000_000 + 60 * n);
            cmd.env("GIT_AUTHOR_DATE", &date)
                .env("GIT_COMMITTER_DATE", &date);
        }
        let out = cmd.args(args).output().expect("running git");
        assert!(
            out.status.success(),
            "`git {}` in {} failed ({}):\n{}{}",
            args.join(" "),
            self.dir.display(),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    fn git(&self, args: &[&str]) -> String {
        let out = self.git_output(args, false);
        String::from_utf8(out.stdout)
            .expect("git printed UTF-8")
            .trim_end()
            .to_owned()
    }

    fn commit_count(&self) -> u64 {
        let out = git_command(&self.dir)
            .args(["rev-list", "--count", "HEAD"])
            .output()
            .expect("running git");
        if out.status.success() {
            String::from_utf8_lossy(&out.stdout)
                .trim()
                .parse()
                .unwrap_or(0)
        } else {
            0 // no commit yet
        }
    }

    /// `org/name`.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The git work tree.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The commit `main` points at (40 hex digits).
    pub fn head(&self) -> String {
        self.rev_parse("main")
    }

    /// The commit a branch, tag or (short) sha names.
    pub fn rev_parse(&self, rev: &str) -> String {
        self.git(&["rev-parse", "--verify", &format!("{rev}^{{commit}}")])
    }

    /// Writes (adds or replaces) `files` and commits them to `main`; returns the new commit.
    pub fn commit_files(&self, message: &str, files: &[(&str, &[u8])]) -> String {
        for (path, bytes) in files {
            check_path(path);
            let full = self.dir.join(path);
            if let Some(parent) = full.parent() {
                fs::create_dir_all(parent).expect("creating a folder in the repo");
            }
            fs::write(&full, bytes).expect("writing a repo file");
        }
        self.commit_all(message)
    }

    /// Deletes `paths` and commits that to `main`; returns the new commit.
    pub fn remove_files(&self, message: &str, paths: &[&str]) -> String {
        for path in paths {
            check_path(path);
            fs::remove_file(self.dir.join(path)).expect("removing a repo file");
        }
        self.commit_all(message)
    }

    fn commit_all(&self, message: &str) -> String {
        self.git(&["add", "--all"]);
        self.git_output(
            &[
                "commit",
                "--quiet",
                "--allow-empty",
                "--no-verify",
                "-m",
                message,
            ],
            true,
        );
        self.head()
    }

    /// Creates a lightweight tag at `main`; returns the commit it names.
    pub fn tag(&self, name: &str) -> String {
        self.git(&["tag", name, "main"]);
        self.rev_parse(name)
    }

    /// Creates (or moves) a branch to `rev`; returns the commit it names.
    pub fn branch(&self, name: &str, rev: &str) -> String {
        self.git(&["branch", "--force", name, rev]);
        self.rev_parse(name)
    }

    /// Every file at `rev`, sorted, `.gitattributes` included (the Hub lists it too).
    pub fn files(&self, rev: &str) -> Vec<String> {
        let mut files: Vec<String> = self
            .git(&["ls-tree", "-r", "--name-only", "-z", rev])
            .split('\0')
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect();
        files.sort();
        files
    }

    /// Every file at `rev` with its content (LFS files' real content).
    pub fn contents(&self, rev: &str) -> BTreeMap<String, Vec<u8>> {
        self.files(rev)
            .into_iter()
            .map(|f| {
                let bytes = self.bytes(rev, &f);
                (f, bytes)
            })
            .collect()
    }

    fn blob(&self, rev: &str, path: &str) -> Vec<u8> {
        self.git_output(&["cat-file", "blob", &format!("{rev}:{path}")], false)
            .stdout
    }

    /// The sha256 and size of `path` at `rev` if git-lfs stores it.
    pub fn lfs_pointer(&self, rev: &str, path: &str) -> Option<(String, u64)> {
        parse_lfs_pointer(&self.blob(rev, path))
    }

    /// Whether git-lfs stores `path` at `rev`.
    pub fn is_lfs(&self, rev: &str, path: &str) -> bool {
        self.lfs_pointer(rev, path).is_some()
    }

    /// The content of `path` at `rev` (an LFS file's real content, not its pointer).
    pub fn bytes(&self, rev: &str, path: &str) -> Vec<u8> {
        match self.lfs_pointer(rev, path) {
            Some((oid, _)) => {
                let object = self
                    .dir
                    .join(".git/lfs/objects")
                    .join(&oid[..2])
                    .join(&oid[2..4])
                    .join(&oid);
                fs::read(&object)
                    .unwrap_or_else(|e| panic!("reading LFS object {}: {e}", object.display()))
            }
            None => self.blob(rev, path),
        }
    }

    /// The size in bytes of `path` at `rev` (an LFS file's real size).
    pub fn size(&self, rev: &str, path: &str) -> u64 {
        match self.lfs_pointer(rev, path) {
            Some((_, size)) => size,
            None => self.blob(rev, path).len() as u64,
        }
    }

    /// Lower-case hex sha256 of `path`'s content at `rev`.
    pub fn sha256(&self, rev: &str, path: &str) -> String {
        match self.lfs_pointer(rev, path) {
            Some((oid, _)) => oid,
            None => sha256_hex(&self.blob(rev, path)),
        }
    }

    /// The `etag` olah (and the Hub) gives `path` at `rev`, unquoted: the sha256 of an LFS
    /// file, the git blob sha1 of any other.
    pub fn etag(&self, rev: &str, path: &str) -> String {
        match self.lfs_pointer(rev, path) {
            Some((oid, _)) => oid,
            None => self.git(&["rev-parse", &format!("{rev}:{path}")]),
        }
    }
}

/// `(sha256, size)` of a git-lfs pointer file.
fn parse_lfs_pointer(blob: &[u8]) -> Option<(String, u64)> {
    let text = std::str::from_utf8(blob).ok()?;
    let mut lines = text.lines();
    if !lines
        .next()?
        .starts_with("version https://git-lfs.github.com/spec/")
    {
        return None;
    }
    let mut oid = None;
    let mut size = None;
    for line in lines {
        if let Some(o) = line.strip_prefix("oid sha256:") {
            oid = Some(o.to_owned());
        } else if let Some(s) = line.strip_prefix("size ") {
            size = s.parse().ok();
        }
    }
    Some((oid?, size?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pseudo_random_bytes_are_deterministic() {
        let a = pseudo_random_bytes("x", 1000);
        assert_eq!(a, pseudo_random_bytes("x", 1000));
        assert_ne!(a, pseudo_random_bytes("y", 1000));
        assert_eq!(&pseudo_random_bytes("x", 10)[..], &a[..10]);
    }

    #[test]
    fn fake_files_have_valid_headers() {
        let g = fake_gguf("g", 100);
        assert_eq!(g.len(), 100);
        assert_eq!(&g[..4], b"GGUF");
        let s = fake_safetensors("s", "w", 64);
        let n = usize::try_from(u64::from_le_bytes(s[..8].try_into().unwrap())).unwrap();
        assert_eq!(n % 8, 0);
        assert_eq!(s.len(), 8 + n + 64);
        let header = std::str::from_utf8(&s[8..8 + n]).unwrap();
        assert!(
            header.starts_with(r#"{"w":{"dtype":"U8","shape":[64]"#),
            "{header}"
        );
    }

    #[test]
    fn repos_track_weights_in_lfs_and_move_main() {
        let mirrors = tempfile::tempdir().unwrap();
        let repo = HfRepoBuilder::tiny_gguf().create(mirrors.path());
        assert_eq!(
            repo.dir(),
            mirrors.path().join("models/test-org/tiny-gguf").as_path()
        );
        let first = repo.head();
        assert_eq!(first.len(), 40);
        assert_eq!(
            repo.files("main"),
            [
                ".gitattributes",
                "README.md",
                "model.Q4_K_M.gguf",
                "model.Q8_0.gguf"
            ]
        );
        let q4 = fake_gguf("tiny-gguf/model.Q4_K_M.gguf", DEFAULT_WEIGHTS_SIZE);
        assert!(repo.is_lfs("main", "model.Q4_K_M.gguf"));
        assert!(!repo.is_lfs("main", "README.md"));
        assert_eq!(repo.bytes("main", "model.Q4_K_M.gguf"), q4);
        assert_eq!(repo.etag("main", "model.Q4_K_M.gguf"), sha256_hex(&q4));
        assert_eq!(
            repo.size("main", "model.Q8_0.gguf"),
            2 * DEFAULT_WEIGHTS_SIZE as u64
        );
        assert_eq!(repo.etag("main", "README.md").len(), 40);

        assert_eq!(repo.tag("v1"), first);
        let second = repo.commit_files("new weights", &[("model.Q4_K_M.gguf", b"GGUF new")]);
        assert_ne!(second, first);
        assert_eq!(repo.head(), second);
        assert_eq!(repo.rev_parse("v1"), first);
        assert_eq!(repo.rev_parse(&first[..7]), first);
        assert_eq!(repo.bytes("v1", "model.Q4_K_M.gguf"), q4);
        assert_eq!(repo.bytes("main", "model.Q4_K_M.gguf"), b"GGUF new");
        let third = repo.remove_files("drop q8", &["model.Q8_0.gguf"]);
        assert!(!repo.files(&third).contains(&"model.Q8_0.gguf".to_owned()));

        // The same content gives the same commits.
        let again = tempfile::tempdir().unwrap();
        assert_eq!(
            HfRepoBuilder::tiny_gguf().create(again.path()).head(),
            first
        );
    }

    #[test]
    fn tiny_llama_has_subfolders_and_lfs_shards() {
        let mirrors = tempfile::tempdir().unwrap();
        let repo = HfRepoBuilder::tiny_llama().create(mirrors.path());
        let files = repo.files("main");
        for f in [
            "config.json",
            "tokenizer.json",
            "model-00001-of-00002.safetensors",
            "model.safetensors.index.json",
            "original/params.json",
            "onnx/model.onnx",
        ] {
            assert!(files.contains(&f.to_owned()), "{f} missing from {files:?}");
        }
        assert!(repo.is_lfs("main", "model-00002-of-00002.safetensors"));
        assert!(!repo.is_lfs("main", "onnx/model.onnx"));
    }

    #[test]
    #[should_panic(expected = "a repo id is `org/name`")]
    fn bad_ids_are_refused() {
        let _ = HfRepoBuilder::new("../x");
    }
}
