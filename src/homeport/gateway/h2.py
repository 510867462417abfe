"""The HTTP/2 front-end: one client connection (after TLS with ALPN ``h2``), its streams turned
into the same exchanges as HTTP/1.1 and proxied over the pooled HTTP/1.1 upstreams.

Framing, HPACK and the state of each stream are the ``h2`` library's (sans-IO: bytes in,
events out, bytes to send). This module maps its events onto ``core.ExchangeCore``, one
``H2Stream`` per request, and back.

The downgrade to HTTP/1.1 is where HTTP/2 proxies have been attacked (request smuggling): a
request is refused unless its fields survive the trip to a text protocol unchanged
(RFC 9113 §8.2). ``h2`` checks names (lower case, no separators), values (no NUL, CR or LF, no
surrounding whitespace), connection-specific fields, ``te`` other than ``trailers`` and the
pseudo-header rules, and closes the connection with PROTOCOL_ERROR; ``request_head`` checks
again what the HTTP/1.1 side relies on, and the body's length is counted against
``content-length`` as DATA arrives (RFC 9113 §8.1.1): a mismatch resets the stream.

Flow control, both ways with bounded memory:

- client → service: DATA is written to the upstream and acknowledged (WINDOW_UPDATE) only when
  the upstream's buffer has room, so a stream holds at most its window (64 KiB) in the gateway;
- service → client: bytes wait in the stream's buffer while the client's window is shut; past
  ``_HIGH`` the upstream is no longer read until the client opens its window again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING, cast

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.settings

from homeport.gateway import http1, pages
from homeport.gateway.contract import ControlResponse
from homeport.gateway.core import Exchange, ExchangeCore, identify
from homeport.gateway.http1 import HOP_BY_HOP, ProtocolError, RequestHead

if TYPE_CHECKING:
    from homeport.gateway.server import ProxyServer

log = logging.getLogger("homeport.gateway.h2")

#: Response bytes a stream buffers for a slow client before it stops reading its upstream.
_HIGH = 256 * 1024
_LOW = 64 * 1024
MAX_STREAMS = 128
#: Streams the client may reset before answering them all (CVE-2023-44487, "rapid reset":
#: each reset frees a slot, so MAX_STREAMS alone does not bound the work). Past this many,
#: and more resets than answered streams, the connection gets GOAWAY ENHANCE_YOUR_CALM.
MAX_RESETS = 256
#: Fields of an HTTP/1.1 response that mean nothing (or something else) in HTTP/2.
_NO_ERROR = h2.errors.ErrorCodes.NO_ERROR
_CANCEL = h2.errors.ErrorCodes.CANCEL
_PROTOCOL = h2.errors.ErrorCodes.PROTOCOL_ERROR
_INTERNAL = h2.errors.ErrorCodes.INTERNAL_ERROR
_CALM = h2.errors.ErrorCodes.ENHANCE_YOUR_CALM
_BAD = (0, 10, 13)  # NUL, LF, CR: never in a field (RFC 9113 §8.2.1)


def request_head(headers: list[tuple[bytes, bytes]], end_stream: bool) -> RequestHead:
    """An HTTP/2 request's header block -> the ``RequestHead`` the core proxies as HTTP/1.1.

    Raises ``ProtocolError`` (400, or 405 for CONNECT) when it cannot be forwarded faithfully.
    """
    pseudo: dict[bytes, bytes] = {}
    fields: list[tuple[bytes, bytes]] = []
    cookies: list[bytes] = []
    host: bytes | None = None
    length: bytes | None = None
    for name, value in headers:
        if any(c in value for c in _BAD) or any(c in name for c in _BAD):
            raise ProtocolError(400, "bad-request", "NUL, CR or LF in a field")
        if name[:1] == b":":
            pseudo[name] = value
        elif name in HOP_BY_HOP and not (name == b"te" and value == b"trailers"):
            raise ProtocolError(400, "bad-request", f"{name.decode()} is not allowed in HTTP/2")
        elif name == b"te":
            continue  # "trailers" only says the client takes them; hop-by-hop in HTTP/1.1
        elif name == b"cookie":
            cookies.append(value)  # crumbs join with "; " for HTTP/1.1 (RFC 9113 §8.2.3)
        elif name == b"host":
            host = value
        else:
            if name == b"content-length":
                if not value.isdigit() or (length is not None and value != length):
                    raise ProtocolError(400, "bad-request", "bad content-length")
                length = value
            fields.append((name, value))
    method = pseudo.get(b":method", b"")
    if method == b"CONNECT":
        raise ProtocolError(405, "method-not-allowed", "CONNECT is not supported")
    authority = pseudo.get(b":authority", host)
    path = pseudo.get(b":path", b"")
    if not method or not authority or not path or pseudo.get(b":scheme") not in (b"https", b"http"):
        raise ProtocolError(400, "bad-request", "missing or bad pseudo-header fields")
    if host is not None and host != authority:  # RFC 9113 §8.3.1
        raise ProtocolError(400, "bad-request", ":authority and Host differ")
    if cookies:
        fields.append((b"cookie", b"; ".join(cookies)))
    fields.insert(0, (b"host", authority))
    head = http1.parse_head(method, path, "1.1", fields, True, False)
    # No length and more to come: the body is sent upstream chunked (RFC 9112 §7.1).
    head.chunked = not end_stream and length is None
    return head


def response_fields(status: int, head: bytes) -> list[tuple[bytes, bytes]]:
    """An upstream's HTTP/1.1 response head -> HTTP/2 fields: lower-case names, no
    connection-specific ones (RFC 9113 §8.2.2), none named in Connection."""
    out = [(b":status", b"%d" % status)]
    pairs = http1.split_fields(head[head.find(b"\r\n") :]) if b"\r\n" in head else []
    listed: set[bytes] = set()
    for name, value in pairs:
        lname = name.lower()
        if lname == b"connection":
            listed.update(t.strip().lower() for t in value.split(b","))
        elif lname == b"transfer-encoding":
            listed.add(b"content-length")  # chunked wins (RFC 9112 §6.3): no known length
    for name, value in pairs:
        lname = name.lower()
        if lname in HOP_BY_HOP or lname in listed:
            continue
        out.append((lname, value))
    return out


class H2Connection(asyncio.Protocol):
    """The gateway's side of one HTTP/2 client connection."""

    transport: asyncio.Transport | None = None
    tls = False
    dead = False
    write_paused = False
    flush_soon = False  # a ``write_out`` is scheduled
    prefaced = False  # the client's connection preface arrived
    resets = 0  # streams the client reset before their end
    answered = 0  # streams that ended normally
    #: loop.time() after which the sweep closes an idle connection (0: streams are open).
    deadline = 0.0

    def __init__(self, server: ProxyServer) -> None:
        self.server = server
        self.config = server.config
        self.loop = server.loop
        self.streams: dict[int, H2Stream] = {}
        #: Streams with response bytes to send at the next ``flush``.
        self.dirty: list[H2Stream] = []
        self.client_ip = "?"
        self.client_port = 0
        self.local_port = 0
        self.trusted = False
        config = h2.config.H2Configuration(
            client_side=False, header_encoding=None, validate_inbound_headers=True
        )
        self.h2 = h2.connection.H2Connection(config=config)

    # -- asyncio.Protocol -------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.client_ip, self.client_port, self.local_port, self.trusted = identify(
            self.server, transport
        )
        self.server.conns.add(self)
        self.deadline = self.loop.time() + self.config.header_timeout
        self.h2.local_settings = h2.settings.Settings(
            client=False,
            initial_values={
                h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: MAX_STREAMS,
                h2.settings.SettingCodes.MAX_HEADER_LIST_SIZE: self.config.max_header_bytes,
            },
        )
        self.h2.initiate_connection()
        self.write_out()

    def data_received(self, data: bytes) -> None:
        try:
            events = self.h2.receive_data(data)
        except h2.exceptions.ProtocolError as exc:
            # Malformed frames or a header block that breaks RFC 9113 §8.2: h2 has queued a
            # GOAWAY with the error; send it and end the connection.
            log.debug("client %s:%d: HTTP/2 error: %s", self.client_ip, self.client_port, exc)
            self.close()
            return
        if not self.prefaced:
            # The preface came in time: from now on an idle connection is kept like an
            # idle HTTP/1.1 one (keepalive_timeout), not dropped as a slow request head.
            self.prefaced = True
            if not self.streams:
                self.deadline = self.loop.time() + self.config.keepalive_timeout
        try:
            for event in events:
                self._event(event)
        except Exception:
            log.exception("client %s:%d: h2 handler failed", self.client_ip, self.client_port)
            self.h2.close_connection(_INTERNAL)
            self.close()
            return
        self.flush()

    def _event(self, event: h2.events.Event) -> None:
        if isinstance(event, h2.events.RequestReceived):
            stream = H2Stream(self, event.stream_id)
            self.streams[event.stream_id] = stream
            self.deadline = 0.0
            stream.request(event.headers or [], event.stream_ended is not None)
        elif isinstance(event, h2.events.DataReceived):
            s = self.streams.get(event.stream_id)
            if s is None:
                self.ack(event.flow_controlled_length, event.stream_id)
            else:
                s.data(event.data or b"", event.flow_controlled_length or 0)
        elif isinstance(event, h2.events.StreamEnded):
            s = self.streams.get(event.stream_id)
            if s is not None:
                s.ended()
        elif isinstance(event, h2.events.StreamReset):
            s = self.streams.get(event.stream_id)
            if s is not None:
                s.reset_by_client()
                self.resets += 1
                if self.resets > MAX_RESETS and self.resets > self.answered:
                    log.warning("client %s:%d: too many stream resets", self.client_ip,
                                self.client_port)  # fmt: skip
                    self.h2.close_connection(_CALM)
                    self.close()
        elif isinstance(event, h2.events.WindowUpdated | h2.events.RemoteSettingsChanged):
            for s in list(self.streams.values()):
                s.push()
        elif isinstance(event, h2.events.ConnectionTerminated):
            self.close()

    def eof_received(self) -> bool | None:
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self.dead = True
        self.server.conns.discard(self)
        for s in list(self.streams.values()):
            s.lost()
        self.streams.clear()

    def pause_writing(self) -> None:
        self.write_paused = True
        for s in self.streams.values():
            s.pause_upstream_reads(True)

    def resume_writing(self) -> None:
        self.write_paused = False
        for s in list(self.streams.values()):
            s.pause_upstream_reads(False)

    # -- helpers ------------------------------------------------------------------------------

    def flush(self) -> None:
        """Write what is due at the end of this event-loop turn: the responses of every
        stream that moved in this turn go out in one TLS write (one ``send``), not one
        each. With 100 streams in flight that halved the system calls per request."""
        if not self.flush_soon and not self.dead:
            self.flush_soon = True
            self.loop.call_soon(self.write_out)

    def write_out(self) -> None:
        self.flush_soon = True  # what the pushes below flush goes out now, not next turn
        while self.dirty:
            # Response bytes of this turn: one DATA frame per stream (with END_STREAM when
            # the response ended in the same turn), not one per upstream read.
            dirty, self.dirty = self.dirty, []
            for s in dirty:
                s.queued = False
                s.push()
        self.flush_soon = False
        data = self.h2.data_to_send()
        if data and self.transport is not None and not self.dead:
            self.transport.write(data)

    def ack(self, size: int | None, stream_id: int) -> None:
        if size and not self.dead:
            self.h2.acknowledge_received_data(size, stream_id)

    def forget(self, stream: H2Stream) -> None:
        if self.streams.get(stream.stream_id) is stream:
            del self.streams[stream.stream_id]
        if not self.streams and not self.dead:
            self.deadline = self.loop.time() + self.config.keepalive_timeout

    def expire(self, now: float) -> None:
        """Idle past ``keepalive_timeout`` (or no preface in time): say goodbye and close."""
        self.shutdown()

    def shutdown(self) -> None:
        """GOAWAY (RFC 9113 §6.8), then close: the server is stopping or we are idle."""
        if self.dead:
            return
        self.h2.close_connection(_NO_ERROR)
        self.close()

    def close(self) -> None:
        if self.dead:
            return
        self.write_out()  # a GOAWAY or the last frames go before the close
        self.dead = True
        if self.transport is not None:
            self.transport.close()


class H2Stream(ExchangeCore):
    """One request on an HTTP/2 connection: an exchange of the core.

    The response side runs ``resp_open`` (headers sent) → ``out_end`` (the response is
    complete; ``outbuf`` still drains into the client's window) → END_STREAM → ``_end``."""

    protocol = "h2"
    #: Streams sit in the server's sweep set for their deadlines; they have no transport.
    transport = None
    paused = 0
    unacked = 0  # DATA bytes received and not yet acknowledged to the client
    received = 0  # body bytes, checked against content-length
    expected: int | None = None
    resp_open = False  # response headers sent, END_STREAM not yet
    out_end = False  # the response is complete once ``outbuf`` has gone
    up_paused = False
    queued = False  # in the connection's ``dirty`` list
    drain_waiter: asyncio.Future[None] | None = None
    drain_limit = _LOW

    def __init__(self, conn: H2Connection, stream_id: int) -> None:
        self.conn = conn
        self.stream_id = stream_id
        self.server = conn.server
        self.config = conn.config
        self.loop = conn.loop
        self.client_ip = conn.client_ip
        self.client_port = conn.client_port
        self.local_port = conn.local_port
        self.trusted = conn.trusted
        self.tls = conn.tls
        self.outbuf = bytearray()

    # -- from the connection ------------------------------------------------------------------

    def request(self, headers: list[tuple[bytes, bytes]], end_stream: bool) -> None:
        ex = self.ex = Exchange(self.loop.time())
        ex.keep_alive = True
        self.server.conns.add(self)
        try:
            head = request_head(headers, end_stream)
        except ProtocolError as exc:
            self._refuse_head(exc.status, exc.reason, exc.detail)
            return
        self.expected = head.content_length if not head.chunked and not end_stream else None
        if end_stream and head.content_length:
            self._refuse_head(400, "bad-request", "content-length without DATA")
            return
        # Known before deciding, so an answer of our own ends the stream without a reset.
        ex.req_done = end_stream
        self._decide(ex, head)
        if end_stream and self.ex is ex:
            self._complete()

    def data(self, data: bytes, flow: int) -> None:
        self.unacked += flow
        self.received += len(data)
        if self.expected is not None and self.received > self.expected:
            self._malformed("more DATA than content-length")  # RFC 9113 §8.1.1
            return
        if self.ex is not None and data:
            self._body(data)
        self._maybe_ack()

    def ended(self) -> None:
        if self.expected is not None and self.received != self.expected:
            self._malformed("less DATA than content-length")
            return
        if self.ex is not None:
            self._complete()

    def reset_by_client(self) -> None:
        ex = self.ex
        if ex is not None and not ex.resp_done:
            ex.status = ex.status or 499
            ex.reason = ex.reason or "client-reset"
        self.lost()

    def lost(self) -> None:
        """The stream or the whole connection is gone: drop the upstream, log once."""
        self.dead = True
        self.server.conns.discard(self)
        self.conn.forget(self)
        if self.task is not None:
            self.task.cancel()
        if self.drain_waiter is not None and not self.drain_waiter.done():
            self.drain_waiter.set_result(None)
        self.outbuf.clear()
        ex, self.ex = self.ex, None
        if ex is None:
            return
        if ex.upstream is not None:
            ex.upstream.detach()
            ex.upstream = None
        if not ex.resp_done:
            ex.status = ex.status or 499
            ex.reason = ex.reason or "client-closed"
        self._log(ex)

    def _malformed(self, why: str) -> None:
        log.debug("stream %d: %s", self.stream_id, why)
        ex = self.ex
        if ex is not None:
            ex.reason = "bad-request"
            ex.status = ex.status or 400
        self._reset(_PROTOCOL)

    # -- flow control: client -> service --------------------------------------------------------

    def _maybe_ack(self) -> None:
        if not self.paused and self.unacked:
            size, self.unacked = self.unacked, 0
            self.conn.ack(size, self.stream_id)

    def _pause(self, bit: int) -> None:
        self.paused |= bit

    def _resume(self, bit: int) -> None:
        if self.paused & bit:
            self.paused &= ~bit
            self._maybe_ack()
            self.conn.flush()

    # -- flow control: service -> client --------------------------------------------------------

    def push(self) -> None:
        """Send what the client's window allows; end the stream when all has gone."""
        if self.dead or not self.resp_open:
            return
        h2c = self.conn.h2
        sid = self.stream_id
        buf = self.outbuf
        try:
            while buf:
                room = min(h2c.local_flow_control_window(sid), h2c.max_outbound_frame_size)
                if room <= 0:
                    break
                piece = bytes(buf[:room])
                del buf[:room]
                last = self.out_end and not buf
                h2c.send_data(sid, piece, end_stream=last)
                if last:
                    self.resp_open = False
            if self.out_end and not buf and self.resp_open:
                h2c.end_stream(sid)
                self.resp_open = False
        except (h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError):
            self.lost()
            return
        self.pause_upstream_reads(len(buf) > _HIGH)
        waiter = self.drain_waiter
        if waiter is not None and not waiter.done() and self._drained(self.drain_limit):
            waiter.set_result(None)
        if not self.resp_open:
            self._finished()
        self.conn.flush()

    def pause_upstream_reads(self, paused: bool) -> None:
        paused = paused or self.conn.write_paused or len(self.outbuf) > _HIGH
        if paused == self.up_paused:
            return
        self.up_paused = self.write_paused = paused
        ex = self.ex
        if ex is not None and ex.upstream is not None and ex.upstream.transport is not None:
            if paused:
                ex.upstream.transport.pause_reading()
            else:
                ex.upstream.transport.resume_reading()

    # -- response side (called by Upstream; the core's hooks) -----------------------------------

    def _send_head(self, fields: list[tuple[bytes, bytes]], end: bool) -> None:
        if self.dead:
            return
        try:
            self.conn.h2.send_headers(self.stream_id, fields, end_stream=end)
        except (h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError):
            self.lost()
            return
        self.resp_open = not end
        self.conn.flush()

    def _send_body(self, data: bytes) -> None:
        self.outbuf += data
        self._queue()

    def _queue(self) -> None:
        """Push this stream's bytes at the connection's next ``write_out``."""
        if not self.queued:
            self.queued = True
            self.conn.dirty.append(self)
        self.conn.flush()

    def resp_head(self, status: int, head: bytes) -> None:
        ex = self.ex
        if ex is None or ex.head is None:
            return
        if status < 200:
            if status == 100 and ex.head.expect_continue:
                self._continue()
            return  # 101 cannot happen (no Upgrade goes upstream from h2); others dropped
        self.deadline = 0.0
        ex.status, ex.resp_started = status, True
        no_body = ex.head.method == b"HEAD" or status in (204, 304)
        ex.bytes_out += len(head)
        self._send_head(response_fields(status, head), no_body)
        if no_body:
            self.out_end = True

    def resp_body(self, data: bytes) -> None:
        ex = self.ex
        if ex is not None:
            ex.bytes_out += len(data)
            self._send_body(data)

    def resp_done(self, reusable: bool) -> None:
        ex = self.ex
        if ex is None:
            return
        ex.resp_done = True
        self._release_upstream(ex, reusable, self.up_paused)
        self.out_end = True
        if not self.resp_open:
            self._finished()
        else:
            self._queue()

    def resp_upgraded(self, rest: bytes) -> None:
        self._reset(_INTERNAL)

    def tunnel_data(self, data: bytes) -> None:
        self._reset(_INTERNAL)

    def tunnel_eof(self) -> None:
        self._reset(_INTERNAL)

    def cork(self) -> None:
        pass  # writes wait for the end of the event-loop turn anyway (``flush``)

    def uncork(self) -> None:
        pass

    def _continue(self) -> None:
        self._send_head([(b":status", b"100")], False)

    def _page(
        self,
        ex: Exchange,
        status: int,
        reason: str,
        body: tuple[bytes, bytes],
        headers: list[tuple[bytes, bytes]] | None = None,
    ) -> None:
        head = ex.head
        ex.status, ex.reason = status, reason
        content_type, payload = body
        fields = [
            (b":status", b"%d" % status),
            (b"content-type", content_type),
            (b"content-length", b"%d" % len(payload)),
        ]
        fields += [(n.lower(), v) for n, v in headers or ()]
        ex.resp_started = ex.resp_done = True
        self.out_end = True
        if (head is not None and head.method == b"HEAD") or not payload:
            self._send_head(fields, True)
            self._finished()
            return
        ex.bytes_out += len(payload)
        self._send_head(fields, False)
        self._send_body(payload)

    def _refuse_head(self, status: int, reason: str, detail: str) -> None:
        ex = self.ex
        if ex is None or self.dead:
            return
        if ex.resp_started:
            ex.reason = reason
            self._reset(_PROTOCOL)
            return
        ex.head = None
        self._page(ex, status, reason, (pages.TEXT, f"{status} {detail}\n".encode()))

    async def _write_control(self, ex: Exchange, resp: ControlResponse) -> None:
        head_only = ex.head is not None and ex.head.method == b"HEAD"
        fields = [(b":status", b"%d" % resp.status)]
        fields += [(n.lower().encode("latin-1"), v.encode("latin-1")) for n, v in resp.headers]
        streamed = resp.stream is not None and not head_only
        if not streamed:
            fields.append((b"content-length", b"%d" % len(resp.body)))
        ex.status, ex.resp_started = resp.status, True
        if head_only or (not streamed and not resp.body):
            self._send_head(fields, True)
            return
        self._send_head(fields, False)
        if not streamed:
            ex.bytes_out += len(resp.body)
            self.outbuf += resp.body
        elif resp.stream is not None:
            async for piece in resp.stream:
                if self.dead:
                    break
                if piece:
                    ex.bytes_out += len(piece)
                    self._send_body(piece)  # SSE: each event goes out as it comes
                    await self._drain(_LOW)
        self.out_end = True
        self.push()
        await self._drain(0)  # the core ends the exchange when this returns: all has gone

    def _drained(self, limit: int) -> bool:
        return len(self.outbuf) <= limit and (limit > 0 or not self.resp_open)

    async def _drain(self, limit: int) -> None:
        """Wait until at most ``limit`` bytes wait for the client's window (0: all sent)."""
        if self.dead or self._drained(limit):
            return
        self.drain_limit = limit
        self.drain_waiter = self.loop.create_future()
        await self.drain_waiter
        self.drain_waiter = None

    def _control_fields(self, head: RequestHead) -> list[tuple[bytes, bytes]]:
        return head.headers

    # -- ending ---------------------------------------------------------------------------------

    def _finished(self) -> None:
        """The response has gone out whole. If the request body is still coming, RFC 9113
        §8.1 lets the server end the stream here (``_end`` resets it with NO_ERROR)."""
        ex = self.ex
        if ex is not None and ex.resp_done:
            self._end(ex)

    def _end(self, ex: Exchange) -> None:
        if self.ex is not ex:
            return
        if ex.resp_done and self.resp_open and not self.dead:
            return  # the rest waits for the client's window: ``push`` ends it when sent
        if ex.upstream is not None:
            ex.upstream.detach()
            ex.upstream = None
        complete = ex.resp_done and not self.resp_open and not self.outbuf
        if not complete or not ex.req_done:
            # A short response (the service died) or a body we will not read: reset the
            # stream so the client neither waits for more nor keeps sending.
            self._send_reset(_NO_ERROR if complete else _INTERNAL)
        self.ex = None
        self.dead = True
        self.server.conns.discard(self)
        self._log(ex)
        self.conn.answered += 1
        self.conn.forget(self)
        if self.unacked:  # what the client sent counts against the connection's window too
            size, self.unacked = self.unacked, 0
            self.conn.ack(size, self.stream_id)
        self.conn.flush()

    def _send_reset(self, code: h2.errors.ErrorCodes) -> None:
        if not self.conn.dead:
            with contextlib.suppress(h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError):
                self.conn.h2.reset_stream(self.stream_id, code)
            self.resp_open = False
            self.conn.flush()

    def _reset(self, code: h2.errors.ErrorCodes) -> None:
        """Refuse or abandon the stream: RST_STREAM, then log it as it stands."""
        self._send_reset(code)
        ex = self.ex
        if ex is not None:
            ex.status = ex.status or 400
        self.lost()

    def expire(self, now: float) -> None:
        """The sweep: the service did not answer in time, or the client stalled its body."""
        ex = self.ex
        self.deadline = 0.0
        if ex is None:
            return
        if ex.kind == "proxy" and not ex.resp_started:
            if ex.upstream is not None:
                ex.upstream.detach()
                ex.upstream = None
            host = ex.head.host.decode("latin-1") if ex.head is not None else "?"
            target = ex.target.key if ex.target is not None else "?"
            seconds = self.config.upstream_header_timeout
            body = pages.timed_out(host, target, seconds, html=self._html(ex.head))
            self._page(ex, 504, "upstream-timeout", body)
        elif not ex.resp_done:
            ex.reason = ex.reason or "timeout"
            self._reset(_CANCEL)
