"""A refused Unix socket against real files: missing, stale (bound, never listening) and
listening, read from the file system and /proc/net/unix."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from homeport.explain import explain


def _docker(path: Path) -> str:
    return f"Cannot connect to the Docker daemon at unix://{path}. Is the docker daemon running?"


@pytest.mark.skipif(not Path("/proc/net/unix").exists(), reason="needs /proc/net/unix (Linux)")
def test_missing_stale_and_listening_sockets(tmp_path: Path) -> None:
    path = tmp_path / "docker.sock"
    assert explain(_docker(path)).diagnosis[0].id == "refused.unix-missing"
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(str(path))  # the file exists, nothing listens: what a crashed server leaves
        stale = explain(_docker(path))
        s.listen()
        live = explain(_docker(path))
    assert stale.diagnosis[0].id == "refused.unix-stale"
    assert "a socket" in stale.diagnosis[0].summary
    assert live.diagnosis[0].id == "refused.unix-listening"


def test_a_socket_of_the_same_name_elsewhere_is_offered(tmp_path: Path) -> None:
    (tmp_path / "run").mkdir()
    live = tmp_path / "run" / "docker.sock"
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(str(live))
        s.listen()
        e = explain(_docker(tmp_path / "docker.sock"))
    assert e.diagnosis[0].id == "refused.unix-missing"
    assert [m.target for m in e.did_you_mean][:1] == [str(live)]
