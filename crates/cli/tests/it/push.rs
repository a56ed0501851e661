//! `push` end to end: a model of the catalog published to a registry and to a bucket, then
//! ensured from there by another cache, verified against the same digests.

use std::fs;

use test_support::{AZURITE_ACCOUNT, Azurite, FakeGcs, HoldProxy, Registry, S3Server};

use crate::fixture::{
    Fixture, TestResult, assert_code, assert_failure, run_within_limit, str_field, u64_field,
};

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

/// Below and above the size from which a bucket's push goes in parts (64 MiB for every store):
/// one request, and a multipart upload, blocks, or a resumable session.
const SMALL_AND_IN_PARTS: [(&str, usize); 2] =
    [("small.gguf", 100_000), ("large.gguf", (64 << 20) + 1)];

/// A fixture whose catalog holds a copy of a file `name` of `len` bytes, changed in the cache
/// after it was verified; its id.
fn tampered_copy(name: &str, len: usize) -> TestResult<(Fixture, String)> {
    let fx = Fixture::new()?;
    fs::write(fx.path(name), test_support::random_bytes(len, 32))?;
    let out = fx.json(["ensure", name, "--copy", "--json"])?;
    let id = str_field(&out, "id").to_owned();
    tamper_in_cache(std::path::Path::new(str_field(&out, "local_path")))?;
    Ok((fx, id))
}

/// `push` of a tampered model failed with exit status 3, and the catalog knows it now, as
/// after `verify`.
fn assert_refused_as_tampered(fx: &Fixture, id: &str, out: &std::process::Output) -> TestResult {
    assert_failure(out, 3, &["digest mismatch"]);
    let shown = fx.json(["show", id, "--json"])?;
    assert_eq!(shown["verification"]["outcome"], "fail", "{shown}");
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
    for (name, len) in SMALL_AND_IN_PARTS {
        let (fx, id) = tampered_copy(name, len)?;
        let dest = format!("oci://{}/fleet/{}:v1", registry.host(), &name[..5]);
        let out = fx.run(["push", &id, &dest]);
        assert_refused_as_tampered(&fx, &id, &out)?;
        let manifest = registry.get_manifest(&format!("fleet/{}", &name[..5]), "v1")?;
        assert_eq!(manifest.status, 404, "{name}: nothing was pushed");

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

#[test]
fn a_tampered_cache_file_is_never_pushed_to_gs_small_or_in_chunks() -> TestResult {
    let gcs = FakeGcs::start()?;
    gcs.create_bucket("fleet")?;
    // In front of it, to see the chunks that went.
    let proxy = HoldProxy::start(&gcs.endpoint())?;
    for (name, len) in SMALL_AND_IN_PARTS {
        let (fx, id) = tampered_copy(name, len)?;
        let folder = format!("gs://fleet/{}/", &name[..5]);
        let out = run_within_limit(&mut crate::gcs::gs_command(
            &fx,
            &proxy.url(),
            &["push", &id, &folder],
        ));
        assert_refused_as_tampered(&fx, &id, &out)?;
        // No object under the folder: neither the file, nor the manifest.
        let listed = gcs.get(&format!("/storage/v1/b/fleet/o?prefix={}%2F", &name[..5]))?;
        assert_eq!(listed.status, 200, "{name}: {}", listed.text());
        let listed: serde_json::Value = serde_json::from_slice(&listed.body)?;
        let items = listed["items"].as_array().map_or(0, Vec::len);
        assert_eq!(items, 0, "{name}: {listed}");
    }
    // The large file went in a resumable session: its two chunks of 32 MiB, then, instead of
    // the last one, which would have made the object, the session's cancellation.
    let log = proxy.log();
    let chunks: Vec<u16> = log
        .iter()
        .filter(|h| h.method == "PUT" && h.path.starts_with("/upload/"))
        .map(|h| h.status)
        .collect();
    assert_eq!(chunks, [308, 308], "{log:#?}");
    assert!(
        log.iter().any(|h| h.method == "DELETE" && h.status == 499),
        "the session was cancelled: {log:#?}"
    );
    Ok(())
}

#[test]
fn a_tampered_cache_file_is_never_pushed_to_az_small_or_in_blocks() -> TestResult {
    let azurite = Azurite::start()?;
    azurite.create_container("fleet")?;
    for (name, len) in SMALL_AND_IN_PARTS {
        let (fx, id) = tampered_copy(name, len)?;
        let folder = format!("az://{AZURITE_ACCOUNT}/fleet/{}/", &name[..5]);
        let out = run_within_limit(&mut crate::azure::az_command(
            &fx,
            &azurite.endpoint(),
            &crate::azure::KEY_ENV,
            &["push", &id, &folder],
        ));
        assert_refused_as_tampered(&fx, &id, &out)?;
        // No blob under the folder: neither the file, nor the manifest (blocks never committed
        // are no blob).
        let (status, listed) = azurite.signed_request(
            "GET",
            &format!(
                "/fleet?restype=container&comp=list&prefix={}%2F",
                &name[..5]
            ),
        )?;
        assert_eq!(status, 200, "{name}: {listed}");
        assert!(!listed.contains("<Blob>"), "{name}: {listed}");
    }
    // The large file went in blocks: the four of 16 MiB are there, never committed; the last,
    // and the list that would have made them a blob, never went.
    let (status, blocks) = azurite.signed_request(
        "GET",
        "/fleet/large/large.gguf?comp=blocklist&blocklisttype=uncommitted",
    )?;
    assert_eq!(status, 200, "{blocks}");
    assert_eq!(blocks.matches("<Block>").count(), 4, "{blocks}");
    Ok(())
}
