//! The Kubernetes examples of `docs/k8s/`, checked: every file parses as YAML, every document is
//! a Kubernetes object whose references (Secrets and their keys, volumes) resolve within the
//! examples, and the containers of the seed Job, of the pre-pull `DaemonSet` and of the engine's
//! init container run, with the binary under test, against servers on 127.0.0.1.
//!
//! How a container of the examples runs here:
//!
//! - its `command` and `args` as written; `model-provisioner` is the binary under test (on `PATH`
//!   too, for a shell script), `/bin/sh` is this machine's;
//! - its environment is its `env` and nothing else (plus `HOME`, `PATH`, and no AWS instance
//!   metadata), a `secretKeyRef` read from `secrets.yaml`;
//! - the cluster's hosts become the local servers': `registry.internal` the registry (which
//!   requires the user and password of a docker `config.json`), `http://minio.internal:9000`
//!   the S3 server; in every argument, value and Secret;
//! - the Secrets' placeholder credentials become the local servers': the S3 server's keys, and
//!   in the docker config's `auth` the registry's user and password;
//! - the Hub is the fixture on nginx: `HF_ENDPOINT` is added, where a cluster uses the default;
//! - each volume is a local directory, every `mountPath` in values and arguments replaced by
//!   it: a `hostPath` is one directory per node (so the pods of one node share it), an
//!   `emptyDir` and a `secret` or `configMap` volume (its items written as files) one per pod.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use test_support::{HfRepoBuilder, HubNginx, Registry, S3Server, fake_gguf};
use yaml_rust2::{Yaml, YamlLoader};

use super::{LIMIT, assert_sent_once, origin_sent_whole};
use crate::fixture::{BIN, TestResult, assert_code, start, str_field};

/// The examples.
fn k8s_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/k8s")
}

/// The cluster's registry and bucket store, as the examples name them.
const REGISTRY_HOST: &str = "registry.internal";
const MINIO_ENDPOINT: &str = "http://minio.internal:9000";
/// The bucket the examples' bucket mirror is in.
const BUCKET: &str = "models";
/// The local registry's account, standing in for the placeholder of `secrets.yaml`.
const REGISTRY_USER: &str = "robot";
const REGISTRY_PASSWORD: &str = "fleet-robot-password";

/// Every document of every example, by file name.
fn documents() -> TestResult<BTreeMap<String, Vec<Yaml>>> {
    let mut docs = BTreeMap::new();
    for entry in fs::read_dir(k8s_dir())? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "yaml") {
            let text = fs::read_to_string(&path)?;
            let parsed =
                YamlLoader::load_from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
            let name = path
                .file_name()
                .ok_or("a file name")?
                .to_string_lossy()
                .into_owned();
            docs.insert(name, parsed);
        }
    }
    assert!(
        docs.len() >= 4,
        "expected the secrets, the seed Job, the engine and the DaemonSet in docs/k8s: {:?}",
        docs.keys()
    );
    Ok(docs)
}

/// A string field, or a panic naming it.
fn text<'a>(y: &'a Yaml, what: &str) -> &'a str {
    y.as_str()
        .unwrap_or_else(|| panic!("{what} is not a string: {y:?}"))
}

/// A list of strings (`command`, `args`), empty when absent.
fn strings(y: &Yaml, what: &str) -> Vec<String> {
    y.as_vec()
        .map(|v| v.iter().map(|s| text(s, what).to_owned()).collect())
        .unwrap_or_default()
}

/// A list, empty when absent.
fn list(y: &Yaml) -> &[Yaml] {
    y.as_vec().map_or(&[], Vec::as_slice)
}

/// Where an environment variable's value comes from.
#[derive(Debug)]
enum EnvValue {
    Value(String),
    Secret {
        name: String,
        key: String,
        optional: bool,
    },
}

/// A container of a pod.
#[derive(Debug)]
struct Container {
    name: String,
    image: String,
    command: Vec<String>,
    env: Vec<(String, EnvValue)>,
    /// (volume, mountPath).
    mounts: Vec<(String, String)>,
}

/// A volume of a pod.
#[derive(Debug)]
enum Volume {
    HostPath(String),
    EmptyDir,
    /// The Secret (or `ConfigMap`), and (key, file name) per item.
    Secret(String, Vec<(String, String)>),
}

/// A workload's pod template.
#[derive(Debug)]
struct Pod {
    kind: String,
    init: Vec<Container>,
    containers: Vec<Container>,
    volumes: BTreeMap<String, Volume>,
}

fn container(y: &Yaml) -> Container {
    let name = text(&y["name"], "a container's name").to_owned();
    let mut command = strings(&y["command"], "command");
    command.extend(strings(&y["args"], "args"));
    let env = list(&y["env"])
        .iter()
        .map(|e| {
            let var = text(&e["name"], "an env name").to_owned();
            let value = if let Some(v) = e["value"].as_str() {
                EnvValue::Value(v.to_owned())
            } else {
                let r = &e["valueFrom"]["secretKeyRef"];
                EnvValue::Secret {
                    name: text(&r["name"], "a secretKeyRef's name").to_owned(),
                    key: text(&r["key"], "a secretKeyRef's key").to_owned(),
                    optional: r["optional"].as_bool().unwrap_or(false),
                }
            };
            (var, value)
        })
        .collect();
    let mounts = list(&y["volumeMounts"])
        .iter()
        .map(|m| {
            (
                text(&m["name"], "a mount's name").to_owned(),
                text(&m["mountPath"], "a mountPath").to_owned(),
            )
        })
        .collect();
    Container {
        image: text(&y["image"], &format!("the image of {name}")).to_owned(),
        name,
        command,
        env,
        mounts,
    }
}

/// The pod template of a `Job`, `Deployment` or `DaemonSet`.
fn pod(doc: &Yaml) -> Pod {
    let spec = &doc["spec"]["template"]["spec"];
    let volumes = list(&spec["volumes"])
        .iter()
        .map(|v| {
            let name = text(&v["name"], "a volume's name").to_owned();
            let volume = if let Some(p) = v["hostPath"]["path"].as_str() {
                Volume::HostPath(p.to_owned())
            } else if !v["emptyDir"].is_badvalue() {
                Volume::EmptyDir
            } else if !v["configMap"].is_badvalue() {
                let c = &v["configMap"];
                Volume::Secret(
                    text(&c["name"], "a configMap volume's name").to_owned(),
                    list(&c["items"])
                        .iter()
                        .map(|i| {
                            (
                                text(&i["key"], "an item's key").to_owned(),
                                text(&i["path"], "an item's path").to_owned(),
                            )
                        })
                        .collect(),
                )
            } else {
                let s = &v["secret"];
                Volume::Secret(
                    text(&s["secretName"], "a secret volume's secretName").to_owned(),
                    list(&s["items"])
                        .iter()
                        .map(|i| {
                            (
                                text(&i["key"], "an item's key").to_owned(),
                                text(&i["path"], "an item's path").to_owned(),
                            )
                        })
                        .collect(),
                )
            };
            (name, volume)
        })
        .collect();
    Pod {
        kind: text(&doc["kind"], "kind").to_owned(),
        init: list(&spec["initContainers"])
            .iter()
            .map(container)
            .collect(),
        containers: list(&spec["containers"]).iter().map(container).collect(),
        volumes,
    }
}

/// The Secrets and `ConfigMap`s of the examples: (name, key) → value, from a Secret's
/// `stringData` and a `ConfigMap`'s `data`.
fn secrets(docs: &BTreeMap<String, Vec<Yaml>>) -> BTreeMap<(String, String), String> {
    let mut out = BTreeMap::new();
    for doc in docs.values().flatten() {
        let field = match doc["kind"].as_str() {
            Some("Secret") => "stringData",
            Some("ConfigMap") => "data",
            _ => continue,
        };
        {
            let name = text(&doc["metadata"]["name"], "a Secret's name");
            if let Some(data) = doc[field].as_hash() {
                for (k, v) in data {
                    out.insert(
                        (name.to_owned(), text(k, "a key").to_owned()),
                        text(v, "a Secret's value").to_owned(),
                    );
                }
            }
        }
    }
    out
}

/// The one workload of `kind` in `file`.
fn workload(docs: &BTreeMap<String, Vec<Yaml>>, file: &str, kind: &str) -> Pod {
    let doc = docs[file]
        .iter()
        .find(|d| d["kind"].as_str() == Some(kind))
        .unwrap_or_else(|| panic!("no {kind} in {file}"));
    pod(doc)
}

#[test]
fn the_kubernetes_examples_are_objects_whose_references_resolve() -> TestResult {
    let docs = documents()?;
    let secrets = secrets(&docs);
    let mut workloads = 0;
    for (file, parsed) in &docs {
        assert!(!parsed.is_empty(), "{file} holds no document");
        for doc in parsed {
            for field in ["apiVersion", "kind"] {
                assert!(doc[field].as_str().is_some(), "{file}: no {field}: {doc:?}");
            }
            assert!(
                doc["metadata"]["name"].as_str().is_some(),
                "{file}: no metadata.name"
            );
            if !matches!(
                doc["kind"].as_str(),
                Some("Job" | "Deployment" | "DaemonSet")
            ) {
                continue;
            }
            workloads += 1;
            let pod = pod(doc);
            assert!(!pod.containers.is_empty(), "{file}: no container");
            // What the tests run names its command (a container that keeps a pod, such as
            // `pause`, may run its image's).
            for c in &pod.init {
                assert!(!c.command.is_empty(), "{file}: {} runs nothing", c.name);
            }
            for c in pod.init.iter().chain(&pod.containers) {
                // Images come from the cluster's own registry.
                assert!(
                    c.image.starts_with(&format!("{REGISTRY_HOST}/")),
                    "{file}: {}: image {}",
                    c.name,
                    c.image
                );
                for (volume, _) in &c.mounts {
                    assert!(
                        pod.volumes.contains_key(volume),
                        "{file}: {} mounts the undeclared volume {volume}",
                        c.name
                    );
                }
                for (var, value) in &c.env {
                    if let EnvValue::Secret { name, key, .. } = value {
                        assert!(
                            secrets.contains_key(&(name.clone(), key.clone())),
                            "{file}: {}: {var} reads {name}/{key}, which secrets.yaml lacks",
                            c.name
                        );
                    }
                }
            }
            for volume in pod.volumes.values() {
                if let Volume::Secret(name, items) = volume {
                    for (key, _) in items {
                        assert!(
                            secrets.contains_key(&(name.clone(), key.clone())),
                            "{file}: a volume reads {name}/{key}, which no Secret or ConfigMap has"
                        );
                    }
                }
            }
        }
    }
    assert!(workloads >= 3, "{workloads} workloads in docs/k8s");
    Ok(())
}

/// The local servers the examples' commands run against, and where their pods live.
struct Cluster {
    hub: HubNginx,
    registry: Registry,
    s3: S3Server,
    secrets: BTreeMap<(String, String), String>,
    root: tempfile::TempDir,
    /// Holds `model-provisioner`, a link to the binary under test.
    bin_dir: PathBuf,
}

impl Cluster {
    /// `s` with the cluster's hosts replaced by the local servers'.
    fn localise(&self, s: &str) -> String {
        s.replace(MINIO_ENDPOINT, &self.s3.endpoint())
            .replace(REGISTRY_HOST, &self.registry.host())
    }

    /// The value of Secret `name`'s `key`, for this machine.
    fn secret(&self, name: &str, key: &str) -> Option<String> {
        let value = self.secrets.get(&(name.to_owned(), key.to_owned()))?;
        Some(match key {
            "AWS_ACCESS_KEY_ID" => self.s3.access_key().to_owned(),
            "AWS_SECRET_ACCESS_KEY" => self.s3.secret_key().to_owned(),
            ".dockerconfigjson" => {
                let mut config: serde_json::Value = serde_json::from_str(value)
                    .unwrap_or_else(|e| panic!("{name}/{key} is not JSON: {e}"));
                let auths = config["auths"]
                    .as_object_mut()
                    .unwrap_or_else(|| panic!("{name}/{key} has no `auths`"));
                assert!(
                    auths.contains_key(REGISTRY_HOST),
                    "{name}/{key} has no credentials for {REGISTRY_HOST}"
                );
                let local: serde_json::Map<String, serde_json::Value> = auths
                    .iter()
                    .map(|(host, _)| {
                        let auth =
                            base64(format!("{REGISTRY_USER}:{REGISTRY_PASSWORD}").as_bytes());
                        (self.localise(host), serde_json::json!({ "auth": auth }))
                    })
                    .collect();
                config["auths"] = serde_json::Value::Object(local);
                config.to_string()
            }
            _ => self.localise(value),
        })
    }

    /// The directory a node's `hostPath` volumes live under.
    fn node(&self, node: &str) -> PathBuf {
        self.root.path().join(node)
    }

    /// Runs every init container of `pod` on `node`, in order, then (with `containers`) every
    /// container; each must succeed. Returns the pod's directory.
    fn run_pod(
        &self,
        pod: &Pod,
        node: &str,
        pod_name: &str,
        containers: bool,
    ) -> TestResult<PathBuf> {
        let pod_dir = self.node(node).join("pods").join(pod_name);
        let mut dirs: BTreeMap<String, PathBuf> = BTreeMap::new();
        for (name, volume) in &pod.volumes {
            let dir = match volume {
                Volume::HostPath(p) => self.node(node).join("host").join(p.trim_start_matches('/')),
                Volume::EmptyDir | Volume::Secret(..) => pod_dir.join("volumes").join(name),
            };
            fs::create_dir_all(&dir)?;
            if let Volume::Secret(secret, items) = volume {
                for (key, file) in items {
                    let value = self
                        .secret(secret, key)
                        .ok_or_else(|| format!("no Secret {secret}/{key}"))?;
                    fs::write(dir.join(file), value)?;
                }
            }
            dirs.insert(name.clone(), dir);
        }
        let mut run = pod.init.iter().collect::<Vec<_>>();
        if containers {
            run.extend(&pod.containers);
        }
        for c in run {
            let out = self.run_container(c, &pod_dir, &dirs);
            assert!(
                out.status.success(),
                "{} {}/{} failed ({}):\n--- stdout\n{}--- stderr\n{}",
                pod.kind,
                pod_name,
                c.name,
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(pod_dir)
    }

    fn run_container(
        &self,
        c: &Container,
        pod_dir: &Path,
        dirs: &BTreeMap<String, PathBuf>,
    ) -> Output {
        // Longest mount paths first, so that no shorter one replaces part of a longer one.
        let mut mounts: Vec<(&str, &Path)> = c
            .mounts
            .iter()
            .map(|(volume, path)| (path.as_str(), dirs[volume].as_path()))
            .collect();
        mounts.sort_by_key(|(path, _)| std::cmp::Reverse(path.len()));
        let local = |s: &str| {
            mounts.iter().fold(self.localise(s), |s, (path, dir)| {
                s.replace(path, &dir.display().to_string())
            })
        };
        let program = match c.command[0].as_str() {
            "model-provisioner" => PathBuf::from(BIN),
            other => PathBuf::from(other),
        };
        let mut cmd = Command::new(program);
        cmd.args(c.command[1..].iter().map(|a| local(a)))
            .env_clear()
            .env("HOME", pod_dir.join("home"))
            .env("PATH", format!("{}:/usr/bin:/bin", self.bin_dir.display()))
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("HF_ENDPOINT", self.hub.endpoint())
            .current_dir(self.root.path());
        for (var, value) in &c.env {
            match value {
                EnvValue::Value(v) => {
                    cmd.env(var, local(v));
                }
                EnvValue::Secret {
                    name,
                    key,
                    optional,
                } => match self.secret(name, key) {
                    Some(v) => {
                        cmd.env(var, v);
                    }
                    None => assert!(*optional, "{}: no Secret {name}/{key}", c.name),
                },
            }
        }
        start(&mut cmd).finish_within(LIMIT)
    }
}

/// `bytes` in standard base64, padded.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i)) as usize & 63]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The `hf:` reference the seed Job fetches, split into the repository and the file.
fn seeded_reference(seed: &Pod) -> (String, String, String) {
    let reference = seed
        .init
        .iter()
        .flat_map(|c| &c.command)
        .find(|a| a.starts_with("hf:"))
        .expect("the seed Job fetches an `hf:` reference")
        .clone();
    let path = reference.trim_start_matches("hf:");
    let mut parts = path.splitn(3, '/');
    let (org, name, file) = (
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
        parts.next().expect("the reference names one file"),
    );
    (reference.clone(), format!("{org}/{name}"), file.to_owned())
}

/// `show --json` of `reference` in the cache at `cache`.
fn entry(cache: &Path, reference: &str) -> TestResult<serde_json::Value> {
    let mut cmd = Command::new(BIN);
    cmd.env_clear()
        .arg("--cache-dir")
        .arg(cache)
        .args(["show", reference, "--json"]);
    let out = start(&mut cmd).finish_within(LIMIT);
    assert_code(&out, 0);
    Ok(serde_json::from_slice(&out.stdout)?)
}

/// The model the engine's init container handed over, read through the path it wrote.
fn handed_over(pod_dir: &Path) -> TestResult<Vec<u8>> {
    let path = fs::read_to_string(pod_dir.join("volumes/handoff/path"))?;
    Ok(fs::read(path.trim())?)
}

#[test]
fn the_seed_job_then_the_prepull_daemonset_and_the_engines_init_container_run_against_local_servers()
-> TestResult {
    let docs = documents()?;
    let seed = workload(&docs, "seed-job.yaml", "Job");
    let prepull = workload(&docs, "prepull-daemonset.yaml", "DaemonSet");
    let engine = workload(&docs, "llama-server.yaml", "Deployment");
    let (reference, repo, file) = seeded_reference(&seed);

    let gguf = fake_gguf(&repo, 1 << 20);
    let fixture = HfRepoBuilder::new(&repo)
        .file(&file, gguf.clone())
        .file("README.md", b"# a model for the examples\n".to_vec());
    let hub = HubNginx::start_with_files(&[(repo.as_str(), fixture.files())]);
    let registry = Registry::start_with_htpasswd(REGISTRY_USER, REGISTRY_PASSWORD)?;
    let s3 = S3Server::start()?;
    s3.create_bucket(BUCKET)?;
    let root = tempfile::tempdir()?;
    let bin_dir = root.path().join("bin");
    fs::create_dir_all(&bin_dir)?;
    std::os::unix::fs::symlink(BIN, bin_dir.join("model-provisioner"))?;
    let cluster = Cluster {
        hub,
        registry,
        s3,
        secrets: secrets(&docs),
        root,
        bin_dir,
    };

    // The seed Job: fetched from the origin, then mirrored to the registry and the bucket.
    cluster.run_pod(&seed, "seed-node", "model-seed", true)?;
    let served = [cluster.hub.repo(&repo).file(&file).clone()];
    let log = origin_sent_whole(&cluster.hub, &repo, &served);
    let seen_by_seed = log.len();

    // Node A: the DaemonSet pulls through the bucket; the engine's init container then finds
    // the model present and hands its path over.
    cluster.run_pod(&prepull, "node-a", "model-prepull", false)?;
    let pod_a = cluster.run_pod(&engine, "node-a", "llama-server-a", false)?;
    let said = fs::read_to_string(pod_a.join("volumes/handoff/ensure.txt"))?;
    assert!(said.contains("already present"), "{said}");
    assert!(handed_over(&pod_a)? == gguf, "node A's model differs");
    let cache_a = cluster
        .node("node-a")
        .join("host/var/lib/model-provisioner");
    let a = entry(&cache_a, &reference)?;
    assert_eq!(str_field(&a, "id"), reference);
    assert_eq!(a["provenance"]["fetcher"], "mirror+s3", "{a:#}");

    // Node B: no pre-pull; the engine's init container pulls through the registry.
    let pod_b = cluster.run_pod(&engine, "node-b", "llama-server-b", false)?;
    assert!(handed_over(&pod_b)? == gguf, "node B's model differs");
    let cache_b = cluster
        .node("node-b")
        .join("host/var/lib/model-provisioner");
    let b = entry(&cache_b, &reference)?;
    assert_eq!(str_field(&b, "id"), reference);
    assert_eq!(b["provenance"]["fetcher"], "mirror+oci", "{b:#}");
    let origin = b["provenance"]["origin"].as_str().unwrap_or_default();
    assert!(
        origin.starts_with(&format!("oci://{}/hf/", cluster.registry.host())),
        "{b:#}"
    );

    // The origin served the model once, to the seed; the nodes did not ask it.
    let log = cluster.hub.requests();
    assert_sent_once(&log, cluster.hub.repo(&repo), &served);
    assert!(
        log[seen_by_seed..].is_empty(),
        "nodes asked the origin:\n{}",
        super::describe(&log[seen_by_seed..])
    );
    Ok(())
}

#[test]
fn base64_encodes_as_the_docker_config_expects() {
    assert_eq!(base64(b"robot:replace-me"), "cm9ib3Q6cmVwbGFjZS1tZQ==");
    assert_eq!(base64(b"a"), "YQ==");
    assert_eq!(base64(b"ab"), "YWI=");
    assert_eq!(base64(b"abc"), "YWJj");
}
