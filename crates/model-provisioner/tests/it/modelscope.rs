//! `modelscope:` references against a ModelScope-shaped nginx
//! ([`test_support::ModelScopeNginx`]): the listing API with every file's sha256, downloads
//! by `FilePath`, and a login that hands out the session cookie private repositories need.

use std::collections::BTreeMap;
use std::fs;

use catalog_core::{CatalogStore, Digest, Outcome};
use model_provisioner::{
    AnyFetcher, Error, FsCatalog, ModelProvisioner, ModelScopeKind, SourceFailure,
};
use mp_credentials::Secret;
use test_support::{ModelScopeNginx, MsRepoSpec, random_bytes as bytes};

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// `org/tiny`: a config and a weight in a folder; `org/quants`: two quantisations of one GGUF.
fn repos() -> (BTreeMap<String, Vec<u8>>, BTreeMap<String, Vec<u8>>) {
    let tiny = BTreeMap::from([
        ("config.json".to_owned(), b"{\"arch\": \"tiny\"}".to_vec()),
        ("sub/w.gguf".to_owned(), bytes(300_000, 41)),
    ]);
    let quants = BTreeMap::from([
        ("m-Q4_K_M.gguf".to_owned(), bytes(120_000, 42)),
        ("m-Q8_0.gguf".to_owned(), bytes(200_000, 43)),
        ("README.md".to_owned(), b"# m\n".to_vec()),
    ]);
    (tiny, quants)
}

/// Both repositories, public.
fn serve(tiny: &BTreeMap<String, Vec<u8>>, quants: &BTreeMap<String, Vec<u8>>) -> ModelScopeNginx {
    ModelScopeNginx::start(&[
        MsRepoSpec {
            id: "org/tiny",
            files: tiny,
            private: false,
        },
        MsRepoSpec {
            id: "org/quants",
            files: quants,
            private: false,
        },
    ])
}

fn provisioner(
    cache: &std::path::Path,
    kind: ModelScopeKind,
) -> Result<ModelProvisioner<FsCatalog, AnyFetcher>, Error> {
    ModelProvisioner::builder(cache)
        .source(kind)
        .hf_config(model_provisioner::hf::HfConfig::default())
        .build()
}

#[test]
fn a_repository_is_listed_placed_and_passes_on_the_sha256s_modelscope_states() -> TestResult {
    let (tiny, quants) = repos();
    let ms = serve(&tiny, &quants);
    let cache = tempfile::tempdir()?;
    let p = provisioner(cache.path(), ModelScopeKind::new(&ms.endpoint(), None))?;

    let ensured = p.ensure(&p.parse_ref("modelscope:org/tiny")?, None)?;
    assert!(!ensured.cached);
    assert_eq!(ensured.resolved.id, "modelscope:org/tiny");
    let dir = &ensured.resolved.local_path;
    assert!(
        dir.starts_with(cache.path().join("models/modelscope/org/tiny")),
        "{}",
        dir.display()
    );
    for (path, body) in &tiny {
        assert_eq!(&fs::read(dir.join(path))?, body, "{path}");
    }
    // No `--digest`: every file matched the sha256 of the listing.
    assert_eq!(ensured.entry.verification.outcome, Outcome::Pass);
    let provenance = ensured.entry.provenance.as_ref().expect("provenance");
    assert_eq!(provenance.fetcher, "modelscope");
    assert_eq!(
        provenance.resolved_revision.as_deref(),
        Some(ms.commit("org/tiny").as_str())
    );
    let sent = ms.requests_of_at_least(3).len();
    assert!(
        ms.requests().iter().all(|r| !r.session),
        "no token, no session"
    );

    let again = p.ensure(&p.parse_ref("modelscope:org/tiny")?, None)?;
    assert!(again.cached);
    assert_eq!(ms.requests().len(), sent, "a cache hit asks nothing");
    Ok(())
}

#[test]
fn one_file_or_one_quantisation_is_all_that_is_fetched() -> TestResult {
    let (tiny, quants) = repos();
    let ms = serve(&tiny, &quants);
    let cache = tempfile::tempdir()?;
    let p = provisioner(cache.path(), ModelScopeKind::new(&ms.endpoint(), None))?;

    let file = p.ensure_present_str("modelscope:org/tiny/sub/w.gguf", None)?;
    assert!(
        file.local_path.ends_with("sub/w.gguf"),
        "{}",
        file.local_path.display()
    );
    assert_eq!(fs::read(&file.local_path)?, tiny["sub/w.gguf"]);

    let quant = p.ensure(&p.parse_ref("modelscope:org/quants:Q4_K_M")?, None)?;
    assert_eq!(quant.entry.verification.outcome, Outcome::Pass);
    let placed: Vec<_> = fs::read_dir(&quant.resolved.local_path)?
        .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect::<Result<_, _>>()?;
    assert_eq!(placed, ["m-Q4_K_M.gguf"]);
    let downloads: Vec<_> = ms
        .requests()
        .into_iter()
        .filter(|r| r.uri.contains("FilePath=") && r.method == "GET")
        .map(|r| r.uri)
        .collect();
    assert!(
        downloads.iter().all(|u| !u.contains("Q8_0")),
        "{downloads:?}"
    );
    Ok(())
}

#[test]
fn a_private_repository_needs_the_token_whose_session_goes_to_the_endpoint_only() -> TestResult {
    let (tiny, _) = repos();
    let ms = ModelScopeNginx::start_one("org/secret", &tiny, true);
    let cache = tempfile::tempdir()?;
    let without = provisioner(cache.path(), ModelScopeKind::new(&ms.endpoint(), None))?;
    let err = without
        .ensure_present_str("modelscope:org/secret", None)
        .unwrap_err();
    let Error::Source { failure, .. } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(*failure, SourceFailure::Denied);
    assert!(
        err.hint()
            .is_some_and(|h| h.contains("MODELSCOPE_API_TOKEN")),
        "{err}"
    );

    let token = Secret::new("ms-token-for-tests".to_owned());
    let with = provisioner(
        cache.path(),
        ModelScopeKind::new(&ms.endpoint(), Some(token)),
    )?;
    ms.clear_log();
    let ensured = with.ensure(&with.parse_ref("modelscope:org/secret")?, None)?;
    assert_eq!(ensured.entry.verification.outcome, Outcome::Pass);
    let log = ms.requests_of_at_least(4);
    assert!(
        log.iter()
            .any(|r| r.method == "POST" && r.uri == "/api/v1/login"),
        "{log:?}"
    );
    assert!(
        log.iter()
            .filter(|r| r.method != "POST")
            .all(|r| r.session && r.status < 400),
        "{log:?}"
    );
    // Nothing of the token or the session reaches the catalog.
    let index = fs::read_to_string(cache.path().join("catalog/index.json"))?;
    assert!(!index.contains("ms-token-for-tests") && !index.contains(ms.session()));
    Ok(())
}

#[test]
fn what_modelscope_lacks_is_named_and_offline_asks_nothing() -> TestResult {
    let (tiny, _) = repos();
    let ms = ModelScopeNginx::start_one("org/tiny", &tiny, false);
    let cache = tempfile::tempdir()?;
    let p = provisioner(cache.path(), ModelScopeKind::new(&ms.endpoint(), None))?;
    for (reference, says) in [
        ("modelscope:org/absent", "not found on ModelScope"),
        ("modelscope:org/tiny@v9", "not found on ModelScope"),
        (
            "modelscope:org/tiny/nope.bin",
            "`nope.bin` is not a file of `org/tiny`",
        ),
    ] {
        let err = p.ensure_present_str(reference, None).unwrap_err();
        assert!(
            matches!(
                err,
                Error::Source {
                    failure: SourceFailure::NotFound,
                    ..
                }
            ),
            "{reference}: {err:?}"
        );
        assert!(err.to_string().contains(says), "{reference}: {err}");
    }
    assert!(p.catalog().list()?.is_empty());

    ms.clear_log();
    let offline = ModelProvisioner::builder(cache.path())
        .source(ModelScopeKind::new(&ms.endpoint(), None))
        .offline(true)
        .build()?;
    let err = offline
        .ensure_present_str("modelscope:org/tiny", None)
        .unwrap_err();
    assert!(matches!(err, Error::Offline { .. }), "{err:?}");
    assert!(ms.requests().is_empty());
    Ok(())
}

#[test]
fn the_filters_choose_files_and_a_reference_has_one_id_in_its_normal_form() -> TestResult {
    let (tiny, _) = repos();
    let ms = ModelScopeNginx::start_one("org/tiny", &tiny, false);
    let cache = tempfile::tempdir()?;
    let p = ModelProvisioner::builder(cache.path())
        .source(ModelScopeKind::new(&ms.endpoint(), None))
        .include(vec!["*.json".to_owned()])
        .build()?;
    let ensured = p.ensure(&p.parse_ref("MODELSCOPE://org/tiny")?, None)?;
    assert_eq!(ensured.resolved.id, "modelscope:org/tiny");
    assert!(ensured.resolved.local_path.join("config.json").is_file());
    assert!(!ensured.resolved.local_path.join("sub").exists());
    let provenance = ensured.entry.provenance.as_ref().expect("provenance");
    assert_eq!(provenance.include, ["*.json"]);
    let recorded: Vec<_> = provenance
        .files
        .iter()
        .map(|f| (f.path.as_str(), f.digest.clone()))
        .collect();
    assert_eq!(
        recorded,
        [("config.json", Some(Digest::sha256_of(&tiny["config.json"])))]
    );
    Ok(())
}
