"""Which TCP ports a process group listens on: for commands that ignore ``PORT``.

``npm run dev`` on a vite project listens on 5173 whatever ``PORT`` says, and no flag can be
slipped past npm. So while ``homeport run`` waits, it also asks the kernel which listening
sockets belong to the command's process group: members are found by ``pgrp`` in
``/proc/PID/stat`` (field 5, proc(5)), their sockets by the ``socket:[INODE]`` links in
``/proc/PID/fd``, matched against the inventory's listening sockets (inode).
"""

from __future__ import annotations

import os
from pathlib import Path

from homeport.inventory import procfs

PROC = Path("/proc")


def parse_pgrp(stat: str) -> int | None:
    """Process group (field 5) from ``/proc/PID/stat``; comm may hold spaces and ')'."""
    try:
        return procfs.parse_stat_record(stat).pgrp
    except ValueError:
        return None


def socket_inode(link: str) -> int | None:
    """``socket:[12345]`` -> 12345; any other fd target -> None."""
    if link.startswith("socket:[") and link.endswith("]"):
        return int(link[8:-1])
    return None


def group_members(pgid: int, proc: Path = PROC) -> list[int]:
    out = []
    with os.scandir(proc) as entries:
        for e in entries:
            if not e.name.isdigit():
                continue
            try:
                stat = (proc / e.name / "stat").read_text()
            except OSError:
                continue  # gone meanwhile
            if parse_pgrp(stat) == pgid:
                out.append(int(e.name))
    return out


def socket_inodes(pid: int, proc: Path = PROC) -> set[int]:
    found: set[int] = set()
    fd_dir = proc / str(pid) / "fd"
    try:
        names = os.listdir(fd_dir)
    except OSError:
        return found
    for name in names:
        try:
            inode = socket_inode(os.readlink(fd_dir / name))
        except OSError:
            continue
        if inode is not None:
            found.add(inode)
    return found


def group_listening(pgid: int) -> list[tuple[str, int]]:
    """(address, port) of every TCP socket the group listens on, lowest port first."""
    from homeport.inventory import sockets

    inodes: set[int] = set()
    for pid in group_members(pgid):
        inodes |= socket_inodes(pid)
    if not inodes:
        return []
    return sorted(
        {(s.local_addr, s.local_port) for s in sockets(udp=False) if s.inode in inodes},
        key=lambda a: (a[1], a[0]),
    )
