//! Crash safety and I/O faults: `ensure` killed with `SIGKILL` at random moments, and run under `strace`
//! with failing `fsync`, `write` and `rename`. Whatever happens, the index parses, every
//! active entry's file hashes to its digest, nothing partial is visible under `models/`, and a
//! failed run leaves the index byte for byte as it was.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use catalog_core::Digest;
use test_support::{Nginx, paths_under, random_bytes as bytes};

use crate::fixture::{BIN, Fixture, TestResult, assert_code, run_within_limit, stderr, stdout};

/// A small deterministic PRNG (splitmix64), so a failing iteration can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn index(&mut self, len: usize) -> usize {
        usize::try_from(self.below(len as u64)).expect("below a usize")
    }
}

/// A model the tests serve or copy, with its digest.
struct Model {
    bytes: Vec<u8>,
    digest: Digest,
}

/// The digest of `data`, from the known models when it is one of them (hashing 8 MiB in a
/// debug test binary would dominate the run time).
fn digest_of(data: &[u8], models: &[Model]) -> Digest {
    models
        .iter()
        .find(|m| m.bytes == data)
        .map_or_else(|| Digest::sha256_of(data), |m| m.digest.clone())
}

/// Checks the cache's invariants after a crash; returns what is wrong.
fn check_cache(cache: &Path, models: &[Model]) -> Result<(), String> {
    let index = cache.join("catalog").join("index.json");
    if let Ok(text) = fs::read(&index) {
        let json: serde_json::Value =
            serde_json::from_slice(&text).map_err(|e| format!("index.json does not parse: {e}"))?;
        if json["version"] != 1 {
            return Err(format!("index version is {}", json["version"]));
        }
        let entries = json["entries"]
            .as_object()
            .ok_or("index has no `entries` object")?;
        for (id, entry) in entries {
            if entry["lifecycle"] != "active" {
                continue;
            }
            let path = entry["local_path"]
                .as_str()
                .ok_or_else(|| format!("{id}: no local_path"))?;
            let data = fs::read(path).map_err(|e| format!("{id}: `{path}` unreadable: {e}"))?;
            let actual = digest_of(&data, models).to_string();
            for key in [&entry["digest"], &entry["verification"]["computed"]] {
                if let Some(recorded) = key.as_str()
                    && recorded != actual
                {
                    return Err(format!(
                        "{id}: `{path}` hashes to {actual}, the index records {recorded}"
                    ));
                }
            }
        }
    }
    for path in paths_under(&cache.join("models")) {
        let data = fs::read(&path).map_err(|e| format!("`{}`: {e}", path.display()))?;
        if !models.iter().any(|m| m.bytes == data) {
            return Err(format!(
                "`{}` is partial or foreign ({} bytes)",
                path.display(),
                data.len()
            ));
        }
    }
    Ok(())
}

/// Whether the index of `cache` holds `id` as active.
fn is_active(cache: &Path, id: &str) -> bool {
    fs::read(cache.join("catalog").join("index.json"))
        .ok()
        .and_then(|t| serde_json::from_slice::<serde_json::Value>(&t).ok())
        .is_some_and(|j| j["entries"][id]["lifecycle"] == "active")
}

/// The sources one kill iteration can ensure: (reference, id, model index, extra args).
struct Source {
    reference: String,
    id: String,
    model: usize,
    copy: bool,
}

#[test]
fn ensure_killed_at_random_moments_never_leaves_a_broken_cache() -> TestResult {
    const ITERATIONS: u64 = 200;
    const CACHES: usize = 3;
    const MIB: [usize; 3] = [4, 5, 6];
    let nginx = Nginx::start();
    let fx = Fixture::new()?;
    let mut models = Vec::new();
    let mut sources = Vec::new();
    for (i, mib) in MIB.into_iter().enumerate() {
        let data = bytes(mib << 20, 100 + i as u64);
        let name = format!("m{i}.bin");
        nginx.put(&name, &data)?;
        fs::write(fx.path(&name), &data)?;
        for location in ["files", "slow"] {
            let url = nginx.url(&format!("{location}/{name}"));
            sources.push(Source {
                id: url.clone(),
                reference: url,
                model: i,
                copy: false,
            });
        }
        sources.push(Source {
            reference: name.clone(),
            id: fx.id_of(&name),
            model: i,
            copy: true,
        });
        models.push(Model {
            digest: Digest::sha256_of(&data),
            bytes: data,
        });
    }
    let caches: Vec<PathBuf> = (0..CACHES).map(|i| fx.path(&format!("cache{i}"))).collect();
    let command = |cache: &Path, src: &Source| {
        let mut cmd = fx.bare_command();
        cmd.arg("--cache-dir").arg(cache).args([
            "ensure",
            &src.reference,
            "--digest",
            &models[src.model].digest.to_string(),
            "-q",
        ]);
        if src.copy {
            cmd.arg("--copy");
        }
        cmd
    };
    // The typical run time of a complete fetch of the largest file over `/files/`; smaller
    // files are killed within a proportional time.
    let started = Instant::now();
    let scratch = fx.path("scratch");
    assert_code(&run_within_limit(&mut command(&scratch, &sources[6])), 0);
    let typical = started.elapsed().max(Duration::from_millis(50));

    for iteration in 0..ITERATIONS {
        let seed = 0x5eed_0000 + iteration;
        let mut rng = Rng(seed);
        let cache = &caches[rng.index(CACHES)];
        let src = &sources[rng.index(sources.len())];
        // `/slow/` sends 2 MB/s; only kill it within the time `/files/` takes.
        let window = typical * u32::try_from(MIB[src.model])? / u32::try_from(MIB[2])?;
        let delay = Duration::from_micros(rng.below(u64::try_from(window.as_micros())?));
        let mut child = command(cache, src)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        std::thread::sleep(delay);
        child.kill()?;
        let status = child.wait()?;
        let context = || {
            format!(
                "iteration {iteration} (seed {seed:#x}): killed `ensure {}` in `{}` after {delay:?} ({status})",
                src.reference,
                cache.display()
            )
        };
        check_cache(cache, &models).unwrap_or_else(|e| panic!("{}: {e}", context()));
        // A finished run is a cache hit next time; remove it so that later runs work again.
        if is_active(cache, &src.id) && rng.below(2) == 0 {
            let mut rm = fx.bare_command();
            rm.arg("--cache-dir").arg(cache).args(["rm", &src.id, "-q"]);
            let out = run_within_limit(&mut rm);
            assert!(
                out.status.success(),
                "{}: rm failed:\n{}",
                context(),
                stderr(&out)
            );
        }
    }
    for cache in &caches {
        for src in sources.iter().filter(|s| !s.reference.contains("/slow/")) {
            let out = run_within_limit(command(cache, src).arg("--json"));
            assert_code(&out, 0);
            let json: serde_json::Value = serde_json::from_str(&stdout(&out))?;
            assert_eq!(json["verification"], "pass", "{json:#}");
            check_cache(cache, &models).map_err(|e| format!("after the final runs: {e}"))?;
        }
    }
    Ok(())
}

/// `strace`, or a panic that says how to install it.
fn strace() -> PathBuf {
    let found = ["/usr/bin/strace", "/bin/strace", "/usr/local/bin/strace"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.exists());
    found.unwrap_or_else(|| {
        panic!(
            "strace is not installed: these tests inject I/O errors with it; run `bash scripts/install-test-deps.sh` (or `apt-get install strace`)"
        )
    })
}

/// Runs `ensure args` in `fx` under `strace -f -e inject=<inject>`.
fn ensure_under_strace(fx: &Fixture, inject: &str, args: &[&str]) -> Output {
    let mut cmd = Command::new(strace());
    cmd.env_clear()
        .env("HOME", fx.root().join("home"))
        .current_dir(fx.root())
        .args(["-f", "-o", "/dev/null", "-e"])
        .arg(format!("inject={inject}"))
        .arg(BIN)
        .arg("--cache-dir")
        .arg(fx.cache())
        .arg("ensure")
        .args(args)
        .arg("-q");
    run_within_limit(&mut cmd)
}

/// One injected fault: the `inject=` spec, a phrase the error must hold, and whether the
/// error must name a path under the cache.
struct Fault {
    inject: String,
    phrase: &'static str,
    names_cache_path: bool,
}

impl Fault {
    fn new(inject: impl Into<String>, phrase: &'static str) -> Self {
        Fault {
            inject: inject.into(),
            phrase,
            names_cache_path: true,
        }
    }

    fn eio_on_sync() -> Self {
        Fault::new("fsync,fdatasync:error=EIO", "Input/output error")
    }

    fn exdev_on_rename() -> Self {
        Fault::new(
            "rename,renameat,renameat2:error=EXDEV",
            "Invalid cross-device link",
        )
    }

    fn enospc(inject: impl Into<String>) -> Self {
        Fault::new(inject, "No space left on device")
    }
}

fn check_fault(fx: &Fixture, fault: &Fault, args: &[&str], models: &[Model]) -> Option<String> {
    let before = fx.index_bytes();
    let out = ensure_under_strace(fx, &fault.inject, args);
    let err = stderr(&out);
    let mut problems = Vec::new();
    if out.status.success() {
        problems.push("it succeeded".to_owned());
    }
    let lines: Vec<&str> = err.lines().collect();
    if lines.first().is_none_or(|l| !l.starts_with("error: "))
        || lines[1..].iter().any(|l| !l.starts_with("hint: "))
    {
        problems.push("stderr is not one `error: ` line and hints".to_owned());
    }
    if !err.contains(fault.phrase) {
        problems.push(format!("no {:?} in the error", fault.phrase));
    }
    let cache_path = format!("`{}/", fx.cache().display());
    if fault.names_cache_path && !err.contains(&cache_path) {
        problems.push(format!("no path under the cache ({cache_path}…`) named"));
    }
    if fx.index_bytes() != before {
        problems.push("the index changed".to_owned());
    }
    if let Err(e) = check_cache(fx.cache(), models) {
        problems.push(e);
    }
    (!problems.is_empty()).then(|| {
        format!(
            "inject={} ensure {args:?}: {}\n--- stderr\n{err}",
            fault.inject,
            problems.join("; ")
        )
    })
}

#[test]
fn injected_io_errors_fail_clearly_and_leave_the_index_untouched() -> TestResult {
    let nginx = Nginx::start();
    // Over HTTP: three 4 MiB pieces, each one positional write (direct), then a short tail
    // (buffered), spread over two writer threads. strace counts calls per thread, and one of
    // the two makes at least two of the four writes, so `when=2+` fails a write in the middle
    // of the download.
    let body = bytes((12 << 20) + 100, 7);
    nginx.put("m.bin", &body)?;
    let digest = Digest::sha256_of(&body).to_string();
    let url = nginx.url("files/m.bin");
    let models = [Model {
        bytes: body.clone(),
        digest: Digest::sha256_of(&body),
    }];
    let mut failures = Vec::new();
    let mut runs = 0;
    // For a local copy, the stage file is written first (with `write`, 64 KiB at a time), then
    // the index's temporary file: write 1 hits the copy, the last write the index.
    let copy_writes = {
        let fx = Fixture::with_one_entry()?;
        fx.write_model("copy.bin", &body)?;
        let mut cmd = Command::new(strace());
        cmd.env_clear()
            .current_dir(fx.root())
            .args(["-f", "-y", "-e", "trace=write", "-o"])
            .arg(fx.path("trace"))
            .arg(BIN)
            .arg("--cache-dir")
            .arg(fx.cache())
            .args(["ensure", "copy.bin", "--copy", "-q", "--digest", &digest]);
        assert_code(&run_within_limit(&mut cmd), 0);
        let trace = fs::read_to_string(fx.path("trace"))?;
        let writes: Vec<&str> = trace.lines().filter(|l| l.contains(" write(")).collect();
        writes
            .iter()
            .position(|l| l.contains("/catalog/"))
            .ok_or_else(|| format!("no index write in the trace:\n{trace}"))?
            + 1
    };
    let copy_faults = [
        Fault::eio_on_sync(),
        Fault::exdev_on_rename(),
        // Only one write fails: the error message itself is written with `write` too.
        Fault::enospc("write:error=ENOSPC:when=1"),
        Fault::enospc(format!("write:error=ENOSPC:when={}", copy_writes / 2)),
        Fault::enospc(format!("write:error=ENOSPC:when={copy_writes}")),
    ];
    let http_faults = [
        Fault::eio_on_sync(),
        Fault::exdev_on_rename(),
        Fault::enospc("pwrite64:error=ENOSPC"),
        Fault::enospc("pwrite64:error=ENOSPC:when=2+"),
    ];
    for (faults, copy) in [(&copy_faults[..], true), (&http_faults[..], false)] {
        for fault in faults {
            runs += 1;
            let fx = Fixture::with_one_entry()?;
            fx.write_model("copy.bin", &body)?;
            let args: Vec<&str> = if copy {
                vec!["copy.bin", "--copy", "--digest", &digest]
            } else {
                vec![&url, "--digest", &digest]
            };
            if let Some(problem) = check_fault(&fx, fault, &args, &models) {
                failures.push(problem);
            }
            // Without the fault, the same command succeeds afterwards.
            let out = fx.run(std::iter::once("ensure").chain(args.iter().copied()));
            if out.status.code() != Some(0) {
                failures.push(format!(
                    "after inject={}: a normal `ensure {args:?}` failed:\n{}",
                    fault.inject,
                    stderr(&out)
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {runs} injected faults were not handled well:\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
    Ok(())
}

/// A write refused in the middle of a parallel download: the process's file size limit makes
/// `pwrite` fail with `EFBIG` on whichever writer thread crosses it. The run fails with that
/// error and the partial file's path, changes and publishes nothing, and the next run resumes
/// from what was written and hashed before the failure.
#[test]
fn a_write_refused_mid_parallel_download_fails_clearly_and_the_next_run_resumes() -> TestResult {
    let nginx = Nginx::start();
    // Above the 64 MiB threshold for parallel ranges: six 16 MiB chunks.
    let body = bytes(96 << 20, 21);
    nginx.put("big.bin", &body)?;
    let digest = Digest::sha256_of(&body).to_string();
    let url = nginx.url("files/big.bin");
    let models = [Model {
        bytes: body.clone(),
        digest: Digest::sha256_of(&body),
    }];
    let fx = Fixture::with_one_entry()?;
    let before = fx.index_bytes();

    // A 40 MiB limit: the first two chunks are written, the third is refused. SIGXFSZ is
    // ignored, so that the write fails instead of the signal killing the process.
    let mut cmd = Command::new("sh");
    cmd.env_clear()
        .env("HOME", fx.root().join("home"))
        .current_dir(fx.root())
        .arg("-c")
        .arg("trap '' XFSZ; exec prlimit --fsize=41943040 \"$@\"")
        .arg("sh")
        .arg(BIN)
        .arg("--cache-dir")
        .arg(fx.cache())
        .args([
            "ensure",
            &url,
            "--digest",
            &digest,
            "--connections",
            "4",
            "-q",
        ]);
    let out = run_within_limit(&mut cmd);
    assert_code(&out, 1);
    let err = stderr(&out);
    let part = format!("`{}/tmp/dl-", fx.cache().display());
    assert!(
        err.starts_with("error: ") && err.contains("File too large") && err.contains(&part),
        "{err}"
    );
    assert_eq!(fx.index_bytes(), before, "the index changed");
    check_cache(fx.cache(), &models)?;

    // nginx logs the first run's cut requests when it notices the closed connections.
    nginx.wait_idle();
    nginx.clear_log();
    let out = fx.run(["ensure", &url, "--digest", &digest, "-q"]);
    assert_code(&out, 0);
    check_cache(fx.cache(), &models)?;
    assert!(is_active(fx.cache(), &url));
    nginx.wait_idle();
    let sent: u64 = nginx.log().iter().map(|l| l.body_bytes).sum();
    assert!(
        sent <= body.len() as u64 * 3 / 4,
        "the second run fetched {sent} of {} bytes: it did not resume",
        body.len()
    );
    Ok(())
}
