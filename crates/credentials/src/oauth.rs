//! What Google's and Entra ID's OAuth token endpoints share.

/// An OAuth error code fit to show (`invalid_grant`, `invalid_client`): a short identifier,
/// nothing else an endpoint might put in its place.
pub(crate) fn error_code(code: &str) -> Option<String> {
    let code = code.trim();
    (!code.is_empty()
        && code.len() <= 64
        && code
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-'))
    .then(|| code.to_owned())
}
