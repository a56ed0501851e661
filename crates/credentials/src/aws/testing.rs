//! Fixtures for the credential chain's tests: a home directory with `.aws` files and scripts,
//! the environment that points at it, canned answers of the services.

use std::collections::BTreeMap;
use std::io;
use std::path::PathBuf;
use std::thread::JoinHandle;
use std::time::SystemTime;

use super::service::parse_time;
use super::{AwsCredentials, CredentialError, S3Config, Source, resolve};
use crate::test_util::block_on;

pub(super) type TestResult = Result<(), Box<dyn std::error::Error>>;

/// A home directory with `.aws` files and scripts, and the environment that points at it.
/// The instance metadata service is off unless a test turns it on.
pub(super) struct Home {
    pub(super) dir: tempfile::TempDir,
    pub(super) vars: BTreeMap<String, String>,
}

impl Home {
    pub(super) fn new() -> io::Result<Self> {
        let dir = tempfile::tempdir()?;
        std::fs::create_dir_all(dir.path().join(".aws"))?;
        std::fs::create_dir_all(dir.path().join("bin"))?;
        let mut vars = BTreeMap::new();
        vars.insert("HOME".into(), dir.path().display().to_string());
        vars.insert(
            "PATH".into(),
            format!("{}:/usr/bin:/bin", dir.path().join("bin").display()),
        );
        vars.insert("AWS_EC2_METADATA_DISABLED".into(), "true".into());
        Ok(Home { dir, vars })
    }

    pub(super) fn set(mut self, name: &str, value: &str) -> Self {
        self.vars.insert(name.into(), value.into());
        self
    }

    pub(super) fn unset(mut self, name: &str) -> Self {
        self.vars.remove(name);
        self
    }

    /// Writes `contents` at `relative` under the home directory.
    pub(super) fn file(&self, relative: &str, contents: &str) -> io::Result<PathBuf> {
        let path = self.dir.path().join(relative);
        std::fs::write(&path, contents)?;
        Ok(path)
    }

    #[cfg(unix)]
    pub(super) fn script(&self, name: &str, body: &str) -> io::Result<()> {
        use std::os::unix::fs::PermissionsExt as _;
        let path = self.file(&format!("bin/{name}"), &format!("#!/bin/sh\n{body}\n"))?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
    }

    pub(super) fn env(&self) -> impl Fn(&str) -> Option<String> + Sync + use<> {
        let vars = self.vars.clone();
        move |name| vars.get(name).cloned()
    }

    pub(super) fn config(&self) -> Result<S3Config, CredentialError> {
        S3Config::from_env(&self.env())
    }

    /// The configuration with one more variable set.
    pub(super) fn config_with(&self, name: &str, value: &str) -> Result<S3Config, CredentialError> {
        let env = self.env();
        let (name, value) = (name.to_owned(), value.to_owned());
        S3Config::from_env(&move |n| {
            if n == name {
                Some(value.clone())
            } else {
                env(n)
            }
        })
    }

    pub(super) fn resolve(&self) -> Result<Option<(AwsCredentials, Source)>, CredentialError> {
        let config = self.config()?;
        block_on(resolve(&reqwest::Client::new(), &config, &self.env()))
    }
}

/// Serves one canned answer per connection, in order; see [`test_support::serve_canned`].
pub(super) fn serve(
    answers: Vec<(&'static str, String)>,
) -> io::Result<(String, JoinHandle<Vec<String>>)> {
    test_support::serve_canned(None, answers)
}

pub(super) fn creds(found: Option<(AwsCredentials, Source)>) -> (AwsCredentials, Source) {
    found.expect("credentials")
}

pub(super) fn at(rfc3339: &str) -> SystemTime {
    parse_time(rfc3339).expect("a time")
}

pub(super) const JSON_CREDS: &str = r#"{"Code":"Success","Type":"AWS-HMAC","AccessKeyId":"ASIAJSON","SecretAccessKey":"json-secret","Token":"json-token","Expiration":"2030-01-01T00:00:00Z"}"#;

pub(super) const STS_ANSWER: &str = r#"<AssumeRoleWithWebIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <AssumeRoleWithWebIdentityResult>
    <SubjectFromWebIdentityToken>system:serviceaccount:ns:sa</SubjectFromWebIdentityToken>
    <AssumedRoleUser><Arn>arn:aws:sts::1:assumed-role/r/s</Arn><AssumedRoleId>AROA:s</AssumedRoleId></AssumedRoleUser>
    <Credentials>
      <SessionToken>sts/token+with=&amp;entity</SessionToken>
      <SecretAccessKey>sts-secret</SecretAccessKey>
      <Expiration>2030-02-03T04:05:06Z</Expiration>
      <AccessKeyId>ASIASTS</AccessKeyId>
    </Credentials>
    <Audience>sts.amazonaws.com</Audience>
  </AssumeRoleWithWebIdentityResult>
  <ResponseMetadata><RequestId>1</RequestId></ResponseMetadata>
</AssumeRoleWithWebIdentityResponse>"#;
