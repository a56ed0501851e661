//! Exit status: 0 success, 1 error, 2 usage, 3 digest mismatch; and how errors are printed.

use crate::fixture::{
    Fixture, TestResult, assert_code, assert_failure, assert_one_error_line, hints, stderr,
};

#[test]
fn success_exits_0_with_empty_stderr_when_verified() -> TestResult {
    let fx = Fixture::new()?;
    let digest = fx.write_model("tiny.gguf", b"tiny weights")?.to_string();
    let out = fx.run(["ensure", "tiny.gguf", "--digest", &digest]);
    assert_code(&out, 0);
    assert_eq!(stderr(&out), "");
    Ok(())
}

#[test]
fn no_subcommand_is_a_usage_error() -> TestResult {
    let fx = Fixture::new()?;
    let out = fx.run(std::iter::empty::<&str>());
    assert_failure(&out, 2, &["subcommand"]);
    assert!(stderr(&out).starts_with("error: "), "{}", stderr(&out));
    assert!(out.stdout.is_empty());
    Ok(())
}

#[test]
fn unknown_flag_is_a_usage_error() -> TestResult {
    let fx = Fixture::new()?;
    let out = fx.run(["ls", "--frobnicate"]);
    assert_failure(&out, 2, &["--frobnicate"]);
    assert!(stderr(&out).starts_with("error: "), "{}", stderr(&out));
    Ok(())
}

#[test]
fn malformed_digest_is_a_usage_error() -> TestResult {
    let fx = Fixture::new()?;
    fx.write_model("tiny.gguf", b"tiny weights")?;
    for bad in [
        "sha256:abc",
        "md5:d41d8cd98f00b204e9800998ecf8427e",
        "abc",
        "",
    ] {
        let out = fx.run(["ensure", "tiny.gguf", "--digest", bad]);
        assert_failure(&out, 2, &["sha256:<64 hex digits>"]);
        assert!(stderr(&out).starts_with("error: "), "{}", stderr(&out));
    }
    assert_eq!(fx.index_bytes(), None, "a usage error wrote an index");
    Ok(())
}

#[test]
fn invalid_refs_are_usage_errors() -> TestResult {
    let fx = Fixture::new()?;
    for (bad, why) in [("", "empty"), ("ftp://x/y", "unknown scheme `ftp:`")] {
        let out = fx.run(["ensure", bad]);
        assert_failure(&out, 2, &[why]);
        assert!(stderr(&out).starts_with("error: "), "{}", stderr(&out));
        assert!(!hints(&out).is_empty(), "no hint for {bad:?}");
    }
    Ok(())
}

#[test]
fn digest_mismatch_exits_3_showing_both_digests() -> TestResult {
    let fx = Fixture::new()?;
    fx.write_model("tiny.gguf", b"tiny weights")?;
    let wrong = catalog_core::Digest::sha256_of(b"other weights").to_string();
    let right = catalog_core::Digest::sha256_of(b"tiny weights").to_string();
    let out = fx.run(["ensure", "tiny.gguf", "--digest", &wrong]);
    assert_failure(&out, 3, &["expected", &wrong, "computed", &right]);
    assert!(!hints(&out).is_empty(), "no hint:\n{}", stderr(&out));
    Ok(())
}

#[test]
fn missing_path_error_is_one_line_with_a_hint() -> TestResult {
    let fx = Fixture::new()?;
    let out = fx.run(["ensure", "missing.gguf"]);
    assert_failure(&out, 1, &["missing.gguf", "does not exist"]);
    assert_one_error_line(&out);
    assert_eq!(hints(&out).len(), 1, "{}", stderr(&out));
    Ok(())
}

#[test]
fn unknown_id_error_is_one_line_with_a_hint() -> TestResult {
    let fx = Fixture::with_one_entry()?;
    for cmd in ["show", "rm", "retire"] {
        let out = fx.run([cmd, "file:/no/such/model.gguf"]);
        assert_failure(&out, 1, &["file:/no/such/model.gguf", "no model"]);
        assert_one_error_line(&out);
        let hints = hints(&out);
        assert!(
            hints.iter().any(|h| h.contains("model-provisioner ls")),
            "{cmd}: {hints:?}"
        );
    }
    Ok(())
}

/// Regression guard: a failed `ensure` is reported once, as `error: …`; the library's own
/// `ERROR ensure failed …` log line must not repeat it on stderr by default.
#[test]
fn ensure_failure_is_reported_once() -> TestResult {
    let fx = Fixture::new()?;
    fx.write_model("tiny.gguf", b"tiny weights")?;
    let wrong = catalog_core::Digest::sha256_of(b"other weights").to_string();
    let out = fx.run(["ensure", "tiny.gguf", "--digest", &wrong]);
    assert_code(&out, 3);
    assert_one_error_line(&out);
    Ok(())
}

/// Regression guard: `verify` of an unknown id says on stderr which id and why, with a hint,
/// like `show` and `rm` do.
#[test]
fn verify_of_an_unknown_id_names_it_on_stderr_with_a_hint() -> TestResult {
    let fx = Fixture::with_one_entry()?;
    let out = fx.run(["verify", "file:/no/such/model.gguf"]);
    assert_failure(&out, 1, &["file:/no/such/model.gguf", "no model"]);
    assert!(
        hints(&out)
            .iter()
            .any(|h| h.contains("model-provisioner ls")),
        "no hint:\n{}",
        stderr(&out)
    );
    Ok(())
}
