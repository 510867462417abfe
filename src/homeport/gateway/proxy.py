"""The HTTP/1.1 front-end: one client connection, parsed with llhttp into exchanges that the
exchange core (``core.ExchangeCore``) routes, guards, proxies and logs.

This module is only the HTTP/1.1 wire: request heads (a fast path for one plain head in one
read, llhttp's per-field callbacks otherwise), bodies and their framing, pipelining, Upgrade
tunnels, keep-alive, and the bytes of every response. Flow control follows the transports: when
the upstream's send buffer fills, the client stops being read (``pause_reading``), and the other
way round, so a body of any size passes through with bounded memory. Writes caused by one
upstream read are corked into one ``writelines``.

Pipelined requests (a second request arriving before the first is answered) are recorded as
parser events, reading pauses, and they are replayed in order once the current exchange ends:
responses never interleave. Every request ends in exactly one ``AccessRecord``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

import httptools

from homeport.gateway import accept, http1, pages
from homeport.gateway.contract import ControlResponse
from homeport.gateway.core import (
    P_QUEUE,
    P_UPGRADE,
    P_UPSTREAM,
    Exchange,
    ExchangeCore,
    identify,
)
from homeport.gateway.http1 import LAST_CHUNK, ProtocolError, RequestHead

if TYPE_CHECKING:
    from homeport.gateway.server import ProxyServer

log = logging.getLogger("homeport.gateway.proxy")

Event = tuple[Callable[..., None], tuple[Any, ...]]
__all__ = ["ClientConnection", "Exchange"]


class _Stop(Exception):
    """Raised inside a parser callback to stop parsing a connection we are closing."""


class _TooLarge(Exception):
    """The request head passed ``max_header_bytes``."""


class ClientConnection(ExchangeCore, asyncio.Protocol):
    """The gateway's side of one client TCP connection."""

    # For mypyc (``make compiled``): it refuses ``del`` of an attribute not listed here.
    __deletable__ = ("fast",)

    # Per-connection state starts from these class defaults: a new connection (the cost that
    # dominates with Connection: close) sets only what differs.
    transport: asyncio.Transport | None = None
    url = b""
    head_size = 0
    raw_head = 0
    in_head = False
    queue: list[Event] | None = None
    paused = 0
    drain_waiter: asyncio.Future[None] | None = None
    corked: list[bytes] | None = None
    #: llhttp with per-field callbacks, made on first need: heads split over reads,
    #: pipelined requests, requests with a body (see ``_received``).
    parser: httptools.HttpRequestParser | None = None
    #: ``http1.whole_head``'s slices of the head being fed to ``fast``.
    whole: tuple[bytes, bytes, bytes, bytes] = (b"", b"", b"", b"")
    upgrade_buf: list[bytes] = []  # noqa: RUF012  (replaced, never mutated, before use)

    def __init__(self, server: ProxyServer) -> None:
        self.server = server
        self.config = server.config
        self.loop = server.loop
        # llhttp without on_url / on_header for a request that is one plain head in one read
        # (most GETs): llhttp validates it, and its pieces are sliced from the read instead of
        # arriving as one Python callback per field.
        self.fast = httptools.HttpRequestParser(_FastEvents(self))
        self.headers: list[tuple[bytes, bytes]] = []
        #: The next read is the connection's first and the server has TLS: it picks the scheme.
        #: (An instance attribute, not a class default: it is read on every read, and 3.11
        #: specializes reading an instance's own attribute, not a class default through it.)
        self.sniff = False

    # -- asyncio.Protocol -------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = cast(asyncio.Transport, transport)
        self.client_ip, self.client_port, self.local_port, self.trusted = identify(
            self.server, transport
        )
        self.server.conns.add(self)
        self.deadline = self.loop.time() + self.config.header_timeout
        if self.server.tls is not None and not self.tls:
            # The first read decides TLS or plain (``accept.first_read``). A flag, not an
            # instance attribute shadowing ``_received``: mypyc binds ``self._received`` to the
            # class's method and would never see the shadow (docs/design-notes.md, issue 9).
            self.sniff = True

    def data_received(self, data: bytes) -> None:
        try:
            if self.sniff:
                self.sniff = False
                if accept.first_read(self, data):
                    return
            self._received(data)
        except Exception:
            # One broken exchange must not take the server down: log it, drop this client.
            log.exception("client %s:%d: handler failed", self.client_ip, self.client_port)
            self._close()

    def _received(self, data: bytes) -> None:
        ex = self.ex
        parser = self.parser
        if ex is None:
            # Between requests both parsers stand at a message start, so either may take the
            # next one; the fast one only a head without a body, so it ends the request here.
            # (A whole head ends in LF: one byte looked at spares the call for other reads.)
            if data[-1] == 10 and self.queue is None and not self.in_head:
                whole = http1.whole_head(data, self.config.max_header_bytes)
                if whole is not None and not self.dead:
                    self.whole = whole
                    self.ex = Exchange(self.loop.time())
                    parser = self.fast
        elif ex.tunnel:
            ex.bytes_in += len(data)
            if ex.upstream is not None:
                ex.upstream.write(data)
            return
        if self.paused & P_UPGRADE:
            self.upgrade_buf.append(data)
            return
        if parser is None:
            if self.dead:
                return
            parser = self.parser = httptools.HttpRequestParser(self)
        was_in_head = self.in_head
        try:
            parser.feed_data(data)
        except httptools.HttpParserUpgrade as exc:
            self._event(self._upgrade, data[exc.args[0] :])
        except httptools.HttpParserCallbackError as exc:
            if isinstance(exc.__context__, _TooLarge):
                self._event(self._refuse_head, 431, "header-too-large", "request head too large")
            elif not isinstance(exc.__context__, _Stop):
                raise
        except httptools.HttpParserError as exc:
            self._event(self._refuse_head, 400, "bad-request", str(exc))
        if self.in_head and was_in_head:
            self.raw_head += len(data)
            if self.raw_head > self.config.max_header_bytes and not self.dead:
                self._refuse_head(431, "header-too-large", "request head too large")

    def eof_received(self) -> bool | None:
        ex = self.ex
        if ex is None:
            return None  # idle between requests: the client is done
        if not ex.tunnel:
            # A FIN after a whole request ends the client's direction only (TCP half-close,
            # RFC 9293 §3.6; `nc -N` and some HTTP/1.0 tools do it): answer it, then close
            # (RFC 9112 §9.6). A FIN inside a request, or with pipelined requests still
            # queued, leaves nothing we could answer completely: close now.
            if not ex.req_done or self.queue:
                return None
            ex.keep_alive = False
            return True
        # A tunnel is two independent byte streams (RFC 9110 §9.3.6, and TCP half-close,
        # RFC 9293 §3.6): the client's FIN ends its direction only. Pass it on and keep
        # relaying what the service still sends; the tunnel ends once both have ended.
        if not ex.client_eof:
            ex.client_eof = True
            up = ex.upstream
            if ex.upstream_eof or up is None or not up.write_eof():
                self._end(ex)
        return True  # keep our side open for writing

    def connection_lost(self, exc: Exception | None) -> None:
        self.dead = True
        self.server.conns.discard(self)
        # The parsers point back at us: break the cycle so refcounting frees the connection
        # now instead of the cyclic GC later (it showed as 3.6% of a Connection: close run).
        self.parser = None
        del self.fast
        if self.task is not None:
            self.task.cancel()
        if self.drain_waiter is not None and not self.drain_waiter.done():
            self.drain_waiter.set_result(None)
        ex, self.ex = self.ex, None
        if ex is None:
            return
        if ex.upstream is not None:
            ex.upstream.detach()
            ex.upstream = None
        if not ex.resp_done and not ex.tunnel:
            ex.status = ex.status or 499
            ex.reason = ex.reason or "client-closed"
        self._log(ex)

    def pause_writing(self) -> None:
        self.write_paused = True
        ex = self.ex
        if ex is not None and ex.upstream is not None and ex.upstream.transport is not None:
            ex.upstream.transport.pause_reading()

    def resume_writing(self) -> None:
        self.write_paused = False
        ex = self.ex
        if ex is not None and ex.upstream is not None and ex.upstream.transport is not None:
            ex.upstream.transport.resume_reading()
        if self.drain_waiter is not None and not self.drain_waiter.done():
            self.drain_waiter.set_result(None)

    # -- llhttp callbacks: live, or recorded while an earlier request is in flight ----------

    def on_message_begin(self) -> None:
        if self.dead:
            raise _Stop
        self.in_head = True
        self.head_size = self.raw_head = 0
        if self.queue is None and self.ex is not None:
            self.queue = []
            self._pause(P_QUEUE)
        if self.queue is None:
            self._begin()
        else:
            self.queue.append((self._begin, ()))

    def on_url(self, url: bytes) -> None:
        self.head_size += len(url)
        if self.head_size > self.config.max_header_bytes:
            raise _TooLarge
        if self.queue is not None:
            self.queue.append((self._url, (url,)))
        else:
            self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.head_size += len(name) + len(value) + 4
        if self.head_size > self.config.max_header_bytes:
            raise _TooLarge
        if self.queue is not None:
            self.queue.append((self._header, (name, value)))
        else:
            self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        self.in_head = False
        p = self.parser
        assert p is not None
        args = (p.get_method(), p.get_http_version(), p.should_keep_alive(), p.should_upgrade())
        if self.queue is None:
            self._head(*args)
        else:
            self.queue.append((self._head, args))

    def fast_headers_complete(self) -> None:
        """``on_headers_complete`` of the fast parser: llhttp has checked the head whose
        pieces ``_received`` sliced (``http1.whole_head``)."""
        ex = self.ex
        assert ex is not None
        p = self.fast
        if p.should_upgrade():  # no Upgrade field passes whole_head; never trust a mismatch
            self._refuse_head(400, "bad-request", "unexpected upgrade")
            return
        target, version, host, raw = self.whole
        keep_alive = p.should_keep_alive()
        head = RequestHead(p.get_method(), target, version, host, keep_alive, [], raw=raw)
        self._decide(ex, head)

    def on_body(self, body: bytes) -> None:
        if self.queue is not None:
            self.queue.append((self._body, (body,)))
        else:
            self._body(body)

    def on_message_complete(self) -> None:
        if self.queue is None:
            self._complete()
        else:
            self.queue.append((self._complete, ()))

    def _event(self, fn: Callable[..., None], *args: Any) -> None:
        if self.queue is not None:
            self.queue.append((fn, args))
        else:
            fn(*args)

    def _url(self, url: bytes) -> None:
        self.url += url

    def _header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))

    def _replay(self) -> None:
        queue, self.queue = self.queue or [], None
        while queue and not self.dead:
            fn, args = queue[0]
            if fn == self._begin and self.ex is not None:
                self.queue = queue  # the next request waits for this exchange
                return
            queue.pop(0)
            fn(*args)
        self._resume(P_QUEUE)

    # -- request side -------------------------------------------------------------------------

    def _begin(self) -> None:
        self.url = b""
        self.headers = []
        self.ex = Exchange(self.loop.time())
        self.deadline = self.ex.t0 + self.config.header_timeout

    def _head(self, method: bytes, version: str, keep_alive: bool, upgrade: bool) -> None:
        ex = self.ex
        assert ex is not None
        try:
            head = http1.parse_head(method, self.url, version, self.headers, keep_alive, upgrade)
        except ProtocolError as exc:
            self._refuse_head(exc.status, exc.reason, exc.detail)
            return
        self._decide(ex, head)

    def _upgrade(self, rest: bytes) -> None:
        ex = self.ex
        if ex is None or ex.kind != "proxy" or ex.resp_done:
            # Answered ourselves (refused, 404 …): the bytes after the head are not HTTP.
            self._close()
            return
        self._pause(P_UPGRADE)
        self.upgrade_buf = [rest] if rest else []

    # -- answers of our own (hooks of the core) ---------------------------------------------

    def _continue(self) -> None:
        self._write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def _control_fields(self, head: RequestHead) -> list[tuple[bytes, bytes]]:
        return self.headers if head.raw is None else http1.request_fields(head.raw)

    def _page(
        self,
        ex: Exchange,
        status: int,
        reason: str,
        body: tuple[bytes, bytes],
        headers: list[tuple[bytes, bytes]] | None = None,
    ) -> None:
        """Answer the current request ourselves. The connection is kept when the rest of the
        request's body, if any, can be read and thrown away (``_can_discard``)."""
        head = ex.head
        ex.status, ex.reason = status, reason
        ex.keep_alive = ex.keep_alive and head is not None and self._can_discard(ex, head, status)
        content_type, payload = body
        if ex.keep_alive and head is not None and head.version == b"1.0":
            headers = [*(headers or ()), (b"connection", b"keep-alive")]
        data = http1.simple_response(
            status,
            payload,
            content_type=content_type,
            headers=headers,
            close=not ex.keep_alive,
            head_only=head is not None and head.method == b"HEAD",
        )
        ex.bytes_out += len(data)
        ex.resp_started = ex.resp_done = True
        self._write(data)
        if not ex.keep_alive:
            self._end(ex)
            return
        if not ex.req_done:
            # The body still comes: ``_body`` throws it away, ``_complete`` ends the exchange.
            # No upstream is left to wait for, and a client that stalls is dropped in time.
            self._resume(P_UPSTREAM)
            self.deadline = self.loop.time() + self.config.header_timeout
        self._maybe_end(ex)

    def _can_discard(self, ex: Exchange, head: RequestHead, status: int) -> bool:
        """Whether the connection can stay open after our own answer. RFC 9112 §9.3: it
        persists only if the whole request is read, so its body (if it has one still to
        come) must be read and discarded: fine up to ``max_discard_body``."""
        if ex.req_done or not head.has_body:
            return True
        if status == 413 or head.expect_continue:
            # 413: the body is the problem. 100-continue: the client may hold its body back
            # after a final answer; closing is the one signal it cannot miss (RFC 9110 §10.1.1).
            return False
        # Chunked has no length in advance: ``_body`` enforces the bound as it arrives.
        return head.content_length <= self.config.max_discard_body

    def _refuse_head(self, status: int, reason: str, detail: str) -> None:
        """Framing we cannot trust: answer and close (RFC 9112 §6.3 item 4, §11.2)."""
        if self.dead:
            return
        if self.ex is not None and self.ex.resp_started:
            self.ex.reason = reason  # a response is under way: all we can do is stop
            self.ex.keep_alive = False
            self._end(self.ex)
            return
        ex = self.ex if self.ex is not None else Exchange(self.loop.time())
        self.ex = ex
        ex.keep_alive = False
        ex.head = None
        self._page(ex, status, reason, (pages.TEXT, f"{status} {detail}\n".encode()))

    def expire(self, now: float) -> None:
        """The server's sweep found this connection past its deadline."""
        ex = self.ex
        self.deadline = 0.0
        if ex is not None and ex.kind == "proxy" and not ex.resp_started:
            if ex.upstream is not None:
                ex.upstream.detach()
                ex.upstream = None
            seconds = self.config.upstream_header_timeout
            host = ex.head.host.decode("latin-1") if ex.head is not None else "?"
            target = ex.target.key if ex.target is not None else "?"
            body = pages.timed_out(host, target, seconds, html=self._html(ex.head))
            ex.keep_alive = False
            self._page(ex, 504, "upstream-timeout", body)
        elif self.in_head:
            self._refuse_head(408, "header-timeout", "request head not received in time")
        elif ex is not None and ex.resp_done:
            ex.keep_alive = False  # the body left to discard after our answer stalled
            self._end(ex)
        elif ex is None:
            self._close()  # idle keep-alive connection

    # -- response side (called by Upstream) ---------------------------------------------------

    def resp_head(self, status: int, head: bytes) -> None:
        ex = self.ex
        if ex is None or ex.head is None:
            return
        if status < 200:
            if status == 101:
                ex.upgrade_101 = head
            elif status == 100 and ex.head.expect_continue:
                self._write(b"HTTP/1.1 100 Continue\r\n\r\n")
            return
        self.deadline = 0.0
        up = ex.upstream
        chunked = False
        no_body = ex.head.method == b"HEAD" or status in (204, 304)
        if not no_body and up is not None and (up.chunked or not up.framed):
            if ex.head.version == b"1.1":
                chunked = True  # re-chunk: the length is not known in advance
            else:
                ex.keep_alive = False  # HTTP/1.0: the end of the body is the close
        if ex.head.upgrade is not None:
            ex.keep_alive = False  # the upgrade was refused; the client's next bytes are not HTTP
        ex.status, ex.resp_started, ex.resp_chunked = status, True, chunked
        data = http1.forward_response_head(
            head,
            status,
            version=ex.head.version,
            keep_alive=ex.keep_alive,
            chunked=chunked,
            via=self.server.via,
            hop=http1.HOP_LISTED if up is None else up.hop,  # unknown: the general path
        )
        ex.bytes_out += len(data)
        self._write(data)

    def resp_body(self, data: bytes) -> None:
        ex = self.ex
        if ex is None:
            return
        ex.bytes_out += len(data)
        if ex.resp_chunked:
            self._write(b"%x\r\n" % len(data))
            self._write(data)
            self._write(b"\r\n")
        else:
            self._write(data)

    def resp_done(self, reusable: bool) -> None:
        ex = self.ex
        if ex is None:
            return
        ex.resp_done = True
        if ex.resp_chunked:
            self._write(LAST_CHUNK)
        self._release_upstream(ex, reusable, self.write_paused)
        if not ex.req_done:
            ex.keep_alive = False  # answered before the body ended: the rest is unread
            self._end(ex)
            return
        if self.ex is ex:  # _maybe_end, without the call: both sides are done
            self._end(ex)

    def resp_upgraded(self, rest: bytes) -> None:
        ex = self.ex
        if ex is None or ex.upgrade_101 is None or ex.upstream is None:
            self._close()
            return
        # Forwarded whole: Connection and Upgrade are what a 101 is about.
        head = ex.upgrade_101
        end = head.find(b"\r\n")
        fields = b"" if end < 0 else head[end:]
        data = http1.status_line(head, 101, b"1.1") + fields + b"\r\n\r\n"
        ex.status, ex.tunnel, ex.resp_started = 101, True, True
        ex.keep_alive = False  # when the tunnel ends, so does the connection
        ex.upstream.tunnel = True
        ex.bytes_out += len(data) + len(rest)
        self.deadline = 0.0
        self._write(data)
        if rest:
            self._write(rest)
        buffered, self.upgrade_buf = self.upgrade_buf, []
        for piece in buffered:
            ex.bytes_in += len(piece)
            ex.upstream.write(piece)
        self._resume(P_UPGRADE)

    def tunnel_data(self, data: bytes) -> None:
        ex = self.ex
        if ex is not None:
            ex.bytes_out += len(data)
        self._write(data)

    def tunnel_eof(self) -> None:
        """The service half-closed the tunnel: half-close towards the client too (see
        ``eof_received``), or end the tunnel when the client's direction has ended already."""
        ex = self.ex
        if ex is None or ex.upstream_eof:
            return
        ex.upstream_eof = True
        t = self.transport
        if ex.client_eof or t is None or self.dead or not t.can_write_eof():
            self._end(ex)
            return
        self.uncork()
        t.write_eof()  # sent once the bytes already written have gone out

    async def _write_control(self, ex: Exchange, resp: ControlResponse) -> None:
        head_only = ex.head is not None and ex.head.method == b"HEAD"
        out = [b"HTTP/1.1 %d " % resp.status, http1._reason(resp.status), b"\r\n"]
        for name, value in resp.headers:
            out += (name.encode("latin-1"), b": ", value.encode("latin-1"), b"\r\n")
        streamed = resp.stream is not None and not head_only
        if streamed:
            out.append(b"transfer-encoding: chunked\r\n")
        else:
            out.append(b"content-length: %d\r\n" % len(resp.body))
        if not ex.keep_alive:
            out.append(b"connection: close\r\n")
        elif ex.head is not None and ex.head.version == b"1.0":
            out.append(b"connection: keep-alive\r\n")
        out.append(b"\r\n")
        if not streamed and not head_only:
            out.append(resp.body)
        ex.status, ex.resp_started = resp.status, True
        data = b"".join(out)
        ex.bytes_out += len(data)
        self._write(data)
        if streamed and resp.stream is not None:
            async for piece in resp.stream:
                if self.dead:
                    break
                if piece:
                    ex.bytes_out += len(piece)
                    self._write(b"%x\r\n%s\r\n" % (len(piece), piece))
                    if self.write_paused:
                        await self._drain()
            self._write(LAST_CHUNK)

    async def _drain(self) -> None:
        self.drain_waiter = self.loop.create_future()
        await self.drain_waiter
        self.drain_waiter = None

    # -- ending ---------------------------------------------------------------------------------

    def _end(self, ex: Exchange) -> None:
        if self.ex is ex:
            self.ex = None
        if ex.upstream is not None:
            ex.upstream.detach()
            ex.upstream = None
        self._log(ex)
        if not ex.keep_alive or self.dead:
            self._close()
            return
        self.deadline = self.loop.time() + self.config.keepalive_timeout
        if self.paused & P_UPSTREAM:
            self._resume(P_UPSTREAM)
        if self.queue is not None:
            self._replay()

    # -- transport helpers --------------------------------------------------------------------

    def cork(self) -> None:
        if self.corked is None:
            self.corked = []

    def uncork(self) -> None:
        corked, self.corked = self.corked, None
        if corked and self.transport is not None and not self.dead:
            self.transport.writelines(corked)

    def _write(self, data: bytes) -> None:
        if self.corked is not None:
            self.corked.append(data)
        elif self.transport is not None and not self.dead:
            self.transport.write(data)

    def _close(self) -> None:
        if self.dead:
            return
        self.uncork()
        self.dead = True
        if self.transport is not None:
            self.transport.close()

    def _pause(self, bit: int) -> None:
        if not self.paused and self.transport is not None and not self.dead:
            self.transport.pause_reading()
        self.paused |= bit

    def _resume(self, bit: int) -> None:
        if not self.paused & bit:
            return
        self.paused &= ~bit
        if not self.paused and self.transport is not None and not self.dead:
            self.transport.resume_reading()


class HttpsRedirect(ClientConnection):
    """Plain HTTP under ``--https-only``: every request gets a 308 to the same URL over
    https on this port (308 keeps the method and body, RFC 9110 §15.4.9). TLS connections
    still go to the TLS layer on their first read."""

    def _decide(self, ex: Exchange, head: RequestHead) -> None:
        ex.head = head
        ex.keep_alive = head.keep_alive
        location = b"https://" + head.host + head.target
        lines = [f"This gateway answers https only: {location.decode('latin-1')}"]
        body = pages.page(308, "Use https", lines, html=self._html(head))
        self._page(ex, 308, "https-only", body, [(b"location", location)])


class _FastEvents:
    """The callbacks the fast parser sees: no on_message_begin (``_received`` begins the
    exchange), no on_url / on_header (the head is sliced), no on_body (it has none)."""

    __slots__ = ("on_headers_complete", "on_message_complete")

    def __init__(self, conn: ClientConnection) -> None:
        self.on_headers_complete = conn.fast_headers_complete
        self.on_message_complete = conn.on_message_complete
