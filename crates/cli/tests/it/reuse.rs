//! An unchanged file is not hashed again; a changed one is, and the recorded digest guards it.

use std::fs::{self, File};
use std::time::{Duration, SystemTime};

use crate::fixture::{
    Fixture, TestResult, assert_code, assert_failure, bool_field, str_field, u64_field,
};

/// Rewrites `rel` with `contents` (same length as before) and moves its mtime an hour ahead,
/// so that its fingerprint surely differs.
fn rewrite_and_bump_mtime(fx: &Fixture, rel: &str, contents: &[u8]) -> TestResult {
    let path = fx.path(rel);
    let old = fs::metadata(&path)?;
    assert_eq!(old.len(), contents.len() as u64, "the test keeps the size");
    fs::write(&path, contents)?;
    File::options()
        .write(true)
        .open(&path)?
        .set_modified(old.modified()? + Duration::from_secs(3600))?;
    Ok(())
}

#[test]
fn repeat_ensure_of_an_unchanged_file_reads_nothing() -> TestResult {
    let fx = Fixture::new()?;
    let digest = fx.write_model("tiny.gguf", b"tiny weights")?.to_string();
    let first = fx.json(["ensure", "tiny.gguf", "--digest", &digest, "--json"])?;
    assert!(!bool_field(&first, "cached"));
    assert_eq!(u64_field(&first, "bytes_read"), 12);

    for args in [
        vec!["ensure", "tiny.gguf", "--digest", &digest, "--json"],
        vec!["ensure", "tiny.gguf", "--json"],
    ] {
        let again = fx.json(&args)?;
        assert!(bool_field(&again, "cached"), "{args:?}: {again:#}");
        assert_eq!(u64_field(&again, "bytes_read"), 0, "{args:?}: {again:#}");
        assert_eq!(str_field(&again, "verification"), "pass", "{args:?}");
    }
    Ok(())
}

#[test]
fn changed_file_is_rehashed_and_fails_its_digest() -> TestResult {
    let fx = Fixture::new()?;
    let digest = fx.write_model("tiny.gguf", b"tiny weights")?.to_string();
    assert_code(&fx.run(["ensure", "tiny.gguf", "--digest", &digest]), 0);
    let computed = catalog_core::Digest::sha256_of(b"TINY WEIGHTS").to_string();
    rewrite_and_bump_mtime(&fx, "tiny.gguf", b"TINY WEIGHTS")?;

    let out = fx.run(["ensure", "tiny.gguf", "--digest", &digest, "--json"]);
    assert_failure(&out, 3, &["mismatch", &digest, &computed]);
    // The entry no longer passes, so it is not handed out as verified.
    let entry = fx.entry(&fx.id_of("tiny.gguf"))?;
    assert_eq!(entry["verification"]["outcome"], "fail", "{entry:#}");
    Ok(())
}

#[test]
fn recorded_digest_keeps_guarding_a_changed_file_without_digest_flag() -> TestResult {
    let fx = Fixture::new()?;
    let digest = fx.write_model("tiny.gguf", b"tiny weights")?.to_string();
    assert_code(&fx.run(["ensure", "tiny.gguf", "--digest", &digest]), 0);
    rewrite_and_bump_mtime(&fx, "tiny.gguf", b"TINY WEIGHTS")?;

    let out = fx.run(["ensure", "tiny.gguf"]);
    assert_failure(&out, 3, &["mismatch", &digest]);
    // And again: a failed entry is not quietly accepted on the next run.
    let out = fx.run(["ensure", "tiny.gguf", "--json"]);
    assert_failure(&out, 3, &["mismatch", &digest]);

    // Putting the right bytes back makes it pass again, without `--digest`.
    let path = fx.path("tiny.gguf");
    let mtime = fs::metadata(&path)?.modified()?;
    fs::write(&path, b"tiny weights")?;
    File::options()
        .write(true)
        .open(&path)?
        .set_modified(mtime.max(SystemTime::now()) + Duration::from_secs(60))?;
    let json = fx.json(["ensure", "tiny.gguf", "--json"])?;
    assert_eq!(str_field(&json, "verification"), "pass");
    assert!(!bool_field(&json, "cached"));
    Ok(())
}

#[test]
fn changed_file_without_recorded_digest_is_accepted_as_unverified() -> TestResult {
    let fx = Fixture::new()?;
    fx.write_model("tiny.gguf", b"tiny weights")?;
    assert_code(&fx.run(["-q", "ensure", "tiny.gguf"]), 0);
    rewrite_and_bump_mtime(&fx, "tiny.gguf", b"TINY WEIGHTS")?;
    let json = fx.json(["-q", "ensure", "tiny.gguf", "--json"])?;
    assert_eq!(str_field(&json, "verification"), "warn");
    assert!(!bool_field(&json, "cached"));
    Ok(())
}
