//! Who must have signed: a [`SignerPolicy`] as written, and [`SignerRules`], a policy per
//! reference prefix.

use std::path::Path;

use mp_signing::{Policy, TrustedCa};

use super::{SIGNERS_ENV, SIGNERS_FILE};

/// Who must have signed a model, as written (`key:PATH`, `cert-chain:PATH[#IDENTITY]`,
/// `sigstore:IDENTITY@ISSUER`), its key or CA read.
#[derive(Debug, Clone)]
pub struct SignerPolicy {
    text: String,
    pub(super) policy: Policy,
}

/// A policy or a rule that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{text}` is no signer policy: {reason}")]
pub struct ParsePolicyError {
    text: String,
    reason: String,
}

impl ParsePolicyError {
    pub(super) fn new(text: &str, reason: impl Into<String>) -> Self {
        ParsePolicyError {
            text: text.to_owned(),
            reason: reason.into(),
        }
    }

    /// What to write instead.
    pub fn hint(&self) -> &'static str {
        "write `key:PATH.pem`, `cert-chain:CA.pem`, `cert-chain:CA.pem#IDENTITY` or `sigstore:IDENTITY@ISSUER`"
    }
}

impl SignerPolicy {
    /// The policy `text` writes, its key or CA file read now.
    ///
    /// # Errors
    ///
    /// An unknown form, or a file that cannot be read or holds no key or certificate.
    pub fn parse(text: &str) -> std::result::Result<SignerPolicy, ParsePolicyError> {
        let text = text.trim();
        let read = |path: &str| {
            std::fs::read(path).map_err(|e| ParsePolicyError::new(text, format!("`{path}`: {e}")))
        };
        let policy = if let Some(path) = text.strip_prefix("key:") {
            let key = mp_signing::PublicKey::from_pem(&read(path)?)
                .map_err(|e| ParsePolicyError::new(text, e.to_string()))?;
            Policy::Key(key)
        } else if let Some(rest) = text.strip_prefix("cert-chain:") {
            let (path, identity) = match rest.split_once('#') {
                Some((path, identity)) => (path, Some(identity.to_owned())),
                None => (rest, None),
            };
            let ca = TrustedCa::from_pem(&read(path)?)
                .map_err(|e| ParsePolicyError::new(text, e.to_string()))?;
            Policy::CertChain { ca, identity }
        } else if let Some(rest) = text.strip_prefix("sigstore:") {
            let Some((identity, issuer)) = rest.rsplit_once('@') else {
                return Err(ParsePolicyError::new(
                    text,
                    "a keyless policy names IDENTITY@ISSUER",
                ));
            };
            Policy::Keyless {
                identity: identity.to_owned(),
                issuer: issuer.to_owned(),
            }
        } else {
            return Err(ParsePolicyError::new(text, "an unknown form"));
        };
        Ok(SignerPolicy {
            text: text.to_owned(),
            policy,
        })
    }

    /// The policy as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

/// A policy per reference prefix: `PREFIX=POLICY`, the first whose prefix starts a model's
/// id (or the reference as written) applies.
#[derive(Debug, Clone, Default)]
pub struct SignerRules {
    rules: Vec<(String, SignerPolicy)>,
}

impl SignerRules {
    /// No rule.
    pub fn new() -> Self {
        SignerRules::default()
    }

    /// The rules of `lines` (`PREFIX=POLICY` each; blank lines and `#` comments skipped).
    ///
    /// # Errors
    ///
    /// A line that is no rule, or whose policy cannot be read, naming its line number.
    pub fn parse(lines: &str) -> std::result::Result<SignerRules, ParsePolicyError> {
        let mut rules = SignerRules::new();
        for (n, line) in lines.lines().enumerate() {
            let line = line.split_once('#').map_or(line, |(rule, _)| rule).trim();
            if line.is_empty() {
                continue;
            }
            rules.push(line).map_err(|e| ParsePolicyError {
                text: e.text,
                reason: format!("line {}: {}", n + 1, e.reason),
            })?;
        }
        Ok(rules)
    }

    /// The rules of `value`, separated by whitespace (the environment's form).
    ///
    /// # Errors
    ///
    /// As [`SignerRules::parse`].
    pub fn from_env_value(value: &str) -> std::result::Result<SignerRules, ParsePolicyError> {
        let mut rules = SignerRules::new();
        for rule in value.split_whitespace() {
            rules.push(rule)?;
        }
        Ok(rules)
    }

    /// The rules of the file at `path`; none when there is no such file.
    ///
    /// # Errors
    ///
    /// A file that cannot be read, or a line that is no rule.
    pub fn from_file(path: &Path) -> std::result::Result<SignerRules, ParsePolicyError> {
        match std::fs::read_to_string(path) {
            Ok(text) => SignerRules::parse(&text).map_err(|e| ParsePolicyError {
                text: path.display().to_string(),
                reason: format!("{}: {}", e.text, e.reason),
            }),
            // No file, or no cache directory to hold one (the cache's own error says so).
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
                ) =>
            {
                Ok(SignerRules::new())
            }
            Err(e) => Err(ParsePolicyError::new(
                &path.display().to_string(),
                e.to_string(),
            )),
        }
    }

    /// The rules in force for a provisioner over `cache_dir`: [`SIGNERS_ENV`]'s, then those of
    /// `<cache_dir>/`[`SIGNERS_FILE`]. What the command line and the Python package read, read
    /// once here.
    ///
    /// # Errors
    ///
    /// The first rule that is no rule, or whose policy cannot be read; a file that cannot be
    /// read.
    pub fn configured(cache_dir: &Path) -> std::result::Result<SignerRules, ParsePolicyError> {
        let mut rules = match std::env::var(SIGNERS_ENV) {
            Ok(value) => SignerRules::from_env_value(&value)?,
            Err(_) => SignerRules::new(),
        };
        rules.extend(SignerRules::from_file(&cache_dir.join(SIGNERS_FILE))?);
        Ok(rules)
    }

    /// Adds the rule `PREFIX=POLICY` after the others.
    ///
    /// # Errors
    ///
    /// When it is no rule, or its policy cannot be read.
    pub fn push(&mut self, rule: &str) -> std::result::Result<(), ParsePolicyError> {
        let Some((prefix, policy)) = rule.split_once('=') else {
            return Err(ParsePolicyError::new(rule, "a rule is PREFIX=POLICY"));
        };
        if prefix.trim().is_empty() {
            return Err(ParsePolicyError::new(rule, "a rule's prefix is empty"));
        }
        self.rules
            .push((prefix.trim().to_owned(), SignerPolicy::parse(policy)?));
        Ok(())
    }

    /// `other`'s rules after these.
    pub fn extend(&mut self, other: SignerRules) {
        self.rules.extend(other.rules);
    }

    pub(super) fn matching(&self, names: &[&str]) -> Option<&SignerPolicy> {
        self.rules
            .iter()
            .find(|(prefix, _)| names.iter().any(|n| n.starts_with(prefix.as_str())))
            .map(|(_, policy)| policy)
    }
}
