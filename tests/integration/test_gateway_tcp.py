"""The TCP route tunnel on real sockets, in process: half-close, a refused upstream, retargets.

``TcpRoutes`` is given a fixed address instead of a lease, so these run without a daemon.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable

import pytest

from homeport.gateway.contract import AccessRecord, Route, RouteTable
from homeport.gateway.tcp import TcpRoutes, http_only

ADDR = "127.0.41.7"


def loops() -> list[str]:
    out = ["asyncio"]
    try:
        import uvloop  # noqa: F401

        out.append("uvloop")
    except ImportError:
        pass
    return out


def run(loop_kind: str, main: Callable[[], object]) -> None:
    if loop_kind == "uvloop":
        import uvloop

        uvloop.run(main())  # type: ignore[arg-type]
    else:
        asyncio.run(main())  # type: ignore[arg-type]


async def _echo(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
    data = await r.read()  # to the client's FIN
    w.write(data[::-1])  # then answer on the still-open other direction
    await w.drain()
    w.close()


@pytest.mark.parametrize("loop_kind", loops())
def test_half_close_passes_through_and_the_connection_is_logged(loop_kind: str) -> None:
    records: list[AccessRecord] = []

    async def main() -> None:
        srv = await asyncio.start_server(_echo, "127.0.0.1", 0)
        port = srv.sockets[0].getsockname()[1]
        routes = TcpRoutes(lambda name, p: ADDR, lambda a: None, records.append)
        routes.set_routes(RouteTable((Route("e.localhost", f"tcp://127.0.0.1:{port}"),)))
        assert routes.listen_of("e.localhost") == f"{ADDR}:{port}"
        await asyncio.sleep(0)  # the listener's server object is made by a task
        r, w = await asyncio.open_connection(ADDR, port)
        w.write(b"abc" * 1000)
        w.write_eof()  # our direction ends; the reply must still arrive
        assert await asyncio.wait_for(r.read(), 10) == (b"abc" * 1000)[::-1]
        w.close()
        for _ in range(200):  # the tunnel logs when both sides are gone
            if records:
                break
            await asyncio.sleep(0.01)
        await routes.close()
        srv.close()

    run(loop_kind, main)
    (rec,) = records
    assert (rec.method, rec.route, rec.bytes_in, rec.bytes_out) == (
        "TCP",
        "e.localhost",
        3000,
        3000,
    )
    assert rec.reason is None


@pytest.mark.parametrize("loop_kind", loops())
def test_a_refused_upstream_closes_the_client_and_says_why(
    loop_kind: str, free_port_factory: Callable[[], int]
) -> None:
    records: list[AccessRecord] = []
    dead = free_port_factory()  # leased, nothing listens on it

    async def main() -> None:
        routes = TcpRoutes(lambda name, p: ADDR, lambda a: None, records.append)
        routes.set_routes(RouteTable((Route("x.localhost", f"tcp://127.0.0.1:{dead}"),)))
        await asyncio.sleep(0)
        r, w = await asyncio.open_connection(ADDR, dead)
        assert await asyncio.wait_for(r.read(), 10) == b""
        w.close()
        await routes.close()

    run(loop_kind, main)
    assert [r.reason for r in records] == ["upstream-refused"]


def test_removing_the_route_stops_listening_and_releases_the_address() -> None:
    released: list[str] = []

    async def main() -> None:
        routes = TcpRoutes(lambda name, p: ADDR, released.append, None)
        table = RouteTable((Route("x.localhost", "tcp://127.0.0.1:5999"),
                            Route("web.localhost", "http://127.0.0.1:3000")))  # fmt: skip
        routes.set_routes(table)
        assert [r.name for r in http_only(table).routes] == ["web.localhost"]
        await asyncio.sleep(0)
        routes.set_routes(RouteTable())
        assert routes.listen_of("x.localhost") is None
        with socket.socket() as s:
            s.bind((ADDR, 5999))  # free again
        await routes.close()

    asyncio.run(main())
    assert released == [ADDR]
