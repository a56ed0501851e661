//! `ensure --signed-by`, `MODEL_PROVISIONER_SIGNERS` and `<cache>/signers.conf`: a model's
//! `model.sig` held against who must have signed it; what `show` then says. `push --sign` and
//! `mirror --sign`: the pushed copy signed, found by a pull, and accepted by the reference tool.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use catalog_core::{Digest, SafeRelPath};
use mp_signing::{Signer, sign};
use test_support::signing_keys::{self, LeafUsage, model_signing};
use test_support::{
    FrontOptions, Nginx, OCI_EMPTY, OCI_INDEX, OCI_MANIFEST, Registry, RegistryFront, S3Server,
};

use crate::fixture::{Fixture, TestResult, assert_code, assert_failure, stdout, str_field};
use crate::push::with_folder_model;

/// An EC P-256 key pair made by `openssl`: (private key, public key) PEM paths.
fn key_pair(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let keys = signing_keys::key_pair(dir, name, "P-256", signing_keys::KeyForm::Sec1);
    (keys.private, keys.public)
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
    let (private, public) = key_pair(fx.root(), "org");
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
    let (private, _) = key_pair(fx.root(), "signer");
    let (_, other) = key_pair(fx.root(), "other");
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

/// `fx`'s `args` run with the credentials and endpoint of `server`.
fn with_s3(fx: &Fixture, server: &S3Server, args: &[&str]) -> TestResult<Output> {
    let mut command = fx.command(args.iter().copied());
    command
        .env("AWS_ACCESS_KEY_ID", server.access_key())
        .env("AWS_SECRET_ACCESS_KEY", server.secret_key())
        .env("AWS_ENDPOINT_URL", server.endpoint());
    Ok(command.output()?)
}

/// Runs the reference verifier on the model folder `dir`; its output, after it succeeded.
fn reference_verifies(dir: &Path, method: &str, trust_flag: &str, trust: &Path) -> String {
    signing_keys::run(
        Command::new(model_signing())
            .args(["verify", method, "--signature"])
            .arg(dir.join("model.sig"))
            .arg(trust_flag)
            .arg(trust)
            .arg(dir),
    )
}

#[test]
fn a_push_signed_with_a_key_is_pulled_verified_and_the_reference_accepts_it() -> TestResult {
    let server = S3Server::start()?;
    server.create_bucket("fleet")?;
    let (fx, id) = with_folder_model()?;
    let (private, public) = key_pair(fx.root(), "org");
    let sign = format!("key:{}", private.display());
    let out = with_s3(
        &fx,
        &server,
        &["push", &id, "s3://fleet/signed/", "--sign", &sign, "--json"],
    )?;
    assert_code(&out, 0);

    let node = Fixture::new()?;
    let policy = format!("key:{}", public.display());
    let out = with_s3(
        &node,
        &server,
        &[
            "ensure",
            "s3://fleet/signed/",
            "--signed-by",
            &policy,
            "--json",
        ],
    )?;
    assert_code(&out, 0);
    let pulled: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    assert_eq!(pulled["signature"]["outcome"], "verified", "{pulled:#}");
    let dir = Path::new(str_field(&pulled, "local_path"));
    let said = reference_verifies(dir, "key", "--public_key", &public);
    assert!(said.contains("Verification succeeded"), "{said}");

    // Another key's policy refuses the pushed copy, and nothing is recorded as good.
    let (_, other) = key_pair(fx.root(), "other");
    let third = Fixture::new()?;
    let other_policy = format!("key:{}", other.display());
    let out = with_s3(
        &third,
        &server,
        &["ensure", "s3://fleet/signed/", "--signed-by", &other_policy],
    )?;
    assert_failure(&out, 3, &["does not satisfy"]);
    Ok(())
}

#[test]
fn a_push_signed_with_a_certificate_chain_passes_the_ca_policy_and_the_reference() -> TestResult {
    let server = S3Server::start()?;
    server.create_bucket("fleet")?;
    let (fx, id) = with_folder_model()?;
    let chain = signing_keys::chain(fx.root(), LeafUsage::CodeSigning);
    let sign = format!(
        "cert-chain:{},{}",
        chain.leaf_key.display(),
        chain.full_chain(fx.root()).display()
    );
    let out = with_s3(
        &fx,
        &server,
        &["push", &id, "s3://fleet/certified/", "--sign", &sign],
    )?;
    assert_code(&out, 0);

    let node = Fixture::new()?;
    let policy = format!("cert-chain:{}#signer@example.com", chain.root.display());
    let out = with_s3(
        &node,
        &server,
        &[
            "ensure",
            "s3://fleet/certified/",
            "--signed-by",
            &policy,
            "--json",
        ],
    )?;
    assert_code(&out, 0);
    let pulled: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    assert_eq!(pulled["signature"]["outcome"], "verified", "{pulled:#}");
    let dir = Path::new(str_field(&pulled, "local_path"));
    let said = reference_verifies(dir, "certificate", "--certificate_chain", &chain.root);
    assert!(said.contains("Verification succeeded"), "{said}");
    Ok(())
}

#[test]
fn a_signer_that_is_no_signer_is_a_usage_error() -> TestResult {
    let fx = Fixture::new()?;
    let out = fx.run(["push", "x", "s3://b/p/", "--sign", "key:/nonexistent.pem"]);
    assert_failure(&out, 2, &["/nonexistent.pem"]);
    let (_, public) = key_pair(fx.root(), "org");
    let out = fx.run([
        "push",
        "x",
        "s3://b/p/",
        "--sign",
        &format!("key:{}", public.display()),
    ]);
    assert_failure(&out, 2, &["no signer policy"]);
    let out = fx.run([
        "mirror",
        "x",
        "s3://b",
        "--sign",
        "cert-chain:only-a-key.pem",
    ]);
    assert_failure(&out, 2, &["KEY.pem,CHAIN.pem"]);
    Ok(())
}

/// The Sigstore bundles the tag scheme's index lists as referrers of `subject` in `repo`,
/// last listed first, each read through its referrer manifest.
fn tag_scheme_bundles(registry: &Registry, repo: &str, subject: &str) -> TestResult<Vec<Vec<u8>>> {
    let tag = subject.replacen(':', "-", 1);
    let index = registry.get_manifest(repo, &tag)?;
    assert_eq!(index.status, 200, "the tag `{tag}` lists the referrers");
    let index: serde_json::Value = serde_json::from_slice(&index.body)?;
    let mut bundles = Vec::new();
    for entry in index["manifests"]
        .as_array()
        .ok_or("no manifests")?
        .iter()
        .rev()
    {
        assert_eq!(
            entry["artifactType"],
            "application/vnd.dev.sigstore.bundle.v0.3+json"
        );
        let digest = entry["digest"].as_str().ok_or("no digest")?;
        let referrer: serde_json::Value =
            serde_json::from_slice(&registry.get_manifest(repo, digest)?.body)?;
        assert_eq!(referrer["subject"]["digest"], subject, "{referrer:#}");
        assert_eq!(
            referrer["config"]["mediaType"],
            "application/vnd.oci.empty.v1+json"
        );
        let layer = &referrer["layers"][0];
        assert_eq!(
            layer["mediaType"],
            "application/vnd.dev.sigstore.bundle.v0.3+json"
        );
        bundles.push(registry.get_blob(repo, layer["digest"].as_str().ok_or("no layer")?)?);
    }
    Ok(bundles)
}

/// The files of `with_folder_model`'s model, as a push of it publishes them, with their
/// sha256s.
fn pushed_files(fx: &Fixture) -> TestResult<Vec<(SafeRelPath, Digest)>> {
    [
        "config.json",
        "model.safetensors",
        "tokenizer/tokenizer.json",
    ]
    .iter()
    .map(|n| -> TestResult<(SafeRelPath, Digest)> {
        Ok((
            SafeRelPath::new((*n).to_owned())?,
            Digest::sha256_of(&fs::read(fx.path("model").join(n))?),
        ))
    })
    .collect()
}

/// The registry here is Debian's docker-registry 2.8, which has no referrers API: the bundle
/// is listed under the tag scheme, and a second signature is added to the list.
#[test]
fn a_push_signed_to_a_registry_attaches_the_bundle_as_a_referrer_by_the_tag_scheme() -> TestResult {
    let registry = Registry::start()?;
    let (fx, id) = with_folder_model()?;
    let (first, first_public) = key_pair(fx.root(), "first");
    let (second, second_public) = key_pair(fx.root(), "second");
    let dest = format!("oci://{}/fleet/signed:v1", registry.host());
    let sign = |key: &Path| format!("key:{}", key.display());
    let pushed = fx.json(["push", &id, &dest, "--sign", &sign(&first), "--json"])?;
    let subject = str_field(&pushed, "manifest_digest").to_owned();
    let again = fx.json(["push", &id, &dest, "--sign", &sign(&second), "--json"])?;
    assert_eq!(
        str_field(&again, "manifest_digest"),
        subject,
        "the same model"
    );

    let bundles = tag_scheme_bundles(&registry, "fleet/signed", &subject)?;
    assert_eq!(bundles.len(), 2, "the list was added to, not replaced");
    let files = pushed_files(&fx)?;
    for (bundle, public) in bundles.iter().zip([&second_public, &first_public]) {
        let key = mp_signing::PublicKey::from_pem(&fs::read(public)?)?;
        mp_signing::verify(
            &mp_signing::Bundle::read(bundle)?,
            &mp_signing::Policy::Key(key),
            &files,
        )?;
    }

    // The model's own layers are its files: no `model.sig` among them.
    let node = Fixture::new()?;
    let pulled = node.json(["ensure", &dest, "--json"])?;
    assert_eq!(str_field(&pulled, "verification"), "pass");
    assert!(
        !Path::new(str_field(&pulled, "local_path"))
            .join("model.sig")
            .exists()
    );
    Ok(())
}

#[test]
fn a_mirror_signed_on_its_way_passes_the_policy_and_without_its_signature_fails_it() -> TestResult {
    let server = S3Server::start()?;
    server.create_bucket("fleet")?;
    server.create_bucket("copies")?;
    let (fx, id) = with_folder_model()?;
    let out = with_s3(&fx, &server, &["push", &id, "s3://fleet/models/m/"])?;
    assert_code(&out, 0);
    let seed = Fixture::new()?;
    let out = with_s3(
        &seed,
        &server,
        &["ensure", "s3://fleet/models/m/", "--json"],
    )?;
    assert_code(&out, 0);
    let (private, public) = key_pair(fx.root(), "org");
    let sign = format!("key:{}", private.display());
    let out = with_s3(
        &seed,
        &server,
        &[
            "mirror",
            "s3://fleet/models/m/",
            "s3://copies",
            "--sign",
            &sign,
            "--json",
        ],
    )?;
    assert_code(&out, 0);
    let mirrored: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let rule = str_field(&mirrored, "rule").to_owned();
    assert!(rule.ends_with("/fleet=s3://copies"), "{rule}");

    let policy = format!("key:{}", public.display());
    let through = |fx: &Fixture| {
        with_s3(
            fx,
            &server,
            &[
                "ensure",
                "s3://fleet/models/m/",
                "--mirror",
                &rule,
                "--signed-by",
                &policy,
                "--json",
            ],
        )
    };
    let node = Fixture::new()?;
    let out = through(&node)?;
    assert_code(&out, 0);
    let pulled: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    assert_eq!(pulled["signature"]["outcome"], "verified", "{pulled:#}");

    // The signature taken from the mirror's copy: its manifest still names it, so the copy is
    // refused whole; and once the copy is pushed again unsigned, the policy refuses it.
    fs::remove_file(server.object_path("copies", "models/m/model.sig"))?;
    let other = Fixture::new()?;
    let out = through(&other)?;
    assert_failure(
        &out,
        1,
        &["`model.sig` is in the folder's manifest but not in the folder"],
    );
    let out = with_s3(
        &seed,
        &server,
        &["mirror", "s3://fleet/models/m/", "s3://copies"],
    )?;
    assert_code(&out, 0);
    let out = through(&other)?;
    assert_failure(&out, 3, &["unsigned"]);
    let listed = stdout(&other.run(["ls", "--json"]));
    assert!(!listed.contains("s3://fleet/models/m/"), "{listed}");
    Ok(())
}

/// The kept bundle of the model `id` in `fx`'s cache.
fn kept_bundle(fx: &Fixture, id: &str) -> PathBuf {
    let hex = Digest::sha256_of(id.as_bytes()).value().to_owned();
    fx.cache().join("signatures").join(format!("{hex}.sig"))
}

/// Debian's docker-registry 2.8 has no referrers API: `ensure` finds the bundle `push --sign`
/// attached through the tag scheme's index, holds the policy against it, and keeps it for
/// `verify`; `remove` takes the kept bundle with the model.
#[test]
fn ensure_finds_a_signed_push_among_its_referrers_by_the_tag_scheme() -> TestResult {
    let registry = Registry::start()?;
    let (fx, id) = with_folder_model()?;
    let (private, public) = key_pair(fx.root(), "org");
    let (_, other) = key_pair(fx.root(), "other");
    let dest = format!("oci://{}/fleet/referred:v1", registry.host());
    fx.json([
        "push",
        &id,
        &dest,
        "--sign",
        &format!("key:{}", private.display()),
        "--json",
    ])?;

    let node = Fixture::new()?;
    let policy = format!("key:{}", public.display());
    let pulled = node.json(["ensure", &dest, "--signed-by", &policy, "--json"])?;
    assert_eq!(pulled["signature"]["outcome"], "verified", "{pulled:#}");
    assert!(
        !Path::new(str_field(&pulled, "local_path"))
            .join("model.sig")
            .exists(),
        "the bundle is no file of the model"
    );
    let kept = kept_bundle(&node, &dest);
    assert!(kept.is_file(), "the referrer's bundle is kept");
    let refused = Fixture::new()?;
    let out = refused.run([
        "ensure",
        &dest,
        "--signed-by",
        &format!("key:{}", other.display()),
    ]);
    assert_failure(&out, 3, &["does not satisfy"]);
    let listed = stdout(&refused.run(["ls", "--json"]));
    assert!(!listed.contains(&dest), "nothing recorded: {listed}");

    let unchecked = Fixture::new()?.json(["ensure", &dest, "--json"])?;
    assert_eq!(
        unchecked["signature"]["outcome"], "unchecked",
        "{unchecked:#}"
    );

    // `verify` checks it again from the kept copy, under a rule for the registry, which is
    // gone.
    drop(registry);
    let mut verify = node.command(["verify", &dest]);
    verify.env("MODEL_PROVISIONER_SIGNERS", format!("{dest}={policy}"));
    assert_code(&verify.output()?, 0);
    assert_eq!(
        node.entry(&dest)?["signature"]["outcome"],
        "verified",
        "verified again"
    );
    let out = node.run(["rm", &dest]);
    assert_code(&out, 0);
    assert!(!kept.exists(), "removed with its model");
    Ok(())
}

/// Attaches `bundle` to the manifest `subject` (of `subject_type` and `subject_size` bytes) in
/// `repo` as a referrer, by the tag scheme, as cosign does on a registry without the API.
fn attach_bundle(
    registry: &Registry,
    repo: &str,
    (subject, subject_type, subject_size): (&str, &str, u64),
    bundle: &[u8],
) -> TestResult {
    const BUNDLE: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";
    let config = registry.push_blob(repo, b"{}")?;
    let layer = registry.push_blob(repo, bundle)?;
    let referrer = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": BUNDLE,
        "config": { "mediaType": OCI_EMPTY, "digest": config, "size": 2 },
        "layers": [{ "mediaType": BUNDLE, "digest": layer, "size": bundle.len() }],
        "subject": { "mediaType": subject_type, "digest": subject, "size": subject_size },
    }))?;
    let digest = Digest::sha256_of(&referrer).to_string();
    registry.push_manifest(repo, &digest, OCI_MANIFEST, &referrer)?;
    let list = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [{
            "mediaType": OCI_MANIFEST,
            "digest": digest,
            "size": referrer.len(),
            "artifactType": BUNDLE,
        }],
    }))?;
    registry.push_manifest(repo, &subject.replacen(':', "-", 1), OCI_INDEX, &list)?;
    Ok(())
}

/// A tag naming an index: the bundle `push --sign` attached to the manifest the index lists for
/// this platform is found, and so is one attached to the index itself.
#[test]
fn ensure_of_an_index_finds_the_signatures_of_its_platform_manifest_and_of_the_index() -> TestResult
{
    let registry = Registry::start()?;
    let (fx, id) = with_folder_model()?;
    let (platform, platform_public) = key_pair(fx.root(), "platform");
    let (index_key, index_public) = key_pair(fx.root(), "index");
    let (_, other) = key_pair(fx.root(), "other");
    let pushed = fx.json([
        "push",
        &id,
        &format!("oci://{}/fleet/multi:single", registry.host()),
        "--sign",
        &format!("key:{}", platform.display()),
        "--json",
    ])?;
    let manifest = str_field(&pushed, "manifest_digest").to_owned();
    let size = registry.get_manifest("fleet/multi", &manifest)?.body.len() as u64;
    let index = registry.push_index(
        "fleet/multi",
        "v1",
        &[(
            &manifest,
            size,
            OCI_MANIFEST,
            Some(test_support::this_platform()),
        )],
    )?;
    let reference = format!("oci://{}/fleet/multi:v1", registry.host());
    let ensure = |public: &Path| {
        Fixture::new().map(|node| {
            node.run([
                "ensure",
                &reference,
                "--signed-by",
                &format!("key:{}", public.display()),
                "--json",
            ])
        })
    };
    let verified = |public: &Path| -> TestResult {
        let out = ensure(public)?;
        assert_code(&out, 0);
        let pulled: serde_json::Value = serde_json::from_str(&stdout(&out))?;
        assert_eq!(pulled["signature"]["outcome"], "verified", "{pulled:#}");
        Ok(())
    };
    verified(&platform_public)?;
    assert_failure(&ensure(&index_public)?, 3, &["does not satisfy"]);

    // A signature of the same files attached to the index.
    let files = pushed_files(&fx)?;
    let bundle = sign(&files, &Signer::key(&fs::read(&index_key)?)?, "model")?;
    let index_size = registry.get_manifest("fleet/multi", &index)?.body.len() as u64;
    attach_bundle(
        &registry,
        "fleet/multi",
        (&index, OCI_INDEX, index_size),
        &bundle,
    )?;
    verified(&index_public)?;
    verified(&platform_public)?;
    assert_failure(&ensure(&other)?, 3, &["does not satisfy"]);
    Ok(())
}

/// A registry with the referrers API (the front answers it, from the tag scheme's index
/// upstream): `ensure` asks the API and never reads the tag.
#[test]
fn ensure_asks_the_referrers_api_when_the_registry_has_one() -> TestResult {
    let registry = Registry::start()?;
    let (fx, id) = with_folder_model()?;
    let (private, public) = key_pair(fx.root(), "org");
    let pushed = fx.json([
        "push",
        &id,
        &format!("oci://{}/fleet/api:v1", registry.host()),
        "--sign",
        &format!("key:{}", private.display()),
        "--json",
    ])?;
    let subject = str_field(&pushed, "manifest_digest").to_owned();
    let front = RegistryFront::start(
        &registry,
        FrontOptions {
            referrers_api: true,
            ..FrontOptions::default()
        },
    )?;
    let node = Fixture::new()?;
    let policy = format!("key:{}", public.display());
    let reference = format!("oci://{}/fleet/api:v1", front.host());
    let pulled = node.json(["ensure", &reference, "--signed-by", &policy, "--json"])?;
    assert_eq!(pulled["signature"]["outcome"], "verified", "{pulled:#}");
    let paths: Vec<String> = front.log().into_iter().map(|r| r.path).collect();
    assert!(
        paths
            .iter()
            .any(|p| p.starts_with(&format!("/v2/fleet/api/referrers/{subject}?artifactType="))),
        "{paths:#?}"
    );
    let tag = subject.replacen(':', "-", 1);
    assert!(
        !paths.iter().any(|p| p.contains(&tag)),
        "the tag scheme was read: {paths:#?}"
    );
    Ok(())
}

/// `mirror --sign` to a registry attaches the bundle to the mirror's copy; `ensure` through
/// the rule with a policy finds it among that copy's referrers.
#[test]
fn a_registry_mirror_signed_on_its_way_passes_the_policy_through_the_rule() -> TestResult {
    let origin = Registry::start()?;
    let copies = Registry::start()?;
    let (fx, id) = with_folder_model()?;
    let reference = format!("oci://{}/team/m:v1", origin.host());
    fx.json(["push", &id, &reference, "--json"])?;
    let seed = Fixture::new()?;
    seed.json(["ensure", &reference, "--json"])?;
    let (private, public) = key_pair(fx.root(), "org");
    let mirrored = seed.json([
        "mirror",
        &reference,
        &format!("oci://{}", copies.host()),
        "--sign",
        &format!("key:{}", private.display()),
        "--json",
    ])?;
    let rule = str_field(&mirrored, "rule").to_owned();

    let node = Fixture::new()?;
    let policy = format!("key:{}", public.display());
    let pulled = node.json([
        "ensure",
        &reference,
        "--mirror",
        &rule,
        "--signed-by",
        &policy,
        "--json",
    ])?;
    assert_eq!(pulled["signature"]["outcome"], "verified", "{pulled:#}");
    let origin_of = &node.entry(&reference)?["provenance"]["origin"];
    assert!(
        origin_of
            .as_str()
            .is_some_and(|o| o.contains(&copies.host())),
        "{origin_of}"
    );
    Ok(())
}

/// A policy holds a model already in the catalog: the recorded files against its signature,
/// nothing fetched or hashed again; a refusal fails the ensure and is recorded, the entry
/// stays.
#[test]
fn a_policy_applies_to_a_model_already_in_the_catalog() -> TestResult {
    let fx = Fixture::new()?;
    let (private, public) = key_pair(fx.root(), "org");
    let (_, other) = key_pair(fx.root(), "other");
    let model = signed_model(&fx.path("a"), &private)?;
    let model = model.to_str().ok_or("utf-8")?;
    let first = fx.json(["ensure", model, "--json"])?;
    assert_eq!(first["signature"]["outcome"], "unchecked", "{first:#}");
    let id = str_field(&first, "id").to_owned();

    let right = format!("key:{}", public.display());
    let passed = fx.json(["ensure", model, "--signed-by", &right, "--json"])?;
    assert_eq!(passed["cached"], true, "{passed:#}");
    assert_eq!(passed["signature"]["outcome"], "verified", "{passed:#}");

    let out = fx.run([
        "ensure",
        model,
        "--signed-by",
        &format!("key:{}", other.display()),
    ]);
    assert_failure(&out, 3, &["does not satisfy"]);
    let entry = fx.entry(&id)?;
    assert_eq!(entry["lifecycle"], "active", "the entry stays: {entry:#}");
    assert_eq!(entry["signature"]["outcome"], "failed", "{entry:#}");
    Ok(())
}

#[test]
fn a_signed_model_pushed_unsigned_to_a_registry_carries_its_model_sig_as_a_layer() -> TestResult {
    let registry = Registry::start()?;
    let fx = Fixture::new()?;
    let (private, public) = key_pair(fx.root(), "org");
    let model = signed_model(&fx.path("a"), &private)?;
    let id = fx.json(["ensure", model.to_str().ok_or("utf-8")?, "--json"])?;
    let dest = format!("oci://{}/fleet/carried:v1", registry.host());
    fx.json(["push", str_field(&id, "id"), &dest, "--json"])?;

    let node = Fixture::new()?;
    let policy = format!("key:{}", public.display());
    let pulled = node.json(["ensure", &dest, "--signed-by", &policy, "--json"])?;
    assert_eq!(pulled["signature"]["outcome"], "verified", "{pulled:#}");
    Ok(())
}

/// A repository's files (`config.json`, `weights/w.bin`) signed with `key`, the weights served
/// by `nginx` on their own, and the bundle both served and written to `dir/model.sig`: (the
/// weights' URL, the bundle's URL, the bundle's path).
fn served_one_file(nginx: &Nginx, dir: &Path, key: &Path) -> TestResult<(String, String, PathBuf)> {
    let weights = test_support::random_bytes(40_000, 7);
    let files = vec![
        (
            SafeRelPath::new("config.json".to_owned())?,
            Digest::sha256_of(b"{}"),
        ),
        (
            SafeRelPath::new("weights/w.bin".to_owned())?,
            Digest::sha256_of(&weights),
        ),
    ];
    let bundle = sign(&files, &Signer::key(&fs::read(key)?)?, "repo")?;
    nginx.put("w.bin", &weights)?;
    nginx.put("model.sig", &bundle)?;
    let path = dir.join("model.sig");
    fs::write(&path, &bundle)?;
    Ok((nginx.url("files/w.bin"), nginx.url("files/model.sig"), path))
}

#[test]
fn one_file_passes_against_a_detached_signature_of_its_repository_and_verify_keeps_it() -> TestResult
{
    let nginx = Nginx::start();
    let fx = Fixture::new()?;
    let (private, public) = key_pair(fx.root(), "org");
    let (weights, bundle_url, bundle_path) = served_one_file(&nginx, fx.root(), &private)?;
    let policy = format!("key:{}", public.display());
    let signature = bundle_path.to_str().ok_or("utf-8")?;
    let pulled = fx.json([
        "ensure",
        &weights,
        "--signature",
        signature,
        "--signed-by",
        &policy,
        "--json",
    ])?;
    assert_eq!(pulled["signature"]["outcome"], "verified", "{pulled:#}");
    // `verify` checks it again, from the copy the catalog kept, under a rule for its URL.
    fs::remove_file(&bundle_path)?;
    let mut verify = fx.command(["verify", str_field(&pulled, "id")]);
    verify.env(
        "MODEL_PROVISIONER_SIGNERS",
        format!("{}={policy}", nginx.url("")),
    );
    assert_code(&verify.output()?, 0);
    let shown = stdout(&fx.run(["show", str_field(&pulled, "id")]));
    assert!(shown.contains("verified (key sha256:"), "{shown}");

    // The same from the URL, and another key's policy refuses it with status 3.
    let node = Fixture::new()?;
    let pulled = node.json(["ensure", &weights, "--signature", &bundle_url, "--json"])?;
    assert_eq!(pulled["signature"]["outcome"], "unchecked", "{pulled:#}");
    let (_, other) = key_pair(fx.root(), "other");
    let third = Fixture::new()?;
    let other_policy = format!("key:{}", other.display());
    let out = third.run([
        "ensure",
        &weights,
        "--signature",
        &bundle_url,
        "--signed-by",
        &other_policy,
    ]);
    assert_failure(&out, 3, &["does not satisfy"]);
    Ok(())
}

/// `--signature URL` is fetched when a check needs it: a model already in the catalog with no
/// policy asks nothing of its server (also `--offline`, also with the server gone); a policy on
/// it fetches the bundle and checks; `--offline` then refuses, naming the URL.
#[test]
fn a_signature_url_is_fetched_only_when_a_check_needs_it() -> TestResult {
    let nginx = Nginx::start();
    let fx = Fixture::new()?;
    let (private, public) = key_pair(fx.root(), "org");
    let (weights, bundle_url, _) = served_one_file(&nginx, fx.root(), &private)?;
    let first = fx.json(["ensure", &weights, "--json"])?;
    let id = str_field(&first, "id").to_owned();
    nginx.wait_idle();
    nginx.clear_log();

    let again = fx.json(["ensure", &weights, "--signature", &bundle_url, "--json"])?;
    assert_eq!(again["cached"], true, "{again:#}");
    let offline = fx.json([
        "ensure",
        &weights,
        "--signature",
        &bundle_url,
        "--offline",
        "--json",
    ])?;
    assert_eq!(offline["cached"], true, "{offline:#}");
    nginx.wait_idle();
    assert!(nginx.log().is_empty(), "{:?}", nginx.log());

    let policy = format!("key:{}", public.display());
    let checked = fx.json([
        "ensure",
        &weights,
        "--signature",
        &bundle_url,
        "--signed-by",
        &policy,
        "--json",
    ])?;
    assert_eq!(checked["cached"], true, "{checked:#}");
    assert_eq!(checked["signature"]["outcome"], "verified", "{checked:#}");
    nginx.wait_idle();
    let asked: Vec<_> = nginx.log().into_iter().map(|l| (l.uri, l.status)).collect();
    assert_eq!(asked, [("/files/model.sig".to_owned(), 200)]);

    // Offline, the check cannot have its bundle: the ensure fails as for any URL, and the
    // entry keeps the check it had.
    let out = fx.run([
        "ensure",
        &weights,
        "--signature",
        &bundle_url,
        "--signed-by",
        &policy,
        "--offline",
    ]);
    assert_failure(
        &out,
        1,
        &[&format!(
            "offline, and `{bundle_url}` is not in the catalog"
        )],
    );
    let entry = fx.entry(&id)?;
    assert_eq!(entry["signature"]["outcome"], "verified", "{entry:#}");

    // The server gone: a cached model with no policy is still handed out.
    drop(nginx);
    let gone = fx.json(["ensure", &weights, "--signature", &bundle_url, "--json"])?;
    assert_eq!(gone["cached"], true, "{gone:#}");
    Ok(())
}

/// The models of a list checked against one `--signature URL` share one fetch of it.
#[test]
fn a_signature_url_is_fetched_once_for_every_model_of_a_list() -> TestResult {
    let nginx = Nginx::start();
    let fx = Fixture::new()?;
    let (private, public) = key_pair(fx.root(), "org");
    let (weights, bundle_url, _) = served_one_file(&nginx, fx.root(), &private)?;
    nginx.put("config.json", b"{}")?;
    let list = fx.path("models.toml");
    fs::write(
        &list,
        format!(
            "[[models]]\nref = \"{weights}\"\n\n[[models]]\nref = \"{}\"\n",
            nginx.url("files/config.json")
        ),
    )?;
    let policy = format!("key:{}", public.display());
    let out = fx.run([
        "ensure",
        "--from",
        list.to_str().ok_or("utf-8")?,
        "--signature",
        &bundle_url,
        "--signed-by",
        &policy,
        "--json",
    ]);
    assert_code(&out, 0);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let models = json["models"].as_array().ok_or("models")?;
    assert_eq!(models.len(), 2, "{json:#}");
    for model in models {
        let entry = fx.entry(str_field(model, "id"))?;
        assert_eq!(entry["signature"]["outcome"], "verified", "{entry:#}");
    }
    nginx.wait_idle();
    let fetched = nginx
        .log()
        .iter()
        .filter(|l| l.uri == "/files/model.sig")
        .count();
    assert_eq!(fetched, 1, "{:?}", nginx.log());
    Ok(())
}

#[test]
fn a_file_not_as_signed_or_not_signed_fails_its_detached_signature() -> TestResult {
    let nginx = Nginx::start();
    let fx = Fixture::new()?;
    let (private, public) = key_pair(fx.root(), "org");
    let (_, bundle_url, _) = served_one_file(&nginx, fx.root(), &private)?;
    let policy = format!("key:{}", public.display());
    nginx.put("other.bin", b"not in the repository")?;
    let out = fx.run([
        "ensure",
        &nginx.url("files/other.bin"),
        "--signature",
        &bundle_url,
        "--signed-by",
        &policy,
    ]);
    assert_failure(&out, 3, &["other.bin"]);
    let listed = stdout(&fx.run(["ls", "--json"]));
    assert!(!listed.contains("other.bin"), "{listed}");
    Ok(())
}

#[test]
fn a_signature_url_serving_a_huge_body_is_refused_after_a_bounded_read() -> TestResult {
    let nginx = Nginx::start();
    let fx = Fixture::new()?;
    nginx.put("w.bin", b"weights")?;
    let huge = nginx.root().join("huge.sig");
    fs::File::create(&huge)?.set_len(64 * 1024 * 1024 + 1)?;
    let out = fx.run([
        "ensure",
        &nginx.url("files/w.bin"),
        "--signature",
        &nginx.url("files/huge.sig"),
    ]);
    assert_failure(&out, 1, &["larger than 64 MiB"]);
    // The same file given by its path is refused by its length, unread.
    let out = fx.run([
        "ensure",
        &nginx.url("files/w.bin"),
        "--signature",
        huge.to_str().ok_or("utf-8")?,
    ]);
    assert_failure(&out, 1, &["larger than 64 MiB"]);
    Ok(())
}
