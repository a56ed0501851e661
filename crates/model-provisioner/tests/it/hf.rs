//! `hf:` references with the native Hub client, against olah serving git-lfs fixture repos on
//! loopback: single files and whole repositories, filters, pinned and moved revisions, missing
//! things, a Hub that lies about its bytes, offline use, and reuse of a Hugging Face cache
//! filled by the real `hf download`.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use catalog_core::{CatalogStore, Digest, FileRecord, Lifecycle, Outcome, Storage};
use model_provisioner::hf::{HfConfig, HfFetcher};
use model_provisioner::{
    AnyFetcher, DigestMismatch, Error, FileFetcher, FsCatalog, ModelProvisioner,
};
use test_support::{
    HfRepo, HfRepoBuilder, LyingProxy, Olah, OlahRequest, TINY_GGUF, TINY_LLAMA, assert_holds,
    fake_gguf, fake_safetensors,
};

type TestResult = Result<(), Box<dyn std::error::Error>>;
type Provisioner = ModelProvisioner<FsCatalog, AnyFetcher>;

/// The single file most tests fetch.
const Q4: &str = "model.Q4_K_M.gguf";

/// The native client against `endpoint`, with `hub_cache` as the Hugging Face cache.
fn hf_config(endpoint: &str, hub_cache: &Path) -> HfConfig {
    HfConfig {
        endpoint: endpoint.to_owned(),
        hub_cache: Some(hub_cache.to_owned()),
        ..HfConfig::default()
    }
}

fn provisioner(cache: &Path, config: HfConfig) -> Result<Provisioner, Error> {
    let fetcher = AnyFetcher::new(FileFetcher::in_place())
        .with_hf(HfFetcher::new(config, crate::quick_download()));
    ModelProvisioner::with_fetcher(cache, fetcher)
}

/// A cache directory and an (empty) Hugging Face cache for one test.
struct Dirs {
    cache: tempfile::TempDir,
    hub: tempfile::TempDir,
}

impl Dirs {
    fn new() -> std::io::Result<Self> {
        Ok(Dirs {
            cache: tempfile::tempdir()?,
            hub: tempfile::tempdir()?,
        })
    }

    fn cache(&self) -> &Path {
        self.cache.path()
    }

    fn hub(&self) -> &Path {
        self.hub.path()
    }

    /// A provisioner over this cache, the native client against `endpoint`.
    fn provisioner(&self, endpoint: &str) -> Result<Provisioner, Error> {
        provisioner(self.cache(), hf_config(endpoint, self.hub()))
    }

    /// Like [`Dirs::provisioner`], with `tweak` applied to the configuration.
    fn provisioner_with(
        &self,
        endpoint: &str,
        tweak: impl FnOnce(&mut HfConfig),
    ) -> Result<Provisioner, Error> {
        let mut config = hf_config(endpoint, self.hub());
        tweak(&mut config);
        provisioner(self.cache(), config)
    }

    fn index(&self) -> Option<Vec<u8>> {
        fs::read(self.cache().join("catalog/index.json")).ok()
    }
}

/// `sha256:<hex>` of a fixture file.
fn fixture_digest(repo: &HfRepo, rev: &str, path: &str) -> Digest {
    format!("sha256:{}", repo.sha256(rev, path))
        .parse()
        .expect("a fixture sha256 parses")
}

/// The names of every entry (files and folders) under `dir`, if it exists.
fn names_under(dir: &Path) -> Vec<String> {
    fn walk(dir: &Path, out: &mut Vec<String>) {
        for entry in fs::read_dir(dir).into_iter().flatten().flatten() {
            let path = entry.path();
            out.push(path.display().to_string());
            if path.is_dir() {
                walk(&path, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, &mut out);
    out
}

/// The records provenance should hold for `files`.
fn records_of(files: &BTreeMap<String, Vec<u8>>) -> Vec<FileRecord> {
    files
        .iter()
        .map(|(path, bytes)| FileRecord {
            path: path.clone(),
            size: bytes.len() as u64,
            digest: Some(Digest::sha256_of(bytes)),
            etag: None,
            media_type: None,
        })
        .collect()
}

/// Provenance records without the source's `ETag`s, to compare with [`records_of`].
fn without_etags(records: &[FileRecord]) -> Vec<FileRecord> {
    records
        .iter()
        .map(|r| FileRecord {
            etag: None,
            media_type: None,
            ..r.clone()
        })
        .collect()
}

/// The tree digest of files as `catalog_core::verify` documents it for folders.
fn tree_digest(files: &BTreeMap<String, Vec<u8>>) -> Digest {
    test_support::tree_digest(files)
        .parse()
        .expect("a tree digest parses")
}

/// `GET`s of `…/resolve/…` URLs.
fn resolve_gets(requests: &[OlahRequest]) -> Vec<&OlahRequest> {
    requests
        .iter()
        .filter(|r| r.method == "GET" && r.path.contains("/resolve/"))
        .collect()
}

/// Partial downloads (`*.part`, `*.state`) and scratch dirs left under `<cache>/tmp`.
fn leftovers_in_tmp(cache: &Path) -> Vec<String> {
    names_under(&cache.join("tmp"))
        .into_iter()
        .filter(|n| Path::new(n).extension().is_none_or(|e| e != "lock"))
        .collect()
}

#[test]
fn a_single_file_is_fetched_and_recorded_with_its_commit_and_sha256() -> TestResult {
    let olah = Olah::start();
    let repo = olah.add_repo(HfRepoBuilder::tiny_gguf());
    let dirs = Dirs::new()?;
    let p = dirs.provisioner(&olah.endpoint())?;
    let reference = format!("hf:{TINY_GGUF}/{Q4}");
    let bytes = repo.bytes("main", Q4);
    let sha = fixture_digest(&repo, "main", Q4);
    assert_eq!(sha, Digest::sha256_of(&bytes), "the fixture's LFS oid");

    let ensured = p.ensure(&reference.parse()?, None)?;
    assert_eq!(ensured.resolved.id, reference);
    assert!(!ensured.cached);
    assert_eq!(ensured.bytes_read, bytes.len() as u64);
    let path = &ensured.resolved.local_path;
    assert!(path.ends_with(Q4), "{}", path.display());
    assert!(
        path.starts_with(dirs.cache().join("models/hf/test-org/tiny-gguf")),
        "{}",
        path.display()
    );
    assert_eq!(fs::read(path)?, bytes);
    let entry = &ensured.entry;
    assert_eq!(entry.source, reference);
    assert_eq!(entry.lifecycle, Lifecycle::Active);
    assert_eq!(entry.storage, Storage::Cache);
    assert_eq!(entry.size_bytes, bytes.len() as u64);
    // No digest was given, but the Hub stated the file's sha256 and the bytes matched it.
    assert_eq!(entry.digest, None);
    assert_eq!(entry.verification.outcome, Outcome::Pass);
    assert_eq!(entry.source_digest.as_ref(), Some(&sha));
    assert_eq!(entry.verification.computed.as_ref(), Some(&sha));
    let provenance = entry.provenance.as_ref().ok_or("no provenance")?;
    assert_eq!(provenance.fetcher, "hf-native");
    assert_eq!(provenance.resolved_revision, Some(repo.head()));
    assert_eq!(
        without_etags(&provenance.files),
        [FileRecord {
            path: Q4.to_owned(),
            size: bytes.len() as u64,
            digest: Some(sha.clone()),
            etag: None,
            media_type: None,
        }]
    );
    assert!(provenance.include.is_empty() && provenance.exclude.is_empty());
    assert_eq!(p.catalog().get(&reference)?.as_ref(), Some(entry));
    assert!(
        leftovers_in_tmp(dirs.cache()).is_empty(),
        "{:?}",
        leftovers_in_tmp(dirs.cache())
    );

    // The digest, given now, is checked against the recorded one without a request.
    olah.clear_log();
    let again = p.ensure(&reference.parse()?, Some(&sha))?;
    assert!(again.cached);
    assert_eq!(again.entry.verification.outcome, Outcome::Pass);
    assert_eq!(again.entry.digest.as_ref(), Some(&sha));
    assert_eq!(olah.settled_requests(), []);
    Ok(())
}

#[test]
fn a_single_file_with_its_digest_passes_and_with_a_wrong_one_is_not_recorded() -> TestResult {
    let olah = Olah::start();
    let repo = olah.add_repo(HfRepoBuilder::tiny_gguf());
    let reference = format!("hf:{TINY_GGUF}/{Q4}");
    let sha = fixture_digest(&repo, "main", Q4);

    let dirs = Dirs::new()?;
    let ensured = dirs
        .provisioner(&olah.endpoint())?
        .ensure(&reference.parse()?, Some(&sha))?;
    assert!(!ensured.cached);
    assert_eq!(ensured.entry.verification.outcome, Outcome::Pass);
    assert_eq!(ensured.entry.digest.as_ref(), Some(&sha));

    let dirs = Dirs::new()?;
    let p = dirs.provisioner(&olah.endpoint())?;
    let wrong = Digest::sha256_of(b"not the model");
    match p.ensure(&reference.parse()?, Some(&wrong)) {
        Err(Error::DigestMismatch(DigestMismatch {
            id,
            expected,
            computed,
        })) => {
            assert_eq!(id, reference);
            assert_eq!(expected, wrong);
            assert_eq!(computed, sha);
        }
        other => panic!("expected a digest mismatch, got {other:?}"),
    }
    assert_eq!(p.catalog().get(&reference)?, None);
    // The fetcher contract: compare before publishing anything under the cache.
    assert_eq!(
        names_under(&dirs.cache().join("models")),
        Vec::<String>::new(),
        "a rejected model was linked into the cache"
    );
    Ok(())
}

#[test]
fn a_whole_repo_is_a_directory_holding_every_file_byte_for_byte() -> TestResult {
    let olah = Olah::start();
    let repo = olah.add_repo(HfRepoBuilder::tiny_llama());
    let dirs = Dirs::new()?;
    let p = dirs.provisioner(&olah.endpoint())?;
    let reference = format!("hf:{TINY_LLAMA}");
    let expected = repo.contents("main");
    for must in [
        ".gitattributes",
        "original/params.json",
        "onnx/model.onnx",
        "model-00001-of-00002.safetensors",
    ] {
        assert!(expected.contains_key(must), "the fixture lacks {must}");
    }

    let ensured = p.ensure(&reference.parse()?, None)?;
    assert_eq!(ensured.resolved.id, reference);
    let dir = &ensured.resolved.local_path;
    assert!(dir.is_dir(), "{}", dir.display());
    assert!(dir.starts_with(dirs.cache().join("models/hf/test-org/tiny-llama")));
    assert_holds(dir, &expected);
    let total: u64 = expected.values().map(|b| b.len() as u64).sum();
    assert_eq!(ensured.bytes_read, total);
    let entry = &ensured.entry;
    assert_eq!(entry.size_bytes, total);
    // Every file matched what the Hub states: the LFS sha256, or the git blob id of a small
    // file.
    assert_eq!(entry.verification.outcome, Outcome::Pass);
    assert_eq!(
        entry.verification.computed.as_ref(),
        Some(&tree_digest(&expected))
    );
    let provenance = entry.provenance.as_ref().ok_or("no provenance")?;
    assert_eq!(provenance.fetcher, "hf-native");
    assert_eq!(provenance.resolved_revision, Some(repo.head()));
    assert_eq!(without_etags(&provenance.files), records_of(&expected));
    // The LFS files' recorded digests are the sha256 the Hub states for them.
    for lfs in [
        "model-00001-of-00002.safetensors",
        "model-00002-of-00002.safetensors",
    ] {
        let record = provenance.files.iter().find(|f| f.path == lfs).ok_or(lfs)?;
        assert_eq!(
            record.digest.as_ref(),
            Some(&fixture_digest(&repo, "main", lfs))
        );
    }
    // The tree digest, given, passes.
    let again = p.ensure(&reference.parse()?, Some(&tree_digest(&expected)))?;
    assert!(again.cached);
    assert_eq!(again.entry.verification.outcome, Outcome::Pass);
    Ok(())
}

#[test]
fn include_and_exclude_select_exactly_the_matching_files() -> TestResult {
    let olah = Olah::start();
    let repo = olah.add_repo(HfRepoBuilder::tiny_llama());
    let dirs = Dirs::new()?;
    let reference = format!("hf:{TINY_LLAMA}");
    let all = repo.contents("main");
    let only = |keep: &dyn Fn(&str) -> bool| -> BTreeMap<String, Vec<u8>> {
        all.iter()
            .filter(|(k, _)| keep(k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    };
    let weights_and_json = only(&|f| {
        Path::new(f)
            .extension()
            .is_some_and(|e| e == "safetensors" || e == "json")
    });
    let not_onnx = only(&|f| !f.starts_with("onnx/"));
    assert!(weights_and_json.contains_key("original/params.json"));
    assert!(weights_and_json.len() < all.len() && not_onnx.len() < all.len());

    let include = dirs.provisioner_with(&olah.endpoint(), |c| {
        c.include = vec!["*.safetensors".into(), "*.json".into()];
    })?;
    let included = include.ensure(&reference.parse()?, None)?;
    assert_holds(&included.resolved.local_path, &weights_and_json);
    let provenance = included.entry.provenance.as_ref().ok_or("no provenance")?;
    assert_eq!(provenance.include, ["*.safetensors", "*.json"]);
    assert_eq!(
        without_etags(&provenance.files),
        records_of(&weights_and_json)
    );

    // The same id with other filters is fetched again, not served from the other entry.
    let exclude = dirs.provisioner_with(&olah.endpoint(), |c| {
        c.exclude = vec!["onnx/*".into()];
    })?;
    let excluded = exclude.ensure(&reference.parse()?, None)?;
    assert!(
        !excluded.cached,
        "served from the entry made with --include"
    );
    assert_eq!(excluded.resolved.id, reference);
    assert_ne!(excluded.resolved.local_path, included.resolved.local_path);
    assert_holds(&excluded.resolved.local_path, &not_onnx);

    let both = dirs.provisioner_with(&olah.endpoint(), |c| {
        c.include = vec!["*.safetensors".into(), "*.json".into()];
        c.exclude = vec!["onnx/*".into(), "original/*".into()];
    })?;
    let narrowed = both.ensure(&reference.parse()?, None)?;
    assert!(!narrowed.cached);
    let mut expected = weights_and_json.clone();
    expected.remove("original/params.json");
    assert_holds(&narrowed.resolved.local_path, &expected);

    // No filter: every file, not the filtered entry.
    let unfiltered = dirs.provisioner(&olah.endpoint())?;
    let everything = unfiltered.ensure(&reference.parse()?, None)?;
    assert!(!everything.cached, "served from a filtered entry");
    assert_holds(&everything.resolved.local_path, &all);
    Ok(())
}

#[test]
fn a_pattern_matching_nothing_is_a_clear_error_and_writes_nothing() -> TestResult {
    let olah = Olah::start();
    olah.add_repo(HfRepoBuilder::tiny_llama());
    let dirs = Dirs::new()?;
    let p = dirs.provisioner_with(&olah.endpoint(), |c| {
        c.include = vec!["*.gguf".into()];
    })?;
    let reference = format!("hf:{TINY_LLAMA}");
    let err = p
        .ensure(&reference.parse()?, None)
        .expect_err("nothing matches");
    let Error::HfNotFound { what } = &err else {
        panic!("expected HfNotFound, got {err:?}");
    };
    assert!(
        what.contains(TINY_LLAMA) && what.contains("pattern"),
        "{what}"
    );
    assert!(err.hint().is_some());
    assert_eq!(p.catalog().list()?, []);
    assert_eq!(
        names_under(&dirs.cache().join("models")),
        Vec::<String>::new()
    );
    assert_eq!(
        names_under(&dirs.cache().join("blobs")),
        Vec::<String>::new()
    );
    Ok(())
}

#[test]
fn a_pinned_commit_keeps_its_files_after_main_moves_on() -> TestResult {
    let olah = Olah::start();
    let repo = olah.add_repo(HfRepoBuilder::tiny_gguf());
    let first = repo.tag("v1.0");
    let old = repo.bytes("main", Q4);
    let second = repo.commit_files("new q4", &[(Q4, &fake_gguf("q4 v2", 8000))]);
    let dirs = Dirs::new()?;
    let p = dirs.provisioner(&olah.endpoint())?;

    let pinned = format!("hf:{TINY_GGUF}@{first}/{Q4}");
    let ensured = p.ensure(&pinned.parse()?, None)?;
    assert_eq!(ensured.resolved.id, pinned);
    assert_eq!(fs::read(&ensured.resolved.local_path)?, old);
    let provenance = ensured.entry.provenance.as_ref().ok_or("no provenance")?;
    assert_eq!(
        provenance.resolved_revision.as_deref(),
        Some(first.as_str())
    );

    // A tag, and a whole repo at it.
    let tag = format!("hf:{TINY_GGUF}@v1.0");
    let ensured = p.ensure(&tag.parse()?, None)?;
    assert_eq!(ensured.resolved.id, tag);
    assert_holds(&ensured.resolved.local_path, &repo.contents(&first));
    let provenance = ensured.entry.provenance.as_ref().ok_or("no provenance")?;
    assert_eq!(
        provenance.resolved_revision.as_deref(),
        Some(first.as_str())
    );

    let head = format!("hf:{TINY_GGUF}/{Q4}");
    let ensured = p.ensure(&head.parse()?, None)?;
    assert_eq!(
        fs::read(&ensured.resolved.local_path)?,
        repo.bytes(&second, Q4)
    );
    Ok(())
}

#[test]
fn a_moved_branch_is_served_from_the_catalog_until_refresh() -> TestResult {
    let olah = Olah::start();
    let repo = olah.add_repo(HfRepoBuilder::tiny_gguf());
    let dirs = Dirs::new()?;
    let reference = format!("hf:{TINY_GGUF}/{Q4}");
    let first = repo.head();
    let old = repo.bytes("main", Q4);
    let p = dirs.provisioner(&olah.endpoint())?;
    let before = p.ensure(&reference.parse()?, None)?;
    assert_eq!(fs::read(&before.resolved.local_path)?, old);

    let new = fake_gguf("tiny-gguf/q4 v2", 9000);
    let second = repo.commit_files("new q4", &[(Q4, &new)]);
    assert_ne!(first, second);

    // Unpinned, already in the catalog: served as it is, with no request.
    olah.clear_log();
    let cached = p.ensure(&reference.parse()?, None)?;
    assert!(cached.cached);
    assert_eq!(cached.bytes_read, 0);
    assert_eq!(fs::read(&cached.resolved.local_path)?, old);
    assert_eq!(
        cached
            .entry
            .provenance
            .as_ref()
            .and_then(|p| p.resolved_revision.clone()),
        Some(first.clone())
    );
    assert_eq!(olah.settled_requests(), []);

    // The old commit, pinned: still the old bytes, from the store.
    let pinned = format!("hf:{TINY_GGUF}@{first}/{Q4}");
    let ensured = p.ensure(&pinned.parse()?, None)?;
    assert_eq!(fs::read(&ensured.resolved.local_path)?, old);
    assert_eq!(ensured.bytes_read, 0, "the blob is in the store already");

    // Refresh: the new commit and its bytes.
    olah.clear_log();
    let refreshed = dirs
        .provisioner(&olah.endpoint())?
        .with_refresh(true)
        .ensure(&reference.parse()?, None)?;
    assert!(!refreshed.cached);
    assert_eq!(refreshed.resolved.id, reference);
    assert_eq!(fs::read(&refreshed.resolved.local_path)?, new);
    assert_eq!(refreshed.bytes_read, new.len() as u64);
    let provenance = refreshed.entry.provenance.as_ref().ok_or("no provenance")?;
    assert_eq!(
        provenance.resolved_revision.as_deref(),
        Some(second.as_str())
    );
    assert_eq!(
        refreshed.entry.verification.computed,
        Some(Digest::sha256_of(&new))
    );
    // The pinned entry is untouched.
    assert_eq!(fs::read(&ensured.resolved.local_path)?, old);
    assert_eq!(
        resolve_gets(&olah.requests_of_at_least(3)).len(),
        1,
        "{:?}",
        olah.requests()
    );
    Ok(())
}

#[test]
fn refresh_downloads_only_the_files_that_changed() -> TestResult {
    let olah = Olah::start();
    let repo = olah.add_repo(HfRepoBuilder::tiny_llama());
    let dirs = Dirs::new()?;
    let reference = format!("hf:{TINY_LLAMA}");
    dirs.provisioner(&olah.endpoint())?
        .ensure(&reference.parse()?, None)?;

    let shard = "model-00001-of-00002.safetensors";
    let new_shard = fake_safetensors("shard1 v2", "model.embed_tokens.weight", 4096);
    let second = repo.commit_files("new shard", &[(shard, &new_shard)]);
    olah.clear_log();
    let refreshed = dirs
        .provisioner(&olah.endpoint())?
        .with_refresh(true)
        .ensure(&reference.parse()?, None)?;
    assert_holds(&refreshed.resolved.local_path, &repo.contents(&second));
    let provenance = refreshed.entry.provenance.as_ref().ok_or("no provenance")?;
    assert_eq!(
        provenance.resolved_revision.as_deref(),
        Some(second.as_str())
    );
    let requests = olah.settled_requests();
    let gets: Vec<&str> = resolve_gets(&requests)
        .iter()
        .map(|r| r.path.as_str())
        .collect();
    assert!(
        gets.iter().any(|g| g.ends_with(shard)),
        "the changed shard was not downloaded: {gets:?}"
    );
    // The unchanged LFS file is taken from the store ...
    assert!(
        !gets
            .iter()
            .any(|g| g.ends_with("model-00002-of-00002.safetensors")),
        "{gets:?}"
    );
    // ... and so should every other unchanged file be.
    assert_eq!(
        gets,
        [format!("/{TINY_LLAMA}/resolve/{second}/{shard}")],
        "unchanged files were downloaded again"
    );
    assert_eq!(refreshed.bytes_read, new_shard.len() as u64);
    Ok(())
}

#[test]
fn refresh_at_the_same_commit_leaves_the_model_directory_as_it_was() -> TestResult {
    let olah = Olah::start();
    let repo = olah.add_repo(HfRepoBuilder::tiny_llama());
    let dirs = Dirs::new()?;
    let reference = format!("hf:{TINY_LLAMA}");
    let expected = repo.contents("main");
    let first = dirs
        .provisioner(&olah.endpoint())?
        .ensure(&reference.parse()?, None)?;
    let p = dirs.provisioner(&olah.endpoint())?.with_refresh(true);
    let again = p.ensure(&reference.parse()?, None)?;
    assert_eq!(again.resolved.local_path, first.resolved.local_path);
    // The directory still hashes to what was recorded ...
    let verified = p.verify(&reference)?;
    assert_eq!(
        verified.entry.verification.computed.as_ref(),
        Some(&tree_digest(&expected))
    );
    assert_ne!(verified.entry.verification.outcome, Outcome::Fail);
    // ... because linking the same blob again at the same name leaves nothing beside it.
    assert_holds(&again.resolved.local_path, &expected);
    Ok(())
}

#[test]
fn missing_repo_file_and_revision_are_not_found_and_change_nothing() -> TestResult {
    let olah = Olah::start();
    let repo = olah.add_repo(HfRepoBuilder::tiny_gguf());
    let dirs = Dirs::new()?;
    let p = dirs.provisioner(&olah.endpoint())?;
    p.ensure(&format!("hf:{TINY_GGUF}/{Q4}").parse()?, None)?;
    let index = dirs.index().ok_or("no index")?;
    let head = repo.head();
    for (reference, names) in [
        (
            "hf:test-org/no-such-repo/x.gguf",
            vec!["test-org/no-such-repo"],
        ),
        ("hf:test-org/no-such-repo", vec!["test-org/no-such-repo"]),
        (
            "hf:test-org/tiny-gguf/no-such-file.gguf",
            vec!["no-such-file.gguf", TINY_GGUF],
        ),
        (
            "hf:test-org/tiny-gguf@no-such-branch/model.Q4_K_M.gguf",
            vec!["no-such-branch", TINY_GGUF],
        ),
    ] {
        let err = p.ensure(&reference.parse()?, None).expect_err(reference);
        let Error::HfNotFound { what } = &err else {
            panic!("{reference}: expected HfNotFound, got {err:?}");
        };
        let message = err.to_string();
        assert!(!message.contains('\n'), "{reference}: {message:?}");
        for name in names {
            assert!(
                message.contains(name),
                "{reference}: {message} lacks {name}"
            );
        }
        assert!(!what.is_empty());
        assert!(err.hint().is_some(), "{reference}: no hint");
        assert_eq!(dirs.index().as_ref(), Some(&index), "{reference}");
    }
    // The file names its commit, so the message says which version lacks it.
    let err = p
        .ensure(&format!("hf:{TINY_GGUF}/no-such-file.gguf").parse()?, None)
        .expect_err("missing file");
    assert!(err.to_string().contains(&head), "{err}");
    Ok(())
}

/// The bytes the lying proxy sends for `body`: one byte flipped in the middle.
fn corrupted(body: &[u8]) -> Vec<u8> {
    let mut out = body.to_vec();
    let middle = out.len() / 2;
    out[middle] ^= 0xff;
    out
}

#[test]
fn an_lfs_file_whose_bytes_do_not_match_the_hub_sha256_is_refused() -> TestResult {
    let olah = Olah::start();
    let repo = olah.add_repo(HfRepoBuilder::tiny_llama());
    let shard = "model-00002-of-00002.safetensors";
    let proxy = LyingProxy::start(
        &olah.endpoint(),
        &format!("/resolve/{}/{shard}", repo.head()),
    );
    let dirs = Dirs::new()?;
    let p = dirs.provisioner(&proxy.endpoint())?;
    let reference = format!("hf:{TINY_LLAMA}");
    let good = fixture_digest(&repo, "main", shard);
    let bad = Digest::sha256_of(&corrupted(&repo.bytes("main", shard)));

    let err = p
        .ensure(&reference.parse()?, None)
        .expect_err("the bytes are wrong");
    assert!(proxy.lies() >= 1, "{:?}", proxy.requests());
    let Error::DigestMismatch(DigestMismatch {
        id,
        expected,
        computed,
    }) = &err
    else {
        panic!("expected a digest mismatch, got {err:?}");
    };
    assert_eq!(expected, &good);
    assert_eq!(computed, &bad);
    assert!(id.contains(TINY_LLAMA) && id.contains(shard), "{id}");
    let message = err.to_string();
    assert!(
        message.contains(good.value()) && message.contains(bad.value()),
        "{message}"
    );
    assert!(err.is_verification_failure());
    assert_eq!(p.catalog().get(&reference)?, None, "an entry was recorded");
    for digest in [&good, &bad] {
        let blob = dirs.cache().join("blobs/sha256").join(digest.value());
        assert!(!blob.exists(), "{} was published", blob.display());
    }
    let tmp = leftovers_in_tmp(dirs.cache());
    assert!(tmp.is_empty(), "left in tmp: {tmp:?}");
    Ok(())
}

#[test]
fn a_fetch_after_a_refused_one_gives_a_clean_verifiable_directory() -> TestResult {
    let olah = Olah::start();
    let repo = olah.add_repo(HfRepoBuilder::tiny_llama());
    let shard = "model-00002-of-00002.safetensors";
    let proxy = LyingProxy::start(
        &olah.endpoint(),
        &format!("/resolve/{}/{shard}", repo.head()),
    );
    let dirs = Dirs::new()?;
    let reference = format!("hf:{TINY_LLAMA}");
    // One worker, so that the files before the lying one are placed first.
    let lied_to = dirs.provisioner_with(&proxy.endpoint(), |c| c.parallel_files = 1)?;
    let err = lied_to
        .ensure(&reference.parse()?, None)
        .expect_err("the bytes are wrong");
    assert!(err.is_verification_failure(), "{err:?}");

    // The honest server, later: the same cache fetches it, and the directory holds the
    // repository's files and nothing else, so that it verifies.
    let honest = dirs.provisioner(&olah.endpoint())?;
    let ensured = honest.ensure(&reference.parse()?, None)?;
    let expected = repo.contents("main");
    let verified = honest.verify(&reference)?;
    assert_eq!(
        verified.entry.verification.computed.as_ref(),
        Some(&tree_digest(&expected))
    );
    assert_holds(&ensured.resolved.local_path, &expected);
    Ok(())
}

#[test]
fn a_single_lfs_file_with_wrong_bytes_is_refused_and_nothing_is_kept() -> TestResult {
    let olah = Olah::start();
    let repo = olah.add_repo(HfRepoBuilder::tiny_gguf());
    let proxy = LyingProxy::start(&olah.endpoint(), Q4);
    let dirs = Dirs::new()?;
    let reference = format!("hf:{TINY_GGUF}/{Q4}");
    let p = dirs.provisioner(&proxy.endpoint())?;
    let err = p
        .ensure(&reference.parse()?, None)
        .expect_err("the bytes are wrong");
    let Error::DigestMismatch(DigestMismatch {
        id,
        expected,
        computed,
    }) = &err
    else {
        panic!("expected a digest mismatch, got {err:?}");
    };
    assert_eq!(expected, &fixture_digest(&repo, "main", Q4));
    assert_eq!(
        computed,
        &Digest::sha256_of(&corrupted(&repo.bytes("main", Q4)))
    );
    // The id names the reference the user gave.
    assert_eq!(id, &reference);
    assert_eq!(p.catalog().get(&reference)?, None);
    assert_eq!(
        names_under(&dirs.cache().join("blobs")),
        Vec::<String>::new()
    );
    assert_eq!(
        names_under(&dirs.cache().join("models")),
        Vec::<String>::new()
    );
    let tmp = leftovers_in_tmp(dirs.cache());
    assert!(tmp.is_empty(), "left in tmp: {tmp:?}");
    Ok(())
}

#[test]
fn offline_a_model_in_the_catalog_is_served_with_no_request() -> TestResult {
    let olah = Olah::start();
    olah.add_repo(HfRepoBuilder::tiny_llama());
    let dirs = Dirs::new()?;
    let reference = format!("hf:{TINY_LLAMA}");
    let online = dirs
        .provisioner(&olah.endpoint())?
        .ensure(&reference.parse()?, None)?;

    olah.clear_log();
    let offline = dirs.provisioner_with(&olah.endpoint(), |c| c.offline = true)?;
    let ensured = offline.ensure(&reference.parse()?, None)?;
    assert!(ensured.cached);
    assert_eq!(ensured.resolved, online.resolved);
    assert_eq!(olah.settled_requests(), []);
    Ok(())
}

#[test]
fn offline_a_model_in_the_hf_cache_is_copied_and_verified_with_no_request() -> TestResult {
    let olah = Olah::start();
    let gguf = olah.add_repo(HfRepoBuilder::tiny_gguf());
    let llama = olah.add_repo(HfRepoBuilder::tiny_llama());
    let dirs = Dirs::new()?;
    let hub = dirs.hub().to_str().ok_or("non-UTF-8 temp dir")?;
    olah.hf_download(&[TINY_GGUF, Q4, "--cache-dir", hub]);
    olah.hf_download(&[TINY_LLAMA, "--cache-dir", hub]);

    olah.clear_log();
    let p = dirs.provisioner_with(&olah.endpoint(), |c| c.offline = true)?;
    let file = p.ensure(&format!("hf:{TINY_GGUF}/{Q4}").parse()?, None)?;
    assert!(!file.cached);
    assert_eq!(fs::read(&file.resolved.local_path)?, gguf.bytes("main", Q4));
    assert!(file.resolved.local_path.starts_with(dirs.cache()));
    let sha = fixture_digest(&gguf, "main", Q4);
    assert_eq!(file.entry.verification.computed.as_ref(), Some(&sha));
    let provenance = file.entry.provenance.as_ref().ok_or("no provenance")?;
    assert_eq!(provenance.resolved_revision, Some(gguf.head()));

    let repo = p.ensure(&format!("hf:{TINY_LLAMA}").parse()?, None)?;
    let expected = llama.contents("main");
    assert_holds(&repo.resolved.local_path, &expected);
    assert_eq!(
        repo.entry.verification.computed.as_ref(),
        Some(&tree_digest(&expected))
    );
    assert_eq!(
        repo.entry
            .provenance
            .as_ref()
            .map(|p| without_etags(&p.files)),
        Some(records_of(&expected))
    );
    assert_eq!(olah.settled_requests(), []);
    Ok(())
}

#[test]
fn offline_a_damaged_hf_cache_file_is_refused() -> TestResult {
    let olah = Olah::start();
    let repo = olah.add_repo(HfRepoBuilder::tiny_gguf());
    let dirs = Dirs::new()?;
    let hub = dirs.hub().to_str().ok_or("non-UTF-8 temp dir")?;
    let snapshot_file = olah.hf_download(&[TINY_GGUF, Q4, "--cache-dir", hub]);
    let sha = fixture_digest(&repo, "main", Q4);
    let blob = fs::canonicalize(&snapshot_file)?;
    assert!(blob.ends_with(sha.value()), "{}", blob.display());
    let damaged = corrupted(&fs::read(&blob)?);
    fs::write(&blob, &damaged)?;

    let p = dirs.provisioner_with(&olah.endpoint(), |c| c.offline = true)?;
    let reference = format!("hf:{TINY_GGUF}/{Q4}");
    match p.ensure(&reference.parse()?, None) {
        Err(Error::DigestMismatch(DigestMismatch {
            expected, computed, ..
        })) => {
            assert_eq!(expected, sha);
            assert_eq!(computed, Digest::sha256_of(&damaged));
        }
        other => panic!("expected a digest mismatch, got {other:?}"),
    }
    assert_eq!(p.catalog().get(&reference)?, None);
    Ok(())
}

#[test]
fn offline_with_neither_catalog_nor_hf_cache_fails_naming_the_reference() -> TestResult {
    let olah = Olah::start();
    olah.add_repo(HfRepoBuilder::tiny_gguf());
    let dirs = Dirs::new()?;
    let p = dirs.provisioner_with(&olah.endpoint(), |c| c.offline = true)?;
    for reference in [format!("hf:{TINY_GGUF}/{Q4}"), format!("hf:{TINY_GGUF}")] {
        let err = p
            .ensure(&reference.parse()?, None)
            .expect_err("nothing to answer from");
        let Error::HfOffline { reference: r, .. } = &err else {
            panic!("expected HfOffline, got {err:?}");
        };
        assert_eq!(r, &reference);
        assert!(err.to_string().contains(&reference), "{err}");
        assert!(err.hint().is_some_and(|h| h.contains("HF_HUB_OFFLINE")));
    }
    // No HF cache configured at all.
    let none = dirs.provisioner_with(&olah.endpoint(), |c| {
        c.offline = true;
        c.hub_cache = None;
    })?;
    let err = none
        .ensure(&format!("hf:{TINY_GGUF}/{Q4}").parse()?, None)
        .expect_err("nothing to answer from");
    assert!(matches!(err, Error::HfOffline { .. }), "{err:?}");
    assert_eq!(p.catalog().list()?, []);
    assert_eq!(olah.settled_requests(), []);
    Ok(())
}

#[test]
fn online_an_hf_cache_filled_by_hf_download_is_reused_without_downloading() -> TestResult {
    let olah = Olah::start();
    let repo = olah.add_repo(HfRepoBuilder::tiny_llama());
    let dirs = Dirs::new()?;
    let hub = dirs.hub().to_str().ok_or("non-UTF-8 temp dir")?;
    let snapshot = olah.hf_download(&[TINY_LLAMA, "--cache-dir", hub]);
    let expected = repo.contents("main");

    olah.clear_log();
    let ensured = dirs
        .provisioner(&olah.endpoint())?
        .ensure(&format!("hf:{TINY_LLAMA}").parse()?, None)?;
    assert!(!ensured.cached);
    assert_eq!(ensured.bytes_read, 0);
    assert_holds(&ensured.resolved.local_path, &expected);
    assert!(ensured.resolved.local_path.starts_with(dirs.cache()));
    assert_eq!(
        ensured.entry.verification.computed.as_ref(),
        Some(&tree_digest(&expected))
    );
    let requests = olah.settled_requests();
    assert!(!requests.is_empty(), "the revision was not resolved online");
    assert_eq!(resolve_gets(&requests), Vec::<&OlahRequest>::new());
    // The Hugging Face cache is left as it was.
    assert_holds(&snapshot, &expected);
    Ok(())
}

#[test]
fn a_file_in_a_subfolder_keeps_its_relative_path() -> TestResult {
    let olah = Olah::start();
    let repo = olah.add_repo(HfRepoBuilder::tiny_llama());
    let dirs = Dirs::new()?;
    let reference = format!("hf:{TINY_LLAMA}/original/params.json");
    let ensured = dirs
        .provisioner(&olah.endpoint())?
        .ensure(&reference.parse()?, None)?;
    assert_eq!(ensured.resolved.id, reference);
    assert!(
        ensured
            .resolved
            .local_path
            .ends_with("original/params.json"),
        "{}",
        ensured.resolved.local_path.display()
    );
    let bytes = repo.bytes("main", "original/params.json");
    assert_eq!(fs::read(&ensured.resolved.local_path)?, bytes);
    assert_eq!(
        ensured.entry.verification.computed,
        Some(Digest::sha256_of(&bytes))
    );
    Ok(())
}

#[test]
fn a_small_git_file_whose_bytes_do_not_match_its_etag_is_refused() -> TestResult {
    // The Hub states a git blob sha1 (the `ETag`) for files not in LFS: the native client, which
    // promises to check every byte, has that to check them against.
    let olah = Olah::start();
    let repo = olah.add_repo(HfRepoBuilder::tiny_llama());
    let proxy = LyingProxy::start(
        &olah.endpoint(),
        &format!("/resolve/{}/config.json", repo.head()),
    );
    let dirs = Dirs::new()?;
    let p = dirs.provisioner(&proxy.endpoint())?;
    let reference = format!("hf:{TINY_LLAMA}");
    let result = p.ensure(&reference.parse()?, None);
    assert!(proxy.lies() >= 1, "{:?}", proxy.requests());
    match result {
        Ok(ensured) => panic!(
            "corrupted `config.json` was accepted: {:?}",
            fs::read(ensured.resolved.local_path.join("config.json"))
                .map(|b| String::from_utf8_lossy(&b).into_owned())
        ),
        Err(err) => {
            assert!(err.is_verification_failure(), "{err:?}");
            assert!(err.to_string().contains("config.json"), "{err}");
        }
    }
    assert_eq!(p.catalog().get(&reference)?, None);
    Ok(())
}

#[test]
fn online_a_damaged_hf_cache_file_is_downloaded_again() -> TestResult {
    let olah = Olah::start();
    let repo = olah.add_repo(HfRepoBuilder::tiny_gguf());
    let dirs = Dirs::new()?;
    let hub = dirs.hub().to_str().ok_or("non-UTF-8 temp dir")?;
    let snapshot_file = olah.hf_download(&[TINY_GGUF, Q4, "--cache-dir", hub]);
    let blob = fs::canonicalize(&snapshot_file)?;
    fs::write(&blob, corrupted(&fs::read(&blob)?))?;

    olah.clear_log();
    let reference = format!("hf:{TINY_GGUF}/{Q4}");
    let ensured = dirs
        .provisioner(&olah.endpoint())?
        .ensure(&reference.parse()?, None)?;
    let bytes = repo.bytes("main", Q4);
    assert_eq!(fs::read(&ensured.resolved.local_path)?, bytes);
    assert_eq!(ensured.bytes_read, bytes.len() as u64);
    assert_eq!(
        ensured.entry.verification.computed,
        Some(fixture_digest(&repo, "main", Q4))
    );
    assert_eq!(
        resolve_gets(&olah.requests_of_at_least(3)).len(),
        1,
        "{:?}",
        olah.requests()
    );
    Ok(())
}

#[test]
fn hostile_file_names_in_a_remote_listing_are_refused_before_anything_is_written() -> TestResult {
    for name in [
        "../escape.gguf",
        "/etc/passwd",
        "a/../../x",
        "dir\\\\file",
        "a\\u0000b",
        "./x",
        "a//b",
    ] {
        let listing = format!(
            r#"{{"sha": "0123456789abcdef0123456789abcdef01234567", "siblings": [{{"rfilename": "config.json"}}, {{"rfilename": "{name}"}}]}}"#
        );
        // A server that answers every request with this listing.
        let server = test_support::FaultServer::start(
            listing.into_bytes(),
            vec![test_support::Answer::Serve { ranges: false }],
        );
        let cache = tempfile::tempdir()?;
        let endpoint = server.url("").trim_end_matches('/').to_owned();
        let p = provisioner(
            cache.path(),
            hf_config(&endpoint, &cache.path().join("no-hf-cache")),
        )?;
        let err = p.ensure(&"hf:evil/repo".parse()?, None).expect_err(name);
        assert!(matches!(err, Error::HostileName { .. }), "{name}: {err:?}");
        assert!(!cache.path().join("models").exists(), "{name}");
        assert!(!cache.path().join("catalog/index.json").exists(), "{name}");
        assert_eq!(server.requests(), 1, "only the listing was asked for");
    }
    Ok(())
}

/// The Hub's API is retried like every download: a `503` before the revision answers is
/// ridden out, and the answer read (here, a revision with no file at all).
#[test]
fn a_transient_hub_api_failure_is_retried_with_the_engine_policy() -> TestResult {
    let revision = br#"{"sha": "0123456789abcdef0123456789abcdef01234567", "siblings": []}"#;
    let hub = test_support::FaultServer::start(
        revision.to_vec(),
        vec![
            test_support::Answer::Status(503),
            test_support::Answer::Serve { ranges: false },
        ],
    );
    let dirs = Dirs::new()?;
    let endpoint = hub.url("").trim_end_matches('/').to_owned();
    let err = provisioner(dirs.cache(), hf_config(&endpoint, dirs.hub()))?
        .ensure(&"hf:org/empty".parse()?, None)
        .expect_err("no file");
    assert!(matches!(err, Error::HfNotFound { .. }), "{err:?}");
    assert_eq!(hub.requests(), 2, "one failure, one retry");
    let paths: Vec<_> = hub.log().into_iter().map(|s| s.path).collect();
    assert!(
        paths
            .iter()
            .all(|p| p == "/api/models/org/empty/revision/main"),
        "{paths:?}"
    );
    Ok(())
}
