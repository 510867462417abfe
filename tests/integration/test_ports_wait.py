"""Waiting against real servers: late starters, ::1-only, 503-then-200, self-connects."""

from __future__ import annotations

import http.server
import os
import shutil
import socket
import ssl
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from homeport.ports.probe import verify_connected
from homeport.ports.wait import HttpCheck, WaitFailed, WaitReport, wait_for

LATE = textwrap.dedent("""
    import socket, sys
    port = int(sys.argv[1])
    sys.stdin.readline()          # the test says when to start
    s = socket.create_server(("127.0.0.1", port))
    print("listening", flush=True)
    sys.stdin.readline()
""")


def test_server_that_starts_late(free_port: int) -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", LATE, str(free_port)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdin is not None
    failures: list[str] = []

    def started_after_first_failure(report: WaitReport) -> None:
        if not report.ready and not failures:
            failures.append(report.targets[0].reason)
            child.stdin.write("go\n")  # type: ignore[union-attr]
            child.stdin.flush()  # type: ignore[union-attr]

    try:
        report = wait_for(str(free_port), timeout=30, on_attempt=started_after_first_failure)
    finally:
        child.communicate("bye\n", timeout=10)
    assert "refused" in failures[0]
    target = report.targets[0]
    assert target.ready
    assert target.attempts >= 2
    assert target.address == f"127.0.0.1:{free_port}"


def test_localhost_finds_a_server_on_ipv6_loopback_only(free_port: int) -> None:
    s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    s.bind(("::1", free_port))
    s.listen()
    try:
        report = wait_for(f"localhost:{free_port}", timeout=10)
    finally:
        s.close()
    assert report.targets[0].address == f"[::1]:{free_port}"


class Flaky(http.server.BaseHTTPRequestHandler):
    hits = 0

    def do_GET(self) -> None:
        Flaky.hits += 1
        status = 503 if Flaky.hits <= 2 else 200
        body = b"warming up" if status == 503 else b"all systems ready"
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def flaky_http() -> Iterator[int]:
    Flaky.hits = 0
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Flaky)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def test_http_503_then_200(flaky_http: int) -> None:
    seen: list[str] = []
    report = wait_for(
        f"http://localhost:{flaky_http}/health",
        timeout=30,
        http=HttpCheck(contains="ready"),
        on_attempt=lambda r: seen.append(r.targets[0].reason),
    )
    assert report.targets[0].status == 200
    assert report.targets[0].attempts == 3
    assert "HTTP 503" in seen[0]


def test_http_wrong_status_never_ready(flaky_http: int) -> None:
    reasons: list[str] = []
    with pytest.raises(WaitFailed, match="not ready after 3s"):
        wait_for(
            f"http://127.0.0.1:{flaky_http}/",
            timeout=3.0,
            http=HttpCheck((204, 204)),
            on_attempt=lambda r: reasons.append(r.targets[0].reason),
        )
    assert any("HTTP 200 (want 204-204)" in r for r in reasons)


def test_self_connect_is_rejected(free_port: int) -> None:
    # Bind the probe to the very port it connects to: Linux completes a simultaneous
    # open with itself (RFC 9293 §3.5), exactly what a poll on a free port can hit.
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind(("127.0.0.1", free_port))
        s.connect(("127.0.0.1", free_port))
        assert s.getsockname() == s.getpeername()  # the trap is real
        attempt = verify_connected(s)
    finally:
        s.close()
    assert not attempt.ok
    assert "self-connect" in attempt.reason


def test_unix_socket(tmp_path: Path) -> None:
    path = str(tmp_path / "app.sock")
    with pytest.raises(WaitFailed, match="no such socket file"):
        wait_for(f"unix:{path}", timeout=0.2)
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen()
    try:
        assert wait_for(f"unix:{path}", timeout=10).ready
    finally:
        server.close()


def test_watched_process_exit_fails_fast(free_port: int) -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE
    )

    def let_it_exit(report: WaitReport) -> None:
        if child.stdin is not None and not child.stdin.closed:
            child.stdin.close()

    try:
        with pytest.raises(WaitFailed, match=f"process {child.pid} exited") as info:
            wait_for(str(free_port), timeout=60, pid=child.pid, on_attempt=let_it_exit)
    finally:
        child.wait(timeout=10)
    assert info.value.report.elapsed < 30


def homeport(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "homeport", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_command_runs_after_readiness_with_its_exit_status(free_port: int) -> None:
    with socket.create_server(("127.0.0.1", free_port)):
        proc = homeport(
            "wait",
            str(free_port),
            "--",
            sys.executable,
            "-c",
            "import sys; print('cmd ran'); sys.exit(7)",
        )
    assert proc.returncode == 7
    assert proc.stdout == "cmd ran\n"
    assert f"ready: {free_port} via 127.0.0.1:{free_port}" in proc.stderr


def test_target_that_never_comes_does_not_run_the_command(free_port: int, tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    proc = homeport(
        "wait",
        str(free_port),
        "--timeout",
        "0.5",
        "--",
        sys.executable,
        "-c",
        f"open({str(marker)!r}, 'w')",
    )
    assert proc.returncode == 1
    assert "not ready after 0.5s" in proc.stderr
    assert "refused" in proc.stderr
    assert not os.path.exists(marker)


@pytest.fixture
def tls_http(tmp_path: Path) -> Iterator[int]:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed (needed to make a self-signed certificate)")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
        timeout=30,
    )
    Flaky.hits = 10  # always 200
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Flaky)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def test_https_self_signed_is_a_tls_error_unless_insecure(tls_http: int) -> None:
    url = f"https://localhost:{tls_http}/"
    with pytest.raises(WaitFailed, match="TLS error: CERTIFICATE_VERIFY_FAILED"):
        wait_for(url, timeout=1.0)
    report = wait_for(url, timeout=10, http=HttpCheck(insecure=True))
    assert report.targets[0].status == 200
