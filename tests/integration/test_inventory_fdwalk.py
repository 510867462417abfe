"""The owner walk split with a forked helper (inventory/fdwalk.py), on real processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import pytest

from homeport.inventory import bpfwalk, fdwalk, sockets

FORKED = [{"proto": "tcp", "addr": "127.0.0.1", "fork": True}]
TWO = [{"proto": "tcp", "addr": "127.0.0.1"}, {"proto": "udp", "addr": "::1", "v6only": 1}]


def _inodes(spec: list[dict[str, Any]], ports: list[int]) -> set[int]:
    """The inodes of a sockhost's sockets (other processes may use the same port numbers on
    other addresses)."""
    mine = {(item["proto"], item["addr"], port) for item, port in zip(spec, ports, strict=True)}
    return {s.inode for s in sockets() if (s.proto, s.local_addr, s.local_port) in mine}


def test_split_walk_agrees_with_a_single_walk(sockhost: Callable[..., Any]) -> None:
    a, b = sockhost(FORKED), sockhost(TWO)
    want = _inodes(FORKED + TWO, a.ports + b.ports)
    assert len(want) == 3
    with fdwalk.OwnerWalk(parallel=True) as split:
        assert split.helper_pid is not None  # it really forked
        got = split.result(want)
    alone = fdwalk.OwnerWalk(parallel=False).result(want)
    assert got.holders == alone.holders
    assert sorted(map(tuple, got.holders.values())) == sorted(
        [tuple(sorted(a.pids)), (b.pids[0],), (b.pids[0],)]
    )


def test_walk_survives_its_helper_dying(sockhost: Callable[..., Any]) -> None:
    a = sockhost(FORKED)
    want = _inodes(FORKED, a.ports)
    walk = fdwalk.OwnerWalk(parallel=True)
    assert walk.helper_pid is not None
    os.kill(walk.helper_pid, signal.SIGKILL)
    assert walk.result(want).holders == {want.pop(): sorted(a.pids)}
    assert walk.helper_pid is None  # reaped


@pytest.mark.parametrize("parallel", [True, False])
def test_walk_begun_before_a_process_still_finds_its_sockets(
    sockhost: Callable[..., Any], parallel: bool
) -> None:
    walk = fdwalk.OwnerWalk(parallel=parallel)  # its PID list is fixed from here on
    late = sockhost(FORKED)
    want = _inodes(FORKED, late.ports)
    assert walk.result(want).holders == {want.pop(): sorted(late.pids)}


def test_unused_walk_leaves_no_process() -> None:
    walk = fdwalk.OwnerWalk(parallel=True)
    pid = walk.helper_pid
    assert pid is not None
    walk.close()
    with pytest.raises(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)  # already reaped: no zombie left behind


def test_walk_without_a_process_to_spare_walks_alone(
    sockhost: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    a = sockhost(FORKED)
    want = _inodes(FORKED, a.ports)

    def no_fork() -> int:
        raise BlockingIOError(11, "Resource temporarily unavailable")  # RLIMIT_NPROC

    monkeypatch.setattr(os, "fork", no_fork)
    before = len(os.listdir("/proc/self/fd"))
    walk = fdwalk.OwnerWalk(parallel=True)
    assert walk.helper_pid is None
    assert walk.result(want).holders == {want.pop(): sorted(a.pids)}
    assert len(os.listdir("/proc/self/fd")) == before  # no pipe left open


CLI = """
import sys
from homeport.inventory import fdwalk
fdwalk.FORK_MIN_FDS = 1  # a small machine: make the CLI split its walk anyway
walks = []
init = fdwalk.OwnerWalk.__init__
def counted(self, *args, **kwargs):
    init(self, *args, **kwargs)
    walks.append(self)
fdwalk.OwnerWalk.__init__ = counted
from homeport.cli import main
status = main(sys.argv[1:])
print("walks:", [w.method for w in walks], file=sys.stderr)
sys.exit(status)
"""


@pytest.mark.parametrize("command", ["ls", "who", "explain"])
def test_cli_early_walk_reports_every_owner(sockhost: Callable[..., Any], command: str) -> None:
    a = sockhost(FORKED)
    port = a.ports[0]
    args = {
        "ls": ["ls", "--port", str(port)],
        "who": ["who", str(port)],
        "explain": ["explain", f"127.0.0.1:{port}"],
    }[command]
    done = subprocess.run(
        [sys.executable, "-c", CLI, *args, "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    # One walk, begun before the imports, served the command: the kernel's where it can
    # (root, BTF), else split with a helper when there are two CPUs.
    if bpfwalk.usable():
        method = "kernel"
    else:
        method = "split" if len(os.sched_getaffinity(0)) >= 2 else "alone"
    assert f"walks: ['{method}']" in done.stderr
    out = json.loads(done.stdout)
    rows = out["live"]["listeners"] if command == "explain" else out["listeners"]
    rows = [r for r in rows if r["address"] == "127.0.0.1"]
    assert [r["pids"] for r in rows] == [sorted(a.pids)]
