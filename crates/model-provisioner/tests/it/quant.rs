//! `hf:org/repo[@rev]:QUANT` against a Hub-shaped nginx: the files of one quantisation (every
//! part of a split GGUF and one projector) and nothing else, with the native client;
//! an unknown tag fails before any file is asked for. The shell-out to `hf` is tested through
//! the binary (`cli` it: `quant`).

use std::collections::BTreeMap;
use std::path::Path;

use catalog_core::{CatalogStore, ModelRef};
use model_provisioner::hf::{HfConfig, HfFetcher};
use model_provisioner::{AnyFetcher, Error, FileFetcher, ModelProvisioner};
use test_support::{HubNginx, assert_holds, fake_gguf};

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// The fixture repository.
const REPO: &str = "test-org/quants";

/// The `Q4_K_M` model, split in three, in a folder of its own as many GGUF repositories have it.
const Q4_PARTS: [&str; 3] = [
    "Q4_K_M/model-Q4_K_M-00001-of-00003.gguf",
    "Q4_K_M/model-Q4_K_M-00002-of-00003.gguf",
    "Q4_K_M/model-Q4_K_M-00003-of-00003.gguf",
];

/// A GGUF repository with false friends of `Q4_K_M` and three projectors.
fn quant_repo() -> BTreeMap<String, Vec<u8>> {
    let mut files = BTreeMap::new();
    files.insert("README.md".to_owned(), b"# quants\n".to_vec());
    for (i, part) in Q4_PARTS.iter().enumerate() {
        files.insert((*part).to_owned(), fake_gguf(part, 3000 + i));
    }
    for name in [
        "model-Q4_K_S.gguf",
        "model-IQ4_XS.gguf",
        "model-Q8_0.gguf",
        "model-BF16.gguf",
        "mmproj-BF16.gguf",
        "mmproj-F16.gguf",
        "mmproj-Q8_0.gguf",
    ] {
        files.insert(name.to_owned(), fake_gguf(name, 2000));
    }
    files
}

fn native(
    cache: &Path,
    hub: &HubNginx,
) -> Result<ModelProvisioner<model_provisioner::FsCatalog, AnyFetcher>, Error> {
    let config = HfConfig {
        endpoint: hub.endpoint(),
        ..HfConfig::default()
    };
    let fetcher = AnyFetcher::new(FileFetcher::in_place())
        .with_hf(HfFetcher::new(config, crate::quick_download()));
    ModelProvisioner::with_fetcher(cache, fetcher)
}

/// The files of `all` at `paths`.
fn pick(all: &BTreeMap<String, Vec<u8>>, paths: &[&str]) -> BTreeMap<String, Vec<u8>> {
    paths
        .iter()
        .map(|p| ((*p).to_owned(), all[*p].clone()))
        .collect()
}

#[test]
fn a_quant_reference_fetches_every_part_of_its_split_gguf_and_the_f16_projector() -> TestResult {
    let files = quant_repo();
    let hub = HubNginx::start_with_files(&[(REPO, &files)]);
    let cache = tempfile::tempdir()?;
    let p = native(cache.path(), &hub)?;

    let ensured = p.ensure(&format!("hf:{REPO}:q4_k_m").parse()?, None)?;
    assert_eq!(ensured.resolved.id, format!("hf:{REPO}:Q4_K_M"));
    let mut wanted: Vec<&str> = Q4_PARTS.to_vec();
    wanted.push("mmproj-F16.gguf");
    let expected = pick(&files, &wanted);
    assert_holds(&ensured.resolved.local_path, &expected);
    let recorded: Vec<&str> = ensured
        .entry
        .provenance
        .as_ref()
        .ok_or("no provenance")?
        .files
        .iter()
        .map(|f| f.path.as_str())
        .collect();
    assert_eq!(recorded, wanted);
    assert_eq!(
        ensured
            .entry
            .verification
            .computed
            .as_ref()
            .map(ToString::to_string),
        Some(test_support::tree_digest(&expected)),
        "the digest of a quantisation is the tree digest of its files"
    );

    // Nothing but the chosen files was asked for, by HEAD or by GET.
    let log = hub.requests_of_at_least(1);
    for r in log.iter().filter(|r| r.uri.contains("/resolve/")) {
        assert!(
            wanted.iter().any(|w| r.uri.ends_with(&format!("/{w}"))),
            "{} {} was requested",
            r.method,
            r.uri
        );
    }
    let blob_bytes: u64 = log
        .iter()
        .filter(|r| r.uri.starts_with("/lfs/"))
        .map(|r| r.body_bytes)
        .sum();
    assert_eq!(
        blob_bytes,
        expected.values().map(|b| b.len() as u64).sum::<u64>()
    );

    // The same quantisation in another spelling is the same model: served from the catalog.
    let again = p.ensure(&format!("hf:{REPO}:Q4_K_M").parse()?, None)?;
    assert!(again.cached);
    assert_eq!(again.resolved, ensured.resolved);
    Ok(())
}

#[test]
fn a_quant_with_a_revision_keeps_the_projector_of_its_own_precision() -> TestResult {
    let files = quant_repo();
    let hub = HubNginx::start_with_files(&[(REPO, &files)]);
    let commit = hub.repo(REPO).commit().to_owned();
    let cache = tempfile::tempdir()?;
    let p = native(cache.path(), &hub)?;

    let reference = format!("hf:{REPO}@{commit}:Q8_0");
    let ensured = p.ensure(&reference.parse()?, None)?;
    assert_eq!(ensured.resolved.id, reference);
    assert_holds(
        &ensured.resolved.local_path,
        &pick(&files, &["mmproj-Q8_0.gguf", "model-Q8_0.gguf"]),
    );
    let bf16 = p.ensure(&format!("hf:{REPO}@main:bf16").parse()?, None)?;
    assert_holds(
        &bf16.resolved.local_path,
        &pick(&files, &["mmproj-BF16.gguf", "model-BF16.gguf"]),
    );
    Ok(())
}

#[test]
fn an_exclude_pattern_leaves_the_projector_out_of_a_quant() -> TestResult {
    let files = quant_repo();
    let hub = HubNginx::start_with_files(&[(REPO, &files)]);
    let cache = tempfile::tempdir()?;
    let config = HfConfig {
        endpoint: hub.endpoint(),
        exclude: vec!["mmproj*".to_owned()],
        ..HfConfig::default()
    };
    let fetcher = AnyFetcher::new(FileFetcher::in_place())
        .with_hf(HfFetcher::new(config, crate::quick_download()));
    let p = ModelProvisioner::with_fetcher(cache.path(), fetcher)?;
    let ensured = p.ensure(&format!("hf:{REPO}:IQ4_XS").parse()?, None)?;
    assert_holds(
        &ensured.resolved.local_path,
        &pick(&files, &["model-IQ4_XS.gguf"]),
    );
    Ok(())
}

#[test]
fn an_unknown_quant_fails_listing_the_repositorys_quants_and_asks_for_no_file() -> TestResult {
    let files = quant_repo();
    let hub = HubNginx::start_with_files(&[(REPO, &files)]);
    let cache = tempfile::tempdir()?;
    let p = native(cache.path(), &hub)?;

    let reference: ModelRef = format!("hf:{REPO}:Q5_K_M").parse()?;
    let err = p.ensure(&reference, None).unwrap_err();
    let Error::HfUnknownQuant { tag, available, .. } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(tag, "Q5_K_M");
    assert_eq!(
        available,
        &["BF16", "IQ4_XS", "Q4_K_M", "Q4_K_S", "Q8_0"].map(str::to_owned)
    );
    assert_eq!(
        err.to_string(),
        format!(
            "`{REPO}` has no GGUF file of quantisation `Q5_K_M`; it has: `BF16`, `IQ4_XS`, `Q4_K_M`, `Q4_K_S`, `Q8_0`"
        )
    );
    assert!(err.hint().is_some_and(|h| h.contains(":BF16`")), "{err:?}");
    let log = hub.requests_of_at_least(1);
    assert!(
        log.iter().all(|r| r.uri.contains("/api/models/")),
        "only the listing was asked for: {log:#?}"
    );
    assert!(p.catalog().list()?.is_empty());
    Ok(())
}
