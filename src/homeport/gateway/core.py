"""One exchange core: what happens to a request once a front-end has parsed its head.

A front-end turns client bytes into exchanges: ``proxy.ClientConnection`` for HTTP/1.1 (llhttp,
one exchange at a time per connection) and ``h2.H2Stream`` for HTTP/2 (one per stream). Both
inherit ``ExchangeCore``, so routing, the guard, the gateway's own answers, the upstream pool and
the access log exist once, here; a front-end supplies only how its bytes look on the wire.

An exchange moves through a few named states (``Exchange.phase``)::

    head        the request head is being read (the front-end's parser owns this)
    answering   homeport answers itself (the control API; its own pages end at once)
    connecting  routed to a service; waiting for a pooled or new upstream connection
    waiting     the request went upstream; no response head yet (``upstream_header_timeout``)
    streaming   the response is being relayed, body pieces as they come
    draining    answered; the rest of the request body is read and thrown away
    tunnel      101 Switching Protocols: two byte streams until both ends close
    done        both sides finished: logged once, the connection serves the next one

Flow control in both directions is the front-end's: ``_pause``/``_resume`` stop and restart
reading the client (a TCP transport for h1, a stream's flow-control window for h2), and the
``Upstream`` is paused when the client cannot take more (``pause_writing``).

What the front-end implements (the hooks the core calls):

- ``_page(ex, status, reason, body, headers)``: answer the request ourselves.
- ``_refuse_head(status, reason, detail)``: the request cannot be trusted; answer and stop.
- ``_end(ex)``: the exchange is over (log it, keep or close the connection or stream).
- ``_pause(bit)`` / ``_resume(bit)``: stop / restart reading this exchange's request body.
- ``_continue()``: send ``100 Continue``.
- ``_write_control(ex, resp)``: write a control-API response (maybe streamed).
- the ``upstream.ResponseSink`` methods (``resp_head``, ``resp_body`` …).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from typing import TYPE_CHECKING

from homeport.addr import is_loopback
from homeport.gateway import guard, http1, pages
from homeport.gateway.contract import AccessRecord, ControlRequest, ControlResponse
from homeport.gateway.http1 import LAST_CHUNK, RequestHead
from homeport.gateway.routing import Decision, Target
from homeport.gateway.upstream import Upstream, connect

if TYPE_CHECKING:
    from homeport.gateway.config import ProxyConfig
    from homeport.gateway.server import ProxyServer

log = logging.getLogger("homeport.gateway.core")

# Why reading the request is paused (a bit set: reading resumes when all are clear).
P_UPSTREAM = 1  # the upstream's send buffer is full
P_CONNECT = 2  # waiting for an upstream connection
P_QUEUE = 4  # h1: a pipelined request waits for the current exchange
P_UPGRADE = 8  # h1: upgrade asked; bytes wait for the upstream's 101
_IDEMPOTENT = frozenset({b"GET", b"HEAD", b"OPTIONS"})
#: Methods the default cross-site rule never looks at (OPTIONS may be a PNA preflight).
_UNGUARDED = frozenset({b"GET", b"HEAD"})
_new_record = tuple.__new__
_NO_DROP: frozenset[bytes] = frozenset()


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

    @property
    def phase(self) -> str:
        """Which of the named states (module docstring) this exchange is in."""
        if self.tunnel:
            return "tunnel"
        if self.resp_done:
            return "done" if self.req_done else "draining"
        if self.resp_started:
            return "streaming"
        if self.pending is not None:
            return "connecting"
        if self.upstream is not None:
            return "waiting"
        return "head" if self.head is None else "answering"


class ExchangeCore:
    """Route, guard, answer, proxy and log the current exchange of a front-end.

    Mixed into each front-end class (see the module docstring for the hooks it provides)."""

    # Set by the front-end.
    server: ProxyServer
    config: ProxyConfig
    loop: asyncio.AbstractEventLoop
    client_ip = "?"
    client_port = 0
    local_port = 0
    trusted = False
    ex: Exchange | None = None
    dead = False
    task: asyncio.Task[None] | None = None
    #: loop.time() after which the server's sweep acts (0: no deadline).
    deadline = 0.0
    #: The client cannot take more now: a new upstream starts paused.
    write_paused = False
    #: What the access log records: the application protocol, and whether it ran over TLS.
    protocol = "http/1.1"
    tls = False

    # -- hooks (the front-end overrides these) -------------------------------------------------

    def _page(
        self,
        ex: Exchange,
        status: int,
        reason: str,
        body: tuple[bytes, bytes],
        headers: list[tuple[bytes, bytes]] | None = None,
    ) -> None:
        raise NotImplementedError

    def _refuse_head(self, status: int, reason: str, detail: str) -> None:
        raise NotImplementedError

    def _end(self, ex: Exchange) -> None:
        raise NotImplementedError

    def _pause(self, bit: int) -> None:
        raise NotImplementedError

    def _resume(self, bit: int) -> None:
        raise NotImplementedError

    def _continue(self) -> None:
        raise NotImplementedError

    async def _write_control(self, ex: Exchange, resp: ControlResponse) -> None:
        raise NotImplementedError

    # The rest of ``upstream.ResponseSink``: how a response goes back on this front-end's wire.

    def resp_head(self, status: int, head: bytes) -> None:
        raise NotImplementedError

    def resp_body(self, data: bytes) -> None:
        raise NotImplementedError

    def resp_done(self, reusable: bool) -> None:
        raise NotImplementedError

    def resp_upgraded(self, rest: bytes) -> None:
        raise NotImplementedError

    def tunnel_data(self, data: bytes) -> None:
        raise NotImplementedError

    def tunnel_eof(self) -> None:
        raise NotImplementedError

    def cork(self) -> None:
        raise NotImplementedError

    def uncork(self) -> None:
        raise NotImplementedError

    def _control_fields(self, head: RequestHead) -> list[tuple[bytes, bytes]]:
        """The request's fields as the control API sees them (all of them, as received)."""
        return head.headers if head.raw is None else http1.request_fields(head.raw)

    # -- deciding --------------------------------------------------------------------------

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

    # -- request body (the front-end has de-framed it) -----------------------------------

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

    def _to_upstream(self, ex: Exchange, *pieces: bytes) -> None:
        if ex.pending is not None:
            ex.pending.extend(pieces)
        elif ex.upstream is not None:
            for piece in pieces:
                ex.upstream.write(piece)

    # -- routing to a service --------------------------------------------------------------

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
        self._pause(P_CONNECT)
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
        self._resume(P_CONNECT)

    def _connect_failed(self, ex: Exchange, problem: str) -> None:
        if self.dead or self.ex is not ex:
            return
        ex.pending = None
        ex.kind = "local"
        self._bad_gateway(ex, problem, None)
        self._resume(P_CONNECT)

    def _attach(self, ex: Exchange, up: Upstream) -> None:
        ex.upstream = up
        assert ex.head is not None
        up.start(self, ex.up_head, head_only=ex.head.method == b"HEAD")
        pending, ex.pending = ex.pending, None
        if pending:
            up.write(b"".join(pending))
        if self.write_paused and up.transport is not None:
            up.transport.pause_reading()

    def _release_upstream(self, ex: Exchange, reusable: bool, reading_paused: bool) -> None:
        """At the end of a response: give the upstream back to the pool when it can carry
        another request (the service said so and the request was sent whole), else detach
        it. ``reading_paused``: the front-end had paused it for a slow client."""
        up, ex.upstream = ex.upstream, None
        if up is None:
            return
        if reusable and ex.req_done:
            if reading_paused and up.transport is not None:
                up.transport.resume_reading()
            self.server.pool.give(up)
        else:
            up.detach()

    def _to_control(self, ex: Exchange, head: RequestHead) -> None:
        if self.server.control is None:
            self._not_found(ex, head.host.decode("latin-1"))
            return
        ex.kind = "control"
        ex.reason = "control"
        ex.body = bytearray()
        self.deadline = 0.0
        if head.expect_continue and head.content_length <= self.config.max_control_body:
            self._continue()  # RFC 9110 §10.1.1

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
            self._pause(P_UPSTREAM)
        else:
            self._resume(P_UPSTREAM)

    # -- control API --------------------------------------------------------------------------

    def _start_control(self, ex: Exchange, head: RequestHead, body: bytes) -> None:
        path, _, query = head.target.decode("latin-1").partition("?")
        req = ControlRequest(
            method=head.method.decode("latin-1"),
            path=path,
            query=query,
            headers=tuple(
                (n.decode("latin-1").lower(), v.decode("latin-1"))
                for n, v in self._control_fields(head)
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

    def _maybe_end(self, ex: Exchange) -> None:
        if ex.req_done and ex.resp_done and self.ex is ex:
            self._end(ex)

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
        # this runs once per request, and the 15 fields below are exactly AccessRecord's.
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
                self.protocol,
                self.tls,
            ),
        )
        try:
            sink(record)
        except Exception:
            log.exception("access sink failed")


def identify(server: ProxyServer, transport: asyncio.BaseTransport) -> tuple[str, int, int, bool]:
    """Who a new client is: (its address, its port, our port, whether it is on this machine)."""
    client_ip, client_port = "?", 0
    peer = transport.get_extra_info("peername")
    if peer:
        client_ip = str(peer[0]).removeprefix("::ffff:")
        client_port = int(peer[1])
    # Every listener usually shares one port: then no getsockname() per connection.
    local_port = server.single_port
    if not local_port:
        sock = transport.get_extra_info("sockname")
        local_port = int(sock[1]) if sock else 0
    # Never trust X-Forwarded-* from a peer that is not on this machine.
    return client_ip, client_port, local_port, _loopback(client_ip)


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
