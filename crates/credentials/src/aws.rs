//! The AWS configuration and credential chain, read the way the AWS SDKs read them.
//!
//! [`S3Config::from_env`] settles where requests go; [`resolve`] finds what signs them,
//! trying each source in the SDKs' order and stopping at the first that holds credentials:
//!
//! ```text
//! 1. environment        AWS_ACCESS_KEY_ID + AWS_SECRET_ACCESS_KEY (+ AWS_SESSION_TOKEN)
//! 2. shared files       profile AWS_PROFILE (else `default`) in
//!                       $AWS_SHARED_CREDENTIALS_FILE (else ~/.aws/credentials)   [name]
//!                       $AWS_CONFIG_FILE             (else ~/.aws/config)        [profile name], [default]
//!                       ├── aws_access_key_id + aws_secret_access_key (+ aws_session_token)
//!                       ├── credential_process = <command>   prints {"Version": 1, …}
//!                       └── web_identity_token_file + role_arn   as in 3
//! 3. web identity       AWS_WEB_IDENTITY_TOKEN_FILE + AWS_ROLE_ARN (+ AWS_ROLE_SESSION_NAME)
//!                       POST Action=AssumeRoleWithWebIdentity to STS
//! 4. container          AWS_CONTAINER_CREDENTIALS_RELATIVE_URI (on http://169.254.170.2)
//!                       or AWS_CONTAINER_CREDENTIALS_FULL_URI, with
//!                       AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE or _TOKEN as `Authorization`
//! 5. instance metadata  IMDSv2 at http://169.254.169.254 (AWS_EC2_METADATA_SERVICE_ENDPOINT),
//!                       unless AWS_EC2_METADATA_DISABLED=true; 1 s to answer the token request
//! ```
//!
//! A public bucket needs none of it: [`S3Config::no_sign_request`] makes [`resolve`] answer
//! `None` without looking.
//!
//! When a profile holds both keys and a `credential_process`, the keys are used, as the AWS
//! CLI and the Go SDK do. Profiles that assume a role (`role_arn` with `source_profile` or
//! `credential_source`) or use SSO are refused with an error rather than skipped, so that
//! another source's credentials are never used in their place.
//!
//! The environment is passed in as a function, never read from the process, so that tests can
//! run in parallel. Secrets are [`Secret`]s; no message or `Debug` output holds one, nor the
//! output of a `credential_process`, nor a container credentials path (it identifies the
//! task's credentials).
//!
//! ```text
//! config.rs        S3Config: endpoint, region, addressing style, extra roots
//! shared_files.rs  ~/.aws/credentials and ~/.aws/config: where they are, their profiles
//! chain.rs         resolve: the sources in order; the environment's and the profile's keys
//! process.rs       a profile's credential_process
//! web_identity.rs  AssumeRoleWithWebIdentity at STS
//! container.rs     the ECS and EKS container credentials endpoint
//! imds.rs          the EC2 instance metadata service (IMDSv2)
//! service.rs       what those three services share: time limits, answers, times, codes
//! error.rs         CredentialError and its hints
//! ```

mod chain;
mod config;
mod container;
mod credential;
mod error;
mod imds;
mod process;
mod service;
mod shared_files;
#[cfg(test)]
mod testing;
mod web_identity;

pub use self::chain::resolve;
pub use self::config::{AddressingStyle, DEFAULT_REGION, S3Config};
pub use self::credential::{AwsCredentials, Source};
pub use self::error::{CredentialError, Tried};
pub use self::shared_files::DEFAULT_PROFILE;
pub use crate::Secret;

/// A variable's value; empty counts as unset, as in the SDKs.
fn var(env: &dyn Fn(&str) -> Option<String>, name: &str) -> Option<String> {
    env(name).filter(|v| !v.trim().is_empty())
}

/// Whether a variable is `true` (in any case).
fn is_true(env: &dyn Fn(&str) -> Option<String>, name: &str) -> bool {
    var(env, name).is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
}
