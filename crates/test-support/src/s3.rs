//! `s3s-fs` 0.14.1 on loopback: an S3 server over a temporary directory that enforces `SigV4`,
//! and ways to put objects into it with or without a client.
//!
//! Each [`S3Server`] owns a temporary directory:
//!
//! ```text
//! <tmp>/
//! ├── s3s-fs.log                     its standard output and error
//! └── root/                          the directory s3s-fs serves
//!     ├── <bucket>/                  a bucket is a directory…
//!     │   └── <key>                  …and an object a plain file (`/` in keys makes folders)
//!     ├── .bucket-<b>.object-<k>.internal.json   the object's `ETag` and checksums (optional)
//!     └── .bucket-<b>.object-<k>.metadata.json   content type, user metadata (optional)
//! ```
//!
//! `<b>` and `<k>` are the bucket and key in unpadded URL-safe base64. The sidecars sit in the
//! root, not in the bucket, so listings never show them. A file written straight into a
//! bucket is an object at once: `GET`, `HEAD` and `ListObjectsV2` see it. Without an
//! `internal.json`, s3s-fs computes the `ETag` (the MD5 of the content) by reading the whole file
//! on every `GET` and `HEAD` (ranged `GET`s too), which costs seconds per request for a GiB
//! object; so [`S3Server::put`] and [`S3Server::put_file`] write the sidecar with the MD5, as a
//! `PutObject` would. Checksums (`x-amz-checksum-sha256`) live only in that sidecar and only a
//! `PutObject` that sends them records them: [`S3Server::put_signed`].
//!
//! What else s3s-fs 0.14.1 does, seen here: `HEAD` carries the stored checksums whether or not
//! the request says `x-amz-checksum-mode: ENABLED`, and so does a whole-object `GET` (a
//! ranged one does not), where AWS needs the mode. A `PutObject` is checked against an
//! `x-amz-checksum-sha256` header whether or not it is signed (400 `BadDigest` when it differs
//! from the body); `x-amz-sdk-checksum-algorithm` alone records nothing. It takes one key pair
//! and ignores `X-Amz-Security-Token`, so any session token passes. A wrong secret gets 403
//! `SignatureDoesNotMatch`, an unknown access key 403 `NotSignedUp`, an unsigned request 403
//! `AccessDenied`. A missing object or bucket gets 404 `NoSuchKey`; a range past the end 416
//! `InvalidRange`, one across it 206 with what there is. `If-Match` and `If-Range` on `GET`
//! are ignored (a changed object is served as a 206 all the same). A `GetObject` in a bucket
//! that does not exist gets `NoSuchKey` too (`ListObjectsV2` gets `NoSuchBucket`).
//! `ListObjectsV2` answers `<EncodingType>url</EncodingType>` to `encoding-type=url` but
//! writes keys raw: a client that decodes them (rusty-s3 does) reads `a%41` as `aA`, and a
//! key with a control character XML forbids (BEL) makes the listing unparseable. One
//! stream serves about 150 MB/s (it reads files 4 KiB at a time).

use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rusty_s3::{Bucket, Credentials, UrlStyle};
use sha2::{Digest as _, Sha256};

use crate::aws_endpoints::AwsCreds;
use crate::process::{self, ServerProcess};
use crate::wire::{self, Body, Reply};

/// The access key every [`S3Server`] accepts.
pub const S3_ACCESS_KEY: &str = "AKIATESTSUPPORT0001";
/// The secret key every [`S3Server`] accepts.
pub const S3_SECRET_KEY: &str = "test-support/s3s-fs/secret+key/0001";
/// The region requests are signed for (s3s-fs accepts any).
pub const S3_REGION: &str = "us-east-1";
/// The session token [`S3Server::aws_creds`] hands out; s3s-fs ignores it.
pub const S3_SESSION_TOKEN: &str = "test-support-session-token";

/// The version the tests are written against, as `s3s-fs --version` prints it.
const VERSION: &str = "s3s-fs 0.14.1";

/// How long s3s-fs may take to listen after it starts.
const START_LIMIT: Duration = Duration::from_secs(20);

/// How long presigned URLs made here stay valid.
const PRESIGN_FOR: Duration = Duration::from_secs(3600);

/// The s3s-fs binary: `$S3S_FS_BIN`, or `<workspace>/.tools/s3s-fs/bin/s3s-fs`, where
/// `scripts/install-test-deps.sh` builds it.
pub fn s3s_fs_binary() -> io::Result<PathBuf> {
    let path = std::env::var_os("S3S_FS_BIN").map_or_else(
        || {
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .ancestors()
                .nth(2)
                .expect("the crate lives at <root>/crates/test-support")
                .join(".tools/s3s-fs/bin/s3s-fs")
        },
        PathBuf::from,
    );
    installed(path)
}

/// `path` if it is a file, else an error that says how to install s3s-fs there.
fn installed(path: PathBuf) -> io::Result<PathBuf> {
    if path.is_file() {
        Ok(path)
    } else {
        Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!(
                "s3s-fs is not installed at `{}`: the S3 tests run it on loopback\nhint: run `bash scripts/install-test-deps.sh`, which builds {VERSION} there (or set `S3S_FS_BIN`)",
                path.display()
            ),
        ))
    }
}

/// An answer from the S3 server, read whole.
pub type S3Response = Reply;

/// A running `s3s-fs` on `127.0.0.1:<free port>`, requiring `SigV4` with [`S3_ACCESS_KEY`] and
/// [`S3_SECRET_KEY`], serving a temporary directory; killed, and the directory removed, on
/// drop.
#[derive(Debug)]
pub struct S3Server {
    /// Killed on drop, before the directory goes.
    _process: ServerProcess,
    port: u16,
    dir: tempfile::TempDir,
    temp_files: AtomicU64,
}

impl S3Server {
    /// Starts s3s-fs on a free port over an empty root.
    pub fn start() -> io::Result<S3Server> {
        let binary = s3s_fs_binary()?;
        let dir = tempfile::tempdir()?;
        let root = dir.path().join("root");
        fs::create_dir_all(&root)?;
        let spawn = |port: u16| {
            let log = fs::File::create(dir.path().join("s3s-fs.log"))?;
            Command::new(&binary)
                .args(["--host", "127.0.0.1", "--port", &port.to_string()])
                .args(["--access-key", S3_ACCESS_KEY, "--secret-key", S3_SECRET_KEY])
                .arg(&root)
                .env("RUST_LOG", "warn")
                .stdin(Stdio::null())
                .stdout(log.try_clone()?)
                .stderr(log)
                .spawn()
                .map_err(|e| {
                    io::Error::new(e.kind(), format!("starting {}: {e}", binary.display()))
                })
        };
        let log = dir.path().join("s3s-fs.log");
        let (process, port) = process::start_on_free_port(3, spawn, |child, port| {
            process::wait_ready(child, "s3s-fs", port, &log, START_LIMIT, || {
                process::listening(port)
            })
        })?;
        Ok(S3Server {
            _process: process,
            port,
            dir,
            temp_files: AtomicU64::new(0),
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

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The access key the server accepts ([`S3_ACCESS_KEY`]).
    pub fn access_key(&self) -> &'static str {
        S3_ACCESS_KEY
    }

    /// The secret key the server accepts ([`S3_SECRET_KEY`]).
    pub fn secret_key(&self) -> &'static str {
        S3_SECRET_KEY
    }

    /// The region to sign for ([`S3_REGION`]).
    pub fn region(&self) -> &'static str {
        S3_REGION
    }

    /// The server's key pair with [`S3_SESSION_TOKEN`], for the credential endpoints of
    /// the credential endpoints ([`crate::InstanceMetadata`], …) to hand out: what they give is accepted here.
    pub fn aws_creds(&self) -> AwsCreds {
        AwsCreds::new(S3_ACCESS_KEY, S3_SECRET_KEY, Some(S3_SESSION_TOKEN))
    }

    /// The server's key pair, for signing with rusty-s3.
    pub fn credentials(&self) -> Credentials {
        Credentials::new(S3_ACCESS_KEY, S3_SECRET_KEY)
    }

    /// `bucket` on this server, path-style, for signing with rusty-s3.
    pub fn bucket(&self, bucket: &str) -> Bucket {
        let endpoint = self.endpoint().parse().expect("the endpoint is a URL");
        Bucket::new(endpoint, UrlStyle::Path, bucket.to_owned(), S3_REGION)
            .unwrap_or_else(|e| panic!("bucket `{bucket}`: {e}"))
    }

    /// The directory s3s-fs serves.
    pub fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    /// What s3s-fs printed (warnings and errors).
    pub fn log_text(&self) -> String {
        fs::read_to_string(self.dir.path().join("s3s-fs.log")).unwrap_or_default()
    }

    /// Creates bucket `name` as s3s-fs does: a directory in the root. The name must be a
    /// valid S3 bucket name (3 to 63 lower-case letters, digits, `-` and `.`): s3s-fs answers
    /// 400 `InvalidBucketName` for any other, even for a directory that exists.
    pub fn create_bucket(&self, name: &str) -> io::Result<()> {
        check_bucket_name(name)?;
        let path = self.root().join(name);
        fs::create_dir_all(&path).map_err(|e| with_path(&path, &e))
    }

    /// Where s3s-fs keeps the bytes of `bucket`/`key`: a test may corrupt, truncate or
    /// remove that file (the recorded `ETag` and checksums stay as they were).
    pub fn object_path(&self, bucket: &str, key: &str) -> PathBuf {
        self.root().join(bucket).join(key)
    }

    /// Where s3s-fs keeps the `ETag` and checksums of `bucket`/`key` (a JSON object with
    /// `e_tag` and `checksum_sha256`, …), when it has them.
    pub fn internal_info_path(&self, bucket: &str, key: &str) -> PathBuf {
        self.sidecar(bucket, key, "internal")
    }

    fn sidecar(&self, bucket: &str, key: &str, kind: &str) -> PathBuf {
        self.root().join(format!(
            ".bucket-{}.object-{}.{kind}.json",
            base64_url(bucket.as_bytes()),
            base64_url(key.as_bytes())
        ))
    }

    /// Puts `bytes` as `bucket`/`key` by writing the file directly (the bucket is created if
    /// needed), with its `ETag` recorded (`"<md5 hex>"`) and no checksum: what a `PutObject`
    /// without checksum headers leaves.
    pub fn put(&self, bucket: &str, key: &str, bytes: &[u8]) -> io::Result<()> {
        self.create_bucket(bucket)?;
        let temp = self.temp_path();
        fs::write(&temp, bytes).map_err(|e| with_path(&temp, &e))?;
        self.publish(bucket, key, &temp, &md5_hex(&mut &bytes[..])?)
    }

    /// Puts the file at `source` as `bucket`/`key` without reading it into memory: a hard
    /// link when `source` is on the same file system (then changing the object changes
    /// `source` too), else a copy. Its MD5 is computed once, streaming, for the `ETag`.
    pub fn put_file(&self, bucket: &str, key: &str, source: &Path) -> io::Result<()> {
        self.create_bucket(bucket)?;
        let temp = self.temp_path();
        if fs::hard_link(source, &temp).is_err() {
            fs::copy(source, &temp).map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!("copying {} to {}: {e}", source.display(), temp.display()),
                )
            })?;
        }
        let mut file = fs::File::open(&temp).map_err(|e| with_path(&temp, &e))?;
        let md5 = md5_hex(&mut file).map_err(|e| with_path(source, &e))?;
        self.publish(bucket, key, &temp, &md5)
    }

    /// A path in the root for a file on its way into a bucket (not a directory, so never a
    /// bucket; not in a bucket, so never listed).
    fn temp_path(&self) -> PathBuf {
        let n = self.temp_files.fetch_add(1, Ordering::Relaxed);
        self.root().join(format!(".test-support-put-{n}"))
    }

    /// Moves `temp` into place as `bucket`/`key` and records its `ETag`, dropping any
    /// metadata and checksums of an earlier object under that key.
    fn publish(&self, bucket: &str, key: &str, temp: &Path, md5: &str) -> io::Result<()> {
        let path = self.object_path(bucket, key);
        let parent = path.parent().expect("an object path has a parent");
        fs::create_dir_all(parent).map_err(|e| with_path(parent, &e))?;
        fs::rename(temp, &path).map_err(|e| with_path(&path, &e))?;
        let metadata = self.sidecar(bucket, key, "metadata");
        match fs::remove_file(&metadata) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(with_path(&metadata, &e)),
            _ => {}
        }
        let info = self.internal_info_path(bucket, key);
        let json = serde_json::json!({ "e_tag": md5 }).to_string();
        fs::write(&info, json).map_err(|e| with_path(&info, &e))
    }

    /// Puts `bytes` as `bucket`/`key` with a `SigV4`-presigned `PutObject` (the bucket is
    /// created if needed). With `checksum_sha256`, the request sends
    /// `x-amz-checksum-sha256` (base64 of the SHA-256) and
    /// `x-amz-sdk-checksum-algorithm: SHA256`, both signed, as AWS SDKs send them; s3s-fs
    /// checks the body against the checksum, records it, and answers `HEAD` and whole `GET`s
    /// with it. An error unless the answer is 200.
    pub fn put_signed(
        &self,
        bucket: &str,
        key: &str,
        bytes: &[u8],
        checksum_sha256: bool,
    ) -> io::Result<S3Response> {
        self.create_bucket(bucket)?;
        let checksum = wire::base64_encode(&Sha256::digest(bytes));
        let mut headers = vec![];
        if checksum_sha256 {
            headers.push(("x-amz-checksum-sha256", checksum.as_str()));
            headers.push(("x-amz-sdk-checksum-algorithm", "SHA256"));
        }
        let url = self.presign("PUT", bucket, key, &headers);
        let answer = self.request("PUT", &url, &headers, bytes)?;
        if answer.status == 200 {
            Ok(answer)
        } else {
            Err(io::Error::other(format!(
                "PUT {bucket}/{key}: s3s-fs answered {}: {}",
                answer.status,
                answer.text()
            )))
        }
    }

    /// A URL for `method` (`GET`, `HEAD`, `PUT` or `DELETE`) on `bucket`/`key`, presigned
    /// for an hour with the server's key pair; `signed_headers` are signed too, and the
    /// request must send them.
    pub fn presign(
        &self,
        method: &str,
        bucket: &str,
        key: &str,
        signed_headers: &[(&str, &str)],
    ) -> String {
        presign_with(
            &self.bucket(bucket),
            &self.credentials(),
            method,
            key,
            signed_headers,
        )
    }

    /// Sends `method` to `url` (a URL on this server, or a path with its query) with
    /// `headers` and `body`, on a connection of its own, and reads the whole answer.
    pub fn request(
        &self,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> io::Result<S3Response> {
        let target = url.strip_prefix(&self.endpoint()).unwrap_or(url);
        let body = if body.is_empty() && method != "PUT" && method != "POST" {
            Body::None
        } else {
            Body::Bytes(body)
        };
        wire::exchange(&self.host(), method, target, headers, body)
    }
}

/// A URL for `method` on `key` in `bucket`, presigned for an hour with `credentials` (a
/// session token among them is sent as `X-Amz-Security-Token`); `signed_headers` are signed
/// too.
pub fn presign_with(
    bucket: &Bucket,
    credentials: &Credentials,
    method: &str,
    key: &str,
    signed_headers: &[(&str, &str)],
) -> String {
    fn signed<'a, A: rusty_s3::S3Action<'a>>(
        mut action: A,
        headers: &[(&'a str, &'a str)],
    ) -> String {
        for (name, value) in headers {
            action.headers_mut().insert(*name, *value);
        }
        action.sign(PRESIGN_FOR).to_string()
    }
    let c = Some(credentials);
    match method {
        "GET" => signed(bucket.get_object(c, key), signed_headers),
        "HEAD" => signed(bucket.head_object(c, key), signed_headers),
        "PUT" => signed(bucket.put_object(c, key), signed_headers),
        "DELETE" => signed(bucket.delete_object(c, key), signed_headers),
        other => panic!("presigning `{other}` is not supported"),
    }
}

/// An error unless `name` is a bucket name s3s-fs accepts.
fn check_bucket_name(name: &str) -> io::Result<()> {
    let valid = (3..=63).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric());
    if valid {
        Ok(())
    } else {
        Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "`{name}` is not a valid bucket name: 3 to 63 lower-case letters, digits, `-` and `.`"
            ),
        ))
    }
}

fn with_path(path: &Path, e: &io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

/// Lower-case hex of the MD5 of everything `reader` gives.
fn md5_hex(reader: &mut impl Read) -> io::Result<String> {
    use md5::Digest as _;
    let mut hasher = md5::Md5::new();
    let mut buf = vec![0; 1 << 20];
    loop {
        let n = reader.read(&mut buf)?;
        if n == 0 {
            return Ok(crate::hf_repo::hex(&hasher.finalize()));
        }
        hasher.update(&buf[..n]);
    }
}

/// Unpadded URL-safe base64, as s3s-fs names its sidecars.
fn base64_url(bytes: &[u8]) -> String {
    wire::base64_encode(bytes)
        .trim_end_matches('=')
        .replace('+', "-")
        .replace('/', "_")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt as _;

    fn list_page(
        server: &S3Server,
        bucket: &str,
        max_keys: usize,
        token: Option<&str>,
    ) -> io::Result<rusty_s3::actions::ListObjectsV2Response> {
        let b = server.bucket(bucket);
        let creds = server.credentials();
        let mut list = b.list_objects_v2(Some(&creds));
        list.with_max_keys(max_keys);
        if let Some(token) = token {
            list.with_continuation_token(token.to_owned());
        }
        let url = rusty_s3::S3Action::sign(&list, PRESIGN_FOR).to_string();
        let answer = server.request("GET", &url, &[], &[])?;
        assert_eq!(answer.status, 200, "{}", answer.text());
        rusty_s3::actions::ListObjectsV2::parse_response(&answer.text()).map_err(io::Error::other)
    }

    #[test]
    fn files_written_directly_are_objects_for_get_head_and_list() -> io::Result<()> {
        let server = S3Server::start()?;
        server.create_bucket("models")?;
        let mut expected = Vec::new();
        for i in 0..5u8 {
            let key = format!("org/model/shard-{i}.bin");
            let bytes = crate::random_bytes(1000 + usize::from(i), u64::from(i));
            server.put("models", &key, &bytes)?;
            expected.push((key, bytes));
        }
        // A file written with no sidecar at all is an object too; its ETag is computed.
        let bare = server.object_path("models", "zz/bare.txt");
        fs::create_dir_all(bare.parent().expect("a parent"))?;
        fs::write(&bare, b"no sidecar")?;
        expected.push(("zz/bare.txt".to_owned(), b"no sidecar".to_vec()));

        for (key, bytes) in &expected {
            let head = server.request(
                "HEAD",
                &server.presign("HEAD", "models", key, &[]),
                &[],
                &[],
            )?;
            assert_eq!(head.status, 200, "{key}: {}", server.log_text());
            assert_eq!(
                head.header("content-length"),
                Some(bytes.len().to_string().as_str())
            );
            let md5 = md5_hex(&mut &bytes[..])?;
            assert_eq!(head.header("etag"), Some(format!("\"{md5}\"").as_str()));
            let get =
                server.request("GET", &server.presign("GET", "models", key, &[]), &[], &[])?;
            assert_eq!(get.status, 200);
            assert!(get.body == *bytes, "{key}");
        }

        let mut keys = Vec::new();
        let mut token = None;
        let mut pages = 0;
        loop {
            let page = list_page(&server, "models", 2, token.as_deref())?;
            pages += 1;
            assert!(page.contents.len() <= 2);
            keys.extend(page.contents.iter().map(|c| (c.key.clone(), c.size)));
            match page.next_continuation_token {
                Some(t) => token = Some(t),
                None => break,
            }
        }
        assert_eq!(pages, 3);
        let want: Vec<_> = expected
            .iter()
            .map(|(k, b)| (k.clone(), Some(b.len() as u64)))
            .collect();
        assert_eq!(keys, want);
        Ok(())
    }

    #[test]
    fn a_presigned_ranged_get_answers_206_with_those_bytes() -> io::Result<()> {
        let server = S3Server::start()?;
        let bytes = crate::random_bytes(4096, 7);
        server.put("bucket", "weights.bin", &bytes)?;
        let url = server.presign("GET", "bucket", "weights.bin", &[]);
        let got = server.request("GET", &url, &[("Range", "bytes=10-19")], &[])?;
        assert_eq!(got.status, 206, "{}", got.text());
        assert_eq!(got.body, bytes[10..20]);
        assert_eq!(got.header("content-range"), Some("bytes 10-19/4096"));
        Ok(())
    }

    #[test]
    fn a_wrong_secret_or_no_signature_is_refused() -> io::Result<()> {
        let server = S3Server::start()?;
        server.put("bucket", "k", b"secret bytes")?;
        let wrong = Credentials::new(S3_ACCESS_KEY, "not-the-secret");
        let url = presign_with(&server.bucket("bucket"), &wrong, "GET", "k", &[]);
        let got = server.request("GET", &url, &[], &[])?;
        assert_eq!(got.status, 403);
        assert!(
            got.text().contains("<Code>SignatureDoesNotMatch</Code>"),
            "{}",
            got.text()
        );

        let unknown = Credentials::new("AKIAUNKNOWN", S3_SECRET_KEY);
        let url = presign_with(&server.bucket("bucket"), &unknown, "GET", "k", &[]);
        let got = server.request("GET", &url, &[], &[])?;
        assert_eq!(got.status, 403, "{}", got.text());
        assert!(
            got.text().contains("<Code>NotSignedUp</Code>"),
            "{}",
            got.text()
        );

        let anonymous = server.request("GET", "/bucket/k", &[], &[])?;
        assert_eq!(anonymous.status, 403, "{}", anonymous.text());
        assert!(
            anonymous.text().contains("<Code>AccessDenied</Code>"),
            "{}",
            anonymous.text()
        );
        assert!(!anonymous.text().contains("secret bytes"));
        Ok(())
    }

    #[test]
    fn a_session_token_is_ignored() -> io::Result<()> {
        let server = S3Server::start()?;
        server.put("bucket", "k", b"bytes")?;
        let creds = Credentials::new_with_token(S3_ACCESS_KEY, S3_SECRET_KEY, "any-token-at-all");
        let url = presign_with(&server.bucket("bucket"), &creds, "GET", "k", &[]);
        assert!(
            url.contains("X-Amz-Security-Token=any-token-at-all"),
            "{url}"
        );
        let got = server.request("GET", &url, &[], &[])?;
        assert_eq!((got.status, got.body.as_slice()), (200, &b"bytes"[..]));
        Ok(())
    }

    #[test]
    fn a_signed_put_with_a_sha256_checksum_is_checked_recorded_and_served() -> io::Result<()> {
        let server = S3Server::start()?;
        let bytes = crate::random_bytes(100_000, 3);
        let b64 = wire::base64_encode(&Sha256::digest(&bytes));
        let put = server.put_signed("bucket", "with.bin", &bytes, true)?;
        assert_eq!(put.header("x-amz-checksum-sha256"), Some(b64.as_str()));
        let md5 = md5_hex(&mut &bytes[..])?;
        assert_eq!(put.header("etag"), Some(format!("\"{md5}\"").as_str()));
        assert_eq!(fs::read(server.object_path("bucket", "with.bin"))?, bytes);
        let info = fs::read_to_string(server.internal_info_path("bucket", "with.bin"))?;
        assert!(info.contains(&b64), "{info}");

        let mode = [("x-amz-checksum-mode", "ENABLED")];
        let head_url = server.presign("HEAD", "bucket", "with.bin", &mode);
        let head = server.request("HEAD", &head_url, &mode, &[])?;
        assert_eq!(head.status, 200);
        assert_eq!(head.header("x-amz-checksum-sha256"), Some(b64.as_str()));
        // Unlike AWS, s3s-fs sends it without the mode too.
        let plain = server.request(
            "HEAD",
            &server.presign("HEAD", "bucket", "with.bin", &[]),
            &[],
            &[],
        )?;
        assert_eq!(plain.header("x-amz-checksum-sha256"), Some(b64.as_str()));
        // A whole GET carries it; a ranged one does not.
        let get_url = server.presign("GET", "bucket", "with.bin", &[]);
        let whole = server.request("GET", &get_url, &[], &[])?;
        assert_eq!(whole.header("x-amz-checksum-sha256"), Some(b64.as_str()));
        let ranged = server.request("GET", &get_url, &[("Range", "bytes=0-9")], &[])?;
        assert_eq!(
            (ranged.status, ranged.header("x-amz-checksum-sha256")),
            (206, None)
        );

        // Without the checksum: stored, but no checksum to show.
        server.put_signed("bucket", "without.bin", &bytes, false)?;
        let head_url = server.presign("HEAD", "bucket", "without.bin", &mode);
        let head = server.request("HEAD", &head_url, &mode, &[])?;
        assert_eq!(
            (head.status, head.header("x-amz-checksum-sha256")),
            (200, None)
        );

        // A checksum that does not match the body is refused, and nothing is stored.
        let wrong = wire::base64_encode(&Sha256::digest(b"other"));
        let headers = [
            ("x-amz-checksum-sha256", wrong.as_str()),
            ("x-amz-sdk-checksum-algorithm", "SHA256"),
        ];
        let url = server.presign("PUT", "bucket", "bad.bin", &headers);
        let refused = server.request("PUT", &url, &headers, &bytes)?;
        assert_eq!(refused.status, 400, "{}", refused.text());
        assert!(
            refused.text().contains("<Code>BadDigest</Code>"),
            "{}",
            refused.text()
        );
        Ok(())
    }

    #[test]
    fn a_direct_put_replaces_a_signed_object_and_its_checksum() -> io::Result<()> {
        let server = S3Server::start()?;
        server.put_signed("bucket", "k", b"first", true)?;
        server.put("bucket", "k", b"second")?;
        let mode = [("x-amz-checksum-mode", "ENABLED")];
        let head = server.request(
            "HEAD",
            &server.presign("HEAD", "bucket", "k", &mode),
            &mode,
            &[],
        )?;
        assert_eq!(head.header("x-amz-checksum-sha256"), None);
        let md5 = md5_hex(&mut &b"second"[..])?;
        assert_eq!(head.header("etag"), Some(format!("\"{md5}\"").as_str()));
        Ok(())
    }

    #[test]
    fn a_corrupted_object_keeps_its_recorded_etag_and_checksum() -> io::Result<()> {
        let server = S3Server::start()?;
        let bytes = crate::random_bytes(5000, 9);
        let put = server.put_signed("bucket", "k", &bytes, true)?;
        let mut corrupted = bytes.clone();
        corrupted[1234] ^= 0xff;
        fs::write(server.object_path("bucket", "k"), &corrupted)?;
        let get = server.request("GET", &server.presign("GET", "bucket", "k", &[]), &[], &[])?;
        assert_eq!(get.body, corrupted);
        assert_eq!(get.header("etag"), put.header("etag"));
        assert_eq!(
            get.header("x-amz-checksum-sha256"),
            put.header("x-amz-checksum-sha256")
        );
        Ok(())
    }

    #[test]
    fn put_file_links_the_file_and_serves_it_whole() -> io::Result<()> {
        let server = S3Server::start()?;
        let source_dir = tempfile::tempdir_in(server.root().parent().expect("a parent"))?;
        let source = source_dir.path().join("big.bin");
        let bytes = crate::random_bytes(3 << 20, 11);
        fs::write(&source, &bytes)?;
        server.put_file("bench", "big.bin", &source)?;
        let get = server.request(
            "GET",
            &server.presign("GET", "bench", "big.bin", &[]),
            &[],
            &[],
        )?;
        assert_eq!(get.status, 200);
        assert!(get.body == bytes);
        let md5 = md5_hex(&mut &bytes[..])?;
        assert_eq!(get.header("etag"), Some(format!("\"{md5}\"").as_str()));
        // Same file system: a hard link, so the source has two names now.
        assert_eq!(fs::metadata(&source)?.nlink(), 2);
        Ok(())
    }

    #[test]
    fn a_bucket_name_s3s_fs_would_refuse_is_an_error() -> io::Result<()> {
        let server = S3Server::start()?;
        for name in ["b", "Upper", "-dash", "under_score"] {
            let err = server.put(name, "k", b"x").expect_err(name);
            assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{name}");
        }
        assert_eq!(crate::paths_under(&server.root()), Vec::<PathBuf>::new());
        Ok(())
    }

    #[test]
    fn a_missing_binary_names_the_install_script() {
        let err = installed(PathBuf::from("/nonexistent/s3s-fs")).expect_err("no such file");
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
        assert!(
            err.to_string().contains("scripts/install-test-deps.sh"),
            "{err}"
        );
    }
}
