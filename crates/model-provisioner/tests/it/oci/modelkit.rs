//! `KitOps` `ModelKit`s, built as `kit pack` builds them, pushed to the real registry and laid
//! out as their Kitfile says.

use std::fs;

use catalog_core::{CatalogStore, Digest, Outcome};
use model_provisioner::Error;
use test_support::archives::{Packing, hostile_tar};
use test_support::modelkit::{Kind, ModelKit};
use test_support::{Registry, random_bytes as bytes};

use super::{TestResult, config, names_under, provisioner};

const CONFIG_JSON: &[u8] = br#"{"architectures":["LlamaForCausalLM"]}"#;

/// A `ModelKit` with a section of each kind: `weights` in the model's directory, `lora` its
/// part.
fn five_sections(weights: &[u8], lora: &[u8]) -> ModelKit {
    ModelKit::new("tiny")
        .section(
            Kind::Model,
            "models/tiny",
            &[
                ("models/tiny/model.safetensors", weights),
                ("models/tiny/config.json", CONFIG_JSON),
            ],
            Packing::Zstd,
        )
        .section(
            Kind::Part,
            "adapters/lora.safetensors",
            &[("adapters/lora.safetensors", lora)],
            Packing::Tar,
        )
        .section(
            Kind::Code,
            "src",
            &[
                ("src/infer.py", b"print('hi')"),
                ("src/util/tok.py", b"tok"),
            ],
            Packing::Gzip,
        )
        .section(
            Kind::Dataset,
            "data/eval.jsonl",
            &[("data/eval.jsonl", b"{}\n")],
            Packing::Zstd,
        )
        .section(
            Kind::Docs,
            "README.md",
            &[("README.md", b"# tiny")],
            Packing::Tar,
        )
}

#[test]
fn a_modelkit_is_laid_out_where_its_kitfile_puts_each_layer_and_passes() -> TestResult {
    let registry = Registry::start()?;
    let weights = bytes(2 << 20, 31);
    let lora = bytes(100_000, 32);
    let kit = five_sections(&weights, &lora);
    let pushed = kit.artifact().push(&registry, "kits/tiny", "v1")?;

    let cache = tempfile::tempdir()?;
    let p = provisioner(cache.path(), config())?;
    let reference = format!("oci://{}/kits/tiny:v1", registry.host());
    let ensured = p.ensure(&reference.parse()?, None)?;
    let dir = &ensured.resolved.local_path;
    assert!(dir.is_dir(), "a model of several files is its directory");
    assert!(dir.ends_with(pushed.manifest_digest.trim_start_matches("sha256:")));
    assert_eq!(
        names_under(dir),
        [
            "Kitfile",
            "README.md",
            "adapters/lora.safetensors",
            "data/eval.jsonl",
            "models/tiny/config.json",
            "models/tiny/model.safetensors",
            "src/infer.py",
            "src/util/tok.py",
        ]
    );
    assert_eq!(
        fs::read(dir.join("models/tiny/model.safetensors"))?,
        weights
    );
    assert_eq!(fs::read(dir.join("adapters/lora.safetensors"))?, lora);
    assert_eq!(fs::read(dir.join("src/util/tok.py"))?, b"tok");
    // The Kitfile, where `kit unpack` writes it: the config's bytes.
    assert_eq!(
        fs::read(dir.join("Kitfile"))?,
        serde_json::to_vec(&kit.kitfile())?
    );

    // Every layer was checked against the manifest's sha256: the model passes without a digest.
    let entry = &ensured.entry;
    assert_eq!(entry.verification.outcome, Outcome::Pass);
    assert_eq!(entry.digest, None);
    assert_eq!(entry.source_digest, entry.verification.computed);
    let provenance = entry.provenance.as_ref().ok_or("no provenance")?;
    assert_eq!(
        provenance.resolved_revision.as_deref(),
        Some(pushed.manifest_digest.as_str())
    );
    let record = |path: &str| {
        provenance
            .files
            .iter()
            .find(|f| f.path == path)
            .ok_or(format!("no record of `{path}`"))
    };
    assert_eq!(
        record("models/tiny/model.safetensors")?.digest,
        Some(Digest::sha256_of(&weights))
    );
    assert_eq!(
        record("src/infer.py")?.media_type.as_deref(),
        Some("application/vnd.kitops.modelkit.code.v1.tar+gzip")
    );
    assert_eq!(
        record("data/eval.jsonl")?.media_type.as_deref(),
        Some("application/vnd.kitops.modelkit.dataset.v1.tar+zstd")
    );
    assert_eq!(
        record("Kitfile")?.digest.as_ref().map(ToString::to_string),
        Some(pushed.config_digest.clone())
    );
    assert_eq!(
        p.verify(&reference)?.entry.verification.outcome,
        Outcome::Pass
    );

    drop(registry);
    let again = p.ensure(&reference.parse()?, None)?;
    assert!(again.cached);
    assert_eq!(again.resolved, ensured.resolved);
    Ok(())
}

#[test]
fn an_older_modelkit_without_digests_is_laid_out_the_same_and_its_gguf_is_the_model() -> TestResult
{
    let registry = Registry::start()?;
    let gguf = bytes(300_000, 33);
    ModelKit::new("old")
        .section(
            Kind::Model,
            "models/old.gguf",
            &[("models/old.gguf", &gguf)],
            Packing::Gzip,
        )
        .section(
            Kind::Docs,
            "docs/guide",
            &[("docs/guide/index.md", b"# guide")],
            Packing::Tar,
        )
        .legacy()
        .artifact()
        .push(&registry, "kits/old", "v1")?;
    let cache = tempfile::tempdir()?;
    let p = provisioner(cache.path(), config())?;
    let ensured = p.ensure(
        &format!("oci://{}/kits/old:v1", registry.host()).parse()?,
        None,
    )?;
    let model = &ensured.resolved.local_path;
    assert!(model.ends_with("models/old.gguf"), "{}", model.display());
    assert_eq!(fs::read(model)?, gguf);
    let dir = model
        .parent()
        .and_then(|m| m.parent())
        .ok_or("no model directory")?;
    assert_eq!(
        names_under(dir),
        ["Kitfile", "docs/guide/index.md", "models/old.gguf"]
    );
    assert_eq!(ensured.entry.verification.outcome, Outcome::Pass);
    assert_eq!(ensured.entry.digest, None);
    Ok(())
}

#[test]
fn a_hostile_zstd_layer_of_a_modelkit_is_refused_and_nothing_is_published() -> TestResult {
    let registry = Registry::start()?;
    ModelKit::new("hostile")
        .section(
            Kind::Model,
            "model.gguf",
            &[("model.gguf", &bytes(10_000, 34))],
            Packing::Zstd,
        )
        .section_tar(
            Kind::Code,
            "src",
            hostile_tar("../escape", b"evil"),
            Packing::Zstd,
        )
        .artifact()
        .push(&registry, "kits/hostile", "v1")?;
    let cache = tempfile::tempdir()?;
    let p = provisioner(cache.path(), config())?;
    let err = p
        .ensure(
            &format!("oci://{}/kits/hostile:v1", registry.host()).parse()?,
            None,
        )
        .unwrap_err();
    match &err {
        Error::UnsafeArchive { entry, .. } => assert_eq!(entry, "../escape"),
        other => panic!("{other}"),
    }
    assert!(p.catalog().list()?.is_empty());
    assert!(!cache.path().join("escape").exists() && !cache.path().join("models/escape").exists());
    assert!(test_support::paths_under(&cache.path().join("models")).is_empty());
    Ok(())
}

#[test]
fn a_kitfile_that_disagrees_with_its_layers_or_was_tampered_with_is_refused() -> TestResult {
    let registry = Registry::start()?;
    let kit = ModelKit::new("kit")
        .section(
            Kind::Model,
            "model.gguf",
            &[("model.gguf", &bytes(10_000, 35))],
            Packing::Tar,
        )
        .section(Kind::Code, "src", &[("src/a.py", b"a")], Packing::Gzip);
    let mut kitfile = kit.kitfile();
    let code_layer = kitfile["code"][0]["digest"].clone();
    kitfile["code"][0]["digest"] = kitfile["model"]["digest"].clone();
    kit.artifact_with(&kitfile)
        .push(&registry, "kits/wrong", "v1")?;
    let mut kitfile = kit.kitfile();
    kitfile["model"]["path"] = format!("{}/kits/base:v1", registry.host()).into();
    let base = kitfile["model"]["path"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    ModelKit::new("child")
        .section(Kind::Code, "src", &[("src/a.py", b"a")], Packing::Gzip)
        .artifact_with(&kitfile)
        .push(&registry, "kits/child", "v1")?;
    let tampered = kit.artifact().push(&registry, "kits/tampered", "v1")?;
    let config_hex = tampered.config_digest.trim_start_matches("sha256:");
    let mut config_bytes = fs::read(registry.blob_path(config_hex))?;
    config_bytes[0] = b' ';
    fs::write(registry.blob_path(config_hex), config_bytes)?;

    let cache = tempfile::tempdir()?;
    let p = provisioner(cache.path(), config())?;
    let ensure = |repo: &str| -> Result<_, Error> {
        p.ensure(
            &format!("oci://{}/{repo}:v1", registry.host()).parse()?,
            None,
        )
    };
    let err = ensure("kits/wrong").unwrap_err();
    let message = err.to_string();
    assert!(
        message.contains(code_layer.as_str().unwrap_or_default()) && message.contains("`code[0]`"),
        "{message}"
    );
    let err = ensure("kits/child").unwrap_err();
    assert!(
        err.to_string()
            .contains(&format!("is in the ModelKit `{base}`, which is not there")),
        "{err}"
    );
    let err = ensure("kits/tampered").unwrap_err();
    assert!(err.is_verification_failure(), "{err}");
    assert!(err.to_string().contains("(Kitfile)"), "{err}");
    assert!(p.catalog().list()?.is_empty());
    assert!(test_support::paths_under(&cache.path().join("models")).is_empty());
    Ok(())
}

/// A `ModelKit` at `<registry>/kits/base:v1` whose model is a directory with a part, and code
/// and docs of its own that a `ModelKit` referring to it does not take.
fn push_base(registry: &Registry, weights: &[u8], lora: &[u8]) -> TestResult {
    ModelKit::new("base")
        .section(
            Kind::Model,
            "models/base",
            &[
                ("models/base/model.safetensors", weights),
                ("models/base/config.json", CONFIG_JSON),
            ],
            Packing::Zstd,
        )
        .section(
            Kind::Part,
            "lora.safetensors",
            &[("lora.safetensors", lora)],
            Packing::Tar,
        )
        .section(
            Kind::Code,
            "base-src",
            &[("base-src/a.py", b"a")],
            Packing::Gzip,
        )
        .section(
            Kind::Docs,
            "BASE.md",
            &[("BASE.md", b"# base")],
            Packing::Tar,
        )
        .artifact()
        .push(registry, "kits/base", "v1")?;
    Ok(())
}

#[test]
fn a_modelkit_whose_model_is_in_another_modelkit_gets_that_model_as_kit_unpack_lays_it_out()
-> TestResult {
    let registry = Registry::start()?;
    let (weights, lora) = (bytes(1 << 20, 36), bytes(50_000, 37));
    push_base(&registry, &weights, &lora)?;
    let host = registry.host();
    // A chain of two: `tuned` refers to `mid`, whose model is `base`'s.
    let mid = ModelKit::new("mid")
        .section(
            Kind::Part,
            "mid-adapter.safetensors",
            &[("mid-adapter.safetensors", b"adapter")],
            Packing::Tar,
        )
        .section(Kind::Docs, "MID.md", &[("MID.md", b"# mid")], Packing::Tar)
        .model_in(&format!("{host}/kits/base:v1"));
    mid.artifact().push(&registry, "kits/mid", "v1")?;
    let tuned = ModelKit::new("tuned")
        .section(
            Kind::Code,
            "src",
            &[("src/serve.py", b"serve")],
            Packing::Gzip,
        )
        .section(
            Kind::Docs,
            "README.md",
            &[("README.md", b"# tuned")],
            Packing::Tar,
        )
        .model_in(&format!("{host}/kits/mid:v1"));
    tuned.artifact().push(&registry, "kits/tuned", "v1")?;

    let cache = tempfile::tempdir()?;
    let p = provisioner(cache.path(), config())?;
    let reference = format!("oci://{host}/kits/tuned:v1");
    let ensured = p.ensure(&reference.parse()?, None)?;
    let dir = &ensured.resolved.local_path;
    // Of the ModelKits referred to, their models and parts only; the Kitfile is the one named.
    assert_eq!(
        names_under(dir),
        [
            "Kitfile",
            "README.md",
            "lora.safetensors",
            "mid-adapter.safetensors",
            "models/base/config.json",
            "models/base/model.safetensors",
            "src/serve.py",
        ]
    );
    assert_eq!(
        fs::read(dir.join("models/base/model.safetensors"))?,
        weights
    );
    assert_eq!(fs::read(dir.join("lora.safetensors"))?, lora);
    assert_eq!(
        fs::read(dir.join("Kitfile"))?,
        serde_json::to_vec(&tuned.kitfile())?
    );
    let entry = &ensured.entry;
    assert_eq!(entry.verification.outcome, Outcome::Pass);
    let provenance = entry.provenance.as_ref().ok_or("no provenance")?;
    let weights_record = provenance
        .files
        .iter()
        .find(|f| f.path == "models/base/model.safetensors")
        .ok_or("no record of the weights")?;
    assert_eq!(weights_record.digest, Some(Digest::sha256_of(&weights)));
    assert_eq!(
        p.verify(&reference)?.entry.verification.outcome,
        Outcome::Pass
    );

    // A model that is one GGUF file in the other ModelKit is the model handed out.
    let gguf = bytes(200_000, 38);
    ModelKit::new("gguf")
        .section(
            Kind::Model,
            "base.gguf",
            &[("base.gguf", &gguf)],
            Packing::Tar,
        )
        .artifact()
        .push(&registry, "kits/gguf", "v1")?;
    ModelKit::new("uses-gguf")
        .section(
            Kind::Docs,
            "README.md",
            &[("README.md", b"# uses")],
            Packing::Tar,
        )
        .model_in(&format!("{host}/kits/gguf:v1"))
        .artifact()
        .push(&registry, "kits/uses-gguf", "v1")?;
    let ensured = p.ensure(&format!("oci://{host}/kits/uses-gguf:v1").parse()?, None)?;
    let model = &ensured.resolved.local_path;
    assert!(model.ends_with("base.gguf"), "{}", model.display());
    assert_eq!(fs::read(model)?, gguf);
    let dir = model.parent().ok_or("no model directory")?;
    assert_eq!(names_under(dir), ["Kitfile", "README.md", "base.gguf"]);
    Ok(())
}

#[test]
fn model_references_that_go_round_run_too_long_name_no_registry_or_nothing_are_refused()
-> TestResult {
    let registry = Registry::start()?;
    let host = registry.host();
    let docs = |name: &str| {
        ModelKit::new(name).section(
            Kind::Docs,
            "README.md",
            &[("README.md", b"#")],
            Packing::Tar,
        )
    };
    docs("self")
        .model_in(&format!("{host}/kits/self:v1"))
        .artifact()
        .push(&registry, "kits/self", "v1")?;
    docs("a")
        .model_in(&format!("{host}/kits/b:v1"))
        .artifact()
        .push(&registry, "kits/a", "v1")?;
    docs("b")
        .model_in(&format!("{host}/kits/a:v1"))
        .artifact()
        .push(&registry, "kits/b", "v1")?;
    docs("missing")
        .model_in(&format!("{host}/kits/nowhere:v1"))
        .artifact()
        .push(&registry, "kits/missing", "v1")?;
    docs("local")
        .model_in("myorg/base:v1")
        .artifact()
        .push(&registry, "kits/local", "v1")?;
    // `chain0` → `chain1` → … → `chain11`: eleven ModelKits referred to, one more than `kit`
    // follows.
    for i in 0..12 {
        docs(&format!("chain{i}"))
            .model_in(&format!("{host}/kits/chain{}:v1", i + 1))
            .artifact()
            .push(&registry, &format!("kits/chain{i}"), "v1")?;
    }

    let cache = tempfile::tempdir()?;
    let p = provisioner(cache.path(), config())?;
    let ensure = |repo: &str| -> Result<_, Error> {
        p.ensure(&format!("oci://{host}/{repo}:v1").parse()?, None)
    };
    let refused = |repo: &str, model: &str, words: &str| {
        let err = ensure(repo).expect_err(repo);
        match &err {
            Error::OciModelKitParent {
                model: m, reason, ..
            } => {
                assert_eq!(m, model, "{err}");
                assert!(reason.contains(words), "{err}");
            }
            other => panic!("{repo}: {other}"),
        }
        assert!(
            err.hint().is_some_and(|h| h.contains("model.path")),
            "{err}"
        );
    };
    refused(
        "kits/self",
        &format!("{host}/kits/self:v1"),
        "round in a circle",
    );
    refused("kits/a", &format!("{host}/kits/a:v1"), "round in a circle");
    refused(
        "kits/missing",
        &format!("{host}/kits/nowhere:v1"),
        "is not there",
    );
    refused("kits/local", "myorg/base:v1", "names no registry");
    refused(
        "kits/chain0",
        &format!("{host}/kits/chain11:v1"),
        "the most `kit` follows",
    );
    assert!(p.catalog().list()?.is_empty());
    assert!(test_support::paths_under(&cache.path().join("models")).is_empty());
    Ok(())
}
