"""Killing what holds a port: real servers that exit, ignore SIGTERM, or fork."""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import signal
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace

import pytest

from homeport.errors import NotFound
from homeport.ports.kill import Victim, _send, _Watch, execute, kill_port, plan_kill

SERVER = textwrap.dedent("""
    import json, os, signal, socket, subprocess, sys
    mode = sys.argv[1]
    if mode == "ignore":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    s = socket.create_server(("127.0.0.1", 0))
    pids = [os.getpid()]
    if mode == "fork":
        child = os.fork()
        if child == 0:
            signal.pause()
            os._exit(0)
        pids.append(child)
    if mode == "tree":  # a helper child that does not hold the socket
        helper = subprocess.Popen([sys.executable, "-c", "import signal; signal.pause()"])
        pids.append(helper.pid)
    print(json.dumps({"port": s.getsockname()[1], "pids": pids}), flush=True)
    while True:
        signal.pause()
""")


@dataclass
class Server:
    proc: subprocess.Popen[str]
    port: int
    pids: list[int]

    @property
    def at(self) -> str:
        """The exact address: bind(0) numbers are only unique per address, so another
        test's server may hold the same number on ::1, and a bare port would match it."""
        return f"127.0.0.1:{self.port}"


@pytest.fixture
def server() -> Iterator[Callable[[str], Server]]:
    started: list[Server] = []

    def start(mode: str) -> Server:
        proc = subprocess.Popen(
            [sys.executable, "-c", SERVER, mode],
            stdout=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        assert proc.stdout is not None
        info = json.loads(proc.stdout.readline())  # readiness: printed after listen()
        srv = Server(proc, info["port"], info["pids"])
        started.append(srv)
        return srv

    yield start
    for srv in started:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(srv.proc.pid, signal.SIGKILL)  # the whole session: forks, helpers
        srv.proc.wait(timeout=10)
        if srv.proc.stdout is not None:
            srv.proc.stdout.close()


def gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] in "ZX"
    except FileNotFoundError:
        return True


def test_server_that_exits_on_sigterm(server: Callable[[str], Server]) -> None:
    srv = server("term")
    report = kill_port(srv.at, timeout=10)
    assert report.released
    [outcome] = report.outcomes
    assert (outcome.pid, outcome.result, outcome.signals) == (srv.pids[0], "exited", ("SIGTERM",))
    assert srv.proc.wait(timeout=10) == -signal.SIGTERM


def test_server_ignoring_sigterm_gets_sigkill_after_the_timeout(
    server: Callable[[str], Server],
) -> None:
    srv = server("ignore")
    report = kill_port(f"127.0.0.1:{srv.port}", timeout=0.3)
    assert report.released
    [outcome] = report.outcomes
    assert outcome.result == "killed"
    assert outcome.signals == ("SIGTERM", "SIGKILL")
    assert srv.proc.wait(timeout=10) == -signal.SIGKILL


def test_forked_server_both_owners_are_stopped(server: Callable[[str], Server]) -> None:
    srv = server("fork")
    plan = plan_kill(srv.at)
    assert sorted(v.pid for v in plan.victims) == sorted(srv.pids)
    report = kill_port(srv.at, timeout=10)
    assert report.released
    assert {o.pid: o.result for o in report.outcomes} == dict.fromkeys(srv.pids, "exited")
    assert all(gone(pid) for pid in srv.pids)


def test_tree_includes_children_that_do_not_hold_the_port(
    server: Callable[[str], Server],
) -> None:
    srv = server("tree")
    owner, helper = srv.pids
    assert [v.pid for v in plan_kill(srv.at).victims] == [owner]
    report = kill_port(srv.at, tree=True, timeout=10)
    assert {o.pid for o in report.outcomes} == {owner, helper}
    assert gone(helper)


def test_dry_run_kills_nothing(server: Callable[[str], Server]) -> None:
    srv = server("term")
    report = kill_port(srv.at, dry_run=True)
    assert report.dry_run
    assert not report.released
    assert [o.result for o in report.outcomes] == ["would-signal"]
    assert srv.proc.poll() is None
    assert plan_kill(srv.at).victims  # still held


def test_address_must_match_exactly(server: Callable[[str], Server]) -> None:
    srv = server("term")
    with pytest.raises(NotFound):
        kill_port(f"127.0.0.2:{srv.port}")  # the server is on 127.0.0.1 only
    assert srv.proc.poll() is None


def test_cli_kill_json(server: Callable[[str], Server]) -> None:
    srv = server("term")
    proc = subprocess.run(
        [sys.executable, "-m", "homeport", "kill", srv.at, "--json", "--timeout", "10"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["released"] is True
    assert data["processes"][0]["pid"] == srv.pids[0]
    assert data["processes"][0]["result"] == "exited"


class DenyingWatch(_Watch):
    """What os.kill does for another user's process when we are not root."""

    def send(self, pid: int, sig: signal.Signals) -> None:
        raise PermissionError(1, "Operation not permitted")


def test_permission_error_says_whose_process_and_what_to_run() -> None:
    me = os.getpid()  # a real process, so its owner can be looked up
    victim = Victim(me, "python", "python", "root", "holds tcp 127.0.0.1:1")
    outcome = _send(victim, signal.SIGTERM, DenyingWatch({}))
    assert outcome.result == "permission-denied"
    user = pwd.getpwuid(os.getuid()).pw_name
    assert outcome.detail == (
        f"not allowed to signal a process of {user}: run as {user} or with sudo"
    )


def test_a_reused_pid_is_never_signalled(server: Callable[[str], Server]) -> None:
    srv = server("term")
    plan = plan_kill(srv.at)
    assert plan.victims[0].start is not None
    # As if the server had exited and another process got its PID since the plan.
    stale = replace(plan, victims=tuple(replace(v, start="1") for v in plan.victims))
    report = execute(stale, timeout=1.0)
    assert [o.result for o in report.outcomes] == ["gone"]
    assert srv.proc.poll() is None  # the process now under that PID was left alone
