"""Private files written atomically: a reader never sees half a key, nor a key that was
briefly readable by others. No ``cryptography`` here (``tls.env`` uses it on `run`'s path)."""

from __future__ import annotations

import os
import threading
from pathlib import Path


def write_private(path: Path, data: bytes, mode: int = 0o600, *, durable: bool = True) -> None:
    """Write ``data`` to ``path`` atomically, created with ``mode`` (never wider first).
    ``durable`` fsyncs before the rename: the CA's files must survive a crash (a lost key
    means installing a new root everywhere); a cached leaf need not (a torn one fails to load
    and is issued again), and its two fsyncs were 90% of a new leaf's cost (bench/README.md)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.fchmod(fd, mode)  # the umask may have narrowed it; an old tmp may be wider
        os.write(fd, data)
        if durable:
            os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
