"""What the hosts block should hold: one line per route name and per named address lease.

* a name with a live address lease (``run --own-address``, a TCP route, ``homeport addr
  NAME``) maps to its leased address, so ``psql -h db.localhost`` reaches it directly;
* a route whose target sits on another 127/8 address maps to that address;
* any other route maps to 127.0.0.1, where the gateway listens, so non-browser clients
  that do not special-case ``*.localhost`` still find ``NAME.localhost:62893``.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from urllib.parse import urlsplit

from homeport.hosts.block import Entry, entry

GATEWAY_ADDRESS = "127.0.0.1"


def wanted_entries(routes: list[tuple[str, str]], leases: dict[str, str]) -> list[Entry]:
    """Pure: the block's entries from (route name, target) pairs and ``{address: name}``
    of live address leases."""
    by_name: dict[str, str] = {}
    for name, target in routes:
        by_name[name] = _route_address(target)
    for address, name in leases.items():
        by_name[name if "." in name else f"{name}.localhost"] = address
    out = []
    for name, address in by_name.items():
        try:
            out.append(entry(name, address))
        except ValueError:
            continue  # a name hosts(5) cannot hold: leave it out rather than fail the sync
    return sorted(out)


def _route_address(target: str) -> str:
    host = urlsplit(target).hostname if "://" in target else None
    try:
        ip = ipaddress.ip_address(host or "")
    except ValueError:
        return GATEWAY_ADDRESS
    return str(ip) if ip.version == 4 and ip.is_loopback else GATEWAY_ADDRESS


def gather(db: Path | None = None) -> list[Entry]:
    """The entries for this machine now: routes from the state database (read-only) and
    the live named address leases."""
    from homeport.paths import read_route_targets
    from homeport.ports.address import live_address_names

    return wanted_entries(read_route_targets(db), live_address_names())


def name_lines(host: str, db: Path | None = None) -> tuple[str, ...]:
    """What homeport knows about ``host`` (a name or a 127/8 address): its line in the
    hosts block, its address lease, the route by that name. For ``explain``; never raises."""
    try:
        return _name_lines(host.lower().rstrip("."), db)
    except Exception:  # advisory: a damaged state file must not stop an explanation
        return ()


def _name_lines(host: str, db: Path | None) -> tuple[str, ...]:
    from homeport.hosts.block import block_entries
    from homeport.hosts.write import hosts_path, read_text
    from homeport.paths import read_route_targets
    from homeport.ports.address import live_address_names

    path = hosts_path()
    try:
        block = block_entries(read_text(path))
    except OSError:
        block = []
    leases = live_address_names()
    routes = dict(read_route_targets(db))
    out = []
    for e in block:
        if host in (e.name, e.address):
            out.append(f"homeport's block in {path} maps {e.name} to {e.address}")
    for address, name in leases.items():
        if host in (name, address):
            out.append(f"{address} is leased to {name} (homeport addr --list)")
    wanted = {e.name: e.address for e in wanted_entries(list(routes.items()), leases)}
    if host in wanted and all(e.name != host for e in block):
        out.append(
            f"{host} is a homeport name ({wanted[host]}) but not in {path}: clients that ask"
            " the system resolver cannot find it; run `sudo homeport hosts sync`"
        )
    if host in routes:
        out.append(f"route {host} -> {routes[host]}")
    return tuple(out)
