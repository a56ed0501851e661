//! [`skip_reason`]: when a mirror may be passed over for the next place to try (it lacks the
//! model, does not answer, or refuses the credentials), and when its error stands (a mismatch,
//! a protocol violation).

use crate::error::{Error, SourceFailure};
#[cfg(feature = "http")]
use mp_transfer::Error::Download;

/// Why a mirror was passed over, when it may be: it lacks the model, is down, or refused the
/// credentials. `None`: the error stands (a mismatch, a protocol violation).
pub(crate) fn skip_reason(error: &Error) -> Option<(&'static str, bool)> {
    // (reason, warn)
    match error {
        Error::OciNotFound { .. } | Error::S3NotFound { .. } | Error::HfNotFound { .. } => {
            Some(("the mirror does not have it", false))
        }
        #[cfg(feature = "http")]
        Error::Transfer(Download {
            status: Some(404 | 410),
            ..
        }) => Some(("the mirror does not have it", false)),
        #[cfg(feature = "http")]
        Error::Transfer(Download {
            status: None | Some(500..=599),
            ..
        }) => Some(("the mirror does not answer", false)),
        Error::S3Unreachable { .. } => Some(("the mirror does not answer", false)),
        Error::S3Untrusted { .. } => Some(("the mirror's certificate is not trusted", true)),
        #[cfg(feature = "http")]
        Error::Transfer(Download {
            status: Some(401 | 403),
            ..
        }) => Some(("the mirror refused the credentials", true)),
        Error::OciDenied { .. }
        | Error::HfDenied { .. }
        | Error::S3Denied { .. }
        | Error::S3SignatureMismatch { .. } => Some(("the mirror refused the credentials", true)),
        #[cfg(feature = "s3")]
        Error::S3Credentials(_) => Some(("no credentials for the mirror", true)),
        Error::Unsupported { .. } => Some(("this build cannot read the mirror", true)),
        Error::Source { failure, .. } => match failure {
            SourceFailure::NotFound => Some(("the mirror does not have it", false)),
            SourceFailure::Unreachable => Some(("the mirror does not answer", false)),
            SourceFailure::Untrusted => Some(("the mirror's certificate is not trusted", true)),
            SourceFailure::Denied => Some(("the mirror refused the credentials", true)),
            _ => None,
        },
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mirror_down_is_passed_over_quietly_and_one_with_an_untrusted_certificate_with_a_warning() {
        let endpoint = "https://mirror.internal".to_owned();
        let down = Error::S3Unreachable {
            endpoint: endpoint.clone(),
            reason: "could not connect".into(),
        };
        assert_eq!(
            skip_reason(&down),
            Some(("the mirror does not answer", false))
        );
        let untrusted = Error::S3Untrusted {
            endpoint,
            reason: "it is signed by an unknown certificate authority".into(),
        };
        assert_eq!(
            skip_reason(&untrusted),
            Some(("the mirror's certificate is not trusted", true))
        );
    }
}
