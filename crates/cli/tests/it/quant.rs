//! `ensure hf:org/repo:QUANT` with the binary, against a Hub-shaped nginx: the built-in client
//! and `--via hf-cli` (the real `hf`, handed the chosen paths as `--include` patterns) give the
//! same files; an unknown tag is one error line listing what the repository has.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use test_support::{HubNginx, assert_holds, fake_gguf};

use crate::fixture::{
    Fixture, TestResult, assert_failure, assert_one_error_line, hints, run_within, stderr,
    str_field,
};

const REPO: &str = "test-org/quants";

/// `hf` is a Python process, slow to start on a busy machine.
const LIMIT: Duration = Duration::from_secs(60);

/// A split `Q8_0` model, false friends of it, and two projectors.
fn quant_repo() -> BTreeMap<String, Vec<u8>> {
    [
        "README.md",
        "model-Q8_0-00001-of-00002.gguf",
        "model-Q8_0-00002-of-00002.gguf",
        "model-Q4_0_4_4.gguf",
        "model-Q4_0.gguf",
        "model-F16.gguf",
        "mmproj-model-f16.gguf",
        "mmproj-model-f32.gguf",
    ]
    .iter()
    .map(|name| ((*name).to_owned(), fake_gguf(name, 1500)))
    .collect()
}

fn ensure(fx: &Fixture, hub: &HubNginx, args: &[&str]) -> Command {
    let mut cmd = fx.command(args);
    cmd.env("HF_ENDPOINT", hub.endpoint())
        .env("HF_HOME", fx.path("hf-home"));
    cmd
}

#[test]
fn ensure_a_quant_natively_and_via_hf_cli_gives_the_same_files() -> TestResult {
    let files = quant_repo();
    let hub = HubNginx::start_with_files(&[(REPO, &files)]);
    let expected: BTreeMap<String, Vec<u8>> = files
        .iter()
        .filter(|(k, _)| k.contains("Q8_0") || *k == "mmproj-model-f16.gguf")
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    assert_eq!(expected.len(), 3);
    let reference = format!("hf:{REPO}:q8_0");

    let native = Fixture::new()?;
    let out = run_within(
        &mut ensure(&native, &hub, &["ensure", &reference, "--json"]),
        LIMIT,
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let by_native: Value = serde_json::from_slice(&out.stdout)?;
    assert_eq!(str_field(&by_native, "id"), format!("hf:{REPO}:Q8_0"));
    assert_holds(Path::new(str_field(&by_native, "local_path")), &expected);

    hub.clear_log();
    let shell = Fixture::new()?;
    let hf_bin = test_support::hf_cli_path();
    let mut cmd = ensure(
        &shell,
        &hub,
        &["ensure", &reference, "--json", "--via", "hf-cli"],
    );
    cmd.env("PATH", hf_bin.parent().ok_or("the tool is in a directory")?);
    let out = run_within(&mut cmd, LIMIT);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let by_cli: Value = serde_json::from_slice(&out.stdout)?;
    assert_eq!(by_cli["id"], by_native["id"]);
    assert_eq!(by_cli["computed"], by_native["computed"]);
    assert_holds(Path::new(str_field(&by_cli, "local_path")), &expected);
    assert_eq!(
        shell.entry(&format!("hf:{REPO}:Q8_0"))?["provenance"]["fetcher"],
        "hf-cli"
    );
    // `hf` fetched the chosen files and no other.
    let blob_bytes: u64 = hub
        .requests_of_at_least(1)
        .iter()
        .filter(|r| r.uri.starts_with("/lfs/"))
        .map(|r| r.body_bytes)
        .sum();
    assert_eq!(
        blob_bytes,
        expected.values().map(|b| b.len() as u64).sum::<u64>()
    );
    Ok(())
}

#[test]
fn an_unknown_quant_is_one_line_listing_the_repositorys_quants_and_a_hint() -> TestResult {
    let files = quant_repo();
    let hub = HubNginx::start_with_files(&[(REPO, &files)]);
    let fx = Fixture::new()?;
    let out = run_within(
        &mut ensure(&fx, &hub, &["ensure", &format!("hf:{REPO}@main:Q4_K_M")]),
        LIMIT,
    );
    assert_failure(
        &out,
        1,
        &["has no GGUF file of quantisation `Q4_K_M`; it has: `F16`, `Q4_0`, `Q4_0_4_4`, `Q8_0`"],
    );
    assert_one_error_line(&out);
    assert_eq!(
        hints(&out),
        [format!("hint: name one of them, as in `hf:{REPO}:F16`")]
    );
    assert!(fx.index_bytes().is_none(), "nothing was recorded");
    Ok(())
}

#[test]
fn a_quant_and_a_file_in_one_reference_is_a_usage_error() -> TestResult {
    let fx = Fixture::new()?;
    let out = fx.run(["ensure", "hf:org/repo:Q4_K_M/model.gguf"]);
    assert_failure(&out, 2, &["not both"]);
    Ok(())
}
