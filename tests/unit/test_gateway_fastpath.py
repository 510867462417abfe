"""The response fast path: the service's head forwarded as it came, with hop-by-hop lines cut
out in place. Checked against the general path (``response_head`` on the fields llhttp
parsed) on the same bytes, and through a ``ClientConnection`` end to end."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import httptools
import pytest

from homeport.gateway import http1
from homeport.gateway.config import ProxyConfig
from homeport.gateway.contract import AccessRecord, Route, RouteTable
from homeport.gateway.proxy import ClientConnection
from homeport.gateway.server import ProxyServer
from homeport.gateway.upstream import Upstream

from .gateway_fakes import FakeTransport

VIA = b"1.1 homeport-test"

HEADS = {
    "nginx": b"HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nDate: Fri, 27 Nov 2026 07:28:30 GMT\r\n"
    b"Content-Type: text/plain\r\nContent-Length: 13\r\nConnection: keep-alive",
    "no-fields": b"HTTP/1.1 204 No Content",
    "no-reason": b"HTTP/1.1 200 \r\nContent-Length: 0",
    "no-reason-no-space": b"HTTP/1.1 404\r\nContent-Length: 0",
    "http10": b"HTTP/1.0 200 OK\r\nContent-Type: text/plain",
    "close": b"HTTP/1.1 200 OK\r\nconnection: close\r\nContent-Length: 2",
    "all-hops": b"HTTP/1.1 200 OK\r\nCONNECTION: Keep-Alive\r\nKeep-Alive: timeout=5\r\n"
    b"TE: trailers\r\nTrailer: X-T\r\nUpgrade: h2c\r\nProxy-Connection: x\r\n"
    b"Proxy-Authenticate: Basic\r\nTransfer-Encoding: chunked\r\nX-Kept: 1",
    "connection-lists-a-field": b"HTTP/1.1 200 OK\r\nX-A: 1\r\nConnection: close, X-Hop\r\n"
    b"X-Hop: secret\r\nContent-Length: 0",
    "two-connection-fields": b"HTTP/1.1 200 OK\r\nConnection: keep-alive\r\nConnection: X-Hop\r\n"
    b"X-Hop: 1\r\nContent-Length: 0",
    "near-miss-names": b"HTTP/1.1 200 OK\r\nX-Connection: close\r\nConnection-Id: 7\r\n"
    b"Test: 1\r\nTEx: 2\r\nUpgrade-Insecure: 3\r\nProxy-Foo: 4\r\nContent-Length: 0",
    "values-mentioning-hops": b"HTTP/1.1 200 OK\r\nX-Note: Connection: close\r\n"
    b"Link: <a>; rel=upgrade\r\nContent-Length: 0",
    "odd-spacing": b"HTTP/1.1 200 OK\r\nConnection:keep-alive  \r\nX-A:\t b \t\r\n"
    b"Content-Length: 0",
}


def _normal(head: bytes) -> list[bytes]:
    """Lines with optional whitespace around values removed (RFC 9110 §5.5: not part of the
    value), which the fast path leaves as the service sent it."""
    lines = head.split(b"\r\n")
    return lines[:1] + [
        n + b":" + v.strip(b" \t") for n, _, v in (x.partition(b":") for x in lines[1:])
    ]


class _Collect:
    """Fields exactly as llhttp reports them, for the general path."""

    def __init__(self) -> None:
        self.fields: list[tuple[bytes, bytes]] = []
        self.reason = b""

    def on_status(self, reason: bytes) -> None:
        self.reason = reason

    def on_header(self, name: bytes, value: bytes) -> None:
        self.fields.append((name, value))


def _parsed(head: bytes) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
    c = _Collect()
    p = httptools.HttpResponseParser(c)
    p.feed_data(head + b"\r\n\r\n")  # llhttp must accept every head the fast path sees
    return p.get_status_code(), c.reason, c.fields


@pytest.mark.parametrize("name", sorted(HEADS))
@pytest.mark.parametrize(
    ("version", "keep_alive", "chunked"),
    [(b"1.1", True, False), (b"1.1", False, True), (b"1.0", True, False), (b"1.0", False, False)],
)
def test_fast_path_equals_the_general_path(
    name: str, version: bytes, keep_alive: bool, chunked: bool
) -> None:
    raw = HEADS[name]
    status, reason, fields = _parsed(raw)
    _framed, _chunked, hop = http1.response_framing(raw)
    kw: dict[str, Any] = {"version": version, "keep_alive": keep_alive, "chunked": chunked}
    fast = http1.forward_response_head(raw, status, via=VIA, hop=hop, **kw)
    general = http1.response_head(status, reason, fields, via=VIA, **kw)
    if name == "odd-spacing":
        assert _normal(fast) == _normal(general)
    else:
        assert fast == general
    # Cutting every hop-by-hop line must not depend on what the scan said was there.
    cut = http1.forward_response_head(raw, status, via=VIA, hop=http1.HOP_LINES, **kw)
    if hop != http1.HOP_LISTED:
        assert cut == fast


@pytest.mark.parametrize("name", sorted(HEADS))
def test_framing_scan_agrees_with_the_parsed_fields(name: str) -> None:
    raw = HEADS[name]
    _, _, fields = _parsed(raw)
    names = {n.lower() for n, _ in fields}
    framed, chunked, hop = http1.response_framing(raw)
    assert chunked == (b"transfer-encoding" in names)
    assert framed == (chunked or b"content-length" in names)
    assert (hop != http1.HOP_NONE) == bool(names & http1.HOP_BY_HOP)
    assert (hop == http1.HOP_LISTED) == name.endswith(("lists-a-field", "connection-fields"))
    # The common keep-alive response takes the cheapest cut: one Connection line.
    assert (hop == http1.HOP_CONNECTION) == (name in {"nginx", "close", "odd-spacing"})


def test_hop_by_hop_lines_are_gone_and_the_rest_is_byte_identical() -> None:
    out = http1.forward_response_head(
        HEADS["all-hops"],
        200,
        version=b"1.1",
        keep_alive=True,
        chunked=True,
        via=VIA,
        hop=http1.HOP_LINES,
    )
    assert out == (
        b"HTTP/1.1 200 OK\r\nX-Kept: 1\r\ntransfer-encoding: chunked\r\n"
        b"via: 1.1 homeport-test\r\n\r\n"
    )
    listed = http1.forward_response_head(
        HEADS["connection-lists-a-field"], 200, version=b"1.1", keep_alive=True,
        chunked=False, via=VIA, hop=http1.HOP_LISTED,
    )  # fmt: skip
    assert b"X-Hop" not in listed
    assert b"X-A: 1\r\n" in listed


# -- through the proxy ------------------------------------------------------------------------


@pytest.fixture
def pair() -> Iterator[tuple[ClientConnection, FakeTransport, Upstream, FakeTransport]]:
    loop = asyncio.new_event_loop()
    records: list[AccessRecord] = []
    server = ProxyServer(ProxyConfig(), access_sink=records.append)
    server.loop = loop
    server.bound = [("127.0.0.1", 62893)]
    server.set_routes(RouteTable((Route("app.localhost", "http://127.0.0.1:3000"),)))
    up, ut = Upstream(server.pool, "127.0.0.1:3000"), FakeTransport()
    up.connection_made(ut)  # type: ignore[arg-type]
    server.pool.give(up)
    conn, ct = ClientConnection(server), FakeTransport()
    conn.connection_made(ct)  # type: ignore[arg-type]
    try:
        yield conn, ct, up, ut
    finally:
        server.pool.close()
        loop.close()


GET = b"GET / HTTP/1.1\r\nHost: app.localhost\r\n\r\n"


def test_a_head_split_over_many_reads_is_forwarded_whole(
    pair: tuple[ClientConnection, FakeTransport, Upstream, FakeTransport],
) -> None:
    conn, ct, up, _ut = pair
    conn.data_received(GET)
    response = HEADS["nginx"] + b"\r\n\r\nhello, world\n"
    for i in range(len(response)):
        up.data_received(response[i : i + 1])  # one byte at a time, CRLFs split too
    assert ct.take() == (
        b"HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nDate: Fri, 27 Nov 2026 07:28:30 GMT\r\n"
        b"Content-Type: text/plain\r\nContent-Length: 13\r\nvia: " + conn.server.via + b"\r\n\r\n"
        b"hello, world\n"
    )


def test_interim_and_final_heads_in_one_read(
    pair: tuple[ClientConnection, FakeTransport, Upstream, FakeTransport],
) -> None:
    conn, ct, up, _ut = pair
    conn.data_received(GET)
    up.data_received(
        b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n"
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-B: 2\r\n\r\n2\r\nok\r\n0\r\n\r\n"
    )
    out = ct.take()
    assert out.startswith(b"HTTP/1.1 200 OK\r\nX-B: 2\r\ntransfer-encoding: chunked\r\n")
    assert b"Early Hints" not in out
    assert b"Link" not in out
    assert out.endswith(b"\r\n\r\n2\r\nok\r\n0\r\n\r\n")
    # The connection went back to the pool in a clean state: the next response is framed.
    conn.data_received(GET)
    up.data_received(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc")
    assert ct.take().endswith(b"Content-Length: 3\r\nvia: " + conn.server.via + b"\r\n\r\nabc")


def test_a_connection_listed_field_is_removed_end_to_end(
    pair: tuple[ClientConnection, FakeTransport, Upstream, FakeTransport],
) -> None:
    conn, ct, up, _ut = pair
    conn.data_received(GET)
    up.data_received(HEADS["connection-lists-a-field"] + b"\r\n\r\n")
    out = ct.take()
    assert out.startswith(b"HTTP/1.1 200 OK\r\nX-A: 1\r\nContent-Length: 0\r\nvia: ")
    assert b"X-Hop" not in out
    assert b"secret" not in out


def test_a_second_response_in_the_same_read_closes_the_upstream(
    pair: tuple[ClientConnection, FakeTransport, Upstream, FakeTransport],
) -> None:
    conn, ct, up, ut = pair
    conn.data_received(GET)
    up.data_received(
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
        b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nevil"
    )
    assert ct.take().endswith(b"\r\n\r\nok")  # the client got its answer, nothing more
    assert ut.closed  # the stream is out of step: never reused
    assert up.closed


def test_a_head_trickled_in_many_reads_is_joined_once(
    pair: tuple[ClientConnection, FakeTransport, Upstream, FakeTransport],
) -> None:
    conn, ct, up, _ut = pair
    conn.data_received(GET)
    filler = b"".join(b"X-F%d: %s\r\n" % (i, b"v" * 50) for i in range(200))
    response = b"HTTP/1.1 200 OK\r\n" + filler + b"Content-Length: 2\r\n\r\nok"
    for i in range(0, len(response), 7):
        up.data_received(response[i : i + 7])
    out = ct.take()
    assert out.count(b"\r\nX-F") == 200
    assert out.endswith(b"Content-Length: 2\r\nvia: " + conn.server.via + b"\r\n\r\nok")
