"""One service of a project under the daemon's supervision: its process and its life.

A unit waits for its dependencies' conditions, spawns its command in a process group of its
own with output appended to a log file, probes readiness, and on exit applies its restart
policy (exponential backoff, a maximum of restarts in a row, then ``crashloop``). Stopping
sends ``stop_signal`` to the whole group, waits ``stop_timeout``, then SIGKILLs the group.

Output goes to a file, not a pipe, so a daemon killed with ``kill -9`` leaves services
writing into files nobody reads yet, instead of into a broken pipe (EPIPE/SIGPIPE would end
them); the next daemon adopts the process (PID + start time) and tails the file from there.

States (``state``)::

    pending    waiting for its dependencies        starting   spawned, probe not passed yet
    ready      the probe passed (a service runs)   completed  a task that exited 0
    backoff    waiting to restart                  crashloop  restarted `max` times in a row
    exited     a service that ended (no restart)   failed     a task that failed, a probe
    blocked    a dependency failed or stopped                 that gave up, a spawn error
    stopping   stop_signal sent                    stopped    stopped on request
    lost       gone while no daemon watched it
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import os
import signal
import subprocess
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal

import psutil

from homeport.daemon import procs
from homeport.project.stack import Launch
from homeport.services import readiness

log = logging.getLogger("homeport.supervisor")

State = Literal[
    "pending", "starting", "ready", "completed", "backoff", "crashloop", "exited", "failed",
    "blocked", "stopping", "stopped", "lost",
]  # fmt: skip
LIVE: frozenset[str] = frozenset({"starting", "ready", "stopping"})
#: States a dependency or a waiting `up` will not see change on their own.
SETTLED: frozenset[str] = frozenset(
    {"ready", "completed", "crashloop", "exited", "failed", "blocked", "stopped", "lost"}
)
#: A run that stayed up this long resets the count of restarts in a row.
STABLE_AFTER = 10.0


class Unit:
    """State and process of one service; ``changed`` is called after every state change."""

    def __init__(
        self,
        launch: Launch,
        log_path: Path,
        environ: Mapping[str, str],
        changed: Callable[[Unit], None],
    ) -> None:
        self.launch = launch
        self.log_path = log_path
        self.environ = dict(environ)
        self._changed = changed
        self.state: State = "pending"
        self.pid: int | None = None
        self.pid_start: float | None = None
        self.proc: subprocess.Popen[bytes] | None = None
        self.restarts = 0
        self.failures = 0  # restarts in a row
        self.exit_code: int | None = None
        self.started: float | None = None
        self.ready_since: float | None = None
        self.message = ""
        self.address = launch.host or "127.0.0.1"
        self.stopping = False
        self.task: asyncio.Task[None] | None = None
        self.log_watch: readiness.LogWatch | None = None
        self._wake = asyncio.Event()  # cuts a backoff short on stop
        self.last: collections.deque[str] = collections.deque(maxlen=20)

    @property
    def name(self) -> str:
        return self.launch.name

    def set(self, state: State, message: str | None = None) -> None:
        self.state = state
        if message is not None:
            self.message = message
        self._changed(self)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.launch.kind,
            "state": self.state,
            "pid": self.pid,
            "port": self.launch.port,
            "address": self.launch.host,
            "url": self.launch.url if self.launch.route else None,
            "route": self.launch.route,
            "restarts": self.restarts,
            "exit_code": self.exit_code,
            "started": self.started,
            "ready_since": self.ready_since,
            "message": self.message,
            "depends_on": [d.to_json() for d in self.launch.depends_on],
        }

    def record(self) -> dict[str, Any]:
        """What the store keeps: enough for a new daemon to adopt or restart the unit."""
        return {
            **self.to_json(),
            "pid_start": self.pid_start,
            "launch": self.launch.to_json(),
            "log": str(self.log_path),
            "address": self.address,
        }

    # -- process -------------------------------------------------------------------------

    def spawn(self) -> None:
        env = readiness.child_env(self.environ, self.launch.env_files, self.launch.env)
        self.log_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self.log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            self.proc = subprocess.Popen(
                self.launch.argv,
                cwd=self.launch.cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=fd,
                stderr=subprocess.STDOUT,
                process_group=0,  # its own group: a stop reaches every process it forked
            )
        finally:
            os.close(fd)
        self.pid = self.proc.pid
        self.pid_start = procs.start_time(self.pid)
        self.started = time.time()
        self.exit_code = None
        self.ready_since = None

    def adopt(self, pid: int, pid_start: float | None) -> None:
        """A process a previous daemon started: watched by pidfd, its exit code unknown."""
        self.proc = None
        self.pid, self.pid_start = pid, pid_start

    async def wait_exit(self) -> int | None:
        """The leader's exit status (None for an adopted process: not our child)."""
        pid, proc = self.pid, self.proc
        assert pid is not None
        fd = procs.pidfd(pid)
        if fd is None:
            if proc is not None:
                return await asyncio.to_thread(proc.wait)
            while running(pid, self.pid_start):  # noqa: ASYNC110
                await asyncio.sleep(0.5)  # no pidfd (Linux < 5.3): poll the adopted process
            return None
        loop = asyncio.get_running_loop()
        gone: asyncio.Future[None] = loop.create_future()

        def readable() -> None:
            if not gone.done():
                gone.set_result(None)

        loop.add_reader(fd, readable)
        try:
            await gone
        finally:
            loop.remove_reader(fd)
            os.close(fd)
        return proc.wait() if proc is not None else None

    async def kill_group(self, sig: int, grace: float) -> None:
        """``sig`` to the group, then SIGKILL what is left once it is empty or after
        ``grace`` seconds. While the leader lives, only a leader that is still the process
        we recorded (same start time) is signalled: PIDs are reused.

        The group is not always enough: a child may leave it with ``setsid`` (PostgreSQL's
        postmaster makes each of its children a session leader, so that it can signal their
        groups). Descendants found before the stop are waited for and killed as well."""
        pgid = self.pid
        if pgid is None:
            return
        leader = running(pgid, self.pid_start)
        tree = descendants(pgid) if leader else []
        if not leader and not group_members(pgid):
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, sig)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and (  # noqa: ASYNC110
            group_members(pgid) or any(p.is_running() and _not_zombie(p) for p in tree)
        ):
            await asyncio.sleep(0.02)  # no event says when the last member of a group exits
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)
        for p in tree:
            with contextlib.suppress(Exception):
                p.kill()  # psutil checks the process is still the one it saw (create time)

    # -- life ----------------------------------------------------------------------------

    async def run(self, deps_ok: Callable[[], asyncio.Future[str | None]]) -> None:
        """The unit's whole life: wait for dependencies, then start and supervise."""
        self.set("pending", "")
        problem = await deps_ok()
        if problem is not None:
            self.set("blocked", problem)
            return
        while not self.stopping:
            again = await self._one_run()
            if not again:
                return
            delay = self.launch.restart.delay(self.failures)
            self.set("backoff", f"restart {self.failures} in {delay:g}s: {self.message}")
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), delay)
            self.restarts += 1
        self.set("stopped")

    async def resume(self) -> None:
        """Supervise an adopted process: its probe (if it was starting) and its exit."""
        again = await self._watch(adopted=True)
        while again and not self.stopping:
            delay = self.launch.restart.delay(self.failures)
            self.set("backoff", f"restart {self.failures} in {delay:g}s")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), delay)
            self.restarts += 1
            again = await self._one_run()

    async def _one_run(self) -> bool:
        """Start once and supervise until exit; True when the policy says start again."""
        self.message = ""
        port = self.launch.port
        if port is not None and await asyncio.to_thread(_held, port):
            self.set(
                "failed",
                f"port {port} is already in use by another process (homeport who {port})",
            )
            return False
        try:
            self.spawn()
        except (OSError, ValueError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            self.set("failed", f"could not start {self.launch.argv[0]}: {reason}")
            return False
        if self.launch.ready.kind == "log":
            self.log_watch = readiness.LogWatch(self.launch.ready.pattern or "")
        return await self._watch(adopted=False)

    async def _watch(self, adopted: bool) -> bool:
        if not adopted:
            self.set("starting")
        exit_task = asyncio.ensure_future(self.wait_exit())
        if self.state == "starting":
            probe = asyncio.ensure_future(self._probe())
            done, _ = await asyncio.wait({exit_task, probe}, return_when=asyncio.FIRST_COMPLETED)
            if probe in done:
                outcome = probe.result()
                if outcome is not None and not outcome.ok and not exit_task.done():
                    self.message = f"not ready: {outcome.reason}"
                    await self.kill_group(self.launch.stop_signal, self.launch.stop_timeout)
            else:
                probe.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await probe
        code = await exit_task
        self.exit_code = code
        # The leader is gone; whatever it forked into its group goes with it.
        await self.kill_group(self.launch.stop_signal, self.launch.stop_timeout)
        return self._after_exit(code)

    async def _probe(self) -> readiness.Outcome | None:
        spec = self.launch.ready
        if spec.kind == "completed":
            return None  # a task: its exit decides
        if spec.kind != "started":
            env = readiness.child_env(self.environ, self.launch.env_files, self.launch.env)
            outcome = await readiness.wait_ready(
                spec, self.launch.port, self.launch.cwd, env, self.log_watch, self.launch.host
            )
            if not outcome.ok:
                return outcome
            self.address = outcome.address or self.address
        self.ready_since = time.time()
        self.set("ready", "")
        return readiness.Outcome(True, "ready")

    def _after_exit(self, code: int | None) -> bool:
        ran = time.time() - (self.started or time.time())
        self.ready_since = None
        if self.stopping:
            self.set("stopped", "")
            return False
        if self.launch.kind == "task" and code == 0:
            self.set("completed", "")
            return False
        if code is None or code >= 0:
            detail = f"exited with code {code}" if code is not None else "exited"
        else:
            detail = f"killed by {signal.Signals(-code).name}"
        not_ready = self.message.startswith("not ready")
        why = self.message if not_ready else detail
        failure = not_ready or code != 0
        policy = self.launch.restart.policy
        if policy == "always" or (policy == "on-failure" and failure):
            if ran >= max(STABLE_AFTER, self.launch.restart.backoff_max):
                self.failures = 0
            self.failures += 1
            if self.failures > self.launch.restart.max:
                self.set("crashloop", f"{why}; restarted {self.restarts} times, giving up")
                return False
            self.message = why
            return True
        self.set("failed" if failure else "exited", why)
        return False

    async def stop(self) -> None:
        """Stop (dependents are stopped first by the caller); returns once the group is gone."""
        self.stopping = True
        self._wake.set()
        if self.state == "pending" and self.task is not None:
            self.task.cancel()  # still waiting for its dependencies: nothing runs yet
        if self.pid is not None and self.state in LIVE:
            self.set("stopping")
            await self.kill_group(self.launch.stop_signal, self.launch.stop_timeout)
        if self.task is not None and not self.task.done():
            try:
                await asyncio.wait_for(asyncio.shield(self.task), self.launch.stop_timeout + 5)
            except (TimeoutError, asyncio.CancelledError):
                self.task.cancel()
        if self.state not in ("stopped", "completed", "failed", "crashloop", "lost"):
            self.set("stopped", "")


def _held(port: int) -> bool:
    """Something already accepts on ``port``: the service could not listen there (a connect,
    not a bind test: a bind without SO_REUSEADDR also fails on TIME-WAIT leftovers of the
    service's own previous run, which the service's own bind gets past)."""
    from homeport.services.runner import answering

    return answering(port) is not None


def descendants(pid: int) -> list[psutil.Process]:
    try:
        return list(psutil.Process(pid).children(recursive=True))
    except psutil.Error:
        return []


def _not_zombie(p: psutil.Process) -> bool:
    try:
        return p.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def running(pid: int, started: float | None, proc_dir: str = "/proc") -> bool:
    """``pid`` is the process recorded (same start time) and has not exited: a zombie keeps
    its ``/proc`` entry until someone reaps it, and after a daemon's death nobody may."""
    from homeport.inventory import procfs

    try:
        with open(f"{proc_dir}/{pid}/stat") as f:
            rec = procfs.parse_stat_record(f.read())
    except (OSError, ValueError):
        return False
    return rec.state not in "ZX" and (started is None or float(rec.start_ticks) == started)


def group_members(pgid: int, proc_dir: str = "/proc") -> list[int]:
    """PIDs of the live (not zombie) processes in group ``pgid``: a zombie waits for a parent
    to reap it but runs nothing, and killpg(pgid, 0) would count it."""
    from homeport.inventory import procfs

    out: list[int] = []
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return out
    except PermissionError:
        pass
    for entry in os.scandir(proc_dir):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"{proc_dir}/{entry.name}/stat") as f:
                rec = procfs.parse_stat_record(f.read())
        except (OSError, ValueError):
            continue
        if rec.pgrp == pgid and rec.state not in "ZX":
            out.append(int(entry.name))
    return out
