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

mod fault;
mod hf_repo;
mod lying_proxy;
mod nginx;
mod olah;

pub use fault::{Answer, FaultServer};
pub use hf_repo::{
    DEFAULT_WEIGHTS_SIZE, HfRepo, HfRepoBuilder, LFS_PATTERNS, TINY_GGUF, TINY_LLAMA, fake_gguf,
    fake_safetensors, pseudo_random_bytes, sha256_hex,
};
pub use lying_proxy::{LyingProxy, ProxiedRequest};
pub use nginx::{LogLine, Nginx};
pub use olah::{Olah, OlahRequest, hf_cli_path, olah_cli_path, venv_dir};

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
