//! [`serve_canned`]: canned answers, one per connection, for unit tests of clients.

use std::fmt::Write as _;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::thread::JoinHandle;

/// Serves one canned answer per connection on 127.0.0.1, in order, and hands back the
/// requests as received (head, then body). Each answer is `(status, body)`, such as
/// `("200 OK", "{}")`, sent with a `Content-Type` of `content_type` if given, its
/// `Content-Length` and `Connection: close`. Returns `http://127.0.0.1:<port>` and the
/// server thread, which ends after the last answer (and panics if a client goes away early).
pub fn serve_canned(
    content_type: Option<&str>,
    answers: Vec<(&str, String)>,
) -> io::Result<(String, JoinHandle<Vec<String>>)> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let base = format!("http://{}", listener.local_addr()?);
    let answers: Vec<String> = answers
        .into_iter()
        .map(|(status, body)| {
            let mut answer = format!("HTTP/1.1 {status}\r\n");
            if let Some(content_type) = content_type {
                let _ = write!(answer, "Content-Type: {content_type}\r\n");
            }
            let _ = write!(
                answer,
                "Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            answer
        })
        .collect();
    let handle = std::thread::spawn(move || {
        let mut requests = Vec::new();
        for answer in answers {
            let (stream, _) = listener.accept().expect("a connection");
            let mut reader = BufReader::new(stream);
            let mut request = String::new();
            let mut length = 0;
            loop {
                let mut line = String::new();
                reader.read_line(&mut line).expect("a request line");
                if let Some((name, value)) = line.split_once(':')
                    && name.eq_ignore_ascii_case("content-length")
                {
                    length = value.trim().parse().expect("a length");
                }
                request.push_str(&line);
                if line == "\r\n" || line.is_empty() {
                    break;
                }
            }
            let mut body = vec![0; length];
            reader.read_exact(&mut body).expect("the body");
            request.push_str(&String::from_utf8_lossy(&body));
            reader
                .get_mut()
                .write_all(answer.as_bytes())
                .expect("the answer");
            requests.push(request);
        }
        requests
    });
    Ok((base, handle))
}
