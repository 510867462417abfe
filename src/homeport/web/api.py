"""The dashboard's endpoints on the control API, and its static files.

Handlers take the control plane's ``Call`` (a ``ControlRequest`` with path parameters and
the parsed query) and return a ``ControlResponse``; the ``ControlApp`` has already checked
Host, Origin and the token or session cookie before any of them runs. Only the page itself
(``/`` and ``/static/*``) is open: it holds no data, and it asks for the token when the API
answers 401.

=======  =============================  =====================================================
method   path                           answer
=======  =============================  =====================================================
GET      /  (open)                      index.html
GET      /static/{file}  (open)         app.js, app.css, favicon.svg
GET      /api/dashboard                 the ``hello`` snapshot (see ``homeport.web.live``)
GET      /api/stream?topics=a,b         Server-Sent Events: hello, then live messages
GET      /api/listeners                 {"listeners": [row], "samples", "sample_ms",
                                         "interval_s"}
GET      /api/who?target=T              ``homeport who T --json``
GET      /api/explain?q=TEXT            ``homeport explain TEXT --json``
GET      /api/doctor                    {"available", "status", "counts", "checks": [...]}
GET      /api/alerts?limit=N            {"alerts": [event]} (newest last)
POST     /api/audit                     body {"port"?: N} -> ``homeport audit --json`` (loopback
                                         probes only; the outside-in probe is the CLI's)
GET      /api/events/stream?after=N     SSE of stored events only (``homeport events -f``)
POST     /api/services/start            body {"name","cmd","cwd"?,"port"?,"owner_pid"?} ->
                                         {"service"} (owner_pid: stopped when it exits)
POST     /api/services/{id}/stop        {"service"}
POST     /api/services/{id}/restart     body {"owner_pid"?} -> {"service"} (the new record)
=======  =============================  =====================================================

A listener ``row``: {"key","proto","family","address","port","exposure","pids","process",
"user","command","started","owner_status","owner_hint","route","url"}.
"""

from __future__ import annotations

import asyncio
import os
from importlib import resources
from typing import TYPE_CHECKING, Any

from homeport.daemon.control import Call, json_response
from homeport.errors import UsageError
from homeport.gateway.contract import ControlResponse
from homeport.web.hub import sse
from homeport.web.launch import parse_launch

if TYPE_CHECKING:
    from homeport.web.live import Dashboard

#: The folder a service starts in when the form leaves it empty.
HOME = os.path.expanduser("~")
STATIC_TYPES = {
    "index.html": "text/html; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "app.css": "text/css; charset=utf-8",
    "favicon.svg": "image/svg+xml",
}
#: The page loads nothing from elsewhere and may not be framed (clickjacking on start/stop).
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
_PAGE_HEADERS = [
    ("content-security-policy", CSP),
    ("x-content-type-options", "nosniff"),
    ("x-frame-options", "DENY"),
    ("referrer-policy", "no-referrer"),
    ("cache-control", "no-store"),
]
SSE_HEADERS = [
    ("content-type", "text/event-stream; charset=utf-8"),
    ("cache-control", "no-store"),
    ("x-accel-buffering", "no"),
    ("x-content-type-options", "nosniff"),
]
STREAM_TOPICS = frozenset(
    {"listeners", "events", "access", "routes", "services", "output", "projects"}
)


def static_file(name: str) -> bytes | None:
    """The bytes of a shipped static file, or None for any name not on the list."""
    if name not in STATIC_TYPES:
        return None
    return resources.files("homeport.web").joinpath("static", name).read_bytes()


def static_response(name: str) -> ControlResponse:
    body = static_file(name)
    if body is None:
        return json_response(404, {"error": f"no static file {name}"})
    return ControlResponse(200, [("content-type", STATIC_TYPES[name]), *_PAGE_HEADERS], body)


def parse_topics(text: str | None) -> frozenset[str] | None:
    if not text:
        return None
    topics = frozenset(t.strip() for t in text.split(",") if t.strip())
    unknown = topics - STREAM_TOPICS
    if unknown:
        raise UsageError(
            f"unknown topic {sorted(unknown)[0]!r}; use {', '.join(sorted(STREAM_TOPICS))}"
        )
    return topics


class Handlers:
    def __init__(self, dash: Dashboard) -> None:
        self.dash = dash
        self._auditing = False

    def table(self) -> list[tuple[str, str, Any, bool]]:
        return [
            ("GET", "/", self.index, True),
            ("GET", "/static/{name}", self.static, True),
            ("GET", "/api/dashboard", self.dashboard, False),
            ("GET", "/api/stream", self.stream, False),
            ("GET", "/api/listeners", self.listeners, False),
            ("GET", "/api/who", self.who, False),
            ("GET", "/api/explain", self.explain, False),
            ("GET", "/api/doctor", self.doctor, False),
            ("GET", "/api/alerts", self.alerts, False),
            ("POST", "/api/audit", self.audit, False),
            ("GET", "/api/events/stream", self.event_stream, False),
            ("POST", "/api/services/start", self.start, False),
            ("POST", "/api/services/{id}/stop", self.stop, False),
            ("POST", "/api/services/{id}/restart", self.restart, False),
        ]

    async def index(self, call: Call) -> ControlResponse:
        return static_response("index.html")

    async def static(self, call: Call) -> ControlResponse:
        return static_response(call.params["name"])

    async def dashboard(self, call: Call) -> ControlResponse:
        return json_response(200, self.dash.hello())

    async def stream(self, call: Call) -> ControlResponse:
        topics = parse_topics(call.arg("topics"))
        chunks = self.dash.hub.stream(self.dash.hello_chunks, topics)
        return ControlResponse(200, list(SSE_HEADERS), stream=chunks)

    async def listeners(self, call: Call) -> ControlResponse:
        s = self.dash.sampler
        return json_response(
            200,
            {
                "listeners": self.dash.rows(),
                "samples": s.samples,
                "sample_ms": round(s.last_duration * 1000, 1),
                "interval_s": s.interval,
            },
        )

    async def who(self, call: Call) -> ControlResponse:
        from homeport.inventory import who

        target = call.arg("target")
        if not target:
            raise UsageError("who needs ?target=PORT or HOST:PORT")
        report = await asyncio.to_thread(who, target)
        return json_response(200, report.to_json())

    async def explain(self, call: Call) -> ControlResponse:
        text = call.arg("q")
        if not text:
            raise UsageError("explain needs ?q=ADDRESS, URL or error text")
        try:
            from homeport.explain import explain
        except ImportError:
            return json_response(200, {"available": False})
        result = await asyncio.to_thread(explain, text)
        return json_response(200, {"available": True, **result.to_json()})

    async def doctor(self, call: Call) -> ControlResponse:
        return json_response(200, await asyncio.to_thread(doctor_report))

    async def alerts(self, call: Call) -> ControlResponse:
        limit = call.int_arg("limit", 100, 1, 1000) or 100
        found = [e.to_json() for e in self.dash.events if e.data.get("alert")]
        return json_response(200, {"alerts": found[-limit:]})

    async def audit(self, call: Call) -> ControlResponse:
        port = call.json().get("port")
        if port is not None and (not isinstance(port, int) or not 0 < port < 65536):
            raise UsageError("'port' must be a number 1-65535")
        if self._auditing:
            raise UsageError("an audit is already running", hint="wait for it to finish")
        self._auditing = True
        try:
            return json_response(200, await asyncio.to_thread(audit_report, port))
        finally:
            self._auditing = False

    async def event_stream(self, call: Call) -> ControlResponse:
        after = call.int_arg("after", 0) or 0
        store = self.dash.store

        def first() -> list[bytes]:
            stored = [e.to_json() for e in store.events(after=after, limit=10_000)]
            return [
                sse("events", {"events": stored[i : i + 500]}, stored[i : i + 500][-1]["id"])
                for i in range(0, len(stored), 500)
            ]

        chunks = self.dash.hub.stream(first, frozenset({"events"}))
        return ControlResponse(200, list(SSE_HEADERS), stream=chunks)

    async def start(self, call: Call) -> ControlResponse:
        req = parse_launch(call.json(), HOME)
        svc = await self.dash.launcher.start(req)
        self.dash.poll()
        return json_response(201, {"service": svc.to_json()})

    async def stop(self, call: Call) -> ControlResponse:
        svc = await self.dash.launcher.stop(call.params["id"])
        self.dash.poll()
        return json_response(200, {"service": svc.to_json()})

    async def restart(self, call: Call) -> ControlResponse:
        from homeport.web.launch import owner_of

        owner = owner_of(call.json())
        svc = await self.dash.launcher.restart(call.params["id"], owner)
        self.dash.poll()
        return json_response(200, {"service": svc.to_json()})


def doctor_report() -> dict[str, Any]:
    """``homeport doctor --json`` plus ``available`` (blocking: it reads the machine)."""
    try:
        from homeport.doctor import run_checks
    except ImportError:
        return {"available": False, "status": None, "checks": []}
    report: dict[str, Any] = run_checks().to_json()
    return {"available": True, **report}


def audit_report(port: int | None) -> dict[str, Any]:
    """``homeport audit --json`` over loopback (blocking). The outside-in namespace probe is
    left to the CLI: it creates network namespaces, which a web request should not."""
    try:
        from homeport.audit.report import to_json
        from homeport.audit.run import AuditConfig, audit
    except ImportError:
        return {"available": False, "findings": []}
    report = audit(AuditConfig(port=port, outside=False))
    data = to_json(report)
    from homeport.metrics import save_audit
    from homeport.paths import state_dir

    save_audit(data, state_dir())  # /metrics shows the last audit's findings
    return {"available": True, **data}
