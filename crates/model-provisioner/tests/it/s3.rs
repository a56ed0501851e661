//! The provisioner against a real S3 server (`s3s-fs`) on loopback, and the AWS credential
//! endpoints of test-support.

use std::collections::HashMap;
use std::fs;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use catalog_core::{CatalogStore, Digest, Outcome};
use model_provisioner::download::{DownloadConfig, RetryPolicy};
use model_provisioner::s3::credentials::S3Config;
use model_provisioner::s3::{Env, S3Fetcher, S3Options};
use model_provisioner::{AnyFetcher, Error, FileFetcher, FsCatalog, ModelProvisioner};
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
        matches!(&err, Error::S3Denied { bucket, key, endpoint, .. } if bucket == "models" && key == "m.gguf" && *endpoint == server.endpoint()),
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
