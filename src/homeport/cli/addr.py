"""Lease a loopback address of its own for a service: 127.0.x.y, keeping its default port.

All of 127.0.0.0/8 reaches this machine over lo on Linux, so two servers can both
listen on port 8000 (or two PostgreSQL on 5432) side by side, each on its own address,
and each name resolves to its own address through the hosts block (homeport hosts sync).

A leased address is
  * in the pool 127.0.2.1-127.0.255.254 (HOMEPORT_ADDRESS_POOL moves it: A-B or a CIDR
    block in one /16 of 127/8), never 127.0.0.1, never 127.0.1.1 (Debian's hostname
    address), never .0/.255, never an address /etc/hosts names outside homeport's block;
  * free: no live lease on it, and with --port P nothing listening on ADDR:P or on the
    wildcard 0.0.0.0:P / [::]:P (without --port: nothing listens on it at all);
  * leased: no other homeport picker gets it while the lease lasts (holder = PID +
    start time, as for ports); NAME gets the same address next time while it is free.

IPv6 has only ::1 on lo: an own address is always IPv4.

The lease lasts --ttl seconds (default 600), or with --holder PID while that process runs
(--ttl 0: for as long as PID runs).

examples:
  homeport addr                          127.0.57.203
  homeport addr db.shop --port 5432      same address for db.shop every time it is free
  ADDR=$(homeport addr api --port 8000) && python -m http.server 8000 --bind $ADDR
  homeport addr --list                   leases on file and whether they still bind
  homeport addr --release 127.0.57.203

exit status: 0 printed an address, 1 none free, 2 bad usage.

--json prints {"address": STR, "lease": LEASE, "pool": "A-B", "ipv6": NOTE} where LEASE is
{"address", "port" (0: none asked), "proto", "name", "holder": {"pid", "start"}, "created",
"expires", "bound"}; with --list {"leases": [LEASE + "live"]}; with --release
{"released": ADDR, "ok": BOOL}.
"""

from __future__ import annotations

import argparse
import os
import time

from homeport.cli import render
from homeport.cli.env import Env

HELP = "lease a loopback address of its own (127.0.x.y) for a service"

DEFAULT_TTL = 600.0


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", metavar="NAME", nargs="?", help="stable name: same address next time")
    p.add_argument("--port", type=int, metavar="P", help="the port the service will bind there")
    p.add_argument("--udp", action="store_true", help="check the port for UDP instead of TCP")
    p.add_argument(
        "--ttl",
        type=float,
        default=DEFAULT_TTL,
        metavar="S",
        help=f"lease lifetime in seconds (default {DEFAULT_TTL:g}; 0 = while --holder runs)",
    )
    p.add_argument("--holder", type=int, metavar="PID", help="process that holds the lease")
    p.add_argument("--list", action="store_true", help="show the address leases on file")
    p.add_argument("--release", metavar="ADDR", help="give the lease on ADDR back")
    p.add_argument("--json", action="store_true", help="machine-readable output")


def run(args: argparse.Namespace, env: Env) -> int:
    from homeport.cli.port import check_lease_args
    from homeport.ports.address import address_pool, pick_address
    from homeport.ports.addrpool import IPV6_NOTE

    if args.list:
        return _list(env, args.json)
    if args.release is not None:
        return _release(env, args)
    check_lease_args(args)
    name = _name(args.name)
    pool = address_pool()
    lease = pick_address(
        name,
        port=args.port,
        proto="udp" if args.udp else "tcp",
        ttl=args.ttl or None,
        holder_pid=args.holder if args.holder is not None else os.getppid(),
        bound=args.holder is not None,
        pool=pool,
    )
    if args.json:
        render.dump_json(
            env,
            {
                "address": lease.address,
                "lease": lease.to_json(),
                "pool": pool.describe(),
                "ipv6": IPV6_NOTE,
            },
        )
    else:
        env.out(str(lease.address))
    return 0


def _name(text: str | None) -> str | None:
    """Names are host names: ``db.shop`` leases as ``db.shop.localhost``, the name the
    hosts block and the routes use."""
    if text is None:
        return None
    from homeport.daemon.routes import normalize_name

    return normalize_name(text)


def _list(env: Env, as_json: bool) -> int:
    from homeport.ports.address import address_leases
    from homeport.ports.lease import holder_of, is_live

    now = time.time()
    rows = [(x, is_live(x, now, holder_of(x.holder.pid))) for x in address_leases()]
    if as_json:
        render.dump_json(env, {"leases": [{**x.to_json(), "live": live} for x, live in rows]})
        return 0
    if not rows:
        env.out("no address leases on file")
        return 0
    table_rows = [
        [
            str(x.address),
            str(x.port or "-"),
            x.name or "-",
            str(x.holder.pid) if x.bound else "-",
            "live" if live else "free",
        ]
        for x, live in rows
    ]
    styles = [["", "", "", "", "green" if live else "dim"] for _, live in rows]
    env.out(render.table(env, ["ADDRESS", "PORT", "NAME", "HOLDER", "LEASE"], table_rows, styles))
    return 0


def _release(env: Env, args: argparse.Namespace) -> int:
    from homeport.errors import NotFound
    from homeport.ports.address import release_address

    ok = release_address(args.release, holder_pid=args.holder)
    if args.json:
        render.dump_json(env, {"released": args.release, "ok": ok})
        return 0 if ok else 1
    if not ok:
        raise NotFound(
            f"no lease of {'PID ' + str(args.holder) if args.holder else 'the command line'}"
            f" on {args.release}",
            hint="pass --holder PID to release a lease a running process holds",
        )
    env.out(f"released {args.release}")
    return 0
