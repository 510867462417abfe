"""Audit against real servers from Debian (redis-server, memcached, PostgreSQL 15, nginx),
each on a loopback port of its own in a safe and an unsafe configuration: the exact
findings for each, and none at all for the safe ones."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import portpicker
import pytest

from homeport.audit import AuditConfig, audit
from homeport.audit.run import AuditReport
from homeport.inventory import listeners

PG_BIN = Path("/usr/lib/postgresql/15/bin")
Expected = set[tuple[str, str]]


def _need(tool: str) -> str:
    path = shutil.which(tool) or (str(PG_BIN / tool) if (PG_BIN / tool).exists() else None)
    if path is None:
        pytest.skip(f"{tool} is not installed (Debian package; .ci/run installs it)")
    return path


def _need_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("starting servers as their own users needs root")


def _wait_port(port: int, proc: subprocess.Popen[bytes], limit: float = 15.0) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"server exited with {proc.returncode}")
        with socket.socket() as s:
            s.settimeout(0.2)
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.02)  # bounded connect loop: the readiness signal is the accept
    raise AssertionError(f"nothing accepted on 127.0.0.1:{port} within {limit}s")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        # SIGINT is PostgreSQL's "fast" shutdown (SIGTERM waits for sessions); the other
        # servers treat it like SIGTERM.
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
    for stream in (proc.stdout, proc.stderr):
        if stream is not None:
            stream.close()


@pytest.fixture
def server() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Processes started by a test; each is stopped by process group at teardown."""
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for proc in started:
        _stop(proc)


def _start(
    started: list[subprocess.Popen[bytes]], argv: list[str], **kw: object
) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(argv, start_new_session=True, stdin=subprocess.DEVNULL, **kw)  # type: ignore[call-overload]
    started.append(proc)
    return proc


def _audit(port: int) -> AuditReport:
    mine = [x for x in listeners(port=port) if x.proto == "tcp" and x.address == "127.0.0.1"]
    assert len(mine) == 1
    return audit(AuditConfig(port=port, outside=False), listeners=mine)


def _found(report: AuditReport) -> Expected:
    return {(f.rule, f.severity) for f in report.findings}


def _identity(report: AuditReport) -> tuple[str, str]:
    ident = report.listeners[0].identity
    assert ident is not None
    return ident.service, ident.auth


@pytest.mark.parametrize(
    ("safe", "auth", "expected"),
    [
        pytest.param(False, "open", {("unauthenticated", "medium")}, id="no-password"),
        pytest.param(True, "protected", set(), id="requirepass"),
    ],
)
def test_redis(
    server: list[subprocess.Popen[bytes]], tmp_path: Path, safe: bool, auth: str, expected: Expected
) -> None:
    redis = _need("redis-server")
    port = portpicker.pick_unused_port()
    argv = [
        redis,
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        str(tmp_path),
        "--protected-mode",
        "no",
    ]
    if safe:
        argv += ["--requirepass", "s3cret-homeport-test"]
    proc = _start(server, argv, stdout=subprocess.DEVNULL)
    _wait_port(port, proc)
    report = _audit(port)
    assert _identity(report) == ("redis", auth)
    assert _found(report) == expected
    if not safe:
        ev = report.findings[0].evidence[0]
        assert ev.probe == "*1\\r\\n$4\\r\\nPING\\r\\n" or "PING" in ev.probe
        assert ev.answer.startswith("+PONG")
        assert "requirepass" in report.findings[0].fix


@pytest.mark.parametrize(
    ("safe", "auth", "expected"),
    [
        pytest.param(False, "open", {("unauthenticated", "low")}, id="open"),
        pytest.param(True, "protected", set(), id="authfile"),
    ],
)
def test_memcached(
    server: list[subprocess.Popen[bytes]],
    shared_dir: Path,
    safe: bool,
    auth: str,
    expected: Expected,
) -> None:
    memcached = _need("memcached")
    _need_root()
    port = portpicker.pick_unused_port()
    argv = [memcached, "-u", "memcache", "-l", "127.0.0.1", "-p", str(port), "-U", "0"]
    if safe:
        authfile = shared_dir / "auth"
        authfile.write_text("homeport:s3cret\n")
        authfile.chmod(0o644)
        argv += ["-Y", str(authfile)]
    proc = _start(server, argv)
    _wait_port(port, proc)
    report = _audit(port)
    assert _identity(report) == ("memcached", auth)
    assert _found(report) == expected


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    # Under /tmp itself: pytest's tmp_path is mode 0700 root, which the servers' own users
    # (postgres, memcache) cannot traverse.
    d = Path(tempfile.mkdtemp(prefix="hp-audit-"))
    d.chmod(0o755)
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


def _pg_answer(port: int) -> bytes:
    from homeport.audit.catalogue import probe

    with socket.create_connection(("127.0.0.1", port), 5) as s:
        s.sendall(probe("postgres-startup").payload)
        return s.recv(9)


def test_postgres_scram_then_trust(server: list[subprocess.Popen[bytes]], shared_dir: Path) -> None:
    """One cluster (initdb is the slow part): SCRAM first, then pg_hba.conf switched to
    trust and reloaded with SIGHUP."""
    initdb, postgres = _need("initdb"), _need("postgres")
    _need_root()
    data = shared_dir / "data"
    (shared_dir / "pw").write_text("s3cret\n")
    shutil.chown(shared_dir, "postgres")
    shutil.chown(shared_dir / "pw", "postgres")
    subprocess.run(
        [
            "runuser",
            "-u",
            "postgres",
            "--",
            initdb,
            "-D",
            str(data),
            "-U",
            "postgres",
            "-A",
            "scram-sha-256",
            "--pwfile",
            str(shared_dir / "pw"),
            "--no-sync",
            "--no-instructions",
        ],
        check=True,
        capture_output=True,
        timeout=90,
    )
    port = portpicker.pick_unused_port()
    proc = _start(
        server,
        [
            "runuser",
            "-u",
            "postgres",
            "--",
            postgres,
            "-D",
            str(data),
            "-k",
            str(shared_dir),
            "-p",
            str(port),
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            "fsync=off",
        ],
        stderr=subprocess.PIPE,
    )
    assert proc.stderr is not None
    deadline = time.monotonic() + 30
    for line in proc.stderr:  # the readiness line, not a connect loop: startup refuses logins
        if b"ready to accept connections" in line or time.monotonic() > deadline:
            break
    report = _audit(port)
    assert _identity(report) == ("postgresql", "protected")
    assert _found(report) == set()

    (data / "pg_hba.conf").write_text("local all all trust\nhost all all 127.0.0.1/32 trust\n")
    postmaster = int((data / "postmaster.pid").read_text().split()[0])
    os.kill(postmaster, signal.SIGHUP)
    deadline = time.monotonic() + 30
    while not _pg_answer(port).startswith(b"R\x00\x00\x00\x08\x00\x00\x00\x00"):
        assert time.monotonic() < deadline, "pg_hba.conf reload never took effect"
        time.sleep(0.05)  # bounded poll for the reload, which signals nothing we can wait on
    report = _audit(port)
    assert _identity(report) == ("postgresql", "open")
    assert _found(report) == {("unauthenticated", "medium")}
    assert "AuthenticationOk" in report.findings[0].title
    assert "scram-sha-256" in report.findings[0].fix


_NGINX_UNSAFE = """
    server {{
        listen 127.0.0.1:{port};
        location / {{
            add_header Access-Control-Allow-Origin $http_origin always;
            add_header Access-Control-Allow-Credentials true always;
            add_header Access-Control-Allow-Private-Network true always;
            return 200 "hello from an unsafe server\\n";
        }}
    }}"""
_NGINX_ANY = """
    server {{
        listen 127.0.0.1:{port};
        location / {{
            add_header Access-Control-Allow-Origin * always;
            return 200 "hello\\n";
        }}
    }}"""
_NGINX_SAFE = """
    server {{
        listen 127.0.0.1:{port} default_server;
        return 421;
    }}
    server {{
        listen 127.0.0.1:{port};
        server_name localhost 127.0.0.1;
        location / {{ return 200 "hello from a safe server\\n"; }}
    }}"""


@pytest.mark.parametrize(
    ("conf", "expected"),
    [
        pytest.param(
            _NGINX_UNSAFE,
            {
                ("dns-rebinding", "medium"),
                ("cors-credentials", "high"),
                ("private-network-access", "medium"),
            },
            id="reflect-credentials",
        ),
        pytest.param(
            _NGINX_ANY,
            {("dns-rebinding", "medium"), ("cors-any-origin", "medium")},
            id="any-host-cors-star",
        ),
        pytest.param(_NGINX_SAFE, set(), id="host-check"),
    ],
)
def test_nginx(
    server: list[subprocess.Popen[bytes]], tmp_path: Path, conf: str, expected: Expected
) -> None:
    nginx = _need("nginx")
    port = portpicker.pick_unused_port()
    t = tmp_path
    text = (
        f"error_log {t}/error.log;\nevents {{}}\nhttp {{\n access_log off;\n"
        f" client_body_temp_path {t}/b; proxy_temp_path {t}/p; fastcgi_temp_path {t}/f;\n"
        f" uwsgi_temp_path {t}/u; scgi_temp_path {t}/s;\n" + conf.format(port=port) + "\n}\n"
    )
    (t / "nginx.conf").write_text(text)
    proc = _start(
        server,
        [
            nginx,
            "-e",
            f"{t}/error.log",
            "-c",
            str(t / "nginx.conf"),
            "-g",
            f"daemon off; pid {t}/nginx.pid;",
        ],
    )
    _wait_port(port, proc)
    report = _audit(port)
    assert _identity(report) == ("http", "unknown")
    assert _found(report) == expected


def test_nginx_over_tls(server: list[subprocess.Popen[bytes]], tmp_path: Path) -> None:
    nginx, openssl = _need("nginx"), _need("openssl")
    t = tmp_path
    subprocess.run(
        [
            openssl,
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
            "-keyout",
            str(t / "k.pem"),
            "-out",
            str(t / "c.pem"),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    port = portpicker.pick_unused_port()
    text = (
        f"error_log {t}/error.log;\nevents {{}}\nhttp {{\n access_log off;\n"
        f" client_body_temp_path {t}/b; proxy_temp_path {t}/p; fastcgi_temp_path {t}/f;\n"
        f" uwsgi_temp_path {t}/u; scgi_temp_path {t}/s;\n"
        f" server {{ listen 127.0.0.1:{port} ssl; ssl_certificate {t}/c.pem;\n"
        f"  ssl_certificate_key {t}/k.pem; location / {{ return 200 'tls hello'; }} }}\n}}\n"
    )
    (t / "nginx.conf").write_text(text)
    proc = _start(
        server,
        [
            nginx,
            "-e",
            f"{t}/error.log",
            "-c",
            str(t / "nginx.conf"),
            "-g",
            f"daemon off; pid {t}/nginx.pid;",
        ],
    )
    _wait_port(port, proc)
    report = _audit(port)
    ident = report.listeners[0].identity
    assert ident is not None
    assert (ident.service, ident.tls, ident.http) == ("http", True, True)
    assert ident.server is not None
    assert ident.server.startswith("nginx")
    assert _found(report) == {("dns-rebinding", "medium")}
