"""Cross-process port leases: one record per port in one file, guarded by record locks.

A lease says "port P was handed to the process (PID, start time) until T". Another
picker skips P while that process still runs with that start time and T has not passed.

Storage: ``<state dir>/leases/ports.leases``, a sparse file of 65,536 fixed-size records
(record P at offset ``P * RECORD_SIZE``). A picker locks just that record with a POSIX
byte-range lock (``lockf``, non-blocking), reads it, runs the bind test, writes its
lease in place and unlocks.

Why this and not SQLite or one lock file per port:

* **No global lock.** Picking is a hot path run by many processes at once (pytest-xdist
  workers, parallel CI jobs). Two pickers meet only on the very same number, and the
  loser moves on at once (``LOCK_NB``) instead of sleeping in SQLite's busy handler,
  whose back-off (1, 2, 5, 10 … 100 ms) ruins throughput under contention.
* **Cheap.** One open descriptor per process; a pick is pread + pwrite on it.
  Measured here on ext4: creating one lock file per port cost ~250 µs a pick, the
  record write ~10 µs.
* **Crash-safe.** The state is the record, written while its lock is held, so a picker
  that dies leaves either the old lease or the new one; the kernel drops a dead
  process's locks, so nothing needs cleaning. A released lease is a blank record.

POSIX record locks belong to the process and are all dropped when it closes *any*
descriptor of the file, so the store keeps one descriptor per process (reopened after a
fork) and never closes it; a thread lock serializes threads, which share those locks.

Holder identity is PID plus the kernel's start time of that process (field 22 of
``/proc/PID/stat``, proc(5)): a PID reused by a new process is not the old holder.

Record format: one JSON object padded with spaces to RECORD_SIZE bytes::

    {"port": 21034, "proto": "tcp", "pid": 4242, "start": "1234567", "created": 1.7e9,
     "expires": 1.7e9 or null, "name": "api" or null}

Names (``homeport port NAME``) remember their last port in ``name-<hash>.json`` files,
written rarely and atomically (write, then rename).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from homeport.inventory import procfs
from homeport.paths import LEASES, state_dir

log = logging.getLogger("homeport.ports.lease")

PROC = Path("/proc")
#: Bytes per lease record; a released lease is a blank record.
RECORD_SIZE = 384
#: Longest name a lease can carry (the record must fit RECORD_SIZE).
MAX_NAME = 200
#: Ports 0..65535: the file's records.
_PORTS = 65536
LEASE_FILE = "ports.leases"


@dataclass(frozen=True, slots=True)
class Holder:
    """A process identity that survives PID reuse: PID + kernel start time."""

    pid: int
    start: str

    def to_json(self) -> dict[str, Any]:
        return {"pid": self.pid, "start": self.start}


@dataclass(frozen=True, slots=True)
class Lease:
    port: int
    proto: str
    holder: Holder
    created: float
    expires: float | None = None
    name: str | None = None
    #: True: the lease also ends when the holder exits. False: only expiry ends it (the
    #: CLI's leases: ``PORT=$(homeport port)`` runs homeport in a throwaway subshell, so
    #: its parent is gone a moment later; measured with bash and dash).
    bound: bool = True
    #: For an address lease (``ports.address``): the loopback address leased; ``port`` is
    #: then the port the holder wants on it (0: none given).
    address: str | None = None

    def encode(self) -> bytes:
        """JSON padded with spaces to :data:`RECORD_SIZE`: rewriting a record in place
        then never truncates or grows the file (a truncate + write costs ext4 a block
        allocation each time, measured 4x slower)."""
        name = "null" if self.name is None else json.dumps(self.name)
        expires = "null" if self.expires is None else repr(self.expires)
        start = json.dumps(self.holder.start)
        # Formatted by hand: json.dumps of the whole dict was ~10% of a pick.
        data = (
            f'{{"port": {self.port}, "proto": "{self.proto}", "pid": {self.holder.pid}, '
            f'"start": {start}, "created": {self.created!r}, "expires": {expires}, '
            f'"name": {name}, "bound": {"true" if self.bound else "false"}'
            + ("" if self.address is None else f', "addr": "{self.address}"')
            + "}"
        ).encode()
        if len(data) > RECORD_SIZE:
            raise ValueError(f"lease record too long ({len(data)} bytes); shorten the name")
        return data.ljust(RECORD_SIZE)

    def to_json(self) -> dict[str, Any]:
        extra = {} if self.address is None else {"address": self.address}
        return {
            **extra,
            "port": self.port,
            "proto": self.proto,
            "name": self.name,
            "holder": self.holder.to_json(),
            "created": self.created,
            "expires": self.expires,
            "bound": self.bound,
        }


def decode(data: bytes) -> Lease | None:
    """The lease in a file's bytes; None for an empty (released) or damaged file."""
    if not data.strip(b"\0 "):
        return None
    try:
        d = json.loads(data)
        return Lease(
            port=int(d["port"]),
            proto=str(d["proto"]),
            holder=Holder(int(d["pid"]), str(d["start"])),
            created=float(d["created"]),
            expires=None if d.get("expires") is None else float(d["expires"]),
            name=d.get("name"),
            bound=bool(d.get("bound", True)),
            address=None if d.get("addr") is None else str(d["addr"]),
        )
    except (ValueError, KeyError, TypeError):
        return None


def is_live(lease: Lease, now: float, current: Holder | None) -> bool:
    """Pure: a lease binds while unexpired and, when bound to its holder, while that
    holder runs with the same start time."""
    if lease.expires is not None and now >= lease.expires:
        return False
    if not lease.bound:
        return lease.expires is not None  # an unbound lease without expiry never ends: refuse
    return current is not None and current == lease.holder


def parse_start_time(stat: str) -> str:
    """Field 22 (starttime) of ``/proc/PID/stat``. The command name (field 2) may hold
    spaces and parentheses, so split after the last ``)``."""
    return str(procfs.parse_stat_record(stat).start_ticks)


def holder_of(pid: int, proc: Path = PROC) -> Holder | None:
    """The running process with this PID, or None when there is none."""
    try:
        return Holder(pid, parse_start_time((proc / str(pid) / "stat").read_text()))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, IndexError):
        return _holder_portable(pid)


#: Seconds a holder lookup is reused while picking. Parallel pickers meet each other's
#: leases often; re-reading /proc for the same PID each time was a visible cost. Stale
#: answers only err towards "still alive", which keeps a port out a moment longer.
HOLDER_CACHE_TTL = 1.0
_HOLDERS: dict[int, tuple[float, Holder | None]] = {}


def _recent_holder(pid: int) -> Holder | None:
    now = time.monotonic()
    hit = _HOLDERS.get(pid)
    if hit is not None and now - hit[0] < HOLDER_CACHE_TTL and hit[1] is not None:
        return hit[1]  # only live answers are reused; "gone" is final anyway
    holder = holder_of(pid)
    if len(_HOLDERS) > 4096:
        _HOLDERS.clear()
    _HOLDERS[pid] = (now, holder)
    return holder


def _holder_portable(pid: int) -> Holder | None:
    import psutil

    try:
        return Holder(pid, f"{psutil.Process(pid).create_time():.2f}")
    except psutil.Error:
        return None


def default_lease_dir() -> Path:
    """``<state dir>/leases``; created by the store on first use, not here."""
    return state_dir(create=False) / LEASES


@dataclass
class _Open:
    pid: int
    fd: int
    checked: float


#: One descriptor per lease file per process (see the module docstring for why).
_FDS: dict[str, _Open] = {}
_THREADS = threading.Lock()
#: Open lease files kept per process; tests that give each case its own state dir
#: would otherwise leave one descriptor per case open in a long-lived worker.
_MAX_OPEN = 8
#: Seconds between checks that the open file is still the one at the path (a user may
#: delete the state dir under a long-running process; leases written to the deleted
#: file would be invisible to everyone else).
_RECHECK = 1.0


def _close_all() -> None:
    """Close every cached lease descriptor (no lock is held between locked sections)."""
    for opened in _FDS.values():
        os.close(opened.fd)
    _FDS.clear()


class LeaseStore:
    """The lease file under one directory (default: ``<state dir>/leases``).

    One store, two kinds of resource: ``kind="ports"`` keys a record by port number;
    an address store (``ports.address``) passes its own ``filename`` and keys a record
    by the address's low 16 bits (its pool lies in one /16, so the slots never clash).
    Names remember their last slot in ``<name_prefix>-<hash>.json``.
    """

    def __init__(
        self,
        directory: Path | None = None,
        *,
        filename: str = LEASE_FILE,
        name_prefix: str = "name",
    ) -> None:
        self.directory = directory if directory is not None else default_lease_dir()
        self._file = str(self.directory / filename)
        self._name_prefix = name_prefix

    def _fd(self) -> int:
        """The descriptor for this file. Call with ``_THREADS`` held: closing any
        descriptor of a file drops this process's locks on it, so descriptors are only
        closed here, between locked sections."""
        now = time.monotonic()
        opened = _FDS.get(self._file)
        if opened is not None and self._usable(opened, now):
            opened.checked = now
            return opened.fd
        if opened is not None:  # the path names another file now, or we were forked
            os.close(opened.fd)  # (a child's close cannot drop its parent's locks)
            del _FDS[self._file]
        if len(_FDS) >= _MAX_OPEN:
            _close_all()
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(self._file, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        _FDS[self._file] = _Open(os.getpid(), fd, now)
        return fd

    def _usable(self, opened: _Open, now: float) -> bool:
        if opened.pid != os.getpid():
            return False
        return now - opened.checked < _RECHECK or self._same_file(opened.fd)

    def _same_file(self, fd: int) -> bool:
        try:
            st = os.stat(self._file)
        except FileNotFoundError:
            return False
        mine = os.fstat(fd)
        return (st.st_dev, st.st_ino) == (mine.st_dev, mine.st_ino)

    def try_take(
        self,
        port: int,
        make: Callable[[int], Lease],
        check: Callable[[int], bool],
        renew: Callable[[Lease], bool] | None = None,
    ) -> Lease | None:
        """Lease ``port`` if no live lease holds it and ``check(port)`` passes.

        ``check`` (the bind test) runs under the record lock, so two pickers can never
        both see the port free and both take it. A live lease for which ``renew``
        returns True (the same holder asking again for the same name) may be replaced.
        None when busy or locked right now.
        """
        with self._locked(port) as fd:
            if fd is None:
                return None
            current = decode(os.pread(fd, RECORD_SIZE, port * RECORD_SIZE))
            live = current is not None and is_live(
                current, time.time(), _recent_holder(current.holder.pid)
            )
            if live and not (renew is not None and current is not None and renew(current)):
                return None
            if not check(port):
                return None
            lease = make(port)
            os.pwrite(fd, lease.encode(), port * RECORD_SIZE)
            return lease

    def release(self, port: int, holder: Holder | None) -> bool:
        """Drop the lease on ``port`` if ``holder`` has it (None: an unbound lease, which
        no process owns); True when dropped."""
        with self._locked(port, wait=True) as fd:
            assert fd is not None  # a blocking lock either succeeds or raises
            current = decode(os.pread(fd, RECORD_SIZE, port * RECORD_SIZE))
            if current is None:
                return False
            if current.holder != holder and not (holder is None and not current.bound):
                return False
            os.pwrite(fd, b" " * RECORD_SIZE, port * RECORD_SIZE)
            return True

    def read(self, port: int) -> Lease | None:
        with _THREADS:
            return decode(os.pread(self._fd(), RECORD_SIZE, port * RECORD_SIZE))

    def all(self) -> list[Lease]:
        """Every lease on file, live or not, sorted by port (reads without locking)."""
        out = []
        try:
            with open(self._file, "rb") as f:
                data = f.read(_PORTS * RECORD_SIZE)
        except FileNotFoundError:
            return []
        for port in range(min(_PORTS, len(data) // RECORD_SIZE)):
            chunk = data[port * RECORD_SIZE : (port + 1) * RECORD_SIZE]
            if chunk.strip(b"\0 "):
                lease = decode(chunk)
                if lease is not None:
                    out.append(lease)
        return out

    @contextlib.contextmanager
    def _locked(self, port: int, wait: bool = False) -> Iterator[int | None]:
        if not 0 < port < _PORTS:
            raise ValueError(f"port out of range: {port}")
        with _THREADS:
            fd = self._fd()
            flags = fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB)
            try:
                fcntl.lockf(fd, flags, RECORD_SIZE, port * RECORD_SIZE, os.SEEK_SET)
            except OSError as exc:
                if exc.errno in (errno.EACCES, errno.EAGAIN):
                    yield None
                    return
                raise
            try:
                yield fd
            finally:
                fcntl.lockf(fd, fcntl.LOCK_UN, RECORD_SIZE, port * RECORD_SIZE, os.SEEK_SET)

    # Names: NAME -> the port it got last time, so a later run asks for it first.

    def _name_path(self, name: str) -> Path:
        digest = hashlib.blake2b(name.encode(), digest_size=10).hexdigest()
        return self.directory / f"{self._name_prefix}-{digest}.json"

    def remembered(self, name: str) -> int | None:
        """The slot (port, or an address's low 16 bits) ``name`` got last time."""
        try:
            d = json.loads(self._name_path(name).read_bytes())
            return int(d["port"]) if d.get("name") == name else None
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def remember(self, name: str, port: int) -> None:
        if self.remembered(name) == port:
            return  # already on file: skip the write
        path = self._name_path(name)
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
        tmp.write_bytes(json.dumps({"name": name, "port": port}).encode())
        os.replace(tmp, path)  # atomic: readers see the old record or the new one
