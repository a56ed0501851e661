//! The HTTP suite: one large file served by nginx on loopback, downloaded by
//! `model-provisioner ensure <url> --digest` (which verifies SHA-256 as it goes) at several
//! `--connections`, by `curl` and by `aria2c -x8 -s8` (which verify nothing) and by `curl`
//! followed by `openssl dgst -sha256` of the file (a verified download: the goal's baseline);
//! then a download killed half-way with SIGKILL and resumed, counting the bytes nginx sends the
//! second time. With `--baseline-bin`, that build downloads at the same `--connections` in the
//! same rounds.

use std::fmt::Write as _;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use catalog_core::Digest;
use test_support::Nginx;

use model_provisioner_bench::measure::{
    CpuWatch, ProcStat, first_words, loadavg, machine, mbps, nginx_version, secs,
};
use model_provisioner_bench::run::{Stdout, timed};
use model_provisioner_bench::settle::{SETTLE, settle};

use crate::{Bench, Build, MIB, Samples, check_ensure, date, fmt_ms, human_size};

/// How often the resume case looks at the resume state of the download it is about to kill.
const POLL: Duration = Duration::from_millis(5);

/// The `--connections` values measured; the first is the CLI's default.
const CONNECTIONS: [u16; 3] = [4, 1, 8];

/// Goal: ours (default connections) / (curl + `openssl dgst` of the file), medians: a verified
/// download of ours is no slower than a verified one by the usual tools.
const RATIO_GOAL: f64 = 1.0;

/// Goal: bytes nginx sends to finish a download killed at half, as a share of the file.
const RESUME_GOAL: f64 = 0.55;

/// Who downloads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Client {
    Ours(u16),
    /// `--baseline-bin`, at these `--connections`.
    Before(u16),
    Curl,
    /// `curl`, then `sync FILE`: a durable download, as ours is (it syncs before publishing).
    CurlSync,
    /// `curl`, then `openssl dgst -sha256 FILE`: the other design, verifying by reading back.
    CurlReadBack,
    Aria2c,
    /// `dd oflag=direct conv=fsync` of the served file: what a durable copy costs with no
    /// network and no hashing.
    DiskFloor,
}

impl Client {
    fn label(self) -> String {
        match self {
            Client::Ours(n) if n == CONNECTIONS[0] => {
                format!("ours, `--connections {n}` (default), verifies sha256")
            }
            Client::Ours(n) => format!("ours, `--connections {n}`, verifies sha256"),
            Client::Before(n) => {
                format!("before (`--baseline-bin`), `--connections {n}`, verifies sha256")
            }
            Client::Curl => "`curl -s -o FILE`, no verification".to_owned(),
            Client::CurlSync => {
                "`curl -s -o FILE`, then `sync FILE` (durable, like ours), no verification"
                    .to_owned()
            }
            Client::CurlReadBack => {
                "`curl -s -o FILE`, then `openssl dgst -sha256 FILE` (verifies by reading the \
                 file back)"
                    .to_owned()
            }
            Client::Aria2c => "`aria2c -x8 -s8`, no verification".to_owned(),
            Client::DiskFloor => "`dd bs=64M oflag=direct conv=fsync` of the served file, no \
                                  network, no verification (a durable copy, disk only)"
                .to_owned(),
        }
    }
}

/// The samples of one client, and the body bytes nginx sent per run (the most of any run).
#[derive(Debug)]
struct Measured {
    client: Client,
    wall: Samples,
    max_sent: u64,
}

/// The resume case.
#[derive(Debug)]
struct Resume {
    /// `prefix_len` in the state file when the poll saw half or more; `None` when the state
    /// never said so (a state file of another shape) and the kill came at half the time.
    seen: Option<u64>,
    /// `prefix_len` in the state file after the process died, if it has one.
    kept: Option<u64>,
    /// Size of the `.part` file after the kill (chunks written beyond the prefix included).
    on_disk: u64,
    /// Body bytes nginx sent to the killed run.
    sent_before: u64,
    /// Body bytes nginx sent to the resumed run.
    sent_after: u64,
    /// `bytes_read` in the resumed run's `--json`: what it says it transferred.
    reported: u64,
    /// Wall time of the killed run, spawn to kill.
    killed_after: Duration,
    /// Wall time of the resumed run.
    wall: Duration,
}

/// Runs the HTTP suite; returns its Markdown report.
pub(crate) fn suite(bench: &Bench, size_mib: u64) -> anyhow::Result<String> {
    let size = size_mib
        .checked_mul(MIB)
        .context("--http-size-mib is too large")?;
    let curl = tool_version("curl", &["--version"])?;
    // aria2c is a reference only: without it, its row is left out.
    let aria2c = match tool_version("aria2c", &["--version"]) {
        Ok(v) => Some(v),
        Err(e) => {
            eprintln!("mp-bench: http: {e:#}; leaving its row out");
            None
        }
    };
    let load_before = loadavg();

    eprintln!("mp-bench: http: starting nginx");
    let nginx = Nginx::start();
    let nginx_version = nginx_version();
    let name = format!("random-{size_mib}MiB.bin");
    let source = bench.data_dir.join(&name);
    // Read once (hashing it: `ensure` must be given the digest), so that the server side
    // serves from the page cache.
    let digest = crate::prepare_file(&source, size, crate::SHARED, true)?.context("no digest")?;
    let served = nginx.root().join(&name);
    if let Err(e) = fs::hard_link(&source, &served) {
        eprintln!(
            "mp-bench: http: cannot hard-link the test file into the web root ({e}); copying it"
        );
        fs::copy(&source, &served).with_context(|| {
            format!(
                "cannot copy `{}` to `{}`",
                source.display(),
                served.display()
            )
        })?;
        crate::prepare_file(&served, size, crate::SHARED, false)?;
    }
    let url = nginx.url(&format!("files/{name}"));
    eprintln!("mp-bench: http: serving {url}");
    let cpu = CpuWatch::start(ours_ticks(&nginx));

    let mut measured = clients(bench, aria2c.is_some());
    // Interleaved, so that a neighbour's load spreads over every client alike.
    for run in 0..bench.runs {
        for i in run_order(&measured, run) {
            let m = &mut measured[i];
            eprintln!(
                "mp-bench: http: run {}/{}: {}",
                run + 1,
                bench.runs,
                m.client.label()
            );
            settle(&bench.data_dir)?;
            nginx.clear_log();
            let took = download(bench, m.client, (&url, &served), &name, &digest, size)?;
            let sent = settled_bytes_sent(&nginx, &name);
            eprintln!(
                "mp-bench: http:   {} ({:.0} MB/s), nginx sent {:.1}% of the file",
                fmt_ms(took),
                mbps(size, took),
                percent(sent, size)
            );
            m.wall.0.push(took);
            m.max_sent = m.max_sent.max(sent);
        }
    }

    let target = Target {
        nginx: &nginx,
        url: &url,
        name: &name,
        digest: &digest,
        size,
    };
    let resumes = resume_all(bench, &measured, &target);
    let load_after = loadavg();
    let others = cpu.others(ours_ticks(&nginx));
    let facts = format!(
        "Machine: {}; file: {} of pseudo-random bytes, in the page cache on both sides; {} runs \
         per client, interleaved, each into a fresh, empty cache or output directory; server: \
         {nginx_version} on 127.0.0.1 (1 worker, `sendfile on`); baselines: {curl}, {}{}; \
         load average (1 min) {load_before} before, {load_after} after (the suite itself \
         keeps about 2 busy); other processes used {others} while the suite ran; date: {}",
        machine(),
        human_size(size),
        bench.runs,
        aria2c
            .as_deref()
            .unwrap_or("aria2c not installed (its row is left out)"),
        bench
            .baseline_bin
            .as_ref()
            .map_or_else(String::new, |b| format!(
                "; before: `{}` (`--baseline-bin`)",
                b.display()
            )),
        date()
    );
    Ok(render(&facts, size, &measured, &resumes))
}

/// Every client measured, in the order of a round.
fn clients(bench: &Bench, aria2c: bool) -> Vec<Measured> {
    CONNECTIONS
        .iter()
        .flat_map(|&n| {
            let before = bench.before.is_some().then_some(Client::Before(n));
            [Some(Client::Ours(n)), before]
        })
        .flatten()
        .chain([
            Client::Curl,
            Client::CurlSync,
            Client::CurlReadBack,
            Client::Aria2c,
            Client::DiskFloor,
        ])
        .filter(|c| *c != Client::Aria2c || aria2c)
        .map(|client| Measured {
            client,
            wall: Samples::default(),
            max_sent: 0,
        })
        .collect()
}

/// The order of round `run`: ours and before at the same `--connections` take turns going
/// first.
fn run_order(measured: &[Measured], run: u32) -> Vec<usize> {
    let mut order: Vec<usize> = (0..measured.len()).collect();
    if run % 2 == 1 {
        for pair in order.chunks_mut(2) {
            if let [a, b] = pair
                && matches!(measured[*b].client, Client::Before(_))
            {
                std::mem::swap(a, b);
            }
        }
    }
    order
}

/// One timed, cold download by `client`; checks what it produced.
fn download(
    bench: &Bench,
    client: Client,
    (url, served): (&str, &Path),
    name: &str,
    digest: &Digest,
    size: u64,
) -> anyhow::Result<Duration> {
    match client {
        Client::Ours(n) | Client::Before(n) => {
            let build = if matches!(client, Client::Ours(_)) {
                Build::Ours
            } else {
                Build::Before
            };
            let cache = bench.fresh_cache()?;
            let (digest, n) = (digest.to_string(), n.to_string());
            let mut cmd = bench.cli_of(
                build,
                cache.path(),
                &[
                    "ensure",
                    url,
                    "--digest",
                    &digest,
                    "--connections",
                    &n,
                    "--json",
                ],
            );
            let (took, out) = timed(&mut cmd, Stdout::Capture)?;
            check_ensure(&out, false, Some(size))?;
            Ok(took)
        }
        Client::Curl
        | Client::CurlSync
        | Client::CurlReadBack
        | Client::Aria2c
        | Client::DiskFloor => {
            let dir = bench.scratch_dir("out-")?;
            let file = dir.path().join(name);
            let mut cmd = if client == Client::DiskFloor {
                let mut cmd = Command::new("dd");
                cmd.arg(format!("if={}", served.display()))
                    .arg(format!("of={}", file.display()))
                    .args(["bs=64M", "oflag=direct", "conv=fsync", "status=none"]);
                cmd
            } else if client == Client::Aria2c {
                let mut cmd = Command::new("aria2c");
                cmd.args([
                    "-x8",
                    "-s8",
                    "-q",
                    "--allow-overwrite=true",
                    "--auto-file-renaming=false",
                    "-d",
                ])
                .arg(dir.path())
                .arg("-o")
                .arg(name)
                .arg(url);
                cmd
            } else {
                let mut cmd = Command::new("curl");
                cmd.arg("-s").arg("-o").arg(&file).arg(url);
                cmd
            };
            let (mut took, _) = timed(&mut cmd, Stdout::Null)?;
            if client == Client::CurlSync {
                let mut sync = Command::new("sync");
                sync.arg(&file);
                took += timed(&mut sync, Stdout::Null)?.0;
            }
            if client == Client::CurlReadBack {
                let mut dgst = Command::new("openssl");
                dgst.args(["dgst", "-sha256"]).arg(&file);
                let (t, out) = timed(&mut dgst, Stdout::Capture)?;
                took += t;
                let found = crate::parse_openssl(&out)?;
                ensure!(
                    found == *digest,
                    "openssl printed {found} for `{}`, expected {digest}",
                    file.display()
                );
            }
            let got = fs::metadata(&file)
                .with_context(|| format!("{cmd:?} left no `{}`", file.display()))?
                .len();
            ensure!(got == size, "{cmd:?} wrote {got} bytes, expected {size}");
            Ok(took)
        }
    }
}

/// The resume case for every build. One that fails is reported, not fatal: the timings
/// still count.
fn resume_all(
    bench: &Bench,
    measured: &[Measured],
    target: &Target<'_>,
) -> Vec<(Build, anyhow::Result<Resume>)> {
    bench
        .builds()
        .into_iter()
        .map(|build| {
            let client = match build {
                Build::Ours => Client::Ours(CONNECTIONS[0]),
                Build::Before => Client::Before(CONNECTIONS[0]),
            };
            let half_time = measured
                .iter()
                .find(|m| m.client == client)
                .map_or(Duration::from_secs(1), |m| m.wall.median() / 2);
            (build, resume(bench, build, target, half_time))
        })
        .collect()
}

/// What the resume case downloads.
struct Target<'a> {
    nginx: &'a Nginx,
    url: &'a str,
    name: &'a str,
    digest: &'a Digest,
    size: u64,
}

/// The resume case: `ensure --connections 4` by `build`, killed (SIGKILL) once its resume
/// state records half of the file (or, if its state file has no `prefix_len`, after
/// `half_time`: half the median of its timed runs), then run again to completion on the same
/// cache.
fn resume(
    bench: &Bench,
    build: Build,
    target: &Target<'_>,
    half_time: Duration,
) -> anyhow::Result<Resume> {
    let Target {
        nginx,
        url,
        name,
        digest,
        size,
    } = *target;
    eprintln!("mp-bench: http: resume after a kill at half ({build:?})");
    let cache = bench.fresh_cache()?;
    let digest = digest.to_string();
    let args = [
        "ensure",
        url,
        "--digest",
        &digest,
        "--connections",
        "4",
        "--json",
    ];
    let stderr_path = cache.path().with_extension("stderr");
    let stderr = fs::File::create(&stderr_path)
        .with_context(|| format!("cannot create `{}`", stderr_path.display()))?;
    nginx.clear_log();
    let start = Instant::now();
    let mut child = bench
        .cli_of(build, cache.path(), &args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .context("cannot start `model-provisioner`")?;
    let tmp = cache.path().join("tmp");
    let seen = kill_at_half(&mut child, &tmp, &stderr_path, start, half_time);
    let _ = fs::remove_file(&stderr_path);
    let seen = seen?;
    let killed_after = start.elapsed();
    child.wait()?;
    let kept = match read_state(&tmp) {
        Some((kept, total)) => {
            ensure!(
                total == size,
                "the resume state says the file has {total} bytes, expected {size}"
            );
            Some(kept)
        }
        None => None,
    };
    let on_disk = part_size(&tmp);
    let sent_before = settled_bytes_sent(nginx, name);
    let pct =
        |n: Option<u64>| n.map_or_else(|| "?".to_owned(), |n| format!("{:.1}%", percent(n, size)));
    eprintln!(
        "mp-bench: http:   killed after {}: prefix {} when seen, {} kept, .part {:.1}%, \
         nginx sent {:.1}%",
        fmt_ms(killed_after),
        pct(seen),
        pct(kept),
        percent(on_disk, size),
        percent(sent_before, size)
    );

    nginx.clear_log();
    let (wall, out) = timed(
        &mut bench.cli_of(build, cache.path(), &args),
        Stdout::Capture,
    )?;
    check_ensure(&out, false, None)?;
    let json: serde_json::Value = serde_json::from_slice(&out)?;
    let reported = json["bytes_read"]
        .as_u64()
        .context("`ensure --json` has no `bytes_read`")?;
    let sent_after = settled_bytes_sent(nginx, name);
    eprintln!(
        "mp-bench: http:   resumed in {}: nginx sent {:.1}%, ensure says it read {:.1}%",
        fmt_ms(wall),
        percent(sent_after, size),
        percent(reported, size)
    );
    Ok(Resume {
        seen,
        kept,
        on_disk,
        sent_before,
        sent_after,
        reported,
        killed_after,
        wall,
    })
}

/// Polls the resume state in `tmp` and kills `child` once it records half of the file; returns
/// the prefix it saw. If its state file has no `prefix_len` (an engine that records progress
/// otherwise), kills it at `half_time` and returns `None`.
fn kill_at_half(
    child: &mut std::process::Child,
    tmp: &Path,
    stderr_path: &Path,
    start: Instant,
    half_time: Duration,
) -> anyhow::Result<Option<u64>> {
    let mut prefix_seen = false;
    loop {
        if let Some(status) = child.try_wait()? {
            let err = fs::read_to_string(stderr_path).unwrap_or_default();
            bail!(
                "the download to kill ended ({status}) before its resume state reached half of \
                 the file:\n{}",
                err.trim_end()
            );
        }
        match read_state(tmp) {
            Some((prefix, total)) if total > 0 && prefix.saturating_mul(2) >= total => {
                child.kill().context("cannot kill `model-provisioner`")?;
                return Ok(Some(prefix));
            }
            Some(_) => prefix_seen = true,
            // A state file, but none that `read_state` understands: another engine's.
            None if !prefix_seen
                && find_in(tmp, ".state").is_some()
                && start.elapsed() >= half_time =>
            {
                child.kill().context("cannot kill `model-provisioner`")?;
                return Ok(None);
            }
            None => {}
        }
        std::thread::sleep(POLL);
    }
}

/// `(prefix_len, total)` from the `dl-*.state` file in `tmp`, if there is one yet.
fn read_state(tmp: &Path) -> Option<(u64, u64)> {
    let path = find_in(tmp, ".state")?;
    let text = fs::read(path).ok()?;
    let v: serde_json::Value = serde_json::from_slice(&text).ok()?;
    Some((v["prefix_len"].as_u64()?, v["total"].as_u64()?))
}

/// The size of the `dl-*.part` file in `tmp`, 0 if there is none.
fn part_size(tmp: &Path) -> u64 {
    find_in(tmp, ".part")
        .and_then(|p| fs::metadata(p).ok())
        .map_or(0, |m| m.len())
}

/// The first `dl-*<suffix>` file in `dir`.
fn find_in(dir: &Path, suffix: &str) -> Option<PathBuf> {
    fs::read_dir(dir).ok()?.flatten().find_map(|e| {
        let name = e.file_name();
        let name = name.to_str()?;
        (name.starts_with("dl-") && name.ends_with(suffix)).then(|| e.path())
    })
}

/// Body bytes nginx sent for `name`, once its access log has stopped growing (nginx writes a
/// line when it finishes a request, which for a connection the client dropped can be a moment
/// after the client exits).
fn settled_bytes_sent(nginx: &Nginx, name: &str) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(2);
    let mut last = (nginx.log().len(), nginx.bytes_sent(name));
    let mut stable_since = Instant::now();
    loop {
        std::thread::sleep(Duration::from_millis(20));
        let now = (nginx.log().len(), nginx.bytes_sent(name));
        if now != last {
            last = now;
            stable_since = Instant::now();
        } else if stable_since.elapsed() >= Duration::from_millis(150) {
            return now.1;
        }
        if Instant::now() > deadline {
            return now.1;
        }
    }
}

/// `tool --version`'s first line; a missing tool is an error that says how to install it.
fn tool_version(tool: &str, args: &[&str]) -> anyhow::Result<String> {
    match Command::new(tool)
        .args(args)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
    {
        Ok(out) => Ok(String::from_utf8_lossy(&out.stdout)
            .lines()
            .next()
            .map_or_else(|| tool.to_owned(), |l| first_words(l, 3))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => bail!(
            "`{tool}` was not found on PATH; the HTTP suite compares against curl and aria2c: \
             install them with `apt-get install curl aria2` and run again"
        ),
        Err(e) => Err(e).with_context(|| format!("cannot run `{tool}`")),
    }
}

/// User and system time of mp-bench, of its children waited for, and of nginx, in clock ticks.
fn ours_ticks(nginx: &Nginx) -> Option<u64> {
    let own = ProcStat::read("self")?.ticks.iter().sum::<u64>();
    let pid_file = nginx.root().parent()?.join("nginx.pid");
    let pid = fs::read_to_string(pid_file).ok()?;
    let nginx = ProcStat::read(pid.trim())?;
    Some(own + nginx.ticks[0] + nginx.ticks[1])
}

#[expect(clippy::cast_precision_loss, reason = "sizes are far below 2^52 bytes")]
fn percent(part: u64, whole: u64) -> f64 {
    part as f64 * 100.0 / whole as f64
}

fn render(
    facts: &str,
    size: u64,
    measured: &[Measured],
    resumes: &[(Build, anyhow::Result<Resume>)],
) -> String {
    let median_of = |c: Client| {
        measured
            .iter()
            .find(|m| m.client == c)
            .map(|m| m.wall.median().as_secs_f64())
    };
    let curl = median_of(Client::Curl);
    let curl_sync = median_of(Client::CurlSync);
    let read_back = median_of(Client::CurlReadBack);
    let aria2c = median_of(Client::Aria2c);
    let with_before = measured
        .iter()
        .any(|m| matches!(m.client, Client::Before(_)));
    let dash = || "—".to_owned();
    let mut md = String::new();
    let _ = writeln!(md, "{facts}");
    let _ = writeln!(md);
    let _ = writeln!(
        md,
        "| download of {} from 127.0.0.1 | median | min | MB/s (median) | nginx sent | this / curl \
         | this / aria2c | this / (curl + sync) | this / (curl + read back) |{} goal | met? |",
        human_size(size),
        if with_before { " ours / before |" } else { "" }
    );
    let _ = writeln!(
        md,
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|{}---|---|",
        if with_before { "---:|" } else { "" }
    );
    for m in measured {
        let median = m.wall.median().as_secs_f64();
        let r = |b: Option<f64>| b.map_or_else(dash, |b| format!("{:.2}", median / b));
        let ratios = match m.client {
            Client::Ours(_) | Client::Before(_) => [r(curl), r(aria2c), r(curl_sync), r(read_back)],
            _ => [dash(), dash(), dash(), dash()],
        };
        let before_cell = match m.client {
            Client::Ours(n) if with_before => format!(" {} |", r(median_of(Client::Before(n)))),
            _ if with_before => " — |".to_owned(),
            _ => String::new(),
        };
        let (goal, met) = if m.client == Client::Ours(CONNECTIONS[0]) {
            let met = read_back.is_some_and(|b| median / b <= RATIO_GOAL);
            (
                format!("this / (curl + read back) ≤ {RATIO_GOAL:.2}"),
                if met { "yes" } else { "**no**" },
            )
        } else {
            (dash(), "—")
        };
        let _ = writeln!(
            md,
            "| {} | {} | {} | {:.0} | {:.1}% | {} | {} | {} | {} |{before_cell} {goal} | {met} |",
            m.client.label(),
            secs(m.wall.median()),
            secs(m.wall.min()),
            mbps(size, m.wall.median()),
            percent(m.max_sent, size),
            ratios[0],
            ratios[1],
            ratios[2],
            ratios[3],
        );
    }
    let _ = writeln!(md);
    let _ = writeln!(
        md,
        "\"nginx sent\": body bytes in nginx's access log for the run, as a share of the file \
         (the most of any run); MB/s: 10^6 bytes per second; \"this\": the row's client. The \
         goal compares ours with a verified download by the usual tools: curl, then \
         `openssl dgst -sha256` of the file (reading it back), which must print the expected \
         digest. Ours also syncs the file to disk before publishing it, so curl + sync is the \
         like-for-like baseline for durability (it does not verify); plain curl and aria2c do \
         neither. The dd row copies the served file from the page cache to the disk, one 64 MiB \
         direct write at a time, then one fsync: what a durable copy costs on this disk with \
         no network and no hashing.{} Before every timed run the file system is synced and left \
         idle for {} s, so that no run pays for the last one's writeback.",
        if with_before {
            " \"ours / before\": ours against the `--baseline-bin` build at the same \
             `--connections`, run in the same rounds (≤ 1.00: not slower)."
        } else {
            ""
        },
        SETTLE.as_secs()
    );
    let _ = writeln!(md);
    render_resume(&mut md, size, resumes);
    md
}

/// The resume table.
fn render_resume(md: &mut String, size: u64, resumes: &[(Build, anyhow::Result<Resume>)]) {
    let _ = writeln!(
        md,
        "| resume after SIGKILL at half, `--connections 4` | prefix recorded at kill | `.part` \
         on disk | nginx sent before kill | nginx sent to resume | resumed run | `bytes_read` \
         of the resumed run | goal | met? |"
    );
    let _ = writeln!(md, "|---|---:|---:|---:|---:|---:|---:|---|---|");
    let share = |n| format!("{:.1}%", percent(n, size));
    let maybe = |n: Option<u64>| n.map_or_else(|| "—".to_owned(), share);
    for (build, resume) in resumes {
        let who = match build {
            Build::Ours => "ours",
            Build::Before => "before",
        };
        let resume = match resume {
            Ok(r) => r,
            Err(e) => {
                let why = format!("{e:#}").replace(['\n', '|'], " ");
                let _ = writeln!(md, "| {who}: **failed**: {why} | | | | | | | | |");
                continue;
            }
        };
        let how = match resume.seen {
            Some(seen) => format!("poll saw {}", share(seen)),
            None => "its state has no `prefix_len`: killed at half its median time".to_owned(),
        };
        let met = percent(resume.sent_after, size) <= RESUME_GOAL * 100.0;
        let _ = writeln!(
            md,
            "| {who}: killed {} after start ({how}) | {} | {} | {} | {} | {} | {} | sent to \
             resume ≤ {:.0}% | {} |",
            secs(resume.killed_after),
            maybe(resume.kept),
            share(resume.on_disk),
            share(resume.sent_before),
            share(resume.sent_after),
            secs(resume.wall),
            share(resume.reported),
            RESUME_GOAL * 100.0,
            if met { "yes" } else { "**no**" },
        );
    }
    let _ = writeln!(md);
    let _ = writeln!(
        md,
        "Every resumed run verified sha256 (`\"verification\": \"pass\"`)."
    );
}
