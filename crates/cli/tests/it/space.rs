//! A cache on a file system too small for the model: `ensure` fails at once, before any byte of
//! the model is asked for, with the sizes, the cache path and what to do, and leaves nothing
//! behind in `tmp/`.
//!
//! These tests mount an 8 MiB tmpfs as the cache, so they need root, as the project's test
//! runs (and CI) have. Run as another user, they fail saying so rather than pass unchecked.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use test_support::{HubNginx, Nginx, fake_gguf, leftovers_in_tmp};

use crate::fixture::{
    Fixture, TestResult, assert_failure, assert_one_error_line, hints, run_within,
};

/// Larger than the file system it is ensured into.
const MODEL_SIZE: usize = 16 << 20;

/// An 8 MiB tmpfs mounted at a directory, unmounted on drop.
struct Tmpfs {
    dir: PathBuf,
}

impl Tmpfs {
    /// Mounts an 8 MiB tmpfs at `dir` (created if missing); panics unless this runs as root.
    fn mount(dir: &Path) -> Self {
        let uid = Command::new("id")
            .arg("-u")
            .output()
            .expect("running `id -u`");
        let uid = String::from_utf8_lossy(&uid.stdout).trim().to_owned();
        assert_eq!(
            uid, "0",
            "this test mounts a small tmpfs as the cache and needs root (the project's tests and CI run as root); run it as root"
        );
        std::fs::create_dir_all(dir).expect("creating the mount point");
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=8m", "tmpfs"])
            .arg(dir)
            .output()
            .expect("running `mount`");
        assert!(
            out.status.success(),
            "mounting a tmpfs at {} failed: {}",
            dir.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        Tmpfs {
            dir: dir.to_owned(),
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.dir).status();
    }
}

/// `hf` and HTTP runs start a runtime and talk to a server: more time than a local ensure.
const LIMIT: Duration = Duration::from_secs(30);

#[test]
fn a_hub_model_larger_than_the_cache_file_system_fails_before_any_byte_is_sent() -> TestResult {
    let files = [
        ("README.md".to_owned(), b"# big\n".to_vec()),
        ("big.Q8_0.gguf".to_owned(), fake_gguf("big", MODEL_SIZE)),
    ]
    .into_iter()
    .collect();
    let hub = HubNginx::start_with_files(&[("test-org/big", &files)]);
    let fx = Fixture::new()?;
    let _tmpfs = Tmpfs::mount(fx.cache());

    let mut cmd = fx.command(["ensure", "hf:test-org/big:Q8_0"]);
    cmd.env("HF_ENDPOINT", hub.endpoint())
        .env("HF_HOME", fx.path("hf-home"));
    let out = run_within(&mut cmd, LIMIT);
    assert_failure(
        &out,
        1,
        &[
            &format!("not enough free space in `{}`", fx.cache().display()),
            "to fetch `hf:test-org/big:Q8_0`: it needs 80.0 MiB (83886080 bytes)",
            "and 8.0 MiB (",
            "are free",
        ],
    );
    assert_one_error_line(&out);
    let hint = hints(&out).join("\n");
    assert!(
        hint.contains("`model-provisioner gc`") && hint.contains("--cache-dir"),
        "{hint}"
    );
    // The listing and the HEAD were asked for; no byte of the model was sent.
    let log = hub.requests_of_at_least(2);
    assert!(
        log.iter()
            .any(|r| r.method == "HEAD" && r.uri.ends_with("/big.Q8_0.gguf")),
        "{log:#?}"
    );
    assert!(
        log.iter()
            .all(|r| r.method != "GET" || r.uri.starts_with("/api/")),
        "only the listing was fetched: {log:#?}"
    );
    let model_bytes: u64 = log
        .iter()
        .filter(|r| !r.uri.starts_with("/api/"))
        .map(|r| r.body_bytes)
        .sum();
    assert_eq!(model_bytes, 0, "{log:#?}");
    assert_eq!(leftovers_in_tmp(fx.cache()), Vec::<String>::new());
    assert!(
        fx.index_bytes()
            .is_none_or(|i| !String::from_utf8_lossy(&i).contains("big"))
    );
    Ok(())
}

#[test]
fn a_url_larger_than_the_cache_file_system_fails_before_its_body_is_written() -> TestResult {
    let nginx = Nginx::start();
    nginx.put("big.gguf", &fake_gguf("big-url", MODEL_SIZE))?;
    let fx = Fixture::new()?;
    let _tmpfs = Tmpfs::mount(fx.cache());

    let url = nginx.url("files/big.gguf");
    let out = run_within(&mut fx.command(["ensure", &url]), LIMIT);
    assert_failure(
        &out,
        1,
        &[
            "not enough free space",
            &format!("to fetch `{url}`"),
            "and 8.0 MiB (",
        ],
    );
    assert_one_error_line(&out);
    // The size came with the first response; nothing of the body was kept.
    assert_eq!(leftovers_in_tmp(fx.cache()), Vec::<String>::new());
    Ok(())
}
