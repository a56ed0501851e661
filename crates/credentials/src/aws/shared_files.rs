//! The shared files, `~/.aws/credentials` and `~/.aws/config`: where `env` puts them, and their
//! profiles and `[services …]` sections, parsed as the SDKs parse them. The parser is our own:
//! `docs/architecture.md` says why.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use super::error::CredentialError;
use super::var;

/// The profile used when `AWS_PROFILE` is not set.
pub const DEFAULT_PROFILE: &str = "default";

/// Properties of one section, keys lowercased; a nested `s3 =` block's keys as `s3.<key>`.
pub(super) type Props = BTreeMap<String, String>;

/// The shared credentials and config files, where `env` puts them.
#[derive(Debug)]
pub(super) struct SharedFiles {
    credentials: Option<PathBuf>,
    config: Option<PathBuf>,
    home: Option<PathBuf>,
}

/// The sections of both shared files.
#[derive(Debug, Default)]
pub(super) struct ParsedFiles {
    config: Vec<Section>,
    credentials: Vec<Section>,
}

/// One `[header]` and its properties.
#[derive(Debug)]
struct Section {
    header: String,
    props: Props,
}

impl SharedFiles {
    pub(super) fn locate(env: &dyn Fn(&str) -> Option<String>) -> Self {
        let home = var(env, "HOME")
            .or_else(|| var(env, "USERPROFILE"))
            .map(PathBuf::from);
        let mut files = SharedFiles {
            credentials: None,
            config: None,
            home,
        };
        let at = |name: &str, default: &str, files: &SharedFiles| match var(env, name) {
            Some(path) => Some(files.expand(&path)),
            None => files.home.as_ref().map(|h| h.join(".aws").join(default)),
        };
        files.credentials = at("AWS_SHARED_CREDENTIALS_FILE", "credentials", &files);
        files.config = at("AWS_CONFIG_FILE", "config", &files);
        files
    }

    /// `path` with a leading `~` for the home directory.
    pub(super) fn expand(&self, path: &str) -> PathBuf {
        match (path.strip_prefix('~'), &self.home) {
            (Some(rest), Some(home)) if rest.is_empty() || rest.starts_with(['/', '\\']) => {
                home.join(rest.trim_start_matches(['/', '\\']))
            }
            _ => PathBuf::from(path),
        }
    }

    /// `path` with the home directory written `~`.
    fn show(&self, path: &Path) -> String {
        match self.home.as_deref().and_then(|h| path.strip_prefix(h).ok()) {
            Some(rest) => format!("~/{}", rest.display()),
            None => path.display().to_string(),
        }
    }

    /// "`~/.aws/credentials` or `~/.aws/config`".
    pub(super) fn describe(&self) -> String {
        let shown: Vec<String> = [&self.credentials, &self.config]
            .into_iter()
            .flatten()
            .map(|p| format!("`{}`", self.show(p)))
            .collect();
        if shown.is_empty() {
            "the shared files (neither `HOME` nor `AWS_CONFIG_FILE` is set)".into()
        } else {
            shown.join(" or ")
        }
    }

    pub(super) fn read(&self) -> Result<ParsedFiles, CredentialError> {
        let read = |path: &Option<PathBuf>, what| -> Result<Vec<Section>, CredentialError> {
            let Some(path) = path else {
                return Ok(Vec::new());
            };
            match std::fs::read(path) {
                Ok(bytes) => Ok(parse_ini(&String::from_utf8_lossy(&bytes))),
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
                Err(source) => Err(CredentialError::FileRead {
                    what,
                    path: path.clone(),
                    source,
                }),
            }
        };
        Ok(ParsedFiles {
            config: read(&self.config, "the AWS config file")?,
            credentials: read(&self.credentials, "the AWS shared credentials file")?,
        })
    }
}

impl ParsedFiles {
    /// Profile `name`: its `[profile name]` sections in the config file (`[default]` for the
    /// default profile, unless `[profile default]` exists), then its `[name]` sections in the
    /// credentials file, which win. `None` when neither file has it.
    pub(super) fn profile(&self, name: &str) -> Option<Props> {
        let prefixed: Vec<&Section> = self
            .config
            .iter()
            .filter(|s| prefixed_name(&s.header, "profile") == Some(name))
            .collect();
        let config = if prefixed.is_empty() && name == DEFAULT_PROFILE {
            self.config
                .iter()
                .filter(|s| s.header == DEFAULT_PROFILE)
                .collect()
        } else {
            prefixed
        };
        // In the credentials file the header is the name itself: `[profile x]` names nothing.
        let credentials = self
            .credentials
            .iter()
            .filter(|s| s.header == name && !s.header.contains(char::is_whitespace));
        let mut found = false;
        let mut props = Props::new();
        for section in config.into_iter().chain(credentials) {
            found = true;
            props.extend(section.props.clone());
        }
        found.then_some(props)
    }

    /// The config file's `[services name]` section.
    pub(super) fn services(&self, name: &str) -> Option<Props> {
        let mut found = None;
        for section in &self.config {
            if prefixed_name(&section.header, "services") == Some(name) {
                found
                    .get_or_insert_with(Props::new)
                    .extend(section.props.clone());
            }
        }
        found
    }
}

/// `x` for a header `<kind> x` (any whitespace between).
fn prefixed_name<'a>(header: &'a str, kind: &str) -> Option<&'a str> {
    let rest = header.strip_prefix(kind)?;
    rest.starts_with([' ', '\t']).then(|| rest.trim())
}

/// The sections of an AWS shared file: `[header]` lines; `key = value` properties; a property
/// with an empty value followed by indented `key = value` lines (`s3 =\n  addressing_style =
/// path`) stored as `s3.addressing_style`; other indented lines continue the previous value;
/// `#` and `;` start a comment at the start of a line, and after whitespace in a value.
/// Properties before the first header, and lines that are none of these, are ignored.
fn parse_ini(text: &str) -> Vec<Section> {
    let mut sections: Vec<Section> = Vec::new();
    // The property whose value is empty (sub-properties follow) or the last one (continued).
    let mut parent: Option<String> = None;
    let mut last: Option<String> = None;
    let mut in_section = false;
    for raw in text.lines() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with(['#', ';']) {
            continue;
        }
        let indented = raw.starts_with([' ', '\t']);
        if line.starts_with('[') && !indented {
            parent = None;
            last = None;
            in_section = match line.find(']') {
                Some(end) => {
                    sections.push(Section {
                        header: line[1..end].trim().to_owned(),
                        props: Props::new(),
                    });
                    true
                }
                None => false,
            };
            continue;
        }
        let Some(section) = sections.last_mut().filter(|_| in_section) else {
            continue;
        };
        if indented {
            if let Some(parent) = &parent {
                if let Some((key, value)) = split_property(line) {
                    section.props.insert(format!("{parent}.{key}"), value);
                }
                continue;
            }
            if let Some(last) = &last {
                if let Some(value) = section.props.get_mut(last) {
                    value.push('\n');
                    value.push_str(&strip_comment(line));
                }
                continue;
            }
        }
        let Some((key, value)) = split_property(line) else {
            continue;
        };
        if value.is_empty() {
            parent = Some(key.clone());
            last = None;
        } else {
            parent = None;
            last = Some(key.clone());
        }
        section.props.insert(key, value);
    }
    sections
}

/// `key = value`, the key lowercased, the value without its comment.
fn split_property(line: &str) -> Option<(String, String)> {
    let (key, value) = line.split_once('=')?;
    let key = key.trim().to_ascii_lowercase();
    (!key.is_empty()).then(|| (key, strip_comment(value)))
}

/// `value` up to a `#` or `;` that follows whitespace, trimmed.
fn strip_comment(value: &str) -> String {
    let mut previous_blank = false;
    for (at, c) in value.char_indices() {
        if previous_blank && (c == '#' || c == ';') {
            return value[..at].trim().to_owned();
        }
        previous_blank = c.is_whitespace();
    }
    value.trim().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_files_are_parsed_as_the_sdks_parse_them() {
        let config = "\
# a comment
; another
top = ignored before any section
[default]
region = eu-west-1   # trailing comment
output=json;not-a-comment
[profile dev]
region=us-west-2
s3 =
    addressing_style = path
  endpoint_url = http://minio.test:9000
role_session_name = a
   continued
[dev]
region = not-read-in-the-config-file
[profile  spaced\t]
region = ap-south-1
[services shared]
s3 =
  endpoint_url = http://services.test
[sso-session corp]
sso_region = x
[broken
region = lost
";
        let credentials = "\
[default]
aws_access_key_id=AKIADEF
aws_secret_access_key = def/secret+=   ; comment
[dev]
aws_access_key_id = AKIADEV
region = us-east-2
[profile dev]
aws_access_key_id = NOT-READ
";
        let files = ParsedFiles {
            config: parse_ini(config),
            credentials: parse_ini(credentials),
        };
        let default = files.profile("default").expect("default");
        assert_eq!(default["region"], "eu-west-1");
        assert_eq!(default["output"], "json;not-a-comment");
        assert_eq!(default["aws_access_key_id"], "AKIADEF");
        assert_eq!(default["aws_secret_access_key"], "def/secret+=");
        assert!(!default.contains_key("top"));

        let dev = files.profile("dev").expect("dev");
        // The credentials file wins over the config file.
        assert_eq!(dev["region"], "us-east-2");
        assert_eq!(dev["aws_access_key_id"], "AKIADEV");
        assert_eq!(dev["s3.addressing_style"], "path");
        assert_eq!(dev["s3.endpoint_url"], "http://minio.test:9000");
        assert_eq!(dev["role_session_name"], "a\ncontinued");
        assert_eq!(
            files.profile("spaced").expect("spaced")["region"],
            "ap-south-1"
        );
        assert_eq!(
            files.services("shared").expect("services")["s3.endpoint_url"],
            "http://services.test"
        );
        // `[x]` in the config file and `[profile x]` in the credentials file name nothing.
        assert!(files.profile("corp").is_none());
        assert!(files.profile("profile dev").is_none());
        assert!(files.profile("broken").is_none());
        assert!(files.profile("nosuch").is_none());

        // `[profile default]` beats `[default]` in the config file.
        let files = ParsedFiles {
            config: parse_ini("[default]\nregion = a\n[profile default]\nregion = b\n"),
            credentials: Vec::new(),
        };
        assert_eq!(files.profile("default").expect("default")["region"], "b");
    }
}
