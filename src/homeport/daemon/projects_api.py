"""The control API's project endpoints (issue 10); the supervisor does the work.

=======  ========================================  ============================================
method   path                                      answer
=======  ========================================  ============================================
GET      /api/projects                             {"projects": [project]}
POST     /api/projects                             body {"file", "profiles"?, "env"?,
                                                   "services"?} -> {"project", "selected"}
GET      /api/projects/{id}                        {"project"}
GET      /api/projects/{id}/wait?after&version     {"project", "lines": [line]} once there are
         &timeout (seconds, <= 30)&limit           lines past ``after`` or a state change past
                                                   ``version`` (a long poll)
GET      /api/projects/{id}/settled?services=a,b   {"project"} once every (named) service is
         &timeout (seconds, <= 30)                 settled (ready, completed, failed …)
POST     /api/projects/{id}/down                   {"project"}: everything stopped, forgotten
POST     /api/projects/{id}/stop|start|restart     body {"services": [name]} -> {"project"}
=======  ========================================  ============================================

project: {"id", "name", "file", "root", "branch", "profiles", "last_seq", "version",
          "services": [{"name", "kind", "state", "pid", "port", "url", "route", "restarts",
                        "exit_code", "started", "ready_since", "message", "depends_on"}]}
line:    {"seq", "time", "service", "line"}
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from homeport.daemon.control import Call, json_response
from homeport.errors import UsageError
from homeport.gateway.contract import ControlResponse

if TYPE_CHECKING:
    from homeport.daemon.control import ControlApp
    from homeport.services.supervisor import ProjectRun, Supervisor


def install(app: ControlApp, sup: Supervisor) -> None:
    h = _Handlers(sup)
    for method, path, handler in (
        ("GET", "/api/projects", h.list),
        ("POST", "/api/projects", h.up),
        ("GET", "/api/projects/{id}", h.get),
        ("GET", "/api/projects/{id}/wait", h.wait),
        ("GET", "/api/projects/{id}/settled", h.settled),
        ("POST", "/api/projects/{id}/down", h.down),
        ("POST", "/api/projects/{id}/{action}", h.action),
    ):
        app.add(method, path, handler)


def _answer(run: ProjectRun, status: int = 200) -> ControlResponse:
    return json_response(status, {"project": run.to_json()})


def _names(call: Call) -> list[str]:
    names = call.json().get("services", [])
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise UsageError("'services' must be a list of service names")
    return names


class _Handlers:
    def __init__(self, sup: Supervisor) -> None:
        self.sup = sup

    async def list(self, call: Call) -> ControlResponse:
        return json_response(200, {"projects": self.sup.to_json()})

    async def up(self, call: Call) -> ControlResponse:
        run = await self.sup.up(call.json())
        return json_response(201, {"project": run.to_json(), "selected": run.selected})

    async def get(self, call: Call) -> ControlResponse:
        return _answer(self.sup.get(call.params["id"]))

    async def wait(self, call: Call) -> ControlResponse:
        after = call.int_arg("after", 0) or 0
        version = call.int_arg("version", 0) or 0
        timeout = float(call.int_arg("timeout", 10, 0, 30) or 0)
        limit = call.int_arg("limit", 5000, 1, 20_000) or 5000
        run = await self.sup.wait(call.params["id"], after, version, within=timeout)
        lines = [ln.to_json() for ln in run.since(after, limit)]
        return json_response(200, {"project": run.to_json(), "lines": lines})

    async def settled(self, call: Call) -> ControlResponse:
        names = [n for n in (call.arg("services") or "").split(",") if n]
        timeout = float(call.int_arg("timeout", 10, 0, 30) or 0)
        return _answer(await self.sup.settled(call.params["id"], names, within=timeout))

    async def down(self, call: Call) -> ControlResponse:
        return _answer(await self.sup.down(call.params["id"]))

    async def action(self, call: Call) -> ControlResponse:
        action = call.params["action"]
        names = _names(call)
        pid = call.params["id"]
        if action == "stop":
            return _answer(await self.sup.stop(pid, names))
        if not names and action in ("start", "restart"):
            raise UsageError(f"{action} needs 'services': the names to {action}")
        if action == "start":
            return _answer(await self.sup.start(pid, names))
        if action == "restart":
            return _answer(await self.sup.restart(pid, names))
        raise UsageError(f"unknown action {action!r}: stop, start, restart or down")
