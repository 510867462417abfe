"""Read-only probes for the connection-level kinds: the edge that ``facts.gather`` calls.

- ``tls_answers``: does a loopback port speak TLS? One ClientHello, one read of the record
  header, close. Never aimed beyond loopback (DESIGN: probes stay on this machine).
- ``cgroup_connect_hooks``: cgroup BPF programs on the connect4/connect6 hooks, found by
  walking the cgroup2 tree with ``BPF_PROG_QUERY`` (include/uapi/linux/bpf.h); a program
  there returning 0 makes ``connect()`` fail with EPERM.
- ``describe_socket``: mode, owner and group of a Unix socket a connect() was denied.
- ``security_modules``: SELinux in enforcing mode, AppArmor profiles in enforce mode;
  ``landlock_abi``: whether programs here may sandbox their own connects (EACCES).

Each degrades to "unknown" (None, or a note) and never raises.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import platform
import socket
import struct
from pathlib import Path

from homeport.addr import ip

log = logging.getLogger("homeport.explain")

# ------------------------------------------------------------------ TLS (RFC 8446 §5.1)

#: TLSPlaintext.type values a TLS server sends first: handshake (22) or alert (21).
_TLS_FIRST = frozenset({21, 22})


def is_tls_record(head: bytes) -> bool:
    """Whether ``head`` starts a TLS record: content type, then legacy version 3.x."""
    return len(head) >= 3 and head[0] in _TLS_FIRST and head[1] == 3 and head[2] <= 4


def client_hello() -> bytes:
    """A real ClientHello from this Python's OpenSSL, produced in memory (no socket)."""
    import ssl

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = ctx.wrap_bio(incoming, outgoing)
    # SSLWantReadError is the expected end: the hello is written, the answer awaited.
    with contextlib.suppress(ssl.SSLWantReadError):
        tls.do_handshake()
    return outgoing.read()


def tls_answers(host: str, port: int, timeout: float = 1.0) -> bool | None:
    """True when ``host:port`` answers a ClientHello with TLS; None when unsure or not loopback."""
    a = ip(host)
    if a is None or not a.is_loopback:
        return None
    try:
        hello = client_hello()
        with socket.create_connection((str(a), port), timeout=timeout) as s:
            s.sendall(hello)
            head = s.recv(5)
    except (OSError, ValueError) as exc:
        log.debug("TLS probe of %s:%s: %s", host, port, exc)
        return None
    return is_tls_record(head)


# ------------------------------------------------------------------ cgroup BPF

#: enum bpf_attach_type (include/uapi/linux/bpf.h): the hooks that can veto a connect().
CONNECT_HOOKS: dict[int, str] = {10: "connect4", 11: "connect6"}
_BPF_PROG_QUERY = 16
_SYS_BPF = {"x86_64": 321, "aarch64": 280}
_WALK_LIMIT = 4000


def cgroup2_mount(mountinfo: str) -> str | None:
    """The cgroup2 mount point in ``/proc/self/mountinfo`` text (proc(5): field 5, fstype
    after the `` - `` separator)."""
    for line in mountinfo.splitlines():
        left, sep, right = line.partition(" - ")
        if sep and right.split(" ", 1)[0] == "cgroup2":
            fields = left.split(" ")
            if len(fields) > 4:
                return fields[4].replace("\\040", " ")
    return None


def query_attr(cgroup_fd: int, attach_type: int) -> bytes:
    """``union bpf_attr`` for BPF_PROG_QUERY: target_fd, attach_type, query_flags,
    attach_flags, prog_ids (NULL: count only), prog_cnt; padded to the kernel's size."""
    return struct.pack("<IIIIQI", cgroup_fd, attach_type, 0, 0, 0, 0).ljust(64, b"\0")


def query_count(attr: bytes) -> int:
    """prog_cnt, which the kernel writes back into the attr (offset 24)."""
    return int(struct.unpack_from("<I", attr, 24)[0])


def cgroup_connect_hooks(proc: Path = Path("/proc")) -> tuple[tuple[str, ...], str | None]:
    """``("/system.slice/x.service: connect4 (1 program)", ...)``, or a note saying why not."""
    nr = _SYS_BPF.get(platform.machine())
    if nr is None or not hasattr(os, "O_DIRECTORY"):
        return (), f"cgroup BPF not read on {platform.system()} {platform.machine()}"
    try:
        root = cgroup2_mount((proc / "self/mountinfo").read_text())
    except OSError:
        root = None
    if root is None:
        return (), "no cgroup2 mount, so no cgroup BPF hooks"
    libc = ctypes.CDLL(None, use_errno=True)
    found: list[str] = []
    for n, (path, dirs, _files) in enumerate(os.walk(root)):
        if n >= _WALK_LIMIT:
            return tuple(found), f"stopped after {_WALK_LIMIT} cgroups"
        dirs.sort()
        hooks, err = _query_dir(libc, nr, path)
        if err is not None:
            return tuple(found), err
        if hooks:
            found.append(f"{'/' + os.path.relpath(path, root).lstrip('.')}: {hooks}")
    return tuple(found), None


def _query_dir(libc: ctypes.CDLL, nr: int, path: str) -> tuple[str, str | None]:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return "", None  # the cgroup went away mid-walk
    try:
        parts = []
        for attach, name in CONNECT_HOOKS.items():
            buf = ctypes.create_string_buffer(query_attr(fd, attach), 64)
            if libc.syscall(nr, _BPF_PROG_QUERY, buf, 64) < 0:
                err = ctypes.get_errno()
                if err in (1, 13):  # EPERM/EACCES: bpf_prog_query needs CAP_NET_ADMIN
                    return "", "cgroup BPF hooks not read: needs root (CAP_NET_ADMIN)"
                return "", f"cgroup BPF hooks not read: {os.strerror(err)}"
            count = query_count(buf.raw)
            if count:
                parts.append(f"{name} ({count} program{'s' if count > 1 else ''})")
        return ", ".join(parts), None
    finally:
        os.close(fd)


# ------------------------------------------------------------------ Unix sockets


def describe_socket(path: str) -> str:
    """Type, mode, owner and group of a Unix socket path, as a person reads them."""
    import grp
    import pwd
    import stat

    try:
        st = os.stat(path)
    except FileNotFoundError:
        return "it does not exist now"
    except PermissionError:
        return "a directory above it is not searchable by this user"
    except OSError as exc:
        return f"it cannot be examined ({exc.strerror})"
    try:
        owner = pwd.getpwuid(st.st_uid).pw_name
    except KeyError:
        owner = str(st.st_uid)
    try:
        group = grp.getgrgid(st.st_gid).gr_name
    except KeyError:
        group = str(st.st_gid)
    kind = "a socket" if stat.S_ISSOCK(st.st_mode) else "not a socket"
    return f"{kind}, {stat.filemode(st.st_mode)}, owner {owner}, group {group}"


#: ``__SO_ACCEPTCON`` in /proc/net/unix's Flags column (include/linux/net.h): listening.
_ACCEPTCON = 0x10000


def parse_unix_listeners(text: str) -> frozenset[str]:
    """Paths of listening Unix sockets in /proc/net/unix text (net/unix/af_unix.c
    unix_seq_show: Num RefCount Protocol Flags Type St Inode Path)."""
    out: set[str] = set()
    for line in text.splitlines()[1:]:
        fields = line.split(None, 7)
        if len(fields) == 8 and int(fields[3], 16) & _ACCEPTCON:
            out.add(fields[7])
    return frozenset(out)


def unix_listeners(proc: Path = Path("/proc")) -> frozenset[str]:
    """Every listening Unix socket path in this network namespace (empty when unreadable)."""
    try:
        return parse_unix_listeners((proc / "net/unix").read_text())
    except OSError:
        return frozenset()


def unix_listening(path: str, proc: Path = Path("/proc")) -> bool | None:
    """Whether a socket listens on ``path`` now (this network namespace); None: unknown."""
    try:
        text = (proc / "net/unix").read_text()
    except OSError:
        return None
    paths = parse_unix_listeners(text)
    return path in paths or os.path.realpath(path) in paths


# ------------------------------------------------------------------ security modules


def security_modules(sys_root: Path = Path("/sys")) -> tuple[str, ...]:
    """Security modules that can deny connect() here and are enforcing now."""
    out: list[str] = []
    if _read(sys_root / "fs/selinux/enforce") == "1":
        out.append("SELinux enforcing (`ausearch -m avc -ts recent` shows name_connect denials)")
    if _read(sys_root / "module/apparmor/parameters/enabled") == "Y":
        profiles = _read(sys_root / "kernel/security/apparmor/profiles")
        enforced = sum(1 for x in (profiles or "").splitlines() if x.endswith("(enforce)"))
        if enforced or profiles is None:
            count = f"{enforced} profiles in enforce mode" if profiles is not None else "on"
            out.append(f"AppArmor {count} (`aa-status`; denials in the kernel log)")
    return tuple(out)


def landlock_abi() -> int | None:
    """The Landlock ABI version (>= 4 can restrict TCP connect), or None when unavailable."""
    if platform.system() != "Linux":
        return None
    libc = ctypes.CDLL(None, use_errno=True)
    # landlock_create_ruleset(NULL, 0, LANDLOCK_CREATE_RULESET_VERSION): same number on
    # every architecture (the unified syscall table of 5.13+).
    version = libc.syscall(444, None, 0, 1)
    return int(version) if version > 0 else None


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None
