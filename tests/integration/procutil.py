"""Stopping the processes a test started, by PID, without polling."""

from __future__ import annotations

import contextlib
import os
import select
import signal
import subprocess
from typing import Any


def stop_child(pid: int, sig: int = signal.SIGTERM, timeout: float = 10.0) -> None:
    """Send ``sig`` to our child ``pid``, wait for it to exit on a pidfd (readable once it
    has exited, after the kernel closed its files and so freed its locks), SIGKILL it after
    ``timeout``, and reap it."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        fd = None
    try:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
        if fd is not None:
            poller = select.poll()
            poller.register(fd, select.POLLIN)
            if not poller.poll(int(timeout * 1000)):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
    finally:
        if fd is not None:
            os.close(fd)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)


def stop_popen(proc: subprocess.Popen[Any], sig: int = signal.SIGTERM, timeout: float = 15) -> None:
    """Stop a child started with Popen: ``sig``, then SIGKILL after ``timeout``; reaped."""
    proc.send_signal(sig)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
