//! `mp-bench-signing`: how long reading and verifying a `model.sig` bundle takes for a model
//! of many files whose digests are known (the catalog has them), so no file is hashed.
//!
//! The key is a P-256 key `openssl` makes; the bundle is signed by `mp_signing::sign` over
//! `--files` synthetic `(path, sha256)` pairs. Each run reads the bundle (`Bundle::read`: JSON,
//! base64, the statement and its model digest) and verifies it (`verify`: the ECDSA signature
//! over the statement, then every file against the statement), timed apart and together.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context as _, ensure};
use catalog_core::{Digest, SafeRelPath};
use clap::Parser;
use model_provisioner_bench::measure::{self, machine};
use mp_signing::{Bundle, Policy, PublicKey, Signer, sign, verify};

/// Time reading and verifying a model-signing bundle of a many-file model.
#[derive(Debug, Parser)]
#[command(name = "mp-bench-signing", version, about, long_about = None)]
struct Args {
    /// How many files the signed model has.
    #[arg(long, default_value_t = 10_000)]
    files: usize,

    /// How many times each case is run.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..))]
    runs: u32,

    /// Also write the Markdown report to this file.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let dir = tempfile::tempdir()?;
    let key = dir.path().join("signer.key");
    let public = dir.path().join("signer.pub");
    let status = Command::new("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
        ])
        .arg(&key)
        .status()
        .context("run openssl (install it with scripts/install-test-deps.sh)")?;
    ensure!(status.success(), "openssl genpkey failed");
    let status = Command::new("openssl")
        .args(["ec", "-pubout", "-in"])
        .arg(&key)
        .arg("-out")
        .arg(&public)
        .status()?;
    ensure!(status.success(), "openssl ec -pubout failed");

    let files: Vec<(SafeRelPath, Digest)> = (0..args.files)
        .map(|i| {
            let path = format!(
                "shards/{:03}/model-{i:05}-of-{:05}.safetensors",
                i / 1000,
                args.files
            );
            Ok((SafeRelPath::new(path)?, Digest::sha256_of(&i.to_le_bytes())))
        })
        .collect::<anyhow::Result<_>>()?;
    let signer = Signer::key(&std::fs::read(&key)?)?;
    let policy = Policy::Key(PublicKey::from_pem(&std::fs::read(&public)?)?);

    let (mut signing, mut reading, mut verifying, mut both) = (vec![], vec![], vec![], vec![]);
    let mut bundle = Vec::new();
    for _ in 0..args.runs {
        let start = Instant::now();
        bundle = sign(&files, &signer, "bench-model")?;
        signing.push(start.elapsed());

        let start = Instant::now();
        let read = Bundle::read(&bundle)?;
        let after_read = start.elapsed();
        let outcome = verify(&read, &policy, &files).map_err(|e| anyhow::anyhow!("{e}"))?;
        let total = start.elapsed();
        ensure!(
            outcome.files == args.files,
            "verified {} files of {}",
            outcome.files,
            args.files
        );
        reading.push(after_read);
        verifying.push(total.saturating_sub(after_read));
        both.push(total);
    }

    let mut report = String::new();
    writeln!(
        report,
        "`mp-bench-signing --files {} --runs {}`, {}, load {}",
        args.files,
        args.runs,
        machine(),
        measure::loadavg()
    )?;
    writeln!(
        report,
        "bundle: {} bytes for {} files, no file hashed",
        bundle.len(),
        args.files
    )?;
    writeln!(report)?;
    writeln!(report, "| step | median | min |")?;
    writeln!(report, "|---|---:|---:|")?;
    for (name, times) in [
        ("read (`Bundle::read`)", &reading),
        ("verify (`verify`: signature and every file)", &verifying),
        ("read and verify", &both),
        ("sign (`sign`)", &signing),
    ] {
        writeln!(
            report,
            "| {name} | {} | {} |",
            ms(measure::median(times)),
            ms(measure::min(times))
        )?;
    }
    print!("{report}");
    if let Some(out) = args.out {
        std::fs::write(&out, &report).with_context(|| format!("write {}", out.display()))?;
    }
    Ok(())
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}
