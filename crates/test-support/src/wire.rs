//! HTTP/1.1 on loopback, by hand: message heads, bodies framed by length or chunks, one
//! request per connection for the client side, and Basic credentials.

use std::fmt::Write as _;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// How long a read may wait on a loopback peer before the exchange fails.
pub(crate) const READ_TIMEOUT: Duration = Duration::from_secs(60);

/// A request or response head: the first line and the header fields, as sent.
#[derive(Debug, Clone)]
pub(crate) struct Head {
    pub(crate) first: String,
    pub(crate) headers: Vec<(String, String)>,
}

impl Head {
    /// Reads a head; `None` when the peer closed the connection before sending one.
    pub(crate) fn read(reader: &mut impl BufRead) -> io::Result<Option<Head>> {
        let mut first = String::new();
        if reader.read_line(&mut first)? == 0 {
            return Ok(None);
        }
        let mut headers = Vec::new();
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line)? == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':') {
                headers.push((name.trim().to_owned(), value.trim().to_owned()));
            }
        }
        Ok(Some(Head {
            first: first.trim_end().to_owned(),
            headers,
        }))
    }

    /// The first header called `name`, ignoring case.
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The `Content-Length`, if any.
    pub(crate) fn content_length(&self) -> Option<u64> {
        self.get("content-length").and_then(|v| v.parse().ok())
    }

    /// Whether the body is sent in chunks.
    pub(crate) fn chunked(&self) -> bool {
        self.get("transfer-encoding")
            .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"))
    }

    /// The status of a response head (0 if it has none).
    pub(crate) fn status(&self) -> u16 {
        self.first
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0)
    }
}

/// Headers that describe one hop, not the message: never forwarded.
pub(crate) fn hop_by_hop(name: &str) -> bool {
    [
        "connection",
        "keep-alive",
        "proxy-connection",
        "transfer-encoding",
        "content-length",
        "te",
        "trailer",
        "upgrade",
    ]
    .iter()
    .any(|h| name.eq_ignore_ascii_case(h))
}

/// Reads a chunked body to its end, trailers included.
pub(crate) fn read_chunked(reader: &mut impl BufRead) -> io::Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        let size_text = line.trim().split(';').next().unwrap_or_default();
        let size = usize::from_str_radix(size_text, 16)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        if size == 0 {
            loop {
                line.clear();
                if reader.read_line(&mut line)? == 0 || line.trim().is_empty() {
                    return Ok(body);
                }
            }
        }
        let start = body.len();
        body.resize(start + size, 0);
        reader.read_exact(&mut body[start..])?;
        let mut crlf = [0; 2];
        reader.read_exact(&mut crlf)?;
    }
}

/// Whether a response to `method` with `status` has no body whatever its headers say.
pub(crate) fn bodiless(method: &str, status: u16) -> bool {
    method == "HEAD" || status == 204 || status == 304 || (100..200).contains(&status)
}

/// A request body for [`exchange`].
pub(crate) enum Body<'a> {
    /// No body, and no `Content-Length`.
    None,
    /// These bytes.
    Bytes(&'a [u8]),
    /// `len` bytes read from this reader as they are sent.
    Stream(&'a mut dyn Read, u64),
}

/// A whole answer from a test server, read by hand: status, header fields as sent, the body
/// (de-chunked).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The status.
    pub status: u16,
    /// The header fields, as sent.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl Reply {
    /// The first header called `name`, ignoring case.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as text (S3 errors are XML, registry errors JSON).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Sends one request to `authority` (`127.0.0.1:<port>`) on a connection of its own
/// (`Connection: close`) and reads the whole answer.
pub(crate) fn exchange(
    authority: &str,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: Body<'_>,
) -> io::Result<Reply> {
    let (response, mut reader) = send(authority, authority, method, target, headers, body)?;
    let status = response.status();
    let body = if bodiless(method, status) {
        Vec::new()
    } else if response.chunked() {
        read_chunked(&mut reader)?
    } else if let Some(len) = response.content_length() {
        let mut body = Vec::new();
        reader.take(len).read_to_end(&mut body)?;
        if body.len() as u64 != len {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "{method} {target}: the body ended after {} of {len} bytes",
                    body.len()
                ),
            ));
        }
        body
    } else {
        let mut body = Vec::new();
        reader.read_to_end(&mut body)?;
        body
    };
    Ok(Reply {
        status,
        headers: response.headers,
        body,
    })
}

/// Sends one request to `authority` on a connection of its own (`Connection: close`), with
/// `Host: <host>`, and reads the head of the answer; its body is left in the reader.
pub(crate) fn send(
    authority: &str,
    host: &str,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: Body<'_>,
) -> io::Result<(Head, BufReader<TcpStream>)> {
    let stream = TcpStream::connect(authority)?;
    stream.set_read_timeout(Some(READ_TIMEOUT))?;
    let mut head = format!("{method} {target} HTTP/1.1\r\nHost: {host}\r\n");
    for (name, value) in headers {
        let _ = write!(head, "{name}: {value}\r\n");
    }
    match &body {
        Body::None => {}
        Body::Bytes(b) => {
            let _ = write!(head, "Content-Length: {}\r\n", b.len());
        }
        Body::Stream(_, len) => {
            let _ = write!(head, "Content-Length: {len}\r\n");
        }
    }
    head.push_str("Connection: close\r\n\r\n");
    let mut writer = io::BufWriter::with_capacity(256 << 10, stream.try_clone()?);
    writer.write_all(head.as_bytes())?;
    match body {
        Body::None => {}
        Body::Bytes(b) => writer.write_all(b)?,
        Body::Stream(reader, len) => {
            let copied = io::copy(&mut reader.take(len), &mut writer)?;
            if copied != len {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("the request body ended after {copied} of {len} bytes"),
                ));
            }
        }
    }
    writer.flush()?;
    let mut reader = BufReader::new(stream);
    let response = Head::read(&mut reader)?.ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("{authority} closed the connection without answering {method} {target}"),
        )
    })?;
    Ok((response, reader))
}

const BASE64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64, with padding.
pub(crate) fn base64_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(BASE64[(n >> (18 - 6 * i)) as usize & 63]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Standard base64 decoded; `None` if `text` is not base64.
pub(crate) fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let text = text.trim_end_matches('=');
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in text.bytes() {
        let v = BASE64.iter().position(|&b| b == c)?;
        acc = acc << 6 | u32::try_from(v).ok()?;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push(u8::try_from(acc >> bits & 0xff).ok()?);
        }
    }
    Some(out)
}

/// The `Authorization` value for Basic credentials.
pub(crate) fn basic(user: &str, password: &str) -> String {
    format!(
        "Basic {}",
        base64_encode(format!("{user}:{password}").as_bytes())
    )
}

/// `%XX` escapes decoded, and `+` as a space (as in a form-encoded query).
pub(crate) fn percent_decode(text: &str) -> String {
    let hex = |b: u8| char::from(b).to_digit(16);
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%' && i + 2 < bytes.len())
            .then(|| Some(hex(bytes[i + 1])? * 16 + hex(bytes[i + 2])?))
            .flatten();
        match (bytes[i], escaped) {
            (_, Some(b)) => {
                out.push(u8::try_from(b).expect("two hex digits make a byte"));
                i += 2;
            }
            (b'+', None) => out.push(b' '),
            (b, None) => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trips_every_padding() {
        for text in ["", "f", "fo", "foo", "foob", "fooba", "foobar"] {
            let encoded = base64_encode(text.as_bytes());
            assert_eq!(base64_decode(&encoded).as_deref(), Some(text.as_bytes()));
        }
        assert_eq!(base64_encode(b"user:pass"), "dXNlcjpwYXNz");
        assert_eq!(base64_encode(b"fo"), "Zm8=");
        assert_eq!(base64_decode("not base64!"), None);
    }
}
