//! `ensure --signed-by`, `MODEL_PROVISIONER_SIGNERS` and `<cache>/signers.conf`: a model's
//! `model.sig` held against who must have signed it; what `show` then says.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use catalog_core::{Digest, SafeRelPath};
use mp_signing::{Signer, sign};

use crate::fixture::{Fixture, TestResult, assert_code, assert_failure, stdout};

/// An EC P-256 key pair made by `openssl`: (private key, public key) PEM paths.
fn key_pair(dir: &Path, name: &str) -> TestResult<(PathBuf, PathBuf)> {
    let (private, public) = (
        dir.join(format!("{name}.key")),
        dir.join(format!("{name}.pub")),
    );
    let made = Command::new("openssl")
        .args([
            "ecparam",
            "-name",
            "prime256v1",
            "-genkey",
            "-noout",
            "-out",
        ])
        .arg(&private)
        .status()?
        .success()
        && Command::new("openssl")
            .args(["ec", "-pubout", "-in"])
            .arg(&private)
            .arg("-out")
            .arg(&public)
            .status()?
            .success();
    assert!(made, "openssl made the key pair");
    Ok((private, public))
}

/// A model folder at `dir/model` signed with `key`.
fn signed_model(dir: &Path, key: &Path) -> TestResult<PathBuf> {
    let model = dir.join("model");
    fs::create_dir_all(&model)?;
    fs::write(model.join("config.json"), b"{}")?;
    fs::write(model.join("w.bin"), test_support::random_bytes(50_000, 92))?;
    let files = ["config.json", "w.bin"]
        .iter()
        .map(|n| -> TestResult<(SafeRelPath, Digest)> {
            Ok((
                SafeRelPath::new((*n).to_owned())?,
                Digest::sha256_of(&fs::read(model.join(n))?),
            ))
        })
        .collect::<TestResult<Vec<_>>>()?;
    fs::write(
        model.join("model.sig"),
        sign(&files, &Signer::key(&fs::read(key)?)?, "model")?,
    )?;
    Ok(model)
}

#[test]
fn signed_by_the_key_passes_and_show_says_who_signed() -> TestResult {
    let fx = Fixture::new()?;
    let (private, public) = key_pair(fx.root(), "org")?;
    let model = signed_model(&fx.path("a"), &private)?;
    let policy = format!("key:{}", public.display());
    let out = fx.run([
        "ensure",
        model.to_str().ok_or("utf-8")?,
        "--signed-by",
        &policy,
        "--json",
    ]);
    assert_code(&out, 0);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    assert_eq!(json["signature"]["outcome"], "verified", "{json:#}");
    let shown = stdout(&fx.run(["show", model.to_str().ok_or("utf-8")?]));
    assert!(
        shown.contains("signature:") && shown.contains("verified (key sha256:"),
        "{shown}"
    );
    Ok(())
}

#[test]
fn a_rule_of_the_environment_refuses_another_signer_with_status_three() -> TestResult {
    let fx = Fixture::new()?;
    let (private, _) = key_pair(fx.root(), "signer")?;
    let (_, other) = key_pair(fx.root(), "other")?;
    let model = signed_model(&fx.path("b"), &private)?;
    let mut cmd = fx.command(["ensure", model.to_str().ok_or("utf-8")?]);
    cmd.env(
        "MODEL_PROVISIONER_SIGNERS",
        format!("file:{}=key:{}", fx.path("b").display(), other.display()),
    );
    let out = cmd.output()?;
    assert_failure(&out, 3, &["does not satisfy", "other.pub"]);
    // The same rule from the cache's signers.conf.
    fs::write(
        fx.cache().join("signers.conf"),
        format!(
            "# models of b must be signed by other\nfile:{}=key:{}\n",
            fx.path("b").display(),
            other.display()
        ),
    )?;
    let out = fx.run(["ensure", model.to_str().ok_or("utf-8")?]);
    assert_code(&out, 3);
    Ok(())
}

#[test]
fn a_policy_that_is_no_policy_is_a_usage_error() -> TestResult {
    let fx = Fixture::new()?;
    let out = fx.run(["ensure", "x.gguf", "--signed-by", "key:/nonexistent.pem"]);
    assert_failure(&out, 2, &["/nonexistent.pem"]);
    let out = fx.run(["ensure", "x.gguf", "--signed-by", "gpg:abc"]);
    assert_failure(&out, 2, &["no signer policy"]);
    Ok(())
}
