//! `ensure s3://…` end to end, against s3s-fs on loopback (which checks every `SigV4`
//! signature) and, for kills and request logs, a [`HoldProxy`] in front of it.
//!
//! Every run gets its AWS configuration from its environment, as a user's would: the keys,
//! `AWS_ENDPOINT_URL`, and `AWS_EC2_METADATA_DISABLED=true` so that no run waits on the
//! instance metadata address unless a test serves it.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use catalog_core::Digest;
use test_support::{
    ContainerCredentials, Hold, HoldProxy, InstanceMetadata, ProxiedHit, S3_ACCESS_KEY,
    S3_SECRET_KEY, S3_SESSION_TOKEN, S3Server, Sts, paths_under, poll, random_bytes,
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

/// The bucket most tests use.
const BUCKET: &str = "models";

/// What every S3 run needs: the endpoint and no instance metadata.
fn aws_base(cmd: &mut Command, endpoint: &str) {
    cmd.env("AWS_ENDPOINT_URL", endpoint)
        .env("AWS_REGION", "us-east-1")
        .env("AWS_EC2_METADATA_DISABLED", "true");
}

/// `args` with `--cache-dir`, the server's keys and `endpoint` in the environment.
fn s3_command(fx: &Fixture, endpoint: &str, args: &[&str]) -> Command {
    let mut cmd = fx.command(args);
    aws_base(&mut cmd, endpoint);
    cmd.env("AWS_ACCESS_KEY_ID", S3_ACCESS_KEY)
        .env("AWS_SECRET_ACCESS_KEY", S3_SECRET_KEY);
    cmd
}

/// Runs `args` with the server's keys against `endpoint`.
fn run_s3(fx: &Fixture, endpoint: &str, args: &[&str]) -> Output {
    run_within_limit(&mut s3_command(fx, endpoint, args))
}

/// Runs `args`, which must succeed, and parses stdout as JSON.
fn json_s3(fx: &Fixture, endpoint: &str, args: &[&str]) -> TestResult<serde_json::Value> {
    let out = run_s3(fx, endpoint, args);
    assert_code(&out, 0);
    Ok(serde_json::from_slice(&out.stdout)?)
}

/// The id of `bucket/key` on `endpoint` (`http://127.0.0.1:<port>`).
fn id_on(endpoint: &str, path: &str) -> String {
    format!("s3+{endpoint}/{path}")
}

/// Files under `models/`: nothing may appear there unless a model passed its checks.
fn model_files(cache: &Path) -> Vec<PathBuf> {
    paths_under(&cache.join("models"))
}

#[test]
fn an_object_and_a_folder_are_ensured_shown_and_re_ensured_offline() -> TestResult {
    let server = S3Server::start()?;
    let weights = random_bytes(300_000, 1);
    server.put(BUCKET, "org/tiny/model.gguf", &weights)?;
    let folder: [(&str, Vec<u8>); 5] = [
        ("config.json", b"{\"layers\": 2}".to_vec()),
        ("shards/a.safetensors", random_bytes(70_000, 2)),
        ("shards/deep/b.safetensors", random_bytes(80_000, 3)),
        ("shards/notes.txt", b"not wanted".to_vec()),
        ("README.md", b"# tiny".to_vec()),
    ];
    for (rel, bytes) in &folder {
        server.put(BUCKET, &format!("org/folder/{rel}"), bytes)?;
    }
    let endpoint = server.endpoint();
    let fx = Fixture::new()?;

    let object = "s3://models/org/tiny/model.gguf";
    let out = json_s3(&fx, &endpoint, &["ensure", object, "--json"])?;
    let object_id = id_on(&endpoint, "models/org/tiny/model.gguf");
    assert_eq!(str_field(&out, "id"), object_id);
    let object_path = str_field(&out, "local_path").to_owned();
    assert!(object_path.ends_with("/model.gguf"), "{object_path}");
    assert!(fs::read(&object_path)? == weights);
    // No checksum and no `--digest`: the bytes were hashed, nothing vouched for them.
    assert_eq!(str_field(&out, "verification"), "warn");

    let prefix = "s3://models/org/folder/";
    let out = json_s3(
        &fx,
        &endpoint,
        &[
            "ensure",
            prefix,
            "--include",
            "*.safetensors",
            "--include",
            "*.json",
            "--exclude",
            "shards/deep/*",
            "--json",
        ],
    )?;
    let folder_id = id_on(&endpoint, "models/org/folder/");
    assert_eq!(str_field(&out, "id"), folder_id);
    let dir = PathBuf::from(str_field(&out, "local_path"));
    let want: std::collections::BTreeMap<String, Vec<u8>> = folder
        .iter()
        .filter(|(rel, _)| ["config.json", "shards/a.safetensors"].contains(rel))
        .map(|(rel, bytes)| ((*rel).to_owned(), bytes.clone()))
        .collect();
    test_support::assert_holds(&dir, &want);

    let show = fx.run(["show", &object_id]);
    assert_code(&show, 0);
    let text = stdout(&show);
    assert!(text.contains(&object_id), "{text}");
    assert!(text.contains("s3"), "{text}");
    assert!(
        text.contains(&format!("endpoint:     {}", server.endpoint())),
        "{text}"
    );
    let show = fx.run(["show", &folder_id]);
    assert_code(&show, 0);
    assert!(
        stdout(&show).contains("shards/a.safetensors"),
        "{}",
        stdout(&show)
    );

    // The server is gone: both are still handed out, from the catalog.
    drop(server);
    let again = json_s3(&fx, &endpoint, &["ensure", object, "--json", "--offline"])?;
    assert_eq!(str_field(&again, "local_path"), object_path);
    let again = json_s3(
        &fx,
        &endpoint,
        &[
            "ensure",
            prefix,
            "--include",
            "*.safetensors",
            "--include",
            "*.json",
            "--exclude",
            "shards/deep/*",
            "--json",
            "--offline",
        ],
    )?;
    assert_eq!(Path::new(str_field(&again, "local_path")), dir);
    Ok(())
}

#[test]
fn a_wrong_secret_a_missing_key_or_bucket_and_an_unsigned_request_exit_1_named() -> TestResult {
    let server = S3Server::start()?;
    server.put(BUCKET, "private/model.bin", b"private bytes")?;
    let endpoint = server.endpoint();
    let fx = Fixture::new()?;
    let object = "s3://models/private/model.bin";

    let out = run_within_limit(
        s3_command(&fx, &endpoint, &["ensure", object])
            .env("AWS_SECRET_ACCESS_KEY", "not-the-secret-key"),
    );
    assert_failure(&out, 1, &["signature", "SignatureDoesNotMatch", &endpoint]);
    assert!(
        hints(&out)
            .iter()
            .any(|h| h.contains("clock") && h.contains("region")),
        "{}",
        stderr(&out)
    );
    assert!(!stderr(&out).contains("not-the-secret-key"));

    let out = run_s3(
        &fx,
        &endpoint,
        &["ensure", "s3://models/private/absent.bin"],
    );
    assert_failure(&out, 1, &["not found", "private/absent.bin", "models"]);

    let out = run_s3(&fx, &endpoint, &["ensure", "s3://no-such-bucket/model.bin"]);
    assert_failure(&out, 1, &["not found", "no-such-bucket"]);

    let out = run_s3(&fx, &endpoint, &["ensure", "s3://no-such-bucket/folder/"]);
    assert_failure(&out, 1, &["not found", "no-such-bucket"]);

    let out = run_s3(&fx, &endpoint, &["ensure", object, "--no-sign-request"]);
    assert_failure(
        &out,
        1,
        &["access denied", "private/model.bin", "models", &endpoint],
    );
    // A folder: the listing is refused, and the message names the prefix.
    let out = run_s3(
        &fx,
        &endpoint,
        &["ensure", "s3://models/private/", "--no-sign-request"],
    );
    assert_failure(
        &out,
        1,
        &["access denied to `private/`", "models", &endpoint],
    );
    assert!(
        fx.index_bytes()
            .is_none_or(|i| !String::from_utf8_lossy(&i).contains("private"))
    );
    assert!(model_files(fx.cache()).is_empty());
    Ok(())
}

#[test]
fn a_corrupted_object_fails_its_digest_and_publishes_nothing() -> TestResult {
    let server = S3Server::start()?;
    let bytes = random_bytes(200_000, 4);
    server.put(BUCKET, "bad/model.bin", &bytes)?;
    let digest = Digest::sha256_of(&bytes);
    let mut corrupted = bytes.clone();
    corrupted[12_345] ^= 0x40;
    fs::write(server.object_path(BUCKET, "bad/model.bin"), &corrupted)?;
    let fx = Fixture::new()?;
    let out = run_s3(
        &fx,
        &server.endpoint(),
        &[
            "ensure",
            "s3://models/bad/model.bin",
            "--digest",
            &digest.to_string(),
        ],
    );
    assert_failure(&out, 3, &["digest mismatch"]);
    assert!(
        model_files(fx.cache()).is_empty(),
        "{:?}",
        model_files(fx.cache())
    );
    Ok(())
}

#[test]
fn an_object_with_a_sha256_checksum_is_checked_against_it_without_a_digest() -> TestResult {
    let server = S3Server::start()?;
    let good_bytes = random_bytes(150_000, 5);
    server.put_signed(BUCKET, "sum/good.bin", &good_bytes, true)?;
    // Other bytes than `good.bin`: the same checksum would find its blob in the store.
    let bytes = random_bytes(150_000, 10);
    server.put_signed(BUCKET, "sum/bad.bin", &bytes, true)?;
    let mut corrupted = bytes.clone();
    corrupted[777] ^= 0x01;
    fs::write(server.object_path(BUCKET, "sum/bad.bin"), &corrupted)?;
    let fx = Fixture::new()?;
    let endpoint = server.endpoint();

    // The checksum vouches for the bytes: the entry passes.
    let good = json_s3(
        &fx,
        &endpoint,
        &["ensure", "s3://models/sum/good.bin", "--json"],
    )?;
    assert_eq!(str_field(&good, "verification"), "pass");

    let before = model_files(fx.cache());
    let out = run_s3(&fx, &endpoint, &["ensure", "s3://models/sum/bad.bin"]);
    assert_failure(&out, 3, &["digest mismatch"]);
    assert_eq!(model_files(fx.cache()), before);
    Ok(())
}

#[test]
fn a_folder_with_objects_without_a_checksum_is_warn_and_names_them() -> TestResult {
    let server = S3Server::start()?;
    server.put_signed(BUCKET, "mixed/a.bin", &random_bytes(50_000, 61), true)?;
    server.put_signed(BUCKET, "mixed/b.json", b"{}", false)?;
    server.put_signed(BUCKET, "mixed/c.json", b"[]", false)?;
    let fx = Fixture::new()?;
    let out = run_s3(
        &fx,
        &server.endpoint(),
        &["ensure", "s3://models/mixed/", "--json"],
    );
    assert_code(&out, 0);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    assert_eq!(str_field(&json, "verification"), "warn");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("stated none for `b.json`, `c.json`"),
        "the warning does not name the files:\n{err}"
    );
    assert!(!err.contains("`a.bin`"), "{err}");

    // With every object's checksum, the folder passes.
    server.put_signed(BUCKET, "summed/a.bin", &random_bytes(50_000, 62), true)?;
    server.put_signed(BUCKET, "summed/b.json", b"{\"a\": 1}", true)?;
    let json = json_s3(
        &fx,
        &server.endpoint(),
        &["ensure", "s3://models/summed/", "--json"],
    )?;
    assert_eq!(str_field(&json, "verification"), "pass");
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

/// Starts `ensure reference --connections 1` through `proxy` (holding at [`HOLD_AT`]), waits
/// until the proxy holds the body AND the resume state shows bytes on disk, SIGKILLs the
/// client, releases the hold and waits until the proxy is idle. Returns the bytes kept.
fn kill_while_held(fx: &Fixture, proxy: &HoldProxy, reference: &str) -> TestResult<u64> {
    proxy.hold(Hold::AtOffset(HOLD_AT));
    let mut child = s3_command(
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

/// The starts of the object `GET`s' ranges in `log` (a `GET` without a range starts at 0).
fn get_starts(log: &[ProxiedHit], path: &str) -> Vec<u64> {
    log.iter()
        .filter(|h| h.method == "GET" && h.path == path)
        .map(|h| {
            h.range
                .as_deref()
                .and_then(|r| r.strip_prefix("bytes=")?.split('-').next()?.parse().ok())
                .unwrap_or(0)
        })
        .collect()
}

#[test]
fn a_download_killed_midway_resumes_from_the_bytes_kept() -> TestResult {
    let server = S3Server::start()?;
    let body = random_bytes(SIZE, 6);
    server.put(BUCKET, "big/model.bin", &body)?;
    let proxy = HoldProxy::start(&server.endpoint())?;
    let fx = Fixture::new()?;
    let reference = "s3://models/big/model.bin";
    let kept = kill_while_held(&fx, &proxy, reference)?;
    proxy.clear_log();

    let out = json_s3(
        &fx,
        &proxy.url(),
        &["ensure", reference, "--json", "--connections", "1"],
    )?;
    assert!(fs::read(str_field(&out, "local_path"))? == body);
    let log = proxy.log();
    let starts = get_starts(&log, "/models/big/model.bin");
    assert!(
        !starts.is_empty() && starts.iter().all(|s| *s >= kept),
        "the second run asked again for bytes it had: kept {kept}, ranges from {starts:?}\n{log:#?}"
    );
    let sent: u64 = log
        .iter()
        .filter(|h| h.method == "GET" && h.path == "/models/big/model.bin")
        .map(|h| h.bytes_sent)
        .sum();
    assert_eq!(sent, SIZE as u64 - kept, "{log:#?}");
    Ok(())
}

#[test]
fn an_object_replaced_between_runs_is_fetched_again_from_byte_0() -> TestResult {
    let server = S3Server::start()?;
    let first = random_bytes(SIZE, 7);
    server.put(BUCKET, "moving/model.bin", &first)?;
    let proxy = HoldProxy::start(&server.endpoint())?;
    let fx = Fixture::new()?;
    let reference = "s3://models/moving/model.bin";
    kill_while_held(&fx, &proxy, reference)?;
    // Same key, same size, other bytes: another ETag.
    let second = random_bytes(SIZE, 8);
    server.put(BUCKET, "moving/model.bin", &second)?;
    proxy.clear_log();

    let out = json_s3(
        &fx,
        &proxy.url(),
        &["ensure", reference, "--json", "--connections", "1"],
    )?;
    let got = fs::read(str_field(&out, "local_path"))?;
    assert!(
        got == second,
        "the result is not the new object (a splice?)"
    );
    let log = proxy.log();
    let gets: Vec<&ProxiedHit> = log
        .iter()
        .filter(|h| h.method == "GET" && h.path == "/models/moving/model.bin")
        .collect();
    // A resumed request names the recorded ETag in `If-Range` (s3s-fs ignores it and answers
    // 206, but the client sees the new ETag and drops what it kept); the bytes that make the
    // result come from one request from byte 0.
    let last = gets.last().ok_or("no GET")?;
    assert_eq!(
        (last.range.as_deref(), last.bytes_sent),
        (Some("bytes=0-"), SIZE as u64),
        "{log:#?}"
    );
    for hit in &gets[..gets.len() - 1] {
        assert!(
            hit.if_range.is_some(),
            "a resume without If-Range: {log:#?}"
        );
    }
    Ok(())
}

#[test]
fn hostile_keys_in_a_folder_are_refused_and_nothing_is_written_outside_the_cache() -> TestResult {
    let server = S3Server::start()?;
    // A control character XML allows: s3s-fs writes keys raw into listings (though it says
    // `EncodingType: url`), so one XML forbids, like BEL, makes the listing unparseable
    // before any name is checked.
    let hostile = [
        ("back", "back\\slash.bin", "back\\slash.bin"),
        ("tab", "tab\there.bin", "tab\\there.bin"),
    ];
    for (folder, name, _) in hostile {
        server.put(BUCKET, &format!("{folder}/fine.bin"), b"fine")?;
        fs::write(
            server.object_path(BUCKET, &format!("{folder}/{name}")),
            b"hostile",
        )?;
    }
    let fx = Fixture::new()?;
    fs::create_dir_all(fx.path("home"))?;
    let outside = |fx: &Fixture| {
        let mut paths: Vec<PathBuf> = paths_under(fx.root())
            .into_iter()
            .filter(|p| !p.starts_with(fx.cache()))
            .collect();
        paths.sort();
        paths
    };
    let before = outside(&fx);
    for (folder, _, shown) in hostile {
        let out = run_s3(
            &fx,
            &server.endpoint(),
            &["ensure", &format!("s3://models/{folder}/")],
        );
        assert_failure(&out, 1, &["refusing the file name", shown]);
    }
    assert_eq!(outside(&fx), before);
    assert!(model_files(fx.cache()).is_empty());
    Ok(())
}

#[test]
fn a_folder_of_more_than_one_page_is_listed_to_its_end() -> TestResult {
    let server = S3Server::start()?;
    server.create_bucket(BUCKET)?;
    // Files written directly are objects for `ListObjectsV2` (see test-support's s3.rs).
    let dir = server.object_path(BUCKET, "many");
    fs::create_dir_all(&dir)?;
    for i in 0..1005 {
        fs::write(dir.join(format!("f{i:04}.bin")), format!("file {i}"))?;
    }
    let proxy = HoldProxy::start(&server.endpoint())?;
    let fx = Fixture::new()?;
    let out = json_s3(
        &fx,
        &proxy.url(),
        &[
            "ensure",
            "s3://models/many/",
            "--include",
            "f1002.bin",
            "--include",
            "f1004.bin",
            "--json",
        ],
    )?;
    let local = PathBuf::from(str_field(&out, "local_path"));
    let want = [
        ("f1002.bin".to_owned(), b"file 1002".to_vec()),
        ("f1004.bin".to_owned(), b"file 1004".to_vec()),
    ]
    .into_iter()
    .collect();
    test_support::assert_holds(&local, &want);
    let lists = proxy
        .log()
        .into_iter()
        .filter(|h| h.method == "GET" && h.path == "/models/")
        .count();
    assert!(lists >= 2, "one listing page only: {:#?}", proxy.log());
    Ok(())
}

#[test]
fn neither_the_secret_key_nor_a_session_token_is_ever_printed_or_recorded() -> TestResult {
    let server = S3Server::start()?;
    server.put(BUCKET, "secret/model.bin", &random_bytes(50_000, 9))?;
    server.put(BUCKET, "secret/dir/a.bin", b"a")?;
    let fx = Fixture::new()?;
    let mut everything = String::new();
    for reference in ["s3://models/secret/model.bin", "s3://models/secret/dir/"] {
        let out = run_within_limit(
            s3_command(
                &fx,
                &server.endpoint(),
                &["ensure", reference, "--json", "-vvv"],
            )
            .env("AWS_SESSION_TOKEN", S3_SESSION_TOKEN),
        );
        assert_code(&out, 0);
        everything.push_str(&stdout(&out));
        everything.push_str(&stderr(&out));
        let id = id_on(&server.endpoint(), reference.trim_start_matches("s3://"));
        let show = fx.run(["show", &id, "--json"]);
        assert_code(&show, 0);
        everything.push_str(&stdout(&show));
    }
    // A refused request prints its error too.
    let out = run_within_limit(
        s3_command(
            &fx,
            &server.endpoint(),
            &["ensure", "s3://models/secret/none", "-vvv"],
        )
        .env("AWS_SESSION_TOKEN", S3_SESSION_TOKEN),
    );
    assert_code(&out, 1);
    everything.push_str(&stderr(&out));
    assert!(
        everything.contains("DEBUG") || everything.contains("debug"),
        "no -vvv output"
    );
    for file in paths_under(fx.cache()) {
        if file.extension().is_some_and(|e| e == "json") {
            everything.push_str(&fs::read_to_string(&file)?);
        }
    }
    for secret in [S3_SECRET_KEY, S3_SESSION_TOKEN] {
        assert!(
            !everything.contains(secret),
            "`{secret}` was printed or recorded"
        );
    }
    Ok(())
}

/// A server holding one small object, and a fixture with an empty home.
fn one_object() -> TestResult<(S3Server, Fixture)> {
    let server = S3Server::start()?;
    server.put(BUCKET, "creds/model.bin", b"credentialed bytes")?;
    let fx = Fixture::new()?;
    fs::create_dir_all(fx.path("home/.aws"))?;
    Ok((server, fx))
}

/// Runs `ensure s3://models/creds/model.bin --json -vv` against `server` with only the
/// endpoint configured and `env` added; asserts it fetched the object.
fn ensure_with(fx: &Fixture, server: &S3Server, env: &[(&str, &str)], imds: bool) -> TestResult {
    let mut cmd = fx.command(["ensure", "s3://models/creds/model.bin", "--json"]);
    aws_base(&mut cmd, &server.endpoint());
    if imds {
        cmd.env_remove("AWS_EC2_METADATA_DISABLED");
    }
    cmd.envs(env.iter().copied());
    let out = run_within_limit(&mut cmd);
    assert_code(&out, 0);
    let value: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    assert_eq!(
        fs::read(str_field(&value, "local_path"))?,
        b"credentialed bytes"
    );
    Ok(())
}

#[test]
fn credentials_from_a_profile_in_the_shared_credentials_file() -> TestResult {
    let (server, fx) = one_object()?;
    fs::write(
        fx.path("home/.aws/credentials"),
        format!(
            "[default]\naws_access_key_id = AKIAWRONG\naws_secret_access_key = wrong\n\n\
             [team]\naws_access_key_id = {S3_ACCESS_KEY}\naws_secret_access_key = {S3_SECRET_KEY}\n"
        ),
    )?;
    ensure_with(&fx, &server, &[("AWS_PROFILE", "team")], false)
}

#[test]
fn credentials_from_a_credential_process() -> TestResult {
    let (server, fx) = one_object()?;
    let script = fx.path("home/creds.sh");
    fs::write(
        &script,
        format!(
            "#!/bin/sh\nprintf '%s' '{{\"Version\": 1, \"AccessKeyId\": \"{S3_ACCESS_KEY}\", \
             \"SecretAccessKey\": \"{S3_SECRET_KEY}\", \"SessionToken\": \"{S3_SESSION_TOKEN}\", \
             \"Expiration\": \"2099-12-31T23:59:59Z\"}}'\n"
        ),
    )?;
    {
        use std::os::unix::fs::PermissionsExt as _;
        fs::set_permissions(&script, fs::Permissions::from_mode(0o755))?;
    }
    fs::write(
        fx.path("home/.aws/config"),
        format!(
            "[profile proc]\ncredential_process = {}\n",
            script.display()
        ),
    )?;
    ensure_with(&fx, &server, &[("AWS_PROFILE", "proc")], false)
}

#[test]
fn credentials_from_the_instance_metadata_service() -> TestResult {
    let (server, fx) = one_object()?;
    let imds = InstanceMetadata::start_for("model-reader", &server)?;
    let url = imds.url();
    ensure_with(
        &fx,
        &server,
        &[("AWS_EC2_METADATA_SERVICE_ENDPOINT", &url)],
        true,
    )?;
    let paths: Vec<String> = imds.log().into_iter().map(|r| r.path).collect();
    assert!(
        paths.iter().any(|p| p == "/latest/api/token")
            && paths
                .iter()
                .any(|p| p.ends_with("/security-credentials/model-reader")),
        "{paths:?}"
    );
    Ok(())
}

#[test]
fn credentials_from_the_container_endpoint() -> TestResult {
    let (server, fx) = one_object()?;
    let container = ContainerCredentials::start_for(&server, Some("Bearer task-token".into()))?;
    let url = container.url("/v2/credentials/task");
    ensure_with(
        &fx,
        &server,
        &[
            ("AWS_CONTAINER_CREDENTIALS_FULL_URI", &url),
            ("AWS_CONTAINER_AUTHORIZATION_TOKEN", "Bearer task-token"),
        ],
        false,
    )?;
    let statuses: Vec<u16> = container.log().into_iter().map(|r| r.status).collect();
    assert!(statuses.contains(&200), "{statuses:?}");
    Ok(())
}

#[test]
fn credentials_from_a_web_identity() -> TestResult {
    let (server, fx) = one_object()?;
    let sts = Sts::start_for(&server)?;
    let token = fx.path("home/token.jwt");
    fs::write(&token, "eyJ.test.token")?;
    let token = token.display().to_string();
    let sts_url = sts.url();
    ensure_with(
        &fx,
        &server,
        &[
            ("AWS_WEB_IDENTITY_TOKEN_FILE", &token),
            ("AWS_ROLE_ARN", "arn:aws:iam::000000000000:role/reader"),
            ("AWS_ENDPOINT_URL_STS", &sts_url),
        ],
        false,
    )?;
    let log = sts.log();
    assert!(
        log.iter()
            .any(|r| r.param("Action") == Some("AssumeRoleWithWebIdentity")
                && r.param("WebIdentityToken") == Some("eyJ.test.token")
                && r.status == 200),
        "{log:?}"
    );
    Ok(())
}

#[test]
fn no_credentials_at_all_exit_1_naming_the_sources_tried() -> TestResult {
    let (server, fx) = one_object()?;
    let mut cmd = fx.command(["ensure", "s3://models/creds/model.bin"]);
    aws_base(&mut cmd, &server.endpoint());
    let out = run_within_limit(&mut cmd);
    assert_failure(
        &out,
        1,
        &[
            "no AWS credentials found",
            "environment",
            "shared files",
            "web identity",
            "container",
            "instance metadata",
        ],
    );
    assert!(
        hints(&out).iter().any(|h| h.contains("AWS_ACCESS_KEY_ID")),
        "{}",
        stderr(&out)
    );
    assert!(model_files(fx.cache()).is_empty());
    Ok(())
}
