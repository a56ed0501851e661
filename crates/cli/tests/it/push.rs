//! `push` end to end: a model of the catalog published to a registry and to a bucket, then
//! ensured from there by another cache, verified against the same digests.

use std::fs;

use test_support::{Registry, S3Server};

use crate::fixture::{Fixture, TestResult, assert_code, assert_failure, str_field, u64_field};

/// A fixture whose catalog holds the local folder `model/` (a config and weights).
pub(crate) fn with_folder_model() -> TestResult<(Fixture, String)> {
    let fx = Fixture::new()?;
    fs::create_dir_all(fx.path("model/tokenizer"))?;
    fs::write(
        fx.path("model/config.json"),
        br#"{"architectures":["Llama"]}"#,
    )?;
    fs::write(
        fx.path("model/model.safetensors"),
        test_support::random_bytes(300_000, 31),
    )?;
    fs::write(fx.path("model/tokenizer/tokenizer.json"), b"{}")?;
    let out = fx.json(["ensure", "model", "--json"])?;
    Ok((fx, str_field(&out, "id").to_owned()))
}

/// Every file under `dir`, relative, with its bytes.
fn files_of(dir: &std::path::Path) -> TestResult<Vec<(String, Vec<u8>)>> {
    let mut files: Vec<(String, Vec<u8>)> = test_support::paths_under(dir)
        .into_iter()
        .map(|p| {
            let rel = p.strip_prefix(dir).unwrap_or(&p).display().to_string();
            fs::read(&p).map(|b| (rel, b))
        })
        .collect::<Result<_, _>>()?;
    files.sort();
    Ok(files)
}

#[test]
fn a_model_pushed_to_a_registry_is_pulled_back_verified() -> TestResult {
    let registry = Registry::start()?;
    let (fx, id) = with_folder_model()?;
    let dest = format!("oci://{}/fleet/model:v1", registry.host());
    let pushed = fx.json(["push", &id, &dest, "--json"])?;
    assert_eq!(str_field(&pushed, "destination"), dest);
    assert!(str_field(&pushed, "manifest_digest").starts_with("sha256:"));
    assert_eq!(u64_field(&pushed, "files"), 3);

    let node = Fixture::new()?;
    let pulled = node.json(["ensure", &dest, "--json"])?;
    assert_eq!(str_field(&pulled, "verification"), "pass");
    assert_eq!(
        files_of(std::path::Path::new(str_field(&pulled, "local_path")))?,
        files_of(&fx.path("model"))?
    );
    // The same model again: every blob is there already.
    let again = fx.json(["push", &id, &dest, "--json"])?;
    assert_eq!(u64_field(&again, "bytes_uploaded"), 0);
    Ok(())
}

#[test]
fn a_model_pushed_to_a_bucket_is_pulled_back_verified_by_its_manifest() -> TestResult {
    let server = S3Server::start()?;
    server.create_bucket("fleet")?;
    let (fx, id) = with_folder_model()?;
    let env = [
        ("AWS_ACCESS_KEY_ID", server.access_key().to_owned()),
        ("AWS_SECRET_ACCESS_KEY", server.secret_key().to_owned()),
        ("AWS_ENDPOINT_URL", server.endpoint()),
    ];
    let mut push = fx.command(["push", &id, "s3://fleet/models/m/", "--json"]);
    push.envs(env.iter().map(|(k, v)| (*k, v.as_str())));
    let out = push.output()?;
    assert_code(&out, 0);

    let node = Fixture::new()?;
    let mut ensure = node.command(["ensure", "s3://fleet/models/m/", "--json"]);
    ensure.envs(env.iter().map(|(k, v)| (*k, v.as_str())));
    let out = ensure.output()?;
    assert_code(&out, 0);
    let pulled: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    assert_eq!(str_field(&pulled, "verification"), "pass");
    assert_eq!(
        files_of(std::path::Path::new(str_field(&pulled, "local_path")))?,
        files_of(&fx.path("model"))?
    );
    Ok(())
}

#[test]
fn a_model_that_no_longer_verifies_is_never_pushed() -> TestResult {
    let registry = Registry::start()?;
    let fx = Fixture::new()?;
    let digest = fx.write_model("m.gguf", b"the bytes that were verified")?;
    let out = fx.json([
        "ensure",
        "m.gguf",
        "--digest",
        &digest.to_string(),
        "--json",
    ])?;
    let id = str_field(&out, "id").to_owned();
    fs::write(fx.path("m.gguf"), b"the bytes that are there now")?;
    let dest = format!("oci://{}/fleet/bad:v1", registry.host());
    let out = fx.run(["push", &id, &dest]);
    assert_failure(&out, 3, &["digest mismatch"]);
    let manifest = registry.get_manifest("fleet/bad", "v1")?;
    assert_eq!(manifest.status, 404, "nothing was pushed");
    Ok(())
}

#[test]
fn push_refuses_unknown_models_and_destinations_it_cannot_write() -> TestResult {
    let (fx, id) = with_folder_model()?;
    let out = fx.run(["push", "file:/no/such/model", "oci://127.0.0.1:9/x/y:v1"]);
    assert_failure(&out, 1, &["no model"]);
    let out = fx.run(["push", &id, "https://example.invalid/x"]);
    assert_failure(&out, 2, &["`push` publishes to"]);
    let out = fx.run(["push", &id, "s3://bucket/not-a-folder"]);
    assert_code(&out, 1);
    Ok(())
}

/// Overwrites the cache's own copy of a model file (its store blob: the same inode) with as
/// many other bytes, the last one changed.
fn tamper_in_cache(path: &std::path::Path) -> TestResult {
    use std::os::unix::fs::PermissionsExt as _;
    let mut bytes = fs::read(path)?;
    if let Some(last) = bytes.last_mut() {
        *last ^= 0x01;
    }
    fs::set_permissions(path, fs::Permissions::from_mode(0o644))?;
    fs::write(path, &bytes)?;
    fs::set_permissions(path, fs::Permissions::from_mode(0o444))?;
    Ok(())
}

#[test]
fn a_tampered_cache_file_is_never_pushed_small_or_in_parts() -> TestResult {
    let registry = Registry::start()?;
    let server = S3Server::start()?;
    server.create_bucket("fleet")?;
    let env = [
        ("AWS_ACCESS_KEY_ID", server.access_key().to_owned()),
        ("AWS_SECRET_ACCESS_KEY", server.secret_key().to_owned()),
        ("AWS_ENDPOINT_URL", server.endpoint()),
    ];
    // Below and above the size from which a bucket gets a multipart upload.
    for (name, len) in [("small.gguf", 100_000), ("large.gguf", (64 << 20) + 1)] {
        let fx = Fixture::new()?;
        fs::write(fx.path(name), test_support::random_bytes(len, 32))?;
        let out = fx.json(["ensure", name, "--copy", "--json"])?;
        let id = str_field(&out, "id").to_owned();
        tamper_in_cache(std::path::Path::new(str_field(&out, "local_path")))?;

        let dest = format!("oci://{}/fleet/{}:v1", registry.host(), &name[..5]);
        let out = fx.run(["push", &id, &dest]);
        assert_failure(&out, 3, &["digest mismatch"]);
        let manifest = registry.get_manifest(&format!("fleet/{}", &name[..5]), "v1")?;
        assert_eq!(manifest.status, 404, "{name}: nothing was pushed");
        // The catalog knows it now, as after `verify`.
        let shown = fx.json(["show", &id, "--json"])?;
        assert_eq!(shown["verification"]["outcome"], "fail", "{name}: {shown}");

        let folder = format!("s3://fleet/{}/", &name[..5]);
        let mut push = fx.command(["push", &id, &folder]);
        push.envs(env.iter().map(|(k, v)| (*k, v.as_str())));
        let out = push.output()?;
        assert_failure(&out, 3, &["digest mismatch"]);
        assert!(
            test_support::paths_under(&server.object_path("fleet", &name[..5])).is_empty(),
            "{name}: nothing is in the bucket"
        );
    }
    Ok(())
}
