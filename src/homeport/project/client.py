"""The library's way to run a project: ask the daemon (which owns the processes).

    from homeport.project import client, load
    stack = load("path/to/project")
    proj = client.up(stack)                 # starts the daemon when needed, returns at once
    proj = client.wait_settled(stack.id)    # until every service is ready (or failed)
    client.ps(stack.id)["services"][0]["pid"]
    client.down(stack.id)

Each call returns the daemon's project record (``homeport.daemon.projects_api``).
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from homeport.daemon.client import Client, connect
from homeport.errors import NotReady

TYPE_CHECKING = False
if TYPE_CHECKING:
    from homeport.project.stack import Stack

#: States in which a service will not change without a new event (``services.unit``).
SETTLED = frozenset(
    {"ready", "completed", "crashloop", "exited", "failed", "blocked", "stopped", "lost"}
)
GOOD = frozenset({"ready", "completed"})
POLL = 10  # seconds a long poll may wait in the daemon


def _client(client: Client | None, start: bool = True) -> Client:
    """A client for long polls. The daemon is started when none runs: a daemon that was
    killed comes back knowing its stacks (and adopts what still runs), so even ``ps`` and
    ``down`` need one."""
    c = client or connect(start=start)
    return dataclasses.replace(c, timeout=max(c.timeout, POLL + 20.0))


def up(
    stack: Stack,
    services: Iterable[str] = (),
    *,
    env: dict[str, str] | None = None,
    client: Client | None = None,
) -> dict[str, Any]:
    """Ask the daemon (started if needed) to bring ``stack`` up; returns without waiting."""
    answer = up_file(str(stack.file), stack.profiles, services, env=env, client=client)
    project: dict[str, Any] = answer["project"]
    return project


def up_file(
    file: str,
    profiles: Iterable[str] = (),
    services: Iterable[str] = (),
    *,
    env: dict[str, str] | None = None,
    client: Client | None = None,
) -> dict[str, Any]:
    """The same for a project file the daemon parses and validates itself (a bad file is a
    UsageError naming the file and key path, as ``load`` raises it). Returns
    ``{"project", "selected"}``: ``selected`` names the services this call brings up (with
    what they need), in start order."""
    body = {
        "file": os.path.abspath(file),
        "profiles": list(profiles),
        "env": dict(os.environ if env is None else env),
        "services": list(services),
    }
    return _client(client).call("POST", "/api/projects", body)


def ps(project_id: str, *, client: Client | None = None) -> dict[str, Any]:
    data: dict[str, Any] = _client(client).call("GET", f"/api/projects/{project_id}")["project"]
    return data


def projects(*, client: Client | None = None) -> list[dict[str, Any]]:
    data: list[dict[str, Any]] = _client(client).call("GET", "/api/projects")["projects"]
    return data


def down(project_id: str, *, client: Client | None = None) -> dict[str, Any]:
    data: dict[str, Any] = _client(client).call("POST", f"/api/projects/{project_id}/down")[
        "project"
    ]
    return data


def act(
    project_id: str, action: str, services: Iterable[str], *, client: Client | None = None
) -> dict[str, Any]:
    """``stop`` | ``start`` | ``restart`` the named services."""
    body = {"services": list(services)}
    data: dict[str, Any] = _client(client).call(
        "POST", f"/api/projects/{project_id}/{action}", body
    )["project"]
    return data


def changes(
    project_id: str, *, after: int = 0, client: Client | None = None
) -> Iterator[tuple[dict[str, Any], list[dict[str, Any]]]]:
    """(project, new lines) each time something changes (long polls; ends when the caller
    stops iterating, or with NotFound once the project is down)."""
    c = _client(client)
    version = 0
    while True:
        data = c.call(
            "GET", f"/api/projects/{project_id}/wait", after=after, version=version, timeout=POLL
        )
        project, lines = data["project"], data["lines"]
        if lines:
            after = lines[-1]["seq"]
        version = project["version"]
        yield project, lines


def settled(project: dict[str, Any], names: Iterable[str] = ()) -> bool:
    wanted = set(names)
    return all(
        s["state"] in SETTLED for s in project["services"] if not wanted or s["name"] in wanted
    )


def wait_settled(
    project_id: str,
    names: Iterable[str] = (),
    *,
    timeout: float = 300.0,
    client: Client | None = None,
    on_change: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """The project once every (named) service is settled: ready, completed, or failed."""
    wanted = list(names)
    deadline = time.monotonic() + timeout
    if on_change is None:  # one long poll that the daemon answers when all are settled
        c = _client(client)
        while True:
            project: dict[str, Any] = c.call(
                "GET", f"/api/projects/{project_id}/settled",
                services=",".join(wanted), timeout=POLL,
            )["project"]  # fmt: skip
            if settled(project, wanted):
                return project
            if time.monotonic() > deadline:
                raise NotReady(f"{project_id} not settled after {timeout:g}s")
    for project, _ in changes(project_id, after=10**9, client=client):  # states, not lines
        on_change(project)
        if settled(project, wanted):
            return project
        if time.monotonic() > deadline:
            raise NotReady(f"{project_id} not settled after {timeout:g}s")
    raise AssertionError("unreachable")
