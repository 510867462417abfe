""" "Did you mean" against real servers: a real PostgreSQL on one port and psql refused on
another; a Vite-like dev server that moved to the next free port; the other family."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from http.server import ThreadingHTTPServer
from pathlib import Path

import pytest
from tests.integration import audit_fakes
from tests.integration.test_audit_servers import PG_BIN, _need, _need_root, _stop, _wait_port

from homeport.explain import explain
from homeport.explain.facts import fingerprints


def _held_pair() -> tuple[socket.socket, int]:
    """A port P held (bound, not listening: connect is refused) whose P+1 is free too."""
    for _ in range(50):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port + 1))
            except OSError:
                s.close()
                continue
        return s, port
    pytest.fail("no two adjacent free ports in 50 tries")


@contextlib.contextmanager
def _vite_like_server(wanted: int) -> Iterator[int]:
    """A dev server as Vite behaves without --strictPort: it asks for ``wanted`` and, when
    that is busy, takes the next free port. It answers as Vite does (audit_fakes.vite)."""
    server: ThreadingHTTPServer | None = None
    for port in range(wanted, wanted + 10):
        try:
            server = ThreadingHTTPServer(("127.0.0.1", port), audit_fakes._Handler)
            break
        except OSError:
            continue
    assert server is not None
    server.daemon_threads = True
    bound = int(server.server_address[1])
    app = audit_fakes.vite(False, bound)
    server.RequestHandlerClass = type("H", (audit_fakes._Handler,), {"app": staticmethod(app)})
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield bound
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_a_vite_server_that_moved_is_offered() -> None:
    held, port = _held_pair()
    with held, _vite_like_server(port) as moved:
        assert port < moved <= port + 9  # its own port was busy: it moved up, as Vite does
        e = explain(f"Error: connect ECONNREFUSED 127.0.0.1:{port}")
        # A random port's neighbours are offered unprobed; on a dev port (5173) they are
        # fingerprinted: the same fingerprint, asked directly, names Vite.
        found = fingerprints([("127.0.0.1", moved)])
    assert e.diagnosis[0].id == "refused.nothing"
    (first, *_rest) = e.did_you_mean
    assert first.target == f"127.0.0.1:{moved}"
    assert f"{moved - port} port(s) above" in first.why
    assert found == {moved: "vite"}


def test_the_other_family_is_offered() -> None:
    for _ in range(20):
        srv = socket.socket(socket.AF_INET6)
        srv.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        srv.bind(("::1", 0))
        port = int(srv.getsockname()[1])
        guard = socket.socket()
        try:
            guard.bind(("127.0.0.1", port))  # nobody may listen on 127.0.0.1:port meanwhile
            break
        except OSError:
            guard.close()
            srv.close()
    else:
        pytest.fail("no port free on both families")
    with srv, guard:
        srv.listen()
        e = explain(f"curl: (7) Failed to connect to 127.0.0.1 port {port} after 0 ms: Couldn't"
                    " connect to server")  # fmt: skip
        # A text no rule names (a Windows errno in a made-up client's words): the same
        # diagnosis, from the same live facts.
        unknown = explain(f"frobnicate: socket error 10061 talking to 127.0.0.1:{port}")
    assert e.diagnosis[0].id == "refused.family"
    assert [m.target for m in e.did_you_mean] == [f"[::1]:{port}"]
    assert unknown.parsed.rule is not None
    assert unknown.parsed.rule.id == "class-refused"
    assert unknown.diagnosis[0].id == "refused.family"
    assert f"pid {os.getpid()}" in unknown.diagnosis[0].summary


@pytest.fixture
def pg_dir() -> Iterator[Path]:
    d = Path(tempfile.mkdtemp(prefix="hp-meant-"))
    d.chmod(0o755)
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_psql_refused_next_to_a_real_postgres(pg_dir: Path) -> None:
    initdb, postgres = _need("initdb"), _need("postgres")
    psql = shutil.which("psql") or pytest.skip("psql is not installed")
    _need_root()
    assert PG_BIN.exists()
    shutil.chown(pg_dir, "postgres")
    subprocess.run(
        ["runuser", "-u", "postgres", "--", initdb, "-D", str(pg_dir / "data"), "-U",
         "postgres", "-A", "trust", "--no-sync", "--no-instructions"],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    held, closed = _held_pair()
    port = closed + 1  # PostgreSQL next door to the port psql is given
    proc = subprocess.Popen(
        ["runuser", "-u", "postgres", "--", postgres, "-D", str(pg_dir / "data"), "-k",
         str(pg_dir), "-p", str(port), "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"],
        start_new_session=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        _wait_port(port, proc)
        with held:
            err = subprocess.run(
                [psql, "-h", "127.0.0.1", "-p", str(closed), "-U", "postgres", "-c", "select 1"],
                capture_output=True, text=True, timeout=30, check=False,
                env={**os.environ, "PGCONNECT_TIMEOUT": "2"},
            ).stderr  # fmt: skip
            e = explain(err)
    finally:
        _stop(proc)
    assert "Connection refused" in err
    assert e.parsed.tool == "psql"
    targets = {m.target: m.why for m in e.did_you_mean}
    assert f"127.0.0.1:{port}" in targets
    assert "PostgreSQL" in targets[f"127.0.0.1:{port}"]


def test_the_closest_gateway_route_is_offered(state_dir: Path) -> None:
    from homeport.gateway.contract import Route
    from homeport.store import Store

    store = Store()
    try:
        store.put_route(Route("api.localhost", "http://127.0.0.1:3000"))
        store.put_route(Route("web.localhost", "http://127.0.0.1:5173"))
    finally:
        store.close()
    e = explain("curl: (6) Could not resolve host: apii.localhost")
    assert e.parsed.kind == "not-found"
    assert [m.target for m in e.did_you_mean][:1] == [
        f"http://api.localhost:{e.facts.gateway_port}/"
    ]
    assert "'api.localhost'" in e.did_you_mean[0].why
