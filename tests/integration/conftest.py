"""Fixtures for integration tests: real sockets held by real child processes."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

HOST = Path(__file__).with_name("sockhost.py")


@dataclass
class SockHost:
    proc: subprocess.Popen[str]
    pids: list[int]
    ports: list[int]


@pytest.fixture
def sockhost() -> Iterator[Callable[..., SockHost]]:
    """Start a child that binds the given sockets; stopped (with its fork) at teardown."""
    started: list[SockHost] = []

    def start(spec: list[dict[str, Any]]) -> SockHost:
        proc = subprocess.Popen(
            [sys.executable, str(HOST), json.dumps(spec)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        assert proc.stdout is not None
        line = proc.stdout.readline()  # readiness: printed after every bind
        if not line:
            proc.kill()
            raise RuntimeError("sockhost failed to bind its sockets")
        info = json.loads(line)
        host = SockHost(proc, info["pids"], info["ports"])
        started.append(host)
        return host

    yield start
    for h in started:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(h.proc.pid, signal.SIGTERM)
        h.proc.communicate(timeout=10)  # reaps it and closes our ends of its pipes
