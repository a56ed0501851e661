//! `az://` references against Azurite (which checks `SharedKey` signatures and SAS tokens), and
//! the token providers against fakes of Entra ID and the instance metadata service in front of
//! a blob endpoint that records the bearer it is sent.

use std::collections::BTreeMap;
use std::fs;
use std::sync::Arc;

use catalog_core::{CatalogStore, Digest, Outcome};
use model_provisioner::object_store::PartSizes;
use model_provisioner::{AnyFetcher, AzureKind, Error, FsCatalog, ModelProvisioner, SourceFailure};
use test_support::{
    AZURITE_ACCOUNT, AZURITE_KEY, AzureImds, Azurite, EntraToken, FakeBlobs, HoldProxy,
    random_bytes,
};

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// A lookup over `pairs`, and nothing of this process's environment.
fn env(pairs: &[(&str, &str)]) -> AzureKind {
    let pairs: Vec<(String, String)> = pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    AzureKind::with_env(Arc::new(move |name| {
        pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    }))
}

/// The development account's key, and no instance metadata to wait for.
fn with_key(extra: &[(&str, &str)]) -> AzureKind {
    let mut pairs = vec![
        ("AZURE_STORAGE_ACCOUNT", AZURITE_ACCOUNT),
        ("AZURE_STORAGE_KEY", AZURITE_KEY),
    ];
    pairs.extend_from_slice(extra);
    env(&pairs)
}

fn provisioner(
    cache: &std::path::Path,
    kind: AzureKind,
    endpoint: &str,
) -> Result<ModelProvisioner<FsCatalog, AnyFetcher>, Box<dyn std::error::Error>> {
    Ok(ModelProvisioner::builder(cache)
        .source(kind)
        .endpoint_url(Some(endpoint.parse()?))
        .build()?)
}

/// `az+http://127.0.0.1:<port>/devstoreaccount1/<path>`: an id on Azurite.
fn id_on(azurite: &Azurite, path: &str) -> String {
    format!("az+{}/{AZURITE_ACCOUNT}/{path}", azurite.endpoint())
}

fn source_failure(err: &Error) -> Option<SourceFailure> {
    match err {
        Error::Source { failure, .. } => Some(*failure),
        _ => None,
    }
}

#[test]
fn a_blob_and_a_folder_are_placed_signed_with_sharedkey_and_checked_by_their_md5() -> TestResult {
    let azurite = Azurite::start()?;
    let weights = random_bytes(300_000, 71);
    azurite.put("models", "org/tiny/w.gguf", &weights)?;
    let folder = BTreeMap::from([
        ("config.json".to_owned(), b"{\"layers\": 2}".to_vec()),
        ("sub/w.safetensors".to_owned(), random_bytes(70_000, 72)),
    ]);
    for (path, body) in &folder {
        azurite.put("models", &format!("org/repo/{path}"), body)?;
    }
    azurite.put("models", "org/other/x.bin", b"not in the folder")?;
    let cache = tempfile::tempdir()?;
    let p = provisioner(cache.path(), with_key(&[]), &azurite.endpoint())?;

    let blob = p.ensure(
        &p.parse_ref("az://devstoreaccount1/models/org/tiny/w.gguf")?,
        None,
    )?;
    assert_eq!(blob.resolved.id, id_on(&azurite, "models/org/tiny/w.gguf"));
    assert_eq!(fs::read(&blob.resolved.local_path)?, weights);
    // An MD5 catches damage but vouches for nothing: no digest, no pass.
    assert_eq!(blob.entry.verification.outcome, Outcome::Warn);
    assert_eq!(
        blob.entry.verification.computed.as_ref(),
        Some(&Digest::sha256_of(&weights))
    );
    let provenance = blob.entry.provenance.as_ref().expect("provenance");
    assert_eq!(provenance.fetcher, "az");
    assert_eq!(
        provenance.origin.as_deref(),
        Some(azurite.endpoint().as_str())
    );

    let digest = Digest::sha256_of(&weights);
    let again = p.ensure(
        &p.parse_ref(&id_on(&azurite, "models/org/tiny/w.gguf"))?,
        Some(&digest),
    )?;
    assert_eq!(again.resolved.id, blob.resolved.id, "one blob, one id");

    let dir = p.ensure(
        &p.parse_ref("az://devstoreaccount1/models/org/repo/")?,
        None,
    )?;
    test_support::assert_holds(&dir.resolved.local_path, &folder);
    assert!(
        dir.resolved
            .local_path
            .starts_with(cache.path().join("models/az/http")),
        "{}",
        dir.resolved.local_path.display()
    );
    Ok(())
}

#[test]
fn a_blob_whose_bytes_break_its_content_md5_fails_verification_and_publishes_nothing() -> TestResult
{
    let azurite = Azurite::start()?;
    // The MD5 of other bytes.
    azurite.put_with_md5(
        "models",
        "bad.gguf",
        &random_bytes(50_000, 73),
        Some("AAAAAAAAAAAAAAAAAAAAAA=="),
    )?;
    let cache = tempfile::tempdir()?;
    let p = provisioner(cache.path(), with_key(&[]), &azurite.endpoint())?;
    let err = p
        .ensure(&p.parse_ref("az://devstoreaccount1/models/bad.gguf")?, None)
        .unwrap_err();
    assert!(err.is_verification_failure(), "{err:?}");
    assert!(test_support::paths_under(&cache.path().join("models")).is_empty());
    Ok(())
}

#[test]
fn a_sas_in_the_reference_or_the_environment_reads_and_never_reaches_the_id_or_the_index()
-> TestResult {
    let azurite = Azurite::start()?;
    let body = random_bytes(40_000, 74);
    azurite.put("models", "w.gguf", &body)?;
    azurite.put("models", "dir/a.bin", b"a")?;
    let blob_sas = azurite.sas("models", Some("w.gguf"), "r");
    let cache = tempfile::tempdir()?;
    let p = provisioner(cache.path(), env(&[]), &azurite.endpoint())?;
    let reference = format!("az://devstoreaccount1/models/w.gguf?{blob_sas}");
    let got = p.ensure(&p.parse_ref(&reference)?, None)?;
    assert_eq!(got.resolved.id, id_on(&azurite, "models/w.gguf"));
    assert_eq!(fs::read(&got.resolved.local_path)?, body);
    let index = fs::read_to_string(cache.path().join("catalog/index.json"))?;
    let sig = blob_sas.split("sig=").nth(1).expect("a signature");
    assert!(!index.contains(sig) && !index.contains("sig="), "{index}");

    // A container SAS from the environment lists a folder.
    let cache = tempfile::tempdir()?;
    let container_sas = azurite.sas("models", None, "rl");
    let p = provisioner(
        cache.path(),
        env(&[("AZURE_STORAGE_SAS_TOKEN", &container_sas)]),
        &azurite.endpoint(),
    )?;
    let dir = p.ensure(&p.parse_ref("az://devstoreaccount1/models/dir/")?, None)?;
    assert_eq!(fs::read(dir.resolved.local_path.join("a.bin"))?, b"a");

    // A blob's SAS lists nothing: access denied, named, and the SAS nowhere in the message.
    let err = p_with_sas_error(&azurite, &blob_sas)?;
    assert_eq!(source_failure(&err), Some(SourceFailure::Denied), "{err:?}");
    let message = err.to_string();
    assert!(
        message.starts_with("access denied to container `models` of account `devstoreaccount1` at `http://127.0.0.1:"),
        "{message}"
    );
    assert!(
        err.hint().is_some_and(|h| h.contains("`l` for a folder")),
        "{err:?}"
    );
    let shown = format!("{err} {err:?} {}", err.hint().unwrap_or_default());
    assert!(!shown.contains(sig), "{shown}");
    Ok(())
}

fn p_with_sas_error(azurite: &Azurite, sas: &str) -> Result<Error, Box<dyn std::error::Error>> {
    let cache = tempfile::tempdir()?;
    let p = provisioner(cache.path(), env(&[]), &azurite.endpoint())?;
    let reference = format!("az://devstoreaccount1/models/dir/?{sas}");
    Ok(p.ensure(&p.parse_ref(&reference)?, None).unwrap_err())
}

#[test]
fn refusals_say_what_was_refused_and_why() -> TestResult {
    let azurite = Azurite::start()?;
    azurite.put("models", "w.gguf", b"weights")?;
    let cache = tempfile::tempdir()?;
    let imds = format!("http://127.0.0.1:{}", test_support::free_port());

    // A wrong key: the signature is refused, with a hint about the key and the clock.
    let wrong =
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA==";
    let p = provisioner(
        cache.path(),
        env(&[
            ("AZURE_STORAGE_ACCOUNT", AZURITE_ACCOUNT),
            ("AZURE_STORAGE_KEY", wrong),
        ]),
        &azurite.endpoint(),
    )?;
    let err = p
        .ensure(&p.parse_ref("az://devstoreaccount1/models/w.gguf")?, None)
        .unwrap_err();
    assert_eq!(source_failure(&err), Some(SourceFailure::Denied), "{err:?}");
    assert!(err.to_string().contains("refused the signature"), "{err}");
    let hint = err.hint().unwrap_or_default();
    assert!(
        hint.contains("account key") && hint.contains("clock"),
        "{hint}"
    );
    assert!(!format!("{err:?}").contains(wrong));

    // Missing blob and container, named.
    let p = provisioner(cache.path(), with_key(&[]), &azurite.endpoint())?;
    let err = p
        .ensure(
            &p.parse_ref("az://devstoreaccount1/models/nope.gguf")?,
            None,
        )
        .unwrap_err();
    assert_eq!(
        source_failure(&err),
        Some(SourceFailure::NotFound),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .contains("blob `nope.gguf` in container `models`"),
        "{err}"
    );
    let err = p
        .ensure(&p.parse_ref("az://devstoreaccount1/nosuch/dir/")?, None)
        .unwrap_err();
    assert_eq!(
        source_failure(&err),
        Some(SourceFailure::NotFound),
        "{err:?}"
    );
    assert!(err.to_string().contains("container `nosuch`"), "{err}");

    // No credentials anywhere: anonymous, refused, every provider named with why.
    let p = provisioner(
        cache.path(),
        env(&[("AZURE_POD_IDENTITY_AUTHORITY_HOST", &imds)]),
        &azurite.endpoint(),
    )?;
    let err = p
        .ensure(&p.parse_ref("az://devstoreaccount1/models/w.gguf")?, None)
        .unwrap_err();
    assert_eq!(source_failure(&err), Some(SourceFailure::Denied), "{err:?}");
    let shown = err.to_string();
    for provider in [
        "SAS token:",
        "connection string:",
        "account key:",
        "client secret:",
        "workload identity:",
        "managed identity: no answer",
    ] {
        assert!(shown.contains(provider), "{provider}: {shown}");
    }
    assert!(err.hint().unwrap_or_default().contains("--no-sign-request"));

    // A connection string for the account: its key and its endpoint.
    let cache = tempfile::tempdir()?;
    let p = ModelProvisioner::builder(cache.path())
        .source(env(&[(
            "AZURE_STORAGE_CONNECTION_STRING",
            &azurite.connection_string(),
        )]))
        .build()?;
    let got = p.ensure(&p.parse_ref("az://devstoreaccount1/models/w.gguf")?, None)?;
    assert_eq!(got.resolved.id, id_on(&azurite, "models/w.gguf"));
    Ok(())
}

#[test]
fn no_sign_request_reads_a_public_container_and_looks_for_no_credentials() -> TestResult {
    let azurite = Azurite::start()?;
    azurite.create_public_container("open")?;
    azurite.put("open", "w.gguf", b"public weights")?;
    azurite.put("closed", "w.gguf", b"private weights")?;
    let cache = tempfile::tempdir()?;
    let unsigned =
        |kind| -> Result<ModelProvisioner<FsCatalog, AnyFetcher>, Box<dyn std::error::Error>> {
            Ok(ModelProvisioner::builder(cache.path())
                .source(kind)
                .endpoint_url(Some(azurite.endpoint().parse()?))
                .no_sign_request(true)
                .build()?)
        };
    // A wrong key in the environment is never looked at.
    let p = unsigned(env(&[
        ("AZURE_STORAGE_ACCOUNT", AZURITE_ACCOUNT),
        ("AZURE_STORAGE_KEY", "AAAA"),
    ]))?;
    let got = p.ensure(&p.parse_ref("az://devstoreaccount1/open/w.gguf")?, None)?;
    assert_eq!(fs::read(&got.resolved.local_path)?, b"public weights");
    let err = p
        .ensure(&p.parse_ref("az://devstoreaccount1/closed/w.gguf")?, None)
        .unwrap_err();
    assert_eq!(source_failure(&err), Some(SourceFailure::Denied), "{err:?}");
    assert!(
        err.hint().is_some_and(|h| h.contains("not public")),
        "{err:?}"
    );
    assert!(!err.to_string().contains("no Azure credentials"), "{err}");
    Ok(())
}

#[test]
fn hostile_names_in_a_folder_refuse_it_before_anything_is_written() -> TestResult {
    // Azurite normalises such names away, so a listing that states them comes from a fake.
    for hostile in ["evil/../../escape.bin", "evil//abs.bin", "evil/a\\b.bin"] {
        let blobs = FakeBlobs::start(vec![
            ("/acct/models/evil/ok.bin".into(), "fine".into()),
            (format!("/acct/models/{hostile}"), "out".into()),
        ])?;
        let cache = tempfile::tempdir()?;
        let p = provisioner(
            cache.path(),
            env(&[("AZURE_STORAGE_SAS_TOKEN", "sv=1&sig=x")]),
            &blobs.url(),
        )?;
        let err = p
            .ensure(&p.parse_ref("az://acct/models/evil/")?, None)
            .unwrap_err();
        assert!(
            matches!(err, Error::HostileName { .. }),
            "{hostile}: {err:?}"
        );
        assert!(test_support::paths_under(&cache.path().join("models")).is_empty());
        assert!(test_support::leftovers_in_tmp(cache.path()).is_empty());
        assert!(
            blobs
                .log()
                .iter()
                .all(|r| r.method != "HEAD" && r.params.iter().any(|(k, _)| k == "comp")),
            "no blob was asked for"
        );
    }
    Ok(())
}

#[test]
fn a_client_secret_s_token_is_asked_with_its_form_and_sent_as_a_bearer() -> TestResult {
    let entra = EntraToken::start()?;
    let blobs = FakeBlobs::start(vec![("/acct/models/w.gguf".into(), "weights".into())])?;
    let cache = tempfile::tempdir()?;
    let kind = env(&[
        ("AZURE_CLIENT_ID", "app-id"),
        ("AZURE_CLIENT_SECRET", "very-secret"),
        ("AZURE_TENANT_ID", "tenant-1"),
        ("AZURE_AUTHORITY_HOST", &entra.url()),
    ]);
    let p = provisioner(cache.path(), kind, &blobs.url())?;
    let got = p.ensure(&p.parse_ref("az://acct/models/w.gguf")?, None)?;
    assert_eq!(fs::read(&got.resolved.local_path)?, b"weights");
    let asked = entra.log();
    assert_eq!(asked.len(), 1, "{asked:#?}");
    assert_eq!(asked[0].path, "/tenant-1/oauth2/v2.0/token");
    for (field, value) in [
        ("grant_type", "client_credentials"),
        ("client_id", "app-id"),
        ("client_secret", "very-secret"),
        ("scope", "https://storage.azure.com/.default"),
    ] {
        assert_eq!(asked[0].param(field), Some(value), "{field}");
    }
    let sent = blobs.log();
    assert!(!sent.is_empty());
    for r in &sent {
        assert_eq!(
            r.header("authorization"),
            Some("Bearer entra-token-0"),
            "{r:?}"
        );
        assert!(r.header("x-ms-version").is_some(), "{r:?}");
    }
    Ok(())
}

#[test]
fn workload_identity_reads_its_assertion_file_again_for_every_token() -> TestResult {
    let entra = EntraToken::start()?;
    let blobs = FakeBlobs::start(vec![("/acct/models/w.gguf".into(), "weights".into())])?;
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("token");
    fs::write(&file, "jwt-one\n")?;
    // The first download is refused; the platform has rotated the file by then.
    let rotated = file.clone();
    blobs.refuse_next_get(move || fs::write(rotated, "jwt-two").expect("the token file"));
    let kind = env(&[
        ("AZURE_CLIENT_ID", "app-id"),
        ("AZURE_TENANT_ID", "tenant-1"),
        ("AZURE_FEDERATED_TOKEN_FILE", &file.display().to_string()),
        ("AZURE_AUTHORITY_HOST", &entra.url()),
    ]);
    let cache = tempfile::tempdir()?;
    let p = provisioner(cache.path(), kind, &blobs.url())?;
    let got = p.ensure(&p.parse_ref("az://acct/models/w.gguf")?, None)?;
    assert_eq!(fs::read(&got.resolved.local_path)?, b"weights");
    let asked = entra.log();
    let assertions: Vec<Option<&str>> = asked.iter().map(|r| r.param("client_assertion")).collect();
    assert_eq!(assertions, [Some("jwt-one"), Some("jwt-two")], "{asked:#?}");
    assert_eq!(
        asked[0].param("client_assertion_type"),
        Some("urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
    );
    assert_eq!(asked[0].param("client_secret"), None);
    let last = blobs.log().pop().expect("requests");
    assert_eq!(last.header("authorization"), Some("Bearer entra-token-1"));
    Ok(())
}

#[test]
fn a_managed_identity_s_token_comes_from_the_metadata_service() -> TestResult {
    let imds = AzureImds::start()?;
    let blobs = FakeBlobs::start(vec![("/acct/models/w.gguf".into(), "weights".into())])?;
    let cache = tempfile::tempdir()?;
    let kind = env(&[("AZURE_POD_IDENTITY_AUTHORITY_HOST", &imds.url())]);
    let p = provisioner(cache.path(), kind, &blobs.url())?;
    p.ensure(&p.parse_ref("az://acct/models/w.gguf")?, None)?;
    let asked = imds.log();
    assert_eq!(asked.len(), 1, "{asked:#?}");
    assert_eq!(asked[0].header("metadata"), Some("true"));
    assert_eq!(
        asked[0].param("resource"),
        Some("https://storage.azure.com/")
    );
    assert_eq!(asked[0].param("api-version"), Some("2018-02-01"));
    assert!(
        blobs
            .log()
            .iter()
            .all(|r| r.header("authorization") == Some("Bearer imds-token-0"))
    );
    Ok(())
}

#[test]
fn an_azure_https_url_has_the_id_of_its_az_reference() -> TestResult {
    let cache = tempfile::tempdir()?;
    let p = ModelProvisioner::builder(cache.path())
        .source(env(&[]))
        .build()?;
    let r = p.parse_ref("https://acct.blob.core.windows.net/models/w.gguf?sv=1&sig=SECRET")?;
    assert_eq!(r.redacted(), "az://acct/models/w.gguf?…");
    let cli = model_provisioner::parse_ref("https://acct.blob.core.windows.net/models/w.gguf")?;
    assert_eq!(cli.to_string(), "az://acct/models/w.gguf");
    let err = model_provisioner::parse_ref("az://acct").unwrap_err();
    assert!(
        err.hint()
            .is_some_and(|h| h.contains("az://account/container"))
    );
    let _ = CatalogStore::list(p.catalog());
    Ok(())
}

#[test]
fn a_model_pushed_to_a_folder_is_pulled_back_passing_on_its_manifest() -> TestResult {
    let azurite = Azurite::start()?;
    azurite.create_container("fleet")?;
    let models = tempfile::tempdir()?;
    let model = models.path().join("model");
    fs::create_dir_all(model.join("sub"))?;
    fs::write(model.join("config.json"), b"{}")?;
    fs::write(model.join("sub/w.bin"), random_bytes(2 << 20, 73))?;
    let cache = tempfile::tempdir()?;
    let p = provisioner(cache.path(), with_key(&[]), &azurite.endpoint())?;
    let id = p
        .ensure(&p.parse_ref(&model.display().to_string())?, None)?
        .resolved
        .id;
    let pushed = p.push(&id, &p.parse_ref("az://devstoreaccount1/fleet/m/")?)?;
    assert_eq!((pushed.files, pushed.bytes_uploaded), (2, (2 << 20) + 2));

    // Another machine: every blob checked against the manifest's sha256, so the folder passes.
    let node = tempfile::tempdir()?;
    let n = provisioner(node.path(), with_key(&[]), &azurite.endpoint())?;
    let pulled = n.ensure(&n.parse_ref("az://devstoreaccount1/fleet/m/")?, None)?;
    assert_eq!(pulled.entry.verification.outcome, Outcome::Pass);
    let dir = &pulled.resolved.local_path;
    assert_eq!(fs::read(dir.join("sub/w.bin"))?, random_bytes(2 << 20, 73));
    assert!(!dir.join(".model-provisioner.json").exists());

    // A wrong key writes nothing.
    let wrong = provisioner(
        cache.path(),
        env(&[
            ("AZURE_STORAGE_ACCOUNT", AZURITE_ACCOUNT),
            ("AZURE_STORAGE_KEY", "d3Jvbmcga2V5"),
        ]),
        &azurite.endpoint(),
    )?;
    let err = wrong
        .push(&id, &wrong.parse_ref("az://devstoreaccount1/fleet/other/")?)
        .unwrap_err();
    assert_eq!(source_failure(&err), Some(SourceFailure::Denied), "{err:?}");
    Ok(())
}

/// Files from 1 MiB on go up in blocks of 1 MiB, so that a few MiB make several blocks.
const SMALL_BLOCKS: PartSizes = PartSizes {
    from: 1 << 20,
    size: 1 << 20,
};

/// A provisioner that pushes in [`SMALL_BLOCKS`].
fn in_blocks(
    cache: &std::path::Path,
    kind: AzureKind,
    endpoint: &str,
) -> Result<ModelProvisioner<FsCatalog, AnyFetcher>, Box<dyn std::error::Error>> {
    Ok(ModelProvisioner::builder(cache)
        .source(kind)
        .endpoint_url(Some(endpoint.parse()?))
        .upload_parts(Some(SMALL_BLOCKS))
        .build()?)
}

/// A file of `len` bytes at `dir/big.bin`, cataloged by `p` with its digest; its id.
fn cataloged_file(
    p: &ModelProvisioner<FsCatalog, AnyFetcher>,
    dir: &std::path::Path,
    len: usize,
    seed: u64,
) -> Result<(String, Vec<u8>), Box<dyn std::error::Error>> {
    let path = dir.join("big.bin");
    let body = random_bytes(len, seed);
    fs::write(&path, &body)?;
    let id = p
        .ensure(
            &p.parse_ref(&path.display().to_string())?,
            Some(&Digest::sha256_of(&body)),
        )?
        .resolved
        .id;
    Ok((id, body))
}

/// The names of the blocks of `blob` in `fleet` that Get Block List reports as `kind`
/// (`committed`, `uncommitted`), or `None` when Azurite has no such blob.
fn blocks_of(
    azurite: &Azurite,
    blob: &str,
    kind: &str,
) -> Result<Option<usize>, Box<dyn std::error::Error>> {
    let (status, body) = azurite.signed_request(
        "GET",
        &format!("/fleet/{blob}?comp=blocklist&blocklisttype={kind}"),
    )?;
    match status {
        404 => Ok(None),
        200 => Ok(Some(body.matches("<Block>").count())),
        s => Err(format!("Get Block List of {blob}: HTTP {s}: {body}").into()),
    }
}

/// The blob `blob` of `fleet` and the folder's manifest are not there.
fn assert_no_blob(azurite: &Azurite, folder: &str, blob: &str) -> TestResult {
    for name in [blob, ".model-provisioner.json"] {
        let path = format!("/fleet/{folder}{name}");
        let (status, _) = azurite.signed_request("HEAD", &path)?;
        assert_eq!(status, 404, "{path} is there");
    }
    Ok(())
}

#[test]
fn a_large_file_goes_up_in_blocks_committed_by_one_list_and_pulls_back_passing() -> TestResult {
    let azurite = Azurite::start()?;
    azurite.create_container("fleet")?;
    let local = tempfile::tempdir()?;
    let cache = tempfile::tempdir()?;
    let p = in_blocks(cache.path(), with_key(&[]), &azurite.endpoint())?;
    // Five blocks of 1 MiB and a short sixth.
    let (id, body) = cataloged_file(&p, local.path(), (5 << 20) + 1000, 75)?;
    let pushed = p.push(&id, &p.parse_ref("az://devstoreaccount1/fleet/big/")?)?;
    assert_eq!(pushed.bytes_uploaded, (5 << 20) + 1000);
    assert_eq!(blocks_of(&azurite, "big/big.bin", "committed")?, Some(6));
    assert_eq!(blocks_of(&azurite, "big/big.bin", "uncommitted")?, Some(0));

    let node = tempfile::tempdir()?;
    let n = provisioner(node.path(), with_key(&[]), &azurite.endpoint())?;
    let pulled = n.ensure(&n.parse_ref("az://devstoreaccount1/fleet/big/")?, None)?;
    assert_eq!(pulled.entry.verification.outcome, Outcome::Pass);
    assert!(fs::read(pulled.resolved.local_path.join("big.bin"))? == body);
    Ok(())
}

#[test]
fn a_block_that_fails_once_is_sent_again_and_a_sas_commits_the_blob_whole() -> TestResult {
    let azurite = Azurite::start()?;
    azurite.create_container("fleet")?;
    let proxy = HoldProxy::start(&azurite.endpoint())?;
    let local = tempfile::tempdir()?;
    let cache = tempfile::tempdir()?;
    let sas = azurite.sas("fleet", None, "rcwl");
    let p = in_blocks(
        cache.path(),
        env(&[("AZURE_STORAGE_SAS_TOKEN", &sas)]),
        &proxy.url(),
    )?;
    let (id, body) = cataloged_file(&p, local.path(), 4 << 20, 76)?;
    // `comp=block&` is a Put Block, never the Put Block List (`comp=blocklist`).
    proxy.refuse("PUT", "comp=block&", 503, 1);
    p.push(&id, &p.parse_ref("az://devstoreaccount1/fleet/again/")?)?;

    let puts: Vec<u16> = proxy
        .log()
        .iter()
        .filter(|h| h.method == "PUT" && h.path.ends_with("/again/big.bin"))
        .map(|h| h.status)
        .collect();
    // Four blocks, one of them twice, and the list.
    assert_eq!(puts.iter().filter(|s| **s == 503).count(), 1, "{puts:?}");
    assert_eq!(puts.iter().filter(|s| **s == 201).count(), 5, "{puts:?}");
    assert_eq!(blocks_of(&azurite, "again/big.bin", "committed")?, Some(4));
    let node = tempfile::tempdir()?;
    let n = provisioner(node.path(), with_key(&[]), &azurite.endpoint())?;
    let pulled = n.ensure(&n.parse_ref("az://devstoreaccount1/fleet/again/")?, None)?;
    assert_eq!(pulled.entry.verification.outcome, Outcome::Pass);
    assert!(fs::read(pulled.resolved.local_path.join("big.bin"))? == body);
    Ok(())
}

#[test]
fn a_block_that_keeps_failing_commits_no_blob() -> TestResult {
    let azurite = Azurite::start()?;
    azurite.create_container("fleet")?;
    let proxy = HoldProxy::start(&azurite.endpoint())?;
    let local = tempfile::tempdir()?;
    let cache = tempfile::tempdir()?;
    let p = in_blocks(cache.path(), with_key(&[]), &proxy.url())?;
    let (id, _) = cataloged_file(&p, local.path(), 4 << 20, 77)?;
    proxy.refuse("PUT", "comp=block&", 400, usize::MAX);
    let err = p
        .push(&id, &p.parse_ref("az://devstoreaccount1/fleet/bad/")?)
        .unwrap_err();
    assert!(!err.is_verification_failure(), "{err}");
    assert_eq!(
        source_failure(&err),
        Some(SourceFailure::Protocol),
        "{err:?}"
    );
    assert_no_blob(&azurite, "bad/", "big.bin")?;
    assert_eq!(blocks_of(&azurite, "bad/big.bin", "committed")?, None);
    Ok(())
}

#[test]
fn an_entra_id_token_goes_with_every_block_and_the_block_list() -> TestResult {
    let entra = EntraToken::start()?;
    let blobs = FakeBlobs::start(Vec::new())?;
    let kind = env(&[
        ("AZURE_CLIENT_ID", "app-id"),
        ("AZURE_CLIENT_SECRET", "very-secret"),
        ("AZURE_TENANT_ID", "tenant-1"),
        ("AZURE_AUTHORITY_HOST", &entra.url()),
    ]);
    let local = tempfile::tempdir()?;
    let cache = tempfile::tempdir()?;
    let p = in_blocks(cache.path(), kind, &blobs.url())?;
    // Three blocks of 1 MiB and a short fourth.
    let (id, body) = cataloged_file(&p, local.path(), (3 << 20) + 10, 79)?;
    p.push(&id, &p.parse_ref("az://acct/models/big/")?)?;
    assert!(blobs.blob("/acct/models/big/big.bin") == Some(body));
    assert!(
        blobs
            .blob("/acct/models/big/.model-provisioner.json")
            .is_some()
    );

    let sent = blobs.log();
    let puts = |comp: Option<&str>| {
        sent.iter()
            .filter(|r| r.method == "PUT" && r.param("comp") == comp)
            .count()
    };
    assert_eq!(puts(Some("block")), 4, "{sent:#?}");
    assert_eq!(puts(Some("blocklist")), 1, "{sent:#?}");
    // The manifest, in one `Put Blob`.
    assert_eq!(puts(None), 1, "{sent:#?}");
    for r in &sent {
        assert_eq!(
            r.header("authorization"),
            Some("Bearer entra-token-0"),
            "{r:?}"
        );
    }
    assert_eq!(entra.log().len(), 1);
    Ok(())
}

#[test]
fn a_tampered_file_in_blocks_is_never_committed() -> TestResult {
    let azurite = Azurite::start()?;
    azurite.create_container("fleet")?;
    let local = tempfile::tempdir()?;
    let cache = tempfile::tempdir()?;
    let p = in_blocks(cache.path(), with_key(&[]), &azurite.endpoint())?;
    let (id, mut body) = cataloged_file(&p, local.path(), (3 << 20) + 10, 78)?;
    // The last byte: only the whole file's sha256 sees it, after every other block went.
    if let Some(last) = body.last_mut() {
        *last ^= 0x01;
    }
    fs::write(local.path().join("big.bin"), &body)?;
    let err = p
        .push(&id, &p.parse_ref("az://devstoreaccount1/fleet/tampered/")?)
        .unwrap_err();
    assert!(err.is_verification_failure(), "{err}");
    assert_no_blob(&azurite, "tampered/", "big.bin")?;
    assert!(
        matches!(
            blocks_of(&azurite, "tampered/big.bin", "committed")?,
            None | Some(0)
        ),
        "nothing committed"
    );
    Ok(())
}
