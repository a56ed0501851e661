//! `ensure az://…` end to end, against Azurite on loopback (which checks every `SharedKey`
//! signature and SAS token) and, for a kill, a [`HoldProxy`] in front of it.
//!
//! Every run gets its credentials from its environment, as a user's would, and an instance
//! metadata address where nothing answers, so that no run waits on Azure's.

use std::fs;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use test_support::{
    AZURITE_ACCOUNT, AZURITE_KEY, Azurite, Hold, HoldProxy, free_port, paths_under, poll,
    random_bytes,
};

use crate::fixture::{
    Fixture, TestResult, assert_code, assert_failure, hints, run_within_limit, stderr, stdout,
    str_field,
};

/// How long a test waits for a signal before it fails.
const PATIENCE: Duration = Duration::from_secs(60);

/// The size of a blob killed mid-way, fetched as one stream.
const SIZE: usize = 8 << 20;

/// Where the proxy holds the body of a run that is to be killed.
const HOLD_AT: u64 = 6 << 20;

/// `args` (an `ensure`, a `push`) against `endpoint`, with `env` and no instance metadata service.
pub(crate) fn az_command(
    fx: &Fixture,
    endpoint: &str,
    env: &[(&str, &str)],
    args: &[&str],
) -> Command {
    let mut cmd = fx.command(args);
    cmd.arg("--endpoint-url").arg(endpoint).env(
        "AZURE_POD_IDENTITY_AUTHORITY_HOST",
        format!("http://127.0.0.1:{}", free_port()),
    );
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

/// The development account's key, in the variables the SDKs read.
pub(crate) const KEY_ENV: [(&str, &str); 2] = [
    ("AZURE_STORAGE_ACCOUNT", AZURITE_ACCOUNT),
    ("AZURE_STORAGE_KEY", AZURITE_KEY),
];

fn run_az(fx: &Fixture, endpoint: &str, env: &[(&str, &str)], args: &[&str]) -> Output {
    run_within_limit(&mut az_command(fx, endpoint, env, args))
}

fn model_files(cache: &Path) -> Vec<std::path::PathBuf> {
    paths_under(&cache.join("models"))
}

#[test]
fn a_blob_and_a_folder_are_ensured_with_the_account_key_and_reused() -> TestResult {
    let azurite = Azurite::start()?;
    let weights = random_bytes(200_000, 81);
    azurite.put("models", "org/w.gguf", &weights)?;
    azurite.put("models", "org/repo/config.json", b"{}")?;
    azurite.put("models", "org/repo/sub/w.bin", &random_bytes(30_000, 82))?;
    let fx = Fixture::new()?;
    let endpoint = azurite.endpoint();
    let out = run_az(
        &fx,
        &endpoint,
        &KEY_ENV,
        &[
            "ensure",
            "az://devstoreaccount1/models/org/w.gguf",
            "--json",
        ],
    );
    assert_code(&out, 0);
    let got: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let id = format!("az+{endpoint}/{AZURITE_ACCOUNT}/models/org/w.gguf");
    assert_eq!(str_field(&got, "id"), id);
    assert_eq!(str_field(&got, "verification"), "warn");
    assert_eq!(fs::read(str_field(&got, "local_path"))?, weights);

    let out = run_az(&fx, &endpoint, &KEY_ENV, &["ensure", &id, "--json"]);
    assert_code(&out, 0);
    let again: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    assert_eq!(str_field(&again, "id"), id);

    let out = run_az(
        &fx,
        &endpoint,
        &KEY_ENV,
        &[
            "ensure",
            "az://devstoreaccount1/models/org/repo/",
            "--json",
            "--exclude",
            "*.json",
        ],
    );
    assert_code(&out, 0);
    let dir: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let local = Path::new(str_field(&dir, "local_path"));
    assert!(local.join("sub/w.bin").exists());
    assert!(!local.join("config.json").exists(), "excluded");
    Ok(())
}

#[test]
fn a_malformed_reference_is_a_usage_error_with_a_hint() {
    let fx = Fixture::new().expect("a fixture");
    for bad in [
        "az://acct",
        "az://Acct/models/w.gguf",
        "az://acct/models/../w.gguf",
    ] {
        let out = fx.run(["ensure", bad]);
        assert_failure(&out, 2, &["invalid model reference"]);
        assert!(
            hints(&out)
                .iter()
                .any(|h| h.contains("az://account/container")),
            "{bad}: {}",
            stderr(&out)
        );
    }
}

#[test]
fn corrupted_bytes_fail_the_blob_s_content_md5_with_exit_3_and_publish_nothing() -> TestResult {
    let azurite = Azurite::start()?;
    azurite.put_with_md5(
        "models",
        "bad.gguf",
        &random_bytes(100_000, 83),
        Some("AAAAAAAAAAAAAAAAAAAAAA=="),
    )?;
    let fx = Fixture::new()?;
    let out = run_az(
        &fx,
        &azurite.endpoint(),
        &KEY_ENV,
        &["ensure", "az://devstoreaccount1/models/bad.gguf"],
    );
    assert_code(&out, 3);
    assert!(stderr(&out).contains("bad.gguf"), "{}", stderr(&out));
    assert!(
        model_files(fx.cache()).is_empty(),
        "{:?}",
        model_files(fx.cache())
    );
    Ok(())
}

#[test]
fn no_secret_reaches_any_output_at_any_verbosity_or_the_index() -> TestResult {
    let azurite = Azurite::start()?;
    azurite.put("models", "w.gguf", &random_bytes(20_000, 84))?;
    let sas = azurite.sas("models", Some("w.gguf"), "r");
    let sig = sas.split("sig=").nth(1).expect("a signature").to_owned();
    let fx = Fixture::new()?;
    let endpoint = azurite.endpoint();
    let secrets = [AZURITE_KEY, sig.as_str(), "sig="];
    let check = |out: &Output| {
        let shown = format!("{}{}", stdout(out), stderr(out));
        for secret in secrets {
            assert!(!shown.contains(secret), "`{secret}` in:\n{shown}");
        }
    };
    // A SAS in the reference, read at -vvv.
    let out = run_az(
        &fx,
        &endpoint,
        &[],
        &[
            "ensure",
            &format!("az://devstoreaccount1/models/w.gguf?{sas}"),
            "--json",
            "-vvv",
        ],
    );
    assert_code(&out, 0);
    check(&out);
    // The key, read at -vvv; then refused for another blob it may not read anonymously.
    let out = run_az(
        &fx,
        &endpoint,
        &KEY_ENV,
        &[
            "ensure",
            "az://devstoreaccount1/models/w.gguf",
            "--refresh",
            "-vvv",
        ],
    );
    check(&out);
    let wrong = "AAAA".repeat(22);
    let out = run_az(
        &fx,
        &endpoint,
        &[
            ("AZURE_STORAGE_ACCOUNT", AZURITE_ACCOUNT),
            ("AZURE_STORAGE_KEY", &wrong),
        ],
        &["ensure", "az://devstoreaccount1/models/w2.gguf", "-vvv"],
    );
    assert_failure(&out, 1, &["refused the signature"]);
    assert!(
        hints(&out).iter().any(|h| h.contains("clock")),
        "{}",
        stderr(&out)
    );
    assert!(!stderr(&out).contains(&wrong));
    check(&out);
    let index = fs::read_to_string(fx.index_path())?;
    for secret in secrets {
        assert!(!index.contains(secret), "{index}");
    }
    Ok(())
}

#[test]
fn without_credentials_every_provider_is_named_with_why() -> TestResult {
    let azurite = Azurite::start()?;
    azurite.put("models", "w.gguf", b"w")?;
    let fx = Fixture::new()?;
    let out = run_az(
        &fx,
        &azurite.endpoint(),
        &[],
        &["ensure", "az://devstoreaccount1/models/w.gguf"],
    );
    assert_failure(
        &out,
        1,
        &["no Azure credentials found", "managed identity: no answer"],
    );
    assert!(
        hints(&out).iter().any(|h| h.contains("--no-sign-request")),
        "{}",
        stderr(&out)
    );
    Ok(())
}

/// The bytes the resume record keeps, once there is one.
fn resume_kept(cache: &Path) -> Option<u64> {
    let state = fs::read_dir(cache.join("tmp"))
        .ok()?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "state"))?;
    let value: serde_json::Value = serde_json::from_slice(&fs::read(state).ok()?).ok()?;
    value["prefix_len"].as_u64()
}

#[test]
fn a_download_killed_midway_resumes_from_the_bytes_kept() -> TestResult {
    let azurite = Azurite::start()?;
    let body = random_bytes(SIZE, 85);
    azurite.put("models", "big/model.bin", &body)?;
    let proxy = HoldProxy::start(&azurite.endpoint())?;
    let fx = Fixture::new()?;
    let reference = "az://devstoreaccount1/models/big/model.bin";
    let args = ["ensure", reference, "--json", "--connections", "1"];

    proxy.hold(Hold::AtOffset(HOLD_AT));
    let mut child = az_command(&fx, &proxy.url(), &KEY_ENV, &args)
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
    proxy.clear_log();

    let out = run_az(&fx, &proxy.url(), &KEY_ENV, &args);
    assert_code(&out, 0);
    let got: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    assert!(fs::read(str_field(&got, "local_path"))? == body);
    let path = format!("/{AZURITE_ACCOUNT}/models/big/model.bin");
    let log = proxy.log();
    let sent: u64 = log
        .iter()
        .filter(|h| h.method == "GET" && h.path == path)
        .map(|h| h.bytes_sent)
        .sum();
    assert_eq!(sent, SIZE as u64 - kept, "{log:#?}");
    Ok(())
}
