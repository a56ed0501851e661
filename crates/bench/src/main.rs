//! `mp-bench`: wall-clock benchmarks of the release `model-provisioner` binary.
//!
//! Every case runs the binary as a whole process, `--runs` times, and reports the median and
//! the minimum wall time of the process, from spawn to exit. The binary is looked up next to
//! this one (`target/release/model-provisioner`); build it first with `cargo build --release`.
//!
//! Two suites: `local` (the default) hashes a large local file and works a large catalog;
//! `http` downloads a large file from nginx on loopback, side by side with curl and aria2c,
//! and resumes a download killed half-way (see [`http`]). `all` runs both.

use std::fmt::Write as _;
use std::fs;
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::Duration;

use anyhow::{Context as _, bail, ensure};
use catalog_core::{
    CatalogEntry, Digest, Fingerprint, FsCatalog, Lifecycle, Outcome, Provenance, Storage,
    Verification, now_ms,
};
use clap::{Parser, ValueEnum};

use model_provisioner_bench::measure::{self, machine};
use model_provisioner_bench::run::{Stdout, timed, utf8};

mod http;
mod testfile;
use testfile::{MIB, SHARED, human_size, prepare_file};

/// Measure `model-provisioner` on a large local file and a large catalog, or downloading a
/// large file over HTTP.
#[derive(Debug, Parser)]
#[command(name = "mp-bench", version, about, long_about = None)]
struct Args {
    /// Which cases to run.
    #[arg(long, value_enum, default_value_t = Suite::Local)]
    suite: Suite,

    /// Size of the pseudo-random test file of the local suite, in MiB.
    #[arg(long, default_value_t = 1024, value_parser = clap::value_parser!(u64).range(1..))]
    size_mib: u64,

    /// Size of the pseudo-random file the HTTP suite downloads, in MiB.
    #[arg(long, default_value_t = 2048, value_parser = clap::value_parser!(u64).range(64..))]
    http_size_mib: u64,

    /// How many times each case is run [default: 5 for the local suite, 3 for the HTTP suite].
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    runs: Option<u32>,

    /// Number of synthetic entries in the large catalog.
    #[arg(long, default_value_t = 10_000)]
    entries: u32,

    /// Also write the Markdown report to this file.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,

    /// Where the test file and scratch caches live [default: `bench-data` in the target
    /// directory, i.e. `target/bench-data`]. The test file is reused when its size matches.
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,

    /// Keep the scratch caches under the data directory (for profiling) instead of deleting
    /// them.
    #[arg(long)]
    keep_caches: bool,

    /// Also run this `model-provisioner` binary (another build, e.g. of the commit before a
    /// change, in its own target directory) in every case of every suite, interleaved with
    /// ours, and report its times and ours / it ("before").
    #[arg(long, value_name = "PATH")]
    baseline_bin: Option<PathBuf>,
}

/// The cases `mp-bench` runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Suite {
    /// Hashing a local file, repeat `ensure`, a large catalog, process start.
    Local,
    /// Downloads from nginx on loopback against curl and aria2c, and a resume after a kill.
    Http,
    /// Both, local first.
    All,
}

fn main() -> ExitCode {
    match run(&Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> anyhow::Result<()> {
    let exe = std::env::current_exe().context("cannot locate the mp-bench executable")?;
    let exe_dir = exe
        .parent()
        .context("the mp-bench executable has no parent directory")?;
    let mut cli = exe_dir.join("model-provisioner");
    if !cli.is_file() {
        bail!(
            "`{}` does not exist; build the CLI first with `cargo build --release` \
             (mp-bench runs the `model-provisioner` binary that sits next to it)",
            cli.display()
        );
    }
    let data_dir = match &args.data_dir {
        Some(dir) => dir.clone(),
        None => exe_dir
            .parent()
            .context("the mp-bench executable is not inside a target directory")?
            .join("bench-data"),
    };
    fs::create_dir_all(&data_dir)
        .with_context(|| format!("cannot create `{}`", data_dir.display()))?;
    let data_dir = fs::canonicalize(&data_dir)
        .with_context(|| format!("cannot resolve `{}`", data_dir.display()))?;
    eprintln!("mp-bench: using {}", cli.display());
    let before = match &args.baseline_bin {
        Some(path) => {
            let path = fs::canonicalize(path)
                .with_context(|| format!("`--baseline-bin {}` does not exist", path.display()))?;
            eprintln!("mp-bench: and, as before, {}", path.display());
            // Both run from fresh copies side by side, so that where and how each file was
            // written does not count (see `stage_binary`).
            let bins = data_dir.join("bins");
            cli = stage_binary(&cli, &bins.join("ours"))?;
            Some(stage_binary(&path, &bins.join("before"))?)
        }
        None => None,
    };
    let mut bench = Bench {
        cli,
        before,
        baseline_bin: args.baseline_bin.clone(),
        data_dir,
        runs: 0,
        keep_caches: args.keep_caches,
    };
    let mut report = String::new();
    if matches!(args.suite, Suite::Local | Suite::All) {
        bench.runs = args.runs.unwrap_or(5);
        report.push_str(&local_suite(args, &bench)?);
    }
    if matches!(args.suite, Suite::Http | Suite::All) {
        bench.runs = args.runs.unwrap_or(3);
        if !report.is_empty() {
            report.push('\n');
        }
        report.push_str(&http::suite(&bench, args.http_size_mib)?);
    }
    print!("{report}");
    io::stdout().flush()?;
    if let Some(out) = &args.out {
        fs::write(out, &report).with_context(|| format!("cannot write `{}`", out.display()))?;
        eprintln!("mp-bench: wrote {}", out.display());
    }
    Ok(())
}

/// The local suite; returns its Markdown report.
fn local_suite(args: &Args, bench: &Bench) -> anyhow::Result<String> {
    let size = args
        .size_mib
        .checked_mul(MIB)
        .context("--size-mib is too large")?;
    let file = bench
        .data_dir
        .join(format!("random-{}MiB.bin", args.size_mib));
    prepare_file(&file, size, SHARED, false)?;

    let load_before = measure::loadavg();
    let mut rows = Vec::new();
    let digest = bench.hash_cold_cache(&file, size, &mut rows)?;
    bench.repeat_ensure(&file, &digest, &mut rows)?;
    let index_bytes = bench.large_catalog(&file, &digest, args.entries, &mut rows)?;
    bench.process_start(&mut rows)?;
    let load = format!("{load_before} before, {} after", measure::loadavg());
    Ok(render(args, bench.runs, size, &rows, index_bytes, &load))
}

/// Wall times of one command, in the order they were taken.
#[derive(Debug, Default)]
struct Samples(Vec<Duration>);

impl Samples {
    fn sorted(&self) -> Vec<Duration> {
        let mut v = self.0.clone();
        v.sort_unstable();
        v
    }

    fn median(&self) -> Duration {
        let v = self.sorted();
        let mid = v.len() / 2;
        if v.len().is_multiple_of(2) {
            (v[mid - 1] + v[mid]) / 2
        } else {
            v[mid]
        }
    }

    fn min(&self) -> Duration {
        self.sorted()[0]
    }
}

/// What a case aims for.
#[derive(Debug, Clone, Copy)]
enum Goal {
    /// Ours / baseline, medians, at most this.
    Ratio(f64),
    /// Median wall time at most this many milliseconds.
    MaxMs(f64),
    /// Reported only.
    None,
}

#[derive(Debug)]
struct Row {
    case: String,
    ours: Samples,
    /// The same case run by `--baseline-bin`.
    before: Option<Samples>,
    baseline: Option<Samples>,
    goal: Goal,
}

impl Row {
    fn ours_over_before(&self) -> Option<f64> {
        self.before
            .as_ref()
            .map(|b| self.ours.median().as_secs_f64() / b.median().as_secs_f64())
    }

    fn ratio(&self) -> Option<f64> {
        self.baseline
            .as_ref()
            .map(|b| self.ours.median().as_secs_f64() / b.median().as_secs_f64())
    }

    fn met(&self) -> Option<bool> {
        match self.goal {
            Goal::Ratio(max) => self.ratio().map(|r| r <= max),
            Goal::MaxMs(max) => Some(ms(self.ours.median()) <= max),
            Goal::None => None,
        }
    }
}

/// Which build of `model-provisioner` runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Build {
    /// The one next to `mp-bench`.
    Ours,
    /// `--baseline-bin`.
    Before,
}

#[derive(Debug)]
struct Bench {
    cli: PathBuf,
    /// A fresh copy of `--baseline-bin` (see [`stage_binary`]).
    before: Option<PathBuf>,
    /// `--baseline-bin` as given, for the report.
    baseline_bin: Option<PathBuf>,
    data_dir: PathBuf,
    runs: u32,
    keep_caches: bool,
}

impl Bench {
    /// The binary of `build`.
    fn bin(&self, build: Build) -> &Path {
        match (build, &self.before) {
            (Build::Before, Some(before)) => before,
            _ => &self.cli,
        }
    }

    /// The builds to run: ours, and the baseline when there is one.
    fn builds(&self) -> Vec<Build> {
        let mut builds = vec![Build::Ours];
        if self.before.is_some() {
            builds.push(Build::Before);
        }
        builds
    }

    /// The builds in the order of run `run`: who goes first alternates, so that neither
    /// always runs right after the other (which measured 5–10% on millisecond cases).
    fn builds_in_run(&self, run: u32) -> Vec<Build> {
        let mut builds = self.builds();
        if run % 2 == 1 {
            builds.reverse();
        }
        builds
    }

    /// `build`'s binary with `--cache-dir <cache>` followed by `args`.
    fn cli_of(&self, build: Build, cache: &Path, args: &[&str]) -> Command {
        let mut cmd = Command::new(self.bin(build));
        cmd.arg("--cache-dir").arg(cache).args(args);
        cmd
    }

    /// Runs `f` for every build, `--runs` times, the builds interleaved within each run (see
    /// [`Bench::builds_in_run`]).
    fn each_build(
        &self,
        mut f: impl FnMut(Build) -> anyhow::Result<Duration>,
    ) -> anyhow::Result<(Samples, Option<Samples>)> {
        let mut ours = Samples::default();
        let mut before = self.before.as_ref().map(|_| Samples::default());
        for run in 0..self.runs {
            for build in self.builds_in_run(run) {
                let took = f(build)?;
                match build {
                    Build::Ours => ours.0.push(took),
                    Build::Before => before.as_mut().context("no baseline")?.0.push(took),
                }
            }
        }
        Ok((ours, before))
    }

    fn fresh_cache(&self) -> anyhow::Result<tempfile::TempDir> {
        self.scratch_dir("cache-")
    }

    /// A fresh, empty directory under the data directory, deleted on drop unless
    /// `--keep-caches`.
    fn scratch_dir(&self, prefix: &str) -> anyhow::Result<tempfile::TempDir> {
        let dir = tempfile::Builder::new()
            .prefix(prefix)
            .disable_cleanup(self.keep_caches)
            .tempdir_in(&self.data_dir)
            .with_context(|| {
                format!(
                    "cannot create a scratch directory under `{}`",
                    self.data_dir.display()
                )
            })?;
        if self.keep_caches {
            eprintln!("mp-bench: keeping {}", dir.path().display());
        }
        Ok(dir)
    }

    /// Case 1: hashing the whole file into a fresh cache, against `openssl dgst -sha256`.
    /// Returns the file's digest.
    fn hash_cold_cache(
        &self,
        file: &Path,
        size: u64,
        rows: &mut Vec<Row>,
    ) -> anyhow::Result<Digest> {
        let path = utf8(file)?;
        let mut openssl = Samples::default();
        let mut ours = Samples::default();
        let mut before = self.before.as_ref().map(|_| Samples::default());
        let mut digest: Option<Digest> = None;
        for i in 0..self.runs {
            eprintln!("mp-bench: hash, run {}/{}", i + 1, self.runs);
            let mut cmd = Command::new("openssl");
            cmd.args(["dgst", "-sha256", path]);
            let (took, out) = timed(&mut cmd, Stdout::Capture).map_err(|e| {
                match e.downcast_ref::<io::Error>() {
                    Some(io) if io.kind() == io::ErrorKind::NotFound => anyhow::anyhow!(
                        "`openssl` was not found on PATH; it is the baseline for hashing, \
                         install it (the `openssl` package) and run again"
                    ),
                    _ => e,
                }
            })?;
            openssl.0.push(took);
            let found = parse_openssl(&out)?;
            let expected = digest.get_or_insert_with(|| found.clone());
            ensure!(
                *expected == found,
                "openssl printed {found} for `{path}`, earlier {expected}"
            );
            let arg = format!("{expected}");

            for build in self.builds_in_run(i) {
                let cache = self.fresh_cache()?;
                let mut cmd = self.cli_of(
                    build,
                    cache.path(),
                    &["ensure", path, "--digest", &arg, "--json"],
                );
                let (took, out) = timed(&mut cmd, Stdout::Capture)?;
                check_ensure(&out, false, Some(size))?;
                match build {
                    Build::Ours => ours.0.push(took),
                    Build::Before => before.as_mut().context("no baseline")?.0.push(took),
                }
            }
        }
        rows.push(Row {
            case: format!(
                "sha256 of {}, fresh cache: `ensure --digest` vs `openssl dgst -sha256`",
                human_size(size)
            ),
            ours,
            before,
            baseline: Some(openssl),
            goal: Goal::Ratio(1.15),
        });
        digest.context("no runs")
    }

    /// Case 2: `ensure` again on the unchanged file, with a cache that already has it.
    fn repeat_ensure(
        &self,
        file: &Path,
        digest: &Digest,
        rows: &mut Vec<Row>,
    ) -> anyhow::Result<()> {
        let path = utf8(file)?;
        let arg = digest.to_string();
        let args = ["ensure", path, "--digest", &arg, "--json"];
        // One cache per build, each filled by its own build.
        let caches = [self.fresh_cache()?, self.fresh_cache()?];
        let cache = |build| caches[usize::from(build == Build::Before)].path();
        eprintln!("mp-bench: repeat ensure, first (untimed) ensure");
        for build in self.builds() {
            let (_, out) = timed(
                &mut self.cli_of(build, cache(build), &args),
                Stdout::Capture,
            )?;
            check_ensure(&out, false, None)?;
        }
        let (ours, before) = self.each_build(|build| {
            let (took, out) = timed(
                &mut self.cli_of(build, cache(build), &args),
                Stdout::Capture,
            )?;
            check_ensure(&out, true, Some(0))?;
            Ok(took)
        })?;
        rows.push(Row {
            case: "repeat `ensure --digest`, unchanged file, catalog of 1".to_owned(),
            ours,
            before,
            baseline: None,
            goal: Goal::MaxMs(10.0),
        });
        Ok(())
    }

    /// Case 3: `ensure` and `ls` with a catalog of `entries` synthetic entries plus the real
    /// one. Returns the size of `index.json` in bytes.
    fn large_catalog(
        &self,
        file: &Path,
        digest: &Digest,
        entries: u32,
        rows: &mut Vec<Row>,
    ) -> anyhow::Result<u64> {
        let path = utf8(file)?;
        let arg = digest.to_string();
        let ensure_args = ["ensure", path, "--digest", &arg, "--json"];
        let total = u64::from(entries) + 1;
        // One catalog per build, each completed by its own build's first `ensure`.
        let caches = [self.fresh_cache()?, self.fresh_cache()?];
        let cache = |build| caches[usize::from(build == Build::Before)].path();
        let mut index_bytes = 0;
        for build in self.builds() {
            eprintln!("mp-bench: building a catalog of {entries} entries");
            let catalog = FsCatalog::open(cache(build))?;
            let now = now_ms();
            catalog.update(|txn| {
                for i in 0..entries {
                    txn.insert(synthetic_entry(i, now));
                }
                Ok::<_, catalog_core::Error>(())
            })?;
            let (_, out) = timed(
                &mut self.cli_of(build, cache(build), &ensure_args),
                Stdout::Capture,
            )
            .with_context(|| {
                format!(
                    "`{}` could not use the catalog mp-bench wrote; if it calls the index \
                     corrupt, the two were built from different sources: run \
                     `cargo build --release --workspace` and try again",
                    self.bin(build).display()
                )
            })?;
            check_ensure(&out, false, None)?;
            if build == Build::Ours {
                let index = catalog.layout().index_path();
                index_bytes = fs::metadata(&index)
                    .with_context(|| format!("cannot stat `{}`", index.display()))?
                    .len();
            }

            // One untimed `ls --json` to check that every entry is listed.
            let (_, out) = timed(
                &mut self.cli_of(build, cache(build), &["ls", "--json"]),
                Stdout::Capture,
            )?;
            let listed: serde_json::Value =
                serde_json::from_slice(&out).context("`ls --json` did not print JSON")?;
            let n = listed.as_array().map_or(0, Vec::len);
            ensure!(
                n as u64 == total,
                "`ls --json` listed {n} entries, expected {total}"
            );
        }

        eprintln!("mp-bench: ensure with {total} entries");
        let (ours, before) = self.each_build(|build| {
            let (took, out) = timed(
                &mut self.cli_of(build, cache(build), &ensure_args),
                Stdout::Capture,
            )?;
            check_ensure(&out, true, Some(0))?;
            Ok(took)
        })?;
        rows.push(Row {
            case: format!(
                "`ensure --digest` of a present model, catalog of {}",
                group(total)
            ),
            ours,
            before,
            baseline: None,
            goal: Goal::MaxMs(20.0),
        });

        eprintln!("mp-bench: ls with {total} entries");
        let (ours, before) = self.each_build(|build| {
            let (took, _) = timed(
                &mut self.cli_of(build, cache(build), &["ls", "--json"]),
                Stdout::Null,
            )?;
            Ok(took)
        })?;
        rows.push(Row {
            case: format!("`ls --json` > /dev/null, catalog of {}", group(total)),
            ours,
            before,
            baseline: None,
            goal: Goal::None,
        });
        Ok(index_bytes)
    }

    /// For reference: the cost of starting the binary at all.
    fn process_start(&self, rows: &mut Vec<Row>) -> anyhow::Result<()> {
        let (ours, before) = self.each_build(|build| {
            let mut cmd = Command::new(self.bin(build));
            cmd.arg("--version");
            Ok(timed(&mut cmd, Stdout::Capture)?.0)
        })?;
        rows.push(Row {
            case: "process start only: `model-provisioner --version`".to_owned(),
            ours,
            before,
            baseline: None,
            goal: Goal::None,
        });
        Ok(())
    }
}
/// Copies the binary `bin` to `<dir>/model-provisioner` and returns that path.
///
/// Measured here: the same binary started 0.07–0.15 ms (7–10%) slower from the file the linker
/// wrote than from a copy of it, on every millisecond case, whatever the order of the runs.
/// Running both builds from fresh copies compares the builds, not their files.
fn stage_binary(bin: &Path, dir: &Path) -> anyhow::Result<PathBuf> {
    fs::create_dir_all(dir).with_context(|| format!("cannot create `{}`", dir.display()))?;
    let dest = dir.join("model-provisioner");
    let tmp = dir.join("model-provisioner.partial");
    fs::copy(bin, &tmp)
        .with_context(|| format!("cannot copy `{}` to `{}`", bin.display(), tmp.display()))?;
    fs::rename(&tmp, &dest).with_context(|| format!("cannot rename `{}`", tmp.display()))?;
    Ok(dest)
}

/// The digest from `SHA2-256(FILE)= <hex>` (or `SHA256(FILE)= <hex>`).
fn parse_openssl(out: &[u8]) -> anyhow::Result<Digest> {
    let text = String::from_utf8_lossy(out);
    let hex = text
        .trim_end()
        .rsplit_once("= ")
        .map(|(_, hex)| hex.trim())
        .with_context(|| format!("unexpected output from openssl: {text:?}"))?;
    format!("sha256:{hex}")
        .parse()
        .with_context(|| format!("unexpected output from openssl: {text:?}"))
}

/// Checks the `ensure --json` object: verification passed, `cached` as expected, and
/// `bytes_read` when given.
fn check_ensure(out: &[u8], cached: bool, bytes_read: Option<u64>) -> anyhow::Result<()> {
    let v: serde_json::Value =
        serde_json::from_slice(out).context("`ensure --json` did not print JSON")?;
    ensure!(
        v["verification"] == "pass",
        "`ensure` did not pass verification: {v}"
    );
    ensure!(
        v["cached"] == cached,
        "`ensure` reported cached = {}, expected {cached}: {v}",
        v["cached"]
    );
    if let Some(n) = bytes_read {
        ensure!(
            v["bytes_read"] == n,
            "`ensure` read {} bytes, expected {n}: {v}",
            v["bytes_read"]
        );
    }
    Ok(())
}

/// An entry as the file fetcher would record a verified GGUF registered in place.
fn synthetic_entry(i: u32, now: u64) -> CatalogEntry {
    let path = format!("/models/org-{i}/model-{i}.Q4_K_M.gguf");
    let digest = Digest::sha256_of(path.as_bytes());
    let size = 4_000_000_000 + u64::from(i) * 4096;
    CatalogEntry {
        id: format!("file:{path}"),
        source: path.clone(),
        local_path: PathBuf::from(path),
        lifecycle: Lifecycle::Active,
        storage: Storage::InPlace,
        digest: Some(digest.clone()),
        source_digest: None,
        verification: Verification {
            outcome: Outcome::Pass,
            computed: Some(digest),
        },
        last_verified_ms: Some(now),
        size_bytes: size,
        fingerprint: Some(Fingerprint {
            size,
            mtime_ns: i128::from(now) * 1_000_000 + i128::from(i),
            inode: 1_000_000 + u64::from(i),
            device: 2049,
            tree: None,
        }),
        created_ms: now,
        updated_ms: now,
        provenance: Some(Provenance {
            fetcher: "file".to_owned(),
            fetcher_version: env!("CARGO_PKG_VERSION").to_owned(),
            fetched_ms: now,
            resolved_revision: None,
            origin: None,
            files: Vec::new(),
            include: Vec::new(),
            exclude: Vec::new(),
        }),
        model_info: None,
        signature: None,
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn fmt_ms(d: Duration) -> String {
    let v = ms(d);
    if v >= 100.0 {
        format!("{v:.1} ms")
    } else {
        format!("{v:.2} ms")
    }
}

/// `10001` as `10,001`.
fn group(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn date() -> String {
    measure::date().unwrap_or_else(|| {
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        format!("{secs} s since the Unix epoch (UTC)")
    })
}

fn openssl_version() -> String {
    Command::new("openssl")
        .arg("version")
        .stderr(Stdio::null())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map_or_else(
            || "unknown".to_owned(),
            |o| String::from_utf8_lossy(&o.stdout).trim().to_owned(),
        )
}

fn render(args: &Args, runs: u32, size: u64, rows: &[Row], index_bytes: u64, load: &str) -> String {
    let mut md = String::new();
    let before = args.baseline_bin.as_ref().map_or_else(String::new, |b| {
        format!(
            "; before: `{}` (`--baseline-bin`), interleaved with ours",
            b.display()
        )
    });
    let _ = writeln!(
        md,
        "Machine: {}; file: {} of pseudo-random bytes, in the page cache; {} runs per case; \
         baseline: {}{before}; load average (1 min) {load}; date: {}",
        machine(),
        human_size(size),
        runs,
        openssl_version(),
        date()
    );
    let _ = writeln!(md);
    let with_before = rows.iter().any(|r| r.before.is_some());
    let (before_head, before_rule) = if with_before {
        (" before (median) | ours / before |", "---:|---:|")
    } else {
        ("", "")
    };
    let _ = writeln!(
        md,
        "| case | ours (median) | ours (min) |{before_head} baseline (median) | ratio | goal | met? |"
    );
    let _ = writeln!(md, "|---|---:|---:|{before_rule}---:|---:|---|---|");
    for row in rows {
        let baseline = row
            .baseline
            .as_ref()
            .map_or_else(|| "—".to_owned(), |b| fmt_ms(b.median()));
        let ratio = row
            .ratio()
            .map_or_else(|| "—".to_owned(), |r| format!("{r:.2}"));
        let goal = match row.goal {
            Goal::Ratio(r) => format!("ratio ≤ {r:.2}"),
            Goal::MaxMs(m) => format!("≤ {m} ms"),
            Goal::None => "—".to_owned(),
        };
        let met = match row.met() {
            Some(true) => "yes",
            Some(false) => "**no**",
            None => "—",
        };
        let before_cells = if with_before {
            format!(
                " {} | {} |",
                row.before
                    .as_ref()
                    .map_or_else(|| "—".to_owned(), |b| fmt_ms(b.median())),
                row.ours_over_before()
                    .map_or_else(|| "—".to_owned(), |r| format!("{r:.2}"))
            )
        } else {
            String::new()
        };
        let _ = writeln!(
            md,
            "| {} | {} | {} |{before_cells} {baseline} | {ratio} | {goal} | {met} |",
            row.case,
            fmt_ms(row.ours.median()),
            fmt_ms(row.ours.min()),
        );
    }
    let _ = writeln!(md);
    let _ = writeln!(
        md,
        "`index.json` with {} entries: {} bytes ({:.1} MiB).",
        group(u64::from(args.entries) + 1),
        group(index_bytes),
        index_bytes as f64 / MIB as f64
    );
    md
}
