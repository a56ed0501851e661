//! A temporary directory with a cache inside it, and the `model-provisioner` binary run against
//! it with a clean environment, no terminal and a time limit.

use std::ffi::OsStr;
use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::thread;
use std::time::Duration;

use catalog_core::Digest;
use tempfile::TempDir;

/// What every test returns.
pub(crate) type TestResult<T = ()> = Result<T, Box<dyn std::error::Error>>;

/// The binary under test.
pub(crate) const BIN: &str = env!("CARGO_BIN_EXE_model-provisioner");

/// How long one run may take before it is killed and the test fails: a watchdog against a
/// hang, not a measure of speed, so it leaves room for a busy machine (a push of 64 MiB that
/// both ends hash took over 10 s on two cores shared with several builds).
const TIME_LIMIT: Duration = Duration::from_secs(60);

/// A temporary directory holding the user's files and, under `cache/`, the cache.
pub(crate) struct Fixture {
    _tmp: TempDir,
    root: PathBuf,
    cache: PathBuf,
}

impl Fixture {
    /// An empty fixture; the cache directory does not exist yet.
    pub(crate) fn new() -> TestResult<Self> {
        let tmp = tempfile::tempdir()?;
        // Ids are canonical paths, so the root must be one too.
        let root = fs::canonicalize(tmp.path())?;
        let cache = root.join("cache");
        Ok(Fixture {
            _tmp: tmp,
            root,
            cache,
        })
    }

    /// A fixture whose catalog holds one verified entry, `model.gguf`.
    pub(crate) fn with_one_entry() -> TestResult<Self> {
        let fx = Fixture::new()?;
        let digest = fx.write_model("model.gguf", b"one verified model")?;
        let out = fx.run(["ensure", "model.gguf", "--digest", &digest.to_string()]);
        assert_code(&out, 0);
        assert!(fx.index_bytes().is_some(), "ensure wrote no index");
        Ok(fx)
    }

    /// The fixture's directory (canonical); commands run with it as the current directory.
    pub(crate) fn root(&self) -> &Path {
        &self.root
    }

    /// The cache directory passed with `--cache-dir`.
    pub(crate) fn cache(&self) -> &Path {
        &self.cache
    }

    /// `rel` under the fixture's directory.
    pub(crate) fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    /// The catalog id of the local file `rel`.
    pub(crate) fn id_of(&self, rel: &str) -> String {
        format!("file:{}", self.path(rel).display())
    }

    /// `catalog/index.json` of the cache.
    pub(crate) fn index_path(&self) -> PathBuf {
        self.cache.join("catalog").join("index.json")
    }

    /// The bytes of the index, if it exists.
    pub(crate) fn index_bytes(&self) -> Option<Vec<u8>> {
        fs::read(self.index_path()).ok()
    }

    /// Writes a model file at `rel` (creating parents) and returns its digest.
    pub(crate) fn write_model(&self, rel: &str, contents: &[u8]) -> io::Result<Digest> {
        let path = self.path(rel);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent)?;
        }
        fs::write(&path, contents)?;
        Ok(Digest::sha256_of(contents))
    }

    /// The binary with a clean environment (no cache variables, `HOME` inside the fixture, no
    /// AWS instance metadata service: a test that wants one names its own), the fixture as
    /// current directory, and no `--cache-dir`.
    pub(crate) fn bare_command(&self) -> Command {
        let mut cmd = Command::new(BIN);
        cmd.env_clear()
            .env("HOME", self.root.join("home"))
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .current_dir(&self.root);
        cmd
    }

    /// The binary with `--cache-dir <cache>` and `args`.
    pub(crate) fn command<I, S>(&self, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut cmd = self.bare_command();
        cmd.arg("--cache-dir").arg(&self.cache).args(args);
        cmd
    }

    /// Runs the binary with `--cache-dir <cache>` and `args`.
    pub(crate) fn run<I, S>(&self, args: I) -> Output
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        run_within_limit(&mut self.command(args))
    }

    /// Runs `args`, which must succeed, and parses stdout as JSON.
    pub(crate) fn json<I, S>(&self, args: I) -> TestResult<serde_json::Value>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let out = self.run(args);
        assert_code(&out, 0);
        Ok(serde_json::from_slice(&out.stdout)?)
    }

    /// The catalog entry `id` as `show --json` prints it.
    pub(crate) fn entry(&self, id: &str) -> TestResult<serde_json::Value> {
        self.json(["show", id, "--json"])
    }
}

/// Runs `cmd` with no stdin and captured output; kills it and fails the test if it is still
/// running after the time limit.
pub(crate) fn run_within_limit(cmd: &mut Command) -> Output {
    run_child(cmd, false, TIME_LIMIT)
}

/// Like [`run_within_limit`], with `limit` as the time limit.
pub(crate) fn run_within(cmd: &mut Command, limit: Duration) -> Output {
    run_child(cmd, false, limit)
}

/// Like [`run_within_limit`], but closes the read end of stdout right after the start, like
/// `… | head -0` would; the returned `stdout` is empty.
pub(crate) fn run_with_stdout_closed(cmd: &mut Command) -> Output {
    run_child(cmd, true, TIME_LIMIT)
}

fn run_child(cmd: &mut Command, close_stdout: bool, limit: Duration) -> Output {
    start_child(cmd, close_stdout).finish_within(limit)
}

/// Starts `cmd` like [`run_within_limit`] does, without waiting for it: for runs that must
/// overlap. Its output is read as it comes, so a child never blocks on a full pipe.
pub(crate) fn start(cmd: &mut Command) -> Running {
    start_child(cmd, false)
}

/// A child started by [`start`], its output being read.
pub(crate) struct Running {
    child: Child,
    what: String,
    stdout: thread::JoinHandle<Vec<u8>>,
    stderr: thread::JoinHandle<Vec<u8>>,
}

impl Running {
    /// Waits for the child to exit and returns its output; kills it and fails the test if it
    /// is still running after `limit`.
    pub(crate) fn finish_within(mut self, limit: Duration) -> Output {
        let status = wait_within(&mut self.child, limit);
        let stdout = self.stdout.join().expect("stdout reader panicked");
        let stderr = self.stderr.join().expect("stderr reader panicked");
        let Some(status) = status else {
            panic!(
                "{} did not finish within {limit:?} and was killed; stderr so far:\n{}",
                self.what,
                String::from_utf8_lossy(&stderr)
            );
        };
        Output {
            status,
            stdout,
            stderr,
        }
    }
}

fn start_child(cmd: &mut Command, close_stdout: bool) -> Running {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("failed to start {cmd:?}: {e}"));
    let stdout = child.stdout.take().expect("stdout is piped");
    let stdout = if close_stdout {
        drop(stdout);
        None
    } else {
        Some(stdout)
    };
    let stderr = child.stderr.take().expect("stderr is piped");
    Running {
        child,
        what: format!(
            "{} {:?}",
            cmd.get_program().display(),
            cmd.get_args().collect::<Vec<_>>()
        ),
        stdout: thread::spawn(move || stdout.map(read_all).unwrap_or_default()),
        stderr: thread::spawn(move || read_all(stderr)),
    }
}

/// The exit status, or `None` if the child had to be killed.
fn wait_within(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let status = test_support::poll(limit, || {
        child
            .try_wait()
            .unwrap_or_else(|e| panic!("failed to wait for the child: {e}"))
    });
    if status.is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
    status
}

fn read_all(mut r: impl Read) -> Vec<u8> {
    let mut buf = Vec::new();
    let _ = r.read_to_end(&mut buf);
    buf
}

/// Stdout as text.
pub(crate) fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Stderr as text.
pub(crate) fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Asserts the exit code, showing both streams when it differs.
pub(crate) fn assert_code(out: &Output, code: i32) {
    assert_eq!(
        out.status.code(),
        Some(code),
        "unexpected exit status\n--- stdout\n{}--- stderr\n{}",
        stdout(out),
        stderr(out)
    );
}

/// Asserts a failure: the exit code, a line of stderr starting with `error: `, and every one of
/// `keywords` somewhere in stderr.
pub(crate) fn assert_failure(out: &Output, code: i32, keywords: &[&str]) {
    assert_code(out, code);
    let err = stderr(out);
    assert!(
        err.lines().any(|l| l.starts_with("error: ")),
        "no `error: ` line on stderr:\n{err}"
    );
    for k in keywords {
        assert!(err.contains(k), "stderr does not mention {k:?}:\n{err}");
    }
}

/// The `hint: ` lines of stderr.
pub(crate) fn hints(out: &Output) -> Vec<String> {
    stderr(out)
        .lines()
        .filter(|l| l.starts_with("hint: "))
        .map(str::to_owned)
        .collect()
}

/// Asserts the shape of a runtime error report: stderr is exactly one `error: ` line followed
/// only by `hint: ` lines, and stdout is empty.
pub(crate) fn assert_one_error_line(out: &Output) {
    let err = stderr(out);
    let mut lines = err.lines();
    let first = lines.next().unwrap_or_default();
    assert!(
        first.starts_with("error: "),
        "stderr does not start with `error: `:\n{err}"
    );
    for line in lines {
        assert!(
            line.starts_with("hint: "),
            "stderr has a line that is neither the error nor a hint: {line:?}\n{err}"
        );
    }
    assert!(
        out.stdout.is_empty(),
        "stdout is not empty:\n{}",
        stdout(out)
    );
}

/// The JSON value at `key` as a string, or a panic naming the key.
pub(crate) fn str_field<'a>(value: &'a serde_json::Value, key: &str) -> &'a str {
    value[key]
        .as_str()
        .unwrap_or_else(|| panic!("`{key}` is not a string in {value:#}"))
}

/// The JSON value at `key` as an integer, or a panic naming the key.
pub(crate) fn u64_field(value: &serde_json::Value, key: &str) -> u64 {
    value[key]
        .as_u64()
        .unwrap_or_else(|| panic!("`{key}` is not an integer in {value:#}"))
}

/// The JSON value at `key` as a bool, or a panic naming the key.
pub(crate) fn bool_field(value: &serde_json::Value, key: &str) -> bool {
    value[key]
        .as_bool()
        .unwrap_or_else(|| panic!("`{key}` is not a bool in {value:#}"))
}
