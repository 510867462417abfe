"""The HTTP/2 front-end without sockets: an ``h2`` client connection is the peer, its bytes go
into an ``H2Connection`` on a fake transport, and the frames that come back are read with it.
Upstreams are ``Upstream`` objects on fake transports in the pool, so every byte that would
reach a service is visible."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import h2.config
import h2.connection
import h2.events
import h2.settings
import pytest

from homeport.gateway.contract import ControlRequest, ControlResponse
from homeport.gateway.h2 import MAX_RESETS, H2Connection, request_head
from homeport.gateway.http1 import ProtocolError

from .gateway_fakes import FakeTransport
from .test_gateway_protocol import Gateway, make_gateway


@pytest.fixture
def gw() -> Iterator[Gateway]:
    yield from make_gateway()


class Peer:
    """An h2 client on the other side of an ``H2Connection`` (outbound checks off, so it can
    send what a hostile client would)."""

    def __init__(self, gw: Gateway, window: int | None = None) -> None:
        config = h2.config.H2Configuration(
            client_side=True,
            header_encoding=None,
            validate_outbound_headers=False,
            normalize_outbound_headers=False,
            validate_inbound_headers=True,
        )
        self.h2 = h2.connection.H2Connection(config=config)
        self.h2.initiate_connection()
        if window is not None:
            self.h2.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: window})
        self.loop = gw.loop
        self.conn = H2Connection(gw.server)
        self.conn.tls = True
        self.t = FakeTransport()
        self.conn.connection_made(self.t)  # type: ignore[arg-type]
        self.events: list[h2.events.Event] = []
        self.pump()

    def settle(self) -> None:
        """Run the loop's ready callbacks: the gateway writes at the end of a turn."""
        for _ in range(3):
            self.loop.run_until_complete(asyncio.sleep(0))

    def pump(self) -> list[h2.events.Event]:
        """Our bytes to the gateway, its bytes back: the events the client saw."""
        data = self.h2.data_to_send()
        if data:
            self.conn.data_received(data)
        self.settle()
        out = self.t.take()
        events = self.h2.receive_data(out) if out else []
        self.events += events
        reply = self.h2.data_to_send()  # SETTINGS ACK, WINDOW_UPDATE …
        if reply and not self.t.closed:
            self.conn.data_received(reply)
            self.settle()
            more = self.t.take()
            if more:
                events += self.h2.receive_data(more)
                self.events += events
        return events

    def request(
        self,
        path: str = "/x",
        *,
        method: str = "GET",
        host: str = "app.localhost",
        extra: list[tuple[bytes, bytes]] | None = None,
        end: bool = True,
    ) -> int:
        sid: int = self.h2.get_next_available_stream_id()
        headers = [
            (b":method", method.encode()),
            (b":scheme", b"https"),
            (b":authority", host.encode()),
            (b":path", path.encode()),
            *(extra or []),
        ]
        self.h2.send_headers(sid, headers, end_stream=end)
        return sid

    def of(self, kind: type, sid: int | None = None) -> list[h2.events.Event]:
        return [
            e
            for e in self.events
            if isinstance(e, kind) and (sid is None or getattr(e, "stream_id", None) == sid)
        ]


def test_get_goes_upstream_as_http11_and_the_answer_comes_back_as_frames(gw: Gateway) -> None:
    up, ut = gw.upstream()
    peer = Peer(gw)
    sid = peer.request(
        "/x?q=1", extra=[(b"accept", b"*/*"), (b"cookie", b"a=1"), (b"cookie", b"b=2")]
    )
    peer.pump()
    head = bytes(ut.out)
    assert head.startswith(b"GET /x?q=1 HTTP/1.1\r\nhost: app.localhost\r\n")
    assert b"\r\ncookie: a=1; b=2\r\n" in head  # crumbs joined (RFC 9113 §8.2.3)
    up.data_received(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nKeep-Alive: timeout=5\r\n\r\nok")
    peer.pump()
    (resp,) = peer.of(h2.events.ResponseReceived, sid)
    fields = dict(resp.headers)
    assert fields[b":status"] == b"200"
    assert b"keep-alive" not in fields  # connection-specific: never in HTTP/2
    assert b"".join(e.data for e in peer.of(h2.events.DataReceived, sid)) == b"ok"
    assert peer.of(h2.events.StreamEnded, sid)
    assert gw.server.pool.idle[up.key] == [up]  # pooled again for the next stream
    record = gw.records[-1]
    assert (record.status, record.protocol, record.tls) == (200, "h2", True)


def test_streams_share_the_connection_each_with_its_own_upstream(gw: Gateway) -> None:
    (up1, _ut1), (up2, ut2) = gw.upstream(), gw.upstream()
    peer = Peer(gw)
    a = peer.request("/a")
    b = peer.request("/b")
    peer.pump()
    first, second = (up1, up2) if b"/a " in ut2.out else (up2, up1)
    # LIFO pool: the second upstream given serves the first stream
    second.data_received(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nB")
    first.data_received(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nA")
    peer.pump()
    got = {e.stream_id: e.data for e in peer.of(h2.events.DataReceived)}
    assert sorted(got.values()) == [b"A", b"B"]
    assert {a, b} == set(got)
    assert len(peer.of(h2.events.StreamEnded)) == 2


def test_unknown_host_is_answered_on_its_stream_and_the_connection_stays(gw: Gateway) -> None:
    peer = Peer(gw)
    sid = peer.request(host="nope.localhost")
    peer.pump()
    (resp,) = peer.of(h2.events.ResponseReceived, sid)
    assert dict(resp.headers)[b":status"] == b"404"
    assert not peer.t.closed
    assert not peer.of(h2.events.StreamReset)
    assert gw.records[-1].reason == "unknown-host"


# RFC 9113 §8.2 and the h2 -> h1 downgrade: each of these must never reach a service.
REFUSED = {
    "uppercase-name": [(b"X-Upper", b"1")],
    "crlf-in-value": [(b"x-a", b"1\r\nx-injected: 2")],
    "lf-in-value": [(b"x-a", b"1\nGET /smuggled HTTP/1.1")],
    "nul-in-value": [(b"x-a", b"a\x00b")],
    "transfer-encoding": [(b"transfer-encoding", b"chunked")],
    "connection": [(b"connection", b"keep-alive")],
    "keep-alive": [(b"keep-alive", b"timeout=5")],
    "upgrade": [(b"upgrade", b"websocket")],
    "proxy-connection": [(b"proxy-connection", b"close")],
    "te-not-trailers": [(b"te", b"gzip")],
    "host-differs": [(b"host", b"evil.example")],
    "colon-in-name": [(b"x:a", b"1")],
    "space-in-name": [(b"x a", b"1")],
    "pseudo-after-regular": [(b"x-a", b"1"), (b":extra", b"1")],
}


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_fields_that_would_smuggle_are_refused(gw: Gateway, name: str) -> None:
    _up, ut = gw.upstream()
    peer = Peer(gw)
    sid = peer.request(extra=REFUSED[name])
    peer.pump()
    assert ut.out == b""  # nothing reached the service
    refused = peer.of(h2.events.StreamReset, sid) or peer.of(h2.events.ConnectionTerminated)
    answered = [
        e for e in peer.of(h2.events.ResponseReceived, sid) if dict(e.headers)[b":status"] == b"400"
    ]
    assert refused or answered


def test_more_data_than_content_length_is_refused_before_it_is_forwarded(gw: Gateway) -> None:
    _up, ut = gw.upstream()
    peer = Peer(gw)
    sid = peer.request("/p", method="POST", extra=[(b"content-length", b"3")], end=False)
    peer.h2.send_data(sid, b"abcGET /smuggled HTTP/1.1\r\nhost: app.localhost\r\n\r\n")
    peer.pump()
    assert b"smuggled" not in ut.out
    assert peer.of(h2.events.StreamReset, sid) or peer.of(h2.events.ConnectionTerminated)


def test_less_data_than_content_length_is_refused(gw: Gateway) -> None:
    _up, ut = gw.upstream()
    peer = Peer(gw)
    sid = peer.request("/p", method="POST", extra=[(b"content-length", b"10")], end=False)
    peer.h2.send_data(sid, b"abc", end_stream=True)
    peer.pump()
    assert peer.of(h2.events.StreamReset, sid) or peer.of(h2.events.ConnectionTerminated)
    assert ut.closed or ut.out == b""  # the service never gets a request it could complete


def test_malformed_frames_end_the_connection_with_goaway(gw: Gateway) -> None:
    peer = Peer(gw)
    # A DATA frame on stream 0 (RFC 9113 §6.1: a connection error PROTOCOL_ERROR).
    peer.conn.data_received(b"\x00\x00\x01\x00\x00\x00\x00\x00\x00x")
    events = peer.h2.receive_data(peer.t.take())
    (goaway,) = [e for e in events if isinstance(e, h2.events.ConnectionTerminated)]
    assert goaway.error_code == h2.errors.ErrorCodes.PROTOCOL_ERROR
    assert peer.t.closed


def test_body_without_length_goes_upstream_chunked(gw: Gateway) -> None:
    _up, ut = gw.upstream()
    peer = Peer(gw)
    sid = peer.request("/p", method="POST", end=False)
    peer.h2.send_data(sid, b"hello")
    peer.h2.end_stream(sid)
    peer.pump()
    out = bytes(ut.out)
    assert b"\r\ntransfer-encoding: chunked\r\n" in out
    assert out.endswith(b"\r\n\r\n5\r\nhello\r\n0\r\n\r\n")


def test_request_data_is_acknowledged_only_as_the_upstream_drains(gw: Gateway) -> None:
    up, _ut = gw.upstream()
    peer = Peer(gw)
    sid = peer.request("/p", method="POST", extra=[(b"content-length", b"200000")], end=False)
    peer.pump()
    up.pause_writing()  # the service's socket buffer is full
    window = peer.h2.local_flow_control_window(sid)
    frame = peer.h2.max_outbound_frame_size
    for at in range(0, window, frame):
        peer.h2.send_data(sid, b"x" * min(frame, window - at))
    peer.pump()
    assert peer.h2.local_flow_control_window(sid) == 0  # no WINDOW_UPDATE: we hold nothing more
    up.resume_writing()
    peer.pump()
    assert peer.h2.local_flow_control_window(sid) == window


def test_a_slow_client_stops_the_upstream_and_restarts_it(gw: Gateway) -> None:
    up, ut = gw.upstream()
    peer = Peer(gw, window=16384)
    sid = peer.request("/big")
    peer.pump()
    size = 1 << 20
    up.data_received(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % size)
    up.data_received(b"z" * (512 * 1024))
    peer.pump()
    assert ut.paused  # the client's window is shut and the buffer is past its mark
    got = 0
    for _ in range(200):
        for e in peer.of(h2.events.DataReceived, sid)[got:]:
            peer.h2.acknowledge_received_data(e.flow_controlled_length, sid)
        got = len(peer.of(h2.events.DataReceived, sid))
        peer.pump()
        if not ut.paused:
            break
    assert not ut.paused
    up.data_received(b"z" * (size - 512 * 1024))
    for _ in range(400):
        if peer.of(h2.events.StreamEnded, sid):
            break
        for e in peer.of(h2.events.DataReceived, sid)[got:]:
            peer.h2.acknowledge_received_data(e.flow_controlled_length, sid)
        got = len(peer.of(h2.events.DataReceived, sid))
        peer.pump()
    assert sum(len(e.data) for e in peer.of(h2.events.DataReceived, sid)) == size
    assert peer.of(h2.events.StreamEnded, sid)


def test_shutdown_sends_goaway(gw: Gateway) -> None:
    peer = Peer(gw)
    peer.conn.shutdown()
    events = peer.h2.receive_data(peer.t.take())
    (goaway,) = [e for e in events if isinstance(e, h2.events.ConnectionTerminated)]
    assert goaway.error_code == h2.errors.ErrorCodes.NO_ERROR
    assert peer.t.closed


def test_service_dying_mid_body_resets_the_stream(gw: Gateway) -> None:
    up, _ut = gw.upstream()
    peer = Peer(gw)
    sid = peer.request("/die")
    peer.pump()
    up.data_received(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nabc")
    up.connection_lost(None)
    peer.pump()
    assert peer.of(h2.events.StreamReset, sid)  # a short body must not look complete
    assert not peer.of(h2.events.StreamEnded, sid)
    assert gw.records[-1].reason == "upstream-died"


def test_request_head_refuses_connect_and_bad_lengths() -> None:
    base = [(b":method", b"GET"), (b":scheme", b"https"), (b":path", b"/")]
    with pytest.raises(ProtocolError) as err:
        request_head([(b":method", b"CONNECT"), (b":authority", b"a.localhost:1")], True)
    assert err.value.status == 405
    with pytest.raises(ProtocolError):
        request_head([*base, (b":authority", b"a"), (b"content-length", b"1x")], False)
    with pytest.raises(ProtocolError):
        request_head([*base, (b":authority", b"a"), (b"content-length", b"1"),
                      (b"content-length", b"2")], False)  # fmt: skip
    head = request_head([*base, (b":authority", b"a.localhost")], True)
    assert (head.host, head.chunked, head.content_length) == (b"a.localhost", False, 0)


def test_rapid_reset_gets_goaway_enhance_your_calm(gw: Gateway) -> None:
    # CVE-2023-44487: open and reset streams faster than they can be answered.
    peer = Peer(gw)
    for _ in range(MAX_RESETS + 1):
        sid = peer.request("/slow")
        peer.h2.reset_stream(sid)
        if peer.t.closed:
            break
        peer.pump()
    (goaway,) = peer.of(h2.events.ConnectionTerminated)
    assert goaway.error_code == h2.errors.ErrorCodes.ENHANCE_YOUR_CALM
    assert peer.t.closed


def test_control_api_and_its_event_stream_over_h2() -> None:
    class App:
        async def handle(self, request: ControlRequest) -> ControlResponse:
            if request.path == "/api/events":

                async def events() -> AsyncIterator[bytes]:
                    yield b"data: 1\n\n"
                    yield b"data: 2\n\n"

                return ControlResponse(
                    200, [("Content-Type", "text/event-stream")], stream=events()
                )
            assert request.body == b"{}"
            return ControlResponse(200, [("content-type", "application/json")], b'{"ok":1}')

    for gw in make_gateway(control=App()):
        peer = Peer(gw)
        post = peer.request("/api/x", method="POST", host="homeport.localhost:62893", end=False)
        peer.h2.send_data(post, b"{}", end_stream=True)
        sse = peer.request("/api/events", host="homeport.localhost:62893")
        peer.pump()
        for _ in range(10):
            if len(peer.of(h2.events.StreamEnded)) == 2:
                break
            peer.pump()
        body = b"".join(e.data for e in peer.of(h2.events.DataReceived, post))
        assert body == b'{"ok":1}'
        (resp,) = peer.of(h2.events.ResponseReceived, sse)
        assert dict(resp.headers)[b"content-type"] == b"text/event-stream"
        events = b"".join(e.data for e in peer.of(h2.events.DataReceived, sse))
        assert events == b"data: 1\n\ndata: 2\n\n"
        assert {r.reason for r in gw.records} == {"control"}


def test_idle_after_the_preface_is_kept_like_keep_alive_then_goaway(gw: Gateway) -> None:
    peer = Peer(gw)
    cfg = gw.server.config
    left = peer.conn.deadline - gw.loop.time()
    assert cfg.header_timeout < left <= cfg.keepalive_timeout
    peer.conn.expire(peer.conn.deadline + 1)  # what the sweep does past the deadline
    events = peer.h2.receive_data(peer.t.take())
    assert [e for e in events if isinstance(e, h2.events.ConnectionTerminated)]
    assert peer.t.closed
