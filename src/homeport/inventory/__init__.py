"""Sockets and their owners: the one facade that picks the platform backend.

Linux: netlink ``NETLINK_SOCK_DIAG`` for sockets (state filter in the kernel), with
``/proc/net/*`` as a fallback, and a ``/proc/PID/fd`` walk for owners. Other systems:
psutil, returning the same records.

Public API (re-exported from ``homeport``)::

    sockets(tcp=True, udp=True, all_states=False, port=None) -> list[Socket]
    listeners(tcp=True, udp=True, all_states=False, port=None, owners=True) -> list[Listener]
    who(target) -> WhoReport        # raises NotFound when nothing holds it
    process(pid) -> Process | None
"""

from __future__ import annotations

from homeport import _lazy

TYPE_CHECKING = False
if TYPE_CHECKING:
    from homeport.inventory._facade import WhoReport, listeners, process, sockets, who

__all__ = ["WhoReport", "listeners", "process", "sockets", "who"]
_EXPORTS = dict.fromkeys(__all__, "homeport.inventory._facade")


def __getattr__(name: str) -> object:
    # Lazy, so that ``homeport.inventory.fdwalk`` imports without the facade (the CLI
    # starts the owner walk before its other imports).
    return _lazy.load(__name__, globals(), _EXPORTS, name)
