//! Output into a pipe whose reader is gone (`… | head -0`) is not an error.

use std::fs;

use crate::fixture::{Fixture, TestResult, assert_code, run_with_stdout_closed, stderr};

/// Turns the one-entry index into one with `n` entries, so that `ls` prints far more than a
/// pipe buffer holds and surely writes after the reader has gone.
fn grow_index(fx: &Fixture, n: usize) -> TestResult {
    let mut index: serde_json::Value = serde_json::from_slice(&fs::read(fx.index_path())?)?;
    let entries = index["entries"]
        .as_object_mut()
        .ok_or("no `entries` object")?;
    let template = entries.values().next().ok_or("no entry")?.clone();
    for i in 0..n {
        let path = format!("/srv/models/model-{i:05}.gguf");
        let mut entry = template.clone();
        entry["id"] = format!("file:{path}").into();
        entry["local_path"] = path.clone().into();
        entries.insert(format!("file:{path}"), entry);
    }
    fs::write(fx.index_path(), serde_json::to_vec_pretty(&index)?)?;
    Ok(())
}

#[test]
fn ls_into_a_closed_pipe_exits_0_silently() -> TestResult {
    let fx = Fixture::with_one_entry()?;
    grow_index(&fx, 2000)?;
    for args in [vec!["ls"], vec!["ls", "--json"]] {
        let out = run_with_stdout_closed(&mut fx.command(&args));
        assert_code(&out, 0);
        assert_eq!(stderr(&out), "", "{args:?} printed to stderr");
    }
    Ok(())
}
