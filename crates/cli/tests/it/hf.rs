//! `ensure hf:…` end to end: the binary against olah serving git-lfs fixture repos on
//! loopback (`HF_ENDPOINT`), with `HF_HOME` inside the fixture; the real `hf` CLI for the
//! shell-out and to fill a Hugging Face cache.
//!
//! `--via hf-cli` with no tool on `PATH` at all is covered by
//! `bad_input::hf_via_the_cli_without_any_hf_tool_says_how_to_get_one`.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use catalog_core::Digest;
use serde_json::Value;
use test_support::{
    HfRepo, HfRepoBuilder, LyingProxy, Olah, TINY_GGUF, TINY_LLAMA, assert_holds, fake_gguf,
    files_under, leftovers_in_tmp, tree_digest,
};

use crate::fixture::{
    Fixture, TestResult, assert_code, assert_failure, assert_one_error_line, bool_field, hints,
    stderr, stdout, str_field, u64_field,
};

/// The single file most tests fetch.
const Q4: &str = "model.Q4_K_M.gguf";

/// How long one run that talks to olah (or runs the `hf` tool) may take: each is a Python
/// process that takes seconds to start when every test starts some at once on a small machine.
const HF_TIME_LIMIT: Duration = Duration::from_secs(60);

/// Runs `cmd` like `fixture::run_within_limit`, but with [`HF_TIME_LIMIT`].
fn run_patiently(cmd: &mut Command) -> Output {
    crate::fixture::run_within(cmd, HF_TIME_LIMIT)
}

/// The binary with `--cache-dir` and `args`, `HF_ENDPOINT` set to `endpoint` and `HF_HOME`
/// inside the fixture (so the Hugging Face cache it would reuse is empty).
fn hf_command(fx: &Fixture, endpoint: &str, args: &[&str]) -> Command {
    let mut cmd = fx.command(args);
    cmd.env("HF_ENDPOINT", endpoint)
        .env("HF_HOME", fx.path("hf-home"));
    cmd
}

fn run_hf(fx: &Fixture, endpoint: &str, args: &[&str]) -> Output {
    run_patiently(&mut hf_command(fx, endpoint, args))
}

/// Runs `args`, which must succeed, and parses stdout as JSON.
fn json_of(out: &Output) -> TestResult<Value> {
    assert_code(out, 0);
    Ok(serde_json::from_slice(&out.stdout)?)
}

fn ensure_json(fx: &Fixture, endpoint: &str, args: &[&str]) -> TestResult<Value> {
    json_of(&run_hf(fx, endpoint, args))
}

/// The directory holding the real `hf` tool, for `PATH`.
fn hf_bin_dir() -> PathBuf {
    test_support::hf_cli_path()
        .parent()
        .expect("the tool is in a directory")
        .to_owned()
}

fn sha256_of(repo: &HfRepo, rev: &str, path: &str) -> String {
    format!("sha256:{}", repo.sha256(rev, path))
}

/// Whether the repo file `name` has extension `ext`.
fn has_extension(name: &str, ext: &str) -> bool {
    Path::new(name).extension().is_some_and(|e| e == ext)
}

/// The version of `huggingface_hub` in the test venv, which provides `hf`.
fn huggingface_hub_version() -> String {
    let out = Command::new(test_support::venv_dir().join("bin/python"))
        .args([
            "-c",
            "import huggingface_hub; print(huggingface_hub.__version__)",
        ])
        .output()
        .expect("running the venv's python");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// `(path, size, digest)` of every file an entry's provenance records, in order.
fn provenance_files(entry: &Value) -> Vec<(String, u64, String)> {
    entry["provenance"]["files"]
        .as_array()
        .unwrap_or_else(|| panic!("no provenance files in {entry:#}"))
        .iter()
        .map(|f| {
            (
                str_field(f, "path").to_owned(),
                u64_field(f, "size"),
                str_field(f, "digest").to_owned(),
            )
        })
        .collect()
}

/// What provenance should record for `files`.
fn records_of(files: &BTreeMap<String, Vec<u8>>) -> Vec<(String, u64, String)> {
    files
        .iter()
        .map(|(k, v)| (k.clone(), v.len() as u64, Digest::sha256_of(v).to_string()))
        .collect()
}

#[test]
fn ensure_hf_file_records_its_commit_and_checks_a_digest() -> TestResult {
    let olah = Olah::start();
    let repo = olah.add_repo(HfRepoBuilder::tiny_gguf());
    let reference = format!("hf:{TINY_GGUF}/{Q4}");
    let bytes = repo.bytes("main", Q4);
    let sha = sha256_of(&repo, "main", Q4);
    let fx = Fixture::new()?;

    let out = run_hf(&fx, &olah.endpoint(), &["ensure", &reference, "--json"]);
    let json = json_of(&out)?;
    assert_eq!(str_field(&json, "id"), reference);
    let path = PathBuf::from(str_field(&json, "local_path"));
    assert!(path.ends_with(Q4), "{json:#}");
    assert!(path.starts_with(fx.cache()), "{json:#}");
    assert_eq!(fs::read(&path)?, bytes);
    // The Hub stated the file's sha256, and the bytes matched it.
    assert_eq!(str_field(&json, "verification"), "pass");
    assert_eq!(str_field(&json, "computed"), sha);
    assert!(json.get("digest").is_none(), "{json:#}");
    assert!(!bool_field(&json, "cached"));
    assert_eq!(u64_field(&json, "bytes"), bytes.len() as u64);
    assert_eq!(u64_field(&json, "bytes_read"), bytes.len() as u64);
    assert_eq!(str_field(&json, "storage"), "cache");
    assert!(!stderr(&out).contains("unverified"), "{}", stderr(&out));

    let entry = fx.entry(&reference)?;
    assert_eq!(entry["provenance"]["fetcher"], "hf-native", "{entry:#}");
    assert_eq!(
        entry["provenance"]["resolved_revision"],
        repo.head(),
        "{entry:#}"
    );
    assert_eq!(
        provenance_files(&entry),
        [(Q4.to_owned(), bytes.len() as u64, sha.clone())]
    );

    let json = ensure_json(
        &fx,
        &olah.endpoint(),
        &["ensure", &reference, "--digest", &sha, "--json"],
    )?;
    assert_eq!(str_field(&json, "verification"), "pass");
    assert_eq!(str_field(&json, "digest"), sha);
    assert!(bool_field(&json, "cached"));

    // The digest, given on the first fetch.
    let fresh = Fixture::new()?;
    let json = ensure_json(
        &fresh,
        &olah.endpoint(),
        &["ensure", &reference, "--digest", &sha, "--json"],
    )?;
    assert_eq!(str_field(&json, "verification"), "pass");
    assert!(!bool_field(&json, "cached"));

    // A wrong one: exit 3, both digests shown, nothing recorded.
    let fresh = Fixture::new()?;
    let wrong = Digest::sha256_of(b"another model").to_string();
    let out = run_hf(
        &fresh,
        &olah.endpoint(),
        &["ensure", &reference, "--digest", &wrong],
    );
    assert_failure(&out, 3, &["mismatch", &wrong, &sha]);
    assert_one_error_line(&out);
    assert_eq!(
        fresh.run(["ls", "--json"]).stdout,
        b"[]\n",
        "an entry was recorded"
    );
    Ok(())
}

#[test]
fn ensure_hf_repo_with_revision_flag_gets_that_commit() -> TestResult {
    let olah = Olah::start();
    let repo = olah.add_repo(HfRepoBuilder::tiny_gguf());
    let first = repo.tag("v1.0");
    let new = fake_gguf("q4 v2", 5000);
    repo.commit_files("new q4", &[(Q4, &new)]);
    let fx = Fixture::new()?;

    let file = format!("hf:{TINY_GGUF}/{Q4}");
    let json = ensure_json(
        &fx,
        &olah.endpoint(),
        &["ensure", &file, "--revision", "v1.0", "--json"],
    )?;
    let id = format!("hf:{TINY_GGUF}@v1.0/{Q4}");
    assert_eq!(str_field(&json, "id"), id);
    assert_eq!(
        fs::read(str_field(&json, "local_path"))?,
        repo.bytes(&first, Q4)
    );
    assert_eq!(fx.entry(&id)?["provenance"]["resolved_revision"], first);

    let repo_ref = format!("hf:{TINY_GGUF}");
    let json = ensure_json(
        &fx,
        &olah.endpoint(),
        &["ensure", &repo_ref, "--revision", &first, "--json"],
    )?;
    assert_eq!(str_field(&json, "id"), format!("hf:{TINY_GGUF}@{first}"));
    assert_holds(
        Path::new(str_field(&json, "local_path")),
        &repo.contents(&first),
    );

    // Unpinned: the head of main.
    let json = ensure_json(&fx, &olah.endpoint(), &["ensure", &file, "--json"])?;
    assert_eq!(fs::read(str_field(&json, "local_path"))?, new);
    Ok(())
}

#[test]
fn include_and_exclude_select_files_and_a_pattern_matching_nothing_fails() -> TestResult {
    let olah = Olah::start();
    let repo = olah.add_repo(HfRepoBuilder::tiny_llama());
    let reference = format!("hf:{TINY_LLAMA}");
    let fx = Fixture::with_one_entry()?;
    let expected: BTreeMap<String, Vec<u8>> = repo
        .contents("main")
        .into_iter()
        .filter(|(k, _)| {
            (has_extension(k, "safetensors") || has_extension(k, "json"))
                && !k.starts_with("original/")
        })
        .collect();
    let json = ensure_json(
        &fx,
        &olah.endpoint(),
        &[
            "ensure",
            &reference,
            "--include",
            "*.safetensors",
            "--include",
            "*.json",
            "--exclude",
            "original/*",
            "--json",
        ],
    )?;
    assert_eq!(str_field(&json, "id"), reference);
    assert_holds(Path::new(str_field(&json, "local_path")), &expected);
    assert_eq!(str_field(&json, "computed"), tree_digest(&expected));
    let entry = fx.entry(&reference)?;
    assert_eq!(provenance_files(&entry), records_of(&expected));
    assert_eq!(
        entry["provenance"]["include"],
        serde_json::json!(["*.safetensors", "*.json"])
    );
    assert_eq!(
        entry["provenance"]["exclude"],
        serde_json::json!(["original/*"])
    );

    let before = fx.index_bytes();
    let out = run_hf(
        &fx,
        &olah.endpoint(),
        &["ensure", &reference, "--include", "*.gguf"],
    );
    assert_failure(&out, 1, &[TINY_LLAMA, "pattern"]);
    assert_one_error_line(&out);
    assert!(!hints(&out).is_empty(), "{}", stderr(&out));
    assert!(fx.index_bytes() == before, "the index changed");
    Ok(())
}

#[test]
fn missing_repo_file_or_revision_fails_with_one_line_and_a_hint() -> TestResult {
    let olah = Olah::start();
    olah.add_repo(HfRepoBuilder::tiny_gguf());
    let fx = Fixture::with_one_entry()?;
    let before = fx.index_bytes();
    for (reference, names) in [
        ("hf:test-org/no-such-repo", vec!["`test-org/no-such-repo`"]),
        (
            "hf:test-org/no-such-repo/model.gguf",
            vec!["`test-org/no-such-repo`"],
        ),
        (
            "hf:test-org/tiny-gguf/no-such-file.gguf",
            vec!["`no-such-file.gguf`", TINY_GGUF],
        ),
        (
            "hf:test-org/tiny-gguf@no-such-branch/model.Q4_K_M.gguf",
            vec!["`no-such-branch`", TINY_GGUF],
        ),
    ] {
        let out = run_hf(&fx, &olah.endpoint(), &["ensure", reference]);
        assert_failure(&out, 1, &names);
        assert_one_error_line(&out);
        assert_eq!(hints(&out).len(), 1, "{reference}: {}", stderr(&out));
        assert!(fx.index_bytes() == before, "{reference} changed the index");
    }
    // `--revision` names a missing revision the same way.
    let out = run_hf(
        &fx,
        &olah.endpoint(),
        &["ensure", &format!("hf:{TINY_GGUF}"), "--revision", "v9.9"],
    );
    assert_failure(&out, 1, &["`v9.9`", TINY_GGUF]);
    assert_one_error_line(&out);
    assert!(fx.index_bytes() == before, "the index changed");
    Ok(())
}

#[test]
fn a_hub_serving_wrong_bytes_fails_with_exit_3_and_keeps_nothing() -> TestResult {
    let olah = Olah::start();
    let repo = olah.add_repo(HfRepoBuilder::tiny_gguf());
    let proxy = LyingProxy::start(&olah.endpoint(), &format!("/resolve/{}/{Q4}", repo.head()));
    let fx = Fixture::with_one_entry()?;
    let before = fx.index_bytes();
    let expected = sha256_of(&repo, "main", Q4);
    let mut lie = repo.bytes("main", Q4);
    let middle = lie.len() / 2;
    lie[middle] ^= 0xff;
    let computed = Digest::sha256_of(&lie).to_string();

    let reference = format!("hf:{TINY_GGUF}/{Q4}");
    let out = run_hf(&fx, &proxy.endpoint(), &["ensure", &reference, "--json"]);
    assert!(proxy.lies() >= 1, "{:?}", proxy.requests());
    assert_failure(&out, 3, &["mismatch", &expected, &computed, TINY_GGUF]);
    assert_one_error_line(&out);
    assert!(fx.index_bytes() == before, "the index changed");
    for digest in [&expected, &computed] {
        let hex = digest.trim_start_matches("sha256:");
        let blob = fx.cache().join("blobs/sha256").join(hex);
        assert!(!blob.exists(), "{} was published", blob.display());
    }
    let tmp = leftovers_in_tmp(fx.cache());
    assert!(tmp.is_empty(), "left in tmp: {tmp:?}");
    assert!(
        !fx.cache().join("models/hf").exists(),
        "a model directory was made for bytes that failed"
    );
    Ok(())
}

#[test]
fn offline_serves_the_catalog_with_no_request() -> TestResult {
    let olah = Olah::start();
    olah.add_repo(HfRepoBuilder::tiny_llama());
    let fx = Fixture::new()?;
    let reference = format!("hf:{TINY_LLAMA}");
    let online = ensure_json(&fx, &olah.endpoint(), &["ensure", &reference, "--json"])?;

    olah.clear_log();
    let flag = ensure_json(
        &fx,
        &olah.endpoint(),
        &["ensure", &reference, "--offline", "--json"],
    )?;
    let mut cmd = hf_command(&fx, &olah.endpoint(), &["ensure", &reference, "--json"]);
    cmd.env("HF_HUB_OFFLINE", "1");
    let env = json_of(&run_patiently(&mut cmd))?;
    for json in [&flag, &env] {
        assert!(bool_field(json, "cached"), "{json:#}");
        assert_eq!(u64_field(json, "bytes_read"), 0);
        assert_eq!(json["local_path"], online["local_path"]);
    }
    assert_eq!(olah.settled_requests(), []);
    Ok(())
}

#[test]
fn offline_uses_an_hf_cache_filled_by_hf_download() -> TestResult {
    let olah = Olah::start();
    let gguf = olah.add_repo(HfRepoBuilder::tiny_gguf());
    let llama = olah.add_repo(HfRepoBuilder::tiny_llama());
    let fx = Fixture::new()?;
    let hub = fx.path("hub");
    let hub_arg = hub.to_str().ok_or("non-UTF-8 path")?;
    olah.hf_download(&[TINY_GGUF, Q4, "--cache-dir", hub_arg]);
    olah.hf_download(&[TINY_LLAMA, "--cache-dir", hub_arg]);

    olah.clear_log();
    let run = |args: &[&str]| {
        let mut cmd = hf_command(&fx, &olah.endpoint(), args);
        cmd.env("HF_HUB_OFFLINE", "1").env("HF_HUB_CACHE", &hub);
        run_patiently(&mut cmd)
    };
    let file = json_of(&run(&["ensure", &format!("hf:{TINY_GGUF}/{Q4}"), "--json"]))?;
    assert!(!bool_field(&file, "cached"));
    assert_eq!(
        fs::read(str_field(&file, "local_path"))?,
        gguf.bytes("main", Q4)
    );
    assert!(str_field(&file, "local_path").starts_with(fx.cache().to_str().ok_or("utf-8")?));
    assert_eq!(str_field(&file, "computed"), sha256_of(&gguf, "main", Q4));

    let whole = json_of(&run(&["ensure", &format!("hf:{TINY_LLAMA}"), "--json"]))?;
    let expected = llama.contents("main");
    assert_holds(Path::new(str_field(&whole, "local_path")), &expected);
    assert_eq!(str_field(&whole, "computed"), tree_digest(&expected));
    let entry = fx.entry(&format!("hf:{TINY_LLAMA}"))?;
    assert_eq!(provenance_files(&entry), records_of(&expected));
    assert_eq!(entry["provenance"]["resolved_revision"], llama.head());
    assert_eq!(olah.settled_requests(), []);
    Ok(())
}

#[test]
fn offline_with_nothing_to_answer_from_names_the_reference() -> TestResult {
    let olah = Olah::start();
    olah.add_repo(HfRepoBuilder::tiny_gguf());
    let fx = Fixture::with_one_entry()?;
    let before = fx.index_bytes();
    let reference = format!("hf:{TINY_GGUF}/{Q4}");
    let out = run_hf(&fx, &olah.endpoint(), &["ensure", &reference, "--offline"]);
    assert_failure(&out, 1, &["offline", &format!("`{reference}`")]);
    assert_one_error_line(&out);
    let hint = hints(&out).join("\n");
    assert!(
        hint.contains("--offline") || hint.contains("HF_HUB_OFFLINE"),
        "{hint}"
    );
    assert!(fx.index_bytes() == before, "the index changed");
    assert_eq!(olah.settled_requests(), []);
    Ok(())
}

#[test]
fn via_hf_cli_fetches_the_same_files_as_the_native_client() -> TestResult {
    let olah = Olah::start();
    let gguf = olah.add_repo(HfRepoBuilder::tiny_gguf());
    let llama = olah.add_repo(HfRepoBuilder::tiny_llama());
    let native = Fixture::new()?;
    let shell = Fixture::new()?;
    let cases: [(String, Vec<&str>); 3] = [
        (format!("hf:{TINY_GGUF}/{Q4}"), vec![]),
        (format!("hf:{TINY_LLAMA}"), vec![]),
        (format!("hf:{TINY_LLAMA}"), vec!["--include", "*.json"]),
    ];
    for (reference, extra) in &cases {
        let mut args = vec!["ensure", reference.as_str(), "--json"];
        args.extend(extra.iter().copied());
        let by_native = ensure_json(&native, &olah.endpoint(), &args)?;
        args.extend(["--via", "hf-cli"]);
        let mut cmd = hf_command(&shell, &olah.endpoint(), &args);
        cmd.env("PATH", hf_bin_dir());
        let by_cli = json_of(&run_patiently(&mut cmd))?;

        assert_eq!(by_cli["id"], by_native["id"], "{reference} {extra:?}");
        assert_eq!(
            by_cli["computed"], by_native["computed"],
            "{reference} {extra:?}"
        );
        assert_eq!(by_cli["bytes"], by_native["bytes"], "{reference} {extra:?}");
        assert!(
            Path::new(str_field(&by_cli, "local_path")).starts_with(shell.cache()),
            "{by_cli:#}"
        );
        let (native_entry, cli_entry) = (native.entry(reference)?, shell.entry(reference)?);
        assert_eq!(cli_entry["provenance"]["fetcher"], "hf-cli");
        assert_eq!(
            provenance_files(&cli_entry),
            provenance_files(&native_entry),
            "{reference} {extra:?}"
        );
        assert_eq!(
            cli_entry["provenance"]["resolved_revision"],
            native_entry["provenance"]["resolved_revision"]
        );
    }
    let file = shell.entry(&format!("hf:{TINY_GGUF}/{Q4}"))?;
    assert_eq!(
        fs::read(str_field(&file, "local_path"))?,
        gguf.bytes("main", Q4)
    );
    let json_only: BTreeMap<String, Vec<u8>> = llama
        .contents("main")
        .into_iter()
        .filter(|(k, _)| has_extension(k, "json"))
        .collect();
    let whole = shell.entry(&format!("hf:{TINY_LLAMA}"))?;
    assert_holds(Path::new(str_field(&whole, "local_path")), &json_only);
    // The tool's scratch cache is gone.
    let tmp = leftovers_in_tmp(shell.cache());
    assert!(tmp.is_empty(), "left in tmp: {tmp:?}");
    Ok(())
}

#[test]
fn via_hf_cli_with_no_executable_tool_on_path_says_how_to_get_one() -> TestResult {
    let olah = Olah::start();
    olah.add_repo(HfRepoBuilder::tiny_gguf());
    let fx = Fixture::with_one_entry()?;
    let before = fx.index_bytes();
    // An empty directory, and one with an `hf` that is not executable.
    let empty = fx.path("empty-bin");
    let not_exec = fx.path("not-exec-bin");
    fs::create_dir_all(&empty)?;
    fs::create_dir_all(&not_exec)?;
    fs::write(not_exec.join("hf"), "#!/bin/sh\nexit 0\n")?;
    let path = std::env::join_paths([&empty, &not_exec])?;
    let mut cmd = hf_command(
        &fx,
        &olah.endpoint(),
        &["ensure", &format!("hf:{TINY_GGUF}/{Q4}"), "--via", "hf-cli"],
    );
    cmd.env("PATH", path);
    let out = run_patiently(&mut cmd);
    assert_failure(&out, 1, &["`hf`", "`huggingface-cli`"]);
    assert_one_error_line(&out);
    let hint = hints(&out).join("\n");
    assert!(hint.contains("pip install -U huggingface_hub"), "{hint}");
    assert!(hint.contains("--via native"), "{hint}");
    assert!(fx.index_bytes() == before, "the index changed");
    assert_eq!(olah.settled_requests(), []);
    Ok(())
}

#[test]
fn the_token_never_appears_in_output_logs_catalog_or_cache() -> TestResult {
    const SECRET: &str = "TESTSECRET";
    let olah = Olah::start();
    olah.add_repo(HfRepoBuilder::tiny_gguf());
    olah.add_repo(HfRepoBuilder::tiny_llama());
    let fx = Fixture::new()?;
    let runs: [(Vec<String>, i32, bool); 5] = [
        (vec![format!("hf:{TINY_GGUF}/{Q4}")], 0, false),
        (vec![format!("hf:{TINY_LLAMA}")], 0, false),
        (vec![format!("hf:{TINY_GGUF}/no-such-file.gguf")], 1, false),
        (
            vec![format!("hf:{TINY_GGUF}/{Q4}"), "--refresh".into()],
            0,
            false,
        ),
        (
            vec![
                format!("hf:{TINY_GGUF}/model.Q8_0.gguf"),
                "--via".into(),
                "hf-cli".into(),
            ],
            0,
            true,
        ),
    ];
    let mut saw_trace = false;
    for (args, code, via_cli) in &runs {
        let mut all = vec!["-vvv", "ensure"];
        all.extend(args.iter().map(String::as_str));
        let mut cmd = hf_command(&fx, &olah.endpoint(), &all);
        cmd.env("HF_TOKEN", "hf_TESTSECRET123")
            .env("MODEL_PROVISIONER_LOG", "trace");
        if *via_cli {
            cmd.env("PATH", hf_bin_dir());
        }
        let out = run_patiently(&mut cmd);
        assert_code(&out, *code);
        saw_trace |= stderr(&out).contains("TRACE");
        assert!(
            !stdout(&out).contains(SECRET),
            "{args:?} stdout:\n{}",
            stdout(&out)
        );
        assert!(
            !stderr(&out).contains(SECRET),
            "{args:?} stderr:\n{}",
            stderr(&out)
        );
    }
    assert!(saw_trace, "trace logging was not on");
    let show = fx.run(["show", &format!("hf:{TINY_LLAMA}"), "--json"]);
    assert_code(&show, 0);
    assert!(!stdout(&show).contains(SECRET));
    let index = fx.index_bytes().ok_or("no index")?;
    assert!(!String::from_utf8_lossy(&index).contains(SECRET));
    let mut checked = 0;
    for (rel, bytes) in files_under(fx.cache())? {
        checked += 1;
        assert!(
            !bytes.windows(SECRET.len()).any(|w| w == SECRET.as_bytes()),
            "the token is in {rel}"
        );
        assert!(!rel.contains(SECRET), "the token names {rel}");
    }
    assert!(checked > 5, "only {checked} files under the cache");
    Ok(())
}

#[test]
fn parallel_files_1_and_4_give_the_same_model() -> TestResult {
    let olah = Olah::start();
    let repo = olah.add_repo(HfRepoBuilder::tiny_llama());
    let reference = format!("hf:{TINY_LLAMA}");
    let expected = repo.contents("main");
    let mut results = Vec::new();
    for n in ["1", "4"] {
        let fx = Fixture::new()?;
        let json = ensure_json(
            &fx,
            &olah.endpoint(),
            &["ensure", &reference, "--parallel-files", n, "--json"],
        )?;
        let dir = PathBuf::from(str_field(&json, "local_path"));
        assert_holds(&dir, &expected);
        let entry = fx.entry(&reference)?;
        let relative = dir.strip_prefix(fx.cache())?.to_owned();
        results.push((
            json["computed"].clone(),
            json["bytes"].clone(),
            json["bytes_read"].clone(),
            relative,
            provenance_files(&entry),
        ));
        drop(fx);
    }
    assert_eq!(results[0], results[1]);
    assert_eq!(results[0].0, tree_digest(&expected));
    assert_eq!(results[0].4, records_of(&expected));
    Ok(())
}

#[test]
fn via_hf_cli_records_the_tool_and_its_version() -> TestResult {
    let olah = Olah::start();
    olah.add_repo(HfRepoBuilder::tiny_gguf());
    let fx = Fixture::new()?;
    let reference = format!("hf:{TINY_GGUF}/{Q4}");
    let mut cmd = hf_command(
        &fx,
        &olah.endpoint(),
        &["ensure", &reference, "--via", "hf-cli"],
    );
    cmd.env("PATH", hf_bin_dir());
    assert_code(&run_patiently(&mut cmd), 0);
    let entry = fx.entry(&reference)?;
    assert_eq!(entry["provenance"]["fetcher"], "hf-cli");
    // As `hf version` states it (`version: 2.4.0`, under a coloured title line).
    assert_eq!(
        entry["provenance"]["fetcher_version"],
        format!("hf {}", huggingface_hub_version()),
        "{entry:#}"
    );
    Ok(())
}

#[test]
fn via_hf_cli_reports_the_bytes_it_transferred() -> TestResult {
    let olah = Olah::start();
    let repo = olah.add_repo(HfRepoBuilder::tiny_gguf());
    let fx = Fixture::new()?;
    let mut cmd = hf_command(
        &fx,
        &olah.endpoint(),
        &[
            "ensure",
            &format!("hf:{TINY_GGUF}/{Q4}"),
            "--via",
            "hf-cli",
            "--json",
        ],
    );
    cmd.env("PATH", hf_bin_dir());
    let json = json_of(&run_patiently(&mut cmd))?;
    assert!(!bool_field(&json, "cached"));
    // The tool downloaded the file and it was hashed: this run read every byte of it, as
    // `bytes_read` says for the native client.
    assert_eq!(
        u64_field(&json, "bytes_read"),
        repo.size("main", Q4),
        "{json:#}"
    );
    Ok(())
}
