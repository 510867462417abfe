"""One port, both schemes: the first byte of a connection picks plain HTTP or TLS, and after
a TLS handshake the ALPN protocol picks HTTP/1.1 or HTTP/2.

A TLS connection starts with a handshake record, content type 22 (0x16, RFC 8446 §5.1); no
HTTP/1.x request line starts with that byte (methods are tokens, RFC 9110 §9.1), so one byte
decides without guessing. Only used when TLS is on or plain HTTP is redirected: a plain-only
gateway hands connections to ``proxy.ClientConnection`` directly.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, cast

from homeport.gateway import pages
from homeport.gateway.core import Exchange
from homeport.gateway.http1 import RequestHead
from homeport.gateway.proxy import ClientConnection
from homeport.gateway.tlslayer import TLSLayer

if TYPE_CHECKING:
    from homeport.gateway.server import ProxyServer

TLS_HANDSHAKE = 0x16


class FirstByte(asyncio.Protocol):
    """Holds a new connection until its first read, then hands it to the right protocol."""

    transport: asyncio.Transport | None = None
    deadline = 0.0

    def __init__(self, server: ProxyServer) -> None:
        self.server = server

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.server.conns.add(self)
        # A client that connects and sends nothing is dropped like a slow request head.
        self.deadline = self.server.loop.time() + self.server.config.header_timeout

    def data_received(self, data: bytes) -> None:
        server, t = self.server, self.transport
        server.conns.discard(self)
        assert t is not None
        if data[0] == TLS_HANDSHAKE and server.tls is not None:
            layer = TLSLayer(server.tls, t, server.tls_front, server.loop, server.conns)
            layer.deadline = self.deadline
            server.conns.add(layer)
            t.set_protocol(layer)
            layer.data_received(data)
            return
        conn = HttpsRedirect(server) if server.config.https_only else ClientConnection(server)
        t.set_protocol(conn)
        conn.connection_made(t)
        conn.data_received(data)

    def eof_received(self) -> bool | None:
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self.server.conns.discard(self)

    def expire(self, now: float) -> None:
        if self.transport is not None:
            self.transport.close()


class HttpsRedirect(ClientConnection):
    """Plain HTTP under ``--https-only``: every request gets a 308 to the same URL over
    https on this port (308 keeps the method and body, RFC 9110 §15.4.9)."""

    def _decide(self, ex: Exchange, head: RequestHead) -> None:
        ex.head = head
        ex.keep_alive = head.keep_alive
        location = b"https://" + head.host + head.target
        lines = [f"This gateway answers https only: {location.decode('latin-1')}"]
        body = pages.page(308, "Use https", lines, html=self._html(head))
        self._page(ex, 308, "https-only", body, [(b"location", location)])
