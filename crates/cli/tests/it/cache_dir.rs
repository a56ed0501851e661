//! Which cache directory is used: `--cache-dir`, else `MODEL_PROVISIONER_CACHE`, else
//! `XDG_CACHE_HOME/model-provisioner`.

use std::path::Path;

use crate::fixture::{Fixture, TestResult, assert_code, run_within_limit};

fn index_in(dir: &Path) -> std::path::PathBuf {
    dir.join("catalog").join("index.json")
}

#[test]
fn cache_dir_flag_beats_the_environment() -> TestResult {
    let fx = Fixture::new()?;
    fx.write_model("tiny.gguf", b"tiny weights")?;
    let from_env = fx.path("env-cache");
    let xdg = fx.path("xdg");
    let mut cmd = fx.command(["-q", "ensure", "tiny.gguf"]);
    cmd.env("MODEL_PROVISIONER_CACHE", &from_env)
        .env("XDG_CACHE_HOME", &xdg);
    assert_code(&run_within_limit(&mut cmd), 0);
    assert!(fx.index_bytes().is_some(), "nothing under `--cache-dir`");
    assert!(!from_env.exists(), "MODEL_PROVISIONER_CACHE was used");
    assert!(!xdg.exists(), "XDG_CACHE_HOME was used");
    Ok(())
}

#[test]
fn model_provisioner_cache_is_used_without_the_flag() -> TestResult {
    let fx = Fixture::new()?;
    fx.write_model("tiny.gguf", b"tiny weights")?;
    let from_env = fx.path("env-cache");
    let xdg = fx.path("xdg");
    let mut cmd = fx.bare_command();
    cmd.args(["-q", "ensure", "tiny.gguf"])
        .env("MODEL_PROVISIONER_CACHE", &from_env)
        .env("XDG_CACHE_HOME", &xdg);
    assert_code(&run_within_limit(&mut cmd), 0);
    assert!(
        index_in(&from_env).exists(),
        "MODEL_PROVISIONER_CACHE unused"
    );
    assert!(!xdg.exists(), "XDG_CACHE_HOME was used");
    assert!(!fx.cache().exists());

    let mut ls = fx.bare_command();
    ls.args(["ls", "--json"])
        .env("MODEL_PROVISIONER_CACHE", &from_env);
    let out = run_within_limit(&mut ls);
    assert_code(&out, 0);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    assert_eq!(json.as_array().map(Vec::len), Some(1));
    Ok(())
}

#[test]
fn xdg_cache_home_is_used_without_flag_or_variable() -> TestResult {
    let fx = Fixture::new()?;
    fx.write_model("tiny.gguf", b"tiny weights")?;
    let xdg = fx.path("xdg");
    let mut cmd = fx.bare_command();
    cmd.args(["-q", "ensure", "tiny.gguf"])
        .env("XDG_CACHE_HOME", &xdg);
    assert_code(&run_within_limit(&mut cmd), 0);
    assert!(
        index_in(&xdg.join("model-provisioner")).exists(),
        "nothing under XDG_CACHE_HOME/model-provisioner"
    );
    assert!(!fx.path("home").exists(), "HOME was used");
    Ok(())
}
