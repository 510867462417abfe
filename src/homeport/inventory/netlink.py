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
import operator
import os
import socket
import struct
from collections.abc import Iterator

from homeport._record import record
from homeport.model import TCP_STATES, UDP_UNCONN, Socket

TYPE_CHECKING = False
if TYPE_CHECKING:
    from homeport.model import Family, Proto

NETLINK_SOCK_DIAG = 4
SOCK_DIAG_BY_FAMILY = 20
# The request type from before sock_diag (linux/inet_diag.h). The kernel still serves it
# (inet_diag_rcv_msg_compat()) as a dump with sdiag_family = AF_UNSPEC: IPv4 and IPv6 in one
# walk of the established hash, where SOCK_DIAG_BY_FAMILY needs a walk per family.
TCPDIAG_GETSOCK = 18
NLM_F_REQUEST = 0x01
NLM_F_DUMP = 0x300  # NLM_F_ROOT | NLM_F_MATCH
NLMSG_ERROR = 2
NLMSG_DONE = 3

INET_DIAG_REQ_BYTECODE = 1
INET_DIAG_SKV6ONLY = 11
# enum in inet_diag.h: bytecode op codes
INET_DIAG_BC_JMP = 1
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
# inet_diag_req (v1): family, src_len, dst_len, ext, then inet_diag_sockid, states, dbs
_REQ_V1 = struct.Struct("=BBBB")
_REQ_V1_TAIL = struct.Struct("=II")
# inet_diag_sockid: sport, dport (network order), src[16], dst[16], if, cookie[2]
_SOCKID = struct.Struct("!HH16s16s")
_SOCKID_TAIL = struct.Struct("=III")
# inet_diag_msg: family, state, timer, retrans, sockid(48), expires, rqueue, wqueue, uid, inode
_MSG_HEAD = struct.Struct("=BBBB")
_MSG_TAIL = struct.Struct("=IIIII")
_MSG_LEN = _MSG_HEAD.size + _SOCKID.size + _SOCKID_TAIL.size + _MSG_TAIL.size  # 72
# The same 72 bytes in one native-order unpack (the parser's hot path: one call instead of
# four); the two ports come out byte-swapped and go through ntohs().
_MSG = struct.Struct("=BBBBHH16s16sIIIIIIII")  # 72 bytes, as _MSG_LEN
# family, state, sport, dport, src, dst, ifindex, uid, inode
_PICK = operator.itemgetter(0, 1, 4, 5, 6, 7, 8, 14, 15)
_RTA = struct.Struct("=HH")
_BC_OP = struct.Struct("=BBH")  # code, yes, no

_PROTO_NUM: dict[Proto, int] = {"tcp": socket.IPPROTO_TCP, "udp": socket.IPPROTO_UDP}


@record
class PortFilter:
    """Match sockets whose local (``side='src'``), remote (``'dst'``) or either
    (``'any'``) port is ``port``."""

    port: int
    side: str = "src"


def states_mask(proto: Proto, listening_only: bool) -> int:
    """Kernel state bitmask: LISTEN for TCP; unconnected (TCP_CLOSE) for UDP."""
    if not listening_only:
        return ALL_STATES
    return 1 << (TCP_LISTEN if proto == "tcp" else TCP_CLOSE)


def port_bytecode(flt: PortFilter) -> bytes:
    """``port >= P && port <= P`` as inet_diag bytecode; for ``side='any'`` the source
    test, then the destination test.

    Each comparison is an op followed by a pseudo-op whose ``no`` holds the port. Jumping
    exactly to the end accepts; jumping 4 bytes past it rejects (inet_diag_bc_run()).
    """
    src = _port_equals(INET_DIAG_BC_S_GE, INET_DIAG_BC_S_LE, flt.port)
    dst = _port_equals(INET_DIAG_BC_D_GE, INET_DIAG_BC_D_LE, flt.port)
    if flt.side != "any":
        return src if flt.side == "src" else dst
    # A OR B, laid out as `ss` does: A, JMP, B. A's success falls onto the JMP, which
    # always takes its `no` jump to the end (accept); A's reject (4 past A's end) lands
    # on B. Every op stays on the `yes` chain, as inet_diag_bc_audit()'s valid_cc()
    # demands of every jump target.
    return src + _BC_OP.pack(INET_DIAG_BC_JMP, 4, len(dst) + 4) + dst


def _port_equals(ge: int, le: int, port: int) -> bytes:
    return b"".join(
        (
            _BC_OP.pack(ge, 8, 20),
            _BC_OP.pack(0, 0, port),
            _BC_OP.pack(le, 8, 12),
            _BC_OP.pack(0, 0, port),
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


def build_request_compat(states: int, seq: int = 1, flt: PortFilter | None = None) -> bytes:
    """One ``TCPDIAG_GETSOCK`` dump request: TCP sockets of every family in one walk."""
    body = _REQ_V1.pack(socket.AF_INET, 0, 0, 0)
    body += _SOCKID.pack(0, 0, bytes(16), bytes(16)) + _SOCKID_TAIL.pack(0, 0, 0)
    body += _REQ_V1_TAIL.pack(states, 0)
    if flt is not None:
        bc = port_bytecode(flt)
        body += _RTA.pack(_RTA.size + len(bc), INET_DIAG_REQ_BYTECODE) + bc
    flags = NLM_F_REQUEST | NLM_F_DUMP
    return _NLMSGHDR.pack(_NLMSGHDR.size + len(body), TCPDIAG_GETSOCK, flags, seq, 0) + body


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
        elif mtype in (SOCK_DIAG_BY_FAMILY, TCPDIAG_GETSOCK):  # a reply has its request's type
            out.append(parse_diag_msg(data, offset + _NLMSGHDR.size, offset + length, proto))
        offset += (length + 3) & ~3  # NLMSG_ALIGN
    return out, False


def parse_diag_msg(data: bytes, start: int, end: int, proto: Proto) -> Socket:
    """Parse one ``inet_diag_msg`` and its attributes."""
    family, state, sport, dport, src, dst, ifindex, uid, inode = _PICK(
        _MSG.unpack_from(data, start)
    )
    fam: Family = 4 if family == socket.AF_INET else 6
    # The kernel sends INET_DIAG_SKV6ONLY for AF_INET6 sockets only (inet_diag_msg_attrs_fill()).
    v6only = _v6only(data, start + _MSG_LEN, end) if fam == 6 else None
    return Socket(
        proto=proto,
        family=fam,
        local_addr=_addr(fam, src),
        local_port=socket.ntohs(sport),
        remote_addr=_addr(fam, dst),
        remote_port=socket.ntohs(dport),
        state=_state_name(proto, state),
        inode=inode,
        uid=uid,
        v6only=v6only,
        ifindex=ifindex,
    )


def _v6only(data: bytes, pos: int, end: int) -> bool | None:
    while pos + _RTA.size <= end:
        rta_len, rta_type = _RTA.unpack_from(data, pos)
        if rta_len < _RTA.size:
            break
        if rta_type == INET_DIAG_SKV6ONLY:
            return bool(data[pos + _RTA.size])
        pos += (rta_len + 3) & ~3
    return None


def _state_name(proto: Proto, state: int) -> str:
    if proto == "udp":
        return UDP_UNCONN if state == TCP_CLOSE else "ESTABLISHED" if state == 1 else str(state)
    return TCP_STATES.get(state, str(state))


def _addr(family: int, raw: bytes) -> str:
    if family == 4:
        return socket.inet_ntop(socket.AF_INET, raw[:4])
    text = _V6_TEXT.get(raw)
    if text is None:
        if len(_V6_TEXT) > 4096:  # --all on a busy host sees many remote addresses
            _V6_TEXT.clear()
        # ipaddress, not inet_ntop: they spell v4-mapped addresses differently, and
        # ipaddress is 10x slower, hence the cache (few distinct addresses per machine).
        text = _V6_TEXT[raw] = str(ipaddress.IPv6Address(raw))
    return text


_V6_TEXT: dict[bytes, str] = {}


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
            if proto == "tcp" and not listening_only:
                # Every non-LISTEN dump walks the whole established hash (262,144 buckets
                # and every TIME-WAIT socket): one walk for both families halves `who`.
                seq += 1
                both = _dump_tcp_compat(sk, states, seq, flt)
                if both is not None:
                    out.extend(both)
                    continue
            for family in (socket.AF_INET, socket.AF_INET6):
                seq += 1
                sk.send(build_request(family, proto, states, seq, flt))
                out.extend(_receive(sk, proto))
    return out


def _dump_tcp_compat(
    sk: socket.socket, states: int, seq: int, flt: PortFilter | None
) -> list[Socket] | None:
    """Both families in one request; None when this kernel no longer serves it."""
    sk.send(build_request_compat(states, seq, flt))
    try:
        return list(_receive(sk, "tcp"))
    except NetlinkError:
        return None


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
