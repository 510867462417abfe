"""Records shared by everything: sockets, processes, listeners.

They are frozen, slotted records (``homeport._record``: dataclasses without the ~14 ms
the ``dataclasses`` module costs ``who``) with no behaviour beyond small derived
properties, and each has ``to_json()`` giving the documented ``--json`` shape.
"""

from __future__ import annotations

from homeport._record import record

TYPE_CHECKING = False  # not typing's: importing typing costs ~2 ms of every command
if TYPE_CHECKING:
    from typing import Any, Literal

    Proto = Literal["tcp", "udp"]
    Family = Literal[4, 6]
    Exposure = Literal["loopback", "all-interfaces", "lan", "public"]
    OwnerStatus = Literal["known", "permission-denied", "gone", "none"]

#: TCP states as the kernel numbers them (include/net/tcp_states.h).
TCP_STATES: dict[int, str] = {
    1: "ESTABLISHED",
    2: "SYN-SENT",
    3: "SYN-RECV",
    4: "FIN-WAIT-1",
    5: "FIN-WAIT-2",
    6: "TIME-WAIT",
    7: "CLOSE",
    8: "CLOSE-WAIT",
    9: "LAST-ACK",
    10: "LISTEN",
    11: "CLOSING",
    12: "NEW-SYN-RECV",
}
#: An unconnected UDP socket is in TCP_CLOSE; we call it what users expect.
UDP_UNCONN = "UNCONN"


@record
class Socket:
    """One kernel socket as the inventory backends see it (no owner yet)."""

    proto: Proto
    family: Family
    local_addr: str
    local_port: int
    remote_addr: str
    remote_port: int
    state: str
    inode: int
    uid: int | None = None
    #: IPV6_V6ONLY for a ``::`` socket; None when unknown or not IPv6.
    v6only: bool | None = None
    #: Network interface the socket is bound to (SO_BINDTODEVICE), 0 for none.
    ifindex: int = 0

    @property
    def listening(self) -> bool:
        return self.state in ("LISTEN", UDP_UNCONN)

    def to_json(self) -> dict[str, Any]:
        return {
            "proto": self.proto,
            "family": self.family,
            "local_addr": self.local_addr,
            "local_port": self.local_port,
            "remote_addr": self.remote_addr,
            "remote_port": self.remote_port,
            "state": self.state,
            "inode": self.inode,
            "uid": self.uid,
            "v6only": self.v6only,
        }


@record
class Process:
    """What we could learn about one process; None where /proc would not tell."""

    pid: int
    name: str
    cmdline: tuple[str, ...] = ()
    uid: int | None = None
    user: str | None = None
    cwd: str | None = None
    #: Seconds since the epoch.
    start_time: float | None = None
    ppid: int | None = None
    #: The parent chain, nearest first: (pid, name) pairs up to PID 1.
    parents: tuple[tuple[int, str], ...] = ()

    @property
    def command(self) -> str:
        return " ".join(self.cmdline) if self.cmdline else f"[{self.name}]"

    def to_json(self) -> dict[str, Any]:
        return {
            "pid": self.pid,
            "name": self.name,
            "cmdline": list(self.cmdline),
            "uid": self.uid,
            "user": self.user,
            "cwd": self.cwd,
            "start_time": self.start_time,
            "ppid": self.ppid,
            "parents": [{"pid": p, "name": n} for p, n in self.parents],
        }


@record
class Listener:
    """A socket with its owners and its exposure verdict: what ``homeport ls`` lists.

    ``owner_status`` says why ``owners`` may be empty: ``permission-denied`` (another
    user's process and we are not root), ``gone`` (the process exited mid-walk) or
    ``none`` (no process holds it, e.g. a kernel socket or TIME-WAIT).
    """

    socket: Socket
    exposure: Exposure
    owners: tuple[Process, ...] = ()
    owner_status: OwnerStatus = "known"
    owner_hint: str | None = None
    #: Set by callers that know about gateway routes.
    route: str | None = None
    notes: tuple[str, ...] = ()

    @property
    def proto(self) -> Proto:
        return self.socket.proto

    @property
    def address(self) -> str:
        return self.socket.local_addr

    @property
    def port(self) -> int:
        return self.socket.local_port

    @property
    def pids(self) -> tuple[int, ...]:
        return tuple(p.pid for p in self.owners)

    def to_json(self, owners_json: dict[int, dict[str, Any]] | None = None) -> dict[str, Any]:
        """The documented JSON record. ``owners_json``, one dict shared over a listing, holds
        each process's record once: a server's 500 listeners share one owner (building the
        2,000 records of bench_inventory's fixture: 40% less CPU)."""
        s = self.socket
        cache = {} if owners_json is None else owners_json
        owners = []
        for p in self.owners:
            record = cache.get(p.pid)
            if record is None:
                record = cache[p.pid] = p.to_json()
            owners.append(record)
        return {
            "proto": s.proto,
            "family": s.family,
            "address": s.local_addr,
            "port": s.local_port,
            "state": s.state,
            "remote_address": s.remote_addr if not s.listening else None,
            "remote_port": s.remote_port if not s.listening else None,
            "exposure": self.exposure,
            "v6only": s.v6only,
            "uid": s.uid,
            "inode": s.inode,
            "pids": [p.pid for p in self.owners],
            "owners": owners,
            "owner_status": self.owner_status,
            "owner_hint": self.owner_hint,
            "route": self.route,
            "notes": list(self.notes),
        }
