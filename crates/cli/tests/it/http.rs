//! `ensure https://…` end to end against nginx: kills, resumes, a remote that changes.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant, SystemTime};

use catalog_core::Digest;
use test_support::{Nginx, random_bytes as bytes};

use crate::fixture::{
    Fixture, TestResult, assert_code, run_within_limit, stderr, stdout, str_field, u64_field,
};

/// The resume state of the one download in flight under `cache`, as `(prefix_len, total)`.
fn resume_progress(cache: &Path) -> Option<(u64, u64)> {
    let tmp = cache.join("tmp");
    let state = fs::read_dir(tmp)
        .ok()?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "state"))?;
    let value: serde_json::Value = serde_json::from_slice(&fs::read(state).ok()?).ok()?;
    Some((value["prefix_len"].as_u64()?, value["total"].as_u64()?))
}

/// Starts `ensure url` and SIGKILLs it once at least `fraction` of the file is kept on disk.
/// Returns the number of bytes kept at that moment.
fn kill_midway(fx: &Fixture, url: &str, fraction: f64) -> TestResult<u64> {
    let mut child: Child = fx
        .command(["ensure", url, "--json"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some((kept, total)) = resume_progress(fx.cache())
            && kept as f64 >= total as f64 * fraction
        {
            child.kill()?;
            child.wait()?;
            return Ok(kept);
        }
        if let Some(status) = child.try_wait()? {
            return Err(format!("the download ended before it could be killed: {status}").into());
        }
        if Instant::now() > deadline {
            child.kill()?;
            return Err("no progress within 30 s".into());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Files under `models/`: nothing may appear there before a download is complete.
fn model_files(cache: &Path) -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in fs::read_dir(dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, out);
            } else {
                out.push(path);
            }
        }
    }
    let mut out = Vec::new();
    walk(&cache.join("models"), &mut out);
    out
}

#[test]
fn a_download_killed_midway_resumes_and_resends_only_the_rest() -> TestResult {
    let nginx = Nginx::start();
    let body = bytes(6 << 20, 1);
    nginx.put("model.gguf", &body)?;
    let fx = Fixture::new()?;
    // `/slow/` sends 2 MB/s, so the kill lands mid-way.
    let url = nginx.url("slow/model.gguf");
    let kept = kill_midway(&fx, &url, 0.3)?;
    assert!(
        model_files(fx.cache()).is_empty(),
        "a partial file became visible"
    );
    assert_eq!(fx.index_bytes(), None, "a partial download was registered");

    nginx.clear_log();
    let digest = Digest::sha256_of(&body).to_string();
    let out = run_within_limit(&mut fx.command(["ensure", &url, "--digest", &digest, "--json"]));
    assert_code(&out, 0);
    let json: serde_json::Value = serde_json::from_str(&stdout(&out))?;
    assert_eq!(str_field(&json, "verification"), "pass");
    assert_eq!(fs::read(str_field(&json, "local_path"))?, body);
    let resent = nginx
        .log_of_at_least(1)
        .iter()
        .map(|l| l.body_bytes)
        .sum::<u64>();
    assert!(
        resent <= body.len() as u64 - kept,
        "re-sent {resent} bytes although {kept} of {} were kept",
        body.len()
    );
    assert_eq!(u64_field(&json, "bytes_read"), resent);
    Ok(())
}

#[test]
fn a_remote_file_that_changed_between_runs_is_fetched_from_scratch() -> TestResult {
    let nginx = Nginx::start();
    let old = bytes(4 << 20, 2);
    let path = nginx.put("model.gguf", &old)?;
    let fx = Fixture::new()?;
    let url = nginx.url("slow/model.gguf");
    kill_midway(&fx, &url, 0.2)?;

    // Same size, new bytes, new mtime: nginx's ETag and Last-Modified change.
    let new = bytes(4 << 20, 3);
    fs::write(&path, &new)?;
    fs::File::options()
        .write(true)
        .open(&path)?
        .set_modified(SystemTime::now() + Duration::from_secs(60))?;
    nginx.clear_log();
    let out = run_within_limit(&mut fx.command(["ensure", &url, "--json"]));
    assert_code(&out, 0);
    let json: serde_json::Value = serde_json::from_str(&stdout(&out))?;
    assert_eq!(
        fs::read(str_field(&json, "local_path"))?,
        new,
        "old bytes were kept"
    );
    assert_eq!(
        str_field(&json, "computed"),
        Digest::sha256_of(&new).to_string()
    );
    let log = nginx.log_of_at_least(1);
    assert!(
        log.iter().any(|l| l.status == 200),
        "If-Range should have brought the whole file: {log:?}"
    );
    Ok(())
}

#[test]
fn json_prints_the_final_object_only_and_quiet_prints_nothing_else() -> TestResult {
    let nginx = Nginx::start();
    let body = bytes(100_000, 4);
    nginx.put("m.gguf", &body)?;
    let fx = Fixture::new()?;
    let url = nginx.url("files/m.gguf");
    let digest = Digest::sha256_of(&body).to_string();

    let out = run_within_limit(&mut fx.command(["ensure", &url, "--digest", &digest, "--json"]));
    assert_code(&out, 0);
    let text = stdout(&out);
    let json: serde_json::Value = serde_json::from_str(&text)?;
    assert_eq!(str_field(&json, "id"), url);
    assert_eq!(u64_field(&json, "bytes"), 100_000);
    assert!(stderr(&out).is_empty(), "{}", stderr(&out));

    let out = run_within_limit(&mut fx.command(["--quiet", "ensure", &url]));
    assert_code(&out, 0);
    assert!(stderr(&out).is_empty(), "{}", stderr(&out));
    assert!(stdout(&out).contains(&url));
    Ok(())
}

#[test]
fn a_404_names_the_url_and_status_with_a_hint() -> TestResult {
    let nginx = Nginx::start();
    let fx = Fixture::new()?;
    let url = nginx.url("files/nope.gguf");
    let out = run_within_limit(&mut fx.command(["ensure", &url]));
    assert_code(&out, 1);
    let err = stderr(&out);
    assert!(
        err.starts_with(&format!("error: failed to download `{url}`: HTTP 404")),
        "{err}"
    );
    assert!(err.contains("hint: check the URL"), "{err}");
    assert_eq!(fx.index_bytes(), None);
    Ok(())
}

#[test]
fn eight_processes_ensuring_one_model_download_it_once() -> TestResult {
    let nginx = Nginx::start();
    let body = bytes(2 << 20, 5);
    nginx.put("shared.gguf", &body)?;
    let fx = Fixture::new()?;
    let url = nginx.url("slow/shared.gguf");
    let children: Vec<Child> = (0..8)
        .map(|_| {
            fx.command(["ensure", &url, "--json"])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
        })
        .collect::<Result<_, _>>()?;
    let mut paths = Vec::new();
    let mut waited = 0;
    for child in children {
        let out = child.wait_with_output()?;
        assert_code(&out, 0);
        let json: serde_json::Value = serde_json::from_str(&stdout(&out))?;
        paths.push(str_field(&json, "local_path").to_owned());
        waited += usize::from(stderr(&out).contains("waiting"));
    }
    assert!(paths.windows(2).all(|w| w[0] == w[1]), "{paths:?}");
    assert_eq!(fs::read(&paths[0])?, body);
    let gets = nginx.log_of_at_least(2).len();
    assert_eq!(gets, 1, "{:?}", nginx.log());
    assert!(waited >= 1, "the waiting processes say so");
    Ok(())
}

#[test]
fn a_killed_lock_holder_never_blocks_the_next_process() -> TestResult {
    let nginx = Nginx::start();
    let body = bytes(4 << 20, 6);
    nginx.put("m.gguf", &body)?;
    let fx = Fixture::new()?;
    let url = nginx.url("slow/m.gguf");
    kill_midway(&fx, &url, 0.1)?;
    let started = Instant::now();
    let out = run_within_limit(&mut fx.command(["ensure", &url, "--lock-timeout", "1"]));
    assert_code(&out, 0);
    assert!(!stderr(&out).contains("waiting"), "{}", stderr(&out));
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "took {:?}",
        started.elapsed()
    );
    Ok(())
}

#[test]
fn lock_timeout_bounds_the_wait_with_a_clear_error() -> TestResult {
    let nginx = Nginx::start();
    nginx.put("m.gguf", &bytes(8 << 20, 7))?;
    let fx = Fixture::new()?;
    let url = nginx.url("slow/m.gguf");
    let mut holder = fx
        .command(["ensure", &url])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    // Wait until the holder is downloading, so it holds the lock.
    let deadline = Instant::now() + Duration::from_secs(10);
    while resume_progress(fx.cache()).is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    let out = run_within_limit(&mut fx.command(["ensure", &url, "--lock-timeout", "1"]));
    holder.kill()?;
    holder.wait()?;
    assert_code(&out, 1);
    let err = stderr(&out);
    assert!(
        err.contains("waiting") && err.contains("gave up after 1 s"),
        "{err}"
    );
    assert!(err.contains("hint: "), "{err}");
    Ok(())
}

#[test]
fn url_credentials_and_the_hf_token_never_reach_logs_errors_or_the_cache() -> TestResult {
    let nginx = Nginx::start();
    nginx.put("m.gguf", &bytes(50_000, 8))?;
    let fx = Fixture::new()?;
    let good = nginx
        .url("files/m.gguf")
        .replace("http://", "http://alice:PASSW0RD@")
        + "?token=QUERYSECRET";
    let bad = nginx
        .url("files/nope.gguf")
        .replace("http://", "http://alice:PASSW0RD@")
        + "?token=QUERYSECRET";
    let mut seen = String::new();
    for url in [&good, &bad, &good] {
        let out = run_within_limit(
            fx.command(["-vvv", "ensure", url, "--json"])
                .env("HF_TOKEN", "hf_TOKENSECRET"),
        );
        seen.push_str(&stdout(&out));
        seen.push_str(&stderr(&out));
    }
    for args in [
        vec!["ls", "--json"],
        vec!["show", &nginx.url("files/m.gguf"), "--json"],
    ] {
        let out = run_within_limit(&mut fx.command(args));
        assert_code(&out, 0);
        seen.push_str(&stdout(&out));
    }
    read_everything_under(fx.cache(), &mut seen);
    assert!(seen.contains("model ensured"), "trace logs were on");
    for secret in ["PASSW0RD", "QUERYSECRET", "TOKENSECRET", "alice"] {
        assert!(!seen.contains(secret), "`{secret}` leaked");
    }
    Ok(())
}

/// Appends every file under `dir` to `out`, as text.
fn read_everything_under(dir: &Path, out: &mut String) {
    for entry in fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            read_everything_under(&path, out);
        } else if let Ok(bytes) = fs::read(&path) {
            out.push_str(&String::from_utf8_lossy(&bytes));
        }
    }
}
