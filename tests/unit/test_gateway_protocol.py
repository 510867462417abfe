"""Protocol tests without sockets: raw bytes into a ``ClientConnection`` on a fake transport,
bytes out. Upstreams are ``Upstream`` objects on fake transports placed in the pool, so every
byte that would go to a service is visible too."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from homeport.gateway.config import ProxyConfig
from homeport.gateway.contract import (
    AccessRecord,
    ControlRequest,
    ControlResponse,
    Route,
    RouteTable,
)
from homeport.gateway.proxy import ClientConnection
from homeport.gateway.server import ProxyServer
from homeport.gateway.upstream import Upstream

from .gateway_fakes import GW_PORT, FakeTransport

TARGET = "http://127.0.0.1:3000"


@dataclass
class Gateway:
    server: ProxyServer
    loop: asyncio.AbstractEventLoop
    records: list[AccessRecord] = field(default_factory=list)

    def client(
        self, peer: tuple[str, int] = ("127.0.0.1", 40000)
    ) -> tuple[ClientConnection, FakeTransport]:
        conn = ClientConnection(self.server)
        t = FakeTransport(peer)
        conn.connection_made(t)  # type: ignore[arg-type]
        return conn, t

    def upstream(self, key: str = "127.0.0.1:3000") -> tuple[Upstream, FakeTransport]:
        up = Upstream(self.server.pool, key)
        t = FakeTransport()
        up.connection_made(t)  # type: ignore[arg-type]
        self.server.pool.give(up)
        return up, t


def make_gateway(config: ProxyConfig | None = None, **kw: Any) -> Iterator[Gateway]:
    loop = asyncio.new_event_loop()
    records: list[AccessRecord] = []
    server = ProxyServer(config or ProxyConfig(), access_sink=records.append, **kw)
    server.loop = loop
    server.bound = [("127.0.0.1", GW_PORT)]
    server.set_routes(
        RouteTable(
            (
                Route("app.localhost", TARGET),
                Route("loop.localhost", f"http://127.0.0.1:{GW_PORT}"),
                Route("secret.localhost", TARGET, auth="token", secret="tok"),
                Route("strict.localhost", TARGET, same_origin=True),
            )
        )
    )
    try:
        yield Gateway(server, loop, records)
    finally:
        server.pool.close()
        loop.close()


@pytest.fixture
def gw() -> Iterator[Gateway]:
    yield from make_gateway()


def status_of(data: bytes) -> int:
    return int(data.split(b" ", 2)[1])


GET = b"GET /x HTTP/1.1\r\nHost: app.localhost\r\n\r\n"


# -- smuggling and framing ----------------------------------------------------------------------

SMUGGLING = {
    "cl-and-te": b"POST / HTTP/1.1\r\nHost: app.localhost\r\nContent-Length: 4\r\n"
    b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "duplicate-cl": b"POST / HTTP/1.1\r\nHost: app.localhost\r\nContent-Length: 3\r\n"
    b"Content-Length: 4\r\n\r\nabcd",
    "obs-fold": b"GET / HTTP/1.1\r\nHost: app.localhost\r\nX-A: a\r\n b\r\n\r\n",
    "bare-cr": b"GET / HTTP/1.1\r\nHost: app.localhost\r\nX-A: a\rb\r\n\r\n",
    "nul": b"GET / HTTP/1.1\r\nHost: app.localhost\r\nX-A: a\x00b\r\n\r\n",
    "te-in-http10": b"POST / HTTP/1.0\r\nHost: app.localhost\r\nTransfer-Encoding: chunked\r\n"
    b"\r\n0\r\n\r\n",
    "te-not-chunked-last": b"POST / HTTP/1.1\r\nHost: app.localhost\r\n"
    b"Transfer-Encoding: chunked, gzip\r\n\r\n",
    "two-hosts": b"GET / HTTP/1.1\r\nHost: app.localhost\r\nHost: evil.example\r\n\r\n",
    "no-host": b"GET / HTTP/1.1\r\n\r\n",
    "space-before-colon": b"GET / HTTP/1.1\r\nHost: app.localhost\r\nContent-Length : 3\r\n\r\nabc",
}


@pytest.mark.parametrize("name", sorted(SMUGGLING))
def test_smuggling_vectors_get_400_and_close(gw: Gateway, name: str) -> None:
    _up, ut = gw.upstream()
    conn, t = gw.client()
    conn.data_received(SMUGGLING[name] + GET)
    assert status_of(bytes(t.out)) == 400
    assert t.out.count(b"HTTP/1.1") == 1  # the smuggled follow-up request is never answered
    assert t.closed
    assert ut.out == b""  # nothing reached the service
    assert gw.records[-1].status == 400
    assert gw.records[-1].reason == "bad-request"


@pytest.mark.parametrize(
    "chunks", [b"zz\r\nabc\r\n0\r\n\r\n", b"fffffffffffffffff1\r\nabc\r\n0\r\n\r\n"]
)
def test_bad_chunk_sizes_get_400_and_the_upstream_never_sees_them(
    gw: Gateway, chunks: bytes
) -> None:
    # The head went upstream as soon as it was complete (bodies stream); the body is
    # re-chunked by us, so the bad size never reaches the service, whose connection is closed.
    _up, ut = gw.upstream()
    conn, t = gw.client()
    conn.data_received(
        b"POST / HTTP/1.1\r\nHost: app.localhost\r\nTransfer-Encoding: chunked\r\n\r\n"
        + chunks
        + GET
    )
    assert status_of(bytes(t.out)) == 400
    assert t.closed
    assert ut.closed
    assert chunks[:4] not in ut.out
    assert ut.out.count(b"HTTP/1.1") == 1


def test_header_block_over_the_limit_is_431(gw: Gateway) -> None:
    conn, t = gw.client()
    big = b"X-Big: " + b"a" * 8000 + b"\r\n"
    conn.data_received(b"GET / HTTP/1.1\r\nHost: app.localhost\r\n" + big * 9 + b"\r\n")
    assert status_of(bytes(t.out)) == 431
    assert t.closed
    assert gw.records[-1].reason == "header-too-large"


def test_a_head_trickled_past_the_limit_in_one_field_is_431(gw: Gateway) -> None:
    conn, t = gw.client()
    conn.data_received(b"GET / HTTP/1.1\r\nHost: app.localhost\r\nX-Big: ")
    for _ in range(80):  # one never-ending value, 1 KiB at a time
        if t.closed:
            break
        conn.data_received(b"a" * 1024)
    assert t.closed
    assert status_of(bytes(t.out)) == 431


# -- proxying -----------------------------------------------------------------------------------


def test_request_is_forwarded_with_hop_by_hop_removed_and_forwarding_set(gw: Gateway) -> None:
    up, ut = gw.upstream()
    conn, t = gw.client()
    conn.data_received(
        b"GET /x?q=1 HTTP/1.1\r\nHost: app.localhost:62893\r\nConnection: keep-alive, X-Hop\r\n"
        b"X-Hop: 1\r\nKeep-Alive: timeout=5\r\nTE: trailers\r\nProxy-Authorization: Basic x\r\n"
        b"X-Forwarded-For: 6.6.6.6\r\nAccept: text/plain\r\n\r\n"
    )
    sent = ut.take()
    assert sent.startswith(b"GET /x?q=1 HTTP/1.1\r\nHost: app.localhost:62893\r\n")
    lower = sent.lower()
    for hop in (b"x-hop", b"keep-alive", b"\r\nte:", b"proxy-authorization", b"connection:"):
        assert hop not in lower
    # The peer is on loopback: its X-Forwarded-For is kept and extended.
    assert b"x-forwarded-for: 6.6.6.6, 127.0.0.1\r\n" in sent
    assert b"x-forwarded-proto: http\r\n" in sent
    assert b'forwarded: for=127.0.0.1;host="app.localhost:62893";proto=http\r\n' in sent
    assert b"via: " + gw.server.via in sent
    up.data_received(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nKeep-Alive: timeout=5\r\n\r\nok")
    out = t.take()
    assert out.startswith(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n")
    assert b"keep-alive" not in out.lower()
    assert out.endswith(b"\r\n\r\nok")
    assert not t.closed
    assert gw.server.pool.take("127.0.0.1:3000") is up  # back in the pool for the next request
    rec = gw.records[-1]
    assert (rec.status, rec.route, rec.reason, rec.external) == (200, "app.localhost", None, False)


def test_the_access_record_is_whole_and_immutable(gw: Gateway) -> None:
    # The proxy builds it with tuple.__new__ (no field-count check): every field must be set.
    up, _ut = gw.upstream()
    conn, _t = gw.client()
    conn.data_received(b"GET /a?b=1 HTTP/1.1\r\nHost: app.localhost\r\n\r\n")
    up.data_received(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    rec = gw.records[-1]
    assert rec == AccessRecord(**rec._asdict())
    assert (rec.client_addr, rec.host, rec.method, rec.path) == (
        "127.0.0.1", "app.localhost", "GET", "/a?b=1",
    )  # fmt: skip
    assert rec.bytes_in == 0
    assert rec.bytes_out > 2
    assert rec.duration_ms >= 0
    with pytest.raises(AttributeError):
        rec.status = 500  # type: ignore[misc]


def test_forwarding_fields_from_an_external_client_are_not_trusted(gw: Gateway) -> None:
    up, ut = gw.upstream()
    conn, _t = gw.client(peer=("192.0.2.9", 5555))
    conn.data_received(
        b"GET / HTTP/1.1\r\nHost: app.localhost\r\nX-Forwarded-For: 127.0.0.1\r\n"
        b"X-Forwarded-Host: admin.localhost\r\n\r\n"
    )
    sent = ut.take()
    assert b"x-forwarded-for: 192.0.2.9\r\n" in sent
    assert b"admin.localhost" not in sent
    up.data_received(b"HTTP/1.1 204 No Content\r\n\r\n")
    assert gw.records[-1].external


def test_pipelined_requests_are_answered_in_order(gw: Gateway) -> None:
    up, ut = gw.upstream()
    conn, t = gw.client()
    conn.data_received(GET.replace(b"/x", b"/1") + GET.replace(b"/x", b"/2"))
    assert ut.take().startswith(b"GET /1 ")
    assert t.paused  # the second request waits
    up.data_received(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\none")
    assert ut.take().startswith(b"GET /2 ")
    up.data_received(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\ntwo")
    out = t.take()
    assert out.index(b"one") < out.index(b"two")
    assert not t.paused
    assert [r.path for r in gw.records] == ["/1", "/2"]


def test_chunked_request_body_is_re_chunked_upstream(gw: Gateway) -> None:
    up, ut = gw.upstream()
    conn, t = gw.client()
    conn.data_received(
        b"POST /u HTTP/1.1\r\nHost: app.localhost\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5\r\nhello\r\n"
    )
    conn.data_received(b"6\r\n world\r\n0\r\n\r\n")
    sent = ut.take()
    assert b"transfer-encoding: chunked\r\n" in sent
    assert sent.endswith(b"\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")
    up.data_received(b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n")
    assert status_of(t.take()) == 201
    assert gw.records[-1].bytes_in == 11


def test_close_delimited_response_is_chunked_for_http11_clients(gw: Gateway) -> None:
    up, _ut = gw.upstream()
    conn, t = gw.client()
    conn.data_received(GET)
    up.data_received(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nsome ")
    up.data_received(b"body")
    up.connection_lost(None)  # the end of the body is the close
    out = t.take()
    assert b"transfer-encoding: chunked\r\n" in out
    assert out.endswith(b"5\r\nsome \r\n4\r\nbody\r\n0\r\n\r\n")
    assert not t.closed


def test_upstream_chunked_response_with_sse_pieces_is_written_as_it_comes(gw: Gateway) -> None:
    up, _ut = gw.upstream()
    conn, t = gw.client()
    conn.data_received(GET)
    up.data_received(
        b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    up.data_received(b"b\r\ndata: one\n\n\r\n")
    assert t.take().endswith(b"b\r\ndata: one\n\n\r\n")  # flushed before the stream ends
    up.data_received(b"b\r\ndata: two\n\n\r\n0\r\n\r\n")
    assert t.take() == b"b\r\ndata: two\n\n\r\n0\r\n\r\n"


def test_head_response_with_content_length_has_no_body(gw: Gateway) -> None:
    up, ut = gw.upstream()
    conn, t = gw.client()
    conn.data_received(b"HEAD / HTTP/1.1\r\nHost: app.localhost\r\n\r\n")
    up.data_received(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n")
    assert b"Content-Length: 1000\r\n" in t.take()
    assert gw.records[-1].status == 200
    conn.data_received(GET)  # the same upstream serves the next request with a fresh parser
    assert ut.take().count(b"HTTP/1.1") == 2
    up.data_received(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    assert t.take().endswith(b"ok")


def test_upstream_dies_mid_response_closes_the_client(gw: Gateway) -> None:
    up, _ut = gw.upstream()
    conn, t = gw.client()
    conn.data_received(GET)
    up.data_received(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial")
    up.connection_lost(ConnectionResetError())
    assert t.closed
    assert gw.records[-1].reason == "upstream-died"


def test_pooled_connection_closed_under_us_is_retried_for_get(gw: Gateway) -> None:
    up, _ut = gw.upstream()
    conn, _t = gw.client()
    conn.data_received(GET)
    assert conn.task is None
    up.connection_lost(None)  # the service dropped its idle connection as we reused it
    assert conn.task is not None  # a fresh connection is being opened for the retry
    conn.task.cancel()
    gw.loop.run_until_complete(asyncio.sleep(0))


def test_expect_100_continue_is_relayed(gw: Gateway) -> None:
    up, ut = gw.upstream()
    conn, t = gw.client()
    conn.data_received(
        b"PUT /f HTTP/1.1\r\nHost: app.localhost\r\nContent-Length: 4\r\n"
        b"Expect: 100-continue\r\n\r\n"
    )
    assert b"Expect: 100-continue" in ut.take()
    up.data_received(b"HTTP/1.1 100 Continue\r\n\r\n")
    assert t.take() == b"HTTP/1.1 100 Continue\r\n\r\n"
    conn.data_received(b"data")
    assert ut.take() == b"data"
    up.data_received(b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n")
    assert status_of(t.take()) == 201


def test_upgrade_becomes_a_byte_tunnel(gw: Gateway) -> None:
    up, ut = gw.upstream()
    conn, t = gw.client()
    conn.data_received(
        b"GET /ws HTTP/1.1\r\nHost: app.localhost\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
        b"Sec-WebSocket-Key: x\r\n\r\nEARLY"
    )
    assert b"connection: upgrade\r\nupgrade: websocket\r\n" in ut.take()
    up.data_received(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\nHI"
    )
    out = t.take()
    assert out.startswith(b"HTTP/1.1 101 Switching Protocols\r\n")
    assert b"Connection: Upgrade\r\n" in out
    assert out.endswith(b"\r\n\r\nHI")
    assert ut.take() == b"EARLY"
    conn.data_received(b"\x81\x02hi")
    assert ut.take() == b"\x81\x02hi"
    up.data_received(b"\x81\x02yo")
    assert t.take() == b"\x81\x02yo"
    up.connection_lost(None)
    assert t.closed
    assert gw.records[-1].status == 101


def _tunnel(gw: Gateway) -> tuple[ClientConnection, FakeTransport, Upstream, FakeTransport]:
    up, ut = gw.upstream()
    conn, t = gw.client()
    conn.data_received(
        b"GET /ws HTTP/1.1\r\nHost: app.localhost\r\nConnection: Upgrade\r\nUpgrade: raw\r\n\r\n"
    )
    up.data_received(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: raw\r\nConnection: Upgrade\r\n\r\n"
    )
    t.take()
    ut.take()
    return conn, t, up, ut


def test_client_fin_in_a_tunnel_is_passed_on_and_the_service_still_answers(gw: Gateway) -> None:
    conn, t, up, ut = _tunnel(gw)
    assert conn.eof_received() is True  # keep our side open: the service may still send
    assert ut.eof  # the half-close reached the service
    assert conn.eof_received() is True  # a second EOF callback (reading resumed) is harmless
    assert not t.closed
    assert not ut.closed
    up.data_received(b"last words")
    assert t.take() == b"last words"
    assert up.eof_received() is True
    assert t.closed  # both directions ended: the tunnel is done
    assert ut.closed
    assert gw.records[-1].status == 101


def test_service_fin_in_a_tunnel_is_passed_on_and_the_client_still_sends(gw: Gateway) -> None:
    conn, t, up, ut = _tunnel(gw)
    up.data_received(b"bye")
    assert up.eof_received() is True
    assert t.take() == b"bye"
    assert t.eof
    assert not t.closed
    conn.data_received(b"late")
    assert ut.take() == b"late"
    assert conn.eof_received() is True
    assert t.closed
    assert ut.closed


def test_fin_outside_a_tunnel_closes(gw: Gateway) -> None:
    conn, _t = gw.client()
    assert not conn.eof_received()


# -- answers of our own ---------------------------------------------------------------------------


def test_unknown_host_gets_404_listing_routes(gw: Gateway) -> None:
    conn, t = gw.client()
    conn.data_received(b"GET / HTTP/1.1\r\nHost: nope.localhost:62893\r\nAccept: text/html\r\n\r\n")
    out = t.take()
    assert status_of(out) == 404
    assert b'<a href="http://app.localhost:62893/">app.localhost</a>' in out
    assert not t.closed  # keep-alive survives our own answers
    assert gw.records[-1].reason == "unknown-host"


def test_foreign_host_is_refused(gw: Gateway) -> None:
    _up, ut = gw.upstream()
    conn, t = gw.client()
    conn.data_received(b"GET / HTTP/1.1\r\nHost: attacker.example\r\n\r\n")
    assert status_of(t.take()) == 403
    assert ut.out == b""
    assert gw.records[-1].reason == "foreign-host"


def test_a_route_back_into_the_gateway_is_508(gw: Gateway) -> None:
    conn, t = gw.client()
    conn.data_received(b"GET / HTTP/1.1\r\nHost: loop.localhost\r\n\r\n")
    assert status_of(t.take()) == 508


def test_a_request_that_passed_here_too_often_is_508(gw: Gateway) -> None:
    gw.upstream()
    conn, t = gw.client()
    via = b", ".join([gw.server.via] * 4)
    conn.data_received(b"GET / HTTP/1.1\r\nHost: app.localhost\r\nVia: " + via + b"\r\n\r\n")
    assert status_of(t.take()) == 508
    assert gw.records[-1].reason == "loop"


def test_token_route(gw: Gateway) -> None:
    _up, ut = gw.upstream()
    conn, t = gw.client()
    conn.data_received(b"GET /a HTTP/1.1\r\nHost: secret.localhost\r\n\r\n")
    assert status_of(t.take()) == 401
    assert ut.out == b""
    conn.data_received(b"GET /a?homeport_token=tok HTTP/1.1\r\nHost: secret.localhost\r\n\r\n")
    out = t.take()
    assert status_of(out) == 303
    assert b"location: /a\r\n" in out
    assert b"HttpOnly; SameSite=Strict" in out
    assert "tok" not in gw.records[-1].path  # the token never lands in the access log
    conn.data_received(
        b"GET /a HTTP/1.1\r\nHost: secret.localhost\r\nAuthorization: Bearer tok\r\n\r\n"
    )
    sent = ut.take()
    assert sent.startswith(b"GET /a HTTP/1.1")
    assert b"Authorization" not in sent  # homeport's credential is not the app's business


def test_same_origin_route_refuses_cross_site_post(gw: Gateway) -> None:
    _up, ut = gw.upstream()
    conn, t = gw.client()
    conn.data_received(
        b"POST /x HTTP/1.1\r\nHost: strict.localhost\r\nOrigin: http://evil.example\r\n"
        b"Content-Length: 2\r\n\r\nhi"
    )
    assert status_of(t.take()) == 403
    assert not t.closed  # its small body was read and thrown away: the connection goes on
    assert ut.out == b""
    conn.data_received(GET)
    assert ut.take().startswith(b"GET /x HTTP/1.1\r\n")


POST_NOPE = b"POST /f HTTP/1.1\r\nHost: nope.localhost\r\n"


def test_our_answer_to_a_request_with_a_body_keeps_the_connection(gw: Gateway) -> None:
    # RFC 9112 §9.3: the body is read and discarded, then the next request is served.
    up, ut = gw.upstream()
    conn, t = gw.client()
    conn.data_received(POST_NOPE + b"Content-Length: 10\r\n\r\n01234")
    assert status_of(t.take()) == 404
    assert not t.closed
    conn.data_received(b"56789" + GET)  # the rest of the body, then the next request
    assert ut.take().startswith(b"GET /x HTTP/1.1\r\n")
    assert b"56789" not in t.out
    up.data_received(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    assert status_of(t.take()) == 200
    assert not t.closed
    assert [(r.status, r.bytes_in) for r in gw.records] == [(404, 10), (200, 0)]


def test_a_chunked_body_after_our_answer_is_discarded_too(gw: Gateway) -> None:
    conn, t = gw.client()
    conn.data_received(POST_NOPE + b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
    assert status_of(t.take()) == 404
    conn.data_received(b"0\r\n\r\n" + GET.replace(b"app.", b"nope."))
    assert status_of(t.take()) == 404
    assert not t.closed


def test_a_body_over_the_discard_bound_closes_the_connection() -> None:
    for gw in make_gateway(ProxyConfig(max_discard_body=1024)):
        conn, t = gw.client()
        conn.data_received(POST_NOPE + b"Content-Length: 2048\r\n\r\n")
        assert status_of(t.take()) == 404
        assert t.closed  # known too large from the head: not read at all
        conn, t = gw.client()
        conn.data_received(POST_NOPE + b"Transfer-Encoding: chunked\r\n\r\n")
        assert status_of(t.take()) == 404
        for _ in range(4):
            if t.closed:
                break
            conn.data_received(b"200\r\n" + b"x" * 512 + b"\r\n")
        assert t.closed  # chunked: closed once the bound was passed


def test_expect_100_continue_with_our_answer_closes(gw: Gateway) -> None:
    conn, t = gw.client()
    conn.data_received(POST_NOPE + b"Content-Length: 4\r\nExpect: 100-continue\r\n\r\n")
    assert status_of(t.take()) == 404
    assert t.closed  # the client may never send the body it was waiting to be asked for


def test_a_stalled_body_after_our_answer_is_dropped_in_time(gw: Gateway) -> None:
    conn, t = gw.client()
    conn.data_received(POST_NOPE + b"Content-Length: 10\r\n\r\n01")
    assert status_of(t.take()) == 404
    assert not t.closed
    assert conn.deadline > 0
    conn.expire(conn.deadline + 1)
    assert t.closed
    assert gw.records[-1].status == 404


def test_header_timeout_drops_a_slow_client(gw: Gateway) -> None:
    conn, t = gw.client()
    conn.data_received(b"GET / HTTP/1.1\r\nHost: app.lo")
    assert conn.deadline > 0
    conn.expire(conn.deadline + 1)
    assert status_of(t.take()) == 408
    assert t.closed


def test_idle_keepalive_connection_is_closed_quietly(gw: Gateway) -> None:
    conn, t = gw.client()
    conn.expire(conn.deadline + 1)
    assert t.out == b""
    assert t.closed


def test_control_requests_go_to_the_control_app() -> None:
    seen: list[ControlRequest] = []

    class App:
        async def handle(self, request: ControlRequest) -> ControlResponse:
            seen.append(request)
            return ControlResponse(200, [("content-type", "application/json")], b'{"ok":1}')

    for gw in make_gateway(control=App()):
        conn, t = gw.client()
        conn.data_received(
            b"POST /api/routes?x=1 HTTP/1.1\r\nHost: homeport.localhost:62893\r\n"
            b"Content-Length: 2\r\n\r\n{}"
        )
        assert conn.task is not None
        gw.loop.run_until_complete(conn.task)
        assert seen[0].path == "/api/routes"
        assert seen[0].query == "x=1"
        assert seen[0].body == b"{}"
        assert seen[0].header("Host") == "homeport.localhost:62893"
        out = t.take()
        assert out.startswith(b"HTTP/1.1 200 OK\r\n")
        assert out.endswith(b'\r\n\r\n{"ok":1}')
        assert gw.records[-1].reason == "control"


def test_login_codes_never_reach_the_access_log() -> None:
    class App:
        async def handle(self, request: ControlRequest) -> ControlResponse:
            return ControlResponse(303, [("location", "/")], b"")

    for gw in make_gateway(control=App()):
        conn, t = gw.client()
        conn.data_received(
            b"GET /login?token=secretcode HTTP/1.1\r\nHost: homeport.localhost:62893\r\n\r\n"
        )
        assert conn.task is not None
        gw.loop.run_until_complete(conn.task)
        assert t.take().startswith(b"HTTP/1.1 303")
        assert gw.records[-1].path == "/login"


def test_streamed_control_response_is_chunked() -> None:
    class App:
        async def handle(self, request: ControlRequest) -> ControlResponse:
            async def events() -> Any:
                yield b"data: 1\n\n"
                yield b"data: 2\n\n"

            return ControlResponse(200, [("content-type", "text/event-stream")], stream=events())

    for gw in make_gateway(control=App()):
        conn, t = gw.client()
        conn.data_received(b"GET /api/events HTTP/1.1\r\nHost: 127.0.0.1:62893\r\n\r\n")
        assert conn.task is not None
        gw.loop.run_until_complete(conn.task)
        out = t.take()
        assert b"transfer-encoding: chunked\r\n" in out
        assert out.endswith(b"9\r\ndata: 1\n\n\r\n9\r\ndata: 2\n\n\r\n0\r\n\r\n")


def test_control_body_limit_and_100_continue() -> None:
    class App:
        async def handle(self, request: ControlRequest) -> ControlResponse:
            return ControlResponse(204)

    for gw in make_gateway(ProxyConfig(max_control_body=2048), control=App()):
        conn, t = gw.client()
        conn.data_received(
            b"POST /api HTTP/1.1\r\nHost: homeport.localhost\r\nContent-Length: 10\r\n"
            b"Expect: 100-continue\r\n\r\n"
        )
        assert t.take() == b"HTTP/1.1 100 Continue\r\n\r\n"
        conn.data_received(b"0123456789")
        assert conn.task is not None
        gw.loop.run_until_complete(conn.task)
        assert status_of(t.take()) == 204
        conn.data_received(
            b"POST /api HTTP/1.1\r\nHost: homeport.localhost\r\nContent-Length: 4096\r\n\r\n"
            + b"x" * 4096
        )
        assert status_of(t.take()) == 413
        assert t.closed


def test_http10_keep_alive_client_is_told_the_connection_persists(gw: Gateway) -> None:
    up, _ut = gw.upstream()
    conn, t = gw.client()
    conn.data_received(b"GET / HTTP/1.0\r\nHost: app.localhost\r\nConnection: keep-alive\r\n\r\n")
    up.data_received(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    out = t.take()
    assert out.startswith(b"HTTP/1.0 200 OK\r\n")
    assert b"connection: keep-alive\r\n" in out
    conn.data_received(b"GET / HTTP/1.0\r\nHost: nope.localhost\r\nConnection: keep-alive\r\n\r\n")
    assert b"connection: keep-alive\r\n" in t.take()
    assert not t.closed
    conn.data_received(b"GET / HTTP/1.0\r\nHost: app.localhost\r\n\r\n")  # no keep-alive asked
    up.data_received(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    assert b"connection: close\r\n" in t.take()
    assert t.closed


def test_an_endless_response_head_from_a_service_is_a_502(gw: Gateway) -> None:
    up, ut = gw.upstream()
    conn, t = gw.client()
    conn.data_received(GET)
    up.data_received(b"HTTP/1.1 200 OK\r\nX-Endless: ")
    for _ in range(2000):  # 1 KiB at a time, never ending the field
        if ut.closed:
            break
        up.data_received(b"a" * 1024)
    assert ut.closed
    assert status_of(t.take()) == 502
    assert gw.records[-1].status == 502
