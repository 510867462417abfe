"""Leases of loopback addresses: every service on its own 127.0.x.y, keeping its default port.

The same lease machinery as ports (:mod:`homeport.ports.lease`): one record per address
in ``<state dir>/leases/addrs-127.0.leases`` (keyed by the low 16 bits, see
:mod:`addrpool`), a byte-range lock per record, holder = PID + start time, names
remembered in ``addr-<hash>.json``. An address is leased to one holder at a time, whole:
two services never share one, whatever ports they use.

An address is free for port P when nothing holds a live lease on it and a TCP (or UDP)
bind of ``ADDR:P`` succeeds, which fails just as well when ``0.0.0.0:P`` or a dual-stack
``[::]:P`` listens on the port (``inet_csk_bind_conflict`` treats a wildcard as covering
every address); see :func:`bind_free_on` for why with SO_REUSEADDR. Without a port,
free means no listening socket has that local address (one netlink dump).

Public API::

    lease_address(name, *, port=None) -> IPv4Address      # for the project supervisor
    pick_address(name=None, *, port=None, ttl=None, holder_pid=None, bound=True) -> Lease
    release_address(address, *, holder_pid=None) -> bool
    address_leases() -> list[Lease]
"""

from __future__ import annotations

import _socket
import functools
import os
import random
import socket
import time
from collections.abc import Callable
from ipaddress import IPv4Address
from pathlib import Path

from homeport.errors import NotFound, UsageError
from homeport.paths import ADDRESS_LEASES
from homeport.ports.addrpool import (
    DEFAULT_POOL,
    AddressPool,
    address_at,
    candidates,
    name_start,
    named_in_hosts,
    parse_pool,
    slot,
)
from homeport.ports.lease import (
    MAX_NAME,
    Holder,
    Lease,
    LeaseStore,
    default_lease_dir,
    holder_of,
    is_live,
)

#: Where the pool comes from: ``A-B`` or a CIDR block inside one /16 of 127/8.
POOL_ENV = "HOMEPORT_ADDRESS_POOL"


def address_pool(hosts_text: str | None = None) -> AddressPool:
    """The configured pool, minus the 127/8 addresses the hosts file names outside
    homeport's own block. Raises UsageError for a bad ``HOMEPORT_ADDRESS_POOL``."""
    from homeport.hosts.block import BEGIN, END
    from homeport.hosts.write import hosts_path

    if hosts_text is None:
        try:
            hosts_text = hosts_path().read_text(errors="replace")
        except OSError:
            hosts_text = ""
    try:
        return parse_pool(
            os.environ.get(POOL_ENV) or DEFAULT_POOL, named_in_hosts(hosts_text, BEGIN, END)
        )
    except ValueError as exc:
        raise UsageError(f"{POOL_ENV}: {exc}") from None


def address_store(pool: AddressPool, lease_dir: Path | None = None) -> LeaseStore:
    prefix, suffix = ADDRESS_LEASES
    return LeaseStore(lease_dir, filename=f"{prefix}{pool.prefix16()}{suffix}", name_prefix="addr")


def bind_free_on(addr: str, port: int, proto: str = "tcp") -> bool:
    """True when ``addr:port`` can be bound right now by a server that sets SO_REUSEADDR
    (http.server, uvicorn, redis, postgres and the gateway's own TCP listeners all do).

    A listening socket on ``addr:port``, or on the wildcard ``0.0.0.0:port`` or a
    dual-stack ``[::]:port``, still fails the bind (Linux ``inet_csk_bind_conflict``: a
    LISTEN socket always conflicts). TIME-WAIT remnants of the address's last
    connections do not: without SO_REUSEADDR here, a name whose service was just stopped
    would lose its address for a minute (TCP_TIMEWAIT_LEN, 60 s), seen with ``psql``
    through a TCP route that was removed and added again."""
    kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
    s = _socket.socket(socket.AF_INET, kind)
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((addr, port))
    except OSError:
        return False
    finally:
        s.close()
    return True


def nothing_listens_on(addr: str) -> bool:
    """No listening socket has ``addr`` as its local address (any port, TCP or UDP)."""
    from homeport.inventory import sockets

    return not any(s.local_addr in (addr, f"::ffff:{addr}") for s in sockets())


def _check(port: int | None, proto: str) -> Callable[[IPv4Address], bool]:
    if port:
        return lambda addr: bind_free_on(str(addr), port, proto)
    return lambda addr: nothing_listens_on(str(addr))


def pick_address(
    name: str | None = None,
    *,
    port: int | None = None,
    proto: str = "tcp",
    ttl: float | None = None,
    holder_pid: int | None = None,
    bound: bool = True,
    lease_dir: Path | None = None,
    pool: AddressPool | None = None,
) -> Lease:
    """Lease a free loopback address (``lease.address``) for ``port`` and return the lease.

    ``name``: the address this name had before while it is free, else its stable slot.
    ``ttl`` None: the lease lasts while the holder (default: this process) runs.
    ``bound`` False: only the ttl ends the lease (for the CLI, like ``homeport port``).
    """
    if name is not None and not 0 < len(name) <= MAX_NAME:
        raise UsageError(f"an address name must have 1-{MAX_NAME} characters")
    if port is not None and not 0 < port < 65536:
        raise UsageError(f"port {port} is out of range; use 1-65535")
    if not bound and ttl is None:
        raise UsageError("a lease not bound to its holder needs a ttl")
    pool = pool or address_pool()
    store, holder = address_store(pool, lease_dir), _holder(holder_pid)
    check = _check(port, proto)

    def check_slot(slot_: int) -> bool:
        return check(address_at(pool, slot_))

    start = _start(store, pool, name)

    def make(slot_: int) -> Lease:
        now = time.time()
        expires = None if ttl is None else now + ttl
        addr = str(address_at(pool, slot_))
        return Lease(port or 0, proto, holder, now, expires, name, bound, addr)

    def same_ask(current: Lease) -> bool:
        mine = current.holder == holder or not current.bound
        return name is not None and current.name == name and mine

    for addr in candidates(pool, start=start, rng=_rng()):
        lease = store.try_take(slot(addr), make, check_slot, renew=same_ask)
        if lease is not None:
            if name is not None:
                store.remember(name, slot(addr))
            return lease
    raise NotFound(
        f"no free loopback address left in {pool.describe()}"
        + (f" for port {port}" if port else ""),
        hint=f"release leases with 'homeport addr --release ADDR' or widen {POOL_ENV}",
    )


def _start(store: LeaseStore, pool: AddressPool, name: str | None) -> IPv4Address | None:
    if name is None:
        return None
    remembered = store.remembered(name)
    if remembered is not None:
        addr = address_at(pool, remembered)
        if pool.allowed(addr):
            return addr
    return name_start(name, pool)


def lease_address(
    name: str, *, port: int | None = None, holder_pid: int | None = None
) -> IPv4Address:
    """The address for ``name`` (the same one while it is free), leased to ``holder_pid``
    (default: this process) for as long as that process runs. What ``run --own-address``
    and a project's ``address = "auto"`` call."""
    lease = pick_address(name, port=port, holder_pid=holder_pid)
    assert lease.address is not None
    return IPv4Address(lease.address)


def release_address(
    address: str, *, holder_pid: int | None = None, lease_dir: Path | None = None
) -> bool:
    """Give an address back early; ``holder_pid`` None releases an unbound (CLI) lease."""
    pool = address_pool()
    addr = _parse(address)
    holder = None if holder_pid is None else holder_of(holder_pid)
    if holder_pid is not None and holder is None:
        return False
    return address_store(pool, lease_dir).release(slot(addr), holder)


def address_leases(lease_dir: Path | None = None) -> list[Lease]:
    """Every address lease on file, live or not."""
    return address_store(address_pool(), lease_dir).all()


def live_address_names(lease_dir: Path | None = None) -> dict[str, str]:
    """``{address: name}`` of the live, named address leases (for ls and the hosts block),
    from every address lease file: a pool moved since keeps its leases visible."""
    directory = lease_dir if lease_dir is not None else default_lease_dir()
    now = time.time()
    out = {}
    leases = [
        lease
        for path in sorted(directory.glob("*".join(ADDRESS_LEASES)))
        for lease in LeaseStore(directory, filename=path.name, name_prefix="addr").all()
    ]
    for lease in leases:
        if lease.address and lease.name and is_live(lease, now, holder_of(lease.holder.pid)):
            out[lease.address] = lease.name
    return out


def _parse(address: str) -> IPv4Address:
    try:
        return IPv4Address(address)
    except ValueError:
        raise UsageError(f"not an IPv4 address: {address!r}") from None


def _holder(pid: int | None) -> Holder:
    target = os.getpid() if pid is None else pid
    holder = holder_of(target)
    if holder is None:
        raise UsageError(f"no process with PID {target} to hold the lease")
    return holder


@functools.cache
def _rng_for(pid: int) -> random.Random:
    return random.Random()  # seeded from the OS: forked pickers must not share a sequence


def _rng() -> random.Random:
    return _rng_for(os.getpid())
