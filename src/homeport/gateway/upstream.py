"""Connections to upstream services, and the pool that keeps them alive between requests.

An ``Upstream`` parses one response at a time with llhttp and hands the pieces to the client
connection it currently serves (``Exchange`` in ``proxy.py``), which writes them on. Idle
connections wait in ``Pool`` per target; one that the service closed while idle leaves the pool
in ``connection_lost``. The race where a service closes an idle connection just as it is reused
is answered by the client side, which retries idempotent requests once on a fresh connection.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Protocol, cast

import httptools

from homeport.gateway.http1 import HOP_NONE, response_framing
from homeport.gateway.routing import Target

if TYPE_CHECKING:
    from collections.abc import Callable

log = logging.getLogger("homeport.gateway.upstream")


class ResponseSink(Protocol):
    """What an upstream connection reports to the client side."""

    def resp_head(self, status: int, head: bytes) -> None: ...
    def resp_body(self, data: bytes) -> None: ...
    def resp_done(self, reusable: bool) -> None: ...
    def resp_upgraded(self, rest: bytes) -> None: ...
    def upstream_failed(self, up: Upstream, problem: str) -> None: ...
    def upstream_pause(self, paused: bool) -> None: ...
    def tunnel_data(self, data: bytes) -> None: ...
    def tunnel_eof(self) -> None: ...
    def cork(self) -> None: ...
    def uncork(self) -> None: ...


class Upstream(asyncio.Protocol):
    """One connection to a service; serves one exchange at a time."""

    # For mypyc (``make compiled``): it refuses ``del`` of an attribute not listed here.
    __deletable__ = ("parser",)

    def __init__(self, pool: Pool, key: str) -> None:
        self.pool = pool
        self.key = key
        self.transport: asyncio.Transport | None = None
        self.sink: ResponseSink | None = None
        self.parser = httptools.HttpResponseParser(self)
        #: Reads holding the response head(s) not yet handed on (llhttp has checked them);
        #: a list, so a head trickled in many small reads is joined once, not copied each time.
        self.raw: list[bytes] = []
        self.closed = False
        self.reused = False
        self.got_response = False
        self.head_only = False  # a HEAD request: the response has no body whatever it says
        self.framed = False  # Content-Length or chunked: the end is known without EOF
        self.chunked = False  # Transfer-Encoding: chunked (the body arrives de-chunked)
        self.hop = HOP_NONE  # which hop-by-hop fields the head has (to cut out)
        self.tunnel = False
        self.in_body = False  # the final response head arrived
        self.head_bytes = 0
        self.idle_since = 0.0

    # -- asyncio.Protocol -------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        sink = self.sink
        if sink is None:  # bytes on an idle connection: the framing is off, drop it
            self.close()
            return
        if self.tunnel:
            sink.tunnel_data(data)
            return
        self.got_response = True
        if not self.in_body:
            # llhttp buffers a header field until it ends: bound what a broken service can
            # make us hold before its response head is complete.
            self.head_bytes += len(data)
            self.raw.append(data)
            if self.head_bytes > self.pool.max_head:
                self._fail(f"sent a response head over {self.pool.max_head // 1024} KiB")
                return
        sink.cork()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade as exc:
            sink.resp_upgraded(data[exc.args[0] :])
        except httptools.HttpParserCallbackError:
            log.exception("upstream %s: handler failed", self.key)
            self._fail("could not be relayed")
        except httptools.HttpParserError as exc:
            self._fail(f"sent a response that is not valid HTTP/1.1 ({exc})")
        finally:
            sink.uncork()

    def eof_received(self) -> bool | None:
        if self.tunnel and self.sink is not None:
            # A tunnel's FIN ends one direction only: the client may still send (the client
            # side closes us once both directions have ended).
            self.sink.tunnel_eof()
            return True
        return None  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.pool.forget(self)
        del self.parser  # it points back at us: let refcounting free this connection
        sink, self.sink = self.sink, None
        if sink is None:
            return
        if not self.tunnel and self.in_body and not self.framed and not self.head_only:
            sink.resp_done(False)  # a close-delimited body ends here (RFC 9112 §6.3 item 8)
        else:
            sink.upstream_failed(self, "closed the connection")

    def pause_writing(self) -> None:
        if self.sink is not None:
            self.sink.upstream_pause(True)

    def resume_writing(self) -> None:
        if self.sink is not None:
            self.sink.upstream_pause(False)

    # -- llhttp callbacks -------------------------------------------------------------------

    # No on_status / on_header: a Python call per field was a large share of the CPU per
    # request. The head is taken whole from the bytes llhttp has just accepted instead.

    def on_headers_complete(self) -> None:
        status = self.parser.get_status_code()
        raw = self.raw[0] if len(self.raw) == 1 else b"".join(self.raw)
        # llhttp requires CRLF line ends (it refuses bare LF and CR), so the head ends at the
        # first empty line; what follows is body or the next head (after a 1xx).
        end = raw.find(b"\r\n\r\n")
        if end < 0:  # bytes after a finished response (no sink): nothing to hand on
            self._fail("sent more than one response")
            return
        head = raw[:end]
        self.framed, self.chunked, self.hop = response_framing(head)
        if 100 <= status < 200 and status != 101:
            self.framed = self.chunked = False
            self.raw = [raw[end + 4 :]]  # the final head may have come in the same read
            if self.sink is not None:
                self.sink.resp_head(status, head)
            return
        self.in_body = True
        self.raw = []
        if self.sink is not None:
            self.sink.resp_head(status, head)
        if self.head_only and self.sink is not None:
            self._finish(self.parser.should_keep_alive())

    def on_body(self, body: bytes) -> None:
        if self.sink is not None:
            self.sink.resp_body(body)

    def on_message_complete(self) -> None:
        status = self.parser.get_status_code()
        sink = self.sink
        if status < 200 or self.head_only or sink is None:
            return  # 1xx: the final response follows; HEAD and 101 were finished already
        self.sink = None  # _finish, without the call (once per response)
        sink.resp_done(self.parser.should_keep_alive())

    # -- driving ----------------------------------------------------------------------------

    def start(self, sink: ResponseSink, head: bytes, *, head_only: bool) -> None:
        """Begin an exchange: send the request head; the response goes to ``sink``."""
        self.sink = sink
        if self.head_only or head_only:
            # llhttp cannot be told a response has no body: a HEAD exchange gets its own
            # parser, and the next exchange after it a clean one.
            self.parser = httptools.HttpResponseParser(self)
        self.got_response = self.framed = self.chunked = self.in_body = False
        self.head_bytes = 0
        self.head_only = head_only
        self.raw = []
        assert self.transport is not None
        self.transport.write(head)

    def write(self, data: bytes) -> None:
        if self.transport is not None and not self.closed:
            self.transport.write(data)

    def write_eof(self) -> bool:
        """Half-close towards the service (a tunnel's client sent FIN); False when this
        transport cannot (then the caller closes instead)."""
        t = self.transport
        if t is None or self.closed or not t.can_write_eof():
            return False
        t.write_eof()
        return True

    def _finish(self, keep_alive: bool) -> None:
        sink, self.sink = self.sink, None
        if sink is not None:
            sink.resp_done(keep_alive)

    def _fail(self, problem: str) -> None:
        sink, self.sink = self.sink, None
        self.close()
        if sink is not None:
            sink.upstream_failed(self, problem)

    def detach(self) -> None:
        """The client side is gone or done with this connection without finishing it."""
        self.sink = None
        self.close()

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    def abort(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()


class Pool:
    """Idle keep-alive connections per target key (LIFO: the warmest connection first)."""

    def __init__(self, size: int, idle_timeout: float, max_head: int = 1 << 20) -> None:
        self.size = size
        self.idle_timeout = idle_timeout
        #: Largest response head (status line and fields) accepted from a service.
        self.max_head = max_head
        self.idle: dict[str, list[Upstream]] = {}
        #: Which address of a two-family target (``localhost``) answered last.
        self.preferred: dict[str, str] = {}

    def take(self, key: str) -> Upstream | None:
        conns = self.idle.get(key)
        while conns:
            up = conns.pop()
            if not up.closed:
                up.reused = True
                return up
        return None

    def give(self, up: Upstream) -> None:
        conns = self.idle.setdefault(up.key, [])
        if up.closed or len(conns) >= self.size:
            up.close()
            return
        up.idle_since = time.monotonic()
        up.sink = None
        conns.append(up)

    def forget(self, up: Upstream) -> None:
        conns = self.idle.get(up.key)
        if conns and up in conns:
            conns.remove(up)

    def sweep(self, now: float) -> None:
        """Close connections idle longer than the timeout (the service may drop them anyway)."""
        for conns in self.idle.values():
            while conns and now - conns[0].idle_since > self.idle_timeout:
                conns.pop(0).close()

    def next_expiry(self, now: float) -> float | None:
        """Seconds until ``sweep`` has an idle connection to close (None: the pool is empty)."""
        oldest = [conns[0].idle_since for conns in self.idle.values() if conns]
        return max(0.0, min(oldest) + self.idle_timeout - now) if oldest else None

    def close(self) -> None:
        for conns in self.idle.values():
            for up in conns:
                up.close()
        self.idle.clear()


async def connect(
    pool: Pool,
    target: Target,
    connect_timeout: float,
    factory: Callable[[Pool, str], Upstream] = Upstream,
) -> Upstream:
    """Open a new connection to ``target``; for ``localhost`` try both families, the one that
    answered last time first. Raises OSError (ConnectionRefusedError, FileNotFoundError …) or
    TimeoutError."""
    loop = asyncio.get_running_loop()
    if target.path is not None:
        path = target.path
        async with asyncio.timeout(connect_timeout):
            _, up = await loop.create_unix_connection(lambda: factory(pool, target.key), path)
        return up
    hosts = list(target.hosts)
    first = pool.preferred.get(target.key)
    if first in hosts and hosts[0] != first:
        hosts.remove(first)
        hosts.insert(0, first)
    error: OSError | None = None
    for host in hosts:
        try:
            async with asyncio.timeout(connect_timeout):
                _, up = await loop.create_connection(
                    lambda: factory(pool, target.key), host, target.port
                )
        except OSError as exc:
            error = exc
            continue
        if len(hosts) > 1:
            pool.preferred[target.key] = host
        return up
    assert error is not None
    raise error
