//! olah, a self-hosted Hugging Face mirror, serving local git repos offline on loopback;
//! and the real `hf` CLI pointed at it.
//!
//! Both come from the venv that `scripts/install-test-deps.sh` makes at `<repo>/.venv`.
//! olah answers, for a repo under its mirrors dir (see [`crate::HfRepo`]):
//! `GET /api/models/<org>/<repo>/revision/<rev>` (`sha`, `siblings[].rfilename`),
//! `GET /api/models/<org>/<repo>/tree/<rev>/?recursive=true` (sizes, `lfs.oid`),
//! `POST /api/models/<org>/<repo>/paths-info/<rev>`, `GET /api/models/<org>/<repo>/refs`,
//! `HEAD /<org>/<repo>/resolve/<rev>/<path>` (`x-repo-commit`, `etag`, `content-length`) and
//! `GET` of the same (the whole body, chunked, no headers of note, `Range` ignored).

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crate::hf_repo::{HfRepo, HfRepoBuilder};
use crate::process::{self, ServerProcess};

const INSTALL_HINT: &str = "run `bash scripts/install-test-deps.sh`, which installs olah, huggingface_hub and the other Python tools into <repo>/.venv";

/// The path prefix of the requests [`Olah::settled_requests`] sends to mark a point in the log.
const SETTLED_MARK: &str = "/test-support-settled-";

/// How long olah may take to answer after it is started.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// The Python venv the test tools live in: `<workspace root>/.venv`.
pub fn venv_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("the crate lives at <root>/crates/test-support")
        .join(".venv")
}

pub(crate) fn venv_bin(name: &str, what: &str) -> PathBuf {
    let path = venv_dir().join("bin").join(name);
    assert!(
        path.is_file(),
        "{what} is not installed: {} is missing; {INSTALL_HINT}",
        path.display()
    );
    path
}

/// The real Hugging Face CLI, `<repo>/.venv/bin/hf`. Panics with install instructions when
/// it is missing.
pub fn hf_cli_path() -> PathBuf {
    venv_bin("hf", "the Hugging Face CLI `hf` (huggingface_hub 2.x)")
}

/// olah's entry point, `<repo>/.venv/bin/olah-cli`. Panics with install instructions when
/// it is missing.
pub fn olah_cli_path() -> PathBuf {
    venv_bin(
        "olah-cli",
        "olah (the Hugging Face mirror the hf tests run against)",
    )
}

/// The venv's Python, which runs olah. Panics with install instructions when it is missing.
fn venv_python() -> PathBuf {
    olah_cli_path();
    venv_bin("python", "the test venv's Python")
}

/// Runs olah like `olah-cli` does, and exits as soon as its standard input closes: the test
/// process keeps the pipe open and closes it when it drops [`Olah`], and the kernel closes it
/// when the test process dies, however it dies, so olah never outlives the tests.
const LAUNCHER: &str = r#"
import os, sys, threading
def _watch():
    try:
        while sys.stdin.buffer.read(65536):
            pass
    finally:
        os._exit(0)
threading.Thread(target=_watch, daemon=True).start()
sys.argv[0] = "olah-cli"
from olah.server import cli
sys.exit(cli())
"#;

/// One request in olah's access log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OlahRequest {
    /// `GET`, `HEAD`, …
    pub method: String,
    /// The path and query, as sent.
    pub path: String,
    /// The response status.
    pub status: u16,
}

/// olah on `127.0.0.1:<free port>`, offline, serving the git repos under
/// [`Olah::mirrors_dir`] as Hugging Face model repos. Killed on drop; its temp dir (mirrors,
/// its own cache, logs, the `hf` CLI's home) is removed.
#[derive(Debug)]
pub struct Olah {
    /// Killed on drop, before the directory goes.
    _process: ServerProcess,
    port: u16,
    dir: tempfile::TempDir,
}

impl Olah {
    /// Starts olah with an empty mirrors dir; add repos with [`Olah::add_repo`] (before or
    /// after it starts: olah looks at the mirrors dir on every request). Takes a couple of
    /// seconds (Python start-up).
    pub fn start() -> Self {
        let python = venv_python();
        let dir = tempfile::tempdir().expect("creating a temp dir");
        for sub in ["mirrors", "cache", "logs", "hf-home"] {
            fs::create_dir_all(dir.path().join(sub)).expect("creating olah's dirs");
        }
        let mut last_error = String::new();
        for _attempt in 0..5 {
            let port = crate::free_port();
            match Self::spawn(&python, dir.path(), port) {
                Ok(child) => {
                    return Olah {
                        _process: ServerProcess(child),
                        port,
                        dir,
                    };
                }
                Err(e) if e.contains("address already in use") => last_error = e,
                Err(e) => panic!("{e}"),
            }
        }
        panic!("{last_error}");
    }

    fn spawn(python: &Path, dir: &Path, port: u16) -> Result<Child, String> {
        let d = |sub: &str| toml_string(&dir.join(sub));
        // `offline` belongs in [accessibility]; olah never reaches upstream offline, and the
        // upstream it is given is a closed loopback port, so that nothing can leave the host.
        let config = format!(
            r#"[basic]
host = "127.0.0.1"
port = {port}
repos-path = {cache}
mirrors-path = [{mirrors}]
hf-scheme = "http"
hf-netloc = "127.0.0.1:9"
hf-lfs-netloc = "127.0.0.1:9"
mirror-scheme = "http"
mirror-netloc = "127.0.0.1:{port}"
mirror-lfs-netloc = "127.0.0.1:{port}"

[accessibility]
offline = true
"#,
            cache = d("cache"),
            mirrors = d("mirrors"),
        );
        let conf = dir.join("olah.toml");
        fs::write(&conf, config).expect("writing olah.toml");
        let log_path = dir.join("olah.out");
        // Appends only, so that clearing the log in place is safe.
        fs::write(&log_path, b"").expect("creating olah's log");
        let log = fs::OpenOptions::new()
            .append(true)
            .open(&log_path)
            .expect("opening olah's log");
        let mut child = Command::new(python)
            .arg("-c")
            .arg(LAUNCHER)
            .arg("--config")
            .arg(&conf)
            .arg("--log-path")
            .arg(dir.join("logs"))
            .current_dir(dir)
            .env("PYTHONUNBUFFERED", "1")
            .env("HF_HUB_DISABLE_TELEMETRY", "1")
            .env("HF_HOME", dir.join("hf-home"))
            .env("NO_PROXY", "127.0.0.1,localhost")
            .env("no_proxy", "127.0.0.1,localhost")
            .stdin(Stdio::piped())
            .stdout(log.try_clone().expect("cloning a file handle"))
            .stderr(log)
            .spawn()
            .expect("starting olah");
        // Another server may hold the port olah was given (it was free when picked): only olah's
        // own word that it bound it says the listener is olah.
        let bound = format!("Uvicorn running on http://127.0.0.1:{port} ");
        let ready = process::wait_ready(&mut child, "olah", port, &log_path, START_TIMEOUT, || {
            fs::read_to_string(&log_path).is_ok_and(|log| log.contains(&bound))
                && process::listening(port)
        });
        match ready {
            Ok(()) => Ok(child),
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                let msg = e.to_string();
                Err(
                    if e.kind() != io::ErrorKind::TimedOut && msg.contains("ddress already in use")
                    {
                        format!("address already in use: {msg}")
                    } else {
                        msg
                    },
                )
            }
        }
    }

    /// `http://127.0.0.1:<port>`: what `HF_ENDPOINT` is set to.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// `<endpoint>/<path>`.
    pub fn url(&self, path: &str) -> String {
        format!("{}/{}", self.endpoint(), path.trim_start_matches('/'))
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The directory olah serves repos from (`<mirrors>/models/<org>/<name>`).
    pub fn mirrors_dir(&self) -> PathBuf {
        self.dir.path().join("mirrors")
    }

    /// A scratch directory inside the server's temp dir, removed with it.
    pub fn scratch_dir(&self, name: &str) -> PathBuf {
        let p = self.dir.path().join("scratch").join(name);
        fs::create_dir_all(&p).expect("creating a scratch dir");
        p
    }

    /// Creates the repo in [`Olah::mirrors_dir`]; olah serves it at once.
    pub fn add_repo(&self, repo: HfRepoBuilder) -> HfRepo {
        repo.create(&self.mirrors_dir())
    }

    /// Everything olah printed so far.
    pub fn output(&self) -> String {
        fs::read_to_string(self.dir.path().join("olah.out")).unwrap_or_default()
    }

    /// The requests olah logged so far, oldest first.
    pub fn requests(&self) -> Vec<OlahRequest> {
        self.output()
            .lines()
            .filter_map(parse_access_line)
            .filter(|r| !r.path.starts_with(SETTLED_MARK))
            .collect()
    }

    /// Every request sent before this call, once olah has logged them all: for asserting that
    /// a client that has exited sent no request at all.
    ///
    /// olah logs a request as it starts the answer, so a client that has its answer is never
    /// ahead of the log; one that gave up before an answer may be. This sends a request of its
    /// own, which olah logs after every earlier one, and waits for that line.
    pub fn settled_requests(&self) -> Vec<OlahRequest> {
        static MARKS: AtomicUsize = AtomicUsize::new(0);
        let mark = format!("{SETTLED_MARK}{}", MARKS.fetch_add(1, Ordering::Relaxed));
        if let Err(e) = crate::http_get(self.port, &mark) {
            panic!("sending {mark} to olah: {e}");
        }
        let before = crate::poll(Duration::from_secs(10), || {
            let logged: Vec<OlahRequest> = self
                .output()
                .lines()
                .filter_map(parse_access_line)
                .collect();
            let at = logged.iter().position(|r| r.path == mark)?;
            Some(logged.into_iter().take(at).collect::<Vec<_>>())
        });
        let before = before
            .unwrap_or_else(|| panic!("olah did not log {mark} within 10 s:\n{}", self.output()));
        before
            .into_iter()
            .filter(|r| !r.path.starts_with(SETTLED_MARK))
            .collect()
    }

    /// The requests once there are at least `n` (olah logs a request just after it answers,
    /// so a client may be a moment ahead), or after 2 s, whatever there are then.
    pub fn requests_of_at_least(&self, n: usize) -> Vec<OlahRequest> {
        crate::at_least(n, || self.requests())
    }

    /// Empties olah's output (and so its request log).
    pub fn clear_log(&self) {
        crate::truncate_log(&self.dir.path().join("olah.out"));
    }

    /// The `hf` CLI, pointed at this server: `HF_ENDPOINT` set, `HF_HOME` in the temp dir,
    /// no token, no update checks or telemetry, nothing sent beyond loopback.
    pub fn hf(&self) -> Command {
        hf_command(&self.endpoint(), &self.dir.path().join("hf-home"))
    }

    /// Runs `hf download <args> --format quiet` against this server and returns the path it
    /// prints: the file for one file, the snapshot dir (`…/snapshots/<commit>`) otherwise.
    /// Panics with `hf`'s output if it fails. Pass `--cache-dir` (or `--local-dir`) in `args`.
    pub fn hf_download(&self, args: &[&str]) -> PathBuf {
        hf_download(self.hf(), args, || {
            format!("olah's output:\n{}", self.output())
        })
    }
}

/// The real `hf` CLI pointed at `endpoint`: `HF_ENDPOINT` set, `HF_HOME` at `hf_home`, no
/// token, no update checks or telemetry, nothing sent beyond loopback.
pub(crate) fn hf_command(endpoint: &str, hf_home: &Path) -> Command {
    let mut cmd = Command::new(hf_cli_path());
    cmd.env("HF_ENDPOINT", endpoint)
        .env("HF_HOME", hf_home)
        .env("HF_HUB_DISABLE_UPDATE_CHECK", "1")
        .env("HF_HUB_DISABLE_TELEMETRY", "1")
        .env("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        .env("DO_NOT_TRACK", "1")
        .env("NO_PROXY", "127.0.0.1,localhost")
        .env("no_proxy", "127.0.0.1,localhost")
        .env("NO_COLOR", "1");
    for var in [
        "HF_TOKEN",
        "HUGGING_FACE_HUB_TOKEN",
        "HF_TOKEN_PATH",
        "HF_HUB_OFFLINE",
        "TRANSFORMERS_OFFLINE",
        "HF_HUB_CACHE",
        "HUGGINGFACE_HUB_CACHE",
        "HF_XET_CACHE",
        "HF_HUB_ENABLE_HF_TRANSFER",
    ] {
        cmd.env_remove(var);
    }
    cmd.stdin(Stdio::null());
    cmd
}

/// Runs `hf download <args> --format quiet` with `hf` and returns the path it prints; panics
/// with `hf`'s output and `server_log()` if it fails.
pub(crate) fn hf_download(
    mut hf: Command,
    args: &[&str],
    server_log: impl FnOnce() -> String,
) -> PathBuf {
    let out = hf
        .arg("download")
        .args(args)
        .args(["--format", "quiet"])
        .output()
        .expect("running hf");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "`hf download {}` failed ({}):\n{stdout}{}\n{}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stderr),
        server_log()
    );
    let line = stdout
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or_else(|| panic!("`hf download` printed no path"));
    PathBuf::from(line.trim())
}

fn toml_string(path: &Path) -> String {
    let s = path.to_str().expect("temp paths are UTF-8");
    assert!(
        !s.contains(['"', '\\']) && !s.chars().any(char::is_control),
        "unusual temp path {s:?}"
    );
    format!("\"{s}\"")
}

/// `… 127.0.0.1:39482 - "GET /path HTTP/1.1" 200 OK` → the request.
fn parse_access_line(line: &str) -> Option<OlahRequest> {
    let start = line.find(" - \"")? + 4;
    let rest = &line[start..];
    let (request, after) = rest.split_once("\" ")?;
    let mut parts = request.split(' ');
    let method = parts.next()?.to_owned();
    let path = parts.next()?.to_owned();
    if !parts.next()?.starts_with("HTTP/") {
        return None;
    }
    let status = after.split(' ').next()?.parse().ok()?;
    Some(OlahRequest {
        method,
        path,
        status,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hf_repo::{TINY_GGUF, TINY_LLAMA, sha256_hex};
    use crate::http_client::{Response, request};

    #[test]
    fn parses_access_lines() {
        let line = r#"2026-11-25 17:39:26 | INFO | stdout | INFO:     127.0.0.1:38904 - "HEAD /test-org/x/resolve/main/a%20b.gguf HTTP/1.1" 404 Not Found"#;
        assert_eq!(
            parse_access_line(line),
            Some(OlahRequest {
                method: "HEAD".into(),
                path: "/test-org/x/resolve/main/a%20b.gguf".into(),
                status: 404
            })
        );
        assert_eq!(
            parse_access_line("INFO: Application startup complete."),
            None
        );
    }

    fn head(olah: &Olah, path: &str) -> Response {
        request(olah.port(), "127.0.0.1", "HEAD", path, &[])
    }

    fn get(olah: &Olah, path: &str) -> Response {
        request(olah.port(), "127.0.0.1", "GET", path, &[])
    }

    fn error_code(r: &Response) -> (u16, Option<&str>) {
        (r.status, r.header("x-error-code"))
    }

    /// olah serving both canned fixtures, `tiny-gguf` tagged `v1.0`.
    fn olah_with_fixtures() -> (Olah, HfRepo, HfRepo) {
        let olah = Olah::start();
        let gguf = olah.add_repo(HfRepoBuilder::tiny_gguf());
        let llama = olah.add_repo(HfRepoBuilder::tiny_llama());
        gguf.tag("v1.0");
        (olah, gguf, llama)
    }

    #[test]
    fn olah_resolves_revisions_and_files() {
        let (olah, gguf, llama) = olah_with_fixtures();
        let first = gguf.head();
        assert_eq!(gguf.rev_parse("v1.0"), first);

        // Revision lookups: branch, tag, full and short sha.
        for rev in ["main", "v1.0", first.as_str(), &first[..7]] {
            let r = get(&olah, &format!("/api/models/{TINY_GGUF}/revision/{rev}"));
            assert_eq!(r.status, 200, "revision {rev}");
            let json = r.json();
            assert_eq!(json["sha"], first.as_str());
            assert_eq!(json["id"], TINY_GGUF);
            let siblings: Vec<&str> = json["siblings"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s["rfilename"].as_str().unwrap())
                .collect();
            assert_eq!(siblings, gguf.files("main"));
        }

        // Resolve: an LFS file's etag is its sha256, another file's its git blob sha1.
        let r = head(
            &olah,
            &format!("/{TINY_GGUF}/resolve/main/model.Q4_K_M.gguf"),
        );
        assert_eq!(r.status, 200);
        assert_eq!(r.header("x-repo-commit"), Some(first.as_str()));
        let sha = gguf.sha256("main", "model.Q4_K_M.gguf");
        assert_eq!(r.header("etag"), Some(sha.as_str()));
        let size = gguf.size("main", "model.Q4_K_M.gguf").to_string();
        assert_eq!(r.header("content-length"), Some(size.as_str()));
        let r = head(&olah, &format!("/{TINY_GGUF}/resolve/main/README.md"));
        let etag = gguf.etag("main", "README.md");
        assert_eq!(r.header("etag"), Some(etag.as_str()));
        assert_eq!(etag.len(), 40);

        // GET sends the whole body, and ignores Range.
        let r = request(
            olah.port(),
            "127.0.0.1",
            "GET",
            &format!("/{TINY_GGUF}/resolve/main/model.Q4_K_M.gguf"),
            &[("Range", "bytes=10-")],
        );
        assert_eq!(r.status, 200);
        assert_eq!(sha256_hex(&r.body), sha);

        // A subfolder file of the Transformers fixture.
        let r = get(
            &olah,
            &format!("/{TINY_LLAMA}/resolve/main/original/params.json"),
        );
        assert_eq!(r.status, 200);
        assert_eq!(r.body, llama.bytes("main", "original/params.json"));

        // Missing repo, revision, file.
        let r = get(&olah, "/api/models/test-org/nothing/revision/main");
        assert_eq!(error_code(&r), (401, Some("RepoNotFound")));
        let r = head(&olah, &format!("/{TINY_GGUF}/resolve/nope/README.md"));
        assert_eq!(error_code(&r), (401, Some("RepoNotFound")));
        let r = head(&olah, &format!("/{TINY_GGUF}/resolve/{first}/nothing.bin"));
        assert_eq!(error_code(&r), (404, Some("EntryNotFound")));

        let requests = olah.requests_of_at_least(1);
        assert!(
            requests
                .iter()
                .any(|r| r.method == "HEAD" && r.path.ends_with("/resolve/main/README.md")),
            "{requests:?}"
        );
    }

    #[test]
    fn olah_serves_a_new_commit_at_once() {
        let (olah, gguf, _) = olah_with_fixtures();
        let first = gguf.head();
        let second = gguf.commit_files("new q4", &[("model.Q4_K_M.gguf", b"GGUF v2")]);
        let r = head(
            &olah,
            &format!("/{TINY_GGUF}/resolve/main/model.Q4_K_M.gguf"),
        );
        assert_eq!(r.header("x-repo-commit"), Some(second.as_str()));
        assert_eq!(r.header("etag"), Some(sha256_hex(b"GGUF v2").as_str()));
        let r = head(
            &olah,
            &format!("/{TINY_GGUF}/resolve/v1.0/model.Q4_K_M.gguf"),
        );
        assert_eq!(r.header("x-repo-commit"), Some(first.as_str()));
    }

    #[test]
    fn hf_cli_downloads_from_olah() {
        let (olah, gguf, llama) = olah_with_fixtures();
        let first = gguf.head();
        let second = gguf.commit_files("new q4", &[("model.Q4_K_M.gguf", b"GGUF v2")]);
        let cache = olah.scratch_dir("hf-cache");
        let cache_arg = cache.to_str().unwrap();

        let file = olah.hf_download(&[TINY_GGUF, "model.Q4_K_M.gguf", "--cache-dir", cache_arg]);
        let snapshots = cache.join("models--test-org--tiny-gguf/snapshots");
        assert_eq!(file, snapshots.join(&second).join("model.Q4_K_M.gguf"));
        assert_eq!(fs::read(&file).unwrap(), b"GGUF v2");

        let old = olah.hf_download(&[
            TINY_GGUF,
            "model.Q4_K_M.gguf",
            "--revision",
            &first,
            "--cache-dir",
            cache_arg,
        ]);
        assert_eq!(old, snapshots.join(&first).join("model.Q4_K_M.gguf"));
        assert_eq!(
            fs::read(&old).unwrap(),
            gguf.bytes(&first, "model.Q4_K_M.gguf")
        );

        let snapshot = olah.hf_download(&[TINY_LLAMA, "--cache-dir", cache_arg]);
        let head = llama.head();
        assert_eq!(
            snapshot,
            cache.join(format!("models--test-org--tiny-llama/snapshots/{head}"))
        );
        for f in llama.files("main") {
            let got = fs::read(snapshot.join(&f)).unwrap();
            assert_eq!(got, llama.bytes("main", &f), "{f}");
        }

        let only_json = olah.scratch_dir("hf-json");
        let snapshot = olah.hf_download(&[
            TINY_LLAMA,
            "--include",
            "*.json",
            "--cache-dir",
            only_json.to_str().unwrap(),
        ]);
        assert!(snapshot.join("config.json").is_file());
        assert!(snapshot.join("original/params.json").is_file());
        assert!(!snapshot.join("model-00001-of-00002.safetensors").exists());
    }
}
