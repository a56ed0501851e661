//! `mp-bench-azure`: one large blob pulled cold from Azurite on loopback, side by side:
//!
//! - ours: `model-provisioner --cache-dir <empty> ensure az://devstoreaccount1/bench/model.gguf
//!   --endpoint-url URL --json`, with the account key in the environment, which hashes every
//!   byte while downloading and syncs the file before publishing it;
//! - `curl -o FILE URL?SAS`, then `openssl dgst -sha256` of the file;
//! - the Python client (`azure-storage-blob`, in `.venv`): `download_blob(max_concurrency=N)`
//!   into a file, then `openssl dgst -sha256`;
//! - `curl -o /dev/null URL?SAS`: the floor Azurite (on Node, one process) sets for anyone.
//!
//! Each round runs every client once, the order rotating from round to round, each after
//! `sync` and a pause.

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context as _, ensure};
use clap::Parser;
use test_support::{AZURITE_ACCOUNT, AZURITE_KEY, Azurite, azurite_binary, venv_dir};

use model_provisioner_bench::measure::{CpuSplit, date, loadavg, machine, mbps, median, min};
use model_provisioner_bench::run::{Binaries, Stdout, remove, timed, tool_version};
use model_provisioner_bench::settle::{SETTLE, settle};
#[path = "../testfile.rs"]
mod testfile;
use testfile::{MIB, SHARED, human_size, prepare_file};

/// Benchmark `ensure az://…` against `curl` and the Python client, each followed by
/// `openssl dgst -sha256`, pulling one large blob from Azurite on loopback.
#[derive(Debug, Parser)]
#[command(name = "mp-bench-azure", version, about, long_about = None)]
struct Args {
    /// Runs per client.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    runs: u32,
    /// Size of the blob, in MiB.
    #[arg(long, default_value_t = 1024, value_parser = clap::value_parser!(u64).range(1..))]
    size_mib: u64,
    /// `max_concurrency` of the Python client.
    #[arg(long, default_value_t = 4)]
    max_concurrency: u16,
    /// Where the blob's file is written (once, reused while its size matches) and the scratch
    /// directories live [default: `target/bench-data`].
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Also write the Markdown report here.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
}

const CONTAINER: &str = "bench";
const BLOB: &str = "model.gguf";

/// The goals: ours / curl + openssl, ours / the Python client + openssl.
const GOAL_CURL: f64 = 1.0;
const GOAL_PYTHON: f64 = 0.8;

/// Azurite's process, for its CPU time.
const SERVER: &str = "node";

const HINT: &str = "run scripts/install-test-deps.sh (curl, openssl, Azurite, and the venv with azure-storage-blob)";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Client {
    Ours,
    Curl,
    Python,
    Floor,
}

impl Client {
    fn label(self, args: &Args) -> String {
        match self {
            Client::Ours => format!(
                "ours: `model-provisioner ensure az://{AZURITE_ACCOUNT}/{CONTAINER}/{BLOB}`, hashes every byte, syncs"
            ),
            Client::Curl => "`curl -o FILE URL?SAS`, then `openssl dgst -sha256`".to_owned(),
            Client::Python => format!(
                "`azure-storage-blob` `download_blob(max_concurrency={})`, then `openssl dgst -sha256`",
                args.max_concurrency
            ),
            Client::Floor => "floor: `curl -o /dev/null URL?SAS` (Azurite's own pace)".to_owned(),
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Run {
    wall: Duration,
    client_cpu: Duration,
    server_cpu: Duration,
}

struct Setup {
    ours: PathBuf,
    python: PathBuf,
    endpoint: String,
    url: String,
    data_dir: PathBuf,
    size: u64,
    hex: String,
    args: Args,
}

/// A command for `program` with none of the caller's Azure settings.
fn clean(program: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut cmd = Command::new(program);
    for (name, _) in std::env::vars_os() {
        let text = name.to_string_lossy();
        if text.starts_with("AZURE_") || text.starts_with("IDENTITY_") {
            cmd.env_remove(&name);
        }
    }
    cmd
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let Binaries { ours, data_dir, .. } = Binaries::locate(None, args.data_dir.as_deref())?;
    let python = venv_dir().join("bin/python");
    let versions = format!(
        "{}, {}, azure-storage-blob {}",
        tool_version("curl", &["--version"], HINT)?
            .lines()
            .next()
            .unwrap_or_default(),
        tool_version("openssl", &["version"], HINT)?,
        tool_version(
            &python,
            &["-c", "import azure.storage.blob as b; print(b.__version__)"],
            HINT
        )?
    );
    let size = args
        .size_mib
        .checked_mul(MIB)
        .context("`--size-mib` is too large")?;
    let file = data_dir.join(format!("random-{}MiB.bin", args.size_mib));
    let hex = prepare_file(&file, size, SHARED, true)?
        .context("the file was not hashed")?
        .value()
        .to_owned();

    eprintln!("mp-bench-azure: starting Azurite and putting the blob");
    let azurite = Azurite::start().context("cannot start Azurite")?;
    let started = Instant::now();
    azurite.put_file(CONTAINER, BLOB, &file)?;
    eprintln!(
        "mp-bench-azure: put {} in {:.1} s",
        human_size(size),
        started.elapsed().as_secs_f64()
    );
    let server_version = tool_version(azurite_binary()?, &["--version"], HINT)?;
    let url = format!(
        "{}/{AZURITE_ACCOUNT}/{CONTAINER}/{BLOB}?{}",
        azurite.endpoint(),
        azurite.sas(CONTAINER, Some(BLOB), "r")
    );
    let setup = Setup {
        ours,
        python,
        endpoint: azurite.endpoint(),
        url,
        data_dir,
        size,
        hex,
        args,
    };
    let load_before = loadavg();
    let clients = [Client::Ours, Client::Curl, Client::Python, Client::Floor];
    let times = run_rounds(&setup, &clients)?;
    let load = format!("{load_before} before, {} after", loadavg());
    let report = render(&setup, &clients, &times, &server_version, &versions, &load);
    print!("{report}");
    if let Some(out) = &setup.args.out {
        fs::write(out, &report).with_context(|| format!("cannot write `{}`", out.display()))?;
    }
    drop(azurite);
    Ok(())
}

fn run_rounds(setup: &Setup, clients: &[Client]) -> anyhow::Result<Vec<Vec<Run>>> {
    let mut times = vec![Vec::new(); clients.len()];
    let scratch = tempfile::Builder::new()
        .prefix("azure-bench-")
        .tempdir_in(&setup.data_dir)?;
    for run in 0..setup.args.runs as usize {
        for k in 0..clients.len() {
            let i = (run + k) % clients.len();
            let client = clients[i];
            let out = scratch.path().join(format!("run-{run}-{i}"));
            settle(&setup.data_dir)?;
            let cpu = CpuSplit::start(SERVER);
            let took = match client {
                Client::Ours => time_ours(setup, &out)?,
                Client::Curl => time_copy(setup, &out, "curl -sSf -o \"$2/f\" \"$1\"")?,
                Client::Python => time_copy(
                    setup,
                    &out,
                    &format!(
                        "\"$3\" -c 'import sys; from azure.storage.blob import BlobClient; \
                         f = open(sys.argv[2], \"wb\"); \
                         BlobClient.from_blob_url(sys.argv[1]).download_blob(max_concurrency={}).readinto(f); \
                         f.close()' \"$1\" \"$2/f\"",
                        setup.args.max_concurrency
                    ),
                )?,
                Client::Floor => time_floor(setup)?,
            };
            let (client_cpu, server_cpu) = cpu.split();
            remove(&out)?;
            eprintln!(
                "mp-bench-azure: run {}/{}: {client:?}: {:.2} s ({:.0} MB/s), CPU {:.2} s, Azurite {:.2} s",
                run + 1,
                setup.args.runs,
                took.as_secs_f64(),
                mbps(setup.size, took),
                client_cpu.as_secs_f64(),
                server_cpu.as_secs_f64()
            );
            times[i].push(Run {
                wall: took,
                client_cpu,
                server_cpu,
            });
        }
    }
    Ok(times)
}

fn time_ours(setup: &Setup, cache: &Path) -> anyhow::Result<Duration> {
    let mut cmd = clean(&setup.ours);
    cmd.env("AZURE_STORAGE_ACCOUNT", AZURITE_ACCOUNT)
        .env("AZURE_STORAGE_KEY", AZURITE_KEY)
        .arg("--cache-dir")
        .arg(cache)
        .args([
            "ensure",
            &format!("az://{AZURITE_ACCOUNT}/{CONTAINER}/{BLOB}"),
            "--endpoint-url",
            &setup.endpoint,
            "--json",
        ]);
    let (took, stdout) = timed(&mut cmd, Stdout::Capture)?;
    let json: serde_json::Value =
        serde_json::from_slice(&stdout).context("`ensure --json` did not print JSON")?;
    ensure!(json["cached"] == false, "the cache was not cold: {json}");
    ensure!(
        json["computed"] == format!("sha256:{}", setup.hex),
        "`ensure` computed {}, expected sha256:{}",
        json["computed"],
        setup.hex
    );
    Ok(took)
}

/// Runs `script` (`$1` the URL, `$2` the directory, `$3` the venv's python), then `openssl dgst
/// -sha256` of `$2/f`, and checks the digest.
fn time_copy(setup: &Setup, dir: &Path, script: &str) -> anyhow::Result<Duration> {
    fs::create_dir_all(dir)?;
    let mut cmd = clean("sh");
    cmd.args([
        "-c",
        &format!("{script} && openssl dgst -sha256 -r \"$2/f\""),
        "sh",
        &setup.url,
    ])
    .arg(dir)
    .arg(&setup.python);
    let (took, stdout) = timed(&mut cmd, Stdout::Capture)?;
    let text = String::from_utf8_lossy(&stdout);
    ensure!(
        text.split_whitespace().next() == Some(setup.hex.as_str()),
        "the copy hashed to {text:?}, expected {}",
        setup.hex
    );
    Ok(took)
}

fn time_floor(setup: &Setup) -> anyhow::Result<Duration> {
    let mut cmd = clean("curl");
    cmd.args(["-sSf", "-o", "/dev/null", &setup.url]);
    Ok(timed(&mut cmd, Stdout::Capture)?.0)
}

fn render(
    setup: &Setup,
    clients: &[Client],
    times: &[Vec<Run>],
    server: &str,
    versions: &str,
    load: &str,
) -> String {
    let mut md = format!(
        "Machine: {}; store: Azurite {server} on 127.0.0.1 (Node, one process), its data in a \
         temporary directory; clients: {versions}; {} runs per client, interleaved (the order \
         rotating every round), each into a fresh, empty cache or directory after `sync` and {} \
         s idle; CPU: user + system seconds of the client's processes and of Azurite during the \
         run; load average (1 min) {load}; date: {}\n\n",
        machine(),
        setup.args.runs,
        SETTLE.as_secs(),
        date().unwrap_or_else(|| "?".to_owned())
    );
    let walls = |runs: &[Run]| runs.iter().map(|r| r.wall).collect::<Vec<_>>();
    let ours = median(&walls(&times[0]));
    let _ = writeln!(
        md,
        "| one blob of {}, cold | median | min | MB/s (median) | ours / this | goal | met? | CPU s: client / Azurite (median) |\n|---|---:|---:|---:|---:|---|---|---:|",
        human_size(setup.size)
    );
    let mut summary = String::new();
    for (i, client) in clients.iter().enumerate() {
        let m = median(&walls(&times[i]));
        let ratio = ours.as_secs_f64() / m.as_secs_f64();
        let goal = match client {
            Client::Curl => Some(GOAL_CURL),
            Client::Python => Some(GOAL_PYTHON),
            _ => None,
        };
        let met = match goal {
            Some(g) if ratio <= g => "yes",
            Some(_) => "**no**",
            None => "—",
        };
        let _ = writeln!(
            md,
            "| {} | {:.2} s | {:.2} s | {:.0} | {} | {} | {met} | {:.1} / {:.1} |",
            client.label(&setup.args),
            m.as_secs_f64(),
            min(&walls(&times[i])).as_secs_f64(),
            mbps(setup.size, m),
            if *client == Client::Ours {
                "—".to_owned()
            } else {
                format!("{ratio:.2}")
            },
            goal.map_or_else(|| "—".to_owned(), |g| format!("ours / this ≤ {g:.1}")),
            median(&times[i].iter().map(|r| r.client_cpu).collect::<Vec<_>>()).as_secs_f64(),
            median(&times[i].iter().map(|r| r.server_cpu).collect::<Vec<_>>()).as_secs_f64(),
        );
        if let Some(g) = goal {
            let _ = writeln!(
                summary,
                "ratio ours / {client:?}: **{ratio:.2}** (goal ≤ {g:.1}: {}).",
                if ratio <= g { "met" } else { "**not met**" }
            );
        }
    }
    md.push('\n');
    md.push_str(&summary);
    md
}
