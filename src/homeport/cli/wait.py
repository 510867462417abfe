"""Wait until services are really ready, then optionally run a command.

TARGET is one of
  3000                     TCP on this machine (::1 and 127.0.0.1 are both tried)
  localhost:3000           TCP, every address the name resolves to (IPv6 and IPv4)
  [::1]:5432, 10.0.0.5:80  TCP on one address
  http://localhost:8000/health   HTTP GET: ready when the status is in --status
                                 (default 200-399) and the body has --contains TEXT
  https://…                the same over TLS (--insecure for self-signed certificates)
  unix:/run/app.sock       a Unix stream socket accepts connections

Every target must be ready (with --any, one is enough). Attempts back off from 50 ms to
1 s. A connection whose local and remote ends are the same (a TCP self-connect, which
polling a free port can produce) is not mistaken for a server, and the address that
answered is reported, so "localhost went to ::1" is visible. On a terminal a live line
per target says why it is not ready yet: refused, timed out, wrong family, HTTP 503,
TLS error.

Everything after "--" is a command to run once ready: homeport replaces itself with it
(exec), so its exit status is the command's. On timeout the command is not run.

examples:
  homeport wait 5432 && psql -h localhost
  homeport wait localhost:6379 http://localhost:8000/health --timeout 60
  homeport wait http://localhost:3000 --status 200 --contains ready -- npm test
  homeport wait unix:/tmp/app.sock --pid "$SERVER_PID"   # fail fast if the server dies

exit status: 0 ready (or the command's status), 1 timed out or the watched process
exited, 2 bad usage, 127 the command was not found.

--json prints {"ready": BOOL, "mode": "all"|"any", "elapsed": SECONDS, "command":
[ARG, ...]|null, "targets": [{"target": STR, "ready": BOOL, "attempts": INT, "elapsed":
SECONDS|null, "address": STR|null, "status": HTTP_STATUS|null, "reason": STR}]}
on stdout (stderr when a command follows), whether ready or not.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from homeport.cli import render
from homeport.cli.env import Env

HELP = "wait until ports, URLs or sockets are really ready (then run a command)"


def _add_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "-t",
        "--timeout",
        type=float,
        default=30.0,
        metavar="S",
        help="give up after S seconds (default 30)",
    )
    p.add_argument("--any", action="store_true", help="ready when any one target is")
    p.add_argument(
        "--status",
        default="200-399",
        metavar="LO-HI",
        help="HTTP statuses that count as ready (default 200-399)",
    )
    p.add_argument("--contains", metavar="TEXT", help="HTTP body must contain TEXT")
    p.add_argument("--insecure", action="store_true", help="skip TLS certificate checks")
    p.add_argument(
        "--attempt-timeout",
        type=float,
        default=2.0,
        metavar="S",
        help="time limit for one attempt (default 2)",
    )
    p.add_argument("--pid", type=int, metavar="PID", help="fail at once if PID exits")
    p.add_argument("--json", action="store_true", help="machine-readable output")


def add_arguments(p: argparse.ArgumentParser) -> None:
    # argparse cannot show a REMAINDER positional in its usage line; say it ourselves.
    p.usage = "homeport wait [options] TARGET... [-- CMD ARGS...]"
    _add_options(p)
    p.add_argument(
        "rest",
        nargs=argparse.REMAINDER,
        metavar="TARGET... [-- CMD ARGS]",
        help="what to wait for, then the command to run",
    )


class _SubParser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        from homeport.errors import UsageError

        raise UsageError(f"wait: {message}")


def _split(args: argparse.Namespace) -> tuple[list[str], list[str]]:
    """Options may follow the targets: argparse stops at the first target (REMAINDER),
    so the rest before ``--`` is parsed again with the same option definitions."""
    rest: list[str] = list(args.rest)
    cmd: list[str] = []
    if "--" in rest:
        i = rest.index("--")
        rest, cmd = rest[:i], rest[i + 1 :]
    sub = _SubParser(prog="homeport wait", add_help=False)
    _add_options(sub)
    sub.add_argument("targets", nargs="*")
    sub.parse_args(rest, namespace=args)
    return list(args.targets), cmd


def run(args: argparse.Namespace, env: Env) -> int:
    from homeport.errors import UsageError
    from homeport.ports.wait import HttpCheck, WaitFailed, parse_status_range, wait_for

    targets, cmd = _split(args)
    if not targets:
        raise UsageError("nothing to wait for (give PORT, HOST:PORT, a URL or unix:/path)")
    if args.timeout <= 0 or args.attempt_timeout <= 0:
        raise UsageError("--timeout and --attempt-timeout must be positive")
    check = HttpCheck(parse_status_range(args.status), args.contains, args.insecure)
    live = _Live(env) if env.stdout_isatty and not args.json else None
    try:
        report = wait_for(
            *targets,
            timeout=args.timeout,
            any_=args.any,
            attempt_timeout=args.attempt_timeout,
            http=check,
            pid=args.pid,
            on_attempt=live.update if live else None,
        )
    except WaitFailed as exc:
        if live:
            live.clear()
        if args.json:
            _dump(env, exc.report.to_json(), cmd)
        raise
    if live:
        live.clear()
    if args.json:
        _dump(env, report.to_json(), cmd)
    else:
        say = env.err if cmd else env.out
        for t in report.targets:
            if t.ready:
                say(
                    f"ready: {t.target} via {t.address} after {t.elapsed or 0:.2f}s "
                    f"({t.attempts} attempt{'s' if t.attempts != 1 else ''})"
                )
    return _exec(env, cmd) if cmd else 0


def _dump(env: Env, data: dict[str, Any], cmd: list[str]) -> None:
    data["command"] = cmd or None
    if cmd:  # stdout belongs to the command
        import json

        env.err(json.dumps(data))
    else:
        render.dump_json(env, data)


def _exec(env: Env, cmd: list[str]) -> int:
    env.stdout.flush()
    env.stderr.flush()
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execvp(cmd[0], cmd)
    except FileNotFoundError:
        env.err(f"homeport: command not found: {cmd[0]}")
        return 127
    except PermissionError:
        env.err(f"homeport: command not executable: {cmd[0]}")
        return 126


class _Live:
    """One line per target on a terminal, redrawn in place after every attempt."""

    def __init__(self, env: Env) -> None:
        self.env = env
        self.lines = 0

    def update(self, report: Any) -> None:
        out = self.env.stdout
        if self.lines:
            out.write(f"\x1b[{self.lines}A")
        width = (self.env.width or 100) - 1
        for t in report.targets:
            text = f"{t.target}: {t.reason} (attempt {t.attempts})"
            mark = render.paint(self.env, "ready  ", "green") if t.ready else "waiting"
            out.write(f"\x1b[2K{mark} {render.ellipsize(text, width - 8)}\n")
        self.lines = len(report.targets)
        out.flush()

    def clear(self) -> None:
        if self.lines:
            self.env.stdout.write(f"\x1b[{self.lines}A\x1b[J")
            self.lines = 0
