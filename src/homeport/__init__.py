"""homeport: everything that happens on 127.0.0.1:PORT.

The library's public face. Names are imported lazily so that ``homeport --version``
and commands that need little stay fast; ``__all__`` is the contract and a test
checks that it is sorted and that every name resolves.

    import homeport
    for x in homeport.listeners():          # every listening socket, with owners
        print(x.port, x.exposure, x.pids)
    port = homeport.free_port()             # free on every family, leased
    homeport.wait_for(f"localhost:{port}")  # tries ::1 and 127.0.0.1, never self-connects
    report = homeport.audit()               # what is exposed, what answers without auth
"""

from __future__ import annotations

from homeport import _lazy

__version__ = "0.1.0"

# Not `from typing import TYPE_CHECKING`: importing typing costs milliseconds at every start.
# Type checkers treat any name TYPE_CHECKING as true, so they see the real signatures.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from homeport.addr import Target, address_class, exposure, parse_target
    from homeport.audit.findings import Finding
    from homeport.audit.run import AuditConfig, AuditReport, audit
    from homeport.daemon.config import DaemonConfig
    from homeport.doctor import run_doctor
    from homeport.doctor.records import Check
    from homeport.errors import (
        DaemonError,
        EnvironmentProblem,
        ExitStatus,
        HomeportError,
        NotFound,
        NotReady,
        UnsupportedPlatform,
        UsageError,
    )
    from homeport.explain import explain_text
    from homeport.explain.diagnose import Explanation
    from homeport.inventory._facade import WhoReport, listeners, process, sockets, who
    from homeport.model import Listener, Process, Socket
    from homeport.ports.kill import KillReport, kill_port
    from homeport.ports.pick import Reservation, free_port, release_port, reserve_port
    from homeport.ports.wait import HttpCheck, WaitFailed, WaitReport, wait_for
    from homeport.store import Store

#: public name -> module that defines it
_EXPORTS: dict[str, str] = {
    "AuditConfig": "homeport.audit.run",
    "AuditReport": "homeport.audit.run",
    "Check": "homeport.doctor.records",
    "DaemonConfig": "homeport.daemon.config",
    "DaemonError": "homeport.errors",
    "EnvironmentProblem": "homeport.errors",
    "ExitStatus": "homeport.errors",
    "Explanation": "homeport.explain.diagnose",
    "Finding": "homeport.audit.findings",
    "HomeportError": "homeport.errors",
    "HttpCheck": "homeport.ports.wait",
    "KillReport": "homeport.ports.kill",
    "Listener": "homeport.model",
    "NotFound": "homeport.errors",
    "NotReady": "homeport.errors",
    "Process": "homeport.model",
    "Reservation": "homeport.ports.pick",
    "Socket": "homeport.model",
    "Store": "homeport.store",
    "Target": "homeport.addr",
    "UnsupportedPlatform": "homeport.errors",
    "UsageError": "homeport.errors",
    "WaitFailed": "homeport.ports.wait",
    "WaitReport": "homeport.ports.wait",
    "WhoReport": "homeport.inventory._facade",
    "address_class": "homeport.addr",
    "audit": "homeport.audit.run",
    "explain_text": "homeport.explain",
    "exposure": "homeport.addr",
    "free_port": "homeport.ports.pick",
    "kill_port": "homeport.ports.kill",
    "listeners": "homeport.inventory._facade",
    "parse_target": "homeport.addr",
    "process": "homeport.inventory._facade",
    "release_port": "homeport.ports.pick",
    "reserve_port": "homeport.ports.pick",
    "run_doctor": "homeport.doctor",
    "sockets": "homeport.inventory._facade",
    "wait_for": "homeport.ports.wait",
    "who": "homeport.inventory._facade",
}

__all__ = [
    "AuditConfig",
    "AuditReport",
    "Check",
    "DaemonConfig",
    "DaemonError",
    "EnvironmentProblem",
    "ExitStatus",
    "Explanation",
    "Finding",
    "HomeportError",
    "HttpCheck",
    "KillReport",
    "Listener",
    "NotFound",
    "NotReady",
    "Process",
    "Reservation",
    "Socket",
    "Store",
    "Target",
    "UnsupportedPlatform",
    "UsageError",
    "WaitFailed",
    "WaitReport",
    "WhoReport",
    "__version__",
    "address_class",
    "audit",
    "explain_text",
    "exposure",
    "free_port",
    "kill_port",
    "listeners",
    "parse_target",
    "process",
    "release_port",
    "reserve_port",
    "run_doctor",
    "sockets",
    "wait_for",
    "who",
]


def __getattr__(name: str) -> object:
    return _lazy.load(__name__, globals(), _EXPORTS, name)


def __dir__() -> list[str]:
    return sorted(__all__)
