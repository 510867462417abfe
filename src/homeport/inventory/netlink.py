"""Linux ``NETLINK_SOCK_DIAG``: build ``inet_diag_req_v2`` dumps, parse the replies.

The builders and the parser are pure (bytes in, records out) and are tested on recorded
replies in ``tests/fixtures/netlink/``; ``dump()`` is the thin reader. Layouts follow
``include/uapi/linux/inet_diag.h``, ``sock_diag.h`` and ``netlink.h``.

The state filter is done by the kernel (``idiag_states``); a port filter, when asked for,
is a bytecode program (``INET_DIAG_REQ_BYTECODE``) so the kernel sends only matching sockets.
"""

from __future__ import annotations

import errno
import ipaddress
import os
import socket
import struct
from collections.abc import Iterator
from dataclasses import dataclass

from homeport.model import TCP_STATES, UDP_UNCONN, Family, Proto, Socket

NETLINK_SOCK_DIAG = 4
SOCK_DIAG_BY_FAMILY = 20
NLM_F_REQUEST = 0x01
NLM_F_DUMP = 0x300  # NLM_F_ROOT | NLM_F_MATCH
NLMSG_ERROR = 2
NLMSG_DONE = 3

INET_DIAG_REQ_BYTECODE = 1
INET_DIAG_SKV6ONLY = 11
# enum in inet_diag.h: bytecode op codes
INET_DIAG_BC_S_GE = 2
INET_DIAG_BC_S_LE = 3
INET_DIAG_BC_D_GE = 4
INET_DIAG_BC_D_LE = 5

TCP_LISTEN = 10
TCP_CLOSE = 7
ALL_STATES = 0xFFFFFFFF

_NLMSGHDR = struct.Struct("=IHHII")  # len, type, flags, seq, pid
# inet_diag_req_v2: family, protocol, ext, pad, states, then inet_diag_sockid
_REQ_V2 = struct.Struct("=BBBxI")
# inet_diag_sockid: sport, dport (network order), src[16], dst[16], if, cookie[2]
_SOCKID = struct.Struct("!HH16s16s")
_SOCKID_TAIL = struct.Struct("=III")
# inet_diag_msg: family, state, timer, retrans, sockid(48), expires, rqueue, wqueue, uid, inode
_MSG_HEAD = struct.Struct("=BBBB")
_MSG_TAIL = struct.Struct("=IIIII")
_MSG_LEN = _MSG_HEAD.size + _SOCKID.size + _SOCKID_TAIL.size + _MSG_TAIL.size  # 72
_RTA = struct.Struct("=HH")
_BC_OP = struct.Struct("=BBH")  # code, yes, no

_PROTO_NUM: dict[Proto, int] = {"tcp": socket.IPPROTO_TCP, "udp": socket.IPPROTO_UDP}


@dataclass(frozen=True, slots=True)
class PortFilter:
    """Match sockets whose local (``side='src'``) or remote (``'dst'``) port is ``port``."""

    port: int
    side: str = "src"


def states_mask(proto: Proto, listening_only: bool) -> int:
    """Kernel state bitmask: LISTEN for TCP; unconnected (TCP_CLOSE) for UDP."""
    if not listening_only:
        return ALL_STATES
    return 1 << (TCP_LISTEN if proto == "tcp" else TCP_CLOSE)


def port_bytecode(flt: PortFilter) -> bytes:
    """``port >= P && port <= P`` as inet_diag bytecode.

    Each comparison is an op followed by a pseudo-op whose ``no`` holds the port. Jumping
    exactly to the end accepts; jumping 4 bytes past it rejects (inet_diag_bc_run()).
    """
    ge, le = (
        (INET_DIAG_BC_S_GE, INET_DIAG_BC_S_LE)
        if flt.side == "src"
        else (INET_DIAG_BC_D_GE, INET_DIAG_BC_D_LE)
    )
    return b"".join(
        (
            _BC_OP.pack(ge, 8, 20),
            _BC_OP.pack(0, 0, flt.port),
            _BC_OP.pack(le, 8, 12),
            _BC_OP.pack(0, 0, flt.port),
        )
    )


def build_request(
    family: int, proto: Proto, states: int, seq: int = 1, flt: PortFilter | None = None
) -> bytes:
    """One ``SOCK_DIAG_BY_FAMILY`` dump request."""
    body = _REQ_V2.pack(family, _PROTO_NUM[proto], 0, states)
    body += _SOCKID.pack(0, 0, bytes(16), bytes(16)) + _SOCKID_TAIL.pack(0, 0, 0)
    if flt is not None:
        bc = port_bytecode(flt)
        body += _RTA.pack(_RTA.size + len(bc), INET_DIAG_REQ_BYTECODE) + bc
    flags = NLM_F_REQUEST | NLM_F_DUMP
    return _NLMSGHDR.pack(_NLMSGHDR.size + len(body), SOCK_DIAG_BY_FAMILY, flags, seq, 0) + body


class NetlinkError(OSError):
    """The kernel answered a dump with an error (e.g. ENOENT: no udp_diag module)."""


def parse_messages(data: bytes, proto: Proto) -> tuple[list[Socket], bool]:
    """Parse one ``recv()`` worth of netlink messages. Returns (sockets, done)."""
    out: list[Socket] = []
    offset = 0
    while offset + _NLMSGHDR.size <= len(data):
        length, mtype, _flags, _seq, _pid = _NLMSGHDR.unpack_from(data, offset)
        if length < _NLMSGHDR.size:
            break
        if mtype == NLMSG_DONE:
            return out, True
        if mtype == NLMSG_ERROR:
            (code,) = struct.unpack_from("=i", data, offset + _NLMSGHDR.size)
            if code:
                raise NetlinkError(-code, os.strerror(-code))
        elif mtype == SOCK_DIAG_BY_FAMILY:
            out.append(parse_diag_msg(data, offset + _NLMSGHDR.size, offset + length, proto))
        offset += (length + 3) & ~3  # NLMSG_ALIGN
    return out, False


def parse_diag_msg(data: bytes, start: int, end: int, proto: Proto) -> Socket:
    """Parse one ``inet_diag_msg`` and its attributes."""
    family, state, _timer, _retrans = _MSG_HEAD.unpack_from(data, start)
    sport, dport, src, dst = _SOCKID.unpack_from(data, start + 4)
    ifindex, _c0, _c1 = _SOCKID_TAIL.unpack_from(data, start + 4 + _SOCKID.size)
    _exp, _rq, _wq, uid, inode = _MSG_TAIL.unpack_from(data, start + 4 + 48)
    v6only: bool | None = None
    pos = start + _MSG_LEN
    while pos + _RTA.size <= end:
        rta_len, rta_type = _RTA.unpack_from(data, pos)
        if rta_len < _RTA.size:
            break
        if rta_type == INET_DIAG_SKV6ONLY:
            v6only = bool(data[pos + _RTA.size])
        pos += (rta_len + 3) & ~3
    fam: Family = 4 if family == socket.AF_INET else 6
    return Socket(
        proto=proto,
        family=fam,
        local_addr=_addr(fam, src),
        local_port=sport,
        remote_addr=_addr(fam, dst),
        remote_port=dport,
        state=_state_name(proto, state),
        inode=inode,
        uid=uid,
        v6only=v6only,
        ifindex=ifindex,
    )


def _state_name(proto: Proto, state: int) -> str:
    if proto == "udp":
        return UDP_UNCONN if state == TCP_CLOSE else "ESTABLISHED" if state == 1 else str(state)
    return TCP_STATES.get(state, str(state))


def _addr(family: int, raw: bytes) -> str:
    if family == 4:
        return socket.inet_ntop(socket.AF_INET, raw[:4])
    return str(ipaddress.IPv6Address(raw))


def dump(
    protos: tuple[Proto, ...] = ("tcp", "udp"),
    listening_only: bool = True,
    flt: PortFilter | None = None,
) -> list[Socket]:
    """Ask the kernel for every matching socket, IPv4 and IPv6. Raises OSError on failure."""
    out: list[Socket] = []
    with socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, NETLINK_SOCK_DIAG) as sk:
        seq = 0
        for proto in protos:
            states = states_mask(proto, listening_only)
            for family in (socket.AF_INET, socket.AF_INET6):
                seq += 1
                sk.send(build_request(family, proto, states, seq, flt))
                out.extend(_receive(sk, proto))
    return out


def _receive(sk: socket.socket, proto: Proto) -> Iterator[Socket]:
    while True:
        data = sk.recv(1 << 20)
        if not data:
            return
        socks, done = parse_messages(data, proto)
        yield from socks
        if done:
            return


def available() -> bool:
    try:
        socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, NETLINK_SOCK_DIAG).close()
    except (OSError, AttributeError) as exc:
        return getattr(exc, "errno", None) not in (errno.EAFNOSUPPORT, errno.EPROTONOSUPPORT, None)
    return True
