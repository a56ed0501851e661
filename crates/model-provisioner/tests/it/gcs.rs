//! `gs://` references against fake-gcs-server ([`FakeGcs`]), and for what it does not do
//! (tokens, held bodies, request logs) a [`HoldProxy`] in front of it and Google's token
//! services ([`GoogleTokens`]). Each provisioner gets an environment of its own, so that the
//! tests run in parallel.

use std::collections::HashMap;
use std::fs;
use std::sync::Arc;

use catalog_core::{Digest, Outcome};
use model_provisioner::object_store::PartSizes;
use model_provisioner::{AnyFetcher, Error, FsCatalog, GcsKind, ModelProvisioner, SourceFailure};
use test_support::{
    FakeGcs, GcsUploads, GoogleTokens, HoldProxy, LyingProxy, METADATA_TOKEN_PATH, ServiceAccount,
    random_bytes,
};

type TestResult = Result<(), Box<dyn std::error::Error>>;

const BUCKET: &str = "models";

/// An environment of `vars` only, with an empty home and no metadata server (a port nothing
/// listens on), unless `vars` names them.
fn env(home: &std::path::Path, vars: &[(&str, String)]) -> model_provisioner::gcs::Env {
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a port")
        .to_string();
    let mut map: HashMap<String, String> = HashMap::from([
        ("HOME".to_owned(), home.to_string_lossy().into_owned()),
        ("GCE_METADATA_HOST".to_owned(), closed),
    ]);
    for (k, v) in vars {
        map.insert((*k).to_owned(), v.clone());
    }
    Arc::new(move |name| map.get(name).cloned())
}

fn provisioner(
    cache: &std::path::Path,
    endpoint: &str,
    env: model_provisioner::gcs::Env,
    unsigned: bool,
) -> Result<ModelProvisioner<FsCatalog, AnyFetcher>, Error> {
    ModelProvisioner::builder(cache)
        .source(GcsKind::with_env(env))
        .endpoint_url(Some(endpoint.parse().expect("a URL")))
        .no_sign_request(unsigned)
        .build()
}

fn with_filters(
    cache: &std::path::Path,
    endpoint: &str,
    include: &[&str],
    exclude: &[&str],
) -> Result<ModelProvisioner<FsCatalog, AnyFetcher>, Error> {
    let home = cache.join("home");
    ModelProvisioner::builder(cache)
        .source(GcsKind::with_env(env(&home, &[])))
        .endpoint_url(Some(endpoint.parse().expect("a URL")))
        .no_sign_request(true)
        .include(include.iter().map(|s| (*s).to_owned()).collect())
        .exclude(exclude.iter().map(|s| (*s).to_owned()).collect())
        .build()
}

#[test]
fn one_object_is_fetched_in_ranges_checked_and_is_warn_without_a_digest_pass_with_one() -> TestResult
{
    let gcs = FakeGcs::start()?;
    let body = random_bytes(3 << 20, 1);
    let meta = gcs.put(BUCKET, "llm/tiny.gguf", &body)?;
    let cache = tempfile::tempdir()?;
    let p = provisioner(cache.path(), &gcs.endpoint(), env(cache.path(), &[]), true)?;

    let ensured = p.ensure(&p.parse_ref("gs://models/llm/tiny.gguf")?, None)?;
    assert_eq!(
        ensured.resolved.id,
        format!("gs+http://{}/models/llm/tiny.gguf", gcs.host())
    );
    assert_eq!(fs::read(&ensured.resolved.local_path)?, body);
    assert!(ensured.resolved.local_path.ends_with("tiny.gguf"));
    assert!(
        ensured.resolved.local_path.starts_with(
            cache
                .path()
                .join("models/gs/http")
                .join(gcs.host())
                .join("models/llm/tiny.gguf")
        ),
        "{}",
        ensured.resolved.local_path.display()
    );
    // No digest: warn, with the sha256 recorded.
    assert_eq!(ensured.entry.verification.outcome, Outcome::Warn);
    assert_eq!(
        ensured.entry.verification.computed,
        Some(Digest::sha256_of(&body))
    );
    let provenance = ensured.entry.provenance.as_ref().expect("provenance");
    assert_eq!(provenance.fetcher, "gcs");
    assert_eq!(
        provenance.resolved_revision.as_deref(),
        meta["generation"].as_str(),
        "the generation read"
    );

    let cache = tempfile::tempdir()?;
    let p = provisioner(cache.path(), &gcs.endpoint(), env(cache.path(), &[]), true)?;
    let digest = Digest::sha256_of(&body);
    let ensured = p.ensure(&p.parse_ref("gs://models/llm/tiny.gguf")?, Some(&digest))?;
    assert_eq!(ensured.entry.verification.outcome, Outcome::Pass);
    let wrong = Digest::sha256_of(b"other");
    let cache = tempfile::tempdir()?;
    let p = provisioner(cache.path(), &gcs.endpoint(), env(cache.path(), &[]), true)?;
    let err = p
        .ensure(&p.parse_ref("gs://models/llm/tiny.gguf")?, Some(&wrong))
        .expect_err("a wrong digest");
    assert!(err.is_verification_failure(), "{err}");
    Ok(())
}

#[test]
fn a_folder_is_listed_page_after_page_filtered_and_placed_under_its_relative_paths() -> TestResult {
    let gcs = FakeGcs::start()?;
    let files = [
        ("repo/config.json", b"{\"a\": 1}".to_vec()),
        ("repo/weights/model-1.safetensors", random_bytes(200_000, 2)),
        ("repo/weights/model-2.safetensors", random_bytes(100_000, 3)),
        ("repo/README.md", b"# readme".to_vec()),
        ("other/x.bin", b"not in the folder".to_vec()),
    ];
    for (name, bytes) in &files {
        gcs.put(BUCKET, name, bytes)?;
    }
    // A zero-byte folder marker is no file.
    gcs.put(BUCKET, "repo/weights/", b"")?;
    let cache = tempfile::tempdir()?;
    let p = with_filters(
        cache.path(),
        &gcs.endpoint(),
        &["*.json", "weights/*"],
        &["*-2.*"],
    )?;
    let ensured = p.ensure(&p.parse_ref("gs://models/repo/")?, None)?;
    let dir = &ensured.resolved.local_path;
    let placed = test_support::files_under(dir)?;
    assert_eq!(
        placed.keys().collect::<Vec<_>>(),
        ["config.json", "weights/model-1.safetensors"]
    );
    assert_eq!(placed["weights/model-1.safetensors"], files[1].1);
    assert_eq!(ensured.entry.verification.outcome, Outcome::Warn);
    Ok(())
}

#[test]
fn a_folder_of_more_than_one_page_is_listed_to_its_end() -> TestResult {
    let gcs = FakeGcs::start()?;
    // Cloud Storage answers at most 1,000 objects a page.
    let count = 1_003;
    for i in 0..count {
        gcs.put(
            BUCKET,
            &format!("many/f-{i:04}.bin"),
            format!("{i}").as_bytes(),
        )?;
    }
    let first = gcs.get("/storage/v1/b/models/o?prefix=many/&maxResults=1000")?;
    let page: serde_json::Value = serde_json::from_slice(&first.body)?;
    assert!(page["nextPageToken"].is_string(), "the server pages");
    let proxy = HoldProxy::start(&gcs.endpoint())?;
    let cache = tempfile::tempdir()?;
    let p = provisioner(cache.path(), &proxy.url(), env(cache.path(), &[]), true)?;
    let ensured = p.ensure(&p.parse_ref("gs://models/many/")?, None)?;
    let placed = test_support::files_under(&ensured.resolved.local_path)?;
    assert_eq!(placed.len(), count);
    assert_eq!(placed["f-1002.bin"], b"1002");
    let pages = proxy
        .log()
        .iter()
        .filter(|h| h.path == "/storage/v1/b/models/o")
        .count();
    assert_eq!(pages, 2);
    Ok(())
}

#[test]
fn hostile_names_in_a_folder_refuse_it_before_anything_is_written() -> TestResult {
    let gcs = FakeGcs::start()?;
    for (folder, hostile) in [("up", "up/../../escape.bin"), ("abs", "abs//etc/passwd")] {
        gcs.put(BUCKET, &format!("{folder}/fine.bin"), b"fine")?;
        gcs.put(BUCKET, hostile, b"hostile")?;
        let cache = tempfile::tempdir()?;
        let p = provisioner(cache.path(), &gcs.endpoint(), env(cache.path(), &[]), true)?;
        let err = p
            .ensure(&p.parse_ref(&format!("gs://models/{folder}/"))?, None)
            .expect_err("a hostile name");
        assert!(matches!(err, Error::HostileName { .. }), "{err}");
        assert!(
            !cache.path().join("models").exists()
                || test_support::files_under(&cache.path().join("models"))?.is_empty(),
            "something was written"
        );
    }
    Ok(())
}

#[test]
fn bytes_damaged_on_their_way_fail_the_crc32c_and_publish_nothing() -> TestResult {
    let gcs = FakeGcs::start()?;
    gcs.put(BUCKET, "bad/model.bin", &random_bytes(300_000, 4))?;
    let liar = LyingProxy::start(&gcs.endpoint(), "/download/");
    let cache = tempfile::tempdir()?;
    let p = provisioner(cache.path(), &liar.endpoint(), env(cache.path(), &[]), true)?;
    let err = p
        .ensure(&p.parse_ref("gs://models/bad/model.bin")?, None)
        .expect_err("a damaged object");
    assert!(
        matches!(&err, Error::ChecksumMismatch { expected, .. } if expected.starts_with("crc32c:")),
        "{err}"
    );
    assert!(err.is_verification_failure());
    assert!(liar.lies() > 0);
    assert!(!cache.path().join("models/gs").exists());
    Ok(())
}

#[test]
fn a_generation_gone_between_the_listing_and_the_bytes_is_named() -> TestResult {
    let gcs = FakeGcs::start()?;
    let meta = gcs.put(BUCKET, "moving/model.bin", b"first bytes")?;
    let proxy = HoldProxy::start(&gcs.endpoint())?;
    // The object is replaced after its metadata was read: the generation asked for is gone,
    // which Cloud Storage answers with a 404.
    proxy.refuse("GET", "alt=media", 404, 1);
    let cache = tempfile::tempdir()?;
    let p = provisioner(cache.path(), &proxy.url(), env(cache.path(), &[]), true)?;
    let err = p
        .ensure(&p.parse_ref("gs://models/moving/model.bin")?, None)
        .expect_err("gone");
    let Error::Source {
        failure: SourceFailure::NotFound,
        message,
        ..
    } = &err
    else {
        return Err(format!("{err:?}").into());
    };
    assert_eq!(
        *message,
        format!(
            "object `moving/model.bin` in bucket `models` at `{}` changed or went away while it was read (generation `{}` is gone)",
            proxy.url(),
            meta["generation"].as_str().ok_or("a generation")?
        )
    );
    assert!(!cache.path().join("models/gs").exists());
    Ok(())
}

#[test]
fn a_missing_object_and_a_missing_bucket_are_named() -> TestResult {
    let gcs = FakeGcs::start()?;
    gcs.put(BUCKET, "here.bin", b"x")?;
    let cache = tempfile::tempdir()?;
    let p = provisioner(cache.path(), &gcs.endpoint(), env(cache.path(), &[]), true)?;
    let message = |reference: &str| -> Result<String, Box<dyn std::error::Error>> {
        match p.ensure(&p.parse_ref(reference)?, None) {
            Err(Error::Source {
                failure: SourceFailure::NotFound,
                message,
                hint: Some(_),
            }) => Ok(message),
            other => Err(format!("{reference}: {other:?}").into()),
        }
    };
    let endpoint = gcs.endpoint();
    assert_eq!(
        message("gs://models/nothere.bin")?,
        format!("no object `nothere.bin` in bucket `models` at `{endpoint}`")
    );
    assert_eq!(
        message("gs://nobucket/x.bin")?,
        format!("no bucket `nobucket` at `{endpoint}`")
    );
    assert_eq!(
        message("gs://nobucket/dir/")?,
        format!("no bucket `nobucket` at `{endpoint}`")
    );
    assert_eq!(
        message("gs://models/empty/")?,
        format!("no object under `empty/` in bucket `models` at `{endpoint}`")
    );
    Ok(())
}

/// The bearer tokens the storage requests in `proxy`'s log carried.
fn bearers(proxy: &HoldProxy) -> Vec<Option<String>> {
    proxy.log().into_iter().map(|h| h.authorization).collect()
}

#[test]
fn a_service_account_key_signs_an_assertion_whose_token_every_request_carries() -> TestResult {
    let gcs = FakeGcs::start()?;
    let body = random_bytes(2 << 20, 5);
    gcs.put(BUCKET, "sa/model.bin", &body)?;
    let proxy = HoldProxy::start(&gcs.endpoint())?;
    let tokens = GoogleTokens::start()?;
    let dir = tempfile::tempdir()?;
    let account = ServiceAccount::make(dir.path(), &tokens.token_uri())?;
    let cache = tempfile::tempdir()?;
    let e = env(
        cache.path(),
        &[(
            "GOOGLE_APPLICATION_CREDENTIALS",
            account.key_file.to_string_lossy().into_owned(),
        )],
    );
    let p = provisioner(cache.path(), &proxy.url(), e, false)?;
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs();
    let ensured = p.ensure(&p.parse_ref("gs://models/sa/model.bin")?, None)?;
    assert_eq!(fs::read(&ensured.resolved.local_path)?, body);

    let log = tokens.log();
    assert_eq!(log.len(), 1, "{log:#?}");
    let request = &log[0];
    assert_eq!(
        (request.method.as_str(), request.path.as_str()),
        ("POST", "/token")
    );
    assert_eq!(
        request.param("grant_type"),
        Some("urn:ietf:params:oauth:grant-type:jwt-bearer")
    );
    let (header, claims) = account.verify(request.param("assertion").ok_or("no assertion")?)?;
    assert_eq!(header["alg"], "RS256");
    assert_eq!(header["kid"], "key-id-1");
    assert_eq!(claims["iss"], account.client_email.as_str());
    assert_eq!(claims["aud"], tokens.token_uri().as_str());
    assert_eq!(
        claims["scope"],
        "https://www.googleapis.com/auth/devstorage.read_only"
    );
    let iat = claims["iat"].as_u64().ok_or("no iat")?;
    assert!(iat >= before && iat <= before + 60, "iat {iat}");
    assert_eq!(claims["exp"].as_u64(), Some(iat + 3600));

    let seen = bearers(&proxy);
    assert!(seen.len() >= 2, "metadata and bytes: {seen:?}");
    assert!(
        seen.iter().all(|a| a.as_deref() == Some("Bearer token-1")),
        "{seen:?}"
    );
    Ok(())
}

#[test]
fn a_token_refused_mid_download_is_replaced_and_the_range_sent_again() -> TestResult {
    let gcs = FakeGcs::start()?;
    let body = random_bytes(4 << 20, 6);
    gcs.put(BUCKET, "expiring/model.bin", &body)?;
    let proxy = HoldProxy::start(&gcs.endpoint())?;
    let tokens = GoogleTokens::start()?;
    let cache = tempfile::tempdir()?;
    let e = env(cache.path(), &[("GCE_METADATA_HOST", tokens.host())]);
    // The token has expired by the time the bytes are asked for: the first byte request is
    // refused, as Cloud Storage refuses an expired token.
    proxy.refuse("GET", "alt=media", 401, 1);
    let p = provisioner(cache.path(), &proxy.url(), e, false)?;
    let ensured = p.ensure(&p.parse_ref("gs://models/expiring/model.bin")?, None)?;
    assert_eq!(fs::read(&ensured.resolved.local_path)?, body);

    assert_eq!(tokens.issued(), ["token-1", "token-2"]);
    let log = tokens.log();
    assert!(
        log.iter().all(|r| r.path == METADATA_TOKEN_PATH
            && r.header("Metadata-Flavor") == Some("Google")),
        "{log:#?}"
    );
    let hits = proxy.log();
    let downloads: Vec<_> = hits
        .iter()
        .filter(|h| h.path.starts_with("/download/"))
        .collect();
    assert_eq!(downloads[0].status, 401);
    assert_eq!(
        downloads[0].authorization.as_deref(),
        Some("Bearer token-1")
    );
    assert!(
        downloads[1..]
            .iter()
            .all(|h| h.status == 206 || h.status == 200)
            && downloads[1..]
                .iter()
                .all(|h| h.authorization.as_deref() == Some("Bearer token-2")),
        "{downloads:#?}"
    );
    Ok(())
}

#[test]
fn a_token_about_to_expire_is_replaced_before_it_is_used() -> TestResult {
    let gcs = FakeGcs::start()?;
    gcs.put(BUCKET, "soon/model.bin", &random_bytes(1 << 20, 7))?;
    let proxy = HoldProxy::start(&gcs.endpoint())?;
    let tokens = GoogleTokens::start()?;
    // The first token has a minute left: less than the margin, so it is never sent.
    tokens.set_expires_in(&[60, 3600]);
    let cache = tempfile::tempdir()?;
    let e = env(cache.path(), &[("GCE_METADATA_HOST", tokens.host())]);
    let p = provisioner(cache.path(), &proxy.url(), e, false)?;
    p.ensure(&p.parse_ref("gs://models/soon/model.bin")?, None)?;
    assert_eq!(tokens.issued(), ["token-1", "token-2"]);
    let seen = bearers(&proxy);
    assert!(
        !seen.is_empty() && seen.iter().all(|a| a.as_deref() == Some("Bearer token-2")),
        "{seen:?}"
    );
    Ok(())
}

#[test]
fn an_authorized_user_in_gclouds_adc_file_exchanges_its_refresh_token() -> TestResult {
    let gcs = FakeGcs::start()?;
    gcs.put(BUCKET, "user/model.bin", b"user bytes")?;
    let proxy = HoldProxy::start(&gcs.endpoint())?;
    let tokens = GoogleTokens::start()?;
    let config = tempfile::tempdir()?;
    fs::write(
        config.path().join("application_default_credentials.json"),
        serde_json::json!({
            "type": "authorized_user",
            "client_id": "client-1.apps.example",
            "client_secret": "client-secret-shh",
            "refresh_token": "refresh-token-shh",
            "token_uri": tokens.token_uri(),
        })
        .to_string(),
    )?;
    let cache = tempfile::tempdir()?;
    let e = env(
        cache.path(),
        &[(
            "CLOUDSDK_CONFIG",
            config.path().to_string_lossy().into_owned(),
        )],
    );
    let p = provisioner(cache.path(), &proxy.url(), e, false)?;
    p.ensure(&p.parse_ref("gs://models/user/model.bin")?, None)?;
    let log = tokens.log();
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].param("grant_type"), Some("refresh_token"));
    assert_eq!(log[0].param("refresh_token"), Some("refresh-token-shh"));
    assert_eq!(log[0].param("client_id"), Some("client-1.apps.example"));
    assert!(
        bearers(&proxy)
            .iter()
            .all(|a| a.as_deref() == Some("Bearer token-1"))
    );

    // A refused refresh token is an error naming the file, and never shows the secrets.
    tokens.refuse(400);
    let cache = tempfile::tempdir()?;
    let e = env(
        cache.path(),
        &[(
            "CLOUDSDK_CONFIG",
            config.path().to_string_lossy().into_owned(),
        )],
    );
    let p = provisioner(cache.path(), &proxy.url(), e, false)?;
    let err = p
        .ensure(&p.parse_ref("gs://models/user/model.bin")?, None)
        .expect_err("refused");
    let text = format!("{err} {err:?} {}", err.hint().unwrap_or_default());
    assert!(
        text.contains("invalid_grant") && text.contains("application_default_credentials.json"),
        "{text}"
    );
    for secret in ["client-secret-shh", "refresh-token-shh"] {
        assert!(!text.contains(secret), "{text}");
    }
    Ok(())
}

#[test]
fn with_no_credentials_anywhere_a_refusal_names_every_provider_and_why() -> TestResult {
    let gcs = FakeGcs::start()?;
    gcs.put(BUCKET, "private/model.bin", b"private")?;
    let proxy = HoldProxy::start(&gcs.endpoint())?;
    // Cloud Storage refuses an anonymous request for a private object.
    proxy.refuse("GET", "/storage/v1/b/models/o/", 401, 10);
    let cache = tempfile::tempdir()?;
    let home = cache.path().join("home");
    let e = env(&home, &[]);
    let metadata = e("GCE_METADATA_HOST").ok_or("a metadata host")?;
    let p = provisioner(cache.path(), &proxy.url(), e, false)?;
    let err = p
        .ensure(&p.parse_ref("gs://models/private/model.bin")?, None)
        .expect_err("refused");
    let Error::Source {
        failure: SourceFailure::Denied,
        message,
        hint: Some(hint),
    } = err
    else {
        return Err(format!("{err:?}").into());
    };
    assert_eq!(
        message,
        format!(
            "`{}` refused anonymous access to object `private/model.bin` in bucket `models` (HTTP 401 Unauthorized), and no Google credentials that work were found: GOOGLE_APPLICATION_CREDENTIALS not set; no gcloud ADC file at `{}`; metadata server not reachable at `http://{metadata}`",
            proxy.url(),
            home.join(".config/gcloud/application_default_credentials.json")
                .display()
        )
    );
    assert!(hint.contains("GOOGLE_APPLICATION_CREDENTIALS"), "{hint}");
    // Every request went without a token.
    assert!(bearers(&proxy).iter().all(Option::is_none));
    Ok(())
}

#[test]
fn a_token_refused_by_the_bucket_names_the_bucket_object_endpoint_and_identity() -> TestResult {
    let gcs = FakeGcs::start()?;
    gcs.put(BUCKET, "denied/model.bin", b"denied")?;
    let proxy = HoldProxy::start(&gcs.endpoint())?;
    proxy.refuse("GET", "/storage/v1/b/models/o/", 403, 10);
    let tokens = GoogleTokens::start()?;
    let cache = tempfile::tempdir()?;
    let e = env(cache.path(), &[("GCE_METADATA_HOST", tokens.host())]);
    let p = provisioner(cache.path(), &proxy.url(), e, false)?;
    let err = p
        .ensure(&p.parse_ref("gs://models/denied/model.bin")?, None)
        .expect_err("refused");
    assert_eq!(
        err.to_string(),
        format!(
            "`{}` refused access to object `denied/model.bin` in bucket `models` (HTTP 403 Forbidden) with the token of the metadata server",
            proxy.url()
        )
    );
    assert!(
        err.hint()
            .is_some_and(|h| h.contains("roles/storage.objectViewer"))
    );
    // Refused once, a new token was tried once.
    assert_eq!(tokens.issued(), ["token-1", "token-2"]);
    Ok(())
}

#[test]
fn a_model_pushed_to_a_folder_is_pulled_back_passing_on_its_manifest() -> TestResult {
    let gcs = FakeGcs::start()?;
    gcs.create_bucket(BUCKET)?;
    let models = tempfile::tempdir()?;
    let model = models.path().join("model");
    fs::create_dir_all(model.join("sub"))?;
    fs::write(model.join("config.json"), b"{}")?;
    fs::write(model.join("sub/w.bin"), random_bytes(2 << 20, 7))?;
    let cache = tempfile::tempdir()?;
    let p = provisioner(cache.path(), &gcs.endpoint(), env(cache.path(), &[]), true)?;
    let id = p
        .ensure(&p.parse_ref(&model.display().to_string())?, None)?
        .resolved
        .id;
    let pushed = p.push(&id, &p.parse_ref("gs://models/pushed/")?)?;
    assert_eq!((pushed.files, pushed.bytes_uploaded), (2, (2 << 20) + 2));

    // Another machine: every file checked against the manifest's sha256, so the folder passes.
    let node = tempfile::tempdir()?;
    let n = provisioner(node.path(), &gcs.endpoint(), env(node.path(), &[]), true)?;
    let pulled = n.ensure(&n.parse_ref("gs://models/pushed/")?, None)?;
    assert_eq!(pulled.entry.verification.outcome, Outcome::Pass);
    let dir = &pulled.resolved.local_path;
    assert_eq!(fs::read(dir.join("sub/w.bin"))?, random_bytes(2 << 20, 7));
    assert!(
        !dir.join(".model-provisioner.json").exists(),
        "the manifest is no model file"
    );

    // A folder whose objects the manifest does not name is refused.
    gcs.put(BUCKET, "pushed/extra.bin", b"planted")?;
    let other = tempfile::tempdir()?;
    let o = provisioner(other.path(), &gcs.endpoint(), env(other.path(), &[]), true)?;
    let err = o
        .ensure(&o.parse_ref("gs://models/pushed/")?, None)
        .unwrap_err();
    assert!(err.to_string().contains("extra.bin"), "{err}");
    Ok(())
}

/// Files from 1 MiB on go up in resumable chunks of 1 MiB, so that a few MiB make several.
const SMALL_CHUNKS: PartSizes = PartSizes {
    from: 1 << 20,
    size: 1 << 20,
};

/// A provisioner that pushes in [`SMALL_CHUNKS`], retrying each request once.
fn in_chunks(
    cache: &std::path::Path,
    endpoint: &str,
    env: model_provisioner::gcs::Env,
    unsigned: bool,
) -> Result<ModelProvisioner<FsCatalog, AnyFetcher>, Error> {
    ModelProvisioner::builder(cache)
        .source(GcsKind::with_env(env))
        .endpoint_url(Some(endpoint.parse().expect("a URL")))
        .no_sign_request(unsigned)
        .upload_parts(Some(SMALL_CHUNKS))
        .retries(1)
        .build()
}

/// A file of `len` bytes at `dir/big.bin`, cataloged by `p` with its digest; its id and bytes.
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

/// The statuses of the `PUT`s to upload sessions (chunks and status queries) in `proxy`'s log.
fn session_puts(proxy: &HoldProxy) -> Vec<u16> {
    proxy
        .log()
        .iter()
        .filter(|h| h.method == "PUT" && h.path.starts_with("/upload/"))
        .map(|h| h.status)
        .collect()
}

/// Neither `folder/big.bin` nor the folder's manifest is in fake-gcs-server's bucket.
fn assert_no_object(gcs: &FakeGcs, folder: &str) -> TestResult {
    for name in ["big.bin", ".model-provisioner.json"] {
        let target = format!("/storage/v1/b/{BUCKET}/o/{folder}%2F{name}");
        assert_eq!(gcs.get(&target)?.status, 404, "{target} is there");
    }
    Ok(())
}

#[test]
fn a_large_file_goes_up_in_chunks_of_one_session_and_pulls_back_passing() -> TestResult {
    let gcs = FakeGcs::start()?;
    gcs.create_bucket(BUCKET)?;
    let proxy = HoldProxy::start(&gcs.endpoint())?;
    let local = tempfile::tempdir()?;
    let cache = tempfile::tempdir()?;
    let p = in_chunks(cache.path(), &proxy.url(), env(cache.path(), &[]), true)?;
    // Five chunks of 1 MiB and a short sixth, the only one that states the total.
    let (id, body) = cataloged_file(&p, local.path(), (5 << 20) + 1000, 8)?;
    let pushed = p.push(&id, &p.parse_ref("gs://models/big/")?)?;
    assert_eq!(pushed.bytes_uploaded, (5 << 20) + 1000);
    assert_eq!(session_puts(&proxy), [308, 308, 308, 308, 308, 200]);

    let node = tempfile::tempdir()?;
    let n = provisioner(node.path(), &gcs.endpoint(), env(node.path(), &[]), true)?;
    let pulled = n.ensure(&n.parse_ref("gs://models/big/")?, None)?;
    assert_eq!(pulled.entry.verification.outcome, Outcome::Pass);
    assert!(fs::read(pulled.resolved.local_path.join("big.bin"))? == body);
    Ok(())
}

/// Against [`GcsUploads`], not fake-gcs-server: asked for a session's status
/// (`Content-Range: bytes */TOTAL`), fake-gcs-server 1.54 completes the object with the bytes
/// it has instead of answering `308` with what it kept, as Cloud Storage does. The second chunk
/// is cut after 512 KiB, as a connection that broke mid-chunk leaves a session: the client asks
/// what the server has and sends the rest of that chunk, from byte 1.5 MiB, not from zero.
#[test]
fn a_chunk_cut_short_goes_on_from_what_the_server_kept() -> TestResult {
    let server = GcsUploads::start()?;
    let local = tempfile::tempdir()?;
    let cache = tempfile::tempdir()?;
    let p = in_chunks(
        cache.path(),
        &server.endpoint(),
        env(cache.path(), &[]),
        true,
    )?;
    let (id, body) = cataloged_file(&p, local.path(), 4 << 20, 9)?;
    server.cut_chunk(2, 512 << 10);
    p.push(&id, &p.parse_ref("gs://models/resumed/")?)?;

    let chunks: Vec<(String, u16)> = server
        .log()
        .into_iter()
        .filter(|r| r.method == "PUT")
        .map(|r| (r.content_range.unwrap_or_default(), r.status))
        .collect();
    let expected = [
        ("bytes 0-1048575/*", 308),
        ("bytes 1048576-2097151/*", 503),
        ("bytes */4194304", 308),
        ("bytes 1572864-2097151/*", 308),
        ("bytes 2097152-3145727/*", 308),
        ("bytes 3145728-4194303/4194304", 200),
    ];
    assert_eq!(
        chunks,
        expected.map(|(r, s)| (r.to_owned(), s)),
        "{chunks:#?}"
    );
    assert!(server.object("resumed/big.bin") == Some(body));
    assert!(server.object("resumed/.model-provisioner.json").is_some());
    Ok(())
}

#[test]
fn a_tampered_file_cancels_its_session_and_leaves_no_object() -> TestResult {
    let gcs = FakeGcs::start()?;
    gcs.create_bucket(BUCKET)?;
    let proxy = HoldProxy::start(&gcs.endpoint())?;
    let local = tempfile::tempdir()?;
    let cache = tempfile::tempdir()?;
    let p = in_chunks(cache.path(), &proxy.url(), env(cache.path(), &[]), true)?;
    let (id, mut body) = cataloged_file(&p, local.path(), (3 << 20) + 10, 10)?;
    // The last byte: only the whole file's sha256 sees it, after every other chunk went.
    if let Some(last) = body.last_mut() {
        *last ^= 0x01;
    }
    fs::write(local.path().join("big.bin"), &body)?;
    let err = p
        .push(&id, &p.parse_ref("gs://models/tampered/")?)
        .unwrap_err();
    assert!(err.is_verification_failure(), "{err}");
    // Three whole chunks went; the last one, which would make the object, never did.
    assert_eq!(session_puts(&proxy), [308, 308, 308]);
    let log = proxy.log();
    assert!(
        log.iter().any(|h| h.method == "DELETE" && h.status == 499),
        "the session was cancelled: {log:#?}"
    );
    assert_no_object(&gcs, "tampered")?;
    Ok(())
}

#[test]
fn a_chunk_that_keeps_failing_cancels_the_session_and_leaves_no_object() -> TestResult {
    let gcs = FakeGcs::start()?;
    gcs.create_bucket(BUCKET)?;
    let proxy = HoldProxy::start(&gcs.endpoint())?;
    let local = tempfile::tempdir()?;
    let cache = tempfile::tempdir()?;
    let p = in_chunks(cache.path(), &proxy.url(), env(cache.path(), &[]), true)?;
    let (id, _) = cataloged_file(&p, local.path(), 3 << 20, 11)?;
    // Every chunk and status query: none reaches the server, which would complete the object
    // when asked its status (see `a_chunk_cut_short_goes_on_from_what_the_server_kept`).
    proxy.refuse("PUT", "upload_id=", 503, usize::MAX);
    let err = p
        .push(&id, &p.parse_ref("gs://models/failing/")?)
        .unwrap_err();
    assert!(!err.is_verification_failure(), "{err}");
    assert!(err.to_string().contains("503"), "{err}");
    let log = proxy.log();
    assert!(
        log.iter().any(|h| h.method == "DELETE" && h.status == 499),
        "the session was cancelled: {log:#?}"
    );
    assert_no_object(&gcs, "failing")?;
    Ok(())
}

#[test]
fn a_token_refused_mid_upload_is_replaced_and_the_chunk_sent_again() -> TestResult {
    let gcs = FakeGcs::start()?;
    gcs.create_bucket(BUCKET)?;
    let proxy = HoldProxy::start(&gcs.endpoint())?;
    let tokens = GoogleTokens::start()?;
    let local = tempfile::tempdir()?;
    let cache = tempfile::tempdir()?;
    let e = env(cache.path(), &[("GCE_METADATA_HOST", tokens.host())]);
    let p = in_chunks(cache.path(), &proxy.url(), e, false)?;
    let (id, body) = cataloged_file(&p, local.path(), 3 << 20, 12)?;
    // The token has expired by the time the first chunk goes, as Cloud Storage refuses it.
    proxy.refuse("PUT", "upload_id=", 401, 1);
    p.push(&id, &p.parse_ref("gs://models/token/")?)?;

    assert_eq!(tokens.issued(), ["token-1", "token-2"]);
    let puts: Vec<(u16, Option<String>)> = proxy
        .log()
        .into_iter()
        .filter(|h| h.method == "PUT" && h.path.starts_with("/upload/"))
        .map(|h| (h.status, h.authorization))
        .collect();
    let bearer = |n: u8| Some(format!("Bearer token-{n}"));
    assert_eq!(puts[0], (401, bearer(1)), "{puts:#?}");
    assert!(
        puts[1..]
            .iter()
            .all(|(s, a)| (*s == 308 || *s == 200) && *a == bearer(2)),
        "{puts:#?}"
    );
    let node = tempfile::tempdir()?;
    let n = provisioner(node.path(), &gcs.endpoint(), env(node.path(), &[]), true)?;
    let pulled = n.ensure(&n.parse_ref("gs://models/token/")?, None)?;
    assert!(fs::read(pulled.resolved.local_path.join("big.bin"))? == body);
    Ok(())
}

#[cfg(feature = "azure")]
#[test]
fn a_folder_mirrored_from_cloud_storage_into_azure_is_ensured_from_there_under_its_id() -> TestResult
{
    use model_provisioner::AzureKind;
    use model_provisioner::mirror::Mirrors;
    use test_support::{AZURITE_ACCOUNT, Azurite};

    let gcs = FakeGcs::start()?;
    gcs.create_bucket("origin-bucket")?;
    gcs.put("origin-bucket", "llm/config.json", b"{}")?;
    gcs.put("origin-bucket", "llm/w.bin", &random_bytes(300_000, 71))?;
    let azurite = Azurite::start()?;
    azurite.create_container("mirror-container")?;
    // Each store's endpoint from its own variables, so that both are reached at once.
    let build = |cache: &std::path::Path, mirrors: Mirrors| {
        let connection = azurite.connection_string();
        ModelProvisioner::builder(cache)
            .source(GcsKind::with_env(env(
                cache,
                &[("STORAGE_EMULATOR_HOST", gcs.endpoint())],
            )))
            .source(AzureKind::with_env(Arc::new(move |name| {
                (name == "AZURE_STORAGE_CONNECTION_STRING").then(|| connection.clone())
            })))
            .mirrors(mirrors)
            .build()
    };
    let seed_cache = tempfile::tempdir()?;
    let seed = build(seed_cache.path(), Mirrors::new())?;
    let id = seed
        .ensure(&seed.parse_ref("gs://origin-bucket/llm/")?, None)?
        .entry
        .id;
    assert_eq!(id, format!("gs+http://{}/origin-bucket/llm/", gcs.host()));
    let prefix = format!("az://{AZURITE_ACCOUNT}/mirror-container/");
    let mirrored = seed.mirror(&id, &prefix)?;
    assert_eq!(
        mirrored.rule,
        format!(
            "gs+http://{}/origin-bucket=az://{AZURITE_ACCOUNT}/mirror-container",
            gcs.host()
        )
    );
    let copy = format!("az://{AZURITE_ACCOUNT}/mirror-container/llm/");
    assert_eq!(mirrored.destinations, std::slice::from_ref(&copy));

    // The origin changes; a node that goes through the mirror gets what was mirrored, verified
    // against the manifest the mirror wrote, under the origin's id.
    gcs.put("origin-bucket", "llm/w.bin", &random_bytes(300_000, 72))?;
    for rule in [
        mirrored.rule.clone(),
        format!("gs+http://{}/origin-bucket/={prefix}", gcs.host()),
    ] {
        let node_cache = tempfile::tempdir()?;
        let node = build(node_cache.path(), Mirrors::from_flags([&rule])?)?;
        let ensured = node.ensure(&node.parse_ref("gs://origin-bucket/llm/")?, None)?;
        assert_eq!(ensured.entry.id, id);
        assert_eq!(
            ensured.entry.verification.outcome,
            Outcome::Pass,
            "{:?}",
            ensured.entry
        );
        assert_eq!(
            fs::read(ensured.resolved.local_path.join("w.bin"))?,
            random_bytes(300_000, 71),
            "{rule}"
        );
        let provenance = ensured.entry.provenance.ok_or("no provenance")?;
        assert_eq!(provenance.fetcher, "mirror+az");
        assert_eq!(provenance.origin.as_deref(), Some(copy.as_str()));
    }
    Ok(())
}
