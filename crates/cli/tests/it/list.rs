//! `ensure --from LIST`: the models a node needs, in one TOML or JSON file, ensured together;
//! one line (or JSON object) per model, and the worst exit status of them.

use std::fs;
use std::io::Write as _;
use std::process::Stdio;

use catalog_core::Digest;
use test_support::{Nginx, S3Server, random_bytes as bytes};

use crate::fixture::{Fixture, TestResult, assert_code, assert_failure, stdout};

#[test]
fn every_model_of_a_list_is_ensured_and_a_wrong_digest_makes_the_status_three() -> TestResult {
    let nginx = Nginx::start();
    let (a, b) = (bytes(300_000, 81), bytes(200_000, 82));
    nginx.put("m/a.gguf", &a)?;
    nginx.put("m/b.gguf", &b)?;
    let fx = Fixture::new()?;
    let list = fx.path("models.toml");
    fs::write(
        &list,
        format!(
            "[[models]]\nref = \"{a_url}\"\ndigest = \"{a_digest}\"\n\n\
             [[models]]\nref = \"{b_url}\"\ndigest = \"sha256:{zeros}\"\n\n\
             [[models]]\nref = \"{b_url}x\"\n",
            a_url = nginx.url("files/m/a.gguf"),
            a_digest = Digest::sha256_of(&a),
            b_url = nginx.url("files/m/b.gguf"),
            zeros = "0".repeat(64),
        ),
    )?;
    let out = fx.run(["ensure", "--from", list.to_str().ok_or("utf-8")?, "--json"]);
    // The wrong digest is the worst: 3, though the missing file (1) came after it.
    assert_code(&out, 3);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let models = json["models"].as_array().ok_or("models")?;
    let statuses: Vec<u64> = models.iter().filter_map(|m| m["status"].as_u64()).collect();
    assert_eq!(statuses, [0, 3, 1], "{json:#}");
    assert_eq!(models[0]["verification"], "pass");
    assert_eq!(
        fs::read(models[0]["local_path"].as_str().ok_or("a path")?)?,
        a
    );
    assert!(
        models[1]["error"]
            .as_str()
            .is_some_and(|e| e.contains("digest mismatch")),
        "{json:#}"
    );

    // Again, as text: the first is already present, one line each.
    let out = fx.run(["ensure", "--from", list.to_str().ok_or("utf-8")?]);
    assert_code(&out, 3);
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert!(
        lines[0].starts_with("ok ") && lines[0].contains("already present"),
        "{text}"
    );
    assert!(
        lines[1].starts_with("FAIL ") && lines[2].starts_with("FAIL "),
        "{text}"
    );
    Ok(())
}

#[test]
fn models_of_their_own_settings_take_them_and_a_json_list_reads_from_stdin() -> TestResult {
    let server = S3Server::start()?;
    server.create_bucket("lists")?;
    for folder in ["one", "two"] {
        server.put("lists", &format!("{folder}/config.json"), b"{}")?;
        server.put("lists", &format!("{folder}/w.bin"), &bytes(100_000, 83))?;
    }
    let fx = Fixture::new()?;
    // The list's include takes every model but the second, which asks for all its files.
    let list = serde_json::json!({
        "include": ["*.json"],
        "models": [
            {"ref": "s3://lists/one/"},
            {"ref": "s3://lists/two/", "include": []},
        ]
    });
    let mut cmd = fx.command(["ensure", "--from", "-", "--json"]);
    cmd.env("AWS_ACCESS_KEY_ID", server.access_key())
        .env("AWS_SECRET_ACCESS_KEY", server.secret_key())
        .env("AWS_ENDPOINT_URL", server.endpoint())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn()?;
    child
        .stdin
        .take()
        .ok_or("stdin")?
        .write_all(list.to_string().as_bytes())?;
    let out = child.wait_with_output()?;
    assert_code(&out, 0);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let dir = |i: usize| -> TestResult<Vec<String>> {
        let path = json["models"][i]["local_path"].as_str().ok_or("a path")?;
        let mut names: Vec<String> = fs::read_dir(path)?
            .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
            .collect::<Result<_, _>>()?;
        names.sort();
        Ok(names)
    };
    assert_eq!(dir(0)?, ["config.json"]);
    assert_eq!(dir(1)?, ["config.json", "w.bin"]);
    Ok(())
}

#[test]
fn a_list_that_is_no_list_is_a_usage_error_naming_the_file() -> TestResult {
    let fx = Fixture::new()?;
    let list = fx.path("models.toml");
    fs::write(
        &list,
        "[[models]]\nref = \"hf:org/repo\"\nrevison = \"v1\"\n",
    )?;
    let out = fx.run(["ensure", "--from", list.to_str().ok_or("utf-8")?]);
    assert_failure(&out, 2, &["models.toml", "revison"]);
    let out = fx.run(["ensure", "hf:org/repo", "--from", "models.toml"]);
    assert_code(&out, 2);
    Ok(())
}
