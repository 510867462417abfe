"""Small fakes for services that Debian does not package, written from their public
protocol docs, each in a safe and an unsafe configuration.

- Node.js inspector: nodejs.org "Debugging guide" (/json/version, /json/list) and the
  CVE-2018-7160 fix (Host must be an IP address or localhost).
- Chrome DevTools Protocol: chromedevtools.github.io "HTTP endpoints"; Chrome 111+
  refuses WebSocket Origins unless --remote-allow-origins.
- Jupyter server: jupyter-server REST API (/api, /api/kernels; 403 without a token).
- MCP over Streamable HTTP: modelcontextprotocol.io spec 2025-06-18, "Transports"
  (JSON-RPC over POST, validate Origin, bind to localhost, authenticate).
- Ollama: github.com/ollama/ollama docs/api.md (/api/tags); OLLAMA_ORIGINS.
- OpenAI-compatible: the /v1/models list object.
- Docker Engine API: docs.docker.com "Engine API" (/version).
- etcd: etcd.io v3 gRPC gateway (/version, /v3/auth/status).
- JDWP: the JDWP spec, "Handshake" (the 14 ASCII bytes echoed back).

Each runs in a thread of the test process on 127.0.0.1 port 0 and is shut down by the
context manager.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import socket
import socketserver
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

Reply = tuple[int, list[tuple[str, str]], bytes]
App = Callable[[str, str, dict[str, str], bytes], Reply]


def _json(status: int, data: object, headers: list[tuple[str, str]] | None = None) -> Reply:
    return (
        status,
        [("Content-Type", "application/json"), *(headers or [])],
        json.dumps(data).encode(),
    )


def local_host(host: str | None) -> bool:
    """What the real services accept as Host: localhost or an IP literal (any port)."""
    if not host:
        return False
    name = host.rsplit(":", 1)[0] if not host.startswith("[") else host[1:].split("]")[0]
    if name == "localhost":
        return True
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def _origin_ok(headers: dict[str, str]) -> bool:
    origin = headers.get("origin")
    return origin is None or local_host(origin.split("://", 1)[-1])


def _ws(headers: dict[str, str], allowed: bool) -> Reply | None:
    if headers.get("upgrade", "").lower() != "websocket":
        return None
    if not allowed:
        return 403, [], b"Rejected an incoming WebSocket connection from that origin"
    return (
        101,
        [
            ("Upgrade", "websocket"),
            ("Connection", "Upgrade"),
            ("Sec-WebSocket-Accept", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="),
        ],
        b"",
    )


def inspector(safe: bool, port: int) -> App:
    def app(method: str, path: str, h: dict[str, str], body: bytes) -> Reply:
        if safe and not local_host(h.get("host")):
            return 400, [], b"Host header is specified and is not an IP address or localhost."
        ws = _ws(h, allowed=not safe or _origin_ok(h))
        if ws:
            return ws
        if path == "/json/version":
            return _json(200, {"Browser": "node.js/v20.11.1", "Protocol-Version": "1.1"})
        if path in ("/json", "/json/list"):
            return _json(
                200,
                [
                    {
                        "id": "0f2c",
                        "type": "node",
                        "title": "app.js",
                        "webSocketDebuggerUrl": f"ws://127.0.0.1:{port}/0f2c",
                    }
                ],
            )
        return 404, [], b"WebSockets request was expected"

    return app


def cdp(safe: bool, port: int) -> App:
    def app(method: str, path: str, h: dict[str, str], body: bytes) -> Reply:
        if safe and not local_host(h.get("host")):
            return 500, [], b"Host header is specified and is not an IP address or localhost."
        ws = _ws(h, allowed=not safe or _origin_ok(h))
        if ws:
            return ws
        if path == "/json/version":
            return _json(
                200,
                {
                    "Browser": "HeadlessChrome/120.0.6099.109",
                    "Protocol-Version": "1.3",
                    "webSocketDebuggerUrl": f"ws://127.0.0.1:{port}/devtools/browser/5a1e",
                },
            )
        return 404, [], b""

    return app


def jupyter(safe: bool, port: int) -> App:
    def app(method: str, path: str, h: dict[str, str], body: bytes) -> Reply:
        if safe and not local_host(h.get("host")):
            return 403, [], b"Blocking request with non-local 'Host'"
        if path == "/api":
            return _json(200, {"version": "2.12.5"})
        if path == "/api/kernels":
            if safe and "token" not in h.get("authorization", "").lower():
                return _json(403, {"message": "Forbidden", "reason": None})
            return _json(200, [])
        return 404, [], b"<title>404 : Not Found</title>"

    return app


def mcp(safe: bool, port: int) -> App:
    def app(method: str, path: str, h: dict[str, str], body: bytes) -> Reply:
        if path != "/mcp":
            return 404, [], b"Not Found"
        if safe and not local_host(h.get("host")):
            return 403, [], b"Invalid Host header"
        if safe and not _origin_ok(h):
            return 403, [], b"Invalid Origin header"
        if safe and not h.get("authorization", "").startswith("Bearer "):
            return 401, [("WWW-Authenticate", 'Bearer realm="mcp"')], b""
        if method != "POST":
            return 405, [("Allow", "POST")], b"Method Not Allowed"
        if safe and not h.get("content-type", "").startswith("application/json"):
            return 415, [], b"Unsupported Media Type"
        req = json.loads(body or b"{}")
        return _json(200, {"jsonrpc": "2.0", "id": req.get("id"), "result": {}})

    return app


def ollama(safe: bool, port: int) -> App:
    def app(method: str, path: str, h: dict[str, str], body: bytes) -> Reply:
        if safe and not local_host(h.get("host")):
            return 403, [], b""
        cors = [] if safe else [("Access-Control-Allow-Origin", "*")]
        if path == "/":
            return 200, [("Content-Type", "text/plain"), *cors], b"Ollama is running"
        if path == "/api/tags":
            return _json(200, {"models": [{"name": "llama3:8b"}]}, cors)
        return 404, cors, b"404 page not found"

    return app


def openai(safe: bool, port: int) -> App:
    def app(method: str, path: str, h: dict[str, str], body: bytes) -> Reply:
        if path == "/v1/models":
            if safe and h.get("authorization") != "Bearer sk-test":
                return _json(
                    401, {"error": {"message": "Invalid API key", "code": "invalid_api_key"}}
                )
            return _json(200, {"object": "list", "data": [{"id": "qwen2", "object": "model"}]})
        return 404, [], b""

    return app


def docker(safe: bool, port: int) -> App:
    def app(method: str, path: str, h: dict[str, str], body: bytes) -> Reply:
        if path == "/version":
            return _json(
                200, {"Version": "24.0.7", "ApiVersion": "1.43", "Os": "linux", "Arch": "amd64"}
            )
        return _json(404, {"message": "page not found"})

    return app


def etcd(safe: bool, port: int) -> App:
    def app(method: str, path: str, h: dict[str, str], body: bytes) -> Reply:
        if path == "/version":
            return _json(200, {"etcdserver": "3.5.9", "etcdcluster": "3.5.0"})
        if path == "/v3/auth/status" and method == "POST":
            data: dict[str, object] = {"header": {"cluster_id": "1", "revision": "1"}}
            if safe:
                data["enabled"] = True
            return _json(200, data)
        return 404, [], b"404 page not found\n"

    return app


def vite(safe: bool, port: int) -> App:
    """Vite's dev server (vite.dev/config/server-options): the HMR WebSocket on ``/`` and
    ``server.allowedHosts`` (CVE-2025-24010 made Host and Origin checks the default)."""

    def app(method: str, path: str, h: dict[str, str], body: bytes) -> Reply:
        if safe and not local_host(h.get("host")):
            return 403, [], b"Blocked request. This host is not allowed."
        ws = _ws(h, allowed=not safe or _origin_ok(h))
        if ws:
            return ws
        if path == "/@vite/client":
            js = b"import '/@vite/env'; const hot = import.meta.hot; // [vite] connecting..."
            return 200, [("Content-Type", "text/javascript")], js
        page = b'<script type="module" src="/@vite/client"></script><title>Vite App</title>'
        return 200, [("Content-Type", "text/html")], page

    return app


def weak_allowlist(safe: bool, port: int) -> App:
    """A dev server whose Host check is a prefix test (the kind CVE write-ups show):
    ``startswith("127.0.0.1")`` or ``startswith("localhost")``."""

    def app(method: str, path: str, h: dict[str, str], body: bytes) -> Reply:
        host = h.get("host", "")
        if not host.startswith(("127.0.0.1", "localhost")):
            return 403, [], b"Invalid Host header"
        return 200, [("Content-Type", "text/html")], b"<title>dev</title>"

    return app


class _Handler(BaseHTTPRequestHandler):
    app: App
    protocol_version = "HTTP/1.1"

    def _serve(self) -> None:
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n else b""
        hdrs = {k.lower(): v for k, v in self.headers.items()}
        status, headers, payload = self.app(self.command, self.path, hdrs, body)
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        if status != 101:
            self.send_header("Content-Length", str(len(payload)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(payload)
        self.close_connection = True

    do_GET = do_POST = do_OPTIONS = do_PUT = _serve

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextlib.contextmanager
def serve_http(make: Callable[[bool, int], App], safe: bool) -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    port = server.server_address[1]
    server.RequestHandlerClass = type("H", (_Handler,), {"app": staticmethod(make(safe, port))})
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield port
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


class _Jdwp(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        self.request.settimeout(2)
        with contextlib.suppress(OSError):
            if self.request.recv(14) == b"JDWP-Handshake":
                self.request.sendall(b"JDWP-Handshake")


@contextlib.contextmanager
def serve_jdwp() -> Iterator[int]:
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Jdwp)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def port_closed(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0
