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
