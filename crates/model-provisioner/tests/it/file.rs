//! The provisioner over local files.

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use catalog_core::{CatalogStore, Digest, Lifecycle, ModelRef, Outcome, Storage};
use model_provisioner::{Error, FileFetcher, FsCatalog, ModelProvisioner};

type TestResult = Result<(), Box<dyn std::error::Error>>;

struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Result<Self, Box<dyn std::error::Error>> {
        Ok(Fixture {
            dir: tempfile::tempdir()?,
        })
    }

    fn cache(&self) -> PathBuf {
        self.dir.path().join("cache")
    }

    fn provisioner(&self) -> Result<ModelProvisioner<FsCatalog, FileFetcher>, Error> {
        ModelProvisioner::file_only(self.cache())
    }

    /// Writes a model file and returns its canonical path and digest.
    fn model(
        &self,
        name: &str,
        bytes: &[u8],
    ) -> Result<(PathBuf, Digest), Box<dyn std::error::Error>> {
        let path = self.dir.path().join(name);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent)?;
        }
        fs::write(&path, bytes)?;
        Ok((fs::canonicalize(path)?, Digest::sha256_of(bytes)))
    }

    fn index(&self) -> Option<Vec<u8>> {
        fs::read(self.cache().join("catalog/index.json")).ok()
    }
}

fn id_of(path: &Path) -> String {
    format!("file:{}", path.display())
}

/// Rewrites a file with other bytes of the same length, keeping its mtime: a change the
/// fingerprint cannot see.
fn flip_byte_keep_mtime(path: &Path) -> TestResult {
    let mtime = fs::metadata(path)?.modified()?;
    let mut bytes = fs::read(path)?;
    bytes[0] ^= 0xff;
    let mut f = fs::OpenOptions::new().write(true).open(path)?;
    f.write_all(&bytes)?;
    f.set_modified(mtime)?;
    Ok(())
}

#[test]
fn a_local_file_is_registered_in_place_under_its_canonical_path() -> TestResult {
    let fx = Fixture::new()?;
    let (path, digest) = fx.model("models/tiny.gguf", b"GGUF tiny")?;
    let p = fx.provisioner()?;
    let resolved = p.ensure_present_str(&path.display().to_string(), Some(digest.clone()))?;
    assert_eq!(resolved.id, id_of(&path));
    assert_eq!(resolved.local_path, path);

    // A symlink and a `file:` spelling of the same file resolve to the same id.
    let link = fx.dir.path().join("link.gguf");
    std::os::unix::fs::symlink(&path, &link)?;
    let again = p.ensure_present_str(&format!("file:{}", link.display()), None)?;
    assert_eq!(again, resolved);

    let entry = p.catalog().get(&resolved.id)?.ok_or("no entry")?;
    assert_eq!(entry.lifecycle, Lifecycle::Active);
    assert_eq!(entry.storage, Storage::InPlace);
    assert_eq!(entry.digest, Some(digest.clone()));
    assert_eq!(entry.verification.outcome, Outcome::Pass);
    assert_eq!(entry.verification.computed, Some(digest));
    assert_eq!(entry.size_bytes, 9);
    assert!(entry.last_verified_ms.is_some());
    let fp = entry.fingerprint.ok_or("no fingerprint")?;
    assert_eq!(fp.size, 9);
    assert!(fp.inode > 0);
    Ok(())
}

#[test]
fn without_a_digest_nothing_is_hashed_and_the_entry_is_unverified() -> TestResult {
    let fx = Fixture::new()?;
    let (path, _) = fx.model("m.gguf", b"weights")?;
    let p = fx.provisioner()?;
    let ensured = p.ensure(&path.display().to_string().parse()?, None)?;
    assert_eq!(ensured.bytes_read, 0);
    assert_eq!(ensured.entry.verification.outcome, Outcome::Warn);
    assert_eq!(ensured.entry.verification.computed, None);
    Ok(())
}

#[test]
fn a_mismatch_fails_with_both_digests_and_leaves_no_active_entry() -> TestResult {
    let fx = Fixture::new()?;
    let (path, right) = fx.model("m.gguf", b"weights")?;
    let wrong = Digest::sha256_of(b"other weights");
    let p = fx.provisioner()?;
    let err = p
        .ensure_present_str(&path.display().to_string(), Some(wrong.clone()))
        .expect_err("must fail");
    let msg = err.to_string();
    assert!(
        msg.contains(&wrong.to_string()) && msg.contains(&right.to_string()),
        "{msg}"
    );
    assert!(err.is_verification_failure());
    assert_eq!(fx.index(), None, "nothing was recorded");

    // An entry that existed is retired and marked failed, so it is not handed out.
    p.ensure_present_str(&path.display().to_string(), None)?;
    fs::write(&path, b"tampered")?;
    let err = p
        .ensure_present_str(&path.display().to_string(), Some(right))
        .expect_err("must fail");
    assert!(err.is_verification_failure());
    let entry = p.catalog().get(&id_of(&path))?.ok_or("no entry")?;
    assert_eq!(entry.lifecycle, Lifecycle::Retired);
    assert_eq!(entry.verification.outcome, Outcome::Fail);
    assert!(
        p.catalog()
            .locate(&path.display().to_string().parse()?)?
            .is_none()
    );
    Ok(())
}

#[test]
fn an_unchanged_file_is_not_hashed_again_and_a_changed_one_is() -> TestResult {
    let fx = Fixture::new()?;
    let (path, digest) = fx.model("m.gguf", b"version one")?;
    let mr: ModelRef = path.display().to_string().parse()?;
    let p = fx.provisioner()?;
    let first = p.ensure(&mr, Some(&digest))?;
    assert!(!first.cached);
    assert_eq!(first.bytes_read, 11);

    let index_before = fx.index();
    let second = p.ensure(&mr, Some(&digest))?;
    assert!(second.cached);
    assert_eq!(second.bytes_read, 0);
    assert_eq!(fx.index(), index_before, "a cache hit writes nothing");

    // Same length, new mtime: the fingerprint differs, so the bytes are read again. The mtime
    // is set, not left to the clock, whose granularity may give the old one back.
    let recorded = fs::metadata(&path)?.modified()?;
    fs::write(&path, b"version two")?;
    fs::File::options()
        .write(true)
        .open(&path)?
        .set_modified(recorded + std::time::Duration::from_secs(1))?;
    let err = p.ensure(&mr, Some(&digest)).expect_err("changed bytes");
    assert!(err.is_verification_failure());
    // The digest recorded earlier keeps guarding the entry when none is given.
    assert!(
        p.ensure(&mr, None)
            .expect_err("still guarded")
            .is_verification_failure()
    );
    let new_digest = Digest::sha256_of(b"version two");
    let third = p.ensure(&mr, Some(&new_digest))?;
    assert!(!third.cached);
    assert_eq!(third.entry.verification.outcome, Outcome::Pass);
    Ok(())
}

#[test]
fn a_digest_given_later_is_checked_without_reading_when_known() -> TestResult {
    let fx = Fixture::new()?;
    let (path, digest) = fx.model("m.gguf", b"weights")?;
    let mr: ModelRef = path.display().to_string().parse()?;
    let p = fx.provisioner()?;
    // Unverified first: nothing known, so the digest given next needs one read.
    p.ensure(&mr, None)?;
    let checked = p.ensure(&mr, Some(&digest))?;
    assert_eq!(checked.bytes_read, 7);
    assert_eq!(checked.entry.verification.outcome, Outcome::Pass);
    let wrong = Digest::sha256_of(b"nope");
    assert!(
        p.ensure(&mr, Some(&wrong))
            .expect_err("known mismatch")
            .is_verification_failure()
    );
    Ok(())
}

#[test]
fn a_directory_model_is_registered_with_its_tree_digest() -> TestResult {
    let fx = Fixture::new()?;
    let (config, _) = fx.model("llama/config.json", b"{}")?;
    fx.model(
        "llama/weights/model-00001-of-00002.safetensors",
        b"shard one",
    )?;
    fx.model(
        "llama/weights/model-00002-of-00002.safetensors",
        b"shard two",
    )?;
    let dir = config.parent().ok_or("no parent")?;
    let manifest = format!(
        "{}  config.json\n{}  weights/model-00001-of-00002.safetensors\n{}  weights/model-00002-of-00002.safetensors\n",
        Digest::sha256_of(b"{}").value(),
        Digest::sha256_of(b"shard one").value(),
        Digest::sha256_of(b"shard two").value(),
    );
    let tree = Digest::sha256_of(manifest.as_bytes());
    let p = fx.provisioner()?;
    let resolved = p.ensure_present_str(&dir.display().to_string(), Some(tree))?;
    assert_eq!(resolved.local_path, dir);
    let entry = p.catalog().get(&resolved.id)?.ok_or("no entry")?;
    assert_eq!(entry.size_bytes, 20);

    // A file added to the folder changes its fingerprint, so the tree is checked again.
    fx.model("llama/extra.bin", b"x")?;
    let err = p
        .ensure_present_str(&dir.display().to_string(), None)
        .expect_err("tree changed");
    assert!(err.is_verification_failure());
    Ok(())
}

#[test]
fn copying_stores_a_read_only_blob_and_rm_frees_it() -> TestResult {
    let fx = Fixture::new()?;
    let (path, digest) = fx.model("m.gguf", b"copied weights")?;
    let p = ModelProvisioner::with_fetcher(fx.cache(), FileFetcher::copying())?;
    let resolved = p.ensure_present_str(&path.display().to_string(), Some(digest.clone()))?;
    assert!(resolved.local_path.starts_with(fx.cache().join("models")));
    assert_eq!(resolved.local_path.file_name(), path.file_name());
    assert_eq!(fs::read(&resolved.local_path)?, b"copied weights");
    let blob = fx.cache().join("blobs/sha256").join(digest.value());
    assert!(fs::metadata(&blob)?.permissions().readonly());
    assert!(
        fs::read_dir(fx.cache().join("tmp"))?.next().is_none(),
        "no temp file left"
    );

    let deletion = p.catalog().delete(&resolved.id)?;
    assert!(deletion.existed());
    assert!(!resolved.local_path.exists());
    assert!(!blob.exists());
    assert!(path.exists(), "the source is never touched");
    Ok(())
}

#[test]
fn a_copy_with_the_wrong_digest_publishes_nothing() -> TestResult {
    let fx = Fixture::new()?;
    let (path, _) = fx.model("m.gguf", b"copied weights")?;
    let p = ModelProvisioner::with_fetcher(fx.cache(), FileFetcher::copying())?;
    let err = p
        .ensure_present_str(&path.display().to_string(), Some(Digest::sha256_of(b"x")))
        .expect_err("mismatch");
    assert!(err.is_verification_failure());
    let blobs = fx.cache().join("blobs/sha256");
    assert!(!blobs.exists() || fs::read_dir(&blobs)?.next().is_none());
    assert!(fs::read_dir(fx.cache().join("tmp"))?.next().is_none());
    assert!(!fx.cache().join("models").exists());
    Ok(())
}

#[test]
fn verify_rehashes_and_finds_a_change_the_fingerprint_cannot_see() -> TestResult {
    let fx = Fixture::new()?;
    let (path, digest) = fx.model("m.gguf", b"weights")?;
    let p = fx.provisioner()?;
    let resolved = p.ensure_present_str(&path.display().to_string(), Some(digest))?;
    assert_eq!(
        p.verify(&resolved.id)?.entry.verification.outcome,
        Outcome::Pass
    );
    flip_byte_keep_mtime(&path)?;
    let err = p.verify(&resolved.id).expect_err("corrupt");
    assert!(err.is_verification_failure(), "{err}");
    let entry = p.catalog().get(&resolved.id)?.ok_or("no entry")?;
    assert_eq!(entry.verification.outcome, Outcome::Fail);
    assert!(
        p.catalog()
            .locate(&path.display().to_string().parse()?)?
            .is_none()
    );
    Ok(())
}

#[test]
fn references_this_build_cannot_fetch_name_what_is_needed() -> TestResult {
    let fx = Fixture::new()?;
    let p = fx.provisioner()?;
    for (reference, needs) in [
        ("hf:org/repo/model.gguf", "`hf` cargo feature"),
        ("hf:org/repo", "`hf` cargo feature"),
        ("https://example.invalid/m.gguf", "`http` cargo feature"),
        (
            "http://user:secret@example.invalid/m.gguf?token=t",
            "`http` cargo feature",
        ),
        ("s3://bucket/key.gguf", "`s3` cargo feature"),
        (
            "oci://registry.invalid/models/llama:q4",
            "`oci` cargo feature",
        ),
        ("ollama:llama3.2", "`oci` cargo feature"),
    ] {
        let err = p.ensure_present_str(reference, None).expect_err(reference);
        assert!(
            matches!(err, Error::Unsupported { .. }),
            "{reference}: {err:?}"
        );
        let msg = err.to_string();
        assert!(msg.contains(needs), "{msg}");
        assert!(!msg.contains("secret") && !msg.contains("token"), "{msg}");
        assert!(err.hint().is_some());
    }
    assert_eq!(fx.index(), None);
    Ok(())
}

#[test]
fn bad_references_are_errors_not_panics() -> TestResult {
    let fx = Fixture::new()?;
    let p = fx.provisioner()?;
    for bad in [
        "",
        "ftp://x/y",
        "hf:org",
        "hf:org/../x",
        "./nope/missing.gguf",
    ] {
        let err = p.ensure_present_str(bad, None).expect_err(bad);
        assert!(
            matches!(err, Error::InvalidRef(_) | Error::NotFound { .. }),
            "{bad}: {err:?}"
        );
    }
    assert_eq!(fx.index(), None);
    Ok(())
}

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("poisoned").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Every event of this test binary as JSON lines. A global subscriber, because callsite
/// interest is cached process-wide and a scoped one would miss events that other tests'
/// threads saw first.
fn captured_events() -> &'static Captured {
    static CAPTURED: std::sync::OnceLock<Captured> = std::sync::OnceLock::new();
    CAPTURED.get_or_init(|| {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .json()
            .with_max_level(tracing::Level::INFO)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::set_global_default(subscriber).expect("no other global subscriber");
        captured
    })
}

#[test]
fn every_ensure_emits_a_structured_event() -> TestResult {
    let captured = captured_events();
    let fx = Fixture::new()?;
    let (path, digest) = fx.model("m.gguf", b"weights")?;
    let (other, _) = fx.model("n.gguf", b"other")?;
    let p = fx.provisioner()?;
    p.ensure_present_str(&path.display().to_string(), Some(digest))?;
    p.ensure_present_str(&other.display().to_string(), None)?;
    let text = String::from_utf8(captured.0.lock().expect("poisoned").clone())?;
    let events: Vec<serde_json::Value> = text
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?;
    let mine = |e: &&serde_json::Value| {
        e["fields"]["id"] == id_of(&path) || e["fields"]["id"] == id_of(&other)
    };
    let ensured: Vec<&serde_json::Value> = events
        .iter()
        .filter(mine)
        .filter(|e| e["fields"]["message"] == "model ensured")
        .collect();
    assert_eq!(ensured.len(), 2, "{text}");
    let first = &ensured[0]["fields"];
    assert_eq!(first["id"], id_of(&path));
    assert_eq!(first["bytes"], 7);
    assert_eq!(first["verification"], "pass");
    assert!(first["duration_ms"].is_u64());
    assert_eq!(ensured[1]["fields"]["verification"], "warn");
    let warned = events.iter().any(|e| {
        e["level"] == "WARN"
            && e["fields"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("unverified"))
            && e["fields"]["id"] == id_of(&other)
    });
    assert!(warned, "{text}");
    Ok(())
}
