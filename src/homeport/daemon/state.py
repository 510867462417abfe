"""The daemon's live state: routes (persisted), services (persisted and supervised), and the
last output lines of each service (memory only).

Every route change is written to SQLite first and then pushed to the proxy as a fresh
``RouteTable``, so what the proxy serves is always what a restart would restore.

Supervision: ``homeport run`` starts the service itself (to stream its output) and registers
it here with its own PID as the owner. The daemon watches the owner through a pidfd; when the
owner dies without saying goodbye (``kill -9`` of the CLI) the daemon stops the service's
process group and removes its route, so no orphan keeps a port.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import os
import secrets
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from homeport.daemon import procs
from homeport.daemon.routes import AuthSpec, gateway_auth
from homeport.errors import NotFound, UsageError
from homeport.gateway.contract import Route, RouteTable
from homeport.store import ServiceRecord, ServiceState, Store

log = logging.getLogger("homeport.daemon")

NO_AUTH = AuthSpec("none")
#: Lines of output kept per service for the 502 page and the dashboard.
KEEP_LINES = 200


class Gateway:
    """Routes and services; ``publish`` receives every new ``RouteTable``."""

    def __init__(
        self, store: Store, publish: Callable[[RouteTable], None], default_auth: AuthSpec = NO_AUTH
    ) -> None:
        self.store = store
        self._publish = publish
        self._default_auth = default_auth
        self.lines: dict[str, collections.deque[str]] = {}
        #: Lines received per service since it started (``lines`` keeps the last ones): a
        #: reader's cursor, so ``service_logs`` can ask for what came after its last read.
        self.line_totals: collections.Counter[str] = collections.Counter()
        self._watch_fds: dict[str, int] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.started = time.time()
        #: Called after routes, services or their output changed (the dashboard's nudge).
        self.changed: Callable[[], None] | None = None
        #: The TCP route listeners (``gateway.tcp.TcpRoutes``), when the proxy runs.
        self.tcp: Any = None
        #: The project supervisor's answer for its own service ids (``PROJECT:NAME``).
        self.extra_status: Callable[[str], tuple[str, list[str]] | None] | None = None

    def _notify(self) -> None:
        if self.changed is not None:
            self.changed()

    # -- routes --------------------------------------------------------------------------

    def routes(self) -> list[Route]:
        return self.store.routes()

    def publish(self) -> None:
        table = RouteTable(tuple(gateway_auth(r, self._default_auth) for r in self.routes()))
        self._publish(table)
        self._notify()

    def put_route(self, route: Route) -> bool:
        existing = self.store.route(route.name)
        if existing and existing.service_id and existing.service_id != route.service_id:
            svc = self.store.service(existing.service_id)
            if svc and svc.state in ("starting", "running"):
                raise UsageError(
                    f"{route.name} belongs to a running service (pid {svc.pid})",
                    hint="stop it first, or pick another --name",
                )
        created = self.store.put_route(route)
        self.publish()
        return created

    def remove_route(self, name: str) -> None:
        if not self.store.remove_route(name):
            raise NotFound(f"no route named {name}")
        self.publish()

    # -- services ------------------------------------------------------------------------

    def register(self, data: dict[str, Any]) -> ServiceRecord:
        svc = _service_from_json(data)
        for pid in (svc.pgid, svc.owner_pid):
            # Only the daemon's own user may hand it processes to stop later.
            if procs.owner_uid(pid) not in (os.getuid(), None):
                raise UsageError(f"pid {pid} belongs to another user")
        self.store.put_service(svc)
        self.lines[svc.id] = collections.deque(maxlen=KEEP_LINES)
        self._watch(svc)
        self._notify()
        return svc

    def service(self, service_id: str) -> ServiceRecord:
        svc = self.store.service(service_id)
        if svc is None:
            raise NotFound(f"no service {service_id}")
        return svc

    def mark_running(self, service_id: str, route: Route, port: int | None = None) -> ServiceRecord:
        """The service listens (on ``port``, when not the one it was given): route to it."""
        svc = self.service(service_id)
        self.put_route(replace(route, service_id=service_id))
        running = replace(svc, state="running", port=port or svc.port)
        self.store.put_service(running)
        return running

    def finish(self, service_id: str, state: ServiceState, exit_code: int | None) -> None:
        self.service(service_id)
        self.store.finish_service(service_id, state, exit_code)
        self._unwatch(service_id)
        self.store.prune_services()
        self.publish()

    def add_lines(self, service_id: str, lines: list[str]) -> None:
        self.service(service_id)
        self.lines.setdefault(service_id, collections.deque(maxlen=KEEP_LINES)).extend(lines)
        self.line_totals[service_id] += len(lines)
        self._notify()

    def status_lookup(self, key: str) -> tuple[str, list[str]] | None:
        """``ServiceStatusLookup`` for the proxy's 502 page: by service id or route name."""
        svc = self.store.service(key)
        if svc is None and self.extra_status is not None and ":" in key:
            return self.extra_status(key)
        if svc is None:
            route = self.store.route(key)
            svc = self.store.service(route.service_id) if route and route.service_id else None
            if svc is None and route and route.service_id and self.extra_status is not None:
                return self.extra_status(route.service_id)
        if svc is None:
            return None
        lines = list(self.lines.get(svc.id, ()))[-20:]
        if svc.state in ("starting", "running"):
            if not procs.alive(svc.pid, svc.pid_start):
                return (f"{' '.join(svc.cmd)} (pid {svc.pid}) is no longer running", lines)
            return (f"{' '.join(svc.cmd)} runs (pid {svc.pid}) but does not answer", lines)
        return (f"{' '.join(svc.cmd)} {svc.state} with code {svc.exit_code}", lines)

    # -- supervision ---------------------------------------------------------------------

    async def restore(self) -> None:
        """After a restart: re-watch services whose owner lives, stop the rest."""
        for svc in self.store.services(live_only=True):
            self.lines.setdefault(svc.id, collections.deque(maxlen=KEEP_LINES))
            if procs.alive(svc.owner_pid, svc.owner_start):
                self._watch(svc)
            else:
                await self._reap(svc.id)
        self.publish()

    def _watch(self, svc: ServiceRecord) -> None:
        fd = procs.pidfd(svc.owner_pid)
        if fd is None:  # no pidfd (old kernel): poll the owner instead
            self._spawn(self._poll_owner(svc))
            return
        self._watch_fds[svc.id] = fd
        loop = asyncio.get_running_loop()
        loop.add_reader(fd, self._owner_gone, svc.id)

    def _unwatch(self, service_id: str) -> None:
        fd = self._watch_fds.pop(service_id, None)
        if fd is not None:
            with contextlib.suppress(Exception):
                asyncio.get_running_loop().remove_reader(fd)
            os.close(fd)

    def _owner_gone(self, service_id: str) -> None:
        self._unwatch(service_id)
        self._spawn(self._reap(service_id))

    async def _poll_owner(self, svc: ServiceRecord) -> None:
        while procs.alive(svc.owner_pid, svc.owner_start):  # noqa: ASYNC110
            await asyncio.sleep(1.0)  # fallback only: no pidfd (Linux < 5.3) to wait on
        await self._reap(svc.id)

    async def _reap(self, service_id: str) -> None:
        svc = self.store.service(service_id)
        if svc is None or svc.state not in ("starting", "running"):
            return
        log.warning(
            "owner %d of %s went away; stopping group %d", svc.owner_pid, svc.name, svc.pgid
        )
        await asyncio.to_thread(procs.stop_group, svc.pgid, svc.pid_start)
        self.finish(service_id, "reaped", None)
        self.store.add_event("service-reaped", {"id": svc.id, "name": svc.name, "pid": svc.pid})

    def _spawn(self, coro: Any) -> None:
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        for service_id in list(self._watch_fds):
            self._unwatch(service_id)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


def _service_from_json(data: dict[str, Any]) -> ServiceRecord:
    try:
        cmd = tuple(str(x) for x in data["cmd"])
        pid, pgid, owner = int(data["pid"]), int(data["pgid"]), int(data["owner_pid"])
        port, name, cwd = int(data["port"]), str(data["name"]), str(data.get("cwd", ""))
    except (KeyError, TypeError, ValueError) as exc:
        raise UsageError(f"a service needs cmd, pid, pgid, owner_pid, port, name ({exc})") from exc
    return ServiceRecord(
        id=secrets.token_hex(6),
        name=name,
        cmd=cmd,
        cwd=cwd,
        port=port,
        pid=pid,
        pgid=pgid,
        owner_pid=owner,
        state="starting",
        started=time.time(),
        pid_start=procs.start_time(pid),
        owner_start=procs.start_time(owner),
    )
