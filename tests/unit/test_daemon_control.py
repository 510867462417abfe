"""The control API, driven directly: ControlRequest in, ControlResponse out, no sockets."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from homeport.daemon.config import DaemonConfig
from homeport.daemon.control import ControlApp
from homeport.daemon.state import Gateway
from homeport.gateway.contract import ControlRequest, ControlResponse, RouteTable
from homeport.store import Store

TOKEN = "t0ken-for-tests"
PORT = 62893  # never bound: these tests use no sockets
HOST = f"homeport.localhost:{PORT}"


class Harness:
    def __init__(self, tmp: Path) -> None:
        self.config = DaemonConfig(state_dir=tmp, port=PORT)
        self.store = Store(tmp / "homeport.db")
        self.tables: list[RouteTable] = []
        self.gateway = Gateway(self.store, self.tables.append)
        self.shutdowns = 0
        self.app = ControlApp(self.config, self.gateway, TOKEN, on_shutdown=self._down)

    def _down(self) -> None:
        self.shutdowns += 1

    def send(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        host: str = HOST,
        token: str | None = TOKEN,
        **headers: str,
    ) -> ControlResponse:
        path, _, query = path.partition("?")
        hs = [("host", host)]
        if token is not None:
            hs.append(("authorization", f"Bearer {token}"))
        hs += [(k.replace("_", "-"), v) for k, v in headers.items()]
        raw = json.dumps(body).encode() if body is not None else b""
        req = ControlRequest(method, path, query, tuple(hs), raw, "127.0.0.1")
        return asyncio.run(self.app.handle(req))


def body(resp: ControlResponse) -> Any:
    return json.loads(resp.body)


def header(resp: ControlResponse, name: str) -> str | None:
    return next((v for k, v in resp.headers if k == name), None)


@pytest.fixture
def h(tmp_path: Path) -> Iterator[Harness]:
    harness = Harness(tmp_path)
    yield harness
    harness.store.close()


def test_health_is_open_but_status_needs_the_token(h: Harness) -> None:
    assert h.send("GET", "/api/health", token=None).status == 200
    refused = h.send("GET", "/api/status", token=None)
    assert refused.status == 401
    assert "token" in body(refused)["error"]
    assert h.send("GET", "/api/status", token="wrong").status == 401
    ok = h.send("GET", "/api/status")
    assert ok.status == 200
    assert body(ok)["port"] == PORT


@pytest.mark.parametrize(
    "host",
    ["evil.example:62893", "homeport.localhost:1", "", "api.localhost:62893", "192.168.1.5:62893"],
)
def test_foreign_host_is_refused_even_with_the_token(h: Harness, host: str) -> None:
    resp = h.send("POST", "/api/routes", {"name": "a", "target": "1"}, host=host)
    assert resp.status == 403
    assert h.store.routes() == []


@pytest.mark.parametrize(
    "host",
    [HOST, f"127.0.0.1:{PORT}", f"[::1]:{PORT}", f"localhost:{PORT}", f"HOMEPORT.localhost:{PORT}"],
)
def test_own_names_are_accepted(h: Harness, host: str) -> None:
    assert h.send("GET", "/api/routes", host=host).status == 200


@pytest.mark.parametrize(
    "origin",
    [
        "http://evil.example",
        "null",
        f"http://api.localhost:{PORT}",
        f"https://homeport.localhost:{PORT}",
    ],
)
def test_foreign_origin_is_refused_even_with_the_token(h: Harness, origin: str) -> None:
    resp = h.send("POST", "/api/routes", {"name": "a", "target": "1"}, origin=origin)
    assert resp.status == 403
    assert h.store.routes() == []
    assert h.send("GET", "/api/routes", origin=origin).status == 403


def test_cross_site_fetch_metadata_is_refused(h: Harness) -> None:
    assert h.send("GET", "/api/routes", sec_fetch_site="cross-site").status == 403
    assert h.send("GET", "/api/routes", sec_fetch_site="same-origin").status == 200


def test_route_add_list_remove(h: Harness) -> None:
    resp = h.send("POST", "/api/routes", {"name": "api", "target": "3000"})
    assert resp.status == 201
    data = body(resp)
    assert data["route"]["name"] == "api.localhost"
    assert data["route"]["target"] == "http://127.0.0.1:3000"
    assert data["url"] == f"http://api.localhost:{PORT}"
    assert h.tables[-1].routes[0].name == "api.localhost"  # pushed to the proxy
    again = h.send("POST", "/api/routes", {"name": "api.localhost", "target": "[::1]:4000"})
    assert (again.status, body(again)["created"]) == (200, False)
    listed = body(h.send("GET", "/api/routes"))["routes"]
    assert [(r["name"], r["target"]) for r in listed] == [("api.localhost", "http://[::1]:4000")]
    assert body(h.send("DELETE", "/api/routes/api"))["removed"] == "api.localhost"
    assert h.tables[-1].routes == ()
    assert h.send("DELETE", "/api/routes/api").status == 404


def test_token_route_returns_its_secret_once_and_hides_it_after(h: Harness) -> None:
    data = body(h.send("POST", "/api/routes", {"name": "adm", "target": "9", "auth": "token"}))
    assert len(data["token"]) >= 20
    assert data["route"]["auth"] == "token"
    listed = json.dumps(body(h.send("GET", "/api/routes")))
    assert data["token"] not in listed
    assert h.tables[-1].routes[0].secret == data["token"]


@pytest.mark.parametrize(
    "payload",
    [
        {"name": "a"},
        {"name": "a", "target": "8.8.8.8:53"},
        {"name": "a b", "target": "1"},
        [1, 2],
        {"name": "a", "target": "1", "auth": "magic"},
    ],
)
def test_bad_route_is_400_with_a_message(h: Harness, payload: Any) -> None:
    resp = h.send("POST", "/api/routes", payload)
    assert resp.status == 400
    assert body(resp)["error"]


def test_not_json_is_400(h: Harness) -> None:
    req = ControlRequest(
        "POST",
        "/api/routes",
        "",
        (("host", HOST), ("authorization", f"Bearer {TOKEN}")),
        b"{nope",
        "127.0.0.1",
    )
    assert asyncio.run(h.app.handle(req)).status == 400


def test_unknown_path_and_wrong_method(h: Harness) -> None:
    assert h.send("GET", "/api/nothing").status == 404
    resp = h.send("PUT", "/api/routes")
    assert resp.status == 405
    assert header(resp, "allow") == "GET, POST"


def test_login_link_works_once_and_sets_a_strict_httponly_cookie(h: Harness) -> None:
    url = body(h.send("POST", "/api/login-links"))["url"]
    assert url.startswith(f"http://homeport.localhost:{PORT}/login?token=")
    query = url.split("?", 1)[1]
    first = h.send("GET", f"/login?{query}", token=None)
    assert first.status == 303
    cookie = header(first, "set-cookie") or ""
    assert "HttpOnly" in cookie
    assert "SameSite=Strict" in cookie
    assert h.send("GET", f"/login?{query}", token=None).status == 403  # used up
    session = cookie.split(";", 1)[0]
    assert h.send("GET", "/api/routes", token=None, cookie=session).status == 200
    assert h.send("GET", "/api/routes", token=None, cookie="homeport_session=forged").status == 401


def test_cookie_writes_need_a_matching_origin(h: Harness) -> None:
    url = body(h.send("POST", "/api/login-links"))["url"]
    cookie = header(h.send("GET", "/login?" + url.split("?", 1)[1], token=None), "set-cookie")
    session = (cookie or "").split(";", 1)[0]
    route = {"name": "a", "target": "1"}
    no_origin = h.send("POST", "/api/routes", route, token=None, cookie=session)
    assert no_origin.status == 403
    ok = h.send(
        "POST",
        "/api/routes",
        route,
        token=None,
        cookie=session,
        origin=f"http://homeport.localhost:{PORT}",
    )
    assert ok.status == 201


def test_shutdown_is_token_only(h: Harness) -> None:
    assert h.send("POST", "/api/shutdown", token=None).status == 401

    async def go() -> None:
        req = ControlRequest(
            "POST",
            "/api/shutdown",
            "",
            (("host", HOST), ("authorization", f"Bearer {TOKEN}")),
            b"",
            "127.0.0.1",
        )
        assert (await h.app.handle(req)).status == 200
        await asyncio.sleep(0.1)  # the handler schedules the stop 50 ms after answering

    asyncio.run(go())
    assert h.shutdowns == 1


def test_access_endpoint_pages_with_after(h: Harness) -> None:
    from homeport.gateway.contract import AccessRecord

    recs = [
        AccessRecord(
            float(i), "127.0.0.1", 1, "a.localhost", "GET", f"/{i}", 200, 0, 0, 0.1, "a.localhost"
        )
        for i in range(5)
    ]
    h.store.append_access(recs)
    first = body(h.send("GET", "/api/access?limit=2"))
    assert [r["path"] for r in first["records"]] == ["/3", "/4"]
    all_ = body(h.send("GET", "/api/access?limit=100"))["records"]
    rest = body(h.send("GET", f"/api/access?after={all_[1]['id']}"))
    assert [r["path"] for r in rest["records"]] == ["/2", "/3", "/4"]
    assert h.send("GET", "/api/access?limit=abc").status == 400


def test_dashboard_index_needs_a_session(h: Harness) -> None:
    assert h.send("GET", "/", token=None).status == 401
    page = h.send("GET", "/")
    assert page.status == 200
    assert "default-src 'none'" in (header(page, "content-security-policy") or "")


def test_a_failing_handler_is_a_500_not_a_crash(h: Harness) -> None:
    async def broken(call: object) -> ControlResponse:
        raise RuntimeError("bug")

    h.app.add("GET", "/api/broken", broken)  # type: ignore[arg-type]
    resp = h.send("GET", "/api/broken")
    assert resp.status == 500
    assert "daemon.log" in body(resp)["error"]
