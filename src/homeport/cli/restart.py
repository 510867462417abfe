"""Restart services of a project (the one found from here, or -p ID).

examples:
  homeport restart api
  homeport restart api web --json     {"project": {... as homeport ps --json}}

Only the named services restart; what depends on them keeps running.
"""

from __future__ import annotations

import argparse

from homeport.cli.env import Env

HELP = "restart services of a project"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from homeport.cli.project import add_project_arguments

    parser.add_argument("services", nargs="+", help="service names")
    add_project_arguments(parser)


def run(args: argparse.Namespace, env: Env) -> int:
    from homeport.cli.project import act

    return act(args, env, "restart")
