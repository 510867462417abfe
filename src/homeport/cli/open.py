"""Open the homeport dashboard in a browser, logged in by a one-time link.

The link carries a code that works once, for two minutes; it sets an HttpOnly,
SameSite=Strict session cookie for homeport.localhost, so no token ever sits in the
browser's history or in a page's reach. The gateway is started when it is not running.

examples:
  homeport open               open the dashboard (prints the link when no browser is found)
  homeport open --print       only print the link
  homeport open --json        {"url": "http://homeport.localhost:62893/login?token=...",
                               "expires": 1764230120.0, "opened": false}
"""

from __future__ import annotations

import argparse

from homeport.cli.env import Env

HELP = "open the dashboard with a one-time login link"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--print",
        dest="print_only",
        action="store_true",
        help="print the link, do not start a browser",
    )


def run(args: argparse.Namespace, env: Env) -> int:
    from homeport.cli.render import dump_json
    from homeport.daemon.client import connect

    data = connect(start=True).call("POST", "/api/login-links")
    opened = False
    if not args.print_only and not args.json:
        import webbrowser

        opened = webbrowser.open(data["url"])
    if args.json:
        dump_json(env, {**data, "opened": opened})
    else:
        env.out(data["url"])
        if not opened and not args.print_only:
            env.out("(no browser found: open the link above; it works once, for 2 minutes)")
    return 0
