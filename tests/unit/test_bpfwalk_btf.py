"""Reading the kernel's BTF for the kernel owner walk (inventory/bpfwalk.parse_btf), on a
small BTF built here with the shapes real kernels use: anonymous unions, qualifiers,
bitfield offsets and a forward declaration with the same name as the struct."""

from __future__ import annotations

import struct

import pytest

from homeport.inventory import bpfwalk

FWD, INT, PTR, STRUCT, UNION, CONST, FUNC, PROTO = 7, 1, 2, 4, 5, 10, 12, 13


class _Btf:
    def __init__(self) -> None:
        self.strings = bytearray(b"\0")
        self.types = bytearray()
        self.count = 0

    def name(self, text: str) -> int:
        if not text:
            return 0
        at = len(self.strings)
        self.strings += text.encode() + b"\0"
        return at

    def add(self, name: str, kind: int, vlen: int, size_or_type: int, tail: bytes = b"",
            bitfields: bool = False) -> int:  # fmt: skip
        info = kind << 24 | vlen | (1 << 31 if bitfields else 0)
        self.types += struct.pack("=III", self.name(name), info, size_or_type) + tail
        self.count += 1
        return self.count

    def members(self, *items: tuple[str, int, int]) -> bytes:
        return b"".join(struct.pack("=III", self.name(n), t, bits) for n, t, bits in items)

    def blob(self) -> bytes:
        header = struct.pack(
            "=HBBIIIII", 0xEB9F, 1, 0, 24, 0, len(self.types), len(self.types), len(self.strings)
        )
        return header + bytes(self.types) + bytes(self.strings)


def _kernel_like(with_iter: bool = True) -> tuple[bytes, int]:
    b = _Btf()
    b.add("file", FWD, 0, 0)  # a declaration first, its name not deduplicated: a STRUCT counts
    u32 = b.add("unsigned int", INT, 0, 4, struct.pack("=I", 32))
    ptr = b.add("", PTR, 0, 0)
    b.add("inode", STRUCT, 2, 128, b.members(("i_mode", u32, 0), ("i_ino", u32, 64 * 8)))
    # struct file's anonymous member is a const union defined after the iterator's FUNC,
    # past where the search for names stops.
    const = b.count + 5
    b.add("file", STRUCT, 2, 64, b.members(("f_mode", u32, 0), ("", const, 32 * 8)))
    # A struct with bitfields: each offset's low 24 bits are the bit offset.
    b.add("task_struct", STRUCT, 1, 4096, b.members(("tgid", u32, 1268 * 8)), bitfields=True)
    proto = b.add("", PROTO, 0, 0)
    attach = b.add("bpf_iter_task_file" if with_iter else "other", FUNC, 0, proto)
    assert b.add("", CONST, 0, const + 1) == const
    b.add("", UNION, 1, 8, b.members(("f_inode", ptr, 0)))
    return b.blob(), attach


def test_offsets_and_the_attach_id_are_found() -> None:
    blob, attach = _kernel_like()
    assert bpfwalk.parse_btf(blob) == {
        "attach": attach,
        "f_inode": 32,  # inside an anonymous, const-qualified union
        "i_ino": 64,
        "i_mode": 0,
        "tgid": 1268,
    }


def test_a_kernel_without_the_iterator_is_refused_by_name() -> None:
    blob, _ = _kernel_like(with_iter=False)
    with pytest.raises(ValueError, match="bpf_iter_task_file"):
        bpfwalk.parse_btf(blob)


def test_not_btf() -> None:
    with pytest.raises(ValueError, match="magic"):
        bpfwalk.parse_btf(b"\0" * 64)
    with pytest.raises(ValueError, match="short"):
        bpfwalk.parse_btf(b"\x9f\xeb")


def test_the_program_jumps_land_on_its_labels() -> None:
    facts = {"attach": 1, "f_inode": 32, "i_ino": 64, "i_mode": 0, "tgid": 1268}
    code = bpfwalk.program(facts, [5, 1 << 40], sockets=False)
    insns = [struct.unpack_from("=BBhi", code, at) for at in range(0, len(code), 8)]
    exit_at = len(insns) - 1
    assert insns[exit_at][0] == bpfwalk.EXIT
    assert insns[exit_at - 1][3] == 0  # r0 = 0: "out"
    mark_call, emit_call = (i for i, x in enumerate(insns) if x[0] == bpfwalk.CALL)
    match_at = mark_call + 2  # after the call, the fd back from the stack, then "match"
    emit_at = emit_call - 7  # the record's three stores and seq_write's four set-ups
    assert insns[match_at][0] == bpfwalk.LDX_DW  # r4 = inode->i_ino
    for at, (op, _regs, off, _imm) in enumerate(insns):
        target = at + 1 + off
        if op in (bpfwalk.JEQ_IMM, bpfwalk.JNE_IMM, bpfwalk.JA):
            assert target == exit_at - 1
        elif op == bpfwalk.JGT_IMM:
            assert target == match_at  # fds above 2: no mark
        elif op == bpfwalk.JEQ_REG:
            assert target == emit_at
    wide = [x for x in insns if x[0] == bpfwalk.LD_IMM64]
    assert [w[3] for w in wide] == [5, 0]  # low halves; the high one is the next slot
    high = insns[insns.index(wide[1]) + 1]
    assert high[3] == 1 << 8  # (1 << 40) >> 32
