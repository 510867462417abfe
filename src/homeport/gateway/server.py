"""``ProxyServer``: the gateway's listening sockets, its route snapshot, the upstream pool and
the sweep that enforces deadlines (slow request heads, idle keep-alive, slow upstreams).

Usage (the daemon does this)::

    server = ProxyServer(ProxyConfig(), control=app, access_sink=sink.put,
                         service_status=services.status)
    bound = await server.start([("127.0.0.1", 62893), ("::1", 62893)])
    server.set_routes(RouteTable((Route("api.localhost", "http://127.0.0.1:8000"),)))
    ...
    await server.close()

Run it on uvloop when it is importable: ``asyncio.Runner(loop_factory=loop_factory())``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import errno
import logging
import secrets
import socket
import ssl
import time
from collections.abc import Callable, Sequence
from typing import Any, cast

from homeport.gateway.config import ProxyConfig
from homeport.gateway.contract import AccessSink, ControlApp, RouteTable, ServiceStatusLookup
from homeport.gateway.h2 import H2Connection
from homeport.gateway.proxy import ClientConnection, HttpsRedirect
from homeport.gateway.routing import Decision, Router, points_at
from homeport.gateway.upstream import Pool

log = logging.getLogger("homeport.gateway.server")

_CACHE_MAX = 4096


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop]:
    """uvloop's event loop when it is installed (about twice the request rate), else asyncio's."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


class ProxyServer:
    """The data plane: accepts clients, routes by Host, proxies, answers its own pages."""

    def __init__(
        self,
        config: ProxyConfig,
        *,
        control: ControlApp | None = None,
        access_sink: AccessSink | None = None,
        service_status: ServiceStatusLookup | None = None,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        if config.https_only and tls is None:
            raise ValueError("https_only needs a TLS context")
        self.config = config
        #: Server-side TLS: its SNI callback picks the leaf certificate, its ALPN list offers
        #: ``h2`` and ``http/1.1``. None: plain HTTP only.
        self.tls = tls
        self.control = control
        self.access_sink = access_sink
        self.service_status = service_status
        self.router = self._router(RouteTable())
        self.pool = Pool(
            config.upstream_pool_size,
            config.upstream_idle_timeout,
            config.max_upstream_header_bytes,
        )
        #: Everything the sweep may expire: client connections, h2 streams, connections
        #: still before their first byte or TLS handshake (``expire``, ``deadline``, ``transport``).
        self.conns: set[Any] = set()
        #: Connections ever accepted; ``_idle`` sets ``_wake`` for the next one to end it.
        self.accepted = 0
        self._wake: asyncio.Event | None = None
        self.bound: list[tuple[str, int]] = []
        #: The one port every listener shares (0 when they differ).
        self.single_port = 0
        #: Our Via element (RFC 9110 §7.6.3); seen again in a request, it reveals a loop.
        self.via = b"1.1 homeport-" + secrets.token_hex(4).encode()
        self._cache: dict[tuple[bytes, int], Decision] = {}
        self._servers: list[asyncio.Server] = []
        self._sweeper: asyncio.Task[None] | None = None
        #: Set by ``start`` (protocol tests without sockets assign a loop themselves).
        self.loop: asyncio.AbstractEventLoop = cast(asyncio.AbstractEventLoop, None)

    def _router(self, table: RouteTable) -> Router:
        return Router(
            table,
            gateway_names=self.config.gateway_names,
            allow_hosts=self.config.allow_hosts,
            host_check=self.config.host_check,
        )

    async def start(
        self, listen: Sequence[tuple[str, int]], *, reuse_port: bool = False
    ) -> list[tuple[str, int]]:
        """Bind every address; port 0 picks one free port shared by all of them.
        Returns the bound (host, port) pairs; raises OSError when an address cannot be bound.
        ``reuse_port``: bind with ``SO_REUSEPORT``, so worker processes can bind the same
        addresses and share the connections (``homeport up --workers``)."""
        self.loop = asyncio.get_running_loop()
        if not listen:
            raise ValueError("nothing to listen on")
        shared_zero = all(port == 0 for _, port in listen) and len(listen) > 1
        for attempt in range(8):
            try:
                await self._bind(listen, reuse_port)
                break
            except OSError as exc:
                await self._close_servers()
                # With port 0 the first family's pick may be taken in the other: pick again.
                if not (shared_zero and exc.errno == errno.EADDRINUSE and attempt < 7):
                    raise
        ports = {port for _, port in self.bound}
        self.single_port = ports.pop() if len(ports) == 1 else 0
        self._sweeper = self.loop.create_task(self._sweep())
        return list(self.bound)

    async def adopt(self, sockets: Sequence[socket.socket]) -> list[tuple[str, int]]:
        """Serve listening sockets bound by someone else (socket activation, see
        homeport.daemon.activation) instead of binding: same as ``start`` otherwise."""
        self.loop = asyncio.get_running_loop()
        if not sockets:
            raise ValueError("no sockets to serve")
        for sock in sockets:
            server = await self.loop.create_server(self._accepted, sock=sock, backlog=4096)
            self._servers.append(server)
            addr = sock.getsockname()
            self.bound.append((str(addr[0]), int(addr[1])))
        log.info("gateway serving passed sockets %s", self.bound)
        ports = {port for _, port in self.bound}
        self.single_port = ports.pop() if len(ports) == 1 else 0
        self._sweeper = self.loop.create_task(self._sweep())
        return list(self.bound)

    async def _bind(self, listen: Sequence[tuple[str, int]], reuse_port: bool) -> None:
        chosen = 0
        for host, port in listen:
            server = await self.loop.create_server(
                self._accepted,
                host,
                port or chosen,
                reuse_address=True,
                reuse_port=reuse_port or None,
                backlog=4096,
            )
            self._servers.append(server)
            for sock in server.sockets:
                addr = sock.getsockname()
                self.bound.append((str(addr[0]), int(addr[1])))
                chosen = chosen or int(addr[1])
        log.info("gateway listening on %s", self.bound)

    def _accepted(self) -> ClientConnection:
        """The protocol factory, called once per accepted connection (``--https-only``: the
        front-end that redirects plain requests). A new connection brings a deadline, so it
        also ends the sweep's idle wait (see ``_idle``)."""
        self.accepted += 1
        if self._wake is not None:
            self._wake.set()
            self._wake = None
        return HttpsRedirect(self) if self.config.https_only else ClientConnection(self)

    def tls_front(self, alpn: str) -> asyncio.Protocol:
        """The front-end for a TLS connection whose client chose ``alpn``."""
        conn: ClientConnection | H2Connection
        conn = H2Connection(self) if alpn == "h2" else ClientConnection(self)
        conn.tls = True
        return conn

    def set_routes(self, table: RouteTable) -> None:
        """Swap in a new route snapshot; requests already under way keep their upstream."""
        self.router = self._router(table)
        self._cache = {}

    def decide(self, host: bytes, local_port: int) -> Decision:
        """Routing decision for a Host value, cached until the routes change."""
        key = (host, local_port)
        decision = self._cache.get(key)
        if decision is None:
            decision = self.router.decide(host.decode("latin-1"), local_port)
            if decision.target is not None and points_at(decision.target, self.bound):
                decision = dataclasses.replace(decision, loops=True)
            if len(self._cache) >= _CACHE_MAX:
                self._cache = {}
            self._cache[key] = decision
        return decision

    async def _sweep(self) -> None:
        cfg = self.config
        interval = max(0.05, min(1.0, cfg.header_timeout / 4, cfg.upstream_header_timeout / 4))
        seen = -1
        while True:
            # Idle only after a whole interval without a new connection: a client that
            # connects once per request (Connection: close, one at a time) would otherwise
            # end an idle wait with every connection.
            if self.conns or self.accepted != seen:
                seen = self.accepted
                await asyncio.sleep(interval)
            else:
                await self._idle()
            now = self.loop.time()
            for conn in [c for c in self.conns if c.deadline and now > c.deadline]:
                try:
                    conn.expire(now)
                except Exception:
                    log.exception("expiring a connection failed")
            self.pool.sweep(time.monotonic())

    async def _idle(self) -> None:
        """No client connection, so no deadline: sleep until a pooled upstream is due to be
        closed, or until a client connects. A timer every ``interval`` woke an idle daemon
        for nothing (issue 9: <= 2 wakeups a second when idle)."""
        wake = self._wake = asyncio.Event()
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), self.pool.next_expiry(time.monotonic()))
        finally:
            self._wake = None

    async def _close_servers(self) -> None:
        servers, self._servers = self._servers, []
        self.bound = []
        for server in servers:
            server.close()
        for server in servers:
            await server.wait_closed()

    async def close(self) -> None:
        """Stop listening, drop every client and pooled connection."""
        for server in self._servers:
            server.close()
        for conn in list(self.conns):
            if isinstance(conn, H2Connection):
                conn.shutdown()  # GOAWAY: the client knows no stream was left half-done
            elif conn.transport is not None:
                conn.transport.abort()
        self.conns.clear()
        self.pool.close()
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
            self._sweeper = None
        await self._close_servers()
