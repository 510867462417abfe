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

Names load on first use (PEP 562), so ``homeport port`` does not import the wait and
kill machinery (~125 ms of imports measured on this machine under load).
"""

from __future__ import annotations

from typing import Any

from homeport import _lazy

# Type checkers treat any name TYPE_CHECKING as true and see the real imports.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from homeport.ports.kill import KillReport, kill_port
    from homeport.ports.pick import (
        Reservation,
        free_port,
        pick_ports,
        release_port,
        reserve_port,
    )
    from homeport.ports.wait import HttpCheck, WaitFailed, WaitReport, wait_for

_EXPORTS: dict[str, str] = {
    "HttpCheck": "homeport.ports.wait",
    "KillReport": "homeport.ports.kill",
    "Reservation": "homeport.ports.pick",
    "WaitFailed": "homeport.ports.wait",
    "WaitReport": "homeport.ports.wait",
    "free_port": "homeport.ports.pick",
    "kill_port": "homeport.ports.kill",
    "pick_ports": "homeport.ports.pick",
    "release_port": "homeport.ports.pick",
    "reserve_port": "homeport.ports.pick",
    "wait_for": "homeport.ports.wait",
}

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


def __getattr__(name: str) -> Any:
    return _lazy.load(__name__, globals(), _EXPORTS, name)


def __dir__() -> list[str]:
    return sorted(__all__)
