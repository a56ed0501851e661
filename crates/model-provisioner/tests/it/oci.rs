//! The provisioner against a real registry (Debian's `docker-registry`) on loopback, and a
//! scriptable front for Bearer tokens, redirects to storage and held bodies.

use std::fs;
use std::path::Path;
use std::time::Duration;

use catalog_core::{CatalogStore, Digest, ModelRef, OciRef, Outcome};
use model_provisioner::oci::{OciConfig, OciFetcher};
use model_provisioner::{AnyFetcher, Error, FileFetcher, FsCatalog, ModelProvisioner, NoReporter};
use mp_credentials::registry::{Credentials, Secret};
use mp_transfer::{DownloadConfig, RetryPolicy};
use test_support::archives::{self, Packing};
use test_support::{
    Artifact, DOCKER_MANIFEST, FrontAuth, FrontOptions, OCI_MANIFEST, Registry, RegistryFront,
    random_bytes as bytes,
};

mod modelkit;

type TestResult = Result<(), Box<dyn std::error::Error>>;

const FILEPATH: &str = "org.cncf.model.filepath";
const TITLE: &str = "org.opencontainers.image.title";
const MODELPACK_CONFIG: &str = "application/vnd.cncf.model.config.v1+json";
const MODELPACK_ARTIFACT: &str = "application/vnd.cncf.model.manifest.v1+json";

/// Small chunks, so that parallel ranges show at test sizes; quick retries.
fn download() -> DownloadConfig {
    DownloadConfig {
        connections: 4,
        chunk_size: 256 << 10,
        parallel_threshold: 1 << 20,
        retry: RetryPolicy {
            retries: 2,
            backoff: Duration::from_millis(10),
            ..RetryPolicy::default()
        },
        stall_timeout: Duration::from_secs(5),
        connect_timeout: Duration::from_secs(2),
        ..DownloadConfig::default()
    }
}

/// No credentials from this machine's environment or docker config: only what a test gives.
fn config() -> OciConfig {
    OciConfig::default()
}

fn provisioner(
    cache: &Path,
    config: OciConfig,
) -> Result<ModelProvisioner<FsCatalog, AnyFetcher>, Error> {
    let fetcher =
        AnyFetcher::new(FileFetcher::in_place()).with_oci(OciFetcher::new(config, download()));
    ModelProvisioner::with_fetcher(cache, fetcher)
}

fn names_under(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = test_support::paths_under(dir)
        .into_iter()
        .map(|p| p.strip_prefix(dir).unwrap_or(&p).display().to_string())
        .collect();
    names.sort();
    names
}

#[test]
fn a_modelpack_artifact_becomes_a_directory_with_every_file_checked() -> TestResult {
    let registry = Registry::start()?;
    let weights = bytes(3 << 20, 1);
    let config_json = br#"{"architectures":["LlamaForCausalLM"]}"#;
    let docs = archives::tar_of(&[("docs/README.md", b"# tiny"), ("docs/LICENSE", b"MIT")]);
    let pushed = Artifact::new(OCI_MANIFEST)
        .artifact_type(MODELPACK_ARTIFACT)
        .config(MODELPACK_CONFIG, br#"{"descriptor":{"name":"tiny"}}"#)
        .layer(
            "application/vnd.cncf.model.weight.v1.raw",
            &weights,
            &[(FILEPATH, "model.safetensors")],
        )
        .layer(
            "application/vnd.cncf.model.weight.config.v1.raw",
            config_json,
            &[(FILEPATH, "config.json")],
        )
        .layer(
            "application/vnd.cncf.model.doc.v1.tar",
            &docs,
            &[(FILEPATH, "docs")],
        )
        .push(&registry, "models/tiny", "v1")?;

    let cache = tempfile::tempdir()?;
    let p = provisioner(cache.path(), config())?;
    let reference = format!("oci://{}/models/tiny:v1", registry.host());
    let ensured = p.ensure(&reference.parse()?, None)?;
    assert_eq!(ensured.resolved.id, reference);
    let dir = &ensured.resolved.local_path;
    assert!(dir.is_dir(), "a model of several files is its directory");
    assert!(dir.ends_with(pushed.manifest_digest.trim_start_matches("sha256:")));
    assert_eq!(
        names_under(dir),
        [
            "config.json",
            "docs/LICENSE",
            "docs/README.md",
            "model.safetensors"
        ]
    );
    assert_eq!(fs::read(dir.join("model.safetensors"))?, weights);
    assert_eq!(fs::read(dir.join("docs/LICENSE"))?, b"MIT");

    let entry = &ensured.entry;
    let provenance = entry.provenance.as_ref().ok_or("no provenance")?;
    assert_eq!(provenance.fetcher, "oci");
    assert_eq!(
        provenance.resolved_revision.as_deref(),
        Some(pushed.manifest_digest.as_str())
    );
    assert_eq!(provenance.origin.as_deref(), Some(registry.host().as_str()));
    let weights_record = provenance
        .files
        .iter()
        .find(|f| f.path == "model.safetensors")
        .ok_or("no record of the weights")?;
    assert_eq!(weights_record.digest, Some(Digest::sha256_of(&weights)));
    assert_eq!(
        weights_record.media_type.as_deref(),
        Some("application/vnd.cncf.model.weight.v1.raw")
    );
    let readme = provenance
        .files
        .iter()
        .find(|f| f.path == "docs/README.md")
        .ok_or("no record of a file from the tar layer")?;
    assert_eq!(
        readme.media_type.as_deref(),
        Some("application/vnd.cncf.model.doc.v1.tar")
    );
    // No digest was given, but every layer was checked against the manifest's sha256: the
    // registry vouches for the tree digest, recorded as the source's digest.
    assert_eq!(entry.verification.outcome, Outcome::Pass);
    assert_eq!(entry.digest, None);
    assert_eq!(entry.source_digest, entry.verification.computed);
    assert!(
        entry.verification.computed.is_some(),
        "the tree digest is recorded"
    );

    // The same model again: a cache hit, even with the registry gone.
    drop(registry);
    let again = p.ensure(&reference.parse()?, None)?;
    assert!(again.cached);
    assert_eq!(again.resolved, ensured.resolved);
    Ok(())
}

#[test]
fn an_ollama_model_is_its_gguf_with_template_params_and_license_beside_it() -> TestResult {
    let registry = Registry::start()?;
    let gguf = bytes(2 << 20, 2);
    Artifact::new(DOCKER_MANIFEST)
        .layer("application/vnd.ollama.image.model", &gguf, &[])
        .layer(
            "application/vnd.ollama.image.template",
            b"{{ .Prompt }}",
            &[],
        )
        .layer(
            "application/vnd.ollama.image.params",
            br#"{"stop":["<|end|>"]}"#,
            &[],
        )
        .layer("application/vnd.ollama.image.license", b"Apache-2.0", &[])
        .push(&registry, "library/tinyllama", "1b")?;

    let cache = tempfile::tempdir()?;
    let p = provisioner(
        cache.path(),
        OciConfig {
            ollama_registry: registry.host(),
            ..config()
        },
    )?;
    let ensured = p.ensure(
        &"ollama:TinyLlama:1b".parse()?,
        Some(&Digest::sha256_of(&gguf)),
    )?;
    assert_eq!(ensured.resolved.id, "ollama:library/tinyllama:1b");
    let path = &ensured.resolved.local_path;
    assert_eq!(
        path.file_name().and_then(|n| n.to_str()),
        Some("model.gguf")
    );
    assert_eq!(fs::read(path)?, gguf);
    assert_eq!(ensured.entry.verification.outcome, Outcome::Pass);
    let dir = path.parent().ok_or("no parent")?;
    assert_eq!(
        names_under(dir),
        ["LICENSE", "model.gguf", "params.json", "template.txt"]
    );
    let provenance = ensured.entry.provenance.as_ref().ok_or("no provenance")?;
    assert_eq!(provenance.origin.as_deref(), Some(registry.host().as_str()));
    Ok(())
}

#[test]
fn docker_models_oras_artifacts_and_one_named_file() -> TestResult {
    let registry = Registry::start()?;
    let gguf = bytes(500_000, 3);
    Artifact::new(OCI_MANIFEST)
        .config(
            "application/vnd.docker.ai.model.config.v0.1+json",
            br#"{"config":{"format":"gguf"}}"#,
        )
        .layer("application/vnd.docker.ai.gguf.v3", &gguf, &[])
        .layer("application/vnd.docker.ai.license", b"license text", &[])
        .push(&registry, "ai/smollm2", "latest")?;
    let onnx = bytes(400_000, 4);
    Artifact::new(OCI_MANIFEST)
        .artifact_type("application/vnd.example.model")
        .layer("application/octet-stream", &onnx, &[(TITLE, "model.onnx")])
        .layer("application/json", b"{}", &[(TITLE, "tokenizer.json")])
        .push(&registry, "oras/model", "v2")?;

    let cache = tempfile::tempdir()?;
    let p = provisioner(cache.path(), config())?;
    // No tag means `latest`.
    let docker = p.ensure(
        &format!("oci://{}/ai/smollm2", registry.host()).parse()?,
        None,
    )?;
    assert_eq!(
        docker.resolved.id,
        format!("oci://{}/ai/smollm2:latest", registry.host())
    );
    assert!(docker.resolved.local_path.ends_with("model.gguf"));
    assert_eq!(fs::read(&docker.resolved.local_path)?, gguf);

    let oras = p.ensure(
        &format!("oci://{}/oras/model:v2", registry.host()).parse()?,
        None,
    )?;
    assert_eq!(
        names_under(&oras.resolved.local_path),
        ["model.onnx", "tokenizer.json"]
    );

    // One file of an artifact: only that layer is fetched.
    let one = tempfile::tempdir()?;
    let p = provisioner(one.path(), config())?;
    let file = p.ensure(
        &format!("oci://{}/oras/model:v2/model.onnx", registry.host()).parse()?,
        Some(&Digest::sha256_of(&onnx)),
    )?;
    assert_eq!(fs::read(&file.resolved.local_path)?, onnx);
    assert_eq!(file.entry.verification.outcome, Outcome::Pass);
    assert_eq!(file.bytes_read, onnx.len() as u64);
    let err = p
        .ensure(
            &format!("oci://{}/oras/model:v2/absent.bin", registry.host()).parse()?,
            None,
        )
        .unwrap_err();
    assert!(
        matches!(&err, Error::OciNotFound { what } if what.contains("`model.onnx`")),
        "{err}"
    );
    Ok(())
}

#[test]
fn an_index_gives_this_platforms_manifest_and_a_digest_reference_pins_it() -> TestResult {
    let registry = Registry::start()?;
    let other = Artifact::new(OCI_MANIFEST)
        .layer(
            "application/octet-stream",
            b"not for us",
            &[(TITLE, "m.bin")],
        )
        .push(&registry, "multi/model", "other")?;
    let mine_bytes = bytes(100_000, 5);
    let mine = Artifact::new(OCI_MANIFEST)
        .layer("application/octet-stream", &mine_bytes, &[(TITLE, "m.bin")])
        .push(&registry, "multi/model", "mine")?;
    let index = registry.push_index(
        "multi/model",
        "latest",
        &[
            (
                &other.manifest_digest,
                other.manifest_bytes.len() as u64,
                OCI_MANIFEST,
                Some(("windows", "arm")),
            ),
            (
                &mine.manifest_digest,
                mine.manifest_bytes.len() as u64,
                OCI_MANIFEST,
                Some(test_support::this_platform()),
            ),
        ],
    )?;
    let cache = tempfile::tempdir()?;
    let p = provisioner(cache.path(), config())?;
    let by_tag = p.ensure(
        &format!("oci://{}/multi/model", registry.host()).parse()?,
        None,
    )?;
    assert_eq!(fs::read(&by_tag.resolved.local_path)?, mine_bytes);
    let provenance = by_tag.entry.provenance.as_ref().ok_or("no provenance")?;
    assert_eq!(
        provenance.resolved_revision.as_deref(),
        Some(index.as_str()),
        "the tag resolved to the index"
    );

    let by_digest_ref = format!("oci://{}/multi/model@{index}", registry.host());
    let by_digest = p.ensure(&by_digest_ref.parse()?, None)?;
    assert_eq!(by_digest.resolved.id, by_digest_ref);
    assert_eq!(fs::read(&by_digest.resolved.local_path)?, mine_bytes);
    assert_eq!(by_digest.bytes_read, 0, "the blob was in the store already");
    Ok(())
}

#[test]
fn missing_repositories_and_tags_and_unknown_formats_say_what_is_wrong() -> TestResult {
    let registry = Registry::start()?;
    Artifact::new(OCI_MANIFEST)
        .config("application/vnd.oci.image.config.v1+json", b"{}")
        .layer(
            "application/vnd.oci.image.layer.v1.tar+gzip",
            b"not a model",
            &[],
        )
        .push(&registry, "plain/image", "v1")?;
    let cache = tempfile::tempdir()?;
    let p = provisioner(cache.path(), config())?;
    for missing in ["nobody/here:v1", "plain/image:v9"] {
        let err = p
            .ensure(
                &format!("oci://{}/{missing}", registry.host()).parse()?,
                None,
            )
            .unwrap_err();
        assert!(matches!(err, Error::OciNotFound { .. }), "{missing}: {err}");
        assert!(
            err.to_string()
                .contains(missing.split(':').next().unwrap_or_default()),
            "{err}"
        );
    }
    let err = p
        .ensure(
            &format!("oci://{}/plain/image:v1", registry.host()).parse()?,
            None,
        )
        .unwrap_err();
    assert!(
        matches!(&err, Error::OciUnknownFormat { media_types, .. } if media_types.iter().any(|m| m.contains("tar+gzip"))),
        "{err}"
    );
    assert!(p.catalog().list()?.is_empty());
    Ok(())
}

#[test]
fn basic_auth_takes_the_right_credentials_and_refuses_wrong_ones_without_echoing_them() -> TestResult
{
    let registry = Registry::start_with_htpasswd("alice", "s3cret-pass")?;
    registry.push_blob("private/m", b"x")?;
    Artifact::new(OCI_MANIFEST)
        .layer(
            "application/octet-stream",
            b"private weights",
            &[(TITLE, "w.bin")],
        )
        .push(&registry, "private/m", "v1")?;
    let reference = format!("oci://{}/private/m:v1", registry.host());
    let cache = tempfile::tempdir()?;

    let anonymous = provisioner(cache.path(), config())?;
    let err = anonymous.ensure(&reference.parse()?, None).unwrap_err();
    assert!(matches!(err, Error::OciDenied { status: 401, .. }), "{err}");
    assert!(
        err.hint().is_some_and(|h| h.contains("docker login")),
        "{:?}",
        err.hint()
    );

    let wrong = provisioner(
        cache.path(),
        OciConfig {
            credentials: Credentials::explicit("alice".into(), Secret::new("wrong-pass".into())),
            ..config()
        },
    )?;
    let err = wrong.ensure(&reference.parse()?, None).unwrap_err();
    assert!(matches!(err, Error::OciDenied { .. }), "{err}");
    let text = format!("{err} {err:?} {}", err.hint().unwrap_or_default());
    assert!(!text.contains("wrong-pass"), "{text}");

    let right = provisioner(
        cache.path(),
        OciConfig {
            credentials: Credentials::explicit("alice".into(), Secret::new("s3cret-pass".into())),
            ..config()
        },
    )?;
    let ensured = right.ensure(&reference.parse()?, None)?;
    assert_eq!(fs::read(&ensured.resolved.local_path)?, b"private weights");
    let index = fs::read_to_string(cache.path().join("catalog/index.json"))?;
    assert!(!index.contains("s3cret"), "no credential in the index");
    Ok(())
}

#[test]
fn a_token_refused_in_the_middle_of_a_parallel_pull_is_fetched_again() -> TestResult {
    let registry = Registry::start()?;
    let weights = bytes(4 << 20, 6);
    Artifact::new(OCI_MANIFEST)
        .layer("application/octet-stream", &weights, &[(TITLE, "big.gguf")])
        .push(&registry, "tok/model", "v1")?;
    let front = RegistryFront::start(
        &registry,
        FrontOptions {
            auth: FrontAuth::Bearer {
                credentials: Some(("bob".into(), "hunter2".into())),
                token_uses: Some(6),
                expires_in: 300,
            },
            redirect_blobs: false,
            referrers_api: false,
        },
    )?;
    let cache = tempfile::tempdir()?;
    let p = provisioner(
        cache.path(),
        OciConfig {
            credentials: Credentials::explicit("bob".into(), Secret::new("hunter2".into())),
            ..config()
        },
    )?;
    let ensured = p.ensure(
        &format!("oci://{}/tok/model:v1", front.host()).parse()?,
        Some(&Digest::sha256_of(&weights)),
    )?;
    assert_eq!(fs::read(&ensured.resolved.local_path)?, weights);
    // 4 MiB in 256 KiB ranges is 16 ranged requests: a token good for 6 uses runs out
    // several times, and each time a new one is fetched and the refused range sent again.
    assert!(
        front.tokens_issued() >= 3,
        "{} tokens",
        front.tokens_issued()
    );
    let requests = front.token_requests();
    assert!(
        requests
            .iter()
            .all(|r| r.basic_user.as_deref() == Some("bob")),
        "{requests:?}"
    );
    assert!(
        requests
            .iter()
            .any(|r| r.scope.as_deref() == Some("repository:tok/model:pull")),
        "{requests:?}"
    );
    let log = front.log();
    let refused_ranges = log
        .iter()
        .filter(|r| r.status == 401 && r.range.is_some() && r.path.contains("/blobs/"))
        .count();
    assert!(refused_ranges >= 1, "{log:#?}");
    Ok(())
}

#[test]
fn a_redirect_to_another_host_is_followed_once_and_gets_no_token() -> TestResult {
    let registry = Registry::start()?;
    let weights = bytes(3 << 20, 7);
    Artifact::new(OCI_MANIFEST)
        .layer("application/octet-stream", &weights, &[(TITLE, "w.gguf")])
        .push(&registry, "redir/model", "v1")?;
    let front = RegistryFront::start(
        &registry,
        FrontOptions {
            auth: FrontAuth::Bearer {
                credentials: None,
                token_uses: None,
                expires_in: 300,
            },
            redirect_blobs: true,
            referrers_api: false,
        },
    )?;
    let cache = tempfile::tempdir()?;
    let p = provisioner(cache.path(), config())?;
    let ensured = p.ensure(
        &format!("oci://{}/redir/model:v1", front.host()).parse()?,
        None,
    )?;
    assert_eq!(fs::read(&ensured.resolved.local_path)?, weights);
    let storage = front.storage_log();
    assert!(
        storage.len() >= 4,
        "the ranges went to storage: {storage:#?}"
    );
    assert!(
        storage.iter().all(|r| r.authorization.is_none()),
        "a token went to another host: {storage:#?}"
    );
    let blob_gets = front
        .log()
        .into_iter()
        .filter(|r| r.path.contains("/blobs/") && r.status == 307)
        .count();
    assert_eq!(
        blob_gets,
        1,
        "the redirect was followed once: {:#?}",
        front.log()
    );
    Ok(())
}

#[test]
fn a_tampered_blob_fails_verification_and_publishes_nothing() -> TestResult {
    let registry = Registry::start()?;
    let weights = bytes(600_000, 8);
    let pushed = Artifact::new(OCI_MANIFEST)
        .layer("application/octet-stream", &weights, &[(TITLE, "w.gguf")])
        .push(&registry, "bad/model", "v1")?;
    // Same size, one byte changed, in the registry's own storage.
    let hex = pushed.layer_digests[0].trim_start_matches("sha256:");
    let mut tampered = weights.clone();
    tampered[1234] ^= 0xff;
    fs::write(registry.blob_path(hex), &tampered)?;
    let cache = tempfile::tempdir()?;
    let p = provisioner(cache.path(), config())?;
    let err = p
        .ensure(
            &format!("oci://{}/bad/model:v1", registry.host()).parse()?,
            None,
        )
        .unwrap_err();
    assert!(err.is_verification_failure(), "{err}");
    assert!(p.catalog().list()?.is_empty());
    assert!(test_support::paths_under(&cache.path().join("models")).is_empty());
    Ok(())
}

#[test]
fn a_blob_the_registry_lost_is_not_found_and_named() -> TestResult {
    let registry = Registry::start()?;
    let pushed = Artifact::new(OCI_MANIFEST)
        .layer(
            "application/octet-stream",
            &bytes(300_000, 9),
            &[(TITLE, "w.gguf")],
        )
        .layer("application/octet-stream", b"MIT", &[(TITLE, "LICENSE")])
        .push(&registry, "lost/model", "v1")?;
    let lost = &pushed.layer_digests[0];
    let deleted = registry.request("DELETE", &format!("/v2/lost/model/blobs/{lost}"), &[], b"")?;
    assert_eq!(deleted.status, 202, "the registry deleted the blob");
    let cache = tempfile::tempdir()?;
    let p = provisioner(cache.path(), config())?;
    let err = p
        .ensure(
            &format!("oci://{}/lost/model:v1", registry.host()).parse()?,
            None,
        )
        .unwrap_err();
    assert!(
        matches!(&err, Error::OciNotFound { what } if what.contains(&format!("has no blob `{lost}`"))),
        "{err}"
    );
    assert!(p.catalog().list()?.is_empty());
    assert!(test_support::paths_under(&cache.path().join("models")).is_empty());
    Ok(())
}

#[test]
fn a_hostile_tar_layer_is_refused_and_nothing_is_published() -> TestResult {
    let registry = Registry::start()?;
    let archive = archives::hostile_tar("../escape", b"evil");
    Artifact::new(OCI_MANIFEST)
        .artifact_type(MODELPACK_ARTIFACT)
        .config(MODELPACK_CONFIG, b"{}")
        .layer("application/vnd.cncf.model.weight.v1.tar", &archive, &[])
        .push(&registry, "hostile/model", "v1")?;
    let cache = tempfile::tempdir()?;
    let p = provisioner(cache.path(), config())?;
    let err = p
        .ensure(
            &format!("oci://{}/hostile/model:v1", registry.host()).parse()?,
            None,
        )
        .unwrap_err();
    assert!(matches!(err, Error::UnsafeArchive { .. }), "{err}");
    assert!(p.catalog().list()?.is_empty());
    assert!(!cache.path().join("escape").exists() && !cache.path().join("models/escape").exists());
    assert!(test_support::paths_under(&cache.path().join("models")).is_empty());
    Ok(())
}

#[test]
fn modelpack_tar_layers_compressed_with_zstd_are_unpacked_and_checked() -> TestResult {
    let registry = Registry::start()?;
    let weights = bytes(700_000, 21);
    let tar = archives::tar_of(&[("model.safetensors", &weights), ("config.json", b"{}")]);
    let docs = archives::tar_of(&[("docs/README.md", b"# tiny")]);
    Artifact::new(OCI_MANIFEST)
        .artifact_type(MODELPACK_ARTIFACT)
        .config(MODELPACK_CONFIG, b"{}")
        .layer(
            "application/vnd.cncf.model.weight.v1.tar+zstd",
            &Packing::Zstd.pack(&tar),
            &[],
        )
        .layer(
            "application/vnd.cncf.model.doc.v1.tar+gzip",
            &Packing::Gzip.pack(&docs),
            &[],
        )
        .push(&registry, "zstd/model", "v1")?;
    let cache = tempfile::tempdir()?;
    let p = provisioner(cache.path(), config())?;
    let ensured = p.ensure(
        &format!("oci://{}/zstd/model:v1", registry.host()).parse()?,
        None,
    )?;
    let dir = &ensured.resolved.local_path;
    assert_eq!(
        names_under(dir),
        ["config.json", "docs/README.md", "model.safetensors"]
    );
    assert_eq!(fs::read(dir.join("model.safetensors"))?, weights);
    assert_eq!(ensured.entry.verification.outcome, Outcome::Pass);

    // A hostile entry in a zstd layer is refused like one in a plain tar.
    Artifact::new(OCI_MANIFEST)
        .artifact_type(MODELPACK_ARTIFACT)
        .config(MODELPACK_CONFIG, b"{}")
        .layer(
            "application/vnd.cncf.model.weight.v1.tar+zstd",
            &Packing::Zstd.pack(&archives::hostile_tar("../escape", b"evil")),
            &[],
        )
        .push(&registry, "zstd/hostile", "v1")?;
    let err = p
        .ensure(
            &format!("oci://{}/zstd/hostile:v1", registry.host()).parse()?,
            None,
        )
        .unwrap_err();
    assert!(matches!(err, Error::UnsafeArchive { .. }), "{err}");
    assert_eq!(p.catalog().list()?.len(), 1, "only the first model");
    Ok(())
}

#[test]
fn a_layer_shared_with_another_model_is_not_downloaded_again() -> TestResult {
    let registry = Registry::start()?;
    let shared = bytes(1 << 20, 9);
    Artifact::new(OCI_MANIFEST)
        .layer("application/octet-stream", &shared, &[(TITLE, "base.gguf")])
        .push(&registry, "family/a", "v1")?;
    Artifact::new(OCI_MANIFEST)
        .layer("application/octet-stream", &shared, &[(TITLE, "base.gguf")])
        .layer(
            "application/octet-stream",
            b"adapter",
            &[(TITLE, "lora.gguf")],
        )
        .push(&registry, "family/b", "v1")?;
    let cache = tempfile::tempdir()?;
    let p = provisioner(cache.path(), config())?;
    let a = p.ensure(
        &format!("oci://{}/family/a:v1", registry.host()).parse()?,
        None,
    )?;
    assert_eq!(a.bytes_read, shared.len() as u64);
    let b = p.ensure(
        &format!("oci://{}/family/b:v1", registry.host()).parse()?,
        None,
    )?;
    assert_eq!(b.bytes_read, 7, "only the new layer was downloaded");
    Ok(())
}

#[test]
fn refresh_resolves_a_moved_tag_again_and_the_id_stays() -> TestResult {
    let registry = Registry::start()?;
    let first = Artifact::new(OCI_MANIFEST)
        .layer(
            "application/octet-stream",
            b"first weights",
            &[(TITLE, "m.gguf")],
        )
        .push(&registry, "moving/model", "stable")?;
    let cache = tempfile::tempdir()?;
    let reference = format!("oci://{}/moving/model:stable", registry.host());
    let p = provisioner(cache.path(), config())?;
    let before = p.ensure(&reference.parse()?, None)?;
    let second = Artifact::new(OCI_MANIFEST)
        .layer(
            "application/octet-stream",
            b"second weights",
            &[(TITLE, "m.gguf")],
        )
        .push(&registry, "moving/model", "stable")?;
    assert_ne!(first.manifest_digest, second.manifest_digest);

    // Without `--refresh` the catalog answers: the tag is not asked again.
    let cached = p.ensure(&reference.parse()?, None)?;
    assert!(cached.cached);
    assert_eq!(fs::read(&cached.resolved.local_path)?, b"first weights");

    let refreshed = provisioner(cache.path(), config())?
        .with_refresh(true)
        .ensure(&reference.parse()?, None)?;
    assert_eq!(
        refreshed.resolved.id, before.resolved.id,
        "the id names the tag"
    );
    assert_eq!(fs::read(&refreshed.resolved.local_path)?, b"second weights");
    let provenance = refreshed.entry.provenance.as_ref().ok_or("no provenance")?;
    assert_eq!(
        provenance.resolved_revision.as_deref(),
        Some(second.manifest_digest.as_str())
    );
    Ok(())
}

#[test]
fn offline_answers_from_the_catalog_or_fails_without_a_request() -> TestResult {
    let cache = tempfile::tempdir()?;
    let p = provisioner(
        cache.path(),
        OciConfig {
            offline: true,
            ..config()
        },
    )?;
    // No registry listens on this port: offline must not even try.
    let err = p
        .ensure(&"oci://127.0.0.1:9/none/model:v1".parse()?, None)
        .unwrap_err();
    assert!(matches!(err, Error::Offline { .. }), "{err}");
    Ok(())
}

/// A model registered from `path` in a fresh catalog, as a push starts from.
fn cataloged(
    path: &Path,
) -> Result<(tempfile::TempDir, model_provisioner::Ensured), Box<dyn std::error::Error>> {
    let cache = tempfile::tempdir()?;
    let p = ModelProvisioner::file_only(cache.path())?;
    let ensured = p.ensure(&path.display().to_string().parse()?, None)?;
    Ok((cache, ensured))
}

fn layout_of(cache: &Path) -> Result<catalog_core::CacheLayout, Error> {
    Ok(FsCatalog::open(cache)?.layout().clone())
}

fn oci_ref(text: &str) -> Result<OciRef, Box<dyn std::error::Error>> {
    match text.parse::<ModelRef>()? {
        ModelRef::Oci(o) => Ok(o),
        other => Err(format!("not an `oci://` reference: {other:?}").into()),
    }
}

fn pusher(config: OciConfig) -> OciFetcher {
    OciFetcher::new(config, download())
}

#[test]
fn a_pushed_folder_pulls_back_file_for_file_with_the_same_tree_digest() -> TestResult {
    let registry = Registry::start()?;
    let model = tempfile::tempdir()?;
    let weights = bytes(3 << 20, 21);
    let files: [(&str, &[u8]); 5] = [
        ("model.safetensors", &weights),
        ("config.json", br#"{"architectures":["LlamaForCausalLM"]}"#),
        ("tokenizer.json", br#"{"model":{}}"#),
        ("README.md", b"# pushed"),
        ("extra/merges.txt", b"a b\n"),
    ];
    for (name, data) in files {
        let path = model.path().join(name);
        fs::create_dir_all(path.parent().ok_or("no parent")?)?;
        fs::write(path, data)?;
    }
    let (source_cache, source) = cataloged(model.path())?;
    let layout = layout_of(source_cache.path())?;
    let dest = format!("oci://{}/pushed/folder:v1", registry.host());
    let fetcher = pusher(config());
    let report = fetcher.push(&layout, &source.entry, &oci_ref(&dest)?, &NoReporter)?;
    assert_eq!(report.files, 5);
    assert_eq!(report.blobs_skipped, 0);
    let total: u64 = files.iter().map(|(_, d)| d.len() as u64).sum();
    assert!(report.bytes_uploaded > total, "the files and the config");

    let manifest = registry.get_manifest("pushed/folder", "v1")?;
    assert_eq!(Digest::sha256_of(&manifest.body), report.manifest_digest);
    let json: serde_json::Value = serde_json::from_slice(&manifest.body)?;
    assert_eq!(json["artifactType"], MODELPACK_ARTIFACT);
    assert_eq!(json["config"]["mediaType"], MODELPACK_CONFIG);
    let kinds: Vec<(String, String)> = json["layers"]
        .as_array()
        .ok_or("no layers")?
        .iter()
        .map(|l| {
            (
                l["annotations"][FILEPATH]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                l["mediaType"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    let kind = |name: &str| {
        kinds
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, k)| k.as_str())
    };
    assert_eq!(
        kind("model.safetensors"),
        Some("application/vnd.cncf.model.weight.v1.raw")
    );
    assert_eq!(
        kind("config.json"),
        Some("application/vnd.cncf.model.weight.config.v1.raw")
    );
    assert_eq!(
        kind("extra/merges.txt"),
        Some("application/vnd.cncf.model.weight.config.v1.raw")
    );
    assert_eq!(
        kind("README.md"),
        Some("application/vnd.cncf.model.doc.v1.raw")
    );
    let config_digest = json["config"]["digest"]
        .as_str()
        .ok_or("no config digest")?;
    let pack: serde_json::Value =
        serde_json::from_slice(&registry.get_blob("pushed/folder", config_digest)?)?;
    assert_eq!(pack["config"]["format"], "safetensors");
    assert_eq!(pack["descriptor"]["name"], source.entry.id.as_str());
    assert_eq!(pack["modelfs"]["diffIds"].as_array().map(Vec::len), Some(5));
    assert_eq!(pack["provenance"]["fetcher"], "file");

    let cache = tempfile::tempdir()?;
    let pulled = provisioner(cache.path(), config())?.ensure(&dest.parse()?, None)?;
    let dir = &pulled.resolved.local_path;
    assert!(dir.is_dir());
    assert_eq!(names_under(dir), names_under(model.path()));
    for (name, data) in files {
        assert_eq!(fs::read(dir.join(name))?, data, "{name}");
    }
    let provenance = pulled.entry.provenance.as_ref().ok_or("no provenance")?;
    assert_eq!(
        provenance.resolved_revision.as_deref(),
        Some(report.manifest_digest.to_string().as_str())
    );
    let (pushed_tree, _) =
        catalog_core::verify::hash_path(&source.resolved.local_path, &mut |_| {})?;
    let (pulled_tree, _) = catalog_core::verify::hash_path(dir, &mut |_| {})?;
    assert_eq!(pulled_tree, pushed_tree);
    if let Some(computed) = &source.entry.verification.computed {
        assert_eq!(&pulled_tree, computed);
    }

    // The same model again: the registry has every blob, and the manifest is the same.
    let again = fetcher.push(&layout, &source.entry, &oci_ref(&dest)?, &NoReporter)?;
    assert_eq!(again.blobs_skipped, 6, "five files and the config");
    assert_eq!(again.bytes_uploaded, 0);
    assert_eq!(again.manifest_digest, report.manifest_digest);
    Ok(())
}

#[test]
fn a_pushed_gguf_pulls_back_as_that_gguf() -> TestResult {
    let registry = Registry::start()?;
    let dir = tempfile::tempdir()?;
    let gguf = dir.path().join("tiny.gguf");
    let data = bytes(1 << 20, 22);
    fs::write(&gguf, &data)?;
    let (source_cache, source) = cataloged(&gguf)?;
    let dest = format!("oci://{}/pushed/gguf:q4", registry.host());
    let report = pusher(config()).push(
        &layout_of(source_cache.path())?,
        &source.entry,
        &oci_ref(&dest)?,
        &NoReporter,
    )?;
    assert_eq!(report.files, 1);
    let cache = tempfile::tempdir()?;
    let pulled = provisioner(cache.path(), config())?.ensure(&dest.parse()?, None)?;
    let path = &pulled.resolved.local_path;
    assert!(path.is_file());
    assert_eq!(path.file_name().and_then(|n| n.to_str()), Some("tiny.gguf"));
    assert_eq!(fs::read(path)?, data);
    Ok(())
}

#[test]
fn a_model_pulled_from_a_registry_is_pushed_to_another_repository_there_by_mounting() -> TestResult
{
    let registry = Registry::start()?;
    let dir = tempfile::tempdir()?;
    let gguf = dir.path().join("m.gguf");
    let data = bytes(2 << 20, 26);
    fs::write(&gguf, &data)?;
    let (source_cache, source) = cataloged(&gguf)?;
    let first = format!("oci://{}/team-a/model:v1", registry.host());
    pusher(config()).push(
        &layout_of(source_cache.path())?,
        &source.entry,
        &oci_ref(&first)?,
        &NoReporter,
    )?;
    // Another machine pulls it, then publishes it under another repository of that registry.
    let cache = tempfile::tempdir()?;
    let pulled = provisioner(cache.path(), config())?.ensure(&first.parse()?, None)?;
    let second = format!("oci://{}/team-b/model:v1", registry.host());
    let report = pusher(config()).push(
        &layout_of(cache.path())?,
        &pulled.entry,
        &oci_ref(&second)?,
        &NoReporter,
    )?;
    assert_eq!(report.blobs_skipped, 1, "the file's blob is mounted");
    assert!(
        report.bytes_uploaded < data.len() as u64,
        "{} bytes sent",
        report.bytes_uploaded
    );
    let digest = Digest::sha256_of(&data).to_string();
    assert!(registry.has_blob("team-b/model", &digest)?);
    let log = registry.log_text();
    let hex = digest.trim_start_matches("sha256:");
    let about_b = |l: &&str| l.contains("/v2/team-b/model/blobs/uploads/") && l.contains(hex);
    assert!(
        log.lines()
            .filter(about_b)
            .any(|l| l.contains("POST") && l.contains("mount=")),
        "no mount in the registry's log:\n{log}"
    );
    assert!(
        !log.lines().filter(about_b).any(|l| l.contains("PUT")),
        "the file was sent:\n{log}"
    );
    let again = tempfile::tempdir()?;
    let back = provisioner(again.path(), config())?.ensure(&second.parse()?, None)?;
    assert_eq!(fs::read(&back.resolved.local_path)?, data);
    Ok(())
}

#[test]
fn a_large_file_is_streamed_to_the_registry_and_back() -> TestResult {
    let registry = Registry::start()?;
    let dir = tempfile::tempdir()?;
    let big = dir.path().join("big.safetensors");
    let data = bytes(20 << 20, 23);
    fs::write(&big, &data)?;
    let (source_cache, source) = cataloged(&big)?;
    let dest = format!("oci://{}/pushed/big:v1", registry.host());
    let report = pusher(config()).push(
        &layout_of(source_cache.path())?,
        &source.entry,
        &oci_ref(&dest)?,
        &NoReporter,
    )?;
    assert!(report.bytes_uploaded >= data.len() as u64);
    let digest = Digest::sha256_of(&data);
    assert!(registry.has_blob("pushed/big", &digest.to_string())?);
    let cache = tempfile::tempdir()?;
    let pulled = provisioner(cache.path(), config())?.ensure(&dest.parse()?, None)?;
    // One safetensors file is still a model directory (only a GGUF stands alone).
    let dir = &pulled.resolved.local_path;
    assert_eq!(fs::read(dir.join("big.safetensors"))?, data);
    Ok(())
}

#[test]
fn a_push_to_a_registry_with_htpasswd_needs_the_credentials() -> TestResult {
    let registry = Registry::start_with_htpasswd("bob", "push-pass")?;
    let dir = tempfile::tempdir()?;
    let gguf = dir.path().join("m.gguf");
    fs::write(&gguf, b"private gguf")?;
    let (source_cache, source) = cataloged(&gguf)?;
    let layout = layout_of(source_cache.path())?;
    let dest = oci_ref(&format!("oci://{}/private/pushed:v1", registry.host()))?;

    let err = pusher(config())
        .push(&layout, &source.entry, &dest, &NoReporter)
        .unwrap_err();
    assert!(matches!(err, Error::OciDenied { status: 401, .. }), "{err}");
    assert!(err.hint().is_some_and(|h| h.contains("docker login")));

    let credentials = || Credentials::explicit("bob".into(), Secret::new("push-pass".into()));
    let report = pusher(OciConfig {
        credentials: credentials(),
        ..config()
    })
    .push(&layout, &source.entry, &dest, &NoReporter)?;
    assert_eq!(report.files, 1);
    let cache = tempfile::tempdir()?;
    let pulled = provisioner(
        cache.path(),
        OciConfig {
            credentials: credentials(),
            ..config()
        },
    )?
    .ensure(
        &format!("oci://{}/private/pushed:v1", registry.host()).parse()?,
        None,
    )?;
    assert_eq!(fs::read(&pulled.resolved.local_path)?, b"private gguf");
    Ok(())
}

#[test]
fn a_push_to_a_digest_or_a_file_says_it_needs_a_tag() -> TestResult {
    let dir = tempfile::tempdir()?;
    let gguf = dir.path().join("m.gguf");
    fs::write(&gguf, b"x")?;
    let (source_cache, source) = cataloged(&gguf)?;
    let layout = layout_of(source_cache.path())?;
    let digest = Digest::sha256_of(b"x");
    for dest in [
        format!("oci://127.0.0.1:9/m@{digest}"),
        "oci://127.0.0.1:9/m:v1/m.gguf".to_owned(),
    ] {
        let err = pusher(config())
            .push(&layout, &source.entry, &oci_ref(&dest)?, &NoReporter)
            .unwrap_err();
        assert!(matches!(err, Error::OciPushTarget { .. }), "{dest}: {err}");
        assert!(err.to_string().contains(&dest), "{err}");
    }
    Ok(())
}

#[test]
fn a_file_changed_behind_an_unchanged_fingerprint_is_refused_by_the_registry() -> TestResult {
    let registry = Registry::start()?;
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("m.safetensors");
    let good = bytes(3 << 20, 25);
    fs::write(&path, &good)?;
    let cache = tempfile::tempdir()?;
    let p = ModelProvisioner::file_only(cache.path())?;
    let expected = Digest::sha256_of(&good);
    let entry = p
        .ensure(&path.display().to_string().parse()?, Some(&expected))?
        .entry;
    // A byte changes and the modification time is put back: the fingerprint still holds, so
    // the push does not hash the file itself, and the registry's check is what refuses it.
    let modified = fs::metadata(&path)?.modified()?;
    let mut bad = good;
    bad[1 << 20] ^= 0x01;
    let file = fs::OpenOptions::new().write(true).open(&path)?;
    std::io::Write::write_all(&mut &file, &bad)?;
    file.set_modified(modified)?;
    drop(file);
    assert_eq!(
        catalog_core::verify::fingerprint(&path)?,
        entry.fingerprint.clone().ok_or("a fingerprint")?
    );

    let dest = format!("oci://{}/pushed/rotten:v1", registry.host());
    let err = pusher(config())
        .push(
            &layout_of(cache.path())?,
            &entry,
            &oci_ref(&dest)?,
            &NoReporter,
        )
        .unwrap_err();
    assert!(
        matches!(&err, Error::PushDigestRefused { digest, .. } if *digest == expected),
        "{err}"
    );
    assert!(err.is_verification_failure());
    assert_eq!(registry.get_manifest("pushed/rotten", "v1")?.status, 404);
    assert!(!registry.has_blob("pushed/rotten", &expected.to_string())?);
    Ok(())
}

#[test]
fn a_tampered_file_is_never_pushed_to_a_registry() -> TestResult {
    let registry = Registry::start()?;
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("m.safetensors");
    // Several pieces of a body: the mismatch is only known at the last byte.
    let good = bytes(5 << 20, 24);
    fs::write(&path, &good)?;
    let cache = tempfile::tempdir()?;
    let p = ModelProvisioner::file_only(cache.path())?;
    let expected = Digest::sha256_of(&good);
    let entry = p
        .ensure(&path.display().to_string().parse()?, Some(&expected))?
        .entry;
    let mut bad = good;
    if let Some(last) = bad.last_mut() {
        *last ^= 0x01;
    }
    fs::write(&path, &bad)?;

    let dest = format!("oci://{}/pushed/bad:v1", registry.host());
    let err = pusher(config())
        .push(
            &layout_of(cache.path())?,
            &entry,
            &oci_ref(&dest)?,
            &NoReporter,
        )
        .unwrap_err();
    assert!(err.is_verification_failure(), "{err}");
    assert_eq!(registry.get_manifest("pushed/bad", "v1")?.status, 404);
    assert!(!registry.has_blob("pushed/bad", &expected.to_string())?);
    assert!(!registry.has_blob("pushed/bad", &Digest::sha256_of(&bad).to_string())?);
    Ok(())
}
