"""The dashboard's endpoints on a real ControlApp (request in, response out, no sockets)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from homeport import web
from homeport.daemon.config import DaemonConfig
from homeport.daemon.control import ControlApp
from homeport.daemon.state import Gateway
from homeport.errors import UsageError
from homeport.gateway.contract import ControlRequest, ControlResponse, Route
from homeport.store import Store
from homeport.web.api import CSP, parse_topics, static_file
from homeport.web.launch import parse_launch
from homeport.web.live import Dashboard, annotate, route_ports, route_view
from homeport.web.sampler import ListenerRow

PORT = 62893  # never bound: these tests only build requests
TOKEN = "t0ken"
HOST = f"homeport.localhost:{PORT}"


@pytest.fixture
def dash(state_dir: Path) -> Iterator[Dashboard]:
    config = DaemonConfig.build(port=PORT, directory=state_dir)
    store = Store(config.db_path)
    app = ControlApp(config, Gateway(store, lambda table: None), TOKEN)
    try:
        yield web.install(app)
    finally:
        store.close()


def call(
    dash: Dashboard, method: str, target: str, *, auth: bool = True, body: Any = None, **hdrs: str
) -> ControlResponse:
    path, _, query = target.partition("?")
    headers = [("host", HOST), *hdrs.items()]
    if auth:
        headers.append(("authorization", f"Bearer {TOKEN}"))
    raw = json.dumps(body).encode() if body is not None else b""
    req = ControlRequest(method, path, query, tuple(headers), raw, "127.0.0.1")
    return asyncio.run(dash.app.handle(req))


def data(resp: ControlResponse) -> Any:
    return json.loads(resp.body)


def test_page_is_open_holds_no_data_and_replaces_the_placeholder(dash: Dashboard) -> None:
    resp = call(dash, "GET", "/", auth=False)
    assert resp.status == 200
    assert b'<script src="/static/app.js"' in resp.body
    headers = dict(resp.headers)
    assert headers["content-security-policy"] == CSP
    assert "frame-ancestors 'none'" in CSP
    assert "cdn" not in resp.body.decode().lower()


@pytest.mark.parametrize("name", ["app.js", "app.css", "favicon.svg"])
def test_static_files_ship_in_the_package(dash: Dashboard, name: str) -> None:
    resp = call(dash, "GET", f"/static/{name}", auth=False)
    assert resp.status == 200
    assert resp.body == static_file(name)
    assert resp.body


@pytest.mark.parametrize("name", ["..%2Fapi.py", "api.py", "secret", "index.htm"])
def test_only_listed_static_files(dash: Dashboard, name: str) -> None:
    assert call(dash, "GET", f"/static/{name}", auth=False).status == 404


@pytest.mark.parametrize(
    "target", ["/api/dashboard", "/api/listeners", "/api/stream", "/api/alerts", "/api/doctor"]
)
def test_data_needs_the_token(dash: Dashboard, target: str) -> None:
    assert call(dash, "GET", target, auth=False).status == 401


def test_foreign_host_and_origin_are_refused(dash: Dashboard) -> None:
    req = ControlRequest("GET", "/api/listeners", "", (("host", "evil.example"),), b"", "127.0.0.1")
    assert asyncio.run(dash.app.handle(req)).status == 403
    resp = call(dash, "POST", "/api/services/start", body={}, origin="http://evil.example")
    assert resp.status == 403


def test_listeners_and_dashboard_snapshot(dash: Dashboard) -> None:
    dash.sampler.snapshot = {
        "tcp/127.0.0.1/80/1": ListenerRow("tcp", 4, "127.0.0.1", 80, 1, "loopback")
    }
    got = data(call(dash, "GET", "/api/listeners"))
    assert [r["key"] for r in got["listeners"]] == ["tcp/127.0.0.1/80/1"]
    hello = data(call(dash, "GET", "/api/dashboard"))
    assert set(hello) == {
        "listeners",
        "samples",
        "routes",
        "services",
        "events",
        "access",
        "status",
    }


def test_stream_starts_with_hello_then_live_messages(dash: Dashboard) -> None:
    async def go() -> tuple[bytes, bytes]:
        req = ControlRequest(
            "GET", "/api/stream", "", (("host", HOST), ("authorization", f"Bearer {TOKEN}")),
            b"", "127.0.0.1",
        )  # fmt: skip
        resp = await dash.app.handle(req)
        assert resp.stream is not None
        assert ("content-type", "text/event-stream; charset=utf-8") in resp.headers
        first = await resp.stream.__anext__()
        dash.store.add_event("listener-appeared", {"port": 1, "alert": True, "message": "m"})
        dash.poll()
        second = await asyncio.wait_for(resp.stream.__anext__(), 2)
        dash.hub.close()
        return first, second

    first, second = asyncio.run(go())
    assert first.startswith(b"event: hello\n")
    assert second.startswith(b"event: events\nid: 1\n")
    alerts = data(call(dash, "GET", "/api/alerts"))["alerts"]
    assert [a["data"]["port"] for a in alerts] == [1]


def test_bad_topic_and_bad_launch_are_400(dash: Dashboard) -> None:
    assert call(dash, "GET", "/api/stream?topics=nope").status == 400
    resp = call(dash, "POST", "/api/services/start", body={"name": "x"})
    assert resp.status == 400
    assert "cmd" in data(resp)["error"]


def test_stop_unknown_service_is_404(dash: Dashboard) -> None:
    assert call(dash, "POST", "/api/services/nope/stop").status == 404


def test_who_needs_a_target(dash: Dashboard) -> None:
    assert call(dash, "GET", "/api/who").status == 400


def test_parse_launch() -> None:
    req = parse_launch({"name": " api ", "cmd": "python3 -m http.server 'a b'"}, "/home/u")
    assert (req.name, req.argv, req.cwd, req.port) == (
        "api", ("python3", "-m", "http.server", "a b"), "/home/u", None,
    )  # fmt: skip
    assert parse_launch({"name": "a", "cmd": ["x", "y"], "cwd": "/srv", "port": 8080}, "/").port
    for bad in (
        {"cmd": "x"},
        {"name": "a", "cmd": ""},
        {"name": "a", "cmd": "x 'unclosed"},
        {"name": "a", "cmd": "x", "cwd": "relative"},
        {"name": "a", "cmd": "x", "port": 70000},
        {"name": "a", "cmd": 5},
    ):
        with pytest.raises(UsageError):
            parse_launch(bad, "/")


def test_parse_topics() -> None:
    assert parse_topics(None) is None
    assert parse_topics("events, access") == frozenset({"events", "access"})
    with pytest.raises(UsageError):
        parse_topics("event,secrets")


def test_routes_annotate_listener_rows() -> None:
    routes = [
        Route("api.localhost", "http://127.0.0.1:3000"),
        Route("sock.localhost", "unix:/run/x.sock"),
        Route("six.localhost", "http://[::1]:4000"),
    ]
    ports = route_ports(routes)
    assert ports == {3000: "api.localhost", 4000: "six.localhost"}
    rows = [ListenerRow("tcp", 4, "127.0.0.1", 3000, 1, "loopback"),
            ListenerRow("udp", 4, "127.0.0.1", 3000, 2, "loopback")]  # fmt: skip
    out = annotate(rows, ports, lambda n: f"http://{n}:62893")
    assert (out[0].route, out[0].url) == ("api.localhost", "http://api.localhost:62893")
    assert out[1].route is None


def test_route_health() -> None:
    r = Route("api.localhost", "http://127.0.0.1:3000")
    assert route_view(r, "u", {3000}, None, 5)["health"] == "up"
    assert route_view(r, "u", set(), None, 0)["health"] == "down"
    assert route_view(r, "u", set(), None, 0)["requests_per_min"] == 0
    sock = Route("s.localhost", "unix:/x")
    assert route_view(sock, "u", set(), None, 0)["health"] == "unknown"


def test_poll_publishes_routes_services_output_and_access_once(dash: Dashboard) -> None:
    import os

    from homeport.gateway.contract import AccessRecord

    async def go() -> list[bytes]:
        it = dash.hub.stream(list)
        gw = dash.gateway
        me = os.getpid()
        body = {"name": "api", "cmd": ["x"], "cwd": "/", "port": 3000, "pid": me, "pgid": me,
                "owner_pid": me}  # fmt: skip
        svc = gw.register(body)
        gw.mark_running(svc.id, Route("api.localhost", "http://127.0.0.1:3000"))
        gw.add_lines(svc.id, ["hello"])
        rec = AccessRecord(1.0, "127.0.0.1", 5, "api.localhost", "GET", "/x", 200, 0, 2, 1.0,
                           "api.localhost")  # fmt: skip
        dash.store.append_access([rec])
        dash.poll()
        dash.poll()  # nothing new: nothing published twice
        dash.hub.close()
        out = [c async for c in it]
        await gw.close()  # ends the pidfd watch on this very process
        return out

    kinds = [c.split(b"\n", 1)[0] for c in asyncio.run(go())]
    assert sorted(kinds) == [b"event: access", b"event: output", b"event: routes",
                             b"event: services"]  # fmt: skip


def test_committed_access_rows_wake_the_watcher(dash: Dashboard) -> None:
    """The access writer's thread nudges the watcher: with a watch interval of a minute, a
    request still reaches the pages as soon as its row is committed."""
    from homeport.gateway.contract import AccessRecord
    from homeport.store import AccessWriter

    dash.watch_interval = 60.0
    writer = AccessWriter(dash.app.config.db_path, commit_interval=0.05)
    writer.on_written = dash.nudge

    async def go() -> bytes:
        it = dash.hub.stream(list, frozenset({"access"}))
        dash.start()
        await asyncio.sleep(0)  # the watcher's first poll: nothing new yet
        writer.sink(AccessRecord(1.0, "127.0.0.1", 5, "api.localhost", "GET", "/n", 200, 0, 2,
                                 1.0, "api.localhost"))  # fmt: skip
        try:
            async with asyncio.timeout(20):  # far below the minute the interval would take
                async for chunk in it:
                    if chunk.startswith(b"event: access"):
                        return chunk
        finally:
            await dash.close()
        return b""

    writer.start()
    try:
        chunk = asyncio.run(go())
    finally:
        writer.close()
    assert b'"path": "/n"' in chunk or b'"path":"/n"' in chunk


def test_nobody_watching_the_watcher_counts_access_rows_without_reading_them(
    dash: Dashboard,
) -> None:
    """With no page connected a poll reads no access rows (it counts them per route in SQL,
    for the rates) and waits for nudges only; a page that connects then gets the rates."""
    from homeport.gateway.contract import AccessRecord

    rec = AccessRecord(1.0, "127.0.0.1", 5, "api.localhost", "GET", "/", 200, 0, 2, 1.0, "api")
    dash.store.append_access([rec] * 3)
    read: list[int] = []
    real_access = dash.store.access
    dash.store.access = lambda **kw: read.append(1) or real_access(**kw)  # type: ignore[method-assign]
    assert not dash.watched()
    dash.poll()
    assert read == []  # no rows built
    assert dash._rates()["api"] == 3
    dash.store.append_access([rec])
    it = dash.hub.stream(list, frozenset({"access"}))
    assert dash.watched()
    dash.poll()  # watched: the new row is read and published
    assert read == [1]
    assert dash._rates()["api"] == 4
    del it


def test_a_backlog_of_access_rows_sends_the_newest_and_counts_the_rest(dash: Dashboard) -> None:
    from homeport.gateway.contract import AccessRecord
    from homeport.web.live import LIVE_ACCESS

    it = dash.hub.stream(list, frozenset({"access"}))
    sub = next(iter(dash.hub._subs))
    rows = [
        AccessRecord(1.0, "127.0.0.1", 5, "a.localhost", "GET", f"/{i}", 200, 0, 2, 1.0, "a")
        for i in range(LIVE_ACCESS * 3)
    ]
    dash.store.append_access(rows)
    dash.poll()
    message = json.loads(sub.queue.get_nowait().split(b"data: ", 1)[1])
    paths = [r["path"] for r in message["records"]]
    assert paths == [f"/{i}" for i in range(LIVE_ACCESS * 2, LIVE_ACCESS * 3)]
    assert dash._rates()["a"] == LIVE_ACCESS * 3
    dash.store.append_access(rows[:1])
    dash.poll()  # caught up: the next row goes as usual
    message = json.loads(sub.queue.get_nowait().split(b"data: ", 1)[1])
    assert [r["path"] for r in message["records"]] == ["/0"]
    del it


def test_route_changes_wake_the_watcher(dash: Dashboard) -> None:
    """The gateway nudges the watcher too: a route added (here as the control API would) is
    on the pages long before the minute-long poll interval."""
    dash.watch_interval = 60.0

    async def go() -> bytes:
        it = dash.hub.stream(list, frozenset({"routes"}))
        dash.start()
        await asyncio.sleep(0.2)  # the watcher's first poll has published the empty table
        dash.gateway.put_route(Route("api.localhost", "http://127.0.0.1:3000"))
        try:
            async with asyncio.timeout(20):
                async for chunk in it:
                    if b"api.localhost" in chunk:
                        return chunk
        finally:
            await dash.close()
            await dash.gateway.close()
        return b""

    assert asyncio.run(go()).startswith(b"event: routes")


def test_parse_launch_owner_pid() -> None:
    """An MCP session hands the daemon its own PID: the service ends when that process does."""
    assert parse_launch({"name": "a", "cmd": "x"}, "/").owner_pid is None
    assert parse_launch({"name": "a", "cmd": "x", "owner_pid": 4242}, "/").owner_pid == 4242
    for owner in ("4242", 1, 0, -5, True, 4.5):
        with pytest.raises(UsageError, match="owner_pid"):
            parse_launch({"name": "a", "cmd": "x", "owner_pid": owner}, "/")
