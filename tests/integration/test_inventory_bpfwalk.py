"""The owner walk in the kernel (inventory/bpfwalk.py): a BPF task_file iterator, checked
against the /proc walk on real processes, with its cache and its fallbacks."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from homeport.inventory import bpfwalk, fdwalk, sockets

pytestmark = pytest.mark.skipif(
    not bpfwalk.usable(),
    reason="the kernel walk needs root on Linux x86_64/aarch64 with /sys/kernel/btf/vmlinux",
)

FORKED = [{"proto": "tcp", "addr": "127.0.0.1", "fork": True}]
TWO = [{"proto": "tcp", "addr": "127.0.0.1"}, {"proto": "udp", "addr": "::1", "v6only": 1}]


def _inodes(spec: list[dict[str, Any]], ports: list[int]) -> set[int]:
    mine = {(item["proto"], item["addr"], port) for item, port in zip(spec, ports, strict=True)}
    return {s.inode for s in sockets() if (s.proto, s.local_addr, s.local_port) in mine}


@pytest.fixture(autouse=True)
def _fresh(state_dir: Path) -> Iterator[None]:
    """Each test has its own cache (a refusal kept by one must not reach the others)."""
    bpfwalk._memo = None
    yield
    bpfwalk._memo = None


def test_kernel_walk_agrees_with_the_proc_walk(sockhost: Callable[..., Any]) -> None:
    a, b = sockhost(FORKED), sockhost(TWO)
    want = _inodes(FORKED + TWO, a.ports + b.ports)
    assert len(want) == 3
    walk = fdwalk.OwnerWalk()
    assert walk.method == "kernel"
    got = walk.result(want)
    assert walk.method == "kernel", walk.refused
    alone = fdwalk.OwnerWalk(kernel=False, parallel=False).result(want)
    assert got.holders == alone.holders
    assert sorted(map(tuple, got.holders.values())) == sorted(
        [tuple(sorted(a.pids)), (b.pids[0],), (b.pids[0],)]
    )


def test_every_socket_and_many_inodes(sockhost: Callable[..., Any]) -> None:
    """``None`` and more than MAX_INODES take the is-a-socket program and filter here."""
    a = sockhost(FORKED)
    (inode,) = _inodes(FORKED, a.ports)
    read_end, write_end = os.pipe()  # not a socket: pipes and sockets share one inode counter
    try:
        every, walked = bpfwalk.scan(None)
        assert os.fstat(read_end).st_ino not in every
    finally:
        os.close(read_end)
        os.close(write_end)
    assert every[inode] == sorted(a.pids)
    many = {inode} | set(range(1, bpfwalk.MAX_INODES + 10))
    held, _ = bpfwalk.scan(many)
    assert held.get(inode) == sorted(a.pids)
    assert set(held) <= many
    # Every process with an fd 0-2 is marked as walked: ours and the sockhost's.
    assert {os.getpid(), *a.pids} <= walked


def test_offsets_are_cached_per_kernel_and_a_stale_cache_is_parsed_again(
    sockhost: Callable[..., Any],
) -> None:
    a = sockhost(FORKED)
    want = _inodes(FORKED, a.ports)
    bpfwalk.scan(want)
    path = Path(bpfwalk._cache_path())
    kept = json.loads(path.read_text())
    assert kept["kernel"] == bpfwalk._kernel_key()
    assert set(kept["facts"]) == {"attach", "f_inode", "i_ino", "i_mode", "tgid"}
    # Offsets the verifier refuses (past the end of struct file): parsed again, and right.
    path.write_text(json.dumps({**kept, "facts": {**kept["facts"], "f_inode": 32760}}))
    bpfwalk._memo = None
    assert bpfwalk.scan(want)[0] == {want.pop(): sorted(a.pids)}
    assert json.loads(path.read_text())["facts"] == kept["facts"]


def test_a_refusal_is_kept_and_the_proc_walk_answers(sockhost: Callable[..., Any]) -> None:
    a = sockhost(FORKED)
    want = _inodes(FORKED, a.ports)
    Path(bpfwalk._cache_path()).write_text(
        json.dumps({"kernel": bpfwalk._kernel_key(), "error": "Operation not permitted"})
    )
    with pytest.raises(bpfwalk.Unavailable, match="Operation not permitted"):
        bpfwalk.scan(want)
    walk = fdwalk.OwnerWalk()
    assert walk.result(want).holders == {next(iter(want)): sorted(a.pids)}
    assert walk.method == "alone"
    assert walk.refused is not None
    assert "Operation not permitted" in walk.refused


@pytest.mark.skipif(not shutil.which("unshare"), reason="unshare (util-linux) is not installed")
def test_inside_another_pid_namespace_the_proc_walk_answers(tmp_path: Path) -> None:
    """The kernel reports PIDs of the initial namespace; in a child one the sentinel (our own
    pipe) comes back with a PID that is not ours, and the walk falls back to /proc."""
    script = (
        "import json, os, socket\n"
        "from homeport.inventory import fdwalk, sockets\n"
        "s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen()\n"
        "inode = os.fstat(s.fileno()).st_ino\n"
        "walk = fdwalk.OwnerWalk()\n"
        "held = walk.result({inode}).holders\n"
        "print(json.dumps([walk.method, walk.refused, held.get(inode), os.getpid()]))\n"
    )
    done = subprocess.run(
        ["unshare", "--pid", "--fork", "--mount-proc", sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "HOMEPORT_STATE_DIR": str(tmp_path)},
    )
    if done.returncode != 0 and "unshare" in done.stderr:
        pytest.skip(f"cannot make a PID namespace here: {done.stderr.strip()}")
    assert done.returncode == 0, done.stderr
    method, refused, held, pid = json.loads(done.stdout)
    assert method == "alone"
    assert "namespace" in refused
    assert held == [pid]


def test_procfs_forced_by_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(bpfwalk.ENV_WALK, "procfs")
    assert not bpfwalk.usable()
    assert fdwalk.OwnerWalk().method in ("split", "alone")


def test_a_process_the_kernel_did_not_walk_is_looked_for_in_proc(
    sockhost: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The kernel may leave a process out (a sandbox's PID 1, whose fds root may not read
    either): a socket it found no holder for is looked for through /proc in the processes it
    did not walk. Here the kernel's answer loses the sockhost, as such a kernel's would."""
    a = sockhost(FORKED)
    want = _inodes(FORKED, a.ports)
    real = bpfwalk.scan

    def without_the_sockhost(inodes: set[int] | None) -> tuple[dict[int, list[int]], set[int]]:
        held, walked = real(inodes)
        return {i: p for i, p in held.items() if i not in want}, walked - set(a.pids)

    monkeypatch.setattr(bpfwalk, "scan", without_the_sockhost)
    walk = fdwalk.OwnerWalk()
    assert walk.result(want).holders == {next(iter(want)): sorted(a.pids)}
    assert walk.method == "kernel"
