"""inotify on folders (Linux, through ctypes): the log tailer wakes when a service writes.

The supervisor's tail loop would otherwise poll every log file four times a second while
the stack is quiet (the issue's idle CPU budget is 0.5 % of a core with 20 services). One
watch per project's log folder reports ``IN_MODIFY`` for every file in it (inotify(7));
events are only a wake-up: the tailer drains them and reads what the files gained. Where
inotify is missing (not Linux, no libc symbol, the per-user watch limit reached) ``open``
returns None and the tailer polls as before.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
from pathlib import Path

# <sys/inotify.h>
IN_MODIFY = 0x00000002
IN_CREATE = 0x00000100
IN_NONBLOCK = os.O_NONBLOCK
IN_CLOEXEC = os.O_CLOEXEC


class DirWatch:
    """An inotify descriptor watching folders; readable when a file in one changed."""

    def __init__(self, libc: ctypes.CDLL, fd: int) -> None:
        self._libc = libc
        self.fd = fd
        self._watched: set[str] = set()

    def add(self, folder: Path) -> bool:
        key = str(folder)
        if key in self._watched:
            return True
        wd = self._libc.inotify_add_watch(self.fd, key.encode(), IN_MODIFY | IN_CREATE)
        if wd < 0:
            return False
        self._watched.add(key)
        return True

    def drain(self) -> None:
        """Read and drop the pending events (they only say: look again)."""
        with contextlib.suppress(BlockingIOError, InterruptedError):
            while os.read(self.fd, 65536):
                pass

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self.fd)


def open_watch() -> DirWatch | None:
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name, use_errno=True)
        init = libc.inotify_init1
    except (OSError, AttributeError):
        return None
    init.restype = ctypes.c_int
    libc.inotify_add_watch.restype = ctypes.c_int
    libc.inotify_add_watch.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32]
    fd = init(IN_NONBLOCK | IN_CLOEXEC)
    if fd < 0:
        return None
    return DirWatch(libc, fd)
