"""The inventory's pure parsers, on replies and /proc text recorded from a real kernel."""

from __future__ import annotations

import json
import socket
import struct
from pathlib import Path

import pytest

from homeport.inventory import netlink, procfs

FIX = Path(__file__).parent.parent / "fixtures"
EXPECTED = json.loads((FIX / "netlink" / "expected.json").read_text())


def _by_inode(socks: list) -> dict:
    return {s.inode: s for s in socks}


def test_parse_recorded_ipv4_listen_dump() -> None:
    socks, done = netlink.parse_messages((FIX / "netlink" / "tcp4_listen.bin").read_bytes(), "tcp")
    assert done
    got = _by_inode(socks)
    for key, addr in (
        ("v4_loopback", "127.0.0.1"),
        ("v4_alias", "127.0.0.2"),
        ("v4_any", "0.0.0.0"),
    ):
        s = got[EXPECTED[key]["inode"]]
        assert (s.family, s.local_addr, s.local_port, s.state) == (
            4,
            addr,
            EXPECTED[key]["port"],
            "LISTEN",
        )
        assert s.v6only is None  # the attribute exists only for AF_INET6


def test_parse_recorded_ipv6_listen_dump_with_v6only() -> None:
    socks, done = netlink.parse_messages((FIX / "netlink" / "tcp6_listen.bin").read_bytes(), "tcp")
    assert done
    got = _by_inode(socks)
    cases = (
        ("v6_loopback", "::1", True),
        ("v6_any_dual", "::", False),
        ("v6_any_only", "::", True),
    )
    for key, addr, v6only in cases:
        s = got[EXPECTED[key]["inode"]]
        assert (s.family, s.local_addr, s.local_port, s.v6only) == (
            6,
            addr,
            EXPECTED[key]["port"],
            v6only,
        )


def test_parse_error_message_raises_with_errno() -> None:
    # NLMSG_ERROR carrying -ENOENT, as the kernel sends when udp_diag is missing.
    body = struct.pack("=i", -2) + bytes(16)
    msg = struct.pack("=IHHII", 16 + len(body), netlink.NLMSG_ERROR, 0, 1, 0) + body
    with pytest.raises(netlink.NetlinkError) as exc:
        netlink.parse_messages(msg, "udp")
    assert exc.value.errno == 2


def test_build_request_layout() -> None:
    req = netlink.build_request(socket.AF_INET6, "udp", netlink.states_mask("udp", True), 7)
    length, mtype, flags, seq, _pid = struct.unpack_from("=IHHII", req)
    assert (length, mtype, seq) == (len(req), 20, 7)
    assert length == 16 + 56
    assert flags == netlink.NLM_F_REQUEST | netlink.NLM_F_DUMP
    family, proto, _ext, states = struct.unpack_from("=BBBxI", req, 16)
    assert (family, proto, states) == (socket.AF_INET6, socket.IPPROTO_UDP, 1 << 7)


def test_port_filter_bytecode_is_attached_and_well_formed() -> None:
    req = netlink.build_request(socket.AF_INET, "tcp", 1 << 10, 1, netlink.PortFilter(8080))
    rta_len, rta_type = struct.unpack_from("=HH", req, 16 + 56)
    assert (rta_len, rta_type) == (4 + 16, netlink.INET_DIAG_REQ_BYTECODE)
    ops = [struct.unpack_from("=BBH", req, 16 + 56 + 4 + 4 * i) for i in range(4)]
    # S_GE 8080 then S_LE 8080; "no" jumps land 4 bytes past the end (reject).
    assert ops == [(2, 8, 20), (0, 0, 8080), (3, 8, 12), (0, 0, 8080)]


def test_proc_net_text_agrees_with_netlink() -> None:
    socks = procfs.parse_proc_net((FIX / "netlink" / "proc_net_tcp.txt").read_text(), "tcp", 4)
    socks += procfs.parse_proc_net((FIX / "netlink" / "proc_net_tcp6.txt").read_text(), "tcp", 6)
    got = _by_inode(socks)
    for key, addr in (("v4_alias", "127.0.0.2"), ("v6_loopback", "::1"), ("v6_any_dual", "::")):
        s = got[EXPECTED[key]["inode"]]
        assert (s.local_addr, s.local_port, s.state) == (addr, EXPECTED[key]["port"], "LISTEN")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "1234 (nginx) S 1 1234 1234 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 1 0 777 0 0",
            ("nginx", 1, 777),
        ),
        # comm may hold spaces and parentheses: split at the last ')'
        (
            "99 (my (odd) name) R 42 99 99 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 5 0 0",
            ("my (odd) name", 42, 5),
        ),
    ],
)
def test_parse_stat(text: str, expected: tuple[str, int, int]) -> None:
    assert procfs.parse_stat(text) == expected


def test_parse_btime() -> None:
    assert procfs.parse_btime("cpu 1 2 3\nbtime 1700000000\nprocesses 5\n") == 1700000000.0
