"""The ``homeport`` executable (``cli.console``): read-only queries end with ``os._exit``
after flushing; their output, exit status and broken-pipe behaviour must not change."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator

import pytest

HOMEPORT = [sys.executable, "-m", "homeport"]
#: Buffered stdout, as in a user's shell: PYTHONUNBUFFERED would hide a missing flush.
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}


@pytest.fixture
def many_listeners() -> Iterator[set[int]]:
    """300 loopback listeners held by this process: ``ls --json`` prints ~200 KB, more than a
    pipe holds, so a process that exits before flushing would cut it short."""
    with contextlib.ExitStack() as stack:
        ports = set()
        for _ in range(300):
            s = stack.enter_context(socket.socket())
            s.bind(("127.0.0.1", 0))
            s.listen()
            ports.add(s.getsockname()[1])
        yield ports


def test_large_json_arrives_whole(many_listeners: set[int]) -> None:
    done = subprocess.run([*HOMEPORT, "ls", "--json"], capture_output=True, timeout=60, env=ENV)
    assert done.returncode == 0, done.stderr
    assert len(done.stdout) > 65536
    rows = json.loads(done.stdout)["listeners"]
    mine = {r["port"] for r in rows if r["address"] == "127.0.0.1"}
    assert many_listeners <= mine


def test_small_output_is_flushed_before_the_exit() -> None:
    """A few hundred bytes sit in stdout's buffer until the flush (a large write goes
    straight through)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        for args in (["ls", "--json", "--port", str(port)], ["who", str(port)]):
            done = subprocess.run([*HOMEPORT, *args], capture_output=True, timeout=60, env=ENV)
            assert done.returncode == 0, done.stderr
            assert f"127.0.0.1:{port}" in done.stdout.decode() or json.loads(done.stdout)


def test_exit_status_and_message_survive_the_quick_exit() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, not listening: nothing listens there
        done = subprocess.run(
            [*HOMEPORT, "who", str(port)], capture_output=True, timeout=60, env=ENV
        )
    assert done.returncode == 1
    assert done.stderr.decode().startswith(f"homeport: nothing listens on :{port}")


def test_a_reader_that_leaves_early_gets_no_traceback(many_listeners: set[int]) -> None:
    proc = subprocess.Popen(
        [*HOMEPORT, "ls"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ENV
    )
    assert proc.stdout is not None
    assert proc.stderr is not None
    with proc.stderr:
        proc.stdout.read(100)
        proc.stdout.close()  # like `homeport ls | head -1`
        err = proc.stderr.read()
    assert proc.wait(timeout=60) == 0
    assert b"Traceback" not in err, err
