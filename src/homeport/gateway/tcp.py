"""Raw TCP routes: the gateway listens on a name's own address and tunnels bytes to a target.

``homeport route add db 5432 --tcp`` gives ``db.localhost`` a leased loopback address
(``ports.address``) and this module listens on ``ADDR:5432`` in the gateway process,
forwarding every connection byte for byte to the target (``tcp://127.0.0.1:5432``). It is for
services that do not speak HTTP or whose own bind address cannot be set: with the hosts
block, ``psql -h db.localhost`` then reaches the target by name.

Each connection is two :class:`_Side` protocols joined back to back. Back-pressure is the
transports' own: when one side's write buffer passes its high-water mark, asyncio calls
``pause_writing`` and we ``pause_reading`` the other side until ``resume_writing``, so at
most ``HIGH_WATER`` bytes per direction sit in memory whatever the transfer size. A FIN
from one side is passed on as a half-close (``write_eof``, RFC 9293 §3.6); the tunnel ends
when both directions have ended or either side is lost. Each finished connection becomes
one access record: method ``TCP``, the bytes each way and the duration.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import cast
from urllib.parse import urlsplit

from homeport.gateway.contract import AccessRecord, AccessSink, Route, RouteTable

log = logging.getLogger("homeport.gateway.tcp")

TCP_SCHEME = "tcp://"
#: Write-buffer high-water mark per direction: enough to keep a loopback pipe full (a
#: 1 GiB transfer measured no faster above it), small enough to bound memory.
HIGH_WATER = 1 << 20
LOW_WATER = 1 << 18


def is_tcp(route: Route) -> bool:
    return route.target.startswith(TCP_SCHEME)


def http_only(table: RouteTable) -> RouteTable:
    """The routes the HTTP proxy serves (TCP routes are this module's)."""
    return RouteTable(tuple(r for r in table.routes if not is_tcp(r)))


def target_of(route: Route) -> tuple[str, int]:
    parts = urlsplit(route.target)
    if parts.hostname is None or parts.port is None:
        raise ValueError(f"bad TCP target {route.target!r}")
    return parts.hostname, parts.port


#: Leases the address for (route name, port) and returns it; gives an address back.
Lease = Callable[[str, int], str]
Release = Callable[[str], None]


def leased_tcp_routes(access_sink: AccessSink | None) -> TcpRoutes:
    """TCP routes whose addresses are leased to this process (the daemon): the same
    name gets the same address while it is free, and the lease dies with the daemon."""
    from homeport.ports.address import lease_address, release_address

    def lease(name: str, port: int) -> str:
        return str(lease_address(name, port=port))

    def release(address: str) -> None:
        release_address(address, holder_pid=os.getpid())

    return TcpRoutes(lease, release, access_sink)


@dataclass
class _Listener:
    name: str
    address: str
    port: int
    target: tuple[str, int]
    sock: socket.socket | None = None
    server: asyncio.Server | None = None
    conns: set[_Tunnel] = field(default_factory=set)


class TcpRoutes:
    """The TCP listeners of the daemon: ``set_routes`` with each new table, ``close`` last."""

    def __init__(self, lease: Lease, release: Release, access_sink: AccessSink | None) -> None:
        self._lease = lease
        self._release = release
        self.access_sink = access_sink
        self.listeners: dict[str, _Listener] = {}
        #: Why a TCP route is not listening (route name -> message).
        self.errors: dict[str, str] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def listen_of(self, name: str) -> str | None:
        """``ADDR:PORT`` the route listens on, or None."""
        lst = self.listeners.get(name)
        return None if lst is None else f"{lst.address}:{lst.port}"

    def set_routes(self, table: RouteTable) -> None:
        """Open, retarget and close listeners to match ``table`` (called on the loop)."""
        wanted = {r.name: r for r in table.routes if is_tcp(r)}
        for name in [n for n in self.listeners if n not in wanted]:
            self._stop(name, release=True)
        for name, route in wanted.items():
            host, port = target_of(route)
            current = self.listeners.get(name)
            if current is not None and current.port == port:
                current.target = (host, port)  # new connections go to the new target
                continue
            if current is not None:
                self._stop(name, release=False)
            self._start(name, (host, port))

    def _start(self, name: str, target: tuple[str, int]) -> None:
        port = target[1]
        try:
            address = self._lease(name, port)
            sock = _listening_socket(address, port)
        except Exception as exc:  # a busy address or port must not stop the other routes
            self.errors[name] = str(exc)
            log.warning("TCP route %s cannot listen: %s", name, exc)
            return
        self.errors.pop(name, None)
        lst = _Listener(name, address, port, target, sock)
        self.listeners[name] = lst
        loop = asyncio.get_running_loop()
        task = loop.create_task(self._serve(lst, sock))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        log.info("TCP route %s listening on %s:%d -> %s:%d", name, address, port, *target)

    async def _serve(self, lst: _Listener, sock: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        try:
            server = await loop.create_server(lambda: _Tunnel(self, lst).client, sock=sock)
        except OSError:
            removed = self.listeners.get(lst.name) is not lst
            sock.close()
            if removed:  # its socket was closed under it: nothing to serve
                return
            raise
        if self.listeners.get(lst.name) is not lst:  # removed while the server was made
            server.close()
            return
        lst.server = server

    def _stop(self, name: str, *, release: bool) -> None:
        lst = self.listeners.pop(name)
        if lst.server is not None:
            lst.server.close()
        elif lst.sock is not None:
            lst.sock.close()  # the server is not made yet: stop listening now
        for conn in list(lst.conns):
            conn.abort()
        if release:
            self._release(lst.address)

    def log(self, record: AccessRecord) -> None:
        if self.access_sink is not None:
            self.access_sink(record)

    async def close(self) -> None:
        for task in list(self._tasks):
            with contextlib.suppress(Exception):
                await task
        servers = [lst.server for lst in self.listeners.values() if lst.server is not None]
        for name in list(self.listeners):
            self._stop(name, release=True)
        for server in servers:
            await server.wait_closed()


def _listening_socket(address: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((address, port))
        sock.listen(1024)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


class _Side(asyncio.Protocol):
    """One end of a tunnel; ``peer`` is the other end."""

    def __init__(self, tunnel: _Tunnel) -> None:
        self.tunnel = tunnel
        self.transport: asyncio.Transport | None = None
        self.peer: _Side | None = None
        self.bytes = 0  # bytes received on this side
        self.eof = False
        #: Bytes that came before the other side was connected (uvloop starts reading
        #: before ``connection_made`` can pause it).
        self.pending: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, only alike.
        transport = cast(asyncio.Transport, transport)
        self.transport = transport
        transport.set_write_buffer_limits(HIGH_WATER, LOW_WATER)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError, AttributeError):  # small writes go out at once
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.tunnel.made(self)

    def data_received(self, data: bytes) -> None:
        self.bytes += len(data)
        peer = self.peer
        if peer is not None and peer.transport is not None:
            peer.transport.write(data)
        else:
            self.pending.append(data)
            if self.transport is not None:
                self.transport.pause_reading()  # at most one read's worth waits here

    def eof_received(self) -> bool:
        self.eof = True
        peer = self.peer
        if peer is not None and peer.transport is None and not self.tunnel.done:
            return True  # still connecting: the FIN is passed on once connected
        if peer is None or peer.transport is None or peer.eof:
            self.tunnel.end()
            return False
        if peer.transport.can_write_eof():
            peer.transport.write_eof()  # half-close: the other direction goes on
            return True
        self.tunnel.end()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self.tunnel.end()

    # Our write buffer is full: stop reading the other side until it drains.
    def pause_writing(self) -> None:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.resume_reading()


class _Tunnel:
    """One client connection and its upstream connection."""

    def __init__(self, routes: TcpRoutes, lst: _Listener) -> None:
        self.routes = routes
        self.lst = lst
        self.client = _Side(self)
        self.upstream: _Side | None = None
        self.started = time.time()
        self.t0 = time.monotonic()
        self.reason: str | None = None
        self.done = False
        self.peer: tuple[str, int] | None = None

    def made(self, side: _Side) -> None:
        if side is self.client:
            self.lst.conns.add(self)
            assert side.transport is not None
            self.peer = side.transport.get_extra_info("peername")
            side.transport.pause_reading()  # until the upstream is connected
            loop = asyncio.get_running_loop()
            task = loop.create_task(self._connect())
            self.routes._tasks.add(task)
            task.add_done_callback(self.routes._tasks.discard)

    async def _connect(self) -> None:
        loop = asyncio.get_running_loop()
        host, port = self.lst.target
        up = _Side(self)
        up.peer, self.client.peer = self.client, up
        self.upstream = up
        try:
            await loop.create_connection(lambda: up, host, port)
        except OSError as exc:
            self.reason = (
                "upstream-refused"
                if isinstance(exc, ConnectionRefusedError)
                else (f"upstream-error: {exc.strerror or exc}")
            )
            self.upstream = None
            self.client.peer = None
            self.end()
            return
        client = self.client
        if client.transport is None:  # the client left while we connected
            self.end()
            return
        assert up.transport is not None
        for data in client.pending:
            up.transport.write(data)
        client.pending.clear()
        if client.eof:
            up.transport.write_eof()
        else:
            client.transport.resume_reading()

    def abort(self) -> None:
        for side in (self.client, self.upstream):
            if side is not None and side.transport is not None:
                side.transport.abort()
        self.end()

    def end(self) -> None:
        """Close both sides (buffered bytes are still sent) and log the connection, once."""
        for side in (self.client, self.upstream):
            if side is not None and side.transport is not None:
                side.transport.close()
        if self.done:
            return
        self.done = True
        self.lst.conns.discard(self)
        self._log()

    def _log(self) -> None:
        peer = self.peer
        host, port = self.lst.target
        self.routes.log(
            AccessRecord(
                time=self.started,
                client_addr=str(peer[0]) if peer else "",
                client_port=int(peer[1]) if peer else 0,
                host=f"{self.lst.address}:{self.lst.port}",
                method="TCP",
                path=f"tcp://{host}:{port}",
                status=0,
                bytes_in=self.client.bytes,
                bytes_out=0 if self.upstream is None else self.upstream.bytes,
                duration_ms=(time.monotonic() - self.t0) * 1000,
                route=self.lst.name,
                reason=self.reason,
            )
        )
