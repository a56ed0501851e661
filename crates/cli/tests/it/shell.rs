//! `completions` and `man`: generated from the parser's own definitions, and needing no cache.

use std::fs;

use crate::fixture::{Fixture, TestResult, assert_code, assert_failure, run_within_limit, stdout};

#[test]
fn every_shell_gets_a_script_that_knows_the_commands_and_their_flags() -> TestResult {
    let fx = Fixture::new()?;
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        // No cache directory and no `HOME`: nothing is read but the arguments.
        let mut cmd = fx.bare_command();
        cmd.env_remove("HOME").args(["completions", shell]);
        let out = run_within_limit(&mut cmd);
        assert_code(&out, 0);
        let script = stdout(&out);
        for word in ["model-provisioner", "ensure", "verify", "digest", "include"] {
            assert!(script.contains(word), "{shell}: no `{word}` in\n{script}");
        }
    }
    let out = fx.run(["completions", "tcsh"]);
    assert_failure(&out, 2, &["tcsh", "bash"]);
    Ok(())
}

#[test]
fn the_manual_page_is_printed_or_written_one_page_per_command() -> TestResult {
    let fx = Fixture::new()?;
    let out = fx.run(["man"]);
    assert_code(&out, 0);
    let page = stdout(&out);
    assert!(page.contains(".TH model-provisioner 1"), "{page}");
    assert!(
        page.contains("ensure") && page.contains("Exit status"),
        "{page}"
    );

    let dir = fx.path("pages");
    let out = fx.run(["man", "--out-dir", dir.to_str().expect("a UTF-8 path")]);
    assert_code(&out, 0);
    for name in [
        "model-provisioner.1",
        "model-provisioner-ensure.1",
        "model-provisioner-push.1",
    ] {
        let page = fs::read_to_string(dir.join(name))?;
        assert!(
            page.starts_with(".ie") && page.contains(".TH"),
            "{name}:\n{page}"
        );
    }
    let ensure = fs::read_to_string(dir.join("model-provisioner-ensure.1"))?;
    assert!(ensure.contains("digest"), "{ensure}");
    Ok(())
}
