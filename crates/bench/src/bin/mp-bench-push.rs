//! `mp-bench-push`: a large model of the catalog pushed to a registry and to an S3 store on
//! loopback, side by side:
//!
//! - ours: `model-provisioner --cache-dir C push <id> oci://127.0.0.1:<port>/bench/model:v1
//!   --json`, which uploads it as a CNCF `ModelPack` artifact, never publishing a model that no
//!   longer verifies (every byte hashed on its way out, by the registry alone for files
//!   unchanged since they last matched);
//! - `skopeo copy dir:DIR docker://127.0.0.1:<port>/bench/skopeo:v1`, DIR being a `dir:`
//!   layout of the same artifact shape whose layer is a hard link to the same bytes; skopeo
//!   checks each blob's digest while it reads;
//! - the registry's floor: `curl -T FILE` of the layer's blob alone (an upload session, then
//!   one `PUT …?digest=`), nothing verified, no config and no manifest;
//! - ours: `model-provisioner --cache-dir C push <id> s3://bench/ours/ --json` (the file, then
//!   a manifest object);
//! - `aws s3 cp --recursive DIR s3://bench/aws/`, DIR holding a hard link to the same bytes;
//! - with `--baseline-bin`, another build of `model-provisioner` in the same rounds, from a
//!   cache of its own.
//!
//! The model is the pseudo-random file the other benchmarks use, copied once into each cache
//! (`ensure FILE --copy`), so that the cache owns it. Every push goes to a fresh server (Debian's
//! `docker-registry`, [`Registry`], or s3s-fs, [`S3Server`]) with empty storage, started
//! outside the timing, so no blob is there already. Each round pushes to the registry with every
//! client, then to the bucket, the order rotating from round to round, each after `sync` and a
//! pause; each result is read back from the server afterwards, outside the timing.

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context as _, bail, ensure};
use catalog_core::Digest;
use clap::Parser;
use serde_json::{Value, json};
use test_support::{OCI_MANIFEST, Registry, S3Server, s3s_fs_binary};

use model_provisioner_bench::measure::{
    CpuSplit, CpuWatch, ProcStat, child_ticks, date, loadavg, machine, mbps, median, min,
};
use model_provisioner_bench::run::{Binaries, Stdout, s3_command, timed, tool_version, utf8};
use model_provisioner_bench::settle::{SETTLE, settle_all};
#[path = "../testfile.rs"]
mod testfile;
use testfile::{MIB, SHARED, human_size, prepare_file};

/// Benchmark `push` against `skopeo copy` (to a registry) and `aws s3 cp --recursive` (to a
/// bucket), pushing one large model to fresh servers on loopback.
#[derive(Debug, Parser)]
#[command(name = "mp-bench-push", version, about, long_about = None)]
struct Args {
    /// Runs per client and case.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    runs: u32,
    /// Size of the model, in MiB.
    #[arg(long, default_value_t = 2048, value_parser = clap::value_parser!(u64).range(1..))]
    size_mib: u64,
    /// Also run this `model-provisioner` binary (another build, e.g. of the commit before a
    /// change) in the same rounds, and report ours / it.
    #[arg(long, value_name = "PATH")]
    baseline_bin: Option<PathBuf>,
    /// Where the model's file is written (once, reused while its size matches) and the caches
    /// and scratch directories live [default: `target/bench-data`].
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Also write the Markdown report here.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
}

/// The repositories and tag pushed to.
const OURS_REPO: &str = "bench/model";
const SKOPEO_REPO: &str = "bench/skopeo";
/// Where the bare `curl` upload of the layer goes.
const CURL_REPO: &str = "bench/curl";
const TAG: &str = "v1";
/// The bucket, and the folders in it.
const BUCKET: &str = "bench";
const OURS_PREFIX: &str = "ours/";
const AWS_PREFIX: &str = "aws/";
/// Where a push of ours writes its manifest, under the folder.
const S3_MANIFEST: &str = ".model-provisioner.json";

/// The `ModelPack` types ours pushes, which the `dir:` layout for skopeo uses too.
const MODEL_ARTIFACT: &str = "application/vnd.cncf.model.manifest.v1+json";
const MODEL_CONFIG: &str = "application/vnd.cncf.model.config.v1+json";
const MODEL_WEIGHT: &str = "application/vnd.cncf.model.weight.v1.raw";

/// The goals: ours / skopeo and ours / aws.
const GOAL_SKOPEO: f64 = 0.8;
const GOAL_AWS: f64 = 0.8;

/// Debian's `awscli`.
const AWS: &str = "/usr/bin/aws";

/// The servers' command names, for their CPU time.
const REGISTRY: &str = "docker-registry";
const S3S_FS: &str = "s3s-fs";

/// How to install what the benchmark runs.
const HINT: &str = "run `bash scripts/install-test-deps.sh`, which installs skopeo, awscli, \
                    docker-registry and s3s-fs";

/// Where the model goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Case {
    /// A fresh `docker-registry`.
    Registry,
    /// A fresh s3s-fs with an empty bucket.
    Bucket,
}

impl Case {
    fn server(self) -> &'static str {
        match self {
            Case::Registry => REGISTRY,
            Case::Bucket => S3S_FS,
        }
    }
}

/// Who pushes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Client {
    Ours,
    Before,
    /// `skopeo copy` to the registry, `aws s3 cp` to the bucket.
    Peer,
    /// To the registry only: the layer's blob alone, sent by `curl` in one `PUT`, unverified,
    /// with no config and no manifest: what the server alone costs.
    Floor,
}

impl Client {
    fn label(self, case: Case) -> String {
        match (self, case) {
            (Client::Ours, Case::Registry) => format!(
                "ours: `model-provisioner push <id> oci://…/{OURS_REPO}:{TAG}`, hashes while it \
                 sends"
            ),
            (Client::Ours, Case::Bucket) => format!(
                "ours: `model-provisioner push <id> s3://{BUCKET}/{OURS_PREFIX}`, hashes while \
                 it sends"
            ),
            (Client::Before, _) => "before (`--baseline-bin`)".to_owned(),
            (Client::Peer, Case::Registry) => format!(
                "`skopeo copy dir:DIR docker://…/{SKOPEO_REPO}:{TAG}`, checks the digest while \
                 reading"
            ),
            (Client::Peer, Case::Bucket) => {
                format!("`aws s3 cp --recursive DIR s3://{BUCKET}/{AWS_PREFIX}`")
            }
            (Client::Floor, _) => format!(
                "`curl -T FILE` of the layer's blob alone to `…/{CURL_REPO}` (`POST`, one \
                 `PUT …?digest=`), no verification, no config or manifest: the server's floor"
            ),
        }
    }

    fn peer_name(case: Case) -> &'static str {
        match case {
            Case::Registry => "`skopeo copy`",
            Case::Bucket => "`aws s3 cp --recursive`",
        }
    }

    fn goal(case: Case) -> f64 {
        match case {
            Case::Registry => GOAL_SKOPEO,
            Case::Bucket => GOAL_AWS,
        }
    }
}

/// One timed push: wall time, and CPU time (user + system) of the client's processes and of
/// the server while it ran.
#[derive(Debug, Clone, Copy, Default)]
struct Run {
    wall: Duration,
    client_cpu: Duration,
    server_cpu: Duration,
}

/// What is pushed, and from where.
struct Model {
    /// The file's name, which the layer and the object keep.
    name: String,
    size: u64,
    /// `sha256:<hex>`.
    digest: String,
    /// The model's id in ours' cache, and in before's.
    ours_id: String,
    before_id: Option<String>,
    ours_cache: PathBuf,
    before_cache: Option<PathBuf>,
    /// The `dir:` layout skopeo copies from.
    skopeo_dir: PathBuf,
    /// The directory `aws s3 cp --recursive` uploads.
    aws_dir: PathBuf,
}

/// The binaries and places every run shares.
struct Setup {
    ours: PathBuf,
    before: Option<PathBuf>,
    data_dir: PathBuf,
    args: Args,
}

/// The versions of the servers and the other clients, for the report.
struct Versions {
    servers: String,
    clients: String,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let Binaries {
        ours,
        before,
        data_dir,
    } = Binaries::locate(args.baseline_bin.as_deref(), args.data_dir.as_deref())?;
    // Every tool first: a missing one stops the run before the 2 GiB of set-up.
    let versions = Versions {
        servers: format!(
            "{}, {}",
            tool_version("docker-registry", &["--version"], HINT)?,
            tool_version(s3s_fs_binary()?, &["--version"], HINT)?
        ),
        clients: format!(
            "{}, {}",
            tool_version("skopeo", &["--version"], HINT)?,
            tool_version(AWS, &["--version"], HINT)?
        ),
    };
    let setup = Setup {
        ours,
        before,
        data_dir,
        args,
    };
    let scratch = tempfile::Builder::new()
        .prefix("push-bench-")
        .tempdir_in(&setup.data_dir)?;
    let model = prepare(&setup, scratch.path())?;

    let load_before = loadavg();
    let cpu = CpuWatch::start(ours_ticks());
    let cases = run_rounds(&setup, &model, scratch.path())?;
    let load = format!(
        "{load_before} before, {} after; other processes used {} while the rounds ran",
        loadavg(),
        cpu.others(ours_ticks())
    );
    let report = render(&setup, &model, &cases, &versions, &load);
    print!("{report}");
    if let Some(out) = &setup.args.out {
        fs::write(out, &report).with_context(|| format!("cannot write `{}`", out.display()))?;
    }
    Ok(())
}

/// The set-up, outside any timing: the file (written unless it is there, hashed), copied into
/// a cache per build with `ensure --copy`, and laid out for skopeo and for aws by hard links.
fn prepare(setup: &Setup, scratch: &Path) -> anyhow::Result<Model> {
    let size = setup
        .args
        .size_mib
        .checked_mul(MIB)
        .context("`--size-mib` is too large")?;
    let name = format!("random-{}MiB.bin", setup.args.size_mib);
    let file = setup.data_dir.join(&name);
    let digest = prepare_file(&file, size, SHARED, true)?.context("the file was not hashed")?;
    let digest = digest.to_string();

    let ours_cache = scratch.join("cache-ours");
    let ours_id = ensure_copy(&setup.ours, &ours_cache, &file, &digest, size)?;
    let (before_id, before_cache) = match &setup.before {
        Some(bin) => {
            let cache = scratch.join("cache-before");
            (
                Some(ensure_copy(bin, &cache, &file, &digest, size)?),
                Some(cache),
            )
        }
        None => (None, None),
    };

    let skopeo_dir = scratch.join("skopeo-dir");
    write_dir_layout(&skopeo_dir, &file, &name, &digest, size)?;
    let aws_dir = scratch.join("aws-dir");
    fs::create_dir_all(&aws_dir)
        .with_context(|| format!("cannot create `{}`", aws_dir.display()))?;
    link(&file, &aws_dir.join(&name))?;
    eprintln!(
        "mp-bench-push: {} ({}) is `{ours_id}` in the cache; skopeo's and aws's directories \
         link to the same bytes",
        human_size(size),
        digest
    );
    Ok(Model {
        name,
        size,
        digest,
        ours_id,
        before_id,
        ours_cache,
        before_cache,
        skopeo_dir,
        aws_dir,
    })
}

/// `bin --cache-dir cache ensure file --copy --digest …`: the model's id in that cache, which
/// now owns a copy of the file.
fn ensure_copy(
    bin: &Path,
    cache: &Path,
    file: &Path,
    digest: &str,
    size: u64,
) -> anyhow::Result<String> {
    let mut cmd = Command::new(bin);
    cmd.arg("--cache-dir")
        .arg(cache)
        .arg("ensure")
        .arg(file)
        .args(["--copy", "--digest", digest, "--json"]);
    let (_, stdout) = timed(&mut cmd, Stdout::Capture)?;
    let json: Value =
        serde_json::from_slice(&stdout).context("`ensure --json` did not print JSON")?;
    ensure!(
        json["verification"] == "pass",
        "`ensure --copy` did not verify: {json}"
    );
    let path = json["local_path"]
        .as_str()
        .context("`ensure --json` has no `local_path`")?;
    let len = fs::metadata(path)
        .with_context(|| format!("`local_path` `{path}` is missing"))?
        .len();
    ensure!(len == size, "`{path}` holds {len} bytes, expected {size}");
    Ok(json["id"]
        .as_str()
        .context("`ensure --json` has no `id`")?
        .to_owned())
}

/// A hard link, never a copy: the clients must read the same bytes from the same place.
fn link(from: &Path, to: &Path) -> anyhow::Result<()> {
    fs::hard_link(from, to).with_context(|| {
        format!(
            "cannot link `{}` to `{}` (the data directory must be one file system)",
            from.display(),
            to.display()
        )
    })
}

/// skopeo's `dir:` layout of a `ModelPack` artifact shaped like ours: the layer (a hard link to
/// `file`) and the config as blobs named by their hex digests, `manifest.json`, and `version`.
fn write_dir_layout(
    dir: &Path,
    file: &Path,
    name: &str,
    digest: &str,
    size: u64,
) -> anyhow::Result<()> {
    fs::create_dir_all(dir).with_context(|| format!("cannot create `{}`", dir.display()))?;
    let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
    link(file, &dir.join(hex))?;
    let config = serde_json::to_vec(&json!({
        "descriptor": { "name": SKOPEO_REPO },
        "config": { "format": "raw" },
        "modelfs": { "type": "layers", "diffIds": [digest] },
    }))?;
    let config_digest = Digest::sha256_of(&config);
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": MODEL_ARTIFACT,
        "config": {
            "mediaType": MODEL_CONFIG,
            "digest": config_digest.to_string(),
            "size": config.len(),
        },
        "layers": [{
            "mediaType": MODEL_WEIGHT,
            "digest": digest,
            "size": size,
            "annotations": {
                "org.cncf.model.filepath": name,
                "org.opencontainers.image.title": name,
            },
        }],
    });
    let files = [
        (config_digest.value().to_owned(), config),
        ("manifest.json".to_owned(), serde_json::to_vec(&manifest)?),
        (
            "version".to_owned(),
            b"Directory Transport Version: 1.1\n".to_vec(),
        ),
    ];
    for (file_name, bytes) in files {
        let path = dir.join(file_name);
        fs::write(&path, bytes).with_context(|| format!("cannot write `{}`", path.display()))?;
    }
    Ok(())
}

/// The runs of one case: its clients, and each one's runs.
struct CaseRuns {
    case: Case,
    clients: Vec<Client>,
    runs: Vec<Vec<Run>>,
}

/// A server started for one push, stopped (and its storage removed) on drop.
enum Server {
    Registry(Registry),
    S3(S3Server),
}

impl Server {
    fn start(case: Case) -> anyhow::Result<Server> {
        Ok(match case {
            Case::Registry => {
                Server::Registry(Registry::start().context("cannot start docker-registry")?)
            }
            Case::Bucket => {
                let server = S3Server::start().context("cannot start s3s-fs")?;
                server.create_bucket(BUCKET)?;
                Server::S3(server)
            }
        })
    }

    /// The directory the server stores in.
    fn storage(&self) -> PathBuf {
        match self {
            Server::Registry(r) => r.storage_root(),
            Server::S3(s) => s.root(),
        }
    }
}

/// Every client on every case `--runs` times, in rounds whose order rotates; a fresh server
/// for every push.
fn run_rounds(setup: &Setup, model: &Model, scratch: &Path) -> anyhow::Result<Vec<CaseRuns>> {
    let mut cases: Vec<CaseRuns> = [Case::Registry, Case::Bucket]
        .into_iter()
        .map(|case| {
            let mut clients = vec![Client::Ours];
            if setup.before.is_some() {
                clients.push(Client::Before);
            }
            clients.push(Client::Peer);
            if case == Case::Registry {
                clients.push(Client::Floor);
            }
            CaseRuns {
                case,
                runs: vec![Vec::new(); clients.len()],
                clients,
            }
        })
        .collect();
    for run in 0..setup.args.runs as usize {
        for case in &mut cases {
            let clients = case.clients.clone();
            // Rotate who goes first, so that none always meets a warmer (or busier) machine.
            for k in 0..clients.len() {
                let i = (run + k) % clients.len();
                let client = clients[i];
                let server = Server::start(case.case)?;
                settle_all(&[&setup.data_dir, scratch, &server.storage()])?;
                let cpu = CpuSplit::start(case.case.server());
                let wall = push(setup, model, case.case, client, &server)?;
                let (client_cpu, server_cpu) = cpu.split();
                // Outside the timing: what landed, read back from the server.
                check(model, client, &server)?;
                drop(server);
                eprintln!(
                    "mp-bench-push: run {}/{}: {:?}: {client:?}: {:.2} s ({:.0} MB/s), CPU {:.2} \
                     s, {} {:.2} s",
                    run + 1,
                    setup.args.runs,
                    case.case,
                    wall.as_secs_f64(),
                    mbps(model.size, wall),
                    client_cpu.as_secs_f64(),
                    case.case.server(),
                    server_cpu.as_secs_f64()
                );
                case.runs[i].push(Run {
                    wall,
                    client_cpu,
                    server_cpu,
                });
            }
        }
    }
    Ok(cases)
}

/// One timed push by `client` to `server`.
fn push(
    setup: &Setup,
    model: &Model,
    case: Case,
    client: Client,
    server: &Server,
) -> anyhow::Result<Duration> {
    let ours = |bin: &Path, cache: &Path, id: &str| -> anyhow::Result<Duration> {
        let (mut cmd, dest) = match server {
            Server::Registry(r) => (
                Command::new(bin),
                format!("oci://{}/{OURS_REPO}:{TAG}", r.host()),
            ),
            Server::S3(s) => {
                let mut cmd = s3_command(bin, s.access_key(), s.secret_key());
                cmd.env("AWS_ENDPOINT_URL", s.endpoint());
                (cmd, format!("s3://{BUCKET}/{OURS_PREFIX}"))
            }
        };
        cmd.arg("--cache-dir")
            .arg(cache)
            .args(["push", id, &dest, "--json"]);
        let (took, stdout) = timed(&mut cmd, Stdout::Capture)?;
        check_push_json(model, case, &stdout)?;
        Ok(took)
    };
    match (client, server) {
        (Client::Ours, _) => ours(&setup.ours, &model.ours_cache, &model.ours_id),
        (Client::Before, _) => ours(
            setup.before.as_deref().context("no baseline")?,
            model.before_cache.as_deref().context("no baseline cache")?,
            model.before_id.as_deref().context("no baseline id")?,
        ),
        (Client::Peer, Server::Registry(r)) => {
            let mut cmd = Command::new("skopeo");
            cmd.args(["copy", "--quiet", "--dest-tls-verify=false"])
                .arg(format!("dir:{}", utf8(&model.skopeo_dir)?))
                .arg(format!("docker://{}/{SKOPEO_REPO}:{TAG}", r.host()));
            Ok(timed(&mut cmd, Stdout::Null)?.0)
        }
        (Client::Floor, Server::Registry(r)) => {
            let script = r#"loc=$(curl -sS -f -D - -o /dev/null -X POST "$1" | tr -d '\r' | sed -n 's/^[Ll]ocation: //p') && curl -sS -f -o /dev/null -T "$2" -H 'Content-Type: application/octet-stream' "$loc&digest=$3""#;
            let mut cmd = Command::new("sh");
            cmd.args(["-c", script, "sh"])
                .arg(format!("http://{}/v2/{CURL_REPO}/blobs/uploads/", r.host()))
                .arg(model.aws_dir.join(&model.name))
                .arg(&model.digest);
            Ok(timed(&mut cmd, Stdout::Null)?.0)
        }
        (Client::Floor, Server::S3(_)) => bail!("the floor is measured for the registry only"),
        (Client::Peer, Server::S3(s)) => {
            let mut cmd = s3_command(AWS, s.access_key(), s.secret_key());
            cmd.env("AWS_DEFAULT_REGION", "us-east-1")
                .args(["--endpoint-url", &s.endpoint(), "s3", "cp", "--recursive"])
                .arg(&model.aws_dir)
                .arg(format!("s3://{BUCKET}/{AWS_PREFIX}"))
                .arg("--only-show-errors");
            Ok(timed(&mut cmd, Stdout::Null)?.0)
        }
    }
}

/// What `push --json` must say: one file, all of it sent, nothing skipped.
fn check_push_json(model: &Model, case: Case, stdout: &[u8]) -> anyhow::Result<()> {
    let json: Value = serde_json::from_slice(stdout).context("`push --json` did not print JSON")?;
    ensure!(
        json["files"] == 1,
        "`push` sent other than one file: {json}"
    );
    let sent = json["bytes_uploaded"]
        .as_u64()
        .with_context(|| format!("`push --json` has no `bytes_uploaded`: {json}"))?;
    match case {
        // The file and the config blob.
        Case::Registry => ensure!(
            sent > model.size && json["blobs_skipped"] == 0,
            "`push` did not send the whole model to an empty registry: {json}"
        ),
        Case::Bucket => ensure!(
            sent == model.size && json["manifest_key"] == format!("{OURS_PREFIX}{S3_MANIFEST}"),
            "`push` did not send the whole model and its manifest: {json}"
        ),
    }
    Ok(())
}

/// Reads back what `client` pushed: the manifest and the layer's blob from the registry, the
/// objects' sizes from the bucket.
fn check(model: &Model, client: Client, server: &Server) -> anyhow::Result<()> {
    match server {
        Server::Registry(r) => {
            let repo = match client {
                Client::Ours | Client::Before => OURS_REPO,
                Client::Peer => SKOPEO_REPO,
                Client::Floor => CURL_REPO,
            };
            // The bare upload pushes no manifest: its blob is all there is to check.
            if client != Client::Floor {
                let manifest = r.get_manifest(repo, TAG)?;
                ensure!(
                    manifest.status == 200,
                    "the registry has no `{repo}:{TAG}` ({})",
                    manifest.status
                );
                let manifest: Value = serde_json::from_slice(&manifest.body)?;
                let layers = manifest["layers"].as_array().map_or(&[][..], Vec::as_slice);
                ensure!(
                    layers.len() == 1
                        && layers[0]["digest"] == model.digest.as_str()
                        && layers[0]["size"] == model.size,
                    "`{repo}:{TAG}` does not hold one layer {} of {} bytes: {manifest}",
                    model.digest,
                    model.size
                );
            }
            let head = r.request(
                "HEAD",
                &format!("/v2/{repo}/blobs/{}", model.digest),
                &[],
                &[],
            )?;
            ensure!(
                head.status == 200
                    && head.header("content-length") == Some(&*model.size.to_string()),
                "`HEAD` of the layer's blob in `{repo}` answered {} with {:?} bytes, expected {}",
                head.status,
                head.header("content-length"),
                model.size
            );
        }
        Server::S3(s) => {
            let prefix = match client {
                Client::Ours | Client::Before => OURS_PREFIX,
                Client::Peer | Client::Floor => AWS_PREFIX,
            };
            let mut objects = vec![(format!("{prefix}{}", model.name), Some(model.size))];
            if prefix == OURS_PREFIX {
                objects.push((format!("{prefix}{S3_MANIFEST}"), None));
            }
            for (key, size) in objects {
                let url = s.presign("HEAD", BUCKET, &key, &[]);
                let head = s.request("HEAD", &url, &[], &[])?;
                ensure!(
                    head.status == 200,
                    "`HEAD s3://{BUCKET}/{key}` answered {}",
                    head.status
                );
                if let Some(size) = size {
                    ensure!(
                        head.header("content-length") == Some(&*size.to_string()),
                        "`s3://{BUCKET}/{key}` holds {:?} bytes, expected {size}",
                        head.header("content-length")
                    );
                }
            }
        }
    }
    Ok(())
}

fn render(
    setup: &Setup,
    model: &Model,
    cases: &[CaseRuns],
    versions: &Versions,
    load: &str,
) -> String {
    let mut md = format!(
        "Machine: {}; model: {} of pseudo-random bytes, one file, copied into the cache with \
         `ensure --copy` (skopeo's `dir:` layout and aws's directory hard-link the same bytes), \
         in the page cache; servers: {} on 127.0.0.1, a fresh process with empty storage for \
         every push; clients: {}; {} runs per client and case, interleaved (the order rotating \
         every round), each after `sync` and {} s idle; CPU: user + system seconds of the \
         client's processes and of the server during the push; load average (1 min) {load}; \
         date: {}\n\n",
        machine(),
        human_size(model.size),
        versions.servers,
        versions.clients,
        setup.args.runs,
        SETTLE.as_secs(),
        date().unwrap_or_else(|| "?".to_owned())
    );
    let mut summary = String::new();
    for case in cases {
        let median_of = |c: Client| {
            case.clients
                .iter()
                .position(|&x| x == c)
                .map(|i| median(&walls(&case.runs[i])))
        };
        let ours = median_of(Client::Ours).unwrap_or_default();
        let (what, server) = match case.case {
            Case::Registry => ("to a registry", "docker-registry"),
            Case::Bucket => ("to a bucket", "s3s-fs"),
        };
        let _ = writeln!(
            md,
            "| push of {} {what} | median | min | MB/s (median) | ours / this | goal | met? | \
             CPU s: client / {server} (median) |\n|---|---:|---:|---:|---:|---|---|---:|",
            human_size(model.size)
        );
        for (i, &client) in case.clients.iter().enumerate() {
            let runs = &case.runs[i];
            let m = median(&walls(runs));
            let ratio = ours.as_secs_f64() / m.as_secs_f64();
            let (ratio, goal) = match client {
                Client::Peer => (Some(ratio), Some(Client::goal(case.case))),
                Client::Before | Client::Floor => (Some(ratio), None),
                Client::Ours => (None, None),
            };
            let met = match (ratio, goal) {
                (Some(r), Some(g)) if r <= g => "yes",
                (Some(_), Some(_)) => "**no**",
                _ => "—",
            };
            let _ = writeln!(
                md,
                "| {} | {:.2} s | {:.2} s | {:.0} | {} | {} | {met} | {:.1} / {:.1} |",
                client.label(case.case),
                m.as_secs_f64(),
                min(&walls(runs)).as_secs_f64(),
                mbps(model.size, m),
                ratio.map_or_else(|| "—".to_owned(), |r| format!("{r:.2}")),
                goal.map_or_else(|| "—".to_owned(), |g| format!("ours / this ≤ {g:.1}")),
                median(&runs.iter().map(|r| r.client_cpu).collect::<Vec<_>>()).as_secs_f64(),
                median(&runs.iter().map(|r| r.server_cpu).collect::<Vec<_>>()).as_secs_f64(),
            );
        }
        md.push('\n');
        if let Some(m) = median_of(Client::Peer) {
            let r = ours.as_secs_f64() / m.as_secs_f64();
            let goal = Client::goal(case.case);
            let _ = writeln!(
                summary,
                "{:?}: ratio ours / {}: **{r:.2}** (goal ≤ {goal:.1}: {}).",
                case.case,
                Client::peer_name(case.case),
                if r <= goal { "met" } else { "**not met**" }
            );
        }
    }
    md.push_str(&summary);
    md
}

/// User and system time of this process, of its children waited for (the clients, and the
/// servers stopped so far), and of the servers still running, in clock ticks.
fn ours_ticks() -> Option<u64> {
    let own = ProcStat::read("self")?;
    Some(own.ticks.iter().sum::<u64>() + child_ticks(REGISTRY)? + child_ticks(S3S_FS)?)
}

fn walls(runs: &[Run]) -> Vec<Duration> {
    runs.iter().map(|r| r.wall).collect()
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::MetadataExt as _;

    use super::*;

    #[test]
    fn the_dir_layout_names_blobs_by_digest_and_links_the_file() -> anyhow::Result<()> {
        let tmp = tempfile::tempdir()?;
        let file = tmp.path().join("m.bin");
        fs::write(&file, b"model bytes")?;
        let digest = Digest::sha256_of(b"model bytes").to_string();
        let dir = tmp.path().join("dir");
        write_dir_layout(&dir, &file, "m.bin", &digest, 11)?;
        let manifest: Value = serde_json::from_slice(&fs::read(dir.join("manifest.json"))?)?;
        assert_eq!(manifest["layers"][0]["digest"], digest.as_str());
        let config = manifest["config"]["digest"]
            .as_str()
            .and_then(|d| d.strip_prefix("sha256:"))
            .context("a config digest")?;
        let config_bytes = fs::read(dir.join(config))?;
        assert_eq!(
            Digest::sha256_of(&config_bytes).to_string(),
            format!("sha256:{config}")
        );
        let layer = dir.join(digest.trim_start_matches("sha256:"));
        assert_eq!(fs::metadata(&layer)?.ino(), fs::metadata(&file)?.ino());
        assert_eq!(
            fs::read_to_string(dir.join("version"))?,
            "Directory Transport Version: 1.1\n"
        );
        Ok(())
    }
}
