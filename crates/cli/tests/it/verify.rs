//! `verify` always hashes again, so it catches what the fingerprint cannot see.

use std::fs::{self, File};
use std::io::{Seek, SeekFrom, Write};
use std::os::unix::fs::MetadataExt;

use catalog_core::Digest;

use crate::fixture::{Fixture, TestResult, assert_code, stderr, stdout, str_field};

#[test]
fn verify_passes_for_an_intact_file() -> TestResult {
    let fx = Fixture::new()?;
    let digest = fx.write_model("tiny.gguf", b"tiny weights")?;
    assert_code(
        &fx.run(["ensure", "tiny.gguf", "--digest", &digest.to_string()]),
        0,
    );
    let out = fx.run(["verify", &fx.id_of("tiny.gguf")]);
    assert_code(&out, 0);
    assert!(stdout(&out).contains("pass"), "{}", stdout(&out));
    let out = fx.run(["verify", "./tiny.gguf"]);
    assert_code(&out, 0);
    Ok(())
}

/// Flips the last byte of `rel` in place and sets its mtime back, so that size, mtime and
/// inode (the fingerprint) are all as before.
fn flip_last_byte_keeping_fingerprint(fx: &Fixture, rel: &str) -> TestResult<Vec<u8>> {
    let path = fx.path(rel);
    let before = fs::metadata(&path)?;
    let mut data = fs::read(&path)?;
    let last = data.last_mut().ok_or("empty file")?;
    *last ^= 0x20;
    let mut file = File::options().write(true).open(&path)?;
    file.seek(SeekFrom::End(-1))?;
    file.write_all(&data[data.len() - 1..])?;
    file.set_modified(before.modified()?)?;
    drop(file);
    let after = fs::metadata(&path)?;
    assert_eq!(
        (after.len(), after.ino(), after.modified()?),
        (before.len(), before.ino(), before.modified()?),
        "the fingerprint should look unchanged"
    );
    Ok(data)
}

#[test]
fn verify_catches_a_flipped_byte_that_keeps_the_fingerprint() -> TestResult {
    let fx = Fixture::new()?;
    let expected = fx.write_model("tiny.gguf", b"tiny weights")?;
    assert_code(
        &fx.run(["ensure", "tiny.gguf", "--digest", &expected.to_string()]),
        0,
    );
    let data = flip_last_byte_keeping_fingerprint(&fx, "tiny.gguf")?;
    let computed = Digest::sha256_of(&data);

    let out = fx.run(["verify", &fx.id_of("tiny.gguf")]);
    assert_code(&out, 3);
    let both = format!("{}{}", stdout(&out), stderr(&out));
    assert!(
        both.contains(&expected.to_string()),
        "expected digest not shown:\n{both}"
    );
    assert!(
        both.contains(&computed.to_string()),
        "computed digest not shown:\n{both}"
    );
    assert!(
        stderr(&out).lines().any(|l| l.starts_with("error: ")),
        "{both}"
    );

    let out = fx.run(["verify", "--all", "--json"]);
    assert_code(&out, 3);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let results = json.as_array().ok_or("not an array")?;
    assert_eq!(results.len(), 1, "{json:#}");
    let r = &results[0];
    assert_eq!(str_field(r, "id"), fx.id_of("tiny.gguf"));
    assert_eq!(str_field(r, "verification"), "fail");
    assert_eq!(str_field(r, "expected"), expected.to_string());
    assert_eq!(str_field(r, "computed"), computed.to_string());
    Ok(())
}

#[test]
fn verify_all_reports_each_model() -> TestResult {
    let fx = Fixture::new()?;
    let good = fx.write_model("good.gguf", b"good weights")?;
    let bad = fx.write_model("bad.gguf", b"bad weights")?;
    for (f, d) in [("good.gguf", &good), ("bad.gguf", &bad)] {
        assert_code(&fx.run(["ensure", f, "--digest", &d.to_string()]), 0);
    }
    flip_last_byte_keeping_fingerprint(&fx, "bad.gguf")?;
    let out = fx.run(["verify", "--all", "--json"]);
    assert_code(&out, 3);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let outcomes: Vec<(&str, &str)> = json
        .as_array()
        .ok_or("not an array")?
        .iter()
        .map(|r| (str_field(r, "id"), str_field(r, "verification")))
        .collect();
    assert_eq!(
        outcomes,
        [
            (fx.id_of("bad.gguf").as_str(), "fail"),
            (fx.id_of("good.gguf").as_str(), "pass"),
        ]
    );
    Ok(())
}

/// Regression guard: `verify` must not open a FIFO that replaced a model file (opening one for
/// reading blocks until a writer appears), it must refuse it like `ensure` does.
#[test]
fn verify_of_a_model_replaced_by_a_fifo_fails_instead_of_hanging() -> TestResult {
    let fx = Fixture::new()?;
    fx.write_model("tiny.gguf", b"tiny weights")?;
    assert_code(&fx.run(["-q", "ensure", "tiny.gguf"]), 0);
    fs::remove_file(fx.path("tiny.gguf"))?;
    let status = std::process::Command::new("mkfifo")
        .arg(fx.path("tiny.gguf"))
        .status()?;
    assert!(status.success(), "mkfifo failed");
    let index = fx.index_bytes();

    let out = fx.run(["verify", &fx.id_of("tiny.gguf")]);
    assert_code(&out, 1);
    let both = format!("{}{}", stdout(&out), stderr(&out));
    assert!(both.contains("not a regular file"), "{both}");
    assert_eq!(fx.index_bytes(), index);
    Ok(())
}
