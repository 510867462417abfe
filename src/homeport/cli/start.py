"""Start services of a project (the one found from here, or -p ID).

examples:
  homeport start api
  homeport start api web --json     {"project": {... as homeport ps --json}}

Starting a service starts what it depends on first.
"""

from __future__ import annotations

import argparse

from homeport.cli.env import Env

HELP = "start services of a project"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from homeport.cli.project import add_project_arguments

    parser.add_argument("services", nargs="+", help="service names")
    add_project_arguments(parser)


def run(args: argparse.Namespace, env: Env) -> int:
    from homeport.cli.project import act

    return act(args, env, "start")
