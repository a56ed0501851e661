//! [`ModelProvisioner::push`] and [`ModelProvisioner::mirror`] through the builder's own
//! registry and bucket clients, against a real registry and a real S3 server on loopback: what
//! is published pulls back verified in another cache, and a model whose bytes changed is never
//! published and is recorded as failing.

use std::collections::HashMap;
use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::sync::Arc;

use catalog_core::{CatalogStore, Outcome};
use model_provisioner::hf::HfConfig;
use model_provisioner::mirror::Mirrors;
use model_provisioner::object_store::PartSizes;
use model_provisioner::oci::OciConfig;
use model_provisioner::{
    AnyFetcher, Error, FsCatalog, ModelProvisioner, ProvisionerBuilder, S3Access,
};
use test_support::{Registry, S3Server, random_bytes as bytes};

type TestResult<T = ()> = Result<T, Box<dyn std::error::Error>>;

/// A provisioner as the builder wires it, nothing read from this machine's environment but
/// `server`'s keys; its endpoint comes from the access settings, as from `--endpoint-url`.
fn provisioner(
    cache: &Path,
    server: &S3Server,
    mirrors: Mirrors,
) -> TestResult<ModelProvisioner<FsCatalog, AnyFetcher>> {
    Ok(builder(cache, server, mirrors)?.build()?)
}

/// The builder [`provisioner`] builds, for a test to set more.
fn builder(cache: &Path, server: &S3Server, mirrors: Mirrors) -> TestResult<ProvisionerBuilder> {
    let env: HashMap<&str, String> = [
        ("AWS_ACCESS_KEY_ID", server.access_key().to_owned()),
        ("AWS_SECRET_ACCESS_KEY", server.secret_key().to_owned()),
        ("AWS_EC2_METADATA_DISABLED", "true".to_owned()),
        ("HOME", "/nonexistent-home-for-tests".to_owned()),
    ]
    .into_iter()
    .collect();
    Ok(ModelProvisioner::builder(cache)
        .download_config(crate::quick_download())
        .hf(None)
        .hf_config(HfConfig::default())
        .oci_config(OciConfig::default())
        .s3_env(Arc::new(move |name| env.get(name).cloned()))
        .s3_access(S3Access {
            endpoint: Some(server.endpoint().parse()?),
            ..S3Access::default()
        })
        .mirrors(mirrors))
}

/// A model folder of two files under `dir`, with its files.
fn model_folder(dir: &Path) -> TestResult<Vec<(String, Vec<u8>)>> {
    let files = vec![
        ("config.json".to_owned(), b"{\"layers\": 2}".to_vec()),
        ("model.safetensors".to_owned(), bytes(600_000, 51)),
    ];
    for (name, body) in &files {
        fs::write(dir.join(name), body)?;
    }
    Ok(files)
}

/// Every file under `dir`, relative, with its bytes, sorted.
fn files_of(dir: &Path) -> TestResult<Vec<(String, Vec<u8>)>> {
    let mut files = test_support::paths_under(dir)
        .into_iter()
        .map(|p| {
            let rel = p.strip_prefix(dir).unwrap_or(&p).display().to_string();
            fs::read(&p).map(|b| (rel, b))
        })
        .collect::<Result<Vec<_>, _>>()?;
    files.sort();
    Ok(files)
}

/// Overwrites the cache's own copy of a file (a read-only store blob) with as many other bytes.
fn tamper(path: &Path) -> TestResult {
    let mut body = fs::read(path)?;
    if let Some(last) = body.last_mut() {
        *last ^= 0x01;
    }
    fs::set_permissions(path, fs::Permissions::from_mode(0o644))?;
    fs::write(path, &body)?;
    fs::set_permissions(path, fs::Permissions::from_mode(0o444))?;
    Ok(())
}

#[test]
fn a_model_pushed_and_mirrored_through_the_provisioner_pulls_back_verified() -> TestResult {
    let registry = Registry::start()?;
    let server = S3Server::start()?;
    server.create_bucket("fleet")?;
    let model = tempfile::tempdir()?;
    let files = model_folder(model.path())?;
    let seed_cache = tempfile::tempdir()?;
    let seed = provisioner(seed_cache.path(), &server, Mirrors::new())?;
    let id = seed
        .ensure(&model.path().display().to_string().parse()?, None)?
        .entry
        .id;

    // To a registry's tag and to a bucket's folder.
    let tag = format!("oci://{}/fleet/model:v1", registry.host());
    let pushed = seed.push(&id, &tag.parse()?)?;
    assert_eq!(
        (pushed.id.as_str(), pushed.destination.as_str()),
        (id.as_str(), tag.as_str())
    );
    assert_eq!(pushed.files, 2);
    assert!(pushed.manifest_digest.is_some() && pushed.manifest_key.is_none());
    assert_eq!(pushed.blobs_skipped, Some(0));
    let pushed = seed.push(&id, &"s3://fleet/models/m/".parse()?)?;
    assert_eq!(
        pushed.manifest_key.as_deref(),
        Some("models/m/.model-provisioner.json")
    );
    assert_eq!((pushed.files, pushed.manifest_digest), (2, None));

    // Another cache pulls both back, verified against the digests the push stated.
    let node_cache = tempfile::tempdir()?;
    let node = provisioner(node_cache.path(), &server, Mirrors::new())?;
    let from_registry = node.ensure(&tag.parse()?, None)?;
    assert_eq!(from_registry.entry.verification.outcome, Outcome::Pass);
    assert_eq!(files_of(&from_registry.resolved.local_path)?, files);
    let from_bucket = node.ensure(&"s3://fleet/models/m/".parse()?, None)?;
    assert_eq!(from_bucket.entry.verification.outcome, Outcome::Pass);
    assert_eq!(files_of(&from_bucket.resolved.local_path)?, files);

    // The node mirrors what it pulled: the rule and the place follow from the model's source.
    let prefix = format!("oci://{}/mirror", registry.host());
    let mirrored = node.mirror(&tag, &format!(" {prefix} "))?;
    assert_eq!(mirrored.mirror, prefix);
    assert_eq!(mirrored.rule, format!("oci://{}={prefix}", registry.host()));
    let copy = format!("{prefix}/fleet/model:v1");
    assert_eq!(mirrored.destinations, std::slice::from_ref(&copy));
    // The files are mounted from the repository the node pulled them from: only the config,
    // which names the model's new provenance, is sent.
    assert_eq!(mirrored.files, 2);
    assert!(mirrored.bytes_uploaded < 10_000, "{mirrored:?}");
    let mirrored = node.mirror(&from_bucket.entry.id, "s3://fleet/mirror")?;
    assert_eq!(
        mirrored.rule,
        format!("s3+{}/fleet=s3://fleet/mirror", server.endpoint())
    );
    assert_eq!(mirrored.destinations, ["s3://fleet/mirror/models/m/"]);
    assert!(
        server
            .object_path("fleet", "mirror/models/m/.model-provisioner.json")
            .is_file()
    );

    // A third cache, given the rule `mirror` printed, finds the model there under its id.
    let rule = format!("oci://{}={prefix}", registry.host());
    let far_cache = tempfile::tempdir()?;
    let far = provisioner(far_cache.path(), &server, Mirrors::from_flags([&rule])?)?;
    let through = far.ensure(&tag.parse()?, None)?;
    assert_eq!(through.entry.id, tag);
    assert_eq!(through.entry.verification.outcome, Outcome::Pass);
    let origin = through.entry.provenance.and_then(|p| p.origin);
    assert_eq!(origin.as_deref(), Some(copy.as_str()));

    // What no push can take, or no rule maps, is refused before anything is sent.
    let err = seed
        .push(&id, &"https://example.invalid/m/".parse()?)
        .unwrap_err();
    assert!(matches!(err, Error::PushScheme { .. }), "{err}");
    let err = seed.mirror(&id, &prefix).unwrap_err();
    assert!(matches!(err, Error::MirrorSource { .. }), "{err}");
    assert!(err.hint().is_some());
    let err = node.mirror(&tag, "s3://fleet/other").unwrap_err();
    assert!(matches!(err, Error::MirrorPrefix(_)), "{err}");
    Ok(())
}

#[test]
fn a_model_whose_bytes_changed_is_never_pushed_and_is_recorded_as_failing() -> TestResult {
    let (origin, other) = (Registry::start()?, Registry::start()?);
    let server = S3Server::start()?;
    server.create_bucket("fleet")?;
    let model = tempfile::tempdir()?;
    model_folder(model.path())?;
    let cache = tempfile::tempdir()?;
    let p = provisioner(cache.path(), &server, Mirrors::new())?;
    let tag = format!("oci://{}/fleet/model:v1", origin.host());
    let local = p.ensure(&model.path().display().to_string().parse()?, None)?;
    p.push(&local.entry.id, &tag.parse()?)?;

    // A model pulled into the cache, then changed there. (A registry that has its blobs
    // already is sent none, nor are they read: it holds the bytes the digests name.)
    let pulled = p.ensure(&tag.parse()?, None)?;
    tamper(&pulled.resolved.local_path.join("model.safetensors"))?;

    let err = p
        .push(
            &tag,
            &format!("oci://{}/fleet/model:v1", other.host()).parse()?,
        )
        .unwrap_err();
    assert!(err.is_verification_failure(), "{err}");
    assert_eq!(other.get_manifest("fleet/model", "v1")?.status, 404);
    let recorded = p.catalog().get(&tag)?.ok_or("no entry")?;
    assert_eq!(recorded.verification.outcome, Outcome::Fail);

    let err = p.push(&tag, &"s3://fleet/changed/".parse()?).unwrap_err();
    assert!(err.is_verification_failure(), "{err}");
    // The changed file is never completed as an object, and the folder gets no manifest, so
    // it is no model: a file that matched may be there, unannounced.
    for key in [
        "changed/model.safetensors",
        "changed/.model-provisioner.json",
    ] {
        assert!(!server.object_path("fleet", key).exists(), "{key}");
    }

    // Mirrored: the same refusal, wherever the rule maps it.
    let err = p
        .mirror(&tag, &format!("oci://{}/mirror", other.host()))
        .unwrap_err();
    assert!(err.is_verification_failure(), "{err}");
    assert_eq!(other.get_manifest("mirror/fleet/model", "v1")?.status, 404);
    let recorded = p.catalog().get(&tag)?.ok_or("no entry")?;
    assert_eq!(recorded.verification.outcome, Outcome::Fail);
    Ok(())
}

#[test]
fn the_builders_part_sizes_cut_an_s3_push_as_they_cut_the_other_buckets() -> TestResult {
    let server = S3Server::start()?;
    server.create_bucket("fleet")?;
    let cache = tempfile::tempdir()?;
    // Parts of 1 MiB asked from 1 MiB on: S3's parts are never below 5 MiB, so a file of
    // 10 MiB and a little goes up in three, where the store's own sizes send it whole.
    let p = builder(cache.path(), &server, Mirrors::new())?
        .upload_parts(Some(PartSizes {
            from: 1 << 20,
            size: 1 << 20,
        }))
        .build()?;
    let model = tempfile::tempdir()?;
    let path = model.path().join("big.gguf");
    let body = bytes((10 << 20) + 1000, 52);
    fs::write(&path, &body)?;
    let id = p
        .ensure(&path.display().to_string().parse()?, None)?
        .entry
        .id;

    let pushed = p.push(&id, &"s3://fleet/big/".parse()?)?;
    assert_eq!(pushed.bytes_uploaded, (10 << 20) + 1000);
    // The `ETag` of an object completed from three parts ends in `-3`.
    let sidecar = fs::read_to_string(server.internal_info_path("fleet", "big/big.gguf"))?;
    assert!(sidecar.contains("-3\""), "{sidecar}");
    let node_cache = tempfile::tempdir()?;
    let node = provisioner(node_cache.path(), &server, Mirrors::new())?;
    let pulled = node.ensure(&"s3://fleet/big/".parse()?, None)?;
    assert_eq!(pulled.entry.verification.outcome, Outcome::Pass);
    assert!(fs::read(pulled.resolved.local_path.join("big.gguf"))? == body);
    Ok(())
}
