"""Print a TCP port that is free on every family and address, and lease it.

A picked port is
  * free for TCP and UDP on 0.0.0.0 and :: (so a listener on ::1 only, on 127.0.0.2
    only, a TIME-WAIT remnant or a UDP socket on the number all count as busy);
  * >= 1024 and outside this machine's ephemeral range (ip_local_port_range), where
    bind(0) and outgoing connections take their numbers;
  * not a default of a popular dev server (3000, 5173, 5432, 6379, 8000, 8080, 8888 …);
  * leased: no other homeport picker — this command, the Python API, the pytest
    fixtures, in any process — gets it while the holder runs and the lease lasts.

The lease lasts --ttl seconds (default 600): long enough to start the server, after
which the bound socket itself keeps the port busy. It is not tied to the process that
ran homeport, because PORT=$(homeport port) runs it in a subshell that exits at once.
With --holder PID (e.g. --holder $$) it also ends when that process exits, and
--ttl 0 then means "for as long as PID runs".

NAME makes the choice stable: the same name gets the same port on later runs while
that port is free, so bookmarks and .env files keep working.

examples:
  PORT=$(homeport port) npm run dev
  homeport port api                 # same port for "api" every time it is free
  homeport port --count 3           # three distinct ports, one per line
  homeport port --udp --range 20000-29999
  homeport port --list              # leases on file and whether they still bind
  homeport port --holder $$ --ttl 0 # leased until this shell exits
  homeport port --release 21034     # give a lease back early

exit status: 0 printed a port, 1 none free in the range, 2 bad usage.

--json prints {"ports": [LEASE, ...]} (with --list: {"leases": [LEASE, ...]}; with
--release: {"released": PORT, "ok": BOOL}), where LEASE is {"port": INT, "proto":
"tcp"|"udp", "name": STR|null, "holder": {"pid": INT, "start": STR}, "created": EPOCH,
"expires": EPOCH|null, "bound": BOOL} and, with --list, "live": BOOL.
"""

from __future__ import annotations

import argparse
import os
import time

from homeport.cli import render
from homeport.cli.env import Env

HELP = "print a free port (every family, outside the ephemeral range) and lease it"

DEFAULT_TTL = 600.0


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", metavar="NAME", nargs="?", help="stable name: same port next time")
    p.add_argument("--udp", action="store_true", help="lease for UDP (checks are the same)")
    p.add_argument("-n", "--count", type=int, default=1, metavar="N", help="N distinct ports")
    p.add_argument(
        "--ttl",
        type=float,
        default=DEFAULT_TTL,
        metavar="S",
        help=f"lease lifetime in seconds (default {DEFAULT_TTL:g}; 0 = while --holder runs)",
    )
    p.add_argument(
        "--holder",
        type=int,
        metavar="PID",
        help="process that holds the lease (default: the one that ran homeport)",
    )
    p.add_argument("--range", dest="port_range", metavar="LO-HI", help="pick only in LO-HI")
    p.add_argument("--list", action="store_true", help="show the leases on file")
    p.add_argument("--release", type=int, metavar="PORT", help="give the lease on PORT back")
    p.add_argument("--json", action="store_true", help="machine-readable output")


def run(args: argparse.Namespace, env: Env) -> int:
    if args.list:
        return _list(env, args.json)
    if args.release is not None:
        return _release(env, args)
    from homeport.errors import UsageError
    from homeport.ports import pick_ports
    from homeport.ports.policy import parse_range

    try:
        span = parse_range(args.port_range) if args.port_range else None
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    check_lease_args(args)
    leases = pick_ports(
        args.count,
        name=args.name,
        proto="udp" if args.udp else "tcp",
        ttl=args.ttl or None,
        holder_pid=args.holder if args.holder is not None else os.getppid(),
        bound=args.holder is not None,
        port_range=span,
        inventory=True,  # one pick per run: a second opinion is affordable here
    )
    if args.json:
        render.dump_json(env, {"ports": [lease.to_json() for lease in leases]})
    else:
        for lease in leases:
            env.out(str(lease.port))
    return 0


def check_lease_args(args: argparse.Namespace) -> None:
    """--ttl/--holder as ``port`` and ``addr`` share them."""
    from homeport.errors import UsageError

    if args.ttl < 0:
        raise UsageError(f"--ttl must be >= 0 seconds, not {args.ttl:g}")
    if args.ttl == 0 and args.holder is None:
        raise UsageError("--ttl 0 (while the holder runs) needs --holder PID, e.g. --holder $$")


def _list(env: Env, as_json: bool) -> int:
    from homeport.ports.lease import LeaseStore, holder_of, is_live

    now = time.time()
    rows = [
        (lease, is_live(lease, now, holder_of(lease.holder.pid))) for lease in LeaseStore().all()
    ]
    if as_json:
        render.dump_json(env, {"leases": [{**x.to_json(), "live": live} for x, live in rows]})
        return 0
    if not rows:
        env.out("no leases on file")
        return 0
    table_rows = [
        [
            str(x.port),
            x.proto,
            x.name or "-",
            str(x.holder.pid) if x.bound else "-",
            "live" if live else "free",
            _expires(x.expires, now),
        ]
        for x, live in rows
    ]
    styles = [["", "", "", "", "green" if live else "dim", ""] for _, live in rows]
    env.out(
        render.table(
            env, ["PORT", "PROTO", "NAME", "HOLDER", "LEASE", "EXPIRES"], table_rows, styles
        )
    )
    return 0


def _expires(expires: float | None, now: float) -> str:
    if expires is None:
        return "with holder"
    if expires <= now:
        return "expired"
    return f"in {render.duration(expires - now)}"


def _release(env: Env, args: argparse.Namespace) -> int:
    from homeport.addr import check_port
    from homeport.errors import NotFound
    from homeport.ports.lease import LeaseStore, holder_of

    port = check_port(args.release)
    store = LeaseStore()
    # Without --holder: the CLI's own (unbound) leases, which no process owns.
    holder = holder_of(args.holder) if args.holder is not None else None
    ok = (args.holder is None or holder is not None) and store.release(port, holder)
    if args.json:
        render.dump_json(env, {"released": port, "ok": ok})
        return 0 if ok else 1
    if not ok:
        current = store.read(port)
        held = f"held by PID {current.holder.pid}" if current else "not leased"
        who = f"PID {args.holder}" if args.holder is not None else "the command line"
        raise NotFound(
            f"no lease of {who} on port {port} ({held})",
            hint="pass --holder PID to release a lease a running process holds",
        )
    env.out(f"released {port}")
    return 0
