"""The inventory speed-ups keep their answers: the OR port filter, the split owner walk,
compact JSON for pipes."""

from __future__ import annotations

import io
import json
import socket
import struct
from pathlib import Path

import pytest

from homeport.cli import render
from homeport.cli.env import Env
from homeport.inventory import fdwalk, netlink

P = 8080


def _ops(code: bytes) -> list[tuple[int, int, int]]:
    return [struct.unpack_from("=BBH", code, i) for i in range(0, len(code), 4)]


def _audit(code: bytes) -> bool:
    """inet_diag_bc_audit()'s jump rules (net/ipv4/inet_diag.c) for the ops used here."""

    def valid_cc(cc: int) -> bool:
        pos, left = 0, len(code)
        while left >= 0:
            if cc > left:
                return False
            if cc == left:
                return True
            yes = code[pos + 1]
            if yes < 4 or yes & 3:
                return False
            pos, left = pos + yes, left - yes
        return False

    pos, left = 0, len(code)
    while left > 0:
        op, yes, no = struct.unpack_from("=BBH", code, pos)
        min_len = 8 if op in (2, 3, 4, 5) else 4
        if no < min_len or no > left + 4 or no & 3:
            return False
        if no < left and not valid_cc(left - no):
            return False
        if yes < min_len or yes > left + 4 or yes & 3:
            return False
        pos, left = pos + yes, left - yes
    return left == 0


def _run(code: bytes, sport: int, dport: int) -> bool:
    """inet_diag_bc_run(): True when the program accepts the socket."""
    pos, left = 0, len(code)
    while left > 0:
        op, yes, no = struct.unpack_from("=BBH", code, pos)
        arg = struct.unpack_from("=BBH", code, pos + 4)[2] if op in (2, 3, 4, 5) else 0
        ok = {
            1: False,  # INET_DIAG_BC_JMP always takes "no"
            2: sport >= arg,
            3: sport <= arg,
            4: dport >= arg,
            5: dport <= arg,
        }[op]
        step = yes if ok else no
        pos, left = pos + step, left - step
    return left == 0


@pytest.mark.parametrize("side", ["src", "dst", "any"])
def test_port_programs_pass_the_kernel_audit(side: str) -> None:
    assert _audit(netlink.port_bytecode(netlink.PortFilter(P, side)))


@pytest.mark.parametrize(
    ("sport", "dport", "src", "dst", "any_"),
    [
        (P, 40000, True, False, True),
        (40000, P, False, True, True),
        (P, P, True, True, True),
        (P - 1, P + 1, False, False, False),
        (P + 1, 22, False, False, False),
    ],
)
def test_port_programs_accept_exactly_their_side(
    sport: int, dport: int, src: bool, dst: bool, any_: bool
) -> None:
    got = [
        _run(netlink.port_bytecode(netlink.PortFilter(P, side)), sport, dport)
        for side in ("src", "dst", "any")
    ]
    assert got == [src, dst, any_]


def test_or_program_is_laid_out_as_ss_does() -> None:
    ops = _ops(netlink.port_bytecode(netlink.PortFilter(P, "any")))
    assert ops == [
        (2, 8, 20), (0, 0, P), (3, 8, 12), (0, 0, P),  # sport == P, else jump onto dport
        (1, 4, 20),  # JMP: success of the first test goes to the end
        (4, 8, 20), (0, 0, P), (5, 8, 12), (0, 0, P),
    ]  # fmt: skip


def test_split_owner_walk_merges_sorted() -> None:
    a = fdwalk.OwnerScan({10: [7, 300]}, {5}, set())
    b = fdwalk.OwnerScan({10: [40], 11: [41]}, set(), {9})
    merged = fdwalk._merge([a, b])
    assert merged.holders == {10: [7, 40, 300], 11: [41]}
    assert (merged.denied, merged.gone) == ({5}, {9})


@pytest.mark.parametrize(("tty", "lines"), [(False, 1), (True, 5)])
def test_json_is_compact_for_pipes_and_indented_for_people(tty: bool, lines: int) -> None:
    out = io.StringIO()
    render.dump_json(Env(stdout=out, stdout_isatty=tty, color=False, width=80), {"a": [1]})
    assert json.loads(out.getvalue()) == {"a": [1]}
    assert len(out.getvalue().splitlines()) == lines


FIX = Path(__file__).parent.parent / "fixtures" / "netlink"


def _retype(data: bytes, mtype: int) -> bytes:
    """A recorded SOCK_DIAG_BY_FAMILY reply with every message's type set to ``mtype``."""
    out, off = bytearray(data), 0
    while off + 16 <= len(out):
        length, old = struct.unpack_from("=IH", out, off)
        if old == netlink.SOCK_DIAG_BY_FAMILY:
            struct.pack_into("=H", out, off + 4, mtype)
        off += (length + 3) & ~3
    return bytes(out)


def test_compat_replies_parse_like_sock_diag_ones() -> None:
    data = (FIX / "tcp6_listen.bin").read_bytes()
    new, _ = netlink.parse_messages(data, "tcp")
    old, done = netlink.parse_messages(_retype(data, netlink.TCPDIAG_GETSOCK), "tcp")
    assert done
    assert old == new
    assert old


def test_compat_request_layout() -> None:
    req = netlink.build_request_compat(0xFFF, 9, netlink.PortFilter(P, "any"))
    length, mtype, flags, seq, _pid = struct.unpack_from("=IHHII", req)
    assert (length, mtype, seq) == (len(req), netlink.TCPDIAG_GETSOCK, 9)
    assert flags == netlink.NLM_F_REQUEST | netlink.NLM_F_DUMP
    # inet_diag_req: family, src_len, dst_len, ext, sockid (48 bytes), states, dbs
    assert struct.unpack_from("=BBBB", req, 16) == (socket.AF_INET, 0, 0, 0)
    assert struct.unpack_from("=II", req, 16 + 4 + 48) == (0xFFF, 0)
    rta_len, rta_type = struct.unpack_from("=HH", req, 16 + 60)
    assert rta_type == netlink.INET_DIAG_REQ_BYTECODE
    assert req[16 + 64 :] == netlink.port_bytecode(netlink.PortFilter(P, "any"))
    assert rta_len == 4 + len(req[16 + 64 :])
