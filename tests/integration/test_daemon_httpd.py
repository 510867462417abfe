"""The control-only fallback server on a real socket: framing, refusals, the app's answers."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import pytest

from homeport.daemon.config import DaemonConfig
from homeport.daemon.control import ControlApp
from homeport.daemon.httpd import ControlServer
from homeport.daemon.state import Gateway
from homeport.store import Store


async def exchange(port: int, raw: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(raw)
    await writer.drain()
    data = await asyncio.wait_for(reader.read(), 10)  # the server closes after one answer
    writer.close()
    await writer.wait_closed()
    return data


def test_fallback_server_serves_and_refuses(tmp_path: Path) -> None:
    async def scenario() -> None:
        store = Store(tmp_path / "db")
        server = ControlServer(
            ControlApp(DaemonConfig(tmp_path, port=1), Gateway(store, lambda table: None), "tok")
        )
        bound = await server.start([("127.0.0.1", 0)])
        port = bound[0][1]
        # The app checks Host against its own port (1 here): a foreign Host is refused.
        ok = await exchange(port, b"GET /api/health HTTP/1.1\r\nHost: 127.0.0.1:1\r\n\r\n")
        assert ok.startswith(b"HTTP/1.1 200 OK\r\n")
        assert b'"service": "homeport"' in ok
        foreign = await exchange(port, b"GET /api/health HTTP/1.1\r\nHost: evil:1\r\n\r\n")
        assert foreign.startswith(b"HTTP/1.1 403")
        chunked = await exchange(
            port,
            b"POST /api/routes HTTP/1.1\r\nHost: 127.0.0.1:1\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        )
        assert chunked.startswith(b"HTTP/1.1 411")
        fold = await exchange(port, b"GET / HTTP/1.1\r\nHost: 127.0.0.1:1\r\n folded\r\n\r\n")
        assert fold.startswith(b"HTTP/1.1 400")
        body = b'{"name": "a", "target": "5000"}'
        post = await exchange(
            port,
            b"POST /api/routes HTTP/1.1\r\nHost: 127.0.0.1:1\r\n"
            b"Authorization: Bearer tok\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body),
        )
        assert post.startswith(b"HTTP/1.1 201")
        assert [r.name for r in store.routes()] == ["a.localhost"]
        await server.close()
        store.close()

    asyncio.run(scenario())


def test_fallback_server_binds_ipv6_loopback_when_there_is_one(tmp_path: Path) -> None:
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
    except OSError:
        pytest.skip("this machine has no IPv6 loopback (::1)")

    async def scenario() -> None:
        store = Store(tmp_path / "db")
        server = ControlServer(
            ControlApp(DaemonConfig(tmp_path, port=1), Gateway(store, lambda table: None), "tok")
        )
        bound = await server.start([("::1", 0)])
        assert bound[0][0] == "::1"
        await server.close()
        store.close()

    asyncio.run(scenario())
