"""``project_up`` and ``project_status``: a ``homeport.toml`` stack through the daemon's
supervisor (issue 10), under the same allowlist as ``run_service``: every service's command
must match it before anything starts. Projects this session brought up go down with it
(unless ``--keep``)."""

from __future__ import annotations

import os
from typing import Any

from homeport.mcp.policy import command_line, line_refusal
from homeport.mcp.session import Refused, Session
from homeport.mcp.tools import Args, Progress

#: Longest a project_up waits for its services to settle.
UP_DEFAULT = 120.0


def project_up(s: Session, a: Args, progress: Progress) -> dict[str, Any]:
    from homeport.project import client as pc
    from homeport.project import load

    stack = load(a.get("path") or os.getcwd(), profiles=a.get("profiles") or ())
    names = list(a.get("services") or [])
    for spec in stack.services:  # dependencies start too: every command is checked
        line = spec.cmd if spec.cmd is not None else command_line(spec.args or ())
        refusal = line_refusal(line, s.config)
        if refusal is not None:
            raise Refused(f"{stack.name}.{spec.name}: {refusal}")
    client = s.starting_client()
    before = {p["id"] for p in pc.projects(client=client)}
    answer = pc.up_file(str(stack.file), stack.profiles, names, client=client)
    project: dict[str, Any] = answer["project"]
    if project["id"] not in before:
        s.projects.add(project["id"])
    if a.get("wait", True) is not False:
        timeout = float(a.get("timeout") or UP_DEFAULT)

        def show(p: dict[str, Any]) -> None:
            states = [x["state"] for x in p["services"]]
            done = sum(st in pc.SETTLED for st in states)
            progress(float(done), float(len(states)), ", ".join(
                f"{x['name']}: {x['state']}" for x in p["services"]
            ))  # fmt: skip

        project = pc.wait_settled(
            project["id"], names, timeout=timeout, client=client, on_change=show
        )
    return {"project": project, "selected": list(answer.get("selected", []))}


def project_status(s: Session, a: Args, progress: Progress) -> dict[str, Any]:
    from homeport.project import client as pc

    client = s.daemon_if_running()
    if client is None:  # no daemon: no project runs (it would have been restored)
        return {"projects": []}
    if a.get("project"):
        return {"projects": [pc.ps(str(a["project"]), client=client)]}
    return {"projects": pc.projects(client=client)}
