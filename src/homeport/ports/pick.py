"""Pick ports that are free everywhere and stay ours: ``free_port``, ``reserve_port``.

What "free" means here (each point answers a way other pickers lie, see DESIGN.md):

* **Every family, every address.** We bind the dual-stack wildcard ``::`` (IPV6_V6ONLY
  off, which also reserves 0.0.0.0; plain 0.0.0.0 where IPv6 is off). A wildcard bind
  conflicts with a listener on any address, so a server on ``::1`` only or on
  ``127.0.0.2`` only makes the port busy — a check on ``127.0.0.1`` would miss both.
  One dual-stack socket instead of one per family halves the binds (measured: the bind
  tests were most of a pick's cost).
* **TCP and UDP.** Both are bound, so a UDP socket on the number also makes it busy.
* **No SO_REUSEADDR on the test sockets.** Linux lets a SO_REUSEADDR bind pass over
  TIME-WAIT remnants and other SO_REUSEADDR sockets; binding without it is stricter than
  any server, so a port that passes can be bound by servers that set it and servers
  that do not (net/ipv4/inet_connection_sock.c, ``inet_csk_bind_conflict``).
* **The inventory as a second opinion, where it is affordable.** With ``inventory=True``
  (what ``homeport port`` uses) the chosen number is also looked up in the socket
  inventory — a netlink dump filtered to that one port in the kernel — and skipped if
  anything is there. In this network namespace the bind test already catches all the
  inventory sees (and more: TIME-WAIT), so the library leaves it off by default: on
  this machine, with ~3,600 listeners from other benchmarks, one full inventory
  snapshot took 440 ms, and per-second snapshots took 80% of 8 parallel pickers' time.
* **Outside the ephemeral range, away from dev defaults** (see :mod:`policy`).
* **Leased across processes** (see :mod:`lease`): the bind test runs under the lease
  lock, so two pickers never both win the same number.
"""

from __future__ import annotations

import _socket
import contextlib
import errno
import functools
import logging
import os
import random
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from homeport.errors import NotFound, UsageError
from homeport.ports.lease import MAX_NAME, Holder, Lease, LeaseStore, holder_of
from homeport.ports.policy import PortPolicy, candidates, name_slot

log = logging.getLogger("homeport.ports.pick")

Proto = Literal["tcp", "udp"]

#: Seconds the ephemeral range read from /proc is reused.
EPHEMERAL_TTL = 1.0

_TYPES = (socket.SOCK_STREAM, socket.SOCK_DGRAM)
#: errnos meaning "this address family is not usable here" (IPv6 disabled).
_NO_FAMILY = {errno.EAFNOSUPPORT, errno.EADDRNOTAVAIL, errno.EPROTONOSUPPORT}


def bind_free(port: int) -> bool:
    """True when ``port`` can be bound for TCP and UDP on every address right now.

    One dual-stack ``::`` socket per protocol (IPV6_V6ONLY off) conflicts with IPv6 and
    IPv4 sockets alike, so two binds cover both families; without IPv6, 0.0.0.0.
    """
    for kind in _TYPES:
        verdict = _bind_once(socket.AF_INET6, "::", port, kind)
        if verdict is None:  # no IPv6 on this host: the IPv4 wildcard covers all there is
            verdict = _bind_once(socket.AF_INET, "0.0.0.0", port, kind)
        if verdict is False:
            return False
    return True


def _bind_once(family: int, addr: str, port: int, kind: int) -> bool | None:
    """True bound, False busy (EADDRINUSE, or EACCES for a port we may not bind),
    None when the family is unusable here."""
    try:
        # The C socket type: the Python wrapper's __init__ costs ~10% of a pick here.
        s = _socket.socket(family, kind)
    except OSError as exc:
        if exc.errno in _NO_FAMILY:
            return None
        raise
    try:
        if family == socket.AF_INET6 and not _dual_stack_default():
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        s.bind((addr, port))
    except OSError as exc:
        return None if exc.errno in _NO_FAMILY else False
    finally:
        s.close()
    return True


@functools.cache
def _dual_stack_default() -> bool:
    """Whether new IPv6 sockets are dual-stack already (net.ipv6.bindv6only = 0, the
    Linux default, ipv6(7)): then the setsockopt is a syscall per bind for nothing."""
    try:
        with open("/proc/sys/net/ipv6/bindv6only") as f:
            return f.read().strip() == "0"
    except OSError:
        return False  # unknown (not Linux): set it explicitly


def inventory_holds(port: int) -> bool:
    """Whether the inventory reports any listening socket on ``port`` (one
    port-filtered dump). False when the inventory cannot answer: binding is the truth."""
    try:
        from homeport.inventory import sockets

        return bool(sockets(port=port))
    except Exception as exc:  # advisory only; the bind test already passed
        log.debug("inventory unavailable for port picking: %s", exc)
        return False


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


def _with_inventory(port: int) -> bool:
    return bind_free(port) and not inventory_holds(port)


def pick_ports(
    count: int = 1,
    *,
    name: str | None = None,
    proto: Proto = "tcp",
    ttl: float | None = None,
    holder_pid: int | None = None,
    port_range: tuple[int, int] | None = None,
    lease_dir: Path | None = None,
    inventory: bool = False,
    bound: bool = True,
) -> list[Lease]:
    """Lease ``count`` distinct free ports and return the leases.

    ``ttl`` None: the lease lasts while the holder (default: this process) runs.
    ``name``: prefer the port this name got before, else its stable hash slot.
    ``inventory``: also ask the socket inventory about each chosen number (slower).
    ``bound`` False: only the ttl ends the lease, not the holder's exit (for the CLI).
    """
    if count < 1:
        raise UsageError(f"count must be at least 1, not {count}")
    if name is not None and not 0 < len(name) <= MAX_NAME:
        raise UsageError(f"a port name must have 1-{MAX_NAME} characters")
    if not bound and ttl is None:
        raise UsageError("a lease not bound to its holder needs a ttl")
    policy, store, holder = _policy(port_range), _store(lease_dir), _holder(holder_pid)
    check = _with_inventory if inventory else bind_free
    taken: set[int] = set()
    out: list[Lease] = []
    for i in range(count):
        label = name if (name is None or i == 0) else f"{name}[{i}]"
        lease = _pick_one(policy, store, holder, check, taken, label, proto, ttl, bound)
        out.append(lease)
        taken.add(lease.port)  # leased to us already; skip it for the rest of the batch
    return out


def _pick_one(
    policy: PortPolicy,
    store: LeaseStore,
    holder: Holder,
    check: Callable[[int], bool],
    taken: set[int],
    name: str | None,
    proto: Proto,
    ttl: float | None,
    bound: bool,
) -> Lease:
    start = None
    if name is not None:
        remembered = store.remembered(name)
        ok = remembered is not None and policy.allowed(remembered)
        start = remembered if ok else name_slot(name, policy)

    def make_lease(port: int) -> Lease:
        now = time.time()
        expires = None if ttl is None else now + ttl
        return Lease(port, proto, holder, now, expires, name, bound)

    def same_ask(current: Lease) -> bool:
        """Asking again for a name we hold renews it rather than moving next door."""
        mine = current.holder == holder or not current.bound
        return name is not None and current.name == name and mine

    for port in candidates(policy, start=start, rng=_rng()):
        if port in taken:
            continue
        lease = store.try_take(port, make_lease, check, renew=same_ask)
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
