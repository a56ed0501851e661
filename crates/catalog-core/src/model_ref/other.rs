//! References of a scheme that a source registered with the provisioner reads (`gs://…`,
//! `modelscope:…`): catalog-core knows their scheme only, and keeps the rest as written.
//!
//! - They parse only where the schemes are given ([`ModelRef::parse_with`]); a plain parse
//!   refuses an unknown scheme, as it always has.
//! - The scheme is lowercased; the rest is kept as written, so that the source decides its
//!   own normal form (it may complete the reference before its id is taken).
//! - Their id, [`OtherRef::redacted`], drops what may be a secret in a URL-shaped rest: the
//!   user info before `@` and the query.
//!
//! [`ModelRef::parse_with`]: super::ModelRef::parse_with

use std::fmt;

use super::{ParseRefError, scrub_secrets};

/// A reference whose scheme a registered source reads.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct OtherRef {
    scheme: String,
    rest: String,
}

impl OtherRef {
    /// The reference `scheme:rest`; the scheme is lowercased.
    ///
    /// # Errors
    ///
    /// When `rest` is empty, or holds a control character.
    pub fn new(scheme: &str, rest: &str) -> Result<Self, ParseRefError> {
        let text = format!("{scheme}:{rest}");
        parse(&text, scheme, rest)
    }

    /// The scheme, lowercase, without `:`.
    pub fn scheme(&self) -> &str {
        &self.scheme
    }

    /// What follows `scheme:`, as written (`//bucket/key` for a URL-shaped reference).
    pub fn rest(&self) -> &str {
        &self.rest
    }

    /// The reference without user info or query: safe to log, and its id.
    pub fn redacted(&self) -> String {
        scrub_secrets(&self.to_string())
    }

    pub(super) fn write_normalised(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.scheme, self.rest)
    }
}

impl fmt::Display for OtherRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write_normalised(f)
    }
}

/// Parses `rest`, what follows `scheme:` in `input`.
pub(super) fn parse(input: &str, scheme: &str, rest: &str) -> Result<OtherRef, ParseRefError> {
    if rest.trim_start_matches('/').is_empty() {
        return Err(ParseRefError::new(
            input,
            format!("nothing follows `{}:`", scheme.to_ascii_lowercase()),
        ));
    }
    if let Some(c) = rest.chars().find(|c| c.is_control()) {
        return Err(ParseRefError::new(
            input,
            format!("it contains the control character `{}`", c.escape_default()),
        ));
    }
    Ok(OtherRef {
        scheme: scheme.to_ascii_lowercase(),
        rest: rest.to_owned(),
    })
}
