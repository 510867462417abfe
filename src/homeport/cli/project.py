"""What the project commands share: finding the project, rendering its services and output.

Not a command itself (it has no ``HELP``): ``up``, ``ps``, ``down``, ``logs``, ``config``,
``start``, ``stop`` and ``restart`` use it.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from homeport.cli.env import Env

if TYPE_CHECKING:
    from homeport.project.stack import Stack

PALETTE = ("cyan", "magenta", "yellow", "blue", "green")
STATE_STYLE = {
    "ready": "green", "completed": "green", "starting": "yellow", "pending": "dim",
    "backoff": "yellow", "stopping": "yellow", "crashloop": "red", "failed": "red",
    "exited": "red", "blocked": "red", "lost": "red", "stopped": "dim",
}  # fmt: skip


def add_file_arguments(
    parser: argparse.ArgumentParser, *, profiles: bool = True, short: bool = True
) -> None:
    parser.add_argument(
        *(("-f", "--file") if short else ("--file",)),
        metavar="FILE",
        help="the project file (default: homeport.toml or [tool.homeport] in pyproject.toml,"
        " here or in a parent folder)",
    )
    if profiles:
        parser.add_argument(
            "--profile",
            action="append",
            default=[],
            metavar="NAME",
            help="apply [profiles.NAME] (repeatable, applied in order)",
        )


def add_project_arguments(parser: argparse.ArgumentParser, *, short: bool = True) -> None:
    add_file_arguments(parser, profiles=False, short=short)
    parser.add_argument(
        "-p", "--project", metavar="ID", help="the project's id (as homeport ps --all shows)"
    )


def find_file(args: argparse.Namespace) -> Path | None:
    from homeport.project import find

    if getattr(args, "file", None):
        return Path(args.file)
    return find()


def load_stack(args: argparse.Namespace) -> Stack:
    from homeport.project import load

    return load(getattr(args, "file", None), profiles=getattr(args, "profile", []) or [])


def project_id(args: argparse.Namespace) -> str:
    """The project a command is about: ``-p ID``, else the project file found from here."""
    if getattr(args, "project", None):
        return str(args.project)
    return load_stack(args).id


def state_text(env: Env, svc: dict[str, Any]) -> str:
    from homeport.cli.render import paint

    return paint(env, svc["state"], STATE_STYLE.get(svc["state"], ""))


def ps_table(env: Env, project: dict[str, Any]) -> str:
    from homeport.cli.render import age, table

    rows, styles = [], []
    for s in project["services"]:
        since = s.get("ready_since")
        rows.append(
            [
                s["name"],
                s["state"],
                str(s["pid"])
                if s["pid"] and s["state"] in ("starting", "ready", "stopping")
                else "-",
                str(s["port"] or "-"),
                s.get("url") or "-",
                str(s["restarts"]),
                age(since) if since else "-",
                "" if s["exit_code"] is None else str(s["exit_code"]),
                s.get("message") or "",
            ]
        )
        styles.append(["bold", STATE_STYLE.get(s["state"], ""), "", "", "cyan", "", "", "", "dim"])
    headers = ["SERVICE", "STATE", "PID", "PORT", "URL", "RESTARTS", "READY", "EXIT", "NOTE"]
    return table(env, headers, rows, styles, shrink=8)


class Printer:
    """Prefixed, coloured output lines, one colour per service."""

    def __init__(self, env: Env, names: list[str]) -> None:
        self.env = env
        self.width = max((len(n) for n in names), default=4)
        self.colours = {n: PALETTE[i % len(PALETTE)] for i, n in enumerate(names)}

    def line(self, service: str, text: str) -> None:
        from homeport.cli.render import clean, paint

        prefix = paint(self.env, f"{service.ljust(self.width)} |", self.colours.get(service, ""))
        self.env.out(f"{prefix} {text if text.isprintable() else clean(text)}")

    def note(self, service: str, text: str) -> None:
        from homeport.cli.render import paint

        self.env.err(paint(self.env, f"{service.ljust(self.width)} : {text}", "dim"))


class Progress:
    """One line per service state change while the stack comes up: ``api  ready  0.41s``."""

    def __init__(self, env: Env, printer: Printer) -> None:
        self.env = env
        self.printer = printer
        self.seen: dict[str, str] = {}
        self.t0 = time.monotonic()

    def __call__(self, project: dict[str, Any]) -> None:
        for s in project["services"]:
            if self.seen.get(s["name"]) == s["state"]:
                continue
            self.seen[s["name"]] = s["state"]
            took = f"{time.monotonic() - self.t0:.2f}s"
            note = f"  {s['message']}" if s.get("message") else ""
            self.env.err(f"{s['name'].ljust(self.printer.width)}  {state_text(self.env, s)}"
                         f"  {took}{note}")  # fmt: skip


def act(args: argparse.Namespace, env: Env, action: str) -> int:
    """``start`` / ``stop`` / ``restart`` SERVICE…: ask, wait until settled, show the table."""
    from homeport.cli.render import dump_json
    from homeport.project import client

    pid = project_id(args)
    client.act(pid, action, args.services)
    project = client.wait_settled(pid, args.services)
    if args.json:
        dump_json(env, {"project": project})
    else:
        env.out(ps_table(env, project))
    return 0


def _since(text: str | None) -> float | None:
    import re

    from homeport.errors import UsageError

    if text is None:
        return None
    m = re.fullmatch(r"(\d+(?:\.\d+)?)([smh]?)", text.strip())
    if not m:
        raise UsageError(f"--since {text!r}: write 30s, 5m or 2h")
    return time.time() - float(m.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600}[m.group(2)]


def logs(args: argparse.Namespace, env: Env) -> int:
    """``homeport logs [-f] [SVC…]`` in a project: the services' output, prefixed."""
    import json

    from homeport.project import client

    pid = project_id(args)
    c = client._client(None)
    wanted = set(args.services)
    since = _since(args.since)
    data = c.call("GET", f"/api/projects/{pid}/wait", after=0, timeout=0, limit=20000)
    names = [s["name"] for s in data["project"]["services"]]
    for n in wanted - set(names):
        from homeport.errors import NotFound

        raise NotFound(f"{pid} has no service {n!r}", hint="services: " + ", ".join(names))
    printer = Printer(env, [n for n in names if not wanted or n in wanted])

    def show(lines: list[dict[str, Any]]) -> None:
        for ln in lines:
            if (wanted and ln["service"] not in wanted) or (since and ln["time"] < since):
                continue
            if args.json:
                env.out(json.dumps(ln))
            else:
                printer.line(ln["service"], ln["line"])

    lines = data["lines"]
    show(lines if args.follow else lines[-args.lines :] if not since else lines)
    if not args.follow:
        return 0
    after = lines[-1]["seq"] if lines else 0
    try:
        for _, new in client.changes(pid, after=after, client=c):
            show(new)
            env.stdout.flush()
    except KeyboardInterrupt:
        return 0
    return 0
