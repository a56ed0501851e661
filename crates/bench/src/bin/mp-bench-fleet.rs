//! `mp-bench-fleet`: the time until a fleet of nodes is ready, through a mirror against straight
//! from the origin.
//!
//! The origin is a Hub-shaped nginx ([`HubNginx`]) serving a Transformers-shaped repository of
//! `--size-mib` in `--files` shards; its access log counts the body bytes it sends. Outside any
//! timing, one seed process ensures the repository from the origin and `mirror`s it to a
//! registry (Debian's `docker-registry`, [`Registry`]) and to a bucket (s3s-fs, [`S3Server`]).
//! Then, in each round, `--nodes` processes, each with an empty cache of its own, are started at
//! once and waited for, three times:
//!
//! - through the registry: `ensure hf:… --json` with the rule `hf:=oci://…/hf`;
//! - through the bucket: the same with `hf:=s3://fleet/hf`;
//! - from the origin: `ensure hf:… --json --no-mirror`.
//!
//! Each case reports the wall time until the last node is ready, the median node's time, the
//! bytes the origin served, and the CPU time of the nodes and of each server.

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use clap::Parser;
use serde_json::Value;
use test_support::{HubNginx, Registry, S3Server, s3s_fs_binary};

use model_provisioner_bench::hubrepo::write_transformers_repo;
use model_provisioner_bench::measure::{
    CpuWatch, ProcStat, child_ticks, date, loadavg, machine, median, min, waited_children_ticks,
};
use model_provisioner_bench::run::{Binaries, remove, s3_command, tool_version};
use model_provisioner_bench::settle::{SETTLE, settle_all};

/// Benchmark a fleet of nodes ensuring one model at once: through a registry mirror, through a
/// bucket mirror, and from the origin.
#[derive(Debug, Parser)]
#[command(name = "mp-bench-fleet", version, about, long_about = None)]
struct Args {
    /// Rounds: each runs every case once.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    runs: u32,
    /// Size of the model's weights, in MiB, split evenly over `--files` shards.
    #[arg(long, default_value_t = 1024, value_parser = clap::value_parser!(u64).range(1..))]
    size_mib: u64,
    /// Safetensors shards of the model.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u64).range(1..=64))]
    files: u64,
    /// Node processes started at once in each case.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=64))]
    nodes: u32,
    /// Where the repository is written (once, reused while its sizes match) and the node caches
    /// live [default: `target/bench-data`].
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Also write the Markdown report here.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
}

/// The repository: the same id, and so the same bytes, as `mp-bench-hf`'s.
const REPO: &str = "bench-org/big-model";
/// The bucket of the bucket mirror.
const BUCKET: &str = "fleet";

/// The servers' command names, for their CPU time.
const NGINX: &str = "nginx";
const REGISTRY: &str = "docker-registry";
const S3S_FS: &str = "s3s-fs";

/// How to install what the benchmark runs.
const HINT: &str =
    "run `bash scripts/install-test-deps.sh`, which installs nginx, docker-registry and s3s-fs";

/// Where the nodes get the model from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Case {
    Registry,
    Bucket,
    Origin,
}

impl Case {
    const ALL: [Case; 3] = [Case::Registry, Case::Bucket, Case::Origin];

    fn label(self) -> &'static str {
        match self {
            Case::Registry => "through the registry mirror (`hf:=oci://…/hf`)",
            Case::Bucket => "through the bucket mirror (`hf:=s3://fleet/hf`)",
            Case::Origin => "from the origin (`--no-mirror`)",
        }
    }

    /// The fetcher every node must record.
    fn fetcher(self) -> &'static str {
        match self {
            Case::Registry => "mirror+oci",
            Case::Bucket => "mirror+s3",
            Case::Origin => "hf-native",
        }
    }
}

/// The servers, up for the whole benchmark.
struct Servers {
    hub: HubNginx,
    registry: Registry,
    s3: S3Server,
}

impl Servers {
    fn registry_prefix(&self) -> String {
        format!("oci://{}/hf", self.registry.host())
    }

    fn bucket_prefix() -> String {
        format!("s3://{BUCKET}/hf")
    }

    /// `model-provisioner` with the S3 server's keys and endpoint and nothing of the caller's
    /// AWS settings, the Hub fixture as `HF_ENDPOINT`, no token.
    fn command(&self, bin: &Path, cache: &Path) -> Command {
        let mut cmd = s3_command(bin, self.s3.access_key(), self.s3.secret_key());
        cmd.env("AWS_ENDPOINT_URL", self.s3.endpoint())
            .env("HF_ENDPOINT", self.hub.endpoint())
            .env("HF_HOME", cache.with_extension("hf-home"))
            .env_remove("HF_TOKEN")
            .env_remove("MODEL_PROVISIONER_MIRRORS")
            .arg("--cache-dir")
            .arg(cache);
        cmd
    }

    /// The origin's log once it has stopped growing (nginx logs a request just after it
    /// answers), as the body bytes sent in all.
    fn origin_bytes(&self) -> u64 {
        let mut last = self.hub.requests().len();
        loop {
            thread::sleep(Duration::from_millis(100));
            let now = self.hub.requests().len();
            if now == last {
                return self.hub.bytes_sent("");
            }
            last = now;
        }
    }
}

/// One case of one round.
#[derive(Debug, Clone, Default)]
struct Run {
    /// From the start of the first node to the exit of the last.
    wall: Duration,
    /// Each node's time from the start of the first node to its own exit.
    nodes: Vec<Duration>,
    origin_bytes: u64,
    nodes_cpu: Duration,
    /// nginx, docker-registry, s3s-fs.
    server_cpu: [Duration; 3],
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let Binaries { ours, data_dir, .. } = Binaries::locate(None, args.data_dir.as_deref())?;
    let servers_version = format!(
        "{}, {}",
        tool_version("docker-registry", &["--version"], HINT)?,
        tool_version(s3s_fs_binary()?, &["--version"], HINT)?
    );
    let size = args.size_mib << 20;
    let shard = usize::try_from(size / args.files)?;
    let dir = data_dir.join(format!(
        "hub-repo-{}x{}MiB",
        args.files,
        args.size_mib / args.files
    ));
    eprintln!(
        "mp-bench-fleet: writing (or reusing) a {} x {} MiB repository in {}",
        args.files,
        shard >> 20,
        dir.display()
    );
    write_transformers_repo(&dir, REPO, usize::try_from(args.files)?, shard)?;
    eprintln!("mp-bench-fleet: starting the servers (nginx hashes the repository first)");
    let servers = Servers {
        hub: HubNginx::start(&[(REPO, &dir)]),
        registry: Registry::start().context("cannot start docker-registry")?,
        s3: S3Server::start().context("cannot start s3s-fs")?,
    };
    servers.s3.create_bucket(BUCKET)?;
    let total: u64 = servers.hub.repo(REPO).files().iter().map(|f| f.size).sum();
    let scratch = tempfile::Builder::new()
        .prefix("fleet-bench-")
        .tempdir_in(&data_dir)?;
    let seed_bytes = seed(&ours, &servers, scratch.path())?;

    let load_before = loadavg();
    let cpu = CpuWatch::start(ours_ticks());
    let mut runs: Vec<Vec<Run>> = vec![Vec::new(); Case::ALL.len()];
    for round in 0..args.runs as usize {
        for k in 0..Case::ALL.len() {
            // Rotate which case goes first, so that none always meets a warmer machine.
            let i = (round + k) % Case::ALL.len();
            let case = Case::ALL[i];
            settle_all(&[
                &data_dir,
                &servers.registry.storage_root(),
                &servers.s3.root(),
            ])?;
            let run = fleet(&ours, &servers, case, &args, scratch.path(), total)?;
            eprintln!(
                "mp-bench-fleet: round {}/{}: {case:?}: last node ready after {:.2} s, median \
                 node {:.2} s, origin sent {}",
                round + 1,
                args.runs,
                run.wall.as_secs_f64(),
                median(&run.nodes).as_secs_f64(),
                mb(run.origin_bytes)
            );
            runs[i].push(run);
        }
    }
    let load = format!(
        "{load_before} before, {} after; other processes used {} while the rounds ran",
        loadavg(),
        cpu.others(ours_ticks())
    );
    let report = render(
        &args,
        &servers,
        total,
        seed_bytes,
        &runs,
        &servers_version,
        &load,
    );
    print!("{report}");
    if let Some(out) = &args.out {
        fs::write(out, &report).with_context(|| format!("cannot write `{}`", out.display()))?;
    }
    Ok(())
}

/// The seed, outside any timing: the repository from the origin, then `mirror` to the registry
/// and to the bucket. Returns the bytes the origin sent it.
fn seed(ours: &Path, servers: &Servers, scratch: &Path) -> anyhow::Result<u64> {
    let cache = scratch.join("seed");
    let reference = format!("hf:{REPO}");
    servers.hub.clear_log();
    let json = run_json(servers.command(ours, &cache).args([
        "ensure",
        &reference,
        "--json",
        "--no-mirror",
    ]))?;
    ensure!(
        json["cached"] == false,
        "the seed's cache was not empty: {json}"
    );
    let sent = servers.origin_bytes();
    for prefix in [servers.registry_prefix(), Servers::bucket_prefix()] {
        eprintln!("mp-bench-fleet: mirroring the model to {prefix}");
        let json = run_json(
            servers
                .command(ours, &cache)
                .args(["mirror", &reference, &prefix, "--json"]),
        )?;
        ensure!(
            json["rule"] == format!("hf:={prefix}"),
            "`mirror` printed another rule: {json}"
        );
    }
    Ok(sent)
}

/// Runs `cmd`, which must succeed, and parses its stdout.
fn run_json(cmd: &mut Command) -> anyhow::Result<Value> {
    let out = cmd.stdin(Stdio::null()).output()?;
    check_exit(cmd, &out)?;
    serde_json::from_slice(&out.stdout).with_context(|| format!("{cmd:?} did not print JSON"))
}

fn check_exit(cmd: &Command, out: &Output) -> anyhow::Result<()> {
    if !out.status.success() {
        bail!(
            "{cmd:?} failed ({}):\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim_end()
        );
    }
    Ok(())
}

/// One timed case: `--nodes` processes started at once, each with an empty cache, then every
/// node's result checked (outside the timing) and the caches removed.
fn fleet(
    ours: &Path,
    servers: &Servers,
    case: Case,
    args: &Args,
    scratch: &Path,
    total: u64,
) -> anyhow::Result<Run> {
    let reference = format!("hf:{REPO}");
    let caches: Vec<PathBuf> = (0..args.nodes)
        .map(|n| scratch.join(format!("{case:?}-node-{n}")))
        .collect();
    let mut commands: Vec<Command> = caches
        .iter()
        .map(|cache| {
            let mut cmd = servers.command(ours, cache);
            cmd.args(["ensure", &reference, "--json"]);
            match case {
                Case::Registry => {
                    cmd.env(
                        "MODEL_PROVISIONER_MIRRORS",
                        format!("hf:={}", servers.registry_prefix()),
                    );
                }
                Case::Bucket => {
                    cmd.env(
                        "MODEL_PROVISIONER_MIRRORS",
                        format!("hf:={}", Servers::bucket_prefix()),
                    );
                }
                Case::Origin => {
                    cmd.arg("--no-mirror");
                }
            }
            cmd.stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped());
            cmd
        })
        .collect();
    servers.hub.clear_log();
    let nodes_cpu = waited_children_ticks();
    let server_cpu = [NGINX, REGISTRY, S3S_FS].map(child_ticks);

    // Every node is started before any is waited for; a thread per node notes when it exits.
    let started = Instant::now();
    let children = commands
        .iter_mut()
        .map(|cmd| cmd.spawn().with_context(|| format!("cannot run {cmd:?}")))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let waiters: Vec<_> = children
        .into_iter()
        .map(|child| thread::spawn(move || (child.wait_with_output(), started.elapsed())))
        .collect();
    let mut results = Vec::new();
    for w in waiters {
        let (out, took) = w.join().expect("a waiting thread panicked");
        results.push((out?, took));
    }
    let wall = started.elapsed();

    let ticks = |before: Option<u64>, now: Option<u64>| match (before, now) {
        (Some(b), Some(n)) => Duration::from_millis(n.saturating_sub(b) * 10),
        _ => Duration::ZERO,
    };
    let now = [NGINX, REGISTRY, S3S_FS].map(child_ticks);
    let run = Run {
        wall,
        nodes: results.iter().map(|(_, took)| *took).collect(),
        origin_bytes: servers.origin_bytes(),
        nodes_cpu: ticks(nodes_cpu, waited_children_ticks()),
        server_cpu: [0, 1, 2].map(|i| ticks(server_cpu[i], now[i])),
    };
    for ((out, _), (cmd, cache)) in results.iter().zip(commands.iter().zip(&caches)) {
        check_exit(cmd, out)?;
        let json: Value = serde_json::from_slice(&out.stdout)
            .with_context(|| format!("{cmd:?} did not print JSON"))?;
        check_node(ours, servers, case, cache, &json, total)?;
        remove(cache)?;
        remove(&cache.with_extension("hf-home"))?;
    }
    Ok(run)
}

/// What a node must hold: the whole repository, not from a cache, not failed, fetched the way
/// the case says.
fn check_node(
    ours: &Path,
    servers: &Servers,
    case: Case,
    cache: &Path,
    json: &Value,
    total: u64,
) -> anyhow::Result<()> {
    ensure!(
        json["cached"] == false && json["verification"] != "fail",
        "a node did not fetch and verify the model: {json}"
    );
    let dir = json["local_path"]
        .as_str()
        .context("`ensure --json` has no `local_path`")?;
    let got = bytes_under(Path::new(dir));
    ensure!(got == total, "`{dir}` holds {got} bytes, expected {total}");
    let entry =
        run_json(
            servers
                .command(ours, cache)
                .args(["show", &format!("hf:{REPO}"), "--json"]),
        )?;
    ensure!(
        entry["provenance"]["fetcher"] == case.fetcher(),
        "a node {} recorded another fetcher: {}",
        case.label(),
        entry["provenance"]
    );
    Ok(())
}

/// The bytes of every file under `dir`.
fn bytes_under(dir: &Path) -> u64 {
    fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .fold(0, |sum, e| {
            let p = e.path();
            sum + match fs::metadata(&p) {
                Ok(m) if m.is_dir() => bytes_under(&p),
                Ok(m) => m.len(),
                Err(_) => 0,
            }
        })
}

fn render(
    args: &Args,
    servers: &Servers,
    total: u64,
    seed_bytes: u64,
    runs: &[Vec<Run>],
    versions: &str,
    load: &str,
) -> String {
    let repo = servers.hub.repo(REPO);
    let lfs = repo.files().iter().filter(|f| f.lfs).count();
    let mut md = format!(
        "Machine: {}; model: `hf:{REPO}`, {} files ({lfs} safetensors shards, LFS, and {} small \
         files), {} in all; origin: a Hub-shaped nginx on 127.0.0.1 (`HubNginx`, 1 worker); \
         mirrors: {versions} on 127.0.0.1, seeded once before the rounds (the seed's `ensure` \
         from the origin took {} of it); {} nodes started at once in each case, each with an \
         empty cache; rounds: {}, the order of the cases rotating, each case after `sync` and {} \
         s idle; CPU: user + system seconds of the nodes and of each server during the case; \
         load average (1 min) {load}; date: {}\n\n",
        machine(),
        repo.files().len(),
        repo.files().len() - lfs,
        mb(total),
        mb(seed_bytes),
        args.nodes,
        args.runs,
        SETTLE.as_secs(),
        date().unwrap_or_else(|| "?".to_owned())
    );
    let _ = writeln!(
        md,
        "| {} nodes ensure {} | all ready (median) | all ready (min) | node (median) | origin \
         sent (median) | origin sent / model | CPU s: nodes / nginx / docker-registry / s3s-fs \
         (median) |\n|---|---:|---:|---:|---:|---:|---:|",
        args.nodes,
        mb(total)
    );
    let mut origin_wall = None;
    for (case, case_runs) in Case::ALL.iter().zip(runs) {
        let walls: Vec<Duration> = case_runs.iter().map(|r| r.wall).collect();
        let node_medians: Vec<Duration> = case_runs.iter().map(|r| median(&r.nodes)).collect();
        let mut sent: Vec<u64> = case_runs.iter().map(|r| r.origin_bytes).collect();
        sent.sort_unstable();
        let sent = sent.get(sent.len() / 2).copied().unwrap_or_default();
        let cpu = |f: &dyn Fn(&Run) -> Duration| {
            median(&case_runs.iter().map(f).collect::<Vec<_>>()).as_secs_f64()
        };
        if *case == Case::Origin {
            origin_wall = Some(median(&walls));
        }
        let _ = writeln!(
            md,
            "| {} | {:.2} s | {:.2} s | {:.2} s | {} | {:.2} | {:.1} / {:.1} / {:.1} / {:.1} |",
            case.label(),
            median(&walls).as_secs_f64(),
            min(&walls).as_secs_f64(),
            median(&node_medians).as_secs_f64(),
            mb(sent),
            sent as f64 / total as f64,
            cpu(&|r| r.nodes_cpu),
            cpu(&|r| r.server_cpu[0]),
            cpu(&|r| r.server_cpu[1]),
            cpu(&|r| r.server_cpu[2]),
        );
    }
    if let Some(origin) = origin_wall {
        md.push('\n');
        for (case, case_runs) in Case::ALL.iter().zip(runs).take(2) {
            let m = median(&case_runs.iter().map(|r| r.wall).collect::<Vec<_>>());
            let _ = writeln!(
                md,
                "All ready {}: {:.2} × the time from the origin.",
                case.label(),
                m.as_secs_f64() / origin.as_secs_f64()
            );
        }
    }
    md
}

/// `12.3 MB`, decimal.
fn mb(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1e6)
}

/// User and system time of this process, of its children waited for, and of the servers, in
/// clock ticks.
fn ours_ticks() -> Option<u64> {
    let own = ProcStat::read("self")?;
    Some(
        own.ticks.iter().sum::<u64>()
            + child_ticks(NGINX)?
            + child_ticks(REGISTRY)?
            + child_ticks(S3S_FS)?,
    )
}
