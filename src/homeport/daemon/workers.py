"""``homeport up --workers N``: the daemon serves the gateway port itself and in N-1 worker
processes (``homeport.daemon.worker``), all bound with ``SO_REUSEPORT`` so the kernel spreads
new connections over them by their addresses' hash.

One control plane: the daemon keeps the store, the access writer, the supervisor, the
dashboard and the control API. ``Workers`` here is its side:

- it binds each worker's listening sockets itself, before the worker starts (a bind error is
  the daemon's start-up error, said once), and keeps them: a worker that dies is started
  again on the same sockets, so connections the kernel queued for it wait in their backlog
  instead of being reset;
- it pushes every route table to every worker (``set_routes``);
- it feeds the workers' access records into the daemon's access writer, so the access log,
  ``/metrics`` and the dashboard count every worker's requests;
- it serves the control-API requests the workers pass on (``workerwire``) with the daemon's
  own control app.

With ``SO_REUSEPORT`` any process of the same user may bind the same port and take a share
of its connections; a process of the same user can read the gateway's token anyway, so this
opens nothing new. Without ``--workers`` the option is not set.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from homeport.daemon import workerwire
from homeport.daemon.procs import pidfd
from homeport.gateway.contract import (
    AccessRecord,
    AccessSink,
    ControlApp,
    RouteTable,
    ServiceStatusLookup,
)

log = logging.getLogger("homeport.daemon.workers")

#: Seconds a worker has to say it serves, at start-up and after a restart.
READY_TIMEOUT = 15.0
#: Restart delays after a worker dies: doubling from the first, capped at the last.
BACKOFF = (0.2, 30.0)
#: Seconds a worker has to finish after its channel closed, before SIGKILL.
STOP_TIMEOUT = 3.0
#: A worker that ran this long before dying starts again after the first delay.
STABLE_S = 60.0


async def _exited(proc: subprocess.Popen[bytes], within: float) -> bool:
    """Wait up to ``within`` seconds for ``proc`` to exit, on its pidfd (no polling)."""
    if proc.poll() is not None:
        return True
    fd = pidfd(proc.pid)
    if fd is None:  # Linux < 5.3: no event to wait on
        deadline = time.monotonic() + within
        while proc.poll() is None and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        return proc.poll() is not None
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()

    def readable() -> None:
        if not done.done():
            done.set_result(None)

    loop.add_reader(fd, readable)
    try:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(done, within)
    finally:
        loop.remove_reader(fd)
        os.close(fd)
    return proc.poll() is not None


def cpu_count() -> int:
    """The cores this process may run on (``--workers auto``)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def reuseport_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind((host, port))
        sock.listen(4096)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


@dataclass
class Worker:
    index: int
    listeners: list[socket.socket]
    proc: subprocess.Popen[bytes] | None = None
    channel: _DaemonChannel | None = None
    streams: socket.socket | None = None
    started: float = 0.0
    restarts: int = 0
    state: str = "starting"
    ready: asyncio.Future[None] | None = None
    tasks: set[asyncio.Task[None]] = field(default_factory=set)

    def to_json(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "pid": self.proc.pid if self.proc is not None else None,
            "state": self.state,
            "started": self.started,
            "restarts": self.restarts,
        }


class _DaemonChannel(asyncio.Protocol):
    """The daemon's end of one worker's message channel."""

    def __init__(self, pool: Workers, worker: Worker) -> None:
        self._pool = pool
        self._worker = worker
        self._frames = workerwire.Frames()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        try:
            messages = self._frames.feed(data)
        except (ValueError, EOFError, TypeError) as exc:
            log.error("worker %d sent a bad frame (%s): restarting it", self._worker.index, exc)
            if self.transport is not None:
                self.transport.close()
            return
        for message in messages:
            self._pool._message(self._worker, message)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self._pool._lost(self._worker)

    def send(self, message: dict[str, Any]) -> None:
        if self.transport is not None:
            self.transport.write(workerwire.frame(message))


class Workers:
    """The daemon's N-1 gateway workers (the daemon itself is worker 0)."""

    def __init__(
        self,
        count: int,
        *,
        state_dir: str,
        control: ControlApp,
        access_sink: AccessSink | None,
        service_status: ServiceStatusLookup | None,
        https_only: bool = False,
        verbose: bool = False,
    ) -> None:
        self.count = count
        self._state_dir = state_dir
        self._control = control
        self._sink = access_sink
        self._status = service_status
        self._https_only = https_only
        self._verbose = verbose
        self._table = RouteTable()
        self.workers: list[Worker] = []
        self._closing = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._make_record: Callable[[Sequence[Any]], AccessRecord] = AccessRecord._make

    # -- start and stop -------------------------------------------------------------------

    async def start(
        self, bound: Sequence[tuple[str, int]], shared: Sequence[socket.socket] = ()
    ) -> None:
        """Bind every worker's sockets on the daemon's addresses, start them all, and wait
        until each serves. ``shared``: listening sockets passed by a service manager (socket
        activation), which the workers then accept from too, as one queue (they were not
        bound with ``SO_REUSEPORT``, so no second socket can join them). Raises OSError (a
        bind) or RuntimeError (a worker that did not start); what was started is stopped."""
        self._loop = asyncio.get_running_loop()
        try:
            for i in range(1, self.count):
                if shared:
                    listeners = [s.dup() for s in shared]
                else:
                    listeners = [reuseport_socket(host, port) for host, port in bound]
                self.workers.append(Worker(i, listeners))
            for w in self.workers:
                self._spawn(w)
            for w in self.workers:
                assert w.ready is not None
                try:
                    await asyncio.wait_for(asyncio.shield(w.ready), READY_TIMEOUT)
                except TimeoutError:
                    raise RuntimeError(
                        f"gateway worker {w.index} did not start within {READY_TIMEOUT:.0f} s"
                        " (see the daemon log)"
                    ) from None
        except BaseException:
            await self.close()
            raise

    def _spawn(self, w: Worker) -> None:
        assert self._loop is not None
        mine, theirs = socket.socketpair()
        s_mine, s_theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
        fds = [s.fileno() for s in w.listeners]
        argv = [
            sys.executable,
            "-m",
            "homeport.daemon.worker",
            "--index",
            str(w.index),
            "--listen-fds",
            ",".join(map(str, fds)),
            "--messages-fd",
            str(theirs.fileno()),
            "--streams-fd",
            str(s_theirs.fileno()),
            "--state-dir",
            self._state_dir,
        ]
        if self._https_only:
            argv.append("--https-only")
        if self._verbose:
            argv.append("-v")
        try:
            # Same stdout/stderr as the daemon (its log file under -d); same process group,
            # so ``homeport down``'s group signal reaches the workers too.
            w.proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                pass_fds=(*fds, theirs.fileno(), s_theirs.fileno()),
            )
        finally:
            theirs.close()
            s_theirs.close()
        w.started = time.time()
        w.state = "starting"
        w.ready = self._loop.create_future()
        s_mine.setblocking(False)
        w.streams = s_mine
        self._loop.add_reader(s_mine.fileno(), self._accept_streams, w)
        channel = _DaemonChannel(self, w)
        w.channel = channel
        task = self._loop.create_task(self._connect(w, mine, channel))
        w.tasks.add(task)
        task.add_done_callback(w.tasks.discard)

    async def _connect(self, w: Worker, sock: socket.socket, channel: _DaemonChannel) -> None:
        assert self._loop is not None
        await self._loop.create_unix_connection(lambda: channel, sock=sock)
        channel.send(workerwire.routes_message(self._table))

    async def close(self) -> None:
        """Close every worker's channel (its signal to finish), wait for it, then kill what
        is left; close the listening sockets."""
        self._closing = True
        for w in self.workers:
            self._drop_streams(w)
            if w.channel is not None and w.channel.transport is not None:
                w.channel.transport.close()
        for w in self.workers:
            for task in list(w.tasks):
                task.cancel()
        await asyncio.gather(*(self._reap(w) for w in self.workers))

    async def _reap(self, w: Worker) -> None:
        if w.proc is not None:
            if not await _exited(w.proc, STOP_TIMEOUT):
                log.warning("gateway worker %d (pid %d) did not stop: killed", w.index, w.proc.pid)
                w.proc.kill()
            w.proc.wait()
        w.state = "stopped"
        for s in w.listeners:
            s.close()

    # -- routes ---------------------------------------------------------------------------

    def set_routes(self, table: RouteTable) -> None:
        self._table = table
        message = workerwire.routes_message(table)
        for w in self.workers:
            if w.channel is not None:
                w.channel.send(message)

    def status(self) -> list[dict[str, Any]]:
        return [w.to_json() for w in self.workers]

    # -- what workers send ----------------------------------------------------------------

    def _message(self, w: Worker, message: dict[str, Any]) -> None:
        records = message.get("access")
        if records is not None:
            sink = self._sink
            if sink is not None:
                make = self._make_record
                for r in records:
                    sink(make(r))
        elif "ready" in message:
            w.state = "running"
            log.info("gateway worker %d serving (pid %s)", w.index, message["ready"].get("pid"))
            if w.ready is not None and not w.ready.done():
                w.ready.set_result(None)

    def _lost(self, w: Worker) -> None:
        """The worker's channel closed: it exited (or is about to). Start it again."""
        self._drop_streams(w)
        w.channel = None
        if self._closing:
            return
        code = None
        if w.proc is not None:
            # The channel closes as the process exits; one that closed it and lives on is
            # broken: end it (a dying process takes the signal harmlessly).
            if w.proc.poll() is None:
                w.proc.kill()
            code = w.proc.wait()
        ran = time.time() - w.started
        w.restarts += 1
        w.state = "restarting"
        if ran >= STABLE_S:
            delay = BACKOFF[0]
        else:
            delay = min(BACKOFF[1], BACKOFF[0] * 2 ** min(w.restarts - 1, 10))
        log.error(
            "gateway worker %d exited (code %s) after %.1f s: starting it again in %.1f s",
            w.index,
            code,
            ran,
            delay,
        )
        if w.ready is not None and not w.ready.done():
            w.ready.set_exception(RuntimeError(f"gateway worker {w.index} exited (code {code})"))
            w.ready.exception()  # retrieved: start() reports it, or nobody waits
        assert self._loop is not None
        self._loop.call_later(delay, self._respawn, w)

    def _respawn(self, w: Worker) -> None:
        if self._closing:
            return
        try:
            self._spawn(w)
        except OSError as exc:
            log.error("gateway worker %d could not start again: %s", w.index, exc)
            w.restarts += 1
            assert self._loop is not None
            self._loop.call_later(BACKOFF[1], self._respawn, w)

    def _drop_streams(self, w: Worker) -> None:
        if w.streams is not None:
            if self._loop is not None:
                self._loop.remove_reader(w.streams.fileno())
            w.streams.close()
            w.streams = None

    # -- control requests the workers pass on ----------------------------------------------

    def _accept_streams(self, w: Worker) -> None:
        assert self._loop is not None
        assert w.streams is not None
        while True:
            try:
                _, fds, _, _ = socket.recv_fds(w.streams, 16, 8)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                log.warning("worker %d's stream channel failed: %s", w.index, exc)
                self._drop_streams(w)
                return
            if not fds:
                return
            for fd in fds:
                task = self._loop.create_task(self._serve_stream(socket.socket(fileno=fd)))
                w.tasks.add(task)
                task.add_done_callback(w.tasks.discard)

    async def _serve_stream(self, sock: socket.socket) -> None:
        reader, writer = await asyncio.open_unix_connection(sock=sock)
        try:
            line = await reader.readline()
            if not line:
                return
            head = json.loads(line)
            if head.get("kind") == "status":
                answer = None
                if self._status is not None:
                    try:
                        answer = self._status(str(head["key"]))
                    except Exception:
                        log.exception("service status lookup failed for a worker")
                writer.write(json.dumps(answer).encode() + b"\n")
                await writer.drain()
                return
            req = await workerwire.read_request(reader, head)
            resp = await self._control.handle(req)
            workerwire.write_response_head(writer, resp)
            await writer.drain()
            if resp.stream is not None:
                try:
                    async for data in resp.stream:
                        writer.write(workerwire.chunk(data))
                        await writer.drain()
                finally:
                    aclose = getattr(resp.stream, "aclose", None)
                    if aclose is not None:
                        with contextlib.suppress(Exception):
                            await aclose()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the worker's client went away
        except Exception:
            log.exception("a control request from a worker failed")
        finally:
            writer.close()
