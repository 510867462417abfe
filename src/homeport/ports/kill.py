"""Stop what holds a port, gracefully: find, signal, wait for release, escalate.

Unlike kill-port, the owners come from the socket inventory with an exact port and
address match (``80`` never matches ``8080``; ``127.0.0.1:3000`` matches a listener on
127.0.0.1, 0.0.0.0 or a dual-stack ``::``, not one on 127.0.0.2), and every owner of a
forked server is found, not just the first.

The sequence: SIGTERM (or the signal asked for) to every owner, then wait — on pidfds
(pidfd_open(2), Linux >= 5.3), which wake the moment a process exits and cannot be
fooled by PID reuse — until they have exited or the timeout passes; then, if the port
is still held, SIGKILL what is left. A process that released the port and is still
draining connections is left alone and reported as still running. PID 1 and homeport
itself are never signalled.

The plan (who would be signalled, and why) is separate from the execution, so the CLI
can show it and ask before anything happens, and ``--dry-run`` stops after it.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import select
import signal
import time
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from homeport.errors import EnvironmentProblem, UsageError
from homeport.inventory import procfs
from homeport.model import Listener, Process

log = logging.getLogger("homeport.ports.kill")

Result = Literal["exited", "killed", "still-running", "permission-denied", "gone", "would-signal"]


@dataclass(frozen=True, slots=True)
class Victim:
    pid: int
    name: str
    command: str
    user: str | None
    why: str
    #: Kernel start time (ticks, /proc/PID/stat field 22) when planned: a process found
    #: later under the same PID with another start time is not this victim.
    start: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "pid": self.pid,
            "name": self.name,
            "command": self.command,
            "user": self.user,
            "why": self.why,
        }


@dataclass(frozen=True, slots=True)
class KillPlan:
    target: str
    victims: tuple[Victim, ...]
    #: PIDs we will not touch, with the reason (PID 1, ourselves).
    refused: tuple[tuple[int, str], ...] = ()
    port: int = 0
    #: The held sockets: the port is released when none of them is left.
    inodes: frozenset[int] = frozenset()


@dataclass(frozen=True, slots=True)
class Outcome:
    pid: int
    name: str
    result: Result
    signals: tuple[str, ...] = ()
    detail: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "pid": self.pid,
            "name": self.name,
            "result": self.result,
            "signals": list(self.signals),
            "detail": self.detail,
        }


@dataclass(frozen=True, slots=True)
class KillReport:
    target: str
    outcomes: tuple[Outcome, ...]
    released: bool
    dry_run: bool = False
    refused: tuple[tuple[int, str], ...] = field(default=())

    def to_json(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "dry_run": self.dry_run,
            "released": self.released,
            "processes": [o.to_json() for o in self.outcomes],
            "refused": [{"pid": p, "reason": r} for p, r in self.refused],
        }


def choose(
    listeners: Iterable[Listener], children: dict[int, list[Process]], me: int
) -> tuple[list[Victim], list[tuple[int, str]]]:
    """Pure: the owners to signal (plus their descendants listed in ``children``) and the
    PIDs refused. Each PID appears once, owners first."""
    victims: dict[int, Victim] = {}
    refused: dict[int, str] = {}
    for lst in listeners:
        where = f"{lst.proto} {_hp(lst.address, lst.port)}"
        for p in lst.owners:
            _add(victims, refused, p, f"holds {where}", me)
    for parent in list(victims):
        for child in children.get(parent, ()):
            _add(victims, refused, child, f"descendant of {parent}", me)
    return list(victims.values()), sorted(refused.items())


def _add(
    victims: dict[int, Victim], refused: dict[int, str], p: Process, why: str, me: int
) -> None:
    if p.pid == 1:
        refused[p.pid] = "PID 1 (init) is never signalled"
    elif p.pid == me:
        refused[p.pid] = "homeport itself"
    elif p.pid not in victims:
        victims[p.pid] = Victim(p.pid, p.name, p.command, p.user, why)


def _hp(addr: str, port: int) -> str:
    return f"[{addr}]:{port}" if ":" in addr else f"{addr}:{port}"


def plan_kill(target: str | int, *, tree: bool = False, udp: bool = True) -> KillPlan:
    """Who holds ``target`` and would be signalled. Raises NotFound when nothing listens,
    EnvironmentProblem when the owners are hidden from us (another user's processes)."""
    from homeport.inventory import who

    report = who(target, udp=udp)
    hidden = [x for x in report.listeners if not x.owners]
    if hidden and not any(x.owners for x in report.listeners):
        hint = hidden[0].owner_hint or "run as root (sudo) to see the owner"
        raise EnvironmentProblem(f"{target} is held, but its owner is not visible", hint=hint)
    children = _descendants(report.listeners) if tree else {}
    victims, refused = choose(report.listeners, children, os.getpid())
    victims = [_stamped(v) for v in victims]
    inodes = frozenset(x.socket.inode for x in report.listeners)
    return KillPlan(str(target), tuple(victims), tuple(refused), report.target.port, inodes)


def _stamped(v: Victim) -> Victim:
    from homeport.ports.lease import holder_of

    holder = holder_of(v.pid)
    return replace(v, start=holder.start if holder is not None else None)


def _descendants(listeners: Iterable[Listener]) -> dict[int, list[Process]]:
    import psutil

    out: dict[int, list[Process]] = {}
    for lst in listeners:
        for owner in lst.owners:
            with contextlib.suppress(psutil.Error):
                kids = psutil.Process(owner.pid).children(recursive=True)
                out[owner.pid] = [Process(k.pid, _safe_name(k)) for k in kids]
    return out


def _safe_name(p: Any) -> str:
    import psutil

    try:
        return str(p.name())
    except psutil.Error:
        return "?"


def signal_of(text: str | int) -> signal.Signals:
    """``TERM``, ``SIGTERM``, ``15`` or ``sigint`` -> the signal; UsageError otherwise."""
    s = str(text).strip().upper()
    try:
        if s.isdigit():
            return signal.Signals(int(s))
        return signal.Signals[s if s.startswith("SIG") else f"SIG{s}"]
    except (KeyError, ValueError):
        raise UsageError(f"unknown signal {text!r} (e.g. TERM, INT, HUP, KILL, 15)") from None


def kill_port(
    target: str | int,
    *,
    sig: signal.Signals = signal.SIGTERM,
    timeout: float = 5.0,
    tree: bool = False,
    dry_run: bool = False,
) -> KillReport:
    """Stop every process holding ``target``; see the module docstring for the sequence."""
    return execute(plan_kill(target, tree=tree), sig=sig, timeout=timeout, dry_run=dry_run)


def execute(
    plan: KillPlan,
    *,
    sig: signal.Signals = signal.SIGTERM,
    timeout: float = 5.0,
    dry_run: bool = False,
) -> KillReport:
    if dry_run or not plan.victims:
        outs = tuple(Outcome(v.pid, v.name, "would-signal", (sig.name,)) for v in plan.victims)
        return KillReport(
            plan.target, outs, released=_released(plan), dry_run=dry_run, refused=plan.refused
        )
    watch = _Watch.open(plan.victims)
    try:
        outcomes = {v.pid: _send(v, sig, watch) for v in plan.victims}
        live = [pid for pid, o in outcomes.items() if o.result == "still-running"]
        _wait(watch, live, timeout)
        # Escalate only when the port is still held: a server that closed its listener
        # and is draining connections is doing what SIGTERM asked.
        if sig != signal.SIGKILL and not _released(plan):
            for pid in live:
                if watch.alive(pid):
                    outcomes[pid] = _send_more(outcomes[pid], signal.SIGKILL, watch)
            _wait(watch, live, 2.0)
        final = tuple(_settle(outcomes[v.pid], watch) for v in plan.victims)
    finally:
        watch.close()
    return KillReport(plan.target, final, released=_released(plan), refused=plan.refused)


#: Marks a victim whose PID was reused before we could pin it: never signalled.
_REUSED = -1


class _Watch:
    """pidfds for the victims: signals go to the very process we planned for (checked
    by start time once the pidfd pins it), never to a process that reused its PID, and
    exits wake a poll() at once."""

    def __init__(self, fds: dict[int, int]) -> None:
        self.fds = fds
        self.gone: set[int] = set()

    @classmethod
    def open(cls, victims: Iterable[Victim]) -> _Watch:
        from homeport.ports.lease import holder_of

        fds: dict[int, int] = {}
        for v in victims:
            with contextlib.suppress(OSError, AttributeError):  # gone, or no pidfd here
                fd = os.pidfd_open(v.pid)
                # The pidfd pins whatever runs under the PID now; if that is not the
                # process we planned for (its start time differs), the victim is gone.
                current = holder_of(v.pid)
                if v.start is not None and (current is None or current.start != v.start):
                    os.close(fd)
                    fd = _REUSED
                fds[v.pid] = fd
        return cls(fds)

    def send(self, pid: int, sig: signal.Signals) -> None:
        fd = self.fds.get(pid)
        if fd == _REUSED:
            raise ProcessLookupError(errno.ESRCH, "the PID now belongs to another process")
        if fd is not None:
            signal.pidfd_send_signal(fd, sig)
        else:
            os.kill(pid, sig)

    def alive(self, pid: int) -> bool:
        if pid in self.gone:
            return False
        fd = self.fds.get(pid)
        if fd == _REUSED:
            dead = True
        elif fd is not None:
            ready = select.select([fd], [], [], 0)[0]
            dead = bool(ready)
        else:
            dead = not _pid_running(pid)
        if dead:
            self.gone.add(pid)
        return not dead

    def wait_any(self, pids: list[int], timeout: float) -> None:
        waiting = [p for p in pids if p not in self.gone]
        fds = [self.fds[p] for p in waiting if self.fds.get(p, _REUSED) != _REUSED]
        if len(fds) < len(waiting):  # some without a pidfd: poll /proc for those
            timeout = min(timeout, 0.05)
        if fds:
            select.select(fds, [], [], max(0.0, timeout))
        else:
            time.sleep(max(0.0, timeout))

    def close(self) -> None:
        for fd in self.fds.values():
            if fd != _REUSED:
                os.close(fd)


def _pid_running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except FileNotFoundError:
        return False
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    return procfs.parse_stat_record(stat).state not in "ZX"  # a zombie has exited


def _send(v: Victim, sig: signal.Signals, watch: _Watch) -> Outcome:
    base = Outcome(v.pid, v.name, "still-running")
    return _send_more(base, sig, watch)


def _send_more(o: Outcome, sig: signal.Signals, watch: _Watch) -> Outcome:
    try:
        watch.send(o.pid, sig)
    except ProcessLookupError:
        return replace(o, result="gone", detail="had already exited")
    except PermissionError:
        return replace(o, result="permission-denied", detail=_denied(o.pid))
    except OSError as exc:
        if exc.errno == errno.ESRCH:
            return replace(o, result="gone", detail="had already exited")
        raise
    return replace(o, signals=(*o.signals, sig.name))


def _denied(pid: int) -> str:
    from homeport.inventory import process

    p = process(pid)
    user = p.user if p is not None and p.user else "another user"
    return f"not allowed to signal a process of {user}: run as {user} or with sudo"


def _wait(watch: _Watch, pids: list[int], timeout: float) -> None:
    """Until every PID has exited or ``timeout`` passes (pidfd wake-ups, no fixed sleep)."""
    deadline = time.monotonic() + timeout
    while any(watch.alive(p) for p in pids):
        left = deadline - time.monotonic()
        if left <= 0:
            return
        watch.wait_any(pids, left)


def _released(plan: KillPlan) -> bool:
    """None of the sockets we found is still there (a cheap port-filtered dump, no
    owner walk; a new listener that took the port since is not ours to judge)."""
    from homeport.inventory import sockets

    return not any(s.inode in plan.inodes for s in sockets(port=plan.port))


def _settle(o: Outcome, watch: _Watch) -> Outcome:
    if o.result != "still-running":
        return o
    if watch.alive(o.pid):
        return replace(o, detail="still running after the signals (port may be released)")
    if "SIGKILL" in o.signals and len(o.signals) > 1:
        return replace(o, result="killed", detail=f"ignored {o.signals[0]}; SIGKILL ended it")
    return replace(o, result="exited", detail=f"exited after {o.signals[-1]}")
