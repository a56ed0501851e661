//! `mp-bench-hf`: `model-provisioner ensure hf:…` against `hf download`, side by side, on the
//! same Hugging Face–compatible server (olah on loopback) and the same fixture repository.
//!
//! Every run starts from cold caches: a fresh `--cache-dir` for us, a fresh `--cache-dir` for
//! `hf`. We check the sha256 of every LFS file while downloading and record every file's
//! sha256; `hf` checks sizes only.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::Parser;
use test_support::{HfRepoBuilder, Olah};

/// Benchmark `ensure hf:…` against `hf download`.
#[derive(Debug, Parser)]
struct Args {
    /// Runs per tool.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Number of weight files in the fixture repository.
    #[arg(long, default_value_t = 5)]
    files: usize,
    /// Size of each weight file, in MiB.
    #[arg(long, default_value_t = 110)]
    file_mib: usize,
    /// `--parallel-files` for `model-provisioner` (its default when not given).
    #[arg(long)]
    parallel_files: Option<u16>,
    /// Also write the Markdown report here.
    #[arg(long)]
    out: Option<PathBuf>,
}

const REPO: &str = "bench-org/big-model";

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let ours = std::env::current_exe()?
        .parent()
        .context("the benchmark has no directory")?
        .join("model-provisioner");
    if !ours.exists() {
        bail!(
            "`{}` is missing: run `cargo build --release` first",
            ours.display()
        );
    }
    eprintln!(
        "mp-bench-hf: starting olah and building a {} x {} MiB repository",
        args.files, args.file_mib
    );
    let olah = Olah::start();
    let mut builder = HfRepoBuilder::new(REPO)
        .random_file("config.json", 2_000)
        .random_file("tokenizer.json", 50_000);
    for i in 1..=args.files {
        builder = builder.random_file(
            &format!("model-{i:05}-of-{:05}.safetensors", args.files),
            args.file_mib << 20,
        );
    }
    olah.add_repo(builder);
    let total_mib = args.files * args.file_mib;
    let scratch = tempfile::tempdir()?;

    let mut ours_times = Vec::new();
    let mut hf_times = Vec::new();
    for run in 0..args.runs {
        // Alternate who goes first, so that neither always meets a warmer server.
        for first in [run % 2 == 0, run % 2 == 1] {
            if first {
                ours_times.push(time_ours(
                    &ours,
                    args.parallel_files,
                    &olah,
                    &scratch.path().join(format!("ours-{run}")),
                )?);
            } else {
                hf_times.push(time_hf(&olah, &scratch.path().join(format!("hf-{run}")))?);
            }
        }
        eprintln!("mp-bench-hf: run {} of {} done", run + 1, args.runs);
    }
    let (om, hm) = (median(&mut ours_times), median(&mut hf_times));
    let ratio = om.as_secs_f64() / hm.as_secs_f64();
    let report = format!(
        "Machine: {} cores; repository: {} files, {total_mib} MiB of LFS weights plus 2 small files, served by olah on 127.0.0.1; cold caches every run; {} runs each\n\n\
| case | median | min | MB/s (median) | sha256 checked |\n|---|---:|---:|---:|---|\n\
| `model-provisioner ensure hf:{REPO}` | {} | {} | {:.0} | every file |\n\
| `hf download {REPO}` | {} | {} | {:.0} | none (sizes only) |\n\n\
Ratio ours / `hf download`: **{ratio:.2}** (goal ≤ 1.0: {}).\n",
        std::thread::available_parallelism().map_or(0, std::num::NonZero::get),
        args.files,
        args.runs,
        ms(om),
        ms(min(&ours_times)),
        mbps(total_mib, om),
        ms(hm),
        ms(min(&hf_times)),
        mbps(total_mib, hm),
        if ratio <= 1.0 { "met" } else { "**not met**" },
    );
    print!("{report}");
    if let Some(out) = args.out {
        std::fs::write(out, &report)?;
    }
    Ok(())
}

fn time_ours(
    bin: &Path,
    parallel_files: Option<u16>,
    olah: &Olah,
    cache: &Path,
) -> anyhow::Result<Duration> {
    let hf_home = cache.with_extension("hf-home");
    let mut cmd = Command::new(bin);
    cmd.args(["--cache-dir"])
        .arg(cache)
        .args(["ensure", &format!("hf:{REPO}"), "--json"]);
    if let Some(n) = parallel_files {
        cmd.arg("--parallel-files").arg(n.to_string());
    }
    let started = Instant::now();
    let out = cmd
        .env("HF_ENDPOINT", olah.endpoint())
        .env("HF_HOME", &hf_home)
        .stdin(Stdio::null())
        .output()?;
    let elapsed = started.elapsed();
    if !out.status.success() {
        bail!(
            "model-provisioner failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let json: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    if json["cached"] != false {
        bail!("the cache was not cold: {json}");
    }
    let _ = std::fs::remove_dir_all(cache);
    Ok(elapsed)
}

fn time_hf(olah: &Olah, cache: &Path) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let out = olah
        .hf()
        .args(["download", REPO, "--cache-dir"])
        .arg(cache)
        .stdin(Stdio::null())
        .output()?;
    let elapsed = started.elapsed();
    if !out.status.success() {
        bail!(
            "hf download failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let _ = std::fs::remove_dir_all(cache);
    Ok(elapsed)
}

fn median(times: &mut [Duration]) -> Duration {
    times.sort();
    times[times.len() / 2]
}

fn min(times: &[Duration]) -> Duration {
    times.iter().copied().min().unwrap_or_default()
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1000.0)
}

fn mbps(mib: usize, d: Duration) -> f64 {
    (mib as f64) * 1.048_576 / d.as_secs_f64()
}
