"""Port primitives that do not lie: pick, lease, wait, kill.

Public API (re-exported from ``homeport``)::

    free_port(name=None, *, proto="tcp", ttl=None, port_range=None) -> int
    reserve_port(host="127.0.0.1", *, proto="tcp", name=None) -> ContextManager[Reservation]
    release_port(port) -> bool
    wait_for(*targets, timeout=30.0, any_=False, http=HttpCheck(), pid=None) -> WaitReport
        # raises WaitFailed (a NotReady carrying .report)
    kill_port(target, *, sig=SIGTERM, timeout=5.0, tree=False, dry_run=False) -> KillReport

Submodules: ``policy`` (pure: which numbers), ``lease`` (cross-process leases),
``pick`` (bind tests and picking), ``wait`` / ``probe`` (readiness), ``kill``.
"""

from __future__ import annotations

from homeport.ports.kill import KillReport, kill_port
from homeport.ports.pick import Reservation, free_port, pick_ports, release_port, reserve_port
from homeport.ports.wait import HttpCheck, WaitFailed, WaitReport, wait_for

__all__ = [
    "HttpCheck",
    "KillReport",
    "Reservation",
    "WaitFailed",
    "WaitReport",
    "free_port",
    "kill_port",
    "pick_ports",
    "release_port",
    "reserve_port",
    "wait_for",
]
