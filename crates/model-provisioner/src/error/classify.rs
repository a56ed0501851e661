//! What kind of failure an error is: a verification, the caller's usage, a cancel.

use super::Error;

impl Error {
    /// Whether this is a failed verification (a digest mismatch, a broken file).
    pub fn is_verification_failure(&self) -> bool {
        matches!(
            self,
            Error::DigestMismatch { .. }
                | Error::GitBlobMismatch { .. }
                | Error::ChecksumMismatch { .. }
                | Error::Signature { .. }
                | Error::MirrorMismatch { .. }
                | Error::PushDigestRefused { .. }
                | Error::Structure { .. }
        )
    }

    /// Whether the request cannot be met as written (a reference no source reads, a push or
    /// mirror destination that takes no model, a mirror rule given or in the environment that
    /// is no rule): the command line's exit status 2.
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            Error::InvalidRef(_)
                | Error::PushScheme { .. }
                | Error::MirrorSource { .. }
                | Error::MirrorPrefix(_)
                | Error::MirrorLocation { .. }
                | Error::MirrorScheme { .. }
        ) || matches!(self, Error::MirrorRule(e) if !e.in_file())
    }

    /// Whether a download was stopped by the builder's [`Cancel`](crate::Cancel) flag.
    pub fn is_cancelled(&self) -> bool {
        #[cfg(feature = "http")]
        return matches!(self, Error::Transfer(mp_transfer::Error::Cancelled));
        #[cfg(not(feature = "http"))]
        {
            let _ = self;
            false
        }
    }

    /// The error's class, as progress events name it: `verification` (the command line's exit
    /// status 3), `usage` (2), `cancelled` (the builder's cancel flag stopped it; 1) or `error`
    /// (1).
    pub fn class(&self) -> &'static str {
        if self.is_cancelled() {
            "cancelled"
        } else if self.is_verification_failure() {
            "verification"
        } else if self.is_usage() {
            "usage"
        } else {
            "error"
        }
    }
}
