"""A real daemon on a free port with a private state dir: lock, kill -9 and restart, the control
API over HTTP through the proxy, the access log, and supervision of services whose owner dies."""

from __future__ import annotations

import base64
import http.client
import json
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from procutil import stop_child

from homeport.daemon.client import Client, lock_held
from homeport.daemon.config import DaemonConfig
from homeport.daemon.process import start_background
from homeport.errors import DaemonError
from homeport.inventory import procfs


@dataclass
class Daemon:
    config: DaemonConfig
    pid: int

    @property
    def client(self) -> Client:
        return Client.for_config(self.config)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        stop_child(self.pid, sig)  # it is our child: waited for on a pidfd, then reaped

    def restart(self) -> None:
        self.pid = int(start_background(self.config)["pid"])


@pytest.fixture
def daemon(state_dir: Path, free_port: int, monkeypatch: pytest.MonkeyPatch) -> Iterator[Daemon]:
    monkeypatch.setenv("HOMEPORT_PORT", str(free_port))
    config = DaemonConfig.build()
    d = Daemon(config, int(start_background(config)["pid"]))
    try:
        yield d
    finally:
        d.stop()


def request(
    port: int,
    method: str,
    path: str,
    *,
    host: str,
    headers: dict[str, str] | None = None,
    body: Any = None,
) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        hs = {"Host": host, **(headers or {})}
        payload = json.dumps(body).encode() if body is not None else None
        conn.request(method, path, body=payload, headers=hs)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


@pytest.fixture
def backend(free_port_factory: Any, tmp_path: Path) -> Iterator[int]:
    """A real HTTP server (python -m http.server) on a free loopback port."""
    port = free_port_factory()
    (tmp_path / "hello.txt").write_text("hello from the backend\n")
    proc = subprocess.Popen(
        [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_port(port, proc)
        yield port
    finally:
        proc.kill()
        proc.wait(10)


def wait_port(port: int, proc: subprocess.Popen[bytes] | None = None, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"backend exited with {proc.returncode}")
        time.sleep(0.02)  # bounded connect loop
    raise AssertionError(f"nothing listened on {port}")


def gone(pid: int) -> bool:
    """No such process, or only its zombie (it can no longer hold anything)."""
    try:
        return procfs.parse_stat_record(Path(f"/proc/{pid}/stat").read_text()).state == "Z"
    except OSError:
        return True


def wait_until(cond: Any, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.05)
    return bool(cond())


def test_second_daemon_says_where_the_first_is(daemon: Daemon) -> None:
    with pytest.raises(
        DaemonError, match=rf"already running at .*:{daemon.config.port} \(pid {daemon.pid}\)"
    ):
        start_background(daemon.config)
    assert daemon.client.health() is not None


def test_token_file_is_private(daemon: Daemon) -> None:
    mode = daemon.config.token_path.stat().st_mode & 0o777
    assert mode == 0o600
    assert len(daemon.config.token_path.read_text().strip()) >= 32


def test_routes_survive_kill_9_and_keep_routing(daemon: Daemon, backend: int) -> None:
    port = daemon.config.port
    daemon.client.call("POST", "/api/routes", {"name": "api", "target": str(backend)})
    daemon.client.call("POST", "/api/routes", {"name": "db", "target": "[::1]:5432"})
    status, body = request(port, "GET", "/hello.txt", host=f"api.localhost:{port}")
    assert (status, body) == (200, b"hello from the backend\n")
    daemon.stop(signal.SIGKILL)
    assert daemon.client.health() is None
    daemon.restart()
    names = [r["name"] for r in daemon.client.call("GET", "/api/routes")["routes"]]
    assert names == ["api.localhost", "db.localhost"]
    status, body = request(port, "GET", "/hello.txt", host=f"api.localhost:{port}")
    assert (status, body) == (200, b"hello from the backend\n")


def test_control_api_over_http_refuses_without_token_foreign_host_or_origin(daemon: Daemon) -> None:
    port = daemon.config.port
    token = daemon.config.token_path.read_text().strip()
    own = f"homeport.localhost:{port}"
    route = {"name": "x", "target": "1234"}
    auth = {"Authorization": f"Bearer {token}"}
    assert request(port, "POST", "/api/routes", host=own, body=route)[0] == 401
    assert request(
        port, "POST", "/api/routes", host=f"evil.example:{port}", headers=auth, body=route
    )[0] in (403, 404, 421)
    assert (
        request(
            port,
            "POST",
            "/api/routes",
            host=own,
            headers={**auth, "Origin": "http://evil.example"},
            body=route,
        )[0]
        == 403
    )
    assert daemon.client.call("GET", "/api/routes")["routes"] == []
    status, _ = request(
        port,
        "POST",
        "/api/routes",
        host=own,
        headers={**auth, "Origin": f"http://homeport.localhost:{port}"},
        body=route,
    )
    assert status == 201


def test_access_log_records_proxied_requests(daemon: Daemon, backend: int) -> None:
    port = daemon.config.port
    daemon.client.call("POST", "/api/routes", {"name": "api", "target": str(backend)})
    assert request(port, "GET", "/hello.txt?x=1", host=f"api.localhost:{port}")[0] == 200
    assert request(port, "GET", "/", host=f"nothing.localhost:{port}")[0] == 404

    def records() -> list[dict[str, Any]]:
        got = daemon.client.call("GET", "/api/access", limit=100)["records"]
        return [r for r in got if r["host"].split(":")[0] != "homeport.localhost"]

    assert wait_until(lambda: len(records()) >= 2)
    hit = next(r for r in records() if r["route"] == "api.localhost")
    assert (hit["method"], hit["status"], hit["external"]) == ("GET", 200, False)
    assert hit["path"].startswith("/hello.txt")
    assert hit["bytes_out"] > 0
    miss = next(r for r in records() if r["host"].startswith("nothing."))
    assert miss["status"] == 404
    assert miss["reason"]


OWNER = "import time; time.sleep(120)"


def spawn_group(argv: list[str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        argv, process_group=0, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )


def test_service_group_is_stopped_when_its_owner_dies(
    daemon: Daemon, free_port_factory: Any
) -> None:
    port = free_port_factory()  # its own port: the daemon listens on free_port
    owner = subprocess.Popen([sys.executable, "-c", OWNER])
    server = spawn_group([sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"])
    try:
        wait_port(port, server)
        svc = daemon.client.call(
            "POST",
            "/api/services",
            {
                "name": "web",
                "cmd": ["http.server"],
                "cwd": "/",
                "port": port,
                "pid": server.pid,
                "pgid": server.pid,
                "owner_pid": owner.pid,
            },
        )["service"]
        daemon.client.call(
            "POST",
            f"/api/services/{svc['id']}/running",
            {"route": {"name": "web", "target": str(port)}},
        )
        assert [r["name"] for r in daemon.client.call("GET", "/api/routes")["routes"]] == [
            "web.localhost"
        ]
        owner.kill()
        owner.wait(10)
        assert wait_until(lambda: server.poll() is not None), "the daemon did not stop the group"
        assert server.returncode == -signal.SIGTERM
        assert wait_until(lambda: daemon.client.call("GET", "/api/routes")["routes"] == [])
        states = {
            s["id"]: s["state"]
            for s in daemon.client.call("GET", "/api/services", all="1")["services"]
        }
        assert states[svc["id"]] == "reaped"
    finally:
        for p in (owner, server):
            if p.poll() is None:
                p.kill()
                p.wait(10)


def test_restart_stops_services_whose_owner_died_meanwhile(daemon: Daemon) -> None:
    owner = subprocess.Popen([sys.executable, "-c", OWNER])
    server = spawn_group([sys.executable, "-c", OWNER])
    try:
        daemon.client.call(
            "POST",
            "/api/services",
            {
                "name": "w",
                "cmd": ["x"],
                "cwd": "/",
                "port": 1,
                "pid": server.pid,
                "pgid": server.pid,
                "owner_pid": owner.pid,
            },
        )
        daemon.stop(signal.SIGKILL)
        owner.kill()
        owner.wait(10)
        assert server.poll() is None  # nobody watched while the daemon was down
        daemon.restart()
        assert wait_until(lambda: server.poll() is not None), "restart did not reap the orphan"
    finally:
        for p in (owner, server):
            if p.poll() is None:
                p.kill()
                p.wait(10)


def test_shutdown_endpoint_stops_the_daemon_cleanly(daemon: Daemon) -> None:
    daemon.client.call("POST", "/api/shutdown")
    assert wait_until(lambda: not lock_held(daemon.config))
    assert not daemon.config.info_path.exists()


def test_expose_listens_there_and_puts_auth_on_every_route(
    state_dir: Path, free_port: int, backend: int
) -> None:
    # 127.0.0.2 stands in for a LAN address: a real one would need a namespace, and the
    # mechanism (one more listen address, gateway-wide auth) is the same.
    config = DaemonConfig.build(port=free_port, expose=("127.0.0.2",), auth="token")
    d = Daemon(config, int(start_background(config)["pid"]))
    try:
        token = config.token_path.read_text().strip()
        d.client.call("POST", "/api/routes", {"name": "api", "target": str(backend)})
        host = f"api.localhost:{free_port}"
        conn = http.client.HTTPConnection("127.0.0.2", free_port, timeout=10)
        conn.request("GET", "/hello.txt", headers={"Host": host})
        refused = conn.getresponse()
        refused.read()
        conn.close()
        assert refused.status == 401
        conn = http.client.HTTPConnection("127.0.0.2", free_port, timeout=10)
        conn.request(
            "GET", "/hello.txt", headers={"Host": host, "Authorization": f"Bearer {token}"}
        )
        ok = conn.getresponse()
        assert (ok.status, ok.read()) == (200, b"hello from the backend\n")
        conn.close()
        listen = d.client.call("GET", "/api/status")["listen"]
        assert ["127.0.0.2", free_port] in listen
    finally:
        d.stop()


def test_foreground_up_stops_cleanly_on_ctrl_c(
    state_dir: Path, free_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOMEPORT_PORT", str(free_port))
    config = DaemonConfig.build()
    proc = subprocess.Popen(
        [sys.executable, "-m", "homeport", "up"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        assert proc.stdout is not None
        seen = b""
        deadline = time.monotonic() + 20
        while b"homeport gateway at" not in seen and time.monotonic() < deadline:
            line = proc.stdout.readline()  # the readiness line, logged once it listens
            if not line:
                break  # it exited: the assertion below shows what it said
            seen += line
        assert Client.for_config(config).health() is not None, seen
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=20)
        assert proc.returncode == 0, out
        assert not lock_held(config)
        assert not config.info_path.exists()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=10)


def test_basic_auth_password_is_not_on_the_daemons_command_line_or_environment(
    state_dir: Path, free_port: int, backend: int
) -> None:
    password = "pw-" + secrets.token_hex(8)
    config = DaemonConfig.build(port=free_port, auth=f"basic:ann:{password}")
    d = Daemon(config, int(start_background(config)["pid"]))
    try:
        # What any user can read (cmdline, `ps`) and what the same user can (environ), for as
        # long as the daemon lives: neither holds the password.
        for name in ("cmdline", "environ"):
            assert password.encode() not in Path(f"/proc/{d.pid}/{name}").read_bytes(), name
        assert b"--auth-fd" in Path(f"/proc/{d.pid}/cmdline").read_bytes()
        # ... and basic auth works with it.
        d.client.call("POST", "/api/routes", {"name": "api", "target": str(backend)})
        host = f"api.localhost:{free_port}"
        assert request(free_port, "GET", "/hello.txt", host=host)[0] == 401
        good = base64.b64encode(f"ann:{password}".encode()).decode()
        ok = request(free_port, "GET", "/hello.txt", host=host,
                     headers={"Authorization": f"Basic {good}"})  # fmt: skip
        assert ok == (200, b"hello from the backend\n")
        assert password not in config.log_path.read_text(errors="replace")
    finally:
        d.stop()
