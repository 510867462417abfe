"""psutil backend for systems without netlink and /proc (macOS, BSD, Windows).

It returns the same ``Socket`` records. psutil already knows the owning PID, so the
sockets get synthetic inode numbers and the holder map is returned beside them.
"""

from __future__ import annotations

import socket

from homeport.model import UDP_UNCONN, Socket

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from homeport.model import Family, Proto

_STATE = {
    "LISTEN": "LISTEN",
    "NONE": UDP_UNCONN,
    "ESTABLISHED": "ESTABLISHED",
    "TIME_WAIT": "TIME-WAIT",
    "CLOSE_WAIT": "CLOSE-WAIT",
    "SYN_SENT": "SYN-SENT",
}


def collect(
    protos: tuple[Proto, ...], listening_only: bool, port: int | None
) -> tuple[list[Socket], dict[int, list[int]]]:
    import psutil

    out: list[Socket] = []
    holders: dict[int, list[int]] = {}
    index: dict[tuple[Any, ...], int] = {}
    for proto in protos:
        for c in psutil.net_connections(kind=proto):
            sock = _to_socket(c, proto, len(index) + 1)
            if listening_only and not sock.listening:
                continue
            if port is not None and sock.local_port != port:
                continue
            key = (
                proto,
                sock.family,
                sock.local_addr,
                sock.local_port,
                sock.remote_addr,
                sock.remote_port,
            )
            if key not in index:
                index[key] = sock.inode
                out.append(sock)
            if c.pid:
                holders.setdefault(index[key], []).append(c.pid)
    return out, holders


def _to_socket(c: Any, proto: Proto, synthetic_inode: int) -> Socket:
    fam: Family = 4 if c.family == socket.AF_INET else 6
    laddr, lport = (c.laddr.ip, c.laddr.port) if c.laddr else ("", 0)
    raddr, rport = (c.raddr.ip, c.raddr.port) if c.raddr else ("0.0.0.0" if fam == 4 else "::", 0)
    return Socket(
        proto=proto,
        family=fam,
        local_addr=laddr,
        local_port=lport,
        remote_addr=raddr,
        remote_port=rport,
        state=_STATE.get(c.status, c.status),
        inode=-synthetic_inode,
    )
