//! The `ls` table and the `show` text, with temporary paths and times filtered out.

use std::path::Path;

use crate::fixture::{Fixture, TestResult, assert_code, stdout};

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

/// Insta filters for a fixture: its directory, times, and the per-id hash in copy paths.
fn filters(root: &Path) -> Vec<(String, String)> {
    vec![
        (
            regex_escape(&root.display().to_string()),
            "[TMP]".to_owned(),
        ),
        (
            r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z".to_owned(),
            "[TIME]".to_owned(),
        ),
        (
            r"models/file/[0-9a-f]{16}/".to_owned(),
            "models/file/[ID-HASH]/".to_owned(),
        ),
        // The ID column is as wide as the longest id, which holds the temporary path: the
        // rows stay aligned with each other, but the header's padding depends on the path.
        (r"(?m)^ID +STATE".to_owned(), "ID  [PAD]  STATE".to_owned()),
    ]
}

/// A catalog with a verified, an unverified and retired, and a copied model.
fn three_models() -> TestResult<Fixture> {
    let fx = Fixture::new()?;
    let a = fx.write_model("a.gguf", b"model a, verified")?.to_string();
    fx.write_model("b.gguf", b"model b")?;
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
    let filters = filters(fx.root());
    insta::with_settings!({ filters => filters.iter().map(|(a, b)| (a.as_str(), b.as_str())) }, {
        insta::assert_snapshot!("ls_table", stdout(&out));
    });
    Ok(())
}

#[test]
fn show_text() -> TestResult {
    let fx = three_models()?;
    let out = fx.run(["show", "a.gguf"]);
    assert_code(&out, 0);
    let filters = filters(fx.root());
    insta::with_settings!({ filters => filters.iter().map(|(a, b)| (a.as_str(), b.as_str())) }, {
        insta::assert_snapshot!("show_text", stdout(&out));
    });
    Ok(())
}
