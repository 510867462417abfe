"""``/proc``: the ``/proc/net/{tcp,udp}{,6}`` fallback and the owner walk.

Parsers are pure (``parse_proc_net(text, proto, family)``, ``parse_stat(text)``); readers are
thin. Processes that vanish mid-walk and permission errors are normal here: they yield
"unknown", never an exception.
"""

from __future__ import annotations

import errno
import functools
import os
import pwd
import socket
import sys
from collections.abc import Callable, Iterable

from homeport._record import record

# The owner walk lives in fdwalk, light enough for the CLI to start before its imports.
from homeport.inventory.fdwalk import OwnerScan as OwnerScan
from homeport.inventory.fdwalk import OwnerWalk as OwnerWalk
from homeport.inventory.fdwalk import scan_owners as scan_owners
from homeport.model import TCP_STATES, UDP_UNCONN, Process, Socket

TYPE_CHECKING = False  # not typing's: importing typing costs ~2 ms of every command
if TYPE_CHECKING:
    from typing import TypeVar

    from homeport.model import Family, Proto

    T = TypeVar("T")

#: Paths are plain strings here: pathlib costs several milliseconds of import on every `ls`.
PROC = "/proc"
_CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


# --- /proc/net/* ------------------------------------------------------------------------


def _hex_addr(text: str, family: Family) -> str:
    """``0100007F`` -> ``127.0.0.1``. Each 32-bit word is in host byte order."""
    raw = bytes.fromhex(text)
    if sys.byteorder == "little":
        raw = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
    return socket.inet_ntop(socket.AF_INET if family == 4 else socket.AF_INET6, raw)


def parse_proc_net(text: str, proto: Proto, family: Family) -> list[Socket]:
    """Parse the text of ``/proc/net/tcp`` (or udp, tcp6, udp6)."""
    out: list[Socket] = []
    for line in text.splitlines()[1:]:
        f = line.split()
        if len(f) < 10:
            continue
        laddr, lport = f[1].split(":")
        raddr, rport = f[2].split(":")
        st = int(f[3], 16)
        if proto == "udp":
            state = UDP_UNCONN if st == 7 else "ESTABLISHED" if st == 1 else str(st)
        else:
            state = TCP_STATES.get(st, str(st))
        out.append(
            Socket(
                proto=proto,
                family=family,
                local_addr=_hex_addr(laddr, family),
                local_port=int(lport, 16),
                remote_addr=_hex_addr(raddr, family),
                remote_port=int(rport, 16),
                state=state,
                inode=int(f[9]),
                uid=int(f[7]),
            )
        )
    return out


def read_proc_net(
    protos: Iterable[Proto] = ("tcp", "udp"), listening_only: bool = True, proc: str = PROC
) -> list[Socket]:
    out: list[Socket] = []
    for proto in protos:
        for family, suffix in ((4, ""), (6, "6")):
            try:
                text = _read(f"{proc}/net/{proto}{suffix}")
            except OSError:
                continue  # no IPv6 on this kernel, or no /proc/net
            fam: Family = 4 if family == 4 else 6
            socks = parse_proc_net(text, proto, fam)
            out.extend(s for s in socks if s.listening or not listening_only)
    return out


@record
class Stat:
    """The fields of ``/proc/PID/stat`` that homeport uses (proc(5) numbering)."""

    comm: str  # field 2
    state: str  # field 3: R, S, D, Z (zombie), X (dead) ...
    ppid: int  # field 4
    pgrp: int  # field 5
    start_ticks: int  # field 22: clock ticks since boot


def stat_fields(text: str) -> list[str]:
    """The fields of ``/proc/PID/stat`` after comm: index 0 is field 3 (state), so field N
    is at N - 3. comm may contain spaces and parentheses, so split at the last ``)``
    (proc(5)). Raises ValueError on text that is not a stat line."""
    return text[text.rindex(")") + 2 :].split()


def parse_stat_record(text: str) -> Stat:
    """Parse ``/proc/PID/stat``; the one parser every module uses.

    Raises ValueError on text that is not a stat line.
    """
    lpar, rpar = text.index("("), text.rindex(")")
    rest = stat_fields(text)
    if len(rest) < 20:
        raise ValueError("truncated /proc/PID/stat")
    return Stat(text[lpar + 1 : rpar], rest[0], int(rest[1]), int(rest[2]), int(rest[19]))


def parse_stat(text: str) -> tuple[str, int, int]:
    """``/proc/PID/stat`` -> (comm, ppid, starttime in clock ticks since boot)."""
    st = parse_stat_record(text)
    return st.comm, st.ppid, st.start_ticks


def parse_btime(text: str) -> float:
    for line in text.splitlines():
        if line.startswith("btime "):
            return float(line.split()[1])
    return 0.0


class ProcReader:
    """Reads process facts from /proc, caching users, boot time and parent names."""

    def __init__(self, proc: str = PROC) -> None:
        self.proc = proc
        self._btime: float | None = None
        self._users: dict[int, str | None] = {}
        self._stats: dict[int, tuple[str, int, int] | None] = {}

    def boot_time(self) -> float:
        if self._btime is None:
            try:
                self._btime = parse_btime(_read(f"{self.proc}/stat"))
            except OSError:
                self._btime = 0.0
        return self._btime

    def user(self, uid: int | None) -> str | None:
        if uid is None:
            return None
        if uid not in self._users:
            try:
                self._users[uid] = pwd.getpwuid(uid).pw_name
            except KeyError:
                self._users[uid] = str(uid)
        return self._users[uid]

    def stat(self, pid: int) -> tuple[str, int, int] | None:
        if pid not in self._stats:
            try:
                self._stats[pid] = parse_stat(_read(f"{self.proc}/{pid}/stat"))
            except (OSError, ValueError):
                self._stats[pid] = None
        return self._stats[pid]

    def process(self, pid: int, parents: bool = False) -> Process | None:
        """Everything we can read about ``pid``; None when it has exited."""
        st = self.stat(pid)
        if st is None:
            return None
        comm, ppid, start_ticks = st
        base = f"{self.proc}/{pid}"
        uid = _try(lambda: os.stat(base).st_uid)
        cmdline = _try(lambda: _read_bytes(f"{base}/cmdline"))
        cwd = _try(lambda: os.readlink(f"{base}/cwd"))
        args = (
            tuple(a.decode(errors="replace") for a in cmdline.split(b"\0")[:-1]) if cmdline else ()
        )
        return Process(
            pid=pid,
            name=comm,
            cmdline=args,
            uid=uid,
            user=self.user(uid),
            cwd=cwd,
            start_time=self.boot_time() + start_ticks / _CLK_TCK,
            ppid=ppid,
            parents=self.parent_chain(ppid) if parents else (),
        )

    def parent_chain(self, ppid: int, limit: int = 64) -> tuple[tuple[int, str], ...]:
        chain: list[tuple[int, str]] = []
        pid = ppid
        while pid > 0 and len(chain) < limit:
            st = self.stat(pid)
            if st is None:
                break
            chain.append((pid, st[0]))
            pid = st[1]
        return tuple(chain)

    def children(self, pid: int) -> list[int]:
        """Direct children, from /proc/PID/task/*/children (Linux >= 3.5)."""
        out: list[int] = []
        try:
            tasks = os.listdir(f"{self.proc}/{pid}/task")
        except OSError:
            return out
        for tid in tasks:
            text = _try(functools.partial(_read, f"{self.proc}/{pid}/task/{tid}/children"))
            if text:
                out.extend(int(c) for c in text.split())
        return out


def _try(fn: Callable[[], T]) -> T | None:
    try:
        return fn()
    except OSError as exc:
        if exc.errno not in (errno.EACCES, errno.EPERM, errno.ENOENT, errno.ESRCH, errno.EINVAL):
            raise
        return None


def _read(path: str) -> str:
    with open(path, encoding="utf-8", errors="replace") as f:
        return f.read()


def _read_bytes(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()
