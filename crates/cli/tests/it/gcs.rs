//! `ensure gs://…` end to end, against fake-gcs-server on loopback ([`FakeGcs`]) named by
//! `STORAGE_EMULATOR_HOST` (or `--endpoint-url`), with a [`HoldProxy`] in front of it for
//! kills, refusals and request logs, and Google's token services ([`GoogleTokens`]).
//!
//! Every run gets `GCE_METADATA_HOST` pointing at a port nothing listens on unless a test
//! serves the metadata server, so that no run waits on the metadata address.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use catalog_core::Digest;
use test_support::{
    FakeGcs, GoogleTokens, Hold, HoldProxy, LyingProxy, ProxiedHit, ServiceAccount, paths_under,
    poll, random_bytes,
};

use crate::fixture::{
    Fixture, TestResult, assert_code, assert_failure, hints, run_within_limit, stderr, stdout,
    str_field,
};

/// How long a test waits for a signal (a hold, a file) before it fails.
const PATIENCE: Duration = Duration::from_secs(60);

/// The size of an object killed mid-way, fetched as one stream.
const SIZE: usize = 8 << 20;

/// Where the proxy holds the body of a run that is to be killed.
const HOLD_AT: u64 = 6 << 20;

const BUCKET: &str = "models";

/// A port nothing listens on, as `host:port`.
fn closed_port() -> String {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a port")
        .to_string()
}

/// `args` against the endpoint `STORAGE_EMULATOR_HOST` names, with no metadata server.
pub(crate) fn gs_command(fx: &Fixture, endpoint: &str, args: &[&str]) -> Command {
    let mut cmd = fx.command(args);
    cmd.env("STORAGE_EMULATOR_HOST", endpoint)
        .env("GCE_METADATA_HOST", closed_port());
    cmd
}

fn run_gs(fx: &Fixture, endpoint: &str, args: &[&str]) -> Output {
    run_within_limit(&mut gs_command(fx, endpoint, args))
}

fn json_gs(fx: &Fixture, endpoint: &str, args: &[&str]) -> TestResult<serde_json::Value> {
    let out = run_gs(fx, endpoint, args);
    assert_code(&out, 0);
    Ok(serde_json::from_slice(&out.stdout)?)
}

/// Every file under the cache's `models/`.
fn model_files(cache: &Path) -> Vec<PathBuf> {
    paths_under(&cache.join("models"))
}

#[test]
fn an_object_and_a_folder_are_ensured_warn_without_a_digest_and_pass_with_one() -> TestResult {
    let gcs = FakeGcs::start()?;
    let body = random_bytes(1 << 20, 11);
    gcs.put(BUCKET, "llm/tiny.gguf", &body)?;
    gcs.put(BUCKET, "repo/config.json", b"{}")?;
    gcs.put(BUCKET, "repo/sub/w.bin", &random_bytes(50_000, 12))?;
    let fx = Fixture::new()?;

    let json = json_gs(
        &fx,
        &gcs.endpoint(),
        &["ensure", "gs://models/llm/tiny.gguf", "--json"],
    )?;
    let id = format!("gs+http://{}/models/llm/tiny.gguf", gcs.host());
    assert_eq!(str_field(&json, "id"), id);
    assert_eq!(str_field(&json, "verification"), "warn", "{json:#}");
    assert_eq!(fs::read(str_field(&json, "local_path"))?, body);

    let digest = Digest::sha256_of(&body).to_string();
    let json = json_gs(
        &fx,
        &gcs.endpoint(),
        &["ensure", &id, "--json", "--digest", &digest],
    )?;
    assert_eq!(str_field(&json, "verification"), "pass", "{json:#}");

    // `--endpoint-url` before the environment, which names a port nothing listens on.
    let json = json_gs(
        &fx,
        &closed_port(),
        &[
            "ensure",
            "gs://models/repo/",
            "--json",
            "--endpoint-url",
            &gcs.endpoint(),
        ],
    )?;
    assert_eq!(
        str_field(&json, "id"),
        format!("gs+http://{}/models/repo/", gcs.host())
    );
    let dir = Path::new(str_field(&json, "local_path"));
    assert_eq!(fs::read(dir.join("config.json"))?, b"{}");
    assert!(dir.join("sub/w.bin").is_file());
    Ok(())
}

#[test]
fn a_reference_gs_cannot_read_is_a_usage_error_in_its_own_words() -> TestResult {
    let fx = Fixture::new()?;
    for (reference, words) in [
        ("gs://bucket", "names bucket `bucket` but no object"),
        ("gs://Bad_Bucket/x", "is not a bucket name"),
        ("gs://bucket/a/../b", "is not a safe path"),
    ] {
        let out = fx.run(["ensure", reference]);
        assert_failure(&out, 2, &[reference, words]);
        assert!(
            hints(&out)
                .iter()
                .any(|h| h.contains("gs://bucket/prefix/")),
            "{}",
            stderr(&out)
        );
    }
    Ok(())
}

#[test]
fn damaged_bytes_fail_the_objects_crc32c_with_exit_3_and_publish_nothing() -> TestResult {
    let gcs = FakeGcs::start()?;
    gcs.put(BUCKET, "bad/model.bin", &random_bytes(200_000, 13))?;
    let liar = LyingProxy::start(&gcs.endpoint(), "/download/");
    let fx = Fixture::new()?;
    let out = run_gs(
        &fx,
        &liar.endpoint(),
        &["ensure", "gs://models/bad/model.bin"],
    );
    assert_failure(&out, 3, &["does not match its source", "crc32c:"]);
    assert!(
        model_files(fx.cache()).is_empty(),
        "{:?}",
        model_files(fx.cache())
    );
    Ok(())
}

#[test]
fn a_missing_object_is_named_and_the_metadata_server_off_cloud_gives_up_fast() -> TestResult {
    let gcs = FakeGcs::start()?;
    gcs.create_bucket(BUCKET)?;
    let fx = Fixture::new()?;
    let started = std::time::Instant::now();
    let out = run_gs(&fx, &gcs.endpoint(), &["ensure", "gs://models/none.bin"]);
    assert_failure(
        &out,
        1,
        &["no object `none.bin` in bucket `models`", &gcs.endpoint()],
    );
    assert!(started.elapsed() < Duration::from_secs(20));
    Ok(())
}

#[test]
fn without_credentials_a_refusal_names_every_provider_tried() -> TestResult {
    let gcs = FakeGcs::start()?;
    gcs.put(BUCKET, "private/model.bin", b"private")?;
    let proxy = HoldProxy::start(&gcs.endpoint())?;
    proxy.refuse("GET", "/storage/v1/b/models/o/", 403, 10);
    let fx = Fixture::new()?;
    let out = run_gs(
        &fx,
        &proxy.url(),
        &["ensure", "gs://models/private/model.bin"],
    );
    assert_failure(
        &out,
        1,
        &[
            "refused anonymous access to object `private/model.bin` in bucket `models`",
            "GOOGLE_APPLICATION_CREDENTIALS not set",
            "no gcloud ADC file at",
            "metadata server not reachable at",
        ],
    );
    // --no-sign-request says the bucket is not public instead.
    let out = run_gs(
        &fx,
        &proxy.url(),
        &[
            "ensure",
            "gs://models/private/model.bin",
            "--no-sign-request",
        ],
    );
    assert_failure(&out, 1, &["refused unsigned access"]);
    assert!(hints(&out).iter().any(|h| h.contains("--no-sign-request")));
    Ok(())
}

/// The resume state of the one download in flight under `cache`: its `prefix_len`.
fn resume_kept(cache: &Path) -> Option<u64> {
    let state = fs::read_dir(cache.join("tmp"))
        .ok()?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "state"))?;
    let value: serde_json::Value = serde_json::from_slice(&fs::read(state).ok()?).ok()?;
    value["prefix_len"].as_u64()
}

/// The starts of the byte requests' ranges in `log` (a `GET` without a range starts at 0).
fn get_starts(log: &[ProxiedHit]) -> Vec<u64> {
    log.iter()
        .filter(|h| h.method == "GET" && h.path.starts_with("/download/"))
        .map(|h| {
            h.range
                .as_deref()
                .and_then(|r| r.strip_prefix("bytes=")?.split('-').next()?.parse().ok())
                .unwrap_or(0)
        })
        .collect()
}

/// Starts `ensure reference --connections 1` through `proxy` (holding at [`HOLD_AT`]), waits
/// until the proxy holds the body AND the resume state shows bytes on disk, SIGKILLs the
/// client, releases the hold and waits until the proxy is idle. Returns the bytes kept.
fn kill_while_held(fx: &Fixture, proxy: &HoldProxy, reference: &str) -> TestResult<u64> {
    proxy.hold(Hold::AtOffset(HOLD_AT));
    let mut child = gs_command(
        fx,
        &proxy.url(),
        &["ensure", reference, "--json", "--connections", "1"],
    )
    .stdin(Stdio::null())
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .spawn()?;
    let recorded = poll(PATIENCE, || {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(Err(format!("`ensure` exited ({status}) before the kill")));
        }
        let held = proxy.wait_held(Duration::from_millis(10));
        let kept = resume_kept(fx.cache()).is_some_and(|k| k > 0);
        (held && kept).then_some(Ok(()))
    });
    child.kill()?;
    child.wait()?;
    proxy.release();
    assert!(proxy.wait_idle(PATIENCE), "the proxy is still busy");
    recorded.ok_or("no hold and no recorded bytes in time")??;
    let kept = resume_kept(fx.cache()).ok_or("no resume state after the kill")?;
    assert!(kept > 0 && kept <= HOLD_AT, "kept {kept}");
    Ok(kept)
}

/// The bytes the byte requests in `log` sent.
fn bytes_sent(log: &[ProxiedHit]) -> u64 {
    log.iter()
        .filter(|h| h.method == "GET" && h.path.starts_with("/download/"))
        .map(|h| h.bytes_sent)
        .sum()
}

#[test]
fn a_download_killed_midway_resumes_from_the_bytes_kept() -> TestResult {
    let gcs = FakeGcs::start()?;
    let body = random_bytes(SIZE, 14);
    gcs.put(BUCKET, "big/model.bin", &body)?;
    let proxy = HoldProxy::start(&gcs.endpoint())?;
    let fx = Fixture::new()?;
    let reference = "gs://models/big/model.bin";
    let kept = kill_while_held(&fx, &proxy, reference)?;
    proxy.clear_log();

    let json = json_gs(
        &fx,
        &proxy.url(),
        &["ensure", reference, "--json", "--connections", "1"],
    )?;
    assert!(fs::read(str_field(&json, "local_path"))? == body);
    let log = proxy.log();
    let starts = get_starts(&log);
    assert!(
        !starts.is_empty() && starts.iter().all(|s| *s >= kept),
        "the second run asked again for bytes it had: kept {kept}, ranges from {starts:?}\n{log:#?}"
    );
    assert_eq!(bytes_sent(&log), SIZE as u64 - kept, "{log:#?}");
    Ok(())
}

#[test]
fn an_object_replaced_between_runs_is_fetched_again_from_byte_0() -> TestResult {
    let gcs = FakeGcs::start()?;
    gcs.put(BUCKET, "big/model.bin", &random_bytes(SIZE, 16))?;
    let proxy = HoldProxy::start(&gcs.endpoint())?;
    let fx = Fixture::new()?;
    let reference = "gs://models/big/model.bin";
    kill_while_held(&fx, &proxy, reference)?;
    // A new generation, of the same size: the bytes kept are not its bytes.
    let replaced = random_bytes(SIZE, 17);
    gcs.put(BUCKET, "big/model.bin", &replaced)?;
    proxy.clear_log();

    let json = json_gs(
        &fx,
        &proxy.url(),
        &["ensure", reference, "--json", "--connections", "1"],
    )?;
    assert!(fs::read(str_field(&json, "local_path"))? == replaced);
    let log = proxy.log();
    assert_eq!(get_starts(&log).first(), Some(&0), "{log:#?}");
    assert_eq!(bytes_sent(&log), SIZE as u64, "{log:#?}");
    Ok(())
}

#[test]
fn hostile_names_in_a_folder_are_refused_and_nothing_is_written() -> TestResult {
    let gcs = FakeGcs::start()?;
    gcs.put(BUCKET, "h/fine.bin", b"fine")?;
    gcs.put(BUCKET, "h/../../outside.bin", b"hostile")?;
    let fx = Fixture::new()?;
    let out = run_gs(&fx, &gcs.endpoint(), &["ensure", "gs://models/h/"]);
    assert_failure(&out, 1, &["refusing the file name", "../../outside.bin"]);
    assert!(model_files(fx.cache()).is_empty());
    assert!(!fx.root().join("outside.bin").exists());
    Ok(())
}

#[test]
fn no_private_key_refresh_token_or_access_token_is_ever_printed_or_recorded() -> TestResult {
    let gcs = FakeGcs::start()?;
    gcs.put(BUCKET, "secret/model.bin", &random_bytes(50_000, 15))?;
    gcs.put(BUCKET, "secret/dir/a.bin", b"a")?;
    let tokens = GoogleTokens::start()?;
    let fx = Fixture::new()?;
    let account = ServiceAccount::make(fx.root(), &tokens.token_uri())?;
    let gcloud = fx.path("gcloud");
    fs::create_dir_all(&gcloud)?;
    fs::write(
        gcloud.join("application_default_credentials.json"),
        serde_json::json!({
            "type": "authorized_user",
            "client_id": "client-1",
            "client_secret": "client-secret-never-shown",
            "refresh_token": "refresh-token-never-shown",
            "token_uri": tokens.token_uri(),
        })
        .to_string(),
    )?;
    let mut everything = String::new();
    let mut run = |reference: &str, by_key: bool, code: i32| {
        let mut cmd = gs_command(
            &fx,
            &gcs.endpoint(),
            &["ensure", reference, "--json", "-vvv"],
        );
        if by_key {
            cmd.env("GOOGLE_APPLICATION_CREDENTIALS", &account.key_file);
        } else {
            cmd.env("CLOUDSDK_CONFIG", &gcloud);
        }
        let out = run_within_limit(&mut cmd);
        assert_code(&out, code);
        everything.push_str(&stdout(&out));
        everything.push_str(&stderr(&out));
    };
    run("gs://models/secret/model.bin", true, 0);
    run("gs://models/secret/dir/", false, 0);
    run("gs://models/secret/none.bin", true, 1);
    // A token service that refuses prints its error too.
    tokens.refuse(400);
    run("gs://models/secret/dir/a.bin", false, 1);
    assert!(
        everything.contains("DEBUG") || everything.contains("debug"),
        "no -vvv output"
    );
    for file in paths_under(fx.cache()) {
        if file.extension().is_some_and(|e| e == "json") {
            everything.push_str(&fs::read_to_string(&file)?);
        }
    }
    let key_body: String = account
        .private_key
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .take(3)
        .collect();
    assert!(tokens.issued().len() >= 3, "{:?}", tokens.issued());
    for secret in tokens.issued().iter().map(String::as_str).chain([
        "client-secret-never-shown",
        "refresh-token-never-shown",
        &key_body[..40],
    ]) {
        assert!(
            !everything.contains(secret),
            "`{secret}` was printed or recorded"
        );
    }
    Ok(())
}

#[test]
fn credentials_from_the_metadata_server_reach_the_bucket() -> TestResult {
    let gcs = FakeGcs::start()?;
    gcs.put(BUCKET, "md/model.bin", b"metadata bytes")?;
    let proxy = HoldProxy::start(&gcs.endpoint())?;
    let tokens = GoogleTokens::start()?;
    let fx = Fixture::new()?;
    let mut cmd = gs_command(
        &fx,
        &proxy.url(),
        &["ensure", "gs://models/md/model.bin", "--json"],
    );
    cmd.env("GCE_METADATA_HOST", tokens.host());
    let out = run_within_limit(&mut cmd);
    assert_code(&out, 0);
    assert_eq!(tokens.issued(), ["token-1"]);
    let log = proxy.log();
    assert!(
        !log.is_empty()
            && log
                .iter()
                .all(|h| h.authorization.as_deref() == Some("Bearer token-1")),
        "{log:#?}"
    );
    Ok(())
}
