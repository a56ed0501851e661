//! Signing keys and certificate chains made by Debian's `openssl` for a test, and the reference
//! model-signing tool (`model_signing` 1.1.1, which `scripts/install-test-deps.sh` installs into
//! `<repo>/.venv`) run on what they sign.

use std::path::{Path, PathBuf};
use std::process::Command;

/// `<repo>/.venv/bin/model_signing`, which `scripts/install-test-deps.sh` installs.
pub fn model_signing() -> PathBuf {
    let path = crate::venv_dir().join("bin/model_signing");
    assert!(
        path.exists(),
        "{} is missing: run `bash scripts/install-test-deps.sh`, which installs model-signing into <repo>/.venv",
        path.display()
    );
    path
}

/// Runs a command; panics with its output when it fails.
pub fn run(command: &mut Command) -> String {
    run_expecting(command, true)
}

/// Runs a command that must fail; returns its output.
pub fn run_failing(command: &mut Command) -> String {
    run_expecting(command, false)
}

/// Runs a command; its output (stdout, then stderr), or a panic with it when the command's
/// success is not `success`.
fn run_expecting(command: &mut Command, success: bool) -> String {
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let outcome = if success { "failed" } else { "succeeded" };
    assert!(
        output.status.success() == success,
        "{command:?} {outcome}: {text}"
    );
    text
}

fn openssl(dir: &Path, args: &[&str]) {
    run(Command::new("openssl").current_dir(dir).args(args));
}

/// An EC key pair made by `openssl`: `NAME.key` (private, PEM) and `NAME.pub` (public, PEM).
#[derive(Debug)]
pub struct KeyPair {
    /// The private key.
    pub private: PathBuf,
    /// The public key, `SubjectPublicKeyInfo` PEM.
    pub public: PathBuf,
}

/// How `openssl` writes the private key.
#[derive(Debug, Clone, Copy)]
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
#[derive(Debug)]
pub struct Chain {
    /// The root CA's certificate, `root.pem`.
    pub root: PathBuf,
    /// The intermediate CA's certificate, `intermediate.pem`.
    pub intermediate: PathBuf,
    /// The signing certificate's private key, `leaf.key`.
    pub leaf_key: PathBuf,
    /// The signing certificate, `leaf.pem`.
    pub leaf: PathBuf,
}

/// What the signing certificate allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeafUsage {
    /// Digital signatures and code signing, as a signing certificate should.
    CodeSigning,
    /// TLS server authentication only: no digital-signature key usage, no code signing.
    ServerOnly,
}

/// Makes a [`Chain`] in `dir`: the root on P-384, the intermediate and the leaf on P-256, the
/// leaf with `usage` and the alternative name `signer@example.com`.
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

impl Chain {
    /// The leaf's certificate, then the intermediate's, in one PEM file in `dir`: a chain as
    /// a signer hands it over.
    pub fn full_chain(&self, dir: &Path) -> PathBuf {
        let path = dir.join("fullchain.pem");
        let mut pem = std::fs::read(&self.leaf).expect("read the leaf");
        pem.extend(std::fs::read(&self.intermediate).expect("read the intermediate"));
        std::fs::write(&path, pem).expect("write the full chain");
        path
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
