//! Servers the integration tests run against, all on 127.0.0.1 and stopped on drop.
//!
//! - [`Nginx`]: Debian's nginx serving a temporary directory, with `Range` on (`/files/`),
//!   off (`/norange/`), throttled (`/slow/`), and fixed error statuses (`/status/500`, `/503`, `/403`).
//!   Its access log records each request's range and the body bytes it sent.
//! - [`FaultServer`]: a tiny HTTP/1.1 server whose answers a test scripts: cut bodies, stalls,
//!   errors, lies.
//! - [`Olah`]: olah, a Hugging Face mirror, serving local git repos ([`HfRepo`], built with
//!   [`HfRepoBuilder`]) offline as Hugging Face model repos; [`Olah::hf`] runs the real `hf`
//!   CLI against it.
//! - [`LyingProxy`]: a proxy in front of a real server (olah) that corrupts one byte of
//!   chosen bodies while keeping their headers: a Hub whose bytes are not what it says.
//!
//! A missing nginx, olah, `hf`, git or git-lfs is a test failure with instructions, never a
//! silent skip (`bash scripts/install-test-deps.sh` installs them all).
#![deny(missing_docs)]
#![expect(
    clippy::missing_panics_doc,
    reason = "test servers panic when they cannot start, by design"
)]

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::Path;

mod fault;
mod hf_repo;
mod hub_nginx;
mod lying_proxy;
mod nginx;
mod olah;

pub use fault::{Answer, FaultServer};
pub use hf_repo::{
    DEFAULT_WEIGHTS_SIZE, HfRepo, HfRepoBuilder, LFS_PATTERNS, TINY_GGUF, TINY_LLAMA, fake_gguf,
    fake_safetensors, pseudo_random_bytes, sha256_hex,
};
pub use hub_nginx::{HubFile, HubNginx, HubRepo, HubRequest};
pub use lying_proxy::{LyingProxy, ProxiedRequest};
pub use nginx::{LogLine, Nginx};
pub use olah::{Olah, OlahRequest, hf_cli_path, olah_cli_path, venv_dir};

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
