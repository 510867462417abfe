"""Projects: a whole dev stack from one ``homeport.toml`` (or ``[tool.homeport]``).

Pure: ``load(path) -> Stack`` finds, parses (tomllib) and validates the file, with errors
(``ProjectError``, exit 2) that name the file and the key path; ``resolve`` turns a stack
into ``Launch`` records once ports are chosen. The daemon's supervisor
(``homeport.services.supervisor``) runs them; ``homeport.project.client`` is the library's
way to ask the daemon (``up``, ``ps``, ``down``).
"""

from __future__ import annotations

from typing import Any

from homeport import _lazy

# Type checkers treat any name TYPE_CHECKING as true and see the real imports.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from homeport.project.errors import ProjectError
    from homeport.project.finder import find
    from homeport.project.loader import load, parse_text
    from homeport.project.schema import (
        Dependency,
        ReadySpec,
        RestartSpec,
        RouteSpec,
        ServiceSpec,
    )
    from homeport.project.stack import Launch, Stack, resolve

#: Names load on first use (PEP 562): ``homeport up`` only needs ``find`` when a daemon runs.
_EXPORTS: dict[str, str] = {
    "Dependency": "homeport.project.schema",
    "Launch": "homeport.project.stack",
    "ProjectError": "homeport.project.errors",
    "ReadySpec": "homeport.project.schema",
    "RestartSpec": "homeport.project.schema",
    "RouteSpec": "homeport.project.schema",
    "ServiceSpec": "homeport.project.schema",
    "Stack": "homeport.project.stack",
    "find": "homeport.project.finder",
    "load": "homeport.project.loader",
    "parse_text": "homeport.project.loader",
    "resolve": "homeport.project.stack",
}

__all__ = [
    "Dependency",
    "Launch",
    "ProjectError",
    "ReadySpec",
    "RestartSpec",
    "RouteSpec",
    "ServiceSpec",
    "Stack",
    "find",
    "load",
    "parse_text",
    "resolve",
]


def __getattr__(name: str) -> Any:
    return _lazy.load(__name__, globals(), _EXPORTS, name)


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
