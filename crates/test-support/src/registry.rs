//! Debian's `docker-registry` (the CNCF distribution registry 2.8.2) on loopback, and a small
//! client to push blobs, manifests and whole artifacts into it.
//!
//! Each [`Registry`] owns a temporary directory:
//!
//! ```text
//! <tmp>/
//! ├── config.yml         what `docker-registry serve` reads
//! ├── htpasswd           bcrypt credentials (htpasswd registries only)
//! ├── registry.log       its standard output and error
//! └── data/              storage.filesystem.rootdirectory
//!     └── docker/registry/v2/blobs/sha256/<2 hex>/<hex>/data    a blob's bytes
//! ```
//!
//! Gotchas of this registry the client works around: a body on `POST …/uploads/?digest=` is
//! ignored (so it posts, then `PUT`s the body to the `Location` it gets); a manifest `GET`
//! whose `Accept` lacks the manifest's type answers 404 ([`MANIFEST_ACCEPT`] lists them all).

use std::fs;
use std::io::{self, Read, Seek};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

use crate::process::{self, ServerProcess};
use crate::wire::{self, Body, Reply};

/// The media type of an OCI image manifest.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// The media type of an OCI image index.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// The media type of a Docker schema 2 manifest (what Ollama's registry serves).
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// The media type of a Docker manifest list.
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// The OCI empty descriptor's media type (its content is `{}`).
pub const OCI_EMPTY: &str = "application/vnd.oci.empty.v1+json";
/// The media type of a Docker image config.
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
/// An `Accept` value naming every manifest type, for manifest `GET`s.
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json";

/// This machine's platform as an image index names it, `(os, architecture)`: what a pull here
/// picks from an index.
pub fn this_platform() -> (&'static str, &'static str) {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    };
    (std::env::consts::OS, arch)
}

/// One entry of an image index for [`Registry::push_index`]: a manifest's digest, size and
/// media type, and its platform `(os, architecture)` if any.
pub type IndexEntry<'a> = (&'a str, u64, &'a str, Option<(&'a str, &'a str)>);

/// How long the registry may take to answer `GET /v2/` after it starts.
const START_LIMIT: Duration = Duration::from_secs(20);

/// The registry binary, or an error that says how to install it.
fn registry_binary() -> io::Result<PathBuf> {
    [
        PathBuf::from("/usr/bin/docker-registry"),
        PathBuf::from("/usr/local/bin/docker-registry"),
    ]
    .into_iter()
    .find(|p| p.exists())
    .or_else(|| crate::process::find_in_path("docker-registry"))
    .ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::NotFound,
            "docker-registry is not installed: the OCI tests run it on loopback\nhint: install docker-registry (scripts/install-test-deps.sh)",
        )
    })
}

/// `sha256:<hex>` of `bytes`.
fn digest_of(bytes: &[u8]) -> String {
    format!("sha256:{}", crate::sha256_hex(bytes))
}

/// An error for an answer the registry should not have given.
fn unexpected(what: &str, reply: &Reply) -> io::Error {
    io::Error::other(format!(
        "{what}: the registry answered {}: {}",
        reply.status,
        String::from_utf8_lossy(&reply.body)
    ))
}

/// A running `docker-registry serve` on `127.0.0.1:<free port>`, storing in a temporary
/// directory; killed, and the directory removed, on drop.
#[derive(Debug)]
pub struct Registry {
    /// Killed on drop, before the directory goes.
    _process: ServerProcess,
    port: u16,
    dir: tempfile::TempDir,
    credentials: Option<(String, String)>,
}

/// An answer from the registry, read whole.
pub type RegistryResponse = Reply;

/// What the registry is configured with beyond storage.
enum Mode<'a> {
    Plain,
    Htpasswd(&'a str, &'a str),
    PullThrough(&'a str),
}

impl Registry {
    /// Starts a registry without auth, deletes enabled.
    pub fn start() -> io::Result<Registry> {
        Self::launch(&Mode::Plain)
    }

    /// Starts a registry that requires Basic credentials `user`:`password` (a bcrypt htpasswd
    /// file). Its push and get methods send them.
    pub fn start_with_htpasswd(user: &str, password: &str) -> io::Result<Registry> {
        Self::launch(&Mode::Htpasswd(user, password))
    }

    /// Starts a pull-through mirror of the registry at `remote_url` (`http://host:port`). It
    /// answers `Range` with `200` and the whole body for a blob it has not cached yet.
    pub fn start_pull_through(remote_url: &str) -> io::Result<Registry> {
        Self::launch(&Mode::PullThrough(remote_url))
    }

    fn launch(mode: &Mode<'_>) -> io::Result<Registry> {
        let binary = registry_binary()?;
        let dir = tempfile::tempdir()?;
        let data = dir.path().join("data");
        fs::create_dir_all(&data)?;
        let mut extra = String::new();
        let mut credentials = None;
        match mode {
            Mode::Plain => {}
            Mode::Htpasswd(user, password) => {
                let file = dir.path().join("htpasswd");
                write_htpasswd(&file, user, password)?;
                extra = format!(
                    "auth:\n  htpasswd:\n    realm: test-registry\n    path: {}\n",
                    file.display()
                );
                credentials = Some(((*user).to_owned(), (*password).to_owned()));
            }
            Mode::PullThrough(remote) => {
                extra = format!("proxy:\n  remoteurl: {remote}\n");
            }
        }
        let spawn = |port: u16| {
            let config = format!(
                "version: 0.1\n\
                 log:\n  level: warn\n  accesslog:\n    disabled: false\n\
                 storage:\n  filesystem:\n    rootdirectory: {data}\n  delete:\n    enabled: true\n  \
                 maintenance:\n    uploadpurging:\n      enabled: false\n\
                 http:\n  addr: 127.0.0.1:{port}\n  secret: test-registry-secret\n\
                 health:\n  storagedriver:\n    enabled: false\n\
                 {extra}",
                data = data.display()
            );
            let config_path = dir.path().join("config.yml");
            fs::write(&config_path, config)?;
            let log = fs::File::create(dir.path().join("registry.log"))?;
            Command::new(&binary)
                .arg("serve")
                .arg(&config_path)
                .stdin(Stdio::null())
                .stdout(log.try_clone()?)
                .stderr(log)
                .spawn()
                .map_err(|e| {
                    io::Error::new(e.kind(), format!("starting {}: {e}", binary.display()))
                })
        };
        let (process, port) = process::start_on_free_port(3, spawn, |child, port| {
            wait_ready(child, port, dir.path())
        })?;
        Ok(Registry {
            _process: process,
            port,
            dir,
            credentials,
        })
    }

    /// `127.0.0.1:<port>`.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The credentials this registry requires, if any.
    pub fn credentials(&self) -> Option<(&str, &str)> {
        self.credentials
            .as_ref()
            .map(|(u, p)| (u.as_str(), p.as_str()))
    }

    /// The storage root (`storage.filesystem.rootdirectory`).
    pub fn storage_root(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The registry's own output: warnings, errors, and a line per request served.
    pub fn log_text(&self) -> String {
        fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }

    /// Where the registry keeps the bytes of blob `sha256:<digest_hex>` (the `sha256:` prefix
    /// is accepted too), for a test that tampers with them.
    pub fn blob_path(&self, digest_hex: &str) -> PathBuf {
        let hex = digest_hex.strip_prefix("sha256:").unwrap_or(digest_hex);
        self.storage_root()
            .join("docker/registry/v2/blobs/sha256")
            .join(&hex[..2.min(hex.len())])
            .join(hex)
            .join("data")
    }

    /// Sends one request with this registry's credentials (if any) and reads the whole answer.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> io::Result<RegistryResponse> {
        let body = if body.is_empty() && matches!(method, "GET" | "HEAD" | "DELETE") {
            Body::None
        } else {
            Body::Bytes(body)
        };
        self.send(method, path, headers, body)
    }

    /// Sends one request with the credentials, if any.
    fn send(
        &self,
        method: &str,
        target: &str,
        headers: &[(&str, &str)],
        body: Body<'_>,
    ) -> io::Result<Reply> {
        let auth = self.credentials.as_ref().map(|(u, p)| wire::basic(u, p));
        let mut all: Vec<(&str, &str)> = headers.to_vec();
        if let Some(auth) = &auth {
            all.push(("Authorization", auth));
        }
        wire::exchange(&self.host(), method, target, &all, body)
    }

    /// `GET /v2/<repo>/manifests/<reference>` accepting every manifest type.
    pub fn get_manifest(&self, repo: &str, reference: &str) -> io::Result<RegistryResponse> {
        self.request(
            "GET",
            &format!("/v2/{repo}/manifests/{reference}"),
            &[("Accept", MANIFEST_ACCEPT)],
            &[],
        )
    }

    /// The bytes of blob `digest` (`sha256:<hex>`) in `repo`; an error unless the registry
    /// answers 200.
    pub fn get_blob(&self, repo: &str, digest: &str) -> io::Result<Vec<u8>> {
        let reply = self.send(
            "GET",
            &format!("/v2/{repo}/blobs/{digest}"),
            &[],
            Body::None,
        )?;
        if reply.status != 200 {
            return Err(unexpected(&format!("GET blob {digest}"), &reply));
        }
        Ok(reply.body)
    }

    /// Whether `repo` has blob `digest`.
    pub fn has_blob(&self, repo: &str, digest: &str) -> io::Result<bool> {
        let reply = self.send(
            "HEAD",
            &format!("/v2/{repo}/blobs/{digest}"),
            &[],
            Body::None,
        )?;
        match reply.status {
            200 => Ok(true),
            404 => Ok(false),
            _ => Err(unexpected(&format!("HEAD blob {digest}"), &reply)),
        }
    }

    /// Pushes `bytes` as a blob of `repo` (unless it is there already); returns its digest,
    /// `sha256:<hex>`.
    pub fn push_blob(&self, repo: &str, bytes: &[u8]) -> io::Result<String> {
        let digest = digest_of(bytes);
        if !self.has_blob(repo, &digest)? {
            self.upload(repo, &digest, Body::Bytes(bytes))?;
        }
        Ok(digest)
    }

    /// Pushes the file at `path` as a blob of `repo`, never holding it in memory: one pass
    /// to hash it, one to send it. Returns its digest and size.
    pub fn push_blob_file(&self, repo: &str, path: &Path) -> io::Result<(String, u64)> {
        let named = |e: io::Error| io::Error::new(e.kind(), format!("{}: {e}", path.display()));
        let mut file = fs::File::open(path).map_err(named)?;
        let mut hasher = Sha256::new();
        let mut buf = vec![0; 1 << 20];
        let mut size = 0u64;
        loop {
            let n = file.read(&mut buf).map_err(named)?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            size += n as u64;
        }
        let digest = format!("sha256:{}", crate::hf_repo::hex(&hasher.finalize()));
        if !self.has_blob(repo, &digest)? {
            file.rewind().map_err(named)?;
            self.upload(repo, &digest, Body::Stream(&mut file, size))?;
        }
        Ok((digest, size))
    }

    /// A monolithic upload: `POST` a session, then `PUT` the body to its `Location`.
    fn upload(&self, repo: &str, digest: &str, body: Body<'_>) -> io::Result<()> {
        let started = self.send(
            "POST",
            &format!("/v2/{repo}/blobs/uploads/"),
            &[],
            Body::Bytes(&[]),
        )?;
        if started.status != 202 {
            return Err(unexpected(
                &format!("starting an upload to {repo}"),
                &started,
            ));
        }
        let location = started
            .headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("location"))
            .map(|(_, v)| v.clone())
            .ok_or_else(|| io::Error::other("the upload session has no Location"))?;
        // The Location is absolute (`http://127.0.0.1:<port>/v2/…`) or a path.
        let target = location
            .strip_prefix("http://")
            .and_then(|rest| rest.find('/').map(|i| rest[i..].to_owned()))
            .unwrap_or(location);
        let sep = if target.contains('?') { '&' } else { '?' };
        let put = self.send(
            "PUT",
            &format!("{target}{sep}digest={digest}"),
            &[("Content-Type", "application/octet-stream")],
            body,
        )?;
        if put.status != 201 {
            return Err(unexpected(&format!("uploading {digest} to {repo}"), &put));
        }
        Ok(())
    }

    /// Pushes a manifest of `media_type` as `repo`:`reference` (a tag or its digest); returns
    /// its digest.
    pub fn push_manifest(
        &self,
        repo: &str,
        reference: &str,
        media_type: &str,
        bytes: &[u8],
    ) -> io::Result<String> {
        let digest = digest_of(bytes);
        let reply = self.send(
            "PUT",
            &format!("/v2/{repo}/manifests/{reference}"),
            &[("Content-Type", media_type)],
            Body::Bytes(bytes),
        )?;
        if reply.status != 201 {
            return Err(unexpected(
                &format!("pushing manifest {repo}:{reference}"),
                &reply,
            ));
        }
        let said = reply
            .headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("docker-content-digest"))
            .map(|(_, v)| v.as_str());
        if said.is_some_and(|d| d != digest) {
            return Err(io::Error::other(format!(
                "the registry computed {said:?} for manifest {repo}:{reference}, expected {digest}"
            )));
        }
        Ok(digest)
    }

    /// Pushes an OCI image index as `repo`:`tag` listing `entries` (manifest digest, size,
    /// media type, and the platform `(os, architecture)` if any); returns its digest.
    pub fn push_index(
        &self,
        repo: &str,
        tag: &str,
        entries: &[IndexEntry<'_>],
    ) -> io::Result<String> {
        let manifests: Vec<Value> = entries
            .iter()
            .map(|(digest, size, media_type, platform)| {
                let mut entry = json!({
                    "mediaType": media_type,
                    "digest": digest,
                    "size": size,
                });
                if let Some((os, arch)) = platform {
                    entry["platform"] = json!({ "os": os, "architecture": arch });
                }
                entry
            })
            .collect();
        let index = json!({
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": manifests,
        });
        let bytes = serde_json::to_vec(&index).map_err(io::Error::other)?;
        self.push_manifest(repo, tag, OCI_INDEX, &bytes)
    }
}

/// Waits until the registry started as `child` answers `GET /v2/` on `port` (200, or 401
/// when auth is on); its output is in `dir`.
fn wait_ready(child: &mut Child, port: u16, dir: &Path) -> io::Result<()> {
    let authority = format!("127.0.0.1:{port}");
    let log = dir.join("registry.log");
    process::wait_ready(child, "docker-registry", port, &log, START_LIMIT, || {
        wire::exchange(&authority, "GET", "/v2/", &[], Body::None)
            .is_ok_and(|reply| matches!(reply.status, 200 | 401))
    })
}

/// Writes a bcrypt htpasswd file with one user, made by `htpasswd -Bbn`.
fn write_htpasswd(file: &Path, user: &str, password: &str) -> io::Result<()> {
    let out = Command::new("htpasswd")
        .args(["-Bbn", user, password])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| {
            io::Error::new(
                e.kind(),
                format!(
                    "running htpasswd: {e}\nhint: install apache2-utils (scripts/install-test-deps.sh)"
                ),
            )
        })?;
    if !out.status.success() {
        return Err(io::Error::other(format!(
            "htpasswd -Bbn failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    fs::write(file, &out.stdout)
        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", file.display())))
}

/// A descriptor: media type, digest and size, with annotations.
#[derive(Debug, Clone)]
struct Part {
    media_type: String,
    bytes: Vec<u8>,
    annotations: Vec<(String, String)>,
}

impl Part {
    fn descriptor(&self) -> Value {
        let mut d = json!({
            "mediaType": self.media_type,
            "digest": digest_of(&self.bytes),
            "size": self.bytes.len(),
        });
        if !self.annotations.is_empty() {
            d["annotations"] = annotations(&self.annotations);
        }
        d
    }
}

fn annotations(pairs: &[(String, String)]) -> Value {
    Value::Object(
        pairs
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect(),
    )
}

/// An image or artifact to push: a config, layers, and the manifest that lists them, as an
/// OCI image manifest or a Docker schema 2 manifest depending on its media type.
///
/// ```no_run
/// # use test_support::{Artifact, Registry, OCI_MANIFEST};
/// # fn main() -> std::io::Result<()> {
/// let registry = Registry::start()?;
/// let pushed = Artifact::new(OCI_MANIFEST)
///     .artifact_type("application/vnd.example.model")
///     .layer("application/octet-stream", b"weights", &[("org.opencontainers.image.title", "model.bin")])
///     .push(&registry, "models/tiny", "v1")?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Artifact {
    media_type: String,
    kind: Option<String>,
    config: Option<Part>,
    layers: Vec<Part>,
    annotations: Vec<(String, String)>,
}

/// What [`Artifact::push`] pushed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pushed {
    /// The manifest's digest, `sha256:<hex>`.
    pub manifest_digest: String,
    /// The manifest, byte for byte as pushed.
    pub manifest_bytes: Vec<u8>,
    /// The manifest's media type.
    pub media_type: String,
    /// The config blob's digest.
    pub config_digest: String,
    /// Each layer's digest, in order.
    pub layer_digests: Vec<String>,
}

impl Artifact {
    /// An artifact whose manifest is of `manifest_media_type` ([`OCI_MANIFEST`] or
    /// [`DOCKER_MANIFEST`]), with no layers yet and a default config: the OCI empty
    /// descriptor (`{}`) or an empty Docker image config.
    pub fn new(manifest_media_type: &str) -> Self {
        Artifact {
            media_type: manifest_media_type.to_owned(),
            kind: None,
            config: None,
            layers: Vec::new(),
            annotations: Vec::new(),
        }
    }

    /// Sets the manifest's `artifactType` (OCI manifests only).
    #[must_use]
    pub fn artifact_type(mut self, artifact_type: &str) -> Self {
        self.kind = Some(artifact_type.to_owned());
        self
    }

    /// Sets the config blob.
    #[must_use]
    pub fn config(mut self, media_type: &str, bytes: &[u8]) -> Self {
        self.config = Some(Part {
            media_type: media_type.to_owned(),
            bytes: bytes.to_vec(),
            annotations: Vec::new(),
        });
        self
    }

    /// Appends a layer with its annotations (e.g. `org.opencontainers.image.title`).
    #[must_use]
    pub fn layer(mut self, media_type: &str, bytes: &[u8], annotations: &[(&str, &str)]) -> Self {
        self.layers.push(Part {
            media_type: media_type.to_owned(),
            bytes: bytes.to_vec(),
            annotations: annotations
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        });
        self
    }

    /// Adds a manifest annotation.
    #[must_use]
    pub fn annotation(mut self, key: &str, value: &str) -> Self {
        self.annotations.push((key.to_owned(), value.to_owned()));
        self
    }

    fn config_part(&self) -> Part {
        self.config.clone().unwrap_or_else(|| {
            let media_type = if self.media_type == DOCKER_MANIFEST {
                DOCKER_CONFIG
            } else {
                OCI_EMPTY
            };
            Part {
                media_type: media_type.to_owned(),
                bytes: b"{}".to_vec(),
                annotations: Vec::new(),
            }
        })
    }

    /// The manifest's bytes, as [`Self::push`] would push them.
    pub fn manifest_bytes(&self) -> Vec<u8> {
        let mut manifest = json!({
            "schemaVersion": 2,
            "mediaType": self.media_type,
        });
        if let Some(t) = &self.kind {
            manifest["artifactType"] = json!(t);
        }
        manifest["config"] = self.config_part().descriptor();
        manifest["layers"] = Value::Array(self.layers.iter().map(Part::descriptor).collect());
        if !self.annotations.is_empty() {
            manifest["annotations"] = annotations(&self.annotations);
        }
        serde_json::to_vec_pretty(&manifest).expect("a JSON value serialises")
    }

    /// Pushes the config, the layers and the manifest as `repo`:`tag`.
    pub fn push(&self, registry: &Registry, repo: &str, tag: &str) -> io::Result<Pushed> {
        let config_digest = registry.push_blob(repo, &self.config_part().bytes)?;
        let layer_digests = self
            .layers
            .iter()
            .map(|l| registry.push_blob(repo, &l.bytes))
            .collect::<io::Result<Vec<_>>>()?;
        let manifest_bytes = self.manifest_bytes();
        let manifest_digest =
            registry.push_manifest(repo, tag, &self.media_type, &manifest_bytes)?;
        Ok(Pushed {
            manifest_digest,
            manifest_bytes,
            media_type: self.media_type.clone(),
            config_digest,
            layer_digests,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_oci_artifact_pushed_is_served_back_byte_for_byte() -> io::Result<()> {
        let registry = Registry::start()?;
        let weights = crate::random_bytes(300_000, 1);
        let pushed = Artifact::new(OCI_MANIFEST)
            .artifact_type("application/vnd.example.model.v1")
            .config(
                "application/vnd.example.config.v1+json",
                br#"{"format":"gguf"}"#,
            )
            .layer(
                "application/vnd.example.weights",
                &weights,
                &[("org.opencontainers.image.title", "model.gguf")],
            )
            .layer("text/plain", b"license", &[])
            .push(&registry, "models/tiny", "v1")?;
        assert_eq!(pushed.layer_digests.len(), 2);
        assert_eq!(pushed.layer_digests[0], digest_of(&weights));

        let manifest = registry.get_manifest("models/tiny", "v1")?;
        assert_eq!(manifest.status, 200);
        assert_eq!(manifest.body, pushed.manifest_bytes);
        assert_eq!(manifest.header("content-type"), Some(OCI_MANIFEST));
        assert_eq!(
            manifest.header("docker-content-digest"),
            Some(pushed.manifest_digest.as_str())
        );
        let json: Value = serde_json::from_slice(&manifest.body)?;
        assert_eq!(json["artifactType"], "application/vnd.example.model.v1");
        assert_eq!(
            json["layers"][0]["annotations"]["org.opencontainers.image.title"],
            "model.gguf"
        );
        let by_digest = registry.get_manifest("models/tiny", &pushed.manifest_digest)?;
        assert_eq!(by_digest.body, pushed.manifest_bytes);

        assert!(registry.get_blob("models/tiny", &pushed.layer_digests[0])? == weights);
        let ranged = registry.request(
            "GET",
            &format!("/v2/models/tiny/blobs/{}", pushed.layer_digests[0]),
            &[("Range", "bytes=10-19")],
            &[],
        )?;
        assert_eq!(ranged.status, 206);
        assert_eq!(ranged.body, weights[10..20]);
        assert_eq!(
            fs::read(registry.blob_path(&pushed.layer_digests[0]))?,
            weights
        );
        // Pushing again finds the blobs there.
        assert_eq!(
            registry.push_blob("models/tiny", &weights)?,
            pushed.layer_digests[0]
        );
        Ok(())
    }

    #[test]
    fn a_docker_manifest_and_an_index_are_served_with_their_types() -> io::Result<()> {
        let registry = Registry::start()?;
        let docker = Artifact::new(DOCKER_MANIFEST)
            .layer("application/vnd.ollama.image.model", b"gguf bytes", &[])
            .push(&registry, "library/tiny", "latest")?;
        let got = registry.get_manifest("library/tiny", "latest")?;
        assert_eq!(got.status, 200);
        assert_eq!(got.header("content-type"), Some(DOCKER_MANIFEST));
        let json: Value = serde_json::from_slice(&got.body)?;
        assert_eq!(json["config"]["mediaType"], DOCKER_CONFIG);

        let oci = Artifact::new(OCI_MANIFEST)
            .layer("application/octet-stream", b"arm bytes", &[])
            .push(&registry, "library/tiny", "arm64")?;
        let size = |p: &Pushed| p.manifest_bytes.len() as u64;
        let index = registry.push_index(
            "library/tiny",
            "multi",
            &[
                (
                    &docker.manifest_digest,
                    size(&docker),
                    DOCKER_MANIFEST,
                    Some(("linux", "amd64")),
                ),
                (
                    &oci.manifest_digest,
                    size(&oci),
                    OCI_MANIFEST,
                    Some(("linux", "arm64")),
                ),
            ],
        )?;
        let got = registry.get_manifest("library/tiny", "multi")?;
        assert_eq!(got.status, 200);
        assert_eq!(got.header("content-type"), Some(OCI_INDEX));
        assert_eq!(got.header("docker-content-digest"), Some(index.as_str()));
        let json: Value = serde_json::from_slice(&got.body)?;
        assert_eq!(json["manifests"][1]["platform"]["architecture"], "arm64");
        // Without the OCI type in `Accept`, this registry answers 404.
        let narrow = registry.request(
            "GET",
            "/v2/library/tiny/manifests/arm64",
            &[("Accept", DOCKER_MANIFEST)],
            &[],
        )?;
        assert_eq!(narrow.status, 404);
        Ok(())
    }

    #[test]
    fn a_file_is_pushed_as_a_blob_by_streaming() -> io::Result<()> {
        let registry = Registry::start()?;
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("big.bin");
        let bytes = crate::random_bytes(3 << 20, 5);
        fs::write(&path, &bytes)?;
        let (digest, size) = registry.push_blob_file("big/model", &path)?;
        assert_eq!(
            (digest.as_str(), size),
            (digest_of(&bytes).as_str(), 3 << 20)
        );
        assert_eq!(fs::read(registry.blob_path(&digest))?, bytes);
        Ok(())
    }

    #[test]
    fn an_htpasswd_registry_refuses_without_credentials_and_accepts_with_them() -> io::Result<()> {
        let registry = Registry::start_with_htpasswd("alice", "s3cret")?;
        let refused = wire::exchange(&registry.host(), "GET", "/v2/", &[], Body::None)?;
        assert_eq!(refused.status, 401);
        let wrong = wire::exchange(
            &registry.host(),
            "GET",
            "/v2/",
            &[("Authorization", &wire::basic("alice", "wrong"))],
            Body::None,
        )?;
        assert_eq!(wrong.status, 401);
        assert_eq!(registry.request("GET", "/v2/", &[], &[])?.status, 200);
        let pushed = Artifact::new(OCI_MANIFEST)
            .layer("application/octet-stream", b"private", &[])
            .push(&registry, "team/model", "v1")?;
        assert_eq!(
            registry.get_blob("team/model", &pushed.layer_digests[0])?,
            b"private"
        );
        Ok(())
    }

    #[test]
    fn a_pull_through_mirror_serves_what_its_remote_has() -> io::Result<()> {
        let remote = Registry::start()?;
        let pushed = Artifact::new(OCI_MANIFEST)
            .layer("application/octet-stream", b"mirrored bytes", &[])
            .push(&remote, "library/m", "v1")?;
        let mirror = Registry::start_pull_through(&remote.url())?;
        let got = mirror.get_manifest("library/m", "v1")?;
        assert_eq!(got.status, 200, "{}", mirror.log_text());
        assert_eq!(got.body, pushed.manifest_bytes);
        assert_eq!(
            mirror.get_blob("library/m", &pushed.layer_digests[0])?,
            b"mirrored bytes"
        );
        Ok(())
    }
}
