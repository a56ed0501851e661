//! `ensure oci://…` and `ensure ollama:…` end to end, against Debian's `docker-registry` on
//! loopback and a front that holds bodies and asks for tokens.

use std::process::Stdio;
use std::time::Duration;

use test_support::archives::{Packing, hostile_tar};
use test_support::modelkit::{Kind, ModelKit};
use test_support::{
    Artifact, FrontAuth, FrontOptions, Hold, OCI_MANIFEST, Registry, RegistryFront, poll,
    random_bytes,
};

use crate::fixture::{
    Fixture, TestResult, assert_code, assert_failure, hints, stderr, stdout, str_field,
};

const TITLE: &str = "org.opencontainers.image.title";

/// How long a test waits for a signal (a hold, a file) before it fails.
const PATIENCE: Duration = Duration::from_secs(60);

/// Pushes a one-file artifact `repo:v1` holding `body` as `model.gguf`; returns its layer
/// digest.
fn push_model(registry: &Registry, repo: &str, body: &[u8]) -> TestResult<String> {
    let pushed = Artifact::new(OCI_MANIFEST)
        .artifact_type("application/vnd.example.model")
        .layer(
            "application/vnd.example.gguf",
            body,
            &[(TITLE, "model.gguf")],
        )
        .layer("text/plain", b"MIT", &[(TITLE, "LICENSE")])
        .push(registry, repo, "v1")?;
    Ok(pushed.layer_digests[0].clone())
}

#[test]
fn ensure_show_and_offline_re_ensure_of_a_registry_model() -> TestResult {
    let registry = Registry::start()?;
    let body = random_bytes(300_000, 11);
    let layer = push_model(&registry, "team/tiny", &body)?;
    let fx = Fixture::new()?;
    let reference = format!("oci://{}/team/tiny:v1", registry.host());
    let out = fx.json(["ensure", &reference, "--json"])?;
    assert_eq!(str_field(&out, "id"), reference);

    let show = fx.run(["show", &reference]);
    assert_code(&show, 0);
    let text = stdout(&show);
    assert!(
        text.contains(&format!("registry:     {}", registry.host())),
        "{text}"
    );
    assert!(text.contains("manifest:     sha256:"), "{text}");
    assert!(
        text.contains(&format!(
            "model.gguf (293.0 KiB) {layer} application/vnd.example.gguf"
        )),
        "{text}"
    );

    // Every layer was checked against the registry's sha256: the model passes, now and when
    // hashed again.
    assert_eq!(str_field(&out, "verification"), "pass");
    assert!(text.contains("from source:  sha256:"), "{text}");
    let verify = fx.run(["verify", &reference]);
    assert_code(&verify, 0);
    assert!(stdout(&verify).starts_with("pass"), "{}", stdout(&verify));

    // The registry is gone: the model is still handed out, from the catalog.
    drop(registry);
    let again = fx.json(["ensure", &reference, "--json", "--offline"])?;
    assert_eq!(
        str_field(&again, "local_path"),
        str_field(&out, "local_path")
    );
    Ok(())
}

#[test]
fn a_missing_tag_and_wrong_credentials_fail_with_exit_1_and_a_hint() -> TestResult {
    let registry = Registry::start_with_htpasswd("carol", "correct-horse")?;
    push_model(&registry, "locked/model", b"weights")?;
    let fx = Fixture::new()?;
    let reference = format!("oci://{}/locked/model:v1", registry.host());

    let out = fx
        .command(["ensure", &reference, "-vvv"])
        .env("MODEL_PROVISIONER_REGISTRY_USERNAME", "carol")
        .env("MODEL_PROVISIONER_REGISTRY_PASSWORD", "battery-staple")
        .output()?;
    assert_failure(&out, 1, &["refused access", "locked/model"]);
    assert!(
        hints(&out).iter().any(|h| h.contains("docker login")),
        "{}",
        stderr(&out)
    );
    assert!(!stderr(&out).contains("battery-staple"), "{}", stderr(&out));

    let out = fx
        .command(["ensure", &reference, "-vvv"])
        .env("MODEL_PROVISIONER_REGISTRY_USERNAME", "carol")
        .env("MODEL_PROVISIONER_REGISTRY_PASSWORD", "correct-horse")
        .output()?;
    assert_code(&out, 0);
    let everything = format!("{}{}", stdout(&out), stderr(&out));
    assert!(
        !everything.contains("correct-horse"),
        "the password was printed"
    );
    let index = String::from_utf8(fx.index_bytes().ok_or("no index")?)?;
    assert!(!index.contains("correct-horse"));

    // The password on standard input, the user on the command line.
    let mut child = fx
        .command([
            "ensure",
            &reference,
            "--json",
            "--registry-username",
            "carol",
            "--registry-password-stdin",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    if let Some(mut stdin) = child.stdin.take() {
        use std::io::Write as _;
        stdin.write_all(b"correct-horse\n")?;
    }
    let out = child.wait_with_output()?;
    assert_code(&out, 0);

    let missing = format!("oci://{}/locked/model:v9", registry.host());
    let out = fx
        .command(["ensure", &missing])
        .env("MODEL_PROVISIONER_REGISTRY_USERNAME", "carol")
        .env("MODEL_PROVISIONER_REGISTRY_PASSWORD", "correct-horse")
        .output()?;
    assert_failure(&out, 1, &["not found", "locked/model", "v9"]);
    Ok(())
}

#[test]
fn a_tampered_blob_exits_3_and_publishes_nothing() -> TestResult {
    let registry = Registry::start()?;
    let body = random_bytes(200_000, 12);
    let layer = push_model(&registry, "team/bad", &body)?;
    let mut tampered = body.clone();
    tampered[99] ^= 1;
    std::fs::write(
        registry.blob_path(layer.trim_start_matches("sha256:")),
        tampered,
    )?;
    let fx = Fixture::new()?;
    let out = fx.run(["ensure", &format!("oci://{}/team/bad:v1", registry.host())]);
    assert_failure(&out, 3, &["digest mismatch"]);
    assert!(test_support::paths_under(&fx.cache().join("models")).is_empty());
    Ok(())
}

#[test]
fn a_pull_killed_midway_resumes_where_it_stopped() -> TestResult {
    const SIZE: usize = 8 << 20;
    const HOLD_AT: u64 = 6 << 20;
    let registry = Registry::start()?;
    let body = random_bytes(SIZE, 13);
    push_model(&registry, "team/big", &body)?;
    let front = RegistryFront::start(
        &registry,
        FrontOptions {
            auth: FrontAuth::Bearer {
                credentials: None,
                token_uses: None,
                expires_in: 300,
            },
            redirect_blobs: false,
            referrers_api: false,
        },
    )?;
    front.hold(Hold::AtOffset(HOLD_AT));
    let fx = Fixture::new()?;
    let reference = format!("oci://{}/team/big:v1", front.host());
    let mut child = fx
        .command(["ensure", &reference, "--json"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    // Held at 6 MiB, and the client has recorded bytes on disk: kill it there.
    let recorded = poll(PATIENCE, || {
        let held = front.wait_held(Duration::from_millis(10));
        let kept = resume_kept(fx.cache()).is_some_and(|k| k > 0);
        if let Ok(Some(status)) = child.try_wait() {
            return Some(Err(format!("`ensure` exited ({status}) before the kill")));
        }
        (held && kept).then_some(Ok(()))
    });
    child.kill()?;
    child.wait()?;
    front.release();
    recorded.ok_or("no hold and no recorded bytes in time")??;
    let kept = resume_kept(fx.cache()).ok_or("no resume state after the kill")?;
    front.clear_logs();

    let out = fx.json(["ensure", &reference, "--json"])?;
    assert_eq!(std::fs::read(str_field(&out, "local_path"))?, body);
    let starts: Vec<u64> = front
        .log()
        .into_iter()
        .filter(|r| r.path.contains("/blobs/") && r.status == 206)
        .filter_map(|r| r.range)
        .filter(|r| r != "bytes=0-0")
        .filter_map(|r| r.strip_prefix("bytes=")?.split('-').next()?.parse().ok())
        .collect();
    assert!(
        !starts.is_empty() && starts.iter().all(|s| *s >= kept),
        "the second run asked again for bytes it had: kept {kept}, ranges from {starts:?}"
    );
    Ok(())
}

/// The bytes the resume state of the one download in flight under `cache` says are on disk.
fn resume_kept(cache: &std::path::Path) -> Option<u64> {
    let state = std::fs::read_dir(cache.join("tmp"))
        .ok()?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "state"))?;
    let value: serde_json::Value = serde_json::from_slice(&std::fs::read(state).ok()?).ok()?;
    value["prefix_len"].as_u64()
}

#[test]
fn ollama_references_go_to_the_registry_the_flag_names() -> TestResult {
    let registry = Registry::start()?;
    let gguf = random_bytes(100_000, 14);
    Artifact::new(test_support::DOCKER_MANIFEST)
        .layer("application/vnd.ollama.image.model", &gguf, &[])
        .layer(
            "application/vnd.ollama.image.template",
            b"{{ .Prompt }}",
            &[],
        )
        .push(&registry, "library/qwen", "0.5b")?;
    let fx = Fixture::new()?;
    let out = fx.json([
        "ensure",
        "ollama:qwen:0.5b",
        "--ollama-registry",
        &registry.host(),
        "--json",
    ])?;
    assert_eq!(str_field(&out, "id"), "ollama:library/qwen:0.5b");
    assert!(str_field(&out, "local_path").ends_with("/model.gguf"));
    Ok(())
}

#[test]
fn ensure_json_lays_out_a_kitops_modelkit_and_hands_out_its_gguf() -> TestResult {
    let registry = Registry::start()?;
    let gguf = test_support::model_files::tiny_llama().bytes();
    let pushed = ModelKit::new("tiny")
        .section(
            Kind::Model,
            "models/tiny.gguf",
            &[("models/tiny.gguf", &gguf)],
            Packing::Zstd,
        )
        .section(
            Kind::Code,
            "src",
            &[("src/serve.py", b"serve()"), ("src/lib/util.py", b"util")],
            Packing::Gzip,
        )
        .section(
            Kind::Docs,
            "README.md",
            &[("README.md", b"# tiny")],
            Packing::Tar,
        )
        .artifact()
        .push(&registry, "kits/tiny", "v1")?;
    let fx = Fixture::new()?;
    let reference = format!("oci://{}/kits/tiny:v1", registry.host());
    let out = fx.json(["ensure", &reference, "--json"])?;
    assert_eq!(str_field(&out, "id"), reference);
    assert_eq!(str_field(&out, "verification"), "pass");
    assert_eq!(out["model_info"]["format"], "gguf", "{out:#}");
    let model = std::path::PathBuf::from(str_field(&out, "local_path"));
    assert!(model.ends_with("models/tiny.gguf"), "{}", model.display());
    assert_eq!(std::fs::read(&model)?, gguf);
    // The code and the docs lie beside it, where the Kitfile puts them.
    let dir = model
        .parent()
        .and_then(|m| m.parent())
        .ok_or("no model directory")?;
    assert!(dir.ends_with(pushed.manifest_digest.trim_start_matches("sha256:")));
    assert_eq!(std::fs::read(dir.join("src/lib/util.py"))?, b"util");
    assert_eq!(std::fs::read(dir.join("README.md"))?, b"# tiny");

    let show = fx.run(["show", &reference]);
    assert_code(&show, 0);
    let text = stdout(&show);
    assert!(
        text.contains("application/vnd.kitops.modelkit.code.v1.tar+gzip"),
        "{text}"
    );
    let verify = fx.run(["verify", &reference]);
    assert_code(&verify, 0);
    Ok(())
}

#[test]
fn a_modelkit_with_a_hostile_zstd_layer_or_a_wrong_kitfile_fails_with_a_reason() -> TestResult {
    let registry = Registry::start()?;
    ModelKit::new("hostile")
        .section(
            Kind::Model,
            "model.gguf",
            &[("model.gguf", b"GGUF")],
            Packing::Tar,
        )
        .section_tar(
            Kind::Docs,
            "docs",
            hostile_tar("../../escape", b"evil"),
            Packing::Zstd,
        )
        .artifact()
        .push(&registry, "kits/hostile", "v1")?;
    let kit = ModelKit::new("wrong").section(
        Kind::Model,
        "model.gguf",
        &[("model.gguf", b"GGUF")],
        Packing::Tar,
    );
    let mut kitfile = kit.kitfile();
    kitfile["docs"] = serde_json::json!([{"path": "README.md"}]);
    kit.artifact_with(&kitfile)
        .push(&registry, "kits/wrong", "v1")?;
    let fx = Fixture::new()?;

    let out = fx.run([
        "ensure",
        &format!("oci://{}/kits/hostile:v1", registry.host()),
    ]);
    assert_failure(&out, 1, &["refusing layer", "`../../escape`", "`..`"]);
    assert!(
        hints(&out)
            .iter()
            .any(|h| h.contains("nothing from it was published")),
        "{}",
        stderr(&out)
    );
    let out = fx.run([
        "ensure",
        &format!("oci://{}/kits/wrong:v1", registry.host()),
    ]);
    assert_failure(
        &out,
        1,
        &[
            "is a ModelKit that cannot be laid out",
            "`docs[0]` (`README.md`) has no layer",
        ],
    );
    assert!(test_support::paths_under(&fx.cache().join("models")).is_empty());
    Ok(())
}

#[test]
fn a_modelkit_whose_model_is_in_itself_or_in_no_modelkit_fails_naming_the_reference() -> TestResult
{
    let registry = Registry::start()?;
    let host = registry.host();
    let readme = |name: &str| {
        ModelKit::new(name).section(
            Kind::Docs,
            "README.md",
            &[("README.md", b"#")],
            Packing::Tar,
        )
    };
    readme("self")
        .model_in(&format!("{host}/kits/self:v1"))
        .artifact()
        .push(&registry, "kits/self", "v1")?;
    readme("orphan")
        .model_in(&format!("{host}/kits/gone:v1"))
        .artifact()
        .push(&registry, "kits/orphan", "v1")?;
    let fx = Fixture::new()?;

    for (repo, words) in [
        ("self", "go round in a circle"),
        ("orphan", "which is not there"),
    ] {
        let out = fx.run(["ensure", &format!("oci://{host}/kits/{repo}:v1")]);
        let named = format!("whose model is in the ModelKit `{host}/kits/");
        assert_failure(&out, 1, &[named.as_str(), words]);
        assert!(
            hints(&out).iter().any(|h| h.contains("`model.path`")),
            "{}",
            stderr(&out)
        );
    }
    assert!(test_support::paths_under(&fx.cache().join("models")).is_empty());
    Ok(())
}
