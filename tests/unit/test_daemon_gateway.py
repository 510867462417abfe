"""The daemon's route/service state: what the proxy is handed, and what the 502 page says."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from homeport.daemon.routes import AuthSpec
from homeport.daemon.state import NO_AUTH, Gateway
from homeport.errors import UsageError
from homeport.gateway.contract import Route, RouteTable
from homeport.store import Store


def make(tmp_path: Path, default: AuthSpec = NO_AUTH) -> tuple[Gateway, list[RouteTable]]:
    tables: list[RouteTable] = []
    return Gateway(Store(tmp_path / "db"), tables.append, default), tables


def me_as_service(name: str = "web") -> dict[str, object]:
    """A service record whose processes are this test process (alive, same user)."""
    pid = os.getpid()
    return {
        "name": name,
        "cmd": ["srv", "--x"],
        "cwd": "/",
        "port": 1,
        "pid": pid,
        "pgid": pid,
        "owner_pid": pid,
    }


def test_exposed_gateway_puts_its_auth_on_routes_without_their_own(tmp_path: Path) -> None:
    g, tables = make(tmp_path, AuthSpec("token", "gw-secret"))
    g.put_route(Route("open.localhost", "http://127.0.0.1:1"))
    g.put_route(Route("own.localhost", "http://127.0.0.1:2", auth="basic", secret="u:p"))
    published = {r.name: (r.auth, r.secret) for r in tables[-1].routes}
    assert published == {
        "open.localhost": ("token", "gw-secret"),
        "own.localhost": ("basic", "u:p"),
    }
    # The stored route keeps what the user asked for; only the proxy's copy is tightened.
    assert g.store.route("open.localhost") == Route("open.localhost", "http://127.0.0.1:1")


def test_status_lookup_for_a_running_service_and_after_it_ended(tmp_path: Path) -> None:
    g, _ = make(tmp_path)

    async def scenario() -> None:
        svc = g.register(me_as_service())
        g.mark_running(svc.id, Route("web.localhost", "http://127.0.0.1:1"))
        g.add_lines(svc.id, ["booting", "Traceback: boom"])
        status, lines = g.status_lookup("web.localhost") or ("", [])
        assert "runs (pid" in status
        assert "does not answer" in status
        assert lines == ["booting", "Traceback: boom"]
        g.add_lines(svc.id, ["ready"])
        assert g.line_totals[svc.id] == 3  # a cursor for `service_logs since`
        assert g.status_lookup(svc.id) == g.status_lookup("web.localhost")
        g.finish(svc.id, "exited", 1)
        ended = g.status_lookup(svc.id)
        assert ended is not None
        assert "exited with code 1" in ended[0]
        assert g.status_lookup("web.localhost") is None  # the route went with the service
        await g.close()

    asyncio.run(scenario())


def test_a_running_service_keeps_its_name(tmp_path: Path) -> None:
    g, _ = make(tmp_path)

    async def scenario() -> None:
        svc = g.register(me_as_service())
        g.mark_running(svc.id, Route("web.localhost", "http://127.0.0.1:1"))
        with pytest.raises(UsageError, match="belongs to a running service"):
            g.put_route(Route("web.localhost", "http://127.0.0.1:9"))
        await g.close()

    asyncio.run(scenario())


def test_unknown_lookup_is_none(tmp_path: Path) -> None:
    g, _ = make(tmp_path)
    assert g.status_lookup("nothing") is None
