//! Mirrors end to end: a model pushed once with `mirror`, then ensured by other caches through
//! the mirror (a registry, a bucket of S3, Cloud Storage or Azure, a pull-through registry),
//! the origin's log showing that it was left alone; and the ways a mirror is passed over or
//! refused.

use std::fmt::Write as _;
use std::net::TcpListener;
use std::path::Path;
use std::process::Output;
use std::time::Duration;

use std::collections::BTreeMap;

use test_support::{
    AZURITE_ACCOUNT, Artifact, Azurite, FakeGcs, HfRepoBuilder, HubNginx, HubRequest,
    ModelScopeNginx, OCI_MANIFEST, Registry, S3Server, TINY_LLAMA, assert_holds, free_port,
    random_bytes,
};

use crate::fixture::{
    Fixture, TestResult, assert_code, assert_failure, run_within, stderr, str_field,
};

/// Each shard of the fixture repository: small, so that a debug build is quick.
const SHARD: usize = 96 << 10;

/// How long one run may take on a busy machine.
const LIMIT: Duration = Duration::from_secs(60);

/// The reference every test ensures.
fn reference() -> String {
    format!("hf:{TINY_LLAMA}")
}

/// The Hub fixture, and a cache whose catalog holds its repository, fetched from it.
fn seeded() -> TestResult<(HubNginx, Fixture)> {
    let fixture = HfRepoBuilder::tiny_llama_sized(SHARD);
    let hub = HubNginx::start_with_files(&[(TINY_LLAMA, fixture.files())]);
    let seed = Fixture::new()?;
    let out = run(&hub, &seed, &["ensure", &reference(), "--json"], &[]);
    assert_code(&out, 0);
    Ok((hub, seed))
}

/// Runs the binary in `fx` against the Hub fixture, with `env` on top.
fn run(hub: &HubNginx, fx: &Fixture, args: &[&str], env: &[(&str, String)]) -> Output {
    let mut with_hub = vec![
        ("HF_ENDPOINT", hub.endpoint()),
        ("HF_HOME", fx.path("hf-home").display().to_string()),
    ];
    with_hub.extend(env.iter().cloned());
    run_env(fx, args, &with_hub)
}

/// Runs the binary in `fx` with `env`.
fn run_env(fx: &Fixture, args: &[&str], env: &[(&str, String)]) -> Output {
    let mut cmd = fx.command(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    run_within(&mut cmd, LIMIT)
}

/// The Hub fixture's log, one line a request, for assertion messages.
fn describe(log: &[HubRequest]) -> String {
    log.iter().fold(String::new(), |mut s, r| {
        let _ = writeln!(s, "{} {}{} {}", r.method, r.host, r.uri, r.status);
        s
    })
}

/// The requests that downloaded a file (from the Hub or its blob host).
fn downloads(hub: &HubNginx) -> Vec<HubRequest> {
    hub.requests()
        .into_iter()
        .filter(|r| r.method == "GET" && (r.uri.contains("/resolve/") || r.uri.contains("/lfs/")))
        .collect()
}

/// Asserts that `node` holds the repository, under the Hub's id, as the Hub serves it, with
/// provenance naming a mirror that starts with `mirror` and the Hub's commit and sha256s.
fn assert_from_mirror(
    hub: &HubNginx,
    node: &Fixture,
    ensured: &Output,
    mirror: &str,
) -> TestResult {
    assert_code(ensured, 0);
    let json: serde_json::Value = serde_json::from_slice(&ensured.stdout)?;
    assert_eq!(str_field(&json, "id"), reference());
    let repo = hub.repo(TINY_LLAMA);
    assert_holds(Path::new(str_field(&json, "local_path")), &repo.contents());
    let entry = node.entry(&reference())?;
    let provenance = &entry["provenance"];
    let origin = provenance["origin"].as_str().unwrap_or_default();
    assert!(origin.starts_with(mirror), "{entry:#}");
    assert!(
        provenance["fetcher"]
            .as_str()
            .is_some_and(|f| f.starts_with("mirror+")),
        "{entry:#}"
    );
    assert_eq!(provenance["resolved_revision"], repo.commit());
    for file in repo.files() {
        let recorded = provenance["files"]
            .as_array()
            .ok_or("no files in provenance")?
            .iter()
            .find(|f| f["path"] == file.path.as_str())
            .ok_or_else(|| format!("{} not recorded: {entry:#}", file.path))?;
        assert_eq!(recorded["digest"], format!("sha256:{}", file.sha256));
    }
    Ok(())
}

/// The environment for the S3 server.
fn aws(server: &S3Server) -> Vec<(&'static str, String)> {
    vec![
        ("AWS_ACCESS_KEY_ID", server.access_key().to_owned()),
        ("AWS_SECRET_ACCESS_KEY", server.secret_key().to_owned()),
        ("AWS_ENDPOINT_URL", server.endpoint()),
    ]
}

/// The environment for fake-gcs-server, with no metadata server to wait on.
fn gcs_env(gcs: &FakeGcs) -> Vec<(&'static str, String)> {
    vec![
        ("STORAGE_EMULATOR_HOST", gcs.endpoint()),
        ("GCE_METADATA_HOST", format!("127.0.0.1:{}", free_port())),
    ]
}

/// The environment for Azurite: its endpoint and the development account's key.
fn azure_env(azurite: &Azurite) -> Vec<(&'static str, String)> {
    vec![(
        "AZURE_STORAGE_CONNECTION_STRING",
        azurite.connection_string(),
    )]
}

/// Mirrors the seed's model under `prefix`, and checks what `mirror` says it wrote: the
/// commit's folder, then the revision's ref object.
fn mirror_to_bucket(
    hub: &HubNginx,
    seed: &Fixture,
    prefix: &str,
    env: &[(&str, String)],
) -> TestResult {
    let out = run(hub, seed, &["mirror", &reference(), prefix, "--json"], env);
    assert_code(&out, 0);
    let pushed: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    assert_eq!(str_field(&pushed, "rule"), format!("hf:={prefix}"));
    let commit = hub.repo(TINY_LLAMA).commit().to_owned();
    let destinations = pushed["destinations"].to_string();
    assert!(
        destinations.contains(&format!("/fleet/hf/test-org/tiny-llama/{commit}/"))
            && destinations.contains("/fleet/hf/test-org/tiny-llama/refs/main"),
        "{pushed:#}"
    );
    Ok(())
}

#[test]
fn an_hf_model_mirrored_in_cloud_storage_is_pulled_from_there_and_an_empty_one_passed_over()
-> TestResult {
    let (hub, seed) = seeded()?;
    let gcs = FakeGcs::start()?;
    gcs.create_bucket("fleet")?;
    let env = gcs_env(&gcs);
    let rule = "hf:=gs://fleet/hf";

    // Before the mirror holds it, the node passes it over for the Hub.
    hub.clear_log();
    let early = Fixture::new()?;
    let out = run(
        &hub,
        &early,
        &["ensure", &reference(), "--mirror", rule, "--json", "-v"],
        &env,
    );
    assert_code(&out, 0);
    assert!(
        stderr(&out).contains("does not have it"),
        "{}",
        stderr(&out)
    );
    assert!(!downloads(&hub).is_empty(), "the origin was not asked");
    assert_eq!(
        early.entry(&reference())?["provenance"]["fetcher"],
        "hf-native"
    );

    mirror_to_bucket(&hub, &seed, "gs://fleet/hf", &env)?;
    hub.clear_log();
    let node = Fixture::new()?;
    let out = run(
        &hub,
        &node,
        &["ensure", &reference(), "--mirror", rule, "--json"],
        &env,
    );
    assert_from_mirror(
        &hub,
        &node,
        &out,
        &format!("gs+http://{}/fleet/hf/test-org/tiny-llama/", gcs.host()),
    )?;
    let log = hub.requests();
    assert!(
        log.is_empty(),
        "the node asked the Hub:\n{}",
        describe(&log)
    );
    Ok(())
}

#[test]
fn an_hf_model_mirrored_in_azure_is_pulled_from_there_and_a_tampered_blob_is_exit_3() -> TestResult
{
    let (hub, seed) = seeded()?;
    let azurite = Azurite::start()?;
    azurite.create_container("fleet")?;
    let env = azure_env(&azurite);
    let prefix = format!("az://{AZURITE_ACCOUNT}/fleet/hf");
    mirror_to_bucket(&hub, &seed, &prefix, &env)?;
    let rule = format!("hf:={prefix}");

    hub.clear_log();
    let node = Fixture::new()?;
    let out = run(
        &hub,
        &node,
        &["ensure", &reference(), "--mirror", &rule, "--json"],
        &env,
    );
    assert_from_mirror(
        &hub,
        &node,
        &out,
        &format!(
            "az+{}/{AZURITE_ACCOUNT}/fleet/hf/test-org/tiny-llama/",
            azurite.endpoint()
        ),
    )?;
    assert!(hub.requests().is_empty(), "the node asked the Hub");

    // One shard replaced by other bytes: the mirror lies, so the ensure fails and the Hub is
    // not asked.
    let repo = hub.repo(TINY_LLAMA);
    let shard = repo
        .files()
        .iter()
        .find(|f| f.lfs)
        .ok_or("no LFS file")?
        .clone();
    let mut bytes = repo
        .contents()
        .get(shard.path.as_str())
        .cloned()
        .ok_or("no shard bytes")?;
    bytes[7] ^= 0x01;
    azurite.put(
        "fleet",
        &format!("hf/test-org/tiny-llama/{}/{}", repo.commit(), shard.path),
        &bytes,
    )?;
    hub.clear_log();
    let other = Fixture::new()?;
    let out = run(
        &hub,
        &other,
        &["ensure", &reference(), "--mirror", &rule],
        &env,
    );
    assert_failure(&out, 3, &["digest mismatch"]);
    assert!(hub.requests().is_empty(), "the origin was asked");
    assert!(
        !other.cache().join("models/hf").exists(),
        "something was published"
    );
    assert!(
        other
            .index_bytes()
            .is_none_or(|i| !String::from_utf8_lossy(&i).contains(TINY_LLAMA)),
        "an entry was recorded"
    );
    Ok(())
}

#[test]
fn a_bucket_model_is_mirrored_by_path_from_s3_into_cloud_storage() -> TestResult {
    let s3 = S3Server::start()?;
    s3.create_bucket("origin")?;
    let files = [
        ("llm/config.json", b"{\"arch\": \"tiny\"}".to_vec()),
        ("llm/w.gguf", random_bytes(150_000, 61)),
    ];
    for (key, body) in &files {
        s3.put("origin", key, body)?;
    }
    let gcs = FakeGcs::start()?;
    gcs.create_bucket("fleet")?;
    let mut env = aws(&s3);
    env.extend(gcs_env(&gcs));
    let seed = Fixture::new()?;
    let out = run_env(&seed, &["ensure", "s3://origin/llm/", "--json"], &env);
    assert_code(&out, 0);
    let id = str_field(&serde_json::from_slice(&out.stdout)?, "id").to_owned();

    let out = run_env(&seed, &["mirror", &id, "gs://fleet/copy", "--json"], &env);
    assert_code(&out, 0);
    let pushed: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let rule = str_field(&pushed, "rule").to_owned();
    assert_eq!(rule, format!("s3+{}/origin=gs://fleet/copy", s3.endpoint()));

    // The origin's objects are gone: only the mirror can serve them now.
    for (key, _) in &files {
        std::fs::remove_file(s3.object_path("origin", key))?;
    }
    let node = Fixture::new()?;
    let out = run_env(
        &node,
        &["ensure", "s3://origin/llm/", "--mirror", &rule, "--json"],
        &env,
    );
    assert_code(&out, 0);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    assert_eq!(str_field(&json, "id"), id);
    assert_eq!(str_field(&json, "verification"), "pass", "{json:#}");
    let expected: BTreeMap<String, Vec<u8>> = files
        .iter()
        .map(|(k, v)| (k.trim_start_matches("llm/").to_owned(), v.clone()))
        .collect();
    assert_holds(Path::new(str_field(&json, "local_path")), &expected);
    let entry = node.entry(&id)?;
    assert_eq!(
        entry["provenance"]["origin"], "gs://fleet/copy/llm/",
        "{entry:#}"
    );
    assert_eq!(entry["provenance"]["fetcher"], "mirror+gcs", "{entry:#}");
    Ok(())
}

#[test]
fn a_modelscope_model_mirrored_in_a_bucket_passes_and_modelscope_serves_no_file() -> TestResult {
    let files = BTreeMap::from([
        ("config.json".to_owned(), b"{\"arch\": \"tiny\"}".to_vec()),
        ("sub/w.gguf".to_owned(), random_bytes(200_000, 52)),
    ]);
    let ms = ModelScopeNginx::start_one("org/tiny", &files, false);
    let s3 = S3Server::start()?;
    s3.create_bucket("fleet")?;
    let mut env = aws(&s3);
    env.push(("MODELSCOPE_DOMAIN", ms.endpoint()));
    let seed = Fixture::new()?;
    let out = run_env(&seed, &["ensure", "modelscope:org/tiny", "--json"], &env);
    assert_code(&out, 0);
    let out = run_env(
        &seed,
        &["mirror", "modelscope:org/tiny", "s3://fleet/ms", "--json"],
        &env,
    );
    assert_code(&out, 0);
    let pushed: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    assert_eq!(str_field(&pushed, "rule"), "modelscope:=s3://fleet/ms");
    let commit = ms.commit("org/tiny");
    let ref_object = std::fs::read_to_string(s3.object_path("fleet", "ms/org/tiny/refs/master"))?;
    assert_eq!(ref_object.trim(), commit);

    ms.clear_log();
    let node = Fixture::new()?;
    let out = run_env(
        &node,
        &[
            "ensure",
            "modelscope:org/tiny",
            "--mirror",
            // The organisation's repositories, under the prefix `mirror` wrote them to.
            "modelscope:org/=s3://fleet/ms/org/",
            "--json",
        ],
        &env,
    );
    assert_code(&out, 0);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    assert_eq!(str_field(&json, "id"), "modelscope:org/tiny");
    assert_eq!(str_field(&json, "verification"), "pass", "{json:#}");
    assert_holds(Path::new(str_field(&json, "local_path")), &files);
    let served: Vec<_> = ms
        .requests()
        .into_iter()
        .filter(|r| r.uri.contains("FilePath="))
        .collect();
    assert!(served.is_empty(), "ModelScope served files: {served:?}");
    let entry = node.entry("modelscope:org/tiny")?;
    assert_eq!(entry["provenance"]["resolved_revision"], commit.as_str());
    assert_eq!(entry["provenance"]["fetcher"], "mirror+s3", "{entry:#}");
    Ok(())
}

#[test]
fn an_azure_mirror_that_refuses_the_credentials_is_passed_over_with_a_warning() -> TestResult {
    let (hub, seed) = seeded()?;
    let azurite = Azurite::start()?;
    azurite.create_container("fleet")?;
    let prefix = format!("az://{AZURITE_ACCOUNT}/fleet/hf");
    mirror_to_bucket(&hub, &seed, &prefix, &azure_env(&azurite))?;
    // The right endpoint and account, with another key.
    let wrong = azurite.connection_string().replace(
        test_support::AZURITE_KEY,
        "d3Jvbmcta2V5LWZvci10aGUtdGVzdA==",
    );
    hub.clear_log();
    let node = Fixture::new()?;
    let out = run(
        &hub,
        &node,
        &["ensure", &reference(), "--mirror", &format!("hf:={prefix}")],
        &[("AZURE_STORAGE_CONNECTION_STRING", wrong)],
    );
    assert_code(&out, 0);
    let err = stderr(&out);
    assert!(err.contains("refused the credentials"), "{err}");
    assert!(!downloads(&hub).is_empty(), "the origin was not asked");
    assert_eq!(
        node.entry(&reference())?["provenance"]["fetcher"],
        "hf-native"
    );
    Ok(())
}

#[test]
fn offline_contacts_no_cloud_storage_or_azure_mirror() -> TestResult {
    let (hub, _seed) = seeded()?;
    // Endpoints that record whether anyone connects to them.
    let gcs = TcpListener::bind("127.0.0.1:0")?;
    gcs.set_nonblocking(true)?;
    let azure = TcpListener::bind("127.0.0.1:0")?;
    azure.set_nonblocking(true)?;
    let env = [
        ("STORAGE_EMULATOR_HOST", gcs.local_addr()?.to_string()),
        ("GCE_METADATA_HOST", format!("127.0.0.1:{}", free_port())),
        (
            "AZURE_STORAGE_CONNECTION_STRING",
            format!(
                "DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={};BlobEndpoint=http://{}/{AZURITE_ACCOUNT};",
                test_support::AZURITE_KEY,
                azure.local_addr()?
            ),
        ),
        (
            "MODEL_PROVISIONER_MIRRORS",
            format!("hf:=gs://fleet/hf hf:=az://{AZURITE_ACCOUNT}/fleet/hf"),
        ),
    ];
    hub.clear_log();
    let node = Fixture::new()?;
    let out = run(&hub, &node, &["ensure", &reference(), "--offline"], &env);
    assert_code(&out, 1);
    assert!(hub.requests().is_empty(), "offline asked the Hub");
    assert!(gcs.accept().is_err(), "offline connected to Cloud Storage");
    assert!(azure.accept().is_err(), "offline connected to Azure");
    Ok(())
}

#[test]
fn a_rule_naming_a_scheme_no_source_reads_is_a_usage_error() -> TestResult {
    let node = Fixture::new()?;
    let out = node.run([
        "ensure",
        "hf:org/repo",
        "--mirror",
        "hf:=ftp://cache.internal/hf",
    ]);
    assert_failure(&out, 2, &["no source of this build reads `ftp:`"]);
    Ok(())
}

#[test]
fn a_rule_whose_store_mirror_names_no_bucket_is_a_usage_error_before_any_request() -> TestResult {
    let hub =
        HubNginx::start_with_files(&[(TINY_LLAMA, HfRepoBuilder::tiny_llama_sized(SHARD).files())]);
    let node = Fixture::new()?;
    let out = run(
        &hub,
        &node,
        &["ensure", &reference(), "--mirror", "hf:=gs://"],
        &[],
    );
    assert_failure(
        &out,
        2,
        &[
            "invalid mirror rule `hf:=gs://`",
            "is no folder of its store",
        ],
    );
    assert!(
        hub.requests().is_empty(),
        "the Hub was asked:\n{}",
        describe(&hub.requests())
    );
    Ok(())
}

#[test]
fn an_hf_model_mirrored_in_a_registry_is_pulled_from_there_and_not_from_the_hub() -> TestResult {
    let (hub, seed) = seeded()?;
    let registry = Registry::start()?;
    let prefix = format!("oci://{}/hf", registry.host());
    let pushed = seed.json(["mirror", &reference(), &prefix, "--json"])?;
    assert_eq!(str_field(&pushed, "rule"), format!("hf:={prefix}"));
    let commit = hub.repo(TINY_LLAMA).commit().to_owned();
    let destinations = pushed["destinations"].to_string();
    assert!(
        destinations.contains(&format!("{prefix}/test-org/tiny-llama:{commit}"))
            && destinations.contains(&format!("{prefix}/test-org/tiny-llama:main")),
        "{pushed:#}"
    );

    hub.clear_log();
    let node = Fixture::new()?;
    let rule = format!("hf:={prefix}");
    let out = run(
        &hub,
        &node,
        &["ensure", &reference(), "--mirror", &rule, "--json"],
        &[],
    );
    assert_from_mirror(&hub, &node, &out, &prefix)?;
    let log = hub.requests();
    assert!(
        log.is_empty(),
        "the node asked the Hub:\n{}",
        describe(&log)
    );

    // The entry is the Hub's: ensured again without the mirror, it is answered from the catalog.
    let again = node.json(["ensure", &reference(), "--json", "--offline"])?;
    assert!(again["cached"].as_bool().unwrap_or_default(), "{again:#}");
    Ok(())
}

#[test]
fn an_hf_model_mirrored_in_a_bucket_is_pulled_from_there_and_not_from_the_hub() -> TestResult {
    let (hub, seed) = seeded()?;
    let server = S3Server::start()?;
    server.create_bucket("fleet")?;
    let env = aws(&server);
    let out = run(
        &hub,
        &seed,
        &["mirror", &reference(), "s3://fleet/hf", "--json"],
        &env,
    );
    assert_code(&out, 0);
    let commit = hub.repo(TINY_LLAMA).commit().to_owned();
    let ref_object =
        std::fs::read_to_string(server.object_path("fleet", "hf/test-org/tiny-llama/refs/main"))?;
    assert_eq!(ref_object.trim(), commit);
    assert!(
        server
            .object_path(
                "fleet",
                &format!("hf/test-org/tiny-llama/{commit}/.model-provisioner.json")
            )
            .is_file()
    );

    hub.clear_log();
    let node = Fixture::new()?;
    let mut env_node = env.clone();
    env_node.push(("MODEL_PROVISIONER_MIRRORS", "hf:=s3://fleet/hf".to_owned()));
    let out = run(&hub, &node, &["ensure", &reference(), "--json"], &env_node);
    assert_from_mirror(
        &hub,
        &node,
        &out,
        &format!("s3+{}/fleet/hf/", server.endpoint()),
    )?;
    let log = hub.requests();
    assert!(
        log.is_empty(),
        "the node asked the Hub:\n{}",
        describe(&log)
    );
    Ok(())
}

#[test]
fn a_mirror_without_the_model_or_down_is_passed_over_for_the_origin() -> TestResult {
    let (hub, _seed) = seeded()?;
    let empty = Registry::start()?;
    let closed = test_support::free_port();
    hub.clear_log();
    let node = Fixture::new()?;
    let out = run(
        &hub,
        &node,
        &[
            "ensure",
            &reference(),
            "--json",
            "-v",
            "--retries",
            "0",
            "--mirror",
            &format!("hf:=oci://127.0.0.1:{closed}/hf"),
            "--mirror",
            &format!("hf:=oci://{}/hf", empty.host()),
        ],
        &[],
    );
    assert_code(&out, 0);
    let err = stderr(&out);
    assert!(err.contains("does not answer"), "{err}");
    assert!(err.contains("does not have it"), "{err}");
    // The origin served every file.
    let repo = hub.repo(TINY_LLAMA);
    let got = downloads(&hub);
    for file in repo.files() {
        assert!(
            got.iter()
                .any(|r| r.uri.ends_with(&file.path) || r.uri.ends_with(&file.sha256)),
            "{} not downloaded from the Hub:\n{}",
            file.path,
            describe(&got)
        );
    }
    let entry = node.entry(&reference())?;
    assert_eq!(entry["provenance"]["fetcher"], "hf-native", "{entry:#}");
    Ok(())
}

#[test]
fn a_tampered_mirror_is_refused_with_exit_3_and_the_origin_is_not_asked() -> TestResult {
    let (hub, seed) = seeded()?;
    let registry = Registry::start()?;
    let prefix = format!("oci://{}/hf", registry.host());
    seed.json(["mirror", &reference(), &prefix, "--json"])?;
    let shard = hub
        .repo(TINY_LLAMA)
        .files()
        .iter()
        .find(|f| f.lfs)
        .ok_or("no LFS file")?
        .clone();
    let blob = registry.blob_path(&shard.sha256);
    let mut bytes = std::fs::read(&blob)?;
    bytes[100] ^= 0xff;
    std::fs::write(&blob, bytes)?;

    hub.clear_log();
    let node = Fixture::new()?;
    let out = run(
        &hub,
        &node,
        &["ensure", &reference(), "--mirror", &format!("hf:={prefix}")],
        &[],
    );
    assert_failure(&out, 3, &["digest mismatch", &shard.sha256]);
    let log = hub.requests();
    assert!(log.is_empty(), "the origin was asked:\n{}", describe(&log));
    assert!(
        node.index_bytes()
            .is_none_or(|i| !String::from_utf8_lossy(&i).contains(TINY_LLAMA)),
        "an entry was recorded"
    );
    assert!(
        !node.cache().join("models/hf").exists(),
        "something was published"
    );
    Ok(())
}

#[test]
fn a_bucket_mirror_whose_object_changed_is_refused_with_exit_3() -> TestResult {
    let (hub, seed) = seeded()?;
    let server = S3Server::start()?;
    server.create_bucket("fleet")?;
    let env = aws(&server);
    assert_code(
        &run(
            &hub,
            &seed,
            &["mirror", &reference(), "s3://fleet/hf"],
            &env,
        ),
        0,
    );
    let commit = hub.repo(TINY_LLAMA).commit().to_owned();
    let shard = hub
        .repo(TINY_LLAMA)
        .files()
        .iter()
        .find(|f| f.lfs)
        .ok_or("no LFS file")?
        .clone();
    let object = server.object_path(
        "fleet",
        &format!("hf/test-org/tiny-llama/{commit}/{}", shard.path),
    );
    let mut bytes = std::fs::read(&object)?;
    bytes[7] ^= 0x01;
    std::fs::write(&object, bytes)?;

    hub.clear_log();
    let node = Fixture::new()?;
    let out = run(
        &hub,
        &node,
        &["ensure", &reference(), "--mirror", "hf:=s3://fleet/hf"],
        &env,
    );
    assert_failure(&out, 3, &["digest mismatch"]);
    let log = hub.requests();
    assert!(log.is_empty(), "the origin was asked:\n{}", describe(&log));
    Ok(())
}

#[test]
fn no_mirror_goes_to_the_origin_and_offline_contacts_neither() -> TestResult {
    let (hub, _seed) = seeded()?;
    // A mirror that records whether anyone connects to it.
    let listener = TcpListener::bind("127.0.0.1:0")?;
    listener.set_nonblocking(true)?;
    let watched = format!("hf:=oci://{}/hf", listener.local_addr()?);
    let node = Fixture::new()?;
    std::fs::create_dir_all(node.cache())?;
    std::fs::write(node.cache().join("mirrors.conf"), format!("{watched}\n"))?;

    hub.clear_log();
    let out = run(&hub, &node, &["ensure", &reference(), "--offline"], &[]);
    assert_code(&out, 1);
    assert!(hub.requests().is_empty(), "offline asked the Hub");
    assert!(
        listener.accept().is_err(),
        "offline connected to the mirror"
    );

    let out = run(
        &hub,
        &node,
        &["ensure", &reference(), "--no-mirror", "--json"],
        &[("MODEL_PROVISIONER_MIRRORS", watched.clone())],
    );
    assert_code(&out, 0);
    assert!(
        listener.accept().is_err(),
        "--no-mirror connected to the mirror"
    );
    assert!(!downloads(&hub).is_empty(), "the origin was not asked");
    Ok(())
}

#[test]
fn rules_from_the_cache_file_apply_and_a_bad_line_is_named() -> TestResult {
    let (hub, seed) = seeded()?;
    let registry = Registry::start()?;
    let prefix = format!("oci://{}/hf", registry.host());
    seed.json(["mirror", &reference(), &prefix, "--json"])?;
    let node = Fixture::new()?;
    std::fs::create_dir_all(node.cache())?;
    let conf = node.cache().join("mirrors.conf");
    std::fs::write(&conf, "# fleet\n\nnot a rule\n")?;
    let out = run(&hub, &node, &["ensure", &reference()], &[]);
    assert_failure(&out, 1, &["mirrors.conf`, line 3", "invalid mirror rule"]);

    std::fs::write(&conf, format!("# fleet\nhf:={prefix}   # the registry\n"))?;
    hub.clear_log();
    let out = run(&hub, &node, &["ensure", &reference(), "--json"], &[]);
    assert_from_mirror(&hub, &node, &out, &prefix)?;
    assert!(hub.requests().is_empty());
    Ok(())
}

#[test]
fn a_pull_through_registry_mirror_serves_every_node_the_origins_model_under_its_id() -> TestResult {
    let origin = Registry::start()?;
    let mirror = Registry::start_pull_through(&origin.url())?;
    let body = random_bytes(300_000, 5);
    Artifact::new(OCI_MANIFEST)
        .artifact_type("application/vnd.example.model")
        .layer(
            "application/vnd.example.gguf",
            &body,
            &[("org.opencontainers.image.title", "model.gguf")],
        )
        .push(&origin, "team/m", "v1")?;
    let reference = format!("oci://{}/team/m:v1", origin.host());
    let rule = format!("oci://{}=oci://{}", origin.host(), mirror.host());

    // The first node finds the mirror empty (it fetches from the origin as it answers), the
    // second finds it filled: both get the origin's bytes, under the origin's id, from the
    // mirror. How the mirror answers (whole, or in ranges) is the mirror's affair.
    for _ in 0..2 {
        let node = Fixture::new()?;
        let out = node.json(["ensure", &reference, "--mirror", &rule, "--json"])?;
        assert_eq!(str_field(&out, "id"), reference);
        assert_eq!(str_field(&out, "verification"), "pass");
        assert_eq!(std::fs::read(str_field(&out, "local_path"))?, body);
        let entry = node.entry(&reference)?;
        assert_eq!(
            entry["provenance"]["origin"],
            format!("oci://{}/team/m:v1", mirror.host())
        );
    }
    Ok(())
}
