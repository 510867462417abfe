"""Socket activation without systemd: this test binds 127.0.0.1:P itself and starts
``homeport up`` with that socket as fd 3, ``LISTEN_FDS=1`` and ``LISTEN_PID`` set to the
gateway's own PID (a small wrapper sets it, then execs), exactly as systemd passes sockets.
The gateway must serve on P without binding anything itself."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from procutil import stop_popen
from test_daemon_lifecycle import backend, request, wait_until

from homeport.daemon.activation import passed_fds
from homeport.daemon.client import Client
from homeport.daemon.config import DaemonConfig
from homeport.errors import UsageError

__all__ = ["backend"]

#: Put the socket at fd 3, claim the environment for this PID, become homeport.
WRAPPER = (
    "import os, sys\n"
    "fd = int(sys.argv[1])\n"
    "os.dup2(fd, 3)\n"
    "os.close(fd)\n"
    "os.environ['LISTEN_PID'] = str(os.getpid())\n"
    "os.execv(sys.argv[2], sys.argv[2:])\n"
)


def homeport_exe() -> str:
    exe = Path(sys.executable).with_name("homeport")
    found = str(exe) if exe.exists() else shutil.which("homeport")
    assert found, "the homeport console script is not installed"
    return found


@pytest.fixture
def activated(
    state_dir: Path, free_port_factory: Callable[[], int], tmp_path: Path
) -> Iterator[tuple[int, Path]]:
    free_port = free_port_factory()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", free_port))
    sock.listen(128)
    # HOMEPORT_PORT names another free port: a gateway that ignored the passed socket would
    # bind that one (never the default 62893), and the test would fail on P.
    env = {**os.environ, "HOMEPORT_PORT": str(free_port_factory())}
    env.update(LISTEN_FDS="1", LISTEN_FDNAMES="http", HOMEPORT_STATE_DIR=str(state_dir))
    log = tmp_path / "up.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-c", WRAPPER, str(sock.fileno()), homeport_exe(), "up"],
            pass_fds=(sock.fileno(),),
            env=env,
            stdout=out,
            stderr=out,
        )
    sock.close()  # the gateway holds it now
    try:
        yield free_port, log
    finally:
        stop_popen(proc)


def test_the_gateway_serves_a_passed_socket(
    activated: tuple[int, Path], backend: int, state_dir: Path
) -> None:
    port, log = activated
    config = DaemonConfig.build(port=port, directory=state_dir)
    probe = Client.for_config(config)
    assert wait_until(lambda: probe.health() is not None, 20), log.read_text()
    client = Client.for_config(config)  # the token file exists now
    status = client.call("GET", "/api/status")
    # The passed socket's port is the gateway's port, and nothing else was bound: no ::1.
    assert status["port"] == port
    info = (state_dir / "daemon.json").read_text()
    assert f'"listen": [["127.0.0.1", {port}]]' in info
    client.call("POST", "/api/routes", {"name": "app", "target": f"http://127.0.0.1:{backend}"})
    code, body = request(port, "GET", "/hello.txt", host=f"app.localhost:{port}")
    assert (code, body) == (200, b"hello from the backend\n")


def test_passed_fds_follow_sd_listen_fds() -> None:
    env = {"LISTEN_PID": "42", "LISTEN_FDS": "2", "LISTEN_FDNAMES": "http:", "PATH": "/bin"}
    got = passed_fds(env, 42)
    assert [(p.fd, p.name) for p in got] == [(3, "http"), (4, "unknown")]
    assert env == {"PATH": "/bin"}  # unset for every child
    other = {"LISTEN_PID": "41", "LISTEN_FDS": "1"}
    assert passed_fds(other, 42) == []  # meant for another process (a parent's leftovers)
    assert other == {}
    assert passed_fds({"PATH": "/bin"}, 42) == []
    with pytest.raises(UsageError, match="LISTEN_FDS"):
        passed_fds({"LISTEN_PID": "42", "LISTEN_FDS": "two"}, 42)
