//! Signed models: a `model.sig` at a model's root held against the policy for it as the model is
//! recorded, and again by `verify`; the outcome recorded on the entry. The bundles are made with
//! `mp-signing` from keys `openssl` makes (the reference tool's interoperability is `mp-signing`'s
//! own tests').

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use catalog_core::{CatalogStore, Digest, SafeRelPath, SignatureOutcome};
use model_provisioner::signing::{SignerPolicy, SignerRules};
use model_provisioner::{Error, ModelProvisioner};
use mp_signing::{Signer, sign};

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// An EC P-256 key pair made by `openssl` in `dir`: (private key PEM path, public key PEM path).
fn key_pair(dir: &Path, name: &str) -> Result<(PathBuf, PathBuf), Box<dyn std::error::Error>> {
    let private = dir.join(format!("{name}.key"));
    let public = dir.join(format!("{name}.pub"));
    for args in [
        vec![
            "ecparam",
            "-name",
            "prime256v1",
            "-genkey",
            "-noout",
            "-out",
        ],
        vec!["ec", "-pubout", "-in"],
    ] {
        let mut cmd = Command::new("openssl");
        cmd.args(&args);
        if args[0] == "ecparam" {
            cmd.arg(&private);
        } else {
            cmd.arg(&private).arg("-out").arg(&public);
        }
        let out = cmd.output()?;
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok((private, public))
}

/// A model folder of two files, signed with `key` when given: `model.sig` at its root.
fn model(dir: &Path, key: Option<&Path>) -> Result<PathBuf, Box<dyn std::error::Error>> {
    let model = dir.join("model");
    fs::create_dir_all(&model)?;
    fs::write(model.join("config.json"), b"{\"arch\": \"tiny\"}")?;
    fs::write(
        model.join("weights.bin"),
        test_support::random_bytes(200_000, 91),
    )?;
    if let Some(key) = key {
        let files: Vec<(SafeRelPath, Digest)> = ["config.json", "weights.bin"]
            .iter()
            .map(|name| -> Result<_, Box<dyn std::error::Error>> {
                Ok((
                    SafeRelPath::new((*name).to_owned())?,
                    Digest::sha256_of(&fs::read(model.join(name))?),
                ))
            })
            .collect::<Result<_, _>>()?;
        let bundle = sign(&files, &Signer::key(&fs::read(key)?)?, "model")?;
        fs::write(model.join("model.sig"), bundle)?;
    }
    Ok(model)
}

fn policy(text: &str) -> Result<SignerPolicy, Box<dyn std::error::Error>> {
    Ok(SignerPolicy::parse(text)?)
}

#[test]
fn a_model_signed_by_the_policys_key_is_recorded_with_its_signer() -> TestResult {
    let dir = tempfile::tempdir()?;
    let (private, public) = key_pair(dir.path(), "org")?;
    let model = model(dir.path(), Some(&private))?;
    let cache = tempfile::tempdir()?;
    let p = ModelProvisioner::builder(cache.path())
        .signed_by(Some(policy(&format!("key:{}", public.display()))?))
        .build()?;
    let ensured = p.ensure_present_str(&model.display().to_string(), None)?;
    let entry = p.find(&ensured.id)?;
    let signature = entry.signature.ok_or("a signature recorded")?;
    assert_eq!(signature.outcome, SignatureOutcome::Verified);
    assert!(
        signature
            .signer
            .as_deref()
            .is_some_and(|s| s.starts_with("key sha256:")),
        "{signature:?}"
    );
    // `verify` checks it again.
    let verified = p.verify(&ensured.id)?;
    assert_eq!(
        verified.entry.signature.map(|s| s.outcome),
        Some(SignatureOutcome::Verified)
    );
    Ok(())
}

#[test]
fn another_key_an_unsigned_model_or_a_changed_file_fail_as_verification_failures() -> TestResult {
    let dir = tempfile::tempdir()?;
    let (private, _) = key_pair(dir.path(), "signer")?;
    let (_, other) = key_pair(dir.path(), "other")?;
    let signed = model(&dir.path().join("signed"), Some(&private))?;
    let unsigned = model(&dir.path().join("unsigned"), None)?;
    let cache = tempfile::tempdir()?;
    let p = ModelProvisioner::builder(cache.path())
        .signed_by(Some(policy(&format!("key:{}", other.display()))?))
        .build()?;
    for (model, says) in [(&signed, "does not satisfy"), (&unsigned, "unsigned")] {
        let err = p
            .ensure_present_str(&model.display().to_string(), None)
            .unwrap_err();
        assert!(err.is_verification_failure(), "{err}");
        assert!(
            matches!(&err, Error::Signature { reason, .. } if reason.contains(says)),
            "{err}"
        );
        assert!(
            p.catalog()
                .get(&format!("file:{}", model.display()))?
                .is_none()
        );
    }

    // The right key, but a file changed after signing.
    let (_, public) = (private.clone(), dir.path().join("signer.pub"));
    fs::write(signed.join("config.json"), b"{\"arch\": \"other\"}")?;
    let p = ModelProvisioner::builder(cache.path())
        .signed_by(Some(policy(&format!("key:{}", public.display()))?))
        .build()?;
    let err = p
        .ensure_present_str(&signed.display().to_string(), None)
        .unwrap_err();
    assert!(err.is_verification_failure(), "{err}");
    assert!(err.to_string().contains("config.json"), "{err}");
    Ok(())
}

#[test]
fn a_rule_for_a_prefix_applies_and_a_signature_with_no_policy_is_recorded_unchecked() -> TestResult
{
    let dir = tempfile::tempdir()?;
    let (private, public) = key_pair(dir.path(), "org")?;
    let inside = model(&dir.path().join("org"), Some(&private))?;
    let outside = model(&dir.path().join("elsewhere"), Some(&private))?;
    let cache = tempfile::tempdir()?;
    let mut rules = SignerRules::new();
    rules.push(&format!(
        "file:{}=key:{}",
        dir.path().join("org").display(),
        public.display()
    ))?;
    let p = ModelProvisioner::builder(cache.path())
        .signers(rules)
        .build()?;
    let by_rule = p.ensure_present_str(&inside.display().to_string(), None)?;
    assert_eq!(
        p.find(&by_rule.id)?.signature.map(|s| s.outcome),
        Some(SignatureOutcome::Verified)
    );
    let no_rule = p.ensure_present_str(&outside.display().to_string(), None)?;
    let signature = p
        .find(&no_rule.id)?
        .signature
        .ok_or("a signature recorded")?;
    assert_eq!(
        signature.outcome,
        SignatureOutcome::Unchecked,
        "{signature:?}"
    );

    // With no policy, a file that is not as signed is recorded as failing, and the model
    // still ensured.
    fs::write(outside.join("weights.bin"), b"other bytes")?;
    let p = ModelProvisioner::builder(cache.path()).build()?;
    let again = p.ensure_present_str(&outside.display().to_string(), None)?;
    let signature = p.find(&again.id)?.signature.ok_or("a signature recorded")?;
    assert_eq!(signature.outcome, SignatureOutcome::Failed, "{signature:?}");
    assert!(
        signature
            .detail
            .as_deref()
            .is_some_and(|d| d.contains("weights.bin")),
        "{signature:?}"
    );
    Ok(())
}

#[test]
fn a_policy_that_names_no_usable_key_is_refused_when_read() {
    let err = SignerPolicy::parse("key:/nonexistent/key.pem").unwrap_err();
    assert!(err.to_string().contains("/nonexistent/key.pem"), "{err}");
    assert!(SignerPolicy::parse("gpg:whatever").is_err());
    assert!(
        SignerRules::parse("hf:org/ key:x").is_err(),
        "a rule needs `=`"
    );
}
