"""The gateway in front of a real nginx from Debian: upstream keep-alive seen from nginx's own
log ($connection, $connection_requests), 64 KiB and chunked bodies, HEAD, 304."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from gateway_support import Gateway, gateway

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
CONF = """
user root; worker_processes 1; daemon off; pid {d}/nginx.pid; error_log {d}/error.log;
events {{ worker_connections 256; }}
http {{
  log_format conn '$connection $connection_requests $request_method $request_uri';
  access_log {d}/access.log conn;
  client_body_temp_path {d}/body; proxy_temp_path {d}/proxy; fastcgi_temp_path {d}/fcgi;
  uwsgi_temp_path {d}/uwsgi; scgi_temp_path {d}/scgi;
  keepalive_requests 10000;
  server {{
    listen 127.0.0.1:{port}; root {d}/www;
    location = /small {{ default_type text/plain; return 200 "hello from nginx\\n"; }}
    location = /chunked {{ gzip on; gzip_proxied any; gzip_min_length 1; gzip_types text/plain; }}
  }}
}}
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def nginx(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    if not os.path.exists(NGINX):
        pytest.skip("nginx is not installed (apt-get install nginx)")
    d = tmp_path / "nginx"
    (d / "www").mkdir(parents=True)
    (d / "www" / "64k").write_bytes(bytes(range(256)) * 256)
    (d / "www" / "chunked").write_text("chunk me " * 2000)
    for attempt in range(5):  # the port may be taken between picking and nginx's bind
        port = _free_port()
        (d / "nginx.conf").write_text(CONF.format(d=d, port=port))
        proc = subprocess.Popen(
            [NGINX, "-c", str(d / "nginx.conf"), "-p", str(d), "-e", str(d / "error.log")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        if _wait_listening(port, proc):
            break
        proc.wait()
        assert attempt < 4, (d / "error.log").read_text()
    try:
        yield port, d
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _wait_listening(port: int, proc: subprocess.Popen[bytes]) -> bool:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and proc.poll() is None:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return True
        time.sleep(0.02)
    return False


@pytest.fixture
def gw(nginx: tuple[int, Path], tmp_path: Path) -> Iterator[Gateway]:
    port, _ = nginx
    routes = [{"name": "app.localhost", "target": f"http://localhost:{port}"}]
    with gateway(tmp_path, routes) as g:
        yield g


def _nginx_log(d: Path, n: int) -> list[list[str]]:
    log = d / "access.log"
    deadline = time.monotonic() + 5
    while True:  # nginx writes its log line after the response
        lines = log.read_text().splitlines() if log.exists() else []
        if len(lines) >= n or time.monotonic() > deadline:
            return [line.split() for line in lines]
        time.sleep(0.02)


def test_upstream_keep_alive_as_nginx_sees_it(gw: Gateway, nginx: tuple[int, Path]) -> None:
    _, d = nginx
    with httpx.Client(base_url=gw.url, headers={"Host": "app.localhost"}) as client:
        for _ in range(30):
            r = client.get("/small")
            assert r.text == "hello from nginx\n"
            assert r.headers["server"].startswith("nginx")
    log = _nginx_log(d, 30)
    assert len(log) == 30
    assert len({line[0] for line in log}) == 1  # one nginx connection ...
    assert [int(line[1]) for line in log] == list(range(1, 31))  # ... carried all 30 requests


def test_bodies_head_and_conditional_requests(gw: Gateway, nginx: tuple[int, Path]) -> None:
    _, d = nginx
    expected = (d / "www" / "64k").read_bytes()
    with httpx.Client(base_url=gw.url, headers={"Host": "app.localhost"}) as client:
        r = client.get("/64k")
        assert r.content == expected
        head = client.head("/64k")
        assert head.headers["content-length"] == "65536"
        assert head.content == b""
        etag = r.headers["etag"]
        assert client.get("/64k", headers={"If-None-Match": etag}).status_code == 304
        gz = client.get("/chunked", headers={"Accept-Encoding": "gzip"})
        assert gz.headers["content-encoding"] == "gzip"
        assert gz.text == "chunk me " * 2000  # chunked + gzip from nginx, de- and re-chunked
        assert client.get("/small").status_code == 200  # the connection is still in step
        assert client.get("/missing").status_code == 404
