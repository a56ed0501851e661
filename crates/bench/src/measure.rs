//! What the benchmarks measure besides wall time, and how they describe the machine: load
//! average, CPU time of the machine, of this process and of its children, the peak resident
//! memory of a child, medians and rates.

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, ensure};

/// The 1-minute load average: a busy machine makes every ratio noisy.
pub fn loadavg() -> String {
    fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "?".to_owned())
}

/// Cores and CPU model, for the header line.
pub fn machine() -> String {
    let cores = std::thread::available_parallelism().map_or(0, std::num::NonZero::get);
    let cpu = fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".to_owned());
    format!("{cores} cores (nproc), {cpu}")
}

/// What `date -u` prints, or `None` when it cannot run.
pub fn date() -> Option<String> {
    Command::new("date")
        .arg("-u")
        .stderr(Stdio::null())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
}

/// How busy the rest of the machine was: CPU time of every process but this one, its
/// children and the server it runs, from [`CpuWatch::start`] to [`CpuWatch::others`].
///
/// The caller counts "ours" (see [`ProcStat`] and [`child_ticks`]) and hands it in, both
/// times.
#[derive(Debug)]
pub struct CpuWatch {
    start: Instant,
    machine: Option<u64>,
    ours: Option<u64>,
}

impl CpuWatch {
    pub fn start(ours: Option<u64>) -> Self {
        CpuWatch {
            start: Instant::now(),
            machine: machine_ticks(),
            ours,
        }
    }

    /// "0.12 cores on average", or "an unknown share of the cores".
    pub fn others(&self, ours: Option<u64>) -> String {
        let wall = self.start.elapsed().as_secs_f64();
        match (self.machine, machine_ticks(), self.ours, ours) {
            (Some(m0), Some(m1), Some(o0), Some(o1)) => {
                let ticks = (m1 - m0).saturating_sub(o1 - o0);
                format!("{:.2} cores on average", ticks as f64 / 100.0 / wall)
            }
            _ => "an unknown share of the cores".to_owned(),
        }
    }
}

/// User, nice and system time of all CPUs, in clock ticks (1/100 s), from `/proc/stat`.
pub fn machine_ticks() -> Option<u64> {
    let text = fs::read_to_string("/proc/stat").ok()?;
    let mut fields = text.lines().next()?.split_whitespace().skip(1);
    let mut sum = 0;
    for _ in 0..3 {
        sum += fields.next()?.parse::<u64>().ok()?;
    }
    Some(sum)
}

/// User and system time of the children of this process named `comm` (still running, such as
/// the server under test), in clock ticks.
pub fn child_ticks(comm: &str) -> Option<u64> {
    let me = std::process::id().to_string();
    let mut sum = 0;
    for entry in fs::read_dir("/proc").ok()?.flatten() {
        let pid = entry.file_name().to_string_lossy().into_owned();
        if !pid.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        if let Some(stat) = ProcStat::read(&pid)
            && stat.comm == comm
            && stat.ppid == me
        {
            sum += stat.ticks[0] + stat.ticks[1];
        }
    }
    Some(sum)
}

/// What `/proc/<pid>/stat` says about a process.
#[derive(Debug)]
pub struct ProcStat {
    pub comm: String,
    pub ppid: String,
    /// `utime stime cutime cstime`, in clock ticks.
    pub ticks: [u64; 4],
}

impl ProcStat {
    /// `/proc/<pid>/stat` (`pid` may be `self`), or `None` when it cannot be read.
    pub fn read(pid: &str) -> Option<ProcStat> {
        let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // The command name, field 2, is in parentheses and may hold spaces.
        let open = text.find('(')?;
        let close = text.rfind(')')?;
        let comm = text.get(open + 1..close)?.to_owned();
        // After it: state (3), ppid (4), …, utime (14): index 11 from here.
        let fields: Vec<&str> = text.get(close + 1..)?.split_whitespace().collect();
        let mut ticks = [0; 4];
        for (t, f) in ticks.iter_mut().zip(fields.get(11..15)?) {
            *t = f.parse().ok()?;
        }
        Some(ProcStat {
            comm,
            ppid: (*fields.get(1)?).to_owned(),
            ticks,
        })
    }
}

/// Where the CPU time of one timed run went: to the client (the children this process waited
/// for) and to the server under test (this process's child named `server`, still running).
#[derive(Debug)]
pub struct CpuSplit {
    server: &'static str,
    children: Option<u64>,
    server_ticks: Option<u64>,
}

impl CpuSplit {
    /// Starts counting, for the server whose command name is `server` (`s3s-fs`, …).
    pub fn start(server: &'static str) -> Self {
        CpuSplit {
            server,
            children: waited_children_ticks(),
            server_ticks: child_ticks(server),
        }
    }

    /// The client's and the server's CPU time since [`CpuSplit::start`].
    pub fn split(&self) -> (Duration, Duration) {
        let since = |before: Option<u64>, now: Option<u64>| match (before, now) {
            (Some(b), Some(n)) => Duration::from_millis(n.saturating_sub(b) * 10),
            _ => Duration::ZERO,
        };
        (
            since(self.children, waited_children_ticks()),
            since(self.server_ticks, child_ticks(self.server)),
        )
    }
}

/// User and system time of the children this process waited for, in clock ticks.
pub fn waited_children_ticks() -> Option<u64> {
    ProcStat::read("self").map(|s| s.ticks[2] + s.ticks[3])
}

/// GNU time, which runs a command and writes the peak resident set size it reached.
///
/// The peak of a process that has exited is known only to the process that reaps it: `wait4`
/// hands over its `rusage`, whose `ru_maxrss` is the largest resident set the child (or any
/// descendant it reaped) ever had. Nothing in this workspace's dependencies calls `wait4` or
/// `getrusage` without `unsafe` (`rustix` waits without `rusage`; `libc` needs a raw pointer;
/// the workspace forbids `unsafe_code`), and `/proc/<pid>/status`'s `VmHWM` is gone once the
/// child exits, so polling it would miss the end of the run. So the child is run under
/// `/usr/bin/time -f %M -o FILE`, which does the `wait4` and writes `ru_maxrss` (KiB) to
/// `FILE`: one small extra process per run, about a millisecond of wall time, the same for
/// every client. `scripts/install-test-deps.sh` installs it (Debian's package `time`).
pub const GNU_TIME: &str = "/usr/bin/time";

/// Checks that [`GNU_TIME`] is GNU time (the one of `busybox` has no `-o`) and returns its
/// version line.
pub fn gnu_time_version() -> anyhow::Result<String> {
    let version = crate::run::tool_version(
        GNU_TIME,
        &["--version"],
        "run `bash scripts/install-test-deps.sh` (or `apt-get install time`)",
    )?;
    ensure!(
        version.contains("GNU"),
        "`{GNU_TIME} --version` says `{version}`, not GNU time: the peak memory needs GNU's \
         `-f %M -o FILE`"
    );
    Ok(version)
}

/// `cmd` run under [`GNU_TIME`], which writes the child's peak resident set size to `report`
/// (read it back with [`peak_rss`]). The program, arguments, environment changes and working
/// directory are `cmd`'s; stdin, stdout and stderr are set on the returned command as usual.
/// GNU time exits with the child's status, and its own error (a program it cannot run) goes to
/// stderr.
pub fn under_gnu_time(cmd: &Command, report: &Path) -> Command {
    let mut wrapped = Command::new(GNU_TIME);
    wrapped
        .args(["-f", "%M", "-o"])
        .arg(report)
        .arg("--")
        .arg(cmd.get_program())
        .args(cmd.get_args());
    for (name, value) in cmd.get_envs() {
        match value {
            Some(value) => wrapped.env(name, value),
            None => wrapped.env_remove(name),
        };
    }
    if let Some(dir) = cmd.get_current_dir() {
        wrapped.current_dir(dir);
    }
    wrapped
}

/// The peak resident set size, in bytes, that [`under_gnu_time`] wrote to `report`.
pub fn peak_rss(report: &Path) -> anyhow::Result<u64> {
    let text = fs::read_to_string(report)
        .with_context(|| format!("cannot read GNU time's report `{}`", report.display()))?;
    let kib = parse_max_rss_kib(&text).with_context(|| {
        format!(
            "GNU time's report `{}` ends in no number of KiB: {text:?}",
            report.display()
        )
    })?;
    Ok(kib * 1024)
}

/// `%M` from what GNU time writes with `-f %M`: the last line, a number of KiB. Before it, a
/// child that failed gets a line of its own (`Command exited with non-zero status 1`,
/// `Command terminated by signal 9`).
fn parse_max_rss_kib(text: &str) -> Option<u64> {
    text.lines()
        .rev()
        .find(|line| !line.trim().is_empty())?
        .trim()
        .parse()
        .ok()
}

/// The middle time (the upper one of the two middle ones for an even count); zero for none.
pub fn median(times: &[Duration]) -> Duration {
    let mut v = times.to_vec();
    v.sort();
    v.get(v.len() / 2).copied().unwrap_or_default()
}

/// The shortest time; zero for none.
pub fn min(times: &[Duration]) -> Duration {
    times.iter().copied().min().unwrap_or_default()
}

/// Decimal megabytes per second.
pub fn mbps(bytes: u64, d: Duration) -> f64 {
    bytes as f64 / 1e6 / d.as_secs_f64()
}

/// A duration as the tables print it: `1.23 s`.
pub fn secs(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

/// The first `n` words of `line` (`curl 7.88.1`, without the list of libraries).
pub fn first_words(line: &str, n: usize) -> String {
    line.split_whitespace()
        .take(n)
        .collect::<Vec<_>>()
        .join(" ")
}

/// `nginx/1.22.1`, from `nginx -v` (which prints to stderr).
pub fn nginx_version() -> String {
    ["/usr/sbin/nginx", "nginx"]
        .iter()
        .find_map(|bin| Command::new(bin).arg("-v").output().ok())
        .and_then(|o| {
            let text = String::from_utf8_lossy(&o.stderr).into_owned();
            text.split_whitespace()
                .find(|w| w.starts_with("nginx/"))
                .map(str::to_owned)
        })
        .unwrap_or_else(|| "nginx".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_peak_is_the_last_line_of_gnu_times_report() {
        assert_eq!(parse_max_rss_kib("218096\n"), Some(218_096));
        assert_eq!(
            parse_max_rss_kib("Command exited with non-zero status 3\n1552\n"),
            Some(1552)
        );
        assert_eq!(
            parse_max_rss_kib("Command terminated by signal 9\n1632\n\n"),
            Some(1632)
        );
        assert_eq!(parse_max_rss_kib(""), None);
        assert_eq!(parse_max_rss_kib("1552\nCommand exited"), None);
        assert_eq!(parse_max_rss_kib("-1\n"), None);
    }

    #[test]
    fn gnu_time_reports_the_peak_of_the_child_it_runs() {
        if gnu_time_version().is_err() {
            eprintln!("skipped: no GNU time at {GNU_TIME}");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let report = dir.path().join("rss");
        // A shell that fills 64 MiB of a variable holds at least that much resident.
        let mut cmd = Command::new("sh");
        cmd.args([
            "-c",
            "x=$(head -c 67108864 /dev/zero | tr '\\0' a); echo ${#x}",
        ])
        .env("BENCH_TEST_VAR", "1")
        .env_remove("BENCH_TEST_GONE");
        let out = under_gnu_time(&cmd, &report).output().unwrap();
        assert!(out.status.success(), "{out:?}");
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "67108864");
        let peak = peak_rss(&report).unwrap();
        assert!(peak >= 64 << 20, "peak {peak} bytes");
        assert!(peak < 1 << 30, "peak {peak} bytes");

        // The child's status comes through, and the report still ends in the peak.
        let failing = Command::new("false");
        let status = under_gnu_time(&failing, &report).status().unwrap();
        assert_eq!(status.code(), Some(1));
        assert!(peak_rss(&report).unwrap() > 0);
    }
}
