//! A fleet on one machine: an origin (the Hub fixture on nginx, whose access log counts the
//! bytes it serves), a mirror (a registry or a bucket), one seed process that ensures the model
//! from the origin and `mirror`s it, and eight node processes, each with a cache of its own,
//! that ensure the same reference at once through the mirror. The origin must have served the
//! model's bytes once, to the seed; every node must hold the origin's model, verified, under
//! the origin's id; a reference the mirror has no copy of must still come from the origin.
//!
//! The example Kubernetes manifests of `docs/k8s/` are checked here too: parsed, and their
//! containers' commands run against these servers (see [`k8s`]).

use std::fmt::Write as _;
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use test_support::{
    HfRepoBuilder, HubFile, HubNginx, HubRepo, HubRequest, Registry, S3Server, assert_holds,
    fake_safetensors, poll, random_bytes, tree_digest,
};

use crate::fixture::{Fixture, Running, TestResult, assert_code, start, str_field};

mod k8s;

/// The model every node ensures: a few small files and one LFS file of a few MiB.
const MODEL: &str = "fleet-org/fleet-model";
/// A repository the origin serves and no mirror has a copy of.
const NOT_MIRRORED: &str = "fleet-org/not-mirrored";
/// The size of the model's weights: large enough to take several reads, small enough for a
/// debug build on a busy 2-core machine with eight nodes at once.
const WEIGHTS: usize = 3 << 20;
/// Nodes that ensure the model at once.
const NODES: usize = 8;
/// How long one process may take on a busy machine.
const LIMIT: Duration = Duration::from_secs(120);
/// The bucket of the bucket mirror.
const BUCKET: &str = "fleet";

/// `hf:<repo>`.
fn reference(repo: &str) -> String {
    format!("hf:{repo}")
}

/// The origin: the model and a repository that is never mirrored.
fn origin() -> HubNginx {
    let model = HfRepoBuilder::new(MODEL)
        .file(
            "config.json",
            br#"{"architectures":["LlamaForCausalLM"],"model_type":"llama"}"#.to_vec(),
        )
        .file("tokenizer.json", random_bytes(40_000, 1))
        .file(
            "model.safetensors",
            fake_safetensors(MODEL, "weight", WEIGHTS),
        );
    let other = HfRepoBuilder::new(NOT_MIRRORED)
        .file("config.json", br#"{"model_type":"llama"}"#.to_vec())
        .file(
            "model.safetensors",
            fake_safetensors(NOT_MIRRORED, "weight", 200_000),
        );
    HubNginx::start_with_files(&[(MODEL, model.files()), (NOT_MIRRORED, other.files())])
}

/// The mirror under test, with what a process needs to reach it.
enum Mirror {
    Registry(Registry),
    Bucket(S3Server),
}

impl Mirror {
    fn start_registry() -> TestResult<Mirror> {
        Ok(Mirror::Registry(Registry::start()?))
    }

    fn start_bucket() -> TestResult<Mirror> {
        let server = S3Server::start()?;
        server.create_bucket(BUCKET)?;
        Ok(Mirror::Bucket(server))
    }

    /// The prefix given to `mirror` and to the rule.
    fn prefix(&self) -> String {
        match self {
            Mirror::Registry(r) => format!("oci://{}/fleet", r.host()),
            Mirror::Bucket(_) => format!("s3://{BUCKET}/hf"),
        }
    }

    /// How a node's provenance names this mirror: its `origin` starts with this.
    fn named_in_provenance(&self) -> String {
        match self {
            Mirror::Registry(_) => self.prefix(),
            Mirror::Bucket(s) => format!("s3+{}/{BUCKET}/hf/", s.endpoint()),
        }
    }

    /// The fetcher a node records for this mirror.
    fn fetcher(&self) -> &'static str {
        match self {
            Mirror::Registry(_) => "mirror+oci",
            Mirror::Bucket(_) => "mirror+s3",
        }
    }

    /// The environment of every process: the store's keys and endpoint for a bucket.
    fn env(&self) -> Vec<(&'static str, String)> {
        match self {
            Mirror::Registry(_) => Vec::new(),
            Mirror::Bucket(s) => vec![
                ("AWS_ACCESS_KEY_ID", s.access_key().to_owned()),
                ("AWS_SECRET_ACCESS_KEY", s.secret_key().to_owned()),
                ("AWS_ENDPOINT_URL", s.endpoint()),
            ],
        }
    }
}

/// The binary in `fx` against the origin, with `env` on top.
fn command(hub: &HubNginx, fx: &Fixture, args: &[&str], env: &[(&str, String)]) -> Command {
    let mut cmd = fx.command(args);
    cmd.env("HF_ENDPOINT", hub.endpoint())
        .env("HF_HOME", fx.path("hf-home"));
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

/// Runs `args` in `fx`, which must succeed, and parses stdout as JSON.
fn run_json(
    hub: &HubNginx,
    fx: &Fixture,
    args: &[&str],
    env: &[(&str, String)],
) -> TestResult<serde_json::Value> {
    let out = start(&mut command(hub, fx, args, env)).finish_within(LIMIT);
    assert_code(&out, 0);
    Ok(serde_json::from_slice(&out.stdout)?)
}

/// Whether `r` asked for something of repository `repo` (its API, a `resolve`, or a blob the
/// Hub redirected to for it).
fn is_for(r: &HubRequest, repo: &str) -> bool {
    r.uri.contains(&format!("/{repo}/"))
        || r.uri.ends_with(&format!("/{repo}"))
        || r.args
            .as_deref()
            .is_some_and(|a| a.contains(&format!("repo={repo}&")))
}

/// Body bytes the origin sent of `file`'s content: `GET`s of its blob for an LFS file, `200`
/// and `206` answers of its `resolve` for a small one (an LFS file's `resolve` is a redirect,
/// whose body is not the file's).
fn content_sent(log: &[HubRequest], repo: &HubRepo, file: &HubFile) -> u64 {
    let blob = format!("/lfs/{}", file.sha256);
    let resolve_of = |uri: &str| {
        uri.starts_with(&format!("/{}/resolve/", repo.id()))
            && uri.ends_with(&format!("/{}", file.path))
    };
    log.iter()
        .filter(|r| r.method == "GET")
        .filter(|r| {
            if file.lfs {
                r.host == "localhost" && r.uri == blob
            } else {
                matches!(r.status, 200 | 206) && resolve_of(&r.uri)
            }
        })
        .map(|r| r.body_bytes)
        .sum()
}

/// The origin's log, one line a request, for assertion messages.
fn describe(log: &[HubRequest]) -> String {
    log.iter().fold(String::new(), |mut s, r| {
        let _ = writeln!(
            s,
            "{} {}{} {} {}",
            r.method, r.host, r.uri, r.status, r.body_bytes
        );
        s
    })
}

/// Waits until the origin's log shows each of `files` of `repo` sent whole at least once
/// (nginx logs a request just after answering it, so a client that exited may be a moment
/// ahead), then returns the log.
fn origin_sent_whole(hub: &HubNginx, repo: &str, files: &[HubFile]) -> Vec<HubRequest> {
    let repo = hub.repo(repo);
    poll(Duration::from_secs(10), || {
        let log = hub.requests();
        files
            .iter()
            .all(|f| content_sent(&log, repo, f) >= f.size)
            .then_some(log)
    })
    .unwrap_or_else(|| {
        panic!(
            "the origin's log never showed the files of {} sent:\n{}",
            repo.id(),
            describe(&hub.requests())
        )
    })
}

/// Asserts that the origin sent each of `files` of `repo` exactly once, byte for byte.
fn assert_sent_once(log: &[HubRequest], repo: &HubRepo, files: &[HubFile]) {
    for f in files {
        assert_eq!(
            content_sent(log, repo, f),
            f.size,
            "the origin did not send {} of {} exactly once:\n{}",
            f.path,
            repo.id(),
            describe(log)
        );
    }
}

/// Asserts what a node that ensured the model through `mirror` holds: the origin's files,
/// byte for byte and verified, under the origin's id, with provenance naming the mirror and
/// the origin's commit and sha256s.
fn assert_node(
    hub: &HubNginx,
    node: &Fixture,
    out: &Output,
    mirror: &Mirror,
    env: &[(&str, String)],
) -> TestResult {
    assert_code(out, 0);
    let repo = hub.repo(MODEL);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    assert_eq!(str_field(&json, "id"), reference(MODEL), "{json:#}");
    assert_eq!(json["cached"], false, "{json:#}");
    assert_ne!(json["verification"], "fail", "{json:#}");
    assert_holds(Path::new(str_field(&json, "local_path")), &repo.contents());

    // `verify` hashes the folder again: it must be the origin's files. (A whole repository has
    // no digest its source stated for the folder, only one per file, so it says `warn`, not
    // `pass`, as for a repository fetched from the origin.)
    let verified = run_json(hub, node, &["verify", &reference(MODEL), "--json"], env)?;
    assert_ne!(verified[0]["verification"], "fail", "{verified:#}");
    assert_eq!(
        verified[0]["computed"],
        tree_digest(repo.contents()),
        "{verified:#}"
    );

    let entry = run_json(hub, node, &["show", &reference(MODEL), "--json"], env)?;
    assert_eq!(str_field(&entry, "id"), reference(MODEL), "{entry:#}");
    let provenance = &entry["provenance"];
    let origin = provenance["origin"].as_str().unwrap_or_default();
    assert!(
        origin.starts_with(&mirror.named_in_provenance()),
        "the entry does not name the mirror: {entry:#}"
    );
    assert_eq!(provenance["fetcher"], mirror.fetcher(), "{entry:#}");
    assert_eq!(provenance["resolved_revision"], repo.commit(), "{entry:#}");
    let recorded = provenance["files"]
        .as_array()
        .ok_or("no files in provenance")?;
    for file in repo.files() {
        let r = recorded
            .iter()
            .find(|r| r["path"] == file.path.as_str())
            .ok_or_else(|| format!("{} is not recorded: {entry:#}", file.path))?;
        assert_eq!(r["digest"], format!("sha256:{}", file.sha256), "{entry:#}");
    }
    Ok(())
}

/// The whole fleet through `mirror`: seed, eight nodes at once, a node falling back.
fn a_fleet_through(mirror: &Mirror) -> TestResult {
    let hub = origin();
    let env = mirror.env();
    let prefix = mirror.prefix();

    // The seed: from the origin, then to the mirror.
    let seed = Fixture::new()?;
    let seeded = run_json(&hub, &seed, &["ensure", &reference(MODEL), "--json"], &env)?;
    assert_eq!(seeded["cached"], false, "{seeded:#}");
    let pushed = run_json(
        &hub,
        &seed,
        &["mirror", &reference(MODEL), &prefix, "--json"],
        &env,
    )?;
    assert_eq!(str_field(&pushed, "rule"), format!("hf:={prefix}"));
    let log = origin_sent_whole(&hub, MODEL, hub.repo(MODEL).files());
    let seen_by_seed = log.len();

    // Eight nodes, all started before any is waited for.
    let rule = format!("hf:={prefix}");
    let mut node_env = env.clone();
    node_env.push(("MODEL_PROVISIONER_MIRRORS", rule.clone()));
    let nodes: Vec<Fixture> = (0..NODES)
        .map(|_| Fixture::new())
        .collect::<Result<_, _>>()?;
    let running: Vec<Running> = nodes
        .iter()
        .map(|node| {
            start(&mut command(
                &hub,
                node,
                &["ensure", &reference(MODEL), "--json"],
                &node_env,
            ))
        })
        .collect();
    let outs: Vec<Output> = running
        .into_iter()
        .map(|r| r.finish_within(LIMIT))
        .collect();
    for (node, out) in nodes.iter().zip(&outs) {
        assert_node(&hub, node, out, mirror, &node_env)?;
    }

    // A node asking for a repository the mirror has no copy of: the mirror lacks it, and the
    // origin serves it.
    let straggler = Fixture::new()?;
    let other = run_json(
        &hub,
        &straggler,
        &["ensure", &reference(NOT_MIRRORED), "--json"],
        &node_env,
    )?;
    assert_holds(
        Path::new(str_field(&other, "local_path")),
        &hub.repo(NOT_MIRRORED).contents(),
    );
    let entry = run_json(
        &hub,
        &straggler,
        &["show", &reference(NOT_MIRRORED), "--json"],
        &node_env,
    )?;
    assert_eq!(entry["provenance"]["fetcher"], "hf-native", "{entry:#}");
    let other = hub.repo(NOT_MIRRORED);
    let log = origin_sent_whole(&hub, NOT_MIRRORED, other.files());
    assert_sent_once(&log, other, other.files());

    // The origin sent the model once, to the seed: the nodes asked it nothing about the model.
    assert_sent_once(&log, hub.repo(MODEL), hub.repo(MODEL).files());
    let asked_by_nodes: Vec<HubRequest> = log[seen_by_seed..]
        .iter()
        .filter(|r| is_for(r, MODEL))
        .cloned()
        .collect();
    assert!(
        asked_by_nodes.is_empty(),
        "nodes asked the origin about the model:\n{}",
        describe(&asked_by_nodes)
    );

    // The registry served the weights to every node.
    if let Mirror::Registry(registry) = mirror {
        let weights = hub.repo(MODEL).file("model.safetensors");
        let blob_get = format!("GET /v2/fleet/{MODEL}/blobs/sha256:{}", weights.sha256);
        // The registry logs a request just after answering it: wait for the lines.
        let count = || {
            registry
                .log_text()
                .lines()
                .filter(|l| {
                    l.contains(&blob_get) && (l.contains("\" 200 ") || l.contains("\" 206 "))
                })
                .count()
        };
        let served = poll(Duration::from_secs(10), || (count() >= NODES).then_some(()));
        assert!(
            served.is_some(),
            "the registry logged {} GETs of the weights, expected at least {NODES}:\n{}",
            count(),
            registry.log_text()
        );
    }
    Ok(())
}

#[test]
fn eight_nodes_at_once_through_a_registry_mirror_leave_the_origin_to_the_seed() -> TestResult {
    a_fleet_through(&Mirror::start_registry()?)
}

#[test]
fn eight_nodes_at_once_through_a_bucket_mirror_leave_the_origin_to_the_seed() -> TestResult {
    a_fleet_through(&Mirror::start_bucket()?)
}
