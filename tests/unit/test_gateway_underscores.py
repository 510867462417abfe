"""Request field names with ``_`` are not forwarded unless the route opts in (issue 9).

CGI-style servers map ``_`` and ``-`` to one variable, so ``Transfer_Encoding: chunked`` next
to a Content-Length, or ``X_Forwarded_For`` next to the gateway's own X-Forwarded-For, would
reach them as framing or as a forged client address. Raw bytes go into a ``ClientConnection``
on a fake transport; what the service would receive is read off the upstream's transport.
Each request is fed whole in one read (the fast path's shape) and split after its first byte
(the field-by-field path): both must drop the same fields."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from homeport.gateway import http1
from homeport.gateway.contract import Route

from .gateway_fakes import FakeGateway

RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


class _Gateway(FakeGateway):
    def __init__(self) -> None:
        super().__init__(
            (
                Route("app.localhost", "http://127.0.0.1:3000"),
                Route("cgi.localhost", "http://127.0.0.1:3000", allow_underscores=True),
                Route("locked.localhost", "http://127.0.0.1:3000", auth="token", secret="tok"),
            )
        )

    def forwarded(self, request: bytes, *, split: bool) -> bytes:
        """The head the service receives for ``request`` (b"" when none was sent)."""
        up, ut = self.upstream()
        conn, ct = self.client()
        if split:
            conn.data_received(request[:1])
            conn.data_received(request[1:])
        else:
            conn.data_received(request)
        sent = ut.take()
        if sent:
            up.data_received(RESPONSE)
            assert ct.take().endswith(b"\r\n\r\nok")
        self.server.pool.close()
        return sent


@pytest.fixture
def gw() -> Iterator[_Gateway]:
    g = _Gateway()
    try:
        yield g
    finally:
        g.server.pool.close()
        g.loop.close()


def _names(head: bytes) -> list[bytes]:
    return [line.partition(b":")[0].lower() for line in head.split(b"\r\n")[1:] if line]


def _get(host: bytes, *fields: bytes) -> bytes:
    return b"GET /x HTTP/1.1\r\nHost: " + host + b"\r\n" + b"".join(f + b"\r\n" for f in fields)


SMUGGLED = (b"X_Forwarded_For: 6.6.6.6", b"Transfer_Encoding: chunked", b"x_a: 1")


@pytest.mark.parametrize("split", [False, True], ids=["one-read", "split"])
def test_underscored_names_are_dropped_by_default(gw: _Gateway, split: bool) -> None:
    request = _get(b"app.localhost", b"X-Keep: a_b", *SMUGGLED, b"Cookie: _ga=1") + b"\r\n"
    sent = gw.forwarded(request, split=split)
    names = _names(sent)
    assert b"x_forwarded_for" not in names
    assert b"transfer_encoding" not in names
    assert b"x_a" not in names
    assert b"6.6.6.6" not in sent
    # Underscores in values are nothing to CGI: those fields go as they came.
    assert b"\r\nX-Keep: a_b\r\n" in sent
    assert b"\r\nCookie: _ga=1\r\n" in sent
    assert b"\r\nx-forwarded-for: 127.0.0.1\r\n" in sent  # the gateway's own, alone


@pytest.mark.parametrize("split", [False, True], ids=["one-read", "split"])
def test_a_route_that_allows_underscores_gets_them(gw: _Gateway, split: bool) -> None:
    sent = gw.forwarded(_get(b"cgi.localhost", *SMUGGLED) + b"\r\n", split=split)
    for field_line in SMUGGLED:
        assert b"\r\n" + field_line + b"\r\n" in sent


def test_dropped_with_a_body_and_on_auth_routes(gw: _Gateway) -> None:
    post = (
        b"POST /p HTTP/1.1\r\nHost: app.localhost\r\nContent-Length: 2\r\n"
        b"Transfer_Encoding: chunked\r\n\r\nhi"
    )
    sent = gw.forwarded(post, split=False)
    assert b"transfer_encoding" not in sent.lower()
    assert b"content-length: 2\r\n" in sent.lower()
    assert sent.endswith(b"\r\n\r\nhi")
    locked = _get(b"locked.localhost", b"Authorization: Bearer tok", b"X_Real_IP: 6.6.6.6")
    sent = gw.forwarded(locked + b"\r\n", split=False)
    assert sent.startswith(b"GET /x ")
    assert b"6.6.6.6" not in sent


def test_dropped_on_a_websocket_upgrade(gw: _Gateway) -> None:
    upgrade = _get(
        b"app.localhost",
        b"Connection: Upgrade",
        b"Upgrade: websocket",
        b"X_Forwarded_For: 6.6.6.6",
    )
    sent = gw.forwarded(upgrade + b"\r\n", split=False)
    assert sent.startswith(b"GET /x ")
    assert b"6.6.6.6" not in sent


def test_the_fast_path_leaves_underscored_names_to_the_field_path() -> None:
    assert http1.whole_head(_get(b"a", b"X_A: 1") + b"\r\n", 65536) is None
    assert http1.whole_head(_get(b"a", b"_: 1") + b"\r\n", 65536) is None
    # An underscore in a value, or in the target, keeps the fast path.
    plain = http1.whole_head(_get(b"a", b"Cookie: _ga=1; a_b=2") + b"\r\n", 65536)
    assert plain is not None
    assert http1.whole_head(b"GET /a_b HTTP/1.1\r\nHost: a\r\n\r\n", 65536) is not None


def test_parse_head_marks_underscored_names() -> None:
    head = http1.parse_head(b"GET", b"/", "1.1", [(b"Host", b"a"), (b"X_A", b"1")], True, False)
    assert head.underscored
    kept = http1.upstream_head(head, client_ip="127.0.0.1", trusted=True, via=b"v")
    assert b"X_A" not in kept
    allowed = http1.upstream_head(
        head, client_ip="127.0.0.1", trusted=True, via=b"v", underscores=True
    )
    assert b"\r\nX_A: 1\r\n" in allowed
    clean = http1.parse_head(b"GET", b"/", "1.1", [(b"Host", b"a"), (b"X-A", b"_")], True, False)
    assert not clean.underscored
