//! `--progress json`: the events of a model's way, one JSON object per line on standard error,
//! in the schema `docs/progress.md` documents. The order of the events of a model, and of each
//! file, is fixed; timing fields, paths and ports are filtered.

use test_support::{Nginx, S3Server, random_bytes as bytes};

use crate::fixture::{Fixture, TestResult, assert_code};
use crate::snapshots::filters;

/// The event lines of `stderr`, each parsed; any other line but the error and its hint fails
/// the test.
fn events(stderr: &[u8]) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(stderr)
        .lines()
        .filter(|l| !l.starts_with("error:") && !l.starts_with("hint:"))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("`{l}` is no event: {e}")))
        .collect()
}

/// The events without `file_progress` (how many come depends on time), one per line, their
/// timing fields blanked.
fn sequence(events: &[serde_json::Value]) -> String {
    events
        .iter()
        .filter(|e| e["event"] != "file_progress")
        .map(|e| {
            let mut e = e.clone();
            for timing in ["rate", "ms"] {
                if e.get(timing).is_some() {
                    e[timing] = "[t]".into();
                }
            }
            // Where a model lands is the text output's to show (and the catalog's); here, that
            // the path names a place that exists.
            if let Some(path) = e.get("local_path").and_then(|p| p.as_str()) {
                assert!(std::path::Path::new(path).exists(), "{path}");
                e["local_path"] = "[PATH]".into();
            }
            e.to_string()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn assert_events(fx: &Fixture, name: &str, text: &str) {
    let filters = filters(fx.root());
    insta::with_settings!({
        filters => filters.iter().map(|(a, b)| (a.as_str(), b.as_str())),
        prepend_module_to_snapshot => true,
    }, {
        insta::assert_snapshot!(name, text);
    });
}

#[test]
fn a_download_reports_resolved_its_file_verifying_published_and_done() -> TestResult {
    let nginx = Nginx::start();
    nginx.put("m/tiny.gguf", &bytes(300_000, 71))?;
    let fx = Fixture::new()?;
    let url = nginx.url("files/m/tiny.gguf");
    let out = fx
        .command(["ensure", &url, "--progress", "json"])
        .output()?;
    assert_code(&out, 0);
    let first = events(&out.stderr);
    assert!(first.iter().all(|e| e["v"] == 1), "{first:?}");
    assert_events(&fx, "http_download", &sequence(&first));

    // Again: the catalog has it, and says so.
    let out = fx
        .command(["ensure", &url, "--progress", "json"])
        .output()?;
    assert_code(&out, 0);
    assert_events(&fx, "http_cached", &sequence(&events(&out.stderr)));
    Ok(())
}

#[test]
fn a_folder_reports_each_file_and_a_failure_its_class() -> TestResult {
    let server = S3Server::start()?;
    server.create_bucket("events")?;
    server.put("events", "m/a.bin", &bytes(200_000, 72))?;
    server.put("events", "m/b.bin", &bytes(100_000, 73))?;
    let fx = Fixture::new()?;
    let env = [
        ("AWS_ACCESS_KEY_ID", server.access_key().to_owned()),
        ("AWS_SECRET_ACCESS_KEY", server.secret_key().to_owned()),
        ("AWS_ENDPOINT_URL", server.endpoint()),
    ];
    // One file at a time, so that the files' events come in one order.
    let mut cmd = fx.command([
        "ensure",
        "s3://events/m/",
        "--progress",
        "json",
        "--parallel-files",
        "1",
    ]);
    cmd.envs(env.iter().map(|(k, v)| (*k, v.as_str())));
    let out = cmd.output()?;
    assert_code(&out, 0);
    assert_events(&fx, "s3_folder", &sequence(&events(&out.stderr)));

    // A digest the model does not have: the files move, then the model fails as a
    // verification failure.
    let mut cmd = fx.command([
        "ensure",
        "s3://events/m/a.bin",
        "--progress",
        "json",
        "--digest",
        &format!("sha256:{}", "0".repeat(64)),
    ]);
    cmd.envs(env.iter().map(|(k, v)| (*k, v.as_str())));
    let out = cmd.output()?;
    assert_code(&out, 3);
    let failed = events(&out.stderr);
    let last = failed.last().expect("events");
    assert_eq!(
        (&last["event"], &last["class"]),
        (&"failed".into(), &"verification".into())
    );
    Ok(())
}

#[test]
fn a_capped_download_reports_its_progress_a_few_times_a_second() -> TestResult {
    // At 400 kB/s, 1.2 MB takes about three seconds: progress events come in between.
    let nginx = Nginx::start();
    let body = bytes(1_200_000, 74);
    nginx.put("m/w.bin", &body)?;
    let fx = Fixture::new()?;
    let url = nginx.url("files/m/w.bin");
    let out = fx
        .command(["ensure", &url, "--progress", "json", "--limit-rate", "400K"])
        .output()?;
    assert_code(&out, 0);
    let progress: Vec<u64> = events(&out.stderr)
        .iter()
        .filter(|e| e["event"] == "file_progress")
        .map(|e| e["bytes"].as_u64().expect("bytes"))
        .collect();
    assert!(progress.len() >= 2, "{progress:?}");
    assert!(
        progress.windows(2).all(|w| w[0] <= w[1]) && progress.iter().all(|&b| b <= 1_200_000),
        "{progress:?}"
    );
    Ok(())
}
