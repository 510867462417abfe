"""The daemon as a process: its files, its lock, and starting it in the background.

Kept apart from ``main`` (the asyncio server) so that the CLI's client, which only needs to
find, start or stop a daemon, does not import asyncio, the proxy and the store.

One daemon per state directory (so one per user): ``daemon.lock`` is held with ``flock`` for the
daemon's whole life, and the kernel drops it when the process dies, even by ``kill -9``, so a
stale lock never blocks a restart. ``daemon.json`` says where the running daemon listens.

Background start: the parent spawns ``python -m homeport up --ready-fd N`` in a new session and
waits on a pipe for one line, ``ready {json}`` or ``error MESSAGE``; EOF without a line means the
child died early, and the tail of ``daemon.log`` says why.

The ``--auth`` value (``basic:USER:PASS`` holds a password) is never put on the daemon's command
line, which every user can read in ``ps`` / ``/proc/PID/cmdline`` for as long as the daemon
lives, nor in its environment (``/proc/PID/environ``, readable by the same user and inherited by
every child). It goes through a second pipe, ``--auth-fd N``, that the daemon reads to EOF and
closes at start-up.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import select
import subprocess
import sys
import time
from pathlib import Path
from typing import IO, Any

from homeport.daemon.config import DaemonConfig
from homeport.errors import DaemonError, ExitStatus, HomeportError, UsageError

START_TIMEOUT = 15.0
#: Daemons this process started: kept referenced so that ``Popen.__del__`` does not warn
#: about a child that is meant to outlive its handle (the daemon runs in its own session).
_STARTED: list[subprocess.Popen[bytes]] = []


class AlreadyRunning(HomeportError):
    exit_status = ExitStatus.NOT_FOUND


def read_info(config: DaemonConfig) -> dict[str, Any] | None:
    """What ``daemon.json`` says about the running daemon, or None."""
    try:
        data = json.loads(config.info_path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def ensure_token(path: Path) -> str:
    """The control API token: created once, mode 0600, kept across restarts."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        if path.stat().st_mode & 0o077:
            os.chmod(path, 0o600)  # someone loosened it: a token readable by others is no token
        return path.read_text().strip()
    with os.fdopen(fd, "w") as f:
        f.write(secrets.token_urlsafe(32) + "\n")
    return path.read_text().strip()


def acquire_lock(config: DaemonConfig) -> int:
    fd = os.open(config.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        info = read_info(config) or {}
        raise AlreadyRunning(
            f"already running at {info.get('url', config.url)} (pid {info.get('pid', '?')})",
            hint="homeport status shows it; homeport down stops it",
        ) from None
    return fd


def daemon_argv(config: DaemonConfig, ready_fd: int, auth_fd: int | None = None) -> list[str]:
    argv = [
        sys.executable,
        "-m",
        "homeport",
        "up",
        "--port",
        str(config.port),
        "--ready-fd",
        str(ready_fd),
    ]
    for addr in config.expose:
        argv += ["--expose", addr]
    if auth_fd is not None:
        argv += ["--auth-fd", str(auth_fd)]  # the value itself never goes on argv
    if not config.access_log:
        argv.append("--no-access-log")
    if config.https_only:
        argv.append("--https-only")
    if config.workers != 1:
        argv += ["--workers", str(config.workers)]
    return argv


def start_background(config: DaemonConfig, timeout: float = START_TIMEOUT) -> dict[str, Any]:
    """Start a daemon in a new session; return its ``daemon.json`` once it listens."""
    auth_fd = _auth_pipe(config.auth)
    r, w = os.pipe()
    env = {**os.environ, "HOMEPORT_STATE_DIR": str(config.state_dir)}
    fds = (w,) if auth_fd is None else (w, auth_fd)
    try:
        with _open_log(config.log_path) as logf:
            proc = subprocess.Popen(
                daemon_argv(config, w, auth_fd),
                stdin=subprocess.DEVNULL,
                stdout=logf,
                stderr=logf,
                pass_fds=fds,
                start_new_session=True,
                env=env,
                cwd="/",
            )
    finally:
        os.close(w)
        if auth_fd is not None:
            os.close(auth_fd)
    _STARTED.append(proc)
    try:
        line = _read_line(r, timeout)
    finally:
        os.close(r)
    if line.startswith("ready "):
        info: dict[str, Any] = json.loads(line[6:])
        return info
    if line.startswith("error "):
        proc.wait(timeout=5)
        raise DaemonError(line[6:])
    if proc.poll() is None:
        proc.kill()  # it neither came up nor said why within the time: do not leave it half-up
    raise DaemonError(
        f"the daemon did not start within {timeout:g}s",
        hint=f"its log says: {_tail(config.log_path)}",
    )


def _auth_pipe(auth: str) -> int | None:
    """A pipe's read end already holding ``auth`` (writer closed), or None without auth.

    Written before the child starts, so the value must fit the pipe buffer: PIPE_BUF
    (4096 bytes, pipe(7)) is the least Linux guarantees, far more than any password."""
    if auth == "none":
        return None
    data = auth.encode()
    if len(data) >= 4096:
        raise UsageError("--auth is too long (4 KiB at most)")
    r, w = os.pipe()
    try:
        os.write(w, data)
    finally:
        os.close(w)
    return r


def read_auth_fd(fd: int) -> str:
    """The daemon's side of ``_auth_pipe``: read to EOF and close, so nothing is left open."""
    chunks = []
    try:
        while chunk := os.read(fd, 4096):
            chunks.append(chunk)
    finally:
        os.close(fd)
    return b"".join(chunks).decode()


def _open_log(path: Path) -> IO[bytes]:
    # Keep the log from growing without end across many restarts.
    with contextlib.suppress(OSError):
        if path.stat().st_size > 1 << 20:
            path.unlink()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    return os.fdopen(fd, "ab")


def _read_line(fd: int, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    buf = b""
    while b"\n" not in buf:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            break
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        buf += chunk
    return buf.split(b"\n", 1)[0].decode(errors="replace")


def _tail(path: Path, lines: int = 3) -> str:
    try:
        text = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return "(no log)"
    return " | ".join(text[-lines:]) or "(empty)"
