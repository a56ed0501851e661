//! `ensure modelscope:…` from the command line against a ModelScope-shaped nginx
//! ([`test_support::ModelScopeNginx`]): the source this build registers, configured by
//! `MODELSCOPE_ENDPOINT` or `MODELSCOPE_DOMAIN` (or `--endpoint-url`) and `MODELSCOPE_API_TOKEN`
//! or the login ModelScope's client saved; and ModelScope's own client against the same
//! fixture, which must get the same bytes, so that the fixture is known to answer as ModelScope
//! does.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output};

use test_support::{
    ModelScopeNginx, assert_holds, files_under, modelscope_cli_path, random_bytes as bytes,
};

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
fn modelscope_endpoint_stands_before_the_deprecated_modelscope_domain() -> TestResult {
    let files = tiny();
    let ms = ModelScopeNginx::start_one("org/tiny", &files, false);
    let fx = Fixture::new()?;
    let mut cmd = fx.command(["ensure", "modelscope:org/tiny", "--json"]);
    // The deprecated name points at a host that does not answer: the current one stands
    // before it, as in ModelScope's own client.
    cmd.env("MODELSCOPE_ENDPOINT", ms.endpoint())
        .env("MODELSCOPE_DOMAIN", "http://127.0.0.1:9");
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

/// Runs ModelScope's own client, `modelscope download --model org/tiny [FILE…]` into
/// `<dir>/out`, pointed at `ms` by the same `MODELSCOPE_DOMAIN` we read, with its home and
/// cache in `dir`; `token` as `MODELSCOPE_API_TOKEN`. Gives its output and the files it wrote.
fn modelscope_download(
    ms: &ModelScopeNginx,
    dir: &Path,
    files: &[&str],
    token: Option<&str>,
) -> Result<(Output, BTreeMap<String, Vec<u8>>), std::io::Error> {
    let out_dir = dir.join("out");
    let mut cmd = Command::new(modelscope_cli_path());
    cmd.args(["download", "--model", "org/tiny"])
        .args(files)
        .arg("--local_dir")
        .arg(&out_dir)
        .env("MODELSCOPE_DOMAIN", ms.endpoint())
        .env("MODELSCOPE_CACHE", dir.join("cache"))
        .env("HOME", dir)
        .env_remove("MODELSCOPE_ENDPOINT")
        .env_remove("MODELSCOPE_API_TOKEN");
    if let Some(token) = token {
        cmd.env("MODELSCOPE_API_TOKEN", token);
    }
    let out = cmd.output()?;
    let written = if out_dir.exists() {
        files_under(&out_dir)?
    } else {
        BTreeMap::new()
    };
    Ok((out, written))
}

/// `ensure` of `reference` against `ms` with `token`: the files of the model it hands out
/// (the one file of a one-file model, under its path in the repository).
fn ensure_files(
    fx: &Fixture,
    ms: &ModelScopeNginx,
    reference: &str,
    token: &str,
) -> Result<BTreeMap<String, Vec<u8>>, Box<dyn std::error::Error>> {
    let mut cmd = fx.command(["ensure", reference, "--json"]);
    cmd.env("MODELSCOPE_DOMAIN", ms.endpoint())
        .env("MODELSCOPE_API_TOKEN", token);
    let out = cmd.output()?;
    assert_code(&out, 0);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    assert_eq!(str_field(&json, "verification"), "pass", "{json:#}");
    let path = Path::new(str_field(&json, "local_path"));
    if path.is_dir() {
        return Ok(files_under(path)?);
    }
    let file = reference
        .rsplit_once("org/tiny/")
        .ok_or("a one-file reference")?
        .1;
    Ok(BTreeMap::from([(file.to_owned(), std::fs::read(path)?)]))
}

/// Panics unless every request the client sent was answered `200`, but for the one the
/// fixture leaves unanswered on purpose (the SDK's Alibaba Cloud probe): what the client
/// needs, the fixture serves.
fn assert_all_answered(ms: &ModelScopeNginx, at_least: usize, session: bool) {
    let log = ms.requests_of_at_least(at_least);
    assert!(log.len() >= at_least, "{log:#?}");
    for r in &log {
        if r.uri == "/api/v1/repos/internalAccelerationInfo" {
            assert_eq!(r.status, 404, "{r:?}");
        } else {
            assert_eq!((r.status, r.session), (200, session), "{r:?}");
        }
    }
}

#[test]
fn modelscopes_own_client_downloads_from_the_fixture_the_bytes_we_ensure() -> TestResult {
    let files = tiny();
    let ms = ModelScopeNginx::start_one("org/tiny", &files, false);
    let fx = Fixture::new()?;

    // The whole repository: the listing, then every file by `FilePath`.
    let dir = tempfile::tempdir()?;
    let (out, theirs) = modelscope_download(&ms, dir.path(), &[], None)?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_all_answered(&ms, 4, false);
    assert_eq!(theirs, files);
    assert_eq!(
        ensure_files(&fx, &ms, "modelscope:org/tiny", TOKEN)?,
        theirs
    );

    // One file.
    ms.clear_log();
    let dir = tempfile::tempdir()?;
    let (out, theirs) = modelscope_download(&ms, dir.path(), &["sub/w.gguf"], None)?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_all_answered(&ms, 2, false);
    assert_eq!(theirs.keys().collect::<Vec<_>>(), ["sub/w.gguf"]);
    assert_eq!(theirs["sub/w.gguf"], files["sub/w.gguf"]);
    let ours = ensure_files(&fx, &ms, "modelscope:org/tiny/sub/w.gguf", TOKEN)?;
    assert_eq!(ours, theirs);
    Ok(())
}

#[test]
fn modelscopes_own_client_reads_a_private_repository_of_the_fixture_with_a_token() -> TestResult {
    let files = tiny();
    let ms = ModelScopeNginx::start_one("org/tiny", &files, true);
    let fx = Fixture::new()?;

    // Without a token the client is refused as we are.
    let dir = tempfile::tempdir()?;
    let (out, theirs) = modelscope_download(&ms, dir.path(), &[], None)?;
    assert!(!out.status.success());
    assert!(theirs.is_empty());
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(said.contains("[401] unauthorized"), "{said}");

    // With one, it sends the token as the session cookie, and gets what we get by logging in.
    ms.clear_log();
    let dir = tempfile::tempdir()?;
    let (out, theirs) = modelscope_download(&ms, dir.path(), &[], Some(ms.token()))?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_all_answered(&ms, 4, true);
    assert_eq!(theirs, files);
    assert_eq!(
        ensure_files(&fx, &ms, "modelscope:org/tiny", ms.token())?,
        theirs
    );
    Ok(())
}

/// Runs `modelscope login --token <token>` against `ms`, with `HOME` at `home` (where our
/// binary's fixture has it), so that the client saves its login where it keeps it.
fn modelscope_login(ms: &ModelScopeNginx, home: &Path, token: &str) -> std::io::Result<Output> {
    Command::new(modelscope_cli_path())
        .args(["login", "--token", token])
        .env("MODELSCOPE_DOMAIN", ms.endpoint())
        .env("HOME", home)
        .env_remove("MODELSCOPE_HOME")
        .env_remove("MODELSCOPE_ENDPOINT")
        .env_remove("MODELSCOPE_API_TOKEN")
        .output()
}

/// `ensure modelscope:org/tiny` against `endpoint` with no `MODELSCOPE_API_TOKEN`.
fn ensure_without_token(fx: &Fixture, endpoint: &str) -> std::io::Result<Output> {
    let mut cmd = fx.command(["ensure", "modelscope:org/tiny", "--json"]);
    cmd.env("MODELSCOPE_DOMAIN", endpoint)
        .env("MODEL_PROVISIONER_LOG", "model_provisioner=debug");
    cmd.output()
}

#[test]
fn the_login_modelscopes_own_client_saved_reads_a_private_repository_on_its_host_only() -> TestResult
{
    let files = tiny();
    let ms = ModelScopeNginx::start_one("org/tiny", &files, true);
    let fx = Fixture::new()?;
    let home = fx.path("home");

    let out = modelscope_login(&ms, &home, ms.token())?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(home.join(".modelscope/credentials/cookies").is_file());
    // Its login asked the fixture once, and was answered.
    let login = ms.requests_of_at_least(1);
    assert!(
        login
            .iter()
            .any(|r| r.method == "POST" && r.uri == "/api/v1/login" && r.status == 200),
        "{login:#?}"
    );

    // Our binary, with the same HOME and no token, sends the session it saved: no login of
    // its own, every request answered with the session.
    ms.clear_log();
    let out = ensure_without_token(&fx, &ms.endpoint())?;
    assert_code(&out, 0);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    assert_eq!(str_field(&json, "verification"), "pass", "{json:#}");
    assert_eq!(
        files_under(Path::new(str_field(&json, "local_path")))?,
        files
    );
    let log = ms.requests_of_at_least(3);
    assert!(log.iter().all(|r| r.method == "GET"), "{log:#?}");
    assert!(
        log.iter()
            .all(|r| matches!(r.status, 200 | 206) && r.session),
        "{log:#?}"
    );
    // Neither the session nor the token is written anywhere we write.
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let index = std::fs::read_to_string(fx.index_path())?;
    for text in [&said, &index] {
        assert!(
            !text.contains(ms.session()) && !text.contains(ms.token()),
            "{text}"
        );
    }

    // The same server named `localhost`: another host than the login's, so no session goes.
    ms.clear_log();
    let fx2 = Fixture::new()?;
    let creds = ".modelscope/credentials";
    std::fs::create_dir_all(fx2.path("home").join(creds))?;
    std::fs::copy(
        home.join(creds).join("cookies"),
        fx2.path("home").join(creds).join("cookies"),
    )?;
    let out = ensure_without_token(&fx2, &format!("http://localhost:{}", ms.port()))?;
    assert_failure(&out, 1, &["ModelScope refused access to `org/tiny`"]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no `m_session_id` cookie for `localhost`"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let log = ms.requests_of_at_least(1);
    assert!(log.iter().all(|r| !r.session), "{log:#?}");
    Ok(())
}

#[test]
fn an_expired_saved_login_is_not_sent() -> TestResult {
    let files = tiny();
    let ms = ModelScopeNginx::start_one("org/tiny", &files, true);
    let fx = Fixture::new()?;
    let home = fx.path("home");
    // ModelScope's client saves a jar with the token as the session, for this host, expired
    // an hour ago: a value the fixture would take, were it sent.
    let python = modelscope_cli_path().with_file_name("python");
    let script = r#"
import sys, time
from http.cookiejar import Cookie
from requests.cookies import RequestsCookieJar
from modelscope_hub.config import HubConfig
jar = RequestsCookieJar()
jar.set_cookie(Cookie(0, "m_session_id", sys.argv[1], None, False, "127.0.0.1", True, False,
                      "/", True, False, int(time.time()) - 3600, False, None, None, {}, False))
HubConfig().save_cookies(jar)
assert HubConfig().load_cookies() is None, "the client itself takes it as expired"
"#;
    let out = Command::new(python)
        .args(["-c", script, ms.token()])
        .env("HOME", &home)
        .env_remove("MODELSCOPE_HOME")
        .output()?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(home.join(".modelscope/credentials/cookies").is_file());

    let out = ensure_without_token(&fx, &ms.endpoint())?;
    assert_failure(&out, 1, &["ModelScope refused access to `org/tiny`"]);
    assert!(
        hints(&out)
            .iter()
            .any(|h| h.contains("MODELSCOPE_API_TOKEN") && h.contains("modelscope login")),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("the `m_session_id` cookie for `127.0.0.1` has expired"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let log = ms.requests_of_at_least(1);
    assert!(log.iter().all(|r| !r.session), "{log:#?}");
    Ok(())
}

#[test]
fn a_cookies_file_that_is_garbage_or_huge_is_no_login() -> TestResult {
    let files = tiny();
    let ms = ModelScopeNginx::start_one("org/tiny", &files, false);
    for (contents, why) in [
        (b"not a pickle".to_vec(), "the cookies file does not parse"),
        (vec![b'('; 2 << 20], "is larger than 1048576 bytes"),
    ] {
        let fx = Fixture::new()?;
        let creds = fx.path("home").join(".modelscope/credentials");
        std::fs::create_dir_all(&creds)?;
        std::fs::write(creds.join("cookies"), contents)?;
        // A public repository: fetched without a session, the file noted at debug level.
        let out = ensure_without_token(&fx, &ms.endpoint())?;
        assert_code(&out, 0);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(why), "{stderr}");
    }
    Ok(())
}
