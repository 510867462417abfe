"""Stop the homeport gateway daemon.

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

HELP = "stop the gateway daemon"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds to wait (10)")


def run(args: argparse.Namespace, env: Env) -> int:
    from homeport.cli.render import dump_json
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
