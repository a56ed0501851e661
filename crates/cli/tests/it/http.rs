//! `ensure https://…` end to end: kills, resumes, a remote that changes, one download for many
//! processes.
//!
//! Every kill happens while the server holds the body in the middle ([`Hold`]), after the
//! client has recorded bytes on disk, so the download can never end before the kill however
//! busy the machine is. What a later run fetched comes from the server's log.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::Duration;

use catalog_core::Digest;
use test_support::{
    Answer, FaultServer, Hold, Nginx, Served, paths_under, poll, random_bytes as bytes,
};

use crate::fixture::{
    Fixture, TestResult, assert_code, run_within_limit, stderr, stdout, str_field, u64_field,
};

/// How long a test waits for a signal (a hold, a file) before it fails.
const PATIENCE: Duration = Duration::from_secs(60);

/// The size of the files killed mid-way: one stream (below the threshold for parallel ranges).
const SIZE: usize = 8 << 20;

/// Where the server holds the body of a run that is to be killed.
const HOLD_AT: u64 = 6 << 20;

/// A server for `body` that holds it at [`HOLD_AT`]. While it holds, the client's flusher
/// records the first 4 MiB piece as on disk, so the tests wait for that record, not for time.
fn held_server(body: Vec<u8>) -> FaultServer {
    let server = FaultServer::start(body, vec![Answer::Serve { ranges: true }]);
    server.hold(Hold::AtOffset(HOLD_AT));
    server
}

/// The resume state (`<cache>/tmp/dl-*.state`) of the one download in flight under `cache`.
fn resume_state(cache: &Path) -> Option<serde_json::Value> {
    let state = fs::read_dir(cache.join("tmp"))
        .ok()?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "state"))?;
    serde_json::from_slice(&fs::read(state).ok()?).ok()
}

/// The resume state of the one download in flight under `cache`, as `(prefix_len, total)`.
fn resume_progress(cache: &Path) -> Option<(u64, u64)> {
    let value = resume_state(cache)?;
    Some((value["prefix_len"].as_u64()?, value["total"].as_u64()?))
}

/// Polls `done` until it holds, failing if `child` exits first or after [`PATIENCE`].
fn wait_for(child: &mut Child, what: &str, mut done: impl FnMut() -> bool) -> TestResult {
    let outcome = poll(PATIENCE, || {
        if done() {
            return Some(Ok(()));
        }
        match child.try_wait() {
            Ok(None) => None,
            Ok(Some(status)) => Some(Err(format!(
                "`ensure` exited ({status}) while waiting for {what}"
            ))),
            Err(e) => Some(Err(format!("waiting for `ensure`: {e}"))),
        }
    });
    outcome.unwrap_or_else(|| Err(format!("no {what} within {PATIENCE:?}")))?;
    Ok(())
}

/// Starts `ensure url` against `server` (holding), waits until the server holds the body and
/// the resume state shows bytes on disk, SIGKILLs the client, then releases the hold and
/// waits until the server has logged everything the client sent. Returns the bytes kept:
/// the state's `prefix_len` after the kill.
fn kill_while_held(fx: &Fixture, server: &FaultServer, url: &str) -> TestResult<u64> {
    let mut child = fx
        .command(["ensure", url, "--json"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let waited = wait_for(&mut child, "hold of the body", || {
        server.wait_held(Duration::from_millis(10))
    })
    .and_then(|()| {
        wait_for(&mut child, "bytes on disk in the resume state", || {
            resume_progress(fx.cache()).is_some_and(|(kept, _)| kept > 0)
        })
    });
    child.kill()?;
    child.wait()?;
    server.release();
    assert!(server.wait_idle(PATIENCE), "the server is still busy");
    waited?;
    let (kept, total) = resume_progress(fx.cache()).ok_or("no resume state after the kill")?;
    assert!(
        kept > 0 && kept <= HOLD_AT && total == SIZE as u64,
        "kept {kept} of {total}"
    );
    Ok(kept)
}

/// Files under `models/`: nothing may appear there before a download is complete.
fn model_files(cache: &Path) -> Vec<PathBuf> {
    paths_under(&cache.join("models"))
}

/// The start of `bytes=<start>-…`.
fn range_start(served: &Served) -> Option<u64> {
    served
        .range
        .as_deref()?
        .strip_prefix("bytes=")?
        .split('-')
        .next()?
        .parse()
        .ok()
}

#[test]
fn a_download_killed_midway_resumes_and_resends_only_the_rest() -> TestResult {
    let body = bytes(SIZE, 1);
    let server = held_server(body.clone());
    let fx = Fixture::new()?;
    let url = server.url("model.gguf");
    let kept = kill_while_held(&fx, &server, &url)?;
    assert!(
        model_files(fx.cache()).is_empty(),
        "a partial file became visible"
    );
    assert_eq!(fx.index_bytes(), None, "a partial download was registered");

    let first_run = server.requests();
    let digest = Digest::sha256_of(&body).to_string();
    let out = run_within_limit(&mut fx.command(["ensure", &url, "--digest", &digest, "--json"]));
    assert_code(&out, 0);
    let json: serde_json::Value = serde_json::from_str(&stdout(&out))?;
    assert_eq!(str_field(&json, "verification"), "pass");
    assert_eq!(fs::read(str_field(&json, "local_path"))?, body);
    assert!(server.wait_idle(PATIENCE));
    let second_run = &server.log()[first_run..];
    assert!(
        second_run
            .iter()
            .all(|s| s.status == 206 && range_start(s).is_some_and(|start| start >= kept)),
        "the second run asked for bytes it kept ({kept}): {second_run:?}"
    );
    let resent: u64 = second_run.iter().map(|s| s.body_bytes).sum();
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
    let server = held_server(bytes(SIZE, 2));
    let fx = Fixture::new()?;
    let url = server.url("model.gguf");
    kill_while_held(&fx, &server, &url)?;

    // Same size, new bytes, new ETag.
    let new = bytes(SIZE, 3);
    server.set_body(new.clone());
    let first_run = server.requests();
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
    assert!(server.wait_idle(PATIENCE));
    let second_run = &server.log()[first_run..];
    assert!(
        second_run
            .iter()
            .any(|s| s.status == 200 && s.body_bytes == SIZE as u64),
        "If-Range should have brought the whole file: {second_run:?}"
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
    let body = bytes(2 << 20, 5);
    let server = FaultServer::start(body.clone(), vec![Answer::Serve { ranges: true }]);
    // The first process to take the lock is held mid-way until the seven others wait for it.
    server.hold(Hold::AtOffset(1 << 20));
    let fx = Fixture::new()?;
    let url = server.url("shared.gguf");
    let mut children = Vec::new();
    for i in 0..8 {
        let err = fx.path(&format!("stderr-{i}"));
        let child = fx
            .command(["ensure", &url, "--json"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(fs::File::create(&err)?)
            .spawn()?;
        children.push((child, err));
    }
    let says_waiting = |err: &PathBuf| fs::read_to_string(err).is_ok_and(|e| e.contains("waiting"));
    let ready = poll(PATIENCE, || {
        let waiting = children.iter().filter(|(_, err)| says_waiting(err)).count();
        (server.wait_held(Duration::ZERO) && waiting == 7).then_some(())
    });
    assert!(
        ready.is_some(),
        "no hold and seven waiting processes within {PATIENCE:?}"
    );
    server.release();
    let mut paths = Vec::new();
    for (child, err) in children {
        let out = child.wait_with_output()?;
        assert_eq!(out.status.code(), Some(0), "{}", fs::read_to_string(err)?);
        let json: serde_json::Value = serde_json::from_str(&stdout(&out))?;
        paths.push(str_field(&json, "local_path").to_owned());
    }
    assert!(paths.windows(2).all(|w| w[0] == w[1]), "{paths:?}");
    assert_eq!(fs::read(&paths[0])?, body);
    assert!(server.wait_idle(PATIENCE));
    assert_eq!(server.requests(), 1, "{:?}", server.log());
    Ok(())
}

#[test]
fn a_killed_lock_holder_never_blocks_the_next_process() -> TestResult {
    let server = held_server(bytes(SIZE, 6));
    let fx = Fixture::new()?;
    let url = server.url("m.gguf");
    kill_while_held(&fx, &server, &url)?;
    // Had the lock outlived its holder, this run would wait for it and give up after 1 s.
    let out = run_within_limit(&mut fx.command(["ensure", &url, "--lock-timeout", "1"]));
    assert_code(&out, 0);
    assert!(!stderr(&out).contains("waiting"), "{}", stderr(&out));
    Ok(())
}

#[test]
fn lock_timeout_bounds_the_wait_with_a_clear_error() -> TestResult {
    let server = FaultServer::start(bytes(SIZE, 7), vec![Answer::Serve { ranges: true }]);
    server.hold(Hold::AtOffset(HOLD_AT));
    let fx = Fixture::new()?;
    let url = server.url("m.gguf");
    let mut holder = fx
        .command(["ensure", &url])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    // A process whose download is held holds the lock.
    let held = wait_for(&mut holder, "hold of the body", || {
        server.wait_held(Duration::from_millis(10))
    });
    let out =
        held.map(|()| run_within_limit(&mut fx.command(["ensure", &url, "--lock-timeout", "1"])));
    holder.kill()?;
    holder.wait()?;
    server.release();
    let out = out?;
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
    // And they reach the download engine, whose logs name URLs too.
    assert!(
        seen.contains("mp_transfer"),
        "the engine's logs were on:\n{seen}"
    );
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

/// The byte range `bytes=a-b` asks for, as `[a, b + 1)`; open-ended ranges end at `len`.
fn asked_range(served: &Served, len: u64) -> Option<(u64, u64)> {
    let spec = served.range.as_deref()?.strip_prefix("bytes=")?;
    let (a, b) = spec.split_once('-')?;
    let end = if b.is_empty() {
        len
    } else {
        b.parse::<u64>().ok()? + 1
    };
    Some((a.parse().ok()?, end))
}

/// The resume record's chunks beyond the prefix, `[start, end)`.
fn resume_chunks(cache: &Path) -> Vec<(u64, u64)> {
    let value = resume_state(cache).unwrap_or_default();
    value["chunks"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| Some((c[0].as_u64()?, c[1].as_u64()?)))
        .collect()
}

/// A parallel download killed while one chunk is held: the chunks after it were complete on
/// disk, beyond the hashed prefix. The next run fetches the missing chunk and no byte of any
/// chunk that was complete.
#[test]
fn a_parallel_download_killed_midway_fetches_no_byte_of_a_complete_chunk_again() -> TestResult {
    const MIB: u64 = 1 << 20;
    // Five 16 MiB chunks (files from 64 MiB on are fetched in parallel); the third is held.
    let size = 80 * MIB;
    let (gap_start, gap_end) = (32 * MIB, 48 * MIB);
    let body = bytes(usize::try_from(size)?, 30);
    let server = FaultServer::start(body.clone(), vec![Answer::Serve { ranges: true }]);
    server.hold(Hold::AtOffset(gap_start + MIB));
    let fx = Fixture::new()?;
    let url = server.url("big.gguf");
    let mut child = fx
        .command(["ensure", &url, "--json"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let waited = wait_for(&mut child, "the chunks after the held one on disk", || {
        resume_progress(fx.cache()) == Some((gap_start, size))
            && resume_chunks(fx.cache()) == [(gap_end, size)]
    });
    child.kill()?;
    child.wait()?;
    server.release();
    assert!(server.wait_idle(PATIENCE), "the server is still busy");
    waited?;

    let first_run = server.requests();
    let out = run_within_limit(&mut fx.command(["ensure", &url, "--json"]));
    assert_code(&out, 0);
    let json: serde_json::Value = serde_json::from_str(&stdout(&out))?;
    assert_eq!(fs::read(str_field(&json, "local_path"))?, body);
    assert!(server.wait_idle(PATIENCE));
    let second_run = &server.log()[first_run..];
    for served in second_run {
        let (start, end) = asked_range(served, size).ok_or("a request without a range")?;
        assert!(
            served.status == 206 && start >= gap_start && end <= gap_end,
            "the second run asked for bytes outside the missing chunk: {second_run:?}"
        );
    }
    let resent: u64 = second_run.iter().map(|s| s.body_bytes).sum();
    assert_eq!(resent, gap_end - gap_start, "{second_run:?}");
    assert_eq!(u64_field(&json, "bytes_read"), resent);
    Ok(())
}

#[test]
fn offline_a_url_not_in_the_catalog_is_refused_unasked_and_one_in_it_is_handed_out() -> TestResult {
    let nginx = Nginx::start();
    nginx.put("m.gguf", &bytes(100_000, 6))?;
    let fx = Fixture::new()?;
    let url = nginx.url("files/m.gguf");

    // The server would answer: the refusal says that nothing was asked.
    let out = run_within_limit(&mut fx.command(["ensure", &url, "--offline"]));
    assert_code(&out, 1);
    let err = stderr(&out);
    assert!(
        err.starts_with(&format!(
            "error: offline, and `{url}` is not in the catalog"
        )),
        "{err}"
    );
    assert!(err.contains("hint: drop `--offline`"), "{err}");
    assert!(nginx.log().is_empty(), "{:?}", nginx.log());

    let first = run_within_limit(&mut fx.command(["ensure", &url, "--json"]));
    assert_code(&first, 0);
    let first: serde_json::Value = serde_json::from_str(&stdout(&first))?;

    // The server is gone: the catalog answers.
    drop(nginx);
    let again = run_within_limit(&mut fx.command(["ensure", &url, "--json", "--offline"]));
    assert_code(&again, 0);
    let again: serde_json::Value = serde_json::from_str(&stdout(&again))?;
    assert_eq!(
        str_field(&again, "local_path"),
        str_field(&first, "local_path")
    );
    Ok(())
}
