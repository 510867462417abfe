"""The inventory facade: picks the backend once, joins sockets with owners and verdicts."""

from __future__ import annotations

import contextlib
import functools
import os
import socket
import sys

from homeport._record import record, replace
from homeport.addr import Target, exposure, ip, parse_target, unmap
from homeport.errors import NotFound, UsageError
from homeport.inventory import fdwalk, procfs
from homeport.model import Listener, Process, Socket

TYPE_CHECKING = False  # not typing's: importing typing costs ~2 ms of every command
if TYPE_CHECKING:
    from typing import Any, Literal

    from homeport.model import OwnerStatus, Proto

    Backend = Literal["netlink", "procfs", "psutil"]


@functools.cache
def backend() -> Backend:
    """Linux: netlink sock_diag when the kernel offers it, else /proc; elsewhere psutil."""
    forced = os.environ.get("HOMEPORT_INVENTORY_BACKEND")
    if forced in ("netlink", "procfs", "psutil"):
        return forced  # type: ignore[return-value]
    if sys.platform.startswith("linux"):
        from homeport.inventory import netlink

        return "netlink" if netlink.available() else "procfs"
    return "psutil"


def _protos(tcp: bool, udp: bool) -> tuple[Proto, ...]:
    out: list[Proto] = []
    if tcp:
        out.append("tcp")
    if udp:
        out.append("udp")
    return tuple(out)


def _collect(
    protos: tuple[Proto, ...], listening_only: bool, port: int | None, side: str = "src"
) -> tuple[list[Socket], dict[int, list[int]] | None]:
    """Sockets from the backend; the holder map too when the backend knows it (psutil)."""
    kind = backend()
    if kind == "psutil":
        from homeport.inventory import portable

        return portable.collect(protos, listening_only, port)
    if kind == "netlink":
        from homeport.inventory import netlink

        flt = netlink.PortFilter(port, side) if port is not None else None
        try:
            found: list[Socket] = []
            for proto in protos:  # one proto at a time so a missing udp_diag only costs UDP
                found.extend(_netlink_or_proc(proto, listening_only, flt))
            return found, None
        except OSError as exc:
            # logging is imported here, not at the top: it costs ~10 ms of every `ls`.
            import logging

            logging.getLogger("homeport.inventory").debug(
                "netlink failed (%s); reading /proc/net instead", exc
            )
    socks = procfs.read_proc_net(protos, listening_only)
    if port is not None:
        socks = [s for s in socks if _port_matches(s, port, side)]
    return socks, None


def _port_matches(s: Socket, port: int, side: str) -> bool:
    if side == "any":
        return port in (s.local_port, s.remote_port)
    return (s.local_port if side == "src" else s.remote_port) == port


def _netlink_or_proc(proto: Proto, listening_only: bool, flt: Any) -> list[Socket]:
    from homeport.inventory import netlink

    try:
        return netlink.dump((proto,), listening_only, flt)
    except netlink.NetlinkError:
        # e.g. ENOENT when udp_diag is not loaded: /proc/net/udp still knows.
        socks = procfs.read_proc_net((proto,), listening_only)
        if flt is None:
            return socks
        return [s for s in socks if _port_matches(s, flt.port, flt.side)]


def sockets(
    *, tcp: bool = True, udp: bool = True, all_states: bool = False, port: int | None = None
) -> list[Socket]:
    """Every matching socket on this machine, IPv4 and IPv6, without owners."""
    return _collect(_protos(tcp, udp), not all_states, port)[0]


def listeners(
    *,
    tcp: bool = True,
    udp: bool = True,
    all_states: bool = False,
    port: int | None = None,
    owners: bool = True,
) -> list[Listener]:
    """Listening sockets (or every socket with ``all_states``), with owners and exposure,
    sorted by port.

    Finding owners reads every fd link under /proc. In a single-threaded caller with many
    fds, a short-lived forked helper walks half of them (see ``inventory.fdwalk``)."""
    # The owner walk starts first and runs beside the socket dump (see procfs.OwnerWalk).
    with _owner_walk(owners) as walk:
        socks, holders = _collect(_protos(tcp, udp), not all_states, port)
        return _sorted(_join(socks, holders, owners=owners, walk=walk))


def _owner_walk(wanted: bool) -> contextlib.AbstractContextManager[procfs.OwnerWalk | None]:
    """An owner walk begun now (or by the CLI before its imports), when owners are wanted
    and the backend does not bring its own (psutil does)."""
    if wanted and backend() != "psutil":
        return fdwalk.take_early() or procfs.OwnerWalk()
    return contextlib.nullcontext()


def _sorted(items: list[Listener]) -> list[Listener]:
    return sorted(
        items,
        key=lambda x: (
            x.port,
            x.proto,
            x.socket.family,
            x.address,
            x.socket.state,
            x.socket.remote_port,
        ),
    )


def _join(
    socks: list[Socket],
    holders: dict[int, list[int]] | None,
    *,
    owners: bool,
    parents: bool = False,
    walk: procfs.OwnerWalk | None = None,
    denied: set[int] | None = None,
) -> list[Listener]:
    """Sockets with their owners: from ``holders`` when the caller has them (with the PIDs
    whose fds could not be read in ``denied``), else from ``walk`` or a walk begun here."""
    if not owners:
        return [_listener(s, (), "none", None) for s in socks]
    denied = denied or set()
    if holders is None:
        inodes = {s.inode for s in socks if s.inode > 0}
        scan = walk.result(inodes) if walk else procfs.scan_owners(inodes)
        holders, denied = scan.holders, scan.denied
    reader = procfs.ProcReader()
    cache: dict[int, Process | None] = {}
    out: list[Listener] = []
    for s in socks:
        procs: list[Process] = []
        for pid in holders.get(s.inode, ()):
            if pid not in cache:
                cache[pid] = reader.process(pid, parents=parents)
            p = cache[pid]
            if p is not None:
                procs.append(p)
        if procs:
            out.append(_listener(s, tuple(procs), "known", None))
        else:
            status, hint = _why_no_owner(s, bool(holders.get(s.inode)), denied, reader)
            out.append(_listener(s, (), status, hint))
    return out


def _why_no_owner(
    s: Socket, had_pids: bool, denied: set[int], reader: procfs.ProcReader
) -> tuple[OwnerStatus, str | None]:
    if had_pids:
        return "gone", "the owning process exited while we looked"
    if s.state == "TIME-WAIT" or s.inode == 0:
        return "none", "no process holds a socket in this state"
    me = os.geteuid() if hasattr(os, "geteuid") else None
    if denied and me != 0 and s.uid is not None and s.uid != me:
        who = reader.user(s.uid)
        also = "" if s.uid == 0 else f" or as {who}"
        return (
            "permission-denied",
            f"a socket of user {who}: run as root (sudo){also} to see its owner",
        )
    if denied and me != 0:
        return "permission-denied", "run as root to see processes of other users"
    if denied:
        names = ", ".join(
            f"{st[0]} (pid {pid})" for pid in sorted(denied)[:3] if (st := reader.stat(pid))
        )
        return "permission-denied", (
            f"perhaps held by {names}: its open files cannot be read here, even as root "
            "(ptrace access denied)"
        )
    return "none", "no process visible here holds it (another PID namespace, e.g. a container)"


def _listener(
    s: Socket, owners: tuple[Process, ...], status: OwnerStatus, hint: str | None
) -> Listener:
    notes: tuple[str, ...] = ()
    if s.family == 6 and s.local_addr == "::" and s.listening:
        if s.v6only is False:
            notes = ("dual-stack: accepts IPv4 connections too",)
        elif s.v6only:
            notes = ("IPv6 only (IPV6_V6ONLY)",)
    return Listener(
        socket=s,
        exposure=exposure(s.local_addr),
        owners=owners,
        owner_status=status,
        owner_hint=hint,
        notes=notes,
    )


def process(pid: int) -> Process | None:
    """Facts about one process (with its parent chain), or None when it does not exist."""
    return procfs.ProcReader().process(pid, parents=True)


@record
class Client:
    """A connection to the port asked about: the server's end, and the client process when
    the client is on this machine."""

    server: Socket
    owners: tuple[Process, ...] = ()

    def to_json(self) -> dict[str, Any]:
        s = self.server
        return {
            "proto": s.proto,
            "local_address": s.local_addr,
            "local_port": s.local_port,
            "remote_address": s.remote_addr,
            "remote_port": s.remote_port,
            "state": s.state,
            "client_owners": [p.to_json() for p in self.owners],
        }


@record
class WhoReport:
    target: Target
    listeners: tuple[Listener, ...]
    clients: tuple[Client, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "target": self.target.display,
            "listeners": [x.to_json() for x in self.listeners],
            "clients": [c.to_json() for c in self.clients],
        }


def who(target: str | int, *, tcp: bool = True, udp: bool = True) -> WhoReport:
    """Who holds ``target`` (a port, ``host:port``, ``[v6]:port`` or URL), with every owner,
    its parent chain, and the connected clients. Raises NotFound when nothing holds it."""
    t = parse_target(str(target))
    protos = _protos(tcp, udp)
    found, holders = _collect(protos, True, t.port)
    found = [s for s in found if _covers(s, t.host)]
    if not found:
        raise NotFound(
            f"nothing listens on {t.display}", hint=f"try 'homeport explain {t.display}'"
        )
    with _owner_walk(holders is None) as walk:  # runs beside the connection dump
        return _who_report(t, found, holders, walk, tcp=tcp)


def _who_report(
    t: Target,
    found: list[Socket],
    holders: dict[int, list[int]] | None,
    walk: procfs.OwnerWalk | None,
    *,
    tcp: bool,
) -> WhoReport:
    # One dump for both ends of every connection to the port: each all-states dump walks
    # the whole established hash (262,144 buckets here, ~13 ms a family), so the server
    # ends (sport == P) and the local clients' ends (dport == P) come in one walk.
    conns, _ = _collect(("tcp",), False, t.port, side="any") if tcp else ([], None)
    accepted = [
        s
        for s in conns
        if s.local_port == t.port
        and not s.listening
        and s.state != "TIME-WAIT"
        and _covers_conn(found, s)
    ]
    peers = [s for s in conns if s.remote_port == t.port] if accepted else []
    wanted = [*found, *accepted, *peers]
    denied: set[int] = set()
    if holders is None:
        inodes = {s.inode for s in wanted if s.inode > 0}
        scan = walk.result(inodes) if walk else procfs.scan_owners(inodes)
        holders, denied = scan.holders, scan.denied
    joined = _join(found, holders, owners=True, parents=True, denied=denied)
    clients = _clients(accepted, peers, holders)
    return WhoReport(t, tuple(_sorted(joined)), tuple(clients))


def _clients(
    accepted: list[Socket], peers: list[Socket], holders: dict[int, list[int]]
) -> list[Client]:
    reader = procfs.ProcReader()
    by_local = {(unmap_s(p.local_addr), p.local_port): p for p in peers}
    out: list[Client] = []
    for s in accepted:
        peer = by_local.get((unmap_s(s.remote_addr), s.remote_port))
        procs: tuple[Process, ...] = ()
        if peer is not None:
            ps = [reader.process(pid) for pid in holders.get(peer.inode, ())]
            procs = tuple(p for p in ps if p is not None)
        out.append(Client(s, procs))
    return out


def unmap_s(addr: str) -> str:
    a = ip(addr)
    return str(unmap(a)) if a is not None else addr


def _covers_conn(listening: list[Socket], conn: Socket) -> bool:
    """Whether ``conn`` was accepted by one of ``listening`` (same port, and an address the
    listener receives: its own, or any for a wildcard of that family or a dual-stack ::)."""
    local = unmap_s(conn.local_addr)
    return any(
        s.proto == conn.proto and s.local_port == conn.local_port and _covers(s, local)
        for s in listening
    )


@functools.cache
def _resolve(host: str) -> frozenset[str]:
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except OSError as exc:
        raise UsageError(f"cannot resolve {host!r}: {exc.strerror or exc}") from None
    return frozenset(unmap_s(str(i[4][0])) for i in infos)


def _covers(s: Socket, host: str | None) -> bool:
    """Whether a socket bound to ``s.local_addr`` receives connections for ``host``."""
    if host is None:
        return True
    bound = unmap_s(s.local_addr)
    a = ip(host)
    addrs = {unmap_s(host)} if a is not None else set(_resolve(host))
    for addr in addrs:
        fam6 = ":" in addr
        if bound == addr:
            return True
        if bound == "0.0.0.0" and not fam6:
            return True
        if bound == "::" and (fam6 or s.v6only is False):
            return True
    return False


def with_route(listener: Listener, route: str | None) -> Listener:
    return replace(listener, route=route)
