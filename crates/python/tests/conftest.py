"""Fixtures: an nginx and an s3s-fs on loopback, started as the Rust tests start them, EC keys
made by `openssl`, and a cache directory."""

import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
NGINX_PATHS = ["/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/local/nginx/sbin/nginx"]


def nginx_binary() -> str:
    for path in NGINX_PATHS:
        if os.path.exists(path):
            return path
    found = shutil.which("nginx")
    if found is None:
        raise RuntimeError(
            "nginx is not installed: these tests serve files with it; run "
            "`bash scripts/install-test-deps.sh`, which installs it"
        )
    return found


def s3s_fs_binary() -> str:
    path = os.environ.get("S3S_FS_BIN") or str(REPO / ".tools" / "s3s-fs" / "bin" / "s3s-fs")
    if not os.path.isfile(path):
        raise RuntimeError(
            f"s3s-fs is not installed at `{path}`: these tests push to it; run "
            "`bash scripts/install-test-deps.sh`, which builds it there (or set `S3S_FS_BIN`)"
        )
    return path


def wait_listening(process: subprocess.Popen, port: int, name: str, stop) -> None:
    deadline = time.monotonic() + 10
    while not listening(port):
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited: {process.stderr.read().decode()}")
        if time.monotonic() > deadline:
            stop()
            raise RuntimeError(f"{name} did not listen within 10 s")
        time.sleep(0.01)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


class Nginx:
    """nginx serving `root` at `/files/`, and at `/slow/` capped at 2 MiB/s per connection."""

    def __init__(self, dir: Path):
        self.dir = dir
        self.root = dir / "www"
        self.root.mkdir()
        for t in ["body", "proxy", "fastcgi", "uwsgi", "scgi"]:
            (dir / t).mkdir()
        self.port = free_port()
        d = str(dir)
        conf = dir / "nginx.conf"
        conf.write_text(
            f"""daemon off;
master_process off;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log info;
events {{ worker_connections 512; }}
http {{
    access_log {d}/access.log;
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    default_type application/octet-stream;
    server {{
        listen 127.0.0.1:{self.port};
        location /files/ {{ alias {d}/www/; }}
        location /slow/ {{ alias {d}/www/; limit_rate 2m; }}
    }}
}}
"""
        )
        self.process = subprocess.Popen(
            [nginx_binary(), "-c", str(conf), "-p", d, "-e", f"{d}/error.log"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        wait_listening(self.process, self.port, "nginx", self.stop)

    def put(self, name: str, data: bytes) -> str:
        """Serves `data` as `name`, and returns its digest."""
        (self.root / name).write_bytes(data)
        return "sha256:" + hashlib.sha256(data).hexdigest()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}/{path.lstrip('/')}"

    def requests(self) -> list:
        """The paths requested so far, once a last request of our own is logged: every
        request that ended before this call is in the log by then."""
        mark = f"/files/logged-{time.monotonic_ns()}"
        try:
            urllib.request.urlopen(self.url(mark), timeout=10)
        except urllib.error.HTTPError:
            pass
        log = self.dir / "access.log"
        while True:
            paths = [line.split('"')[1].split()[1] for line in log.read_text().splitlines()]
            if mark in paths:
                return [p for p in paths[: paths.index(mark)] if "/logged-" not in p]
            time.sleep(0.01)

    def stop(self) -> None:
        self.process.kill()
        self.process.wait()


class S3:
    """s3s-fs serving `root`: a bucket is a directory of it, an object a file. Requests are
    signed with its one key pair, set in the environment by the fixture."""

    ACCESS_KEY = "AKIAPYTESTS0001"
    SECRET_KEY = "python-tests/s3s-fs/secret+key"

    def __init__(self, dir: Path):
        self.root = dir / "root"
        self.root.mkdir()
        self.port = free_port()
        self.process = subprocess.Popen(
            [s3s_fs_binary(), "--host", "127.0.0.1", "--port", str(self.port),
             "--access-key", self.ACCESS_KEY, "--secret-key", self.SECRET_KEY, str(self.root)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env={**os.environ, "RUST_LOG": "warn"},
        )
        wait_listening(self.process, self.port, "s3s-fs", self.stop)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def put(self, bucket: str, key: str, data: bytes) -> None:
        path = self.root / bucket / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()


@pytest.fixture
def s3(tmp_path_factory, monkeypatch):
    server = S3(tmp_path_factory.mktemp("s3"))
    none = str(tmp_path_factory.mktemp("aws") / "none")
    for name, value in [("AWS_ACCESS_KEY_ID", S3.ACCESS_KEY),
                        ("AWS_SECRET_ACCESS_KEY", S3.SECRET_KEY),
                        ("AWS_REGION", "us-east-1"),
                        ("AWS_CONFIG_FILE", none),
                        ("AWS_SHARED_CREDENTIALS_FILE", none),
                        ("AWS_EC2_METADATA_DISABLED", "true")]:
        monkeypatch.setenv(name, value)
    for name in ["AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"]:
        monkeypatch.delenv(name, raising=False)
    yield server
    server.stop()


class KeyPair:
    """An EC P-256 key pair made by `openssl`: `private` (PKCS#8 PEM) and `public` (PEM)."""

    def __init__(self, dir: Path, name: str):
        self.private = dir / f"{name}.key"
        self.public = dir / f"{name}.pub"
        subprocess.run(["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt",
                        "ec_paramgen_curve:P-256", "-out", str(self.private)],
                       check=True, capture_output=True)
        subprocess.run(["openssl", "ec", "-in", str(self.private), "-pubout", "-out",
                        str(self.public)], check=True, capture_output=True)


@pytest.fixture
def keys(tmp_path_factory):
    """Two key pairs, `signer` and `other`."""
    dir = tmp_path_factory.mktemp("keys")
    return KeyPair(dir, "signer"), KeyPair(dir, "other")


def model_signing_sign(model: Path, key: KeyPair) -> None:
    """Signs the folder `model` as the reference `model_signing` tool does, into its model.sig."""
    tool = Path(sys.executable).with_name("model_signing")
    subprocess.run([str(tool), "sign", "key", "--private_key", str(key.private),
                    "--signature", str(model / "model.sig"), str(model)],
                   check=True, capture_output=True)


@pytest.fixture
def nginx(tmp_path_factory):
    server = Nginx(tmp_path_factory.mktemp("nginx"))
    yield server
    server.stop()


@pytest.fixture
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cache")


def resume_state(cache: Path):
    """The resume record of the one download in flight under `cache`, or None."""
    for state in (cache / "tmp").glob("dl-*.state") if (cache / "tmp").exists() else []:
        try:
            return json.loads(state.read_bytes())
        except (OSError, ValueError):
            return None
    return None
