"""A tiny HTTPS server for the CA's tests: ``http.server`` on a given TLS context, on
127.0.0.1 and [::1] (clients may try either for a name under .localhost)."""

from __future__ import annotations

import contextlib
import http.server
import socket
import ssl
import threading
from collections.abc import Iterator
from typing import Any

PAGE = b"<!doctype html><title>tls ok</title><p id=ok>served over TLS</p>"


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("content-type", "text/html")
        self.send_header("content-length", str(len(PAGE)))
        self.end_headers()
        self.wfile.write(PAGE)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _V6Server(http.server.ThreadingHTTPServer):
    address_family = socket.AF_INET6


@contextlib.contextmanager
def serving(ctx: ssl.SSLContext, port: int) -> Iterator[int]:
    """Serve ``PAGE`` over TLS with ``ctx`` on ``port`` until the block ends."""
    servers: list[http.server.ThreadingHTTPServer] = [
        http.server.ThreadingHTTPServer(("127.0.0.1", port), _Handler)
    ]
    with contextlib.suppress(OSError):  # no IPv6 on lo: Chromium falls back to 127.0.0.1
        servers.append(_V6Server(("::1", port), _Handler))
    threads = []
    for srv in servers:
        srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
        t = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.1})
        t.start()
        threads.append(t)
    try:
        yield port
    finally:
        for srv in servers:
            srv.shutdown()
            srv.server_close()
        for t in threads:
            t.join(10)
