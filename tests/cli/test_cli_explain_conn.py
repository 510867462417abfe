"""`homeport explain` on resets, denied and unreachable connects, against real loopback servers.

Each server runs in a thread of the test process on a port bound by the kernel (port 0), so
the owner homeport finds is this process; its accept loop ends when the test shuts the
listening socket down.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib.util
import json
import os
import pwd
import shutil
import socket
import ssl
import struct
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from homeport.explain.probes import tls_answers

Cli = Callable[..., Any]
Handler = Callable[[socket.socket], None]
ERRORS = Path(__file__).parent.parent / "fixtures" / "errors"


@contextmanager
def serve(handler: Handler) -> Iterator[int]:
    srv = socket.create_server(("127.0.0.1", 0))
    port = int(srv.getsockname()[1])

    def loop() -> None:
        while True:
            try:
                conn, _ = srv.accept()
            except OSError:
                return  # shut down by the test
            # OSError: the client went away first, nothing to answer
            with conn, contextlib.suppress(OSError):
                handler(conn)

    t = threading.Thread(target=loop, daemon=True)
    t.start()
    try:
        yield port
    finally:
        srv.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept() (Linux)
        t.join(5)
        srv.close()


def rst_after_read(conn: socket.socket) -> None:
    conn.settimeout(2)
    conn.recv(65536)
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


def close_after_read(conn: socket.socket) -> None:
    conn.settimeout(2)
    conn.recv(65536)


def http_400(conn: socket.socket) -> None:
    conn.settimeout(2)
    conn.recv(65536)
    conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")


def provoke_reset(port: int) -> str:
    """The error a Python client really gets from the server: the text a user would paste."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        try:
            s.recv(1024)
        except ConnectionResetError as exc:
            return f"ConnectionResetError: {exc}"
    pytest.fail("the server did not reset the connection")


def explain_json(cli: Cli, *argv: str) -> dict[str, Any]:
    r = cli("explain", "--json", *argv)
    assert r.status == 0, r.stderr
    data: dict[str, Any] = json.loads(r.stdout)
    return data


def stamp(delta: timedelta) -> str:
    return (datetime.now(UTC) + delta).isoformat(timespec="seconds")


# ------------------------------------------------------------------ reset


def test_reset_by_a_server_started_after_the_error(cli: Cli) -> None:
    with serve(rst_after_read) as port:
        error = provoke_reset(port)
        j = explain_json(cli, f"{stamp(-timedelta(days=1))} {error}", "--at", f"127.0.0.1:{port}")
    assert (j["error"]["rule"], j["error"]["kind"]) == ("python-reset", "reset")
    assert j["diagnosis"][0]["id"] == "reset.restarted"
    assert f"(pid {os.getpid()})" in j["diagnosis"][0]["summary"]
    assert j["live"]["tls"] is not True


def test_reset_by_a_server_up_before_the_error(cli: Cli) -> None:
    with serve(rst_after_read) as port:
        error = provoke_reset(port)
        r = cli("explain", f"{stamp(timedelta(hours=1))} {error}", "--at", f"127.0.0.1:{port}")
    assert r.status == 0, r.stderr
    assert "Python: reset" in r.stdout
    assert "it accepted the connection, then dropped it" in r.stdout
    assert "does not answer a TLS ClientHello" in r.stdout or "TLS" not in r.stdout


def test_reset_where_nothing_listens_any_more(cli: Cli) -> None:
    with serve(rst_after_read) as port:
        error = provoke_reset(port)
    r = cli("explain", error, "--at", f"127.0.0.1:{port}")
    assert r.status == 0, r.stderr
    assert f"Nothing listens on 127.0.0.1:{port} now" in r.stdout
    assert f"homeport wait 127.0.0.1:{port}" in r.stdout


def test_reset_at_homeports_gateway_points_to_its_access_log(
    cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = (ERRORS / "curl_empty_reply.txt").read_text()
    with serve(close_after_read) as port:
        monkeypatch.setenv("HOMEPORT_PORT", str(port))
        r = cli("explain", text, "--at", f"127.0.0.1:{port}")
    assert r.status == 0, r.stderr
    assert "homeport's gateway" in r.stdout
    assert "`homeport logs --access`" in r.stdout
    assert "TLS ClientHello" not in r.stdout  # the gateway is not probed


@pytest.fixture(scope="module")
def tls_context(tmp_path_factory: pytest.TempPathFactory) -> ssl.SSLContext:
    if shutil.which("openssl") is None:
        pytest.skip("openssl (Debian package openssl) is not installed: no certificate")
    d = tmp_path_factory.mktemp("tls")
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
            *("-keyout", str(d / "k.pem"), "-out", str(d / "c.pem"), "-subj", "/CN=localhost"),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(d / "c.pem", d / "k.pem")
    return ctx


def tls_handshake(ctx: ssl.SSLContext) -> Callable[[socket.socket], None]:
    """A server's side of one connection: a TLS handshake, whatever the client sends."""

    def handshake(conn: socket.socket) -> None:
        conn.settimeout(2)
        try:
            with ctx.wrap_socket(conn, server_side=True):
                pass
        except ssl.SSLError:
            pass  # plain text, or the probe leaving after the ServerHello

    return handshake


def test_plain_http_to_a_tls_port(cli: Cli, tls_context: ssl.SSLContext) -> None:
    handshake = tls_handshake(tls_context)
    text = (ERRORS / "curl_http_to_tls.txt").read_text()
    with serve(handshake) as port:
        j = explain_json(cli, text, "--at", f"127.0.0.1:{port}")
    assert j["live"]["tls"] is True
    assert j["diagnosis"][0]["id"] == "reset.tls"
    assert f"https://127.0.0.1:{port}/" in "\n".join(j["next_steps"])


def test_tls_probe_tells_tls_from_plain_http(tls_context: ssl.SSLContext) -> None:
    handshake = tls_handshake(tls_context)
    with serve(handshake) as tls_port, serve(http_400) as http_port:
        assert tls_answers("127.0.0.1", tls_port) is True
        assert tls_answers("127.0.0.1", http_port) is False
    assert tls_answers("192.0.2.1", 443) is None  # never probes beyond loopback


# ------------------------------------------------------------------ connect-denied


def test_connect_eperm_is_not_a_bind_problem(cli: Cli) -> None:
    j = explain_json(cli, (ERRORS / "node_connect_eperm.txt").read_text())
    assert (j["error"]["rule"], j["error"]["kind"]) == ("node-connect-denied", "connect-denied")
    live = j["live"]
    expected = (
        "connect-denied.bpf"
        if live["cgroup_connect_hooks"]
        else "connect-denied.security"
        if live["security_modules"]
        else "connect-denied.firewall"
        if live["firewall_lo"]
        else "connect-denied.sandbox"
    )
    assert j["diagnosis"][0]["id"] == expected


def _deny_connect() -> ModuleType:
    spec = importlib.util.spec_from_file_location("deny_connect", ERRORS / "deny_connect.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def empty_cgroup_with_connect_hook() -> Iterator[str]:
    """A new, empty cgroup (no process in it) with a connect4 program that denies."""
    if os.geteuid() != 0:
        pytest.skip("attaching a cgroup BPF program needs root")
    dc = _deny_connect()
    try:
        root = dc._cgroup2_mount()
    except SystemExit:
        pytest.skip("no cgroup2 mount on this machine")
    cg = root / f"hp_explain_test_{os.getpid()}"
    cg.mkdir()
    fds: list[int] = []
    try:
        fds.append(os.open(cg, os.O_RDONLY | os.O_DIRECTORY))
        try:
            fds.append(dc._bpf_prog(10))
            attr = ctypes.create_string_buffer(struct.pack("<IIII", fds[0], fds[1], 10, 0), 128)
            dc._check(dc.LIBC.syscall(321, 8, attr, 128), "BPF_PROG_ATTACH")
        except OSError as exc:
            pytest.skip(f"this kernel refuses cgroup BPF programs here: {exc}")
        yield "/" + cg.name
    finally:
        for fd in fds:
            os.close(fd)
        cg.rmdir()


@pytest.mark.skipif(os.uname().machine != "x86_64", reason="the test's attach uses x86_64 numbers")
def test_a_cgroup_bpf_connect_hook_is_found(cli: Cli, empty_cgroup_with_connect_hook: str) -> None:
    j = explain_json(cli, (ERRORS / "python_connect_eperm.txt").read_text(), "--at", "127.0.0.1:9")
    hooks = j["live"]["cgroup_connect_hooks"]
    assert f"{empty_cgroup_with_connect_hook}: connect4 (1 program)" in hooks
    assert j["diagnosis"][0]["id"] == "connect-denied.bpf"
    assert empty_cgroup_with_connect_hook in j["diagnosis"][0]["summary"]


def test_denied_unix_socket_shows_its_owner_and_mode(cli: Cli, tmp_path: Path) -> None:
    path = str(tmp_path / "app.sock")
    with socket.socket(socket.AF_UNIX) as srv:
        srv.bind(path)
        os.chmod(path, 0o600)
        r = cli("explain", f"Error: connect EACCES {path}")
    assert r.status == 0, r.stderr
    owner = pwd.getpwuid(os.getuid()).pw_name
    assert (
        f"{path} is a Unix socket this user may not connect to: a socket, srw-------," in r.stdout
    )
    assert f"owner {owner}," in r.stdout
    assert f"`ls -l {path}`" in r.stdout


# ------------------------------------------------------------------ unreachable


def test_loopback_unreachable_reads_the_firewall(cli: Cli) -> None:
    j = explain_json(cli, (ERRORS / "psql_unreachable.txt").read_text())
    assert (j["error"]["kind"], j["target"]["port"]) == ("unreachable", 52787)
    fw = [r for r in j["live"]["firewall_lo"] if "reject" in r.lower()]
    if not fw:
        assert j["diagnosis"][0]["id"] == "unreachable.loopback"


def test_human_output_names_the_kind_and_the_steps(cli: Cli) -> None:
    r = cli("explain", (ERRORS / "redis_cli_connect_eacces.txt").read_text())
    assert r.status == 0, r.stderr
    assert "redis-cli: connect-denied  (rule redis-cli-connect-denied)" in r.stdout
    assert "cgroup BPF connect hooks:" in r.stdout
    assert "\nnext steps\n  1. " in r.stdout
    assert r.stderr == ""


def test_stale_keepalive_connections_are_seen_in_close_wait(cli: Cli) -> None:
    with serve(lambda conn: None) as port:  # accepts, then closes at once: a FIN, no answer
        pooled = socket.create_connection(("127.0.0.1", port), timeout=5)
        try:
            assert pooled.recv(1) == b""  # the FIN arrived: this end is now in CLOSE-WAIT
            client = f"127.0.0.1:{pooled.getsockname()[1]}"
            later = stamp(timedelta(hours=1))  # the error is newer than the server
            j = explain_json(cli, f"{later} Error: read ECONNRESET", "--at", f"127.0.0.1:{port}")
        finally:
            pooled.close()
    assert j["diagnosis"][0]["id"] == "reset.keepalive"
    assert f"{client} (python" in j["diagnosis"][0]["summary"]
    assert f"pid {os.getpid()})" in j["diagnosis"][0]["summary"]
    assert len(j["diagnosis"]) == 1  # the keep-alive note would only repeat the finding


@pytest.mark.parametrize(
    ("tool", "argv", "rule"),
    [
        ("curl", ("curl", "-sS", "http://127.0.0.1:{port}/"), "curl-reset"),
        (
            "node",
            ("node", "-e", "require('http').get('http://127.0.0.1:{port}/')"),
            "node-reset",
        ),
    ],
)
def test_a_real_clients_reset_is_explained(
    cli: Cli, tool: str, argv: tuple[str, ...], rule: str
) -> None:
    if shutil.which(tool) is None:
        pytest.skip(f"{tool} is not installed")
    with serve(rst_after_read) as port:
        run = subprocess.run(
            [a.format(port=port) for a in argv], capture_output=True, text=True, timeout=30
        )
        j = explain_json(cli, run.stderr, "--at", f"127.0.0.1:{port}")
    assert run.returncode != 0
    assert (j["error"]["rule"], j["error"]["kind"]) == (rule, "reset")
    assert j["diagnosis"][0]["id"] in ("reset.recent", "reset.listening")


def test_unreachable_names_the_reject_rule_in_a_private_namespace() -> None:
    """A real `reject with icmpx admin-prohibited` on lo, in a network namespace of its own:
    the client really gets EHOSTUNREACH, and homeport (a real process there) finds the rule."""
    for tool in ("unshare", "nft", "ip"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed (util-linux, nftables, iproute2)")
    if os.geteuid() != 0:
        pytest.skip("a network namespace with firewall rules needs root")
    script = """
ip link set lo up
nft add table inet hp
nft add chain inet hp in '{ type filter hook input priority 0; policy accept; }'
nft add rule inet hp in iif lo tcp dport 5432 reject with icmpx admin-prohibited
text=$("$0" -c "import socket; socket.create_connection(('127.0.0.1', 5432))" 2>&1 | tail -1)
exec "$0" -m homeport explain --json "$text" --at 127.0.0.1:5432
"""
    run = subprocess.run(
        ["unshare", "-n", "sh", "-c", script, sys.executable],
        capture_output=True,
        text=True,
        timeout=60,
    )
    if run.returncode != 0 and "unshare" in run.stderr:
        pytest.skip(f"no network namespace here: {run.stderr.strip()}")
    assert run.returncode == 0, run.stderr
    j = json.loads(run.stdout)
    assert (j["error"]["rule"], j["error"]["kind"]) == ("python-unreachable", "unreachable")
    assert j["diagnosis"][0]["id"] == "unreachable.firewall"
    assert "iif lo tcp dport 5432 reject" in j["diagnosis"][0]["summary"]
