"""``homeport run`` end to end: a real ``python -m http.server`` reachable by name through the
gateway; Ctrl-C, the command exiting, and ``kill -9`` of the CLI each leave no process behind."""

from __future__ import annotations

import http.client
import os
import re
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from procutil import stop_child

from homeport.daemon.client import Client
from homeport.daemon.config import DaemonConfig
from homeport.daemon.process import start_background
from homeport.inventory import listeners

READY = re.compile(r"homeport: (\S+) is at (\S+)\s+\(port (\d+), pid (\d+)\)")


@pytest.fixture
def gateway(state_dir: Path, free_port: int, monkeypatch: pytest.MonkeyPatch) -> Iterator[Client]:
    monkeypatch.setenv("HOMEPORT_PORT", str(free_port))
    config = DaemonConfig.build()
    pid = int(start_background(config)["pid"])
    try:
        yield Client.for_config(config)
    finally:
        stop_child(pid)


class Run:
    """``python -m homeport run ...`` as a child in its own session, output on a pipe."""

    def __init__(self, *argv: str, cwd: Path, env: dict[str, str] | None = None) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "homeport", "run", *argv],
            cwd=cwd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.output = ""

    def wait_ready(self, timeout: float = 30.0) -> tuple[str, int, int]:
        """Read output until the URL line; returns (url, port, service pid)."""
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + timeout
        while (m := READY.search(self.output)) is None:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                raise AssertionError(f"no ready line; output so far:\n{self.output}")
            chunk = os.read(fd, 65536)
            if not chunk:
                raise AssertionError(f"run exited early:\n{self.output}")
            self.output += chunk.decode(errors="replace")
        return m.group(2), int(m.group(3)), int(m.group(4))

    def finish(self, timeout: float = 30.0) -> int:
        out, _ = self.proc.communicate(timeout=timeout)
        self.output += out.decode(errors="replace")
        return self.proc.returncode

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.communicate(timeout=10)


def gone(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat[stat.rfind(")") + 2] == "Z"  # a zombie holds nothing


def wait_until(cond: Any, timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.05)
    return bool(cond())


def get(
    gateway_port: int, host: str, path: str, headers: dict[str, str] | None = None
) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", gateway_port, timeout=10)
    try:
        conn.request("GET", path, headers={"Host": host, **(headers or {})})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def routes(client: Client) -> list[str]:
    return [r["name"] for r in client.call("GET", "/api/routes")["routes"]]


def test_http_server_by_name_and_ctrl_c_leaves_nothing(gateway: Client, tmp_path: Path) -> None:
    (tmp_path / "index.txt").write_text("served by http.server\n")
    run = Run("--name", "files", "--", sys.executable, "-m", "http.server", cwd=tmp_path)
    try:
        url, port, pid = run.wait_ready()
        assert url == f"http://files.localhost:{gateway.port}"
        status, body = get(gateway.port, f"files.localhost:{gateway.port}", "/index.txt")
        assert (status, body) == (200, b"served by http.server\n")
        assert [ls.port for ls in listeners(port=port, udp=False)] == [port]
        os.kill(run.proc.pid, signal.SIGINT)  # what Ctrl-C sends to the foreground group
        assert run.finish() == 130
    finally:
        run.kill()
    assert gone(pid), f"http.server (pid {pid}) outlived homeport run"
    assert listeners(port=port, udp=False) == []
    assert routes(gateway) == []
    assert "files | " in run.output  # the child's output was streamed with its prefix


SERVE_ONCE_THEN_EXIT = """
import os, socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((os.environ["HOST"], int(os.environ["PORT"])))
s.listen()
print("listening", flush=True)
c, _ = s.accept()  # the readiness probe
c.close()
c, _ = s.accept()  # the test's connection: then exit with a status of our own
c.close()
sys.exit(3)
"""


def test_command_exit_status_is_passed_on_and_route_removed(
    gateway: Client, tmp_path: Path
) -> None:
    run = Run("--name", "once", "--", sys.executable, "-c", SERVE_ONCE_THEN_EXIT, cwd=tmp_path)
    try:
        _, port, pid = run.wait_ready()
        assert routes(gateway) == ["once.localhost"]
        import socket

        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass
        assert run.finish() == 3
    finally:
        run.kill()
    assert gone(pid)
    assert routes(gateway) == []
    events = gateway.call("GET", "/api/events")["events"]
    services = [e for e in events if e["kind"].startswith("service-")]  # listeners come too
    assert [(e["kind"], e["data"]["exit_code"]) for e in services] == [("service-exited", 3)]


def test_kill_9_of_the_cli_lets_the_daemon_stop_the_group(gateway: Client, tmp_path: Path) -> None:
    run = Run("--name", "orphan", "--", sys.executable, "-m", "http.server", cwd=tmp_path)
    try:
        _, port, pid = run.wait_ready()
        os.kill(run.proc.pid, signal.SIGKILL)  # the CLI only: its child is in another group
        run.proc.communicate(timeout=10)
        assert wait_until(lambda: gone(pid)), "the daemon did not stop the orphaned server"
        assert wait_until(lambda: routes(gateway) == [])
        assert listeners(port=port, udp=False) == []
    finally:
        run.kill()
        if not gone(pid):
            os.kill(pid, signal.SIGKILL)


def test_command_not_listening_times_out_and_is_stopped(gateway: Client, tmp_path: Path) -> None:
    run = Run(
        "--name",
        "mute",
        "--timeout",
        "1",
        "--",
        sys.executable,
        "-c",
        "import time; print('up', flush=True); time.sleep(60)",
        cwd=tmp_path,
    )
    assert run.finish() == 1
    assert "nothing listens on port" in run.output
    assert routes(gateway) == []
    services = gateway.call("GET", "/api/services", all="1")["services"]
    assert [s["state"] for s in services] == ["exited"]
    assert all(gone(s["pid"]) for s in services)


GO_DEAF = """
import os, socket, time
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((os.environ["HOST"], int(os.environ["PORT"])))
s.listen()
c, _ = s.accept()  # the readiness probe
c.close()
s.close()
print("worker crashed: database is locked", flush=True)
time.sleep(60)
"""


def test_502_page_tells_what_happened_to_the_service(gateway: Client, tmp_path: Path) -> None:
    run = Run("--name", "deaf", "--", sys.executable, "-c", GO_DEAF, cwd=tmp_path)
    try:
        run.wait_ready()
        host = f"deaf.localhost:{gateway.port}"

        def page() -> tuple[int, bytes]:
            return get(gateway.port, host, "/")

        # The output reaches the daemon in batches (every 0.5 s): wait for the line to arrive.
        assert wait_until(lambda: b"database is locked" in page()[1]), page()
        status, body = page()
        assert status == 502
        assert b"does not answer" in body
        os.kill(run.proc.pid, signal.SIGINT)
        assert run.finish() == 130
    finally:
        run.kill()


def test_run_outliving_the_gateway_still_removes_its_route(gateway: Client, tmp_path: Path) -> None:
    from homeport.daemon.client import stop_daemon
    from homeport.store import Store

    run = Run("--name", "late", "--", sys.executable, "-m", "http.server", cwd=tmp_path)
    try:
        _, _, pid = run.wait_ready()
        assert stop_daemon(gateway) is not None
        os.kill(run.proc.pid, signal.SIGINT)
        assert run.finish() == 130
    finally:
        run.kill()
    assert gone(pid)
    store = Store(gateway.config.db_path)
    try:
        assert store.routes() == []
        assert [s.state for s in store.services()] == ["stopped"]
    finally:
        store.close()


IGNORES_PORT = """
import http.server, socketserver
# Listens wherever the kernel says, as servers that ignore $PORT do (vite under npm run dev).
with http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler) as s:
    print("own port", s.server_address[1], flush=True)
    s.serve_forever()
"""


def test_command_ignoring_port_is_found_on_its_own_port(gateway: Client, tmp_path: Path) -> None:
    (tmp_path / "here.txt").write_text("found me\n")
    run = Run("--name", "stubborn", "--", sys.executable, "-c", IGNORES_PORT, cwd=tmp_path)
    try:
        _, port, pid = run.wait_ready()
        assert f"own port {port}" in run.output
        assert "ignored PORT=" in run.output or "ignored PORT=" in _more(run)
        status, body = get(gateway.port, f"stubborn.localhost:{gateway.port}", "/here.txt")
        assert (status, body) == (200, b"found me\n")
        svc = gateway.call("GET", "/api/services")["services"][0]
        assert svc["port"] == port
        os.kill(run.proc.pid, signal.SIGINT)
        assert run.finish() == 130
    finally:
        run.kill()
    assert gone(pid)


def _more(run: Run) -> str:
    """Output that arrived after the ready line (the note follows it)."""
    assert run.proc.stdout is not None
    if select.select([run.proc.stdout], [], [], 5)[0]:
        run.output += os.read(run.proc.stdout.fileno(), 65536).decode(errors="replace")
    return run.output


def test_basic_auth_password_from_the_environment_is_in_no_proc_file(
    gateway: Client, tmp_path: Path
) -> None:
    import base64
    import secrets

    (tmp_path / "index.txt").write_text("behind basic auth\n")
    password = "pw-" + secrets.token_hex(8)
    env = {**os.environ, "HOMEPORT_AUTH_PASSWORD": password}
    argv = ("--name", "guarded", "--auth", "basic:me", "--", sys.executable, "-m", "http.server")
    run = Run(*argv, cwd=tmp_path, env=env)
    try:
        _, _, pid = run.wait_ready()
        # The CLI lives as long as the service: neither it nor the service may show the
        # password to ps (cmdline) or keep it in the block /proc/PID/environ reads.
        for owner in (run.proc.pid, pid):
            for part in ("cmdline", "environ"):
                data = Path(f"/proc/{owner}/{part}").read_bytes()
                assert password.encode() not in data, (owner, part)
        assert b"HOMEPORT_AUTH_PASSWORD" not in Path(f"/proc/{pid}/environ").read_bytes()
        host = f"guarded.localhost:{gateway.port}"
        assert get(gateway.port, host, "/index.txt")[0] == 401
        wrong = {"Authorization": "Basic " + base64.b64encode(b"me:nope").decode()}
        assert get(gateway.port, host, "/index.txt", wrong)[0] == 401
        right = {"Authorization": "Basic " + base64.b64encode(f"me:{password}".encode()).decode()}
        assert get(gateway.port, host, "/index.txt", right) == (200, b"behind basic auth\n")
        os.kill(run.proc.pid, signal.SIGINT)
        assert run.finish() == 130
    finally:
        run.kill()
    assert password not in run.output
    assert "visible to every user" not in run.output  # no warning for the safe form


PRINT_CA_THEN_SERVE = """
import os, runpy, sys
print("ca-env", os.environ.get("SSL_CERT_FILE"), os.environ.get("NODE_EXTRA_CA_CERTS"), flush=True)
sys.argv = ["http.server", os.environ["PORT"], "--bind", os.environ["HOST"]]
runpy.run_module("http.server", run_name="__main__")
"""


def test_children_get_the_local_ca_once_trusted(
    gateway: Client, tmp_path: Path, state_dir: Path
) -> None:
    """`homeport trust` wrote the children's bundle: `run` hands it to the command."""
    from homeport.tls import Authority
    from homeport.tls.env import write_bundle

    Authority(state_dir).root()
    write_bundle(state_dir)
    env = {k: v for k, v in os.environ.items() if k not in ("SSL_CERT_FILE", "NODE_EXTRA_CA_CERTS")}
    run = Run(
        "--name", "ca", "--", sys.executable, "-c", PRINT_CA_THEN_SERVE, cwd=tmp_path, env=env
    )
    try:
        run.wait_ready()
        os.kill(run.proc.pid, signal.SIGINT)
        run.finish()
    finally:
        run.kill()
    tls = state_dir / "tls"
    assert f"ca | ca-env {tls / 'bundle.pem'} {tls / 'ca.pem'}" in run.output
