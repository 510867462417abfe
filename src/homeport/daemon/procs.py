"""Thin edge over processes the daemon supervises: identity by start time, group stop, pidfd.

A PID alone is not an identity (PIDs are reused), so each watched process is recorded with its
start time from ``/proc/PID/stat`` (field 22, ``starttime`` in clock ticks since boot; proc(5)).
Linux never hands out a PID that is still in use as a process-group ID, so ``killpg`` on a group
whose leader is gone can only reach members of that same group.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path

from homeport.inventory import procfs

PROC = Path("/proc")


def parse_stat_start(text: str) -> float | None:
    """``starttime`` (clock ticks since boot) from the text of ``/proc/PID/stat``."""
    try:
        return float(procfs.parse_stat_record(text).start_ticks)
    except ValueError:
        return None


def start_time(pid: int, proc: Path = PROC) -> float | None:
    try:
        return parse_stat_start((proc / str(pid) / "stat").read_text())
    except OSError:
        return None


def owner_uid(pid: int, proc: Path = PROC) -> int | None:
    try:
        return (proc / str(pid)).stat().st_uid
    except OSError:
        return None


def alive(pid: int, started: float | None, proc: Path = PROC) -> bool:
    """True when ``pid`` runs and is the same process (same start time) as recorded."""
    now = start_time(pid, proc)
    if now is None:
        return False
    return started is None or now == started


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def stop_group(pgid: int, leader_start: float | None, grace: float = 3.0) -> bool:
    """SIGTERM the group, then SIGKILL what is left after ``grace`` seconds.

    Skips a group whose leader PID now belongs to another process (the group is gone and
    the number reused). Returns True when something was signalled.
    """
    leader = start_time(pgid)
    if leader is not None and leader_start is not None and leader != leader_start:
        return False
    try:
        os.killpg(pgid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    deadline = time.monotonic() + grace
    while group_alive(pgid) and time.monotonic() < deadline:
        time.sleep(0.05)  # no event tells when the last member of a group exits
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)
    return True


def pidfd(pid: int) -> int | None:
    """A pidfd for ``pid`` (Linux >= 5.3), readable when the process exits; None if unsupported."""
    opener = getattr(os, "pidfd_open", None)
    if opener is None:
        return None
    try:
        return int(opener(pid))
    except OSError:
        return None
