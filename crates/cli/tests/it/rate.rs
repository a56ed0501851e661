//! `--limit-rate` and `MODEL_PROVISIONER_LIMIT_RATE`: a cap on the bytes per second of one
//! process, downloads and uploads alike.
//!
//! A cap is a floor on the time a transfer takes, so these tests assert only that floor: a
//! busy machine makes a run slower, never faster. How close to the cap a transfer runs is
//! measured in the benchmarks (`mp-bench-rate`), not here.

use std::fs;
use std::time::{Duration, Instant};

use test_support::{Nginx, S3Server, random_bytes as bytes};

use crate::fixture::{Fixture, TestResult, assert_code, assert_failure, str_field};

/// 1.2 MB in all, at 400 kB/s: at least 3 s, less the burst the cap allows at the start
/// (a tenth of a second's worth) and whatever the socket buffers take before the cap applies.
const SIZE: usize = 1_200_000;
const RATE: &str = "400K";
const AT_LEAST: Duration = Duration::from_secs(2);

#[test]
fn a_capped_download_takes_at_least_its_size_over_the_cap() -> TestResult {
    let nginx = Nginx::start();
    let body = bytes(SIZE, 61);
    nginx.put("m/w.bin", &body)?;
    let fx = Fixture::new()?;
    let started = Instant::now();
    let url = nginx.url("files/m/w.bin");
    let out = fx
        .command(["ensure", &url, "--json", "--limit-rate", RATE])
        .output()?;
    assert_code(&out, 0);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    assert_eq!(fs::read(str_field(&json, "local_path"))?, body);
    assert!(
        started.elapsed() >= AT_LEAST,
        "{:?} for {SIZE} bytes at {RATE}/s",
        started.elapsed()
    );
    Ok(())
}

/// Two files, pushed at once, share the one cap.
#[test]
fn the_environment_caps_a_push_to_a_bucket() -> TestResult {
    let server = S3Server::start()?;
    server.create_bucket("capped")?;
    let fx = Fixture::new()?;
    fs::create_dir_all(fx.path("model"))?;
    fs::write(fx.path("model/a.bin"), bytes(SIZE / 2, 63))?;
    fs::write(fx.path("model/b.bin"), bytes(SIZE / 2, 64))?;
    let out = fx.json(["ensure", "model", "--json"])?;
    let id = str_field(&out, "id").to_owned();
    let started = Instant::now();
    let mut push = fx.command(["push", &id, "s3://capped/m/", "--json"]);
    push.env("AWS_ACCESS_KEY_ID", server.access_key())
        .env("AWS_SECRET_ACCESS_KEY", server.secret_key())
        .env("AWS_ENDPOINT_URL", server.endpoint())
        .env("MODEL_PROVISIONER_LIMIT_RATE", RATE);
    let out = push.output()?;
    assert_code(&out, 0);
    assert!(
        started.elapsed() >= AT_LEAST,
        "{:?} for {SIZE} bytes at {RATE}/s",
        started.elapsed()
    );
    Ok(())
}

#[test]
fn a_rate_that_is_no_rate_is_a_usage_error() -> TestResult {
    let fx = Fixture::new()?;
    let out = fx.run(["ensure", "x.gguf", "--limit-rate", "fast"]);
    assert_failure(&out, 2, &["`fast` is no rate", "`50M`"]);
    let mut cmd = fx.command(["ensure", "x.gguf"]);
    cmd.env("MODEL_PROVISIONER_LIMIT_RATE", "0");
    let out = cmd.output()?;
    assert_failure(&out, 2, &["a cap of zero would move nothing"]);
    Ok(())
}
