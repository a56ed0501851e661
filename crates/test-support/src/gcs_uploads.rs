//! [`GcsUploads`]: Cloud Storage's upload endpoint as Google documents it, for what
//! fake-gcs-server (1.54, the one the tests run) does not do: a session's status.
//!
//! fake-gcs-server takes a resumable session's chunks, but answers the status query
//! (`Content-Range: bytes */TOTAL`) by completing the object with the bytes it has, and with a
//! `Range` one byte too long. Cloud Storage answers it with `308` and `Range: bytes=0-N`, and
//! keeps the session. This server does that, and can cut a chunk short: keep its first bytes and
//! answer `503`, as a connection that broke mid-chunk leaves a session, so that a test sees a
//! client go on from what the server kept.
//!
//! ```text
//! POST /upload/storage/v1/b/{bucket}/o?uploadType=resumable&name=N   → 200, Location: session
//! PUT  <session>  Content-Range: bytes A-B/(TOTAL|*)                 → 308 Range, or 200 at the end
//! PUT  <session>  Content-Range: bytes */TOTAL                       → 308 Range: what it has
//! DELETE <session>                                                   → 499, session gone
//! POST /upload/storage/v1/b/{bucket}/o?uploadType=media&name=N       → 200, the object
//! ```
//!
//! Objects are kept in memory ([`GcsUploads::object`]); every request is logged with its
//! `Content-Range` and the status it got ([`GcsUploads::log`]).

use std::collections::HashMap;
use std::io;

use crate::endpoint::{Endpoint, EndpointRequest, Response};

/// One request the server answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadRequest {
    /// `POST`, `PUT`, `DELETE`.
    pub method: String,
    /// The path, without the query.
    pub path: String,
    /// The query's `uploadType`, if any.
    pub upload_type: Option<String>,
    /// The `Content-Range` header, if any.
    pub content_range: Option<String>,
    /// The `Authorization` header, if any.
    pub authorization: Option<String>,
    /// The status answered.
    pub status: u16,
}

impl From<EndpointRequest> for UploadRequest {
    fn from(r: EndpointRequest) -> Self {
        let owned = |v: Option<&str>| v.map(str::to_owned);
        UploadRequest {
            upload_type: owned(r.param("uploadType")),
            content_range: owned(r.header("content-range")),
            authorization: owned(r.header("authorization")),
            method: r.method,
            path: r.path,
            status: r.status,
        }
    }
}

#[derive(Debug, Default)]
struct State {
    /// `http://127.0.0.1:<port>`, where sessions are.
    origin: String,
    /// Sessions by id: the object's name and the bytes kept.
    sessions: HashMap<String, (String, Vec<u8>)>,
    objects: HashMap<String, Vec<u8>>,
    next_session: u64,
    /// Chunk `PUT`s seen so far, and the cuts to make: (the chunk's number from 1, bytes kept).
    chunks: usize,
    cuts: Vec<(usize, usize)>,
}

/// The upload endpoint on `127.0.0.1:<port>`; stopped on drop.
#[derive(Debug)]
pub struct GcsUploads {
    server: Endpoint<State>,
}

impl GcsUploads {
    /// Starts the server, with no objects.
    pub fn start() -> io::Result<GcsUploads> {
        let server = Endpoint::start(State::default(), answer)?;
        // Before any client can know the port, so before any request.
        let origin = server.origin();
        server.with(|state| state.origin = origin);
        Ok(GcsUploads { server })
    }

    /// `http://127.0.0.1:<port>`: the endpoint.
    pub fn endpoint(&self) -> String {
        self.server.origin()
    }

    /// The `number`th chunk `PUT` from now on (counting from 1, status queries not counted)
    /// keeps its first `keep` bytes and is answered `503`.
    pub fn cut_chunk(&self, number: usize, keep: usize) {
        self.server.with(|state| {
            let at = state.chunks + number;
            state.cuts.push((at, keep));
        });
    }

    /// The bytes of the object `name`, once its upload completed.
    pub fn object(&self, name: &str) -> Option<Vec<u8>> {
        self.server.with(|state| state.objects.get(name).cloned())
    }

    /// Every request so far, in order.
    pub fn log(&self) -> Vec<UploadRequest> {
        self.server.log().into_iter().map(Into::into).collect()
    }
}

/// The answer to one request.
fn answer(r: &EndpointRequest, body: &[u8], state: &mut State) -> Response {
    let empty = |status| Response::new(status, "application/json", "");
    match (r.method.as_str(), r.param("upload_id")) {
        ("DELETE", Some(id)) => {
            state.sessions.remove(id);
            empty(499)
        }
        ("PUT", Some(id)) => chunk(state, id, r.header("content-range"), body),
        ("POST", None) => match (r.param("uploadType"), r.param("name")) {
            (Some("resumable"), Some(name)) => {
                state.next_session += 1;
                let id = format!("session-{}", state.next_session);
                state
                    .sessions
                    .insert(id.clone(), (name.to_owned(), Vec::new()));
                let location = format!(
                    "{}{}?uploadType=resumable&upload_id={id}",
                    state.origin, r.path
                );
                empty(200).with_header("Location", location)
            }
            (Some("media"), Some(name)) => {
                let text = object_json(name, body.len());
                state.objects.insert(name.to_owned(), body.to_vec());
                Response::new(200, "application/json", text)
            }
            _ => empty(400),
        },
        _ => empty(404),
    }
}

/// A `PUT` to the session `id`: a chunk, or a status query.
fn chunk(state: &mut State, id: &str, range: Option<&str>, body: &[u8]) -> Response {
    let empty = |status| Response::new(status, "application/json", "");
    let Some(range) = range.and_then(|r| r.strip_prefix("bytes ")) else {
        return empty(400);
    };
    let Some((span, total)) = range.split_once('/') else {
        return empty(400);
    };
    let total: Option<usize> = total.parse().ok();
    let cut = if span == "*" {
        None
    } else {
        state.chunks += 1;
        let number = state.chunks;
        state
            .cuts
            .iter()
            .position(|(at, _)| *at == number)
            .map(|i| state.cuts.remove(i).1)
    };
    let Some((name, kept)) = state.sessions.get_mut(id) else {
        return empty(404);
    };
    if span != "*" {
        let start: Option<usize> = span.split('-').next().and_then(|s| s.parse().ok());
        if start != Some(kept.len()) {
            return empty(400);
        }
        if let Some(keep) = cut {
            kept.extend_from_slice(&body[..keep.min(body.len())]);
            return empty(503);
        }
        kept.extend_from_slice(body);
    }
    match total {
        Some(total) if total == kept.len() => {
            let (name, bytes) = (name.clone(), std::mem::take(kept));
            state.sessions.remove(id);
            let text = object_json(&name, bytes.len());
            state.objects.insert(name, bytes);
            Response::new(200, "application/json", text)
        }
        _ => {
            let mut incomplete = empty(308);
            incomplete.reason = Some("Resume Incomplete");
            if !kept.is_empty() {
                incomplete = incomplete.with_header("Range", format!("bytes=0-{}", kept.len() - 1));
            }
            incomplete
        }
    }
}

/// An object's resource, of the fields a client reads.
fn object_json(name: &str, size: usize) -> String {
    serde_json::json!({ "kind": "storage#object", "name": name, "size": size.to_string() })
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{self, Body};

    #[test]
    fn a_session_answers_its_status_keeps_a_cut_chunk_and_completes() -> io::Result<()> {
        let server = GcsUploads::start()?;
        let host = server.endpoint().trim_start_matches("http://").to_owned();
        let start = wire::exchange(
            &host,
            "POST",
            "/upload/storage/v1/b/models/o?uploadType=resumable&name=w%2Fa.bin",
            &[("Authorization", "Bearer t")],
            Body::Bytes(b"{}"),
        )?;
        assert_eq!(start.status, 200);
        let location = start.header("Location").expect("a session").to_owned();
        let session = location
            .strip_prefix(&server.endpoint())
            .expect("a session on the endpoint")
            .to_owned();
        let put = |range: &str, body: &[u8]| {
            wire::exchange(
                &host,
                "PUT",
                &session,
                &[("Content-Range", range)],
                Body::Bytes(body),
            )
        };

        let status = put("bytes */8", b"")?;
        assert_eq!((status.status, status.header("Range")), (308, None));
        server.cut_chunk(1, 3);
        assert_eq!(put("bytes 0-3/*", b"abcd")?.status, 503);
        let status = put("bytes */8", b"")?;
        assert_eq!(
            (status.status, status.header("Range")),
            (308, Some("bytes=0-2"))
        );
        assert_eq!(put("bytes 0-3/*", b"abcd")?.status, 400);
        let more = put("bytes 3-4/*", b"de")?;
        assert_eq!(
            (more.status, more.header("Range")),
            (308, Some("bytes=0-4"))
        );
        assert_eq!(server.object("w/a.bin"), None);
        let done = put("bytes 5-7/8", b"fgh")?;
        assert_eq!(done.status, 200);
        assert!(done.text().contains("\"size\":\"8\""), "{}", done.text());
        assert_eq!(server.object("w/a.bin").as_deref(), Some(&b"abcdefgh"[..]));
        assert_eq!(put("bytes */8", b"")?.status, 404);

        let log = server.log();
        assert_eq!(
            log.iter()
                .map(|r| (r.method.as_str(), r.content_range.as_deref(), r.status))
                .collect::<Vec<_>>(),
            [
                ("POST", None, 200),
                ("PUT", Some("bytes */8"), 308),
                ("PUT", Some("bytes 0-3/*"), 503),
                ("PUT", Some("bytes */8"), 308),
                ("PUT", Some("bytes 0-3/*"), 400),
                ("PUT", Some("bytes 3-4/*"), 308),
                ("PUT", Some("bytes 5-7/8"), 200),
                ("PUT", Some("bytes */8"), 404),
            ]
        );
        assert_eq!(log[0].upload_type.as_deref(), Some("resumable"));
        assert_eq!(log[0].authorization.as_deref(), Some("Bearer t"));
        assert_eq!(log[0].path, "/upload/storage/v1/b/models/o");
        Ok(())
    }
}
