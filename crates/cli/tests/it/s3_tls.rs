//! S3 over HTTPS with a private CA: `ensure`, `push` and `mirror` against s3s-fs behind a
//! [`TlsFront`] (nginx with a certificate from a CA made for the test), trusting that CA
//! through `AWS_CA_BUNDLE` as `docs/s3.md` promises; and, without it, a pull refused at the
//! handshake with an error that says why.
//!
//! The endpoint is `https://127.0.0.1:<front port>`; every request is signed for that host,
//! and the front passes it on unchanged, so s3s-fs checks each signature as it would behind
//! a real load balancer.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use test_support::{
    FrontHit, HfRepoBuilder, HubNginx, S3_ACCESS_KEY, S3_SECRET_KEY, S3Server, TINY_LLAMA,
    TlsFront, assert_holds, files_under, paths_under, poll, random_bytes,
};

use crate::fixture::{
    Fixture, TestResult, assert_code, assert_failure, hints, run_within, stderr, str_field,
};

/// How long one run may take on a busy machine.
const LIMIT: Duration = Duration::from_secs(60);

/// How long a test waits for a signal (a log line) before it fails.
const PATIENCE: Duration = Duration::from_secs(10);

/// The bucket models are pulled from.
const BUCKET: &str = "models";

/// The bucket models are pushed and mirrored to.
const FLEET: &str = "fleet";

/// s3s-fs and the HTTPS front before it.
struct Tls {
    server: S3Server,
    front: TlsFront,
}

impl Tls {
    fn start() -> TestResult<Tls> {
        let server = S3Server::start()?;
        let front = TlsFront::start(&server.endpoint())?;
        Ok(Tls { server, front })
    }

    /// `args` in `fx` with the server's keys and the front as the endpoint; with `trust`, the
    /// front's CA in `AWS_CA_BUNDLE`.
    fn command(&self, fx: &Fixture, args: &[&str], trust: bool) -> Command {
        let mut cmd = fx.command(args);
        cmd.env("AWS_ENDPOINT_URL", self.front.endpoint())
            .env("AWS_REGION", "us-east-1")
            .env("AWS_ACCESS_KEY_ID", S3_ACCESS_KEY)
            .env("AWS_SECRET_ACCESS_KEY", S3_SECRET_KEY);
        if trust {
            cmd.env("AWS_CA_BUNDLE", self.front.ca_bundle());
        }
        cmd
    }

    /// Runs `args` trusting the front's CA.
    fn run(&self, fx: &Fixture, args: &[&str]) -> Output {
        run_within(&mut self.command(fx, args, true), LIMIT)
    }

    /// Runs `args` trusting the front's CA; they must succeed, and print JSON.
    fn json(&self, fx: &Fixture, args: &[&str]) -> TestResult<serde_json::Value> {
        let out = self.run(fx, args);
        assert_code(&out, 0);
        Ok(serde_json::from_slice(&out.stdout)?)
    }

    /// The `method` requests for `path` the front answered with `2xx`, signed for the
    /// front's own host (which is what s3s-fs checked the signature against); fails unless
    /// there is one. nginx logs a request just after it answers: the log is read until the
    /// line is there, for up to 10 s.
    fn assert_relayed(&self, method: &str, path: &str) -> Vec<FrontHit> {
        let host = format!("127.0.0.1:{}", self.front.port());
        let matching = || {
            let hits: Vec<FrontHit> = self
                .front
                .log()
                .into_iter()
                .filter(|h| {
                    h.method == method
                        && h.path == path
                        && (200..300).contains(&h.status)
                        && h.host == host
                })
                .collect();
            (!hits.is_empty()).then_some(hits)
        };
        poll(PATIENCE, matching).unwrap_or_else(|| {
            panic!(
                "no {method} {path} for {host} through the front:\n{:#?}",
                self.front.log()
            )
        })
    }
}

/// Files under `models/`: nothing may appear there unless a model passed its checks.
fn model_files(cache: &Path) -> Vec<PathBuf> {
    paths_under(&cache.join("models"))
}

#[test]
fn a_pull_over_https_trusts_the_ca_named_by_aws_ca_bundle() -> TestResult {
    let tls = Tls::start()?;
    let weights = random_bytes((3 << 20) + 123, 1);
    tls.server.put(BUCKET, "org/tiny/model.gguf", &weights)?;
    let fx = Fixture::new()?;

    let out = tls.json(
        &fx,
        &["ensure", "s3://models/org/tiny/model.gguf", "--json"],
    )?;
    assert_eq!(
        str_field(&out, "id"),
        format!("s3+{}/models/org/tiny/model.gguf", tls.front.endpoint())
    );
    assert!(fs::read(str_field(&out, "local_path"))? == weights);
    // The engine's ranged GET went through the front and was answered as one.
    let gets = tls.assert_relayed("GET", "/models/org/tiny/model.gguf");
    assert!(
        gets.iter().any(|h| h.status == 206 && h.range.is_some()),
        "no ranged GET through the front: {gets:#?}"
    );
    Ok(())
}

#[test]
fn without_aws_ca_bundle_a_pull_fails_at_once_saying_the_certificate_is_not_trusted() -> TestResult
{
    let tls = Tls::start()?;
    tls.server.put(BUCKET, "org/tiny/model.gguf", b"weights")?;
    let fx = Fixture::new()?;

    let out = run_within(
        &mut tls.command(&fx, &["ensure", "s3://models/org/tiny/model.gguf"], false),
        LIMIT,
    );
    assert_failure(
        &out,
        1,
        &[
            &tls.front.endpoint(),
            "certificate this machine does not trust",
            "unknown certificate authority",
        ],
    );
    // Refused once: the same certificate would come back on every retry.
    assert!(!stderr(&out).contains("retrying"), "{}", stderr(&out));
    assert!(
        hints(&out).iter().any(|h| h.contains("AWS_CA_BUNDLE")),
        "no hint names `AWS_CA_BUNDLE`:\n{}",
        stderr(&out)
    );
    // Refused at the handshake, by the client: no request reached the server.
    let alert = poll(PATIENCE, || {
        tls.front
            .error_log_text()
            .contains("alert unknown ca")
            .then_some(())
    });
    assert!(alert.is_some(), "{}", tls.front.error_log_text());
    assert_eq!(tls.front.log(), Vec::<FrontHit>::new());
    assert!(model_files(fx.cache()).is_empty());
    Ok(())
}

#[test]
fn a_model_pushed_over_https_is_pulled_back_with_the_same_bytes() -> TestResult {
    let tls = Tls::start()?;
    tls.server.create_bucket(FLEET)?;
    let fx = Fixture::new()?;
    fx.write_model("model/config.json", br#"{"architectures":["Llama"]}"#)?;
    fx.write_model("model/model.safetensors", &random_bytes(300_000, 2))?;
    let ensured = fx.json(["ensure", "model", "--json"])?;
    let id = str_field(&ensured, "id").to_owned();

    let pushed = tls.json(&fx, &["push", &id, "s3://fleet/models/m/", "--json"])?;
    assert_eq!(str_field(&pushed, "destination"), "s3://fleet/models/m/");
    tls.assert_relayed("PUT", "/fleet/models/m/model.safetensors");

    let node = Fixture::new()?;
    let pulled = tls.json(&node, &["ensure", "s3://fleet/models/m/", "--json"])?;
    assert_eq!(str_field(&pulled, "verification"), "pass");
    assert_holds(
        Path::new(str_field(&pulled, "local_path")),
        &files_under(&fx.path("model"))?,
    );
    Ok(())
}

#[test]
fn an_hf_model_mirrored_over_https_is_ensured_through_the_printed_rule() -> TestResult {
    let tls = Tls::start()?;
    tls.server.create_bucket(FLEET)?;
    let repo = HfRepoBuilder::tiny_llama_sized(96 << 10);
    let hub = HubNginx::start_with_files(&[(TINY_LLAMA, repo.files())]);
    let reference = format!("hf:{TINY_LLAMA}");
    let with_hub = |cmd: &mut Command, fx: &Fixture| {
        cmd.env("HF_ENDPOINT", hub.endpoint())
            .env("HF_HOME", fx.path("hf-home"));
    };
    let seed = Fixture::new()?;
    let mut ensure = tls.command(&seed, &["ensure", &reference, "--json"], true);
    with_hub(&mut ensure, &seed);
    assert_code(&run_within(&mut ensure, LIMIT), 0);

    let mirrored = tls.json(&seed, &["mirror", &reference, "s3://fleet/hf", "--json"])?;
    let rule = str_field(&mirrored, "rule").to_owned();
    assert_eq!(rule, "hf:=s3://fleet/hf");
    // The revision's ref object is written through the front too.
    tls.assert_relayed("PUT", "/fleet/hf/test-org/tiny-llama/refs/main");

    hub.clear_log();
    let node = Fixture::new()?;
    let mut ensure = tls.command(
        &node,
        &["ensure", &reference, "--mirror", &rule, "--json"],
        true,
    );
    with_hub(&mut ensure, &node);
    let out = run_within(&mut ensure, LIMIT);
    assert_code(&out, 0);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    assert_eq!(str_field(&json, "id"), reference);
    assert_holds(
        Path::new(str_field(&json, "local_path")),
        &hub.repo(TINY_LLAMA).contents(),
    );
    let origin = node.entry(&reference)?["provenance"]["origin"].clone();
    assert!(
        origin
            .as_str()
            .is_some_and(|o| o.starts_with(&format!("s3+{}/fleet/hf/", tls.front.endpoint()))),
        "{origin}"
    );
    assert_eq!(hub.requests(), Vec::new(), "the node asked the Hub");
    Ok(())
}

#[test]
fn an_s3_folder_mirrored_over_https_is_ensured_through_the_printed_rule() -> TestResult {
    let tls = Tls::start()?;
    tls.server.create_bucket(FLEET)?;
    let files = [
        ("config.json", b"{\"layers\": 2}".to_vec()),
        ("model.safetensors", random_bytes(200_000, 3)),
    ];
    for (rel, bytes) in &files {
        tls.server
            .put(BUCKET, &format!("org/folder/{rel}"), bytes)?;
    }
    let seed = Fixture::new()?;
    let reference = "s3://models/org/folder/";
    tls.json(&seed, &["ensure", reference, "--json"])?;

    let mirrored = tls.json(&seed, &["mirror", reference, "s3://fleet/mirror", "--json"])?;
    let rule = str_field(&mirrored, "rule").to_owned();
    assert_eq!(
        rule,
        format!("s3+{}/models=s3://fleet/mirror", tls.front.endpoint())
    );
    tls.assert_relayed("PUT", "/fleet/mirror/org/folder/model.safetensors");

    // Gone from its origin: only the mirror has it now.
    fs::remove_dir_all(tls.server.object_path(BUCKET, "org/folder"))?;
    let node = Fixture::new()?;
    let out = tls.json(&node, &["ensure", reference, "--mirror", &rule, "--json"])?;
    let want = files
        .iter()
        .map(|(rel, bytes)| ((*rel).to_owned(), bytes.clone()))
        .collect();
    assert_holds(Path::new(str_field(&out, "local_path")), &want);
    Ok(())
}
