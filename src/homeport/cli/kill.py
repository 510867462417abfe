"""Stop what holds a port: find every owner, signal it, wait for the port to be released.

TARGET is a port (3000) or HOST:PORT / [IPv6]:PORT. Owners come from the socket
inventory with an exact match: 80 never matches 8080, and 127.0.0.1:3000 matches a
listener on 127.0.0.1, 0.0.0.0 or a dual-stack ::, but not one on 127.0.0.2. Every
owner of a forked server (a parent and its workers share one socket) is included.

The sequence: show the processes, ask on a terminal (unless --yes), send SIGTERM (or
--signal), wait up to --timeout seconds for the processes to exit, and if the port is
still held then, send SIGKILL to those still running. --tree adds each owner's
descendants. PID 1 and homeport itself are refused. Permission errors say whose process
it is and what to run instead.

examples:
  homeport kill 3000
  homeport kill 127.0.0.1:8080 --yes --timeout 10
  homeport kill 5173 --signal INT --tree
  homeport kill 9229 --dry-run --json

exit status: 0 the port was released (or --dry-run), 1 nothing holds it, the user said
no, or the port is still held; 2 bad usage; 3 the owner is not visible or may not be
signalled by us.

--json prints {"target": STR, "dry_run": BOOL, "released": BOOL, "processes": [{"pid":
INT, "name": STR, "result": "exited"|"killed"|"still-running"|"permission-denied"|
"gone"|"would-signal", "signals": [NAME, ...], "detail": STR}], "refused": [{"pid":
INT, "reason": STR}]}.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from homeport.cli import render
from homeport.cli.env import Env

if TYPE_CHECKING:  # imported for real inside run(), to keep --help cheap
    from homeport.ports.kill import KillPlan, KillReport

HELP = "stop what holds a port: SIGTERM, wait for release, then SIGKILL"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("target", metavar="TARGET", help="PORT, HOST:PORT or [IPv6]:PORT")
    p.add_argument(
        "-s",
        "--signal",
        default="TERM",
        metavar="SIG",
        help="first signal (default TERM; e.g. INT, HUP, 9)",
    )
    p.add_argument(
        "-t",
        "--timeout",
        type=float,
        default=5.0,
        metavar="S",
        help="seconds before SIGKILL (default 5)",
    )
    p.add_argument("--tree", action="store_true", help="include the owners' descendants")
    p.add_argument("-n", "--dry-run", action="store_true", help="show, signal nothing")
    p.add_argument("-y", "--yes", action="store_true", help="do not ask on a terminal")
    p.add_argument("--tcp", action="store_true", help="only TCP listeners")
    p.add_argument("--json", action="store_true", help="machine-readable output")


def run(args: argparse.Namespace, env: Env) -> int:
    from homeport.errors import EnvironmentProblem, UsageError
    from homeport.ports.kill import execute, plan_kill, signal_of

    sig = signal_of(args.signal)
    if args.timeout < 0:
        raise UsageError("--timeout must be >= 0 seconds")
    plan = plan_kill(args.target, tree=args.tree, udp=not args.tcp)
    if not args.json:
        _show_plan(env, plan)
    if not plan.victims:
        raise EnvironmentProblem(f"nothing we may signal holds {args.target}")
    ask = env.stdin_isatty and not (args.yes or args.dry_run or args.json)
    if ask and not _confirm(env, len(plan.victims), sig.name):
        env.err("nothing signalled")
        return 1
    report = execute(plan, sig=sig, timeout=args.timeout, dry_run=args.dry_run)
    if args.json:
        render.dump_json(env, report.to_json())
    else:
        _show_report(env, report)
    if report.dry_run:
        return 0
    if any(o.result == "permission-denied" for o in report.outcomes) and not report.released:
        return 3
    return 0 if report.released else 1


def _show_plan(env: Env, plan: KillPlan) -> None:
    env.out(f"{plan.target} is held by:")
    for v in plan.victims:
        user = f"  user {v.user}" if v.user else ""
        env.out(f"  pid {v.pid}  {render.paint(env, v.name, 'cyan')}{user}  ({v.why})")
        env.out(f"      {render.ellipsize(v.command, max(20, (env.width or 100) - 6))}")
    for pid, reason in plan.refused:
        env.out(f"  pid {pid}  refused: {reason}")


def _confirm(env: Env, n: int, signame: str) -> bool:
    env.stdout.write(f"send {signame} to {n} process{'es' if n != 1 else ''}? [y/N] ")
    env.stdout.flush()
    answer = env.stdin.readline().strip().lower()
    return answer in ("y", "yes")


_STYLE = {
    "exited": "green",
    "killed": "yellow",
    "gone": "dim",
    "would-signal": "dim",
    "still-running": "red",
    "permission-denied": "red",
}


def _show_report(env: Env, report: KillReport) -> None:
    for o in report.outcomes:
        sent = ",".join(o.signals) or "-"
        line = f"  pid {o.pid}  {o.name}: {render.paint(env, o.result, _STYLE[o.result])}"
        env.out(f"{line}  [{sent}]" + (f"  {o.detail}" if o.detail else ""))
    if report.dry_run:
        env.out("dry run: nothing signalled")
    elif report.released:
        env.out(render.paint(env, f"{report.target} released", "green"))
    else:
        env.out(render.paint(env, f"{report.target} is still held", "red"))
