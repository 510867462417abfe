"""The gateway with real sockets: a proxy process, Python backends, real clients (httpx, curl,
websockets). Names resolve nowhere: clients connect to 127.0.0.1 and send ``Host`` themselves."""

from __future__ import annotations

import base64
import contextlib
import json
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from gateway_support import BackendState, Gateway, backend, dead_port, gateway, ws_echo

MIB = 1 << 20


@pytest.fixture
def app(tmp_path: Path) -> Iterator[tuple[Gateway, BackendState]]:
    with backend() as (port, state), dead_port() as down, dead_port() as svc:
        target = f"http://127.0.0.1:{port}"
        routes = [
            {"name": "app.localhost", "target": target},
            {"name": "tok.localhost", "target": target, "auth": "token", "secret": "t0k"},
            {"name": "basic.localhost", "target": target, "auth": "basic", "secret": "ann:pw"},
            {"name": "strict.localhost", "target": target, "same_origin": True},
            {"name": "down.localhost", "target": f"http://127.0.0.1:{down}"},
            {"name": "svc.localhost", "target": f"http://127.0.0.1:{svc}",
             "service_id": "svc-1"},
            {"name": "shop.localhost", "target": target, "wildcard": True},
        ]  # fmt: skip
        with gateway(tmp_path, routes) as gw:
            yield gw, state


def get(gw: Gateway, host: str, path: str = "/", **kw: object) -> httpx.Response:
    return httpx.get(gw.url + path, headers={"Host": host, **kw.pop("headers", {})}, **kw)  # type: ignore[arg-type]


def test_keep_alive_is_reused_on_both_sides(app: tuple[Gateway, BackendState]) -> None:
    gw, state = app
    with httpx.Client(base_url=gw.url, headers={"Host": "app.localhost"}) as client:
        for i in range(20):
            r = client.get(f"/n{i}")
            assert r.status_code == 200
            assert r.text == f"hello from /n{i}"
    assert state.connections == 1  # one pooled upstream connection served all 20
    records = gw.records(at_least=20)
    assert len(records) == 20
    assert len({r["client_port"] for r in records}) == 1  # and one client connection


def test_wildcard_route_and_forwarding_headers(app: tuple[Gateway, BackendState]) -> None:
    gw, state = app
    r = get(gw, "deep.x.shop.localhost:62893", "/w", headers={"X-Forwarded-For": "10.1.1.1"})
    assert r.status_code == 200
    seen = state.headers[-1]
    assert seen["host"] == "deep.x.shop.localhost:62893"
    assert seen["x-forwarded-for"] == "10.1.1.1, 127.0.0.1"  # loopback peer: appended
    assert seen["x-forwarded-host"] == "deep.x.shop.localhost:62893"
    assert seen["forwarded"].startswith("for=127.0.0.1;")
    assert r.headers["via"].startswith("1.1 homeport-")


def test_large_bodies_both_ways_keep_memory_flat(app: tuple[Gateway, BackendState]) -> None:
    gw, _ = app
    size = 256 * MIB
    get(gw, "app.localhost", "/warm")
    before = gw.rss_kib()

    def body() -> Iterator[bytes]:
        block = b"u" * MIB
        for _ in range(size // MIB):
            yield block

    with httpx.Client(timeout=120) as client:
        r = client.post(
            gw.url + "/upload",
            content=body(),
            headers={"Host": "app.localhost", "Content-Length": str(size)},
        )
        assert r.json() == {"received": size}
        got = 0
        with client.stream(
            "GET", gw.url + f"/download?n={size}", headers={"Host": "app.localhost"}
        ) as resp:
            for piece in resp.iter_raw():
                got += len(piece)
        assert got == size
    peak = gw.rss_kib("VmHWM")
    # 512 MiB went through; the proxy's peak RSS grew by a few socket buffers at most.
    assert peak - before < 48 * 1024, f"RSS {before} KiB -> peak {peak} KiB"


def test_chunked_upload_through_curl_with_100_continue(
    app: tuple[Gateway, BackendState], tmp_path: Path
) -> None:
    gw, _ = app
    data = tmp_path / "up.bin"
    data.write_bytes(b"c" * (2 * MIB))
    out = subprocess.run(
        ["curl", "-sv", "--data-binary", f"@{data}", "-H", "Host: app.localhost",
         "-H", "Expect: 100-continue", gw.url + "/put"],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    assert "< HTTP/1.1 100 Continue" in out.stderr
    assert json.loads(out.stdout) == {"received": 2 * MIB}


def test_sse_events_arrive_as_they_are_sent(app: tuple[Gateway, BackendState]) -> None:
    gw, state = app
    with (
        httpx.Client(timeout=30) as client,
        client.stream("GET", gw.url + "/sse", headers={"Host": "app.localhost"}) as resp,
    ):
        lines = resp.iter_lines()
        assert next(lines) == "data: first"
        # Only now may the backend send the second event: the first one was not held back.
        state.sse_go.set()
        rest = [line for line in lines if line]
    assert rest == ["data: second"]


def test_websocket_echo_through_the_gateway(tmp_path: Path) -> None:
    from websockets.sync.client import connect

    with ws_echo() as port:
        routes = [{"name": "ws.localhost", "target": f"http://127.0.0.1:{port}"}]
        with gateway(tmp_path, routes) as gw:
            sock = socket.create_connection(("127.0.0.1", gw.port))
            with connect(f"ws://ws.localhost:{gw.port}/chat", sock=sock) as ws:
                for text in ("hello", "x" * 100_000):
                    ws.send(text)
                    assert ws.recv(timeout=10) == text
                ws.send(b"\x00\x01binary")
                assert ws.recv(timeout=10) == b"\x00\x01binary"
            # The record is written when the tunnel closes.
            assert gw.records(at_least=1)[-1]["status"] == 101


def test_unknown_host_lists_routes(app: tuple[Gateway, BackendState]) -> None:
    gw, _ = app
    r = get(gw, "nothing.localhost", headers={"Accept": "text/html"})
    assert r.status_code == 404
    assert "app.localhost" in r.text
    assert "<a href=" in r.text
    assert gw.records(at_least=1)[-1]["reason"] == "unknown-host"


def test_foreign_host_is_refused(app: tuple[Gateway, BackendState]) -> None:
    gw, state = app
    r = get(gw, "rebind.attacker.example")
    assert r.status_code == 403
    assert "DNS-rebinding" in r.text
    assert state.requests == []


def test_backend_down_is_a_plain_502(app: tuple[Gateway, BackendState]) -> None:
    gw, _ = app
    r = get(gw, "down.localhost")
    assert r.status_code == 502
    assert "nothing listens there" in r.text
    assert gw.records(at_least=1)[-1]["reason"] == "upstream-refused"
    svc = get(gw, "svc.localhost")
    assert svc.status_code == 502
    assert "exited with code 3" in svc.text  # from ServiceStatusLookup
    assert "Traceback: boom" in svc.text


def test_backend_dying_mid_response_cuts_the_client(app: tuple[Gateway, BackendState]) -> None:
    gw, _ = app
    with pytest.raises(httpx.RemoteProtocolError):
        get(gw, "app.localhost", "/die")
    assert gw.records(at_least=1)[-1]["reason"] == "upstream-died"
    assert get(gw, "app.localhost", "/after").status_code == 200  # and the gateway goes on


def test_token_auth(app: tuple[Gateway, BackendState]) -> None:
    gw, state = app
    assert get(gw, "tok.localhost").status_code == 401
    r = get(gw, "tok.localhost", "/p?homeport_token=t0k")
    assert r.status_code == 303
    assert r.headers["location"] == "/p"
    cookie = r.headers["set-cookie"].split(";")[0]
    ok = get(gw, "tok.localhost", "/p", headers={"Cookie": cookie + "; mine=1"})
    assert ok.status_code == 200
    assert state.headers[-1]["cookie"] == "mine=1"  # the app never sees homeport's cookie
    bearer = get(gw, "tok.localhost", "/b", headers={"Authorization": "Bearer t0k"})
    assert bearer.status_code == 200
    assert "authorization" not in state.headers[-1]


def test_basic_auth(app: tuple[Gateway, BackendState]) -> None:
    gw, _ = app
    assert get(gw, "basic.localhost").status_code == 401
    assert get(gw, "basic.localhost", auth=("ann", "pw")).status_code == 200
    bad = base64.b64encode(b"ann:x").decode()
    r = get(gw, "basic.localhost", headers={"Authorization": f"Basic {bad}"})
    assert r.status_code == 401
    assert r.headers["www-authenticate"].startswith("Basic")


def test_same_origin_refuses_cross_site_post_and_websocket(
    app: tuple[Gateway, BackendState],
) -> None:
    gw, state = app
    headers = {"Host": "strict.localhost", "Origin": "http://evil.example"}
    assert httpx.post(gw.url + "/x", headers=headers, content=b"{}").status_code == 403
    ok = {"Host": "strict.localhost", "Origin": "http://strict.localhost"}
    assert httpx.post(gw.url + "/x", headers=ok, content=b"{}").status_code == 200
    ws = {
        "Host": "strict.localhost",
        "Origin": "http://evil.localhost",
        "Connection": "Upgrade",
        "Upgrade": "websocket",
        "Sec-WebSocket-Version": "13",
        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
    }
    assert httpx.get(gw.url + "/ws", headers=ws).status_code == 403
    assert state.requests == ["/x"]


def test_a_smuggled_request_on_a_real_socket_is_refused(app: tuple[Gateway, BackendState]) -> None:
    gw, state = app
    raw = (
        b"POST / HTTP/1.1\r\nHost: app.localhost\r\nContent-Length: 6\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
        b"GET /smuggled HTTP/1.1\r\nHost: app.localhost\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", gw.port), timeout=10) as s:
        s.sendall(raw)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    assert data.startswith(b"HTTP/1.1 400 ")
    assert data.count(b"HTTP/1.1") == 1
    assert "/smuggled" not in state.requests


def _half_sent_heads(port: int, n: int) -> list[socket.socket]:
    socks = []
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(b"GET / HTTP/1.1\r\nHost: app.localhost\r\nX-Slow: ")
        socks.append(s)
    return socks


def test_slow_headers_do_not_starve_others(tmp_path: Path) -> None:
    with backend() as (port, _):
        routes = [{"name": "app.localhost", "target": f"http://127.0.0.1:{port}"}]
        with gateway(tmp_path, routes, config={"header_timeout": 60.0}) as gw:
            slow = _half_sent_heads(gw.port, 2000)
            try:
                assert get(gw, "app.localhost", "/normal", timeout=20).status_code == 200
                # ... served while every slowloris connection is still held open.
                for s in (slow[0], slow[-1]):
                    s.setblocking(False)
                    with pytest.raises(BlockingIOError):
                        s.recv(1)
            finally:
                for s in slow:
                    s.close()


def test_slow_headers_are_dropped_after_the_header_timeout(tmp_path: Path) -> None:
    with backend() as (port, _):
        routes = [{"name": "app.localhost", "target": f"http://127.0.0.1:{port}"}]
        with gateway(tmp_path, routes, config={"header_timeout": 0.5}) as gw:
            slow = _half_sent_heads(gw.port, 20)
            try:
                for s in slow:
                    s.settimeout(10)
                    data = s.recv(4096)  # 408, then the close
                    assert data.startswith(b"HTTP/1.1 408 ")
                    assert s.recv(4096) == b""
            finally:
                for s in slow:
                    s.close()
            assert {r["reason"] for r in gw.records(at_least=20)} == {"header-timeout"}


def test_accept_loop_survives_emfile(tmp_path: Path) -> None:
    with backend() as (port, _):
        routes = [{"name": "app.localhost", "target": f"http://127.0.0.1:{port}"}]
        with gateway(tmp_path, routes, rlimit_nofile=64) as gw:
            held = []
            try:
                for _ in range(120):  # more than the proxy can accept: it hits EMFILE
                    s = socket.socket()
                    s.settimeout(5)
                    s.connect(("127.0.0.1", gw.port))
                    held.append(s)
            finally:
                for s in held:
                    s.close()
            deadline = time.monotonic() + 20
            while True:  # once descriptors are free again, it serves (bounded wait)
                try:
                    r = get(gw, "app.localhost", "/after", timeout=2)
                    break
                except httpx.TransportError:
                    assert time.monotonic() < deadline, "the gateway did not recover from EMFILE"
            assert r.status_code == 200
            assert gw.proc.poll() is None


# -- tunnels and half-close ----------------------------------------------------------------------

UPGRADE = b"GET /raw HTTP/1.1\r\nHost: raw.localhost\r\nConnection: Upgrade\r\nUpgrade: raw\r\n\r\n"


def _read_head(s: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        piece = s.recv(4096)
        assert piece, f"closed before the head ended: {data!r}"
        data += piece
    return data


def _read_to_eof(s: socket.socket) -> bytes:
    data = b""
    while piece := s.recv(65536):
        data += piece
    return data


def _raw_tunnel_backend(
    serve: Callable[[socket.socket], None],
) -> contextlib.AbstractContextManager[int]:
    """A backend that answers one upgrade with 101, then hands its socket to ``serve``."""

    @contextlib.contextmanager
    def run() -> Iterator[int]:
        errors: list[BaseException] = []
        with socket.socket() as listener:
            listener.bind(("127.0.0.1", 0))
            listener.listen(1)
            listener.settimeout(10)

            def accept() -> None:
                try:
                    conn, _ = listener.accept()
                    with conn:
                        conn.settimeout(10)
                        _read_head(conn)
                        conn.sendall(b"HTTP/1.1 101 Switching Protocols\r\n"
                                     b"Connection: Upgrade\r\nUpgrade: raw\r\n\r\n")  # fmt: skip
                        serve(conn)
                except BaseException as exc:  # reported by the test, not lost in the thread
                    errors.append(exc)

            thread = threading.Thread(target=accept, daemon=True)
            thread.start()
            yield int(listener.getsockname()[1])
            thread.join(15)
        assert not thread.is_alive(), "the backend did not finish"
        if errors:
            raise errors[0]

    return run()


def test_client_half_close_through_a_tunnel(tmp_path: Path) -> None:
    # The backend echoes until the client's FIN reaches it, then still sends a last word.
    def echo_then_bye(conn: socket.socket) -> None:
        got = 0
        while piece := conn.recv(65536):
            got += len(piece)
            conn.sendall(piece)
        conn.sendall(b"bye after %d bytes" % got)

    with _raw_tunnel_backend(echo_then_bye) as port:
        routes = [{"name": "raw.localhost", "target": f"http://127.0.0.1:{port}"}]
        with (
            gateway(tmp_path, routes) as gw,
            socket.create_connection(("127.0.0.1", gw.port), timeout=10) as s,
        ):
            s.sendall(UPGRADE)
            assert _read_head(s).startswith(b"HTTP/1.1 101 ")
            s.sendall(b"ping")
            got = b""
            while len(got) < 4:
                got += s.recv(4 - len(got))
            assert got == b"ping"
            s.shutdown(socket.SHUT_WR)
            # The FIN went on to the backend, and its answer to it still comes back, then EOF.
            assert _read_to_eof(s) == b"bye after 4 bytes"
            assert gw.records(at_least=1)[-1]["status"] == 101


def test_backend_half_close_through_a_tunnel(tmp_path: Path) -> None:
    # The backend says its piece and half-closes; the client still sends, and it arrives.
    received: list[bytes] = []

    def say_then_listen(conn: socket.socket) -> None:
        conn.sendall(b"all I have")
        conn.shutdown(socket.SHUT_WR)
        received.append(_read_to_eof(conn))

    with _raw_tunnel_backend(say_then_listen) as port:
        routes = [{"name": "raw.localhost", "target": f"http://127.0.0.1:{port}"}]
        with (
            gateway(tmp_path, routes) as gw,
            socket.create_connection(("127.0.0.1", gw.port), timeout=10) as s,
        ):
            s.sendall(UPGRADE)
            head = _read_head(s)
            assert head.startswith(b"HTTP/1.1 101 ")
            rest = head.partition(b"\r\n\r\n")[2]
            assert rest + _read_to_eof(s) == b"all I have"
            s.sendall(b"late words")
            s.shutdown(socket.SHUT_WR)
            assert _read_to_eof(s) == b""
    assert received == [b"late words"]


# -- our own answers keep the connection ----------------------------------------------------------


def _read_response(s: socket.socket, buf: bytes = b"") -> tuple[bytes, bytes, bytes]:
    """One response framed by Content-Length: (head, body, bytes left over)."""
    while b"\r\n\r\n" not in buf:
        piece = s.recv(65536)
        assert piece, f"closed before a response head: {buf!r}"
        buf += piece
    head, _, rest = buf.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    while len(rest) < length:
        piece = s.recv(65536)
        assert piece, "closed in the middle of a body"
        rest += piece
    return head, rest[:length], rest[length:]


def test_a_post_to_an_unknown_host_keeps_the_connection(app: tuple[Gateway, BackendState]) -> None:
    gw, state = app
    with socket.create_connection(("127.0.0.1", gw.port), timeout=10) as s:
        s.sendall(b"POST /f HTTP/1.1\r\nHost: nope.localhost\r\nContent-Length: 11\r\n\r\nhello")
        head, _, left = _read_response(s)
        assert head.startswith(b"HTTP/1.1 404 ")
        assert b"connection: close" not in head.lower()
        s.sendall(b" world" + b"GET /next HTTP/1.1\r\nHost: app.localhost\r\n\r\n")
        head, body, _ = _read_response(s, left)
        assert head.startswith(b"HTTP/1.1 200 ")
        assert body == b"hello from /next"
    assert state.requests == ["/next"]


def test_client_that_half_closes_after_its_request_still_gets_the_answer(
    app: tuple[Gateway, BackendState],
) -> None:
    # `nc -N`, `printf ... | socat`, some HTTP/1.0 tools: send the request, then FIN. The FIN
    # ends the client's direction only (TCP half-close); the response must still come back.
    gw, _state = app
    with socket.create_connection(("127.0.0.1", gw.port), timeout=10) as s:
        s.sendall(b"GET /half HTTP/1.1\r\nHost: app.localhost\r\n\r\n")
        s.shutdown(socket.SHUT_WR)
        answer = _read_to_eof(s)
    assert answer.startswith(b"HTTP/1.1 200 ")
    assert answer.endswith(b"hello from /half")
