"""``homeport up --workers 2`` for real: the daemon and a worker process share the port
(SO_REUSEPORT), both proxy, both write into the one access log, and a worker hands control
requests (plain and streamed) to the daemon's control app, whose checks then answer exactly
as they do on the daemon's own connections. A worker killed is started again; a daemon
killed takes its workers with it.

Which process served a connection is told by the ``Via`` element each gateway process adds
to the requests it forwards (``1.1 homeport-<its own random id>``), echoed by the backend.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from procutil import stop_child

from homeport.daemon.client import Client
from homeport.daemon.config import DaemonConfig
from homeport.daemon.process import start_background
from homeport.inventory import procfs

CONNECTIONS = 48


class _Echo(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        body = json.dumps({"via": self.headers.get("via", ""), "path": self.path}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def echo() -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def daemon(
    state_dir: Path, free_port: int, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[DaemonConfig, int]]:
    monkeypatch.setenv("HOMEPORT_PORT", str(free_port))
    config = DaemonConfig.build(workers=2)
    info = start_background(config)
    pid = int(info["pid"])
    try:
        yield config, pid
    finally:
        stop_child(pid)


def _gone(pid: int) -> bool:
    try:
        return procfs.parse_stat_record(Path(f"/proc/{pid}/stat").read_text()).state == "Z"
    except OSError:
        return True


def _until(cond: Any, timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = cond()
        if got:
            return got
        time.sleep(0.05)  # bounded poll of a condition with no event to wait on
    return cond()


def _workers(client: Client) -> list[dict[str, Any]]:
    status = client.call("GET", "/api/status")
    workers: list[dict[str, Any]] = status["workers"]
    return workers


def _connections(port: int, host: str) -> list[tuple[http.client.HTTPConnection, str]]:
    """Keep-alive connections, each with the Via id of the process that serves it."""
    out = []
    for _ in range(CONNECTIONS):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("GET", "/who", headers={"Host": host})
        resp = conn.getresponse()
        assert resp.status == 200
        via = json.loads(resp.read())["via"]
        assert via.startswith("1.1 homeport-")
        out.append((conn, via))
    return out


def test_two_processes_serve_the_port_and_log_into_one_access_log(
    daemon: tuple[DaemonConfig, int], echo: int
) -> None:
    config, pid = daemon
    client = Client.for_config(config)
    workers = _workers(client)
    assert [w["index"] for w in workers] == [0, 1]
    assert workers[0]["pid"] == pid
    assert workers[1]["pid"] != pid
    assert all(w["state"] == "running" for w in workers)
    shown = subprocess.run(
        [sys.executable, "-m", "homeport", "status"], capture_output=True, text=True, timeout=30
    )
    assert f"gateway processes: 2 (pids {pid}, {workers[1]['pid']})" in shown.stdout, shown
    # A route added after the workers started reaches them too.
    client.call("POST", "/api/routes", {"name": "api", "target": str(echo)})
    conns = _connections(config.port, f"api.localhost:{config.port}")
    try:
        vias = {via for _, via in conns}
        # The kernel hashes each connection to one of the two sockets: 48 connections all
        # landing on one process has a chance of 2 in 2**48.
        assert len(vias) == 2, vias

        def proxied() -> list[dict[str, Any]]:
            rows = client.call("GET", "/api/access?limit=500")["records"]
            return [r for r in rows if r["path"] == "/who" and r["route"] == "api.localhost"]

        # Records reach the daemon's writer in batches (a worker's within 50 ms).
        _until(lambda: len(proxied()) >= CONNECTIONS)
        mine = proxied()
        assert len(mine) == CONNECTIONS
        assert len({r["client_port"] for r in mine}) == CONNECTIONS
    finally:
        for conn, _ in conns:
            conn.close()


def test_a_worker_answers_control_requests_as_the_daemon_does(
    daemon: tuple[DaemonConfig, int], echo: int
) -> None:
    config, _ = daemon
    client = Client.for_config(config)
    client.call("POST", "/api/routes", {"name": "api", "target": str(echo)})
    token = config.token_path.read_text().strip()
    own = f"homeport.localhost:{config.port}"
    conns = _connections(config.port, f"api.localhost:{config.port}")
    try:
        by_process: dict[str, http.client.HTTPConnection] = {}
        for conn, via in conns:
            by_process.setdefault(via, conn)
        assert len(by_process) == 2
        answers = []
        for conn in by_process.values():
            # Without the token, with it, and with a foreign Origin: the same three answers.
            seen = []
            for headers in (
                {},
                {"Authorization": f"Bearer {token}"},
                {"Authorization": f"Bearer {token}", "Origin": "http://evil.example"},
            ):
                conn.request("GET", "/api/routes", headers={"Host": own, **headers})
                resp = conn.getresponse()
                body = resp.read()
                seen.append(resp.status)
                if resp.status == 200:
                    assert [r["name"] for r in json.loads(body)["routes"]] == ["api.localhost"]
            answers.append(seen)
        assert answers[0] == answers[1]
        assert answers[0][1] == 200
        assert answers[0][0] == 401
        assert answers[0][2] == 403
        # A streamed answer (the dashboard's Server-Sent Events) through each process: its hello
        # arrives, chunk by chunk, while the stream stays open.
        for conn in by_process.values():
            conn.request(
                "GET",
                "/api/stream?topics=routes",
                headers={
                    "Host": own,
                    "Authorization": f"Bearer {token}",
                    "Accept": "text/event-stream",
                },
            )
            resp = conn.getresponse()
            assert resp.status == 200
            assert resp.getheader("content-type", "").startswith("text/event-stream")
            first = resp.readline()
            assert first.startswith((b"event:", b"data:", b"id:", b":", b"retry:")), first
            conn.close()  # the client leaves mid-stream: the daemon must let go of it
        assert client.health() is not None
    finally:
        for conn, _ in conns:
            conn.close()


def test_a_killed_worker_is_started_again_and_a_killed_daemon_takes_its_workers(
    daemon: tuple[DaemonConfig, int], echo: int
) -> None:
    config, pid = daemon
    client = Client.for_config(config)
    client.call("POST", "/api/routes", {"name": "api", "target": str(echo)})
    first = _workers(client)[1]["pid"]
    os.kill(int(first), signal.SIGKILL)
    again = _until(
        lambda: next(
            (w for w in _workers(client)[1:] if w["pid"] != first and w["state"] == "running"),
            None,
        )
    )
    assert again, f"the worker was not started again: {_workers(client)}"
    assert again["restarts"] == 1
    # Both processes serve again, with the routes (the new worker got the table).
    vias = set()
    for conn, via in _connections(config.port, f"api.localhost:{config.port}"):
        vias.add(via)
        conn.close()
    assert len(vias) == 2
    # SIGKILL the daemon: its worker sees its channel close and exits.
    worker = int(again["pid"])
    os.kill(pid, signal.SIGKILL)
    assert _until(lambda: _gone(worker)), "a worker outlived its daemon"
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", config.port)) != 0
