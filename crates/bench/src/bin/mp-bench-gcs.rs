//! `mp-bench-gcs`: one large object pulled cold from fake-gcs-server on loopback, side by side:
//!
//! - ours: `model-provisioner --cache-dir <empty> ensure gs://bench/model.gguf --json
//!   --no-sign-request`, which checks the CRC32C and hashes every byte while downloading, and
//!   syncs the file before publishing it;
//! - `curl -o DIR/model.gguf <media URL>`, then `openssl dgst -sha256` of what it wrote;
//! - `google-cloud-storage`'s transfer manager (`download_chunks_concurrently`, parallel
//!   ranges in worker processes, in `.venv`), then `openssl dgst -sha256`;
//! - a bare `curl` of the object, which hashes nothing: the server's floor in the same rounds.
//!
//! The store is fake-gcs-server ([`FakeGcs`], in memory); the object is the pseudo-random file
//! `mp-bench`'s HTTP suite downloads, written once under the data directory and reused while
//! its size matches. Each round runs every client once, the order rotating from round to
//! round, each into a fresh directory after `sync` and a pause.

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context as _, ensure};
use clap::Parser;
use test_support::{FakeGcs, fake_gcs_server_binary, venv_dir};

use model_provisioner_bench::measure::{date, loadavg, machine, mbps, median, min};
use model_provisioner_bench::run::{Binaries, Stdout, remove, timed, tool_version, utf8};
use model_provisioner_bench::settle::settle;
#[path = "../testfile.rs"]
mod testfile;
use testfile::{MIB, SHARED, human_size, prepare_file};

/// Benchmark `ensure gs://…` against `curl` and `google-cloud-storage`'s transfer manager,
/// each followed by `openssl dgst -sha256`, pulling one large object from fake-gcs-server.
#[derive(Debug, Parser)]
#[command(name = "mp-bench-gcs", version, about, long_about = None)]
struct Args {
    /// Runs per client.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    runs: u32,
    /// Size of the object, in MiB.
    #[arg(long, default_value_t = 1024, value_parser = clap::value_parser!(u64).range(1..))]
    size_mib: u64,
    /// `--connections` for ours [default: the CLI's].
    #[arg(long, value_name = "N")]
    connections: Option<u16>,
    /// Worker processes of the transfer manager.
    #[arg(long, default_value_t = 8)]
    workers: u16,
    /// Where the object's file is written (once, reused while its size matches) and the
    /// scratch directories live [default: `target/bench-data`].
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Also write the Markdown report here.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
}

const BUCKET: &str = "bench";
const OBJECT: &str = "model.gguf";

/// The goals: ours / curl + openssl, ours / the transfer manager + openssl.
const GOAL_CURL: f64 = 1.0;
const GOAL_TRANSFER_MANAGER: f64 = 0.8;

/// The transfer manager's chunk: 32 MiB, its own default.
const CHUNK: u64 = 32 << 20;

/// The transfer manager's download, run by `.venv/bin/python -c`.
const TRANSFER_MANAGER: &str = r#"
import sys
from google.auth.credentials import AnonymousCredentials
from google.cloud import storage
from google.cloud.storage import transfer_manager
endpoint, bucket, name, dest, workers, chunk = sys.argv[1:]
client = storage.Client(project="bench", credentials=AnonymousCredentials(),
                        client_options={"api_endpoint": endpoint})
blob = client.bucket(bucket).blob(name)
blob.reload()
transfer_manager.download_chunks_concurrently(blob, dest, chunk_size=int(chunk),
                                              max_workers=int(workers))
"#;

/// Who pulls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Client {
    Ours,
    Curl,
    TransferManager,
    BareCurl,
}

impl Client {
    const ALL: [Client; 4] = [
        Client::Ours,
        Client::Curl,
        Client::TransferManager,
        Client::BareCurl,
    ];

    fn label(self, connections: Option<u16>, workers: u16) -> String {
        match self {
            Client::Ours => format!(
                "ours: `model-provisioner ensure gs://bench/model.gguf`, {}, checks the CRC32C and hashes every byte, syncs",
                connections.map_or("default `--connections`".to_owned(), |n| format!(
                    "`--connections {n}`"
                ))
            ),
            Client::Curl => {
                "`curl -o DIR/model.gguf <media URL>`, then `openssl dgst -sha256`".to_owned()
            }
            Client::TransferManager => format!(
                "`google-cloud-storage` transfer manager, `download_chunks_concurrently` ({workers} processes, 32 MiB chunks), then `openssl dgst -sha256`"
            ),
            Client::BareCurl => {
                "bare `curl -o DIR/model.gguf <media URL>`, no hash: the server's floor".to_owned()
            }
        }
    }
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let bins = Binaries::locate(None, args.data_dir.as_deref())?;
    let python = venv_dir().join("bin/python");
    let gcs_version = tool_version(
        &python,
        &[
            "-c",
            "import google.cloud.storage as s; print(s.__version__)",
        ],
        "run `bash scripts/install-test-deps.sh` (google-cloud-storage goes into `.venv`)",
    )?;
    let curl = tool_version("curl", &["--version"], "`apt-get install curl`")?;
    let openssl = tool_version("openssl", &["version"], "`apt-get install openssl`")?;
    let server = fake_gcs_server_binary()?;

    let size = args.size_mib * MIB;
    let file = bins
        .data_dir
        .join(format!("random-{}MiB.bin", args.size_mib));
    let digest = prepare_file(&file, size, SHARED, true)?.context("the file's digest")?;
    let hex = digest.value().to_owned();
    let gcs = FakeGcs::start()?;
    eprintln!(
        "mp-bench-gcs: putting {} into fake-gcs-server",
        human_size(size)
    );
    let meta = gcs.put_file(BUCKET, OBJECT, &file)?;
    let media = format!(
        "{}/download/storage/v1/b/{BUCKET}/o/{OBJECT}?alt=media&generation={}",
        gcs.endpoint(),
        meta["generation"].as_str().context("no generation")?
    );
    let scratch = bins.data_dir.join("gcs-scratch");

    let mut times: Vec<Vec<Duration>> = vec![Vec::new(); Client::ALL.len()];
    let load_before = loadavg();
    for round in 0..args.runs {
        for k in 0..Client::ALL.len() {
            let i = (k + round as usize) % Client::ALL.len();
            let client = Client::ALL[i];
            remove(&scratch)?;
            fs::create_dir_all(&scratch)?;
            settle(&scratch)?;
            let took = pull(
                client, &args, &bins.ours, &python, &gcs, &media, &scratch, &hex,
            )?;
            eprintln!(
                "mp-bench-gcs: round {} {client:?}: {:.2} s",
                round + 1,
                took.as_secs_f64()
            );
            times[i].push(took);
        }
    }
    remove(&scratch)?;

    let header = format!(
        "Machine: {}; store: fake-gcs-server (`{}`, in memory) on 127.0.0.1; clients: google-cloud-storage {gcs_version}, {curl}, {openssl}; {} runs per client, interleaved (the order rotating every round), each into a fresh, empty directory after `sync` and a pause; load average (1 min) {load_before} before, {} after; date: {}",
        machine(),
        server.display(),
        args.runs,
        loadavg(),
        date().unwrap_or_default()
    );
    let report = report(&args, &header, size, &times)?;
    print!("{report}");
    if let Some(out) = &args.out {
        fs::write(out, &report).with_context(|| format!("cannot write `{}`", out.display()))?;
    }
    Ok(())
}

/// The Markdown report of `times[client]`, under `header`.
fn report(args: &Args, header: &str, size: u64, times: &[Vec<Duration>]) -> anyhow::Result<String> {
    let mut report = String::new();
    writeln!(report, "{header}")?;
    writeln!(report)?;
    writeln!(
        report,
        "| one object of {}, cold | median | min | MB/s (median) | ours / this | goal | met? |",
        human_size(size)
    )?;
    writeln!(report, "|---|---|---|---|---|---|---|")?;
    let ours = median(&times[0]);
    let mut ratios = Vec::new();
    for (i, client) in Client::ALL.iter().enumerate() {
        let m = median(&times[i]);
        let ratio = ours.as_secs_f64() / m.as_secs_f64();
        let goal = match client {
            Client::Curl => Some(GOAL_CURL),
            Client::TransferManager => Some(GOAL_TRANSFER_MANAGER),
            _ => None,
        };
        let (ratio_text, goal_text, met) = match (client, goal) {
            (Client::Ours, _) => ("—".to_owned(), "—".to_owned(), "—".to_owned()),
            (_, Some(g)) => {
                ratios.push((*client, ratio, g));
                (
                    format!("{ratio:.2}"),
                    format!("ours / this ≤ {g:.1}"),
                    if ratio <= g { "yes" } else { "no" }.to_owned(),
                )
            }
            (_, None) => (format!("{ratio:.2}"), "—".to_owned(), "—".to_owned()),
        };
        writeln!(
            report,
            "| {} | {:.2} s | {:.2} s | {:.0} | {ratio_text} | {goal_text} | {met} |",
            client.label(args.connections, args.workers),
            m.as_secs_f64(),
            min(&times[i]).as_secs_f64(),
            mbps(size, m)
        )?;
    }
    writeln!(report)?;
    for (client, ratio, goal) in ratios {
        writeln!(
            report,
            "Ratio ours / {}: **{ratio:.2}** (goal ≤ {goal:.1}: {}).",
            match client {
                Client::Curl => "`curl` + `openssl dgst`",
                _ => "the transfer manager + `openssl dgst`",
            },
            if ratio <= goal { "met" } else { "not met" }
        )?;
    }
    Ok(report)
}

/// One cold pull by `client` into `scratch`, checked; its wall time.
#[expect(
    clippy::too_many_arguments,
    reason = "one call site, every piece named"
)]
fn pull(
    client: Client,
    args: &Args,
    ours: &Path,
    python: &Path,
    gcs: &FakeGcs,
    media: &str,
    scratch: &Path,
    hex: &str,
) -> anyhow::Result<Duration> {
    let dest = scratch.join(OBJECT);
    let dest_text = utf8(&dest)?;
    let hashed = |cmd: &str| {
        let mut sh = Command::new("sh");
        sh.args(["-c", &format!("{cmd} && openssl dgst -sha256 \"$DEST\"")])
            .env("DEST", dest_text);
        sh
    };
    let (took, stdout) = match client {
        Client::Ours => {
            let mut cmd = Command::new(ours);
            cmd.arg("--cache-dir")
                .arg(scratch.join("cache"))
                .args([
                    "ensure",
                    &format!("gs://{BUCKET}/{OBJECT}"),
                    "--json",
                    "--no-sign-request",
                ])
                .env("STORAGE_EMULATOR_HOST", gcs.endpoint())
                .env_remove("GOOGLE_APPLICATION_CREDENTIALS");
            if let Some(n) = args.connections {
                cmd.args(["--connections", &n.to_string()]);
            }
            timed(&mut cmd, Stdout::Capture)?
        }
        Client::Curl => timed(
            hashed(&format!("curl -sSf -o \"$DEST\" '{media}'")).env("DEST", dest_text),
            Stdout::Capture,
        )?,
        Client::TransferManager => {
            let script = format!(
                "'{}' -c \"$SCRIPT\" '{}' {BUCKET} {OBJECT} \"$DEST\" {} {CHUNK}",
                python.display(),
                gcs.endpoint(),
                args.workers
            );
            timed(
                hashed(&script).env("SCRIPT", TRANSFER_MANAGER),
                Stdout::Capture,
            )?
        }
        Client::BareCurl => timed(
            Command::new("curl").args(["-sSf", "-o", dest_text, media]),
            Stdout::Null,
        )?,
    };
    let text = String::from_utf8_lossy(&stdout);
    match client {
        Client::Ours => ensure!(
            text.contains(hex),
            "ours did not record sha256:{hex}: {text}"
        ),
        Client::Curl | Client::TransferManager => {
            ensure!(text.contains(hex), "{client:?} wrote other bytes: {text}");
        }
        Client::BareCurl => ensure!(
            fs::metadata(&dest)?.len() == args.size_mib * MIB,
            "curl wrote a file of another size"
        ),
    }
    Ok(took)
}
