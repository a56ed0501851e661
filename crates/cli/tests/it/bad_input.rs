//! Bad input gets a clear error and loses nothing: each test starts from a catalog with one
//! entry, runs one bad command, and checks the exit status, the message, and that
//! `catalog/index.json` is byte for byte what it was.

use std::fs;
use std::process::{Command, Output};

use crate::fixture::{
    Fixture, TestResult, assert_code, assert_failure, hints, run_within_limit, stderr, str_field,
    u64_field,
};

/// Runs `args` against a catalog with one entry and checks the failure and the index.
fn bad_command(args: &[&str], code: i32, keywords: &[&str]) -> TestResult<(Fixture, Output)> {
    let fx = Fixture::with_one_entry()?;
    let out = fails_keeping_index(&fx, args, code, keywords);
    Ok((fx, out))
}

/// Runs `args` in `fx` and checks the failure, and that the index did not change.
fn fails_keeping_index(fx: &Fixture, args: &[&str], code: i32, keywords: &[&str]) -> Output {
    let before = fx.index_bytes();
    let out = fx.run(args);
    assert_failure(&out, code, keywords);
    assert!(
        fx.index_bytes() == before,
        "{args:?} changed catalog/index.json"
    );
    out
}

fn mkfifo(fx: &Fixture, rel: &str) -> TestResult {
    let status = Command::new("mkfifo").arg(fx.path(rel)).status()?;
    assert!(status.success(), "mkfifo failed");
    Ok(())
}

#[test]
fn missing_path() -> TestResult {
    let (_fx, out) = bad_command(
        &["ensure", "nowhere.gguf"],
        1,
        &["`nowhere.gguf`", "does not exist"],
    )?;
    assert_eq!(hints(&out).len(), 1, "{}", stderr(&out));
    Ok(())
}

#[test]
fn fifo_is_refused_without_blocking() -> TestResult {
    let fx = Fixture::with_one_entry()?;
    mkfifo(&fx, "pipe.gguf")?;
    let digest = catalog_core::Digest::sha256_of(b"").to_string();
    for args in [
        vec!["ensure", "pipe.gguf"],
        vec!["ensure", "pipe.gguf", "--digest", &digest],
        vec!["ensure", "pipe.gguf", "--copy"],
    ] {
        fails_keeping_index(&fx, &args, 1, &["pipe.gguf", "not a regular file"]);
    }
    Ok(())
}

/// As root, permissions do not stop reads; `/proc/self/mem` fails with EIO at offset 0.
#[test]
fn unreadable_file_reports_the_read_error() -> TestResult {
    let fx = Fixture::with_one_entry()?;
    let digest = catalog_core::Digest::sha256_of(b"").to_string();
    for args in [
        vec!["ensure", "/proc/self/mem", "--digest", &digest],
        vec!["ensure", "/proc/self/mem", "--copy"],
    ] {
        fails_keeping_index(&fx, &args, 1, &["failed to read", "/mem`"]);
    }
    let leftover = fs::read_dir(fx.cache().join("tmp")).map_or(0, Iterator::count);
    assert_eq!(leftover, 0, "a staged copy was left in tmp/");
    Ok(())
}

#[test]
fn path_below_a_regular_file() -> TestResult {
    bad_command(
        &["ensure", "model.gguf/child.gguf"],
        1,
        &["`model.gguf/child.gguf`", "Not a directory"],
    )?;
    Ok(())
}

/// Regression guard: a directory model with a dangling symlink inside exists, so it must not
/// be reported as missing. The documented tree digest (`find -L … -type f`) skips such links:
/// the folder is ensured, and its digest is that of its regular files alone.
#[test]
fn directory_with_a_dangling_symlink_is_not_called_missing() -> TestResult {
    let fx = Fixture::with_one_entry()?;
    fx.write_model("tiny-model/config.json", b"{}")?;
    fx.write_model("tiny-model/shards/a.safetensors", b"aaa")?;
    std::os::unix::fs::symlink(
        fx.path("gone.safetensors"),
        fx.path("tiny-model/shards/b.safetensors"),
    )?;
    let digest = test_support::tree_digest([
        ("config.json", b"{}".as_slice()),
        ("shards/a.safetensors", b"aaa".as_slice()),
    ]);
    let out = fx.run(["ensure", "tiny-model", "--digest", &digest, "--json"]);
    assert_code(&out, 0);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    assert_eq!(str_field(&json, "verification"), "pass", "{json:#}");
    assert_eq!(str_field(&json, "id"), fx.id_of("tiny-model"));
    assert_eq!(u64_field(&json, "bytes"), 5, "{json:#}");
    Ok(())
}

#[test]
fn empty_ref() -> TestResult {
    bad_command(&["ensure", ""], 2, &["empty"])?;
    bad_command(&["ensure", "   "], 2, &["empty"])?;
    Ok(())
}

#[test]
fn malformed_digest() -> TestResult {
    bad_command(
        &["ensure", "model.gguf", "--digest", "sha256:xyz"],
        2,
        &["invalid digest", "sha256:<64 hex digits>"],
    )?;
    Ok(())
}

#[test]
fn unknown_scheme() -> TestResult {
    let (_fx, out) = bad_command(&["ensure", "ftp://x/y"], 2, &["unknown scheme `ftp:`"])?;
    assert!(!hints(&out).is_empty(), "{}", stderr(&out));
    Ok(())
}

#[test]
fn hf_via_the_cli_without_any_hf_tool_says_how_to_get_one() -> TestResult {
    // The fixture runs the binary with an empty environment: no PATH, so no tool.
    let (_fx, out) = bad_command(
        &["ensure", "hf:org/repo/file.gguf", "--via", "hf-cli"],
        1,
        &["`hf`", "`huggingface-cli`", "PATH"],
    )?;
    let hint = hints(&out).join("\n");
    assert!(hint.contains("pip install -U huggingface_hub"), "{hint}");
    assert!(hint.contains("native"), "{hint}");
    Ok(())
}

#[test]
fn hf_ref_to_an_unreachable_hub_fails_clearly_and_writes_nothing() -> TestResult {
    let fx = Fixture::with_one_entry()?;
    let before = fx.index_bytes();
    let endpoint = format!("http://127.0.0.1:{}", test_support::free_port());
    let mut cmd = fx.command(["ensure", "hf:org/repo/file.gguf"]);
    cmd.env("HF_ENDPOINT", &endpoint)
        .env("HF_TOKEN", "hf_SECRETTOKEN");
    let out = run_within_limit(&mut cmd);
    assert_failure(&out, 1, &[&endpoint, "could not connect"]);
    assert!(!stderr(&out).contains("SECRETTOKEN"), "{}", stderr(&out));
    assert!(fx.index_bytes() == before, "the index changed");
    Ok(())
}

#[test]
fn s3_ref_without_credentials_names_the_sources_tried() -> TestResult {
    let (fx, out) = bad_command(
        &["ensure", "s3://bucket/key.gguf"],
        1,
        &[
            "no AWS credentials found",
            "environment",
            "instance metadata",
        ],
    )?;
    assert!(!hints(&out).is_empty(), "{}", stderr(&out));
    drop(fx);
    Ok(())
}

#[test]
fn https_ref_to_a_closed_port_fails_clearly_without_leaking_credentials() -> TestResult {
    let fx = Fixture::with_one_entry()?;
    let before = fx.index_bytes();
    // Bind and drop a listener to find a port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let url = format!("http://user:hunter2@127.0.0.1:{port}/x.gguf?token=s3cr3t");
    let mut cmd = fx.command(["ensure", &url, "--retries", "1"]);
    let out = run_within_limit(&mut cmd);
    assert_failure(
        &out,
        1,
        &[
            &format!("http://127.0.0.1:{port}/x.gguf"),
            "could not connect",
            "2 attempts",
        ],
    );
    let err = stderr(&out);
    assert!(!err.contains("hunter2") && !err.contains("s3cr3t"), "{err}");
    assert!(fx.index_bytes() == before, "the index changed");
    Ok(())
}

#[test]
fn corrupt_index_is_refused_by_every_command_and_left_untouched() -> TestResult {
    let fx = Fixture::with_one_entry()?;
    fs::write(fx.index_path(), b"{\"version\": 1, \"entries\": {garbage")?;
    let index = fx.index_path().display().to_string();
    for args in [
        vec!["ls"],
        vec!["ls", "--json"],
        vec!["ensure", "model.gguf"],
        vec!["rm", "model.gguf"],
        vec!["retire", "model.gguf"],
        vec!["verify", "--all"],
        vec!["gc"],
    ] {
        let out = fails_keeping_index(&fx, &args, 1, &[&index, "corrupt"]);
        assert!(!hints(&out).is_empty(), "{args:?}: {}", stderr(&out));
    }
    Ok(())
}

#[test]
fn index_of_a_future_version_is_refused_and_left_untouched() -> TestResult {
    let fx = Fixture::with_one_entry()?;
    fs::write(fx.index_path(), br#"{"version": 99, "entries": {}}"#)?;
    let index = fx.index_path().display().to_string();
    for args in [
        vec!["ls"],
        vec!["ensure", "model.gguf"],
        vec!["rm", "model.gguf"],
        vec!["gc"],
    ] {
        fails_keeping_index(&fx, &args, 1, &[&index, "version 99"]);
    }
    Ok(())
}

#[test]
fn rm_of_an_unknown_id() -> TestResult {
    let (fx, out) = bad_command(
        &["rm", "file:/not/in/catalog.gguf"],
        1,
        &["no model", "`file:/not/in/catalog.gguf`"],
    )?;
    assert!(!hints(&out).is_empty(), "{}", stderr(&out));
    assert!(fx.path("model.gguf").exists());
    Ok(())
}

#[test]
fn cache_dir_that_is_a_regular_file() -> TestResult {
    let fx = Fixture::new()?;
    let digest = fx.write_model("model.gguf", b"weights")?.to_string();
    fs::write(fx.cache(), b"not a directory")?;
    for args in [
        vec!["ls"],
        vec!["ensure", "model.gguf", "--digest", &digest],
        vec!["gc"],
    ] {
        let out = fx.run(&args);
        assert_failure(&out, 1, &["is not a directory"]);
        assert!(!hints(&out).is_empty(), "{args:?}: {}", stderr(&out));
    }
    assert_eq!(fs::read(fx.cache())?, b"not a directory");
    Ok(())
}
