//! `ensure modelscope:…` from the command line against a ModelScope-shaped nginx
//! ([`test_support::ModelScopeNginx`]): the source this build registers, configured by
//! `MODELSCOPE_DOMAIN` (or `--endpoint-url`) and `MODELSCOPE_API_TOKEN`.

use std::collections::BTreeMap;
use std::path::Path;

use test_support::{ModelScopeNginx, assert_holds, random_bytes as bytes};

use crate::fixture::{Fixture, TestResult, assert_code, assert_failure, hints, str_field};

/// A token only this test uses, to see where it goes.
const TOKEN: &str = "ms-cli-fixture-token";

fn tiny() -> BTreeMap<String, Vec<u8>> {
    BTreeMap::from([
        ("config.json".to_owned(), b"{\"arch\": \"tiny\"}".to_vec()),
        ("sub/w.gguf".to_owned(), bytes(200_000, 51)),
    ])
}

#[test]
fn a_modelscope_repository_is_ensured_and_passes_without_a_digest() -> TestResult {
    let files = tiny();
    let ms = ModelScopeNginx::start_one("org/tiny", &files, true);
    let fx = Fixture::new()?;
    let mut cmd = fx.command(["ensure", "modelscope:org/tiny", "--json"]);
    cmd.env("MODELSCOPE_DOMAIN", ms.endpoint())
        .env("MODELSCOPE_API_TOKEN", TOKEN);
    let out = cmd.output()?;
    assert_code(&out, 0);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    assert_eq!(str_field(&json, "id"), "modelscope:org/tiny");
    assert_eq!(str_field(&json, "verification"), "pass", "{json:#}");
    assert_holds(Path::new(str_field(&json, "local_path")), &files);
    let everything = format!(
        "{}{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        std::fs::read_to_string(fx.index_path())?
    );
    assert!(!everything.contains(TOKEN) && !everything.contains(ms.session()));
    Ok(())
}

#[test]
fn endpoint_url_names_a_private_modelscope_before_the_environment() -> TestResult {
    let files = tiny();
    let ms = ModelScopeNginx::start_one("org/tiny", &files, false);
    let fx = Fixture::new()?;
    let mut cmd = fx.command([
        "ensure",
        "modelscope:org/tiny",
        "--json",
        "--endpoint-url",
        &ms.endpoint(),
    ]);
    // The environment names a host that does not answer: the flag stands before it.
    cmd.env("MODELSCOPE_DOMAIN", "http://127.0.0.1:9");
    let out = cmd.output()?;
    assert_code(&out, 0);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    assert_eq!(str_field(&json, "verification"), "pass", "{json:#}");
    assert_holds(Path::new(str_field(&json, "local_path")), &files);
    Ok(())
}

#[test]
fn a_reference_modelscope_cannot_read_is_a_usage_error_in_its_own_words() -> TestResult {
    let fx = Fixture::new()?;
    let out = fx.run(["ensure", "modelscope:org/../x"]);
    assert_failure(&out, 2, &["`modelscope:org/../x`", "`..` segment"]);
    assert!(
        hints(&out)
            .iter()
            .any(|h| h.contains("modelscope:org/repo"))
    );
    Ok(())
}

#[test]
fn a_private_repository_without_a_token_is_refused_with_a_hint() -> TestResult {
    let files = tiny();
    let ms = ModelScopeNginx::start_one("org/tiny", &files, true);
    let fx = Fixture::new()?;
    let mut cmd = fx.command(["ensure", "modelscope:org/tiny"]);
    cmd.env("MODELSCOPE_DOMAIN", ms.endpoint())
        .env_remove("MODELSCOPE_API_TOKEN");
    let out = cmd.output()?;
    assert_failure(&out, 1, &["ModelScope refused access to `org/tiny`"]);
    assert!(
        hints(&out)
            .iter()
            .any(|h| h.contains("MODELSCOPE_API_TOKEN")),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}
