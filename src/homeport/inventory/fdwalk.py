"""The owner walk: which processes hold which sockets, from ``/proc/PID/fd``.

Where the kernel can do the walk itself (root, Linux 5.8+ with BTF) a BPF iterator does it
(``bpfwalk``: 4-8 ms for 12,000 fds); this module is the walk everywhere else, the fallback,
and the look at the processes the kernel's walk left out.

No procfs file maps a socket to its processes, so every fd of every process is read:
one ``readlink`` per fd, relative to the open ``/proc/PID/fd`` directory (no path walk
through /proc per link, which is most of what ``ss -p`` pays). The kernel's side of each
link (a dentry lookup and a ptrace access check, 4-5 µs on this VM) is the bulk of the
walk, 12,000 fds cost 70-100 ms on one core. ``readlink`` releases the GIL, but two threads
convoy on it (measured slower than one), so when it pays the walk is split with a forked
helper process instead (``OwnerWalk``).

This module imports nothing heavy (no dataclasses, no typing at run time): the CLI starts a
walk before it imports the rest (``begin_early``), so the helper walks while the parent
imports, and picks the walk up when it needs owners (``take_early``).
"""

from __future__ import annotations

import array
import contextlib
import errno
import fcntl
import marshal
import os
import sys
import time

from homeport.inventory import bpfwalk

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

PROC = "/proc"
#: fds below which one walk (~6 µs an fd) costs less than forking a helper (~2 ms).
FORK_MIN_FDS = 1500
#: An early walk older than this is stale: the caller walks afresh.
EARLY_MAX_AGE = 2.0


class OwnerScan:
    """Result of walking ``/proc/*/fd``: which PIDs hold which socket inodes."""

    __slots__ = ("denied", "gone", "holders")

    def __init__(
        self,
        holders: dict[int, list[int]] | None = None,
        denied: set[int] | None = None,
        gone: set[int] | None = None,
    ) -> None:
        self.holders: dict[int, list[int]] = holders if holders is not None else {}
        #: PIDs whose fd table we could not read (another user's, and we are not root).
        self.denied: set[int] = denied if denied is not None else set()
        #: PIDs that exited while we walked.
        self.gone: set[int] = gone if gone is not None else set()


def scan_owners(inodes: set[int] | None, proc: str = PROC) -> OwnerScan:
    """Map socket inodes to every PID holding them (forked servers share one socket), PID
    lists sorted. ``inodes=None`` records every socket. Start an :class:`OwnerWalk`
    yourself to overlap the walk with other work."""
    with OwnerWalk(proc) as walk:
        return walk.result(inodes)


class OwnerWalk:
    """A walk of ``/proc/*/fd``, begun at construction and finished by :meth:`result`.

    When it pays, a forked helper walks beside this process: both take PIDs, largest fd
    table first, from one queue (a pipe of 4-byte PIDs; pipe reads that small are atomic),
    so this process can do other work first (imports, the netlink dump) and then join in.
    The helper sends its part back with ``marshal`` and exits. It forks only when this
    process runs a single thread (a fork of a threaded process can leave the child on a
    lock another thread held) and the walk is big enough to repay the fork (~2 ms).

    A walk begun before the sockets were dumped can miss the owner of a socket opened
    meanwhile; :meth:`result` walks again the PIDs that are new or whose fd count changed
    since the start, for the inodes it did not find.

    With ``kernel`` (default: when ``bpfwalk.usable()`` and ``parallel`` is not forced)
    nothing starts here: :meth:`result` asks the kernel's iterator, and walks /proc as above
    only if the kernel refuses. ``method`` says which walk answered.
    """

    def __init__(
        self, proc: str = PROC, *, parallel: bool | None = None, kernel: bool | None = None
    ) -> None:
        self.proc = proc
        self.started = time.monotonic()
        if kernel is None:
            kernel = parallel is None and bpfwalk.usable(proc)
        #: "kernel", "split" (with a forked helper) or "alone"; may change in result().
        self.method = "kernel" if kernel else "alone"
        #: Why the kernel walk was not used, when it was tried and refused.
        self.refused: str | None = None
        self._queue: int | None = None  # read end of the PID queue, when split
        self._helper: tuple[int, int] | None = None  # (pid, read end of its result pipe)
        if kernel:
            self._sizes: dict[int, int] = {}
            self._pids: list[int] = []
            return
        self._start_procfs(parallel)

    def _start_procfs(self, parallel: bool | None) -> None:
        proc = self.proc
        self._sizes = _fd_counts(proc)
        # Largest fd table first: the two walkers finish together.
        self._pids = sorted(self._sizes, key=lambda pid: -self._sizes[pid])
        if parallel is None:
            parallel = _fork_pays(len(self._pids), sum(self._sizes.values()))
        if parallel:
            try:
                self._fork()
                self.method = "split"
            except OSError:  # no process or pipe to spare (EAGAIN, EMFILE): walk alone
                self._reap(kill=True)

    @property
    def helper_pid(self) -> int | None:
        """The forked helper's PID until :meth:`result`; None when this process walks alone."""
        return self._helper[0] if self._helper else None

    def __enter__(self) -> OwnerWalk:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def result(self, inodes: set[int] | None) -> OwnerScan:
        """Finish the walk (this process's share, then the helper's) and return the
        holders of ``inodes`` (None: of every socket), each PID list sorted."""
        if self.method == "kernel":
            try:
                return self._kernel_result(inodes)
            except OSError as exc:  # refused: walk /proc now, by ourselves (no early start)
                self.method, self.refused = "alone", str(exc)
                self._start_procfs(parallel=False)
        scan = OwnerScan()
        if self._queue is None:
            _scan_pids(self._pids, inodes, self.proc, scan)
        else:
            _scan_pids(_take(self._queue), inodes, self.proc, scan)
            theirs = self._collect_helper()
            if theirs is None:  # the helper died: walk everything here, correctness first
                scan = OwnerScan()
                _scan_pids(self._pids, inodes, self.proc, scan)
            else:
                scan = _merge([scan, _kept(theirs, inodes)])
        if inodes is not None and (missing := inodes - scan.holders.keys()):
            scan = _merge([scan, self._recheck(missing)])
        return _merge([scan])

    def _kernel_result(self, inodes: set[int] | None) -> OwnerScan:
        holders, walked = bpfwalk.scan(inodes)
        scan = OwnerScan(holders)
        if inodes is None or not (missing := inodes - holders.keys()):
            return scan
        # Sockets the kernel found no holder for: look in the processes it did not walk
        # (none, or a few it may not show us) through /proc, which names who denied us.
        others = [pid for pid in _pids(self.proc) if pid not in walked]
        _scan_pids(others, missing, self.proc, scan)
        return _merge([scan])

    def close(self) -> None:
        """Stop and reap the helper if :meth:`result` was never called."""
        self._reap(kill=True)

    def _recheck(self, missing: set[int]) -> OwnerScan:
        now = _fd_counts(self.proc)
        changed = [pid for pid, n in now.items() if self._sizes.get(pid) != n]
        scan = OwnerScan()
        _scan_pids(changed, missing, self.proc, scan)
        return scan

    def _fork(self) -> None:
        queue_r, queue_w = os.pipe()
        self._queue = queue_r  # closed by _reap whatever happens next
        try:
            _fill_queue(queue_w, self._pids)  # OSError: more PIDs than a pipe holds
        finally:
            os.close(queue_w)  # the queue reads EOF once drained
        out_r, out_w = os.pipe()
        try:
            pid = os.fork()
        except OSError:
            os.close(out_r)
            os.close(out_w)
            raise
        if pid == 0:  # the helper: walk, send, exit without the parent's atexit handlers
            try:
                os.close(out_r)
                _helper_main(queue_r, out_w, self.proc)
            finally:
                os._exit(0)
        os.close(out_w)
        self._helper = (pid, out_r)

    def _collect_helper(self) -> OwnerScan | None:
        assert self._helper is not None
        fd = self._helper[1]
        chunks = []
        while chunk := os.read(fd, 1 << 20):
            chunks.append(chunk)
        self._reap(kill=False)  # EOF: it has sent everything and is exiting
        try:
            holders, denied, gone = marshal.loads(b"".join(chunks))
        except (EOFError, ValueError, TypeError):
            return None
        return OwnerScan(holders, set(denied), set(gone))

    def _reap(self, *, kill: bool) -> None:
        if self._queue is not None:
            os.close(self._queue)
            self._queue = None
        if self._helper is not None:
            pid, fd = self._helper
            self._helper = None
            os.close(fd)
            with contextlib.suppress(ChildProcessError, ProcessLookupError):
                if kill:
                    import signal  # here: its enum import costs ~3 ms of every start

                    os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)


# --- a walk begun before the command's imports -----------------------------------------

_early: OwnerWalk | None = None


def begin_early(proc: str = PROC) -> None:
    """Start a walk now for a command that will want owners; :func:`take_early` hands it
    over. Anything unexpected leaves no walk: the command then walks by itself."""
    global _early
    discard_early()
    try:
        _early = OwnerWalk(proc)
    except OSError:
        _early = None


def take_early(proc: str = PROC) -> OwnerWalk | None:
    """The walk :func:`begin_early` started, if any, for ``proc`` and still fresh."""
    global _early
    walk, _early = _early, None
    if walk is not None and (walk.proc != proc or time.monotonic() - walk.started > EARLY_MAX_AGE):
        walk.close()
        return None
    return walk


def discard_early() -> None:
    """Reap an early walk nobody took (the command failed before it needed owners)."""
    walk = take_early()
    if walk is not None:
        walk.close()


# --- the walk itself ---------------------------------------------------------------------


def _pids(proc: str) -> list[int]:
    return [int(name) for name in os.listdir(proc) if name.isdigit()]


def _fd_counts(proc: str) -> dict[int, int]:
    """PID -> number of open fds: ``st_size`` of /proc/PID/fd is that count since Linux
    6.2, 0 before (then only new PIDs count as changed)."""
    out: dict[int, int] = {}
    for pid in _pids(proc):
        try:
            out[pid] = os.stat(f"{proc}/{pid}/fd").st_size
        except OSError:
            out[pid] = 0  # gone, or not ours: the walk will say which
    return out


def _fork_pays(pids: int, fds: int) -> bool:
    if not hasattr(os, "fork") or not hasattr(os, "sched_getaffinity"):
        return False
    if len(os.sched_getaffinity(0)) < 2:
        return False
    try:  # /proc/self/task links: 2 + this process's threads, C threads included
        if os.stat(f"{PROC}/self/task").st_nlink != 3:
            return False
    except OSError:
        return False
    return fds >= FORK_MIN_FDS if fds else pids >= 200  # no fd counts: guess from PIDs


def _fill_queue(fd: int, pids: list[int]) -> None:
    data = array.array("I", pids).tobytes()
    if len(data) > 65536:  # 16,384 PIDs fill a default pipe
        fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, len(data))  # OSError above pipe-max-size
    os.set_blocking(fd, False)  # a short write must fail here, not block forever
    if os.write(fd, data) != len(data):
        raise OSError(errno.EAGAIN, "the PID queue does not fit in a pipe")


def _take(queue: int) -> Iterator[int]:
    while len(raw := os.read(queue, 4)) == 4:
        yield int.from_bytes(raw, sys.byteorder)


def _helper_main(queue: int, out: int, proc: str) -> None:
    scan = OwnerScan()
    _scan_pids(_take(queue), None, proc, scan)
    data = memoryview(marshal.dumps((scan.holders, list(scan.denied), list(scan.gone))))
    while data:
        data = data[os.write(out, data) :]


def _kept(scan: OwnerScan, inodes: set[int] | None) -> OwnerScan:
    if inodes is None:
        return scan
    held = {i: p for i, p in scan.holders.items() if i in inodes}
    return OwnerScan(held, scan.denied, scan.gone)


def _merge(parts: list[OwnerScan]) -> OwnerScan:
    out = OwnerScan()
    for part in parts:
        for inode, pids in part.holders.items():
            out.holders.setdefault(inode, []).extend(pids)
        out.denied |= part.denied
        out.gone |= part.gone
    for pids in out.holders.values():
        pids.sort()
    return out


def _scan_pids(pids: Iterable[int], want: set[int] | None, proc: str, scan: OwnerScan) -> None:
    for pid in pids:
        try:
            dfd = os.open(f"{proc}/{pid}/fd", os.O_RDONLY | os.O_DIRECTORY)
        except PermissionError:
            scan.denied.add(pid)
            continue
        except OSError:
            scan.gone.add(pid)
            continue
        try:
            if not _scan_fds(dfd, pid, want, scan.holders):
                scan.denied.add(pid)
        finally:
            os.close(dfd)


def _scan_fds(dfd: int, pid: int, want: set[int] | None, holders: dict[int, list[int]]) -> bool:
    """Record the sockets ``pid`` holds; False when its fd links may not be read.

    Listing the directory can succeed where reading the links fails (EACCES), even for
    root: the kernel's ptrace access check applies per link (a PID 1 of another container,
    or no CAP_SYS_PTRACE)."""
    try:
        names = os.listdir(dfd)
    except PermissionError:
        return False
    except OSError:
        return True
    seen: set[int] = set()
    for fd in names:
        try:
            link = os.readlink(fd, dir_fd=dfd)
        except PermissionError:
            return False
        except OSError:
            continue  # fd closed meanwhile
        if not link.startswith("socket:["):
            continue
        inode = int(link[8:-1])
        if (want is None or inode in want) and inode not in seen:
            seen.add(inode)
            holders.setdefault(inode, []).append(pid)
    return True
