"""Pure HTTP/1.1 framing: request-head validation, the head sent upstream, the head sent back."""

from __future__ import annotations

import pytest

from homeport.gateway import http1
from homeport.gateway.http1 import (
    ProtocolError,
    parse_head,
    response_head,
    split_host,
    upstream_head,
)

VIA = b"1.1 homeport-test"


def head(
    headers: list[tuple[bytes, bytes]],
    *,
    url: bytes = b"/",
    method: bytes = b"GET",
    version: str = "1.1",
    upgrade: bool = False,
) -> http1.RequestHead:
    return parse_head(method, url, version, headers, True, upgrade)


def test_exactly_one_host_is_required() -> None:
    with pytest.raises(ProtocolError) as missing:
        head([(b"Accept", b"*/*")])
    assert missing.value.status == 400
    with pytest.raises(ProtocolError):
        head([(b"Host", b"a.localhost"), (b"Host", b"b.localhost")])


def test_transfer_encoding_in_http10_is_refused() -> None:
    # RFC 9112 §6.1: llhttp accepts it, the proxy must not.
    with pytest.raises(ProtocolError) as err:
        head([(b"Host", b"a"), (b"Transfer-Encoding", b"chunked")], version="1.0", method=b"POST")
    assert err.value.status == 400


def test_connect_and_bad_targets() -> None:
    with pytest.raises(ProtocolError) as err:
        head([(b"Host", b"a")], method=b"CONNECT", url=b"a:443")
    assert err.value.status == 405
    with pytest.raises(ProtocolError):
        head([(b"Host", b"a")], url=b"a/b")
    assert head([(b"Host", b"a")], method=b"OPTIONS", url=b"*").target == b"*"


def test_absolute_form_authority_replaces_host() -> None:
    h = head([(b"Host", b"ignored")], url=b"http://app.localhost:8080/x?y=1")
    assert (h.host, h.target) == (b"app.localhost:8080", b"/x?y=1")
    assert (b"Host", b"app.localhost:8080") in h.headers


def test_upstream_head_drops_hop_by_hop_and_connection_listed_fields() -> None:
    h = head(
        [
            (b"Host", b"app.localhost"),
            (b"Connection", b"keep-alive, X-Secret"),
            (b"Keep-Alive", b"timeout=5"),
            (b"TE", b"trailers"),
            (b"X-Secret", b"s"),
            (b"Proxy-Authorization", b"Basic x"),
            (b"Accept", b"*/*"),
        ]
    )
    out = upstream_head(h, client_ip="127.0.0.1", trusted=True, via=VIA)
    lines = out.split(b"\r\n")
    assert lines[0] == b"GET / HTTP/1.1"
    names = {line.split(b":")[0].lower() for line in lines[1:] if line}
    assert names.isdisjoint(
        {b"connection", b"keep-alive", b"te", b"x-secret", b"proxy-authorization"}
    )
    assert b"Accept: */*" in lines
    assert out.endswith(b"\r\n\r\n")


def test_forwarding_fields_from_an_untrusted_peer_are_replaced() -> None:
    h = head(
        [
            (b"Host", b"app.localhost"),
            (b"X-Forwarded-For", b"6.6.6.6"),
            (b"Forwarded", b"for=6.6.6.6"),
            (b"X-Forwarded-Host", b"evil"),
        ]
    )
    out = upstream_head(h, client_ip="192.0.2.7", trusted=False, via=VIA)
    assert b"x-forwarded-for: 192.0.2.7\r\n" in out
    assert b"6.6.6.6" not in out
    assert b"evil" not in out
    assert b"forwarded: for=192.0.2.7;host=app.localhost;proto=http\r\n" in out
    assert b"x-forwarded-host: app.localhost\r\n" in out


def test_forwarding_fields_from_loopback_are_appended() -> None:
    h = head(
        [
            (b"Host", b"app.localhost:62893"),
            (b"X-Forwarded-For", b"10.0.0.1"),
            (b"Via", b"1.1 other"),
        ]
    )
    out = upstream_head(h, client_ip="::1", trusted=True, via=VIA)
    assert b"x-forwarded-for: 10.0.0.1, ::1\r\n" in out
    assert b'forwarded: for="[::1]";host="app.localhost:62893";proto=http\r\n' in out
    assert b"via: 1.1 other, 1.1 homeport-test\r\n" in out


def test_chunked_and_upgrade_are_re_declared_upstream() -> None:
    h = head([(b"Host", b"a"), (b"Transfer-Encoding", b"chunked")], method=b"POST")
    assert b"transfer-encoding: chunked\r\n" in upstream_head(
        h, client_ip="127.0.0.1", trusted=True, via=VIA
    )
    ws = head(
        [(b"Host", b"a"), (b"Connection", b"Upgrade"), (b"Upgrade", b"websocket")], upgrade=True
    )
    out = upstream_head(ws, client_ip="127.0.0.1", trusted=True, via=VIA)
    assert b"connection: upgrade\r\nupgrade: websocket\r\n" in out


def test_response_head_strips_hop_by_hop_and_sets_framing() -> None:
    out = response_head(
        200,
        b"OK",
        [
            (b"Content-Type", b"text/plain"),
            (b"Connection", b"close, X-Hop"),
            (b"X-Hop", b"1"),
            (b"Transfer-Encoding", b"chunked"),
            (b"Keep-Alive", b"timeout=5"),
        ],
        version=b"1.1",
        keep_alive=True,
        chunked=True,
        via=VIA,
    )
    assert out == (
        b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
        b"transfer-encoding: chunked\r\nvia: 1.1 homeport-test\r\n\r\n"
    )
    closing = response_head(204, b"", [], version=b"1.0", keep_alive=False, chunked=False, via=VIA)
    assert closing.startswith(b"HTTP/1.0 204 No Content\r\n")
    assert b"connection: close\r\n" in closing


def test_simple_response_and_chunk() -> None:
    out = http1.simple_response(404, b"nope", close=True)
    assert out.startswith(b"HTTP/1.1 404 Not Found\r\n")
    assert b"content-length: 4\r\n" in out
    assert b"connection: close\r\n" in out
    assert out.endswith(b"\r\n\r\nnope")
    assert http1.simple_response(200, b"body", head_only=True).endswith(b"\r\n\r\n")
    assert b"".join(http1.chunk(b"x" * 26)) == b"1a\r\n" + b"x" * 26 + b"\r\n"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("App.Localhost:8080", ("app.localhost", 8080)),
        ("app.localhost.", ("app.localhost", None)),
        ("[::1]:62893", ("::1", 62893)),
        ("127.0.0.1", ("127.0.0.1", None)),
    ],
)
def test_split_host(value: str, expected: tuple[str, int | None]) -> None:
    assert split_host(value) == expected


@pytest.mark.parametrize("value", ["", ":80", "a:b", "a:0", "a:70000", "[::1", "[::1]x", "a:1:2"])
def test_split_host_rejects(value: str) -> None:
    with pytest.raises(ValueError, match="not a host"):
        split_host(value)
