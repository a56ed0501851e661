//! Both ways with the reference package: what `model_signing sign` makes verifies here, and
//! what `mp_signing::sign` makes, `model_signing verify` accepts.

use std::process::Command;

use catalog_core::Digest;
use mp_signing::{
    Bundle, Policy, PublicKey, Refused, SignedBy, Signer, TrustedCa, sign, verify, verify_file,
};

use crate::fixture::{
    KeyForm, LeafUsage, TestResult, chain, key_pair, model, model_signing, path, run, run_failing,
};

fn reference_signs_with_key(curve: &str, form: KeyForm) -> TestResult {
    let dir = tempfile::tempdir()?;
    let keys = key_pair(dir.path(), "signer", curve, form);
    let (root, files) = model(dir.path());
    let signature = root.join("model.sig");
    run(Command::new(model_signing())
        .args(["sign", "key", "--private_key"])
        .arg(&keys.private)
        .arg("--signature")
        .arg(&signature)
        .arg(&root));

    let bundle = Bundle::read(&std::fs::read(&signature)?)?;
    assert_eq!(bundle.statement().model_name(), "tiny-model");
    let key = PublicKey::from_pem(&std::fs::read(&keys.public)?)?;
    let policy = Policy::Key(key.clone());
    let signed = verify(&bundle, &policy, &files)?;
    assert_eq!(
        signed.signed_by,
        SignedBy::Key {
            fingerprint: key.fingerprint()
        }
    );
    assert_eq!(signed.files, 3);

    // The signature file and git's files are left out, as the statement says.
    let mut with_ignored = files.clone();
    with_ignored.push((path("model.sig"), Digest::sha256_of(b"anything")));
    with_ignored.push((path(".git/HEAD"), Digest::sha256_of(b"anything")));
    assert_eq!(verify(&bundle, &policy, &with_ignored)?, signed);

    // Another key is refused by the bundle's hint before the signature is tried.
    let other = key_pair(dir.path(), "other", curve, form);
    let other = Policy::Key(PublicKey::from_pem(&std::fs::read(&other.public)?)?);
    assert!(matches!(
        verify(&bundle, &other, &files),
        Err(Refused::WrongKey { .. })
    ));
    Ok(())
}

#[test]
fn reference_key_signature_p256_pkcs8_verifies() -> TestResult {
    reference_signs_with_key("P-256", KeyForm::Pkcs8)
}

#[test]
fn reference_key_signature_p384_sec1_verifies() -> TestResult {
    reference_signs_with_key("P-384", KeyForm::Sec1)
}

#[test]
fn reference_signature_refuses_changed_extra_and_missing_files() -> TestResult {
    let dir = tempfile::tempdir()?;
    let keys = key_pair(dir.path(), "signer", "P-256", KeyForm::Pkcs8);
    let (root, files) = model(dir.path());
    let signature = root.join("model.sig");
    run(Command::new(model_signing())
        .args(["sign", "key", "--private_key"])
        .arg(&keys.private)
        .arg("--signature")
        .arg(&signature)
        .arg(&root));
    let bundle = Bundle::read(&std::fs::read(&signature)?)?;
    let policy = Policy::Key(PublicKey::from_pem(&std::fs::read(&keys.public)?)?);

    let mut changed = files.clone();
    changed[1].1 = Digest::sha256_of(b"other weights");
    assert_eq!(
        verify(&bundle, &policy, &changed),
        Err(Refused::FileMismatch {
            path: "model.safetensors".to_owned(),
            expected: files[1].1.clone(),
            computed: changed[1].1.clone(),
        })
    );
    let mut extra = files.clone();
    extra.push((path("extra.bin"), Digest::sha256_of(b"x")));
    assert_eq!(
        verify(&bundle, &policy, &extra),
        Err(Refused::FileNotSigned {
            path: "extra.bin".to_owned()
        })
    );
    assert_eq!(
        verify(&bundle, &policy, &files[..2]),
        Err(Refused::FileMissing {
            path: "tokenizer/vocab.txt".to_owned()
        })
    );
    // A file given twice does not stand in for a missing one.
    let twice = [files[0].clone(), files[1].clone(), files[1].clone()];
    assert_eq!(
        verify(&bundle, &policy, &twice),
        Err(Refused::FileMissing {
            path: "tokenizer/vocab.txt".to_owned()
        })
    );

    // One file: in the statement with its digest, or refused.
    verify_file(&bundle, &policy, &files[2].0, &files[2].1)?;
    assert!(matches!(
        verify_file(&bundle, &policy, &files[2].0, &files[0].1),
        Err(Refused::FileMismatch { .. })
    ));
    assert!(matches!(
        verify_file(&bundle, &policy, &path("extra.bin"), &files[0].1),
        Err(Refused::FileNotSigned { .. })
    ));

    // Keyless is refused, whatever the bundle.
    let keyless = Policy::Keyless {
        identity: "a@example.com".to_owned(),
        issuer: "https://issuer.example".to_owned(),
    };
    assert_eq!(
        verify(&bundle, &keyless, &files),
        Err(Refused::KeylessUnsupported)
    );

    // A statement altered after signing no longer verifies.
    let mut json: serde_json::Value = serde_json::from_slice(&std::fs::read(&signature)?)?;
    let payload = json["dsseEnvelope"]["payload"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let other_payload = {
        use base64::Engine as _;
        let engine = base64::engine::general_purpose::STANDARD;
        let text =
            String::from_utf8(engine.decode(payload)?)?.replace("\"tiny-model\"", "\"renamed\"");
        engine.encode(text)
    };
    json["dsseEnvelope"]["payload"] = other_payload.into();
    let altered = Bundle::read(&serde_json::to_vec(&json)?)?;
    assert!(matches!(
        verify(&altered, &policy, &files),
        Err(Refused::BadSignature { .. })
    ));
    Ok(())
}

#[test]
fn reference_certificate_signature_verifies_to_the_ca() -> TestResult {
    let dir = tempfile::tempdir()?;
    let chain = chain(dir.path(), LeafUsage::CodeSigning);
    let (root, files) = model(dir.path());
    let signature = root.join("model.sig");
    run(Command::new(model_signing())
        .args(["sign", "certificate", "--private_key"])
        .arg(&chain.leaf_key)
        .arg("--signing_certificate")
        .arg(&chain.leaf)
        .arg("--certificate_chain")
        .arg(&chain.intermediate)
        .arg("--signature")
        .arg(&signature)
        .arg(&root));

    let bundle = Bundle::read(&std::fs::read(&signature)?)?;
    let ca = TrustedCa::from_pem(&std::fs::read(&chain.root)?)?;
    let policy = Policy::CertChain {
        ca: ca.clone(),
        identity: Some("signer@example.com".to_owned()),
    };
    let signed = verify(&bundle, &policy, &files)?;
    assert_eq!(
        signed.signed_by,
        SignedBy::Certificate {
            subject: "O=Example, CN=Model Signer".to_owned(),
            alt_names: vec!["signer@example.com".to_owned()],
        }
    );
    let by_name = Policy::CertChain {
        ca: ca.clone(),
        identity: Some("Model Signer".to_owned()),
    };
    verify(&bundle, &by_name, &files)?;
    let someone_else = Policy::CertChain {
        ca,
        identity: Some("someone@example.com".to_owned()),
    };
    assert!(matches!(
        verify(&bundle, &someone_else, &files),
        Err(Refused::WrongIdentity { .. })
    ));

    // Another CA is refused.
    let other_dir = tempfile::tempdir()?;
    let other = crate::fixture::chain(other_dir.path(), LeafUsage::CodeSigning);
    let other_ca = Policy::CertChain {
        ca: TrustedCa::from_pem(&std::fs::read(&other.root)?)?,
        identity: None,
    };
    assert!(matches!(
        verify(&bundle, &other_ca, &files),
        Err(Refused::Chain { .. })
    ));

    // A key policy over a certificate bundle: the signature is not the key's.
    let stranger = key_pair(dir.path(), "stranger", "P-256", KeyForm::Pkcs8);
    let key = Policy::Key(PublicKey::from_pem(&std::fs::read(&stranger.public)?)?);
    assert!(matches!(
        verify(&bundle, &key, &files),
        Err(Refused::BadSignature { .. })
    ));
    Ok(())
}

fn reference_verifies_our_key_signature(curve: &str, form: KeyForm) -> TestResult {
    let dir = tempfile::tempdir()?;
    let keys = key_pair(dir.path(), "signer", curve, form);
    let (root, files) = model(dir.path());
    let signer = Signer::key(&std::fs::read(&keys.private)?)?;
    let bundle = sign(&files, &signer, "tiny-model")?;
    let signature = root.join("model.sig");
    std::fs::write(&signature, &bundle)?;
    let verify_key = |public: &std::path::Path| {
        let mut command = Command::new(model_signing());
        command
            .args(["verify", "key", "--signature"])
            .arg(&signature)
            .arg("--public_key")
            .arg(public)
            .arg(&root);
        command
    };
    let out = run(&mut verify_key(&keys.public));
    assert!(out.contains("Verification succeeded"), "{out}");
    // Ours reads back what we wrote, too.
    let read = Bundle::read(&bundle)?;
    verify(
        &read,
        &Policy::Key(PublicKey::from_pem(&std::fs::read(&keys.public)?)?),
        &files,
    )?;

    // The reference refuses it for another key, and for a changed file.
    let other = key_pair(dir.path(), "other", curve, form);
    run_failing(&mut verify_key(&other.public));
    std::fs::write(root.join("config.json"), b"{}")?;
    run_failing(&mut verify_key(&keys.public));
    Ok(())
}

#[test]
fn our_key_signature_p256_verifies_with_the_reference() -> TestResult {
    reference_verifies_our_key_signature("P-256", KeyForm::Pkcs8)
}

#[test]
fn our_key_signature_p384_sec1_verifies_with_the_reference() -> TestResult {
    reference_verifies_our_key_signature("P-384", KeyForm::Sec1)
}

#[test]
fn our_certificate_signature_verifies_with_the_reference() -> TestResult {
    let dir = tempfile::tempdir()?;
    let chain = chain(dir.path(), LeafUsage::CodeSigning);
    let (root, files) = model(dir.path());
    let signer = Signer::certificate(
        &std::fs::read(&chain.leaf_key)?,
        &std::fs::read(&chain.leaf)?,
        &std::fs::read(&chain.intermediate)?,
    )?;
    let bundle = sign(&files, &signer, "tiny-model")?;
    let signature = root.join("model.sig");
    std::fs::write(&signature, &bundle)?;
    let out = run(Command::new(model_signing())
        .args(["verify", "certificate", "--signature"])
        .arg(&signature)
        .arg("--certificate_chain")
        .arg(&chain.root)
        .arg(&root));
    assert!(out.contains("Verification succeeded"), "{out}");

    let ca = TrustedCa::from_pem(&std::fs::read(&chain.root)?)?;
    let read = Bundle::read(&bundle)?;
    verify(
        &read,
        &Policy::CertChain {
            ca,
            identity: Some("signer@example.com".to_owned()),
        },
        &files,
    )?;
    Ok(())
}

#[test]
fn a_certificate_not_for_signing_is_refused() -> TestResult {
    let dir = tempfile::tempdir()?;
    let chain = chain(dir.path(), LeafUsage::ServerOnly);
    let (root, files) = model(dir.path());
    let signer = Signer::certificate(
        &std::fs::read(&chain.leaf_key)?,
        &std::fs::read(&chain.leaf)?,
        &std::fs::read(&chain.intermediate)?,
    )?;
    let bundle = sign(&files, &signer, "tiny-model")?;
    let ca = TrustedCa::from_pem(&std::fs::read(&chain.root)?)?;
    let refused = verify(
        &Bundle::read(&bundle)?,
        &Policy::CertChain { ca, identity: None },
        &files,
    );
    assert!(
        matches!(refused, Err(Refused::Chain { .. } | Refused::NotForSigning)),
        "{refused:?}"
    );
    // The reference refuses it as well.
    let signature = root.join("model.sig");
    std::fs::write(&signature, &bundle)?;
    run_failing(
        Command::new(model_signing())
            .args(["verify", "certificate", "--signature"])
            .arg(&signature)
            .arg("--certificate_chain")
            .arg(&chain.root)
            .arg(&root),
    );
    Ok(())
}

#[test]
fn a_certificate_of_another_key_is_refused_when_signing() -> TestResult {
    let dir = tempfile::tempdir()?;
    let chain = chain(dir.path(), LeafUsage::CodeSigning);
    let stranger = key_pair(dir.path(), "stranger", "P-256", KeyForm::Pkcs8);
    let made = Signer::certificate(
        &std::fs::read(&stranger.private)?,
        &std::fs::read(&chain.leaf)?,
        &std::fs::read(&chain.intermediate)?,
    );
    assert!(matches!(
        made,
        Err(mp_signing::Error::CertificateKeyMismatch)
    ));
    Ok(())
}

#[test]
fn a_p521_key_is_refused_with_its_curve_named() -> TestResult {
    let dir = tempfile::tempdir()?;
    let keys = key_pair(dir.path(), "big", "P-521", KeyForm::Pkcs8);
    let err = PublicKey::from_pem(&std::fs::read(&keys.public)?).expect_err("P-521 is refused");
    assert!(err.to_string().contains("P-521 is not supported"), "{err}");
    let err = Signer::key(&std::fs::read(&keys.private)?).expect_err("P-521 is refused");
    assert!(err.to_string().contains("P-521 is not supported"), "{err}");
    Ok(())
}
