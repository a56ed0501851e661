//! `--help` documents the exit codes and the digest form.

use crate::fixture::{Fixture, TestResult, assert_code, stdout};

#[test]
fn top_level_help_lists_the_exit_codes() -> TestResult {
    let fx = Fixture::new()?;
    let out = fx.run(["--help"]);
    assert_code(&out, 0);
    let text = stdout(&out);
    for needle in ["0 success", "1 error", "2 usage error", "3 digest mismatch"] {
        assert!(text.contains(needle), "`--help` lacks {needle:?}:\n{text}");
    }
    for cmd in ["ensure", "ls", "show", "verify", "retire", "rm", "gc"] {
        assert!(
            text.lines().any(|l| l.trim_start().starts_with(cmd)),
            "`--help` does not list `{cmd}`:\n{text}"
        );
    }
    Ok(())
}

#[test]
fn ensure_help_shows_the_digest_form() -> TestResult {
    let fx = Fixture::new()?;
    let out = fx.run(["ensure", "--help"]);
    assert_code(&out, 0);
    let text = stdout(&out);
    assert!(text.contains("sha256:<64 hex digits>"), "{text}");
    insta::assert_snapshot!("ensure_help", text);
    Ok(())
}
