"""Pure HTTP framing used by the probes."""

from __future__ import annotations

from homeport.audit import httpmsg


def test_build_request_is_exact() -> None:
    req = httpmsg.build_request("GET", "/x", "rebind.homeport.invalid:80", (("Origin", "o"),))
    assert req == (
        b"GET /x HTTP/1.1\r\nHost: rebind.homeport.invalid:80\r\nOrigin: o\r\n"
        b"User-Agent: homeport-audit\r\nConnection: close\r\n\r\n"
    )
    post = httpmsg.build_request("POST", "/mcp", "h", (), b"{}")
    assert post.endswith(b"Content-Length: 2\r\n\r\n{}")


def test_complete_by_length_chunked_and_streams() -> None:
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n"
    assert not httpmsg.complete(head + b"abc")
    assert httpmsg.complete(head + b"abcde")
    chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n"
    assert not httpmsg.complete(chunked)
    assert httpmsg.complete(chunked + b"0\r\n\r\n")
    sse = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\nevent: endpoint\n"
    assert not httpmsg.complete(sse)
    assert httpmsg.complete(sse + b"data: /messages\n\n")
    assert httpmsg.complete(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n")
    assert not httpmsg.complete(b"HTTP/1.1 200 OK\r\nServer: x")


def test_parse_response_dechunks_and_reads_title() -> None:
    raw = (
        b"HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"11\r\n<title>Hi</title>\r\n0\r\n\r\n"
    )
    resp = httpmsg.parse_response(raw)
    assert resp is not None
    assert resp.status == 200
    assert resp.header("SERVER") == "nginx/1.22.1"
    assert resp.body == b"<title>Hi</title>"
    assert httpmsg.title(resp.body) == "Hi"
    assert httpmsg.parse_response(b"+PONG\r\n") is None
    assert "HTTP 200 OK\nserver: nginx/1.22.1" in resp.text()
