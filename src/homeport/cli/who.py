"""Who holds a port: every owner with its process tree, cwd, command line and start time,
and the clients connected to it.

TARGET is a port (3000), host:port (127.0.0.1:3000, localhost:3000) or [v6]:port
([::1]:5432). With a host, only sockets that would receive connections for that host count:
a listener on 0.0.0.0 receives 127.0.0.1, one on 127.0.0.1 does not receive ::1.

examples:
  homeport who 3000
  homeport who '[::1]:5432' --json

exit status: 0 when something holds it, 1 when nothing does (and says so).

--json prints {"target", "listeners": [LISTENER, ...], "clients": [{proto, local_address,
local_port, remote_address, remote_port, state, client_owners: [PROCESS]}]}, with LISTENER
as in 'homeport ls --json' and each owner's "parents" filled in.
"""

from __future__ import annotations

import argparse
import time

from homeport.cli import render
from homeport.cli.env import Env

HELP = "who holds a port: owners, process tree, clients"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("target", metavar="TARGET", help="PORT, HOST:PORT or [IPv6]:PORT")
    p.add_argument("--tcp", action="store_true", help="TCP only")
    p.add_argument("--udp", action="store_true", help="UDP only")
    p.add_argument("--json", action="store_true", help="machine-readable output")


def run(args: argparse.Namespace, env: Env) -> int:
    from homeport.inventory import who

    report = who(args.target, tcp=args.tcp or not args.udp, udp=args.udp or not args.tcp)
    if args.json:
        render.dump_json(env, report.to_json())
        return 0
    for x in report.listeners:
        head = f"{x.proto} {render.host_port(x.address, x.port)}"
        env.out(
            render.paint(env, head, "bold")
            + f"  {x.exposure}"
            + (f"  ({'; '.join(x.notes)})" if x.notes else "")
        )
        if not x.owners:
            env.out(f"  owner unknown: {x.owner_hint}")
        for p in x.owners:
            started = (
                time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(p.start_time))
                if p.start_time
                else "?"
            )
            name = render.paint(env, render.clean(p.name), "cyan")
            env.out(f"  pid {p.pid}  {name}  user {p.user or '?'}  up {render.age(p.start_time)}")
            env.out(f"    command: {render.clean(p.command)}")
            env.out(f"    cwd:     {render.clean(p.cwd or '? (not readable)')}")
            env.out(f"    started: {started}")
            chain = render.clean(" < ".join(f"{n}({pid})" for pid, n in p.parents))
            env.out(f"    parents: {chain or '-'}")
    env.out("")
    env.out(f"clients ({len(report.clients)}):" if report.clients else "clients: none connected")
    for c in report.clients:
        s = c.server
        by = render.clean(", ".join(f"{p.name} (pid {p.pid})" for p in c.owners))
        by = by or "a remote or unseen process"
        env.out(f"  {render.host_port(s.remote_addr, s.remote_port)}  {s.state}  {by}")
    return 0
