"""Fixtures: an nginx on loopback, started as the Rust tests start it, and a cache directory."""

import hashlib
import json
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

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
        deadline = time.monotonic() + 10
        while not listening(self.port):
            if self.process.poll() is not None:
                raise RuntimeError(f"nginx exited: {self.process.stderr.read().decode()}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("nginx did not listen within 10 s")
            time.sleep(0.01)

    def put(self, name: str, data: bytes) -> str:
        """Serves `data` as `name`, and returns its digest."""
        (self.root / name).write_bytes(data)
        return "sha256:" + hashlib.sha256(data).hexdigest()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}/{path.lstrip('/')}"

    def stop(self) -> None:
        self.process.kill()
        self.process.wait()


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
