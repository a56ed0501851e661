//! [`parse_challenges`]: the `Basic` and `Bearer` challenges of a registry's `WWW-Authenticate`
//! headers, read as leniently as registries write them. The parser is our own:
//! `docs/architecture.md` says why.

use reqwest::header::{self, HeaderMap};

/// An authorisation challenge from a registry's `WWW-Authenticate` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    /// Send the credential itself, in `Authorization: Basic`.
    Basic {
        /// The protection space, when named.
        realm: Option<String>,
    },
    /// Get a token from the service at `realm` and send it in `Authorization: Bearer`.
    Bearer {
        /// The token service's URL.
        realm: String,
        /// The `service` to ask the token for.
        service: Option<String>,
        /// The scope the registry asks for, when it says.
        scope: Option<String>,
    },
}

/// Parses every challenge in the `WWW-Authenticate` values (several headers, several
/// challenges in one, quoted strings with commas and escaped quotes, case-insensitive scheme
/// and param names, unquoted tokens). Schemes other than `Basic` and `Bearer`, a `Bearer`
/// without a realm, and what does not parse are left out.
pub fn parse_challenges(headers: &HeaderMap) -> Vec<Challenge> {
    headers
        .get_all(header::WWW_AUTHENTICATE)
        .iter()
        .flat_map(|value| parse_header(&String::from_utf8_lossy(value.as_bytes())))
        .filter_map(RawChallenge::into_challenge)
        .collect()
}

/// A challenge's scheme and parameters, names lowercased.
#[derive(Debug)]
struct RawChallenge {
    scheme: String,
    params: Vec<(String, String)>,
}

impl RawChallenge {
    fn into_challenge(self) -> Option<Challenge> {
        let param = |name: &str| {
            self.params
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.clone())
        };
        if self.scheme.eq_ignore_ascii_case("basic") {
            Some(Challenge::Basic {
                realm: param("realm"),
            })
        } else if self.scheme.eq_ignore_ascii_case("bearer") {
            Some(Challenge::Bearer {
                realm: param("realm").filter(|r| !r.is_empty())?,
                service: param("service"),
                scope: param("scope"),
            })
        } else {
            None
        }
    }
}

/// RFC 9110 `tchar`: what a scheme or a parameter name is made of.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// A cursor over one header value. Every delimiter is ASCII, so byte offsets cut the value
/// on character boundaries.
struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    fn skip_while(&mut self, keep: impl Fn(u8) -> bool) {
        while self.peek().is_some_and(&keep) {
            self.at += 1;
        }
    }

    fn skip_spaces(&mut self) {
        self.skip_while(|b| b == b' ' || b == b'\t');
    }

    fn skip_spaces_and_commas(&mut self) {
        self.skip_while(|b| b == b' ' || b == b'\t' || b == b',');
    }

    /// Skips what cannot be read, up to the next comma.
    fn skip_to_comma(&mut self) {
        self.skip_while(|b| b != b',');
    }

    fn token(&mut self) -> String {
        let start = self.at;
        self.skip_while(is_tchar);
        String::from_utf8_lossy(&self.bytes[start..self.at]).into_owned()
    }

    /// An unquoted value: lenient, as registries write URLs and scopes unquoted.
    fn bare_value(&mut self) -> String {
        let start = self.at;
        self.skip_while(|b| !matches!(b, b',' | b' ' | b'\t' | b'"'));
        String::from_utf8_lossy(&self.bytes[start..self.at]).into_owned()
    }

    /// A quoted string, the cursor on its opening quote; `\x` stands for `x`. An unterminated
    /// string runs to the end.
    fn quoted(&mut self) -> String {
        self.at += 1;
        let mut out = Vec::new();
        while let Some(b) = self.peek() {
            self.at += 1;
            match b {
                b'"' => break,
                b'\\' => {
                    if let Some(next) = self.peek() {
                        out.push(next);
                        self.at += 1;
                    }
                }
                _ => out.push(b),
            }
        }
        String::from_utf8_lossy(&out).into_owned()
    }
}

/// The challenges in one header value: `scheme [param=value, …]`, separated by commas. A
/// token after a comma starts a new challenge unless `=` follows it.
fn parse_header(value: &str) -> Vec<RawChallenge> {
    let mut cursor = Cursor {
        bytes: value.as_bytes(),
        at: 0,
    };
    let mut challenges = Vec::new();
    let mut next_scheme: Option<String> = None;
    loop {
        let scheme = match next_scheme.take() {
            Some(scheme) => scheme,
            None => {
                cursor.skip_spaces_and_commas();
                if cursor.peek().is_none() {
                    break;
                }
                let scheme = cursor.token();
                if scheme.is_empty() {
                    cursor.skip_to_comma();
                    continue;
                }
                scheme
            }
        };
        let mut params = Vec::new();
        loop {
            cursor.skip_spaces();
            match cursor.peek() {
                None => break,
                Some(b',') => {
                    cursor.skip_spaces_and_commas();
                    let start = cursor.at;
                    let token = cursor.token();
                    cursor.skip_spaces();
                    if token.is_empty() || cursor.peek() == Some(b'=') {
                        // A parameter of this challenge (or junk, read as one below).
                        cursor.at = start;
                    } else {
                        next_scheme = Some(token);
                        break;
                    }
                }
                Some(_) => {
                    let name = cursor.token();
                    cursor.skip_spaces();
                    if name.is_empty() || cursor.peek() != Some(b'=') {
                        // A token68 (`Basic dXNlcg==`) or junk: nothing we need.
                        cursor.skip_to_comma();
                        continue;
                    }
                    cursor.at += 1;
                    cursor.skip_spaces();
                    let value = if cursor.peek() == Some(b'"') {
                        cursor.quoted()
                    } else {
                        cursor.bare_value()
                    };
                    params.push((name.to_ascii_lowercase(), value));
                }
            }
        }
        challenges.push(RawChallenge { scheme, params });
    }
    challenges
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::testing::{TestResult, bearer};

    use reqwest::header::HeaderValue;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for v in values {
            map.append(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_str(v).expect("a valid header value"),
            );
        }
        map
    }

    #[test]
    fn challenges_parse_as_registries_write_them() -> TestResult {
        let basic = |realm: Option<&str>| Challenge::Basic {
            realm: realm.map(Into::into),
        };
        let table: Vec<(&[&str], Vec<Challenge>)> = vec![
            (
                &[
                    r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/alpine:pull""#,
                ],
                vec![bearer(
                    "https://auth.docker.io/token",
                    Some("registry.docker.io"),
                    Some("repository:library/alpine:pull"),
                )],
            ),
            (
                &[r#"Bearer realm="http://127.0.0.1:5001/auth", service="Docker registry""#],
                vec![bearer(
                    "http://127.0.0.1:5001/auth",
                    Some("Docker registry"),
                    None,
                )],
            ),
            (
                &[r#"Basic realm="Registry Realm""#],
                vec![basic(Some("Registry Realm"))],
            ),
            (&["Basic"], vec![basic(None)]),
            (
                &[
                    r#"Basic realm="a", Bearer realm="https://t/x", Negotiate, Bearer service="no realm""#,
                ],
                vec![basic(Some("a")), bearer("https://t/x", None, None)],
            ),
            (
                &[r#"Basic realm="one""#, r#"Bearer realm="https://t/y""#],
                vec![basic(Some("one")), bearer("https://t/y", None, None)],
            ),
            (
                &[
                    r#"Bearer realm="https://t/z",scope="repository:a/b:pull,push repository:c:pull""#,
                ],
                vec![bearer(
                    "https://t/z",
                    None,
                    Some("repository:a/b:pull,push repository:c:pull"),
                )],
            ),
            (
                &[r#"Basic realm="say \"hi\", \\ ok""#],
                vec![basic(Some(r#"say "hi", \ ok"#))],
            ),
            (
                &[r#"bEaReR REALM="https://t/m" , SeRvIcE = "s""#],
                vec![bearer("https://t/m", Some("s"), None)],
            ),
            (
                &["Bearer realm=https://t/u,service=reg,scope=repository:a:pull"],
                vec![bearer(
                    "https://t/u",
                    Some("reg"),
                    Some("repository:a:pull"),
                )],
            ),
            (
                &["Basic dXNlcjpwYXNz, Bearer realm=x"],
                vec![basic(None), bearer("x", None, None)],
            ),
            (&[""], vec![]),
            (&[",,, ,"], vec![]),
            (&["= = \"\" ,=\"x"], vec![]),
            (
                &[r#"Bearer realm="unterminated"#],
                vec![bearer("unterminated", None, None)],
            ),
            (&["Bearer"], vec![]),
            (&["}{garbage\"\\"], vec![]),
        ];
        for (values, expected) in table {
            assert_eq!(parse_challenges(&headers(values)), expected, "{values:?}");
        }
        // Bytes that are not UTF-8 do not panic either.
        let mut map = HeaderMap::new();
        map.append(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_bytes(b"Bearer realm=\"\xff\xfe\"")?,
        );
        assert_eq!(parse_challenges(&map).len(), 1);
        Ok(())
    }
}
