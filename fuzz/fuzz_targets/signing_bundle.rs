//! Reads arbitrary bytes as a model-signing bundle and as the statement inside one: reading
//! must never panic, only return an error; what it accepts stays within the reader's bounds.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mp_signing::{Bundle, MAX_FILES, Statement};

fn check(statement: &Statement) {
    assert!(statement.files().len() <= MAX_FILES);
    for path in statement.files().keys() {
        // Every accepted name stays inside the model.
        assert!(!path.as_str().starts_with('/'));
        assert!(!path.as_str().split('/').any(|s| s == ".." || s.is_empty()));
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(bundle) = Bundle::read(data) {
        check(bundle.statement());
    }
    if let Ok(statement) = Statement::read(data) {
        check(&statement);
    }
});
