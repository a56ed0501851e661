//! Keys, CA chains and model folders made for a test, and the reference tool run on them.

use std::path::{Path, PathBuf};
use std::process::Command;

use catalog_core::{Digest, SafeRelPath};

pub type TestResult = Result<(), Box<dyn std::error::Error>>;

/// `<repo>/.venv/bin/model_signing`, which `scripts/install-test-deps.sh` installs.
pub fn model_signing() -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/model_signing");
    assert!(
        path.exists(),
        "{} is missing: run `bash scripts/install-test-deps.sh`, which installs model-signing into <repo>/.venv",
        path.display()
    );
    path
}

/// Runs a command; panics with its output when it fails.
pub fn run(command: &mut Command) -> String {
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "{command:?} failed: {text}");
    text
}

/// Runs a command that must fail; returns its output.
pub fn run_failing(command: &mut Command) -> String {
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(!output.status.success(), "{command:?} succeeded: {text}");
    text
}

fn openssl(dir: &Path, args: &[&str]) {
    run(Command::new("openssl").current_dir(dir).args(args));
}

/// An EC key pair made by `openssl`: `NAME.key` (private, PEM) and `NAME.pub` (public, PEM).
pub struct KeyPair {
    pub private: PathBuf,
    pub public: PathBuf,
}

/// How `openssl` writes the private key.
#[derive(Clone, Copy)]
pub enum KeyForm {
    /// `openssl genpkey`: PKCS#8 `PRIVATE KEY`.
    Pkcs8,
    /// `openssl ecparam -genkey`: SEC1 `EC PRIVATE KEY`.
    Sec1,
}

/// Makes `NAME.key` and `NAME.pub` in `dir` on `curve` (`P-256`, `P-384`, `P-521`).
pub fn key_pair(dir: &Path, name: &str, curve: &str, form: KeyForm) -> KeyPair {
    let private = format!("{name}.key");
    let public = format!("{name}.pub");
    match form {
        KeyForm::Pkcs8 => openssl(
            dir,
            &[
                "genpkey",
                "-algorithm",
                "EC",
                "-pkeyopt",
                &format!("ec_paramgen_curve:{curve}"),
                "-out",
                &private,
            ],
        ),
        KeyForm::Sec1 => {
            let named = match curve {
                "P-256" => "prime256v1",
                "P-384" => "secp384r1",
                other => other,
            };
            openssl(
                dir,
                &[
                    "ecparam", "-name", named, "-genkey", "-noout", "-out", &private,
                ],
            );
        }
    }
    openssl(dir, &["ec", "-in", &private, "-pubout", "-out", &public]);
    KeyPair {
        private: dir.join(private),
        public: dir.join(public),
    }
}

/// A CA chain made by `openssl`: a root CA, an intermediate CA it signed, and a signing
/// certificate the intermediate signed.
pub struct Chain {
    pub root: PathBuf,
    pub intermediate: PathBuf,
    pub leaf_key: PathBuf,
    pub leaf: PathBuf,
}

/// What the signing certificate allows.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum LeafUsage {
    /// Digital signatures and code signing, as a signing certificate should.
    CodeSigning,
    /// TLS server authentication only: no digital-signature key usage, no code signing.
    ServerOnly,
}

pub fn chain(dir: &Path, usage: LeafUsage) -> Chain {
    key_pair(dir, "root", "P-384", KeyForm::Pkcs8);
    key_pair(dir, "intermediate", "P-256", KeyForm::Pkcs8);
    key_pair(dir, "leaf", "P-256", KeyForm::Pkcs8);
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-new",
            "-key",
            "root.key",
            "-subj",
            "/O=Example/CN=Example Root CA",
            "-days",
            "30",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
            "-out",
            "root.pem",
        ],
    );
    let ca = "basicConstraints=critical,CA:TRUE,pathlen:0\nkeyUsage=critical,keyCertSign,cRLSign\n";
    issue(
        dir,
        "intermediate",
        "/O=Example/CN=Example Intermediate CA",
        "root",
        ca,
    );
    let leaf = match usage {
        LeafUsage::CodeSigning => {
            "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=codeSigning\n"
        }
        LeafUsage::ServerOnly => {
            "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,keyAgreement\nextendedKeyUsage=serverAuth\n"
        }
    };
    let leaf = format!("{leaf}subjectAltName=email:signer@example.com\n");
    issue(
        dir,
        "leaf",
        "/O=Example/CN=Model Signer",
        "intermediate",
        &leaf,
    );
    Chain {
        root: dir.join("root.pem"),
        intermediate: dir.join("intermediate.pem"),
        leaf_key: dir.join("leaf.key"),
        leaf: dir.join("leaf.pem"),
    }
}

/// Issues `NAME.pem` for `NAME.key` with `subject`, signed by `ISSUER.key`, with the
/// extensions `extensions` (and key identifiers).
fn issue(dir: &Path, name: &str, subject: &str, issuer: &str, extensions: &str) {
    let ext = format!("{name}.ext");
    std::fs::write(
        dir.join(&ext),
        format!("{extensions}subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n"),
    )
    .expect("write the extensions");
    let (key, csr, pem) = (
        format!("{name}.key"),
        format!("{name}.csr"),
        format!("{name}.pem"),
    );
    openssl(
        dir,
        &["req", "-new", "-key", &key, "-subj", subject, "-out", &csr],
    );
    let (ca, ca_key) = (format!("{issuer}.pem"), format!("{issuer}.key"));
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            &ca,
            "-CAkey",
            &ca_key,
            "-CAcreateserial",
            "-days",
            "30",
            "-extfile",
            &ext,
            "-out",
            &pem,
        ],
    );
}

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
