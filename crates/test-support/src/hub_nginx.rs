//! A Hub-shaped server on nginx: Hugging Face model repos generated from directories of files,
//! served as fast as nginx serves files (olah, in Python, caps a client at 20–40 MB/s).
//!
//! Shaped like the real Hub, for each repo `<org>/<name>` and for the revisions `main` and the
//! repo's commit (40 hex digits):
//!
//! - `GET /api/models/<org>/<name>/revision/<rev>`: JSON with `id`, `sha` (the commit),
//!   `siblings: [{rfilename}]` and the other fields `hf download` reads;
//! - `GET /api/models/<org>/<name>/tree/<rev>[/<dir>][?recursive=true]`: a JSON list of
//!   `{type, path, size, oid}` entries, with `lfs: {oid, size, pointerSize}` for LFS files
//!   (`oid` is the git blob id of the file, or of its LFS pointer; a directory's `oid` is a
//!   stand-in, not a real git tree id);
//! - `GET`/`HEAD /<org>/<name>/resolve/<rev>/<path>`: a small file answers `200` with
//!   `ETag: "<git blob id>"` and `X-Repo-Commit`; an LFS file answers `302` to
//!   `http://localhost:<port>/lfs/<sha256>?…` (the same nginx, under another host name, as
//!   the Hub sends clients to its CDN) with `X-Linked-Etag: "<sha256>"`, `X-Linked-Size`,
//!   `X-Repo-Commit` and `ETag: "<git blob id of the pointer>"`;
//! - the blob host (`localhost`) serves `/lfs/<sha256>` with `Range` (206) and nginx's `ETag`,
//!   and nothing else; the Hub host (`127.0.0.1`) serves no blob.
//!
//! A file is stored in LFS when its name matches [`LFS_PATTERNS`], as in [`crate::HfRepo`];
//! a repo without a `.gitattributes` gets the one [`crate::HfRepoBuilder`] writes, so both
//! servers list the same files. Every answer comes from generated config: one `location =`
//! per URL, the headers written into it (and `/api/agent-harnesses`, which `hf` asks for,
//! answers an empty registry). The access log records each request's host, whether it carried
//! `Authorization` (never its value), its range and the body bytes sent.
//!
//! ```text
//! <temp>/nginx.conf, access.log, error.log
//! <temp>/api/<n>/revision.json          repo n's revision answer
//! <temp>/api/<n>/tree-<d>-{top,recursive}.json
//! <temp>/blobs/<sha256> -> <repo dir>/<path>   what the blob host serves (symlinks)
//! <temp>/pointers/                      LFS pointers, written to hash them with git
//! <temp>/repos/<org>/<name>/…           repos given as file contents, written out
//! <temp>/hf-home, scratch/              the `hf` CLI's home, scratch dirs for tests
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use sha2::{Digest as _, Sha256};

use crate::hf_repo::{LFS_PATTERNS, hex, safe_name, split_id};
use crate::process::ServerProcess;

/// The first line of every git-lfs pointer.
const LFS_SPEC: &str = "version https://git-lfs.github.com/spec/v1";

/// One file of a repo the server serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubFile {
    /// The path in the repo (`a/b.json`).
    pub path: String,
    /// The size in bytes of the content.
    pub size: u64,
    /// Lower-case hex sha256 of the content.
    pub sha256: String,
    /// Whether the Hub stores it in LFS (its name matches [`LFS_PATTERNS`]).
    pub lfs: bool,
    /// The git blob id git keeps for it: of the content, or of the LFS pointer.
    pub git_oid: String,
    /// The size of the LFS pointer, for LFS files.
    pub pointer_size: Option<u64>,
    /// Where the content is on disk.
    pub source: PathBuf,
}

impl HubFile {
    /// The `ETag` of `resolve` for a small file, and `X-Linked-Etag` for an LFS one (unquoted):
    /// the sha256 of an LFS file, the git blob id of any other.
    pub fn etag(&self) -> &str {
        if self.lfs {
            &self.sha256
        } else {
            &self.git_oid
        }
    }
}

/// A repo the server serves.
#[derive(Debug, Clone)]
pub struct HubRepo {
    id: String,
    commit: String,
    files: Vec<HubFile>,
}

impl HubRepo {
    /// `org/name`.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The commit every revision resolves to (40 hex digits, made from the files).
    pub fn commit(&self) -> &str {
        &self.commit
    }

    /// Every file, sorted by path, `.gitattributes` included.
    pub fn files(&self) -> &[HubFile] {
        &self.files
    }

    /// The file at `path`; panics if there is none.
    pub fn file(&self, path: &str) -> &HubFile {
        self.files
            .iter()
            .find(|f| f.path == path)
            .unwrap_or_else(|| panic!("no file {path:?} in {}", self.id))
    }

    /// Every file with its content, read from disk.
    pub fn contents(&self) -> BTreeMap<String, Vec<u8>> {
        self.files
            .iter()
            .map(|f| {
                let bytes = fs::read(&f.source)
                    .unwrap_or_else(|e| panic!("reading {}: {e}", f.source.display()));
                (f.path.clone(), bytes)
            })
            .collect()
    }
}

/// One line of the access log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubRequest {
    /// `GET`, `HEAD`, …
    pub method: String,
    /// The host name asked for, without the port: `127.0.0.1` (the Hub) or `localhost` (blobs).
    pub host: String,
    /// The path requested, as sent (without the query).
    pub uri: String,
    /// The query, if any.
    pub args: Option<String>,
    /// The response status.
    pub status: u16,
    /// Body bytes sent.
    pub body_bytes: u64,
    /// Whether the request carried an `Authorization` header.
    pub authorization: bool,
    /// The `Range` header, if any.
    pub range: Option<String>,
}

/// nginx on `127.0.0.1:<free port>` answering as the Hugging Face Hub for the repos it was
/// started with: revision and tree APIs, `resolve`, and a blob host under `localhost`, as the
/// module `hub_nginx` describes. Killed on drop; its temp dir is removed.
#[derive(Debug)]
pub struct HubNginx {
    /// Killed on drop, before the directory goes.
    _process: ServerProcess,
    port: u16,
    dir: tempfile::TempDir,
    repos: Vec<HubRepo>,
}

impl HubNginx {
    /// Serves each `(org/name, dir)`: the repo's files are every regular file under `dir`
    /// (which is read, never written). Hashes every file first: about a second per GB.
    pub fn start(repos: &[(&str, &Path)]) -> Self {
        let dir = tempfile::tempdir().expect("creating a temp dir");
        Self::start_in(dir, repos)
    }

    /// Serves each `(org/name, files)`, path → content: the files are written to the server's
    /// temp dir first. For fixtures such as [`crate::HfRepoBuilder::files`].
    pub fn start_with_files(repos: &[(&str, &BTreeMap<String, Vec<u8>>)]) -> Self {
        let dir = tempfile::tempdir().expect("creating a temp dir");
        let mut dirs = Vec::new();
        for (id, files) in repos {
            let (org, name) = split_id(id);
            let root = dir.path().join("repos").join(org).join(name);
            for (path, bytes) in *files {
                check_path(path);
                let full = root.join(path);
                fs::create_dir_all(full.parent().expect("a file has a parent"))
                    .expect("creating a repo folder");
                fs::write(&full, bytes).expect("writing a repo file");
            }
            fs::create_dir_all(&root).expect("creating a repo dir");
            dirs.push((*id, root));
        }
        let args: Vec<(&str, &Path)> = dirs.iter().map(|(id, d)| (*id, d.as_path())).collect();
        Self::start_in(dir, &args)
    }

    fn start_in(dir: tempfile::TempDir, repos: &[(&str, &Path)]) -> Self {
        let d = dir.path();
        for sub in ["api", "blobs", "hf-home", "scratch", "pointers"] {
            fs::create_dir_all(d.join(sub)).expect("creating the server's dirs");
        }
        crate::nginx::make_temp_dirs(d).expect("creating nginx temp dirs");
        let mut ids = BTreeSet::new();
        let repos: Vec<HubRepo> = repos
            .iter()
            .enumerate()
            .map(|(n, (id, root))| {
                assert!(ids.insert(*id), "repo {id} given twice");
                scan_repo(d, n, id, root)
            })
            .collect();
        for (n, repo) in repos.iter().enumerate() {
            write_api(d, n, repo);
            for f in repo.files.iter().filter(|f| f.lfs) {
                let link = d.join("blobs").join(&f.sha256);
                if !link.exists() {
                    std::os::unix::fs::symlink(&f.source, &link).expect("linking a blob");
                }
            }
        }
        let mut last_error = String::new();
        for _attempt in 0..5 {
            let port = crate::free_port();
            let conf = d.join("nginx.conf");
            fs::write(&conf, config(d, port, &repos)).expect("writing nginx.conf");
            let _ = fs::remove_file(d.join("error.log"));
            let mut child = Command::new(crate::nginx::nginx_binary())
                .arg("-c")
                .arg(&conf)
                .arg("-p")
                .arg(d)
                .arg("-e")
                .arg(d.join("error.log"))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("starting nginx");
            match crate::nginx::wait_ready(&mut child, port, d) {
                Ok(()) => {
                    return HubNginx {
                        _process: ServerProcess(child),
                        port,
                        dir,
                        repos,
                    };
                }
                Err(e) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    assert!(e.contains("in use"), "{e}");
                    last_error = e;
                }
            }
        }
        panic!("{last_error}");
    }

    /// `http://127.0.0.1:<port>`: what `HF_ENDPOINT` is set to.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// `http://localhost:<port>`: where LFS files are redirected to.
    pub fn blob_host(&self) -> String {
        format!("http://localhost:{}", self.port)
    }

    /// `<endpoint>/<path>`.
    pub fn url(&self, path: &str) -> String {
        format!("{}/{}", self.endpoint(), path.trim_start_matches('/'))
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The repos served, in the order given.
    pub fn repos(&self) -> &[HubRepo] {
        &self.repos
    }

    /// The repo `org/name`; panics if it is not served.
    pub fn repo(&self, id: &str) -> &HubRepo {
        self.repos
            .iter()
            .find(|r| r.id == id)
            .unwrap_or_else(|| panic!("repo {id} is not served"))
    }

    /// A scratch directory inside the server's temp dir, removed with it.
    pub fn scratch_dir(&self, name: &str) -> PathBuf {
        let p = self.dir.path().join("scratch").join(name);
        fs::create_dir_all(&p).expect("creating a scratch dir");
        p
    }

    /// The access log so far, oldest first.
    pub fn requests(&self) -> Vec<HubRequest> {
        crate::read_log(&self.dir.path().join("access.log"), parse_line)
    }

    /// The access log once it has at least `n` lines (nginx logs a request just after it
    /// answers, so a client may be a moment ahead), or after 2 s, whatever it has then.
    pub fn requests_of_at_least(&self, n: usize) -> Vec<HubRequest> {
        crate::at_least(n, || self.requests())
    }

    /// Empties the access log.
    pub fn clear_log(&self) {
        crate::truncate_log(&self.dir.path().join("access.log"));
    }

    /// Body bytes sent for requests whose path ends with `suffix` (`""` for all), like
    /// [`crate::Nginx::bytes_sent`]: `/lfs/<sha256>` counts what the blob host sent of a file.
    pub fn bytes_sent(&self, suffix: &str) -> u64 {
        self.requests()
            .iter()
            .filter(|r| r.uri.ends_with(suffix))
            .map(|r| r.body_bytes)
            .sum()
    }

    /// The real `hf` CLI pointed at this server: `HF_ENDPOINT` set, `HF_HOME` in the temp dir,
    /// no token, no update checks or telemetry, nothing sent beyond loopback.
    pub fn hf(&self) -> Command {
        crate::olah::hf_command(&self.endpoint(), &self.dir.path().join("hf-home"))
    }

    /// Runs `hf download <args> --format quiet` against this server and returns the path it
    /// prints. Panics with `hf`'s output if it fails. Pass `--cache-dir` (or `--local-dir`).
    pub fn hf_download(&self, args: &[&str]) -> PathBuf {
        crate::olah::hf_download(self.hf(), args, || {
            format!("nginx's log:\n{:#?}", self.requests())
        })
    }
}

/// Paths go into nginx's config unquoted: only names of `[A-Za-z0-9-_.]` between slashes.
pub(crate) fn check_path(path: &str) {
    assert!(
        path.split('/').all(safe_name) && !path.starts_with(".git/"),
        "a repo file path here is `[A-Za-z0-9-_.]` names joined by `/`, not {path:?}"
    );
}

fn is_lfs(path: &str) -> bool {
    LFS_PATTERNS.iter().any(|p| {
        let ext = p.trim_start_matches('*');
        path.ends_with(ext)
    })
}

/// The `.gitattributes` [`crate::HfRepoBuilder`] writes.
fn gitattributes() -> String {
    LFS_PATTERNS.iter().fold(String::new(), |mut s, p| {
        let _ = writeln!(s, "{p} filter=lfs diff=lfs merge=lfs -text");
        s
    })
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, PathBuf)>) {
    let entries = fs::read_dir(dir).unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()));
    for entry in entries {
        let path = entry.expect("reading a directory entry").path();
        let meta = fs::metadata(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        if meta.is_dir() {
            walk(root, &path, out);
        } else if meta.is_file() {
            let rel = path
                .strip_prefix(root)
                .expect("under the root")
                .to_str()
                .expect("UTF-8 paths")
                .to_owned();
            out.push((rel, path));
        }
    }
}

fn sha256_file(path: &Path) -> (String, u64) {
    let mut f = fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut size = 0u64;
    loop {
        match f.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                hasher.update(&buf[..n]);
                size += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => panic!("reading {}: {e}", path.display()),
        }
    }
    (hex(&hasher.finalize()), size)
}

/// 40 hex digits standing for a git id we do not compute (a commit, a tree).
pub(crate) fn stand_in_oid(text: &str) -> String {
    crate::sha256_hex(text.as_bytes())[..40].to_owned()
}

/// Hashes every file of the repo at `root` (the repo numbered `n`).
fn scan_repo(tmp: &Path, n: usize, id: &str, root: &Path) -> HubRepo {
    split_id(id);
    let mut found = Vec::new();
    walk(root, root, &mut found);
    if !found.iter().any(|(rel, _)| rel == ".gitattributes") {
        let path = tmp.join("api").join(format!("{n}.gitattributes"));
        fs::write(&path, gitattributes()).expect("writing .gitattributes");
        found.push((".gitattributes".to_owned(), path));
    }
    found.sort();
    // The git blob ids, of contents or LFS pointers, all from one `git hash-object`.
    let mut to_hash = Vec::new();
    let mut files = Vec::new();
    for (i, (rel, source)) in found.into_iter().enumerate() {
        check_path(&rel);
        let (sha256, size) = sha256_file(&source);
        let lfs = is_lfs(&rel);
        let pointer_size = if lfs {
            let pointer = format!("{LFS_SPEC}\noid sha256:{sha256}\nsize {size}\n");
            let p = tmp.join("pointers").join(format!("{n}-{i}"));
            fs::write(&p, &pointer).expect("writing an LFS pointer");
            to_hash.push(p);
            Some(pointer.len() as u64)
        } else {
            to_hash.push(source.clone());
            None
        };
        files.push(HubFile {
            path: rel,
            size,
            sha256,
            lfs,
            git_oid: String::new(),
            pointer_size,
            source,
        });
    }
    for (file, oid) in files.iter_mut().zip(git_blob_ids(&to_hash)) {
        file.git_oid = oid;
    }
    let manifest = files.iter().fold(format!("{id}\n"), |mut s, f| {
        let _ = writeln!(s, "{} {}", f.git_oid, f.path);
        s
    });
    HubRepo {
        id: id.to_owned(),
        commit: stand_in_oid(&manifest),
        files,
    }
}

fn git_blob_ids(paths: &[PathBuf]) -> Vec<String> {
    if paths.is_empty() {
        return Vec::new();
    }
    let git = crate::process::find_in_path("git").unwrap_or_else(|| {
        panic!(
            "git is not installed: the Hub-shaped server names files by their git blob ids; run `bash scripts/install-test-deps.sh` (it runs `apt-get install git`)"
        )
    });
    let out = Command::new(git)
        .args(["hash-object", "--no-filters", "--"])
        .args(paths)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .stdin(Stdio::null())
        .output()
        .expect("running git hash-object");
    assert!(
        out.status.success(),
        "git hash-object failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ids: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(ids.len(), paths.len(), "git hash-object printed {ids:?}");
    ids
}

/// Every directory of the repo, `""` for the root, sorted.
fn directories(repo: &HubRepo) -> Vec<String> {
    directories_of(repo.files.iter().map(|f| f.path.as_str()))
}

/// Every directory holding the files at `paths`, `""` for the root, sorted.
pub(crate) fn directories_of<'a>(paths: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let mut dirs = BTreeSet::from([String::new()]);
    for path in paths {
        let mut p = path;
        while let Some((parent, _)) = p.rsplit_once('/') {
            dirs.insert(parent.to_owned());
            p = parent;
        }
    }
    dirs.into_iter().collect()
}

/// One entry of the tree API. Paths and ids are plain names (see [`check_path`]), so they
/// need no escaping in JSON.
fn file_json(f: &HubFile) -> String {
    let lfs = f.pointer_size.map_or_else(String::new, |pointer_size| {
        format!(
            r#","lfs":{{"oid":"{}","size":{},"pointerSize":{pointer_size}}}"#,
            f.sha256, f.size
        )
    });
    format!(
        r#"{{"type":"file","oid":"{}","size":{},"path":"{}"{lfs}}}"#,
        f.git_oid, f.size, f.path
    )
}

fn dir_json(repo: &HubRepo, dir: &str) -> String {
    format!(
        r#"{{"type":"directory","oid":"{}","size":0,"path":"{dir}"}}"#,
        stand_in_oid(&format!("{}\n{dir}", repo.commit))
    )
}

/// Writes repo `n`'s API answers under `<tmp>/api/<n>/`.
fn write_api(tmp: &Path, n: usize, repo: &HubRepo) {
    let api = tmp.join("api").join(n.to_string());
    fs::create_dir_all(&api).expect("creating the API dir");
    let siblings: Vec<String> = repo
        .files
        .iter()
        .map(|f| format!(r#"{{"rfilename":"{}"}}"#, f.path))
        .collect();
    let (org, _) = split_id(&repo.id);
    let (id, commit) = (&repo.id, &repo.commit);
    let revision = format!(
        r#"{{"_id":"{}","id":"{id}","modelId":"{id}","author":"{org}","sha":"{commit}","lastModified":"2026-01-01T00:00:00.000Z","createdAt":"2026-01-01T00:00:00.000Z","private":false,"gated":false,"disabled":false,"downloads":0,"likes":0,"tags":[],"siblings":[{}]}}"#,
        &commit[..24],
        siblings.join(",")
    );
    fs::write(api.join("revision.json"), revision).expect("writing revision.json");
    let all_dirs = directories(repo);
    for (d, dir) in all_dirs.iter().enumerate() {
        let prefix = if dir.is_empty() {
            String::new()
        } else {
            format!("{dir}/")
        };
        let under = |path: &str| path.strip_prefix(prefix.as_str()).map(str::to_owned);
        let mut top = Vec::new();
        let mut recursive = Vec::new();
        for sub in all_dirs.iter().filter(|s| !s.is_empty()) {
            if let Some(rest) = under(sub) {
                if !rest.contains('/') {
                    top.push(dir_json(repo, sub));
                }
                recursive.push(dir_json(repo, sub));
            }
        }
        for f in &repo.files {
            if let Some(rest) = under(&f.path) {
                if !rest.contains('/') {
                    top.push(file_json(f));
                }
                recursive.push(file_json(f));
            }
        }
        for (kind, list) in [("top", top), ("recursive", recursive)] {
            fs::write(
                api.join(format!("tree-{d}-{kind}.json")),
                format!("[{}]", list.join(",")),
            )
            .expect("writing a tree answer");
        }
    }
}

/// nginx.conf: the Hub on `127.0.0.1`, the blobs on `localhost`, one `location =` per URL.
fn config(tmp: &Path, port: u16, repos: &[HubRepo]) -> String {
    let d = tmp.display();
    let (prelude, temp_paths) = (crate::nginx::prelude(tmp), crate::nginx::temp_paths(tmp));
    let mut hub = String::new();
    for (n, repo) in repos.iter().enumerate() {
        let id = &repo.id;
        let commit = &repo.commit;
        for rev in ["main", commit.as_str()] {
            let _ = writeln!(
                hub,
                "        location = /api/models/{id}/revision/{rev} {{ default_type application/json; alias {d}/api/{n}/revision.json; }}"
            );
            for (i, dir) in directories(repo).iter().enumerate() {
                let suffix = if dir.is_empty() {
                    String::new()
                } else {
                    format!("/{dir}")
                };
                for slash in ["", "/"] {
                    let _ = writeln!(
                        hub,
                        "        location = /api/models/{id}/tree/{rev}{suffix}{slash} {{ default_type application/json; root {d}/api/{n}; try_files /tree-{i}-$mp_tree.json =404; }}"
                    );
                }
            }
            for f in &repo.files {
                let path = &f.path;
                let common = format!("add_header X-Repo-Commit {commit} always;");
                if f.lfs {
                    let _ = writeln!(
                        hub,
                        "        location = /{id}/resolve/{rev}/{path} {{ {common} add_header X-Linked-Etag '\"{sha}\"' always; add_header X-Linked-Size {size} always; add_header ETag '\"{oid}\"' always; return 302 http://localhost:{port}/lfs/{sha}?repo={id}&file={path}; }}",
                        sha = f.sha256,
                        size = f.size,
                        oid = f.git_oid,
                    );
                } else {
                    let _ = writeln!(
                        hub,
                        "        location = /{id}/resolve/{rev}/{path} {{ {common} etag off; add_header ETag '\"{oid}\"' always; alias {src}; }}",
                        oid = f.git_oid,
                        src = f.source.display(),
                    );
                }
            }
        }
    }
    format!(
        r#"{prelude}
http {{
    map $http_authorization $mp_auth {{ "" "-"; default "auth"; }}
    map $arg_recursive $mp_tree {{ ~*^(1|true)$ "recursive"; default "top"; }}
    log_format hub '$request_method $host $status $body_bytes_sent $mp_auth "$http_range" $request_uri';
    access_log {d}/access.log hub;
{temp_paths}
    default_type application/octet-stream;
    sendfile on;
    keepalive_requests 10000;
    server {{
        listen 127.0.0.1:{port} default_server;
        server_name 127.0.0.1;
{hub}        location = /api/agent-harnesses {{ default_type application/json; return 200 '{{"standardEnvVars":[],"harnesses":{{}}}}'; }}
        location /api/ {{ add_header X-Error-Code RepoNotFound always; return 404; }}
        location / {{ add_header X-Error-Code EntryNotFound always; return 404; }}
    }}
    server {{
        listen 127.0.0.1:{port};
        server_name localhost;
        location /lfs/ {{ alias {d}/blobs/; }}
        location / {{ return 404; }}
    }}
}}
"#
    )
}

/// `GET localhost 206 1024 auth "bytes=0-1023" /lfs/…?a=b` → the request.
fn parse_line(line: &str) -> Option<HubRequest> {
    let mut parts = line.splitn(7, ' ');
    let method = parts.next()?.to_owned();
    let host = parts.next()?.to_owned();
    let status = parts.next()?.parse().ok()?;
    let body_bytes = parts.next()?.parse().ok()?;
    let authorization = parts.next()? == "auth";
    let range = parts.next()?.trim_matches('"');
    let target = parts.next()?;
    let (uri, args) = match target.split_once('?') {
        Some((uri, args)) => (uri.to_owned(), Some(args.to_owned())),
        None => (target.to_owned(), None),
    };
    Some(HubRequest {
        method,
        host,
        uri,
        args,
        status,
        body_bytes,
        authorization,
        range: (range != "-").then(|| range.to_owned()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hf_repo::{HfRepoBuilder, TINY_LLAMA};
    use crate::http_client::{Response, request};

    fn get(hub: &HubNginx, path: &str) -> Response {
        request(hub.port(), "127.0.0.1", "GET", path, &[])
    }

    fn serve_tiny_llama() -> (HfRepoBuilder, HubNginx) {
        let fixture = HfRepoBuilder::tiny_llama();
        let hub = HubNginx::start_with_files(&[(TINY_LLAMA, fixture.files())]);
        (fixture, hub)
    }

    #[test]
    fn the_revision_and_tree_apis_list_every_file() {
        let (fixture, hub) = serve_tiny_llama();
        let repo = hub.repo(TINY_LLAMA);
        let commit = repo.commit().to_owned();
        let get = |path: &str| get(&hub, path);

        // The revision API, by branch and by commit.
        for rev in ["main", commit.as_str()] {
            let json = get(&format!("/api/models/{TINY_LLAMA}/revision/{rev}")).json();
            assert_eq!(json["sha"], commit.as_str());
            assert_eq!(json["id"], TINY_LLAMA);
            let siblings: Vec<&str> = json["siblings"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s["rfilename"].as_str().unwrap())
                .collect();
            let mut expected: Vec<&str> = fixture.files().keys().map(String::as_str).collect();
            expected.push(".gitattributes");
            expected.sort_unstable();
            assert_eq!(siblings, expected);
        }

        // The tree API: top level, recursive, a folder.
        let shard = "model-00001-of-00002.safetensors";
        let top = get(&format!("/api/models/{TINY_LLAMA}/tree/{commit}")).json();
        let paths: Vec<&str> = top
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["path"].as_str().unwrap())
            .collect();
        assert!(
            paths.contains(&"onnx") && !paths.contains(&"onnx/model.onnx"),
            "{paths:?}"
        );
        let all = get(&format!(
            "/api/models/{TINY_LLAMA}/tree/main?recursive=true"
        ))
        .json();
        let entry = all
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["path"] == shard)
            .unwrap();
        let file = repo.file(shard);
        assert_eq!(entry["type"], "file");
        assert_eq!(entry["size"], file.size);
        assert_eq!(entry["lfs"]["oid"], file.sha256.as_str());
        assert_eq!(entry["lfs"]["size"], file.size);
        assert!(entry["lfs"]["pointerSize"].as_u64().unwrap() > 100);
        assert_eq!(file.sha256, crate::sha256_hex(&fixture.files()[shard]));
        let onnx = get(&format!("/api/models/{TINY_LLAMA}/tree/main/onnx")).json();
        assert_eq!(onnx[0]["path"], "onnx/model.onnx");
        assert!(onnx[0].get("lfs").is_none());
    }

    #[test]
    fn resolve_answers_small_files_and_redirects_lfs_files_to_the_blob_host() {
        let (fixture, hub) = serve_tiny_llama();
        let repo = hub.repo(TINY_LLAMA);
        let commit = repo.commit().to_owned();
        let port = hub.port();
        let get = |path: &str| get(&hub, path);
        let shard = "model-00001-of-00002.safetensors";
        let file = repo.file(shard);

        // A small file: 200, its git blob id as ETag (what `git hash-object` says).
        let config = repo.file("config.json");
        assert_eq!(config.git_oid.len(), 40);
        let r = get(&format!("/{TINY_LLAMA}/resolve/main/config.json"));
        assert_eq!(r.status, 200);
        assert_eq!(
            r.header("etag"),
            Some(format!("\"{}\"", config.git_oid).as_str())
        );
        assert_eq!(r.header("x-repo-commit"), Some(commit.as_str()));
        assert_eq!(r.body, fixture.files()["config.json"]);

        // An LFS file: 302 to the blob host, with the linked headers.
        let r = request(
            port,
            "127.0.0.1",
            "HEAD",
            &format!("/{TINY_LLAMA}/resolve/{commit}/{shard}"),
            &[],
        );
        assert_eq!(r.status, 302);
        assert_eq!(
            r.header("x-linked-etag"),
            Some(format!("\"{}\"", file.sha256).as_str())
        );
        assert_eq!(
            r.header("x-linked-size"),
            Some(file.size.to_string().as_str())
        );
        assert_eq!(r.header("x-repo-commit"), Some(commit.as_str()));
        assert_eq!(
            r.header("etag"),
            Some(format!("\"{}\"", file.git_oid).as_str())
        );
        let location = r.header("location").unwrap();
        let prefix = format!("{}/lfs/{}", hub.blob_host(), file.sha256);
        assert!(location.starts_with(&prefix), "{location}");

        // The blob host serves the bytes, with Range; the Hub host serves no blob.
        let blob_path = &location[hub.blob_host().len()..];
        let r = request(
            port,
            "localhost",
            "GET",
            blob_path,
            &[("Range", "bytes=10-19")],
        );
        assert_eq!(r.status, 206);
        assert!(r.header("etag").is_some());
        assert_eq!(r.body, fixture.files()[shard][10..20]);
        let r = request(
            port,
            "localhost",
            "GET",
            blob_path,
            &[("Authorization", "Bearer x")],
        );
        assert_eq!(r.status, 200);
        assert_eq!(r.body, fixture.files()[shard]);
        assert_eq!(get(blob_path).status, 404);
        assert_eq!(
            get(&format!("/{TINY_LLAMA}/resolve/main/nothing.bin")).status,
            404
        );

        let log = hub.requests_of_at_least(6);
        let blob_gets: Vec<&HubRequest> = log.iter().filter(|l| l.host == "localhost").collect();
        assert_eq!(blob_gets.len(), 2, "{log:#?}");
        assert_eq!(blob_gets[0].range.as_deref(), Some("bytes=10-19"));
        assert!(!blob_gets[0].authorization && blob_gets[1].authorization);
        assert_eq!(blob_gets[1].body_bytes, file.size);
        assert!(blob_gets[0].args.as_deref().unwrap().contains("file="));
    }
}
