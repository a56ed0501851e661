//! Hostile input: references and digests built to escape the cache, confuse a terminal or
//! crash a parser, and a cache with planted symlinks pointing outside. Each case fails clearly,
//! leaves the index byte-identical and writes nothing outside the cache root.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::Output;

use catalog_core::Digest;
use test_support::Nginx;

use crate::fixture::{Fixture, TestResult, assert_code, stderr, stdout};

/// What a path outside the cache is: a file's bytes, a symlink's target, or a directory.
#[derive(Debug, PartialEq, Eq)]
enum Node {
    Dir,
    File(Vec<u8>),
    Link(PathBuf),
}

/// Everything under `dir`, except below `skip` (the cache), by path.
fn snapshot(dir: &Path, skip: &Path) -> BTreeMap<PathBuf, Node> {
    fn walk(dir: &Path, skip: &Path, out: &mut BTreeMap<PathBuf, Node>) {
        for entry in fs::read_dir(dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.starts_with(skip) {
                continue;
            }
            let Ok(meta) = fs::symlink_metadata(&path) else {
                continue;
            };
            if meta.file_type().is_symlink() {
                let target = fs::read_link(&path).unwrap_or_default();
                out.insert(path, Node::Link(target));
            } else if meta.is_dir() {
                out.insert(path.clone(), Node::Dir);
                walk(&path, skip, out);
            } else {
                let bytes = fs::read(&path).unwrap_or_default();
                out.insert(path, Node::File(bytes));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, skip, &mut out);
    out
}

/// One bad command line: the arguments after `ensure`, the exit code and a phrase of the error.
struct Case {
    args: Vec<String>,
    code: i32,
    phrase: &'static str,
}

fn ensure(reference: &str, code: i32, phrase: &'static str) -> Case {
    Case {
        args: vec![reference.to_owned()],
        code,
        phrase,
    }
}

fn digest(value: &str, code: i32, phrase: &'static str) -> Case {
    Case {
        args: vec!["model.gguf".into(), "--digest".into(), value.to_owned()],
        code,
        phrase,
    }
}

fn cases(fx: &Fixture) -> TestResult<Vec<Case>> {
    let long = "a".repeat(10_000);
    let hex = Digest::sha256_of(b"one verified model").value().to_owned();
    fx.write_model("other.gguf", b"another model")?;
    let segment = "`..` segment";
    let ascii = "only ASCII letters";
    let control = "control character";
    Ok(vec![
        // Hugging Face references that try to climb out or smuggle separators.
        ensure("hf:../x", 2, segment),
        ensure("hf:org/..", 2, segment),
        ensure("hf:org/repo/../../etc/passwd", 2, segment),
        ensure("hf:org/repo/a/../b", 2, segment),
        ensure("hf:org/repo@../x", 2, segment),
        ensure("hf:org/repo/a\\b", 2, "backslash"),
        ensure("hf:org\\repo", 2, "needs at least `org/repo`"),
        ensure("hf:org/repo/.", 2, "`.` segment"),
        ensure("hf:org/repo//x", 2, "empty segment"),
        ensure("hf:/x", 2, "empty segment"),
        ensure("hf:org//repo", 2, "empty segment"),
        ensure("hf:org/repo@", 2, "empty segment"),
        ensure("hf:org", 2, "needs at least `org/repo`"),
        ensure("hf:", 2, "needs at least `org/repo`"),
        ensure("hf:org/re po", 2, ascii),
        // Unicode lookalikes: Cyrillic `о`, `е`, a division slash and a fullwidth solidus.
        ensure("hf:\u{43e}rg/repo", 2, ascii),
        ensure("hf:org/r\u{435}po", 2, ascii),
        ensure("hf:org/repo\u{2215}x", 2, ascii),
        ensure("hf:org\u{ff0f}repo", 2, "needs at least `org/repo`"),
        // Control characters (NUL cannot be passed in argv at all).
        ensure("hf:org/re\u{1b}po", 2, control),
        ensure("hf:org/re\npo", 2, control),
        ensure("x\u{1b}[31my", 2, control),
        ensure("a\u{7}b", 2, control),
        ensure("a\u{7f}b", 2, control),
        ensure(&format!("{long}\u{1b}"), 2, control),
        // Other schemes and broken URLs.
        ensure("file://host/x", 2, "must be followed by an absolute path"),
        ensure("file:", 2, "has no path"),
        ensure("s3://Bucket/k", 2, "not a valid S3 bucket name"),
        ensure("s3://", 2, "not a valid S3 bucket name"),
        ensure("oci://reg/Repo", 2, "may hold only lowercase"),
        ensure("oci://", 2, "has no repository"),
        ensure("ftp://x", 2, "unknown scheme `ftp:`"),
        ensure("javascript:alert(1)", 2, "unknown scheme `javascript:`"),
        ensure("http://", 2, "empty host"),
        ensure("https://[::1", 2, "invalid IPv6 address"),
        ensure("http://x:99999/a", 2, "invalid port number"),
        ensure(
            "https://exa mple.com/",
            2,
            "invalid international domain name",
        ),
        ensure("http://%zz/", 2, "invalid international domain name"),
        ensure("", 2, "the reference is empty"),
        ensure(" ", 2, "the reference is empty"),
        // Very long references.
        ensure(&long, 1, "File name too long"),
        ensure(&format!("./{long}/x"), 1, "File name too long"),
        ensure(&format!("file:/{long}"), 1, "File name too long"),
        ensure(
            &format!("s3://bucket/{long}"),
            1,
            "no AWS credentials found",
        ),
        ensure(
            &format!("oci://reg/{long}"),
            2,
            "registries take at most 255",
        ),
        ensure("nowhere.gguf", 1, "does not exist"),
        // Bad digests.
        digest("", 2, "it is empty"),
        digest("sha256:", 2, "0 hex digits, not 64"),
        digest("sha256:abc", 2, "3 hex digits, not 64"),
        digest(&format!("sha256:{hex}00"), 2, "66 hex digits, not 64"),
        digest(
            &format!("sha256:{}g", &hex[..63]),
            2,
            "`g` is not a hex digit",
        ),
        digest(&format!("md5:{hex}"), 2, "unknown algorithm `md5`"),
        digest(&format!("sha512:{hex}"), 2, "unknown algorithm `sha512`"),
        digest(&format!("blake3:{hex}"), 2, "unknown algorithm `blake3`"),
        digest(&format!(":{hex}"), 2, "unknown algorithm ``"),
        digest(&hex, 2, "algorithm prefix is missing"),
        digest(&format!("sha256-{hex}"), 2, "algorithm prefix is missing"),
        digest(&format!("sha256: {hex}"), 2, "` ` is not a hex digit"),
        digest(&format!("sha256:sha256:{hex}"), 2, "`s` is not a hex digit"),
        digest("sha256:\u{1b}[31m", 2, "is not a hex digit"),
        // A well-formed digest that does not match a new file.
        Case {
            args: vec![
                "other.gguf".into(),
                "--digest".into(),
                format!("sha256:{}", "0".repeat(64)),
            ],
            code: 3,
            phrase: "digest mismatch",
        },
    ])
}

#[test]
fn hostile_references_and_digests_fail_clearly_and_touch_nothing() -> TestResult {
    let fx = Fixture::with_one_entry()?;
    let table = cases(&fx)?;
    assert!(table.len() >= 40, "only {} cases", table.len());
    let index = fx.index_bytes();
    let mut failures = Vec::new();
    for case in &table {
        let before = snapshot(fx.root(), fx.cache());
        let out = fx.run(std::iter::once("ensure").chain(case.args.iter().map(String::as_str)));
        let what = format!("{:?}", case.args);
        let err = stderr(&out);
        let mut problems = Vec::new();
        if out.status.code() != Some(case.code) {
            problems.push(format!("exit {:?}, not {}", out.status.code(), case.code));
        }
        if !err.lines().any(|l| l.starts_with("error: ")) {
            problems.push("no `error: ` line".to_owned());
        }
        if !err.contains(case.phrase) {
            problems.push(format!("no {:?} in the error", case.phrase));
        }
        if let Some(b) = out
            .stderr
            .iter()
            .chain(&out.stdout)
            .find(|b| [0, 0x1b].contains(b))
        {
            problems.push(format!("raw byte {b:#04x} in the output"));
        }
        if fx.index_bytes() != index {
            problems.push("the index changed".to_owned());
        }
        if snapshot(fx.root(), fx.cache()) != before {
            problems.push("something outside the cache changed".to_owned());
        }
        if !problems.is_empty() {
            let shown: String = what.chars().take(200).collect();
            let err: String = err.chars().take(600).collect();
            failures.push(format!(
                "{shown}: {}\n--- stdout\n{}--- stderr\n{}",
                problems.join("; "),
                stdout(&out),
                err.escape_debug()
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n\n{}",
        failures.len(),
        table.len(),
        failures.join("\n\n")
    );
    Ok(())
}

/// Regression guard for terminal injection: control characters of the input (CR, LF, BEL, DEL,
/// the C1 CSI `U+009B`) are shown escaped in the error, never written raw.
#[test]
fn errors_show_control_characters_of_the_input_escaped() -> TestResult {
    let fx = Fixture::with_one_entry()?;
    let mut failures = Vec::new();
    for (reference, raw) in [
        ("a\rb", &b"\r"[..]),
        ("hf:org/re\npo", b"\npo"),
        ("a\u{7}b", b"\x07"),
        ("a\u{7f}b", b"\x7f"),
        ("a\u{9b}31mb", "\u{9b}".as_bytes()),
        ("x\u{1b}]0;pwned\u{7}y", b"\x1b"),
    ] {
        let out = fx.run(["ensure", reference]);
        assert_code(&out, 2);
        let holds = out.stderr.windows(raw.len()).any(|w| w == raw);
        if holds {
            failures.push(format!(
                "{reference:?}: stderr holds it raw: {:?}",
                stderr(&out)
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    Ok(())
}

/// The cache directory name of an nginx host: `models/http/127.0.0.1-<port>`.
fn http_host_dir(fx: &Fixture, nginx: &Nginx) -> PathBuf {
    fx.cache()
        .join("models")
        .join("http")
        .join(format!("127.0.0.1-{}", nginx.port()))
}

/// A directory outside the cache with one file in it.
fn outside_dir(fx: &Fixture, name: &str) -> TestResult<PathBuf> {
    let dir = fx.path(name);
    fs::create_dir_all(&dir)?;
    fs::write(dir.join("keep.txt"), b"the user's own file")?;
    Ok(dir)
}

fn assert_refused_or_inside(what: &str, out: &Output) {
    if !out.status.success() {
        let err = stderr(out);
        assert!(
            err.lines().any(|l| l.starts_with("error: ")),
            "{what}: failed without an `error: ` line:\n{err}"
        );
    }
}

#[test]
fn a_planted_host_symlink_lets_no_download_escape_the_cache() -> TestResult {
    let nginx = Nginx::start();
    let body = b"downloaded model".repeat(1000);
    nginx.put("m.bin", &body)?;
    let fx = Fixture::with_one_entry()?;
    let outside = outside_dir(&fx, "outside")?;
    let host = http_host_dir(&fx, &nginx);
    fs::create_dir_all(host.parent().ok_or("no parent")?)?;
    symlink(&outside, &host)?;
    let before = snapshot(fx.root(), fx.cache());
    let index = fx.index_bytes();
    let digest = Digest::sha256_of(&body).to_string();
    let out = fx.run(["ensure", &nginx.url("files/m.bin"), "--digest", &digest]);
    assert_refused_or_inside("ensure", &out);
    assert_eq!(
        snapshot(fx.root(), fx.cache()),
        before,
        "ensure wrote outside the cache through models/http/<host>:\n{}",
        stderr(&out)
    );
    if !out.status.success() {
        assert_eq!(
            fx.index_bytes(),
            index,
            "a refused ensure changed the index"
        );
    }
    Ok(())
}

#[test]
fn a_planted_blobs_symlink_lets_no_copy_escape_the_cache() -> TestResult {
    let fx = Fixture::with_one_entry()?;
    let outside = outside_dir(&fx, "outside")?;
    plant(&fx.cache().join("blobs").join("sha256"), &outside)?;
    let digest = fx.write_model("copied.gguf", b"a model to copy")?;
    let before = snapshot(fx.root(), fx.cache());
    let out = fx.run([
        "ensure",
        "copied.gguf",
        "--copy",
        "--digest",
        &digest.to_string(),
    ]);
    assert_refused_or_inside("ensure --copy", &out);
    assert_eq!(
        snapshot(fx.root(), fx.cache()),
        before,
        "ensure --copy (exit {:?}) wrote outside the cache through blobs/sha256:\n{}",
        out.status.code(),
        stderr(&out)
    );
    Ok(())
}

/// Replaces `link` (a directory inside the cache, created if missing) with a symlink to `target`.
fn plant(link: &Path, target: &Path) -> TestResult {
    if link.exists() {
        fs::remove_dir_all(link)?;
    }
    fs::create_dir_all(link.parent().ok_or("no parent")?)?;
    symlink(target, link)?;
    Ok(())
}

/// Runs `gc --dry-run` then `gc` and checks that nothing outside the cache changed.
fn gc_keeps_outside(fx: &Fixture, what: &str) {
    let before = snapshot(fx.root(), fx.cache());
    for args in [&["gc", "--dry-run"][..], &["gc"]] {
        let out = fx.run(args);
        assert_refused_or_inside("gc", &out);
        assert_eq!(
            snapshot(fx.root(), fx.cache()),
            before,
            "{args:?} (exit {:?}) deleted outside the cache through a planted {what} symlink:\n{}",
            out.status.code(),
            stderr(&out)
        );
    }
}

#[test]
fn gc_through_a_planted_blobs_symlink_deletes_nothing_outside() -> TestResult {
    let fx = Fixture::with_one_entry()?;
    let outside = outside_dir(&fx, "outside")?;
    fs::write(outside.join("a".repeat(64)), b"looks like a blob")?;
    plant(&fx.cache().join("blobs").join("sha256"), &outside)?;
    gc_keeps_outside(&fx, "`blobs/sha256`");
    Ok(())
}

#[test]
fn gc_through_a_planted_tmp_symlink_deletes_nothing_outside() -> TestResult {
    let fx = Fixture::with_one_entry()?;
    let outside = outside_dir(&fx, "outside")?;
    fs::write(outside.join("stage-old"), b"looks like a stale stage file")?;
    fs::write(
        outside.join("dl-abc.part"),
        b"looks like a partial download",
    )?;
    plant(&fx.cache().join("tmp"), &outside)?;
    gc_keeps_outside(&fx, "`tmp`");
    Ok(())
}

#[test]
fn gc_through_a_planted_models_symlink_deletes_nothing_outside() -> TestResult {
    let fx = Fixture::with_one_entry()?;
    let outside = outside_dir(&fx, "outside")?;
    fs::create_dir_all(outside.join("sub"))?;
    fs::write(outside.join("sub").join("weights.bin"), b"user weights")?;
    plant(&fx.cache().join("models").join("http"), &outside)?;
    gc_keeps_outside(&fx, "`models/http`");
    let other = outside_dir(&fx, "other")?;
    symlink(&other, fx.cache().join("models").join("evil"))?;
    gc_keeps_outside(&fx, "`models/evil`");
    Ok(())
}

#[test]
fn rm_through_a_planted_models_symlink_deletes_nothing_outside() -> TestResult {
    let fx = Fixture::with_one_entry()?;
    let digest = fx.write_model("copied.gguf", b"a model to copy")?;
    let out = fx.run([
        "ensure",
        "copied.gguf",
        "--copy",
        "--digest",
        &digest.to_string(),
    ]);
    assert_code(&out, 0);
    // Move models/file outside and leave a symlink in its place: the entry's local path now
    // resolves to the outside copy.
    let outside = fx.path("outside");
    fs::create_dir_all(&outside)?;
    let models_file = fx.cache().join("models").join("file");
    fs::rename(&models_file, outside.join("file"))?;
    symlink(outside.join("file"), &models_file)?;
    let before = snapshot(fx.root(), fx.cache());
    let out = fx.run(["rm", &fx.id_of("copied.gguf")]);
    assert_refused_or_inside("rm", &out);
    assert_eq!(
        snapshot(fx.root(), fx.cache()),
        before,
        "rm deleted outside the cache:\n{}",
        stderr(&out)
    );
    gc_keeps_outside(&fx, "`models/file`");
    Ok(())
}
