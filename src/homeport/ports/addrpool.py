"""Pure rules for which loopback addresses homeport may lease, and in what order.

No I/O here: the pool text and the hosts file text are passed in.

Linux routes all of 127.0.0.0/8 to ``lo`` with no configuration (the kernel adds
``127.0.0.0/8 dev lo`` as a local route, ip-route(8) ``table local``), so 127.0.0.2,
127.0.0.3 … accept binds and connections like 127.0.0.1 does.

The default pool is **127.0.2.1 – 127.0.255.254**:

* not 127.0.0.0/24: 127.0.0.1 is *the* loopback address every tool means by default,
  and hand-written setups put their extra names right next to it (127.0.0.2 …);
* not 127.0.1.0/24: Debian and Ubuntu write ``127.0.1.1 HOSTNAME`` into /etc/hosts
  (the installer's netcfg), so that range is the machine's own name;
* no ``x.y.z.0`` or ``x.y.z.255``: valid on ``lo`` (its broadcast is 127.255.255.255),
  but tools and people read them as network and broadcast addresses;
* any 127/8 address named in /etc/hosts outside homeport's own block is skipped too;
* one /16 only: a lease record is keyed by the address's low 16 bits, so a pool in one
  /16 gives every address its own record (``HOMEPORT_ADDRESS_POOL`` may move it, e.g.
  ``127.42.0.0/16`` or ``127.0.9.1-127.0.9.200``).

IPv6 has no such block: ``lo`` carries ``::1`` alone (``::1/128``), so an own address
is always IPv4. A ULA on a dummy interface would need root and a network change; homeport
does not make one.
"""

from __future__ import annotations

import hashlib
import ipaddress
import math
import random
from collections.abc import Iterator
from dataclasses import dataclass
from ipaddress import IPv4Address

DEFAULT_POOL = "127.0.2.1-127.0.255.254"
#: Never handed out whatever the pool says: the loopback default and Debian's hostname.
RESERVED: frozenset[IPv4Address] = frozenset({IPv4Address("127.0.0.1"), IPv4Address("127.0.1.1")})
LOOPBACK = ipaddress.IPv4Network("127.0.0.0/8")
IPV6_NOTE = (
    "IPv6 has only ::1 on lo: an own address is IPv4 (127/8); clients reach it by the"
    " name in the hosts block"
)


@dataclass(frozen=True, slots=True)
class AddressPool:
    """Addresses ``first`` .. ``last`` (inclusive), minus ``avoid``."""

    first: IPv4Address
    last: IPv4Address
    avoid: frozenset[IPv4Address] = RESERVED

    def allowed(self, addr: IPv4Address) -> bool:
        last_octet = int(addr) & 0xFF
        return (
            self.first <= addr <= self.last
            and addr not in self.avoid
            and last_octet not in (0, 255)
        )

    def size(self) -> int:
        return int(self.last) - int(self.first) + 1

    def prefix16(self) -> str:
        """``127.0``: the /16 the pool lies in (names its lease file)."""
        a, b, _, _ = str(self.first).split(".")
        return f"{a}.{b}"

    def describe(self) -> str:
        return f"{self.first}-{self.last}"


def parse_pool(text: str, avoid: frozenset[IPv4Address] = frozenset()) -> AddressPool:
    """``A-B`` or a CIDR block, inside 127/8 and one /16; ValueError when not."""
    t = text.strip()
    try:
        if "/" in t:
            net = ipaddress.IPv4Network(t, strict=False)
            first, last = net.network_address, net.broadcast_address
        else:
            a, sep, b = t.partition("-")
            first = IPv4Address(a.strip())
            last = IPv4Address(b.strip()) if sep else first
    except ValueError:
        raise ValueError(
            f"bad address pool {text!r}; use A-B or a CIDR block, e.g. {DEFAULT_POOL}"
        ) from None
    if first > last or first not in LOOPBACK or last not in LOOPBACK:
        raise ValueError(f"bad address pool {text!r}; it must lie in 127.0.0.0/8, low to high")
    if int(first) >> 16 != int(last) >> 16:
        raise ValueError(f"bad address pool {text!r}; it must lie in one /16 (e.g. 127.0.x.y)")
    return AddressPool(first, last, RESERVED | avoid)


def slot(addr: IPv4Address) -> int:
    """The lease record of ``addr``: its low 16 bits (0 is x.y.0.0, never in a pool)."""
    return int(addr) & 0xFFFF


def address_at(pool: AddressPool, slot_: int) -> IPv4Address:
    return IPv4Address((int(pool.first) & ~0xFFFF) | slot_)


def name_start(name: str, pool: AddressPool) -> IPv4Address:
    """A stable address for ``name``: the same on every run with the same pool."""
    digest = hashlib.blake2b(name.encode(), digest_size=8).digest()
    return IPv4Address(int(pool.first) + int.from_bytes(digest, "big") % pool.size())


def candidates(
    pool: AddressPool, *, start: IPv4Address | None = None, rng: random.Random | None = None
) -> Iterator[IPv4Address]:
    """Every allowed address once, in probing order: linear from ``start`` (a named
    lease lands next door when its address is taken), else from a random point with a
    stride coprime with the pool size (parallel pickers spread out)."""
    size = pool.size()
    if start is not None and pool.first <= start <= pool.last:
        first, step = int(start) - int(pool.first), 1
    else:
        first, step = int((rng or random).random() * size), _stride(size)
    base = int(pool.first)
    for i in range(size):
        addr = IPv4Address(base + (first + i * step) % size)
        if pool.allowed(addr):
            yield addr


def _stride(size: int) -> int:
    step = max(1, int(size * 0.6180339887))
    while math.gcd(step, size) != 1:
        step += 1
    return step


def named_in_hosts(text: str, begin: str, end: str) -> frozenset[IPv4Address]:
    """127/8 addresses a hosts file names outside homeport's block (``begin``..``end``
    marker lines): someone else's names, which a lease must not shadow."""
    out: set[IPv4Address] = set()
    inside = False
    for line in text.splitlines():
        stripped = line.strip()
        if stripped == begin:
            inside = True
            continue
        if stripped == end:
            inside = False
            continue
        fields = stripped.split("#", 1)[0].split()
        if inside or len(fields) < 2:
            continue
        try:
            addr = IPv4Address(fields[0])
        except ValueError:
            continue
        if addr in LOOPBACK:
            out.add(addr)
    return frozenset(out)
