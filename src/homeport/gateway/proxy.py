"""One client connection of the gateway: parse requests with llhttp, decide, and either answer
(pages, refusals, the control API) or stream the exchange to an upstream and back.

Flow control follows the transports: when the upstream's send buffer fills, the client stops
being read (``pause_reading``), and the other way round, so a body of any size passes through
with bounded memory. Writes caused by one upstream read are corked into one ``writelines``.

Pipelined requests (a second request arriving before the first is answered) are recorded as
parser events, reading pauses, and they are replayed in order once the current exchange ends:
responses never interleave. Every request ends in exactly one ``AccessRecord``.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

import httptools

from homeport.addr import is_loopback
from homeport.gateway import guard, http1, pages
from homeport.gateway.contract import AccessRecord, ControlRequest, ControlResponse
from homeport.gateway.http1 import LAST_CHUNK, ProtocolError, RequestHead
from homeport.gateway.routing import Decision, Target
from homeport.gateway.upstream import Upstream, connect

if TYPE_CHECKING:
    from homeport.gateway.server import ProxyServer

log = logging.getLogger("homeport.gateway.proxy")

# Why reading from the client is paused (a bit set: reading resumes when all are clear).
_P_UPSTREAM = 1  # the upstream's send buffer is full
_P_CONNECT = 2  # waiting for an upstream connection
_P_QUEUE = 4  # a pipelined request waits for the current exchange
_P_UPGRADE = 8  # upgrade asked; bytes wait for the upstream's 101
_IDEMPOTENT = frozenset({b"GET", b"HEAD", b"OPTIONS"})
#: Methods the default cross-site rule never looks at (OPTIONS may be a PNA preflight).
_UNGUARDED = frozenset({b"GET", b"HEAD"})
Event = tuple[Callable[..., None], tuple[Any, ...]]
_new_record = tuple.__new__
_NO_DROP: frozenset[bytes] = frozenset()


class _Stop(Exception):
    """Raised inside a parser callback to stop parsing a connection we are closing."""


class _TooLarge(Exception):
    """The request head passed ``max_header_bytes``."""


class Exchange:
    """One request and its response on a client connection.

    Defaults live on the class, so starting an exchange sets two attributes, not twenty
    (this runs once per request)."""

    kind = "local"
    head: RequestHead | None = None
    route: str | None = None
    target: Target | None = None
    status = 0
    reason: str | None = None
    bytes_in = 0
    bytes_out = 0
    keep_alive = False
    req_done = False
    resp_started = False
    resp_done = False
    resp_chunked = False
    upstream: Upstream | None = None
    pending: list[bytes] | None = None
    up_head = b""
    retried = False
    tunnel = False
    client_eof = False  # tunnel: the client sent FIN (its direction has ended)
    upstream_eof = False  # tunnel: the service sent FIN
    upgrade_101: bytes | None = None  # the service's raw 101 head
    body: bytearray | None = None
    logged = False

    def __init__(self, t0: float) -> None:
        self.t0 = t0  # loop.time(): the wall-clock time is worked out for the log only


class ClientConnection(asyncio.Protocol):
    """The gateway's side of one client TCP connection."""

    # Per-connection state starts from these class defaults: a new connection (the cost that
    # dominates with Connection: close) sets only what differs.
    transport: asyncio.Transport | None = None
    client_ip = "?"
    client_port = 0
    local_port = 0
    trusted = False
    ex: Exchange | None = None
    url = b""
    head_size = 0
    raw_head = 0
    in_head = False
    queue: list[Event] | None = None
    paused = 0
    write_paused = False
    drain_waiter: asyncio.Future[None] | None = None
    corked: list[bytes] | None = None
    dead = False
    task: asyncio.Task[None] | None = None
    #: llhttp with per-field callbacks, made on first need: heads split over reads,
    #: pipelined requests, requests with a body (see ``_received``).
    parser: httptools.HttpRequestParser | None = None
    #: ``http1.whole_head``'s slices of the head being fed to ``fast``.
    whole: tuple[bytes, bytes, bytes, bytes] = (b"", b"", b"", b"")
    upgrade_buf: list[bytes] = []  # noqa: RUF012  (replaced, never mutated, before use)
    #: loop.time() after which the server's sweep acts (0: no deadline).
    deadline = 0.0

    def __init__(self, server: ProxyServer) -> None:
        self.server = server
        self.config = server.config
        self.loop = server.loop
        # llhttp without on_url / on_header for a request that is one plain head in one read
        # (most GETs): llhttp validates it, and its pieces are sliced from the read instead of
        # arriving as one Python callback per field.
        self.fast = httptools.HttpRequestParser(_FastEvents(self))
        self.headers: list[tuple[bytes, bytes]] = []

    # -- asyncio.Protocol -------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = cast(asyncio.Transport, transport)
        peer = transport.get_extra_info("peername")
        if peer:
            self.client_ip = str(peer[0]).removeprefix("::ffff:")
            self.client_port = int(peer[1])
        # Every listener usually shares one port: then no getsockname() per connection.
        self.local_port = self.server.single_port
        if not self.local_port:
            sock = transport.get_extra_info("sockname")
            self.local_port = int(sock[1]) if sock else 0
        # Never trust X-Forwarded-* from a peer that is not on this machine.
        self.trusted = _loopback(self.client_ip)
        self.server.conns.add(self)
        self.deadline = self.loop.time() + self.config.header_timeout

    def data_received(self, data: bytes) -> None:
        try:
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
        if self.paused & _P_UPGRADE:
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
            self._pause(_P_QUEUE)
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
        self._resume(_P_QUEUE)

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

    def _decide(self, ex: Exchange, head: RequestHead) -> None:
        ex.head = head
        ex.keep_alive = head.keep_alive
        decision = self.server.decide(head.host, self.local_port)
        kind = decision.kind
        if kind == "route":
            self._to_route(ex, head, decision)
        elif kind == "control":
            self._to_control(ex, head)
        elif kind == "unknown":
            self._not_found(ex, decision.hostname)
        elif kind == "foreign":
            msg = (
                f"Host {decision.hostname!r} is not a local name. homeport only answers "
                "*.localhost, loopback addresses and names its routes allow (DNS-rebinding guard)."
            )
            self._page(ex, 403, "foreign-host", pages.page(403, "Foreign host", [msg], html=False))
        elif kind == "bad-target":
            problem = "the route's target is not a loopback address or Unix socket"
            self._bad_gateway(ex, problem, decision)
        else:
            self._refuse_head(400, "bad-request", "Host field is not a valid host[:port]")

    def _body(self, data: bytes) -> None:
        ex = self.ex
        if ex is None:
            return
        ex.bytes_in += len(data)
        if ex.kind == "proxy":
            if ex.head is not None and ex.head.chunked:
                self._to_upstream(ex, b"%x\r\n" % len(data), data, b"\r\n")
            else:
                self._to_upstream(ex, data)
        elif ex.kind == "control" and ex.body is not None:
            if len(ex.body) + len(data) > self.config.max_control_body:
                ex.body = None
                ex.kind = "local"
                self._page(ex, 413, "body-too-large", pages.page(413, "Too large", [], html=False))
                return
            ex.body += data
        elif ex.kind == "local" and ex.resp_done and ex.bytes_in > self.config.max_discard_body:
            # Answered already; past the bound, closing is cheaper than reading on.
            ex.keep_alive = False
            self._end(ex)

    def _complete(self) -> None:
        ex = self.ex
        if ex is None:
            return
        ex.req_done = True
        if ex.kind == "proxy":
            if ex.head is not None and ex.head.chunked:
                self._to_upstream(ex, LAST_CHUNK)
            if not ex.resp_started and not self.deadline:  # a body: its end starts the clock
                self.deadline = self.loop.time() + self.config.upstream_header_timeout
        elif ex.kind == "control" and ex.body is not None and ex.head is not None:
            self._start_control(ex, ex.head, bytes(ex.body))
        if ex.resp_done and self.ex is ex:  # _maybe_end, without the call
            self._end(ex)

    def _upgrade(self, rest: bytes) -> None:
        ex = self.ex
        if ex is None or ex.kind != "proxy" or ex.resp_done:
            # Answered ourselves (refused, 404 …): the bytes after the head are not HTTP.
            self._close()
            return
        self._pause(_P_UPGRADE)
        self.upgrade_buf = [rest] if rest else []

    def _to_upstream(self, ex: Exchange, *pieces: bytes) -> None:
        if ex.pending is not None:
            ex.pending.extend(pieces)
        elif ex.upstream is not None:
            for piece in pieces:
                ex.upstream.write(piece)

    # -- decisions ------------------------------------------------------------------------------

    def _to_route(self, ex: Exchange, head: RequestHead, decision: Decision) -> None:
        route, target = decision.route, decision.target
        assert route is not None
        assert target is not None
        ex.route = route.name
        ex.target = target
        if decision.loops or (
            head.via is not None and head.via.count(self.server.via) >= self.config.max_hops
        ):
            body = pages.loop_detected(decision.hostname, html=self._html(head))
            self._page(ex, 508, "loop", body)
            return
        drop = _NO_DROP
        if (
            route.auth != "none"
            or route.same_origin
            # The default cross-site rule (guard.check_cross_site): a set lookup per request.
            or (
                not route.allow_cross_site
                and (head.method not in _UNGUARDED or head.upgrade is not None)
            )
        ):
            head = ex.head = http1.unraw(head)  # the guard may strip fields: as a list
            verdict = guard.check(route, _guard_request(head))
            if not verdict.allow:
                self._refused(ex, head, verdict)
                return
            drop = _apply_verdict(head, verdict)
        ex.kind = "proxy"
        ex.up_head = http1.upstream_head(
            head, client_ip=self.client_ip, trusted=self.trusted, via=self.server.via, drop=drop,
            underscores=route.allow_underscores,
        )  # fmt: skip
        has_body = head.chunked or head.content_length  # head.has_body, without a call
        self.deadline = 0.0 if has_body else ex.t0 + self.config.upstream_header_timeout
        up = self.server.pool.take(target.key)
        if up is not None:
            self._attach(ex, up)
        else:
            self._connect(ex, target)

    def _connect(self, ex: Exchange, target: Target) -> None:
        ex.pending = []
        self._pause(_P_CONNECT)
        self.task = self.loop.create_task(self._open(ex, target))

    async def _open(self, ex: Exchange, target: Target) -> None:
        try:
            up = await connect(self.server.pool, target, self.config.connect_timeout)
        except TimeoutError:
            problem = f"it did not accept a connection within {self.config.connect_timeout:g} s"
            self._connect_failed(ex, problem)
            return
        except ConnectionRefusedError:
            self._connect_failed(ex, "nothing listens there")
            return
        except FileNotFoundError:
            self._connect_failed(ex, "there is no socket at that path")
            return
        except OSError as exc:
            self._connect_failed(ex, f"connecting failed ({exc.strerror or exc})")
            return
        finally:
            self.task = None
        if self.dead or self.ex is not ex:
            up.close()
            return
        self._attach(ex, up)
        self._resume(_P_CONNECT)

    def _connect_failed(self, ex: Exchange, problem: str) -> None:
        if self.dead or self.ex is not ex:
            return
        ex.pending = None
        ex.kind = "local"
        self._bad_gateway(ex, problem, None)
        self._resume(_P_CONNECT)

    def _attach(self, ex: Exchange, up: Upstream) -> None:
        ex.upstream = up
        assert ex.head is not None
        up.start(self, ex.up_head, head_only=ex.head.method == b"HEAD")
        pending, ex.pending = ex.pending, None
        if pending:
            up.write(b"".join(pending))
        if self.write_paused and up.transport is not None:
            up.transport.pause_reading()

    def _to_control(self, ex: Exchange, head: RequestHead) -> None:
        if self.server.control is None:
            self._not_found(ex, head.host.decode("latin-1"))
            return
        ex.kind = "control"
        ex.reason = "control"
        ex.body = bytearray()
        self.deadline = 0.0
        if head.expect_continue and head.content_length <= self.config.max_control_body:
            self._write(b"HTTP/1.1 100 Continue\r\n\r\n")  # RFC 9110 §10.1.1

    # -- answers of our own -----------------------------------------------------------------

    def _html(self, head: RequestHead | None) -> bool:
        return head is not None and pages.wants_html(head.field(b"accept"))

    def _not_found(self, ex: Exchange, hostname: str) -> None:
        routes = self.server.router.table.routes
        port = self.local_port
        body = pages.not_found(hostname, routes, port, html=self._html(ex.head))
        self._page(ex, 404, "unknown-host", body)

    def _bad_gateway(self, ex: Exchange, problem: str, decision: Decision | None) -> None:
        route = None if decision is None else decision.route
        if route is None and ex.route is not None:
            route = self.server.router.lookup(ex.route)
        service = None
        if route is not None and route.service_id and self.server.service_status is not None:
            try:
                service = self.server.service_status(route.service_id)
            except Exception:
                log.exception("service status lookup failed for %s", route.service_id)
        hostname = ex.head.host.decode("latin-1") if ex.head is not None else "?"
        target = route.target if route is not None else "?"
        body = pages.bad_gateway(
            hostname, target, problem, service=service, html=self._html(ex.head)
        )
        reason = "upstream-refused" if "nothing listens" in problem else "upstream-error"
        self._page(ex, 502, reason, body)

    def _refused(self, ex: Exchange, head: RequestHead, verdict: guard.Verdict) -> None:
        extra = [(k.encode(), v.encode()) for k, v in verdict.headers]
        lines = [verdict.message]
        title = {303: "See other", 401: "Sign in needed"}.get(verdict.status, "Refused")
        body = pages.page(verdict.status, title, lines, html=self._html(head))
        self._page(ex, verdict.status, verdict.reason or "auth", body, extra)

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
            self._resume(_P_UPSTREAM)
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
        up, ex.upstream = ex.upstream, None
        if up is not None:
            if reusable and ex.req_done:
                if self.write_paused and up.transport is not None:
                    up.transport.resume_reading()
                self.server.pool.give(up)
            else:
                up.detach()
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
        self._resume(_P_UPGRADE)

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

    def upstream_failed(self, up: Upstream, problem: str) -> None:
        ex = self.ex
        if ex is None or ex.upstream is not up:
            return
        ex.upstream = None
        if ex.tunnel:
            self._end(ex)
        elif not ex.resp_started:
            head, target = ex.head, ex.target
            # The service closed a pooled connection just as we reused it: safe to retry a
            # request that has no body and no side effects (RFC 9110 §9.2.2).
            retry = up.reused and not up.got_response and not ex.retried
            safe = head is not None and head.method in _IDEMPOTENT and not head.has_body
            if retry and safe and target is not None:
                ex.retried = True
                self._connect(ex, target)
                return
            ex.kind = "local"
            self._bad_gateway(ex, f"the service {problem} before answering", None)
        else:
            ex.reason = "upstream-died"
            ex.keep_alive = False
            self._end(ex)  # the client sees a short body: the framing tells it

    def upstream_pause(self, paused: bool) -> None:
        if paused:
            self._pause(_P_UPSTREAM)
        else:
            self._resume(_P_UPSTREAM)

    # -- control API --------------------------------------------------------------------------

    def _start_control(self, ex: Exchange, head: RequestHead, body: bytes) -> None:
        path, _, query = head.target.decode("latin-1").partition("?")
        req = ControlRequest(
            method=head.method.decode("latin-1"),
            path=path,
            query=query,
            headers=tuple(
                (n.decode("latin-1").lower(), v.decode("latin-1"))
                for n, v in (self.headers if head.raw is None else http1.request_fields(head.raw))
            ),
            body=body,
            client_addr=self.client_ip,
        )
        ex.body = None
        self.task = self.loop.create_task(self._control(ex, req))

    async def _control(self, ex: Exchange, req: ControlRequest) -> None:
        control = self.server.control
        assert control is not None
        try:
            resp = await control.handle(req)
        except Exception:
            log.exception("control API failed on %s %s", req.method, req.path)
            resp = ControlResponse(500, [("content-type", "text/plain")], b"internal error\n")
        if self.dead or self.ex is not ex:
            return
        try:
            await self._write_control(ex, resp)
        except Exception:
            log.exception("control API stream failed on %s %s", req.method, req.path)
            ex.keep_alive = False
        finally:
            self.task = None
        ex.resp_done = True
        self._maybe_end(ex)

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

    def _maybe_end(self, ex: Exchange) -> None:
        if ex.req_done and ex.resp_done and self.ex is ex:
            self._end(ex)

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
        if self.paused & _P_UPSTREAM:
            self._resume(_P_UPSTREAM)
        if self.queue is not None:
            self._replay()

    def _log(self, ex: Exchange) -> None:
        if ex.logged:
            return
        ex.logged = True
        sink = self.server.access_sink
        if sink is None or not self.config.access_log:
            return
        head = ex.head
        path = head.target.decode("latin-1") if head is not None else ""
        if "token=" in path:
            # never log a credential: ?homeport_token= on routes, /login?token= codes
            path = path.partition("?")[0]
        # tuple.__new__ skips the NamedTuple's Python-level __new__ (0.17 µs against 0.38):
        # this runs once per request, and the 13 fields below are exactly AccessRecord's.
        now = self.loop.time()
        record = _new_record(
            AccessRecord,
            (
                time.time() - (now - ex.t0),
                self.client_ip,
                self.client_port,
                head.host.decode("latin-1") if head is not None else "",
                head.method.decode("latin-1") if head is not None else "",
                path,
                ex.status,
                ex.bytes_in,
                ex.bytes_out,
                (now - ex.t0) * 1000.0,
                ex.route,
                ex.reason,
                not self.trusted,
            ),
        )
        try:
            sink(record)
        except Exception:
            log.exception("access sink failed")

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


class _FastEvents:
    """The callbacks the fast parser sees: no on_message_begin (``_received`` begins the
    exchange), no on_url / on_header (the head is sliced), no on_body (it has none)."""

    __slots__ = ("on_headers_complete", "on_message_complete")

    def __init__(self, conn: ClientConnection) -> None:
        self.on_headers_complete = conn.fast_headers_complete
        self.on_message_complete = conn.on_message_complete


@functools.lru_cache(maxsize=256)
def _loopback(client_ip: str) -> bool:
    # Parsing an address costs microseconds; a new connection arrives from a handful of them.
    return is_loopback(client_ip)


def _guard_request(head: RequestHead) -> guard.GuardRequest:
    field = head.field

    def get(name: bytes) -> str | None:
        value = field(name)
        return None if value is None else value.decode("latin-1")

    path, _, query = head.target.decode("latin-1").partition("?")
    pna = field(b"access-control-request-private-network")
    return guard.GuardRequest(
        head.method.decode("latin-1"),
        path,
        query,
        head.host.decode("latin-1"),
        get(b"authorization"),
        get(b"cookie"),
        get(b"origin"),
        get(b"sec-fetch-site"),
        head.upgrade is not None,
        pna is not None and pna.strip().lower() == b"true",
    )


def _apply_verdict(head: RequestHead, verdict: guard.Verdict) -> frozenset[bytes]:
    """Remove the credentials homeport consumed; returns names to drop from the forwarded head."""
    if verdict.strip_cookie:
        kept = []
        for name, value in head.headers:
            if name.lower() == b"cookie":
                value = guard.strip_cookie(value.decode("latin-1")).encode("latin-1")
                if not value:
                    continue
            kept.append((name, value))
        head.headers = kept
    return frozenset({b"authorization"}) if verdict.strip_authorization else frozenset()
