"""homeport: everything that happens on 127.0.0.1:PORT.

The library's public face. Names are imported lazily so that ``homeport --version``
and commands that need little stay fast; ``__all__`` is the contract and a test
checks that it is sorted and that every name resolves.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

# Not `from typing import TYPE_CHECKING`: importing typing costs milliseconds at every start.
# Type checkers treat any name TYPE_CHECKING as true, so they see the real signatures.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from homeport.addr import Target, address_class, exposure, parse_target
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
    from homeport.inventory import listeners, sockets, who
    from homeport.model import Listener, Process, Socket

#: public name -> module that defines it
_EXPORTS: dict[str, str] = {
    "DaemonError": "homeport.errors",
    "EnvironmentProblem": "homeport.errors",
    "ExitStatus": "homeport.errors",
    "HomeportError": "homeport.errors",
    "Listener": "homeport.model",
    "NotFound": "homeport.errors",
    "NotReady": "homeport.errors",
    "Process": "homeport.model",
    "Socket": "homeport.model",
    "Target": "homeport.addr",
    "UnsupportedPlatform": "homeport.errors",
    "UsageError": "homeport.errors",
    "address_class": "homeport.addr",
    "exposure": "homeport.addr",
    "listeners": "homeport.inventory",
    "parse_target": "homeport.addr",
    "sockets": "homeport.inventory",
    "who": "homeport.inventory",
}

__all__ = [
    "DaemonError",
    "EnvironmentProblem",
    "ExitStatus",
    "HomeportError",
    "Listener",
    "NotFound",
    "NotReady",
    "Process",
    "Socket",
    "Target",
    "UnsupportedPlatform",
    "UsageError",
    "__version__",
    "address_class",
    "exposure",
    "listeners",
    "parse_target",
    "sockets",
    "who",
]


def __getattr__(name: str) -> object:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'homeport' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
