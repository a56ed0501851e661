//! The provisioner against a real S3 server (`s3s-fs`) on loopback, and the AWS credential
//! endpoints of test-support.

use std::collections::HashMap;
use std::fs;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use catalog_core::{CacheLayout, CatalogEntry, CatalogStore, Digest, Outcome, S3Ref};
use model_provisioner::object_store::PartSizes;
use model_provisioner::s3::{Env, MANIFEST_NAME, Manifest, PushReport, S3Fetcher, S3Options};
use model_provisioner::{AnyFetcher, Error, FileFetcher, FsCatalog, ModelProvisioner, NoReporter};
use mp_credentials::aws::S3Config;
use mp_transfer::{DownloadConfig, RetryPolicy};
use test_support::{InstanceMetadata, S3Server, random_bytes as bytes};

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn download() -> DownloadConfig {
    DownloadConfig {
        connections: 4,
        chunk_size: 256 << 10,
        parallel_threshold: 1 << 20,
        retry: RetryPolicy {
            retries: 1,
            backoff: Duration::from_millis(10),
            ..RetryPolicy::default()
        },
        stall_timeout: Duration::from_secs(5),
        connect_timeout: Duration::from_secs(2),
        ..DownloadConfig::default()
    }
}

/// An environment of exactly these variables, with the instance metadata service off unless
/// a test names one.
fn env(vars: &[(&str, String)]) -> Env {
    let mut map: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect();
    map.entry("AWS_EC2_METADATA_DISABLED".into())
        .or_insert_with(|| "true".into());
    map.entry("HOME".into())
        .or_insert_with(|| "/nonexistent-home-for-tests".into());
    Arc::new(move |name| map.get(name).cloned())
}

/// The server's keys and endpoint, as a user would export them.
fn keys(server: &S3Server) -> Vec<(&'static str, String)> {
    vec![
        ("AWS_ACCESS_KEY_ID", server.access_key().to_owned()),
        ("AWS_SECRET_ACCESS_KEY", server.secret_key().to_owned()),
        ("AWS_ENDPOINT_URL", server.endpoint()),
    ]
}

fn provisioner(
    cache: &Path,
    env: &Env,
    options: S3Options,
) -> Result<ModelProvisioner<FsCatalog, AnyFetcher>, Box<dyn std::error::Error>> {
    let config = S3Config::from_env(&**env)?;
    let fetcher = S3Fetcher::new(config, options, download()).with_env(env.clone());
    let any = AnyFetcher::new(FileFetcher::in_place()).with_s3(fetcher);
    Ok(ModelProvisioner::with_fetcher(cache, any)?)
}

#[test]
fn one_object_is_fetched_hashed_and_named_by_its_endpoint() -> TestResult {
    let server = S3Server::start()?;
    server.create_bucket("models")?;
    let body = bytes(3 << 20, 21);
    server.put("models", "llama/q4.gguf", &body)?;
    let cache = tempfile::tempdir()?;
    let env = env(&keys(&server));
    let p = provisioner(cache.path(), &env, S3Options::default())?;

    let ensured = p.ensure(&"s3://models/llama/q4.gguf".parse()?, None)?;
    assert_eq!(
        ensured.resolved.id,
        format!(
            "{}/models/llama/q4.gguf",
            server.endpoint().replace("http://", "s3+http://")
        )
    );
    assert_eq!(fs::read(&ensured.resolved.local_path)?, body);
    assert_eq!(
        ensured
            .resolved
            .local_path
            .file_name()
            .and_then(|n| n.to_str()),
        Some("q4.gguf")
    );
    let entry = &ensured.entry;
    assert_eq!(
        entry.verification.outcome,
        Outcome::Warn,
        "no digest and no checksum"
    );
    assert_eq!(entry.verification.computed, Some(Digest::sha256_of(&body)));
    let provenance = entry.provenance.as_ref().ok_or("no provenance")?;
    assert_eq!(provenance.fetcher, "s3");
    assert_eq!(
        provenance.origin.as_deref(),
        Some(server.endpoint().as_str())
    );

    // The id, written out, names the same model; and the registry is not asked again.
    let again = p.ensure(&ensured.resolved.id.parse()?, None)?;
    assert!(again.cached);
    drop(server);
    let offline = p.ensure(&"s3://models/llama/q4.gguf".parse()?, None)?;
    assert!(offline.cached);
    Ok(())
}

#[test]
fn an_object_with_a_sha256_checksum_passes_without_a_digest() -> TestResult {
    let server = S3Server::start()?;
    server.create_bucket("models")?;
    let body = bytes(500_000, 22);
    server.put_signed("models", "w.safetensors", &body, true)?;
    let cache = tempfile::tempdir()?;
    let p = provisioner(cache.path(), &env(&keys(&server)), S3Options::default())?;
    let ensured = p.ensure(&"s3://models/w.safetensors".parse()?, None)?;
    assert_eq!(ensured.entry.verification.outcome, Outcome::Pass);
    assert_eq!(ensured.entry.source_digest, Some(Digest::sha256_of(&body)));
    assert_eq!(ensured.entry.digest, None);
    Ok(())
}

#[test]
fn a_folder_keeps_its_nested_paths_and_honours_include_and_exclude() -> TestResult {
    let server = S3Server::start()?;
    server.create_bucket("models")?;
    let files: [(&str, &[u8]); 5] = [
        ("repo/config.json", b"{}"),
        ("repo/model-00001-of-00002.safetensors", b"one"),
        ("repo/model-00002-of-00002.safetensors", b"two"),
        ("repo/tokenizer/tokenizer.json", b"tok"),
        ("repo/original/consolidated.pth", b"big"),
    ];
    for (key, data) in files {
        server.put("models", key, data)?;
    }
    server.put("models", "other/x.bin", b"not in the folder")?;
    let cache = tempfile::tempdir()?;
    let p = provisioner(
        cache.path(),
        &env(&keys(&server)),
        S3Options {
            exclude: vec!["original/*".into()],
            ..S3Options::default()
        },
    )?;
    let ensured = p.ensure(&"s3://models/repo/".parse()?, None)?;
    let dir = &ensured.resolved.local_path;
    let mut names: Vec<String> = test_support::paths_under(dir)
        .into_iter()
        .map(|p| p.strip_prefix(dir).unwrap_or(&p).display().to_string())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "config.json",
            "model-00001-of-00002.safetensors",
            "model-00002-of-00002.safetensors",
            "tokenizer/tokenizer.json"
        ]
    );
    assert_eq!(fs::read(dir.join("tokenizer/tokenizer.json"))?, b"tok");
    let provenance = ensured.entry.provenance.as_ref().ok_or("no provenance")?;
    assert_eq!(provenance.exclude, ["original/*"]);
    assert_eq!(ensured.entry.verification.outcome, Outcome::Warn);
    Ok(())
}

#[test]
fn errors_name_the_bucket_the_key_and_the_endpoint() -> TestResult {
    let server = S3Server::start()?;
    server.create_bucket("models")?;
    server.put("models", "m.gguf", b"weights")?;
    let cache = tempfile::tempdir()?;
    let p = provisioner(cache.path(), &env(&keys(&server)), S3Options::default())?;
    let err = p
        .ensure(&"s3://models/absent.gguf".parse()?, None)
        .unwrap_err();
    assert!(
        matches!(&err, Error::S3NotFound { what } if what.contains("absent.gguf")),
        "{err}"
    );
    let err = p
        .ensure(&"s3://nobucket/m.gguf".parse()?, None)
        .unwrap_err();
    assert!(matches!(&err, Error::S3NotFound { .. }), "{err}");
    let err = p
        .ensure(&"s3://models/nothing/".parse()?, None)
        .unwrap_err();
    assert!(matches!(&err, Error::S3NotFound { .. }), "{err}");

    let mut wrong = keys(&server);
    wrong[1].1 = "not-the-secret".into();
    let p = provisioner(cache.path(), &env(&wrong), S3Options::default())?;
    let err = p.ensure(&"s3://models/m.gguf".parse()?, None).unwrap_err();
    assert!(matches!(err, Error::S3SignatureMismatch { .. }), "{err}");
    assert!(err.hint().is_some_and(|h| h.contains("clock")));
    assert!(!format!("{err:?}").contains("not-the-secret"));

    let unsigned = S3Config::from_env(&*env(&keys(&server)))?.with_no_sign_request(true);
    let fetcher = S3Fetcher::new(unsigned, S3Options::default(), download());
    let p = ModelProvisioner::with_fetcher(
        cache.path(),
        AnyFetcher::new(FileFetcher::in_place()).with_s3(fetcher),
    )?;
    let err = p.ensure(&"s3://models/m.gguf".parse()?, None).unwrap_err();
    assert!(
        matches!(&err, Error::S3Denied { bucket, key, endpoint, write: false, .. } if bucket == "models" && key == "m.gguf" && *endpoint == server.endpoint()),
        "{err}"
    );
    assert!(p.catalog().list()?.is_empty());
    Ok(())
}

#[test]
fn an_endpoint_that_does_not_answer_is_named() -> TestResult {
    // A port nothing listens on: bound, then released.
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let endpoint = format!("http://127.0.0.1:{port}");
    let cache = tempfile::tempdir()?;
    let env = env(&[
        ("AWS_ACCESS_KEY_ID", "key".into()),
        ("AWS_SECRET_ACCESS_KEY", "secret".into()),
        ("AWS_ENDPOINT_URL", endpoint.clone()),
    ]);
    let p = provisioner(cache.path(), &env, S3Options::default())?;
    let err = p.ensure(&"s3://models/m.gguf".parse()?, None).unwrap_err();
    assert!(
        matches!(&err, Error::S3Unreachable { endpoint: e, .. } if *e == endpoint),
        "{err}"
    );
    assert!(err.hint().is_some_and(|h| h.contains("AWS_ENDPOINT_URL")));
    assert!(!format!("{err} {err:?}").contains("secret"));
    Ok(())
}

#[test]
fn a_corrupted_object_fails_its_digest_and_publishes_nothing() -> TestResult {
    let server = S3Server::start()?;
    server.create_bucket("models")?;
    let body = bytes(400_000, 23);
    server.put("models", "m.gguf", &body)?;
    let mut bad = body.clone();
    bad[7] ^= 0x40;
    fs::write(server.object_path("models", "m.gguf"), &bad)?;
    let cache = tempfile::tempdir()?;
    let p = provisioner(cache.path(), &env(&keys(&server)), S3Options::default())?;
    let err = p
        .ensure(
            &"s3://models/m.gguf".parse()?,
            Some(&Digest::sha256_of(&body)),
        )
        .unwrap_err();
    assert!(err.is_verification_failure(), "{err}");
    assert!(test_support::paths_under(&cache.path().join("models")).is_empty());
    Ok(())
}

#[test]
fn credentials_from_the_instance_metadata_service_sign_the_requests() -> TestResult {
    let server = S3Server::start()?;
    server.create_bucket("models")?;
    server.put("models", "m.gguf", b"from imds")?;
    let imds = InstanceMetadata::start_for("model-reader", &server)?;
    let cache = tempfile::tempdir()?;
    let env = env(&[
        ("AWS_ENDPOINT_URL", server.endpoint()),
        ("AWS_EC2_METADATA_DISABLED", "false".into()),
        ("AWS_EC2_METADATA_SERVICE_ENDPOINT", imds.url()),
    ]);
    let p = provisioner(cache.path(), &env, S3Options::default())?;
    let ensured = p.ensure(&"s3://models/m.gguf".parse()?, None)?;
    assert_eq!(fs::read(&ensured.resolved.local_path)?, b"from imds");
    let log = imds.log();
    assert!(
        log.iter().any(|r| r.method == "PUT"),
        "IMDSv2 asks a token first: {log:?}"
    );
    assert!(
        log.iter().any(|r| r.path.ends_with("/model-reader")),
        "{log:?}"
    );
    Ok(())
}

#[test]
fn no_credentials_anywhere_says_which_sources_were_tried() -> TestResult {
    let server = S3Server::start()?;
    let cache = tempfile::tempdir()?;
    let env = env(&[("AWS_ENDPOINT_URL", server.endpoint())]);
    let p = provisioner(cache.path(), &env, S3Options::default())?;
    let err = p.ensure(&"s3://models/m.gguf".parse()?, None).unwrap_err();
    let text = err.to_string();
    for source in [
        "environment",
        "shared files",
        "web identity",
        "container",
        "instance metadata",
    ] {
        assert!(text.contains(source), "{source} missing from: {text}");
    }
    assert!(err.hint().is_some_and(|h| h.contains("--no-sign-request")));
    Ok(())
}

#[test]
fn a_listing_over_many_pages_is_read_to_its_end() -> TestResult {
    let server = S3Server::start()?;
    server.create_bucket("models")?;
    // More keys than one page of ListObjectsV2 (1,000) under the prefix.
    let dir = server.object_path("models", "many");
    fs::create_dir_all(&dir)?;
    for i in 0..1005 {
        fs::write(dir.join(format!("{i:04}.bin")), i.to_string())?;
    }
    let cache = tempfile::tempdir()?;
    let p = provisioner(
        cache.path(),
        &env(&keys(&server)),
        S3Options {
            include: vec!["0003.bin".into(), "1004.bin".into()],
            ..S3Options::default()
        },
    )?;
    let ensured = p.ensure(&"s3://models/many/".parse()?, None)?;
    let dir = &ensured.resolved.local_path;
    assert_eq!(fs::read_to_string(dir.join("1004.bin"))?, "1004");
    assert_eq!(fs::read_to_string(dir.join("0003.bin"))?, "3");
    Ok(())
}

/// `s3://models/<key>` at the configured endpoint.
fn s3_ref(key: &str) -> S3Ref {
    S3Ref {
        endpoint: None,
        bucket: "models".into(),
        key: key.into(),
    }
}

/// `path` (a file or a folder) ensured into a file-only catalog at `cache`, as a push finds it.
fn cataloged(cache: &Path, path: &Path) -> Result<CatalogEntry, Box<dyn std::error::Error>> {
    let p = ModelProvisioner::file_only(cache)?;
    Ok(p.ensure(&path.display().to_string().parse()?, None)?.entry)
}

/// Pushes `entry` (cataloged in `cache`) to `s3://models/<key>` on `server`.
fn push(
    server: &S3Server,
    cache: &Path,
    entry: &CatalogEntry,
    key: &str,
) -> Result<PushReport, Error> {
    push_with(server, cache, entry, key, S3Options::default())
}

/// The same, with `options` (the sizes of a multipart upload's parts, say).
fn push_with(
    server: &S3Server,
    cache: &Path,
    entry: &CatalogEntry,
    key: &str,
    options: S3Options,
) -> Result<PushReport, Error> {
    let env = env(&keys(server));
    let config = S3Config::from_env(&*env).map_err(Error::S3Credentials)?;
    let fetcher = S3Fetcher::new(config, options, download()).with_env(env);
    fetcher.push(&CacheLayout::new(cache)?, entry, &s3_ref(key), &NoReporter)
}

/// Files from 1 MiB on go up in parts of 5 MiB, S3's smallest, so that 11 MiB make three parts.
fn small_parts() -> S3Options {
    S3Options {
        upload_parts: Some(PartSizes {
            from: 1 << 20,
            size: 5 << 20,
        }),
        ..S3Options::default()
    }
}

/// The length of a file [`small_parts`] sends in three parts: two of 5 MiB and a short one.
const THREE_PARTS: usize = (10 << 20) + 1000;

/// A small model folder with a nested file.
fn model_folder(dir: &Path) -> Result<Vec<(&'static str, Vec<u8>)>, std::io::Error> {
    let files = vec![
        ("config.json", b"{\"layers\": 2}".to_vec()),
        ("model.safetensors", bytes(1 << 20, 31)),
        ("tokenizer/tokenizer.json", bytes(10_000, 32)),
    ];
    for (rel, data) in &files {
        let path = dir.join(rel);
        fs::create_dir_all(path.parent().unwrap_or(dir))?;
        fs::write(path, data)?;
    }
    Ok(files)
}

#[test]
fn a_pushed_folder_pulls_back_verified_by_its_manifest() -> TestResult {
    let server = S3Server::start()?;
    server.create_bucket("models")?;
    let local = tempfile::tempdir()?;
    let files = model_folder(local.path())?;
    let cache = tempfile::tempdir()?;
    let entry = cataloged(cache.path(), local.path())?;
    // The tree digest verification computes for the folder.
    let (tree, _) = catalog_core::verify::hash_path(local.path(), &mut |_| {})?;

    let report = push(&server, cache.path(), &entry, "pushed/")?;
    assert_eq!(report.files, 3);
    assert_eq!(
        report.bytes_uploaded,
        files.iter().map(|(_, d)| d.len() as u64).sum::<u64>()
    );
    assert_eq!(report.manifest_key, format!("pushed/{MANIFEST_NAME}"));
    let manifest: Manifest = serde_json::from_slice(&fs::read(
        server.object_path("models", &report.manifest_key),
    )?)?;
    assert_eq!(manifest.version, 1);
    assert_eq!(manifest.id, entry.id);
    assert_eq!(manifest.digest, tree);
    assert_eq!(manifest.files.len(), 3);
    // Each small file went up with its checksum, which the store kept.
    let sidecar = fs::read_to_string(server.internal_info_path("models", "pushed/config.json"))?;
    assert!(sidecar.contains("checksum_sha256"), "{sidecar}");

    let pulled = tempfile::tempdir()?;
    let p = provisioner(pulled.path(), &env(&keys(&server)), S3Options::default())?;
    let ensured = p.ensure(&"s3://models/pushed/".parse()?, None)?;
    let dir = &ensured.resolved.local_path;
    for (rel, data) in &files {
        assert_eq!(&fs::read(dir.join(rel))?, data, "{rel}");
    }
    assert!(
        !dir.join(MANIFEST_NAME).exists(),
        "the manifest is no model file"
    );
    assert_eq!(test_support::paths_under(dir).len(), 3);
    assert_eq!(ensured.entry.verification.outcome, Outcome::Pass);
    assert_eq!(ensured.entry.verification.computed.as_ref(), Some(&tree));
    assert_eq!(ensured.entry.source_digest.as_ref(), Some(&tree));
    Ok(())
}

#[test]
fn a_file_of_70_mib_goes_up_in_parts_and_round_trips() -> TestResult {
    let server = S3Server::start()?;
    server.create_bucket("models")?;
    let local = tempfile::tempdir()?;
    let body = bytes(70 << 20, 33);
    let path = local.path().join("big.gguf");
    fs::write(&path, &body)?;
    let cache = tempfile::tempdir()?;
    let entry = cataloged(cache.path(), &path)?;

    let report = push(&server, cache.path(), &entry, "big/")?;
    assert_eq!((report.files, report.bytes_uploaded), (1, 70 << 20));
    assert!(fs::read(server.object_path("models", "big/big.gguf"))? == body);
    // The `ETag` of an object made of five parts of 16 MiB, sent several at once, says so.
    let sidecar = fs::read_to_string(server.internal_info_path("models", "big/big.gguf"))?;
    assert!(sidecar.contains("-5"), "{sidecar}");
    // What the store serves is the file, whatever order the parts arrived in.
    let object = server.request(
        "GET",
        &server.presign("GET", "models", "big/big.gguf", &[]),
        &[],
        b"",
    )?;
    assert_eq!(object.status, 200);
    assert_eq!(Digest::sha256_of(&object.body), Digest::sha256_of(&body));
    // A multipart object has no full-object checksum: only the manifest vouches for it.
    let pulled = tempfile::tempdir()?;
    let p = provisioner(pulled.path(), &env(&keys(&server)), S3Options::default())?;
    let ensured = p.ensure(&"s3://models/big/".parse()?, None)?;
    assert!(fs::read(ensured.resolved.local_path.join("big.gguf"))? == body);
    assert_eq!(ensured.entry.verification.outcome, Outcome::Pass);
    Ok(())
}

#[test]
fn a_file_changed_after_the_push_fails_the_pull_and_publishes_nothing() -> TestResult {
    let server = S3Server::start()?;
    server.create_bucket("models")?;
    let local = tempfile::tempdir()?;
    let files = model_folder(local.path())?;
    let cache = tempfile::tempdir()?;
    let entry = cataloged(cache.path(), local.path())?;
    push(&server, cache.path(), &entry, "pushed/")?;

    // Same length, other bytes; the sidecar with the old checksum and `ETag` goes too.
    let mut changed = files[1].1.clone();
    changed[100] ^= 0x01;
    fs::write(
        server.object_path("models", "pushed/model.safetensors"),
        &changed,
    )?;
    fs::remove_file(server.internal_info_path("models", "pushed/model.safetensors"))?;

    let pulled = tempfile::tempdir()?;
    let p = provisioner(pulled.path(), &env(&keys(&server)), S3Options::default())?;
    let err = p.ensure(&"s3://models/pushed/".parse()?, None).unwrap_err();
    assert!(err.is_verification_failure(), "{err}");
    assert!(test_support::paths_under(&pulled.path().join("models")).is_empty());
    assert!(p.catalog().list()?.is_empty());
    Ok(())
}

#[test]
fn a_folder_and_its_manifest_that_disagree_are_refused() -> TestResult {
    let server = S3Server::start()?;
    server.create_bucket("models")?;
    let local = tempfile::tempdir()?;
    model_folder(local.path())?;
    let cache = tempfile::tempdir()?;
    let entry = cataloged(cache.path(), local.path())?;
    push(&server, cache.path(), &entry, "pushed/")?;
    let pulled = tempfile::tempdir()?;
    let p = provisioner(pulled.path(), &env(&keys(&server)), S3Options::default())?;

    server.put("models", "pushed/extra.bin", b"not pushed")?;
    let err = p.ensure(&"s3://models/pushed/".parse()?, None).unwrap_err();
    assert!(
        matches!(&err, Error::S3Protocol { reason, .. } if reason.contains("extra.bin")),
        "{err}"
    );
    fs::remove_file(server.object_path("models", "pushed/extra.bin"))?;
    fs::remove_file(server.object_path("models", "pushed/config.json"))?;
    let err = p.ensure(&"s3://models/pushed/".parse()?, None).unwrap_err();
    assert!(
        matches!(&err, Error::S3Protocol { reason, .. } if reason.contains("config.json")),
        "{err}"
    );
    assert!(p.catalog().list()?.is_empty());
    Ok(())
}

#[test]
fn a_push_to_an_object_rather_than_a_folder_is_refused() -> TestResult {
    let server = S3Server::start()?;
    server.create_bucket("models")?;
    let local = tempfile::tempdir()?;
    let path = local.path().join("m.gguf");
    fs::write(&path, b"weights")?;
    let cache = tempfile::tempdir()?;
    let entry = cataloged(cache.path(), &path)?;
    let err = push(&server, cache.path(), &entry, "m.gguf").unwrap_err();
    assert!(matches!(err, Error::PushDestination { .. }), "{err}");
    assert!(err.hint().is_some_and(|h| h.contains('/')));
    assert!(!server.object_path("models", "m.gguf").exists());

    // Unsigned, the store refuses: the error names the bucket, the key and the endpoint.
    let unsigned = S3Config::from_env(&*env(&keys(&server)))?.with_no_sign_request(true);
    let fetcher = S3Fetcher::new(unsigned, S3Options::default(), download());
    let err = fetcher
        .push(
            &CacheLayout::new(cache.path())?,
            &entry,
            &s3_ref("up/"),
            &NoReporter,
        )
        .unwrap_err();
    assert!(
        matches!(&err, Error::S3Denied { bucket, key, endpoint, write: true, .. } if bucket == "models" && key == "up/m.gguf" && *endpoint == server.endpoint()),
        "{err}"
    );
    let hint = err.hint().unwrap_or_default();
    assert!(hint.contains("s3:PutObject"), "{hint}");
    assert!(!server.object_path("models", "up").exists());
    Ok(())
}

/// A file of `len` bytes at `dir/name`, cataloged in place with its digest (so the catalog
/// vouches for these bytes), then overwritten with as many other bytes.
fn tampered_file(
    cache: &Path,
    dir: &Path,
    name: &str,
    len: usize,
) -> Result<CatalogEntry, Box<dyn std::error::Error>> {
    let path = dir.join(name);
    let good = bytes(len, 41);
    fs::write(&path, &good)?;
    let p = ModelProvisioner::file_only(cache)?;
    let entry = p
        .ensure(
            &path.display().to_string().parse()?,
            Some(&Digest::sha256_of(&good)),
        )?
        .entry;
    let mut bad = good;
    // The last byte: a reader that checked only a prefix would let it through.
    if let Some(last) = bad.last_mut() {
        *last ^= 0x01;
    }
    fs::write(&path, &bad)?;
    Ok(entry)
}

#[test]
fn a_tampered_small_file_is_never_pushed_to_a_bucket() -> TestResult {
    let server = S3Server::start()?;
    server.create_bucket("models")?;
    let local = tempfile::tempdir()?;
    let cache = tempfile::tempdir()?;
    let entry = tampered_file(cache.path(), local.path(), "m.gguf", 300_000)?;
    let err = push(&server, cache.path(), &entry, "bad/").unwrap_err();
    assert!(err.is_verification_failure(), "{err}");
    assert_unpublished(&server, "bad/", "m.gguf", true)?;
    Ok(())
}

/// Neither `file` nor the manifest is in the bucket `models` under `prefix`; with `head`, the
/// store also answers 404 to a signed `HEAD` of the file.
fn assert_unpublished(server: &S3Server, prefix: &str, file: &str, head: bool) -> TestResult {
    let key = format!("{prefix}{file}");
    assert!(
        !server.object_path("models", &key).exists(),
        "{key} is there"
    );
    let manifest = format!("{prefix}.model-provisioner.json");
    assert!(
        !server.object_path("models", &manifest).exists(),
        "{manifest} is there"
    );
    if head {
        let url = server.presign("HEAD", "models", &key, &[]);
        assert_eq!(server.request("HEAD", &url, &[], b"")?.status, 404);
    }
    Ok(())
}

#[test]
fn a_tampered_large_file_is_never_completed_in_a_bucket() -> TestResult {
    let server = S3Server::start()?;
    server.create_bucket("models")?;
    let local = tempfile::tempdir()?;
    let cache = tempfile::tempdir()?;
    let entry = tampered_file(cache.path(), local.path(), "big.gguf", THREE_PARTS)?;
    let err = push_with(&server, cache.path(), &entry, "bad/", small_parts()).unwrap_err();
    assert!(err.is_verification_failure(), "{err}");
    assert_unpublished(&server, "bad/", "big.gguf", false)?;
    Ok(())
}

#[test]
fn a_folder_with_a_file_that_no_longer_verifies_pushes_nothing() -> TestResult {
    let server = S3Server::start()?;
    server.create_bucket("models")?;
    let local = tempfile::tempdir()?;
    model_folder(local.path())?;
    let (tree, _) = catalog_core::verify::hash_path(local.path(), &mut |_| {})?;
    let cache = tempfile::tempdir()?;
    let p = ModelProvisioner::file_only(cache.path())?;
    let entry = p
        .ensure(&local.path().display().to_string().parse()?, Some(&tree))?
        .entry;
    fs::write(local.path().join("config.json"), b"{\"layers\": 3}")?;
    let err = push(&server, cache.path(), &entry, "bad/").unwrap_err();
    assert!(err.is_verification_failure(), "{err}");
    assert!(test_support::paths_under(&server.object_path("models", "bad")).is_empty());
    Ok(())
}

/// Pushes `entry` to `s3://models/<key>` through `proxy`, in front of `server`, in
/// [`small_parts`].
fn push_through(
    proxy: &test_support::HoldProxy,
    server: &S3Server,
    cache: &Path,
    entry: &CatalogEntry,
    key: &str,
) -> Result<PushReport, Error> {
    let mut vars = keys(server);
    vars.retain(|(k, _)| *k != "AWS_ENDPOINT_URL");
    vars.push(("AWS_ENDPOINT_URL", proxy.url()));
    let env = env(&vars);
    let config = S3Config::from_env(&*env).map_err(Error::S3Credentials)?;
    let fetcher = S3Fetcher::new(config, small_parts(), download()).with_env(env);
    fetcher.push(&CacheLayout::new(cache)?, entry, &s3_ref(key), &NoReporter)
}

/// The statuses of the `PUT`s of `big.gguf` (its `UploadPart`s) the proxy answered.
fn part_puts(proxy: &test_support::HoldProxy) -> Vec<u16> {
    proxy
        .log()
        .iter()
        .filter(|h| h.method == "PUT" && h.path.ends_with("/big.gguf"))
        .map(|h| h.status)
        .collect()
}

#[test]
fn a_part_that_fails_once_is_sent_again_and_the_object_is_whole() -> TestResult {
    let server = S3Server::start()?;
    server.create_bucket("models")?;
    let proxy = test_support::HoldProxy::start(&server.endpoint())?;
    let local = tempfile::tempdir()?;
    let body = bytes(THREE_PARTS, 34);
    let path = local.path().join("big.gguf");
    fs::write(&path, &body)?;
    let cache = tempfile::tempdir()?;
    let entry = cataloged(cache.path(), &path)?;
    proxy.refuse("PUT", "partNumber=2&", 503, 1);

    let report = push_through(&proxy, &server, cache.path(), &entry, "big/")?;
    assert_eq!(report.bytes_uploaded, THREE_PARTS as u64);
    let puts = part_puts(&proxy);
    assert_eq!(puts.iter().filter(|s| **s == 503).count(), 1, "{puts:?}");
    assert_eq!(puts.iter().filter(|s| **s == 200).count(), 3, "{puts:?}");
    let object = server.request(
        "GET",
        &server.presign("GET", "models", "big/big.gguf", &[]),
        &[],
        b"",
    )?;
    assert_eq!(Digest::sha256_of(&object.body), Digest::sha256_of(&body));
    Ok(())
}

#[test]
fn a_part_that_keeps_failing_aborts_the_upload_and_leaves_no_object() -> TestResult {
    let server = S3Server::start()?;
    server.create_bucket("models")?;
    let proxy = test_support::HoldProxy::start(&server.endpoint())?;
    let local = tempfile::tempdir()?;
    let path = local.path().join("big.gguf");
    fs::write(&path, bytes(THREE_PARTS, 35))?;
    let cache = tempfile::tempdir()?;
    let entry = cataloged(cache.path(), &path)?;
    proxy.refuse("PUT", "partNumber=3&", 400, usize::MAX);

    let err = push_through(&proxy, &server, cache.path(), &entry, "big/").unwrap_err();
    assert!(!err.is_verification_failure(), "{err}");
    let log = proxy.log();
    assert!(
        log.iter().any(|h| h.method == "DELETE" && h.status == 204),
        "the upload was aborted: {log:?}"
    );
    assert_unpublished(&server, "big/", "big.gguf", true)?;
    Ok(())
}
