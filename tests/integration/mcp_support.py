"""Driving ``homeport mcp`` the way an agent host does: the official SDK's client, over stdio,
with ``.venv/bin/homeport mcp`` as a subprocess in a private HOME and state directory, and a
gateway on a free port that the server starts when a tool needs it."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema
import mcp_types as types
from mcp import Client
from mcp.client.stdio import StdioServerParameters

HOMEPORT = str(Path(sys.executable).with_name("homeport"))


@dataclass
class McpHome:
    """A private HOME, state dir and gateway port for one test's servers."""

    home: Path
    port: int
    schemas: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def env(self) -> dict[str, str]:
        return {
            "HOME": str(self.home),
            "XDG_STATE_HOME": str(self.home / "state"),
            "HOMEPORT_PORT": str(self.port),
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        }

    @contextlib.asynccontextmanager
    async def client(
        self, *args: str, name: str = "pytest-agent", mode: str = "auto"
    ) -> AsyncIterator[Client]:
        params = StdioServerParameters(
            command=HOMEPORT, args=["mcp", *args], env=self.env, cwd=str(self.home)
        )
        info = types.Implementation(name=name, version="1.0")
        async with Client(
            params,
            client_info=info,
            read_timeout_seconds=60,
            mode=mode,  # type: ignore[arg-type]
        ) as c:
            if not self.schemas:
                listed = await c.list_tools()
                self.schemas.update({t.name: t.output_schema or {} for t in listed.tools})
            yield c

    async def call(
        self, c: Client, tool: str, arguments: dict[str, Any], **kw: Any
    ) -> dict[str, Any]:
        """Call ``tool``; it must succeed, and its structured answer must match the output
        schema the server declared for it."""
        result = await c.call_tool(tool, arguments, **kw)
        text = result.content[0].text if result.content else ""
        assert not result.is_error, f"{tool} failed: {text}"
        data = result.structured_content
        assert isinstance(data, dict)
        jsonschema.validate(data, self.schemas[tool])
        assert json.loads(text) == data  # the text block carries the same JSON
        return data

    async def error(self, c: Client, tool: str, arguments: dict[str, Any]) -> str:
        """Call ``tool``; it must fail as a tool error with a one-line message."""
        result = await c.call_tool(tool, arguments)
        assert result.is_error, f"{tool} should have failed: {result.structured_content}"
        text = result.content[0].text
        assert "Traceback" not in text
        assert text.strip()
        return text

    def homeport(self, *argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [HOMEPORT, *argv], env=self.env, capture_output=True, text=True, timeout=60
        )

    def events(self) -> list[dict[str, Any]]:
        out = self.homeport("events", "--json", "-n", "1000")
        return list(json.loads(out.stdout)["events"])

    def dashboard_events(self) -> list[dict[str, Any]]:
        """The events the dashboard's snapshot holds (what its events panel shows)."""
        import http.client

        token = (self.home / "state" / "homeport" / "token").read_text().strip()
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            conn.request(
                "GET",
                "/api/dashboard",
                headers={
                    "Host": f"homeport.localhost:{self.port}",
                    "Authorization": f"Bearer {token}",
                },
            )
            resp = conn.getresponse()
            data = json.loads(resp.read())
        finally:
            conn.close()
        assert resp.status == 200, data
        return list(data["events"])

    def stop_gateway(self) -> None:
        self.homeport("down")


def run(coro_fn: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(coro_fn())


def gone(pid: int) -> bool:
    """True once ``pid`` no longer runs (a zombie counts as gone: it holds nothing)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def wait_gone(pid: int, timeout: float = 10.0) -> bool:
    """Wait on a pidfd (readable once ``pid`` exits) up to ``timeout``; True when gone."""
    import select

    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        select.select([fd], [], [], timeout)
    finally:
        os.close(fd)
    return gone(pid)


def deadline_poll(check: Callable[[], bool], timeout: float = 10.0) -> bool:
    """Poll ``check`` until it holds or ``timeout`` passes (for state with no event)."""
    end = time.monotonic() + timeout
    while not check():
        if time.monotonic() > end:
            return False
        time.sleep(0.05)
    return True
