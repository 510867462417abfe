"""The one writer of the hosts file: read-modify-write under a lock, atomically where it can.

* **Which file**: ``$HOMEPORT_HOSTS_FILE``, default ``/etc/hosts`` (tests always set it).
* **Locked**: ``flock`` on the file itself, re-checked after the lock is granted (a
  concurrent sync may have renamed a new file into place meanwhile), so two syncs never
  interleave their read and write.
* **Atomic**: the new text goes to a temporary file in the same directory (same file
  system), is fsynced, gets the original's mode and owner, and is renamed over the
  original (rename(2) is atomic: a reader sees the old file or the new one, never half).
* **Bind mounts**: container runtimes bind-mount a file over ``/etc/hosts``; renaming
  over a mount point fails with EBUSY. Then the text is written in place (one write from
  offset 0, then a truncate) under the same lock and checks, and the result says so.
* **Backup once**: before the first change, the original is copied to ``<file>.homeport.bak``
  (mode and owner kept); later syncs leave that first copy alone.
* **Checked**: after writing, the file is read back and must equal the intended text.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from homeport.errors import EnvironmentProblem

HOSTS_ENV = "HOMEPORT_HOSTS_FILE"
DEFAULT_HOSTS = "/etc/hosts"
BACKUP_SUFFIX = ".homeport.bak"

Method = Literal["rename", "in-place", "unchanged"]


def hosts_path() -> Path:
    return Path(os.environ.get(HOSTS_ENV) or DEFAULT_HOSTS)


@dataclass(frozen=True, slots=True)
class WriteResult:
    path: Path
    method: Method
    old: str
    new: str
    backup: Path | None

    @property
    def changed(self) -> bool:
        return self.old != self.new

    def to_json(self) -> dict[str, object]:
        return {
            "path": str(self.path),
            "method": self.method,
            "changed": self.changed,
            "backup": None if self.backup is None else str(self.backup),
        }


class NoPermission(EnvironmentProblem):
    """The hosts file cannot be written by this user (the CLI prints the sudo line)."""


def update(path: Path, change: Callable[[str], str]) -> WriteResult:
    """Apply ``change`` to the file's text and write the result (see the module doc)."""
    with _locked(path) as fd:
        old = _read_fd(fd)
        new = change(old)
        if new == old:
            return WriteResult(path, "unchanged", old, new, None)
        backup = _backup_once(path)
        method = _write(path, fd, new)
        if path.read_bytes() != new.encode("utf-8", "surrogateescape"):
            raise EnvironmentProblem(f"{path} changed while homeport wrote it; run sync again")
        return WriteResult(path, method, old, new, backup)


def read_text(path: Path) -> str:
    """The file's text, bytes kept as they are (undecodable ones round-trip)."""
    return path.read_bytes().decode("utf-8", "surrogateescape")


def _read_fd(fd: int) -> str:
    os.lseek(fd, 0, os.SEEK_SET)
    chunks = []
    while chunk := os.read(fd, 1 << 16):
        chunks.append(chunk)
    return b"".join(chunks).decode("utf-8", "surrogateescape")


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[int]:
    """An fd of the file now at ``path``, exclusively flocked."""
    for _ in range(20):
        try:
            fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
        except PermissionError:
            raise _no_permission(path) from None
        except FileNotFoundError:
            raise EnvironmentProblem(f"no hosts file at {path}", hint=f"set {HOSTS_ENV}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            st, now = os.fstat(fd), os.stat(path)
            if (st.st_dev, st.st_ino) == (now.st_dev, now.st_ino):
                yield fd
                return
        finally:
            os.close(fd)  # also drops the flock
    raise EnvironmentProblem(f"{path} keeps being replaced; try again")


def _no_permission(path: Path) -> NoPermission:
    return NoPermission(f"no permission to write {path}", hint="run: sudo homeport hosts sync")


def _backup_once(path: Path) -> Path | None:
    backup = path.with_name(path.name + BACKUP_SUFFIX)
    if backup.exists():
        return None
    try:
        shutil.copy2(path, backup)
        st = os.stat(path)
        with contextlib.suppress(PermissionError):
            os.chown(backup, st.st_uid, st.st_gid)
    except PermissionError:
        raise _no_permission(path) from None
    return backup


def _write(path: Path, fd: int, text: str) -> Method:
    data = text.encode("utf-8", "surrogateescape")
    if is_mount_point(path):
        _write_in_place(fd, data)
        return "in-place"
    try:
        _write_renamed(path, data)
    except OSError as exc:
        if exc.errno not in (errno.EBUSY, errno.EXDEV):
            raise
        _write_in_place(fd, data)  # a bind mount we did not see in mountinfo
        return "in-place"
    return "rename"


def _write_renamed(path: Path, data: bytes) -> None:
    st = os.stat(path)
    try:
        tmp_fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.homeport.", dir=path.parent)
    except PermissionError:
        raise _no_permission(path) from None
    try:
        with os.fdopen(tmp_fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fchmod(f.fileno(), st.st_mode & 0o7777)
            with contextlib.suppress(PermissionError):  # only root may give files away
                os.fchown(f.fileno(), st.st_uid, st.st_gid)
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    with contextlib.suppress(OSError):  # the rename itself, durable
        dir_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def _write_in_place(fd: int, data: bytes) -> None:
    """One write from offset 0, then cut what is left of a longer old text: the window
    in which a reader sees a mix is as short as the file system makes it."""
    os.pwrite(fd, data, 0)
    os.ftruncate(fd, len(data))
    os.fsync(fd)


def is_mount_point(path: Path, mountinfo: str | None = None) -> bool:
    """Whether ``path`` is itself a mount point (a bind-mounted file), per
    /proc/self/mountinfo (field 5 is the mount point, proc(5), octal escapes)."""
    if mountinfo is None:
        try:
            mountinfo = Path("/proc/self/mountinfo").read_text()
        except OSError:
            return False
    target = os.path.realpath(path)
    for line in mountinfo.splitlines():
        fields = line.split()
        if len(fields) > 4 and _unescape(fields[4]) == target:
            return True
    return False


def _unescape(field: str) -> str:
    return (
        field.replace("\\040", " ").replace("\\011", "\t").replace("\\012", "\n")
        .replace("\\134", "\\")
    )  # fmt: skip
