"""``homeport up`` in a project: the daemon brings the stack up; this shows it happen.

Progress per service on stderr (starting -> ready, with time; failures with their last
output lines), then the table of URLs, then (in the foreground) every service's output,
prefixed and coloured, until Ctrl-C, which stops the stack. ``-d`` returns after the table:
exit 0 when every service is ready or completed, 1 otherwise.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from homeport.cli.env import Env
from homeport.cli.project import Printer, Progress, find_file, load_stack, ps_table

if TYPE_CHECKING:
    from homeport.daemon.client import Client


def run(args: argparse.Namespace, env: Env) -> int:
    from homeport.cli.render import dump_json
    from homeport.project import client

    c, file = _connect(args)
    answer = client.up_file(str(file), args.profile, args.services, client=c)
    project = answer["project"]
    names = answer.get("selected") or [s["name"] for s in project["services"]]
    project_id = project["id"]
    printer = Printer(env, names)
    progress = Progress(env, printer)
    # Progress per service on a terminal (and in the foreground); a detached up that nobody
    # watches waits with one long poll instead of a round trip per state change.
    show = not args.json and (env.stdout_isatty or not args.detach)
    try:
        if show:
            progress(project)
        project = client.wait_settled(
            project_id, names, client=c, on_change=progress if show else None,
            timeout=args.timeout,
        )  # fmt: skip
        ok = all(s["state"] in client.GOOD for s in project["services"] if s["name"] in names)
        if args.json:
            dump_json(env, {"project": project, "ok": ok})
        else:
            _failures(env, project, names, c)
            env.out(ps_table(env, project))
        if args.detach:
            return 0 if ok else 1
        return _follow(env, project_id, printer, c)
    except KeyboardInterrupt:
        return _stop(env, project_id, c)


def _connect(args: argparse.Namespace) -> tuple[Client, Path]:
    """A client to the daemon and the project file. With a daemon running, the daemon
    parses and validates the file (the CLI then imports no schema: ~70 ms less per ``up``);
    without one, the file is validated here first, so a bad file never starts a daemon."""
    from homeport.daemon.client import Client, connect
    from homeport.daemon.config import DaemonConfig
    from homeport.project import client

    file = find_file(args)
    c = Client.for_config(DaemonConfig.build())
    if file is None or c.health() is None:
        file = load_stack(args).file  # raises the file's error, or "no homeport.toml"
        c = connect(start=True)
    return client._client(c), file


def _failures(env: Env, project: dict[str, Any], names: list[str], c: Client) -> None:
    bad = [s for s in project["services"] if s["name"] in names and s["state"] not in
           ("ready", "completed")]  # fmt: skip
    if not bad:
        return

    data = c.call("GET", f"/api/projects/{project['id']}/wait", after=0, timeout=0, limit=20000)
    for s in bad:
        tail = [ln["line"] for ln in data["lines"] if ln["service"] == s["name"]][-10:]
        env.err(f"{s['name']} {s['state']}: {s.get('message') or ''}")
        for line in tail:
            env.err(f"  {s['name']} | {line}")


def _follow(env: Env, project_id: str, printer: Printer, c: Client) -> int:
    from homeport.errors import NotFound
    from homeport.project import client

    states: dict[str, str] = {}
    try:
        for project, lines in client.changes(project_id, client=c):
            for ln in lines:
                printer.line(ln["service"], ln["line"])
            for s in project["services"]:
                if states.setdefault(s["name"], s["state"]) != s["state"]:
                    states[s["name"]] = s["state"]
                    printer.note(s["name"], f"{s['state']} {s.get('message') or ''}".strip())
            env.stdout.flush()
    except NotFound:
        env.err("homeport: the project was brought down")
        return 0
    return 0


def _stop(env: Env, project_id: str, c: Client) -> int:
    from homeport.project import client

    env.err("homeport: stopping the stack …")
    try:
        client.down(project_id, client=c)
    except KeyboardInterrupt:
        env.err("homeport: still stopping in the daemon; homeport ps shows it")
    return 130
