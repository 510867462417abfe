"""Stop services of a project (the one found from here, or -p ID).

examples:
  homeport stop api
  homeport stop api web --json     {"project": {... as homeport ps --json}}

Stopping a service stops what depends on it first. With no name, the whole stack stops
(homeport down also forgets it).
"""

from __future__ import annotations

import argparse

from homeport.cli.env import Env

HELP = "stop services of a project"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from homeport.cli.project import add_project_arguments

    parser.add_argument("services", nargs="*", help="service names")
    add_project_arguments(parser)


def run(args: argparse.Namespace, env: Env) -> int:
    from homeport.cli.project import act

    return act(args, env, "stop")
