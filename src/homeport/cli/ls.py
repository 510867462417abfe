"""List every listening socket on this machine, with its owners and its exposure.

Sorted by port. EXPOSURE says who can reach it before any firewall: loopback (this machine
only), all-interfaces (0.0.0.0 or ::, reachable from every network you join), lan (a private,
link-local, CGNAT/tailnet or ULA address), public. ROUTE (shown when the gateway has routes)
is the NAME.localhost that points at the listener.

examples:
  homeport ls                      every TCP and UDP listener
  homeport ls --exposed            only what is reachable beyond loopback
  homeport ls --port 5432 --json   one port, machine-readable
  homeport ls --all --tcp          every TCP socket, established ones too
  homeport ls --watch              refresh every 2 s until Ctrl-C

--json prints {"listeners": [LISTENER, ...], "attention": [{"level", "message", "port"}]}
where LISTENER is {proto, family, address, port, state, remote_address, remote_port,
exposure, v6only, uid, inode, pids, owners: [{pid, name, cmdline, uid, user, cwd,
start_time, ppid, parents}], owner_status (known | permission-denied | gone | none),
owner_hint, route, notes}.
"""

from __future__ import annotations

import argparse
import os
import time

from homeport.cli import render
from homeport.cli.env import Env

TYPE_CHECKING = False  # not typing's: importing typing costs ~2 ms of every command
if TYPE_CHECKING:
    from typing import Any

    from homeport.model import Listener

HELP = "list listening sockets with owners and exposure"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--port", type=int, metavar="P", help="only this port")
    p.add_argument("--pid", type=int, metavar="PID", help="only sockets this process holds")
    p.add_argument("--user", metavar="NAME", help="only sockets of processes run by this user")
    p.add_argument("--exposed", action="store_true", help="only what is reachable beyond loopback")
    p.add_argument("--tcp", action="store_true", help="TCP only")
    p.add_argument("--udp", action="store_true", help="UDP only")
    p.add_argument("-a", "--all", action="store_true", help="every state, not only listening")
    p.add_argument(
        "-w",
        "--watch",
        nargs="?",
        const=2.0,
        type=float,
        metavar="SECONDS",
        help="refresh until Ctrl-C (default every 2 s)",
    )
    p.add_argument("--summary", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--json", action="store_true", help="machine-readable output")


def collect(args: argparse.Namespace) -> list[Listener]:
    from homeport.addr import check_port
    from homeport.inventory import listeners

    port = check_port(args.port) if args.port is not None else None
    tcp, udp = (args.tcp or not args.udp), (args.udp or not args.tcp)
    items = listeners(tcp=tcp, udp=udp, all_states=args.all, port=port)
    if args.pid is not None:
        items = [x for x in items if args.pid in x.pids]
    if args.user:
        items = [x for x in items if any(p.user == args.user for p in x.owners)]
    if args.exposed:
        items = [x for x in items if x.exposure != "loopback"]
    return with_routes(items)


def with_routes(items: list[Listener]) -> list[Listener]:
    """Fill in the gateway route that points at each listener (from the state database,
    read-only; nothing is started)."""
    from homeport._record import replace
    from homeport.paths import read_route_targets, state_dir

    if not state_dir(create=False).exists() or not items:
        return items
    from homeport.addr import parse_target
    from homeport.errors import UsageError

    by_port: dict[int, str] = {}
    by_addr: dict[tuple[str, int], str] = {}  # own-address services and TCP routes
    for name, target in read_route_targets():
        try:
            t = parse_target(target)
        except UsageError:
            continue  # unix:/path targets have no port
        if t.host in ("127.0.0.1", "::1", "localhost"):
            by_port.setdefault(t.port, name)
        elif t.host is not None and t.host.startswith("127."):
            by_addr[(t.host, t.port)] = name
    leased = _leased_names(items)
    return [
        replace(x, route=_route_of(x, by_port, by_addr, leased))
        if x.socket.listening and x.exposure != "lan"
        else x
        for x in items
    ]


def _route_of(
    x: Listener, by_port: dict[int, str], by_addr: dict[tuple[str, int], str],
    leased: dict[str, str],
) -> str | None:  # fmt: skip
    addr = x.address.removeprefix("::ffff:")
    if (addr, x.port) in by_addr:
        return by_addr[(addr, x.port)]
    if addr in leased:  # a listener on a leased address (the gateway's TCP routes too)
        return leased[addr]
    if addr.startswith("127.") and addr != "127.0.0.1":
        return x.route  # another 127/8 address: a 127.0.0.1 route on its port is not its
    return by_port.get(x.port, x.route)


def _leased_names(items: list[Listener]) -> dict[str, str]:
    """{address: name} of live address leases, read only when some listener sits on a
    127/8 address other than 127.0.0.1 (the lease code stays out of a plain ``ls``)."""
    if not any(
        x.address.removeprefix("::ffff:").startswith("127.")
        and x.address.removeprefix("::ffff:") != "127.0.0.1"
        for x in items
    ):
        return {}
    from homeport.paths import has_address_leases

    if not has_address_leases():  # 127.0.0.2+ listeners of other tools: nothing to name
        return {}
    from homeport.ports.address import live_address_names

    try:
        return live_address_names()
    except (OSError, ValueError):
        return {}


def listing_json(items: list[Listener]) -> list[dict[str, Any]]:
    owners: dict[int, dict[str, Any]] = {}  # each process's record built once, shared
    return [x.to_json(owners) for x in items]


def attention(items: list[Listener]) -> list[dict[str, object]]:
    """What deserves a look: exposure beyond loopback, owners we could not see."""
    out: list[dict[str, object]] = []
    for x in items:
        if x.socket.listening and x.exposure != "loopback":
            who = x.owners[0].name if x.owners else "an unknown process"
            where = (
                "every interface" if x.exposure == "all-interfaces" else f"a {x.exposure} address"
            )
            out.append(
                {
                    "level": "warn",
                    "port": x.port,
                    "message": f"{x.proto}/{x.port} ({who}) listens on {where} "
                    f"({render.host_port(x.address, x.port)}): reachable from "
                    "other machines unless a firewall stops it; "
                    f"check with 'homeport audit --port {x.port}'",
                }
            )
    hidden = [x for x in items if x.owner_status == "permission-denied"]
    if hidden and os.geteuid() != 0:  # root was refused by ptrace: the row says why
        out.append(
            {
                "level": "info",
                "port": None,
                "message": f"{len(hidden)} socket(s) belong to other users' processes: "
                "run as root to see their owners",
            }
        )
    return out


def run(args: argparse.Namespace, env: Env) -> int:
    if args.watch is not None:
        return _watch(args, env)
    items = collect(args)
    if args.json:
        render.dump_json(env, {"listeners": listing_json(items), "attention": attention(items)})
        return 0
    _print(env, items, args)
    if args.port is not None and not items:
        return 1
    return 0


def _print(env: Env, items: list[Listener], args: argparse.Namespace) -> None:
    if not items:
        env.out("nothing listens" + (f" on port {args.port}" if args.port else "") + ".")
        return
    env.out(table(env, items, show_state=args.all))
    if not (args.summary or args.exposed):
        return
    notes = attention(items)
    env.out("")
    if args.summary and not notes:
        env.out(
            render.paint(env, "nothing needs attention: every listener is on loopback.", "green")
        )
    for n in notes:
        style = "yellow" if n["level"] == "warn" else "dim"
        env.out(render.paint(env, f"! {n['message']}", style))


def table(env: Env, items: list[Listener], show_state: bool = False) -> str:
    now = time.time()
    headers = ["PROTO", "ADDRESS", "PORT", "EXPOSURE", "PID", "PROCESS", "USER", "UP", "COMMAND"]
    routed = any(x.route for x in items)
    if routed:
        headers[4:4] = ["ROUTE"]
    if show_state:
        headers[4:4] = ["STATE", "REMOTE"]
    rows: list[list[str]] = []
    styles: list[list[str]] = []
    # A server's many listeners share their owners: their five cells are built once.
    owned: dict[tuple[int, ...], list[str]] = {}
    for x in items:
        owner = x.owners[0] if x.owners else None
        cells: list[str] | None = None
        if owner is None:
            cells = ["-", _unknown(x), "-", "-", x.owner_hint or ""]
        elif (cells := owned.get(pids := x.pids)) is None:
            starts = [p.start_time for p in x.owners if p.start_time]
            cells = owned[pids] = [
                ",".join(map(str, pids)),
                owner.name,
                owner.user or "-",
                render.age(min(starts), now) if starts else "-",
                owner.command,
            ]
        row = [
            x.proto,
            f"[{x.address}]" if ":" in x.address else x.address,
            str(x.port),
            x.exposure,
            *cells,
        ]
        if routed:
            row[4:4] = [f"{x.route}" if x.route else "-"]
        if show_state:
            remote = (
                ""
                if x.socket.listening
                else render.host_port(x.socket.remote_addr, x.socket.remote_port)
            )
            row[4:4] = [x.socket.state, remote]
        rows.append(row)
        exp_style = {
            "loopback": "green",
            "all-interfaces": "yellow",
            "lan": "yellow",
            "public": "red",
        }[x.exposure]
        style = [""] * len(row)
        style[3] = exp_style
        if not owner:
            style[-1] = "dim"
        styles.append(style)
    return render.table(env, headers, rows, styles, shrink=len(headers) - 1)


def _unknown(x: Listener) -> str:
    return {"permission-denied": "?(denied)", "gone": "?(exited)"}.get(x.owner_status, "?")


def _watch(args: argparse.Namespace, env: Env) -> int:
    interval = max(0.2, float(args.watch))
    try:
        while True:
            items = collect(args)
            if args.json:
                render.dump_json(env, {"time": time.time(), "listeners": listing_json(items)})
            else:
                if env.stdout_isatty:
                    env.stdout.write("\x1b[H\x1b[2J")
                env.out(
                    render.paint(
                        env,
                        time.strftime("%H:%M:%S") + f"  {len(items)} sockets  (Ctrl-C to stop)",
                        "dim",
                    )
                )
                _print(env, items, args)
            env.stdout.flush()
            time.sleep(interval)
    except KeyboardInterrupt:
        return 0
