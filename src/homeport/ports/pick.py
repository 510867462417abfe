"""Pick ports that are free everywhere and stay ours: ``free_port``, ``reserve_port``.

What "free" means here (each point answers a way other pickers lie, see DESIGN.md):

* **Every family, every address.** We bind the wildcards ``0.0.0.0`` and ``::``
  (IPV6_V6ONLY, so each family is tested on its own). A wildcard bind conflicts with a
  listener on any address of its family, so a server on ``::1`` only or on
  ``127.0.0.2`` only makes the port busy — a check on ``127.0.0.1`` would miss both.
* **TCP and UDP.** Both are bound, so a UDP socket on the number also makes it busy.
* **No SO_REUSEADDR on the test sockets.** Linux lets a SO_REUSEADDR bind pass over
  TIME-WAIT remnants and other SO_REUSEADDR sockets; binding without it is stricter than
  any server, so a port that passes can be bound by servers that set it and servers
  that do not (net/ipv4/inet_connection_sock.c, ``inet_csk_bind_conflict``).
* **The inventory as a second opinion.** A snapshot of every listener's port skips
  numbers the kernel already reports busy. It is a pre-filter, not the truth: in this
  network namespace the bind test catches everything the inventory sees (and more:
  TIME-WAIT). Its cost is why it is cached — with 8 parallel pickers on a busy machine,
  a dump every second took 80% of picking time (a dump parsed ~150 listeners in ~60 ms
  under load). The library reuses a snapshot for :data:`SNAPSHOT_TTL` seconds; the
  ``homeport port`` command takes a fresh one (``inventory_max_age=0``).
* **Outside the ephemeral range, away from dev defaults** (see :mod:`policy`).
* **Leased across processes** (see :mod:`lease`): the bind test runs under the lease
  lock, so two pickers never both win the same number.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import logging
import os
import random
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from homeport.errors import NotFound, UsageError
from homeport.ports.lease import MAX_NAME, Holder, Lease, LeaseStore, holder_of
from homeport.ports.policy import PortPolicy, candidates, name_slot

log = logging.getLogger("homeport.ports.pick")

Proto = Literal["tcp", "udp"]

#: Seconds an inventory snapshot is reused by later picks in this process.
SNAPSHOT_TTL = 30.0
#: Seconds the ephemeral range read from /proc is reused.
EPHEMERAL_TTL = 1.0

_WILDCARDS = ((socket.AF_INET, "0.0.0.0"), (socket.AF_INET6, "::"))
_TYPES = (socket.SOCK_STREAM, socket.SOCK_DGRAM)
#: errnos meaning "this address family is not usable here" (IPv6 disabled).
_NO_FAMILY = {errno.EAFNOSUPPORT, errno.EADDRNOTAVAIL, errno.EPROTONOSUPPORT}


def bind_free(port: int) -> bool:
    """True when ``port`` can be bound for TCP and UDP on both wildcards right now."""
    for family, addr in _WILDCARDS:
        for kind in _TYPES:
            try:
                s = socket.socket(family, kind)
            except OSError as exc:
                if exc.errno in _NO_FAMILY:
                    break  # no IPv6 on this host: nothing of that family can hold it
                raise
            try:
                if family == socket.AF_INET6:
                    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                s.bind((addr, port))
            except OSError as exc:
                if exc.errno in _NO_FAMILY:
                    break
                return False  # EADDRINUSE, or EACCES for a port we may not bind
            finally:
                s.close()
    return True


@dataclass
class _Snapshot:
    taken: float = -1e9
    ports: frozenset[int] = field(default_factory=frozenset)


_SNAPSHOT = _Snapshot()


def busy_ports(max_age: float = SNAPSHOT_TTL) -> frozenset[int]:
    """Local ports of every socket the inventory sees, from a snapshot at most
    ``max_age`` old. Empty when the inventory cannot answer (the bind test still runs)."""
    now = time.monotonic()
    if now - _SNAPSHOT.taken > max_age:
        _SNAPSHOT.ports = _inventory_ports()
        _SNAPSHOT.taken = now
    return _SNAPSHOT.ports


def _inventory_ports() -> frozenset[int]:
    try:
        from homeport.inventory import sockets

        # Listening sockets only: a dump filtered by state in the kernel costs < 1 ms,
        # every state ~45 ms here. TIME-WAIT and connected sockets are caught by the
        # strict bind test anyway.
        return frozenset(s.local_port for s in sockets())
    except Exception as exc:  # the inventory is advisory here; binding is the truth
        log.debug("inventory unavailable for port picking: %s", exc)
        return frozenset()


def _ephemeral() -> tuple[int, int]:
    """The ephemeral range, re-read with the inventory snapshot rather than per pick."""
    from homeport.system import ephemeral_range

    now = time.monotonic()
    if _EPHEMERAL.taken is None or now - _EPHEMERAL.taken > EPHEMERAL_TTL:
        _EPHEMERAL.value, _EPHEMERAL.taken = ephemeral_range(), now
    return _EPHEMERAL.value


@dataclass
class _Cached:
    value: tuple[int, int] = (0, 0)
    taken: float | None = None


_EPHEMERAL = _Cached()


@functools.lru_cache(maxsize=64)
def _make_policy(ephemeral: tuple[int, int], port_range: tuple[int, int] | None) -> PortPolicy:
    if port_range is None:
        return PortPolicy(ephemeral=ephemeral)
    return PortPolicy(ephemeral=ephemeral, low=port_range[0], high=port_range[1])


def _policy(port_range: tuple[int, int] | None) -> PortPolicy:
    policy = _make_policy(_ephemeral(), port_range)
    if port_range is None:
        return policy
    if policy.size() == 0:
        raise UsageError(
            f"range {port_range[0]}-{port_range[1]} lies inside the ephemeral range "
            f"{policy.ephemeral[0]}-{policy.ephemeral[1]}",
            hint="pick a range outside /proc/sys/net/ipv4/ip_local_port_range",
        )
    return policy


_SELF: list[Holder] = []
_STORES: dict[object, LeaseStore] = {}


def _store(lease_dir: Path | None) -> LeaseStore:
    """One store per directory; the default one is keyed on the variables that choose
    the state dir, so a test that changes HOMEPORT_STATE_DIR gets its own."""
    env = os.environ
    key = (
        str(lease_dir)
        if lease_dir is not None
        else (env.get("HOMEPORT_STATE_DIR"), env.get("XDG_STATE_HOME"), env.get("HOME"))
    )
    store = _STORES.get(key)
    if store is None:
        store = _STORES[key] = LeaseStore(lease_dir)
    return store


def _holder(pid: int | None) -> Holder:
    me = os.getpid()
    target = me if pid is None else pid
    if target == me and _SELF and _SELF[0].pid == me:
        return _SELF[0]  # our own start time never changes; a fork gets a new PID
    holder = holder_of(target)
    if holder is not None and target == me:
        _SELF[:] = [holder]
    if holder is None:
        raise UsageError(f"no process with PID {target} to hold the lease")
    return holder


def pick_ports(
    count: int = 1,
    *,
    name: str | None = None,
    proto: Proto = "tcp",
    ttl: float | None = None,
    holder_pid: int | None = None,
    port_range: tuple[int, int] | None = None,
    lease_dir: Path | None = None,
    inventory_max_age: float = SNAPSHOT_TTL,
) -> list[Lease]:
    """Lease ``count`` distinct free ports and return the leases.

    ``ttl`` None: the lease lasts while the holder (default: this process) runs.
    ``name``: prefer the port this name got before, else its stable hash slot.
    ``inventory_max_age``: how old a reused inventory snapshot may be (0: fresh).
    """
    if count < 1:
        raise UsageError(f"count must be at least 1, not {count}")
    if name is not None and not 0 < len(name) <= MAX_NAME:
        raise UsageError(f"a port name must have 1-{MAX_NAME} characters")
    policy, store, holder = _policy(port_range), _store(lease_dir), _holder(holder_pid)
    busy = busy_ports(inventory_max_age)
    out: list[Lease] = []
    for i in range(count):
        label = name if (name is None or i == 0) else f"{name}[{i}]"
        lease = _pick_one(policy, store, holder, busy, label, proto, ttl)
        out.append(lease)
        busy = busy | {lease.port}
    return out


def _pick_one(
    policy: PortPolicy,
    store: LeaseStore,
    holder: Holder,
    busy: frozenset[int],
    name: str | None,
    proto: Proto,
    ttl: float | None,
) -> Lease:
    start = None
    if name is not None:
        remembered = store.remembered(name)
        ok = remembered is not None and policy.allowed(remembered)
        start = remembered if ok else name_slot(name, policy)

    def make_lease(port: int) -> Lease:
        now = time.time()
        return Lease(port, proto, holder, now, None if ttl is None else now + ttl, name)

    def same_ask(current: Lease) -> bool:
        """Asking again for a name we hold renews it rather than moving next door."""
        return name is not None and current.name == name and current.holder == holder

    for port in candidates(policy, start=start, rng=_rng()):
        if port in busy:
            continue
        lease = store.try_take(port, make_lease, bind_free, renew=same_ask)
        if lease is not None:
            if name is not None:
                store.remember(name, port)
            return lease
    raise NotFound(
        f"no free port left in {policy.spans()} (outside the ephemeral range)",
        hint="release leases with 'homeport port --release PORT' or widen --range",
    )


_RNG: dict[int, random.Random] = {}


def _rng() -> random.Random:
    """One generator per process, seeded from the OS after a fork too: forked workers
    sharing one sequence would all probe the same numbers and contend on them."""
    me = os.getpid()
    rng = _RNG.get(me)
    if rng is None:
        _RNG.clear()
        rng = _RNG[me] = random.Random()
    return rng


def free_port(
    name: str | None = None,
    *,
    proto: Proto = "tcp",
    ttl: float | None = None,
    port_range: tuple[int, int] | None = None,
    lease_dir: Path | None = None,
) -> int:
    """A port free on every family and address, leased to this process.

    No other homeport picker (in any process) gets it while this process runs, or
    until ``ttl`` seconds pass when given. ``name`` makes the choice stable across runs.
    """
    lease = pick_ports(
        1, name=name, proto=proto, ttl=ttl, port_range=port_range, lease_dir=lease_dir
    )
    return lease[0].port


def release_port(
    port: int, *, holder_pid: int | None = None, lease_dir: Path | None = None
) -> bool:
    """Give a lease back early; True when ``holder_pid`` (default: us) held it."""
    holder = holder_of(os.getpid() if holder_pid is None else holder_pid)
    return holder is not None and LeaseStore(lease_dir).release(port, holder)


@dataclass(frozen=True, slots=True)
class Reservation:
    """A leased port with a socket bound to it (listening, for TCP)."""

    port: int
    host: str
    socket: socket.socket

    def fileno(self) -> int:
        return self.socket.fileno()


@contextlib.contextmanager
def reserve_port(
    host: str = "127.0.0.1",
    *,
    proto: Proto = "tcp",
    name: str | None = None,
    backlog: int = 128,
    lease_dir: Path | None = None,
) -> Iterator[Reservation]:
    """Hold a free port by a bound socket, for the length of the ``with`` block.

    Hand the socket to a server (``pass_fds=[r.fileno()]``, systemd-style, or
    ``asyncio.start_server(sock=r.socket)``): nothing can take the port between the
    pick and the server's first accept. The lease is released on exit.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
    for _ in range(8):  # another program may bind between our test and our bind
        lease = pick_ports(1, name=name, proto=proto, lease_dir=lease_dir)[0]
        sock = socket.socket(family, kind)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host, lease.port))
            if kind == socket.SOCK_STREAM:
                sock.listen(backlog)
        except OSError as exc:
            sock.close()
            LeaseStore(lease_dir).release(lease.port, lease.holder)
            if exc.errno != errno.EADDRINUSE:
                raise UsageError(f"cannot bind {host}: {exc.strerror}") from exc
            continue
        try:
            yield Reservation(lease.port, host, sock)
        finally:
            sock.close()
            LeaseStore(lease_dir).release(lease.port, lease.holder)
        return
    raise NotFound(f"could not bind a free port on {host} after 8 attempts")
