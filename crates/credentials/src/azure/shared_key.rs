//! [`SharedKey`]: a request signed with the account key, as the Blob service checks it.
//!
//! ```text
//! Authorization: SharedKey <account>:base64(HMAC-SHA256(base64decode(key), string to sign))
//!
//! string to sign = VERB \n Content-Encoding \n Content-Language \n Content-Length (empty for 0)
//!                  \n Content-MD5 \n Content-Type \n Date \n If-Modified-Since \n If-Match
//!                  \n If-None-Match \n If-Unmodified-Since \n Range \n
//!                  canonicalized headers: every x-ms-* header, lowercase, sorted, `name:value\n`
//!                  canonicalized resource: /<account><path as sent>, then for each query
//!                  parameter, lowercase and sorted, `\nname:value[,value…]` (decoded)
//! ```
//!
//! The path is the URL's as it is sent, so Azurite's path-style URLs sign
//! `/devstoreaccount1/devstoreaccount1/container/blob`, as the SDKs do. Every request gets
//! its own `x-ms-date`: a signature is good for 15 minutes of clock skew, and a long download's
//! later ranges are signed when they are sent.

use std::fmt;

use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use reqwest::header::{self, HeaderMap, HeaderName, HeaderValue};
use sha2::Sha256;

use crate::Secret;

/// An account's key, ready to sign requests. `Debug` shows the account only.
#[derive(Clone)]
pub struct SharedKey {
    account: String,
    key: Vec<u8>,
}

impl fmt::Debug for SharedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedKey")
            .field("account", &self.account)
            .field("key", &"<redacted>")
            .finish()
    }
}

/// The name of `x-ms-date`.
const X_MS_DATE: HeaderName = HeaderName::from_static("x-ms-date");

impl SharedKey {
    /// The key of `account`, given in base64 as the portal shows it; `None` when it is not
    /// base64.
    pub fn new(account: &str, key: &Secret) -> Option<Self> {
        let key = base64::engine::general_purpose::STANDARD
            .decode(key.expose().trim())
            .ok()
            .filter(|k| !k.is_empty())?;
        Some(SharedKey {
            account: account.to_owned(),
            key,
        })
    }

    /// The account the key is for.
    pub fn account(&self) -> &str {
        &self.account
    }

    /// Signs a request of `method` to `url` carrying `headers`: sets `x-ms-date` to now and
    /// `Authorization`. `headers` must hold every header the request sends that the string to
    /// sign covers (`x-ms-version`, `Range`, `If-Match`, and `Content-Length` for a body).
    ///
    /// # Panics
    ///
    /// Never: a date, an account name and base64 are header values.
    pub fn sign(&self, method: &str, url: &url::Url, headers: &mut HeaderMap) {
        let now = jiff::Timestamp::now()
            .strftime("%a, %d %b %Y %H:%M:%S GMT")
            .to_string();
        headers.insert(
            X_MS_DATE,
            HeaderValue::from_str(&now).expect("a date is a header value"),
        );
        let mut value = HeaderValue::from_str(&format!(
            "SharedKey {}:{}",
            self.account,
            self.signature(&string_to_sign(&self.account, method, url, headers))
        ))
        .expect("base64 and an account name are a header value");
        value.set_sensitive(true);
        headers.insert(header::AUTHORIZATION, value);
    }

    /// base64 of the HMAC-SHA256 of `text` with the key: a request's signature, or a SAS's.
    ///
    /// # Panics
    ///
    /// Never: HMAC takes a key of any length.
    pub fn signature(&self, text: &str) -> String {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.key)
            .expect("HMAC takes a key of any length");
        mac.update(text.as_bytes());
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    }
}

/// The string `SharedKey` signs for a request of `method` to `url` with `headers`, for
/// `account`:
///
/// ```text
/// VERB \n Content-Encoding \n Content-Language \n Content-Length (empty for 0) \n Content-MD5
/// \n Content-Type \n Date \n If-Modified-Since \n If-Match \n If-None-Match
/// \n If-Unmodified-Since \n Range \n
/// every x-ms-* header, lowercase, sorted, `name:value\n`
/// /<account><path as sent>, then for each query parameter, lowercase and sorted,
/// `\nname:value[,value…]` (decoded)
/// ```
pub fn string_to_sign(account: &str, method: &str, url: &url::Url, headers: &HeaderMap) -> String {
    let get = |name: &HeaderName| {
        let values: Vec<&str> = headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        values.join(",")
    };
    let length = get(&header::CONTENT_LENGTH);
    let mut text = String::new();
    text.push_str(&method.to_ascii_uppercase());
    for value in [
        get(&header::CONTENT_ENCODING),
        get(&header::CONTENT_LANGUAGE),
        if length == "0" { String::new() } else { length },
        get(&HeaderName::from_static("content-md5")),
        get(&header::CONTENT_TYPE),
        get(&header::DATE),
        get(&header::IF_MODIFIED_SINCE),
        get(&header::IF_MATCH),
        get(&header::IF_NONE_MATCH),
        get(&header::IF_UNMODIFIED_SINCE),
        get(&header::RANGE),
    ] {
        text.push('\n');
        text.push_str(&value);
    }
    text.push('\n');
    let mut names: Vec<&str> = headers
        .keys()
        .map(HeaderName::as_str)
        .filter(|n| n.starts_with("x-ms-"))
        .collect();
    names.sort_unstable();
    names.dedup();
    for name in names {
        let values: Vec<&str> = headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        let value = values.join(",");
        let folded = value.split_whitespace().collect::<Vec<_>>().join(" ");
        text.push_str(name);
        text.push(':');
        text.push_str(&folded);
        text.push('\n');
    }
    text.push('/');
    text.push_str(account);
    text.push_str(url.path());
    let mut params: Vec<(String, Vec<String>)> = Vec::new();
    for (name, value) in url.query_pairs() {
        let name = name.to_ascii_lowercase();
        match params.iter_mut().find(|(n, _)| *n == name) {
            Some((_, values)) => values.push(value.into_owned()),
            None => params.push((name, vec![value.into_owned()])),
        }
    }
    params.sort();
    for (name, mut values) in params {
        values.sort();
        text.push('\n');
        text.push_str(&name);
        text.push(':');
        text.push_str(&values.join(","));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Azurite's well-known development key.
    const DEV_KEY: &str =
        "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).expect("a value"));
        }
        h
    }

    #[test]
    fn the_string_to_sign_of_a_ranged_get_is_the_one_derived_by_hand() {
        // By hand, from the rules in the module docs: eleven standard headers (only If-Match
        // and Range set), the x-ms-* headers sorted, the resource with the account twice
        // (path style) and the listing's parameters lowercased, sorted and decoded.
        let url: url::Url = "http://127.0.0.1:10000/devstoreaccount1/models/dir%20a/w.gguf?Comp=list&restype=container&prefix=a%2Fb"
            .parse()
            .expect("a URL");
        let h = headers(&[
            ("x-ms-version", "2023-11-03"),
            ("x-ms-date", "Sat, 05 Dec 2026 03:00:00 GMT"),
            ("x-ms-client-request-id", "  one   two "),
            ("range", "bytes=0-1023"),
            ("if-match", "\"0x8DC\""),
            ("content-length", "0"),
        ]);
        let expected = "GET\n\n\n\n\n\n\n\n\"0x8DC\"\n\n\nbytes=0-1023\n\
            x-ms-client-request-id:one two\n\
            x-ms-date:Sat, 05 Dec 2026 03:00:00 GMT\n\
            x-ms-version:2023-11-03\n\
            /devstoreaccount1/devstoreaccount1/models/dir%20a/w.gguf\n\
            comp:list\nprefix:a/b\nrestype:container";
        assert_eq!(
            string_to_sign("devstoreaccount1", "get", &url, &h),
            expected
        );
    }

    #[test]
    fn a_put_signs_its_length_and_type_and_every_request_gets_a_date() {
        let url: url::Url = "https://acct.blob.core.windows.net/c/b"
            .parse()
            .expect("a URL");
        let h = headers(&[
            ("content-length", "11"),
            ("content-type", "application/octet-stream"),
            ("x-ms-blob-type", "BlockBlob"),
        ]);
        assert_eq!(
            string_to_sign("acct", "PUT", &url, &h),
            "PUT\n\n\n11\n\napplication/octet-stream\n\n\n\n\n\n\nx-ms-blob-type:BlockBlob\n/acct/c/b"
        );
        let key = SharedKey::new("acct", &Secret::new(DEV_KEY.into())).expect("a key");
        let mut h = HeaderMap::new();
        key.sign("GET", &url, &mut h);
        assert!(h.contains_key("x-ms-date"));
        let auth = h.get(header::AUTHORIZATION).expect("signed");
        assert!(auth.is_sensitive());
        assert!(auth.to_str().expect("text").starts_with("SharedKey acct:"));
        assert!(!format!("{key:?}").contains("Eby8"));
        assert!(SharedKey::new("acct", &Secret::new("not base64!".into())).is_none());
    }

    #[test]
    fn the_signature_is_hmac_sha256_of_the_decoded_key() {
        // `printf 'abc' | openssl dgst -sha256 -mac HMAC -macopt hexkey:$(echo -n $KEY |
        // base64 -d | xxd -p -c 256) -binary | base64`
        let key = SharedKey::new("a", &Secret::new(DEV_KEY.into())).expect("a key");
        assert_eq!(
            key.signature("abc"),
            "SIcX91U20N3KMshjCxCtQlOGY5e+vjvvAoYG97vklcc="
        );
    }
}
