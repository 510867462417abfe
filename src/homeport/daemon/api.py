"""The control API's endpoints (JSON shapes are documented in ``homeport.cli.status``'s help
and in the final table of this module's ``install``).

=======  ==============================  ==================================================
method   path                            answer
=======  ==============================  ==================================================
GET      /api/health  (open)             {"ok", "service": "homeport", "version", "pid"}
GET      /api/status                     {"pid","version","url","port","listen","started",
                                          "uptime_s","state_dir","routes","services",
                                          "access_log_rows","proxy",...}
GET      /api/routes                     {"routes": [Route.to_json()]}
POST     /api/routes                     body {"name","target","auth"?,"same_origin"?,
                                          "wildcard"?,"allow_hosts"?,"allow_cross_site"?,
                                          "allow_origins"?,"allow_underscores"?} ->
                                          {"route", "created", "url", "token"?}
GET      /api/routes/{name}              {"route", "url"}
DELETE   /api/routes/{name}              {"removed": name}
GET      /api/services                   {"services": [ServiceRecord.to_json()]}
POST     /api/services                   body {"name","cmd","cwd","port","pid","pgid",
                                          "owner_pid"} -> {"service"}
GET      /api/services/{id}              {"service", "lines", "lines_total"}
POST     /api/services/{id}/running      body {"route": {...as POST /api/routes}, "port"?} ->
                                          {"service","route","url","token"?}
POST     /api/services/{id}/log          body {"lines": [str]} -> {"ok": true}
POST     /api/services/{id}/exit         body {"state": "exited"|"stopped",
                                          "exit_code"} -> {"service"}
GET      /api/access?limit&route&after   {"records": [AccessEntry.to_json()], "last_id"}
         &control=0 (skip the API's own)
GET      /api/events?after&limit         {"events": [{"id","time","kind","data"}]}
POST     /api/notices/take               {"notices": [str]}: one-time upgrade notices, gone
                                          once taken (``homeport status`` shows them)
POST     /api/login-links                {"url", "expires"}
POST     /api/shutdown                   {"ok": true}
GET      /metrics  (loopback open)       Prometheus text exposition (homeport.metrics); a
                                         client off loopback needs the token
GET      /login?token=CODE  (open)       303 to / with the session cookie, or 403
GET      /  (open)                       the dashboard (issue 5), or a pointer to it
=======  ==============================  ==================================================
"""

from __future__ import annotations

import asyncio
import html
import time
from typing import TYPE_CHECKING, cast

from homeport import __version__
from homeport.addr import is_loopback
from homeport.daemon.control import COOKIE, Call, error, json_response
from homeport.daemon.routes import normalize_name, route_from_json
from homeport.errors import UsageError
from homeport.gateway.contract import ControlResponse, Route
from homeport.store import ServiceState

#: The text exposition format, version 0.0.4 (what prometheus-client writes).
METRICS_TYPE = "text/plain; version=0.0.4; charset=utf-8"

if TYPE_CHECKING:
    from homeport.daemon.control import ControlApp


def install(app: ControlApp) -> None:
    h = _Handlers(app)
    for method, path, handler, public in (
        ("GET", "/api/health", h.health, True),
        ("GET", "/api/status", h.status, False),
        ("GET", "/api/routes", h.routes, False),
        ("POST", "/api/routes", h.add_route, False),
        ("GET", "/api/routes/{name}", h.get_route, False),
        ("DELETE", "/api/routes/{name}", h.remove_route, False),
        ("GET", "/api/services", h.services, False),
        ("POST", "/api/services", h.register, False),
        ("GET", "/api/services/{id}", h.get_service, False),
        ("POST", "/api/services/{id}/running", h.running, False),
        ("POST", "/api/services/{id}/log", h.log_lines, False),
        ("POST", "/api/services/{id}/exit", h.exited, False),
        ("GET", "/api/access", h.access, False),
        ("GET", "/api/events", h.events, False),
        ("POST", "/api/notices/take", h.take_notices, False),
        ("POST", "/api/login-links", h.login_link, False),
        ("POST", "/api/shutdown", h.shutdown, False),
        ("GET", "/metrics", h.metrics, True),
        ("GET", "/login", h.login, True),
        ("GET", "/", h.index, True),
    ):
        app.add(method, path, handler, public=public)


class _Handlers:
    def __init__(self, app: ControlApp) -> None:
        self.app = app
        self.g = app.gateway

    async def health(self, call: Call) -> ControlResponse:
        import os

        return json_response(
            200, {"ok": True, "service": "homeport", "version": __version__, "pid": os.getpid()}
        )

    async def status(self, call: Call) -> ControlResponse:
        return json_response(200, self.app.status())

    async def take_notices(self, call: Call) -> ControlResponse:
        return json_response(200, {"notices": notice_texts(self.g.store.take_notices())})

    async def routes(self, call: Call) -> ControlResponse:
        return json_response(200, {"routes": [r.to_json() for r in self.g.routes()]})

    def _route_answer(self, route: Route) -> dict[str, object]:
        out: dict[str, object] = {
            "route": route.to_json(),
            "url": self.app.config.route_url(route.name),
        }
        if route.auth == "token":
            out["token"] = route.secret
        tcp = self.g.tcp
        if tcp is not None and route.target.startswith("tcp://"):
            out["listen"] = tcp.listen_of(route.name)
            out["listen_error"] = tcp.errors.get(route.name)
        return out

    async def add_route(self, call: Call) -> ControlResponse:
        route = route_from_json(call.json())
        created = self.g.put_route(route)
        return json_response(
            201 if created else 200, {**self._route_answer(route), "created": created}
        )

    async def get_route(self, call: Call) -> ControlResponse:
        name = normalize_name(call.params["name"])
        route = self.g.store.route(name)
        if route is None:
            return error(404, f"no route named {name}")
        return json_response(200, self._route_answer(route))

    async def remove_route(self, call: Call) -> ControlResponse:
        name = normalize_name(call.params["name"])
        self.g.remove_route(name)
        return json_response(200, {"removed": name})

    async def services(self, call: Call) -> ControlResponse:
        live = call.arg("all") is None
        svcs = self.g.store.services(live_only=live)
        return json_response(200, {"services": [s.to_json() for s in svcs]})

    async def register(self, call: Call) -> ControlResponse:
        svc = self.g.register(call.json())
        return json_response(201, {"service": svc.to_json()})

    async def get_service(self, call: Call) -> ControlResponse:
        svc = self.g.service(call.params["id"])
        lines = list(self.g.lines.get(svc.id, ()))
        total = max(self.g.line_totals[svc.id], len(lines))
        return json_response(200, {"service": svc.to_json(), "lines": lines, "lines_total": total})

    async def running(self, call: Call) -> ControlResponse:
        body = call.json().get("route")
        if not isinstance(body, dict):
            raise UsageError("body needs a 'route' object")
        route = route_from_json(body)
        port = call.json().get("port")
        svc = self.g.mark_running(call.params["id"], route, port if isinstance(port, int) else None)
        return json_response(200, {"service": svc.to_json(), **self._route_answer(route)})

    async def log_lines(self, call: Call) -> ControlResponse:
        lines = call.json().get("lines")
        if not isinstance(lines, list) or not all(isinstance(x, str) for x in lines):
            raise UsageError("body needs 'lines', a list of strings")
        self.g.add_lines(call.params["id"], lines)
        return json_response(200, {"ok": True})

    async def exited(self, call: Call) -> ControlResponse:
        body = call.json()
        state = body.get("state", "exited")
        code = body.get("exit_code")
        if state not in ("exited", "stopped") or not (code is None or isinstance(code, int)):
            raise UsageError("body needs state exited|stopped and an integer exit_code")
        self.g.finish(call.params["id"], cast(ServiceState, state), code)
        svc = self.g.service(call.params["id"])
        # The same kinds and data as services the dashboard starts (homeport events lists them).
        self.g.store.add_event(
            f"service-{state}",
            {
                "id": svc.id,
                "name": svc.name,
                "pid": svc.pid,
                "exit_code": code,
                "message": f"{svc.name} (pid {svc.pid}) {state} with code {code}",
            },
        )
        return json_response(200, {"service": svc.to_json()})

    async def access(self, call: Call) -> ControlResponse:
        limit = call.int_arg("limit", 100, 1, 10_000) or 100
        after = call.int_arg("after", None)
        route = call.arg("route")
        entries = self.g.store.access(
            limit=limit,
            route=normalize_name(route) if route else None,
            after=after,
            skip_reason="control" if call.arg("control") == "0" else None,
        )
        last = entries[-1].id if entries else after
        return json_response(200, {"records": [e.to_json() for e in entries], "last_id": last})

    async def events(self, call: Call) -> ControlResponse:
        after = call.int_arg("after", 0) or 0
        limit = call.int_arg("limit", 100, 1, 10_000) or 100
        return json_response(
            200, {"events": [e.to_json() for e in self.g.store.events(after=after, limit=limit)]}
        )

    async def login_link(self, call: Call) -> ControlResponse:
        code = self.app.sessions.new_code(time.time())
        url = f"{self.app.config.url}/login?token={code}"
        return json_response(200, {"url": url, "expires": time.time() + 120})

    async def shutdown(self, call: Call) -> ControlResponse:
        # Answer first, stop after: the caller should see its reply.
        asyncio.get_running_loop().call_later(0.05, self.app.shutdown)
        return json_response(200, {"ok": True})

    async def metrics(self, call: Call) -> ControlResponse:
        # Open to loopback clients: Prometheus on this machine scrapes without a token (the
        # Host and Origin guards already ran: a web page cannot read this cross-origin).
        # Anyone else (a LAN address with --expose) needs the token.
        if call.via == "none" and not is_loopback(call.request.client_addr):
            return error(401, "/metrics off loopback needs the token (Authorization: Bearer)")
        m = self.app.metrics
        if m is None:
            return error(404, "metrics are not available", "install prometheus-client")
        t0, c0 = time.perf_counter(), time.thread_time()
        body = m.render()
        # Server-Timing (W3C): what the scrape cost the daemon, read by bench_metrics.py:
        # wall time, and the loop thread's CPU time (which a busy machine does not inflate).
        wall, cpu = time.perf_counter() - t0, time.thread_time() - c0
        took = f"render;dur={wall * 1000:.3f}, cpu;dur={cpu * 1000:.3f}"
        headers = [("content-type", METRICS_TYPE), ("cache-control", "no-store")]
        return ControlResponse(200, [*headers, ("server-timing", took)], body)

    async def login(self, call: Call) -> ControlResponse:
        sid = self.app.sessions.redeem(call.arg("token") or "", time.time())
        if sid is None:
            return _html(
                403,
                "This login link is used or expired. Run <code>homeport open</code> for a new one.",
            )
        cookie = f"{COOKIE}={sid}; HttpOnly; SameSite=Strict; Path=/; Max-Age=43200"
        return ControlResponse(
            303, [("location", "/"), ("set-cookie", cookie), ("cache-control", "no-store")]
        )

    async def index(self, call: Call) -> ControlResponse:
        if call.via == "none":
            return _html(401, "Run <code>homeport open</code> to log in to this dashboard.")
        rows = "".join(
            f"<li><a href='{html.escape(self.app.config.route_url(r.name))}'>"
            f"{html.escape(r.name)}</a> → {html.escape(r.target)}</li>"
            for r in self.g.routes()
        )
        return _html(200, f"<h2>Routes</h2><ul>{rows or '<li>none yet</li>'}</ul>")


def _html(status: int, body: str) -> ControlResponse:
    page = (
        f"<!doctype html><meta charset=utf-8><title>homeport</title><h1>homeport</h1><p>{body}</p>"
    ).encode()
    return ControlResponse(
        status,
        [
            ("content-type", "text/html; charset=utf-8"),
            ("content-security-policy", "default-src 'none'; style-src 'unsafe-inline'"),
            ("cache-control", "no-store"),
            ("x-frame-options", "DENY"),
            ("x-content-type-options", "nosniff"),
        ],
        page,
    )


def notice_texts(notices: dict[str, str]) -> list[str]:
    """What each one-time notice says to a person."""
    out = []
    names = notices.get("cross-site-default", "").split()
    if names:
        out.append(
            "cross-site protection is now on by default: "
            + ", ".join(names)
            + " (created before this homeport) now refuse state-changing requests and "
            "WebSocket handshakes from pages of other sites. A page that must reach one: "
            "`homeport route add NAME TARGET --allow-origin ORIGIN`, or --allow-cross-site."
        )
    return out
