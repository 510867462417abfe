"""The daemon's project supervisor: runs stacks, names them, and survives its own death.

``up`` loads the project file (the caller's environment and profiles given), leases a port
for every ``port = "auto"`` service, resolves ``${...}``, records the stack in the store and
starts one task per service: each waits for its dependencies' conditions, so independent
services start in parallel and a dependent starts the moment its dependency is ready. A
ready service with a route gets ``SERVICE.PROJECT.localhost`` on the gateway.

``down`` stops dependents first: the stop order is the start order's levels reversed, one
level at a time, each level in parallel.

Output: every service writes to its own log file; one tail loop reads the new bytes of all
of them (quickly after output, every 0.25 s when quiet) into a per-project ring of numbered
lines that ``logs -f``, a foreground ``up`` and the dashboard read with a long poll.

A daemon killed with ``kill -9`` leaves its services running (they are in their own process
groups and write to files). At start-up ``restore`` reads the stacks back; a service whose
PID still runs with the recorded start time is adopted, any other is reported ``lost``.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import itertools
import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from homeport.errors import NotFound, UsageError
from homeport.gateway.contract import Route
from homeport.project.stack import Launch, Stack, resolve
from homeport.services.unit import LIVE, SETTLED, Unit, running

if TYPE_CHECKING:
    from homeport.daemon.state import Gateway
    from homeport.project.schema import ServiceSpec

log = logging.getLogger("homeport.supervisor")

#: Lines of output kept per project in memory (the files keep everything).
KEEP_LINES = 20_000
TAIL_FAST, TAIL_IDLE = 0.02, 0.25
#: With inotify waking the tailer, a quiet stack is still looked at this often (a safety net).
TAIL_WATCHED = 2.0
#: Most bytes read from one log per pass: bounds how long one pass holds the event loop
#: (which the gateway shares) when a service writes fast.
READ_CHUNK = 1 << 16


@dataclass(frozen=True, slots=True)
class Line:
    seq: int
    time: float
    service: str
    text: str

    def to_json(self) -> dict[str, Any]:
        return {"seq": self.seq, "time": self.time, "service": self.service, "line": self.text}


class ProjectRun:
    """One running stack: its units, its output ring, and a condition for long polls."""

    def __init__(self, pid: str, meta: dict[str, Any], sup: Supervisor) -> None:
        self.id = pid
        self.meta = meta  # name, file, root, profiles, branch, levels
        self.units: dict[str, Unit] = {}
        self.lines: collections.deque[Line] = collections.deque(maxlen=KEEP_LINES)
        self.seq = 0
        self.version = 0  # bumped on every state change and every batch of lines
        self._event = asyncio.Event()  # set (and replaced) on each bump: waiters wake
        self._sup = sup
        self.offsets: dict[str, int] = {}
        self.partial: dict[str, bytes] = {}
        #: The services the last ``up`` asked for (with what they need), in start order.
        self.selected: list[str] = []
        #: Open log files, kept so that a quiet tick costs one fstat per service.
        self.fds: dict[str, int] = {}

    def drop_fd(self, name: str) -> None:
        fd = self.fds.pop(name, None)
        if fd is not None:
            os.close(fd)

    @property
    def levels(self) -> list[list[str]]:
        return [list(level) for level in self.meta.get("levels", [])]

    def to_json(self) -> dict[str, Any]:
        order = [n for level in self.levels for n in level]
        units = [self.units[n] for n in order if n in self.units]
        return {
            "id": self.id,
            "name": self.meta.get("name"),
            "file": self.meta.get("file"),
            "root": self.meta.get("root"),
            "branch": self.meta.get("branch"),
            "profiles": self.meta.get("profiles", []),
            "services": [u.to_json() for u in units],
            "last_seq": self.seq,
            "version": self.version,
        }

    def poke(self) -> None:
        self.version += 1
        event, self._event = self._event, asyncio.Event()
        event.set()

    async def next_change(self, within: float | None = None) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._event.wait(), within)

    def since(self, after: int, limit: int) -> list[Line]:
        """Lines numbered above ``after`` (the ring's numbers are consecutive)."""
        if not self.lines:
            return []
        start = max(0, after + 1 - self.lines[0].seq)
        return list(itertools.islice(self.lines, start, start + limit))

    def add_line(self, service: str, text: str) -> None:
        self.seq += 1
        self.lines.append(Line(self.seq, time.time(), service, text))


class Supervisor:
    def __init__(self, gateway: Gateway, state_dir: Path, route_url: Callable[[str], str]) -> None:
        self.gateway = gateway
        self.store = gateway.store
        self.state_dir = state_dir
        self.log_dir = state_dir / "projects"
        self.route_url = route_url
        self.projects: dict[str, ProjectRun] = {}
        self._tail_task: asyncio.Task[None] | None = None
        self._tail_wake = asyncio.Event()
        self._dirs: Any = None  # a DirWatch once the tail runs (None: poll)
        self._tasks: set[asyncio.Task[Any]] = set()
        gateway.extra_status = self.status_of

    # -- starting ------------------------------------------------------------------------

    async def up(self, body: Mapping[str, Any]) -> ProjectRun:
        """``{"file", "profiles"?, "env"?, "services"?}``: start the stack (or the named
        services and what they need); services already live are left running."""
        from homeport.project import load

        file = body.get("file")
        if not isinstance(file, str) or not os.path.isabs(file):
            raise UsageError("'file' must be the absolute path of a project file")
        environ = _str_map(body.get("env", {}), "env")
        profiles = [str(p) for p in body.get("profiles", [])]
        stack = await asyncio.to_thread(load, file, profiles=profiles)
        names = stack.select(str(n) for n in body.get("services", []))
        run = self.projects.get(stack.id)
        if run is None:
            run = ProjectRun(stack.id, _meta(stack, environ), self)
            self.projects[stack.id] = run
        else:
            run.meta = _meta(stack, environ)
        # Services trust the gateway's local CA once `homeport trust` made the children's
        # bundle (NODE_EXTRA_CA_CERTS, SSL_CERT_FILE …); their own env still wins.
        from homeport.tls.env import for_child

        child_base = {**environ, **for_child(self.state_dir, environ)}
        ports = await asyncio.to_thread(self._ports, stack, run)
        addresses = await asyncio.to_thread(self._addresses, stack, run, ports)
        launches = resolve(
            stack, [s.name for s in stack.services], ports, environ, self.route_url, addresses
        )
        self.store.put_project(stack.id, run.meta)
        for launch in launches:
            if launch.name not in names:
                continue
            unit = run.units.get(launch.name)
            if unit is not None and unit.state in LIVE | {"pending", "backoff"}:
                continue
            unit = Unit(
                launch, self._log_path(stack.id, launch.name), child_base, self._changed(run)
            )
            if launch.name in run.units:
                unit.restarts = run.units[launch.name].restarts
            run.units[launch.name] = unit
            self._start(run, unit)
        self._ensure_tail()
        run.poke()
        run.selected = names
        return run

    def _ports(self, stack: Stack, run: ProjectRun) -> dict[str, int | None]:
        """The port of every service: fixed, or a lease (kept while the same daemon runs the
        project: a restart of the stack keeps its ports and so its interpolated URLs)."""
        from homeport.ports import free_port

        out: dict[str, int | None] = {}
        for s in stack.services:
            current = run.units.get(s.name)
            if s.port is None:
                out[s.name] = None
            elif isinstance(s.port, int):
                out[s.name] = s.port
            elif current is not None and current.launch.port is not None:
                out[s.name] = current.launch.port
            elif s.address is not None and (known := _default_port(s)) is not None:
                # On an address of its own a service keeps the port its framework defaults
                # to (issue 11): two copies of one app both on 8000, side by side.
                out[s.name] = known
            else:
                out[s.name] = free_port(f"{stack.id}.{s.name}")
        return out

    def _addresses(
        self, stack: Stack, run: ProjectRun, ports: dict[str, int | None]
    ) -> dict[str, str]:
        """The address of every service with ``address`` set: fixed, or a lease held by this
        daemon (the same name gets the same address while it is free)."""
        from homeport.ports.address import lease_address

        out: dict[str, str] = {}
        for s in stack.services:
            current = run.units.get(s.name)
            if s.address is None:
                continue
            if s.address != "auto":
                out[s.name] = s.address
            elif current is not None and current.launch.host is not None:
                out[s.name] = current.launch.host
            else:
                name = f"{stack.id}.{s.name}"
                out[s.name] = str(
                    lease_address(name, port=ports.get(s.name), holder_pid=os.getpid())
                )
        return out

    def _log_path(self, project: str, name: str) -> Path:
        return self.log_dir / project / f"{name}.log"

    def _start(self, run: ProjectRun, unit: Unit) -> None:
        with contextlib.suppress(OSError):
            unit.log_path.unlink()  # a fresh start: a fresh log (restarts append)
        run.offsets[unit.name] = 0
        run.partial.pop(unit.name, None)
        run.drop_fd(unit.name)
        unit.task = self._own(unit.run(functools.partial(self._deps_ok, run, unit)))

    def _own(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("supervisor task failed", exc_info=task.exception())

    def _deps_ok(self, run: ProjectRun, unit: Unit) -> asyncio.Future[str | None]:
        """Resolves to None once every dependency meets its condition, or to the reason it
        never will (a dependency failed, stopped or is not part of this run)."""

        async def wait() -> str | None:
            while True:
                problem, waiting = _check_deps(run, unit)
                if problem is not None or not waiting:
                    return problem
                await run.next_change()

        return asyncio.ensure_future(wait())

    def _changed(self, run: ProjectRun) -> Callable[[Unit], None]:
        def changed(unit: Unit) -> None:
            # Its last words come before the news of its exit.
            self._read_unit(run, unit, to_end=unit.state not in LIVE)
            self._route(run, unit)
            with contextlib.suppress(Exception):  # the store must not stop supervision
                self.store.put_unit(run.id, unit.name, unit.record())
            run.poke()
            self.gateway._notify()

        return changed

    def _route(self, run: ProjectRun, unit: Unit) -> None:
        name = unit.launch.route
        if name is None:
            return
        sid = f"{run.id}:{unit.name}"
        current = self.store.route(name)
        if unit.state == "ready" and unit.launch.port is not None:
            host = f"[{unit.address}]" if ":" in unit.address else unit.address
            target = f"http://{host}:{unit.launch.port}"
            route = Route(
                name=name,
                target=target,
                service_id=sid,
                allow_cross_site=unit.launch.allow_cross_site,
                allow_origins=unit.launch.allow_origins,
            )
            if current != route:
                try:
                    self.gateway.put_route(route)
                except UsageError as exc:
                    unit.message = f"no route: {exc.message}"
        elif current is not None and current.service_id == sid and unit.state != "starting":
            self.gateway.remove_route(name)

    # -- output --------------------------------------------------------------------------

    def _ensure_tail(self) -> None:
        if self._dirs is None:
            from homeport.services.dirwatch import open_watch

            self._dirs = open_watch() or False
            if self._dirs:
                loop = asyncio.get_running_loop()
                loop.add_reader(self._dirs.fd, self._dirs_readable)
        if self._tail_task is None or self._tail_task.done():
            self._tail_task = self._own(self._tail())
        self._tail_wake.set()

    def _dirs_readable(self) -> None:
        self._dirs.drain()
        self._tail_wake.set()

    async def _tail(self) -> None:
        """Read what every service wrote since last time: woken by inotify (or every
        ``TAIL_IDLE`` without it), and every ``TAIL_FAST`` while output flows."""
        while any(r.units for r in self.projects.values()):
            self._tail_wake.clear()  # before reading: a write during the read wakes us again
            got = self._read_all()
            delay = TAIL_FAST if got else TAIL_WATCHED if self._dirs else TAIL_IDLE
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._tail_wake.wait(), delay)

    def _read_all(self) -> bool:
        got = False
        for run in self.projects.values():
            before = run.seq
            for unit in run.units.values():
                self._read_unit(run, unit)
            if run.seq != before:
                got = True
                run.poke()
        return got

    def _read_unit(self, run: ProjectRun, unit: Unit, *, to_end: bool = False) -> bool:
        """Take up to ``READ_CHUNK`` new bytes of the unit's log into lines (with ``to_end``,
        everything there is). True when there was something to read."""
        got = False
        while self._read_chunk(run, unit):
            got = True
            if not to_end:
                break
        return got

    def _read_chunk(self, run: ProjectRun, unit: Unit) -> bool:
        offset = run.offsets.get(unit.name, 0)
        fd = run.fds.get(unit.name)
        if fd is None:
            if self._dirs and not self._dirs.add(unit.log_path.parent):
                self._dirs_lost()
            try:
                fd = run.fds[unit.name] = os.open(unit.log_path, os.O_RDONLY)
            except OSError:
                return False
        size = os.fstat(fd).st_size
        if size < offset:
            offset = 0  # truncated
        if size == offset:
            return False
        data = os.pread(fd, min(READ_CHUNK, size - offset), offset)
        run.offsets[unit.name] = offset + len(data)
        data = run.partial.pop(unit.name, b"") + data
        *complete, rest = data.split(b"\n")
        if rest:
            run.partial[unit.name] = rest
        for raw in complete:
            text = raw.decode(errors="replace").rstrip("\r")
            run.add_line(unit.name, text)
            unit.last.append(text)
            if unit.log_watch is not None:
                unit.log_watch.feed(text)
        return True

    async def settled(self, project: str, names: Sequence[str], within: float) -> ProjectRun:
        """Return once every (named) service is settled, or ``within`` seconds passed."""
        run = self.get(project)
        deadline = time.monotonic() + within
        while not all(u.state in SETTLED for n, u in run.units.items() if not names or n in names):
            left = deadline - time.monotonic()
            if left <= 0:
                break
            await run.next_change(left)
        return run

    async def wait(
        self, project: str, after_seq: int, after_version: int, within: float
    ) -> ProjectRun:
        """Return once the project has lines past ``after_seq`` or a state change past
        ``after_version``, or ``within`` seconds passed (a long poll)."""
        run = self.get(project)
        deadline = time.monotonic() + within
        while run.seq <= after_seq and run.version <= after_version:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            await run.next_change(left)
        return run

    # -- queries and control -------------------------------------------------------------

    def get(self, project: str) -> ProjectRun:
        run = self.projects.get(project)
        if run is None:
            known = ", ".join(self.projects) or "none"
            raise NotFound(f"no project {project!r} runs here (projects: {known})",
                           hint="homeport up starts it")  # fmt: skip
        return run

    def unit(self, project: str, name: str) -> tuple[ProjectRun, Unit]:
        run = self.get(project)
        unit = run.units.get(name)
        if unit is None:
            raise NotFound(f"{project} has no service {name!r} running",
                           hint="services: " + ", ".join(run.units))  # fmt: skip
        return run, unit

    async def stop(self, project: str, names: Sequence[str] = ()) -> ProjectRun:
        """Stop ``names`` (all when empty) and whatever depends on them, dependents first."""
        from homeport.project import graph

        run = self.get(project)
        deps = {n: [d.name for d in u.launch.depends_on] for n, u in run.units.items()}
        for n in names:
            self.unit(project, n)
        targets = graph.dependents(deps, names) if names else set(run.units)
        for level in reversed(run.levels):
            todo = [run.units[n] for n in level if n in targets and n in run.units]
            await asyncio.gather(*(u.stop() for u in todo))
        return run

    async def down(self, project: str) -> ProjectRun:
        run = await self.stop(project)
        for unit in run.units.values():
            self._release(unit.launch)  # only a lease this daemon holds is given back
        self.projects.pop(project, None)
        for name in list(run.fds):
            run.drop_fd(name)
        self.store.remove_project(project)
        run.poke()
        return run

    def _release(self, launch: Launch) -> None:
        from homeport.ports import release_port

        with contextlib.suppress(Exception):
            if launch.port is not None:
                release_port(launch.port)
        if launch.host is not None:
            from homeport.ports.address import release_address

            with contextlib.suppress(Exception):
                release_address(launch.host, holder_pid=os.getpid())

    async def start(self, project: str, names: Sequence[str]) -> ProjectRun:
        """Start stopped services again (with their recorded launch) and what they need."""
        from homeport.project import graph

        run = self.get(project)
        for n in names:
            self.unit(project, n)
        deps = {n: [d.name for d in u.launch.depends_on] for n, u in run.units.items()}
        for n in (x for level in run.levels for x in level):
            if n not in graph.closure(deps, names) or n not in run.units:
                continue
            old = run.units[n]
            if old.state in LIVE | {"pending", "backoff"} or old.state == "completed":
                continue
            unit = Unit(old.launch, old.log_path, old.environ, self._changed(run))
            unit.restarts = old.restarts
            run.units[n] = unit
            unit.task = self._own(unit.run(functools.partial(self._deps_ok, run, unit)))
        self._ensure_tail()
        run.poke()
        return run

    async def restart(self, project: str, names: Sequence[str]) -> ProjectRun:
        """Stop the named services (only them: dependents keep running) and start them."""
        run = self.get(project)
        for n in names:
            _, unit = self.unit(project, n)
            await unit.stop()
        for n in names:
            old = run.units[n]
            unit = Unit(old.launch, old.log_path, old.environ, self._changed(run))
            unit.restarts = old.restarts + 1
            run.units[n] = unit
            unit.task = self._own(unit.run(functools.partial(self._deps_ok, run, unit)))
        self._ensure_tail()
        run.poke()
        return run

    def status_of(self, service_id: str) -> tuple[str, list[str]] | None:
        """For the gateway's 502 page: ``PROJECT:NAME`` -> (what state, last lines)."""
        project, _, name = service_id.partition(":")
        run = self.projects.get(project)
        unit = run.units.get(name) if run else None
        if unit is None:
            return None
        text = " ".join(unit.launch.argv[2:] if unit.launch.argv[:2] == ("/bin/sh", "-c")
                        else unit.launch.argv)  # fmt: skip
        return (f"{text} is {unit.state} {unit.message}".strip(), list(unit.last))

    # -- restart of the daemon -----------------------------------------------------------

    async def restore(self) -> None:
        """Read back the stacks a previous daemon ran; adopt what still runs."""
        for project, meta, units in self.store.projects():
            run = ProjectRun(project, meta, self)
            self.projects[project] = run
            for name, rec in units.items():
                self._restore_unit(run, name, rec)
            run.poke()
        if self.projects:
            self._ensure_tail()

    def _restore_unit(self, run: ProjectRun, name: str, rec: Mapping[str, Any]) -> None:
        launch = Launch.from_json(rec["launch"])
        unit = Unit(launch, Path(rec["log"]), run.meta.get("env", {}), self._changed(run))
        unit.restarts = int(rec.get("restarts") or 0)
        unit.exit_code, unit.started = rec.get("exit_code"), rec.get("started")
        unit.ready_since, unit.message = rec.get("ready_since"), rec.get("message") or ""
        unit.address = rec.get("address") or unit.address
        unit.pid, unit.pid_start = rec.get("pid"), rec.get("pid_start")
        run.units[name] = unit
        with contextlib.suppress(OSError):
            run.offsets[name] = unit.log_path.stat().st_size  # new output only
        state = rec.get("state")
        if state in LIVE | {"backoff"} and unit.pid is not None:
            if running(unit.pid, unit.pid_start):
                unit.adopt(unit.pid, unit.pid_start)
                unit.state = "ready" if state in ("ready", "stopping") else "starting"
                unit.message = "adopted after a daemon restart"
                unit.task = self._own(unit.resume())
                return
            unit.state, unit.message = "lost", "ended while no daemon watched it"
            unit.ready_since = None
            self._changed(run)(unit)
            return
        if state in SETTLED:
            unit.state = state
        else:  # pending (or a backoff with nothing running): no daemon will start it now
            unit.state, unit.message = "stopped", "was waiting when its daemon ended"

    def _dirs_lost(self) -> None:
        """A folder could not be watched (the inotify watch limit): poll instead."""
        log.warning("inotify watch failed; polling the services' output instead")
        self._dirs_lost_quietly()

    async def close(self) -> None:
        """The daemon stops: stop every stack it runs (nothing outlives a clean shutdown)."""
        for project in list(self.projects):
            with contextlib.suppress(Exception):
                await self.stop(project)
        if self._dirs:
            self._dirs_lost_quietly()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _dirs_lost_quietly(self) -> None:
        with contextlib.suppress(Exception):
            asyncio.get_running_loop().remove_reader(self._dirs.fd)
        self._dirs.close()
        self._dirs = False

    def to_json(self) -> list[dict[str, Any]]:
        return [r.to_json() for r in self.projects.values()]


def _check_deps(run: ProjectRun, unit: Unit) -> tuple[str | None, bool]:
    """(why the unit can never start, whether it still waits)."""
    waiting = False
    for dep in unit.launch.depends_on:
        other = run.units.get(dep.name)
        if other is None:
            return f"{dep.name} is not running", False
        s = other.state
        met = {
            "started": s in ("starting", "ready", "completed"),
            "ready": s in ("ready", "completed"),
            "completed": s == "completed",
        }[dep.condition]
        if met:
            continue
        if s in SETTLED - {"ready"} or (dep.condition == "completed" and s == "exited"):
            return f"{dep.name} is {s}" + (f" ({other.message})" if other.message else ""), False
        waiting = True
    return None, waiting


def _meta(stack: Stack, environ: Mapping[str, str]) -> dict[str, Any]:
    """What the store keeps of a project; ``env`` (the caller's environment, which a restart
    of an adopted service needs again) stays in the 0600 state database, never in answers."""
    return {
        "env": dict(environ),
        "name": stack.name,
        "file": str(stack.file),
        "root": str(stack.root),
        "branch": stack.branch,
        "profiles": list(stack.profiles),
        "levels": stack.levels(),
    }


def _str_map(value: Any, key: str) -> dict[str, str]:
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise UsageError(f"'{key}' must be an object of strings")
    return dict(value)


def _default_port(s: ServiceSpec) -> int | None:
    """The port the service's program listens on by default, when homeport knows it."""
    import shlex

    from homeport.services.flags import default_port

    try:
        argv = list(s.args) if s.args is not None else shlex.split(s.cmd or "")
    except ValueError:
        return None
    # A shell line may start with `exec` or VAR=value assignments before the program.
    while argv and (argv[0] == "exec" or ("=" in argv[0] and not argv[0].startswith("="))):
        argv.pop(0)
    return default_port(tuple(argv)) if argv else None
