"""One port, both schemes: the first byte of a connection picks plain HTTP or TLS, and after
a TLS handshake the ALPN protocol picks HTTP/1.1 or HTTP/2.

A TLS connection starts with a handshake record, content type 22 (0x16, RFC 8446 §5.1); no
HTTP/1.x request line starts with that byte (methods are tokens, RFC 9110 §9.1), so one byte
decides without guessing. ``proxy.ClientConnection`` is the accepted protocol either way and
calls ``first_read`` on its first read when the server has a TLS context.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from homeport.gateway.tlslayer import TLSLayer

if TYPE_CHECKING:
    from homeport.gateway.proxy import ClientConnection

TLS_HANDSHAKE = 0x16


def first_read(conn: ClientConnection, data: bytes) -> bool:
    """A new connection's first bytes: when they open a TLS handshake, move the transport to
    a ``TLSLayer`` (which picks the front-end by ALPN) and return True; else False, and
    ``conn`` goes on as plain HTTP/1.1."""
    server = conn.server
    if data[0] != TLS_HANDSHAKE or server.tls is None or conn.transport is None:
        return False
    t = conn.transport
    # ``conn`` saw no request: it leaves without a log line or a close.
    server.conns.discard(conn)
    conn.dead = True
    conn.transport = None
    layer = TLSLayer(server.tls, t, server.tls_front, server.loop, server.conns)
    layer.deadline = conn.deadline  # the handshake shares the request head's time budget
    server.conns.add(layer)
    t.set_protocol(layer)
    layer.data_received(data)
    return True
