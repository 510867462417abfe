"""``homeport up`` in a project: the daemon brings the stack up; this shows it happen.

Progress per service on stderr (starting -> ready, with time; failures with their last
output lines), then the table of URLs, then (in the foreground) every service's output,
prefixed and coloured, until Ctrl-C, which stops the stack. ``-d`` returns after the table:
exit 0 when every service is ready or completed, 1 otherwise.
"""

from __future__ import annotations

import argparse

from homeport.cli.env import Env
from homeport.cli.project import Printer, Progress, load_stack, ps_table


def run(args: argparse.Namespace, env: Env) -> int:
    from homeport.cli.render import dump_json
    from homeport.project import client

    stack = load_stack(args)  # a bad file fails here, before any daemon is asked
    names = stack.select(args.services)
    printer = Printer(env, names)
    progress = Progress(env, printer)
    project = client.up(stack, args.services)
    c = client._client(None)
    # Progress per service on a terminal (and in the foreground); a detached up that nobody
    # watches waits with one long poll instead of a round trip per state change.
    show = not args.json and (env.stdout_isatty or not args.detach)
    try:
        if show:
            progress(project)
        project = client.wait_settled(
            stack.id, names, client=c, on_change=progress if show else None,
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
        return _follow(env, stack.id, printer, c)
    except KeyboardInterrupt:
        return _stop(env, stack.id, c)


def _failures(env: Env, project: dict, names: list[str], c: object) -> None:  # type: ignore[type-arg]
    bad = [s for s in project["services"] if s["name"] in names and s["state"] not in
           ("ready", "completed")]  # fmt: skip
    if not bad:
        return
    from homeport.project import client

    data = client._client(c).call(  # type: ignore[arg-type]
        "GET", f"/api/projects/{project['id']}/wait", after=0, timeout=0, limit=20000
    )
    for s in bad:
        tail = [ln["line"] for ln in data["lines"] if ln["service"] == s["name"]][-10:]
        env.err(f"{s['name']} {s['state']}: {s.get('message') or ''}")
        for line in tail:
            env.err(f"  {s['name']} | {line}")


def _follow(env: Env, project_id: str, printer: Printer, c: object) -> int:
    from homeport.errors import NotFound
    from homeport.project import client

    states: dict[str, str] = {}
    try:
        for project, lines in client.changes(project_id, client=c):  # type: ignore[arg-type]
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


def _stop(env: Env, project_id: str, c: object) -> int:
    from homeport.project import client

    env.err("homeport: stopping the stack …")
    try:
        client.down(project_id, client=c)  # type: ignore[arg-type]
    except KeyboardInterrupt:
        env.err("homeport: still stopping in the daemon; homeport ps shows it")
    return 130
