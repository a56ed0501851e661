//! Azure Blob Storage for the tests: [`Azurite`] (the real emulator, which checks `SharedKey`
//! signatures and SAS tokens), blobs put by signed requests, service SAS tokens made with the
//! account key; and the token services an Azure client may ask ([`EntraToken`], the instance
//! metadata service [`AzureImds`]) with a [`FakeBlobs`] endpoint that records the
//! `Authorization` each request carried, since Azurite takes bearer tokens only over https.
//!
//! The signing here is written apart from the crate under test's, from the service's
//! documentation, so that each checks the other against Azurite.

use std::fmt::Write as _;
use std::fs;
use std::io::{self, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sha2::{Digest as _, Sha256};

use crate::endpoint::{Endpoint, EndpointRequest, Response};
use crate::process::{self, ServerProcess};

/// Azurite's development account.
pub const AZURITE_ACCOUNT: &str = "devstoreaccount1";

/// Azurite's development account's published key.
pub const AZURITE_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

/// The `x-ms-version` of the requests made here.
const VERSION: &str = "2023-11-03";

/// How long Azurite has to start.
const START_LIMIT: Duration = Duration::from_secs(60);

/// `azurite-blob` as `scripts/install-test-deps.sh` installs it, under `.tools/azurite`.
pub fn azurite_binary() -> io::Result<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.tools/azurite");
    let binary = root.join("node_modules/.bin/azurite-blob");
    if binary.exists() {
        Ok(binary)
    } else {
        Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!(
                "{} is missing: run scripts/install-test-deps.sh",
                binary.display()
            ),
        ))
    }
}

/// A running `azurite-blob` on `127.0.0.1:<free port>`, its data in a temporary directory;
/// killed, and the directory removed, on drop.
#[derive(Debug)]
pub struct Azurite {
    _process: ServerProcess,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Azurite {
    /// Starts Azurite's Blob service on a free port.
    pub fn start() -> io::Result<Azurite> {
        let binary = azurite_binary()?;
        let dir = tempfile::tempdir()?;
        let log = dir.path().join("azurite.log");
        let spawn = |port: u16| {
            let out = fs::File::create(&log)?;
            Command::new(&binary)
                .args(["--blobHost", "127.0.0.1", "--blobPort", &port.to_string()])
                .arg("--location")
                .arg(dir.path().join("data"))
                .arg("--skipApiVersionCheck")
                .arg("--disableTelemetry")
                .stdin(Stdio::null())
                .stdout(out.try_clone()?)
                .stderr(out)
                .spawn()
                .map_err(|e| {
                    io::Error::new(e.kind(), format!("starting {}: {e}", binary.display()))
                })
        };
        let (process, port) = process::start_on_free_port(3, spawn, |child, port| {
            // Ready when it says so.
            process::wait_ready(child, "azurite-blob", port, &log, START_LIMIT, || {
                fs::read_to_string(&log).is_ok_and(|t| t.contains("successfully listens"))
            })
        })?;
        Ok(Azurite {
            _process: process,
            port,
            _dir: dir,
        })
    }

    /// `http://127.0.0.1:<port>`: what `--endpoint-url` takes.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// A connection string for the development account on this server.
    pub fn connection_string(&self) -> String {
        format!(
            "DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY};BlobEndpoint={}/{AZURITE_ACCOUNT};",
            self.endpoint()
        )
    }

    /// Creates the container `name`.
    pub fn create_container(&self, name: &str) -> io::Result<()> {
        self.create(name, &[])
    }

    /// Creates the container `name`, its blobs readable by anyone (public access `blob`).
    pub fn create_public_container(&self, name: &str) -> io::Result<()> {
        self.create(name, &[("x-ms-blob-public-access", "blob".to_owned())])
    }

    fn create(&self, name: &str, headers: &[(&str, String)]) -> io::Result<()> {
        let status = self.signed("PUT", &format!("/{name}?restype=container"), headers, b"")?;
        match status {
            201 | 409 => Ok(()),
            s => Err(io::Error::other(format!(
                "creating container {name}: HTTP {s}"
            ))),
        }
    }

    /// Puts `bytes` as the block blob `name` of `container` (created if need be); Azurite
    /// records their MD5 as the blob's `Content-MD5`.
    pub fn put(&self, container: &str, name: &str, bytes: &[u8]) -> io::Result<()> {
        self.put_with_md5(container, name, bytes, None)
    }

    /// Puts the file at `source` as the block blob `name` of `container`, in one request.
    pub fn put_file(&self, container: &str, name: &str, source: &Path) -> io::Result<()> {
        self.put(container, name, &fs::read(source)?)
    }

    /// Puts a blob, then sets its `Content-MD5` property to `md5` (base64) whatever its bytes
    /// (Set Blob Properties checks nothing): a blob whose stated checksum they break.
    pub fn put_with_md5(
        &self,
        container: &str,
        name: &str,
        bytes: &[u8],
        md5: Option<&str>,
    ) -> io::Result<()> {
        self.create_container(container)?;
        let path = format!("/{container}/{}", encode_path(name));
        let blob_type = [("x-ms-blob-type", "BlockBlob".to_owned())];
        match self.signed("PUT", &path, &blob_type, bytes)? {
            201 => {}
            s => return Err(io::Error::other(format!("putting {name}: HTTP {s}"))),
        }
        let Some(md5) = md5 else {
            return Ok(());
        };
        let property = [("x-ms-blob-content-md5", md5.to_owned())];
        match self.signed("PUT", &format!("{path}?comp=properties"), &property, b"")? {
            200 => Ok(()),
            s => Err(io::Error::other(format!(
                "setting the MD5 of {name}: HTTP {s}"
            ))),
        }
    }

    /// A service SAS for `container` (or one of its blobs) with `permissions` (`r`, `rl`, …),
    /// good for an hour, signed with the development key: the query, without `?`.
    pub fn sas(&self, container: &str, blob: Option<&str>, permissions: &str) -> String {
        sas_with_key(AZURITE_KEY, container, blob, permissions)
    }

    /// Sends a request signed with `SharedKey` to `path` (after the account), `body` as its
    /// body; the status.
    /// `method path` (after the account: `/<container>/<blob>?<query>`), signed with the
    /// development key: the status and the body of the answer. What a test asks Azurite to see
    /// what a push left, e.g. `GET /c/b?comp=blocklist&blocklisttype=all`.
    pub fn signed_request(&self, method: &str, path: &str) -> io::Result<(u16, String)> {
        self.signed_answer(method, path, &[], b"")
            .map(|(status, body)| (status, String::from_utf8_lossy(&body).into_owned()))
    }

    fn signed(
        &self,
        method: &str,
        path: &str,
        extra: &[(&str, String)],
        body: &[u8],
    ) -> io::Result<u16> {
        self.signed_answer(method, path, extra, body)
            .map(|(status, _)| status)
    }

    fn signed_answer(
        &self,
        method: &str,
        path: &str,
        extra: &[(&str, String)],
        body: &[u8],
    ) -> io::Result<(u16, Vec<u8>)> {
        let target = format!("/{AZURITE_ACCOUNT}{path}");
        let date = http_date(SystemTime::now());
        let mut headers: Vec<(String, String)> = vec![
            ("x-ms-date".into(), date),
            ("x-ms-version".into(), VERSION.into()),
        ];
        headers.extend(extra.iter().map(|(k, v)| ((*k).to_owned(), v.clone())));
        headers.sort();
        let (path_only, query) = target.split_once('?').unwrap_or((&target, ""));
        let length = if body.is_empty() {
            String::new()
        } else {
            body.len().to_string()
        };
        let mut text = format!("{method}\n\n\n{length}\n\n\n\n\n\n\n\n\n");
        for (k, v) in &headers {
            let _ = writeln!(text, "{k}:{v}");
        }
        let _ = write!(text, "/{AZURITE_ACCOUNT}{path_only}");
        let mut params: Vec<(String, String)> = query
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|p| {
                let (k, v) = p.split_once('=').unwrap_or((p, ""));
                (k.to_ascii_lowercase(), crate::wire::percent_decode(v))
            })
            .collect();
        params.sort();
        for (k, v) in params {
            let _ = write!(text, "\n{k}:{v}");
        }
        let signature = base64(&hmac_sha256(&unbase64(AZURITE_KEY), text.as_bytes()));
        let mut request = format!(
            "{method} {target} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: {}\r\nConnection: close\r\nAuthorization: SharedKey {AZURITE_ACCOUNT}:{signature}\r\n",
            self.port,
            body.len()
        );
        for (k, v) in &headers {
            let _ = write!(request, "{k}: {v}\r\n");
        }
        request.push_str("\r\n");
        let mut stream = TcpStream::connect(("127.0.0.1", self.port))?;
        stream.set_read_timeout(Some(Duration::from_secs(60)))?;
        stream.write_all(request.as_bytes())?;
        stream.write_all(body)?;
        let mut reader = BufReader::new(stream);
        let head = crate::wire::Head::read(&mut reader)?
            .filter(|h| h.status() != 0)
            .ok_or_else(|| io::Error::other("no answer from Azurite"))?;
        let body = if crate::wire::bodiless(method, head.status()) {
            Vec::new()
        } else if head.chunked() {
            crate::wire::read_chunked(&mut reader)?
        } else {
            // Azurite closes the connection after the answer (`Connection: close`).
            let mut body = Vec::new();
            reader.read_to_end(&mut body)?;
            body
        };
        Ok((head.status(), body))
    }
}

/// A service SAS signed with `key` (base64): see [`Azurite::sas`].
pub fn sas_with_key(key: &str, container: &str, blob: Option<&str>, permissions: &str) -> String {
    let now = SystemTime::now();
    let start = iso8601(now - Duration::from_secs(300));
    let expiry = iso8601(now + Duration::from_secs(3600));
    let (resource, canonical) = match blob {
        Some(b) => ("b", format!("/blob/{AZURITE_ACCOUNT}/{container}/{b}")),
        None => ("c", format!("/blob/{AZURITE_ACCOUNT}/{container}")),
    };
    let version = "2020-12-06";
    // permissions, start, expiry, resource, identifier, IP, protocol, version, signed
    // resource, snapshot, encryption scope, then the five response headers.
    let text = format!(
        "{permissions}\n{start}\n{expiry}\n{canonical}\n\n\n\n{version}\n{resource}\n\n\n\n\n\n\n"
    );
    let signature = base64(&hmac_sha256(&unbase64(key), text.as_bytes()));
    format!(
        "sv={version}&st={}&se={}&sr={resource}&sp={permissions}&sig={}",
        encode_query(&start),
        encode_query(&expiry),
        encode_query(&signature)
    )
}

/// `/`-separated segments, each percent-encoded but for unreserved characters.
fn encode_path(name: &str) -> String {
    name.split('/')
        .map(encode_query)
        .collect::<Vec<_>>()
        .join("/")
}

fn encode_query(text: &str) -> String {
    let mut out = String::new();
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// HMAC-SHA256 (RFC 2104).
fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    let mut block = [0u8; 64];
    if key.len() > 64 {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let pad = |byte: u8| block.iter().map(|b| b ^ byte).collect::<Vec<u8>>();
    let inner = Sha256::new()
        .chain_update(pad(0x36))
        .chain_update(message)
        .finalize();
    Sha256::new()
        .chain_update(pad(0x5c))
        .chain_update(inner)
        .finalize()
        .into()
}

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64, padded.
fn base64(bytes: &[u8]) -> String {
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn unbase64(text: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let (mut n, mut bits) = (0u32, 0);
    for c in text.bytes().filter(|c| *c != b'=') {
        let v = u32::try_from(ALPHABET.iter().position(|a| *a == c).expect("base64"))
            .expect("below 64");
        n = n << 6 | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push(u8::try_from(n >> bits & 0xff).expect("a byte"));
        }
    }
    out
}

/// Days since 1970-01-01 as (year, month, day) (Howard Hinnant's `civil_from_days`).
fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = u32::try_from(doy - (153 * mp + 2) / 5 + 1).expect("a day");
    let month = u32::try_from(if mp < 10 { mp + 3 } else { mp - 9 }).expect("a month");
    (yoe + era * 400 + i64::from(month <= 2), month, day)
}

fn parts(at: SystemTime) -> (i64, u32, u32, u64, i64) {
    let secs = at.duration_since(UNIX_EPOCH).expect("after 1970").as_secs();
    let days = i64::try_from(secs / 86_400).expect("days");
    let (y, m, d) = civil(days);
    (y, m, d, secs % 86_400, days)
}

/// `2026-12-05T03:00:00Z`.
fn iso8601(at: SystemTime) -> String {
    let (y, m, d, s, _) = parts(at);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        s / 3600,
        s / 60 % 60,
        s % 60
    )
}

/// `Sat, 05 Dec 2026 03:00:00 GMT`.
fn http_date(at: SystemTime) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let (y, m, d, s, days) = parts(at);
    format!(
        "{}, {d:02} {} {y:04} {:02}:{:02}:{:02} GMT",
        DAYS[usize::try_from(days.rem_euclid(7)).expect("a weekday")],
        MONTHS[(m - 1) as usize],
        s / 3600,
        s / 60 % 60,
        s % 60
    )
}

/// Entra ID's token endpoint, `POST /<tenant>/oauth2/v2.0/token`: answers every form with
/// `{"access_token": "entra-token-<n>", "expires_in": …}` (3600 s unless
/// [`set_expires_in`](Self::set_expires_in)), and logs the forms.
#[derive(Debug)]
pub struct EntraToken {
    server: Endpoint<Issued>,
}

/// What a token service has handed out: how many tokens, and the life of the next ones.
#[derive(Debug)]
struct Issued {
    tokens: usize,
    expires_in: u64,
}

impl EntraToken {
    /// Starts the endpoint.
    pub fn start() -> io::Result<EntraToken> {
        let handler = |r: &EndpointRequest, _: &[u8], issued: &mut Issued| {
            if r.method != "POST" || !r.path.ends_with("/oauth2/v2.0/token") {
                return Response::text(404, "");
            }
            let n = issued.tokens;
            issued.tokens += 1;
            Response::new(
                200,
                "application/json",
                serde_json::json!({
                    "token_type": "Bearer",
                    "expires_in": issued.expires_in,
                    "access_token": format!("entra-token-{n}"),
                })
                .to_string(),
            )
        };
        let issued = Issued {
            tokens: 0,
            expires_in: 3600,
        };
        Ok(EntraToken {
            server: Endpoint::start(issued, handler)?,
        })
    }

    /// `http://127.0.0.1:<port>`: what `AZURE_AUTHORITY_HOST` takes.
    pub fn url(&self) -> String {
        self.server.origin()
    }

    /// The tokens handed out from now on live `seconds`.
    pub fn set_expires_in(&self, seconds: u64) {
        self.server.with(|issued| issued.expires_in = seconds);
    }

    /// Every request so far.
    pub fn log(&self) -> Vec<EndpointRequest> {
        self.server.log()
    }
}

/// Azure's instance metadata service: `GET /metadata/identity/oauth2/token` with
/// `Metadata: true` (400 without) answers `{"access_token": "imds-token-<n>", "expires_on":
/// "<in an hour>"}`.
#[derive(Debug)]
pub struct AzureImds {
    server: Endpoint<usize>,
}

impl AzureImds {
    /// Starts the service.
    pub fn start() -> io::Result<AzureImds> {
        let handler = |r: &EndpointRequest, _: &[u8], issued: &mut usize| {
            if r.path != "/metadata/identity/oauth2/token" {
                return Response::text(404, "");
            }
            if r.header("Metadata") != Some("true") {
                return Response::text(400, "{\"error\":\"invalid_request\"}");
            }
            let n = *issued;
            *issued += 1;
            let on = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs())
                + 3600;
            Response::new(
                200,
                "application/json",
                serde_json::json!({
                    "access_token": format!("imds-token-{n}"),
                    "expires_on": on.to_string(),
                    "resource": r.params.iter().find(|(k, _)| k == "resource").map(|(_, v)| v.clone()),
                    "token_type": "Bearer",
                })
                .to_string(),
            )
        };
        Ok(AzureImds {
            server: Endpoint::start(0, handler)?,
        })
    }

    /// `http://127.0.0.1:<port>`: what `AZURE_POD_IDENTITY_AUTHORITY_HOST` takes.
    pub fn url(&self) -> String {
        self.server.origin()
    }

    /// Every request so far.
    pub fn log(&self) -> Vec<EndpointRequest> {
        self.server.log()
    }
}

/// What a [`FakeBlobs`] holds: blobs by path, the blocks put and not yet committed, by the
/// path of their blob and their id, and what to do before each refusal still to come.
#[derive(Default)]
struct BlobStore {
    blobs: std::collections::BTreeMap<String, Vec<u8>>,
    blocks: std::collections::HashMap<(String, String), Vec<u8>>,
    refusals: Vec<Box<dyn FnOnce() + Send>>,
}

/// A Blob endpoint that serves blobs (`HEAD` and whole `GET`s of text, `ETag` `"0x1"`) and
/// lists them (names as given, however hostile) to any caller, takes `Put Blob`, `Put Block`
/// and `Put Block List` (which commits the blocks it names, in order, or answers `400` when
/// one was never put), and logs the headers of each request: where a bearer token is seen
/// arriving.
pub struct FakeBlobs {
    server: Endpoint<BlobStore>,
}

impl std::fmt::Debug for FakeBlobs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeBlobs").finish_non_exhaustive()
    }
}

/// The ids a `Put Block List` body names, in order.
fn block_list_ids(body: &str) -> Vec<String> {
    body.split('<')
        .filter_map(|tag| {
            ["Latest>", "Uncommitted>", "Committed>"]
                .iter()
                .find_map(|open| tag.strip_prefix(open))
        })
        .map(str::to_owned)
        .collect()
}

/// A `Put …` of `r` (with its `body`) into `store`.
fn put_into(store: &mut BlobStore, r: &EndpointRequest, body: &[u8]) -> Response {
    match r.param("comp") {
        Some("block") => {
            let id = r.param("blockid").unwrap_or_default().to_owned();
            store.blocks.insert((r.path.clone(), id), body.to_vec());
        }
        Some("blocklist") => {
            let mut blob = Vec::new();
            for id in block_list_ids(&String::from_utf8_lossy(body)) {
                let Some(block) = store.blocks.get(&(r.path.clone(), id)) else {
                    return Response::text(400, "InvalidBlockList");
                };
                blob.extend_from_slice(block);
            }
            store.blocks.retain(|(path, _), _| *path != r.path);
            store.blobs.insert(r.path.clone(), blob);
        }
        Some(_) => return Response::text(400, "not a put this endpoint takes"),
        None => {
            store.blobs.insert(r.path.clone(), body.to_vec());
        }
    }
    Response::text(201, "")
}

impl FakeBlobs {
    /// Serves `blobs` (path after the endpoint, `/<account>/<container>/<name>`, and text).
    pub fn start(blobs: Vec<(String, String)>) -> io::Result<FakeBlobs> {
        let store = BlobStore {
            blobs: blobs
                .into_iter()
                .map(|(path, text)| (path, text.into_bytes()))
                .collect(),
            ..BlobStore::default()
        };
        let handler = |r: &EndpointRequest, body: &[u8], store: &mut BlobStore| {
            if r.method == "PUT" {
                return put_into(store, r, body);
            }
            if r.params.iter().any(|(k, v)| k == "comp" && v == "list") {
                let container = format!("{}/", r.path);
                let prefix = r
                    .params
                    .iter()
                    .find(|(k, _)| k == "prefix")
                    .map_or("", |(_, v)| v.as_str());
                let mut xml = String::from(
                    "<?xml version=\"1.0\" encoding=\"utf-8\"?><EnumerationResults><Blobs>",
                );
                for (path, body) in &store.blobs {
                    if let Some(name) = path.strip_prefix(&container)
                        && name.starts_with(prefix)
                    {
                        let _ = write!(
                            xml,
                            "<Blob><Name>{name}</Name><Properties><Etag>0x1</Etag><Content-Length>{}</Content-Length></Properties></Blob>",
                            body.len()
                        );
                    }
                }
                xml.push_str("</Blobs><NextMarker/></EnumerationResults>");
                return Response::new(200, "application/xml", xml);
            }
            let Some(body) = store.blobs.get(&r.path) else {
                return Response::text(404, "");
            };
            if r.method == "GET"
                && let Some(before) = store.refusals.pop()
            {
                before();
                return Response::text(401, "");
            }
            Response::new(
                200,
                "application/octet-stream",
                String::from_utf8_lossy(body).into_owned(),
            )
            .with_header("ETag", "\"0x1\"")
        };
        Ok(FakeBlobs {
            server: Endpoint::start(store, handler)?,
        })
    }

    /// The bytes of the blob at `path` (`/<account>/<container>/<name>`), served or put.
    pub fn blob(&self, path: &str) -> Option<Vec<u8>> {
        self.server.with(|store| store.blobs.get(path).cloned())
    }

    /// Refuses the next `GET` of a blob with 401, once, calling `before` first.
    pub fn refuse_next_get(&self, before: impl FnOnce() + Send + 'static) {
        self.server
            .with(|store| store.refusals.push(Box::new(before)));
    }

    /// `http://127.0.0.1:<port>`: what `--endpoint-url` takes.
    pub fn url(&self) -> String {
        self.server.origin()
    }

    /// Every request so far.
    pub fn log(&self) -> Vec<EndpointRequest> {
        self.server.log()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_block_list_names_its_ids_in_order() {
        let body = "<?xml version=\"1.0\" encoding=\"utf-8\"?><BlockList><Latest>YQ</Latest><Uncommitted>Yg</Uncommitted><Committed>Yw</Committed></BlockList>";
        assert_eq!(block_list_ids(body), ["YQ", "Yg", "Yw"]);
        assert!(block_list_ids("<BlockList></BlockList>").is_empty());
    }

    #[test]
    fn base64_hmac_and_dates_agree_with_known_values() {
        assert_eq!(base64(b"abc"), "YWJj");
        assert_eq!(base64(b"ab"), "YWI=");
        assert_eq!(unbase64("YWI="), b"ab");
        // RFC 4231, test case 2.
        let mac = hmac_sha256(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(
            mac.iter().fold(String::new(), |mut hex, b| {
                let _ = write!(hex, "{b:02x}");
                hex
            }),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        let at = UNIX_EPOCH + Duration::from_secs(1_796_439_600);
        assert_eq!(http_date(at), "Sat, 05 Dec 2026 03:00:00 GMT");
        assert_eq!(iso8601(at), "2026-12-05T03:00:00Z");
    }
}
