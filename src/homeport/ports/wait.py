"""Wait until services are really ready, without fooling ourselves.

Targets (what ``homeport wait`` accepts)::

    3000                    TCP on this machine: tries ::1 and 127.0.0.1
    localhost:3000          TCP: every address the name resolves to, IPv6 and IPv4
    [::1]:5432              TCP on one address
    http://localhost:8000/health   GET; ready when the status is in range (and the body
                                   contains a text, when asked)
    https://…               the same over TLS (certificates verified unless insecure)
    unix:/run/app.sock      a Unix stream socket accepts connections

The parsing, the back-off schedule and the reports are pure; the loop takes a probe
function, so tests can drive it with scripted attempts. :mod:`probe` holds the real
probes. Two traps are handled there (DESIGN.md, "Waiting must not fool itself"): a
connection whose local and remote endpoints are equal is a TCP self-connect (RFC 9293
§3.5 simultaneous open), not a server; and ``localhost`` may resolve to ``::1`` first
while the server is on 127.0.0.1, so every address is tried and the one that answered
is reported.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from homeport.addr import parse_target
from homeport.errors import NotReady, UsageError
from homeport.inventory import procfs

TargetKind = Literal["tcp", "http", "unix"]

#: First pause between attempts, growth factor, and ceiling (seconds).
BACKOFF = (0.05, 1.5, 1.0)


@dataclass(frozen=True, slots=True)
class WaitTarget:
    """One thing to wait for, parsed from what the user typed."""

    text: str
    kind: TargetKind
    host: str | None = None
    port: int | None = None
    url: str | None = None
    path: str | None = None


def parse_wait_target(text: str) -> WaitTarget:
    """``PORT``, ``HOST:PORT``, ``[V6]:PORT``, ``http(s)://…`` or ``unix:/path``."""
    raw = text.strip()
    if raw.startswith("unix:"):
        path = raw.removeprefix("unix:").removeprefix("//")
        if not path:
            raise UsageError(f"{raw!r} names no socket path (write unix:/path/to.sock)")
        return WaitTarget(raw, "unix", path=path)
    t = parse_target(raw)
    if t.scheme in ("http", "https"):
        return WaitTarget(raw, "http", host=t.host, port=t.port, url=raw)
    if t.scheme is not None:
        raise UsageError(
            f"cannot wait for {t.scheme}:// URLs; use HOST:PORT for a TCP check, "
            "http(s):// for HTTP, or unix:/path"
        )
    return WaitTarget(raw, "tcp", host=t.host, port=t.port)


def parse_status_range(text: str) -> tuple[int, int]:
    """``200-399`` or ``204``: the HTTP statuses that count as ready."""
    lo_s, _, hi_s = text.partition("-")
    try:
        lo, hi = int(lo_s), int(hi_s or lo_s)
    except ValueError:
        raise UsageError(f"bad status range {text!r} (accepted: 200-399 or 204)") from None
    if not 100 <= lo <= hi <= 599:
        raise UsageError(f"bad status range {text!r}: statuses run from 100 to 599")
    return lo, hi


def backoff(attempt: int, schedule: tuple[float, float, float] = BACKOFF) -> float:
    """Pause after the ``attempt``-th failure (0-based): 50 ms growing 1.5x to 1 s."""
    first, factor, cap = schedule
    return float(min(cap, first * factor ** min(attempt, 64)))


def is_self_connect(local: Sequence[Any], remote: Sequence[Any]) -> bool:
    """True when a "connected" socket is connected to itself (same address and port)."""
    return tuple(local[:2]) == tuple(remote[:2])


@dataclass(frozen=True, slots=True)
class Attempt:
    """What one probe found: ready or not, why, and which address answered."""

    ok: bool
    reason: str
    address: str | None = None
    status: int | None = None


@dataclass(frozen=True, slots=True)
class HttpCheck:
    """What counts as ready for an HTTP target."""

    status: tuple[int, int] = (200, 399)
    contains: str | None = None
    insecure: bool = False


@dataclass(frozen=True, slots=True)
class TargetReport:
    target: str
    ready: bool
    attempts: int = 0
    elapsed: float | None = None
    address: str | None = None
    status: int | None = None
    reason: str = "not tried yet"

    def to_json(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "ready": self.ready,
            "attempts": self.attempts,
            "elapsed": None if self.elapsed is None else round(self.elapsed, 4),
            "address": self.address,
            "status": self.status,
            "reason": self.reason,
        }


@dataclass(frozen=True, slots=True)
class WaitReport:
    ready: bool
    elapsed: float
    targets: tuple[TargetReport, ...]
    mode: Literal["all", "any"] = "all"

    def to_json(self) -> dict[str, Any]:
        return {
            "ready": self.ready,
            "mode": self.mode,
            "elapsed": round(self.elapsed, 4),
            "targets": [t.to_json() for t in self.targets],
        }


class WaitFailed(NotReady):
    """A wait that timed out or whose watched process exited; carries the report."""

    def __init__(self, message: str, report: WaitReport) -> None:
        super().__init__(message)
        self.report = report


Probe = Callable[[WaitTarget, float], Attempt]


@dataclass
class _Pending:
    target: WaitTarget
    report: TargetReport
    next_at: float = 0.0
    failures: int = 0
    done: bool = field(default=False)


def wait_for(
    *targets: str | WaitTarget,
    timeout: float = 30.0,
    any_: bool = False,
    attempt_timeout: float = 2.0,
    http: HttpCheck | None = None,
    pid: int | None = None,
    probe: Probe | None = None,
    on_attempt: Callable[[WaitReport], None] | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> WaitReport:
    """Poll every target until all (or, with ``any_``, one) are ready.

    Returns the report when ready; raises WaitFailed (a NotReady carrying the report
    as ``.report``) on timeout, or at once when the watched ``pid`` exits.
    """
    if not targets:
        raise UsageError("nothing to wait for: give at least one target")
    parsed = [t if isinstance(t, WaitTarget) else parse_wait_target(t) for t in targets]
    if probe is None:
        from homeport.ports.probe import make_probe

        probe = make_probe(http or HttpCheck())
    start = clock()
    pending = [_Pending(t, TargetReport(t.text, False)) for t in parsed]
    while True:
        now = clock()
        due = [p for p in pending if not p.done and now >= p.next_at]
        for p in due:
            _attempt(p, probe, start, clock, min(attempt_timeout, _left(start, timeout, clock)))
        report = _report(pending, start, clock(), any_)
        if on_attempt is not None and due:
            on_attempt(report)
        if report.ready:
            return report
        _check_deadline(report, start, timeout, clock, pid)
        wake = min(p.next_at for p in pending if not p.done)
        sleep(max(0.0, min(wake, start + timeout) - clock()))


def _left(start: float, timeout: float, clock: Callable[[], float]) -> float:
    return max(0.01, start + timeout - clock())


def _attempt(
    p: _Pending, probe: Probe, start: float, clock: Callable[[], float], budget: float
) -> None:
    result = probe(p.target, budget)
    now = clock()
    p.report = replace(
        p.report,
        attempts=p.report.attempts + 1,
        ready=result.ok,
        reason=result.reason,
        address=result.address,
        status=result.status,
        elapsed=now - start if result.ok else None,
    )
    if result.ok:
        p.done = True
    else:
        p.next_at = now + backoff(p.failures)
        p.failures += 1


def _report(pending: list[_Pending], start: float, now: float, any_: bool) -> WaitReport:
    reports = tuple(p.report for p in pending)
    ready = any(r.ready for r in reports) if any_ else all(r.ready for r in reports)
    return WaitReport(ready, now - start, reports, "any" if any_ else "all")


def _check_deadline(
    report: WaitReport, start: float, timeout: float, clock: Callable[[], float], pid: int | None
) -> None:
    if pid is not None and not _alive(pid):
        raise WaitFailed(f"process {pid} exited before the targets were ready", report)
    if clock() - start >= timeout:
        waiting = [r for r in report.targets if not r.ready]
        detail = "; ".join(f"{r.target}: {r.reason}" for r in waiting)
        raise WaitFailed(f"not ready after {timeout:g}s — {detail}", report)


def _alive(pid: int) -> bool:
    """Running and not a zombie (an exited child waiting to be reaped is not alive)."""
    from pathlib import Path

    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    except OSError:
        import psutil

        return psutil.pid_exists(pid)
    return procfs.parse_stat_record(stat).state not in "ZX"  # a zombie has exited
