"""The services of a project: state, pid, port, URL, restarts, ready since, exit codes.

examples:
  homeport ps                 the project found from here (homeport.toml / pyproject.toml)
  homeport ps -p feature-x.shop
  homeport ps --all           every project the daemon runs
  homeport ps --json          {"project": {"id", "name", "file", "root", "branch", "profiles",
                               "services": [{"name", "kind", "state", "pid", "port", "address",
                               "url", "route", "restarts", "exit_code", "started",
                               "ready_since", "message", "depends_on"}]}}
                              (address: the service's own 127.0.x.y, or null)
                              (--all: {"projects": [...]})

states: pending, starting, ready, completed (a task), backoff (restarting), crashloop,
exited, failed, blocked (a dependency failed), stopping, stopped, lost (ended while no
daemon watched it). Exit status 1 when a service is not ready or completed.
"""

from __future__ import annotations

import argparse

from homeport.cli.env import Env

HELP = "show a project's services (state, pid, port, url, restarts)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from homeport.cli.project import add_project_arguments

    add_project_arguments(parser)
    parser.add_argument("--all", action="store_true", help="every project the daemon runs")


def run(args: argparse.Namespace, env: Env) -> int:
    from homeport.cli.project import project_id, ps_table
    from homeport.cli.render import dump_json
    from homeport.project import client

    if args.all:
        projects = client.projects()
        if args.json:
            dump_json(env, {"projects": projects})
        for p in [] if args.json else projects:
            env.out(f"{p['id']}  ({p['file']})")
            env.out(ps_table(env, p))
        return 0
    project = client.ps(project_id(args))
    if args.json:
        dump_json(env, {"project": project})
    else:
        env.out(ps_table(env, project))
    good = all(s["state"] in client.GOOD for s in project["services"])
    return 0 if good else 1
