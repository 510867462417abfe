"""The owner walk in the kernel: a BPF ``task_file`` iterator (Linux 5.8+, root).

The procfs walk (``fdwalk``) pays one ``readlink`` per fd of every process, and no procfs
file maps a socket to its holders (docs/design-notes.md, "who: narrowing the owner walk").
A BPF iterator runs a small program of ours once per (task, fd) inside the kernel: it
compares the fd's inode number with the sockets we asked about and writes only the matches,
``(tgid, fd, inode)``, 16 bytes each, to the file we read. 12,000 fds cost 4-8 ms instead
of 60-100 ms (bench/README.md, "who P").

What it needs, checked in this order, any miss meaning "walk /proc instead":

- Linux on x86_64 or aarch64 (the ``bpf`` syscall number), run as root (loading a tracing
  program needs CAP_BPF and CAP_PERFMON; unprivileged BPF is off on most distributions);
- the kernel's BTF (``/sys/kernel/btf/vmlinux``): the program reads ``file->f_inode->i_ino``
  and ``task->tgid``, whose offsets differ between kernel builds. Finding them reads the
  5 MB BTF (40-90 ms here), so they are kept per kernel build in the state dir
  (``kernel-btf.json``); a kernel that refused the program is kept there too;
- the same PID namespace as the kernel's tasks report: ``task->tgid`` is the PID in the
  initial namespace, so the walk also looks for an fd of our own (a pipe) and gives up if it
  does not come back with our own PID (inside a container).

The program, in the kernel's own terms (registers r1-r10, r10 the frame pointer), reads as
the C it stands for::

    file = ctx->file; task = ctx->task;            // NULL once a task's fds end
    if (!file || !task) return 0;
    inode = file->f_inode; if (!inode) return 0;
    if (ctx->fd <= 2) seq_write(ctx->meta->seq, {task->tgid, ctx->fd, 0}, 16);  // a mark
    ino = inode->i_ino;
    if (ino is wanted) seq_write(ctx->meta->seq, {task->tgid, ctx->fd, ino}, 16);
    return 0;

"is wanted" is one compare per asked inode (up to ``MAX_INODES``), else "is a socket"
(``i_mode & S_IFMT == S_IFSOCK``) with the filtering done here. The marks say which
processes the kernel walked: it may leave some out (a sandbox's PID 1 here, whose fds root
may not read through /proc either), and ``fdwalk`` looks for what it did not find in those.
"""

from __future__ import annotations

import contextlib
import errno
import os
import struct
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable

BTF_PATH = "/sys/kernel/btf/vmlinux"
CACHE_NAME = "kernel-btf.json"
#: Above this many inodes the program matches every socket and we filter: each wanted
#: inode is 3 instructions, and the verifier walks each compare's branch.
MAX_INODES = 256
#: ``bpf(2)``'s number, where we know it; elsewhere the walk stays in /proc.
SYSCALL_BPF = {"x86_64": 321, "aarch64": 280}
#: Set to ``procfs`` to never use the kernel iterator (benchmarks, comparisons).
ENV_WALK = "HOMEPORT_OWNER_WALK"

# bpf(2) commands, program and attach types (include/uapi/linux/bpf.h).
BPF_PROG_LOAD = 5
BPF_LINK_CREATE = 28
BPF_ITER_CREATE = 33
BPF_PROG_TYPE_TRACING = 26
BPF_TRACE_ITER = 28
BPF_FUNC_SEQ_WRITE = 127
ATTR_SIZE = 128  # what we fill of union bpf_attr; the kernel checks the rest is zero
#: Part of the cache key: bump it when the program or its loading changes, so that a
#: refusal kept for this kernel is asked again.
PROGRAM_VERSION = 2  # 2: the marks for fds 0-2
#: Refusals kept for the kernel: no permission (a container, a lockdown), no such
#: program type or helper (an older kernel). Others (ENOMEM, ...) may pass: asked again.
LASTING = {errno.EPERM, errno.EACCES, errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, 524}

# The iterator's context, struct bpf_iter__task_file: meta, task, fd, file at 0/8/16/24.
CTX_META, CTX_TASK, CTX_FD, CTX_FILE = 0, 8, 16, 24
RECORD = struct.Struct("=IIQ")  # tgid, fd, inode: what the program writes per match
S_IFMT, S_IFSOCK = 0xF000, 0xC000


class Unavailable(OSError):
    """The kernel walk cannot run here; the caller walks /proc."""

    def __str__(self) -> str:
        return str(self.strerror)  # the reason alone, not "[Errno 0] ..."


def usable(proc: str = "/proc") -> bool:
    """Cheap checks only (no syscall beyond a stat): worth trying the kernel walk?"""
    return (
        proc == "/proc"
        and sys.platform.startswith("linux")
        and os.environ.get(ENV_WALK, "auto") != "procfs"
        and os.uname().machine in SYSCALL_BPF
        and os.geteuid() == 0
        and os.path.exists(BTF_PATH)
    )


def scan(inodes: set[int] | None) -> tuple[dict[int, list[int]], set[int]]:
    """Socket inode -> sorted PIDs holding it (``inodes=None``: every socket), walked by the
    kernel, and the PIDs it walked (see ``_scan``). Raises :class:`Unavailable` (an
    ``OSError``) when it cannot run here."""
    facts = _facts()
    try:
        return _scan(facts, inodes)
    except Unavailable:
        raise
    except OSError as exc:
        if not facts.get("cached"):
            refused = exc
        else:  # offsets from an earlier parse: parse again, once
            try:
                return _scan(_facts(refresh=True), inodes)
            except Unavailable:
                raise
            except OSError as again:
                refused = again
    if refused.errno in LASTING:  # this kernel (or container) says no: do not ask each time
        _remember({"error": str(refused)})
    raise Unavailable(refused.errno, f"the kernel refused the owner walk: {refused}")


def _scan(facts: dict[str, int], inodes: set[int] | None) -> tuple[dict[int, list[int]], set[int]]:
    """The walk. ``walked`` is every PID with a mark (an fd 0-2): the kernel may leave out a
    process (seen here: a sandbox's PID 1, whose fds root may not read through /proc either),
    so a socket with no holder found is looked for in the others through /proc, which also
    says who denied it (``fdwalk.OwnerWalk.result``)."""
    read_fd, write_fd = os.pipe()  # the sentinel: an fd we hold, with an inode of its own
    try:
        sentinel = os.fstat(read_fd).st_ino
        few = inodes is not None and len(inodes) <= MAX_INODES
        wanted = sorted((inodes or set()) | {sentinel}) if few else [sentinel]
        data = _run(program(facts, wanted, sockets=not few), facts["attach"])
    finally:
        os.close(read_fd)
        os.close(write_fd)
    holders: dict[int, set[int]] = {}
    walked: set[int] = set()
    keep = None if inodes is None else inodes | {sentinel}  # filter first: 0.9 vs 4 ms
    for tgid, _fd, inode in RECORD.iter_unpack(data):  # for 12,000 records and 2,000 wanted
        if inode == 0:  # a mark: no inode is 0
            walked.add(tgid)
        elif keep is None or inode in keep:
            holders.setdefault(inode, set()).add(tgid)
    if holders.pop(sentinel, set()) != {os.getpid()}:  # both ends of the pipe: one PID
        raise Unavailable(0, "the kernel's PIDs are not this namespace's (a container?)")
    return {inode: sorted(pids) for inode, pids in holders.items()}, walked


# --- the program ---------------------------------------------------------------------------

# Opcodes (include/uapi/linux/bpf_common.h): class | size | mode, or class | op | source.
LDX_W, LDX_H, LDX_DW = 0x61, 0x69, 0x79  # dst = *(size *)(src + off)
STX_W, STX_DW = 0x63, 0x7B  # *(size *)(dst + off) = src
ST_DW = 0x7A  # *(u64 *)(dst + off) = imm
LD_IMM64 = 0x18  # dst = 64-bit immediate (two instruction slots)
MOV_IMM, MOV_REG, ADD_IMM, AND_IMM = 0xB7, 0xBF, 0x07, 0x57
JEQ_IMM, JNE_IMM, JGT_IMM, JEQ_REG, JA = 0x15, 0x55, 0x25, 0x1D, 0x05
CALL, EXIT = 0x85, 0x95
R0, R1, R2, R3, R4, R5, R6, R7, R8, R9, FP = range(11)


class _Asm:
    """Instructions, with jumps to named labels resolved by :meth:`code`."""

    def __init__(self) -> None:
        self.slots: list[tuple[int, int, int, int, int, str | None]] = []
        self.labels: dict[str, int] = {}

    def op(self, code: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> None:
        self.slots.append((code, dst, src, off, imm, None))

    def jump(self, code: int, dst: int, label: str, *, src: int = 0, imm: int = 0) -> None:
        self.slots.append((code, dst, src, 0, imm, label))

    def load64(self, dst: int, value: int) -> None:
        self.op(LD_IMM64, dst, imm=value & 0xFFFFFFFF)
        self.op(0, imm=value >> 32)  # the second slot carries the high half

    def label(self, name: str) -> None:
        self.labels[name] = len(self.slots)

    def code(self) -> bytes:
        out = bytearray()
        for at, (code, dst, src, off, imm, label) in enumerate(self.slots):
            if label is not None:
                off = self.labels[label] - at - 1  # jumps count from the next instruction
            imm = imm - (1 << 32) if imm >= 1 << 31 else imm  # the field is a signed s32
            out += struct.pack("=BBhi", code, src << 4 | dst, off, imm)
        return bytes(out)


def program(facts: dict[str, int], wanted: Iterable[int], *, sockets: bool) -> bytes:
    """The iterator program (see the module docstring): writes ``(tgid, fd, inode)`` for
    each fd whose inode is in ``wanted``, and with ``sockets`` for every socket too; and
    ``(tgid, fd, 0)`` for fds 0-2, the marks of the tasks it walked (see ``walked``)."""
    a = _Asm()
    a.op(LDX_DW, R6, R1, CTX_META)  # r6 = ctx->meta (kept across the helper calls)
    a.op(LDX_DW, R7, R1, CTX_FILE)  # r7 = ctx->file
    a.jump(JEQ_IMM, R7, "out", imm=0)
    a.op(LDX_DW, R2, R1, CTX_TASK)  # r2 = ctx->task
    a.jump(JEQ_IMM, R2, "out", imm=0)
    a.op(LDX_W, R3, R1, CTX_FD)  # r3 = ctx->fd
    a.op(LDX_W, R8, R2, facts["tgid"])  # r8 = task->tgid
    a.op(LDX_DW, R9, R7, facts["f_inode"])  # r9 = file->f_inode
    a.jump(JEQ_IMM, R9, "out", imm=0)
    a.jump(JGT_IMM, R3, "match", imm=2)  # fds 0-2: a mark, (tgid, fd, 0), then match
    a.op(STX_W, FP, R3, -24)  # the fd outlives the helper call on the stack
    a.op(STX_W, FP, R8, -16)
    a.op(STX_W, FP, R3, -12)
    a.op(ST_DW, FP, off=-8, imm=0)
    _seq_write(a)
    a.op(LDX_W, R3, FP, -24)
    a.label("match")
    a.op(LDX_DW, R4, R9, facts["i_ino"])  # r4 = inode->i_ino
    for inode in wanted:
        a.load64(R5, inode)
        a.jump(JEQ_REG, R4, "emit", src=R5)
    if sockets:
        a.op(LDX_H, R5, R9, facts["i_mode"])  # r5 = inode->i_mode & S_IFMT
        a.op(AND_IMM, R5, imm=S_IFMT)
        a.jump(JNE_IMM, R5, "out", imm=S_IFSOCK)
    else:
        a.jump(JA, 0, "out")
    a.label("emit")  # the record on the stack, then seq_write(meta->seq, fp - 16, 16)
    a.op(STX_W, FP, R8, -16)
    a.op(STX_W, FP, R3, -12)
    a.op(STX_DW, FP, R4, -8)
    _seq_write(a)
    a.label("out")
    a.op(MOV_IMM, R0, imm=0)
    a.op(EXIT)
    return a.code()


def _seq_write(a: _Asm) -> None:
    """seq_write(meta->seq, fp - 16, 16): the record on the stack to our file. The helper
    call clobbers r1-r5; r6-r9 survive it."""
    a.op(LDX_DW, R1, R6, 0)  # r1 = meta->seq
    a.op(MOV_REG, R2, FP)
    a.op(ADD_IMM, R2, imm=-16)
    a.op(MOV_IMM, R3, imm=RECORD.size)
    a.op(CALL, imm=BPF_FUNC_SEQ_WRITE)


# --- running it ----------------------------------------------------------------------------


def _run(code: bytes, attach: int) -> bytes:
    """Load ``code`` as a task_file iterator (``attach``: the BTF id of
    ``bpf_iter_task_file``), run it once and return what it wrote."""
    import ctypes  # here: 1.7 ms, and only the kernel walk needs it

    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    number = SYSCALL_BPF[os.uname().machine]

    def bpf(cmd: int, attr: bytearray) -> int:
        buf = ctypes.create_string_buffer(bytes(attr), ATTR_SIZE)
        fd = libc.syscall(number, cmd, buf, ATTR_SIZE)
        if fd < 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err))
        return int(fd)

    insns = ctypes.create_string_buffer(code, len(code))
    license_ = ctypes.create_string_buffer(b"GPL")  # seq_write is a GPL-only helper

    def load(log: ctypes.Array[ctypes.c_char] | None) -> int:
        attr = bytearray(ATTR_SIZE)
        struct.pack_into(
            "=IIQQIIQ", attr, 0, BPF_PROG_TYPE_TRACING, len(code) // 8,
            ctypes.addressof(insns), ctypes.addressof(license_),
            1 if log else 0, len(log) if log else 0, ctypes.addressof(log) if log else 0,
        )  # fmt: skip
        attr[48:56] = b"hp_owner"  # prog_name: how bpftool and /proc/PID/fdinfo name it
        struct.pack_into("=I", attr, 68, BPF_TRACE_ITER)  # expected_attach_type
        struct.pack_into("=I", attr, 108, attach)  # attach_btf_id: bpf_iter_task_file
        return bpf(BPF_PROG_LOAD, attr)

    try:  # no verifier log: writing it costs time, and a log too small fails the load
        prog = load(None)
    except OSError as exc:
        log = ctypes.create_string_buffer(1 << 18)
        with contextlib.suppress(OSError):  # again, for the verifier's reason
            os.close(load(log))
        lines = log.value.decode(errors="replace").strip().splitlines()
        raise OSError(exc.errno, f"{exc.strerror}: {lines[-1] if lines else ''}") from None
    try:
        attr = bytearray(ATTR_SIZE)
        struct.pack_into("=III", attr, 0, prog, 0, BPF_TRACE_ITER)  # prog, target, type
        link = bpf(BPF_LINK_CREATE, attr)
    finally:
        os.close(prog)
    try:
        attr = bytearray(ATTR_SIZE)
        struct.pack_into("=I", attr, 0, link)
        reader = bpf(BPF_ITER_CREATE, attr)
    finally:
        os.close(link)
    try:
        chunks = []
        while chunk := os.read(reader, 1 << 16):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(reader)


# --- what the program needs to know of this kernel ------------------------------------------


def _kernel_key() -> str:
    uname = os.uname()
    try:
        size = os.stat(BTF_PATH).st_size
    except OSError as exc:
        raise Unavailable(exc.errno, f"no kernel BTF: {exc}") from exc
    return f"v{PROGRAM_VERSION} {uname.release} {uname.version} {uname.machine} btf={size}"


def _cache_path() -> str:
    from homeport.paths import state_dir_name

    return os.path.join(state_dir_name(), CACHE_NAME)


_memo: dict[str, int] | None = None


def _facts(*, refresh: bool = False) -> dict[str, int]:
    """BTF ids and offsets for this kernel: from the cache, else parsed and cached."""
    global _memo
    if _memo is not None and not refresh:
        return _memo
    key = _kernel_key()
    kept = None if refresh else _cached(key)
    if kept is not None and "error" in kept:
        raise Unavailable(0, f"the kernel refused the owner walk before: {kept['error']}")
    if kept is not None and isinstance(facts := kept.get("facts"), dict):
        _memo = {**facts, "cached": 1}
        return _memo
    try:
        with open(BTF_PATH, "rb") as f:
            facts = parse_btf(f.read())
    except (OSError, ValueError) as exc:
        _remember({"error": f"reading {BTF_PATH}: {exc}"}, key)
        raise Unavailable(0, f"cannot read the kernel's BTF: {exc}") from exc
    _remember({"facts": facts}, key)
    _memo = facts
    return facts


def _cached(key: str) -> dict[str, object] | None:
    import json  # here, like ctypes: fdwalk is imported before the CLI's own imports

    try:
        with open(_cache_path(), encoding="utf-8") as f:
            kept = json.load(f)
    except (OSError, ValueError):
        return None
    return kept if isinstance(kept, dict) and kept.get("kernel") == key else None


def _remember(entry: dict[str, object], key: str | None = None) -> None:
    """Keep ``entry`` for this kernel in the state dir, atomically; best effort."""
    import json

    try:
        path = _cache_path()
        tmp = f"{path}.{os.getpid()}.tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump({"kernel": key or _kernel_key(), **entry}, f)
        os.replace(tmp, path)
    except OSError:
        pass


# --- BTF: the kernel's own description of its types (Documentation/bpf/btf.rst) -------------

# Bytes after each type's 12-byte header, by kind: fixed, or per vlen item.
BTF_STRUCT, BTF_UNION, BTF_FUNC = 4, 5, 12
_FIXED = {1: 4, 3: 12, 14: 4, 17: 4}  # INT, ARRAY, VAR, DECL_TAG
_PER_ITEM = {4: 12, 5: 12, 6: 8, 13: 8, 15: 12, 19: 12}  # STRUCT UNION ENUM PROTO DATASEC ENUM64
_QUALIFIERS = {8, 9, 10, 11, 18}  # TYPEDEF VOLATILE CONST RESTRICT TYPE_TAG: follow .type
_HEADER = struct.Struct("=HBBIIIII")
_TYPE = struct.Struct("=III")
BTF_MAGIC = 0xEB9F

#: What the program reads: (struct, member) -> key of the facts.
MEMBERS = {
    ("file", "f_inode"): "f_inode",
    ("inode", "i_ino"): "i_ino",
    ("inode", "i_mode"): "i_mode",
    ("task_struct", "tgid"): "tgid",
}
ITER_FUNC = "bpf_iter_task_file"


def parse_btf(data: bytes) -> dict[str, int]:
    """The attach id of ``bpf_iter_task_file`` and the byte offsets in :data:`MEMBERS`,
    from raw BTF. Members inside anonymous structs and unions are found too. Raises
    ValueError when the BTF is not one or lacks one of them."""
    if len(data) < _HEADER.size:
        raise ValueError("BTF too short")
    magic, _version, _flags, hdr_len, type_off, type_len, str_off, str_len = _HEADER.unpack_from(
        data
    )
    if magic != BTF_MAGIC:
        raise ValueError("not BTF (bad magic)")
    strings = data[hdr_len + str_off : hdr_len + str_off + str_len]

    def name_at(offset: int) -> str:
        return strings[offset : strings.index(b"\0", offset)].decode()

    def offsets_of(name: str) -> Iterable[int]:  # where a name is in the string table
        needle, at = b"\0" + name.encode() + b"\0", -1
        while (at := strings.find(needle, at + 1)) >= 0:  # kernels dedup; BTF need not
            yield at + 1

    kinds = {s: BTF_STRUCT for s, _m in MEMBERS} | {ITER_FUNC: BTF_FUNC}
    wanted = {at: (name, kind) for name, kind in kinds.items() for at in offsets_of(name)}
    types = _TypeIndex(data, hdr_len + type_off, type_len)
    found: dict[str, tuple[int, int]] = {}  # name -> (type id, position)
    while len(found) < len(kinds) and (type_id := types.step()):
        at = types.where[type_id]
        name, info, _size = _TYPE.unpack_from(data, at)
        hit = wanted.get(name)
        if hit is not None and info >> 24 & 0x1F == hit[1] and hit[0] not in found:
            found[hit[0]] = (type_id, at)
    missing = kinds.keys() - found.keys()
    if missing:
        raise ValueError(f"the kernel's BTF lacks {', '.join(sorted(missing))}")

    def members(at: int, base: int) -> Iterable[tuple[str, int]]:
        _name, info, _size = _TYPE.unpack_from(data, at)
        bitfields = info >> 31
        for i in range(info & 0xFFFF):
            name, type_id, bits = _TYPE.unpack_from(data, at + _TYPE.size + 12 * i)
            offset = base + ((bits & 0xFFFFFF) if bitfields else bits) // 8
            if name:
                yield name_at(name), offset
                continue
            while (inner_at := types.position(type_id)) is not None:  # anonymous: a struct or
                _n, inner, next_id = _TYPE.unpack_from(data, inner_at)  # union, maybe const
                if inner >> 24 & 0x1F in (BTF_STRUCT, BTF_UNION):
                    yield from members(inner_at, offset)
                    break
                if inner >> 24 & 0x1F not in _QUALIFIERS:
                    break
                type_id = next_id

    facts = {"attach": found[ITER_FUNC][0]}
    for (struct_name, member), key in MEMBERS.items():
        offsets = dict(members(found[struct_name][1], 0))
        if member not in offsets:
            raise ValueError(f"the kernel's struct {struct_name} has no {member}")
        facts[key] = offsets[member]
    return facts


class _TypeIndex:
    """Positions of BTF types by id, found by walking the type section as far as needed
    (each type's size depends on its kind, so there is no jumping ahead)."""

    def __init__(self, data: bytes, start: int, length: int) -> None:
        self.data, self.at, self.end = data, start, start + length
        self.where: list[int] = [0]  # id 0 is void

    def step(self) -> int:
        """Index the next type; its id, or 0 at the end of the section."""
        if self.at + _TYPE.size > self.end:
            return 0
        _name, info, _size = _TYPE.unpack_from(self.data, self.at)
        kind, vlen = info >> 24 & 0x1F, info & 0xFFFF
        self.where.append(self.at)
        self.at += _TYPE.size + _FIXED.get(kind, 0) + _PER_ITEM.get(kind, 0) * vlen
        return len(self.where) - 1

    def position(self, type_id: int) -> int | None:
        while type_id >= len(self.where):
            if not self.step():
                return None
        return self.where[type_id] if type_id > 0 else None
