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

#: Put the sockets at fds 3, 4 ... (via fds >= 100, so no source is overwritten before it is
#: moved), claim the environment for this PID, become homeport: what systemd does.
WRAPPER = (
    "import fcntl, os, sys\n"
    "n = int(sys.argv[1])\n"
    "high = [fcntl.fcntl(int(f), fcntl.F_DUPFD, 100) for f in sys.argv[2:2 + n]]\n"
    "for f in sys.argv[2:2 + n]: os.close(int(f))\n"
    "for i, f in enumerate(high): os.dup2(f, 3 + i); os.close(f)\n"
    "os.environ['LISTEN_PID'] = str(os.getpid())\n"
    "os.execv(sys.argv[2 + n], sys.argv[2 + n:])\n"
)


def listening(family: socket.AddressFamily, host: str, port: int) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if family == socket.AF_INET6:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    sock.bind((host, port))
    sock.listen(128)
    return sock


def activate(
    socks: list[socket.socket], names: str, env: dict[str, str], log: Path
) -> subprocess.Popen[bytes]:
    """``homeport up`` with ``socks`` passed as fds 3.. the systemd way."""
    fds = [str(s.fileno()) for s in socks]
    full = {**env, "LISTEN_FDS": str(len(socks)), "LISTEN_FDNAMES": names}
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-c", WRAPPER, str(len(fds)), *fds, homeport_exe(), "up"],
            pass_fds=tuple(s.fileno() for s in socks),
            env=full,
            stdout=out,
            stderr=out,
        )
    for s in socks:
        s.close()  # the gateway holds them now
    return proc


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
    sock = listening(socket.AF_INET, "127.0.0.1", free_port)
    # HOMEPORT_PORT names another free port: a gateway that ignored the passed socket would
    # bind that one (never the default 62893), and the test would fail on P.
    env = {**os.environ, "HOMEPORT_PORT": str(free_port_factory())}
    env["HOMEPORT_STATE_DIR"] = str(state_dir)
    log = tmp_path / "up.log"
    proc = activate([sock], "http", env, log)
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
    assert status["listen"] == [["127.0.0.1", port]]
    info = (state_dir / "daemon.json").read_text()
    assert f'"listen": [["127.0.0.1", {port}]]' in info
    client.call("POST", "/api/routes", {"name": "app", "target": f"http://127.0.0.1:{backend}"})
    code, body = request(port, "GET", "/hello.txt", host=f"app.localhost:{port}")
    assert (code, body) == (200, b"hello from the backend\n")


def test_two_families_passed_at_once(
    state_dir: Path, free_port_factory: Callable[[], int], tmp_path: Path, backend: int
) -> None:
    """127.0.0.1:P and [::1]:P as fds 3 and 4, as the socket units for ports 80/443 pass them."""
    if not socket.has_ipv6:
        pytest.skip("no IPv6 on this machine")
    port = free_port_factory()
    socks = [listening(socket.AF_INET, "127.0.0.1", port)]
    try:
        socks.append(listening(socket.AF_INET6, "::1", port))
    except OSError as exc:
        socks[0].close()
        pytest.skip(f"cannot bind [::1]: {exc}")
    env = {**os.environ, "HOMEPORT_PORT": str(free_port_factory())}
    env["HOMEPORT_STATE_DIR"] = str(state_dir)
    log = tmp_path / "up.log"
    proc = activate(socks, "http:http", env, log)
    try:
        config = DaemonConfig.build(port=port, directory=state_dir)
        probe = Client.for_config(config)
        assert wait_until(lambda: probe.health() is not None, 20), log.read_text()
        Client.for_config(config).call(
            "POST", "/api/routes", {"name": "app", "target": f"http://127.0.0.1:{backend}"}
        )
        for family, host in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
            with socket.socket(family) as c:
                c.settimeout(10)
                c.connect((host, port))
                c.sendall(f"GET /hello.txt HTTP/1.1\r\nHost: app.localhost:{port}\r\n"
                          "Connection: close\r\n\r\n".encode())  # fmt: skip
                reply = b""
                while chunk := c.recv(65536):
                    reply += chunk
            assert reply.startswith(b"HTTP/1.1 200"), (host, reply[:200])
            assert reply.endswith(b"hello from the backend\n")
    finally:
        stop_popen(proc)


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
