"""``homeport mcp --http``: Streamable HTTP on loopback, behind Host/Origin checks and the
daemon's token, reached with the official SDK's HTTP client and with raw requests."""

from __future__ import annotations

import asyncio
import http.client
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp_support import HOMEPORT, McpHome, wait_gone

from homeport.ports.wait import wait_for

PING = b'{"jsonrpc":"2.0","id":1,"method":"ping"}'


@dataclass
class HttpServer:
    home: McpHome
    port: int
    proc: subprocess.Popen[bytes]

    @property
    def token(self) -> str:
        return (self.home.home / "state" / "homeport" / "token").read_text().strip()

    def post(self, headers: dict[str, str]) -> tuple[int, bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            conn.request(
                "POST",
                "/mcp",
                body=PING,
                headers={
                    "Content-Type": "application/json",
                    "Accept": "application/json, text/event-stream",
                    **headers,
                },
            )
            resp = conn.getresponse()
            return resp.status, resp.read()
        finally:
            conn.close()


@pytest.fixture
def http_server(tmp_path: Path, free_port_factory: object) -> Iterator[HttpServer]:
    home = McpHome(tmp_path, free_port_factory())  # type: ignore[operator]
    port = free_port_factory()  # type: ignore[operator]
    proc = subprocess.Popen(
        [HOMEPORT, "mcp", "--http", "--port", str(port), "--allow-run", "python3 -m http.server*"],
        env=home.env,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_for(f"127.0.0.1:{port}", timeout=30, pid=proc.pid)
        yield HttpServer(home, port, proc)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        proc.wait(20)
        home.stop_gateway()


def test_refuses_a_missing_token_a_foreign_host_and_a_foreign_origin(
    http_server: HttpServer,
) -> None:
    s = http_server
    own = f"127.0.0.1:{s.port}"
    auth = {"Authorization": f"Bearer {s.token}"}
    status, body = s.post({"Host": own})
    assert status == 401
    assert b"token" in body
    assert s.post({"Host": own, "Authorization": "Bearer wrong"})[0] == 401
    status, body = s.post({"Host": f"rebind.example:{s.port}", **auth})
    assert status == 403
    assert b"Host" in body
    status, body = s.post({"Host": own, "Origin": "http://evil.example", **auth})
    assert status == 403
    assert b"Origin" in body
    # The same request with the right names and token reaches the SDK (no session yet: 400).
    status, _ = s.post({"Host": f"homeport.localhost:{s.port}", **auth})
    assert status not in (401, 403)


def test_the_sdk_client_uses_the_tools_over_http_and_a_stop_cleans_up(
    http_server: HttpServer,
) -> None:
    s = http_server

    async def scenario() -> dict[str, object]:
        headers = {"Authorization": f"Bearer {s.token}"}
        async with (
            httpx2.AsyncClient(headers=headers) as hc,
            Client(streamable_http_client(f"http://127.0.0.1:{s.port}/mcp", http_client=hc)) as c,
        ):
            listed = await c.list_tools()
            assert "kill_port" in {t.name for t in listed.tools}
            seen = await c.call_tool("listeners", {"port": s.port})
            assert not seen.is_error
            assert seen.structured_content is not None
            rows = seen.structured_content["listeners"]
            assert sorted(x["address"] for x in rows) == ["127.0.0.1", "::1"]
            started = await c.call_tool("run_service", {"command": "python3 -m http.server"})
            assert not started.is_error, started.content
            assert started.structured_content is not None
            service: dict[str, object] = started.structured_content["service"]
            return service

    service = asyncio.run(scenario())
    s.proc.send_signal(signal.SIGTERM)  # the session is the process: its services end with it
    assert s.proc.wait(20) == 0
    assert wait_gone(int(service["pid"]))  # type: ignore[call-overload]
