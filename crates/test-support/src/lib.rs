//! Servers the integration tests run against, all on 127.0.0.1 and stopped on drop.
//!
//! - [`Nginx`]: Debian's nginx serving a temporary directory, with `Range` on (`/files/`),
//!   off (`/norange/`), throttled (`/slow/`), and fixed error statuses (`/status/500`, `/503`, `/403`).
//!   Its access log records each request's range and the body bytes it sent.
//! - [`FaultServer`]: a tiny HTTP/1.1 server whose answers a test scripts: cut bodies, stalls,
//!   errors, lies; it can hold a body at a chosen byte until the test releases it ([`Hold`]),
//!   and logs what it served ([`Served`]).
//! - [`Olah`]: olah, a Hugging Face mirror, serving local git repos ([`HfRepo`], built with
//!   [`HfRepoBuilder`]) offline as Hugging Face model repos; [`Olah::hf`] runs the real `hf`
//!   CLI against it.
//! - [`ModelScopeNginx`]: nginx answering as ModelScope for repos given as file contents
//!   ([`MsRepoSpec`]): file listings, downloads by `FilePath`, login and private repos behind
//!   the session cookie (or the access token as that cookie); its access log is read as
//!   [`MsRequest`]s; [`modelscope_cli_path`] is ModelScope's own client, checked against it.
//! - [`LyingProxy`]: a proxy in front of a real server (olah) that corrupts one byte of
//!   chosen bodies while keeping their headers: a Hub whose bytes are not what it says.
//! - [`Registry`]: Debian's `docker-registry` (distribution 2.8.2) storing in a temporary
//!   directory, plain, behind htpasswd, or as a pull-through mirror; it pushes blobs,
//!   manifests, indexes and whole [`Artifact`]s.
//! - [`RegistryFront`]: a scriptable front for a [`Registry`]: Bearer tokens that run out
//!   after a set number of uses, blobs redirected to a storage host, held bodies, and logs.
//! - [`HoldProxy`]: a forwarding front for any plain-HTTP server on loopback (an [`S3Server`],
//!   say) that keeps the client's `Host`, holds bodies at a chosen byte, and logs each request
//!   ([`ProxiedHit`]).
//! - [`S3Server`]: `s3s-fs`, an S3 server enforcing `SigV4` over a temporary directory; objects
//!   go in as plain files ([`S3Server::put`], [`S3Server::put_file`]) or by a signed
//!   `PutObject` with a checksum ([`S3Server::put_signed`]).
//! - [`TlsFront`]: Debian's nginx as an HTTPS reverse proxy in front of any plain-HTTP server
//!   on loopback (an [`S3Server`], say), with a certificate from a CA made for the test and
//!   written to a PEM file for the client to trust (`AWS_CA_BUNDLE`); `Host`, paths and
//!   bodies pass through unchanged, so `SigV4` signatures still check upstream.
//! - [`serve_canned`]: canned answers, one per connection, handing back the requests as
//!   received: for unit tests of clients of token and credential endpoints.
//! - [`FakeGcs`]: fake-gcs-server, Cloud Storage's JSON API in memory (it checks no token);
//!   [`GoogleTokens`]: Google's OAuth token endpoint and the metadata server's token, handing
//!   out numbered tokens and logging what they are asked; [`GcsUploads`]: Cloud Storage's
//!   resumable uploads as Google documents them (a session's status, which fake-gcs-server
//!   answers by completing the object), able to cut a chunk short.
//! - [`InstanceMetadata`], [`ContainerCredentials`], [`Sts`]: the AWS credential endpoints
//!   (`IMDSv2`, container credentials, `AssumeRoleWithWebIdentity`), handing out [`AwsCreds`]
//!   (an [`S3Server`]'s key pair with `start_for`) and logging what they are asked.
//!
//! - [`model_files`]: GGUF and safetensors files built from their specifications, for tests
//!   of what is read from a model's headers.
//! - [`archives`]: tar archives as tar layers hold them, plain, gzip or zstd, and hostile ones.
//! - [`signing_keys`]: EC key pairs and a root → intermediate → leaf chain made by `openssl`,
//!   and the reference `model_signing` tool, for tests of signed models.
//! - [`modelkit`]: `KitOps` `ModelKit`s as `kit pack` builds them (the Kitfile as the config,
//!   one tar layer per section), to push as an [`Artifact`].
//!
//! A missing nginx, olah, `hf`, git, git-lfs, docker-registry, s3s-fs or fake-gcs-server is a
//! test failure with instructions, never a silent skip (`bash scripts/install-test-deps.sh`
//! installs them all).
#![deny(missing_docs)]
#![expect(
    clippy::missing_panics_doc,
    reason = "test servers panic when they cannot start, by design"
)]

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub mod archives;
mod aws_endpoints;
mod azure;
mod canned;
mod endpoint;
mod fault;
mod gcs;
mod gcs_uploads;
mod hf_repo;
mod hold_proxy;
mod holds;
#[cfg(test)]
mod http_client;
mod hub_nginx;
mod lying_proxy;
pub mod model_files;
pub mod modelkit;
mod modelscope_nginx;
mod nginx;
mod olah;
mod process;
mod registry;
mod registry_front;
mod relay;
mod s3;
pub mod signing_keys;
mod tls_front;
mod wire;

pub use aws_endpoints::{
    AwsCreds, ContainerCredentials, FAR_EXPIRATION, IMDS_TOKEN_HEADER, IMDS_TTL_HEADER,
    InstanceMetadata, Sts,
};
pub use azure::{
    AZURITE_ACCOUNT, AZURITE_KEY, AzureImds, Azurite, EntraToken, FakeBlobs, azurite_binary,
    sas_with_key,
};
pub use canned::serve_canned;
pub use endpoint::EndpointRequest;
pub use fault::{Answer, FaultServer, Served};
pub use gcs::{FakeGcs, GoogleTokens, METADATA_TOKEN_PATH, ServiceAccount, fake_gcs_server_binary};
pub use gcs_uploads::{GcsUploads, UploadRequest};
pub use hf_repo::{
    DEFAULT_WEIGHTS_SIZE, HfRepo, HfRepoBuilder, LFS_PATTERNS, TINY_GGUF, TINY_LLAMA, fake_gguf,
    fake_safetensors, pseudo_random_bytes, sha256_hex,
};
pub use hold_proxy::{HoldProxy, ProxiedHit};
pub use holds::Hold;
pub use hub_nginx::{HubFile, HubNginx, HubRepo, HubRequest};
pub use lying_proxy::{LyingProxy, ProxiedRequest};
pub use modelscope_nginx::{ModelScopeNginx, MsRepoSpec, MsRequest, modelscope_cli_path};
pub use nginx::{LogLine, Nginx};
pub use olah::{Olah, OlahRequest, hf_cli_path, olah_cli_path, venv_dir};
pub use registry::{
    Artifact, DOCKER_CONFIG, DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, IndexEntry, MANIFEST_ACCEPT,
    OCI_EMPTY, OCI_INDEX, OCI_MANIFEST, Pushed, Registry, RegistryResponse, this_platform,
};
pub use registry_front::{
    FrontAuth, FrontOptions, FrontRequest, RegistryFront, StorageRequest, TokenRequest,
};
pub use s3::{
    S3_ACCESS_KEY, S3_REGION, S3_SECRET_KEY, S3_SESSION_TOKEN, S3Response, S3Server, presign_with,
    s3s_fs_binary,
};
pub use tls_front::{FrontHit, TlsFront};
pub use wire::Reply;

/// Every regular file under `dir` with its content, keyed by its path relative to `dir` (with
/// `/` between components).
pub fn files_under(dir: &Path) -> io::Result<BTreeMap<String, Vec<u8>>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) -> io::Result<()> {
        for entry in fs::read_dir(dir)? {
            let path = entry?.path();
            if path.is_dir() {
                walk(root, &path, out)?;
            } else {
                let rel = path
                    .strip_prefix(root)
                    .expect("under the root")
                    .to_string_lossy()
                    .replace('\\', "/");
                out.insert(rel, fs::read(&path)?);
            }
        }
        Ok(())
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out)?;
    Ok(out)
}

/// The path of every file under `dir` that is not a directory (symlinks are listed, not
/// followed), in no particular order; nothing if `dir` does not exist.
pub fn paths_under(dir: &Path) -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in fs::read_dir(dir).into_iter().flatten().flatten() {
            let path = entry.path();
            match fs::symlink_metadata(&path) {
                Ok(m) if m.is_dir() => walk(&path, out),
                Ok(_) => out.push(path),
                Err(_) => {}
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, &mut out);
    out
}

/// The tree digest of a folder holding `files` (relative path, content), as `sha256:<hex>`:
/// the SHA-256 of a manifest with one line `<sha256 hex>  <relative path>\n` per file, in
/// byte order of the paths, as `catalog_core` documents it for folders.
pub fn tree_digest<P, B>(files: impl IntoIterator<Item = (P, B)>) -> String
where
    P: AsRef<str>,
    B: AsRef<[u8]>,
{
    let mut lines: Vec<(String, String)> = files
        .into_iter()
        .map(|(rel, data)| (rel.as_ref().to_owned(), sha256_hex(data.as_ref())))
        .collect();
    lines.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    let mut manifest = String::new();
    for (rel, hex) in &lines {
        manifest.push_str(hex);
        manifest.push_str("  ");
        manifest.push_str(rel);
        manifest.push('\n');
    }
    format!("sha256:{}", sha256_hex(manifest.as_bytes()))
}

/// The names of the entries left directly under `<cache>/tmp`, lock files aside: partial
/// downloads, their states, staging directories.
pub fn leftovers_in_tmp(cache: &Path) -> Vec<String> {
    fs::read_dir(cache.join("tmp"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| Path::new(n).extension().is_none_or(|e| e != "lock"))
        .collect()
}

/// Asserts that `dir` holds exactly the files of `expected`, byte for byte.
pub fn assert_holds(dir: &Path, expected: &BTreeMap<String, Vec<u8>>) {
    let actual = files_under(dir).unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()));
    let names = |m: &BTreeMap<String, Vec<u8>>| m.keys().cloned().collect::<Vec<_>>();
    assert_eq!(
        names(&actual),
        names(expected),
        "the files of {}",
        dir.display()
    );
    for (rel, bytes) in expected {
        assert!(
            actual[rel] == *bytes,
            "{rel} in {} differs: {} bytes, expected {}",
            dir.display(),
            actual[rel].len(),
            bytes.len()
        );
    }
}

/// Calls `attempt` every 10 ms until it gives a value or `limit` has passed: for waiting on
/// a signal (a log line, a file, a port), never on time alone.
pub fn poll<T>(limit: Duration, mut attempt: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = attempt() {
            return Some(value);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The entries of the log file at `path` that `parse` understands, oldest first.
pub(crate) fn read_log<T>(path: &Path, parse: impl Fn(&str) -> Option<T>) -> Vec<T> {
    let text = fs::read_to_string(path).unwrap_or_default();
    text.lines().filter_map(parse).collect()
}

/// `read()` once it has at least `n` entries (a server logs a request just after it answers,
/// so a client may be a moment ahead), or after 2 s, whatever it has then.
pub(crate) fn at_least<T>(n: usize, read: impl Fn() -> Vec<T>) -> Vec<T> {
    poll(Duration::from_secs(2), || {
        let entries = read();
        (entries.len() >= n).then_some(entries)
    })
    .unwrap_or_else(read)
}

/// Empties the log file at `path`; its server appends with `O_APPEND`, so truncating it in
/// place is safe.
pub(crate) fn truncate_log(path: &Path) {
    let _ = fs::OpenOptions::new().write(true).truncate(true).open(path);
}

/// Sends `GET <path>` to 127.0.0.1:`port` on a connection of its own and reads the whole
/// answer, headers included.
pub(crate) fn http_get(port: u16, path: &str) -> io::Result<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )?;
    let mut answer = String::new();
    s.read_to_string(&mut answer)?;
    Ok(answer)
}

/// A port on 127.0.0.1 that nothing listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("binding an ephemeral port on 127.0.0.1")
        .port()
}

/// `len` deterministic pseudo-random bytes (xorshift), different for each `seed`.
pub fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x.to_le_bytes()[0]
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The tree digest agrees with the coreutils pipeline `docs/architecture.md` gives.
    #[test]
    fn tree_digest_agrees_with_the_documented_pipeline() -> io::Result<()> {
        let files: [(&str, &[u8]); 4] = [
            ("z.bin", b"last"),
            ("a b/config.json", b"{}"),
            ("shards/B.safetensors", b"upper"),
            ("shards/a.safetensors", b""),
        ];
        let dir = tempfile::tempdir()?;
        for (rel, data) in files {
            let path = dir.path().join(rel);
            fs::create_dir_all(path.parent().expect("a parent"))?;
            fs::write(path, data)?;
        }
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(
                "find -L . -name .git -prune -o -type f -printf '%P\\n' | LC_ALL=C sort \
                 | xargs -d '\\n' sha256sum | sha256sum",
            )
            .current_dir(dir.path())
            .output()?;
        assert!(out.status.success(), "{out:?}");
        let hex = String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_owned();
        assert_eq!(tree_digest(files), format!("sha256:{hex}"));
        Ok(())
    }
}
