//! `mp-bench-rate`: how close `--limit-rate` keeps a transfer to its cap, and that no cap costs
//! nothing, side by side in one run:
//!
//! - capped downloads: `model-provisioner --cache-dir <empty> ensure http://…/FILE --digest D
//!   --json --limit-rate CAP` from nginx on loopback (the default 4 connections, one file), at
//!   each cap, of two sizes of file, the larger one about 8–10 s at the cap;
//! - capped uploads: `model-provisioner --cache-dir C push <id> s3://bench/m<N>/ --json
//!   --limit-rate CAP` of a model folder (the file and a small `config.json`) to a fresh s3s-fs,
//!   at the same caps and sizes;
//! - uncapped: the largest download by ours with no cap, by `curl -s -o FILE` (the floor), and
//!   with `--baseline-bin`, by that build; the largest push by ours with no cap and by that build.
//!
//! Each capped transfer gives three rates:
//!
//! - the whole command's: bytes over the wall time of the process, start, first requests,
//!   burst allowance and what follows the last byte (the final sync; the store assembling a
//!   multipart upload) included;
//! - the steady one, on which the goal (within 10% of the cap) is judged: while the command
//!   runs, the bytes on the wire are sampled every 100 ms (the counters of the server's TCP
//!   connections, as `ss -tin` prints them: what nginx sent and the client's kernel
//!   acknowledged; what s3s-fs received), and the rate is the bytes between the first sample at
//!   10% of the file and the first at 90%, over the time between them;
//! - the difference of the two sizes over the difference of their wall times in the same round,
//!   in which what a transfer pays once cancels out, but not what grows with the file after
//!   its last byte.
//!
//! The files are the pseudo-random ones the other benchmarks use (`random-<N>MiB.bin`, stream
//! 0), written once under the data directory and reused while their sizes match, hard-linked
//! into nginx's root and into a model folder that each build copies into a cache of its own
//! (`ensure DIR --copy`), which it pushes from. Each round runs every case once, the order
//! rotating from round to round, each after `sync` and a pause.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context as _, ensure};
use clap::Parser;
use serde_json::Value;
use test_support::{Nginx, S3Server, s3s_fs_binary};

use model_provisioner_bench::measure::{
    self, CpuWatch, ProcStat, child_ticks, date, first_words, loadavg, machine, nginx_version, secs,
};
use model_provisioner_bench::run::{
    Binaries, Sampled, Stdout, s3_command, timed, timed_sampling, tool_version,
};
use model_provisioner_bench::settle::{SETTLE, settle_all};
#[path = "../testfile.rs"]
mod testfile;
use testfile::{MIB, SHARED, human_size, prepare_file};

/// Benchmark `--limit-rate`: capped downloads from nginx and pushes to s3s-fs against their cap,
/// and an uncapped download against `curl`.
#[derive(Debug, Parser)]
#[command(name = "mp-bench-rate", version, about, long_about = None)]
struct Args {
    /// Rounds: every case runs once per round.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    runs: u32,
    /// Also run this `model-provisioner` binary (another build, e.g. of the commit before the
    /// cap) uncapped in the same rounds, and report ours / it.
    #[arg(long, value_name = "PATH")]
    baseline_bin: Option<PathBuf>,
    /// Where the files are written (once, reused while their sizes match) and the caches and
    /// scratch directories live [default: `target/bench-data`].
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Also write the Markdown report here.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
}

/// A cap, and the larger of the two sizes measured at it (the smaller is half of it).
#[derive(Debug, Clone, Copy)]
struct Cap {
    /// As `--limit-rate` takes it.
    text: &'static str,
    bytes_per_second: u64,
    large_mib: u64,
}

/// The caps measured: about 10 s and 8 s for the larger size.
const CAPS: [Cap; 2] = [
    Cap {
        text: "20M",
        bytes_per_second: 20_000_000,
        large_mib: 192,
    },
    Cap {
        text: "200M",
        bytes_per_second: 200_000_000,
        large_mib: 1536,
    },
];

/// The goal: the steady rate within this share of the cap, either way.
const GOAL: f64 = 0.10;

/// How often the bytes on the wire are sampled.
const EVERY: Duration = Duration::from_millis(100);

/// The percentages of the file between which the steady rate is taken: from the first sample
/// at `STEADY.0`% of it to the first at `STEADY.1`%.
const STEADY: (u64, u64) = (10, 90);

/// iproute2's `ss`, which reads the counters of the server's TCP connections.
const SS: &str = "ss";

/// Where the pushes go, `m<N>/` under it.
const BUCKET: &str = "bench";
/// The model folder's files besides the weights.
const CONFIG_JSON: &[u8] = br#"{"architectures": ["BenchModel"], "hidden_size": 4096}"#;
/// The weights' name in the folder.
const WEIGHTS: &str = "weights.bin";

/// The servers' command names, for their CPU time.
const S3S_FS: &str = "s3s-fs";

/// How to install what the benchmark runs.
const HINT: &str = "run `bash scripts/install-test-deps.sh`, which installs nginx, curl and s3s-fs \
                    (and `apt-get install iproute2` for `ss`)";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Direction {
    /// `ensure http://…` from nginx.
    Download,
    /// `push <id> s3://…` to s3s-fs.
    Upload,
}

impl Direction {
    fn name(self) -> &'static str {
        match self {
            Direction::Download => "download",
            Direction::Upload => "push",
        }
    }
}

/// Who runs an uncapped case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Client {
    Ours,
    /// `--baseline-bin`.
    Before,
    /// `curl -s -o FILE`: downloads only.
    Curl,
}

/// One case of a round.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Case {
    /// Ours at `CAPS[cap]`, of the larger size or the smaller one.
    Capped {
        dir: Direction,
        cap: usize,
        large: bool,
    },
    /// The largest size, with no cap.
    Uncapped { dir: Direction, client: Client },
}

/// One size of payload: the file, served and in a model folder registered in the caches.
#[derive(Debug)]
struct Payload {
    mib: u64,
    size: u64,
    /// `sha256:<hex>`.
    digest: String,
    /// The file's name in nginx's root.
    name: String,
    /// The model folder's id in ours' cache, and in before's.
    ours_id: String,
    before_id: Option<String>,
}

impl Payload {
    /// What a push sends: the weights and `config.json`.
    fn pushed(&self) -> u64 {
        self.size + CONFIG_JSON.len() as u64
    }

    fn bytes(&self, dir: Direction) -> u64 {
        match dir {
            Direction::Download => self.size,
            Direction::Upload => self.pushed(),
        }
    }
}

/// One timed run.
#[derive(Debug, Clone)]
struct Sample {
    wall: Duration,
    /// From the bytes on the wire.
    flow: Flow,
}

impl Sample {
    /// A run that moved a file of `total` bytes.
    fn of(sampled: &Sampled, total: u64) -> Sample {
        Sample {
            wall: sampled.wall,
            flow: Flow::of(&sampled.samples, total),
        }
    }
}

/// What the samples of the bytes on the wire say.
#[derive(Debug, Clone, Copy, Default)]
struct Flow {
    /// Bytes per second between the first sample at 10% of the file and the first at 90%.
    steady: Option<f64>,
    /// When the bytes on the wire last grew, since spawn.
    last: Option<Duration>,
}

impl Flow {
    /// Reads `samples` of the bytes on the wire of a transfer of a file of `total` bytes.
    fn of(samples: &[(Duration, u64)], total: u64) -> Flow {
        let mut most = 0;
        let mut seen = Vec::with_capacity(samples.len());
        let mut last = None;
        for &(t, bytes) in samples {
            if bytes > most {
                most = bytes;
                last = Some(t);
            }
            seen.push((t, most));
        }
        let first_at = |percent: u64| {
            let bytes = total / 100 * percent;
            seen.iter().copied().find(|&(_, b)| b >= bytes)
        };
        let steady = match (first_at(STEADY.0), first_at(STEADY.1)) {
            (Some((t0, b0)), Some((t1, b1))) if t1 > t0 => {
                Some((b1 - b0) as f64 / t1.saturating_sub(t0).as_secs_f64())
            }
            _ => None,
        };
        Flow { steady, last }
    }
}

/// What every run shares.
struct Setup {
    ours: PathBuf,
    before: Option<PathBuf>,
    data_dir: PathBuf,
    scratch: PathBuf,
    ours_cache: PathBuf,
    before_cache: PathBuf,
    nginx: Nginx,
    /// By size in MiB.
    payloads: Vec<Payload>,
}

impl Setup {
    fn payload(&self, mib: u64) -> anyhow::Result<&Payload> {
        self.payloads
            .iter()
            .find(|p| p.mib == mib)
            .with_context(|| format!("no payload of {mib} MiB"))
    }

    /// The payload of `case`.
    fn payload_of(&self, case: Case) -> anyhow::Result<&Payload> {
        match case {
            Case::Capped { cap, large, .. } => {
                let mib = CAPS[cap].large_mib;
                self.payload(if large { mib } else { mib / 2 })
            }
            Case::Uncapped { .. } => self.payload(largest_mib()),
        }
    }
}

fn largest_mib() -> u64 {
    CAPS.iter().map(|c| c.large_mib).max().unwrap_or_default()
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let Binaries {
        ours,
        before,
        data_dir,
    } = Binaries::locate(args.baseline_bin.as_deref(), args.data_dir.as_deref())?;
    let versions = format!(
        "{}, {}; clients: {}, {}",
        nginx_version(),
        tool_version(s3s_fs_binary()?, &["--version"], HINT)?,
        first_words(&tool_version("curl", &["--version"], HINT)?, 2),
        tool_version(SS, &["-V"], HINT)?
    );
    let scratch = tempfile::Builder::new()
        .prefix("rate-bench-")
        .tempdir_in(&data_dir)?;
    let nginx = Nginx::start();
    let mut setup = Setup {
        ours,
        before,
        data_dir,
        scratch: scratch.path().to_owned(),
        ours_cache: scratch.path().join("cache-ours"),
        before_cache: scratch.path().join("cache-before"),
        nginx,
        payloads: Vec::new(),
    };
    let mut sizes: Vec<u64> = CAPS
        .iter()
        .flat_map(|c| [c.large_mib / 2, c.large_mib])
        .collect();
    sizes.sort_unstable();
    sizes.dedup();
    for mib in sizes {
        let payload = prepare(&setup, mib)?;
        setup.payloads.push(payload);
    }

    let cases = cases(setup.before.is_some());
    let load_before = loadavg();
    let cpu = CpuWatch::start(ours_ticks(&setup.nginx));
    let (samples, round_loads) = run_rounds(&setup, &cases, args.runs)?;
    let load = format!(
        "{load_before} before, {} after, at the start of each round {}; other processes used {} \
         while the rounds ran",
        loadavg(),
        round_loads.join(", "),
        cpu.others(ours_ticks(&setup.nginx))
    );
    let facts = format!(
        "Machine: {}; files: pseudo-random, in the page cache; servers on 127.0.0.1: {versions} \
         (nginx with 1 worker and `sendfile on`; a fresh s3s-fs with an empty bucket for every \
         push); {} rounds, every case once per round, the order rotating, each after `sync` and \
         {} s idle; load average (1 min) {load}; date: {}",
        machine(),
        args.runs,
        SETTLE.as_secs(),
        date().unwrap_or_else(|| "?".to_owned())
    );
    let report = render(&setup, &cases, &samples, &facts);
    print!("{report}");
    if let Some(out) = &args.out {
        fs::write(out, &report).with_context(|| format!("cannot write `{}`", out.display()))?;
    }
    Ok(())
}

/// The set-up of one size, outside any timing: the file (written unless it is there, hashed),
/// hard-linked into nginx's root and into a model folder with a `config.json`, which each
/// build copies into its cache.
fn prepare(setup: &Setup, mib: u64) -> anyhow::Result<Payload> {
    let size = mib * MIB;
    let name = format!("random-{mib}MiB.bin");
    let file = setup.data_dir.join(&name);
    let digest = prepare_file(&file, size, SHARED, true)?
        .context("the file was not hashed")?
        .to_string();
    link(&file, &setup.nginx.root().join(&name))?;
    let folder = setup.scratch.join(format!("model-{mib}MiB"));
    fs::create_dir_all(&folder).with_context(|| format!("cannot create `{}`", folder.display()))?;
    link(&file, &folder.join(WEIGHTS))?;
    fs::write(folder.join("config.json"), CONFIG_JSON)?;
    let pushed = size + CONFIG_JSON.len() as u64;
    let ours_id = register(&setup.ours, &setup.ours_cache, &folder, pushed)?;
    let before_id = match &setup.before {
        Some(bin) => Some(register(bin, &setup.before_cache, &folder, pushed)?),
        None => None,
    };
    eprintln!(
        "mp-bench-rate: {} ({digest}) served as `{name}` and, with a `config.json`, `{ours_id}` \
         in the cache",
        human_size(size)
    );
    Ok(Payload {
        mib,
        size,
        digest,
        name,
        ours_id,
        before_id,
    })
}

/// `bin --cache-dir cache ensure folder --copy --json`: the folder's id in that cache, which
/// now owns a copy of it, hashed (a folder takes no `--digest`, so the result is `warn`, with
/// the digest it computed).
fn register(bin: &Path, cache: &Path, folder: &Path, bytes: u64) -> anyhow::Result<String> {
    let mut cmd = Command::new(bin);
    cmd.arg("--cache-dir")
        .arg(cache)
        .arg("ensure")
        .arg(folder)
        .args(["--copy", "--json"]);
    let (_, stdout) = timed(&mut cmd, Stdout::Capture)?;
    let json: Value =
        serde_json::from_slice(&stdout).context("`ensure --json` did not print JSON")?;
    ensure!(
        json["verification"] != "fail"
            && json["computed"].is_string()
            && json["bytes_read"] == bytes
            && json["storage"] == "cache",
        "`ensure --copy` did not hash the folder into the cache: {json}"
    );
    Ok(json["id"]
        .as_str()
        .context("`ensure --json` has no `id`")?
        .to_owned())
}

/// A hard link, never a copy: every client reads the same bytes from the same place.
fn link(from: &Path, to: &Path) -> anyhow::Result<()> {
    fs::hard_link(from, to).with_context(|| {
        format!(
            "cannot link `{}` to `{}` (the data directory must be one file system)",
            from.display(),
            to.display()
        )
    })
}

/// Every case of a round, in the order of the first.
fn cases(before: bool) -> Vec<Case> {
    let mut cases = Vec::new();
    for dir in [Direction::Download, Direction::Upload] {
        for cap in 0..CAPS.len() {
            for large in [false, true] {
                cases.push(Case::Capped { dir, cap, large });
            }
        }
    }
    for dir in [Direction::Download, Direction::Upload] {
        let mut clients = vec![Client::Ours];
        if before {
            clients.push(Client::Before);
        }
        if dir == Direction::Download {
            clients.push(Client::Curl);
        }
        cases.extend(
            clients
                .into_iter()
                .map(|client| Case::Uncapped { dir, client }),
        );
    }
    cases
}

/// Every case `runs` times, in rounds whose order rotates; returns the samples by case and the
/// load average at the start of each round.
fn run_rounds(
    setup: &Setup,
    cases: &[Case],
    runs: u32,
) -> anyhow::Result<(Vec<Vec<Sample>>, Vec<String>)> {
    let mut samples = vec![Vec::new(); cases.len()];
    let mut loads = Vec::new();
    for run in 0..runs as usize {
        loads.push(loadavg());
        for k in 0..cases.len() {
            // Rotate who goes first, so that none always meets a warmer (or busier) machine.
            let i = (run + k) % cases.len();
            let case = cases[i];
            let sample = run_case(setup, case)?;
            let bytes = setup.payload_of(case)?.bytes(direction(case));
            let flow = format!(
                ", steady {}, last byte on the wire {} before exit",
                sample
                    .flow
                    .steady
                    .map_or_else(|| "?".to_owned(), |r| format!("{:.1} MB/s", r / 1e6)),
                sample.flow.last.map_or_else(
                    || "?".to_owned(),
                    |t| format!("{:.2} s", (sample.wall.saturating_sub(t)).as_secs_f64())
                )
            );
            eprintln!(
                "mp-bench-rate: round {}/{runs}: {case:?}: {:.2} s ({:.1} MB/s){flow}; load {}",
                run + 1,
                sample.wall.as_secs_f64(),
                rate(bytes, sample.wall) / 1e6,
                loadavg()
            );
            samples[i].push(sample);
        }
    }
    Ok((samples, loads))
}

fn direction(case: Case) -> Direction {
    match case {
        Case::Capped { dir, .. } | Case::Uncapped { dir, .. } => dir,
    }
}

/// One timed run of `case`, after `sync` and a pause; checks what it produced. A capped run is
/// sampled as it goes.
fn run_case(setup: &Setup, case: Case) -> anyhow::Result<Sample> {
    let payload = setup.payload_of(case)?;
    let (client, cap) = match case {
        Case::Capped { cap, .. } => (Client::Ours, Some(CAPS[cap].text)),
        Case::Uncapped { client, .. } => (client, None),
    };
    let (bin, cache, id) = match client {
        Client::Before => (
            setup.before.as_deref().context("no baseline")?,
            &setup.before_cache,
            payload.before_id.as_deref().context("no baseline id")?,
        ),
        Client::Ours | Client::Curl => (&*setup.ours, &setup.ours_cache, &*payload.ours_id),
    };
    let sampled = match direction(case) {
        Direction::Download => {
            let out = tempfile::Builder::new()
                .prefix("out-")
                .tempdir_in(&setup.scratch)?;
            let url = setup.nginx.url(&format!("files/{}", payload.name));
            settle_all(&[&setup.data_dir])?;
            if client == Client::Curl {
                let file = out.path().join(&payload.name);
                let mut cmd = Command::new("curl");
                cmd.arg("-s").arg("-o").arg(&file).arg(&url);
                let mut wire = Wire::sent(setup.nginx.port());
                let sampled = timed_sampling(&mut cmd, EVERY, || wire.sample())?;
                let got = fs::metadata(&file)?.len();
                ensure!(
                    got == payload.size,
                    "curl wrote {got} bytes, expected {}",
                    payload.size
                );
                return Ok(Sample::of(&sampled, payload.size));
            }
            let mut cmd = Command::new(bin);
            cmd.arg("--cache-dir").arg(out.path()).args([
                "ensure",
                &url,
                "--digest",
                &payload.digest,
                "--json",
            ]);
            if let Some(cap) = cap {
                cmd.args(["--limit-rate", cap]);
            }
            let mut wire = Wire::sent(setup.nginx.port());
            let sampled = timed_sampling(&mut cmd, EVERY, || wire.sample())?;
            let json: Value = serde_json::from_slice(&sampled.stdout)
                .context("`ensure --json` did not print JSON")?;
            ensure!(
                json["verification"] == "pass"
                    && json["cached"] == false
                    && json["bytes_read"] == payload.size,
                "`ensure` did not download and verify the whole file: {json}"
            );
            sampled
        }
        Direction::Upload => {
            let server = S3Server::start().context("cannot start s3s-fs")?;
            server.create_bucket(BUCKET)?;
            settle_all(&[&setup.data_dir, &server.root()])?;
            let mut cmd = s3_command(bin, server.access_key(), server.secret_key());
            cmd.env("AWS_ENDPOINT_URL", server.endpoint())
                .arg("--cache-dir")
                .arg(cache)
                .args([
                    "push",
                    id,
                    &format!("s3://{BUCKET}/m{}/", payload.mib),
                    "--json",
                ]);
            if let Some(cap) = cap {
                cmd.args(["--limit-rate", cap]);
            }
            let mut wire = Wire::received(server.port());
            let sampled = timed_sampling(&mut cmd, EVERY, || wire.sample())?;
            let json: Value = serde_json::from_slice(&sampled.stdout)
                .context("`push --json` did not print JSON")?;
            ensure!(
                json["files"] == 2 && json["bytes_uploaded"] == payload.pushed(),
                "`push` did not send the whole folder: {json}"
            );
            // Outside the timing: the weights landed whole.
            let key = format!("m{}/{WEIGHTS}", payload.mib);
            let head =
                server.request("HEAD", &server.presign("HEAD", BUCKET, &key, &[]), &[], &[])?;
            ensure!(
                head.status == 200
                    && head.header("content-length") == Some(&*payload.size.to_string()),
                "`HEAD s3://{BUCKET}/{key}` answered {} with {:?} bytes",
                head.status,
                head.header("content-length")
            );
            sampled
        }
    };
    Ok(Sample::of(&sampled, payload.size))
}

/// The payload bytes that have crossed the TCP connections of a server's port, from the
/// server's side, as `ss -tin` reports them (`bytes_acked` for what it sent, `bytes_received`
/// for what it received). A connection that closes keeps the count it last had.
#[derive(Debug)]
struct Wire {
    port: u16,
    /// `bytes_acked` or `bytes_received`.
    field: &'static str,
    /// The last count of each connection seen, by peer address.
    seen: BTreeMap<String, u64>,
}

impl Wire {
    /// What nginx sent, as far as the client's kernel acknowledged it.
    fn sent(port: u16) -> Wire {
        Wire {
            port,
            field: "bytes_acked",
            seen: BTreeMap::new(),
        }
    }

    /// What s3s-fs received.
    fn received(port: u16) -> Wire {
        Wire {
            port,
            field: "bytes_received",
            seen: BTreeMap::new(),
        }
    }

    /// The bytes of every connection seen so far.
    fn sample(&mut self) -> u64 {
        let out = Command::new(SS)
            .args(["-tinH", &format!("( sport = :{} )", self.port)])
            .stderr(Stdio::null())
            .output();
        if let Ok(out) = out {
            read_ss(
                &String::from_utf8_lossy(&out.stdout),
                self.field,
                &mut self.seen,
            );
        }
        self.seen.values().sum()
    }
}

/// Reads `field` of every connection in what `ss -tinH` printed (a line per socket, its peer
/// last, then an indented line of its counters) into `seen`, by peer.
fn read_ss(text: &str, field: &str, seen: &mut BTreeMap<String, u64>) {
    let mut peer = None;
    for line in text.lines() {
        if line.starts_with(char::is_whitespace) {
            let count = line.split_whitespace().find_map(|w| {
                w.strip_prefix(field)
                    .and_then(|v| v.strip_prefix(':'))
                    .and_then(|v| v.parse::<u64>().ok())
            });
            if let (Some(peer), Some(count)) = (peer.take(), count) {
                let last = seen.entry(peer).or_insert(0);
                *last = (*last).max(count);
            }
        } else {
            peer = line.split_whitespace().last().map(str::to_owned);
        }
    }
}

/// Bytes per second.
fn rate(bytes: u64, wall: Duration) -> f64 {
    bytes as f64 / wall.as_secs_f64()
}

/// The steady rate of one round: the difference of the two sizes over the difference of their
/// wall times; `None` when the larger one was not slower.
fn steady(small: (u64, Duration), large: (u64, Duration)) -> Option<f64> {
    let dt = large.1.checked_sub(small.1)?;
    (!dt.is_zero()).then(|| (large.0 - small.0) as f64 / dt.as_secs_f64())
}

/// The middle value (the upper one of the two middle ones for an even count); zero for none.
fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or_default()
}

/// What a row of the capped table holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Seconds,
    /// A rate, shown with its ratio to the cap.
    Rate,
    /// The rate the goal is judged on.
    Goal,
}

/// The report as it is written: the tables, and the verdicts that follow them.
struct Report<'a> {
    cases: &'a [Case],
    samples: &'a [Vec<Sample>],
    /// `| round 1 | round 2 |…` and its rule.
    rounds: (String, String),
    md: String,
    verdict: String,
}

impl Report<'_> {
    /// The runs of `case`, in the order of the rounds.
    fn runs(&self, case: Case) -> &[Sample] {
        self.cases
            .iter()
            .position(|&c| c == case)
            .map_or(&[][..], |i| self.samples[i].as_slice())
    }

    /// One row of the capped table: the values of the rounds, their median, and for a rate
    /// the median over the cap; for the goal's rate, a verdict too.
    fn capped_row(
        &mut self,
        what: &str,
        label: &str,
        values: &[Option<f64>],
        kind: Kind,
        cap: f64,
    ) {
        let known: Vec<f64> = values.iter().flatten().copied().collect();
        let m = median(&known);
        let show = |v: f64| match kind {
            Kind::Seconds => format!("{v:.2} s"),
            Kind::Rate | Kind::Goal => mbps(v),
        };
        let shown: Vec<String> = values
            .iter()
            .map(|v| v.map_or_else(|| "?".to_owned(), show))
            .collect();
        let within = !known.is_empty() && (m / cap - 1.0).abs() <= GOAL;
        let (m_text, ratio, goal, met) = match kind {
            Kind::Seconds => (show(m), "—".to_owned(), "—".to_owned(), "—"),
            Kind::Rate => (show(m), format!("{:.3}", m / cap), "—".to_owned(), "—"),
            Kind::Goal => (
                format!("**{}**", show(m)),
                format!("**{:.3}**", m / cap),
                format!(
                    "{:.0}–{:.0} MB/s",
                    cap / 1e6 * (1.0 - GOAL),
                    cap / 1e6 * (1.0 + GOAL)
                ),
                if within { "yes" } else { "**no**" },
            ),
        };
        let _ = writeln!(
            self.md,
            "| {what}, {label} |{} {m_text} | {ratio} | {goal} | {met} |",
            cells(&shown)
        );
        if kind == Kind::Goal {
            let _ = writeln!(
                self.verdict,
                "{what}: steady {} MB/s, {:.3} × the cap (goal within ±{:.0}%: {}).",
                mbps(m),
                m / cap,
                GOAL * 100.0,
                if within { "met" } else { "**not met**" }
            );
        }
    }

    /// The capped table: for each direction and cap, both sizes' rates and the difference.
    fn capped(&mut self, setup: &Setup) {
        let (header, rule) = self.rounds.clone();
        let _ = writeln!(
            self.md,
            "| capped, ours |{header} median | median / cap | goal | met? |\n|---|{rule}---:|---:|---|---|"
        );
        for dir in [Direction::Download, Direction::Upload] {
            for (c, cap) in CAPS.iter().enumerate() {
                let case = |large| Case::Capped { dir, cap: c, large };
                let (Ok(small), Ok(large)) =
                    (setup.payload_of(case(false)), setup.payload_of(case(true)))
                else {
                    continue;
                };
                let capped = cap.bytes_per_second as f64;
                let what = format!("{} at {} MB/s", dir.name(), mbps(capped));
                for (payload, is_large) in [(small, false), (large, true)] {
                    let runs = self.runs(case(is_large)).to_vec();
                    let bytes = payload.bytes(dir);
                    let size = human_size(payload.size);
                    let walls: Vec<Option<f64>> =
                        runs.iter().map(|r| Some(r.wall.as_secs_f64())).collect();
                    self.capped_row(
                        &what,
                        &format!("{size}: wall"),
                        &walls,
                        Kind::Seconds,
                        capped,
                    );
                    let whole: Vec<Option<f64>> =
                        runs.iter().map(|r| Some(rate(bytes, r.wall))).collect();
                    let label = format!("{size}: bytes / wall, MB/s");
                    self.capped_row(&what, &label, &whole, Kind::Rate, capped);
                    let steadies: Vec<Option<f64>> = runs.iter().map(|r| r.flow.steady).collect();
                    let kind = if is_large { Kind::Goal } else { Kind::Rate };
                    let label = format!("{size}: steady, 10% → 90% on the wire, MB/s");
                    self.capped_row(&what, &label, &steadies, kind, capped);
                    let after: Vec<Option<f64>> = runs
                        .iter()
                        .map(|r| r.flow.last.map(|t| r.wall.saturating_sub(t).as_secs_f64()))
                        .collect();
                    let label = format!("{size}: from the last byte on the wire to exit");
                    self.capped_row(&what, &label, &after, Kind::Seconds, capped);
                }
                let differences: Vec<Option<f64>> = self
                    .runs(case(false))
                    .iter()
                    .zip(self.runs(case(true)))
                    .map(|(s, l)| steady((small.bytes(dir), s.wall), (large.bytes(dir), l.wall)))
                    .collect();
                let label = format!(
                    "({} − {}) / difference of walls, MB/s",
                    human_size(large.size),
                    human_size(small.size)
                );
                self.capped_row(&what, &label, &differences, Kind::Rate, capped);
            }
        }
        self.md.push('\n');
    }

    /// The uncapped table: each client's wall times and rates, and ours / it.
    fn uncapped(&mut self, setup: &Setup) {
        let (header, rule) = self.rounds.clone();
        let Ok(largest) = setup.payload(largest_mib()) else {
            return;
        };
        let _ = writeln!(
            self.md,
            "| uncapped, {}: wall |{header} median | MB/s, bytes / wall (median) | MB/s, steady \
             on the wire (median) | ours / this |\n|---|{rule}---:|---:|---:|---:|",
            human_size(largest.size)
        );
        for dir in [Direction::Download, Direction::Upload] {
            let walls = |runs: &[Sample]| runs.iter().map(|r| r.wall).collect::<Vec<_>>();
            let ours = Case::Uncapped {
                dir,
                client: Client::Ours,
            };
            let ours_median = measure::median(&walls(self.runs(ours)));
            for client in [Client::Ours, Client::Before, Client::Curl] {
                let case = Case::Uncapped { dir, client };
                if !self.cases.contains(&case) {
                    continue;
                }
                let runs = self.runs(case);
                let ws = walls(runs);
                let m = measure::median(&ws);
                let steady: Vec<f64> = runs.iter().filter_map(|r| r.flow.steady).collect();
                let label = match (dir, client) {
                    (Direction::Download, Client::Ours) => {
                        "ours: `ensure http://… --digest D`, default `--connections`, no cap"
                    }
                    (Direction::Upload, Client::Ours) => "ours: `push <id> s3://…`, no cap",
                    (_, Client::Before) => "before (`--baseline-bin`), no cap",
                    (_, Client::Curl) => "`curl -s -o FILE`, no verification: the floor",
                };
                let ratio = ours_median.as_secs_f64() / m.as_secs_f64();
                let row = format!(
                    "| {}: {label} |{} {} | {} | {} | {} |",
                    dir.name(),
                    cells(&ws.iter().copied().map(secs).collect::<Vec<_>>()),
                    secs(m),
                    mbps(rate(largest.bytes(dir), m)),
                    if steady.is_empty() {
                        "?".to_owned()
                    } else {
                        mbps(median(&steady))
                    },
                    if client == Client::Ours {
                        "—".to_owned()
                    } else {
                        format!("{ratio:.2}")
                    }
                );
                let _ = writeln!(self.md, "{row}");
                if client != Client::Ours {
                    let _ = writeln!(
                        self.verdict,
                        "{} with no cap: ours / {}: {ratio:.2}.",
                        dir.name(),
                        if client == Client::Curl {
                            "`curl -o`"
                        } else {
                            "before"
                        }
                    );
                }
            }
        }
        self.md.push('\n');
    }
}

fn render(setup: &Setup, cases: &[Case], samples: &[Vec<Sample>], facts: &str) -> String {
    let runs = samples.first().map_or(0, Vec::len);
    let header = (1..=runs).fold(String::new(), |mut s, r| {
        let _ = write!(s, " round {r} |");
        s
    });
    let mut report = Report {
        cases,
        samples,
        rounds: (header, "---:|".repeat(runs)),
        md: format!("{facts}\n\n"),
        verdict: String::new(),
    };
    report.capped(setup);
    report.uncapped(setup);
    report.md.push_str(&report.verdict);
    report.md
}

/// Markdown cells: ` a | b |`.
fn cells(values: &[String]) -> String {
    values.iter().fold(String::new(), |mut s, v| {
        let _ = write!(s, " {v} |");
        s
    })
}

/// Decimal megabytes per second, from bytes per second.
fn mbps(bytes_per_second: f64) -> String {
    format!("{:.1}", bytes_per_second / 1e6)
}

/// User and system time of this process, of its children waited for, of nginx and of the
/// s3s-fs still running, in clock ticks.
fn ours_ticks(nginx: &Nginx) -> Option<u64> {
    let own = ProcStat::read("self")?.ticks.iter().sum::<u64>();
    let pid_file = nginx.root().parent()?.join("nginx.pid");
    let pid = fs::read_to_string(pid_file).ok()?;
    let nginx = ProcStat::read(pid.trim())?;
    Some(own + nginx.ticks[0] + nginx.ticks[1] + child_ticks(S3S_FS)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_steady_rate_cancels_what_both_sizes_pay_once() {
        let s = Duration::from_secs_f64;
        // 0.3 s of start and end on both, 10 MB/s in between.
        let rate = steady((50_000_000, s(5.3)), (100_000_000, s(10.3))).unwrap();
        assert!((rate - 10_000_000.0).abs() < 1.0, "{rate}");
        assert_eq!(steady((50, s(2.0)), (100, s(2.0))), None);
        assert_eq!(steady((50, s(3.0)), (100, s(2.0))), None);
    }

    #[test]
    fn every_cap_has_two_sizes_and_the_largest_runs_uncapped() {
        let cases = cases(true);
        assert_eq!(cases.len(), CAPS.len() * 2 * 2 + 3 + 2);
        assert!(CAPS.iter().all(|c| c.large_mib % 2 == 0));
        assert_eq!(largest_mib(), 1536);
    }
}
