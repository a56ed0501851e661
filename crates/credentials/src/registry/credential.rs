//! [`Credential`]: what the user holds for one registry, and the variables that name one
//! explicitly.

use crate::secret::Secret;

/// The variable holding the explicit registry username.
pub const USERNAME_VAR: &str = "MODEL_PROVISIONER_REGISTRY_USERNAME";
/// The variable holding the explicit registry password.
pub const PASSWORD_VAR: &str = "MODEL_PROVISIONER_REGISTRY_PASSWORD";

/// What the user holds for one registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    /// A username and password (or a personal access token in the password's place).
    Basic {
        /// The username, which is not secret.
        username: String,
        /// The password.
        password: Secret,
    },
    /// docker's `identitytoken`: an `OAuth2` refresh token.
    IdentityToken(Secret),
}
