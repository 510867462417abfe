"""Field names with ``_`` behind the gateway, seen by real servers (issue 9).

wsgiref (the stdlib's WSGI server) builds CGI variables: ``Transfer_Encoding`` and
``Transfer-Encoding`` both become ``HTTP_TRANSFER_ENCODING``, and ``X_Forwarded_For`` joins
the gateway's ``X-Forwarded-For`` in ``HTTP_X_FORWARDED_FOR``. uvicorn (ASGI, with its h11 and
httptools parsers) hands such names to the app as they came. By default neither server may see
them; a route with ``allow_underscores`` passes them on."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer

import pytest
from gateway_support import gateway

HERE = Path(__file__).resolve().parent
SMUGGLE = b"X_Forwarded_For: 6.6.6.6\r\nTransfer_Encoding: chunked\r\nX_Real_IP: 6.6.6.6\r\n"


def _echo_environ(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    http = {k: v for k, v in environ.items() if k.startswith("HTTP_")}
    start_response("200 OK", [("Content-Type", "application/json")])
    return [json.dumps(http).encode()]


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextlib.contextmanager
def wsgi_server() -> Iterator[int]:
    server = WSGIServer(("127.0.0.1", 0), _QuietHandler)  # bound and listening on return
    server.set_app(_echo_environ)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@contextlib.contextmanager
def uvicorn_server(http: str) -> Iterator[int]:
    pytest.importorskip("uvicorn", reason="uvicorn is in the dev extra: pip install -e .[dev]")
    # The socket is bound and listening before uvicorn starts (--fd): connections wait in
    # the backlog until it accepts, so there is no start-up race to poll for.
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    argv = [sys.executable, "-m", "uvicorn", "--fd", str(sock.fileno()), "--http", http,
            "--app-dir", str(HERE), "--no-access-log", "--log-level", "warning",
            "--lifespan", "off", "asgi_echo:app"]  # fmt: skip
    proc = subprocess.Popen(argv, pass_fds=(sock.fileno(),), start_new_session=True)
    try:
        yield int(sock.getsockname()[1])
    finally:
        sock.close()
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _get(port: int, host: bytes, fields: bytes) -> Any:
    """One request over a raw socket (the client must not touch the field names)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(
            b"GET /echo HTTP/1.1\r\nHost: " + host + b"\r\n" + fields + b"Connection: close\r\n\r\n"
        )
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 "), head
    if b"transfer-encoding: chunked" in head.lower():
        body = _dechunk(body)
    return json.loads(body)


def _dechunk(body: bytes) -> bytes:
    out = b""
    while True:
        size_line, _, rest = body.partition(b"\r\n")
        size = int(size_line, 16)
        if size == 0:
            return out
        out, body = out + rest[:size], rest[size + 2 :]


ROUTES = [
    {"name": "plain.localhost", "target": "http://127.0.0.1:{port}"},
    {"name": "cgi.localhost", "target": "http://127.0.0.1:{port}", "allow_underscores": True},
]


def _routes(port: int) -> list[dict[str, Any]]:
    return [{**r, "target": str(r["target"]).format(port=port)} for r in ROUTES]


@pytest.mark.parametrize("split", [False, True], ids=["fast-path", "field-path"])
def test_wsgi_never_sees_underscored_fields_by_default(tmp_path: Path, split: bool) -> None:
    # A Content-Length makes the gateway take the field-by-field path.
    extra = b"Content-Length: 0\r\n" if split else b""
    with wsgi_server() as port, gateway(tmp_path, _routes(port)) as gw:
        env = _get(gw.port, b"plain.localhost", SMUGGLE + extra)
        assert "HTTP_TRANSFER_ENCODING" not in env
        assert "HTTP_X_REAL_IP" not in env
        assert env["HTTP_X_FORWARDED_FOR"] == "127.0.0.1"  # the gateway's own, alone
        opted = _get(gw.port, b"cgi.localhost", SMUGGLE + extra)
        # What the default prevents: the backend frames and attributes by the forged fields.
        assert opted["HTTP_TRANSFER_ENCODING"] == "chunked"
        assert opted["HTTP_X_REAL_IP"] == "6.6.6.6"
        assert "6.6.6.6" in opted["HTTP_X_FORWARDED_FOR"]


@pytest.mark.parametrize("http", ["h11", "httptools"])
def test_asgi_never_sees_underscored_fields_by_default(tmp_path: Path, http: str) -> None:
    with uvicorn_server(http) as port, gateway(tmp_path, _routes(port)) as gw:
        names = [n for n, _ in _get(gw.port, b"plain.localhost", SMUGGLE)]
        assert not [n for n in names if "_" in n], names
        assert names.count("x-forwarded-for") == 1
        opted = dict(_get(gw.port, b"cgi.localhost", SMUGGLE))
        assert opted["x_forwarded_for"] == "6.6.6.6"
        assert opted["transfer_encoding"] == "chunked"
