//! `mp-bench-oci`: a large model pulled cold from an OCI registry on loopback, side by side:
//!
//! - ours: `model-provisioner --cache-dir <empty> ensure oci://127.0.0.1:<port>/bench/model:v1
//!   --json`, which checks the layer's sha256 while downloading and syncs the file before
//!   publishing it;
//! - `skopeo copy docker://… dir:<empty>`, which checks every blob's digest while copying;
//! - `curl -sf -o FILE <blob URL> && openssl dgst -sha256 FILE`: the blob, then its digest
//!   by reading the file back (checked against the layer's);
//! - with `--baseline-bin`, another build of `model-provisioner` in the same rounds.
//!
//! The registry is Debian's `docker-registry` ([`Registry`]); the artifact is one OCI manifest
//! with one layer of pseudo-random bytes (the file `mp-bench`'s HTTP suite downloads, written
//! once under the data directory and reused while its size matches). Each round runs every
//! client once, the order rotating from round to round, each after `sync` and a pause.

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context as _, ensure};
use clap::Parser;
use serde_json::json;
use test_support::{OCI_EMPTY, OCI_MANIFEST, Registry};

use model_provisioner_bench::measure::{
    CpuWatch, ProcStat, child_ticks, date, loadavg, machine, mbps, median, min,
};
use model_provisioner_bench::run::{Binaries, Stdout, remove, timed, tool_version, utf8};
use model_provisioner_bench::settle::{SETTLE, settle};
#[path = "../testfile.rs"]
mod testfile;
use testfile::{MIB, SHARED, human_size, prepare_file};

/// Benchmark `ensure oci://…` against `skopeo copy` and `curl` + `openssl dgst`, pulling one
/// large layer from a registry on loopback.
#[derive(Debug, Parser)]
#[command(name = "mp-bench-oci", version, about, long_about = None)]
struct Args {
    /// Runs per client.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    runs: u32,
    /// Size of the layer, in MiB.
    #[arg(long, default_value_t = 2048, value_parser = clap::value_parser!(u64).range(1..))]
    size_mib: u64,
    /// `--connections` for ours (and before) [default: the CLI's].
    #[arg(long, value_name = "N")]
    connections: Option<u16>,
    /// Also run ours with `--connections N`, in its own row (repeatable; not part of the goals).
    #[arg(long, value_name = "N")]
    also_connections: Vec<u16>,
    /// Also run this `model-provisioner` binary (another build, e.g. of the commit before a
    /// change) in the same rounds, and report ours / it.
    #[arg(long, value_name = "PATH")]
    baseline_bin: Option<PathBuf>,
    /// Where the layer's file is written (once, reused while its size matches) and the
    /// scratch directories live [default: `target/bench-data`].
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Also write the Markdown report here.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
}

/// The repository and tag the artifact is pushed as.
const REPO: &str = "bench/model";
const TAG: &str = "v1";
/// The layer's media type: a GGUF file as a generic OCI artifact names it.
const LAYER_TYPE: &str = "application/vnd.example.gguf";
/// The manifest's `artifactType`.
const ARTIFACT_TYPE: &str = "application/vnd.example.model.v1";
/// The file name the layer carries (`org.opencontainers.image.title`).
const TITLE: &str = "model.gguf";

/// How to install the clients and the registry.
const HINT: &str = "install it (`apt-get install skopeo curl openssl docker-registry`)";

/// The goals: ours / skopeo and ours / (curl + openssl).
const GOAL_SKOPEO: f64 = 0.8;
const GOAL_CURL: f64 = 1.0;

/// Who pulls.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Client {
    /// Ours, with `--connections` when given.
    Ours(Option<u16>),
    Before,
    Skopeo,
    CurlOpenssl,
}

impl Client {
    fn label(&self, default_connections: Option<u16>) -> String {
        let connections = |n: Option<u16>| {
            n.map_or_else(
                || "default `--connections`".to_owned(),
                |n| format!("`--connections {n}`"),
            )
        };
        match self {
            Client::Ours(n) => format!(
                "ours: `model-provisioner ensure oci://…/{REPO}:{TAG}`, {}, verifies sha256, \
                 syncs",
                connections(*n)
            ),
            Client::Before => format!(
                "before (`--baseline-bin`), {}",
                connections(default_connections)
            ),
            Client::Skopeo => "`skopeo copy docker://… dir:…`, verifies the digest".to_owned(),
            Client::CurlOpenssl => {
                "`curl -sf -o FILE` of the blob, then `openssl dgst -sha256 FILE`".to_owned()
            }
        }
    }
}

/// The versions of the registry and of the other clients, for the report.
struct Versions {
    registry: String,
    clients: String,
}

/// What was pushed, and where.
struct Target {
    /// `127.0.0.1:<port>`.
    host: String,
    /// The layer's digest, `sha256:<hex>`.
    layer_digest: String,
    /// The layer's size.
    size: u64,
}

impl Target {
    fn reference(&self) -> String {
        format!("{}/{REPO}:{TAG}", self.host)
    }

    fn hex(&self) -> &str {
        self.layer_digest
            .strip_prefix("sha256:")
            .unwrap_or(&self.layer_digest)
    }
}

/// The binaries and places every run shares.
struct Setup {
    ours: PathBuf,
    before: Option<PathBuf>,
    data_dir: PathBuf,
    args: Args,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let Binaries {
        ours,
        before,
        data_dir,
    } = Binaries::locate(args.baseline_bin.as_deref(), args.data_dir.as_deref())?;
    let skopeo = tool_version("skopeo", &["--version"], HINT)?;
    let curl = tool_version("curl", &["--version"], HINT)?;
    let openssl = tool_version("openssl", &["version"], HINT)?;
    let registry_version = tool_version("docker-registry", &["--version"], HINT)?;
    let setup = Setup {
        ours,
        before,
        data_dir,
        args,
    };

    let size = setup
        .args
        .size_mib
        .checked_mul(MIB)
        .context("`--size-mib` is too large")?;
    let file = setup
        .data_dir
        .join(format!("random-{}MiB.bin", setup.args.size_mib));
    prepare_file(&file, size, SHARED, false)?;
    eprintln!("mp-bench-oci: starting docker-registry and pushing the artifact");
    let registry = Registry::start().context("cannot start docker-registry")?;
    let target = push_artifact(&registry, &file)?;
    ensure!(
        target.size == size,
        "pushed {} bytes, expected {size}",
        target.size
    );
    // The registry just wrote its copy, so it serves it from the page cache.
    let stored = registry.blob_path(&target.layer_digest);
    let stored_len = fs::metadata(&stored)
        .with_context(|| format!("the registry has no `{}`", stored.display()))?
        .len();
    ensure!(
        stored_len == size,
        "the registry stored {stored_len} bytes, expected {size}"
    );
    eprintln!(
        "mp-bench-oci: oci://{} holds {} ({})",
        target.reference(),
        human_size(size),
        target.layer_digest
    );

    let load_before = loadavg();
    let cpu = CpuWatch::start(ours_ticks());
    let (clients, times) = run_rounds(&setup, &target)?;
    let load = format!(
        "{load_before} before, {} after; other processes used {} while the rounds ran",
        loadavg(),
        cpu.others(ours_ticks())
    );
    let versions = Versions {
        registry: registry_version,
        clients: format!(
            "{skopeo}, {curl}, {openssl}",
            curl = curl.split(" (").next().unwrap_or(&curl)
        ),
    };
    let report = render(&setup, &target, &clients, &times, &versions, &load);
    print!("{report}");
    if let Some(out) = &setup.args.out {
        fs::write(out, &report).with_context(|| format!("cannot write `{}`", out.display()))?;
    }
    Ok(())
}

/// Pushes the artifact: an OCI manifest with the empty config and one layer, the file at
/// `file`, streamed from disk.
fn push_artifact(registry: &Registry, file: &Path) -> anyhow::Result<Target> {
    let started = Instant::now();
    let (layer_digest, size) = registry
        .push_blob_file(REPO, file)
        .with_context(|| format!("cannot push `{}`", file.display()))?;
    let config = b"{}";
    let config_digest = registry.push_blob(REPO, config)?;
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": ARTIFACT_TYPE,
        "config": { "mediaType": OCI_EMPTY, "digest": config_digest, "size": config.len() },
        "layers": [{
            "mediaType": LAYER_TYPE,
            "digest": layer_digest,
            "size": size,
            "annotations": { "org.opencontainers.image.title": TITLE },
        }],
    });
    let bytes = serde_json::to_vec_pretty(&manifest)?;
    registry.push_manifest(REPO, TAG, OCI_MANIFEST, &bytes)?;
    eprintln!(
        "mp-bench-oci: pushed in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(Target {
        host: registry.host(),
        layer_digest,
        size,
    })
}

/// Every client `--runs` times, in rounds whose order rotates.
fn run_rounds(setup: &Setup, target: &Target) -> anyhow::Result<(Vec<Client>, Vec<Vec<Duration>>)> {
    let mut clients = vec![Client::Ours(setup.args.connections)];
    if setup.before.is_some() {
        clients.push(Client::Before);
    }
    clients.push(Client::Skopeo);
    clients.push(Client::CurlOpenssl);
    clients.extend(
        setup
            .args
            .also_connections
            .iter()
            .map(|&n| Client::Ours(Some(n))),
    );
    let mut times: Vec<Vec<Duration>> = vec![Vec::new(); clients.len()];
    let scratch = tempfile::Builder::new()
        .prefix("oci-bench-")
        .tempdir_in(&setup.data_dir)?;
    for run in 0..setup.args.runs as usize {
        // Rotate who goes first, so that none always meets a warmer (or busier) machine.
        for k in 0..clients.len() {
            let i = (run + k) % clients.len();
            let client = &clients[i];
            let out = scratch.path().join(format!("run-{run}-{i}"));
            settle(&setup.data_dir)?;
            let took = match client {
                Client::Ours(n) => time_ours(&setup.ours, *n, target, &out)?,
                Client::Before => {
                    let bin = setup.before.as_deref().context("no baseline")?;
                    time_ours(bin, setup.args.connections, target, &out)?
                }
                Client::Skopeo => time_skopeo(target, &out)?,
                Client::CurlOpenssl => time_curl_openssl(target, &out)?,
            };
            // Outside the timing: the next run's `settle` waits for the discard.
            remove(&out)?;
            eprintln!(
                "mp-bench-oci: run {}/{}: {client:?}: {:.2} s ({:.0} MB/s)",
                run + 1,
                setup.args.runs,
                took.as_secs_f64(),
                mbps(target.size, took)
            );
            times[i].push(took);
        }
    }
    Ok((clients, times))
}

fn time_ours(
    bin: &Path,
    connections: Option<u16>,
    target: &Target,
    cache: &Path,
) -> anyhow::Result<Duration> {
    let mut cmd = Command::new(bin);
    cmd.arg("--cache-dir").arg(cache).args([
        "ensure",
        &format!("oci://{}", target.reference()),
        "--json",
    ]);
    if let Some(n) = connections {
        cmd.arg("--connections").arg(n.to_string());
    }
    let (took, stdout) = timed(&mut cmd, Stdout::Capture)?;
    let json: serde_json::Value =
        serde_json::from_slice(&stdout).context("`ensure --json` did not print JSON")?;
    ensure!(json["cached"] == false, "the cache was not cold: {json}");
    // No `--digest` was given, so the model's verification is `warn`; the layer's sha256 was
    // checked while downloading, and `computed` is what the file hashed to.
    ensure!(
        json["verification"] != "fail",
        "`ensure` failed verification: {json}"
    );
    ensure!(
        json["computed"] == target.layer_digest.as_str() && json["bytes_read"] == target.size,
        "`ensure` did not hash the whole layer to `{}`: {json}",
        target.layer_digest
    );
    let path = json["local_path"]
        .as_str()
        .context("`ensure --json` has no `local_path`")?;
    let len = fs::metadata(path)
        .with_context(|| format!("`local_path` `{path}` is missing"))?
        .len();
    ensure!(
        len == target.size,
        "`{path}` holds {len} bytes, expected {}",
        target.size
    );
    Ok(took)
}

fn time_skopeo(target: &Target, dir: &Path) -> anyhow::Result<Duration> {
    let mut cmd = Command::new("skopeo");
    cmd.args([
        "copy",
        "--quiet",
        "--src-tls-verify=false",
        &format!("docker://{}", target.reference()),
    ])
    .arg(format!("dir:{}", utf8(dir)?));
    let (took, _) = timed(&mut cmd, Stdout::Capture)?;
    let blob = dir.join(target.hex());
    let len = fs::metadata(&blob)
        .with_context(|| format!("skopeo left no `{}`", blob.display()))?
        .len();
    ensure!(
        len == target.size,
        "`{}` holds {len} bytes, expected {}",
        blob.display(),
        target.size
    );
    Ok(took)
}

fn time_curl_openssl(target: &Target, dir: &Path) -> anyhow::Result<Duration> {
    fs::create_dir_all(dir).with_context(|| format!("cannot create `{}`", dir.display()))?;
    let file = dir.join(TITLE);
    let url = format!(
        "http://{}/v2/{REPO}/blobs/{}",
        target.host, target.layer_digest
    );
    let mut cmd = Command::new("sh");
    cmd.args([
        "-c",
        "curl -sf -o \"$1\" \"$2\" && openssl dgst -sha256 \"$1\"",
        "sh",
        utf8(&file)?,
        &url,
    ]);
    let (took, stdout) = timed(&mut cmd, Stdout::Capture)?;
    let text = String::from_utf8_lossy(&stdout);
    let hex = text
        .trim_end()
        .rsplit_once("= ")
        .map(|(_, hex)| hex.trim())
        .with_context(|| format!("unexpected output from openssl: {text:?}"))?;
    ensure!(
        hex == target.hex(),
        "openssl computed sha256:{hex}, expected {}",
        target.layer_digest
    );
    Ok(took)
}

fn render(
    setup: &Setup,
    target: &Target,
    clients: &[Client],
    times: &[Vec<Duration>],
    versions: &Versions,
    load: &str,
) -> String {
    let median_of = |c: &Client| {
        clients
            .iter()
            .position(|x| x == c)
            .map(|i| median(&times[i]))
    };
    let ours = median_of(&Client::Ours(setup.args.connections)).unwrap_or_default();
    let mut md = format!(
        "Machine: {}; artifact: one OCI manifest (`artifactType` `{ARTIFACT_TYPE}`, the empty \
         config) with one layer of {} pseudo-random bytes, `{LAYER_TYPE}`, titled \
         `{TITLE}`, served by {} on 127.0.0.1 from the page cache; clients: {}; {} runs per \
         client, interleaved (the order rotating every round), each into a fresh, empty cache \
         or directory after `sync` and {} s idle; load average (1 min) {load}; date: {}\n\n",
        machine(),
        human_size(target.size),
        versions.registry,
        versions.clients,
        setup.args.runs,
        SETTLE.as_secs(),
        date().unwrap_or_else(|| "?".to_owned())
    );
    md.push_str(
        "| pull of the artifact, cold | median | min | MB/s (median) | ours / this | goal | \
         met? |\n|---|---:|---:|---:|---:|---|---|\n",
    );
    for (i, client) in clients.iter().enumerate() {
        let m = median(&times[i]);
        let (ratio, goal) = match client {
            Client::Skopeo => (
                Some(ours.as_secs_f64() / m.as_secs_f64()),
                Some(GOAL_SKOPEO),
            ),
            Client::CurlOpenssl => (Some(ours.as_secs_f64() / m.as_secs_f64()), Some(GOAL_CURL)),
            Client::Before => (Some(ours.as_secs_f64() / m.as_secs_f64()), None),
            Client::Ours(_) => (None, None),
        };
        let met = match (ratio, goal) {
            (Some(r), Some(g)) if r <= g => "yes".to_owned(),
            (Some(_), Some(_)) => "**no**".to_owned(),
            _ => "—".to_owned(),
        };
        let _ = writeln!(
            md,
            "| {} | {:.2} s | {:.2} s | {:.0} | {} | {} | {met} |",
            client.label(setup.args.connections),
            m.as_secs_f64(),
            min(&times[i]).as_secs_f64(),
            mbps(target.size, m),
            ratio.map_or_else(|| "—".to_owned(), |r| format!("{r:.2}")),
            goal.map_or_else(|| "—".to_owned(), |g| format!("ours / this ≤ {g:.1}")),
        );
    }
    md.push('\n');
    for (client, goal, name) in [
        (Client::Skopeo, GOAL_SKOPEO, "`skopeo copy`"),
        (Client::CurlOpenssl, GOAL_CURL, "`curl` + `openssl dgst`"),
    ] {
        if let Some(m) = median_of(&client) {
            let r = ours.as_secs_f64() / m.as_secs_f64();
            let _ = writeln!(
                md,
                "Ratio ours / {name}: **{r:.2}** (goal ≤ {goal:.1}: {}).",
                if r <= goal { "met" } else { "**not met**" }
            );
        }
    }
    md
}

/// User and system time of this process, of its children waited for, and of the registry
/// (its child still running), in clock ticks.
fn ours_ticks() -> Option<u64> {
    let own = ProcStat::read("self")?;
    Some(own.ticks.iter().sum::<u64>() + child_ticks("docker-registry")?)
}
