"""The edge of ``--auth``: the process environment and the terminal.

``auth_from_flag`` is what ``homeport up``, ``run`` and ``route add`` call; the rules live in
``homeport.daemon.routes.resolve_auth``. Taking ``HOMEPORT_AUTH_PASSWORD`` out of
``os.environ`` keeps it from every child, but not from ``/proc/PID/environ``: that file shows
the environment block the kernel copied in at ``execve`` (``env_start``..``env_end``,
proc(5)), and ``unsetenv`` only drops a pointer to it. So the value is also overwritten in that
block, which matters for ``homeport run``: it lives as long as the service it started.
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING

from homeport.daemon.routes import PASSWORD_ENV, PasswordSource, resolve_auth
from homeport.errors import UsageError
from homeport.inventory import procfs

if TYPE_CHECKING:
    import ctypes

    from homeport.cli.env import Env

log = logging.getLogger("homeport.services.password")


def auth_from_flag(text: str | None, env: Env) -> str | None:
    """``--auth`` with its password filled in; warnings go to ``env.stderr``."""
    if os.environ.get(PASSWORD_ENV) is not None:
        scrub_environ_block(PASSWORD_ENV)
    source = PasswordSource(
        os.environ,
        ask=_ask if env.stdin_isatty else None,
        warn=lambda message: env.err(f"homeport: {message}"),
    )
    return resolve_auth(text, source)


def _ask(prompt: str) -> str:
    import getpass

    try:
        return getpass.getpass(prompt)  # reads /dev/tty with echo off
    except EOFError:
        raise UsageError("no password was typed") from None


def parse_env_block(stat: str) -> tuple[int, int] | None:
    """``(env_start, env_end)`` from ``/proc/PID/stat`` (fields 50 and 51, Linux 3.5+)."""
    try:
        fields = procfs.stat_fields(stat)
    except ValueError:
        return None
    if len(fields) < 49 or not (fields[47].isdigit() and fields[48].isdigit()):
        return None
    start, end = int(fields[47]), int(fields[48])
    return (start, end) if 0 < start < end else None


def scrub_environ_block(name: str) -> bool:
    """Overwrite ``name``'s value with NULs where ``/proc/self/environ`` reads it.

    Only an entry inside the exec-time block is touched: an entry that ``setenv`` made lives
    on the heap, is not shown in ``/proc/PID/environ``, and belongs to libc's allocator."""
    try:
        with open("/proc/self/stat") as f:
            bounds = parse_env_block(f.read())
    except OSError:
        bounds = None
    if bounds is None:
        return False
    import ctypes

    try:
        environ = ctypes.POINTER(ctypes.c_void_p).in_dll(ctypes.CDLL(None), "environ")
    except (OSError, ValueError):
        log.debug("no C environ to scrub %s from", name)
        return False
    return _scrub(environ, os.fsencode(name) + b"=", bounds)


def _scrub(
    environ: ctypes._Pointer[ctypes.c_void_p], prefix: bytes, bounds: tuple[int, int]
) -> bool:
    import ctypes

    start, end = bounds
    done = False
    i = 0
    while (addr := environ[i]) is not None:
        if start <= addr < end:
            entry = ctypes.string_at(addr)
            if entry.startswith(prefix) and addr + len(entry) <= end:
                ctypes.memset(addr + len(prefix), 0, len(entry) - len(prefix))
                done = True
        i += 1
    return done
