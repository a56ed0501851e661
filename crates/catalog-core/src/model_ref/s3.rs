//! `s3://` references: an object, or a prefix of objects, in an S3 bucket.
//!
//! - An `s3://` reference names a bucket on the endpoint configured for S3 (AWS's unless
//!   `AWS_ENDPOINT_URL` says otherwise); `s3+http://host:port/bucket/key` names the endpoint
//!   itself, and is the id of an object on any endpoint but AWS's, so that one bucket name on
//!   two servers is two models. The endpoint is written `scheme://host[:port]`, lowercase, no
//!   path and no credentials.
//! - A key ending in `/` names a prefix; no other segment of the key may be empty.
//! - The id is the normalised form.

use std::fmt;

use super::{ParseRefError, check_segment, printable};

/// `s3://bucket/key`, or `s3+http(s)://endpoint/bucket/key`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct S3Ref {
    /// The endpoint, `http(s)://host[:port]`, when the reference names one; `None` means the
    /// endpoint configured for S3.
    pub endpoint: Option<String>,
    /// The bucket.
    pub bucket: String,
    /// The key; ends with `/` when it names a prefix.
    pub key: String,
}

impl S3Ref {
    /// Whether the key names a prefix (a folder of objects).
    pub fn is_prefix(&self) -> bool {
        self.key.ends_with('/')
    }

    /// Writes the normalised form, `s3://bucket/key` or `s3+scheme://host[:port]/bucket/key`.
    pub(super) fn write_normalised(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.endpoint {
            Some(endpoint) => {
                let (scheme, host) = endpoint.split_once("://").unwrap_or(("https", endpoint));
                write!(f, "s3+{scheme}://{host}/{}/{}", self.bucket, self.key)
            }
            None => write!(f, "s3://{}/{}", self.bucket, self.key),
        }
    }
}

/// `s3+http(s)://host[:port]/bucket/key`: the endpoint, then as `s3://bucket/key`.
pub(super) fn parse_endpoint(input: &str, s: &str) -> Result<S3Ref, ParseRefError> {
    let hint = "write `s3+http://host:port/bucket/key` (or `s3+https://…`)";
    let url_text = &s[3..];
    let url = url::Url::parse(url_text).map_err(|e| {
        ParseRefError::new(input, format!("not a valid endpoint URL: {e}")).with_hint(hint)
    })?;
    let Some(host) = url.host_str().filter(|h| !h.is_empty()) else {
        return Err(ParseRefError::new(input, "the endpoint has no host").with_hint(hint));
    };
    if !url.username().is_empty() || url.password().is_some() {
        return Err(
            ParseRefError::new(input, "credentials do not belong in a reference")
                .with_hint("set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE"),
        );
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(
            ParseRefError::new(input, "an S3 reference takes no query or fragment").with_hint(hint),
        );
    }
    let endpoint = match url.port() {
        Some(port) => format!("{}://{host}:{port}", url.scheme()),
        None => format!("{}://{host}", url.scheme()),
    };
    // The path is `/bucket/key`, parsed as `s3://` parses `//bucket/key`; the raw text keeps
    // what `Url` would have normalised away (`..`, empty segments), so that it is refused.
    let after_scheme = &url_text[url_text.find("://").map_or(0, |i| i + 3)..];
    let path = after_scheme.find('/').map_or("", |i| &after_scheme[i..]);
    parse(input, &format!("/{path}"), Some(endpoint))
}

/// Parses what follows `s3:` in `input`, `//bucket/key`, as an object on `endpoint`.
pub(super) fn parse(
    input: &str,
    rest: &str,
    endpoint: Option<String>,
) -> Result<S3Ref, ParseRefError> {
    let hint = "write `s3://bucket/path/to/model`";
    let Some(rest) = rest.strip_prefix("//") else {
        return Err(
            ParseRefError::new(input, "`s3:` must be followed by `//bucket/key`").with_hint(hint),
        );
    };
    let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
    let bucket_ok = (3..=63).contains(&bucket.len())
        && bucket
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
        && !bucket.starts_with(['-', '.'])
        && !bucket.ends_with(['-', '.']);
    if !bucket_ok {
        return Err(ParseRefError::new(
            input,
            format!(
                "`{}` is not a valid S3 bucket name (3 to 63 lowercase letters, digits, `-` or `.`)",
                printable(bucket)
            ),
        )
        .with_hint(hint));
    }
    if key.is_empty() {
        return Err(ParseRefError::new(input, "the S3 reference has no key").with_hint(hint));
    }
    let segments: Vec<&str> = key.split('/').collect();
    for (i, seg) in segments.iter().enumerate() {
        // A trailing `/` marks a prefix, so only the last segment may be empty.
        if seg.is_empty() && i + 1 == segments.len() {
            continue;
        }
        check_segment(input, "S3 key", seg)?;
    }
    Ok(S3Ref {
        endpoint,
        bucket: bucket.to_owned(),
        key: key.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use crate::model_ref::ModelRef;
    use crate::model_ref::tests::parse;

    #[test]
    fn s3_endpoints_are_normalised_and_part_of_the_id() {
        let ModelRef::S3(s) = parse("S3+HTTP://LocalHost:9000/b-1/dir/") else {
            panic!("not s3")
        };
        assert_eq!(s.endpoint.as_deref(), Some("http://localhost:9000"));
        assert!(s.is_prefix());
        assert_eq!(
            parse("s3+https://minio.example:443/b-1/k")
                .syntactic_id()
                .as_deref(),
            Some("s3+https://minio.example/b-1/k")
        );
        assert_eq!(
            parse("s3://b-1/k").syntactic_id().as_deref(),
            Some("s3://b-1/k")
        );
    }
}
