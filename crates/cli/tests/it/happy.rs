//! The commands doing what they are for.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use catalog_core::Digest;

use test_support::tree_digest;

use crate::fixture::{
    Fixture, TestResult, assert_code, bool_field, stderr, stdout, str_field, u64_field,
};

#[test]
fn ensure_prints_id_and_path() -> TestResult {
    let fx = Fixture::new()?;
    fx.write_model("tiny.gguf", b"tiny weights")?;
    let out = fx.run(["ensure", "tiny.gguf"]);
    assert_code(&out, 0);
    let text = stdout(&out);
    let line = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key))
            .map_or_else(|| panic!("no `{key}` line in:\n{text}"), str::trim)
            .to_owned()
    };
    assert_eq!(line("id:"), fx.id_of("tiny.gguf"));
    assert_eq!(line("path:"), fx.path("tiny.gguf").display().to_string());
    Ok(())
}

#[test]
fn ensure_json_with_digest_passes_then_is_cached() -> TestResult {
    let fx = Fixture::new()?;
    let digest = fx.write_model("tiny.gguf", b"tiny weights")?.to_string();
    let first = fx.json(["ensure", "tiny.gguf", "--digest", &digest, "--json"])?;
    assert!(first.is_object(), "not one JSON object: {first:#}");
    assert_eq!(str_field(&first, "id"), fx.id_of("tiny.gguf"));
    assert_eq!(
        Path::new(str_field(&first, "local_path")),
        fx.path("tiny.gguf")
    );
    assert_eq!(str_field(&first, "verification"), "pass");
    assert_eq!(u64_field(&first, "bytes"), 12);
    assert!(!bool_field(&first, "cached"));

    let second = fx.json(["ensure", "tiny.gguf", "--digest", &digest, "--json"])?;
    assert_eq!(str_field(&second, "id"), fx.id_of("tiny.gguf"));
    assert_eq!(str_field(&second, "verification"), "pass");
    assert!(bool_field(&second, "cached"));
    Ok(())
}

#[test]
fn pull_is_an_alias_of_ensure() -> TestResult {
    let fx = Fixture::new()?;
    let digest = fx.write_model("tiny.gguf", b"tiny weights")?.to_string();
    let json = fx.json(["pull", "tiny.gguf", "--digest", &digest, "--json"])?;
    assert_eq!(str_field(&json, "id"), fx.id_of("tiny.gguf"));
    assert_eq!(str_field(&json, "verification"), "pass");
    Ok(())
}

#[test]
fn ensure_without_digest_warns_and_records_warn() -> TestResult {
    let fx = Fixture::new()?;
    fx.write_model("tiny.gguf", b"tiny weights")?;
    let out = fx.run(["ensure", "tiny.gguf", "--json"]);
    assert_code(&out, 0);
    let err = stderr(&out);
    assert!(err.contains("unverified"), "no warning on stderr:\n{err}");
    let json: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    assert_eq!(str_field(&json, "verification"), "warn");
    let entry = fx.entry(&fx.id_of("tiny.gguf"))?;
    assert_eq!(entry["verification"]["outcome"], "warn");
    assert!(entry.get("digest").is_none(), "{entry:#}");
    Ok(())
}

#[test]
fn directory_model_with_its_tree_digest_passes() -> TestResult {
    let fx = Fixture::new()?;
    let files: [(&str, &[u8]); 3] = [
        ("config.json", br#"{"architectures": ["Tiny"]}"#),
        ("shards/model-00001-of-00002.safetensors", b"first shard"),
        ("shards/model-00002-of-00002.safetensors", b"second shard!"),
    ];
    for (rel, data) in files {
        fx.write_model(&format!("tiny-model/{rel}"), data)?;
    }
    let digest = tree_digest(files);
    let json = fx.json(["ensure", "tiny-model", "--digest", &digest, "--json"])?;
    assert_eq!(str_field(&json, "verification"), "pass");
    assert_eq!(str_field(&json, "id"), fx.id_of("tiny-model"));
    let total: usize = files.iter().map(|(_, d)| d.len()).sum();
    assert_eq!(u64_field(&json, "bytes"), u64::try_from(total)?);
    Ok(())
}

#[test]
fn copy_links_a_read_only_blob_under_models() -> TestResult {
    let fx = Fixture::new()?;
    let digest = fx.write_model("tiny.gguf", b"tiny weights")?;
    let json = fx.json([
        "ensure",
        "tiny.gguf",
        "--copy",
        "--digest",
        &digest.to_string(),
        "--json",
    ])?;
    assert_eq!(str_field(&json, "verification"), "pass");
    let local = Path::new(str_field(&json, "local_path"));
    assert!(
        local.starts_with(fx.cache().join("models")),
        "{} is not under the cache's models/",
        local.display()
    );
    let blob = fx.cache().join("blobs/sha256").join(digest.value());
    let (link, blob_meta) = (fs::metadata(local)?, fs::metadata(&blob)?);
    assert_eq!(
        (link.dev(), link.ino()),
        (blob_meta.dev(), blob_meta.ino()),
        "the model file is not a hard link of its blob"
    );
    assert_eq!(blob_meta.nlink(), 2);
    assert!(blob_meta.permissions().readonly(), "the blob is writable");
    assert_eq!(fs::read(local)?, b"tiny weights");
    // The user's file is untouched.
    assert_eq!(fs::read(fx.path("tiny.gguf"))?, b"tiny weights");
    Ok(())
}

#[test]
fn ls_lists_entries_as_text_and_json() -> TestResult {
    let fx = Fixture::new()?;
    let out = fx.run(["ls"]);
    assert_code(&out, 0);
    assert!(stdout(&out).contains("no models"), "{}", stdout(&out));
    assert_eq!(fx.json(["ls", "--json"])?, serde_json::json!([]));

    fx.write_model("a.gguf", b"model a")?;
    fx.write_model("b.gguf", b"model b")?;
    for f in ["a.gguf", "b.gguf"] {
        assert_code(&fx.run(["-q", "ensure", f]), 0);
    }
    let out = fx.run(["ls"]);
    assert_code(&out, 0);
    let text = stdout(&out);
    for id in [fx.id_of("a.gguf"), fx.id_of("b.gguf")] {
        assert!(text.contains(&id), "`ls` does not list {id}:\n{text}");
    }
    let json = fx.json(["list", "--json"])?;
    let ids: Vec<&str> = json
        .as_array()
        .ok_or("`ls --json` is not an array")?
        .iter()
        .map(|e| str_field(e, "id"))
        .collect();
    assert_eq!(ids, [fx.id_of("a.gguf"), fx.id_of("b.gguf")]);
    Ok(())
}

#[test]
fn show_finds_an_entry_by_id_and_by_relative_path() -> TestResult {
    let fx = Fixture::new()?;
    let digest = fx.write_model("models/tiny.gguf", b"tiny weights")?;
    assert_code(
        &fx.run([
            "ensure",
            "models/tiny.gguf",
            "--digest",
            &digest.to_string(),
        ]),
        0,
    );
    let id = fx.id_of("models/tiny.gguf");
    let by_id = fx.run(["show", &id]);
    assert_code(&by_id, 0);
    let by_ref = fx.run(["show", "./models/../models/tiny.gguf"]);
    assert_code(&by_ref, 0);
    assert_eq!(stdout(&by_id), stdout(&by_ref));
    assert!(stdout(&by_id).contains(&id), "{}", stdout(&by_id));
    assert!(stdout(&by_id).contains(&digest.to_string()));

    let json = fx.json(["show", "models/tiny.gguf", "--json"])?;
    assert_eq!(str_field(&json, "id"), id);
    assert_eq!(
        Path::new(str_field(&json, "local_path")),
        fx.path("models/tiny.gguf")
    );
    assert_eq!(str_field(&json, "digest"), digest.to_string());
    assert_eq!(json["verification"]["outcome"], "pass");
    Ok(())
}

#[test]
fn retire_then_ensure_reactivates() -> TestResult {
    let fx = Fixture::new()?;
    fx.write_model("tiny.gguf", b"tiny weights")?;
    let id = fx.id_of("tiny.gguf");
    assert_code(&fx.run(["-q", "ensure", "tiny.gguf"]), 0);
    let out = fx.run(["retire", &id]);
    assert_code(&out, 0);
    assert!(stdout(&out).contains("retired"));

    let out = fx.run(["ls"]);
    let row = stdout(&out)
        .lines()
        .find(|l| l.starts_with(&id))
        .map(str::to_owned)
        .ok_or("entry missing from `ls`")?;
    assert!(row.contains("retired"), "{row}");
    let lifecycle = |fx: &Fixture| -> TestResult<String> {
        Ok(str_field(&fx.entry(&id)?, "lifecycle").to_ascii_lowercase())
    };
    assert_eq!(lifecycle(&fx)?, "retired");

    assert_code(&fx.run(["-q", "ensure", "tiny.gguf"]), 0);
    assert_eq!(lifecycle(&fx)?, "active");
    let out = fx.run(["ls"]);
    assert!(!stdout(&out).contains("retired"), "{}", stdout(&out));
    Ok(())
}

#[test]
fn rm_of_an_in_place_entry_keeps_the_users_file() -> TestResult {
    let fx = Fixture::new()?;
    fx.write_model("tiny.gguf", b"tiny weights")?;
    assert_code(&fx.run(["-q", "ensure", "tiny.gguf"]), 0);
    let out = fx.run(["rm", "tiny.gguf"]);
    assert_code(&out, 0);
    assert!(stdout(&out).contains("in place"), "{}", stdout(&out));
    assert_eq!(fs::read(fx.path("tiny.gguf"))?, b"tiny weights");
    assert_eq!(fx.json(["ls", "--json"])?, serde_json::json!([]));
    Ok(())
}

#[test]
fn rm_of_a_copied_entry_deletes_its_link_and_blob() -> TestResult {
    let fx = Fixture::new()?;
    let digest = fx.write_model("tiny.gguf", b"tiny weights")?;
    let json = fx.json([
        "ensure",
        "tiny.gguf",
        "--copy",
        "--digest",
        &digest.to_string(),
        "--json",
    ])?;
    let local = Path::new(str_field(&json, "local_path")).to_owned();
    let blob = fx.cache().join("blobs/sha256").join(digest.value());
    assert!(local.exists() && blob.exists());

    let out = fx.run(["rm", &fx.id_of("tiny.gguf")]);
    assert_code(&out, 0);
    assert!(stdout(&out).contains("deleted"), "{}", stdout(&out));
    assert!(!local.exists(), "{} is still there", local.display());
    assert!(!blob.exists(), "{} is still there", blob.display());
    assert_eq!(fs::read(fx.path("tiny.gguf"))?, b"tiny weights");
    assert_eq!(fx.json(["ls", "--json"])?, serde_json::json!([]));
    Ok(())
}

/// A cache with one copied model, plus an orphan blob and a stale temporary file.
struct GcScene {
    fx: Fixture,
    live_link: std::path::PathBuf,
    live_blob: std::path::PathBuf,
    orphan_blob: std::path::PathBuf,
    stale_tmp: std::path::PathBuf,
}

impl GcScene {
    fn new() -> TestResult<Self> {
        let fx = Fixture::new()?;
        let digest = fx.write_model("tiny.gguf", b"tiny weights")?;
        let json = fx.json([
            "ensure",
            "tiny.gguf",
            "--copy",
            "--digest",
            &digest.to_string(),
            "--json",
        ])?;
        let live_link = Path::new(str_field(&json, "local_path")).to_owned();
        let blobs = fx.cache().join("blobs/sha256");
        let live_blob = blobs.join(digest.value());
        let orphan_blob = blobs.join(Digest::sha256_of(b"orphan").value());
        fs::write(&orphan_blob, b"orphan")?;
        assert_eq!(fs::metadata(&orphan_blob)?.nlink(), 1);
        let stale_tmp = fx.cache().join("tmp").join("stage-left-behind");
        fs::create_dir_all(fx.cache().join("tmp"))?;
        fs::write(&stale_tmp, b"half a download")?;
        Ok(GcScene {
            fx,
            live_link,
            live_blob,
            orphan_blob,
            stale_tmp,
        })
    }

    fn assert_live_kept(&self) {
        assert!(self.live_link.exists(), "gc removed the model in use");
        assert!(self.live_blob.exists(), "gc removed the blob in use");
    }
}

#[test]
fn gc_dry_run_lists_and_deletes_nothing() -> TestResult {
    let s = GcScene::new()?;
    let index = s.fx.index_bytes();
    let out = s.fx.run(["gc", "--dry-run"]);
    assert_code(&out, 0);
    let text = stdout(&out);
    for p in [&s.orphan_blob, &s.stale_tmp] {
        assert!(
            text.contains(&p.display().to_string()),
            "`gc --dry-run` does not list {}:\n{text}",
            p.display()
        );
        assert!(p.exists(), "`gc --dry-run` deleted {}", p.display());
    }
    assert!(text.contains("would remove"), "{text}");
    s.assert_live_kept();
    assert_eq!(s.fx.index_bytes(), index);
    Ok(())
}

#[test]
fn gc_removes_an_orphan_blob_and_a_stale_temp_file() -> TestResult {
    let s = GcScene::new()?;
    let out = s.fx.run(["gc"]);
    assert_code(&out, 0);
    let text = stdout(&out);
    for p in [&s.orphan_blob, &s.stale_tmp] {
        assert!(text.contains(&p.display().to_string()), "{text}");
        assert!(!p.exists(), "`gc` left {}", p.display());
    }
    s.assert_live_kept();
    // The copied model still verifies after gc.
    assert_code(&s.fx.run(["verify", &s.fx.id_of("tiny.gguf")]), 0);
    Ok(())
}

#[test]
fn gc_json_reports_what_it_removed() -> TestResult {
    let s = GcScene::new()?;
    let json = s.fx.json(["gc", "--json"])?;
    assert_eq!(json["dry_run"], false);
    let mut removed: Vec<&str> = json["removed"]
        .as_array()
        .ok_or("`removed` is not an array")?
        .iter()
        .map(|v| v.as_str().unwrap_or_default())
        .collect();
    removed.sort_unstable();
    let mut expected = [
        s.orphan_blob.to_str().ok_or("path")?,
        s.stale_tmp.to_str().ok_or("path")?,
    ];
    expected.sort_unstable();
    assert_eq!(removed, expected);
    assert_eq!(
        u64_field(&json, "bytes"),
        u64::try_from(b"orphan".len() + b"half a download".len())?
    );
    s.assert_live_kept();

    let again = s.fx.json(["gc", "--json"])?;
    assert_eq!(again["removed"], serde_json::json!([]));
    Ok(())
}

/// Regression guard: a directory under `tmp/` (left by a crash, or by a future fetcher that
/// stages whole folders) must not make `gc` fail and skip everything else.
#[test]
fn gc_survives_a_directory_left_in_tmp() -> TestResult {
    let s = GcScene::new()?;
    let leftover = s.fx.cache().join("tmp").join("stage-dir");
    fs::create_dir_all(leftover.join("inner"))?;
    fs::write(leftover.join("inner/part"), b"partial")?;
    let out = s.fx.run(["gc"]);
    assert_code(&out, 0);
    assert!(!s.orphan_blob.exists(), "`gc` left the orphan blob");
    assert!(!s.stale_tmp.exists(), "`gc` left the stale temp file");
    s.assert_live_kept();
    Ok(())
}
