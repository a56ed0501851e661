//! Hostile and broken bundles: each refused by `Bundle::read` with its own error, never a panic
//! and never memory out of proportion to the input.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use mp_signing::{Bundle, Error, MAX_BUNDLE_BYTES, MAX_CHAIN_LEN, MAX_FILES};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

/// A statement of the model-signing shape over `resources` (name, hex digest), with the right
/// model digest.
fn statement(resources: &[(&str, String)]) -> Value {
    let mut hasher = Sha256::new();
    for (_, hex) in resources {
        let bytes: Vec<u8> = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap_or(0))
            .collect();
        hasher.update(bytes);
    }
    let model_digest = catalog_core::to_hex(&hasher.finalize());
    json!({
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{ "name": "m", "digest": { "sha256": model_digest } }],
        "predicateType": "https://model_signing/signature/v1.0",
        "predicate": {
            "serialization": { "method": "files", "hash_type": "sha256", "allow_symlinks": false,
                               "ignore_paths": ["model.sig", ".git"] },
            "resources": resources.iter().map(|(name, digest)| json!({
                "name": name, "algorithm": "sha256", "digest": digest })).collect::<Vec<_>>(),
        },
    })
}

fn hex(byte: u8) -> String {
    format!("{byte:02x}").repeat(32)
}

/// A bundle around `payload`, with a key hint and a (not checked here) signature.
fn bundle_of(payload: &[u8]) -> Value {
    json!({
        "mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
        "verificationMaterial": { "publicKey": { "hint": "00" }, "tlogEntries": [] },
        "dsseEnvelope": {
            "payload": STANDARD.encode(payload),
            "payloadType": "application/vnd.in-toto+json",
            "signatures": [{ "sig": STANDARD.encode(b"sig"), "keyid": "" }],
        },
    })
}

fn read(bundle: &Value) -> Result<Bundle, Error> {
    Bundle::read(&serde_json::to_vec(bundle).expect("JSON"))
}

fn read_statement(statement: &Value) -> Result<Bundle, Error> {
    read(&bundle_of(&serde_json::to_vec(statement).expect("JSON")))
}

#[test]
fn a_well_formed_bundle_reads() -> Result<(), Error> {
    let bundle = read_statement(&statement(&[("a.bin", hex(1)), ("dir/b.bin", hex(2))]))?;
    assert_eq!(bundle.statement().files().len(), 2);
    assert!(
        bundle
            .statement()
            .is_ignored(&"model.sig".parse().expect("a path"))
    );
    assert!(
        bundle
            .statement()
            .is_ignored(&".git/config".parse().expect("a path"))
    );
    assert!(
        !bundle
            .statement()
            .is_ignored(&".gitignore".parse().expect("a path"))
    );
    Ok(())
}

#[test]
fn not_json_is_refused() {
    let err = Bundle::read(b"\x00\xffnot json").expect_err("refused");
    assert!(matches!(err, Error::BundleJson { .. }), "{err}");
    assert!(
        err.to_string()
            .starts_with("the signature bundle is not a Sigstore bundle"),
        "{err}"
    );
}

#[test]
fn a_huge_bundle_is_refused_before_parsing() {
    let huge = vec![b' '; MAX_BUNDLE_BYTES + 1];
    let err = Bundle::read(&huge).expect_err("refused");
    assert!(matches!(err, Error::BundleTooLarge { .. }), "{err}");
}

#[test]
fn deep_nesting_is_refused_or_read_over_without_recursion() {
    let open = "[".repeat(100_000);
    let close = "]".repeat(100_000);
    // Where a field of a known shape is expected, the first value of another shape is refused.
    for deep in [
        format!("{open}{close}"),
        format!("{{\"mediaType\":{open}{close}}}"),
        format!(
            "{{\"mediaType\":\"application/vnd.dev.sigstore.bundle.v0.3+json\",\"verificationMaterial\":{{\"publicKey\":{open}{close}}}}}"
        ),
    ] {
        let err = Bundle::read(deep.as_bytes()).expect_err("refused");
        assert!(matches!(err, Error::BundleJson { .. }), "{err}");
    }
    // Where a value is skipped (transparency-log entries, unknown fields), serde_json reads over
    // it without recursing, so depth costs no stack; the bundle is then refused for what it lacks.
    let skipped = format!(
        "{{\"mediaType\":\"application/vnd.dev.sigstore.bundle.v0.3+json\",\"unknown\":{open}{close},\"verificationMaterial\":{{\"tlogEntries\":[{open}{close}]}}}}"
    );
    assert!(matches!(
        Bundle::read(skipped.as_bytes()),
        Err(Error::NoEnvelope)
    ));
    // Inside the statement: the predicate is held as raw JSON, read over the same way, and then
    // refused for its shape.
    let mut deep_predicate = serde_json::to_string(&statement(&[("a.bin", hex(1))])).expect("JSON");
    deep_predicate = deep_predicate.replace(
        "\"predicate\":{",
        &format!("\"predicate\":{{\"extra\":{open}{close},"),
    );
    assert!(read(&bundle_of(deep_predicate.as_bytes())).is_ok());
    let err = read(&bundle_of(format!("{open}{close}").as_bytes())).expect_err("refused");
    assert!(matches!(err, Error::StatementJson { .. }), "{err}");
}

#[test]
fn a_statement_of_too_many_files_is_refused() {
    let name = |i: usize| format!("f{i}");
    let names: Vec<String> = (0..=MAX_FILES).map(name).collect();
    let resources: Vec<(&str, String)> = names.iter().map(|n| (n.as_str(), hex(0))).collect();
    let err = read_statement(&statement(&resources)).expect_err("refused");
    assert!(
        matches!(
            err,
            Error::TooMany {
                what: "files",
                limit: MAX_FILES
            }
        ),
        "{err}"
    );
}

#[test]
fn paths_that_leave_the_model_are_refused() {
    for name in ["../escape", "/etc/passwd", "a/../../b", "a\\b", ""] {
        let err = read_statement(&statement(&[(name, hex(1))])).expect_err(name);
        assert!(matches!(err, Error::UnsafePath { .. }), "{name}: {err}");
    }
}

#[test]
fn a_path_listed_twice_is_refused() {
    let err =
        read_statement(&statement(&[("a.bin", hex(1)), ("a.bin", hex(2))])).expect_err("refused");
    assert_eq!(err.to_string(), "the statement lists `a.bin` twice");
}

#[test]
fn unknown_statement_and_predicate_types_are_refused() {
    let mut other = statement(&[("a.bin", hex(1))]);
    other["_type"] = "https://in-toto.io/Statement/v0.1".into();
    assert!(matches!(
        read_statement(&other),
        Err(Error::StatementType(_))
    ));
    let mut other = statement(&[("a.bin", hex(1))]);
    other["predicateType"] = "https://slsa.dev/provenance/v1".into();
    assert!(matches!(
        read_statement(&other),
        Err(Error::PredicateType(_))
    ));
    let mut shards = statement(&[("a.bin:0:10", hex(1))]);
    shards["predicate"]["serialization"]["method"] = "shards".into();
    assert!(matches!(
        read_statement(&shards),
        Err(Error::Serialization { .. })
    ));
    let mut bundle = bundle_of(b"{}");
    bundle["dsseEnvelope"]["payloadType"] = "text/plain".into();
    assert!(matches!(read(&bundle), Err(Error::PayloadType(_))));
    let mut bundle = bundle_of(b"{}");
    bundle["mediaType"] = "application/json".into();
    assert!(matches!(read(&bundle), Err(Error::MediaType(_))));
}

#[test]
fn a_model_digest_that_is_not_its_files_is_refused() {
    let mut lying = statement(&[("a.bin", hex(1))]);
    lying["predicate"]["resources"][0]["digest"] = hex(2).into();
    assert!(matches!(
        read_statement(&lying),
        Err(Error::ModelDigest { .. })
    ));
}

#[test]
fn bad_digests_and_base64_are_refused() {
    let mut short = statement(&[("a.bin", "abcd".to_owned())]);
    short["predicate"]["resources"][0]["digest"] = "abcd".into();
    assert!(matches!(
        read_statement(&short),
        Err(Error::FileDigest { .. })
    ));
    let mut bundle = bundle_of(b"{}");
    bundle["dsseEnvelope"]["payload"] = "***".into();
    assert!(matches!(
        read(&bundle),
        Err(Error::Base64 {
            field: "dsseEnvelope.payload",
            ..
        })
    ));
}

fn chain_bundle(certificates: &[&[u8]]) -> Value {
    let mut bundle =
        bundle_of(&serde_json::to_vec(&statement(&[("a.bin", hex(1))])).expect("JSON"));
    bundle["verificationMaterial"] = json!({
        "x509CertificateChain": { "certificates": certificates.iter()
            .map(|der| json!({ "rawBytes": STANDARD.encode(der) })).collect::<Vec<_>>() },
        "tlogEntries": [],
    });
    bundle
}

#[test]
fn a_looping_or_too_long_chain_is_refused() {
    let a: &[u8] = b"certificate a";
    let b: &[u8] = b"certificate b";
    assert!(matches!(
        read(&chain_bundle(&[a, b, a])),
        Err(Error::ChainLoop { index: 2 })
    ));
    let many: Vec<Vec<u8>> = (0..=MAX_CHAIN_LEN)
        .map(|i| vec![u8::try_from(i).unwrap_or(0)])
        .collect();
    let many: Vec<&[u8]> = many.iter().map(Vec::as_slice).collect();
    assert!(matches!(
        read(&chain_bundle(&many)),
        Err(Error::ChainTooLong { .. })
    ));
    assert!(read(&chain_bundle(&[a, b])).is_ok());
}

#[test]
fn a_keyless_bundle_reads_as_keyless() -> Result<(), Error> {
    let mut bundle = chain_bundle(&[b"leaf"]);
    bundle["verificationMaterial"] = json!({
        "certificate": { "rawBytes": STANDARD.encode(b"leaf") },
        "tlogEntries": [{ "logIndex": "1", "kindVersion": { "kind": "dsse", "version": "0.0.1" } }],
    });
    let read = read(&bundle)?;
    assert_eq!(
        read.material(),
        &mp_signing::Material::Keyless {
            certificate: b"leaf".to_vec(),
            tlog_entries: 1
        }
    );
    let keyless = mp_signing::Policy::Keyless {
        identity: "a@example.com".to_owned(),
        issuer: "https://issuer.example".to_owned(),
    };
    let refused = mp_signing::verify(&read, &keyless, &[]).expect_err("refused");
    assert_eq!(
        refused.to_string(),
        "keyless verification is not supported yet"
    );
    Ok(())
}
