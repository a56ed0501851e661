//! The provisioner over HTTP, against nginx and a scripted fault server on loopback.

use std::fs;
use std::path::Path;
use std::time::Duration;

use catalog_core::{CatalogStore, Digest, Outcome, Storage};
use model_provisioner::{AnyFetcher, Error, FileFetcher, FsCatalog, HttpFetcher, ModelProvisioner};
use mp_transfer::{DownloadConfig, RetryPolicy};
use std::sync::Arc;

use test_support::{Answer, FaultServer, Hold, Nginx, random_bytes as bytes};

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
fn authorization_goes_to_the_endpoint_only_and_is_dropped_on_a_redirect_elsewhere() -> TestResult {
    use mp_transfer::{Download, Downloader, Expected, UrlSource};
    let body = bytes(20_000, 14);
    let elsewhere = FaultServer::start(body.clone(), vec![Answer::Serve { ranges: true }]);
    let endpoint = FaultServer::start(Vec::new(), vec![Answer::Redirect(elsewhere.url("blob"))]);
    let cache = tempfile::tempdir()?;
    let layout = catalog_core::CacheLayout::new(cache.path())?;
    let url: url::Url = endpoint.url("org/repo/resolve/main/m.gguf").parse()?;
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(reqwest::header::AUTHORIZATION, "Bearer hf_SECRET".parse()?);
    let engine = Downloader::new(config())?;
    let downloaded = engine.fetch(
        &layout,
        &Download {
            source: &UrlSource::new(url.clone(), url.as_str(), headers),
            expected: Expected {
                size: Some(20_000),
                digest: Some(&Digest::sha256_of(&body)),
            },
            id: "test",
            key: None,
        },
        &NoProgressBar,
    )?;
    assert_eq!(downloaded.staged.size, 20_000);
    assert_eq!(
        endpoint.authorizations(),
        [Some("Bearer hf_SECRET".to_owned())]
    );
    assert!(
        elsewhere.authorizations().iter().all(Option::is_none),
        "{:?}",
        elsewhere.authorizations()
    );
    Ok(())
}

/// Progress that shows nothing.
struct NoProgressBar;

impl model_provisioner::Progress for NoProgressBar {
    fn advance(&self, _: u64) {}
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

/// A source that signs every request with the credentials in force, as S3 (a signature per
/// request) or an OCI registry (a bearer token that expires) needs, and counts what it built.
struct Signing {
    url: url::Url,
    token: std::sync::Mutex<String>,
    built: std::sync::atomic::AtomicUsize,
    refreshes: std::sync::atomic::AtomicUsize,
    can_refresh: bool,
}

impl Signing {
    fn new(url: &str, can_refresh: bool) -> Result<Self, url::ParseError> {
        Ok(Signing {
            url: url.parse()?,
            token: std::sync::Mutex::new("old".to_owned()),
            built: 0.into(),
            refreshes: 0.into(),
            can_refresh,
        })
    }
}

impl mp_transfer::RequestSource for Signing {
    fn display(&self) -> &str {
        self.url.as_str()
    }

    fn request(
        &self,
        client: &reqwest::Client,
        headers: reqwest::header::HeaderMap,
    ) -> reqwest::RequestBuilder {
        use std::sync::atomic::Ordering;
        let n = self.built.fetch_add(1, Ordering::SeqCst);
        let token = self.token.lock().unwrap().clone();
        // The range is part of what is signed, as SigV4 does with the headers it covers.
        let range = headers
            .get(reqwest::header::RANGE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("all")
            .to_owned();
        client
            .get(self.url.clone())
            .headers(headers)
            .bearer_auth(format!("{token}.{n}.{range}"))
    }

    fn reauthorize<'a>(
        &'a self,
        _: &'a reqwest::Client,
        status: reqwest::StatusCode,
        _: &'a reqwest::header::HeaderMap,
    ) -> mp_transfer::BoxFuture<'a, bool> {
        Box::pin(async move {
            assert_eq!(status, reqwest::StatusCode::UNAUTHORIZED);
            if !self.can_refresh {
                return false;
            }
            self.refreshes
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            "new".clone_into(&mut self.token.lock().unwrap());
            true
        })
    }
}

fn engine_fetch(
    engine: &mp_transfer::Downloader,
    cache: &Path,
    source: &dyn mp_transfer::RequestSource,
    body: &[u8],
) -> Result<mp_transfer::Downloaded, Error> {
    use mp_transfer::{Download, Expected};
    let layout = catalog_core::CacheLayout::new(cache)?;
    let digest = Digest::sha256_of(body);
    Ok(engine.fetch(
        &layout,
        &Download {
            source,
            expected: Expected {
                size: Some(body.len() as u64),
                digest: Some(&digest),
            },
            id: "test",
            key: None,
        },
        &NoProgressBar,
    )?)
}

#[test]
fn a_401_in_the_middle_of_a_parallel_download_is_recovered_by_one_refresh() -> TestResult {
    use std::sync::atomic::Ordering;
    let body = bytes(3 << 20, 16);
    // The probe and two ranges go through; the fourth request is refused, as when a token
    // expires in the middle of a pull.
    let server = FaultServer::start(
        body.clone(),
        vec![
            Answer::Serve { ranges: true },
            Answer::Serve { ranges: true },
            Answer::Serve { ranges: true },
            Answer::Status(401),
            Answer::Serve { ranges: true },
        ],
    );
    let cache = tempfile::tempdir()?;
    let source = Signing::new(&server.url("blob"), true)?;
    let engine = mp_transfer::Downloader::new(config())?;
    let downloaded = engine_fetch(&engine, cache.path(), &source, &body)?;
    assert_eq!(std::fs::read(downloaded.staged.path())?, body);
    assert_eq!(source.refreshes.load(Ordering::SeqCst), 1);
    // Every request was built afresh by the source: one call each, one signature each.
    let auths: Vec<String> = server.authorizations().into_iter().flatten().collect();
    assert_eq!(source.built.load(Ordering::SeqCst), server.requests());
    assert_eq!(auths.len(), server.requests());
    let distinct: std::collections::BTreeSet<_> = auths.iter().collect();
    assert_eq!(distinct.len(), auths.len(), "{auths:?}");
    // The refused request was sent again with the new credentials, for the same range.
    let refused = &auths[3];
    assert!(refused.starts_with("Bearer old."), "{refused}");
    let range = refused.rsplit('.').next().unwrap_or_default();
    assert!(
        auths[4..]
            .iter()
            .any(|a| a.starts_with("Bearer new.") && a.ends_with(&format!(".{range}"))),
        "{auths:?}"
    );
    assert!(server.requests() > 8, "parallel ranges: {auths:?}");
    Ok(())
}

#[test]
fn a_401_that_no_refresh_can_fix_fails_at_once_with_its_status() -> TestResult {
    use std::sync::atomic::Ordering;
    let body = bytes(100_000, 17);
    let server = FaultServer::start(body.clone(), vec![Answer::Status(401)]);
    let cache = tempfile::tempdir()?;
    let engine = mp_transfer::Downloader::new(config())?;
    // A source without fresh credentials: one request, no retry.
    let stale = Signing::new(&server.url("blob"), false)?;
    let err = engine_fetch(&engine, cache.path(), &stale, &body).expect_err("401");
    assert!(
        matches!(
            err,
            Error::Transfer(mp_transfer::Error::Download {
                status: Some(401),
                attempts: 1,
                ..
            })
        ),
        "{err:?}"
    );
    assert_eq!(server.requests(), 1);
    // A source that refreshes, against a server that still refuses: sent once more, then the
    // 401 is the answer.
    let refreshing = Signing::new(&server.url("blob"), true)?;
    let err = engine_fetch(&engine, cache.path(), &refreshing, &body).expect_err("401");
    assert!(
        matches!(
            err,
            Error::Transfer(mp_transfer::Error::Download {
                status: Some(401),
                ..
            })
        ),
        "{err:?}"
    );
    assert_eq!(refreshing.refreshes.load(Ordering::SeqCst), 1);
    assert_eq!(server.requests(), 3);
    Ok(())
}

#[test]
fn parallel_downloads_of_one_engine_share_one_memory_budget() -> TestResult {
    assert_eq!(DownloadConfig::default().memory_budget, 128 << 20);
    // Four files at once, each in parallel 256 KiB ranges with a window of eight: without a
    // shared budget they would hold 8 MiB of buffers.
    let budget = 4 << 20;
    let engine = mp_transfer::Downloader::new(DownloadConfig {
        memory_budget: budget,
        ..config()
    })?;
    let files: Vec<_> = (0..4).map(|i| bytes(6 << 20, 20 + i)).collect();
    let servers: Vec<_> = files
        .iter()
        .map(|b| FaultServer::start(b.clone(), vec![Answer::Serve { ranges: true }]))
        .collect();
    let cache = tempfile::tempdir()?;
    std::thread::scope(|s| {
        let runs: Vec<_> = files
            .iter()
            .zip(&servers)
            .map(|(body, server)| {
                let engine = &engine;
                let cache = cache.path();
                s.spawn(move || -> Result<(), String> {
                    let source = UrlSourceFor::new(&server.url("f"));
                    let d =
                        engine_fetch(engine, cache, &source.0, body).map_err(|e| e.to_string())?;
                    (d.staged.size == body.len() as u64)
                        .then_some(())
                        .ok_or_else(|| "short".to_owned())
                })
            })
            .collect();
        for run in runs {
            run.join().expect("no panic")?;
        }
        Ok::<(), String>(())
    })?;
    assert!(servers.iter().all(|s| s.requests() > 8), "parallel ranges");
    let peak = engine.memory_peak();
    assert!(peak > 0 && peak <= budget, "peak {peak} of {budget}");
    Ok(())
}

#[test]
fn downloads_that_share_a_small_budget_never_wait_on_each_other_forever() -> TestResult {
    // Room for two chunks, and three files fetched at once in parallel ranges. Each server
    // holds the body of the probe (the first chunk) until all three hold: meanwhile the later
    // chunks are there for the taking. If those could take the whole budget, each download
    // would wait for a buffer for its first chunk while the hasher waits for that chunk.
    // (The budget in force is at least one 4 MiB stream piece: chunks of 2 MiB make it two.)
    let chunk: u64 = 2 << 20;
    let engine = Arc::new(mp_transfer::Downloader::new(DownloadConfig {
        chunk_size: chunk,
        memory_budget: 2 * chunk,
        ..config()
    })?);
    let cache = tempfile::tempdir()?;
    let files: Vec<Vec<u8>> = (0..3).map(|i| bytes(8 << 20, 40 + i)).collect();
    let servers: Vec<Arc<FaultServer>> = files
        .iter()
        .map(|b| {
            let server = FaultServer::start(b.clone(), vec![Answer::Serve { ranges: true }]);
            server.hold(Hold::AtOffset(chunk / 2));
            Arc::new(server)
        })
        .collect();
    let (done, finished) = std::sync::mpsc::channel();
    for (body, server) in files.iter().zip(&servers) {
        let (engine, server, body, done) =
            (engine.clone(), server.clone(), body.clone(), done.clone());
        let cache = cache.path().to_owned();
        std::thread::spawn(move || {
            let source = UrlSourceFor::new(&server.url("f"));
            let result = engine_fetch(&engine, &cache, &source.0, &body)
                .map(|d| d.staged.size)
                .map_err(|e| e.to_string());
            let _ = done.send(result);
        });
    }
    for server in &servers {
        assert!(
            server.wait_held(Duration::from_secs(60)),
            "no probe was held"
        );
    }
    for server in &servers {
        server.release();
    }
    for _ in &files {
        // Generous: the three files take well under a second when nothing is stuck.
        let size = finished
            .recv_timeout(Duration::from_secs(120))
            .map_err(|_| "the downloads are stuck waiting for memory")??;
        assert_eq!(size, 8 << 20);
    }
    assert!(engine.memory_peak() <= 2 * chunk);
    Ok(())
}

/// A plain [`UrlSource`](mp_transfer::UrlSource) for a URL.
struct UrlSourceFor(mp_transfer::UrlSource);

impl UrlSourceFor {
    fn new(url: &str) -> Self {
        UrlSourceFor(mp_transfer::UrlSource::new(
            url.parse().expect("a URL"),
            url,
            reqwest::header::HeaderMap::new(),
        ))
    }
}
