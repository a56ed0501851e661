//! `gs://bucket/object` and `gs+http(s)://host[:port]/bucket/object`: the grammar, checked
//! before anything is built, and the normal form that is the id.
//!
//! - An object name ending in `/` is a prefix (a folder); `gs://bucket/` is the whole bucket.
//! - The bucket is a Cloud Storage bucket name: 3 to 222 characters of `a-z`, `0-9`, `-`, `_`
//!   and `.`, starting and ending with a letter or digit.
//! - The object name is a safe relative path (no `..`, `.` or empty segment, no backslash or
//!   control character), so that it can name the model's file or folder.
//! - `gs+http://host:port/…` names the endpoint: the id of an object on any endpoint but
//!   Google's, so that one bucket name on two servers is two models.

use std::fmt;

use catalog_core::{OtherRef, ParseRefError, SafeRelPath};

/// What to write instead of a reference that is refused.
const HINT: &str = "write `gs://bucket/path/to/object` for one object, or `gs://bucket/prefix/` for every object under a prefix";

/// A `gs://` reference, read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct GsRef {
    /// `scheme://host[:port]`, when the reference names its endpoint.
    pub(crate) endpoint: Option<String>,
    pub(crate) bucket: String,
    /// The object's name, or a prefix ending with `/` (empty: the whole bucket).
    pub(crate) object: String,
}

impl GsRef {
    /// Whether it names a folder: every object under a prefix.
    pub(crate) fn is_prefix(&self) -> bool {
        self.object.is_empty() || self.object.ends_with('/')
    }

    /// Reads `reference`, of scheme `gs`, `gs+http` or `gs+https`.
    pub(crate) fn read(reference: &OtherRef) -> Result<GsRef, ParseRefError> {
        let text = reference.to_string();
        let refuse = |reason: String| ParseRefError::new(&text, reason).with_hint(HINT);
        let Some(rest) = reference.rest().strip_prefix("//") else {
            return Err(refuse(format!(
                "a `{}:` reference starts with `//`",
                reference.scheme()
            )));
        };
        if rest.contains(['?', '#']) {
            return Err(refuse(
                "a `gs://` reference takes no query or fragment".into(),
            ));
        }
        let (endpoint, path) = match reference.scheme() {
            "gs" => (None, rest),
            scheme => {
                let http = scheme.strip_prefix("gs+").unwrap_or("https");
                let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
                if host.contains('@') {
                    return Err(ParseRefError::new(&text, "credentials do not belong in a reference")
                        .with_hint("set GOOGLE_APPLICATION_CREDENTIALS, or run `gcloud auth application-default login`"));
                }
                let url = url::Url::parse(&format!("{http}://{host}"))
                    .ok()
                    .filter(|u| u.host_str().is_some_and(|h| !h.is_empty()))
                    .ok_or_else(|| refuse(format!("`{host}` is not `host[:port]`")))?;
                (Some(endpoint_id(&url)), path)
            }
        };
        let Some((bucket, object)) = path.split_once('/') else {
            return Err(refuse(if path.is_empty() {
                "it names no bucket".into()
            } else {
                format!("it names bucket `{path}` but no object in it")
            }));
        };
        if let Some(problem) = bucket_problem(bucket) {
            return Err(refuse(format!(
                "`{bucket}` is not a bucket name: {problem}"
            )));
        }
        let name = object.strip_suffix('/').unwrap_or(object);
        if !name.is_empty()
            && let Err(e) = SafeRelPath::new(name)
        {
            return Err(refuse(format!(
                "the object name `{object}` is not a safe path: {e}"
            )));
        }
        Ok(GsRef {
            endpoint,
            bucket: bucket.to_owned(),
            object: object.to_owned(),
        })
    }

    /// The reference as an [`OtherRef`], in its normal form.
    pub(crate) fn to_other(&self) -> Option<OtherRef> {
        let text = self.to_string();
        let (scheme, rest) = text.split_once(':')?;
        OtherRef::new(scheme, rest).ok()
    }
}

impl fmt::Display for GsRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.endpoint {
            Some(endpoint) => {
                let (scheme, host) = endpoint.split_once("://").unwrap_or(("https", endpoint));
                write!(f, "gs+{scheme}://{host}/{}/{}", self.bucket, self.object)
            }
            None => write!(f, "gs://{}/{}", self.bucket, self.object),
        }
    }
}

/// What is wrong with `name` as a bucket name, if anything.
fn bucket_problem(name: &str) -> Option<&'static str> {
    if !(3..=222).contains(&name.len()) {
        return Some("it has 3 to 222 characters");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'_' | b'.'))
    {
        return Some("it holds only lowercase letters, digits, `-`, `_` and `.`");
    }
    let alnum = |b: Option<u8>| b.is_some_and(|b| b.is_ascii_alphanumeric());
    if !alnum(name.bytes().next()) || !alnum(name.bytes().last()) {
        return Some("it starts and ends with a letter or a digit");
    }
    None
}

/// `scheme://host[:port]` of an endpoint, as ids write it (no default port, no path).
pub(crate) fn endpoint_id(url: &url::Url) -> String {
    let host = url.host_str().unwrap_or_default();
    match url.port() {
        Some(port) => format!("{}://{host}:{port}", url.scheme()),
        None => format!("{}://{host}", url.scheme()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str) -> Result<GsRef, ParseRefError> {
        let (scheme, rest) = text.split_once(':').expect("a scheme");
        GsRef::read(&OtherRef::new(scheme, rest)?)
    }

    #[test]
    fn objects_prefixes_and_endpoints_read_and_print_back() -> Result<(), ParseRefError> {
        let one = read("gs://my-bucket/models/tiny.gguf")?;
        assert_eq!(
            (one.bucket.as_str(), one.object.as_str()),
            ("my-bucket", "models/tiny.gguf")
        );
        assert!(!one.is_prefix());
        assert_eq!(one.to_string(), "gs://my-bucket/models/tiny.gguf");
        let folder = read("gs://my.bucket_1/models/")?;
        assert!(folder.is_prefix());
        assert!(read("gs://bkt/")?.is_prefix());
        let there = read("gs+http://127.0.0.1:4443/bkt/a/b.bin")?;
        assert_eq!(there.endpoint.as_deref(), Some("http://127.0.0.1:4443"));
        assert_eq!(there.to_string(), "gs+http://127.0.0.1:4443/bkt/a/b.bin");
        assert_eq!(
            read("gs+https://storage.example:443/bkt/x")?.to_string(),
            "gs+https://storage.example/bkt/x"
        );
        Ok(())
    }

    #[test]
    fn malformed_references_are_refused_with_the_reason_and_a_hint() {
        for (text, reason) in [
            ("gs://bkt", "it names bucket `bkt` but no object in it"),
            ("gs:bkt/x", "a `gs:` reference starts with `//`"),
            (
                "gs://Bkt/x",
                "`Bkt` is not a bucket name: it holds only lowercase letters, digits, `-`, `_` and `.`",
            ),
            (
                "gs://ab/x",
                "`ab` is not a bucket name: it has 3 to 222 characters",
            ),
            (
                "gs://-bkt/x",
                "`-bkt` is not a bucket name: it starts and ends with a letter or a digit",
            ),
            (
                "gs://bkt/x?generation=1",
                "a `gs://` reference takes no query or fragment",
            ),
            (
                "gs+http://u:p@host/bkt/x",
                "credentials do not belong in a reference",
            ),
        ] {
            let err = read(text).expect_err(text);
            assert_eq!(err.reason(), reason, "{text}");
            assert!(err.hint().is_some(), "{text}");
        }
        for hostile in [
            "gs://bkt/../x",
            "gs://bkt/a//b",
            "gs://bkt/a/./b",
            "gs://bkt/a\\b",
        ] {
            let err = read(hostile).expect_err(hostile);
            assert!(
                err.reason().contains("is not a safe path"),
                "{hostile}: {err}"
            );
        }
    }
}
