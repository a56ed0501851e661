//! `http://` and `https://` references: one file served over HTTP.
//!
//! - URLs are normalised by the WHATWG URL rules (lowercase host, default port dropped), and
//!   `Display` writes that form whole, credentials and query included.
//! - Their id, [`HttpRef::redacted`], drops user info, query and fragment, so credentials
//!   never become part of an id, nor of what is printed.

use std::fmt;

use super::ParseRefError;

/// An `http://` or `https://` URL.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HttpRef {
    url: url::Url,
}

impl HttpRef {
    /// The full URL, credentials included: never log or store this.
    pub fn url(&self) -> &url::Url {
        &self.url
    }

    /// The URL without user info, query or fragment: safe to log and used as the id.
    pub fn redacted(&self) -> String {
        let mut url = self.url.clone();
        // Both only fail for URLs that cannot have a host, which `parse` refuses.
        let _ = url.set_username("");
        let _ = url.set_password(None);
        url.set_query(None);
        url.set_fragment(None);
        url.into()
    }

    /// The last path segment, if it is a usable file name.
    pub fn file_name(&self) -> Option<&str> {
        self.url
            .path_segments()?
            .next_back()
            .filter(|s| !s.is_empty() && *s != "." && *s != "..")
    }

    /// Writes the whole normalised URL, credentials included, as [`url`](Self::url) holds it.
    pub(super) fn write_normalised(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.url.as_str())
    }
}

/// Parses `s`, the whole `http://` or `https://` URL that `input` holds.
pub(super) fn parse(input: &str, s: &str) -> Result<HttpRef, ParseRefError> {
    let url = url::Url::parse(s)
        .map_err(|e| ParseRefError::new(input, format!("not a valid URL: {e}")))?;
    if url.host_str().is_none_or(str::is_empty) {
        return Err(ParseRefError::new(input, "the URL has no host"));
    }
    Ok(HttpRef { url })
}
