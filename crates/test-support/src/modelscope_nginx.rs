//! A ModelScope-shaped server on nginx: model repos given as file contents, answered the way
//! ModelScope's HTTP API answers its Python SDK, every answer from generated config.
//!
//! For each repo `<org>/<name>`, under the revisions `master` and the repo's commit (40 hex
//! digits made from its files):
//!
//! - `GET /api/v1/models/<org>/<name>/repo/files?Revision=<rev>&Recursive=true`: `200`,
//!   `{"Code":200,"Data":{"Files":[…]},"Message":"success","Success":true}`, every file as
//!   `{"Name","Path","Type":"blob","Size","Sha256","Revision":"<commit>"}` and every
//!   directory as `{"Name","Path","Type":"tree","Size":0,"Sha256":"","Revision"}`, sorted by
//!   path; the answer is the same whatever the other parameters (only `Revision` is read);
//! - `GET`/`HEAD /api/v1/models/<org>/<name>/repo?Revision=<rev>&FilePath=<path>`: the file,
//!   served by nginx as a static file (`Content-Length`, nginx's `ETag`, `Range` → `206`).
//!   `<path>` may come plain (`sub/w.gguf`) or with its slashes encoded (`sub%2Fw.gguf`, as
//!   `quote_plus` and form encoding send it; `%2f` too). nginx does not decode `$arg_FilePath`,
//!   so a `map` of it at `http` level has, for every file of the repo, a regex matching both
//!   spellings and gives the file's path, which `try_files` serves (regexes, because nginx
//!   compares a map's plain strings ignoring case); a path not in the repo, in another case,
//!   or otherwise encoded answers `404`;
//! - any other revision: `404`, `{"Code":404,"Message":"revision <rev> not found",…}` (the
//!   revision as sent, undecoded);
//! - any other path under `/api/v1/models/` (an unknown repo): `404`,
//!   `{"Code":10010205001,"Message":"model not found","Success":false}`;
//! - `POST /api/v1/login`: `200`, `{"Code":200,"Data":{"AccessToken":…,"Username":…,
//!   "Email":…},"Message":"success","Success":true}` and
//!   `Set-Cookie: m_session_id=<session>; Path=/; HttpOnly`, where `<session>` is
//!   [`ModelScopeNginx::session`]. nginx cannot read the body, so any token (or none) logs in;
//!   another method answers `405`;
//! - `GET /openapi/v1/users/me`, which the SDK's `modelscope login` asks after logging in (and
//!   fails without): `200`, `{"success":true,"data":{"Username":"test-user","Email":""}}` when
//!   the request carries the session or the token as the `m_session_id` cookie or as
//!   `Authorization: Bearer …`; else `401` as below;
//! - a repo started as private answers the listing and the downloads with `401`,
//!   `{"Code":401,"Message":"unauthorized","Success":false}`, unless the request carries the
//!   cookie `m_session_id=<session>` or `m_session_id=<token>` ([`ModelScopeNginx::token`]:
//!   ModelScope's own SDK, modelscope 1.40 over modelscope-hub 0.5, sends the access token
//!   itself as that cookie, without logging in); that check comes before the revision's;
//! - `GET /api/v1/repos/internalAccelerationInfo`, which the SDK asks before its first
//!   download, to learn whether it runs inside Alibaba Cloud (then it downloads from the
//!   intranet), is not served: `404`, as any other path. The SDK waits 0.2 s for it and takes
//!   any failure as "not inside", which is the answer this machine would get.
//!
//! The access log records each request's method, path with query, status, host, whether it
//! carried an `m_session_id` cookie (of any value; never the value), its `Range` and the body
//! bytes sent.
//!
//! ```text
//! <temp>/nginx.conf, access.log, error.log
//! <temp>/api/<n>/files.json          repo n's listing, for every revision served
//! <temp>/repos/<org>/<name>/…        the repos' files, written out
//! <temp>/body, proxy, …              nginx's temp dirs
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::hf_repo::{sha256_hex, split_id};
use crate::hub_nginx::{check_path, directories_of, stand_in_oid};
use crate::process::ServerProcess;

/// The `AccessToken` (the git token) login hands out.
const GIT_TOKEN: &str = "ms-git-token-of-the-test-server";

/// ModelScope's own command-line client, `<repo>/.venv/bin/modelscope` (modelscope 1.40), the
/// reference this server is checked against. Panics with install instructions when it is
/// missing.
pub fn modelscope_cli_path() -> PathBuf {
    crate::olah::venv_bin("modelscope", "ModelScope's own client `modelscope`")
}

/// A repo to serve: its id, its files (path in the repo → content) and whether it is private.
#[derive(Debug, Clone, Copy)]
pub struct MsRepoSpec<'a> {
    /// `org/name`, each of `[A-Za-z0-9-_.]`.
    pub id: &'a str,
    /// Path in the repo (`a/b.gguf`: names of `[A-Za-z0-9-_.]` joined by `/`) → content.
    pub files: &'a BTreeMap<String, Vec<u8>>,
    /// Whether the repo answers only requests that carry the session cookie.
    pub private: bool,
}

/// One line of the access log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MsRequest {
    /// `GET`, `HEAD`, `POST`, …
    pub method: String,
    /// The path with its query, as sent (`/api/v1/models/o/n/repo?Revision=master&FilePath=…`).
    pub uri: String,
    /// The response status.
    pub status: u16,
    /// The host name asked for, without the port.
    pub host: String,
    /// Whether the request carried an `m_session_id` cookie (whatever its value).
    pub session: bool,
    /// The `Range` header, if any.
    pub range: Option<String>,
    /// Body bytes sent.
    pub bytes: u64,
}

/// A served repo.
#[derive(Debug)]
struct MsRepo {
    id: String,
    private: bool,
    commit: String,
    /// `(path, size, sha256)`, sorted by path.
    files: Vec<(String, u64, String)>,
}

/// nginx on `127.0.0.1:<free port>` answering as ModelScope for the repos it was started
/// with: file listings, downloads, login and private repos, as the module `modelscope_nginx`
/// describes. Killed on drop; its temp dir is removed.
#[derive(Debug)]
pub struct ModelScopeNginx {
    /// Killed on drop, before the directory goes.
    _process: ServerProcess,
    port: u16,
    dir: tempfile::TempDir,
    session: String,
    token: String,
    repos: Vec<MsRepo>,
}

impl ModelScopeNginx {
    /// Serves one repo, `id`, of `files`.
    pub fn start_one(id: &str, files: &BTreeMap<String, Vec<u8>>, private: bool) -> Self {
        ModelScopeNginx::start(&[MsRepoSpec { id, files, private }])
    }

    /// Serves `repos`, their files written to the server's temp dir first. Panics on a repo
    /// given twice, an id that is not `org/name`, or a file path that is absolute, holds `..`,
    /// or has characters other than `[A-Za-z0-9-_.]` and `/`.
    pub fn start(repos: &[MsRepoSpec<'_>]) -> Self {
        let dir = tempfile::tempdir().expect("creating a temp dir");
        let d = dir.path();
        crate::nginx::make_temp_dirs(d).expect("creating nginx temp dirs");
        let mut ids = BTreeSet::new();
        let repos: Vec<MsRepo> = repos
            .iter()
            .enumerate()
            .map(|(n, spec)| {
                assert!(ids.insert(spec.id), "repo {} given twice", spec.id);
                write_repo(d, n, spec)
            })
            .collect();
        // Unique to this server, so that a cookie of another one does not open its repos.
        let session =
            sha256_hex(format!("m_session_id\n{}", d.display()).as_bytes())[..32].to_owned();
        let token = format!(
            "ms-{}",
            &sha256_hex(format!("access token\n{}", d.display()).as_bytes())[..32]
        );
        let conf = d.join("nginx.conf");
        let spawn = |port: u16| {
            fs::write(&conf, config(d, port, [&session, &token], &repos))?;
            let _ = fs::remove_file(d.join("error.log"));
            Command::new(crate::nginx::nginx_binary())
                .arg("-c")
                .arg(&conf)
                .arg("-p")
                .arg(d)
                .arg("-e")
                .arg(d.join("error.log"))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
        };
        let wait = |child: &mut std::process::Child, port: u16| {
            crate::nginx::wait_ready(child, port, d).map_err(|e| {
                // Another port is worth a try only when this one was taken.
                assert!(e.contains("in use"), "{e}");
                io::Error::other(e)
            })
        };
        let (process, port) = crate::process::start_on_free_port(5, spawn, wait)
            .unwrap_or_else(|e| panic!("starting nginx: {e}"));
        ModelScopeNginx {
            _process: process,
            port,
            dir,
            session,
            token,
            repos,
        }
    }

    /// `http://127.0.0.1:<port>`: the endpoint a ModelScope client is pointed at.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The `m_session_id` cookie value login hands out and private repos ask for (32 hex
    /// digits, fixed for the life of this server).
    pub fn session(&self) -> &str {
        &self.session
    }

    /// The access token private repos take as the `m_session_id` cookie itself, as
    /// ModelScope's own SDK sends it (`ms-` and 32 hex digits, fixed for the life of this
    /// server). Login takes any token, this one too: nginx cannot read the body.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// The commit of repo `org/name` (40 hex digits, made from its id and files); panics if
    /// it is not served.
    pub fn commit(&self, id: &str) -> String {
        self.repos
            .iter()
            .find(|r| r.id == id)
            .unwrap_or_else(|| panic!("repo {id} is not served"))
            .commit
            .clone()
    }

    /// The access log so far, oldest first.
    pub fn requests(&self) -> Vec<MsRequest> {
        crate::read_log(&self.dir.path().join("access.log"), parse_line)
    }

    /// The access log once it has at least `n` lines (nginx logs a request just after it
    /// answers, so a client may be a moment ahead), or after 2 s, whatever it has then.
    pub fn requests_of_at_least(&self, n: usize) -> Vec<MsRequest> {
        crate::at_least(n, || self.requests())
    }

    /// Empties the access log.
    pub fn clear_log(&self) {
        crate::truncate_log(&self.dir.path().join("access.log"));
    }
}

/// Panics unless `path` is a relative path of plain names, which the config takes unquoted.
fn check_file_path(id: &str, path: &str) {
    assert!(
        !path.starts_with('/'),
        "repo {id}: a file path is relative, not {path:?}"
    );
    assert!(
        !path.split('/').any(|c| c == ".."),
        "repo {id}: a file path has no `..`, unlike {path:?}"
    );
    check_path(path);
}

/// Writes repo `n`'s files under `<tmp>/repos/<org>/<name>/` and its listing to
/// `<tmp>/api/<n>/files.json`.
fn write_repo(tmp: &Path, n: usize, spec: &MsRepoSpec<'_>) -> MsRepo {
    let (org, name) = split_id(spec.id);
    let root = tmp.join("repos").join(org).join(name);
    fs::create_dir_all(&root).expect("creating a repo dir");
    let mut files = Vec::new();
    for (path, bytes) in spec.files {
        check_file_path(spec.id, path);
        let full = root.join(path);
        fs::create_dir_all(full.parent().expect("a file has a parent"))
            .expect("creating a repo folder");
        fs::write(&full, bytes).expect("writing a repo file");
        files.push((path.clone(), bytes.len() as u64, sha256_hex(bytes)));
    }
    let manifest = files
        .iter()
        .fold(format!("{}\n", spec.id), |mut s, (p, _, sha)| {
            let _ = writeln!(s, "{sha} {p}");
            s
        });
    let commit = stand_in_oid(&manifest);

    let last = |path: &str| path.rsplit('/').next().unwrap_or(path).to_owned();
    let mut entries = BTreeMap::new();
    for dir in directories_of(files.iter().map(|(p, _, _)| p.as_str())) {
        if !dir.is_empty() {
            let entry = serde_json::json!({
                "Name": last(&dir), "Path": dir, "Type": "tree", "Size": 0, "Sha256": "",
                "Revision": commit,
            });
            entries.insert(dir, entry);
        }
    }
    for (path, size, sha) in &files {
        let entry = serde_json::json!({
            "Name": last(path), "Path": path, "Type": "blob", "Size": size, "Sha256": sha,
            "Revision": commit,
        });
        entries.insert(path.clone(), entry);
    }
    let listing = serde_json::json!({
        "Code": 200,
        "Data": { "Files": entries.into_values().collect::<Vec<_>>() },
        "Message": "success",
        "Success": true,
    });
    let api = tmp.join("api").join(n.to_string());
    fs::create_dir_all(&api).expect("creating the API dir");
    fs::write(api.join("files.json"), listing.to_string()).expect("writing files.json");
    MsRepo {
        id: spec.id.to_owned(),
        private: spec.private,
        commit,
        files,
    }
}

/// A `map` key matching `path` as `$arg_FilePath` holds it: undecoded, each `/` sent as is
/// or as `%2F` or `%2f`. A regex, because nginx matches a map's plain strings ignoring case;
/// a regex with `~` matches case and all.
fn file_path_key(path: &str) -> String {
    let pattern = path.replace('.', "\\.").replace('/', "(/|%2[Ff])");
    format!("\"~^{pattern}$\"")
}

/// nginx.conf: per repo, a `map` of its revisions and one of its `FilePath` spellings, and a
/// `location =` for its listing and one for its downloads; errors go to internal locations
/// that answer JSON.
fn config(tmp: &Path, port: u16, [session, token]: [&str; 2], repos: &[MsRepo]) -> String {
    let d = tmp.display();
    let (prelude, temp_paths) = (crate::nginx::prelude(tmp), crate::nginx::temp_paths(tmp));
    let mut maps = String::new();
    let mut locations = String::new();
    for (n, repo) in repos.iter().enumerate() {
        let (id, commit) = (&repo.id, &repo.commit);
        let _ = writeln!(
            maps,
            "    map $arg_Revision $ms_rev_{n} {{ \"~^(master|{commit})$\" 1; default \"\"; }}"
        );
        let _ = writeln!(maps, "    map $arg_FilePath $ms_file_{n} {{");
        for (path, _, _) in &repo.files {
            let _ = writeln!(maps, "        {} \"{path}\";", file_path_key(path));
        }
        let _ = writeln!(maps, "        default \"\";\n    }}");

        let mut guards = String::new();
        if repo.private {
            let _ = write!(
                guards,
                " if ($ms_authorized = \"\") {{ rewrite ^ /_ms/unauthorized last; }}"
            );
        }
        let _ = write!(
            guards,
            " if ($ms_rev_{n} = \"\") {{ rewrite ^ /_ms/no-revision last; }}"
        );
        let _ = writeln!(
            locations,
            "        location = /api/v1/models/{id}/repo/files {{{guards} default_type application/json; alias {d}/api/{n}/files.json; }}"
        );
        let _ = writeln!(
            locations,
            "        location = /api/v1/models/{id}/repo {{{guards} if ($ms_file_{n} = \"\") {{ rewrite ^ /_ms/no-file last; }} root {d}/repos/{id}; try_files /$ms_file_{n} =404; }}"
        );
    }
    let json = "default_type application/json;";
    format!(
        r#"{prelude}
http {{
    map $cookie_m_session_id $ms_session {{ "" "-"; default "session"; }}
    map $cookie_m_session_id $ms_authorized {{ "~^({session}|{token})$" 1; default ""; }}
    map $http_authorization $ms_bearer {{ "~^Bearer ({session}|{token})$" 1; default ""; }}
    map "$ms_authorized$ms_bearer" $ms_me {{ "" ""; default 1; }}
{maps}    log_format modelscope '$request_method $host $status $body_bytes_sent $ms_session "$http_range" $request_uri';
    access_log {d}/access.log modelscope;
{temp_paths}
    default_type application/octet-stream;
    sendfile on;
    keepalive_requests 10000;
    server {{
        listen 127.0.0.1:{port} default_server;
        server_name 127.0.0.1;
        location = /api/v1/login {{ if ($request_method != POST) {{ rewrite ^ /_ms/method last; }} {json} add_header Set-Cookie "m_session_id={session}; Path=/; HttpOnly" always; return 200 '{{"Code":200,"Data":{{"AccessToken":"{GIT_TOKEN}","Username":"test-user","Email":""}},"Message":"success","Success":true}}'; }}
        location = /openapi/v1/users/me {{ if ($ms_me = "") {{ rewrite ^ /_ms/unauthorized last; }} {json} return 200 '{{"success":true,"data":{{"Username":"test-user","Email":""}}}}'; }}
{locations}        location /api/v1/models/ {{ {json} return 404 '{{"Code":10010205001,"Message":"model not found","Success":false}}'; }}
        location = /_ms/unauthorized {{ internal; {json} return 401 '{{"Code":401,"Message":"unauthorized","Success":false}}'; }}
        location = /_ms/no-revision {{ internal; {json} return 404 '{{"Code":404,"Message":"revision $arg_Revision not found","Success":false}}'; }}
        location = /_ms/no-file {{ internal; {json} return 404 '{{"Code":404,"Message":"file not found","Success":false}}'; }}
        location = /_ms/method {{ internal; return 405; }}
        location / {{ return 404; }}
    }}
}}
"#
    )
}

/// `GET 127.0.0.1 206 10 session "bytes=10-19" /api/…?a=b` → the request.
fn parse_line(line: &str) -> Option<MsRequest> {
    let mut parts = line.splitn(7, ' ');
    let method = parts.next()?.to_owned();
    let host = parts.next()?.to_owned();
    let status = parts.next()?.parse().ok()?;
    let bytes = parts.next()?.parse().ok()?;
    let session = parts.next()? == "session";
    let range = parts.next()?.trim_matches('"');
    let uri = parts.next()?.to_owned();
    Some(MsRequest {
        method,
        uri,
        status,
        host,
        session,
        range: (range != "-").then(|| range.to_owned()),
        bytes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http_client::{Response, request};

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    const TINY: &str = "org/tiny";
    const SECRET: &str = "org/secret";

    fn tiny_files() -> BTreeMap<String, Vec<u8>> {
        BTreeMap::from([
            (
                "config.json".to_owned(),
                br#"{"model_type":"llama"}"#.to_vec(),
            ),
            ("sub/w.gguf".to_owned(), crate::fake_gguf("w", 300 * 1024)),
        ])
    }

    fn secret_files() -> BTreeMap<String, Vec<u8>> {
        BTreeMap::from([("weights.bin".to_owned(), crate::random_bytes(4096, 7))])
    }

    fn get(ms: &ModelScopeNginx, path: &str, headers: &[(&str, &str)]) -> Response {
        request(ms.port(), "127.0.0.1", "GET", path, headers)
    }

    /// The public `TINY` and the private `SECRET`.
    fn both(
        tiny: &BTreeMap<String, Vec<u8>>,
        secret: &BTreeMap<String, Vec<u8>>,
    ) -> ModelScopeNginx {
        ModelScopeNginx::start(&[
            MsRepoSpec {
                id: TINY,
                files: tiny,
                private: false,
            },
            MsRepoSpec {
                id: SECRET,
                files: secret,
                private: true,
            },
        ])
    }

    fn json(r: &Response) -> Result<serde_json::Value, serde_json::Error> {
        serde_json::from_slice(&r.body)
    }

    #[test]
    fn the_listing_gives_every_file_and_directory_for_both_revisions() -> TestResult {
        let (tiny, secret) = (tiny_files(), secret_files());
        let ms = both(&tiny, &secret);
        let commit = ms.commit(TINY);
        assert_eq!(commit.len(), 40);
        assert!(
            commit
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        );
        assert_ne!(commit, ms.commit(SECRET));

        for (rev, recursive) in [("master", "true"), (commit.as_str(), "True")] {
            let r = get(
                &ms,
                &format!("/api/v1/models/{TINY}/repo/files?Recursive={recursive}&Revision={rev}"),
                &[],
            );
            assert_eq!(r.status, 200);
            assert_eq!(r.header("content-type"), Some("application/json"));
            let body = json(&r)?;
            assert_eq!(body["Code"], 200);
            assert_eq!(body["Success"], true);
            assert_eq!(body["Message"], "success");
            let files = body["Data"]["Files"].as_array().ok_or("Files is a list")?;
            let paths: Vec<&str> = files.iter().filter_map(|f| f["Path"].as_str()).collect();
            assert_eq!(paths, ["config.json", "sub", "sub/w.gguf"]);
            for f in files {
                assert_eq!(f["Revision"], commit.as_str());
                let path = f["Path"].as_str().ok_or("a path")?;
                if path == "sub" {
                    assert_eq!(f["Type"], "tree");
                    assert_eq!(f["Name"], "sub");
                    assert_eq!(f["Size"], 0);
                    assert_eq!(f["Sha256"], "");
                } else {
                    assert_eq!(f["Type"], "blob");
                    assert_eq!(f["Name"], path.rsplit('/').next().ok_or("a name")?);
                    assert_eq!(f["Size"], tiny[path].len());
                    assert_eq!(f["Sha256"], sha256_hex(&tiny[path]).as_str());
                }
            }
        }

        // An unknown revision, an unknown repo.
        let r = get(
            &ms,
            &format!("/api/v1/models/{TINY}/repo/files?Revision=v9&Recursive=true"),
            &[],
        );
        assert_eq!(r.status, 404);
        assert_eq!(r.header("content-type"), Some("application/json"));
        assert_eq!(
            json(&r)?,
            serde_json::json!({"Code":404,"Message":"revision v9 not found","Success":false})
        );
        let r = get(
            &ms,
            &format!("/api/v1/models/{TINY}/repo?Revision=v9&FilePath=config.json"),
            &[],
        );
        assert_eq!(r.status, 404);
        assert_eq!(json(&r)?["Message"], "revision v9 not found");
        let not_found = serde_json::json!({"Code":10_010_205_001_u64,"Message":"model not found","Success":false});
        for path in [
            "/api/v1/models/org/nothing/repo/files?Revision=master",
            "/api/v1/models/nobody/tiny/repo?Revision=master&FilePath=config.json",
        ] {
            let r = get(&ms, path, &[]);
            assert_eq!(r.status, 404, "{path}");
            assert_eq!(json(&r)?, not_found, "{path}");
        }
        Ok(())
    }

    #[test]
    fn downloads_take_either_spelling_of_the_path_and_ranges() -> TestResult {
        let tiny = tiny_files();
        let ms = ModelScopeNginx::start(&[MsRepoSpec {
            id: TINY,
            files: &tiny,
            private: false,
        }]);
        let weights = &tiny["sub/w.gguf"];
        let commit = ms.commit(TINY);
        for (rev, path) in [
            ("master", "sub%2Fw.gguf"),
            ("master", "sub/w.gguf"),
            (commit.as_str(), "sub%2fw.gguf"),
        ] {
            let r = get(
                &ms,
                &format!("/api/v1/models/{TINY}/repo?Revision={rev}&FilePath={path}"),
                &[],
            );
            assert_eq!(r.status, 200, "{path}");
            assert_eq!(
                r.header("content-length"),
                Some(weights.len().to_string().as_str())
            );
            assert!(r.header("etag").is_some());
            assert!(r.body == *weights, "{path}: {} bytes", r.body.len());
        }
        // Parameters in any order; HEAD; a range.
        let url = format!("/api/v1/models/{TINY}/repo?FilePath=config.json&Revision=master");
        assert_eq!(get(&ms, &url, &[]).body, tiny["config.json"]);
        let head = request(ms.port(), "127.0.0.1", "HEAD", &url, &[]);
        assert_eq!(head.status, 200);
        assert_eq!(
            head.header("content-length"),
            Some(tiny["config.json"].len().to_string().as_str())
        );
        let ranged = format!("/api/v1/models/{TINY}/repo?Revision=master&FilePath=sub%2Fw.gguf");
        let r = get(&ms, &ranged, &[("Range", "bytes=10-19")]);
        assert_eq!(r.status, 206);
        assert_eq!(r.body, weights[10..20]);

        // Not in the repo: a name, a directory, nothing.
        for path in [
            "nothing.bin",
            "Config.json",
            "sub",
            "sub%2F",
            "sub%2Fw%2Egguf",
            "",
        ] {
            let r = get(
                &ms,
                &format!("/api/v1/models/{TINY}/repo?Revision=master&FilePath={path}"),
                &[],
            );
            assert_eq!(r.status, 404, "{path:?}");
        }

        let r = get(
            &ms,
            &format!("/api/v1/models/{TINY}/repo/files?Revision=MASTER"),
            &[],
        );
        assert_eq!(r.status, 404);

        let log = ms.requests_of_at_least(13);
        assert_eq!(log.len(), 13, "{log:#?}");
        let range = log
            .iter()
            .find(|l| l.range.is_some())
            .ok_or("a ranged request")?;
        assert_eq!(range.uri, ranged);
        assert_eq!(
            (range.status, range.bytes, range.method.as_str()),
            (206, 10, "GET")
        );
        assert_eq!(range.range.as_deref(), Some("bytes=10-19"));
        assert_eq!(range.host, "127.0.0.1");
        assert_eq!(log[0].bytes, weights.len() as u64);
        assert!(log.iter().any(|l| l.method == "HEAD" && l.bytes == 0));
        ms.clear_log();
        assert!(ms.requests().is_empty());
        Ok(())
    }

    #[test]
    fn a_private_repo_answers_only_with_the_session_login_hands_out_or_the_token() -> TestResult {
        let (tiny, secret) = (tiny_files(), secret_files());
        let ms = both(&tiny, &secret);
        let listing = format!("/api/v1/models/{SECRET}/repo/files?Revision=master&Recursive=true");
        let download = format!("/api/v1/models/{SECRET}/repo?Revision=master&FilePath=weights.bin");
        let unauthorized = serde_json::json!({"Code":401,"Message":"unauthorized","Success":false});

        // Without the cookie, or with another value: 401.
        for cookie in [None, Some("m_session_id=wrong")] {
            let headers: Vec<(&str, &str)> = cookie.map(|c| ("Cookie", c)).into_iter().collect();
            for path in [&listing, &download] {
                let r = get(&ms, path, &headers);
                assert_eq!(r.status, 401, "{path} {cookie:?}");
                assert_eq!(r.header("content-type"), Some("application/json"));
                assert_eq!(json(&r)?, unauthorized);
            }
        }

        // Login hands out the session, whatever the token.
        let r = request(
            ms.port(),
            "127.0.0.1",
            "POST",
            "/api/v1/login",
            &[("Content-Length", "0")],
        );
        assert_eq!(r.status, 200);
        assert_eq!(
            r.header("set-cookie"),
            Some(format!("m_session_id={}; Path=/; HttpOnly", ms.session()).as_str())
        );
        let body = json(&r)?;
        assert_eq!(body["Code"], 200);
        assert_eq!(body["Success"], true);
        assert!(body["Data"]["AccessToken"].is_string());
        assert_eq!(get(&ms, "/api/v1/login", &[]).status, 405);

        // The access token as the cookie, as the SDK sends it: 200.
        let with_token = format!("m_session_id={}", ms.token());
        assert_eq!(get(&ms, &listing, &[("Cookie", &with_token)]).status, 200);

        // With the session: 200, among other cookies too.
        let cookie = format!("lang=en; m_session_id={}", ms.session());
        let r = get(&ms, &listing, &[("Cookie", &cookie)]);
        assert_eq!(r.status, 200);
        assert_eq!(
            json(&r)?["Data"]["Files"][0]["Sha256"],
            sha256_hex(&secret["weights.bin"]).as_str()
        );
        let r = get(&ms, &download, &[("Cookie", &cookie)]);
        assert_eq!(r.status, 200);
        assert_eq!(r.body, secret["weights.bin"]);
        // The cookie changes nothing for a public repo, nor for a wrong revision.
        let public = format!("/api/v1/models/{TINY}/repo?Revision=master&FilePath=config.json");
        assert_eq!(get(&ms, &public, &[("Cookie", &cookie)]).status, 200);
        assert_eq!(get(&ms, &public, &[]).status, 200);
        let wrong_rev = format!("/api/v1/models/{SECRET}/repo?Revision=v9&FilePath=weights.bin");
        assert_eq!(get(&ms, &wrong_rev, &[("Cookie", &cookie)]).status, 404);

        let log = ms.requests_of_at_least(12);
        let flags: Vec<(u16, bool)> = log.iter().map(|l| (l.status, l.session)).collect();
        assert_eq!(
            flags,
            [
                (401, false),
                (401, false),
                (401, true),
                (401, true),
                (200, false),
                (405, false),
                (200, true),
                (200, true),
                (200, true),
                (200, true),
                (200, false),
                (404, true),
            ],
            "{log:#?}"
        );
        assert_eq!(log[4].method, "POST");
        let text = fs::read_to_string(ms.dir.path().join("access.log"))?;
        assert!(
            !text.contains(ms.session()) && !text.contains(ms.token()),
            "the log holds no session value"
        );
        Ok(())
    }

    #[test]
    fn who_is_logged_in_answers_to_the_token_or_the_session_as_a_cookie_or_a_bearer() -> TestResult
    {
        let (tiny, secret) = (tiny_files(), secret_files());
        let ms = both(&tiny, &secret);
        let me = "/openapi/v1/users/me";
        for value in [ms.token(), ms.session()] {
            let cookie = format!("m_session_id={value}");
            let bearer = format!("Bearer {value}");
            for headers in [
                [("Cookie", cookie.as_str())],
                [("Authorization", bearer.as_str())],
            ] {
                let r = get(&ms, me, &headers);
                assert_eq!(r.status, 200, "{headers:?}");
                assert_eq!(json(&r)?["data"]["Username"], "test-user");
            }
        }
        assert_eq!(get(&ms, me, &[]).status, 401);
        assert_eq!(
            get(&ms, me, &[("Authorization", "Bearer wrong")]).status,
            401
        );
        Ok(())
    }

    #[test]
    #[should_panic(expected = "has no `..`")]
    fn a_path_that_climbs_out_is_refused() {
        let files = BTreeMap::from([("sub/../../x".to_owned(), Vec::new())]);
        let _ = ModelScopeNginx::start(&[MsRepoSpec {
            id: TINY,
            files: &files,
            private: false,
        }]);
    }

    #[test]
    #[should_panic(expected = "is relative")]
    fn an_absolute_path_is_refused() {
        let files = BTreeMap::from([("/etc/x".to_owned(), Vec::new())]);
        let _ = ModelScopeNginx::start(&[MsRepoSpec {
            id: TINY,
            files: &files,
            private: false,
        }]);
    }
}
