"""The control API: JSON over HTTP behind ``Host: homeport.localhost:PORT``.

Every request passes three guards before its handler runs (DESIGN.md, "a dev API gets the
protections homeport preaches"):

1. **Host** must be one of the daemon's own names with its port (``homeport.localhost``,
   ``localhost``, ``127.0.0.1``, ``[::1]``): a DNS-rebinding page arrives with its own name.
2. **Origin**, when sent, must be the daemon's own origin, and ``Sec-Fetch-Site: cross-site`` is
   refused: a page elsewhere may not read from or write to the API. A state-changing request
   authenticated by cookie must carry a matching Origin (browsers always send it on POST/DELETE).
3. **Authentication**: ``Authorization: Bearer TOKEN`` with the token file's content (the CLI), or
   the ``homeport_session`` cookie (HttpOnly, SameSite=Strict) that a one-time ``/login?token=``
   link sets (the dashboard). Only ``/api/health`` and ``/login`` are open.

Endpoints are rows of ``ENDPOINTS``-style tables, ``(method, path pattern, handler)``: the
dashboard adds its own with ``ControlApp.add``.
"""

from __future__ import annotations

import hmac
import json
import logging
import os
import re
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from homeport import __version__
from homeport.daemon.config import DaemonConfig
from homeport.daemon.state import Gateway
from homeport.errors import HomeportError, NotFound, UsageError
from homeport.gateway.contract import ControlRequest, ControlResponse

log = logging.getLogger("homeport.control")

COOKIE = "homeport_session"
LOGIN_CODE_TTL = 120.0
SESSION_TTL = 12 * 3600.0
MAX_BODY = 1 << 20
_UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_BASE_HEADERS = [
    ("cache-control", "no-store"),
    ("x-content-type-options", "nosniff"),
    ("x-frame-options", "DENY"),
    ("referrer-policy", "no-referrer"),
]


@dataclass(slots=True)
class Call:
    """One request as a handler sees it: the request, path parameters, parsed query."""

    request: ControlRequest
    params: dict[str, str]
    query: dict[str, list[str]]
    via: str  # "token" or "cookie" or "none"

    def arg(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[-1] if values else default

    def int_arg(self, name: str, default: int | None, lo: int = 0, hi: int = 10**9) -> int | None:
        text = self.arg(name)
        if text is None:
            return default
        if not text.isdigit() or not lo <= int(text) <= hi:
            raise UsageError(f"query parameter {name}={text!r} must be a number {lo}-{hi}")
        return int(text)

    def json(self) -> dict[str, Any]:
        if not self.request.body:
            return {}
        try:
            data = json.loads(self.request.body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise UsageError(f"request body is not JSON: {exc}") from exc
        if not isinstance(data, dict):
            raise UsageError("request body must be a JSON object")
        return data


Handler = Callable[[Call], Awaitable[ControlResponse]]


@dataclass(frozen=True, slots=True)
class Endpoint:
    method: str
    pattern: re.Pattern[str]
    handler: Handler
    public: bool = False


def json_response(
    status: int, data: Any, headers: list[tuple[str, str]] | None = None
) -> ControlResponse:
    body = json.dumps(data).encode()
    return ControlResponse(
        status,
        [("content-type", "application/json"), *_BASE_HEADERS, *(headers or [])],
        body,
    )


def error(status: int, message: str, hint: str | None = None) -> ControlResponse:
    return json_response(status, {"error": message, "hint": hint})


@dataclass
class Sessions:
    """One-time login codes and the browser sessions they open (memory only)."""

    codes: dict[str, float] = field(default_factory=dict)
    sessions: dict[str, float] = field(default_factory=dict)

    def new_code(self, now: float) -> str:
        self._expire(now)
        code = secrets.token_urlsafe(24)
        self.codes[code] = now + LOGIN_CODE_TTL
        return code

    def redeem(self, code: str, now: float) -> str | None:
        self._expire(now)
        if self.codes.pop(code, None) is None:
            return None
        sid = secrets.token_urlsafe(32)
        self.sessions[sid] = now + SESSION_TTL
        return sid

    def valid(self, sid: str, now: float) -> bool:
        return self.sessions.get(sid, 0.0) > now

    def _expire(self, now: float) -> None:
        for table in (self.codes, self.sessions):
            for key in [k for k, t in table.items() if t <= now]:
                del table[key]


class ControlApp:
    """The daemon's ``ControlApp`` (see homeport.gateway.contract)."""

    def __init__(
        self,
        config: DaemonConfig,
        gateway: Gateway,
        token: str,
        *,
        on_shutdown: Callable[[], None] = lambda: None,
        status_extra: Callable[[], dict[str, Any]] = dict,
    ) -> None:
        self.config = config
        self.gateway = gateway
        self._token = token
        self._on_shutdown = on_shutdown
        self._status_extra = status_extra
        self.sessions = Sessions()
        #: ``homeport.metrics.Metrics`` once the daemon mounts it (None: /metrics is 404).
        self.metrics: Any = None
        self.endpoints: list[Endpoint] = []
        #: The project supervisor (``homeport.services.supervisor``), once the daemon mounts it.
        self.projects: Any = None
        from homeport.daemon import api

        api.install(self)

    def add(self, method: str, path: str, handler: Handler, *, public: bool = False) -> None:
        """Register ``handler`` for ``method path``; ``{name}`` in path matches one segment."""
        regex = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", path)
        self.endpoints.append(Endpoint(method, re.compile(f"^{regex}$"), handler, public))

    async def handle(self, request: ControlRequest) -> ControlResponse:
        refusal = self._guard(request)
        if refusal is not None:
            return refusal
        found = self._find(request.method, request.path)
        if isinstance(found, ControlResponse):
            return found
        endpoint, params = found
        via = self._authenticate(request)
        if via is None and not endpoint.public:
            return error(
                401,
                "missing or wrong token",
                "the CLI reads the token file; a browser logs in with `homeport open`",
            )
        if via == "cookie" and request.method in _UNSAFE and request.header("origin") is None:
            return error(403, "a state-changing request from a browser must carry Origin")
        call = Call(request, params, parse_qs(request.query), via or "none")
        try:
            return await endpoint.handler(call)
        except UsageError as exc:
            return error(400, exc.message, exc.hint)
        except NotFound as exc:
            return error(404, exc.message, exc.hint)
        except HomeportError as exc:
            return error(409, exc.message, exc.hint)
        except Exception:  # a bug in one handler must not take the connection or daemon down
            log.exception("control handler %s %s failed", request.method, request.path)
            return error(500, "internal error in the homeport daemon; see daemon.log")

    def _guard(self, request: ControlRequest) -> ControlResponse | None:
        host = (request.header("host") or "").lower()
        if host not in self.config.control_hosts:
            log.warning("refused Host %r from %s", host, request.client_addr)
            return error(403, f"Host {host!r} is not this gateway's name", f"use {self.config.url}")
        origin = request.header("origin")
        if origin is not None and origin.lower() not in self.config.control_origins:
            log.warning("refused Origin %r from %s", origin, request.client_addr)
            return error(403, f"Origin {origin!r} may not use the control API")
        if (request.header("sec-fetch-site") or "").lower() == "cross-site":
            return error(403, "cross-site requests may not use the control API")
        if len(request.body) > MAX_BODY:
            return error(413, "request body too large")
        return None

    def _find(self, method: str, path: str) -> tuple[Endpoint, dict[str, str]] | ControlResponse:
        allowed = []
        for endpoint in self.endpoints:
            match = endpoint.pattern.match(path)
            if match is None:
                continue
            if endpoint.method == method or (method == "HEAD" and endpoint.method == "GET"):
                return endpoint, match.groupdict()
            allowed.append(endpoint.method)
        if allowed:
            resp = error(405, f"{method} is not allowed on {path}")
            resp.headers.append(("allow", ", ".join(sorted(set(allowed)))))
            return resp
        return error(404, f"no control endpoint {path}")

    def _authenticate(self, request: ControlRequest) -> str | None:
        auth = request.header("authorization") or ""
        scheme, _, value = auth.partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(value.strip(), self._token):
            return "token"
        sid = _cookie(request.header("cookie") or "", COOKIE)
        if sid and self.sessions.valid(sid, time.time()):
            return "cookie"
        return None

    # Used by api.py
    def shutdown(self) -> None:
        self._on_shutdown()

    def status(self) -> dict[str, Any]:
        g = self.gateway
        live = g.store.services(live_only=True)
        return {
            "pid": os.getpid(),
            "version": __version__,
            "url": self.config.url,
            "port": self.config.port,
            "listen": [list(a) for a in self.config.listen],
            "started": g.started,
            "uptime_s": round(time.time() - g.started, 3),
            "state_dir": str(self.config.state_dir),
            "routes": len(g.routes()),
            "services": len(live),
            "access_log_rows": g.store.access_count(),
            **self._status_extra(),
        }


def _cookie(header: str, name: str) -> str | None:
    for part in header.split(";"):
        key, _, value = part.strip().partition("=")
        if key == name:
            return value
    return None


def web_root() -> Path:
    return Path(__file__).resolve().parent.parent / "web"
