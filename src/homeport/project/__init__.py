"""Projects: a whole dev stack from one ``homeport.toml`` (or ``[tool.homeport]``).

Pure: ``load(path) -> Stack`` finds, parses (tomllib) and validates the file, with errors
(``ProjectError``, exit 2) that name the file and the key path; ``resolve`` turns a stack
into ``Launch`` records once ports are chosen. The daemon's supervisor
(``homeport.services.supervisor``) runs them; ``homeport.project.client`` is the library's
way to ask the daemon (``up``, ``ps``, ``down``).
"""

from homeport.project.errors import ProjectError
from homeport.project.loader import find, load, parse_text
from homeport.project.schema import Dependency, ReadySpec, RestartSpec, RouteSpec, ServiceSpec
from homeport.project.stack import Launch, Stack, resolve

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
