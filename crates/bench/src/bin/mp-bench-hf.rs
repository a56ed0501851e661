//! `mp-bench-hf`: `model-provisioner ensure hf:…` against `hf download`, side by side, on the
//! same Hugging Face–compatible server and the same repository, on two servers:
//!
//! - `olah` on loopback, a Python mirror serving a git-lfs repo (it caps both clients at
//!   20–40 MB/s: the comparison there says that checking every byte costs nothing);
//! - `nginx`: [`HubNginx`], a Hub-shaped nginx (LFS files redirected to a blob host), fast
//!   enough for the clients themselves to be what is measured.
//!
//! Every run starts from cold caches: a fresh `--cache-dir` for us, a fresh `--cache-dir` for
//! `hf`. We check the sha256 of every LFS file while downloading and record every file's
//! sha256; `hf` checks sizes only. With `--baseline-bin`, a second build of
//! `model-provisioner` (an older commit, say) runs in the same rounds, so that before and after
//! are measured under the same conditions.
//!
//! Every run of every client also reports its peak resident set size, through GNU time (see
//! [`GNU_TIME`] for why that route).

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use clap::{Parser, ValueEnum};
use test_support::{HfRepoBuilder, HubNginx, Olah};

use model_provisioner_bench::hubrepo::write_transformers_repo;
use model_provisioner_bench::measure::{
    GNU_TIME, gnu_time_version, loadavg, mbps, median, min, peak_rss, under_gnu_time,
};
use model_provisioner_bench::run::Binaries;
use model_provisioner_bench::settle::{SETTLE, settle};

/// Benchmark `ensure hf:…` against `hf download`, on olah and on a Hub-shaped nginx.
#[derive(Debug, Parser)]
#[command(name = "mp-bench-hf", version, about, long_about = None)]
struct Args {
    /// Which server(s) to run against.
    #[arg(long, value_enum, default_value_t = Server::Both)]
    server: Server,
    /// Runs per client.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    runs: u32,
    /// Number of weight files in olah's repository.
    #[arg(long, default_value_t = 5)]
    files: usize,
    /// Size of each weight file in olah's repository, in MiB.
    #[arg(long, default_value_t = 110)]
    file_mib: usize,
    /// Number of safetensors shards in the nginx repository.
    #[arg(long, default_value_t = 4)]
    nginx_files: usize,
    /// Size of each shard in the nginx repository, in MiB.
    #[arg(long, default_value_t = 256)]
    nginx_file_mib: usize,
    /// `--parallel-files` for `model-provisioner` (its default when not given).
    #[arg(long)]
    parallel_files: Option<u16>,
    /// Also run this `model-provisioner` binary (another build, e.g. of the commit before a
    /// change) in the same rounds, and report ours / it.
    #[arg(long, value_name = "PATH")]
    baseline_bin: Option<PathBuf>,
    /// Where the nginx repository's files are written (once, reused while their sizes match)
    /// and the scratch caches live [default: `target/bench-data`].
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Also write the Markdown report here.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
}

/// The servers `mp-bench-hf` runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Server {
    /// olah, a Python Hub mirror, serving a git-lfs repository.
    Olah,
    /// A Hub-shaped nginx: LFS files redirected to a blob host.
    Nginx,
    /// Both, olah first.
    Both,
}

const REPO: &str = "bench-org/big-model";

/// The goal for our peak resident memory on the nginx repository (four 256 MiB shards fetched
/// in parallel): below this.
const NGINX_RSS_GOAL: u64 = 256 << 20;

/// Who downloads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Client {
    Ours,
    Before,
    Hf,
}

/// The server of one suite: where `HF_ENDPOINT` points and how to run `hf` against it.
enum Hub {
    Olah(Olah),
    Nginx(HubNginx),
}

impl Hub {
    fn endpoint(&self) -> String {
        match self {
            Hub::Olah(o) => o.endpoint(),
            Hub::Nginx(n) => n.endpoint(),
        }
    }

    fn hf(&self) -> Command {
        match self {
            Hub::Olah(o) => o.hf(),
            Hub::Nginx(n) => n.hf(),
        }
    }

    fn describe(&self) -> &'static str {
        match self {
            Hub::Olah(_) => "olah 0.5.4 on 127.0.0.1 (a git-lfs repo; it ignores `Range`)",
            Hub::Nginx(_) => {
                "a Hub-shaped nginx on 127.0.0.1 (`HubNginx`: 1 worker, `sendfile on`; LFS files \
                 answered with 302 to a blob host, `localhost`, that serves `Range`)"
            }
        }
    }
}

/// The binaries and places every suite shares.
struct Setup {
    ours: PathBuf,
    before: Option<PathBuf>,
    data_dir: PathBuf,
    /// `/usr/bin/time --version`'s first line.
    gnu_time: String,
    args: Args,
}

/// One timed run: its wall time and the client's peak resident set size, in bytes.
#[derive(Debug, Clone, Copy)]
struct Run {
    took: Duration,
    peak_rss: u64,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let Binaries {
        ours,
        before,
        data_dir,
    } = Binaries::locate(args.baseline_bin.as_deref(), args.data_dir.as_deref())?;
    let gnu_time = gnu_time_version()?;
    let setup = Setup {
        ours,
        before,
        data_dir,
        gnu_time,
        args,
    };
    let load_before = loadavg();
    let mut suites = String::new();
    if matches!(setup.args.server, Server::Olah | Server::Both) {
        suites.push_str(&olah_suite(&setup)?);
    }
    if matches!(setup.args.server, Server::Nginx | Server::Both) {
        suites.push_str(&nginx_suite(&setup)?);
    }
    let mut report = header(
        &setup,
        &format!("{load_before} before, {} after", loadavg()),
    );
    report.push_str(&suites);
    print!("{report}");
    if let Some(out) = &setup.args.out {
        fs::write(out, &report).with_context(|| format!("cannot write `{}`", out.display()))?;
    }
    Ok(())
}

fn header(setup: &Setup, load: &str) -> String {
    let mut md = format!(
        "Machine: {} cores; cold caches every run; runs per client: {}, interleaved (the order \
         rotates every round), each after `sync` and {} s idle, after one untimed download by \
         ours that warms the server; every client run under `{GNU_TIME} -f %M` ({}) for its \
         peak resident set size (of its largest process); load average (1 min) {load}; `hf`: \
         huggingface_hub {}; ours: `{}`",
        std::thread::available_parallelism().map_or(0, std::num::NonZero::get),
        setup.args.runs,
        SETTLE.as_secs(),
        setup.gnu_time,
        hf_version(),
        setup.ours.display()
    );
    if let Some(before) = &setup.before {
        let _ = write!(md, "; before: `{}` (`--baseline-bin`)", before.display());
    }
    if let Some(n) = setup.args.parallel_files {
        let _ = write!(md, "; `--parallel-files {n}`");
    }
    md.push_str("\n\n");
    md
}

fn olah_suite(setup: &Setup) -> anyhow::Result<String> {
    let args = &setup.args;
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
    let repo = olah.add_repo(builder);
    let total = repo
        .files("main")
        .iter()
        .map(|f| repo.size("main", f))
        .sum();
    let what = format!(
        "{} files ({} x {} MiB of LFS weights plus 3 small files, {})",
        args.files + 3,
        args.files,
        args.file_mib,
        mib(total)
    );
    run_suite(setup, &Hub::Olah(olah), &what, total, None)
}

fn nginx_suite(setup: &Setup) -> anyhow::Result<String> {
    let args = &setup.args;
    let dir = setup.data_dir.join(format!(
        "hub-repo-{}x{}MiB",
        args.nginx_files, args.nginx_file_mib
    ));
    eprintln!(
        "mp-bench-hf: writing (or reusing) a {} x {} MiB repository in {}",
        args.nginx_files,
        args.nginx_file_mib,
        dir.display()
    );
    write_transformers_repo(&dir, REPO, args.nginx_files, args.nginx_file_mib << 20)?;
    eprintln!("mp-bench-hf: starting the Hub-shaped nginx (hashing the repository first)");
    let hub = HubNginx::start(&[(REPO, &dir)]);
    let repo = hub.repo(REPO);
    let total = repo.files().iter().map(|f| f.size).sum();
    let lfs = repo.files().iter().filter(|f| f.lfs).count();
    let what = format!(
        "{} files ({lfs} safetensors shards of {} MiB, LFS, plus {} small files: JSON and \
         `.gitattributes`; {})",
        repo.files().len(),
        args.nginx_file_mib,
        repo.files().len() - lfs,
        mib(total)
    );
    let goal = (args.nginx_files == 4 && args.nginx_file_mib == 256).then_some(NGINX_RSS_GOAL);
    run_suite(setup, &Hub::Nginx(hub), &what, total, goal)
}

/// The rows of one server: every client `--runs` times, in rotating order. `rss_goal`: the
/// bound ours' peak resident set size must stay below, when this repository has one.
fn run_suite(
    setup: &Setup,
    hub: &Hub,
    what: &str,
    total: u64,
    rss_goal: Option<u64>,
) -> anyhow::Result<String> {
    let mut clients = vec![Client::Ours];
    if setup.before.is_some() {
        clients.push(Client::Before);
    }
    clients.push(Client::Hf);
    let mut runs: Vec<Vec<Run>> = vec![Vec::new(); clients.len()];
    let scratch = tempfile::Builder::new()
        .prefix("hf-bench-")
        .tempdir_in(&setup.data_dir)?;
    // The server's first answers cost it more (olah reads the git objects): nobody is timed on
    // them.
    eprintln!("mp-bench-hf: one untimed download to warm the server");
    time_ours(
        &setup.ours,
        setup,
        hub,
        &scratch.path().join("warm-up"),
        total,
    )?;
    for run in 0..setup.args.runs as usize {
        // Rotate who goes first, so that none always meets a warmer (or busier) machine.
        for k in 0..clients.len() {
            let i = (run + k) % clients.len();
            let client = clients[i];
            settle(&setup.data_dir)?;
            let dir = scratch.path().join(format!("{client:?}-{run}"));
            let this = match client {
                Client::Ours => time_ours(&setup.ours, setup, hub, &dir, total)?,
                Client::Before => {
                    let bin = setup.before.as_deref().context("no baseline")?;
                    time_ours(bin, setup, hub, &dir, total)?
                }
                Client::Hf => time_hf(hub, &dir, total)?,
            };
            eprintln!(
                "mp-bench-hf: run {}/{}: {client:?}: {} ({:.0} MB/s), peak RSS {}",
                run + 1,
                setup.args.runs,
                ms(this.took),
                mbps(total, this.took),
                mib(this.peak_rss)
            );
            runs[i].push(this);
        }
    }
    let mut md = format!(
        "Server: {}; repository `{REPO}`: {what}.\n\n",
        hub.describe()
    );
    md.push_str(&table(&clients, &runs, total, rss_goal)?);
    Ok(md)
}

/// The table of one server and the ratios under it: `runs[i]` are the runs of `clients[i]`.
fn table(
    clients: &[Client],
    runs: &[Vec<Run>],
    total: u64,
    rss_goal: Option<u64>,
) -> anyhow::Result<String> {
    let times: Vec<Vec<Duration>> = runs
        .iter()
        .map(|r| r.iter().map(|run| run.took).collect())
        .collect();
    // The peak of a client is the largest of its runs.
    let peaks: Vec<u64> = runs
        .iter()
        .map(|r| r.iter().map(|run| run.peak_rss).max().unwrap_or(0))
        .collect();
    let index = |c: Client| clients.iter().position(|&x| x == c);
    let ours_i = index(Client::Ours).context("no runs")?;
    let ours = median(&times[ours_i]);
    let hf = median(&times[index(Client::Hf).context("no runs")?]);
    let before = index(Client::Before).map(|i| median(&times[i]));

    let mut md = String::from(
        "| case | median | min | MB/s (median) | sha256 checked | ours / this | peak RSS (max) |\n\
         |---|---:|---:|---:|---|---:|---:|\n",
    );
    for (i, client) in clients.iter().enumerate() {
        let label = match client {
            Client::Ours => format!("ours: `model-provisioner ensure hf:{REPO}`"),
            Client::Before => format!("before (`--baseline-bin`): `ensure hf:{REPO}`"),
            Client::Hf => format!("`hf download {REPO}`"),
        };
        let checked = if *client == Client::Hf {
            "none (sizes only)"
        } else {
            "every file"
        };
        let m = median(&times[i]);
        let ratio = if *client == Client::Ours {
            "—".to_owned()
        } else {
            format!("{:.2}", ours.as_secs_f64() / m.as_secs_f64())
        };
        let _ = writeln!(
            md,
            "| {label} | {} | {} | {:.0} | {checked} | {ratio} | {} |",
            ms(m),
            ms(min(&times[i])),
            mbps(total, m),
            mib(peaks[i]),
        );
    }
    let ratio = ours.as_secs_f64() / hf.as_secs_f64();
    let _ = write!(
        md,
        "\nRatio ours / `hf download`: **{ratio:.2}** (goal ≤ 1.0: {}).",
        if ratio <= 1.0 { "met" } else { "**not met**" }
    );
    if let Some(before) = before {
        let r = ours.as_secs_f64() / before.as_secs_f64();
        let _ = write!(
            md,
            " Ratio ours / before: **{r:.2}** ({}); before / `hf download`: {:.2}.",
            if r <= 1.0 { "not slower" } else { "**slower**" },
            before.as_secs_f64() / hf.as_secs_f64()
        );
    }
    if let Some(goal) = rss_goal {
        let peak = peaks[ours_i];
        let _ = write!(
            md,
            " Peak RSS of ours: **{}** (goal < {}: {}).",
            mib(peak),
            mib(goal),
            if peak < goal { "met" } else { "**not met**" }
        );
    }
    md.push_str("\n\n");
    Ok(md)
}

fn time_ours(
    bin: &Path,
    setup: &Setup,
    hub: &Hub,
    cache: &Path,
    total: u64,
) -> anyhow::Result<Run> {
    let hf_home = cache.with_extension("hf-home");
    let rss_report = cache.with_extension("rss");
    let mut cmd = Command::new(bin);
    cmd.args(["--cache-dir"])
        .arg(cache)
        .args(["ensure", &format!("hf:{REPO}"), "--json"]);
    if let Some(n) = setup.args.parallel_files {
        cmd.arg("--parallel-files").arg(n.to_string());
    }
    cmd.env("HF_ENDPOINT", hub.endpoint())
        .env("HF_HOME", &hf_home)
        .env_remove("HF_TOKEN");
    let mut cmd = under_gnu_time(&cmd, &rss_report);
    let started = Instant::now();
    let out = cmd.stdin(Stdio::null()).output()?;
    let elapsed = started.elapsed();
    if !out.status.success() {
        bail!(
            "`{}` failed: {}",
            bin.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let json: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    ensure!(json["cached"] == false, "the cache was not cold: {json}");
    ensure!(
        json["verification"] != "fail",
        "verification failed: {json}"
    );
    let dir = json["local_path"]
        .as_str()
        .context("`ensure --json` has no `local_path`")?;
    let got = bytes_under(Path::new(dir));
    ensure!(got == total, "`{dir}` holds {got} bytes, expected {total}");
    let peak_rss = peak_rss(&rss_report)?;
    let _ = fs::remove_dir_all(cache);
    let _ = fs::remove_dir_all(hf_home);
    let _ = fs::remove_file(rss_report);
    Ok(Run {
        took: elapsed,
        peak_rss,
    })
}

fn time_hf(hub: &Hub, cache: &Path, total: u64) -> anyhow::Result<Run> {
    let rss_report = cache.with_extension("rss");
    let mut cmd = hub.hf();
    cmd.args(["download", REPO, "--format", "quiet", "--cache-dir"])
        .arg(cache);
    let mut cmd = under_gnu_time(&cmd, &rss_report);
    let started = Instant::now();
    let out = cmd.stdin(Stdio::null()).output()?;
    let elapsed = started.elapsed();
    if !out.status.success() {
        bail!(
            "hf download failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let snapshot = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let got = bytes_under(Path::new(&snapshot));
    ensure!(
        got == total,
        "`hf download` left {got} bytes in `{snapshot}`, expected {total}"
    );
    let peak_rss = peak_rss(&rss_report)?;
    let _ = fs::remove_dir_all(cache);
    let _ = fs::remove_file(rss_report);
    Ok(Run {
        took: elapsed,
        peak_rss,
    })
}

/// The bytes of every file under `dir`, following symlinks (`hf` links snapshots to blobs).
fn bytes_under(dir: &Path) -> u64 {
    let Ok(entries) = fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| {
            let p = e.path();
            match fs::metadata(&p) {
                Ok(m) if m.is_dir() => bytes_under(&p),
                Ok(m) => m.len(),
                Err(_) => 0,
            }
        })
        .sum()
}

/// `huggingface_hub`'s version, from the test venv.
fn hf_version() -> String {
    Command::new(test_support::venv_dir().join("bin/python"))
        .args([
            "-c",
            "import huggingface_hub; print(huggingface_hub.__version__)",
        ])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map_or_else(
            || "?".to_owned(),
            |o| String::from_utf8_lossy(&o.stdout).trim().to_owned(),
        )
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1000.0)
}

fn mib(bytes: u64) -> String {
    format!("{:.0} MiB", bytes as f64 / f64::from(1 << 20))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(ms: u64, mib: u64) -> Run {
        Run {
            took: Duration::from_millis(ms),
            peak_rss: mib << 20,
        }
    }

    #[test]
    fn the_table_gives_each_clients_largest_peak_and_checks_ours_against_the_goal() {
        let clients = [Client::Ours, Client::Before, Client::Hf];
        let runs = vec![
            vec![run(700, 120), run(800, 180), run(750, 150)],
            vec![run(710, 200), run(720, 190), run(730, 210)],
            vec![run(2000, 90), run(2100, 95), run(2200, 80)],
        ];
        let md = table(&clients, &runs, 1 << 30, Some(NGINX_RSS_GOAL)).unwrap();
        let rows: Vec<&str> = md.lines().filter(|l| l.starts_with("| ")).collect();
        assert!(rows[1].starts_with("| ours:") && rows[1].ends_with("| — | 180 MiB |"));
        assert!(rows[2].ends_with("| 1.04 | 210 MiB |"), "{}", rows[2]);
        assert!(rows[3].ends_with("| 0.36 | 95 MiB |"), "{}", rows[3]);
        assert!(md.contains("Peak RSS of ours: **180 MiB** (goal < 256 MiB: met)."));

        let heavy = vec![vec![run(700, 300)], vec![run(700, 1)], vec![run(900, 1)]];
        let md = table(&clients, &heavy, 1 << 30, Some(NGINX_RSS_GOAL)).unwrap();
        assert!(md.contains("Peak RSS of ours: **300 MiB** (goal < 256 MiB: **not met**)."));
        let md = table(&clients, &heavy, 1 << 30, None).unwrap();
        assert!(!md.contains("Peak RSS of ours"));
    }
}
