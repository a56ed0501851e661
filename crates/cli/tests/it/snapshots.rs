//! What the user reads, as snapshots: the text and JSON of `ensure`, `ls`, `show` and
//! `verify`, and the errors with their hints. Temporary paths, ports, times and other values
//! that change from run to run are filtered out; digests of fixed bytes are kept.

use std::path::Path;
use std::process::Output;

use test_support::{Answer, FaultServer};

use crate::fixture::{Fixture, TestResult, assert_code, stderr, stdout};

/// Escapes the characters that mean something in a regular expression.
fn regex_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if "\\.+*?()|[]{}^$#&-~".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Insta filters for a fixture: its directory, ports, times, the per-id hash in cache paths,
/// and the numbers of a file's identity (inode, device, mtime).
pub(crate) fn filters(root: &Path) -> Vec<(String, String)> {
    let pairs = [
        (regex_escape(&root.display().to_string()), "[TMP]"),
        (r"127\.0\.0\.1([:-])\d+".to_owned(), "127.0.0.1${1}[PORT]"),
        (r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z".to_owned(), "[TIME]"),
        (
            r"models/(file|http/[^/]+)/[0-9a-f]{16}/".to_owned(),
            "models/$1/[ID-HASH]/",
        ),
        (
            r#""(\w+_ms|mtime_ns|inode|device)": \d+"#.to_owned(),
            r#""$1": [N]"#,
        ),
        // The ID column is as wide as the longest id, which holds the temporary path: the
        // rows stay aligned with each other, but the header's padding depends on the path.
        (r"(?m)^ID +STATE".to_owned(), "ID  [PAD]  STATE"),
    ];
    pairs.into_iter().map(|(a, b)| (a, b.to_owned())).collect()
}

/// Asserts the snapshot `name` of `text`, filtered for `fx`.
fn assert_filtered(fx: &Fixture, name: &str, text: &str) {
    let filters = filters(fx.root());
    insta::with_settings!({
        filters => filters.iter().map(|(a, b)| (a.as_str(), b.as_str())),
        prepend_module_to_snapshot => true,
    }, {
        insta::assert_snapshot!(name, text);
    });
}

/// What a user sees of one run of `model-provisioner args`: the command, its exit status,
/// stdout and stderr.
fn transcript(args: &[&str], out: &Output) -> String {
    let shown: Vec<String> = std::iter::once("model-provisioner")
        .chain(args.iter().copied())
        .map(|a| {
            if a.is_empty() || a.contains(' ') {
                format!("'{a}'")
            } else {
                a.to_owned()
            }
        })
        .collect();
    format!(
        "$ {}\nexit: {}\n--- stdout\n{}--- stderr\n{}",
        shown.join(" "),
        out.status
            .code()
            .map_or_else(|| "killed".to_owned(), |c| c.to_string()),
        stdout(out),
        stderr(out)
    )
}

/// Runs each of `runs` in `fx`, expecting `code` from each, and joins their transcripts.
fn session(fx: &Fixture, runs: &[(&[&str], i32)]) -> String {
    runs.iter()
        .map(|(args, code)| {
            let out = fx.run(args.iter().copied());
            assert_eq!(out.status.code(), Some(*code), "{}", transcript(args, &out));
            transcript(args, &out)
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The sha256 of "model a, verified", the verified model of [`three_models`].
const A: &str = "sha256:a7fc1aac41f846de92a6ab4876a5bf99e510e250365408a0df7e6b24cb92e94c";

/// A catalog with a verified, an unverified and retired, and a copied model; `b.gguf` is a
/// real (tiny) GGUF file, the others only bear the name.
fn three_models() -> TestResult<Fixture> {
    let fx = Fixture::new()?;
    let a = fx.write_model("a.gguf", b"model a, verified")?.to_string();
    assert_eq!(a, A);
    fx.write_model("b.gguf", &test_support::model_files::tiny_llama().bytes())?;
    let c = fx.write_model("c.gguf", &[7u8; 3000])?.to_string();
    assert_code(&fx.run(["ensure", "a.gguf", "--digest", &a]), 0);
    assert_code(&fx.run(["-q", "ensure", "b.gguf"]), 0);
    assert_code(&fx.run(["retire", "b.gguf"]), 0);
    assert_code(&fx.run(["ensure", "c.gguf", "--copy", "--digest", &c]), 0);
    Ok(fx)
}

#[test]
fn ls_table() -> TestResult {
    let fx = three_models()?;
    let out = fx.run(["ls"]);
    assert_code(&out, 0);
    assert_filtered(&fx, "ls_table", &stdout(&out));
    Ok(())
}

#[test]
fn ls_empty_and_json() -> TestResult {
    let fx = Fixture::new()?;
    let empty = session(&fx, &[(&["ls"], 0), (&["ls", "--json"], 0)]);
    assert_filtered(&fx, "ls_empty", &empty);
    let fx = three_models()?;
    let json = session(&fx, &[(&["ls", "--json"], 0)]);
    assert_filtered(&fx, "ls_json", &json);
    Ok(())
}

#[test]
fn show_text() -> TestResult {
    let fx = three_models()?;
    let out = fx.run(["show", "a.gguf"]);
    assert_code(&out, 0);
    assert_filtered(&fx, "show_text", &stdout(&out));
    Ok(())
}

#[test]
fn show_retired_copied_and_json() -> TestResult {
    let fx = three_models()?;
    let text = session(
        &fx,
        &[
            (&["show", "b.gguf"], 0),
            (&["show", "c.gguf"], 0),
            (&["show", "a.gguf", "--json"], 0),
        ],
    );
    assert_filtered(&fx, "show_retired_copied_and_json", &text);
    Ok(())
}

#[test]
fn ensure_text() -> TestResult {
    let fx = Fixture::new()?;
    fx.write_model("a.gguf", b"model a, verified")?;
    fx.write_model("b.gguf", b"model b")?;
    fx.write_model("tiny-model/config.json", b"{}")?;
    fx.write_model("tiny-model/weights.safetensors", b"weights")?;
    let text = session(
        &fx,
        &[
            (&["ensure", "a.gguf", "--digest", A], 0),
            (&["ensure", "a.gguf"], 0),
            (&["ensure", "b.gguf"], 0),
            (&["ensure", "b.gguf", "--copy"], 0),
            (&["ensure", "tiny-model"], 0),
            (&["-q", "ensure", "a.gguf"], 0),
        ],
    );
    assert_filtered(&fx, "ensure_text", &text);
    Ok(())
}

#[test]
fn ensure_json() -> TestResult {
    let fx = Fixture::new()?;
    fx.write_model("a.gguf", b"model a, verified")?;
    let text = session(
        &fx,
        &[
            (&["ensure", "a.gguf", "--digest", A, "--json"], 0),
            (&["ensure", "a.gguf", "--json"], 0),
        ],
    );
    assert_filtered(&fx, "ensure_json", &text);
    Ok(())
}

#[test]
fn ensure_over_http() -> TestResult {
    let server = FaultServer::start(
        b"weights over http".to_vec(),
        vec![Answer::Serve { ranges: true }],
    );
    let missing = FaultServer::start(Vec::new(), vec![Answer::Status(404)]);
    let fx = Fixture::new()?;
    let url = server.url("m.gguf");
    let gone = missing.url("gone.gguf");
    let text = session(
        &fx,
        &[
            (&["ensure", &url], 0),
            (&["ensure", &url, "--json"], 0),
            (&["ensure", &gone, "--retries", "0"], 1),
        ],
    );
    assert_filtered(&fx, "ensure_over_http", &text);
    Ok(())
}

#[test]
fn verify_pass_and_failure() -> TestResult {
    let fx = three_models()?;
    let pass = session(
        &fx,
        &[
            (&["verify", "a.gguf"], 0),
            (&["verify", "--all"], 0),
            (&["verify", "a.gguf", "--json"], 0),
        ],
    );
    assert_filtered(&fx, "verify_pass", &pass);
    fx.write_model("a.gguf", b"model A, verified")?;
    let failure = session(
        &fx,
        &[
            (&["verify", "a.gguf"], 3),
            (&["verify", "a.gguf", "--json"], 3),
        ],
    );
    assert_filtered(&fx, "verify_failure", &failure);
    Ok(())
}

#[test]
fn show_after_a_failed_verify_without_a_digest() -> TestResult {
    // With no digest given, the digest the first `verify` computed is what later checks
    // expect: `show` names it as expected, not as computed.
    let fx = Fixture::new()?;
    fx.write_model("d.gguf", b"model d, as first seen")?;
    assert_code(&fx.run(["-q", "ensure", "d.gguf"]), 0);
    assert_code(&fx.run(["-q", "verify", "d.gguf"]), 0);
    fx.write_model("d.gguf", b"model d, changed since")?;
    let text = session(&fx, &[(&["verify", "d.gguf"], 3), (&["show", "d.gguf"], 0)]);
    assert_filtered(&fx, "show_after_failed_verify_without_digest", &text);
    Ok(())
}

#[test]
fn usage_errors() -> TestResult {
    let fx = Fixture::with_one_entry()?;
    let text = session(
        &fx,
        &[
            (&[], 2),
            (&["ensure", ""], 2),
            (&["ensure", "ftp://x/y"], 2),
            (&["ensure", "hf:org/repo/../../etc/passwd"], 2),
            (&["ensure", "hf:org"], 2),
            (&["ensure", "model.gguf", "--digest", "sha256:xyz"], 2),
            (&["ensure", "model.gguf", "--digest", "md5:abc"], 2),
            (&["--quiet", "--verbose", "ls"], 2),
            (&["verify"], 2),
            (&["verify", "model.gguf", "--all"], 2),
            (&["ls", "--frobnicate"], 2),
        ],
    );
    assert_filtered(&fx, "usage_errors", &text);
    Ok(())
}

#[test]
fn runtime_errors() -> TestResult {
    let fx = Fixture::with_one_entry()?;
    fx.write_model("other.gguf", b"other bytes")?;
    let text = session(
        &fx,
        &[
            (&["ensure", "nowhere.gguf"], 1),
            (
                &[
                    "ensure",
                    "other.gguf",
                    "--digest",
                    "sha256:0000000000000000000000000000000000000000000000000000000000000000",
                ],
                3,
            ),
            (&["show", "file:/not/in/catalog.gguf"], 1),
            (&["rm", "file:/not/in/catalog.gguf"], 1),
            (&["verify", "file:/not/in/catalog.gguf"], 1),
            (&["ensure", "s3://bucket/key.gguf"], 1),
        ],
    );
    assert_filtered(&fx, "runtime_errors", &text);
    Ok(())
}
