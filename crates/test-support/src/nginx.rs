//! nginx on loopback.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::process::{self, ServerProcess};

/// The directories nginx writes request and proxy bodies to, each under its own directory.
const TEMP_DIRS: [&str; 5] = ["body", "proxy", "fastcgi", "uwsgi", "scgi"];

/// How every nginx of the tests opens its configuration: in the foreground, one process,
/// its pid and error log in `dir`.
pub(crate) fn prelude(dir: &Path) -> String {
    let d = dir.display();
    format!(
        "daemon off;\nmaster_process off;\nworker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/error.log info;\nevents {{ worker_connections 512; }}"
    )
}

/// The `http` block's temporary paths, all in `dir` (made by [`make_temp_dirs`]).
pub(crate) fn temp_paths(dir: &Path) -> String {
    let d = dir.display();
    TEMP_DIRS
        .iter()
        .map(|t| {
            let directive = if *t == "body" { "client_body" } else { t };
            format!("    {directive}_temp_path {d}/{t};")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Makes the directories of [`temp_paths`] in `dir`.
pub(crate) fn make_temp_dirs(dir: &Path) -> io::Result<()> {
    for t in TEMP_DIRS {
        let path = dir.join(t);
        fs::create_dir_all(&path)
            .map_err(|e| io::Error::new(e.kind(), format!("creating `{}`: {e}", path.display())))?;
    }
    Ok(())
}

/// A running nginx, serving [`Nginx::root`]. Killed on drop.
#[derive(Debug)]
pub struct Nginx {
    /// Killed on drop, before the directory goes.
    _process: ServerProcess,
    port: u16,
    dir: tempfile::TempDir,
}

/// One line of the access log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    /// `GET`, `HEAD`, …
    pub method: String,
    /// The path requested.
    pub uri: String,
    /// The response status.
    pub status: u16,
    /// Body bytes sent (fewer than asked when the client went away).
    pub body_bytes: u64,
    /// The `Range` header, if any.
    pub range: Option<String>,
}

/// nginx, from the usual places or `PATH`, or a panic that says how to install it.
pub(crate) fn nginx_binary() -> PathBuf {
    ["/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/local/nginx/sbin/nginx"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .or_else(|| crate::process::find_in_path("nginx"))
        .unwrap_or_else(|| {
            panic!(
                "nginx is not installed: these tests serve files with it; run `bash scripts/install-test-deps.sh`, which installs it (`apt-get install nginx`)"
            )
        })
}

/// Waits until the nginx started as `child` listens on `port`; its error log is in `dir`.
pub(crate) fn wait_ready(child: &mut Child, port: u16, dir: &Path) -> Result<(), String> {
    let log = dir.join("error.log");
    process::wait_ready(child, "nginx", port, &log, Duration::from_secs(10), || {
        process::listening(port)
    })
    .map_err(|e| e.to_string())
}

impl Nginx {
    /// Starts nginx on a free port, serving an empty directory.
    pub fn start() -> Self {
        let dir = tempfile::tempdir().expect("creating a temp dir");
        let www = dir.path().join("www");
        fs::create_dir_all(&www).expect("creating the web root");
        make_temp_dirs(dir.path()).expect("creating nginx temp dirs");
        let port = crate::free_port();
        let d = dir.path().display();
        let (prelude, temp_paths) = (prelude(dir.path()), temp_paths(dir.path()));
        let config = format!(
            r#"{prelude}
http {{
    log_format ranges '$request_method $uri $status $body_bytes_sent "$http_range"';
    access_log {d}/access.log ranges;
{temp_paths}
    default_type application/octet-stream;
    sendfile on;
    keepalive_requests 10000;
    server {{
        listen 127.0.0.1:{port};
        location /files/ {{ alias {d}/www/; }}
        location /norange/ {{ alias {d}/www/; max_ranges 0; }}
        location /slow/ {{ alias {d}/www/; limit_rate 2m; }}
        location = /status/500 {{ return 500; }}
        location = /status/503 {{ return 503; }}
        location = /status/403 {{ return 403; }}
        location = /nginx-status {{ stub_status; access_log off; }}
    }}
}}
"#
        );
        let conf = dir.path().join("nginx.conf");
        fs::write(&conf, config).expect("writing nginx.conf");
        let mut child = Command::new(nginx_binary())
            .arg("-c")
            .arg(&conf)
            .arg("-p")
            .arg(dir.path())
            .arg("-e")
            .arg(dir.path().join("error.log"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting nginx");
        if let Err(e) = wait_ready(&mut child, port, dir.path()) {
            panic!("{e}");
        }
        Nginx {
            _process: ServerProcess(child),
            port,
            dir,
        }
    }

    /// The directory served.
    pub fn root(&self) -> PathBuf {
        self.dir.path().join("www")
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:<port>/<path>`.
    pub fn url(&self, path: &str) -> String {
        format!(
            "http://127.0.0.1:{}/{}",
            self.port,
            path.trim_start_matches('/')
        )
    }

    /// Writes `bytes` as `name` (`dir/file` makes `dir`) in the served directory.
    pub fn put(&self, name: &str, bytes: &[u8]) -> io::Result<PathBuf> {
        let path = self.root().join(name);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent)?;
        }
        fs::write(&path, bytes)?;
        Ok(path)
    }

    /// The access log so far.
    pub fn log(&self) -> Vec<LogLine> {
        crate::read_log(&self.dir.path().join("access.log"), parse_line)
    }

    /// The access log once it has at least `n` lines (nginx logs a request just after it
    /// answers, so a client may be a moment ahead), or after 2 s, whatever it has then.
    pub fn log_of_at_least(&self, n: usize) -> Vec<LogLine> {
        crate::at_least(n, || self.log())
    }

    /// Waits until nginx has no connection open but the one asking, so that every request
    /// made so far is complete and in the access log: after a client has exited, the log is
    /// final for everything it sent (nginx logs a request cut short when it notices the
    /// closed connection, which may be after the client is gone).
    pub fn wait_idle(&self) {
        let idle = crate::poll(Duration::from_secs(10), || {
            let page = crate::http_get(self.port, "/nginx-status").ok()?;
            (active_connections(&page) == Some(1)).then_some(())
        });
        assert!(
            idle.is_some(),
            "nginx still had connections open after 10 s: {:?}",
            crate::http_get(self.port, "/nginx-status")
        );
    }

    /// Empties the access log.
    pub fn clear_log(&self) {
        crate::truncate_log(&self.dir.path().join("access.log"));
    }

    /// Body bytes sent for requests whose path ends with `suffix`.
    pub fn bytes_sent(&self, suffix: &str) -> u64 {
        self.log()
            .iter()
            .filter(|l| l.uri.ends_with(suffix))
            .map(|l| l.body_bytes)
            .sum()
    }
}

/// `N` of `Active connections: N` in a `stub_status` page.
fn active_connections(page: &str) -> Option<u64> {
    page.lines()
        .find_map(|l| l.strip_prefix("Active connections:"))?
        .trim()
        .parse()
        .ok()
}

fn parse_line(line: &str) -> Option<LogLine> {
    let mut parts = line.splitn(5, ' ');
    let method = parts.next()?.to_owned();
    let uri = parts.next()?.to_owned();
    let status = parts.next()?.parse().ok()?;
    let body_bytes = parts.next()?.parse().ok()?;
    let range = parts.next()?.trim_matches('"');
    Some(LogLine {
        method,
        uri,
        status,
        body_bytes,
        range: (range != "-").then(|| range.to_owned()),
    })
}
