//! [`TlsFront`]: Debian's nginx as an HTTPS reverse proxy in front of a plain-HTTP server on
//! loopback (an [`crate::S3Server`], say), with a certificate from a CA made for the test.
//!
//! Each front makes its own CA (ECDSA P-256, with `rcgen`) and signs one server certificate
//! with it for `127.0.0.1` (an IP SAN) and `localhost` (a DNS SAN); the CA's certificate is
//! written to a PEM file a client is pointed at ([`TlsFront::ca_bundle`], for
//! `AWS_CA_BUNDLE`). A client that does not trust that CA fails the handshake, as it would
//! against a server with a private CA.
//!
//! nginx forwards requests as the client sent them, which is what a `SigV4` signature needs:
//!
//! - `Host` unchanged (`proxy_set_header Host $http_host`): the host the client signed,
//!   `127.0.0.1:<front port>`, is the host the upstream checks the signature against;
//! - the path and query untouched (`proxy_pass` without a URI part: no decoding, no merging
//!   of slashes);
//! - bodies streamed both ways, neither buffered nor limited in size (`proxy_request_buffering
//!   off`, `proxy_buffering off`, `client_max_body_size 0`), over HTTP/1.1 upstream so that a
//!   chunked upload stays chunked (nginx would buffer it whole over HTTP/1.0) and a
//!   `Content-Length` one keeps its length.
//!
//! ```text
//! <tmp>/
//! ├── ca.pem                 the CA's certificate: the bundle a client trusts
//! ├── server.pem, server.key the server's certificate and key
//! ├── nginx.conf, nginx.pid
//! ├── access.log             one line per request ([`FrontHit`])
//! ├── error.log              nginx's errors, failed handshakes among them (level `info`)
//! └── body/, proxy/, …       nginx's temp dirs
//! ```

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

use crate::nginx;
use crate::process::{self, ServerProcess};

/// How long nginx may take to listen after it starts.
const START_LIMIT: Duration = Duration::from_secs(10);

/// One request the front answered, from its access log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrontHit {
    /// `GET`, `PUT`, …
    pub method: String,
    /// The path, decoded, without the query (a presigned URL's signature stays out of the log).
    pub path: String,
    /// The status sent back (upstream's, or nginx's own `502` when upstream was unreachable).
    pub status: u16,
    /// The `Host` header the client sent, which is also the one forwarded.
    pub host: String,
    /// The `Range` header, if any.
    pub range: Option<String>,
}

/// A running nginx on `127.0.0.1:<port>` speaking HTTPS with a certificate from its own CA,
/// forwarding everything to a plain-HTTP upstream; killed, and its directory removed, on drop.
#[derive(Debug)]
pub struct TlsFront {
    /// Killed on drop, before the directory goes.
    _process: ServerProcess,
    port: u16,
    dir: tempfile::TempDir,
}

impl TlsFront {
    /// Makes a CA and a server certificate, and starts nginx on a free port in front of
    /// `upstream`: `127.0.0.1:<port>` or `http://127.0.0.1:<port>`.
    pub fn start(upstream: &str) -> io::Result<TlsFront> {
        let upstream = upstream
            .strip_prefix("http://")
            .unwrap_or(upstream)
            .trim_end_matches('/')
            .to_owned();
        let dir = tempfile::tempdir()?;
        let d = dir.path();
        nginx::make_temp_dirs(d)?;
        write_certificates(d)?;
        let conf = d.join("nginx.conf");
        let log = d.join("error.log");
        let spawn = |port: u16| {
            fs::write(&conf, config(d, port, &upstream)).map_err(|e| with_path(&conf, &e))?;
            Command::new(crate::nginx::nginx_binary())
                .arg("-c")
                .arg(&conf)
                .arg("-p")
                .arg(d)
                .arg("-e")
                .arg(&log)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .map_err(|e| io::Error::new(e.kind(), format!("starting nginx: {e}")))
        };
        let (process, port) = process::start_on_free_port(3, spawn, |child, port| {
            process::wait_ready(child, "nginx", port, &log, START_LIMIT, || {
                process::listening(port)
            })
        })?;
        Ok(TlsFront {
            _process: process,
            port,
            dir,
        })
    }

    /// `https://127.0.0.1:<port>`.
    pub fn endpoint(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The PEM file holding the CA's certificate: what a client must trust to reach the
    /// front (`AWS_CA_BUNDLE`).
    pub fn ca_bundle(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// The requests answered so far, oldest first.
    pub fn log(&self) -> Vec<FrontHit> {
        crate::read_log(&self.dir.path().join("access.log"), parse_line)
    }

    /// The access log once it has at least `n` lines (nginx logs a request just after it
    /// answers, so a client may be a moment ahead), or after 2 s, whatever it has then.
    pub fn log_of_at_least(&self, n: usize) -> Vec<FrontHit> {
        crate::at_least(n, || self.log())
    }

    /// What nginx logged at level `info` and above: a handshake the client broke off names
    /// the TLS alert it sent (`alert unknown ca` from a client that does not trust the CA).
    pub fn error_log_text(&self) -> String {
        fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default()
    }
}

/// Makes the CA and the server certificate it signs, and writes `ca.pem`, `server.pem` and
/// `server.key` into `dir`.
fn write_certificates(dir: &Path) -> io::Result<()> {
    let mut ca = CertificateParams::new(Vec::<String>::new()).map_err(io::Error::other)?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "test-support TLS front CA");
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_key = KeyPair::generate().map_err(io::Error::other)?;
    let ca_cert = ca.self_signed(&ca_key).map_err(io::Error::other)?;
    let issuer = Issuer::new(ca, ca_key);

    let mut server = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
        .map_err(io::Error::other)?;
    server
        .distinguished_name
        .push(DnType::CommonName, "127.0.0.1");
    server.is_ca = IsCa::ExplicitNoCa;
    server.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let server_key = KeyPair::generate().map_err(io::Error::other)?;
    let server_cert = server
        .signed_by(&server_key, &issuer)
        .map_err(io::Error::other)?;

    for (name, pem) in [
        ("ca.pem", ca_cert.pem()),
        ("server.pem", server_cert.pem()),
        ("server.key", server_key.serialize_pem()),
    ] {
        let path = dir.join(name);
        fs::write(&path, pem).map_err(|e| with_path(&path, &e))?;
    }
    Ok(())
}

/// nginx's configuration: HTTPS on 127.0.0.1:`port`, everything forwarded to `upstream`
/// (`host:port`) as the module doc says.
fn config(dir: &Path, port: u16, upstream: &str) -> String {
    let d = dir.display();
    let (prelude, temp_paths) = (nginx::prelude(dir), nginx::temp_paths(dir));
    format!(
        r#"{prelude}
http {{
    log_format front '$request_method $uri $status "$http_host" "$http_range"';
    access_log {d}/access.log front;
{temp_paths}
    keepalive_requests 10000;
    server {{
        listen 127.0.0.1:{port} ssl;
        ssl_certificate {d}/server.pem;
        ssl_certificate_key {d}/server.key;
        location / {{
            proxy_pass http://{upstream};
            proxy_http_version 1.1;
            proxy_set_header Host $http_host;
            proxy_set_header Connection "";
            proxy_request_buffering off;
            proxy_buffering off;
            client_max_body_size 0;
        }}
    }}
}}
"#
    )
}

fn parse_line(line: &str) -> Option<FrontHit> {
    let mut parts = line.splitn(5, ' ');
    let method = parts.next()?.to_owned();
    let path = parts.next()?.to_owned();
    let status = parts.next()?.parse().ok()?;
    let host = parts.next()?.trim_matches('"').to_owned();
    let range = parts.next()?.trim_matches('"');
    Some(FrontHit {
        method,
        path,
        status,
        host,
        range: (range != "-").then(|| range.to_owned()),
    })
}

fn with_path(path: &Path, e: &io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::S3Server;

    /// A client for the front: trusting its CA, or only the system's roots.
    fn client(front: &TlsFront, trust: bool) -> reqwest::Client {
        let mut builder = reqwest::Client::builder();
        if trust {
            let pem = fs::read(front.ca_bundle()).expect("reading the CA bundle");
            let ca = reqwest::Certificate::from_pem(&pem).expect("a PEM certificate");
            builder = builder.add_root_certificate(ca);
        }
        builder.build().expect("building a client")
    }

    /// A presigned `PUT` with a body and a presigned `GET`, both signed for the front's host,
    /// pass through: `Host` and bodies reach s3s-fs as the signature needs. A client that does
    /// not trust the CA is refused at the handshake.
    #[test]
    fn signed_requests_pass_through_with_their_host_and_body() -> io::Result<()> {
        let server = S3Server::start()?;
        let front = TlsFront::start(&server.endpoint())?;
        server.create_bucket("models")?;
        // rusty-s3 signs for the host of the endpoint it is given: the front's.
        let bucket = rusty_s3::Bucket::new(
            front.endpoint().parse().expect("a URL"),
            rusty_s3::UrlStyle::Path,
            "models".to_owned(),
            crate::S3_REGION,
        )
        .expect("a bucket");
        let put = crate::presign_with(&bucket, &server.credentials(), "PUT", "a/b.bin", &[]);
        let get = crate::presign_with(&bucket, &server.credentials(), "GET", "a/b.bin", &[]);
        let bytes = crate::random_bytes(300_000, 5);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;

        let trusted = client(&front, true);
        let sent = runtime
            .block_on(trusted.put(&put).body(bytes.clone()).send())
            .map_err(io::Error::other)?;
        assert_eq!(sent.status(), 200, "{}", server.log_text());
        assert!(fs::read(server.object_path("models", "a/b.bin"))? == bytes);
        let got = runtime
            .block_on(async { trusted.get(&get).send().await?.bytes().await })
            .map_err(io::Error::other)?;
        assert!(got == bytes);
        let host = format!("127.0.0.1:{}", front.port());
        let hit = |method: &str| FrontHit {
            method: method.to_owned(),
            path: "/models/a/b.bin".to_owned(),
            status: 200,
            host: host.clone(),
            range: None,
        };
        assert_eq!(front.log_of_at_least(2), vec![hit("PUT"), hit("GET")]);

        let refused = runtime
            .block_on(client(&front, false).get(&get).send())
            .expect_err("a CA the client does not trust");
        assert!(refused.is_connect(), "{refused:?}");
        assert_eq!(front.log().len(), 2);
        Ok(())
    }
}
