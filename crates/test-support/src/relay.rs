//! Relaying an upstream answer to a client, with its body held when a hold applies: what the
//! [`crate::HoldProxy`] and the [`crate::RegistryFront`] both do.

use std::fmt::Write as _;
use std::io::{self, BufReader, Read, Write};
use std::net::TcpStream;

use crate::holds::{Holds, Monitor};
use crate::wire::{self, Head};

/// Body bytes copied at a time.
const PIECE: usize = 64 << 10;

/// One upstream answer to relay on a client connection.
pub(crate) struct Relay<'a, S, C> {
    /// The server relaying it.
    pub(crate) monitor: &'a Monitor<S, C>,
    /// The client connection.
    pub(crate) out: &'a mut TcpStream,
    /// The method of the request, which says whether the answer has a body.
    pub(crate) method: &'a str,
    /// Whether to say `Connection: close`.
    pub(crate) close: bool,
    /// Whether a `2xx` body may be held.
    pub(crate) may_hold: bool,
}

impl<S: AsRef<Holds> + AsMut<Holds>, C> Relay<'_, S, C> {
    /// Relays `head` and its body from `upstream`: the head without its hop-by-hop fields, the
    /// body framed by length, streamed when upstream gave a length (and held there when a
    /// hold applies; `mark_held` marks the log entry then). `sent` is told the body bytes written
    /// so far when the body is done, cut short, or held. Returns whether the connection may
    /// go on.
    pub(crate) fn answer(
        self,
        head: &Head,
        upstream: &mut BufReader<TcpStream>,
        mark_held: impl FnOnce(&mut S),
        sent: impl Fn(u64),
    ) -> io::Result<bool> {
        let Relay {
            monitor,
            out,
            method,
            close,
            may_hold,
        } = self;
        let status = head.status();
        let bodiless = wire::bodiless(method, status);
        let (len, whole) = if bodiless {
            (head.content_length(), None)
        } else if head.chunked() {
            let body = wire::read_chunked(upstream)?;
            (Some(body.len() as u64), Some(body))
        } else if let Some(len) = head.content_length() {
            (Some(len), None)
        } else {
            let mut body = Vec::new();
            upstream.read_to_end(&mut body)?;
            (Some(body.len() as u64), Some(body))
        };
        let mut text = format!("{}\r\n", head.first);
        for (n, v) in &head.headers {
            if !wire::hop_by_hop(n) {
                let _ = write!(text, "{n}: {v}\r\n");
            }
        }
        if let Some(len) = len {
            let _ = write!(text, "Content-Length: {len}\r\n");
        }
        if close {
            text.push_str("Connection: close\r\n");
        }
        text.push_str("\r\n");
        out.write_all(text.as_bytes())?;
        if bodiless {
            out.flush()?;
            return Ok(true);
        }
        if let Some(body) = whole {
            out.write_all(&body)?;
            out.flush()?;
            sent(body.len() as u64);
            return Ok(true);
        }
        let len = len.unwrap_or(0);
        let offset = head
            .get("content-range")
            .filter(|_| status == 206)
            .and_then(|r| r.strip_prefix("bytes "))
            .and_then(|r| r.split('-').next())
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let hold = if may_hold && (200..300).contains(&status) {
            monitor.armed()
        } else {
            None
        };
        let stop_at = hold.and_then(|h| h.stop_in(offset, len));
        let mut copied = 0;
        let result = (|| {
            match stop_at {
                None => copy(monitor, upstream, out, len, &mut copied)?,
                Some(stop_at) => {
                    copy(monitor, upstream, out, stop_at, &mut copied)?;
                    out.flush()?;
                    sent(copied);
                    if !monitor.wait_release(mark_held) {
                        return Ok(false);
                    }
                    copy(monitor, upstream, out, len - stop_at, &mut copied)?;
                }
            }
            out.flush().map(|()| true)
        })();
        sent(copied);
        result
    }
}

/// Copies `len` bytes from upstream to the client, a piece at a time, counting them in
/// `copied`.
fn copy<S: AsRef<Holds> + AsMut<Holds>, C>(
    monitor: &Monitor<S, C>,
    upstream: &mut impl Read,
    out: &mut TcpStream,
    len: u64,
    copied: &mut u64,
) -> io::Result<()> {
    let mut buf = vec![0; PIECE];
    let mut left = len;
    while left > 0 {
        let want = usize::try_from(left.min(PIECE as u64)).expect("a piece fits");
        let n = upstream.read(&mut buf[..want])?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "upstream ended the body early",
            ));
        }
        out.write_all(&buf[..n])?;
        *copied += n as u64;
        left -= n as u64;
        if monitor.stopping() {
            return Err(io::Error::other("the server is stopping"));
        }
    }
    Ok(())
}
