//! Running what the benchmarks time, and finding the binaries and the data directory.

use std::ffi::OsStr;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

/// Where stdout of a measured command goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stdout {
    Capture,
    Null,
}

/// Runs `cmd` to completion and returns its wall time and stdout; a failure is an error that
/// carries its stderr.
pub fn timed(cmd: &mut Command, stdout: Stdout) -> anyhow::Result<(Duration, Vec<u8>)> {
    cmd.stdin(Stdio::null()).stderr(Stdio::piped());
    cmd.stdout(match stdout {
        Stdout::Capture => Stdio::piped(),
        Stdout::Null => Stdio::null(),
    });
    let started = Instant::now();
    let output = cmd
        .spawn()
        .with_context(|| format!("cannot run {cmd:?}"))?
        .wait_with_output()?;
    let took = started.elapsed();
    if !output.status.success() {
        bail!(
            "{cmd:?} failed ({}):\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim_end()
        );
    }
    Ok((took, output.stdout))
}

/// What [`timed_sampling`] saw: the wall time, stdout, and each sample with the time since
/// spawn at which it was taken.
#[derive(Debug)]
pub struct Sampled {
    pub wall: Duration,
    pub stdout: Vec<u8>,
    pub samples: Vec<(Duration, u64)>,
}

/// [`timed`], with `sample` called every `every` while `cmd` runs (the size of what it has
/// written so far, say). The wall time is taken when the process exits, not at the next
/// sample.
pub fn timed_sampling(
    cmd: &mut Command,
    every: Duration,
    mut sample: impl FnMut() -> u64,
) -> anyhow::Result<Sampled> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let started = Instant::now();
    let mut child = cmd.spawn().with_context(|| format!("cannot run {cmd:?}"))?;
    let drain = |pipe: Option<Box<dyn io::Read + Send>>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_end(&mut bytes);
            }
            bytes
        })
    };
    let stdout = drain(child.stdout.take().map(|p| Box::new(p) as _));
    let stderr = drain(child.stderr.take().map(|p| Box::new(p) as _));
    let waiter = std::thread::spawn(move || (child.wait(), Instant::now()));
    let mut samples = Vec::new();
    while !waiter.is_finished() {
        samples.push((started.elapsed(), sample()));
        std::thread::sleep(every);
    }
    let (status, ended) = waiter
        .join()
        .map_err(|_| anyhow::anyhow!("the thread waiting for {cmd:?} panicked"))?;
    let status = status.with_context(|| format!("cannot wait for {cmd:?}"))?;
    let stdout = stdout.join().unwrap_or_default();
    let stderr = stderr.join().unwrap_or_default();
    if !status.success() {
        bail!(
            "{cmd:?} failed ({status}):\n{}",
            String::from_utf8_lossy(&stderr).trim_end()
        );
    }
    Ok(Sampled {
        wall: ended.duration_since(started),
        stdout,
        samples,
    })
}

/// The first line `tool args…` prints about itself (`skopeo version 1.9.3`,
/// `aws-cli/2.9.19 …`). A tool that cannot run is an error that ends with `hint`, which says how to install it.
pub fn tool_version(tool: impl AsRef<OsStr>, args: &[&str], hint: &str) -> anyhow::Result<String> {
    let tool = Path::new(tool.as_ref());
    let out = Command::new(tool)
        .args(args)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output();
    match out {
        Ok(o) if o.status.success() => Ok(String::from_utf8_lossy(&o.stdout)
            .lines()
            .next()
            .unwrap_or_default()
            .trim()
            .to_owned()),
        Ok(o) => bail!(
            "`{} {}` failed ({})",
            tool.display(),
            args.join(" "),
            o.status
        ),
        Err(e) => bail!("cannot run `{}`: {e}\nhint: {hint}", tool.display()),
    }
}

/// A command for `program` whose AWS settings are the key pair given and nothing of the caller's
/// (a profile, region or endpoint there would change what runs): every `AWS_*` and `S3_*`
/// variable is removed, the configuration files are `/dev/null`, instance metadata is off.
pub fn s3_command(program: impl AsRef<OsStr>, access_key: &str, secret_key: &str) -> Command {
    let mut cmd = Command::new(program);
    for (name, _) in std::env::vars_os() {
        let text = name.to_string_lossy();
        if text.starts_with("AWS_") || text.starts_with("S3_") {
            cmd.env_remove(&name);
        }
    }
    cmd.env("AWS_ACCESS_KEY_ID", access_key)
        .env("AWS_SECRET_ACCESS_KEY", secret_key)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null");
    cmd
}

/// Removes the directory `path` and all it holds; a missing one is fine.
pub fn remove(path: &Path) -> anyhow::Result<()> {
    match fs::remove_dir_all(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(e).with_context(|| format!("cannot remove `{}`", path.display()))
        }
        _ => Ok(()),
    }
}

/// `path` as a string, for a command-line argument that must be one.
pub fn utf8(path: &Path) -> anyhow::Result<&str> {
    path.to_str()
        .with_context(|| format!("`{}` is not valid UTF-8", path.display()))
}

/// The builds of `model-provisioner` a benchmark runs, and where it keeps its data.
#[derive(Debug)]
pub struct Binaries {
    /// The release binary next to the benchmark's.
    pub ours: PathBuf,
    /// `--baseline-bin`, resolved.
    pub before: Option<PathBuf>,
    /// `--data-dir`, or `bench-data` in the target directory; created.
    pub data_dir: PathBuf,
}

impl Binaries {
    /// Finds `model-provisioner` next to the running benchmark, resolves `baseline_bin` and
    /// creates `data_dir` (by default `<target>/bench-data`).
    pub fn locate(baseline_bin: Option<&Path>, data_dir: Option<&Path>) -> anyhow::Result<Self> {
        let exe = std::env::current_exe()?;
        let exe_dir = exe.parent().context("the benchmark has no directory")?;
        let ours = exe_dir.join("model-provisioner");
        if !ours.exists() {
            bail!(
                "`{}` is missing: run `cargo build --release -p model-provisioner-cli` first",
                ours.display()
            );
        }
        let before =
            match baseline_bin {
                Some(path) => Some(fs::canonicalize(path).with_context(|| {
                    format!("`--baseline-bin {}` does not exist", path.display())
                })?),
                None => None,
            };
        let data_dir = match data_dir {
            Some(d) => d.to_owned(),
            None => exe_dir
                .parent()
                .context("the benchmark is not inside a target directory")?
                .join("bench-data"),
        };
        fs::create_dir_all(&data_dir)
            .with_context(|| format!("cannot create `{}`", data_dir.display()))?;
        Ok(Binaries {
            ours,
            before,
            data_dir,
        })
    }
}
