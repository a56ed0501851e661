//! [`Outcome`]: pass, warn or fail, for a digest compared and for a model's structure checked.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The result of comparing an artifact with its expected digest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// The computed digest equals the expected one.
    Pass,
    /// There was nothing to compare against: the artifact is unverified.
    Warn,
    /// The computed digest differs from the expected one.
    Fail,
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Outcome::Pass => "pass",
            Outcome::Warn => "warn",
            Outcome::Fail => "fail",
        })
    }
}
