"""``homeport run``: start a dev server on a free port and give it a name.

The command runs in its own process group (so a stop reaches its workers and reloaders too)
with ``PORT``/``HOST``/``HOMEPORT_URL`` set and, for known servers, their port flags. Its
output is streamed with a ``NAME |`` prefix and the last lines go to the daemon (the 502 page
and ``homeport logs NAME`` show them). The daemon watches this process: if it dies without
cleaning up (``kill -9``), the daemon stops the group and removes the route.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import os
import select
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import IO, Any, Literal

from homeport.daemon.client import Client
from homeport.daemon.procs import group_alive, pidfd
from homeport.errors import HomeportError, NotReady, UsageError
from homeport.services.flags import Plan, plan_command

log = logging.getLogger("homeport.services")

LOCAL_ADDRS = (("127.0.0.1", socket.AF_INET), ("::1", socket.AF_INET6))


@dataclass(frozen=True, slots=True)
class RunOptions:
    cmd: tuple[str, ...]
    name: str
    port: int | None = None
    auth: str | None = None
    same_origin: bool = False
    allow_cross_site: bool = False
    allow_origins: tuple[str, ...] = ()
    timeout: float = 60.0
    grace: float = 5.0
    cwd: str = "."
    #: ``run --own-address``: the service listens on this leased 127.0.x.y (its default
    #: port kept) instead of 127.0.0.1 and a picked port.
    address: str | None = None


@dataclass(frozen=True, slots=True)
class Ready:
    service_id: str
    url: str
    port: int
    pid: int
    address: str
    token: str | None
    #: The port homeport asked for, when the command listens on another one instead.
    ignored_port: int | None = None
    #: Set when the service ignored its own address and listens on a wildcard or on
    #: another loopback address: what it does, and the flag that fixes it.
    bind_warning: str | None = None


class ExitedEarly(NotReady):
    """The command ended before it listened; ``code`` is its exit status."""

    def __init__(self, code: int) -> None:
        super().__init__(f"the command exited with code {code} before it listened")
        self.code = code


class Output:
    """Pumps the child's output to ``emit`` and keeps lines for the daemon (a thread)."""

    def __init__(self, stream: IO[bytes], emit: Callable[[str], None]) -> None:
        self._stream = stream
        self._emit = emit
        self._lock = threading.Lock()
        self._pending: list[str] = []
        self.last: collections.deque[str] = collections.deque(maxlen=200)
        self._thread = threading.Thread(target=self._pump, name="homeport-run-out", daemon=True)
        self._thread.start()

    def _pump(self) -> None:
        for raw in iter(self._stream.readline, b""):
            line = raw.decode(errors="replace").rstrip("\r\n")
            with self._lock:
                self._pending.append(line)
                self.last.append(line)
            self._emit(line)

    def take(self) -> list[str]:
        with self._lock:
            lines, self._pending = self._pending, []
        return lines

    def join(self, timeout: float = 2.0) -> None:
        self._thread.join(timeout)


def with_ca_env(plan: Plan, state_dir: Path) -> Plan:
    """The plan with the variables that make the child trust the gateway's local CA
    (NODE_EXTRA_CA_CERTS, SSL_CERT_FILE, …) once `homeport trust` has installed them; the
    command's own PORT/HOST win, and so does a CA file the user set (``tls.env.for_child``)."""
    from homeport.tls.env import for_child

    return replace(plan, env={**for_child(state_dir), **plan.env})


def spawn(plan: Plan, cwd: str) -> subprocess.Popen[bytes]:
    try:
        return subprocess.Popen(
            plan.argv,
            cwd=cwd,
            env={**os.environ, **plan.env},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            process_group=0,  # its own group: stop reaches every worker; ^C is ours to relay
        )
    except FileNotFoundError:
        raise UsageError(f"command not found: {plan.argv[0]}") from None
    except PermissionError:
        raise UsageError(f"command not executable: {plan.argv[0]}") from None


Addrs = tuple[tuple[str, socket.AddressFamily], ...]


def answering(port: int, addrs: Addrs = LOCAL_ADDRS) -> str | None:
    """The loopback address that accepts a connection on ``port``, if any."""
    for addr, family in addrs:
        with socket.socket(family, socket.SOCK_STREAM) as s:
            s.settimeout(0.5)
            try:
                s.connect((addr, port))
            except OSError:
                continue
            # A connect to a port in the ephemeral range can meet itself (DESIGN.md).
            if s.getsockname()[:2] != s.getpeername()[:2]:
                return addr
    return None


def wait_listening(
    proc: subprocess.Popen[bytes], port: int, timeout: float, own: str | None = None
) -> tuple[str, int]:
    """(loopback address, port) once the command accepts connections: on ``port``, or on
    whatever port its process group listens on (for commands that ignore ``PORT``).
    With ``own`` (its leased address), only that address counts for ``port``: another
    program's 127.0.0.1:PORT must not pass for the service."""
    deadline = time.monotonic() + timeout
    next_scan = time.monotonic() + 0.25
    addrs: Addrs = ((own, socket.AF_INET),) if own else LOCAL_ADDRS
    while True:
        addr = answering(port, addrs)
        if addr is not None:
            return addr, port
        if time.monotonic() >= next_scan:
            found = _group_port(proc.pid, port) if own is None else _group_any(proc.pid, own)
            if found is not None:
                return found
            next_scan = time.monotonic() + 0.25  # a /proc walk of the group: not every 10 ms
        if proc.poll() is not None:
            raise ExitedEarly(proc.returncode)
        if time.monotonic() > deadline:
            raise NotReady(
                f"nothing listens on port {port} after {timeout:g}s",
                hint="does the command read $PORT? give its port with --port P",
            )
        exited_within(proc, 0.01)


def _group_port(pgid: int, expected: int) -> tuple[str, int] | None:
    """Another port the group listens on and that answers on loopback, if any."""
    from homeport.services.discover import group_listening

    for _, port in group_listening(pgid):
        if port != expected and (addr := answering(port)) is not None:
            return addr, port
    return None


def _group_any(pgid: int, own: str) -> tuple[str, int] | None:
    """Where the group of an own-address service listens, when not on ``own``: a
    wildcard answers on ``own`` too; a specific loopback address answers on itself."""
    from homeport.services.discover import group_listening

    for local, port in group_listening(pgid):
        local = local.removeprefix("::ffff:")
        target = own if local in WILDCARDS else local
        family = socket.AF_INET6 if ":" in target else socket.AF_INET
        if (addr := answering(port, ((target, family),))) is not None:
            return addr, port
    return None


WILDCARDS = ("0.0.0.0", "::")


def bind_warning(pgid: int, own: str, port: int, argv: tuple[str, ...]) -> str | None:
    """What an own-address service does wrong, seen in the inventory: it listens on a
    wildcard (all interfaces: it collides with every other service on the port and is
    reachable from the network) or on another address than its own. None when it
    listens on ``own`` alone."""
    from homeport.services.discover import group_listening
    from homeport.services.flags import bind_fix

    wrong = sorted(
        {a.removeprefix("::ffff:") for a, p in group_listening(pgid) if p == port} - {own}
    )
    if not wrong:
        return None
    shown = ", ".join(f"[{a}]:{port}" if ":" in a else f"{a}:{port}" for a in wrong)
    wild = any(a in WILDCARDS for a in wrong)
    what = (
        "every interface (it collides with other services on this port, and the network"
        " can reach it)"
        if wild
        else "another address than its own"
    )
    return (
        f"it ignores HOST={own} and listens on {shown}: {what};"
        f" fix: add {bind_fix(argv, own, port)}"
    )


def exited_within(proc: subprocess.Popen[bytes], timeout: float) -> bool:
    """Wait up to ``timeout`` for ``proc`` to exit, on its pidfd where there is one.

    Not ``Popen.wait(timeout)``: on Ctrl-C it keeps waiting 0.25 s more for the child
    (CPython bpo-25942), which our child, in its own group, never got.
    """
    fd = pidfd(proc.pid)
    if fd is None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout)
        return proc.poll() is not None
    try:
        select.select([fd], [], [], timeout)
    finally:
        os.close(fd)
    return proc.poll() is not None


def stop_group(proc: subprocess.Popen[bytes], grace: float) -> None:
    """SIGTERM the group, SIGKILL it after ``grace`` seconds, and reap the leader."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    if exited_within(proc, grace):
        proc.wait()
        # The leader left; workers of its group may linger a little.
        while group_alive(proc.pid) and time.monotonic() < deadline:
            time.sleep(0.02)  # no event tells when a group empties
    if proc.returncode is None or group_alive(proc.pid):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(5.0)


class Stop(Exception):
    """SIGTERM or SIGHUP reached ``homeport run``: stop like Ctrl-C."""


@contextlib.contextmanager
def stop_signals() -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def raise_stop(signum: int, frame: Any) -> None:
        raise Stop(signal.Signals(signum).name)

    old = {s: signal.signal(s, raise_stop) for s in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


class Runner:
    """One ``homeport run``: call ``start`` then ``wait``; ``close`` in a ``finally``."""

    def __init__(self, opts: RunOptions, client: Client, emit: Callable[[str], None]) -> None:
        self.opts = opts
        self.client = client
        self.emit = emit
        self.proc: subprocess.Popen[bytes] | None = None
        self.output: Output | None = None
        self.service_id: str | None = None
        self.interrupted = False

    def start(self, port: int) -> Ready:
        o = self.opts
        url = self.client.config.route_url(f"{o.name}.localhost")
        host = o.address or "127.0.0.1"
        plan = plan_command(o.cmd, port, host, url, own_address=o.address is not None)
        self.proc = spawn(with_ca_env(plan, self.client.config.state_dir), o.cwd)
        assert self.proc.stdout is not None
        self.output = Output(self.proc.stdout, lambda line: self.emit(f"{o.name} | {line}"))
        body = {
            "name": o.name,
            "cmd": list(plan.argv),
            "cwd": os.path.abspath(o.cwd),
            "port": port,
            "pid": self.proc.pid,
            "pgid": self.proc.pid,
            "owner_pid": os.getpid(),
        }
        self.service_id = self.client.call("POST", "/api/services", body)["service"]["id"]
        addr, got = wait_listening(self.proc, port, o.timeout, o.address)
        warning = None
        if o.address is not None:
            warning = bind_warning(self.proc.pid, o.address, got, plan.argv)
        shown = f"[{addr}]" if ":" in addr else addr
        route = {
            "name": o.name,
            "target": f"http://{shown}:{got}",
            "auth": o.auth,
            "same_origin": o.same_origin,
            "allow_cross_site": o.allow_cross_site,
            "allow_origins": list(o.allow_origins),
        }
        data = self.client.call(
            "POST", f"/api/services/{self.service_id}/running", {"route": route, "port": got}
        )
        ignored = port if got != port else None
        return Ready(
            self.service_id,
            data["url"],
            got,
            self.proc.pid,
            addr,
            data.get("token"),
            ignored,
            warning,
        )

    def wait(self) -> int:
        assert self.proc is not None
        while not exited_within(self.proc, 0.5):
            self._ship_lines()
        return self.proc.wait()

    def _ship_lines(self) -> None:
        if self.output is None or self.service_id is None:
            return
        lines = self.output.take()
        if lines:
            try:
                self.client.call("POST", f"/api/services/{self.service_id}/log", {"lines": lines})
            except HomeportError as exc:  # the daemon restarting must not stop the service
                log.debug("could not send output lines: %s", exc)

    def close(self) -> int | None:
        """Stop the group (if it runs), tell the daemon, return the command's exit status."""
        code: int | None = None
        if self.proc is not None:
            if self.proc.poll() is None:
                stop_group(self.proc, self.opts.grace)
            code = self.proc.returncode
            if self.output is not None:
                self.output.join()
        self._ship_lines()
        if self.service_id is not None:
            self._report_exit("stopped" if self.interrupted else "exited", code)
        return code

    def _report_exit(self, state: Literal["stopped", "exited"], code: int | None) -> None:
        assert self.service_id is not None
        body = {"state": state, "exit_code": code}
        try:
            self.client.call("POST", f"/api/services/{self.service_id}/exit", body)
        except HomeportError:
            # The gateway went away meanwhile: record the end ourselves, so that no stale
            # route outlives the service (the next gateway would reap it, but later).
            from homeport.store import Store

            with contextlib.suppress(HomeportError):
                store = Store(self.client.config.db_path)
                store.finish_service(self.service_id, state, code)
                store.close()


def exit_status(code: int | None) -> int:
    """A shell-style status: a signal death becomes 128+N (``bash`` convention)."""
    if code is None:
        return 1
    return 128 - code if code < 0 else code
