"""Stop a project's stack (in a folder with homeport.toml), or else the gateway daemon.

In a project, every service stops, dependents first (stop_signal, stop_timeout, then
SIGKILL of the whole process group), and the daemon forgets the stack; the gateway keeps
running. ``--all`` stops every project and the gateway; ``--gateway`` only the gateway
(which stops the stacks it runs too).

  homeport down               the project found from here
  homeport down -p feature-x.shop
  homeport down --json        {"project": {... every service "stopped"}}

Without a project file:

Routes stay in the state database and come back with the next ``homeport up``; services that
``homeport run`` started keep running under their own terminals but lose their names until
the gateway is back.

examples:
  homeport down
  homeport down --json      {"stopped": true, "pid": 123}   (exit 1 and "stopped": false
                            when no gateway was running)
"""

from __future__ import annotations

import argparse

from homeport.cli.env import Env

HELP = "stop a project's stack (homeport.toml), or else the gateway daemon"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from homeport.cli.project import add_project_arguments

    parser.add_argument("--timeout", type=float, default=10.0, help="seconds to wait (10)")
    add_project_arguments(parser)
    parser.add_argument("--all", action="store_true", help="every project, then the gateway")
    parser.add_argument("--gateway", action="store_true", help="the gateway (and its stacks)")


def _project_down(args: argparse.Namespace, env: Env) -> int:
    from homeport.cli.project import project_id, ps_table
    from homeport.cli.render import dump_json
    from homeport.project import client

    project = client.down(project_id(args))
    if args.json:
        dump_json(env, {"project": project})
    else:
        env.out(ps_table(env, project))
    return 0


def run(args: argparse.Namespace, env: Env) -> int:
    from homeport.cli.render import dump_json

    if not args.gateway and not args.all:
        from homeport.cli.project import find_file

        if args.project or find_file(args) is not None:
            return _project_down(args, env)
    if args.all:
        _down_every_project()
    from homeport.daemon.client import Client, stop_daemon
    from homeport.daemon.config import DaemonConfig

    config = DaemonConfig.build()
    pid = stop_daemon(Client.for_config(config), timeout=args.timeout)
    if args.json:
        dump_json(env, {"stopped": pid is not None, "pid": pid})
    elif pid is None:
        env.err("homeport: the gateway is not running")
    else:
        env.out(f"stopped the homeport gateway (pid {pid})")
    return 0 if pid is not None else 1


def _down_every_project() -> None:
    from homeport.daemon.client import Client
    from homeport.daemon.config import DaemonConfig
    from homeport.project import client

    c = Client.for_config(DaemonConfig.build())
    if c.health() is None:
        return
    for p in client.projects(client=c):
        client.down(p["id"], client=c)
