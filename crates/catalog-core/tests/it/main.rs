//! Integration tests of the catalog: concurrency, refusal of bad indexes, path safety.

mod props;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use catalog_core::{
    ArtifactRemoval, CatalogEntry, CatalogStore, Deletion, Digest, Error, FsCatalog, Lifecycle,
    ModelRef, Outcome, Storage, Verification, now_ms,
};

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn entry(id: &str, path: &Path, storage: Storage) -> CatalogEntry {
    CatalogEntry {
        id: id.to_owned(),
        source: id.to_owned(),
        local_path: path.to_owned(),
        lifecycle: Lifecycle::Active,
        storage,
        digest: None,
        source_digest: None,
        verification: Verification::unverified(),
        last_verified_ms: None,
        size_bytes: 0,
        fingerprint: None,
        created_ms: now_ms(),
        updated_ms: now_ms(),
        provenance: None,
        model_info: None,
        signature: None,
    }
}

struct Fixture {
    dir: tempfile::TempDir,
    catalog: FsCatalog,
}

impl Fixture {
    fn new() -> Result<Self, Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let catalog = FsCatalog::open(dir.path().join("cache"))?;
        Ok(Fixture { dir, catalog })
    }

    /// A real file outside the cache, registered in place.
    fn user_file(&self, name: &str) -> Result<PathBuf, Box<dyn std::error::Error>> {
        let path = self.dir.path().join(name);
        fs::write(&path, name)?;
        Ok(fs::canonicalize(path)?)
    }

    fn index(&self) -> PathBuf {
        self.catalog.layout().index_path()
    }
}

#[test]
fn concurrent_writers_lose_no_entry_and_readers_never_see_a_torn_index() -> TestResult {
    let fx = Fixture::new()?;
    fx.catalog
        .put(entry("seed", Path::new("/seed"), Storage::InPlace))?;
    let done = Arc::new(AtomicBool::new(false));
    let reader = {
        let catalog = fx.catalog.clone();
        let done = Arc::clone(&done);
        std::thread::spawn(move || -> Result<usize, Error> {
            let mut reads = 0;
            while !done.load(Ordering::Relaxed) {
                assert!(!catalog.list()?.is_empty());
                reads += 1;
            }
            Ok(reads)
        })
    };
    let writers: Vec<_> = (0..8)
        .map(|t| {
            let catalog = fx.catalog.clone();
            std::thread::spawn(move || -> Result<(), Error> {
                for i in 0..25 {
                    let id = format!("file:/m/{t}/{i}");
                    catalog.put(entry(&id, Path::new(&id[5..]), Storage::InPlace))?;
                }
                Ok(())
            })
        })
        .collect();
    for w in writers {
        w.join().expect("writer panicked")?;
    }
    done.store(true, Ordering::Relaxed);
    let reads = reader.join().expect("reader panicked")?;
    assert!(reads > 0);
    assert_eq!(fx.catalog.list()?.len(), 8 * 25 + 1);
    Ok(())
}

#[test]
fn an_unreadable_index_is_refused_by_every_operation_and_never_rewritten() -> TestResult {
    type IsExpected = fn(&Error) -> bool;
    let cases: [(&str, IsExpected); 6] = [
        ("not json at all", |e| matches!(e, Error::IndexParse { .. })),
        (r#"{"version": 1, "entries": {"#, |e| {
            matches!(e, Error::IndexParse { .. })
        }),
        (r#"{"entries": {}}"#, |e| {
            matches!(e, Error::IndexParse { .. })
        }),
        (r#"{"version": 1}"#, |e| {
            matches!(e, Error::IndexParse { .. })
        }),
        (r#"{"version": "1", "entries": {}}"#, |e| {
            matches!(e, Error::IndexVersion { .. })
        }),
        (r#"{"version": 99, "entries": {"x": 1}}"#, |e| {
            matches!(e, Error::IndexVersion { .. })
        }),
    ];
    for (text, expected) in cases {
        let fx = Fixture::new()?;
        fs::create_dir_all(fx.catalog.layout().catalog_dir())?;
        fs::write(fx.index(), text)?;
        let results: Vec<Result<(), Error>> = vec![
            fx.catalog.get("x").map(drop),
            fx.catalog.list().map(drop),
            fx.catalog
                .put(entry("y", Path::new("/y"), Storage::InPlace)),
            fx.catalog.set_state("x", Lifecycle::Retired).map(drop),
            fx.catalog.delete("x").map(drop),
            fx.catalog.gc(false).map(drop),
            fx.catalog.exists("x").map(drop),
        ];
        for r in results {
            let err = r.expect_err(text);
            assert!(expected(&err), "{text}: {err:?}");
            assert!(
                err.to_string().contains(&fx.index().display().to_string()),
                "{err}"
            );
            assert!(err.hint().is_some(), "{err}");
        }
        assert_eq!(fs::read_to_string(fx.index())?, text);
    }
    Ok(())
}

#[test]
fn a_cache_root_that_is_a_file_is_refused() -> TestResult {
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("cache");
    fs::write(&file, "x")?;
    assert!(matches!(
        FsCatalog::open(&file),
        Err(Error::CacheRootNotDir { .. })
    ));
    Ok(())
}

#[test]
fn delete_never_removes_anything_outside_the_root() -> TestResult {
    let fx = Fixture::new()?;
    let victim = fx.user_file("precious.gguf")?;
    // An entry that claims the cache owns a file outside it (a tampered index).
    fx.catalog.put(entry("evil", &victim, Storage::Cache))?;
    let Deletion::Removed { artifact, .. } = fx.catalog.delete("evil")? else {
        panic!("entry should exist");
    };
    assert!(
        matches!(artifact, ArtifactRemoval::Failed(Error::OutsideRoot { .. })),
        "{artifact:?}"
    );
    assert!(victim.exists());

    // A symlink planted inside the cache that points outside.
    let models = fx.catalog.layout().models_dir();
    fs::create_dir_all(&models)?;
    std::os::unix::fs::symlink(fx.dir.path(), models.join("link"))?;
    fx.catalog.put(entry(
        "planted",
        &models.join("link/precious.gguf"),
        Storage::Cache,
    ))?;
    let Deletion::Removed { artifact, .. } = fx.catalog.delete("planted")? else {
        panic!("entry should exist");
    };
    assert!(
        matches!(artifact, ArtifactRemoval::Failed(Error::OutsideRoot { .. })),
        "{artifact:?}"
    );
    assert!(victim.exists());
    assert!(
        fx.catalog.get("planted")?.is_none(),
        "the entry goes even when its file stays"
    );
    Ok(())
}

#[test]
fn delete_keeps_in_place_files_and_reports_unknown_ids() -> TestResult {
    let fx = Fixture::new()?;
    let file = fx.user_file("mine.gguf")?;
    fx.catalog.put(entry("mine", &file, Storage::InPlace))?;
    assert!(matches!(
        fx.catalog.delete("mine")?,
        Deletion::Removed {
            artifact: ArtifactRemoval::KeptInPlace,
            ..
        }
    ));
    assert!(file.exists());
    assert!(!fx.catalog.delete("mine")?.existed());
    Ok(())
}

#[test]
fn exists_and_locate_are_read_only_and_honest() -> TestResult {
    let fx = Fixture::new()?;
    // Nothing is created by a lookup in a cache that does not exist yet.
    assert!(!fx.catalog.exists("file:/nope")?);
    assert!(!fx.catalog.layout().root().exists());

    let file = fx.user_file("model.gguf")?;
    let id = format!("file:{}", file.display());
    fx.catalog.put(entry(&id, &file, Storage::InPlace))?;
    let before = fs::read(fx.index())?;
    let mtime = fs::metadata(fx.index())?.modified()?;

    let by_ref: ModelRef = file.display().to_string().parse()?;
    assert!(fx.catalog.exists(&id)?);
    assert!(fx.catalog.exists(&file.display().to_string())?);
    assert_eq!(
        fx.catalog.locate(&by_ref)?.map(|r| r.local_path),
        Some(file.clone())
    );

    fx.catalog.set_state(&id, Lifecycle::Retired)?;
    assert!(!fx.catalog.exists(&id)?);
    fx.catalog.set_state(&id, Lifecycle::Active)?;

    let mut failed = fx.catalog.get(&id)?.ok_or("missing")?;
    failed.verification = Verification {
        outcome: Outcome::Fail,
        computed: Some(Digest::sha256_of(b"other")),
    };
    fx.catalog.put(failed)?;
    assert!(
        fx.catalog.locate(&by_ref)?.is_none(),
        "a failed artifact is not handed out"
    );

    fx.catalog.put(entry(&id, &file, Storage::InPlace))?;
    fs::remove_file(&file)?;
    assert!(!fx.catalog.exists(&id)?, "a missing file is not present");

    let now = fs::read(fx.index())?;
    assert_ne!(before, now, "the puts above changed it");
    let mtime_after = fs::metadata(fx.index())?.modified()?;
    fx.catalog.exists(&id)?;
    fx.catalog.locate(&by_ref)?;
    assert_eq!(fs::metadata(fx.index())?.modified()?, mtime_after);
    assert!(mtime_after >= mtime);
    Ok(())
}

#[test]
fn gc_removes_stale_temp_files_but_not_ones_being_written() -> TestResult {
    let fx = Fixture::new()?;
    let layout = fx.catalog.layout();
    let live = layout.stage()?;
    let tmp = layout.tmp_dir();
    fs::write(tmp.join("stage-dead"), b"left by a killed process")?;
    let report = fx.catalog.gc(false)?;
    let removed: Vec<&Path> = report.removed.iter().map(|(p, _)| p.as_path()).collect();
    assert_eq!(removed, [tmp.join("stage-dead").as_path()]);
    assert!(live.path().exists());
    Ok(())
}

#[test]
fn kept_signatures_go_with_their_entry_and_gc_removes_those_of_no_entry() -> TestResult {
    let fx = Fixture::new()?;
    let layout = fx.catalog.layout();
    let (a, b) = (fx.user_file("a")?, fx.user_file("b")?);
    fx.catalog.put(entry("file:a", &a, Storage::InPlace))?;
    fx.catalog.put(entry("file:b", &b, Storage::InPlace))?;
    fs::create_dir_all(layout.signatures_dir())?;
    let (sig_a, sig_b) = (
        layout.signature_path("file:a"),
        layout.signature_path("file:b"),
    );
    let orphan = layout.signature_path("file:gone");
    let staged = layout.signatures_dir().join("x.sig.partial");
    for path in [&sig_a, &sig_b, &orphan, &staged] {
        fs::write(path, b"{}")?;
    }

    assert!(matches!(
        fx.catalog.delete("file:a")?,
        Deletion::Removed { .. }
    ));
    assert!(!sig_a.exists(), "removed with its entry");
    assert!(a.exists(), "a file in place stays");

    let dry = fx.catalog.gc(true)?;
    assert!(orphan.exists(), "a dry run removes nothing");
    let report = fx.catalog.gc(false)?;
    let removed: Vec<&Path> = report.removed.iter().map(|(p, _)| p.as_path()).collect();
    assert_eq!(removed, [orphan.as_path()]);
    assert_eq!(dry.removed, report.removed);
    assert!(sig_b.exists(), "an entry's signature stays");
    assert!(staged.exists(), "one being written stays");
    Ok(())
}

#[test]
fn the_index_is_pretty_versioned_json_readable_by_others() -> TestResult {
    let fx = Fixture::new()?;
    fx.catalog
        .put(entry("a", Path::new("/a"), Storage::InPlace))?;
    let text = fs::read_to_string(fx.index())?;
    let value: serde_json::Value = serde_json::from_str(&text)?;
    assert_eq!(value["version"], 1);
    assert_eq!(value["entries"]["a"]["lifecycle"], "active");
    assert_eq!(
        fs::metadata(fx.index())?.permissions().mode() & 0o777,
        0o644
    );
    // No temporary index files are left behind.
    let names: Vec<_> = fs::read_dir(fx.catalog.layout().catalog_dir())?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<Result<_, _>>()?;
    assert_eq!(names.len(), 2, "{names:?}");
    Ok(())
}

/// An index written before entries recorded what a model is: byte for byte as that build
/// wrote it.
const INDEX_WITHOUT_MODEL_INFO: &str = r#"{
  "version": 1,
  "entries": {
    "file:/models/tiny.gguf": {
      "created_ms": 1795640400000,
      "digest": "sha256:a7fc1aac41f846de92a6ab4876a5bf99e510e250365408a0df7e6b24cb92e94c",
      "fingerprint": {
        "device": 2049,
        "inode": 1234,
        "mtime_ns": 1795640400000000000,
        "size": 17
      },
      "id": "file:/models/tiny.gguf",
      "last_verified_ms": 1795640400000,
      "lifecycle": "active",
      "local_path": "/models/tiny.gguf",
      "provenance": {
        "fetched_ms": 1795640400000,
        "fetcher": "file",
        "fetcher_version": "0.1.0"
      },
      "size_bytes": 17,
      "source": "/models/tiny.gguf",
      "storage": "in-place",
      "updated_ms": 1795640400000,
      "verification": {
        "computed": "sha256:a7fc1aac41f846de92a6ab4876a5bf99e510e250365408a0df7e6b24cb92e94c",
        "outcome": "pass"
      }
    }
  }
}
"#;

#[test]
fn an_index_written_before_model_info_loads_and_keeps_its_entries() -> TestResult {
    let fx = Fixture::new()?;
    fs::create_dir_all(fx.catalog.layout().catalog_dir())?;
    fs::write(fx.index(), INDEX_WITHOUT_MODEL_INFO)?;
    let id = "file:/models/tiny.gguf";
    let old = fx.catalog.get(id)?.ok_or("the old entry is not found")?;
    assert_eq!(old.model_info, None);
    assert_eq!(old.verification.outcome, Outcome::Pass);
    assert_eq!(fx.catalog.list()?, vec![old.clone()]);

    // A write by this build keeps the old entry as it was, with no `model_info` added.
    let mut new = entry(
        "file:/models/new.gguf",
        Path::new("/models/new.gguf"),
        Storage::InPlace,
    );
    new.model_info = Some(catalog_core::ModelInfo {
        format: catalog_core::ModelFormat::Gguf,
        architecture: Some("llama".to_owned()),
        ..catalog_core::ModelInfo::default()
    });
    fx.catalog.put(new.clone())?;
    assert_eq!(fx.catalog.get(id)?, Some(old));
    assert_eq!(fx.catalog.get(&new.id)?, Some(new));
    let value: serde_json::Value = serde_json::from_str(&fs::read_to_string(fx.index())?)?;
    assert_eq!(value["version"], 1);
    assert!(value["entries"][id].get("model_info").is_none());
    assert_eq!(
        value["entries"]["file:/models/new.gguf"]["model_info"]["architecture"],
        "llama"
    );
    Ok(())
}
