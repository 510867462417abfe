"""`homeport explain -- CMD ARGS`: the command runs, its output passes through, its failure
is explained with the facts read when it exited, and the exit status is its own."""

from __future__ import annotations

import json
import socket
import sys
from collections.abc import Callable, Iterator
from typing import Any

import pytest

Cli = Callable[..., Any]


@pytest.fixture
def closed_port() -> Iterator[int]:
    """Bound without listening: connect() is refused, and no parallel test can take it."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        yield int(s.getsockname()[1])


def _client(port: int) -> list[str]:
    """A real client that fails: asyncio's connect, as every asyncio library prints it."""
    code = (
        "import asyncio, sys\n"
        "print('starting', flush=True)\n"
        f"asyncio.run(asyncio.open_connection('127.0.0.1', {port}))\n"
    )
    return [sys.executable, "-c", code]


def test_a_failing_command_is_explained_with_its_own_status(cli: Cli, closed_port: int) -> None:
    r = cli("explain", "--", *_client(closed_port))
    assert r.status == 1  # Python's status for an uncaught exception
    assert r.stdout == "starting\n"  # its stdout passed through untouched
    assert "ConnectionRefusedError: [Errno 111] Connect call failed" in r.stderr
    assert "exited with status 1" in r.stderr
    assert "rule asyncio-refused" in r.stderr
    assert f"Nothing listens on port {closed_port}" in r.stderr


def test_json_explanation_goes_to_stderr(cli: Cli, closed_port: int) -> None:
    r = cli("explain", "--json", "--", *_client(closed_port))
    doc = json.loads(r.stderr.strip().splitlines()[-1])
    assert doc["status"] == 1
    assert doc["explanation"]["target"]["port"] == closed_port
    assert doc["explanation"]["diagnosis"][0]["id"] == "refused.nothing"


def test_the_last_error_is_explained_not_an_earlier_one(cli: Cli, closed_port: int) -> None:
    code = (
        "import sys\n"
        "print('retrying after: connect ECONNREFUSED 127.0.0.1:1', file=sys.stderr)\n"
        f"print('Error: listen EADDRINUSE: address already in use 127.0.0.1:{closed_port}',"
        " file=sys.stderr)\n"
        "sys.exit(4)\n"
    )
    r = cli("explain", "--", sys.executable, "-c", code)
    assert r.status == 4
    assert "rule node-listen-in-use" in r.stderr


def test_success_passes_through_and_explains_nothing(cli: Cli) -> None:
    r = cli("explain", "--", sys.executable, "-c", "print('fine')")
    assert (r.status, r.stdout, r.stderr) == (0, "fine\n", "")


def test_a_failure_with_no_known_error_keeps_its_status(cli: Cli) -> None:
    r = cli("explain", "--", sys.executable, "-c", "import sys; print('nope'); sys.exit(5)")
    assert r.status == 5
    assert "names no connection or port error" in r.stderr


def test_a_missing_command_exits_127(cli: Cli) -> None:
    r = cli("explain", "--", "/nonexistent/homeport-test-command")
    assert r.status == 127
    assert "command not found" in r.stderr


def test_one_quoted_error_text_after_dashes_is_still_a_text(cli: Cli) -> None:
    r = cli("explain", "--json", "--", "connect ECONNREFUSED 127.0.0.1:3000")
    assert r.status == 0
    assert json.loads(r.stdout)["error"]["rule"] == "node-connect-refused"


def test_ctrl_c_ends_both_and_explains_nothing() -> None:
    import os
    import signal
    import subprocess

    code = "import time; print('ready', flush=True); time.sleep(30)"
    argv = [sys.executable, "-m", "homeport", "explain", "--", sys.executable, "-c", code]
    proc = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline() == "ready\n"  # the child runs, its output came through
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
        _out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 130
    assert "exited with status" not in err
