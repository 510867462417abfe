"""``who`` says why an owner is unknown the way ``ls`` does: a process whose fds could not be
read is named as the possible owner, not blamed on another PID namespace."""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Iterator

import pytest

from homeport.inventory import _facade, fdwalk


class _DeniedWalk:
    """The walk's answer on a host where one process's fd links may not be read."""

    def __init__(self, pid: int) -> None:
        self.pid = pid

    def result(self, inodes: set[int] | None) -> fdwalk.OwnerScan:
        return fdwalk.OwnerScan({}, {self.pid}, set())


def test_who_names_the_process_whose_fds_were_denied(monkeypatch: pytest.MonkeyPatch) -> None:
    me = os.getpid()

    @contextlib.contextmanager
    def denied_walk(wanted: bool) -> Iterator[_DeniedWalk]:
        yield _DeniedWalk(me)

    monkeypatch.setattr(_facade, "_owner_walk", denied_walk)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        report = _facade.who(f"127.0.0.1:{s.getsockname()[1]}")
    (x,) = report.listeners
    assert x.owner_status == "permission-denied"
    assert x.owner_hint is not None
    if os.geteuid() == 0:
        assert f"(pid {me})" in x.owner_hint
    else:
        assert "run as root" in x.owner_hint
