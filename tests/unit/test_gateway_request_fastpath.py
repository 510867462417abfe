"""The request fast path: a request that is one plain head in one read is validated by llhttp
without per-field callbacks and forwarded from slices of the read (``http1.whole_head``).

Every request below goes through a ``ClientConnection`` twice: whole in one read (the fast
path) and split after its first byte (the field-by-field path). Both must give the service
the same head (up to whitespace around field values, RFC 9110 §5.5), the client the same
answer, and the access log the same record. What must never take the fast path, and what
llhttp must still refuse on it, are checked too."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from homeport.gateway import http1
from homeport.gateway.contract import Route

from .gateway_fakes import FakeGateway

RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok"


class _Gateway(FakeGateway):
    def __init__(self) -> None:
        super().__init__(
            (
                Route("app.localhost", "http://127.0.0.1:3000"),
                Route("secret.localhost", "http://127.0.0.1:3000", auth="token", secret="tok"),
            )
        )


@pytest.fixture
def gw() -> Iterator[_Gateway]:
    g = _Gateway()
    try:
        yield g
    finally:
        g.server.pool.close()
        g.loop.close()


REQUESTS = {
    "wrk": b"GET /small HTTP/1.1\r\nHost: app.localhost\r\nUser-Agent: wrk\r\nAccept: */*\r\n\r\n",
    "curl": b"GET /a/b?c=d&e=%20f HTTP/1.1\r\nHost: app.localhost:62893\r\n"
    b"User-Agent: curl/7.88.1\r\nAccept: */*\r\n\r\n",
    "browser": b"GET /p HTTP/1.1\r\nHost: App.Localhost\r\nConnection: keep-alive\r\n"
    b"Accept: text/html\r\nCookie: a=b; c=d\r\nSec-Fetch-Site: none\r\nAccept-Language: en\r\n\r\n",
    "connection-close": b"GET / HTTP/1.1\r\nHost: app.localhost\r\nConnection: close\r\n\r\n",
    "connection-close-first": b"GET / HTTP/1.1\r\nCONNECTION:  Close \r\nHost: app.localhost\r\n"
    b"X-A: 1\r\n\r\n",
    "head": b"HEAD /h HTTP/1.1\r\nhost: app.localhost\r\n\r\n",
    "http10": b"GET / HTTP/1.0\r\nHost: app.localhost\r\n\r\n",
    "http10-keep-alive": b"GET / HTTP/1.0\r\nHost: app.localhost\r\nConnection: keep-alive\r\n\r\n",
    "no-space-after-colon": b"GET / HTTP/1.1\r\nHost:app.localhost\r\nX-A:1\r\n\r\n",
    "whitespace-around-values": b"GET / HTTP/1.1\r\nHost: \t app.localhost\r\nX-A:   1  \r\n"
    b"X-Empty:\r\nX-Tab: \tq\t\r\n\r\n",
    "repeated-fields": b"GET / HTTP/1.1\r\nHost: app.localhost\r\nX-A: 1\r\nx-a: 2\r\n"
    b"Accept: a\r\nAccept: b\r\n\r\n",
    "host-trailing-space": b"GET / HTTP/1.1\r\nHost: app.localhost \r\n\r\n",
    "obs-text": b"GET / HTTP/1.1\r\nHost: app.localhost\r\nX-Latin: caf\xe9\r\n\r\n",
    "near-miss-names": b"GET / HTTP/1.1\r\nHost: app.localhost\r\nHost-Name: x\r\nX-Host: y\r\n"
    b"Test: 1\r\nVia-Foo: 2\r\nContent-Lengthy: 3\r\nX-Note: Connection: close\r\n\r\n",
    "host-last": b"OPTIONS /o HTTP/1.1\r\nOrigin: http://app.localhost\r\n"
    b"Host: app.localhost\r\n\r\n",
    "delete": b"DELETE /d HTTP/1.1\r\nHost: app.localhost\r\n\r\n",
    "token-in-query": b"GET /x?homeport_token=abc HTTP/1.1\r\nHost: app.localhost\r\n\r\n",
    "unknown-host": b"GET / HTTP/1.1\r\nHost: nope.localhost\r\nAccept: text/html\r\n\r\n",
    "foreign-host": b"GET / HTTP/1.1\r\nHost: evil.example\r\n\r\n",
    "bad-host": b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n",
    "empty-host": b"GET / HTTP/1.1\r\nHost:\r\n\r\n",
    "token-route": b"GET /t HTTP/1.1\r\nHost: secret.localhost\r\nAuthorization: Bearer tok\r\n"
    b"Cookie: a=1\r\n\r\n",
    "token-route-refused": b"GET /t HTTP/1.1\r\nHost: secret.localhost\r\n"
    b"Accept: text/html\r\n\r\n",
}


def _normal(head: bytes) -> tuple[bytes, list[tuple[bytes, bytes]]]:
    line, _, fields = head.partition(b"\r\n")
    pairs = []
    for field_line in fields.split(b"\r\n"):
        if field_line:
            name, _, value = field_line.partition(b":")
            pairs.append((name.lower(), value.strip(b" \t")))
    return line, pairs


def _run(gw: _Gateway, request: bytes, *, split: bool) -> tuple[Any, ...]:
    up, ut = gw.upstream()
    conn, ct = gw.client()
    if split:
        conn.data_received(request[:1])
        conn.data_received(request[1:])
    else:
        conn.data_received(request)
    assert (conn.parser is None) is not split  # the path under test is the one taken
    sent = ut.take()
    if sent:
        up.data_received(RESPONSE)
    answer = ct.take().replace(gw.server.via, b"VIA")
    rec = gw.records[-1]._replace(time=0.0, duration_ms=0.0, client_port=0)
    gw.server.pool.close()
    return _normal(sent.replace(gw.server.via, b"VIA")), answer, ct.closed, rec


@pytest.mark.parametrize("name", sorted(REQUESTS))
def test_fast_and_general_paths_agree(gw: _Gateway, name: str) -> None:
    request = REQUESTS[name]
    assert http1.whole_head(request, 65536) is not None  # it is a fast-path request
    assert _run(gw, request, split=False) == _run(gw, request, split=True)


def test_what_is_forwarded_on_the_fast_path(gw: _Gateway) -> None:
    _up, ut = gw.upstream()
    conn, _ct = gw.client()
    conn.data_received(REQUESTS["connection-close-first"])
    assert ut.take() == (
        b"GET / HTTP/1.1\r\nHost: app.localhost\r\nX-A: 1\r\n"
        b"x-forwarded-for: 127.0.0.1\r\nx-forwarded-proto: http\r\n"
        b"x-forwarded-host: app.localhost\r\nforwarded: for=127.0.0.1;host=app.localhost;proto=http"
        b"\r\nvia: " + gw.server.via + b"\r\n\r\n"
    )
    assert conn.parser is None


GET = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"
NOT_WHOLE = {
    "pipelined": GET + GET,
    "body-in-the-read": b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nok",
    "body-to-come": b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\n",
    "zero-length": b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n",
    "chunked": b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n",
    "partial": b"GET / HTTP/1.1\r\nHost: a\r\n",
    "extra-crlf": GET + b"\r\n",
    "leading-crlf": b"\r\n" + GET,
    "two-hosts": b"GET / HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n",
    "no-host": b"GET / HTTP/1.1\r\nX-A: 1\r\n\r\n",
    "no-fields": b"GET / HTTP/1.1\r\n\r\n",
    "connection-listing-a-field": b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close, X-A\r\n\r\n",
    "connection-upgrade": b"GET / HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\n"
    b"Upgrade: websocket\r\n\r\n",
    "two-connections": b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n"
    b"Connection: close\r\n\r\n",
    "keep-alive-field": b"GET / HTTP/1.1\r\nHost: a\r\nKeep-Alive: timeout=5\r\n\r\n",
    "te": b"GET / HTTP/1.1\r\nHost: a\r\nTE: trailers\r\n\r\n",
    "proxy-authorization": b"GET / HTTP/1.1\r\nHost: a\r\nProxy-Authorization: Basic x\r\n\r\n",
    "x-forwarded-for": b"GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 6.6.6.6\r\n\r\n",
    "x-forwarded-host": b"GET / HTTP/1.1\r\nHost: a\r\nx-forwarded-host: b\r\n\r\n",
    "forwarded": b"GET / HTTP/1.1\r\nHost: a\r\nForwarded: for=1.2.3.4\r\n\r\n",
    "via": b"GET / HTTP/1.1\r\nHost: a\r\nVia: 1.1 x\r\n\r\n",
    "expect": b"GET / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\n\r\n",
    "absolute-form": b"GET http://a/x HTTP/1.1\r\nHost: a\r\n\r\n",
    "asterisk": b"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n",
    "connect": b"CONNECT /x HTTP/1.1\r\nHost: a\r\n\r\n",
    "two-spaces-before-target": b"GET  / HTTP/1.1\r\nHost: a\r\n\r\n",
    "two-spaces-after-target": b"GET /  HTTP/1.1\r\nHost: a\r\n\r\n",
    "http2-version": b"GET / HTTP/2.0\r\nHost: a\r\n\r\n",
    "no-version": b"GET /\r\nHost: a\r\n\r\n",
}


@pytest.mark.parametrize("name", sorted(NOT_WHOLE))
def test_what_never_takes_the_fast_path(name: str) -> None:
    assert http1.whole_head(NOT_WHOLE[name], 65536) is None


def test_a_head_over_the_limit_never_takes_the_fast_path() -> None:
    assert http1.whole_head(GET, len(GET) - 5) is None
    assert http1.whole_head(GET, len(GET) - 4) is not None


# Shaped like fast-path requests, refused by llhttp: the fast parser must refuse them too.
REFUSED = {
    "nul": b"GET / HTTP/1.1\r\nHost: app.localhost\r\nX-A: a\x00b\r\n\r\n",
    "bare-cr": b"GET / HTTP/1.1\r\nHost: app.localhost\r\nX-A: a\rb\r\n\r\n",
    "bare-lf": b"GET / HTTP/1.1\r\nHost: app.localhost\nX-A: 1\r\n\r\n",
    "obs-fold": b"GET / HTTP/1.1\r\nHost: app.localhost\r\nX-A: a\r\n b\r\n\r\n",
    "space-in-name": b"GET / HTTP/1.1\r\nHost: app.localhost\r\nX A: 1\r\n\r\n",
    "empty-name": b"GET / HTTP/1.1\r\nHost: app.localhost\r\n: 1\r\n\r\n",
    "del-in-value": b"GET / HTTP/1.1\r\nHost: app.localhost\r\nX-A: a\x7fb\r\n\r\n",
    "lower-case-method": b"get / HTTP/1.1\r\nHost: app.localhost\r\n\r\n",
    "bad-target-char": b"GET /\x80 HTTP/1.1\r\nHost: app.localhost\r\n\r\n",
    "tab-in-target": b"GET /a\tb HTTP/1.1\r\nHost: app.localhost\r\n\r\n",
}


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_llhttp_still_refuses_on_the_fast_path(gw: _Gateway, name: str) -> None:
    request = REFUSED[name]
    assert http1.whole_head(request, 65536) is not None  # shaped like a fast-path request
    _up, ut = gw.upstream()
    conn, ct = gw.client()
    conn.data_received(request)
    assert ct.take().startswith(b"HTTP/1.1 400 ")
    assert ct.closed
    assert ut.take() == b""  # the service never saw it
    assert gw.records[-1].reason == "bad-request"


def test_paths_alternate_on_one_connection_and_answers_stay_in_order(gw: _Gateway) -> None:
    up, ut = gw.upstream()
    conn, ct = gw.client()

    def answer(body: bytes) -> None:
        up.data_received(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))

    def get(path: bytes) -> bytes:
        return b"GET " + path + b" HTTP/1.1\r\nHost: app.localhost\r\n\r\n"

    conn.data_received(get(b"/1"))  # fast
    assert ut.take().startswith(b"GET /1 ")
    answer(b"one")
    post = b"POST /2 HTTP/1.1\r\nHost: app.localhost\r\nContent-Length: 3\r\n\r\nabc"
    conn.data_received(post + get(b"/3"))  # a body, then a pipelined request: field by field
    assert ut.take().startswith(b"POST /2 ")
    answer(b"two")
    assert ut.take().startswith(b"GET /3 ")  # replayed once /2 was answered
    answer(b"three")
    conn.data_received(get(b"/4"))  # fast again
    assert ut.take().startswith(b"GET /4 ")
    answer(b"four")
    head = get(b"/5")
    conn.data_received(head[:10])  # a head over two reads: field by field
    conn.data_received(head[10:])
    assert ut.take().startswith(b"GET /5 ")
    answer(b"five")
    conn.data_received(get(b"/6"))
    assert ut.take().startswith(b"GET /6 ")
    answer(b"six")
    out = ct.take()
    bodies = [out.find(b) for b in (b"one", b"two", b"three", b"four", b"five", b"six")]
    assert -1 not in bodies
    assert bodies == sorted(bodies)
    assert [r.path for r in gw.records] == ["/1", "/2", "/3", "/4", "/5", "/6"]
    assert not ct.closed


def test_connection_close_on_the_fast_path_closes_after_the_answer(gw: _Gateway) -> None:
    up, ut = gw.upstream()
    conn, ct = gw.client()
    conn.data_received(REQUESTS["connection-close"])
    assert b"connection" not in ut.take().lower()  # hop-by-hop: not forwarded
    up.data_received(RESPONSE)
    out = ct.take()
    assert b"\r\nconnection: close\r\n" in out
    assert out.endswith(b"\r\n\r\nok")
    assert ct.closed
