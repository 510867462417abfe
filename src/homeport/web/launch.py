"""Start, stop and restart services from the dashboard (the daemon is their owner).

A service started from the page is what ``homeport run`` would start, with the daemon in the
CLI's place: the same port flags (``homeport.services.flags``), the same process group and
readiness check (``homeport.services.runner``), registered with the daemon's ``Gateway`` with
the daemon's own PID as owner. Its output goes to ``Gateway.add_lines`` (the 502 page, ``homeport
logs NAME`` and the dashboard read it there). When the daemon stops, it stops these groups:
nothing started from the page outlives the daemon.

``stop`` works on any live service, also one that ``homeport run`` started: the group gets
SIGTERM then SIGKILL; that CLI sees its child exit and reports it as usual. ``restart`` stops the
service and starts the same command line, in the same folder, on the same port and name.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shlex
import subprocess
import threading
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from homeport.errors import HomeportError, UsageError
from homeport.gateway.contract import Route
from homeport.store import ServiceRecord, ServiceState

if TYPE_CHECKING:
    from homeport.daemon.state import Gateway

log = logging.getLogger("homeport.web.launch")

READY_TIMEOUT = 30.0
GRACE = 3.0


@dataclass(frozen=True, slots=True)
class LaunchRequest:
    """What the page's form sends: ``{"name", "cmd", "cwd"?}``; ``cmd`` is a shell-like
    string (split with shlex, never run by a shell) or a list of arguments."""

    name: str
    argv: tuple[str, ...]
    cwd: str
    port: int | None = None
    #: The process whose exit ends the service (an MCP session); None: the daemon itself.
    owner_pid: int | None = None


def parse_launch(body: dict[str, object], default_cwd: str) -> LaunchRequest:
    """Validate the JSON body of ``POST /api/services/start`` (pure)."""
    name, cmd, cwd = body.get("name"), body.get("cmd"), body.get("cwd") or default_cwd
    if not isinstance(name, str) or not name.strip():
        raise UsageError("a service needs a 'name', e.g. api (it becomes api.localhost)")
    if isinstance(cmd, str):
        try:
            argv = tuple(shlex.split(cmd))
        except ValueError as exc:
            raise UsageError(f"cannot split the command: {exc}") from exc
    elif isinstance(cmd, list) and all(isinstance(a, str) for a in cmd):
        argv = tuple(str(a) for a in cmd)
    else:
        raise UsageError("'cmd' must be a command line string or a list of strings")
    if not argv:
        raise UsageError("'cmd' is empty")
    if not isinstance(cwd, str) or not os.path.isabs(cwd):
        raise UsageError(f"'cwd' must be an absolute folder, not {cwd!r}")
    port = body.get("port")
    if port is not None and (not isinstance(port, int) or not 0 < port < 65536):
        raise UsageError("'port' must be a number 1-65535")
    return LaunchRequest(name.strip(), argv, cwd, port, owner_of(body))


def owner_of(body: dict[str, object]) -> int | None:
    """The optional ``owner_pid`` of a start or restart body (pure): the daemon stops the
    service when that process exits, as it does for ``homeport run``'s CLI."""
    owner = body.get("owner_pid")
    if owner is not None and (not isinstance(owner, int) or isinstance(owner, bool) or owner < 2):
        raise UsageError("'owner_pid' must be a process id")
    return owner


class Launcher:
    """The daemon-owned children; every pump thread and child is stopped by ``close``."""

    def __init__(self, gateway: Gateway, route_url: Callable[[str], str]) -> None:
        self._gateway = gateway
        self._route_url = route_url
        self._procs: dict[str, subprocess.Popen[bytes]] = {}
        self._stopping: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self, req: LaunchRequest) -> ServiceRecord:
        from homeport.daemon.routes import normalize_name
        from homeport.services.flags import plan_command
        from homeport.services.runner import spawn

        name = normalize_name(req.name)
        self._check_free(name)
        port = req.port if req.port is not None else await asyncio.to_thread(_free_port)
        url = self._route_url(name)
        plan = plan_command(req.argv, port, "127.0.0.1", url)
        proc = spawn(plan, req.cwd)
        try:
            svc = self._gateway.register(
                {
                    "name": name.removesuffix(".localhost"),
                    "cmd": list(plan.argv),
                    "cwd": req.cwd,
                    "port": port,
                    "pid": proc.pid,
                    "pgid": proc.pid,
                    "owner_pid": req.owner_pid or os.getpid(),
                }
            )
        except BaseException:  # not registered means nobody would ever stop it: do it now
            await asyncio.to_thread(_stop_unregistered, proc)
            raise
        self._procs[svc.id] = proc
        self._own(self._pump(svc.id, proc), f"pump-{svc.id}")
        try:
            # The address that answered, and the port: a command that ignores PORT is
            # found on the port its process group listens on.
            addr, port = await asyncio.to_thread(_wait_listening, proc, port)
        except Exception:
            await self._stop_proc(svc.id)
            raise
        host = f"[{addr}]" if ":" in addr else addr
        route = Route(name=name, target=f"http://{host}:{port}", service_id=svc.id)
        return self._gateway.mark_running(svc.id, route)

    def _check_free(self, name: str) -> None:
        store = self._gateway.store
        route = store.route(name)
        svc = store.service(route.service_id) if route and route.service_id else None
        if svc is not None and svc.state in ("starting", "running"):
            raise UsageError(f"{name} is already running (pid {svc.pid})", hint="restart it")

    async def stop(self, service_id: str) -> ServiceRecord:
        svc = self._gateway.service(service_id)
        if svc.state not in ("starting", "running"):
            raise UsageError(f"{svc.name} is not running ({svc.state})")
        if service_id in self._procs:
            await self._stop_proc(service_id)
        else:
            from homeport.daemon import procs

            await asyncio.to_thread(procs.stop_group, svc.pgid, svc.pid_start, GRACE)
            # The `homeport run` that owns it reports the exit; until then say "stopped".
            self._gateway.finish(service_id, "stopped", None)
        return self._gateway.service(service_id)

    async def restart(self, service_id: str, owner_pid: int | None = None) -> ServiceRecord:
        svc = self._gateway.service(service_id)
        route = next((r for r in self._gateway.routes() if r.service_id == service_id), None)
        if svc.state in ("starting", "running"):
            await self.stop(service_id)
        name = route.name if route else svc.name
        return await self.start(
            LaunchRequest(name, svc.cmd, svc.cwd or "/", svc.port, owner_pid=owner_pid)
        )

    async def _stop_proc(self, service_id: str) -> None:
        from homeport.services.runner import stop_group

        proc = self._procs.get(service_id)
        if proc is None:
            return
        self._stopping.add(service_id)
        if proc.poll() is None:
            await asyncio.to_thread(stop_group, proc, GRACE)
        await self._settle(service_id)

    async def _settle(self, service_id: str) -> None:
        """Wait (bounded) for the pump to record the exit, so callers see the final state."""
        for task in list(self._tasks):
            if task.get_name() == f"pump-{service_id}":
                with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError):
                    await asyncio.wait_for(asyncio.shield(task), GRACE + 2)

    def _own(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _pump(self, service_id: str, proc: subprocess.Popen[bytes]) -> None:
        """Output lines into the gateway, then the exit into the store."""
        loop = asyncio.get_running_loop()
        eof: asyncio.Future[None] = loop.create_future()
        assert proc.stdout is not None
        stream = proc.stdout

        def add(line: str) -> None:
            with contextlib.suppress(HomeportError):  # the service may be gone from the store
                self._gateway.add_lines(service_id, [line])

        def read() -> None:  # a thread of its own: a blocking pipe must not hold the pool
            with contextlib.suppress(RuntimeError):  # the loop closed: nobody to tell
                for raw in iter(stream.readline, b""):
                    loop.call_soon_threadsafe(add, raw.decode(errors="replace").rstrip("\r\n"))
                loop.call_soon_threadsafe(_resolve, eof)

        threading.Thread(target=read, name=f"homeport-out-{service_id}", daemon=True).start()
        await eof
        stream.close()
        code = await asyncio.to_thread(proc.wait)
        self._procs.pop(service_id, None)
        state: ServiceState = "stopped" if service_id in self._stopping else "exited"
        self._stopping.discard(service_id)
        with contextlib.suppress(HomeportError):  # pruned meanwhile: nothing to record
            # Reaped already (its owner, an MCP session, went away): keep that verdict.
            if self._gateway.service(service_id).state in ("starting", "running"):
                self._gateway.finish(service_id, state, code)
        self._gateway.store.add_event(
            f"service-{state}", {"id": service_id, "pid": proc.pid, "exit_code": code}
        )

    async def close(self) -> None:
        """Stop every group this daemon started, then end the pumps."""
        for service_id in list(self._procs):
            await self._stop_proc(service_id)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


def _resolve(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


def _stop_unregistered(proc: subprocess.Popen[bytes]) -> None:
    from homeport.services.runner import stop_group

    stop_group(proc, GRACE)
    if proc.stdout is not None:
        proc.stdout.close()


def _free_port() -> int:
    from homeport.ports import free_port

    return free_port()


def _wait_listening(proc: subprocess.Popen[bytes], port: int) -> tuple[str, int]:
    from homeport.services.runner import wait_listening

    return wait_listening(proc, port, READY_TIMEOUT)
