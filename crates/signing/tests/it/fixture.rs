//! Keys, CA chains and model folders made for a test, and the reference tool run on them.

use std::path::{Path, PathBuf};

use catalog_core::{Digest, SafeRelPath};

pub use test_support::signing_keys::*;

pub type TestResult = Result<(), Box<dyn std::error::Error>>;

/// A small model folder: two files at the top, one in a sub-folder, and git's files, which
/// signing leaves out. Returns the folder and its signed files with their sha256.
pub fn model(dir: &Path) -> (PathBuf, Vec<(SafeRelPath, Digest)>) {
    let root = dir.join("tiny-model");
    let files: [(&str, &[u8]); 3] = [
        ("config.json", b"{\"model_type\": \"tiny\"}\n"),
        ("model.safetensors", &[7u8; 4096]),
        ("tokenizer/vocab.txt", b"a\nb\nc\n"),
    ];
    let mut listed = Vec::new();
    for (name, bytes) in files {
        let path = root.join(name);
        std::fs::create_dir_all(path.parent().expect("a parent")).expect("mkdir");
        std::fs::write(&path, bytes).expect("write a model file");
        listed.push((
            SafeRelPath::new(name).expect("a safe path"),
            Digest::sha256_of(bytes),
        ));
    }
    std::fs::create_dir_all(root.join(".git")).expect("mkdir .git");
    std::fs::write(root.join(".git/HEAD"), "ref: refs/heads/main\n").expect("write .git/HEAD");
    std::fs::write(root.join(".gitattributes"), "*.safetensors filter=lfs\n")
        .expect("write .gitattributes");
    (root, listed)
}

/// A `SafeRelPath` from a name the test knows is safe.
pub fn path(name: &str) -> SafeRelPath {
    SafeRelPath::new(name).expect("a safe path")
}
