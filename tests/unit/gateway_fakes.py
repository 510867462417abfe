"""A fake asyncio transport for the gateway's protocol tests (records what is written), and a
``ProxyServer`` on a loop of its own that hands out client and upstream connections on them."""

from __future__ import annotations

import asyncio
from typing import Any

from homeport.gateway.config import ProxyConfig
from homeport.gateway.contract import AccessRecord, Route, RouteTable
from homeport.gateway.proxy import ClientConnection
from homeport.gateway.server import ProxyServer
from homeport.gateway.upstream import Upstream

GW_PORT = 62893


class FakeTransport:
    def __init__(self, peer: tuple[str, int] = ("127.0.0.1", 40000)) -> None:
        self.out = bytearray()
        self.closed = False
        self.paused = False
        self.extra = {"peername": peer, "sockname": ("127.0.0.1", GW_PORT)}

    def write(self, data: bytes) -> None:
        assert not self.closed, "write after close"
        self.out += data

    def writelines(self, items: list[bytes]) -> None:
        for item in items:
            self.write(item)

    def close(self) -> None:
        self.closed = True

    abort = close

    eof = False  # write_eof() was called: our side of the stream has ended

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        assert not self.closed, "write_eof after close"
        self.eof = True

    def is_closing(self) -> bool:
        return self.closed

    def pause_reading(self) -> None:
        self.paused = True

    def resume_reading(self) -> None:
        self.paused = False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self.extra.get(name, default)

    def take(self) -> bytes:
        data, self.out = bytes(self.out), bytearray()
        return data


class FakeGateway:
    """A ``ProxyServer`` with ``routes`` whose connections sit on fake transports; every
    upstream is ``127.0.0.1:3000``, the routes' target. Close ``server.pool`` and ``loop``."""

    def __init__(self, routes: tuple[Route, ...]) -> None:
        self.loop = asyncio.new_event_loop()
        self.records: list[AccessRecord] = []
        self.server = ProxyServer(ProxyConfig(), access_sink=self.records.append)
        self.server.loop = self.loop
        self.server.bound = [("127.0.0.1", GW_PORT)]
        self.server.set_routes(RouteTable(routes))

    def client(self) -> tuple[ClientConnection, FakeTransport]:
        conn, t = ClientConnection(self.server), FakeTransport()
        conn.connection_made(t)  # type: ignore[arg-type]
        return conn, t

    def upstream(self) -> tuple[Upstream, FakeTransport]:
        up, t = Upstream(self.server.pool, "127.0.0.1:3000"), FakeTransport()
        up.connection_made(t)  # type: ignore[arg-type]
        self.server.pool.give(up)
        return up, t
