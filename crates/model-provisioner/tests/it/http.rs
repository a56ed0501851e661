//! The provisioner over HTTP, against nginx and a scripted fault server on loopback.

use std::fs;
use std::path::Path;
use std::time::Duration;

use catalog_core::{CatalogStore, Digest, Outcome, Storage};
use model_provisioner::{AnyFetcher, Error, FileFetcher, FsCatalog, HttpFetcher, ModelProvisioner};
use mp_transfer::{DownloadConfig, RetryPolicy};

use test_support::{Answer, FaultServer, Nginx, random_bytes as bytes};

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// Small chunks and quick retries, so that parallel ranges and retries show at test sizes.
fn config() -> DownloadConfig {
    DownloadConfig {
        connections: 4,
        chunk_size: 256 << 10,
        parallel_threshold: 1 << 20,
        retry: RetryPolicy {
            retries: 3,
            backoff: Duration::from_millis(10),
            ..RetryPolicy::default()
        },
        stall_timeout: Duration::from_secs(1),
        connect_timeout: Duration::from_secs(2),
        direct_io: true,
        ..DownloadConfig::default()
    }
}

fn provisioner(
    cache: &Path,
    config: DownloadConfig,
) -> Result<ModelProvisioner<FsCatalog, AnyFetcher>, Error> {
    let fetcher = AnyFetcher::new(FileFetcher::in_place()).with_http(HttpFetcher::new(config));
    ModelProvisioner::with_fetcher(cache, fetcher)
}

fn dir_is_empty(dir: &Path) -> bool {
    fs::read_dir(dir).map_or(true, |mut d| d.next().is_none())
}

#[test]
fn a_small_file_is_fetched_in_one_stream_recorded_and_then_reused() -> TestResult {
    let nginx = Nginx::start();
    let body = bytes(300_000, 1);
    nginx.put("tiny.gguf", &body)?;
    let cache = tempfile::tempdir()?;
    let p = provisioner(cache.path(), config())?;
    let url = nginx.url("files/tiny.gguf");

    let ensured = p.ensure(&url.parse()?, None)?;
    assert!(!ensured.cached);
    assert_eq!(ensured.bytes_read, 300_000);
    assert_eq!(ensured.resolved.id, url);
    let path = &ensured.resolved.local_path;
    assert!(path.starts_with(cache.path().join("models/http")));
    assert_eq!(path.file_name().and_then(|n| n.to_str()), Some("tiny.gguf"));
    assert_eq!(fs::read(path)?, body);
    assert!(fs::metadata(path)?.permissions().readonly());
    // No digest was given, yet the bytes were hashed on the way and the digest recorded.
    let entry = &ensured.entry;
    assert_eq!(entry.storage, Storage::Cache);
    assert_eq!(entry.verification.outcome, Outcome::Warn);
    assert_eq!(entry.verification.computed, Some(Digest::sha256_of(&body)));
    assert!(dir_is_empty(&cache.path().join("tmp")));
    assert_eq!(nginx.log_of_at_least(1).len(), 1, "{:?}", nginx.log());

    let again = p.ensure(&url.parse()?, Some(&Digest::sha256_of(&body)))?;
    assert!(again.cached);
    assert_eq!(again.entry.verification.outcome, Outcome::Pass);
    assert_eq!(nginx.log().len(), 1, "a cache hit sends no request");
    Ok(())
}

#[test]
fn a_large_file_is_fetched_in_parallel_ranges_and_verified() -> TestResult {
    let nginx = Nginx::start();
    let body = bytes(6 << 20, 2);
    nginx.put("big.safetensors", &body)?;
    let cache = tempfile::tempdir()?;
    let p = provisioner(cache.path(), config())?;
    let digest = Digest::sha256_of(&body);
    let ensured = p.ensure(&nginx.url("files/big.safetensors").parse()?, Some(&digest))?;
    assert_eq!(fs::read(&ensured.resolved.local_path)?, body);
    assert_eq!(ensured.entry.verification.outcome, Outcome::Pass);
    let bounded: Vec<_> = nginx
        .log()
        .into_iter()
        .filter(|l| l.status == 206 && l.range.as_deref().is_some_and(|r| !r.ends_with('-')))
        .collect();
    assert!(
        bounded.len() >= 20,
        "expected chunked ranges, got {bounded:?}"
    );
    Ok(())
}

#[test]
fn a_server_without_range_support_is_streamed_whole() -> TestResult {
    let nginx = Nginx::start();
    let body = bytes(3 << 20, 3);
    nginx.put("whole.gguf", &body)?;
    let cache = tempfile::tempdir()?;
    let p = provisioner(cache.path(), config())?;
    let ensured = p.ensure(
        &nginx.url("norange/whole.gguf").parse()?,
        Some(&Digest::sha256_of(&body)),
    )?;
    assert_eq!(fs::read(&ensured.resolved.local_path)?, body);
    let log = nginx.log_of_at_least(1);
    assert_eq!(log.len(), 1, "{log:?}");
    assert_eq!(log[0].status, 200);
    Ok(())
}

#[test]
fn a_digest_mismatch_publishes_nothing_and_leaves_no_partial() -> TestResult {
    let nginx = Nginx::start();
    nginx.put("m.gguf", &bytes(2 << 20, 4))?;
    let cache = tempfile::tempdir()?;
    let p = provisioner(cache.path(), config())?;
    let wrong = Digest::sha256_of(b"something else");
    let err = p
        .ensure(&nginx.url("files/m.gguf").parse()?, Some(&wrong))
        .expect_err("mismatch");
    assert!(err.is_verification_failure(), "{err}");
    assert!(err.to_string().contains(&wrong.to_string()));
    assert!(dir_is_empty(&cache.path().join("tmp")));
    assert!(dir_is_empty(&cache.path().join("blobs/sha256")));
    assert!(!cache.path().join("models").exists());
    assert!(!cache.path().join("catalog/index.json").exists());
    Ok(())
}

#[test]
fn a_whole_file_sent_for_a_range_restarts_the_download_as_one_stream() -> TestResult {
    // The first request gets a range; every later one the whole file (a server that stops
    // honouring ranges, or a pull-through cache that has not cached the file yet).
    let body = bytes(2 << 20, 31);
    let server = FaultServer::start(
        body.clone(),
        vec![
            Answer::Serve { ranges: true },
            Answer::Serve { ranges: false },
        ],
    );
    let cache = tempfile::tempdir()?;
    let p = provisioner(cache.path(), config())?;
    let digest = Digest::sha256_of(&body);
    let ensured = p.ensure(&server.url("m.gguf").parse()?, Some(&digest))?;
    assert_eq!(fs::read(&ensured.resolved.local_path)?, body);
    assert_eq!(ensured.entry.verification.outcome, Outcome::Pass);
    // Its pooled connections closed, the log is final.
    drop(p);
    assert!(server.wait_idle(Duration::from_secs(30)));
    let statuses: Vec<u16> = server.log().iter().map(|s| s.status).collect();
    assert_eq!(statuses.first(), Some(&206), "{statuses:?}");
    assert!(statuses.contains(&200), "{statuses:?}");
    assert!(dir_is_empty(&cache.path().join("tmp")));
    Ok(())
}

#[test]
fn http_errors_name_the_url_and_status_and_only_transient_ones_are_retried() -> TestResult {
    let nginx = Nginx::start();
    let cache = tempfile::tempdir()?;
    let p = provisioner(cache.path(), config())?;

    let err = p
        .ensure(&nginx.url("files/missing.gguf").parse()?, None)
        .expect_err("404");
    assert!(
        matches!(
            err,
            Error::Transfer(mp_transfer::Error::Download {
                status: Some(404),
                attempts: 1,
                ..
            })
        ),
        "{err:?}"
    );
    assert!(
        err.to_string().contains(&nginx.url("files/missing.gguf")),
        "{err}"
    );
    assert_eq!(err.hint().as_deref(), Some("check the URL"));
    assert_eq!(nginx.log_of_at_least(2).len(), 1, "a 404 is not retried");

    nginx.clear_log();
    let err = p
        .ensure(&nginx.url("status/500").parse()?, None)
        .expect_err("500");
    assert!(
        matches!(
            err,
            Error::Transfer(mp_transfer::Error::Download {
                status: Some(500),
                attempts: 4,
                ..
            })
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("after 4 attempts"), "{err}");
    assert_eq!(nginx.log_of_at_least(5).len(), 4, "first try and 3 retries");

    let port = test_support::free_port();
    let err = p
        .ensure(&format!("http://127.0.0.1:{port}/m.gguf").parse()?, None)
        .expect_err("refused");
    assert!(err.to_string().contains("could not connect"), "{err}");
    assert!(!cache.path().join("catalog/index.json").exists());
    Ok(())
}

#[test]
fn transient_statuses_are_retried_until_the_file_comes() -> TestResult {
    let body = bytes(100_000, 5);
    let server = FaultServer::start(
        body.clone(),
        vec![
            Answer::Status(503),
            Answer::Status(500),
            Answer::Serve { ranges: true },
        ],
    );
    let cache = tempfile::tempdir()?;
    let p = provisioner(cache.path(), config())?;
    let ensured = p.ensure(
        &server.url("m.gguf").parse()?,
        Some(&Digest::sha256_of(&body)),
    )?;
    assert_eq!(fs::read(&ensured.resolved.local_path)?, body);
    assert_eq!(server.requests(), 3);
    Ok(())
}

#[test]
fn a_body_cut_short_is_resumed_from_where_it_stopped() -> TestResult {
    let body = bytes(700_000, 6);
    let server = FaultServer::start(
        body.clone(),
        vec![
            Answer::Cut { bytes: 400_000 },
            Answer::Serve { ranges: true },
        ],
    );
    let cache = tempfile::tempdir()?;
    let p = provisioner(cache.path(), config())?;
    let ensured = p.ensure(
        &server.url("m.gguf").parse()?,
        Some(&Digest::sha256_of(&body)),
    )?;
    assert_eq!(fs::read(&ensured.resolved.local_path)?, body);
    let ranges = server.ranges();
    assert_eq!(ranges.len(), 2, "{ranges:?}");
    let resumed_at: u64 = ranges[1]
        .as_deref()
        .and_then(|r| r.strip_prefix("bytes="))
        .and_then(|r| r.strip_suffix('-'))
        .ok_or("no open range")?
        .parse()?;
    assert!(
        resumed_at > 0 && resumed_at <= 400_000,
        "resumed at {resumed_at}"
    );
    Ok(())
}

#[test]
fn an_interrupted_download_resumes_on_the_next_run() -> TestResult {
    let body = bytes(900_000, 7);
    let server = FaultServer::start(
        body.clone(),
        vec![
            Answer::Cut { bytes: 500_000 },
            Answer::Serve { ranges: true },
        ],
    );
    let cache = tempfile::tempdir()?;
    let url = server.url("m.gguf");
    let no_retry = DownloadConfig {
        retry: RetryPolicy {
            retries: 0,
            ..RetryPolicy::default()
        },
        ..config()
    };
    let err = provisioner(cache.path(), no_retry.clone())?
        .ensure(&url.parse()?, None)
        .expect_err("cut");
    assert!(
        matches!(err, Error::Transfer(mp_transfer::Error::Download { .. })),
        "{err:?}"
    );
    // The partial file and its resume state stay for the next run, invisible to the catalog.
    let leftovers: Vec<_> = fs::read_dir(cache.path().join("tmp"))?.collect::<Result<_, _>>()?;
    assert_eq!(leftovers.len(), 2, "{leftovers:?}");
    assert!(!cache.path().join("catalog/index.json").exists());

    // This run knows the digest, the first did not: the kept bytes are trusted by their URL
    // and validators.
    let ensured = provisioner(cache.path(), no_retry)?
        .ensure(&url.parse()?, Some(&Digest::sha256_of(&body)))?;
    assert_eq!(fs::read(&ensured.resolved.local_path)?, body);
    assert_eq!(ensured.bytes_read, 900_000 - 500_000);
    assert_eq!(server.ranges()[1].as_deref(), Some("bytes=500000-"));
    assert!(dir_is_empty(&cache.path().join("tmp")));
    Ok(())
}

/// A resume from an odd offset continues in parallel ranges: the first chunk starts off any
/// block boundary, the later ones on chunk boundaries, the file ends mid-block. The bytes land
/// the same whether they are written around the page cache or through it.
#[test]
fn a_resume_from_an_odd_offset_continues_in_parallel_direct_or_buffered() -> TestResult {
    let body = bytes((3 << 20) + 123, 12);
    for direct_io in [true, false] {
        let server = FaultServer::start(
            body.clone(),
            vec![
                Answer::Cut { bytes: 1_000_003 },
                Answer::Serve { ranges: true },
            ],
        );
        let cache = tempfile::tempdir()?;
        let url = server.url("odd.gguf");
        let once = DownloadConfig {
            retry: RetryPolicy {
                retries: 0,
                ..RetryPolicy::default()
            },
            direct_io,
            ..config()
        };
        provisioner(cache.path(), once.clone())?
            .ensure(&url.parse()?, None)
            .expect_err("cut");
        let ensured = provisioner(cache.path(), once)?
            .ensure(&url.parse()?, Some(&Digest::sha256_of(&body)))?;
        assert_eq!(
            fs::read(&ensured.resolved.local_path)?,
            body,
            "direct_io {direct_io}"
        );
        assert_eq!(ensured.bytes_read, body.len() as u64 - 1_000_003);
        let ranges: Vec<_> = server.ranges().into_iter().flatten().collect();
        assert_eq!(ranges[1], "bytes=1000003-", "{ranges:?}");
        // Later chunks are bounded and start on multiples of the chunk size.
        assert!(
            ranges[2..].iter().all(|r| r
                .trim_start_matches("bytes=")
                .split('-')
                .next()
                .and_then(|s| s.parse::<u64>().ok())
                .is_some_and(|s| s % (256 << 10) == 0)),
            "{ranges:?}"
        );
        assert!(
            ranges.len() >= 8,
            "expected parallel ranges, got {ranges:?}"
        );
    }
    Ok(())
}

#[test]
fn a_connection_cut_every_time_fails_clearly_after_the_retries() -> TestResult {
    let server = FaultServer::start(bytes(200_000, 8), vec![Answer::Cut { bytes: 10 }]);
    let cache = tempfile::tempdir()?;
    let p = provisioner(cache.path(), config())?;
    let err = p
        .ensure(&server.url("m.gguf").parse()?, None)
        .expect_err("always cut");
    let msg = err.to_string();
    assert!(
        msg.contains(&server.url("m.gguf")) && msg.contains("after 4 attempts"),
        "{msg}"
    );
    assert_eq!(server.requests(), 4);
    assert!(err.hint().is_some_and(|h| h.contains("resumes")), "{err:?}");
    Ok(())
}

#[test]
fn a_stalled_connection_is_abandoned_and_retried() -> TestResult {
    let body = bytes(300_000, 9);
    let server = FaultServer::start(
        body.clone(),
        vec![
            Answer::Stall {
                bytes: 1000,
                stall: Duration::from_secs(20),
            },
            Answer::Serve { ranges: true },
        ],
    );
    let cache = tempfile::tempdir()?;
    let p = provisioner(cache.path(), config())?;
    let started = std::time::Instant::now();
    let ensured = p.ensure(
        &server.url("m.gguf").parse()?,
        Some(&Digest::sha256_of(&body)),
    )?;
    assert_eq!(fs::read(&ensured.resolved.local_path)?, body);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
    Ok(())
}

#[test]
fn a_server_that_lies_is_caught_by_the_digest() -> TestResult {
    let body = bytes(100_000, 10);
    let server = FaultServer::start(body.clone(), vec![Answer::Lie(bytes(100_000, 42))]);
    let cache = tempfile::tempdir()?;
    let p = provisioner(cache.path(), config())?;
    let err = p
        .ensure(
            &server.url("m.gguf").parse()?,
            Some(&Digest::sha256_of(&body)),
        )
        .expect_err("lie");
    assert!(err.is_verification_failure(), "{err}");
    assert!(dir_is_empty(&cache.path().join("blobs/sha256")));
    Ok(())
}

#[test]
fn credentials_in_the_url_reach_neither_the_id_nor_the_index() -> TestResult {
    let body = bytes(10_000, 12);
    let server = FaultServer::start(body.clone(), vec![Answer::Serve { ranges: true }]);
    let cache = tempfile::tempdir()?;
    let p = provisioner(cache.path(), config())?;
    let url = server
        .url("m.gguf")
        .replace("http://", "http://alice:hunter2@")
        + "?token=s3cr3t";
    let ensured = p.ensure(&url.parse()?, None)?;
    assert_eq!(ensured.resolved.id, server.url("m.gguf"));
    let index = fs::read_to_string(cache.path().join("catalog/index.json"))?;
    assert!(
        !index.contains("hunter2") && !index.contains("s3cr3t") && !index.contains("alice"),
        "{index}"
    );
    assert_eq!(p.catalog().list()?.len(), 1);
    Ok(())
}

#[test]
fn a_complete_partial_left_by_a_kill_is_checked_with_one_byte_and_published() -> TestResult {
    let body = bytes(50_000, 13);
    let server = FaultServer::start(body.clone(), vec![Answer::Serve { ranges: true }]);
    let cache = tempfile::tempdir()?;
    let url = server.url("m.gguf");
    // What a run killed between the last byte and the rename leaves behind.
    let key = mp_transfer::partial_key(&url);
    fs::create_dir_all(cache.path().join("tmp"))?;
    fs::write(cache.path().join(format!("tmp/dl-{key}.part")), &body)?;
    let state = serde_json::json!({
        "url": url,
        "total": body.len(),
        "validators": {"etag": "\"fault-etag\"", "last_modified": null},
        "prefix_len": body.len(),
        "prefix_sha256": Digest::sha256_of(&body).value(),
    });
    fs::write(
        cache.path().join(format!("tmp/dl-{key}.state")),
        state.to_string(),
    )?;

    let ensured = provisioner(cache.path(), config())?
        .ensure(&url.parse()?, Some(&Digest::sha256_of(&body)))?;
    assert_eq!(fs::read(&ensured.resolved.local_path)?, body);
    assert_eq!(ensured.bytes_read, 0);
    assert_eq!(server.ranges(), [Some("bytes=49999-49999".to_owned())]);
    Ok(())
}

#[test]
fn eight_threads_ensuring_one_model_fetch_it_once() -> TestResult {
    let body = bytes(400_000, 15);
    let server = FaultServer::start(body.clone(), vec![Answer::Serve { ranges: true }]);
    let cache = tempfile::tempdir()?;
    let url = server.url("m.gguf");
    let p = provisioner(cache.path(), config())?;
    let paths: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|_| s.spawn(|| p.ensure_present_str(&url, None)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("thread panicked"))
            .collect()
    });
    let paths: Vec<_> = paths.into_iter().collect::<Result<_, _>>()?;
    assert!(paths.windows(2).all(|w| w[0] == w[1]), "{paths:?}");
    assert_eq!(server.requests(), 1, "one download for eight callers");
    assert_eq!(fs::read(&paths[0].local_path)?, body);
    Ok(())
}

#[test]
fn without_the_lock_concurrent_ensures_may_repeat_work_but_stay_correct() -> TestResult {
    let body = bytes(400_000, 16);
    let server = FaultServer::start(body.clone(), vec![Answer::Serve { ranges: true }]);
    let cache = tempfile::tempdir()?;
    let url = server.url("m.gguf");
    let p = provisioner(cache.path(), config())?.with_single_flight(false);
    let results: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|_| s.spawn(|| p.ensure_present_str(&url, None)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("thread panicked"))
            .collect()
    });
    for r in results {
        assert_eq!(fs::read(r?.local_path)?, body);
    }
    let entries = p.catalog().list()?;
    assert_eq!(entries.len(), 1);
    assert_eq!(
        entries[0].verification.computed,
        Some(Digest::sha256_of(&body))
    );
    assert!(dir_is_empty(&cache.path().join("tmp")), "no leftovers");
    Ok(())
}

#[test]
fn a_corrupt_blob_is_caught_by_verify_and_fetched_again_by_ensure() -> TestResult {
    use std::os::unix::fs::{FileExt, PermissionsExt};
    let body = bytes(200_000, 17);
    let server = FaultServer::start(body.clone(), vec![Answer::Serve { ranges: true }]);
    let cache = tempfile::tempdir()?;
    let url = server.url("m.gguf");
    let p = provisioner(cache.path(), config())?;
    let digest = Digest::sha256_of(&body);
    let path = p.ensure_present_str(&url, Some(digest.clone()))?.local_path;

    // Flip a byte in place, keeping size and mtime: only a re-hash can tell.
    let mtime = fs::metadata(&path)?.modified()?;
    fs::set_permissions(&path, fs::Permissions::from_mode(0o644))?;
    let f = fs::OpenOptions::new().write(true).open(&path)?;
    f.write_all_at(&[body[0] ^ 1], 0)?;
    f.set_modified(mtime)?;
    drop(f);
    fs::set_permissions(&path, fs::Permissions::from_mode(0o444))?;

    let err = p.verify(&url).expect_err("corrupt");
    assert!(err.is_verification_failure(), "{err}");
    let again = p.ensure(&url.parse()?, Some(&digest))?;
    assert!(!again.cached);
    assert_eq!(again.bytes_read, 200_000);
    assert_eq!(fs::read(&again.resolved.local_path)?, body);
    assert_eq!(p.verify(&url)?.entry.verification.outcome, Outcome::Pass);
    assert_eq!(server.requests(), 2);
    Ok(())
}

/// The resume record of the one download in flight under `cache`, as `(prefix_len, total)`.
fn resume_progress(cache: &Path) -> Option<(u64, u64)> {
    let state = fs::read_dir(cache.join("tmp"))
        .ok()?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "state"))?;
    let value: serde_json::Value = serde_json::from_slice(&fs::read(state).ok()?).ok()?;
    Some((value["prefix_len"].as_u64()?, value["total"].as_u64()?))
}

#[test]
fn a_cancelled_download_stops_where_it_waits_and_the_next_run_resumes_it() -> TestResult {
    let body = bytes(6 << 20, 21);
    let server = FaultServer::start(body.clone(), vec![Answer::Serve { ranges: true }]);
    // One stream, held after 5 MiB: the first 4 MiB piece reaches the disk and the record.
    server.hold(test_support::Hold::AfterBytes(5 << 20));
    let cache = tempfile::tempdir()?;
    let url = server.url("m.gguf");
    let digest = Digest::sha256_of(&body);
    // A stall would be retried long after the test's bound: only the flag stops this one.
    let download = DownloadConfig {
        connections: 1,
        stall_timeout: Duration::from_secs(600),
        ..config()
    };
    let cancel = model_provisioner::Cancel::new();
    let p = ModelProvisioner::builder(cache.path())
        .download_config(download.clone())
        .cancel(cancel.clone())
        .build()?;
    let (reference, expected) = (url.parse()?, digest.clone());
    let run = std::thread::spawn(move || p.ensure(&reference, Some(&expected)).map(|_| ()));
    assert!(
        server.wait_held(Duration::from_secs(30)),
        "the hold was not reached"
    );
    assert!(
        test_support::poll(Duration::from_secs(30), || {
            resume_progress(cache.path()).filter(|&(kept, _)| kept > 0)
        })
        .is_some(),
        "no bytes in the resume record"
    );
    let cancelled_at = std::time::Instant::now();
    cancel.cancel();
    let err = run.join().map_err(|_| "the ensure panicked")?.unwrap_err();
    assert!(
        cancelled_at.elapsed() < Duration::from_secs(5),
        "it did not stop promptly"
    );
    assert!(err.is_cancelled(), "{err}");
    assert_eq!(err.class(), "cancelled");
    let (kept, total) = resume_progress(cache.path()).ok_or("no resume record")?;
    assert_eq!(total, body.len() as u64);
    assert!(kept >= 4 << 20, "kept {kept}");
    assert!(
        !cache.path().join("catalog/index.json").exists() || {
            let p = ModelProvisioner::file_only(cache.path())?;
            p.catalog().list()?.is_empty()
        }
    );

    server.release();
    let p = ModelProvisioner::builder(cache.path())
        .download_config(download)
        .build()?;
    let ensured = p.ensure(&url.parse()?, Some(&digest))?;
    assert_eq!(
        ensured.bytes_read,
        body.len() as u64 - kept,
        "the kept bytes came again"
    );
    assert_eq!(fs::read(&ensured.resolved.local_path)?, body);
    Ok(())
}
