//! [`Secret`]: a string that is never printed, for passwords, tokens and keys.

use std::fmt;

/// A secret string: `Debug` and `Display` print `<redacted>`; [`Secret::expose`] for the
/// request that carries it, and nowhere else.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(secret: String) -> Self {
        Secret(secret)
    }

    /// The secret itself, to put in a request and nowhere else.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_never_show_the_secret() {
        let secret = Secret::new("hunter2".into());
        assert_eq!(
            format!("{secret:?} {secret} {secret:#?}"),
            "<redacted> <redacted> <redacted>"
        );
        assert_eq!(secret.expose(), "hunter2");
    }
}
